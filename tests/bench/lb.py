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

"""Benchmark of celtic-lb on loopback (the lab of tests/functional/lb_lab.py).

Prints two lines:

  lb_reconfigure_seconds: <median>     a Service change until HAProxy serves it (goal < 2 s)
  lb_reload_failed_requests: <n>       failed requests of a steady loopback load across
                                       20 HAProxy reloads (goal 0)

Each of the 20 rounds moves the Service "bench-moving" to a new port in the fake API and
times how long until that port answers from a minion; every move is one config change
and one HAProxy reload (master-worker, USR2, as systemd does on a node). Meanwhile
client threads send requests, each on a new connection, to the Service "bench-steady"
and count every failure. Ports 18500-18999. Run: python3 tests/bench/lb.py
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

API_PORT = 18943
STEADY_PORT, STEADY_NODE_PORT = 18580, 18701
MOVING_NODE_PORT = 18702
MOVING_PORTS = range(18600, 18620)          # 20 rounds, one reload each
NODES = {'bench-a': '127.0.0.2', 'bench-b': '127.0.0.3', 'bench-c': '127.0.0.4'}
CLIENTS = 4
CLIENT_PAUSE = 0.005                        # per client between requests: a bounded load
ROUND_TIMEOUT = 10.0


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


def run(workdir: str) -> tuple[float, int, dict]:
    lab = lb_lab.Lab(workdir, api_port=API_PORT, debounce=0.05)
    try:
        for name, address in NODES.items():
            lab.minions.serve(name, address, STEADY_NODE_PORT)
            lab.minions.serve(name, address, MOVING_NODE_PORT)
            lab.kube.put_node(name, address)
        lab.start()
        lab.kube.put_service('bench-steady', [(STEADY_PORT, STEADY_NODE_PORT)])
        steady = {'%s:%d' % (n, STEADY_NODE_PORT) for n in NODES}
        moving = {'%s:%d' % (n, MOVING_NODE_PORT) for n in NODES}
        lb_lab.wait_until(lambda: lb_lab.get(STEADY_PORT) in steady, ROUND_TIMEOUT,
                          what='the steady Service')
        reloads_before = lab.haproxy.output().count('Reloading HAProxy')
        latencies = []
        with SteadyLoad(STEADY_PORT, steady) as load:
            time.sleep(0.5)
            for port in MOVING_PORTS:
                started = time.monotonic()
                lab.kube.put_service('bench-moving', [(port, MOVING_NODE_PORT)])
                lb_lab.wait_until(lambda: lb_lab.get(port, timeout=1) in moving, ROUND_TIMEOUT,
                                  0.01, 'port %d to be served' % port)
                latencies.append(time.monotonic() - started)
                time.sleep(0.2)
            time.sleep(0.5)
        reloads = lab.haproxy.output().count('Reloading HAProxy') - reloads_before
        return statistics.median(latencies), load.failed, {
            'requests': load.ok + load.failed, 'reloads': reloads,
            'max_seconds': max(latencies), 'failures': load.failures[:5]}
    finally:
        lab.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix='celtic-lb-bench.') as workdir:
        median, failed, detail = run(workdir)
    print('lb_reconfigure_seconds: %.3f' % median)
    print('lb_reload_failed_requests: %d' % failed, flush=True)
    sys.stderr.write('(%d requests across %d HAProxy reloads; slowest change %.3f s%s)\n' % (
        detail['requests'], detail['reloads'], detail['max_seconds'],
        '; first failures: %s' % detail['failures'] if detail['failures'] else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
