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

"""Upgrade: the masters replaced one at a time behind the API VIP, a client on the VIP
throughout.

Prints one ``name: value`` line each:

  master_rollout_failed_requests  requests of the client that failed while the three
                                  masters were replaced, as a Kubernetes client sees
                                  them (goal 0)
  master_rollout_connection_resets  requests whose connection was reset and that the
                                  client made again at once, as client-go does for a GET
                                  (a write is not retried: such a write would fail)
  master_rollout_requests         requests the client made meanwhile
  master_rollout_vip_moves        times the VIP changed holder (1 when the holder is
                                  replaced last and its VIP moves once, to a replaced
                                  master)
  master_rollout_seconds          the whole rollout, first standby to the last master
                                  active again
  master_rollout_standby_seconds  median of the three ``ha_member_standby`` steps

In the network-namespace lab of the VIP benchmark (``tests/functional/vip_lab.py``: three
masters booted from a clean Debian root, corosync, pacemaker and HAProxy as a master's
bundle sets them up, stand-in apiservers), each master is replaced the way an upgrade
replaces a master's server (``Lab.replace``): ``ha_member_standby`` (the fragments'
step), its apiserver stopped, every process killed and its disk wiped (the server
deleted), a new node on the same address booted from the clean root running
``api_vip_setup`` (it rejoins under the same name, still in standby), its apiserver
started, ``ha_member_active``. The masters that do not hold the VIP go first. The client
connects through the VIP every 50 ms with a 5 s timeout, and makes a request whose
connection was reset or closed before the answer once more, at once, as client-go
(kubectl, controllers) does for a GET: when the VIP moves, a connection the old holder's
HAProxy had accepted a moment before is reset by the new holder, which has never seen it.
An L2 VIP cannot carry an established connection over (keepalived's cannot either); the
resets are printed on their own line.

A request the old holder's HAProxy had accepted and answered too late (its address gone
with the VIP) gets no answer and no reset: it fails after the 5 s timeout and is counted
in master_rollout_failed_requests (doc/master-resize.md, "What a VIP move loses"). The
quick run (``.ci/run``) prints a goal not met, as the other quick runs do; the full run
exits 1 on it.

Not measured yet: ``upgrade_seconds_n3`` and ``upgrade_seconds_n50`` (the upgrade
through Magnum is not built; doc/master-resize.md). Run: ``tox -e bench -- upgrade``
(root, about 5 minutes); ``--quick`` is the same run.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench import quick

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

import vip_lab  # noqa: E402  (the lab lives beside the live test)
from vip_lab import NODES, Lab, wait_until  # noqa: E402

PROBE_TIMEOUT = 5.0
ROLLOUT_TIMEOUT = 900.0


class VipWatch:
    """Which node holds the VIP, polled every 0.1 s in a thread: the holder changes."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.moves = 0
        self.doubles = 0
        self.holders: list[int] = []
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            holders = self.lab.vip_holders()
            if len(holders) > 1:
                self.doubles += 1
            if len(holders) == 1:
                if last is not None and holders[0] != last:
                    self.moves += 1
                    self.holders.append(holders[0])
                    self.times.append(time.monotonic())
                last = holders[0]
            self._stop.wait(0.1)

    def __enter__(self) -> "VipWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def rollout(workdir: Path) -> dict[str, float]:
    with Lab(workdir) as lab:
        lab.start_celtic()
        wait_until(lambda: lab.cluster_settled(1), 90, 0.5, "a settled celtic cluster")
        holder = lab.wait_vip()
        order = [i for i in NODES if i != holder] + [holder]
        probe, out = lab.probe(ROLLOUT_TIMEOUT, "rollout", timeout=PROBE_TIMEOUT,
                               retry_reset=True)
        wait_until(lambda: any(r["ok"] for r in vip_lab.read_probe(out)), 15, 0.1,
                   "the probe's first answer")
        standby = []
        with VipWatch(lab) as watch:
            t0 = time.monotonic()
            for index in order:
                times = lab.replace(index)
                standby.append(times["standby"])
                print(f"master-{index - 1} replaced: standby {times['standby']:.1f} s, "
                      f"rebuild {times['rebuild']:.1f} s, active {times['active']:.1f} s",
                      flush=True)
            seconds = time.monotonic() - t0
            time.sleep(2)
        vip_lab.stop_probe(probe)
        records = [r for r in vip_lab.read_probe(out) if r["start"] >= t0]
        failed = [r for r in records if not r["ok"]]
        resets = [r for r in records if r.get("retried")]

        def since_move(record: dict) -> str:
            near = min(watch.times, key=lambda t: abs(t - record["start"]), default=None)
            return ("no VIP move" if near is None
                    else f"{record['start'] - near:+.3f} s from a VIP move")
        for record in failed[:10]:
            print(f"failed request ({since_move(record)}): {record}", flush=True)
        for record in resets[:10]:
            print(f"reset, made again ({since_move(record)}): {record}", flush=True)
        if watch.doubles:
            print(f"the VIP was seen on two masters at once {watch.doubles} time(s)",
                  flush=True)
        return {"master_rollout_failed_requests": len(failed),
                "master_rollout_connection_resets": len(resets),
                "master_rollout_requests": len(records),
                "master_rollout_vip_moves": watch.moves,
                "master_rollout_seconds": seconds,
                "master_rollout_standby_seconds": statistics.median(standby)}


def main(argv: list[str] | None = None) -> int:
    missing = vip_lab.missing_requirements()
    if missing:
        print(f"upgrade benchmark needs: {', '.join(missing)}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="celtic-upgrade-bench-"))
    print(f"upgrade benchmark: three masters replaced one at a time; lab files in "
          f"{workdir}", flush=True)
    try:
        figures = rollout(workdir)
    finally:
        vip_lab.destroy_namespaces()
    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}",
              flush=True)
    if figures["master_rollout_failed_requests"] == 0:
        return 0
    if quick():
        # as the other quick runs treat a goal not met (create_critical_path_ratio):
        # printed, not fatal; the full run fails on it (issue 18's acceptance)
        print("goal not met: master_rollout_failed_requests 0 (a request in flight on "
              "the old holder when its VIP left: doc/master-resize.md, 'What a VIP "
              "move loses'); tox -e bench -- upgrade fails on it", flush=True)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
