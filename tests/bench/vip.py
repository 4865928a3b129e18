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

"""VIP failover benchmark: celtic (corosync + pacemaker, as the fragments deploy it)
against keepalived (VRRPv2, advert_int 1, priorities 100/99/98), side by side in the same
namespace lab and the same run (tests/functional/vip_lab.py).

Crash = every process of the VIP holder killed (SIGKILL) and its link cut; a client
connects to the VIP every 50 ms; the failover time is from the crash to the first answer
through another node. Then a soak on a celtic lab (both cores saturated by bounded CPU
burners, TCP traffic over every node's loopback, no crash) counts false failovers, and
an apiserver-only and an HAProxy-only crash on the VIP holder (node up) time how long
the API is unavailable.

Prints, among per-run details:
    vip_failover_seconds: <celtic median>
    keepalived_failover_seconds: <keepalived median>
    vip_failover_ratio: <celtic / keepalived>
    false_failovers: <n>
    api_only_failover_seconds: <s>
Exit status 0 when vip_failover_ratio <= 1.0 and false_failovers is 0.

Root only (network namespaces). Default: the full acceptance run (5 + 5 crashes, a
5-minute soak, about 13 minutes); --quick (or CELTIC_BENCH_QUICK=1 through
`tox -e bench -- vip`) for development: 2 + 2 crashes and a 30 s soak, about 5 minutes.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

import vip_lab  # noqa: E402  (the lab lives beside the live test)
from vip_lab import NODES, Lab, wait_until  # noqa: E402


def _median(values: list[float | None]) -> float:
    finite = [v if v is not None else float("inf") for v in values]
    return statistics.median(finite) if finite else float("nan")


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "never" if value is None else _fmt(value)


def totem_settings(corosync_conf: str) -> dict[str, str]:
    """The totem timings of a rendered corosync.conf."""
    totem = re.search(r"totem \{(.*?)\n\}", corosync_conf, re.S).group(1)
    return dict(re.findall(r"^\s*(token|token_coefficient|consensus|join|token_warning):"
                           r"\s*(\S+)", totem, re.M))


def crash_celtic(workdir: Path, rng: random.Random, report: dict) -> dict:
    with Lab(workdir) as lab:
        lab.start_celtic()
        wait_until(lambda: lab.cluster_settled(1), 90, 0.5, "a settled celtic cluster")
        if "totem" not in report:
            report["totem"] = totem_settings(lab.rendered(1, "corosync.conf"))
            report["runtime"] = {key: lab.cmap(1, f"runtime.config.totem.{key}")
                                 for key in ("token", "consensus", "join")}
        holder, dc = lab.wait_vip(), lab.dc(1)
        result = vip_lab.measure_crash(lab, rng)
        result["victim_was_dc"] = holder == dc
        return result


def crash_keepalived(workdir: Path, rng: random.Random) -> dict:
    with Lab(workdir) as lab:
        lab.start_keepalived()
        lab.wait_vip(timeout=30)
        time.sleep(2)
        return vip_lab.measure_crash(lab, rng)


def soak_and_partial_crashes(workdir: Path, soak_seconds: float) -> dict:
    result: dict = {}
    with Lab(workdir) as lab:
        lab.start_celtic()
        wait_until(lambda: lab.cluster_settled(1), 90, 0.5, "a settled celtic cluster")
        time.sleep(5)
        result.update(soak(lab, soak_seconds))
        result["api_only"] = partial_crash(lab, "apiserver")
        wait_until(lambda: lab.cluster_settled(1), 60, 0.5, "a settled cluster")
        result["haproxy_only"] = partial_crash(lab, "haproxy")
    return result


def soak(lab: Lab, seconds: float) -> dict:
    logs = {i: {w: lab.log_size(i, w) for w in
                ("var-log-corosync/corosync.log", "var-log-pacemaker/pacemaker.log")}
            for i in NODES}
    holder = lab.wait_vip()
    probe, out = lab.probe(seconds + 20, "soak")
    burners = 2 * (os.cpu_count() or 2)
    lab.load(seconds, burners)
    moves, samples, last = 0, 0, holder
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        holders = lab.vip_holders()
        samples += 1
        current = holders[0] if len(holders) == 1 else None
        if current != last:
            moves += 1
            last = current
    time.sleep(3)
    vip_lab.stop_probe(probe)
    memberships, vip_starts, resource_failures, token_warnings = set(), 0, 0, 0
    for index in NODES:
        corosync = lab.log_since(index, "var-log-corosync/corosync.log",
                                 logs[index]["var-log-corosync/corosync.log"])
        memberships |= set(re.findall(r"A new membership \(([0-9a-f.]+)\)", corosync))
        token_warnings += len(re.findall(r"Token has not been received", corosync))
        pacemaker = lab.log_since(index, "var-log-pacemaker/pacemaker.log",
                                  logs[index]["var-log-pacemaker/pacemaker.log"])
        vip_starts += len(re.findall(r"Result of start operation for api-vip", pacemaker))
        resource_failures += len(re.findall(
            r"Result of (?!probe)\w+ operation for \S+ on \S+: (?!ok\b)", pacemaker))
    records = vip_lab.read_probe(out)
    return {
        "soak_seconds": seconds, "burners": burners, "samples": samples,
        "vip_moves": moves, "memberships": len(memberships), "vip_starts": vip_starts,
        "resource_failures": resource_failures, "token_warnings": token_warnings,
        "probes": len(records), "probe_failures": sum(1 for r in records if not r["ok"]),
        "false_failovers": moves + len(memberships) + vip_starts,
    }


def partial_crash(lab: Lab, name: str) -> dict:
    """Kill only the holder's apiserver or HAProxy; the node stays up. Seconds from the
    kill until every probe succeeds again."""
    holder = lab.wait_vip()
    probe, out = lab.probe(40, f"{name}-only")
    wait_until(lambda: any(r["ok"] for r in vip_lab.read_probe(out)), 15, 0.1, "answers")
    time.sleep(2)
    t0 = lab.kill_named(holder, name)
    time.sleep(15)
    vip_lab.stop_probe(probe)
    seconds, failed = vip_lab.recovered_after(vip_lab.read_probe(out), t0)
    return {"seconds": seconds, "failed_probes": failed, "holder": holder,
            "holder_after": lab.vip_holders()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ARGV defaults to none (the full run), not to sys.argv: the
    bench runner (tests/bench/run.py) calls main() with its own command line."""
    parser = argparse.ArgumentParser(description="celtic VIP failover vs keepalived")
    parser.add_argument("--quick", action="store_true",
                        help="development run: 2 + 2 crashes and a 30 s soak")
    parser.add_argument("--runs", type=int, help="crash runs per mechanism (default 5)")
    parser.add_argument("--soak-seconds", type=float, help="soak length (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", help="keep the lab's files here")
    args = parser.parse_args(argv or [])
    quick = args.quick or os.environ.get("CELTIC_BENCH_QUICK") == "1"
    runs = args.runs or (2 if quick else 5)
    soak_seconds = args.soak_seconds or (30 if quick else 300)

    missing = vip_lab.missing_requirements()
    if missing:
        print(f"vip benchmark needs: {', '.join(missing)}", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="celtic-vip-bench-"))
    print(f"vip benchmark: {runs} + {runs} crashes, {soak_seconds:.0f} s soak; lab files "
          f"in {workdir}", flush=True)
    rng = random.Random(args.seed)
    report: dict = {}
    celtic, keepalived = [], []
    started = time.monotonic()
    try:
        for run in range(runs):  # alternate, so both see the same machine state
            c = crash_celtic(workdir / f"celtic-{run + 1}", rng, report)
            celtic.append(c)
            print(f"celtic run {run + 1}: answered after {_seconds(c['seconds'])} s, VIP on "
                  f"a survivor after {_seconds(c['vip_seconds'])} s (victim node "
                  f"{c['victim']}, DC: {c['victim_was_dc']}, VIP now on {c['new_holder']})",
                  flush=True)
            k = crash_keepalived(workdir / f"keepalived-{run + 1}", rng)
            keepalived.append(k)
            print(f"keepalived run {run + 1}: answered after {_seconds(k['seconds'])} s, VIP "
                  f"on a survivor after {_seconds(k['vip_seconds'])} s (victim node "
                  f"{k['victim']}, VIP now on {k['new_holder']})", flush=True)
        extra = soak_and_partial_crashes(workdir / "soak", soak_seconds)
    finally:
        vip_lab.destroy_namespaces()

    print(f"settings: totem {report['totem']} (runtime {report['runtime']})")
    print(f"celtic runs: {[_fmt(r['seconds'] or float('inf')) for r in celtic]}")
    print(f"keepalived runs: {[_fmt(r['seconds'] or float('inf')) for r in keepalived]}")
    print(f"soak: {extra['soak_seconds']:.0f} s, {extra['burners']} CPU burners + loopback "
          f"traffic in every node; VIP moves {extra['vip_moves']}, memberships "
          f"{extra['memberships']}, VIP starts {extra['vip_starts']}, resource failures "
          f"{extra['resource_failures']}, token warnings {extra['token_warnings']}, "
          f"probe failures {extra['probe_failures']}/{extra['probes']}")
    api, haproxy = extra["api_only"], extra["haproxy_only"]
    print(f"apiserver-only crash: {api['failed_probes']} failed probes; "
          f"HAProxy-only crash: {haproxy['failed_probes']} failed probes, VIP "
          f"{haproxy['holder']} -> {haproxy['holder_after']}")
    celtic_median = _median([r["seconds"] for r in celtic])
    keepalived_median = _median([r["seconds"] for r in keepalived])
    ratio = celtic_median / keepalived_median
    print(f"vip_failover_seconds: {_fmt(celtic_median)}")
    print(f"keepalived_failover_seconds: {_fmt(keepalived_median)}")
    print(f"vip_failover_ratio: {_fmt(ratio)}")
    print(f"false_failovers: {extra['false_failovers']}")
    print(f"api_only_failover_seconds: {_fmt(api['seconds'])}")
    print(f"haproxy_only_failover_seconds: {_fmt(haproxy['seconds'])}")
    print(f"bench_seconds: {time.monotonic() - started:.0f}")
    return 0 if ratio <= 1.0 and extra["false_failovers"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
