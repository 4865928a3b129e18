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

"""Benchmark runner: ``tox -e bench -- [--quick] [name ...]`` (default: all).

Each benchmark module in this directory has a ``main()`` that prints one
``name: value`` line per figure. They run one after another, never in parallel: the
figures are timings on a 2-core machine. ``--quick`` runs every benchmark's quick
variant (what .ci/run runs); without it, the full runs the README's figures come from.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time

from tests.bench import quick

BENCHMARKS = ('lb', 'heat', 'vip', 'scale', 'churn', 'autoscale', 'upgrade')


def _terminate(signum, frame):
    raise KeyboardInterrupt('SIGTERM')


def main(argv: list[str]) -> int:
    # a benchmark's finally blocks stop its services, also when it is killed politely
    signal.signal(signal.SIGTERM, _terminate)
    if '--quick' in argv:
        os.environ['CELTIC_BENCH_QUICK'] = '1'
        argv = [a for a in argv if a != '--quick']
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print('unknown benchmark(s): %s (known: %s)'
              % (', '.join(unknown), ', '.join(BENCHMARKS)))
        return 2
    failed = []
    for name in names:
        started = time.monotonic()
        print('== bench %s%s' % (name, ' (quick)' if quick() else ''), flush=True)
        module = importlib.import_module('tests.bench.%s' % name)
        rc = module.main()
        print('== bench %s finished in %.0fs (rc=%s)'
              % (name, time.monotonic() - started, rc or 0), flush=True)
        if rc:
            failed.append(name)
    if failed:
        print('benchmarks failed: %s' % ', '.join(failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
