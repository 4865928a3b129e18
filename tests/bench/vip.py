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
through another node. Pause = every process of the VIP holder stopped (SIGSTOP), then
resumed (SIGCONT), as a live migration pauses a guest; the pause tolerance is the longest
pause, to 0.1 s, after which the VIP has not moved (a bisection, three pauses per point,
then five more at the result: a move there lowers it by 0.1 s). keepalived is then tuned
to celtic's tolerance (advert_int scaled by keepalived's own measured tolerance per second
of advert, VRRPv3 for sub-second values), its tolerance measured the same way, and both
failovers measured in the same run. Then a soak on a celtic lab (both cores saturated by
bounded CPU burners, TCP traffic over every node's loopback, no crash) counts false
failovers, and an apiserver-only and an HAProxy-only crash on the VIP holder (node up)
time how long the API is unavailable.

Prints, among per-run details:
    vip_failover_seconds: <celtic median>
    keepalived_failover_seconds: <keepalived median, advert_int 1>
    vip_failover_ratio: <celtic / keepalived>
    pause_tolerance_seconds: <celtic>
    keepalived_pause_tolerance_seconds: <keepalived, advert_int 1>
    keepalived_equal_tolerance_advert_int: <s>
    keepalived_equal_tolerance_pause_tolerance_seconds: <s>
    keepalived_equal_tolerance_failover_seconds: <median>
    vip_failover_ratio_equal_tolerance: <celtic / keepalived at equal tolerance>
    false_failovers: <n>
    api_only_failover_seconds: <s>
Exit status 0 when both ratios are <= 1.0, celtic's pause tolerance is >= 1.0 s and
false_failovers is 0.

Root only (network namespaces). Default: the full acceptance run (three tolerance
searches, 5 + 5 + 5 crashes, a 5-minute soak, about 25 minutes); --quick (or
CELTIC_BENCH_QUICK=1 through `tox -e bench -- --quick vip`) for development and CI: 2 + 2
crashes, a 30 s soak and, instead of the searches, three 1.0 s pauses of celtic's VIP
holder (pause_1s_vip_moves, goal 0), about 6 minutes.
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


def twice(what: str, run, workdir: Path, *args):
    """RUN(WORKDIR, *ARGS), and once more on a fresh lab when it fails before giving a
    figure (a lab that did not come up on the loaded machine: an apiserver stand-in
    slower than its bounded wait). A second failure ends the benchmark."""
    try:
        return run(workdir, *args)
    except (TimeoutError, RuntimeError) as exc:
        print(f"{what}: the lab failed ({exc}); once more on a fresh lab", flush=True)
        vip_lab.destroy_namespaces()
        return run(workdir.with_name(workdir.name + "-again"), *args)


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


def crash_keepalived(workdir: Path, rng: random.Random,
                     advert: float = vip_lab.KEEPALIVED_ADVERT) -> dict:
    with Lab(workdir) as lab:
        lab.start_keepalived(advert)
        lab.wait_vip(timeout=30)
        time.sleep(2)
        return vip_lab.measure_crash(lab, rng)


# -- pauses ------------------------------------------------------------------------------

PAUSE_TRIALS = 3  # pauses per point of the search: all must leave the VIP in place
PAUSE_CONFIRM = 5  # more pauses at the result of the search
PAUSE_CEILING = 5.0  # seconds: the search's upper bound
# keepalived's worst-phase tolerance per second of advert_int: a backup of priority 99
# takes over after Master_Down_Interval = 3 x advert + (256 - 99) / 256 x advert of
# silence; a pause that starts just before an advert was due ends that silence one
# advert later than it started.
KEEPALIVED_WORST_PHASE = 3 + (256 - 99) / 256 - 1


def settled_celtic(lab: Lab) -> None:
    wait_until(lambda: len(lab.vip_holders()) == 1 and any(
        lab.cluster_settled(i) for i in NODES), 90, 0.5, "a settled celtic cluster")
    time.sleep(1)


def settled_keepalived(lab: Lab) -> None:
    lab.wait_vip(timeout=30)
    time.sleep(1)


def pauses(lab: Lab, seconds: float, trials: int, rng: random.Random, settle,
           log: list) -> bool:
    """Up to TRIALS pauses of SECONDS; True when none moved the VIP (stops at a move)."""
    for _ in range(trials):
        settle(lab)
        result = vip_lab.measure_freeze(lab, seconds, rng)
        log.append(result)
        if result["moved"]:
            return False
    return True


def pause_tolerance(lab: Lab, rng: random.Random, settle, name: str,
                    trials: int = PAUSE_TRIALS, confirm: int = PAUSE_CONFIRM,
                    ceiling: float = PAUSE_CEILING) -> tuple[float, list]:
    """The longest pause (0.1 s steps) that does not move the VIP: a bisection between
    0 and CEILING (TRIALS pauses per point), then CONFIRM more pauses at the result
    (a move lowers it by 0.1 s and confirms again; at most three times)."""
    log: list = []
    low, high = 0, round(ceiling * 10)  # tenths of a second
    while high - low > 1:
        middle = (low + high) // 2
        stayed = pauses(lab, middle / 10, trials, rng, settle, log)
        print(f"{name} pause {middle / 10:.1f} s: "
              f"{'VIP stayed' if stayed else 'VIP moved'} "
              f"({[r['moved'] for r in log if r['seconds'] == middle / 10]})", flush=True)
        low, high = (middle, high) if stayed else (low, middle)
    for _ in range(3):
        if low == 0 or pauses(lab, low / 10, confirm, rng, settle, log):
            break
        print(f"{name} pause {low / 10:.1f} s: VIP moved in the confirmation", flush=True)
        low -= 1
    return low / 10, log


def pause_celtic(workdir: Path, rng: random.Random) -> tuple[float, list]:
    with Lab(workdir) as lab:
        lab.start_celtic()
        settled_celtic(lab)
        return pause_tolerance(lab, rng, settled_celtic, "celtic")


def pause_keepalived(workdir: Path, rng: random.Random, advert: float,
                     name: str) -> tuple[float, list]:
    with Lab(workdir) as lab:
        lab.start_keepalived(advert)
        settled_keepalived(lab)
        return pause_tolerance(lab, rng, settled_keepalived, name)


def equal_tolerance_advert(tolerance: float, keepalived_tolerance: float) -> float:
    """keepalived's advert_int whose pause tolerance is TOLERANCE: its tolerance is
    proportional to advert_int (VRRP's timers are multiples of it), so scale by what it
    measured at advert_int 1 (KEEPALIVED_TOLERANCE). Centiseconds, VRRPv3's unit."""
    per_advert = keepalived_tolerance / vip_lab.KEEPALIVED_ADVERT
    return max(0.01, round(tolerance / per_advert, 2))


def quick_pauses(lab: Lab, rng: random.Random) -> list:
    """The quick variant's check: three 1.0 s pauses of the VIP holder."""
    log: list = []
    pauses(lab, 1.0, PAUSE_TRIALS, rng, settled_celtic, log)
    return log


def soak_and_partial_crashes(workdir: Path, soak_seconds: float,
                             rng: random.Random | None = None) -> dict:
    result: dict = {}
    with Lab(workdir) as lab:
        lab.start_celtic()
        wait_until(lambda: lab.cluster_settled(1), 90, 0.5, "a settled celtic cluster")
        if rng is not None:
            result["pauses_1s"] = quick_pauses(lab, rng)
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


def _pause_line(log: list) -> str:
    return ", ".join(f"{r['seconds']:.1f}{'*' if r['moved'] else ''}" for r in log)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ARGV defaults to none (the full run), not to sys.argv: the
    bench runner (tests/bench/run.py) calls main() with its own command line."""
    parser = argparse.ArgumentParser(description="celtic VIP failover vs keepalived")
    parser.add_argument("--quick", action="store_true",
                        help="development run: 2 + 2 crashes, three 1 s pauses, a 30 s soak")
    parser.add_argument("--runs", type=int, help="crash runs per mechanism (default 5)")
    parser.add_argument("--soak-seconds", type=float, help="soak length (default 300)")
    parser.add_argument("--pauses-only", action="store_true",
                        help="only the pause tolerance searches (development)")
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
    print(f"vip benchmark: {runs} + {runs}{'' if quick else f' + {runs}'} crashes, "
          f"{'three 1 s pauses' if quick else 'three pause tolerance searches'}, "
          f"{soak_seconds:.0f} s soak; lab files in {workdir}", flush=True)
    rng = random.Random(args.seed)
    report: dict = {}
    celtic, keepalived, equal = [], [], []
    started = time.monotonic()
    try:
        if not quick:
            tolerance, celtic_pauses = twice("celtic pauses", pause_celtic,
                                             workdir / "pause-celtic", rng)
            ka_tolerance, ka_pauses = twice(
                "keepalived pauses", pause_keepalived, workdir / "pause-keepalived", rng,
                vip_lab.KEEPALIVED_ADVERT, "keepalived")
            advert = equal_tolerance_advert(tolerance, ka_tolerance)
            eq_tolerance, eq_pauses = twice(
                "keepalived pauses", pause_keepalived, workdir / "pause-keepalived-equal",
                rng, advert, f"keepalived advert_int {advert:.2f}")
            print(f"pauses (s, * = VIP moved): celtic {_pause_line(celtic_pauses)}; "
                  f"keepalived {_pause_line(ka_pauses)}; keepalived advert_int "
                  f"{advert:.2f} {_pause_line(eq_pauses)}", flush=True)
            if args.pauses_only:
                print(f"pause_tolerance_seconds: {tolerance:.1f}")
                print(f"keepalived_pause_tolerance_seconds: {ka_tolerance:.1f}")
                print(f"keepalived_equal_tolerance_advert_int: {advert:.2f}")
                print(f"keepalived_equal_tolerance_pause_tolerance_seconds: "
                      f"{eq_tolerance:.1f}")
                return 0
        for run in range(runs):  # alternate, so all see the same machine state
            c = twice("celtic crash", crash_celtic, workdir / f"celtic-{run + 1}", rng, report)
            celtic.append(c)
            print(f"celtic run {run + 1}: answered after {_seconds(c['seconds'])} s, VIP on "
                  f"a survivor after {_seconds(c['vip_seconds'])} s (victim node "
                  f"{c['victim']}, DC: {c['victim_was_dc']}, VIP now on {c['new_holder']})",
                  flush=True)
            k = twice("keepalived crash", crash_keepalived, workdir / f"keepalived-{run + 1}",
                      rng)
            keepalived.append(k)
            print(f"keepalived run {run + 1}: answered after {_seconds(k['seconds'])} s, VIP "
                  f"on a survivor after {_seconds(k['vip_seconds'])} s (victim node "
                  f"{k['victim']}, VIP now on {k['new_holder']})", flush=True)
            if not quick:
                e = twice("keepalived crash", crash_keepalived,
                          workdir / f"keepalived-equal-{run + 1}", rng, advert)
                equal.append(e)
                print(f"keepalived advert_int {advert:.2f} run {run + 1}: answered after "
                      f"{_seconds(e['seconds'])} s, VIP on a survivor after "
                      f"{_seconds(e['vip_seconds'])} s", flush=True)
        extra = twice("soak", soak_and_partial_crashes, workdir / "soak", soak_seconds,
                      rng if quick else None)
    finally:
        vip_lab.destroy_namespaces()

    print(f"settings: totem {report['totem']} (runtime {report['runtime']})")
    print(f"celtic runs: {[_fmt(r['seconds'] or float('inf')) for r in celtic]}")
    print(f"keepalived runs: {[_fmt(r['seconds'] or float('inf')) for r in keepalived]}")
    if equal:
        print(f"keepalived advert_int {advert:.2f} runs: "
              f"{[_fmt(r['seconds'] or float('inf')) for r in equal]}")
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
    ok = ratio <= 1.0 and extra["false_failovers"] == 0
    if quick:
        moves = sum(1 for r in extra["pauses_1s"] if r["moved"])
        print(f"pauses of 1.0 s: {_pause_line(extra['pauses_1s'])} (* = VIP moved)")
        print(f"pause_1s_vip_moves: {moves}")
        ok = ok and moves == 0
    else:
        equal_median = _median([r["seconds"] for r in equal])
        equal_ratio = celtic_median / equal_median
        print(f"pause_tolerance_seconds: {tolerance:.1f}")
        print(f"keepalived_pause_tolerance_seconds: {ka_tolerance:.1f}")
        print(f"keepalived_equal_tolerance_advert_int: {advert:.2f}")
        print(f"keepalived_equal_tolerance_pause_tolerance_seconds: {eq_tolerance:.1f}")
        print(f"keepalived_equal_tolerance_failover_seconds: {_fmt(equal_median)}")
        print(f"vip_failover_ratio_equal_tolerance: {_fmt(equal_ratio)}")
        ok = ok and tolerance >= 1.0 and equal_ratio <= 1.0
    print(f"false_failovers: {extra['false_failovers']}")
    print(f"api_only_failover_seconds: {_fmt(api['seconds'])}")
    print(f"haproxy_only_failover_seconds: {_fmt(haproxy['seconds'])}")
    print(f"bench_seconds: {time.monotonic() - started:.0f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
