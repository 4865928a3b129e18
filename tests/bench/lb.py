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

"""Scale benchmark of celtic-lb on loopback (the lab of tests/functional/lb_lab.py).

300 LoadBalancer Services on 100 stand-in minions (quick variant: 60 on 20): every
minion is a loopback address 127.0.1.N whose NodePorts (one per Service) and kube-proxy
health port are real listeners in one thread that counts the connections each gets.
celtic-lb runs against the fake API with real HAProxy (master-worker, USR2 reloads).
Prints:

  lb_health_checks_per_second: <n>       connections the minions get from HAProxy's
                                         checks, no client traffic (goal: grows with
                                         nodes, not Services x nodes)
  lb_reloads_for_100_node_flaps: <n>     HAProxy reloads while minions go NotReady and
                                         back 100 times (goal: far below 100)
  lb_reconfigure_seconds_300_services: <median>
                                         a Service change in the API until HAProxy serves
                                         it, with all the Services configured (goal < 2)
  lb_reload_failed_requests: <n>         failed requests of a steady load (a new
                                         connection each) across those reloads and
                                         flaps (goal 0)

Ports 18500-18999: API 18943, frontends and NodePorts from 18500, health 18956,
moving Service 18900-18919. Run: tox -e bench -- lb (--quick for the small variant).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'functional'))
import lb_lab  # noqa: E402

try:
    from tests.bench import quick
except ImportError:                          # run as a script
    def quick():
        return os.environ.get('CELTIC_BENCH_QUICK') == '1'

QUICK = quick()
SERVICES = 60 if QUICK else 300
NODES = 20 if QUICK else 100
FLAPS = 100
FLAP_GROUP = 10                             # minions flapping together
FLAP_SECONDS = 0.3
ROUNDS = 4 if QUICK else 10
CHECK_WINDOW = 3.0 if QUICK else 10.0
API_PORT = 18943
HEALTH_PORT = 18956
FIRST_PORT = 18500                          # Service i: frontend and nodePort FIRST_PORT + i
MOVING_PORTS = range(18900, 18920)
CLIENTS = 4
CLIENT_PAUSE = 0.005
TIMEOUT = 60.0


class SteadyLoad:
    """Client threads, each sending one request per new connection until stopped."""

    def __init__(self, port: int, expected: set):
        self.port, self.expected = port, expected
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = self.failed = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self):
        while not self.stop.is_set():
            body = lb_lab.get(self.port, timeout=3)
            with self.lock:
                if body in self.expected:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.failures.append('%.3f %r' % (time.monotonic(), body))
            time.sleep(CLIENT_PAUSE)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def node_address(i: int) -> str:
    return '127.0.1.%d' % (i + 1)


def run(workdir: str) -> dict:
    lab = lb_lab.Lab(workdir, api_port=API_PORT, health_port=HEALTH_PORT, min_interval=1.0)
    nodes = {'bench-%03d' % i: node_address(i) for i in range(NODES)}
    ports = [FIRST_PORT + i for i in range(SERVICES)]
    # one descriptor per NodePort listener (30,000): in processes of 15,000 each
    listeners = lb_lab.ListenerProcesses(workdir, nodes, ports + [HEALTH_PORT])
    phases = []
    mark = time.monotonic()

    def phase(name):
        nonlocal mark
        phases.append('%s %.1fs' % (name, time.monotonic() - mark))
        mark = time.monotonic()
    phase('lab')
    try:
        for name, address in nodes.items():
            lab.kube.put_node(name, address)
        listeners.start()
        for i, port in enumerate(ports):
            lab.kube.put_service('bench-%03d' % i, [(port, port)])
        started = time.monotonic()
        lab.start()
        for port in ports:
            lb_lab.wait_until(lambda: lb_lab.get(port, timeout=2), TIMEOUT, 0.05,
                              'port %d to be served' % port)
        first = time.monotonic() - started
        # the statuses of the first pass (one request each) before any measurement
        lb_lab.wait_until(lambda: len(lab.kube.patches) >= SERVICES, TIMEOUT, 0.1,
                          'the statuses of every Service')
        statuses = time.monotonic() - started
        phase('start')

        # health checks: no client traffic, count what reaches the minions
        time.sleep(2.5)
        before, at = listeners.count(), time.monotonic()
        time.sleep(CHECK_WINDOW)
        checks = (listeners.count() - before) / (time.monotonic() - at)
        phase('checks')

        steady = {'%s:%d' % (n, ports[0]) for n in nodes}
        moving = {'%s:%d' % (n, ports[1]) for n in nodes}
        latencies = []
        with SteadyLoad(ports[0], steady) as load:
            time.sleep(0.5)
            reloads = lab.reloads()
            for port in MOVING_PORTS[:ROUNDS]:
                # one change after the previous reload's quiet time, as a user edits
                time.sleep(1.2)
                at = time.monotonic()
                lab.kube.put_service('bench-moving', [(port, ports[1])])
                lb_lab.wait_until(lambda: lb_lab.get(port, timeout=1) in moving, TIMEOUT,
                                  0.01, 'port %d to be served' % port)
                latencies.append(time.monotonic() - at)
            change_reloads = lab.reloads() - reloads
            phase('changes')
            time.sleep(1.2)
            reloads = lab.reloads()
            seen = lab.celtic_lb.output().count('in maintenance (not Ready)')
            names = sorted(nodes)
            for group in range(FLAPS // FLAP_GROUP):
                # FLAP_GROUP minions go NotReady together, long enough to be seen, and back
                flapping = [names[(group * FLAP_GROUP + k) % NODES] for k in range(FLAP_GROUP)]
                for name in flapping:
                    lab.kube.put_node(name, nodes[name], ready=False)
                time.sleep(FLAP_SECONDS)
                for name in flapping:
                    lab.kube.put_node(name, nodes[name], ready=True)
                time.sleep(FLAP_SECONDS)
            time.sleep(3)
            flap_reloads = lab.reloads() - reloads
            seen = lab.celtic_lb.output().count('in maintenance (not Ready)') - seen
            phase('flaps')
        return {'checks': checks, 'flap_reloads': flap_reloads, 'flaps_seen': seen,
                'reconfigure': statistics.median(latencies), 'failed': load.failed,
                'requests': load.ok + load.failed, 'change_reloads': change_reloads,
                'slowest': max(latencies), 'first': first, 'statuses': statuses,
                'failures': load.failures[:5], 'phases': phases}
    finally:
        lab.stop()
        listeners.stop()
        phase('stop')
        sys.stderr.write('(phases: %s)\n' % ', '.join(phases))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix='celtic-lb-bench.') as workdir:
        result = run(workdir)
    print('lb_health_checks_per_second: %.0f' % result['checks'])
    print('lb_reloads_for_100_node_flaps: %d' % result['flap_reloads'])
    print('lb_reconfigure_seconds_%d_services: %.3f' % (SERVICES, result['reconfigure']))
    print('lb_reload_failed_requests: %d' % result['failed'], flush=True)
    sys.stderr.write(
        '(%d Services x %d minions; first configuration served after %.1f s, every status '
        'written after %.1f s; %d requests '
        'across %d change reloads and %d node flaps (maintenance applied %d times); slowest '
        'change %.3f s; checks per '
        'Service and node, as before, would be about %d/s%s)\n' % (
            SERVICES, NODES, result['first'], result['statuses'], result['requests'],
            result['change_reloads'],
            FLAPS, result['flaps_seen'], result['slowest'], SERVICES * NODES / 2,
            '; first failures: %s' % result['failures'] if result['failures'] else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
