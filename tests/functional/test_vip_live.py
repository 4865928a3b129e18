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

"""Live: the masters' API VIP with real corosync, pacemaker and HAProxy.

Three master "nodes" in network + mount + PID namespaces run node/api_vip.sh and
node/ha.sh themselves (vip_lab.py), so the corosync.conf, the pcs resources and the
haproxy.cfg under test are the ones the fragments deploy. Root only; 10.213.7.0/24
exists only inside the namespaces the lab creates, and every process is stopped by PID.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

import vip_lab
from vip_lab import NODES, VIP, Lab, wait_until

pytestmark = pytest.mark.skipif(
    bool(vip_lab.missing_requirements()),
    reason=f"the live VIP lab needs {', '.join(vip_lab.missing_requirements())}")

FAILOVER_BOUND = 10.0  # seconds; the benchmark holds the real figure (tests/bench/vip.py)
PAUSE = 1.0  # seconds the VIP holder is paused (SIGSTOP ... SIGCONT) without losing the VIP


@pytest.fixture
def masters(tmp_path: Path):
    """Three master nodes (the conftest's `lab` is the control-plane harness)."""
    with Lab(tmp_path / "masters") as running:
        yield running


def _render_corosync_conf(directory: Path, *members: str) -> Path:
    """corosync.conf and authkey as ha_cluster_setup writes them, into DIRECTORY."""
    fragments = vip_lab.node_bundle(directory / "fragments")
    env = dict(os.environ, CELTIC_LIB_DIR=str(fragments),
               CELTIC_ETC=str(directory / "etc"), CELTIC_STATE_DIR=str(directory / "state"),
               CELTIC_LOG_FILE=str(directory / "celtic.log"),
               HA_COROSYNC_DIR=str(directory / "corosync"))
    (directory / "etc" / "secrets").mkdir(parents=True)
    (directory / "etc" / "secrets" / "ha-secret").write_text(vip_lab.HA_SECRET)
    script = ('source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"\n'
              'set -euo pipefail\n'
              'ha_write_corosync_conf master "$@"\n'
              'key=$(mktemp); ha_derive authkey "$CELTIC_ETC/secrets/ha-secret" >"$key"\n'
              'install -m 0400 "$key" "$HA_COROSYNC_DIR/authkey"; rm -f "$key"\n')
    subprocess.run(["bash", "-c", script, "render", *members], env=env, check=True,
                   timeout=30, capture_output=True)
    return directory / "corosync" / "corosync.conf"


@pytest.mark.parametrize("members", [3, 2, 1])
def test_rendered_corosync_conf_passes_corosync_t(tmp_path: Path, members: int) -> None:
    addresses = [vip_lab.node_ip(i) for i in range(1, members + 1)]
    conf = _render_corosync_conf(tmp_path, *addresses)
    ns = "cvt"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    try:
        vip_lab.sh(["ip", "netns", "add", ns])
        vip_lab.sh(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
                    "peer0"])
        vip_lab.sh(["ip", "-n", ns, "addr", "add", f"{addresses[0]}/24", "dev", "eth0"])
        for link in ("lo", "eth0", "peer0"):
            vip_lab.sh(["ip", "-n", ns, "link", "set", link, "up"])
        # corosync -t from the masters' clean root (its corosync, put there by the
        # master's install steps), in the namespace, reading the rendered file.
        root = vip_lab.rootfs.lab_root(("master",), vip_lab.SUITE, vip_lab.ROOT_STEPS)
        result = vip_lab.sh(root.command(["corosync", "-t", "-c", str(conf)], netns=ns,
                                         binds=((tmp_path, str(tmp_path)),)),
                            check=False, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_masters_vip_stays_through_a_pause_and_fails_over_when_its_node_crashes(
        masters: Lab) -> None:
    masters.start_celtic()
    wait_until(lambda: masters.cluster_settled(1), 90, 0.5, "all masters online, VIP started")

    # The settings in force are the ones the fragments rendered and pushed.
    confs = {i: masters.rendered(i, "corosync.conf") for i in NODES}
    assert len(set(confs.values())) == 1
    totem = dict(re.findall(r"^\s*(token|consensus|token_coefficient):\s*(\d+)",
                            confs[1], re.M))
    assert masters.cmap(1, "runtime.config.totem.token") == totem["token"]
    assert masters.cmap(1, "runtime.config.totem.consensus") == totem["consensus"]
    knet = dict(re.findall(r"^\s*(knet_ping_timeout|knet_ping_interval):\s*(\d+)",
                           confs[1], re.M))
    for key, value in knet.items():
        assert masters.cmap(1, f"runtime.config.totem.interface.0.{key}") == value
    assert len(knet) == 2
    assert re.search(r"^\s*transport: knet$", confs[1], re.M)
    cib = masters.live_cib(1)
    assert re.search(r'<primitive id="api-vip" [^>]*type="IPaddr2"', cib)
    assert re.search(r'<primitive id="api-haproxy" class="lsb" type="haproxy"', cib)
    assert 'name="nic" value="eth0"' in cib
    assert 'name="stonith-enabled" value="false"' in cib
    assert 'name="no-quorum-policy" value="stop"' in cib
    assert f"bind {VIP}:6443" in masters.rendered(1, "haproxy.cfg")

    holder = masters.wait_vip()
    assert masters.dc(1) != holder, "the VIP keeps off the DC when it can"

    # A live migration pauses the guest (Nova allows 500 ms by default): a pause of
    # twice that does not move the VIP (tests/bench/vip.py searches the real limit).
    rng = random.Random(11)
    paused = vip_lab.measure_freeze(masters, PAUSE, rng)
    assert not paused["moved"], f"a {PAUSE} s pause moved the VIP to {paused['moved_to']}"
    assert masters.vip_holders() == [holder]
    wait_until(lambda: masters.cluster_settled(1), 60, 0.5, "the cluster after the pause")

    result = vip_lab.measure_crash(masters, rng)
    print(f"\nVIP failover after a crash of node {result['victim']}: "
          f"{result['seconds']} s, VIP now on {result['new_holder']}")
    assert result["seconds"] is not None and result["seconds"] < FAILOVER_BOUND
    assert len(result["new_holder"]) == 1 and result["new_holder"][0] != holder

    # Cut the new holder off (its stack keeps running): without quorum it must give
    # the address up (no-quorum-policy=stop, and IPaddr2 can because it has nic=).
    isolated = result["new_holder"][0]
    vip_lab.sh(["ip", "-n", vip_lab.ns_name(isolated), "link", "set", "eth0", "down"])
    wait_until(lambda: isolated not in masters.vip_holders((isolated,)), 20, 0.2,
               "the isolated master to drop the VIP")


def test_apiserver_crash_on_the_vip_holder_keeps_the_api_answering(masters: Lab) -> None:
    masters.start_celtic()
    wait_until(lambda: masters.cluster_settled(1), 90, 0.5, "all masters online, VIP started")
    holder = masters.wait_vip()
    probe, out = masters.probe(30, "api-only")
    wait_until(lambda: any(r["ok"] for r in vip_lab.read_probe(out)), 15, 0.1, "answers")
    t0 = masters.kill_named(holder, "apiserver")
    wait_until(lambda: sum(1 for r in vip_lab.read_probe(out) if r["start"] > t0 + 3) > 20,
               20, 0.2, "probes after the crash")
    vip_lab.stop_probe(probe)
    seconds, failed = vip_lab.recovered_after(vip_lab.read_probe(out), t0)
    print(f"\napiserver-only crash on node {holder}: API whole again after {seconds:.2f} s "
          f"({failed} failed probes)")
    assert seconds < 3.0
    assert masters.vip_holders() == [holder], "an apiserver crash does not move the VIP"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-v", "-s", f"--basetemp={tempfile.mkdtemp()}"]))
