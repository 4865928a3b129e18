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

"""A live VIP lab: three master "nodes" in network + mount namespaces.

The nodes run what a celtic master runs for its API VIP, with the files the fragments
write: node/api_vip.sh and node/ha.sh are sourced and run inside each node, so
corosync.conf comes from templates/corosync.conf.tmpl, the pacemaker resources from the
pcs commands of ha_vip_setup, haproxy.cfg from templates/haproxy-api.cfg.tmpl. Those
files are the master's bundle as the installed driver packs it for Nova (node_bundle():
the wheel's copies, comments stripped), not the checkout's, so the corosync and
pacemaker settings under test are the ones a master receives. Only the
service manager is replaced (vip_lab_bin/systemctl: no systemd here), and pacemaker runs
HAProxy through the haproxy package's LSB init script instead of its systemd unit
(HA_SERVICE_CLASS=lsb, the one lab-only setting; see doc/vip-ha.md).

Layout (addresses exist only inside the namespaces this module creates):
    cvhub   a bridge cvbr0
    cvn1-3  masters, eth0 = 10.213.7.1-3/24, each with its own mount and UTS namespace
            (tmpfs /run and /dev/shm, per-node /etc/corosync, /var/lib/pacemaker, ...)
    cvc     the client, 10.213.7.50/24
    VIP     10.213.7.100; a stand-in apiserver (HTTPS /readyz) on every master's :6443

Every process is stopped by PID (the PIDs of each namespace, `ip netns pids`) and every
wait is bounded. The same module is the probe and the stand-in apiserver when run as a
script (`python3 vip_lab.py probe|apiserver ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.server
import io
import json
import lzma
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path

if __name__ != "__main__":
    # The harness side: the plumbing every lab shares (run, wait, stop by PID,
    # namespaces). The node-side commands (`python3 vip_lab.py apiserver ...`) run on a
    # node's own python3, without the driver's wheel, and need none of it.
    from magnum_celtic.lab.plumbing import destroy_netns, kill_pids  # noqa: F401
    from magnum_celtic.lab.plumbing import netns_list, netns_pids  # noqa: F401
    from magnum_celtic.lab.plumbing import sh, wait_until  # noqa: F401
    from magnum_celtic import templates

try:
    from tests.functional import rootfs
except ImportError:  # run as a script (probe, apiserver) or imported as a top-level module
    import rootfs  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]
LAB_BIN = Path(__file__).resolve().parent / "vip_lab_bin"
THIS = Path(__file__).resolve()

NET = "10.213.7"
PREFIX_LEN = 24
VIP = f"{NET}.100"
HUB = "cvhub"
BRIDGE = "cvbr0"
CLIENT = "cvc"
CLIENT_IP = f"{NET}.50"
NODES = (1, 2, 3)
API_PORT = 6443
HA_SECRET = "5c0f" * 16  # a lab-only ha-secret (64 hex chars, like the driver's)

# What the host runs: the lab's plumbing. corosync, pacemaker, pcs, HAProxy (and
# keepalived for the comparison) run from the nodes' clean Debian root (rootfs.py), put
# there by the master's own install steps.
TOOLS = ("ip", "unshare", "nsenter", "openssl")
SUITE = "bookworm"
# The master's install steps of what the lab runs (the API VIP, not Kubernetes).
ROOT_STEPS = ("base-packages", "api-haproxy-package", "ha-packages")

# keepalived, the comparison: VRRPv2, advert_int 1, priorities 100/99/98, preemptive
# (the configuration of reference/anchor-vip-failover.md). Not a celtic setting. A
# sub-second advert_int (the comparison at equal pause tolerance) needs VRRPv3, which
# counts it in centiseconds; VRRPv2 only takes whole seconds.
KEEPALIVED_ADVERT = 1.0
#: what the probe's --retry-reset retries once (a connection reset or closed early)
RETRIED_ERRORS = ("ConnectionResetError", "BrokenPipeError", "EOF")
KEEPALIVED_CONF = """global_defs {{
    router_id ka-n{index}
    vrrp_version {version}
    script_user root
    enable_script_security
}}

vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}/{prefix} dev eth0
    }}
}}
"""


def ns_name(index: int) -> str:
    return f"cvn{index}"


def node_ip(index: int) -> str:
    return f"{NET}.{index}"


def node_of(address: str | None) -> int | None:
    for index in NODES:
        if address == node_ip(index):
            return index
    return None


def missing_requirements() -> list[str]:
    """What this machine lacks to run the lab (empty when it can)."""
    missing = rootfs.missing_requirements()
    for tool in TOOLS:
        if shutil.which(tool) is None:
            missing.append(tool)
    return missing


def lab_namespaces() -> list[str]:
    ours = {HUB, CLIENT} | {ns_name(i) for i in NODES}
    return [n for n in netns_list() if n in ours]


def destroy_namespaces() -> None:
    """Stop every process in the lab's namespaces by PID, then delete the namespaces."""
    destroy_netns(lab_namespaces())


class Lab:
    """The namespaces, the per-node directories and what runs in them."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.anchors: dict[int, int] = {}
        self.keep: dict[int, set[int]] = {}
        self.started: list[subprocess.Popen] = []

    # -- life cycle -----------------------------------------------------------------

    def __enter__(self) -> "Lab":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        # The nodes' system: a clean root with the master's install steps run in it.
        self.root = rootfs.lab_root(("master",), SUITE, ROOT_STEPS)
        destroy_namespaces()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.fragments = node_bundle(self.workdir / "fragments")
        self._network()
        self._certificates()
        for index in NODES:
            self._node(index)

    def down(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                kill_pids([proc.pid], grace=1)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.started.clear()
        destroy_namespaces()
        self.anchors.clear()
        self.keep.clear()

    def _network(self) -> None:
        sh(["ip", "netns", "add", HUB])
        sh(["ip", "-n", HUB, "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "-n", HUB, "link", "set", BRIDGE, "up"])
        members = [(ns_name(i), f"cvp{i}", node_ip(i)) for i in NODES]
        members.append((CLIENT, "cvpc", CLIENT_IP))
        for ns, port, address in members:
            sh(["ip", "netns", "add", ns])
            for key in ("all", "default"):
                sh(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    f"net.ipv6.conf.{key}.disable_ipv6=1"])
            sh(["ip", "link", "add", "eth0", "netns", ns, "type", "veth",
                "peer", "name", port, "netns", HUB])
            sh(["ip", "-n", HUB, "link", "set", port, "master", BRIDGE, "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _certificates(self) -> None:
        pki = self.workdir / "pki"
        pki.mkdir(exist_ok=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        sh(["openssl", "req", "-x509", *ec, "-keyout", str(pki / "ca.key"), "-out",
            str(pki / "ca.crt"), "-days", "2", "-subj", "/CN=celtic-lab-ca"])
        for index in NODES:
            ext = pki / f"n{index}.ext"
            ext.write_text(f"subjectAltName=IP:{node_ip(index)},IP:{VIP}\n")
            sh(["openssl", "req", *ec, "-keyout", str(pki / f"n{index}.key"), "-out",
                str(pki / f"n{index}.csr"), "-subj", "/CN=kube-apiserver"])
            sh(["openssl", "x509", "-req", "-in", str(pki / f"n{index}.csr"), "-CA",
                str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial",
                "-out", str(pki / f"n{index}.crt"), "-days", "2", "-extfile", str(ext)])

    # Directories a node keeps for itself, bind-mounted over the system paths.
    NODE_MOUNTS = (
        ("etc-corosync", "/etc/corosync", "root:root", "755"),
        ("var-lib-corosync", "/var/lib/corosync", "root:root", "700"),
        ("var-log-corosync", "/var/log/corosync", "root:root", "755"),
        ("var-lib-pacemaker", "/var/lib/pacemaker", "hacluster:haclient", "750"),
        ("var-log-pacemaker", "/var/log/pacemaker", "hacluster:haclient", "770"),
        ("etc-haproxy", "/etc/haproxy", "root:root", "755"),
    )

    def node_dir(self, index: int) -> Path:
        return self.workdir / f"n{index}"

    def _node(self, index: int) -> None:
        root = self.node_dir(index)
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        # The node's PID 1 mounts the root's /proc, /sys and /dev, makes the lab's own
        # files (this repository, read-only, and the lab's directory) visible inside at
        # the same paths, and chroots: from there on everything runs from the root.
        boot = ["set -e"]
        boot += self.root.boot_lines(same_path=(self.workdir,), read_only=(REPO,))
        boot.append(f'exec chroot {self.root.path} /bin/bash -c "$1"')
        lines = ["set -e", f"hostname lab-master-{index}",
                 "mount -t tmpfs -o mode=755 tmpfs /run",
                 "mount -t tmpfs -o mode=1777 tmpfs /dev/shm"]
        for name, target, owner, mode in self.NODE_MOUNTS:
            path = root / name
            path.mkdir()
            lines.append(f"chown {owner} {path} && chmod {mode} {path}")
            lines.append(f"mount --bind {path} {target}")
        for sub in ("cib", "pengine", "blackbox", "cores"):
            lines.append(f"install -d -o hacluster -g haclient -m 750 /var/lib/pacemaker/{sub}")
        lines.append("install -d -o hacluster -g haclient -m 750 /run/crm")
        lines.append("echo ready")
        # This shell is the node's PID 1 (its own PID namespace): like a node's init it
        # reaps orphaned daemons at once, so a killed HAProxy is seen dead right away.
        # It holds the node's namespaces and is stopped by PID in down().
        lines.append("exec </dev/null >/dev/null 2>&1")
        lines.append("for _ in $(seq 1 48); do sleep 3600 & wait; done")
        etc = root / "celtic-etc"
        (etc / "secrets").mkdir(parents=True)
        (etc / "pki").mkdir()
        (etc / "secrets" / "ha-secret").write_text(HA_SECRET + "\n")
        os.chmod(etc / "secrets" / "ha-secret", 0o600)
        shutil.copy(self.workdir / "pki" / "ca.crt", etc / "pki" / "ca.crt")
        (etc / "params.json").write_text(json.dumps({
            "role": "master", "cluster_name": "lab", "api_vip": VIP, "api_port": API_PORT,
            "master_addresses": [node_ip(i) for i in NODES],
        }))
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns_name(index), "unshare", "-m", "-u", "-p", "--fork",
             "--kill-child", "--mount-proc", "--propagation", "private", "--",
             "bash", "-c", "\n".join(boot), "node", "\n".join(lines)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.started.append(proc)
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"node {index} did not start: {line} {proc.stderr.read()}")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        self.anchors[index] = int(children[0])
        self.keep[index] = {proc.pid, int(children[0])}

    # -- running things in a node ---------------------------------------------------------

    def enter(self, index: int) -> list[str]:
        # -r -w: the node's root and working directory, i.e. inside its clean root.
        return ["nsenter", "-t", str(self.anchors[index]), "-p", "-m", "-n", "-u", "-r", "-w",
                "--"]

    def node_env(self, index: int) -> dict[str, str]:
        root = self.node_dir(index)
        return {
            "PATH": f"{LAB_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8",
            "LAB_NODE_DIR": str(root),
            "CELTIC_LIB_DIR": str(self.fragments),
            "CELTIC_ETC": str(root / "celtic-etc"),
            "CELTIC_STATE_DIR": str(root / "celtic-state"),
            "CELTIC_LOG_FILE": str(root / "celtic.log"),
            "CELTIC_NODE_NAME": f"lab-master-{index}",
            "CELTIC_NODE_IP": node_ip(index),
            "HA_SERVICE_CLASS": "lsb",
            "HA_SYSCTL_FILE": str(root / "sysctl-celtic-ha.conf"),
            "HA_PCSD_DEFAULTS": str(root / "pcsd-defaults"),
            "HA_POLICY_RC": str(root / "policy-rc.d"),
            "HA_WORK_DIR": str(root / "ha-work"),
            "HA_QUORUM_TIMEOUT": "120",
            "HA_DC_TIMEOUT": "120",
        }

    def fragment(self, index: int, body: str) -> subprocess.Popen:
        """Run fragment functions in a node: the library, ha.sh and api_vip.sh sourced,
        the node's params loaded, BODY run under celtic_run (named steps, failure reason).
        """
        script = ('source "$CELTIC_LIB_DIR/lib/celtic.sh"\n'
                  'source "$CELTIC_LIB_DIR/node/ha.sh"\n'
                  'source "$CELTIC_LIB_DIR/node/api_vip.sh"\n'
                  'set -euo pipefail\nCELTIC_ROLE=master\nceltic_load_params\n'
                  f'celtic_run {body}\n')
        log = open(self.node_dir(index) / "fragment.out", "a")
        proc = subprocess.Popen(self.enter(index) + ["bash", "-c", script],
                                env=self.node_env(index), stdout=log, stderr=log,
                                start_new_session=True)
        self.started.append(proc)
        return proc

    def run_fragments(self, body: str, timeout: float) -> None:
        procs = {i: self.fragment(i, body) for i in NODES}
        deadline = time.monotonic() + timeout
        for index, proc in procs.items():
            try:
                rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"node {index}: '{body}' still running after {timeout}s")
            if rc != 0:
                tail = (self.node_dir(index) / "fragment.out").read_text()[-3000:]
                raise RuntimeError(f"node {index}: '{body}' failed ({rc}):\n{tail}")

    def node_sh(self, index: int, cmd: list[str], timeout: float = 30,
                check: bool = True) -> subprocess.CompletedProcess:
        return sh(self.enter(index) + cmd, timeout=timeout, check=check,
                  env=self.node_env(index))

    def spawn(self, index: int, cmd: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.node_dir(index) / log_name, "a")
        proc = subprocess.Popen(self.enter(index) + cmd, env=self.node_env(index),
                                stdout=log, stderr=log, start_new_session=True)
        self.started.append(proc)
        return proc

    # -- stacks -------------------------------------------------------------------------

    def start_apiservers(self, nodes: tuple[int, ...] = NODES) -> None:
        pki = self.workdir / "pki"
        for index in nodes:
            self.spawn(index, ["python3", str(THIS), "apiserver", "--bind", node_ip(index),
                               "--port", str(API_PORT), "--name", f"master-{index - 1}",
                               "--cert", str(pki / f"n{index}.crt"),
                               "--key", str(pki / f"n{index}.key")], "apiserver.out")
        for index in nodes:
            wait_until(lambda i=index: self.node_sh(
                i, ["bash", "-c", f"exec 3<>/dev/tcp/{node_ip(i)}/{API_PORT}"],
                check=False).returncode == 0, 60, 0.2, f"apiserver on node {index}")

    def start_celtic(self, timeout: float = 240) -> None:
        """The masters' API VIP exactly as master.sh sets it up (api_vip_setup)."""
        self.start_apiservers()
        self.run_fragments("api_vip_setup", timeout)

    def start_keepalived(self, advert: float = KEEPALIVED_ADVERT) -> None:
        """The comparison stack: the same HAProxy and apiservers, keepalived moving the
        VIP instead of pacemaker. HAProxy's config and the nonlocal bind come from the
        same fragment functions; HAProxy starts through the same init script. keepalived
        is no celtic package: the comparison installs it into the nodes' root itself.
        ADVERT is its advert_int in seconds (VRRPv3 when it is not a whole number)."""
        install_comparison(self.root)
        self.start_apiservers()
        self.run_fragments(
            f'ha_nonlocal_bind && api_haproxy_config {VIP} {API_PORT} '
            + " ".join(node_ip(i) for i in NODES), 60)
        for index in NODES:
            self.node_sh(index, ["/etc/init.d/haproxy", "start"])
            conf = self.node_dir(index) / "keepalived.conf"
            conf.write_text(keepalived_conf(index, advert))
            self.spawn(index, ["keepalived", "-n", "-l", "-D", "-f", str(conf),
                               "-p", "/run/keepalived.pid", "-r", "/run/vrrp.pid"],
                       "keepalived.out")

    def run_fragment(self, index: int, body: str, timeout: float) -> None:
        """BODY (fragment functions) in one node, to the end; its failure raised."""
        proc = self.fragment(index, body)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"node {index}: '{body}' still running after {timeout}s")
        if rc != 0:
            tail = (self.node_dir(index) / "fragment.out").read_text()[-3000:]
            raise RuntimeError(f"node {index}: '{body}' failed ({rc}):\n{tail}")

    def replace(self, index: int, timeout: float = 240) -> dict[str, float]:
        """Replace master INDEX the way an upgrade replaces a master's server, with the
        fragments' own steps: ha_member_standby (run on another member: pacemaker moves
        the VIP off it, if it holds it, and stops its HAProxy), its apiserver stopped,
        the server deleted (every process killed, its disk gone), a new server on the
        same address booted from the clean root (api_vip_setup: it rejoins corosync and
        pacemaker under the same name, still in standby), its apiserver started, then
        ha_member_active. Returns the seconds each phase took."""
        name = f"master-{index - 1}"
        other = next(i for i in NODES if i != index)
        times: dict[str, float] = {}
        t0 = time.monotonic()
        self.run_fragment(other, f"ha_member_standby {name}", timeout)
        times["standby"] = time.monotonic() - t0
        t1 = time.monotonic()
        for pid in netns_pids(ns_name(index)):
            if pid not in self.keep[index] and _is_apiserver(pid):
                os.kill(pid, signal.SIGTERM)
        # drained: the other members' HAProxy sends nothing more to it (a connection to
        # a server that is gone would wait for HAProxy's connect timeout)
        for member in NODES:
            if member != index:
                wait_until(lambda m=member: self.backend_down(m, name), 30, 0.2,
                           f"master {member}'s HAProxy marking {name} down")
        self.crash(index)
        kill_pids(sorted(self.keep[index]), grace=1)
        sh(["ip", "-n", ns_name(index), "link", "set", "eth0", "up"])
        self._node(index)
        self.start_apiservers((index,))
        self.run_fragment(index, "api_vip_setup", timeout)
        times["rebuild"] = time.monotonic() - t1
        t2 = time.monotonic()
        self.run_fragment(other, f"ha_member_active {name}", timeout)
        wait_until(lambda: self.cluster_settled(other), timeout, 0.5,
                   f"the cluster settled with {name} back")
        times["active"] = time.monotonic() - t2
        return times

    # -- observing ------------------------------------------------------------------------

    def backend_down(self, index: int, server: str) -> bool:
        """Whether master INDEX's HAProxy has marked apiserver SERVER down (its stats
        socket, read with the node's python3)."""
        script = ("import socket; s = socket.socket(socket.AF_UNIX); "
                  "s.connect('/run/haproxy/admin.sock'); s.sendall(b'show stat\\n'); "
                  "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())")
        out = self.node_sh(index, ["python3", "-c", script], check=False).stdout
        for line in out.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "kube-apiservers" and fields[1] == server:
                return fields[17].startswith("DOWN") or fields[17] == "MAINT"
        return False

    def vip_holders(self, nodes: tuple[int, ...] = NODES) -> list[int]:
        holders = []
        for index in nodes:
            out = sh(["ip", "-n", ns_name(index), "-4", "-o", "addr", "show", "dev", "eth0"],
                     check=False).stdout
            if f" {VIP}/" in out:
                holders.append(index)
        return holders

    def wait_vip(self, nodes: tuple[int, ...] = NODES, timeout: float = 120) -> int:
        holders = wait_until(lambda: (lambda h: h if len(h) == 1 else None)(
            self.vip_holders(nodes)), timeout, 0.2, "the VIP on exactly one node")
        return holders[0]

    def crm_mon(self, index: int) -> str:
        return self.node_sh(index, ["crm_mon", "-1", "--output-as=xml"], check=False).stdout

    def dc(self, index: int) -> int | None:
        match = re.search(r'<current_dc present="true"[^>]* name="master-(\d+)"',
                          self.crm_mon(index))
        return int(match.group(1)) + 1 if match else None

    def cluster_settled(self, index: int) -> bool:
        """All three nodes online, every clone instance and the VIP started."""
        xml = self.crm_mon(index)
        online = len(re.findall(r'<node name="master-\d+"[^>]* online="true"', xml))
        started = len(re.findall(r'resource id="api-haproxy"[^>]* role="Started"', xml))
        vip = re.search(r'resource id="api-vip"[^>]* role="Started"', xml)
        return online == 3 and started == 3 and bool(vip)

    def rendered(self, index: int, name: str) -> str:
        paths = {"corosync.conf": "etc-corosync/corosync.conf",
                 "haproxy.cfg": "etc-haproxy/haproxy.cfg"}
        return (self.node_dir(index) / paths[name]).read_text()

    def cmap(self, index: int, key: str) -> str:
        out = self.node_sh(index, ["corosync-cmapctl", "-g", key]).stdout
        return out.rsplit("=", 1)[-1].strip()

    def live_cib(self, index: int) -> str:
        return self.node_sh(index, ["cibadmin", "-Q"]).stdout

    def log_size(self, index: int, which: str) -> int:
        path = self.node_dir(index) / which
        return path.stat().st_size if path.exists() else 0

    def log_since(self, index: int, which: str, offset: int) -> str:
        path = self.node_dir(index) / which
        if not path.exists():
            return ""
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read()

    # -- breaking things ------------------------------------------------------------------

    def crash(self, index: int) -> float:
        """Kill every process of the node's stack (SIGKILL, by PID), then cut its link.
        Returns the time of the crash (time.monotonic())."""
        t0 = time.monotonic()
        for _ in range(3):
            pids = [p for p in netns_pids(ns_name(index)) if p not in self.keep[index]]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        sh(["ip", "-n", ns_name(index), "link", "set", "eth0", "down"])
        return t0

    def freeze(self, index: int, seconds: float) -> tuple[float, float]:
        """Pause the node as a live migration pauses a guest: SIGSTOP every process of
        its stack (by PID, also those forked while stopping), SIGCONT after SECONDS.
        Returns (paused, resumed) in time.monotonic()."""
        stopped: list[int] = []
        t0 = time.monotonic()
        try:
            for _ in range(3):
                pids = [p for p in netns_pids(ns_name(index))
                        if p not in self.keep[index] and p not in stopped]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                        stopped.append(pid)
                    except ProcessLookupError:
                        pass
            time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        return t0, time.monotonic()

    def watch_addresses(self, index: int, name: str) -> tuple[subprocess.Popen, Path]:
        """`ip monitor address` in node INDEX's network namespace (netlink events: an
        address added and removed between two polls is still seen)."""
        out = self.workdir / f"addresses-{name}-n{index}.log"
        log = open(out, "w")
        proc = subprocess.Popen(["ip", "-n", ns_name(index), "monitor", "address"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc, out

    def kill_named(self, index: int, name: str) -> float:
        """SIGKILL the node's processes called NAME (its HAProxy, its apiserver)."""
        pids = [p for p in netns_pids(ns_name(index)) if _comm(p) == name
                or (name == "apiserver" and _is_apiserver(p))]
        if not pids:
            raise RuntimeError(f"no {name} process on node {index}")
        t0 = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return t0

    # -- load -------------------------------------------------------------------------------

    def load(self, seconds: float, burners: int) -> list[subprocess.Popen]:
        """Bounded load: CPU burners (outside the nodes, like a noisy neighbour) and TCP
        traffic over each node's loopback. Each process ends by itself after SECONDS."""
        procs = []
        for _ in range(burners):
            procs.append(subprocess.Popen(
                [sys.executable, str(THIS), "burn", "--seconds", str(seconds)],
                start_new_session=True))
        self.started.extend(procs)
        for index in NODES:  # spawn() keeps track of these itself
            procs.append(self.spawn(index, ["python3", str(THIS), "loopback",
                                            "--seconds", str(seconds)], "loopback.out"))
        return procs

    def probe(self, duration: float, name: str, timeout: float = 1.0,
              retry_reset: bool = False) -> tuple[subprocess.Popen, Path]:
        out = self.workdir / f"probe-{name}.jsonl"
        if out.exists():
            out.unlink()
        proc = subprocess.Popen(
            ["ip", "netns", "exec", CLIENT, sys.executable, str(THIS), "probe",
             "--host", VIP, "--port", str(API_PORT), "--duration", str(duration),
             "--timeout", str(timeout), "--out", str(out)]
            + (["--retry-reset"] if retry_reset else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.started.append(proc)
        return proc, out


def node_bundle(directory: Path, role: str = "master") -> Path:
    """Unpack ROLE's fragment bundle, as the installed driver sends it to the nodes
    (magnum_celtic.templates: the wheel's data files), into DIRECTORY."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    packed = templates.TemplateSet(templates.default_dir()).bundle(role)
    raw = lzma.decompress(base64.b64decode(packed))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def keepalived_conf(index: int, advert: float = KEEPALIVED_ADVERT) -> str:
    """keepalived.conf of node INDEX with advert_int ADVERT seconds."""
    whole = float(advert).is_integer()
    return KEEPALIVED_CONF.format(
        index=index, state="MASTER" if index == 1 else "BACKUP", priority=101 - index,
        vip=VIP, prefix=PREFIX_LEN, version=2 if whole else 3,
        advert=f"{int(advert)}" if whole else f"{advert:.2f}")


def install_comparison(root: "rootfs.Root") -> None:
    """keepalived in the nodes' root, for the comparison only (no fragment installs it)."""
    result = root.run("dpkg-query -W keepalived >/dev/null 2>&1 || "
                      "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                      "--no-install-recommends keepalived", timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"cannot install keepalived in the lab root:\n{result.stderr[-3000:]}")


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _is_apiserver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"\0apiserver\0" in f.read()
    except OSError:
        return False


def stop_probe(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill_pids([proc.pid], grace=0)
        proc.wait(timeout=5)


def read_probe(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def first_answer_after(records: list[dict], t0: float, not_via: int) -> float | None:
    """Seconds from t0 to the first answer through a node other than `not_via`."""
    ends = [r["end"] for r in records
            if r["ok"] and r["end"] > t0 and node_of(r.get("via")) not in (None, not_via)]
    return min(ends) - t0 if ends else None


def recovered_after(records: list[dict], t0: float) -> tuple[float, int]:
    """(seconds from t0 until every probe succeeds again, failed probes after t0). With
    no failure: the time to the first answer after t0."""
    after = sorted((r for r in records if r["start"] >= t0), key=lambda r: r["start"])
    failed = [r for r in after if not r["ok"]]
    if not failed:
        ok = [r["end"] for r in after if r["ok"]]
        return (min(ok) - t0 if ok else float("nan")), 0
    last = max(r["start"] for r in failed)
    ok = [r["end"] for r in after if r["ok"] and r["start"] > last]
    return (min(ok) - t0 if ok else float("nan")), len(failed)


# ---------------------------------------------------------------------------------------
# measurements shared by the live test and the benchmark


def measure_crash(lab: Lab, rng: random.Random, window: float = 30) -> dict:
    """Crash the VIP holder (stack killed + link cut) and time the failover: from the
    crash until a client connecting every 50 ms is answered through another node."""
    holder = lab.wait_vip()
    probe, out = lab.probe(window + 15, f"crash-{time.monotonic_ns()}")
    wait_until(lambda: any(r["ok"] for r in read_probe(out)), 15, 0.1,
               "the probe's first answer")
    time.sleep(1 + rng.random())  # a random phase against timers and adverts
    t0 = lab.crash(holder)
    survivors = tuple(i for i in NODES if i != holder)
    deadline = t0 + window
    seconds = vip_seconds = None
    while time.monotonic() < deadline:
        if vip_seconds is None and lab.vip_holders(survivors):
            vip_seconds = time.monotonic() - t0  # when the address is on a survivor
        seconds = first_answer_after(read_probe(out), t0, holder)
        if seconds is not None:
            break
        time.sleep(0.05)
    time.sleep(1)
    stop_probe(probe)
    new_holder = lab.vip_holders(survivors)
    return {"victim": holder, "seconds": seconds, "vip_seconds": vip_seconds,
            "new_holder": new_holder, "records": len(read_probe(out))}


def vip_added(lines: str) -> bool:
    """Whether `ip monitor address` output shows the VIP added (not only removed)."""
    return any(f" {VIP}/" in line and not line.startswith("Deleted")
               for line in lines.splitlines())


def measure_freeze(lab: Lab, seconds: float, rng: random.Random, after: float = 4.0) -> dict:
    """Pause the VIP holder for SECONDS (every process SIGSTOPped, then SIGCONT), after
    a random phase against timers and adverts, and watch the other nodes' addresses
    from before the pause until AFTER seconds past its end: did the VIP move?"""
    holder = lab.wait_vip()
    others = tuple(i for i in NODES if i != holder)
    tag = f"freeze-{time.monotonic_ns()}"
    watches = [lab.watch_addresses(i, tag) for i in others]
    sizes = {i: lab.log_size(i, "var-log-corosync/corosync.log") for i in others}
    try:
        time.sleep(0.5 + rng.random())  # the watches are listening; a random phase
        t0, t1 = lab.freeze(holder, seconds)
        time.sleep(after)
    finally:
        for proc, _ in watches:
            kill_pids([proc.pid], grace=1)
            proc.wait(timeout=5)
    moved = [i for i, (_, out) in zip(others, watches) if vip_added(out.read_text())]
    memberships = set()
    for index in others:
        memberships |= set(re.findall(
            r"A new membership \(([0-9a-f.]+)\)",
            lab.log_since(index, "var-log-corosync/corosync.log", sizes[index])))
    return {"holder": holder, "seconds": seconds, "paused": t1 - t0, "moved_to": moved,
            "moved": bool(moved), "memberships": len(memberships)}


# ---------------------------------------------------------------------------------------
# the probe and the stand-in apiserver (run inside the namespaces as scripts)


def _probe_main(args: argparse.Namespace) -> int:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = open(args.out, "a", buffering=1)
    stop = asyncio.Event()

    async def once(start: float) -> None:
        record = await attempt(start)
        if args.retry_reset and record.get("error") in RETRIED_ERRORS:
            # client-go retries a GET whose connection was reset or closed before the
            # answer (rest.Request, IsConnectionReset / IsProbableEOF)
            record = dict(await attempt(time.monotonic()), start=start,
                          retried=record["error"])
        out.write(json.dumps(record) + "\n")

    async def attempt(start: float) -> dict:
        record = {"start": start, "ok": False, "via": None, "backend": None}
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.host, args.port, ssl=ctx), args.timeout)
            try:
                writer.write(b"GET /readyz HTTP/1.0\r\nHost: api\r\n\r\n")
                data = await asyncio.wait_for(reader.read(4096), args.timeout)
            finally:
                writer.close()
            text = data.decode(errors="replace")
            if not data:
                record["error"] = "EOF"
            record["ok"] = text.startswith("HTTP/1.0 200") or text.startswith("HTTP/1.1 200")
            for key, field in (("X-Lab-Peer", "via"), ("X-Lab-Node", "backend")):
                match = re.search(rf"^{key}: (\S+)", text, re.M | re.I)
                if match:
                    record[field] = match.group(1)
        except Exception as exc:  # every failure is a data point
            record["error"] = type(exc).__name__
        record["end"] = time.monotonic()
        return record

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        deadline = time.monotonic() + args.duration
        tasks = set()
        while time.monotonic() < deadline and not stop.is_set():
            task = asyncio.ensure_future(once(time.monotonic()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            try:
                await asyncio.wait_for(stop.wait(), args.interval)
            except asyncio.TimeoutError:
                pass
        if tasks:
            await asyncio.wait(tasks, timeout=args.timeout + 1)

    asyncio.run(run())
    return 0


def _apiserver_main(args: argparse.Namespace) -> int:
    name = args.name

    class Handler(http.server.BaseHTTPRequestHandler):
        def setup(self) -> None:
            self.request.do_handshake()  # in the request's thread, not the accept loop
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = b"ok" if self.path.startswith("/readyz") else b"not found"
            self.send_response(200 if body == b"ok" else 404)
            self.send_header("X-Lab-Node", name)
            self.send_header("X-Lab-Peer", self.client_address[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

        def get_request(self):
            conn, addr = self.socket.accept()
            conn.settimeout(5)
            return ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request, client_address) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server = Server((args.bind, args.port), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever(poll_interval=0.5)
    return 0


def _burn_main(args: argparse.Namespace) -> int:
    """Keep one core busy for SECONDS (a bounded loop)."""
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        sum(range(10000))
    return 0


def _loopback_main(args: argparse.Namespace) -> int:
    """TCP traffic over lo for SECONDS: a sink and a sender in one process."""
    import threading
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    deadline = time.monotonic() + args.seconds

    def sink() -> None:
        conn, _ = server.accept()
        conn.settimeout(2)
        try:
            while time.monotonic() < deadline and conn.recv(1 << 16):
                pass
        except OSError:
            pass

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    client = socket.create_connection(server.getsockname())
    chunk = b"x" * (1 << 16)
    while time.monotonic() < deadline:
        client.sendall(chunk)
    client.close()
    thread.join(timeout=3)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("burn", "keep one core busy"), ("loopback", "TCP over lo")):
        load = sub.add_parser(name, help=text)
        load.add_argument("--seconds", type=float, required=True)
    probe = sub.add_parser("probe", help="connect to HOST:PORT every INTERVAL seconds")
    probe.add_argument("--host", required=True)
    probe.add_argument("--port", type=int, required=True)
    probe.add_argument("--interval", type=float, default=0.05)
    probe.add_argument("--timeout", type=float, default=1.0)
    probe.add_argument("--retry-reset", action="store_true",
                       help="retry a request whose connection was reset, once, as "
                            "client-go retries a GET")
    probe.add_argument("--duration", type=float, required=True)
    probe.add_argument("--out", required=True)
    api = sub.add_parser("apiserver", help="a stand-in apiserver answering /readyz")
    api.add_argument("--bind", required=True)
    api.add_argument("--port", type=int, required=True)
    api.add_argument("--name", required=True)
    api.add_argument("--cert", required=True)
    api.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    commands = {"probe": _probe_main, "apiserver": _apiserver_main, "burn": _burn_main,
                "loopback": _loopback_main}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
