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

"""Each role's install steps in a clean Debian root, as a node boots.

A fresh ``debootstrap --variant=minbase`` root of Debian 12 (bookworm) or 13 (trixie)
per test (tests/functional/rootfs.py), the fragments copied where cloud-init puts them,
and the role's main function (master_main, proxy_main, minion_main, storage_main) run
inside it with only its install steps enabled: every other step (keys, configs, daemons,
waits, kubeadm) is skipped by name, and the steps that install a package and then go on
(the nftables, glusterd and GlusterFS-client steps) stop right after their install. So
the packages come from the fragments' own calls, with the fragments' own names, and
nothing else; then the test looks for what the rest of the node's fragment runs.

pkgs.k8s.io and download.docker.com are local stub repositories (rootfs.stub_repos):
same paths, same package names, signed indexes; their programs only record calls.
"""

from __future__ import annotations

import shlex

import pytest

try:
    import rootfs  # tests/functional on sys.path, as pytest puts it for this directory
except ImportError:
    from tests.functional import rootfs

pytestmark = pytest.mark.skipif(bool(rootfs.missing_requirements()),
                                reason="clean roots need " + ", ".join(
                                    rootfs.missing_requirements()))

HA_TOOLS = ("corosync", "pacemakerd", "crm_mon", "cibadmin", "crm_verify", "crm_resource",
            "crm_attribute", "pcs", "corosync-cmapctl")
IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"
KUBE_TOOLS = ("kubeadm", "kubelet", "kubectl", "crictl", "containerd", "nft", "modprobe")
BASE_TOOLS = ("curl", "gpg", "python3", "ip", "openssl", "sysctl")

# What each role's fragment runs after its install steps, found in its own source.
ROLES = {
    "master": (BASE_TOOLS + HA_TOOLS + KUBE_TOOLS + ("haproxy",), (IPADDR2,)),
    "proxy": (BASE_TOOLS + HA_TOOLS + ("haproxy",), (IPADDR2,)),
    "minion": (BASE_TOOLS + KUBE_TOOLS + ("mount.glusterfs", "chattr"), ()),
    "storage": (BASE_TOOLS + ("glusterd", "gluster", "mkfs.xfs"), ()),
}


def _missing(root: rootfs.Root, programs, files) -> list[str]:
    checks = " ".join(shlex.quote(p) for p in programs)
    paths = " ".join(shlex.quote(f) for f in files)
    result = root.run(f"""
for p in {checks}; do command -v "$p" >/dev/null || echo "$p"; done
for f in {paths}; do [[ -e "$f" ]] || echo "$f"; done
""")
    return result.stdout.split()


def _report(result) -> str:
    return f"exit {result.returncode}\n--- stderr (tail)\n{result.stderr[-6000:]}"


@pytest.fixture
def clean_root(tmp_path):
    def make(suite):
        return rootfs.Root(suite, tmp_path / f"root-{suite}").create()
    return make


def test_clean_root_has_none_of_the_node_tools(clean_root):
    # The premise: a minbase root carries nothing the fragments install.
    root = clean_root("bookworm")
    programs = HA_TOOLS + ("kubeadm", "kubelet", "containerd", "nft", "haproxy", "glusterd",
                           "curl", "python3")
    assert set(_missing(root, programs, (IPADDR2,))) == set(programs + (IPADDR2,))


@pytest.mark.parametrize("suite", sorted(rootfs.SUITES))
def test_clean_root_ha_install(clean_root, suite):
    # ha_cluster_setup's package step, alone, after the base packages every node gets:
    # afterwards the tools the rest of ha.sh runs must be there.
    root = clean_root(suite)
    result = root.run(rootfs.INSTALL_ONLY + """
common_base_packages
ha_cluster_setup master 10.0.0.1 10.0.0.2 10.0.0.3
""", env=rootfs.NODE_ENV)
    assert result.returncode == 0, _report(result)
    missing = _missing(root, HA_TOOLS, (IPADDR2,))
    assert missing == [], f"after the HA install step, missing: {missing}\n{_report(result)}"


@pytest.mark.parametrize("suite", sorted(rootfs.SUITES))
@pytest.mark.parametrize("role", sorted(ROLES))
def test_clean_root_role_install(clean_root, role, suite):
    programs, files = ROLES[role]
    root = clean_root(suite)
    result = root.install_role(role)
    assert result.returncode == 0, _report(result)
    missing = _missing(root, programs, files)
    assert missing == [], f"{role} on {suite}: missing {missing}\n{_report(result)}"
    if "kubeadm" in programs:
        # Kubernetes came from the (stub) pkgs.k8s.io at the version asked for, held.
        versions = root.run("dpkg-query -W -f='${Package} ${Version}\\n' kubeadm kubelet "
                            "kubectl; apt-mark showhold").stdout
        want = rootfs.API_VERSION.lstrip("v")
        assert f"kubeadm {want}-" in versions and "kubelet\n" in versions, versions


def test_clean_root_stub_repository_refuses_unknown_names(clean_root):
    # The stand-in pkgs.k8s.io fails for a name the real repository does not carry.
    root = clean_root("bookworm")
    result = root.run(rootfs.INSTALL_ONLY + """
common_base_packages
kube_apt_source kubernetes https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key \
    "deb [signed-by=@KEYRING@] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /"
apt-get update -q >/dev/null
apt-cache madison kubeadm
celtic_apt_install kubernetes-cni && echo INSTALLED
""", env=rootfs.NODE_ENV, role="master")
    assert "1.36.2-1.1" in result.stdout, _report(result)
    assert "INSTALLED" not in result.stdout
    # apt knows the name only from kubeadm's Depends: no repository offers it.
    assert "Package 'kubernetes-cni' has no installation candidate" in result.stderr, \
        _report(result)
