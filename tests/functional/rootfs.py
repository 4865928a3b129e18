# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Clean Debian roots: nodes as they boot, before the fragments install anything.

A root is ``debootstrap --variant=minbase SUITE`` from Debian's archive (bookworm for
Debian 12, trixie for Debian 13) plus what every cloud image boots with and the
fragments take as given (IMAGE_PACKAGES: systemd), with the apt sources a Debian cloud
image has. Nothing else goes in: whatever a node needs, the fragment's own install steps
(the functions of heat_templates/fragments, run inside the root) must put there, so a
package a fragment forgets makes a test fail.

Caching. The debootstrap result is a tarball under ``CACHE/roots`` named by suite and a
key over everything that shapes it (variant, packages, mirror, sources); a lock per suite lets
concurrent runs wait for one build instead of corrupting it. Downloaded .debs are kept in
``CACHE/debs/SUITE`` and bind-mounted as the root's apt archive, so a warm run installs
without downloading. ``CELTIC_ROOT_CACHE`` moves the cache (default
/var/cache/magnum-celtic).

Repositories this machine cannot reach (pkgs.k8s.io, download.docker.com) are served
from a local file:// tree with the same paths (stub_repos()): stub .debs built with
dpkg-deb whose names, versions and dependencies follow the real repositories, in indexes
signed by a lab key, so apt checks the signature as it does on a node. A name the real
repository does not carry is absent and the install fails. The stubs' programs record
every call in /var/log/celtic-stub-calls.log inside the root. On the node side the only
change is the URL: the fragments' kube_apt_source is wrapped so that its key URL and its
apt line point at the local tree (see STUB_URL_MAP and node_prelude()).

Every command runs in a private mount namespace (``unshare -m``) holding the root's
/proc, /dev and apt archive mounts, so nothing is left mounted when it ends; policy-rc.d
in the root keeps package installs from starting daemons.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRAGMENTS = REPO / "heat_templates" / "fragments"
CACHE = Path(os.environ.get("CELTIC_ROOT_CACHE", "/var/cache/magnum-celtic"))
MIRROR = os.environ.get("CELTIC_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
VARIANT = "minbase"

# What every Debian cloud image boots with and the fragments take as given, beyond
# minbase: systemd (the init; systemctl, systemd-escape). Nothing a fragment installs is
# here (procps, also on every image, is left out: the base packages install it).
IMAGE_PACKAGES = ("systemd",)

# The suites the nodes run (Debian 12 and 13) and the Debian release each one is.
SUITES = {"bookworm": "12", "trixie": "13"}

# Where the fragments' library sits on a node (CELTIC_LIB_DIR's default).
NODE_LIB = "/usr/local/lib/celtic"
# Where the stub repositories appear inside a root.
STUB_DIR = "/srv/celtic-stub-repos"
STUB_CALLS = "/var/log/celtic-stub-calls.log"
# The real base URLs and the local tree that stands in for each.
STUB_URL_MAP = {
    "https://pkgs.k8s.io/": f"file://{STUB_DIR}/pkgs.k8s.io/",
    "https://download.docker.com/": f"file://{STUB_DIR}/download.docker.com/",
}

BUILD_TIMEOUT = 900
RUN_TIMEOUT = 900


def sources(suite: str) -> str:
    """The apt sources of a Debian cloud image of SUITE (main, updates, security)."""
    return (f"deb {MIRROR} {suite} main\n"
            f"deb {MIRROR} {suite}-updates main\n"
            f"deb {SECURITY_MIRROR} {suite}-security main\n")


def missing_requirements() -> list[str]:
    """What this host lacks to build and enter roots (empty when nothing)."""
    missing = [tool for tool in ("debootstrap", "unshare", "chroot", "dpkg-deb", "gpg", "tar")
               if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# the debootstrap tarball


def root_tarball(suite: str) -> Path:
    """The cached minbase tarball of SUITE, built (once, under a lock) when missing."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {suite!r}")
    key = _key(suite, VARIANT, MIRROR, sources(suite), *IMAGE_PACKAGES)
    roots = CACHE / "roots"
    tarball = roots / f"{suite}-{VARIANT}-{key}.tar.gz"
    with _locked(roots / f"{suite}.lock"):
        if tarball.exists():
            return tarball
        work = Path(tempfile.mkdtemp(prefix=f"build-{suite}-", dir=roots))
        try:
            target = work / "root"
            result = subprocess.run(
                ["debootstrap", f"--variant={VARIANT}", "--include=" + ",".join(IMAGE_PACKAGES),
                 suite, str(target), MIRROR],
                capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if result.returncode != 0:
                raise RuntimeError(f"debootstrap {suite} failed ({result.returncode}):\n"
                                   f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
            (target / "etc/apt/sources.list").write_text(sources(suite))
            # The apt cache is a bind mount of CACHE/debs at run time: keep it empty.
            for deb in (target / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            partial = work / "root.tar.gz"
            subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-czf",
                            str(partial), "."], check=True, timeout=BUILD_TIMEOUT)
            os.replace(partial, tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in roots.glob(f"{suite}-*.tar.gz"):
            if old != tarball:
                old.unlink()
    return tarball


# ---------------------------------------------------------------------------------------
# stub repositories for what this machine cannot download

# The Kubernetes minors pkgs.k8s.io serves here, each with the packages its real
# repository carries. v1.36 shipped without cri-tools and kubernetes-cni
# (kubernetes/kubernetes#138534), so it has neither here.
K8S_MINORS = {
    "v1.34": {"kube": ["1.34.0", "1.34.3"], "cri-tools": "1.34.0", "cni": "1.7.1"},
    "v1.35": {"kube": ["1.35.0", "1.35.2"], "cri-tools": "1.35.0", "cni": "1.7.1"},
    "v1.36": {"kube": ["1.36.0", "1.36.2"], "cri-tools": None, "cni": None},
}
# Dependencies as kubernetes/release's packaging declares them: kubeadm needs cri-tools
# and kubernetes-cni (floors below every minor served here, so that taking them from the
# previous minor's repository is judged on the names), kubelet the host tools.
KUBEADM_DEPENDS = "cri-tools (>= 1.28.0), kubernetes-cni (>= 1.2.0)"
KUBELET_DEPENDS = ("iptables (>= 1.4.21), iproute2, mount, util-linux, ethtool, ebtables, "
                   "socat, conntrack")
# Docker's repository: distribution id -> codenames it serves; containerd.io versions.
DOCKER_DISTS = {"debian": {"bookworm": "12", "trixie": "13"}, "ubuntu": {"noble": "24.04"}}
CONTAINERD_VERSIONS = ("1.7.28-1", "2.1.4-1")

STUB_PROGRAM = """#!/bin/sh
# celtic stub of {package} {version}: records the call, does nothing else.
printf '%s\\n' "$(basename "$0") $*" >>{calls}
case "$(basename "$0") $1" in
    "containerd --version") echo "containerd containerd.io v{upstream} stub" ;;
    "kubeadm version") echo "kubeadm version: v{upstream}" ;;
    "kubelet --version") echo "Kubernetes v{upstream}" ;;
esac
exit 0
"""


def _stub_deb(out: Path, package: str, version: str, programs: list[str],
              control: dict[str, str]) -> Path:
    """A .deb holding recording stubs of PROGRAMS (paths), built with dpkg-deb."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        (tree / "DEBIAN").mkdir()
        upstream = version.split("-")[0]
        for program in programs:
            path = tree / program.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(STUB_PROGRAM.format(package=package, version=version,
                                                upstream=upstream, calls=STUB_CALLS))
            path.chmod(0o755)
        fields = {"Package": package, "Version": version, "Architecture": "amd64",
                  "Maintainer": "celtic lab <lab@invalid>", **control,
                  "Description": f"celtic lab stub of {package}"}
        (tree / "DEBIAN/control").write_text(
            "".join(f"{k}: {v}\n" for k, v in fields.items()))
        deb = out / f"{package}_{version}_amd64.deb"
        deb.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree),
                        str(deb)], check=True, capture_output=True, timeout=60)
    return deb


def _packages_entry(deb: Path, filename: str) -> str:
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                             text=True, timeout=30).stdout.rstrip("\n")
    data = deb.read_bytes()
    return (f"{control}\nFilename: {filename}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n\n")


def _release(directory: Path, fields: dict[str, str], files: list[Path], gpg_home: Path) -> None:
    lines = [f"{k}: {v}" for k, v in fields.items()]
    lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(0)))
    lines.append("SHA256:")
    for path in files:
        data = path.read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} "
                     f"{path.relative_to(directory)}")
    release = directory / "Release"
    release.write_text("\n".join(lines) + "\n")
    gpg = ["gpg", "--homedir", str(gpg_home), "--batch", "--yes", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run(gpg + ["--clearsign", "-o", str(directory / "InRelease"), str(release)],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(gpg + ["-abs", "-o", str(directory / "Release.gpg"), str(release)],
                   check=True, capture_output=True, timeout=60)


def _write_index(directory: Path, entries: list[str]) -> list[Path]:
    text = "".join(entries)
    plain = directory / "Packages"
    plain.parent.mkdir(parents=True, exist_ok=True)
    plain.write_text(text)
    packed = directory / "Packages.gz"
    packed.write_bytes(gzip.compress(text.encode(), mtime=0))
    return [plain, packed]


def _build_stub_repos(top: Path) -> None:
    gpg_home = top / ".gnupg"
    gpg_home.mkdir(mode=0o700, parents=True)
    subprocess.run(["gpg", "--homedir", str(gpg_home), "--batch", "--pinentry-mode",
                    "loopback", "--passphrase", "", "--quick-gen-key",
                    "celtic lab stub repositories <lab@invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True, timeout=120)
    armored = subprocess.run(["gpg", "--homedir", str(gpg_home), "--armor", "--export"],
                             check=True, capture_output=True, timeout=60).stdout
    # pkgs.k8s.io/core:/stable:/vX.Y/deb/: a flat repository ("deb ... /").
    for minor, spec in K8S_MINORS.items():
        repo = top / "pkgs.k8s.io" / "core:" / "stable:" / minor / "deb"
        repo.mkdir(parents=True)
        (repo / "Release.key").write_bytes(armored)
        entries = []
        for upstream in spec["kube"]:
            version = f"{upstream}-1.1"
            debs = [
                _stub_deb(repo, "kubectl", version, ["/usr/bin/kubectl"], {}),
                _stub_deb(repo, "kubelet", version, ["/usr/bin/kubelet"],
                          {"Depends": KUBELET_DEPENDS}),
                _stub_deb(repo, "kubeadm", version, ["/usr/bin/kubeadm"],
                          {"Depends": KUBEADM_DEPENDS}),
            ]
            entries += [_packages_entry(deb, deb.name) for deb in debs]
        if spec["cri-tools"]:
            deb = _stub_deb(repo, "cri-tools", spec["cri-tools"] + "-1.1", ["/usr/bin/crictl"], {})
            entries.append(_packages_entry(deb, deb.name))
        if spec["cni"]:
            deb = _stub_deb(repo, "kubernetes-cni", spec["cni"] + "-1.1",
                            ["/opt/cni/bin/bridge", "/opt/cni/bin/loopback"], {})
            entries.append(_packages_entry(deb, deb.name))
        files = _write_index(repo, entries)
        _release(repo, {"Origin": "obs://build.opensuse.org/isv:kubernetes:core:stable:"
                                  f"{minor}/deb", "Label": "isv:kubernetes:core:stable",
                        "Architectures": "amd64 all"}, files, gpg_home)
    # download.docker.com/linux/<id>/: dists/<codename>/stable, a pool per id.
    for distro, codenames in DOCKER_DISTS.items():
        base = top / "download.docker.com" / "linux" / distro
        base.mkdir(parents=True)
        (base / "gpg").write_bytes(armored)
        for codename, release in codenames.items():
            entries = []
            for version in CONTAINERD_VERSIONS:
                full = f"{version}~{distro}.{release}~{codename}"
                pool = base / "dists" / codename / "pool" / "stable" / "amd64"
                deb = _stub_deb(pool, "containerd.io", full,
                                ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc"],
                                {"Depends": "libc6 (>= 2.34), libseccomp2 (>= 2.5.0)",
                                 "Conflicts": "containerd, runc", "Replaces": "containerd, runc",
                                 "Provides": "containerd, runc"})
                entries.append(_packages_entry(deb, str(deb.relative_to(base))))
            dist = base / "dists" / codename
            files = _write_index(dist / "stable" / "binary-amd64", entries)
            _release(dist, {"Origin": "Docker", "Label": "Docker CE", "Suite": codename,
                            "Codename": codename, "Architectures": "amd64",
                            "Components": "stable"}, files, gpg_home)
    shutil.rmtree(gpg_home)


def stub_repos() -> Path:
    """The cached stub repository tree (see the module docstring)."""
    spec = json.dumps([K8S_MINORS, KUBEADM_DEPENDS, KUBELET_DEPENDS, DOCKER_DISTS,
                       CONTAINERD_VERSIONS,
                       STUB_PROGRAM], sort_keys=True)
    top = CACHE / "stub-repos" / _key(spec)
    with _locked(CACHE / "stub-repos.lock"):
        if not top.exists():
            top.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix="partial-", dir=top.parent))
            try:
                _build_stub_repos(partial / "tree")
                os.replace(partial / "tree", top)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return top


# ---------------------------------------------------------------------------------------
# a root to run in


def node_prelude(role: str | None = None) -> str:
    """Bash for a node shell in a root: the fragments' library (and ROLE's script, e.g.
    master.sh, sourced as bats does: its main does not run) plus the one lab change,
    kube_apt_source's URLs pointed at the local stand-ins of unreachable repositories."""
    rewrites = " ".join(f'-e "s#{real}#{local}#g"' for real, local in STUB_URL_MAP.items())
    role_source = f"source {NODE_LIB}/{role}.sh" if role else ""
    return f"""
export CELTIC_LIB_DIR={NODE_LIB}
source {NODE_LIB}/lib/celtic.sh
for f in {NODE_LIB}/node/*.sh; do source "$f"; done
{role_source}
_celtic_stub_url() {{ sed {rewrites} <<<"$1"; }}
eval "$(declare -f kube_apt_source | sed '1s/^kube_apt_source/_celtic_real_kube_apt_source/')"
kube_apt_source() {{
    _celtic_real_kube_apt_source "$1" "$(_celtic_stub_url "$2")" "$(_celtic_stub_url "$3")"
}}
"""


# ---------------------------------------------------------------------------------------
# a role's install steps, and only those

# Steps that only install packages: they run.
INSTALL_STEPS = ("base-packages", "ha-packages", "proxy-haproxy-package",
                 "api-haproxy-package", "containerd-package", "kube-packages", "brick-tools")
# Steps that only call other steps: they run, their inner steps are filtered.
GROUP_STEPS = ("ha-cluster", "api-vip")
# Steps that install a package first and then configure and start it: they run up to the
# end of their first install.
INSTALL_THEN_CONFIGURE_STEPS = ("kernel", "metadata-block", "glusterd", "gluster-mount")

# The node facts the skipped identity steps would have set, and the API the stand-in
# version answers for the nodes that read it (kube_packages_from_api).
NODE_ENV = {
    "CELTIC_KUBE_TAG": "v1.36",
    "CELTIC_API_VIP": "10.0.0.100",
    "CELTIC_MASTER_ADDRESSES": "10.0.0.1 10.0.0.2 10.0.0.3",
    "CELTIC_STORAGE_ADDRESSES": "10.0.0.11 10.0.0.12",
    "CELTIC_STORAGE_MOUNT_PATH": "/srv/data",
    "CELTIC_STORAGE_VOLUME_NAME": "celtic",
    "CELTIC_ETC": "/etc/celtic",
    "CELTIC_SLEEP": "true",
}
API_VERSION = "v1.36.2"


def install_only(steps: tuple[str, ...] | None = None) -> str:
    """Bash that turns celtic_step into install-only (see INSTALL_STEPS...), limited to
    STEPS when given (group steps always run: they only call other steps)."""
    install = tuple(s for s in INSTALL_STEPS if steps is None or s in steps)
    configure = tuple(s for s in INSTALL_THEN_CONFIGURE_STEPS if steps is None or s in steps)
    return f"""
_celtic_install_only_step() {{
    local name=$1
    shift
    case " {' '.join(install + GROUP_STEPS)} " in
        *" $name "*)
            echo "clean-root: step $name" >&2
            "$@" || {{ echo "clean-root: step $name failed ($?)" >&2; exit 1; }}
            return 0
            ;;
    esac
    case " {' '.join(configure)} " in
        *" $name "*)
            echo "clean-root: step $name (its install only)" >&2
            (
                # The step ends with its first install, whichever installer it calls.
                for f in celtic_apt_install celtic_install; do
                    declare -F "$f" >/dev/null || continue
                    eval "$(declare -f "$f" | sed "1s/^$f/_celtic_real_$f/")"
                    eval "$f() {{ _celtic_real_$f \\\"\\$@\\\"; exit \\$?; }}"
                done
                "$@"
                echo "clean-root: step $name installed nothing" >&2
                exit 1
            ) || {{ echo "clean-root: step $name failed" >&2; exit 1; }}
            return 0
            ;;
    esac
    echo "clean-root: skipped step $name" >&2
}}
celtic_step() {{ _celtic_install_only_step "$@"; }}
kube_api_version() {{ echo {API_VERSION}; }}
mkdir -p "$CELTIC_ETC"
"""


INSTALL_ONLY = install_only()

ROLE_MAINS = {"master": "master_main", "proxy": "proxy_main", "minion": "minion_main",
              "storage": "storage_main"}


#: /etc/hosts as a Debian cloud image has it before cloud-init adds the node's own name
HOSTS = ("127.0.0.1 localhost\n"
         "::1 localhost ip6-localhost ip6-loopback\n"
         "ff02::1 ip6-allnodes\n"
         "ff02::2 ip6-allrouters\n")


class Root:
    """A fresh copy of a clean SUITE root under DIRECTORY (extracted from the cache)."""

    def __init__(self, suite: str, directory: Path):
        self.suite = suite
        self.path = Path(directory)
        self.debs = CACHE / "debs" / suite
        self.lists = CACHE / "lists" / suite
        self.stubs = stub_repos()
        self.install_seconds = 0.0

    def create(self) -> "Root":
        tarball = root_tarball(self.suite)
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-C", str(self.path), "--numeric-owner", "-xzf", str(tarball)],
                       check=True, timeout=BUILD_TIMEOUT)
        for cache in (self.debs, self.lists):
            (cache / "partial").mkdir(parents=True, exist_ok=True)
        # The node's own copy of the fragments, where cloud-init puts them.
        lib = self.path / NODE_LIB.lstrip("/")
        shutil.copytree(FRAGMENTS, lib, dirs_exist_ok=True)
        (self.path / STUB_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/resolv.conf", self.path / "etc/resolv.conf")
        # debootstrap writes no /etc/hosts; every Debian and Ubuntu cloud image has one
        # (cloud-init's manage_etc_hosts template) naming localhost, which glusterd's
        # self-heal and rebalance daemons connect to by name
        (self.path / "etc/hosts").write_text(HOSTS)
        policy = self.path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# celtic clean root: installs start no daemon\nexit 101\n")
        policy.chmod(0o755)
        return self

    def command(self, argv: list[str], netns: str | None = None,
                binds: tuple[tuple, ...] = ()) -> list[str]:
        """argv run as root inside this root, in a private mount namespace (and NETNS),
        with BINDS ((host path, path inside[, "ro"]), ...) mounted. The shell execs
        chroot, which execs argv: the returned command's PID is argv's."""
        mounts = [f"mount -t proc proc {self.path}/proc",
                  f"mount --rbind /dev {self.path}/dev",
                  f"mount --bind {self.debs} {self.path}/var/cache/apt/archives",
                  f"mount --bind {self.lists} {self.path}/var/lib/apt/lists",
                  f"mount --bind -o ro {self.stubs} {self.path}{STUB_DIR}"]
        for bind in binds:
            source, target = bind[0], bind[1]
            flags = "--bind -o ro" if len(bind) > 2 and bind[2] == "ro" else "--bind"
            (self.path / str(target).lstrip("/")).mkdir(parents=True, exist_ok=True)
            mounts.append(f"mount {flags} {source} {self.path}{target}")
        script = " && ".join(mounts) + ' && exec chroot "$0" "$@"'
        prefix = ["ip", "netns", "exec", netns] if netns else []
        return prefix + ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                         str(self.path)] + argv

    def boot_lines(self, same_path: tuple[Path, ...] = (), read_only: tuple[Path, ...] = ()
                   ) -> list[str]:
        """Shell lines for a node's PID 1 (in its own mount namespace): the root's /proc,
        /sys and /dev, the host directories the lab itself needs (SAME_PATH, READ_ONLY)
        visible at the same path inside, then `exec chroot`: what follows the lines runs
        in the root."""
        lines = [f"mount -t proc proc {self.path}/proc",
                 f"mount -t sysfs sysfs {self.path}/sys",
                 f"mount --rbind /dev {self.path}/dev"]
        for path in same_path + read_only:
            (self.path / str(path).lstrip("/")).mkdir(parents=True, exist_ok=True)
            flags = "--bind -o ro" if path in read_only else "--bind"
            lines.append(f"mount {flags} {path} {self.path}{path}")
        return lines

    def run(self, script: str, timeout: float = RUN_TIMEOUT, env: dict[str, str] | None = None,
            role: str | None = None) -> subprocess.CompletedProcess:
        """Bash SCRIPT inside the root after node_prelude(ROLE); output captured."""
        environ = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "HOME": "/root", "LANG": "C.UTF-8", "CELTIC_LOG_FILE": "",
                   **(env or {})}
        # One at a time per suite: concurrent runs share the suite's apt lists and .debs,
        # and apt fails at once (no wait) on a lock another apt holds.
        with _locked(CACHE / "debs" / f"{self.suite}.lock"):
            return subprocess.run(self.command(["bash", "-c", node_prelude(role) + script]),
                                  env=environ, capture_output=True, text=True, timeout=timeout)

    def install_role(self, role: str, steps: tuple[str, ...] | None = None,
                     timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        """ROLE's main function with only its install steps (or only those of STEPS)."""
        if role not in ROLE_MAINS:
            raise ValueError(f"role must be one of {sorted(ROLE_MAINS)}, got {role!r}")
        return self.run(install_only(steps) + ROLE_MAINS[role] + "\n", env=NODE_ENV,
                        role=role, timeout=timeout)

    def has(self, program: str) -> bool:
        return self.run(f"command -v {program} >/dev/null").returncode == 0

    def stub_calls(self) -> list[str]:
        calls = self.path / STUB_CALLS.lstrip("/")
        return calls.read_text().splitlines() if calls.exists() else []


# ---------------------------------------------------------------------------------------
# the live labs' nodes

_LAB_ROOTS: dict[tuple, Root] = {}


def lab_root(roles: tuple[str, ...], suite: str = "bookworm",
             steps: tuple[str, ...] | None = None) -> Root:
    """One clean SUITE root per process with the install steps of ROLES (only those named
    in STEPS when given) run in it: the system the live labs' nodes run their daemons
    from (each node in its own namespaces, with its own state directories mounted over
    the root's). Removed at process exit."""
    key = (tuple(roles), suite, steps)
    if key not in _LAB_ROOTS:
        started = time.monotonic()
        base = CACHE / "labs"
        base.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{'-'.join(roles)}-{suite}-", dir=base))
        atexit.register(shutil.rmtree, directory, True)
        root = Root(suite, directory / "root").create()
        for role in roles:
            result = root.install_role(role, steps)
            if result.returncode != 0:
                raise RuntimeError(f"{role}'s install steps failed in a clean {suite} root "
                                   f"({result.returncode}):\n{result.stderr[-4000:]}")
        root.install_seconds = time.monotonic() - started
        _LAB_ROOTS[key] = root
    return _LAB_ROOTS[key]
