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

"""Heat at scale: the celtic stack against the old in-tree driver's, on the same Heat.

Prints one ``name: value`` line each:

  celtic_resources_per_minion   Heat resources one more minion costs (all levels)
  celtic_fixed_resources        resources of the stack without minions (3 masters,
                                2 proxies, 3 storage nodes)
  celtic_max_minions            largest minion count within Heat's default
                                max_resources_per_stack = 1000, counted as Heat counts
                                (every row of the stack tree; goal >= 300)
  old_max_minions               the same for the old driver (3 masters)
  celtic_create_seconds_n50     stack create with 50 minions
  old_create_seconds_n50        the same for the old driver (goal: celtic <= 1/3)
  celtic_scale_out_seconds_n3   stack update adding one minion to 3 (median of 3 -> 4,
                                4 -> 5 and 5 -> 6)
  celtic_scale_out_seconds_n50  the same from 50 (median of 50 -> 51, 51 -> 52, 52 -> 53)
  scale_out_growth_ratio        n50 / n3 (goal <= 1.5: adding a node does not revisit
                                the others)
  old_scale_out_seconds_n50     the old driver's 50 -> 51

Both designs run one after the other on the same control plane (real Keystone, real
Heat): MariaDB and CELTIC_HARNESS_ENGINE_WORKERS heat-engine workers (default 2) over
RabbitMQ, as a real Heat runs (CELTIC_HARNESS_BACKEND=embedded runs it on sqlite instead;
the reference figures were taken on MariaDB). Cloud resources are the lab's stand-ins
(one row each, so counts are what a cloud would give): servers ACTIVE after 1 s. Both
designs' nodes report through Keystone and heat-api: the old driver's software
deployments are Heat's own, each run for 1 s by the lab's agent and signalled as
heat-config-notify does (lab/agent.py); celtic nodes run the real shell library and
signal their pool's wait condition. The old templates come from the
magnum 22.0.0 wheel, downloaded from PyPI at run time (tests/bench/old_driver.py).
Times are wall-clock, from the request to the stack's final state, polled every 0.25 s
without resolving the outputs, as Magnum's poller and the driver's do (resolving them
makes heat-engine walk every nested stack at each poll: the old driver's create took
about twice as long under such a poller, celtic's about 1.3 times).
Run: python -m tests.bench.run scale (or tox -e bench -- scale), about 8 minutes.
Quick variant (``tox -e bench -- --quick scale``, what .ci/run runs, about 2 minutes):
celtic only, 20 minions instead of 50, one scale-out per size; the figures are named for
the size they measured (``celtic_create_seconds_n20``), and the old driver is not run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import celtic_stack
from magnum_celtic.lab import controlplane
from magnum_celtic.lab import heatwatch

from tests.bench import old_driver
from tests.bench import quick

HEAT_LIMIT = 1000
POLL = 0.25
BOOT_SECONDS = 1.0
#: the old driver's 50 -> 51 took more than 2.8 x its create in the reference run and
#: did not finish; give up after this long and report the bound
OLD_UPDATE_TIMEOUT = float(os.environ.get('CELTIC_BENCH_OLD_UPDATE_TIMEOUT', '900'))
#: the large size; the figures named n50 are printed with the size measured
LARGE = int(os.environ.get('CELTIC_BENCH_SCALE_N', '20' if quick() else '50'))
#: one-minion scale-outs timed at each size, one after another; celtic's figures are
#: their median (single updates on 2 cores vary by about a quarter either way)
SAMPLES = max(1, int(os.environ.get('CELTIC_BENCH_SCALE_OUT_SAMPLES',
                                    '1' if quick() else '3')))


def _say(text: str) -> None:
    sys.stderr.write('[bench scale %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


def _settle(heat, stack_id: str, action: str, started: float, timeout: float):
    """Wait for the stack to leave ``<action>_IN_PROGRESS``; return (stack, seconds).
    The stack comes without its outputs."""
    deadline = started + timeout
    while True:
        stack = heat.stacks.get(stack_id, resolve_outputs=False)
        status = stack.stack_status
        if status != action + '_IN_PROGRESS' and not (
                status.endswith('_COMPLETE') and not status.startswith(action)):
            seconds = time.monotonic() - started
            if status != action + '_COMPLETE':
                raise RuntimeError('%s: %s: %s' % (stack.stack_name, status,
                                                   stack.stack_status_reason))
            return stack, seconds
        if time.monotonic() > deadline:
            raise TimeoutError('%s still %s after %.0fs' % (stack.stack_name, status,
                                                            timeout))
        time.sleep(POLL)


class Design:
    """One stack of one design: create, scale out one minion, delete."""

    def __init__(self, heat, label: str, kwargs: dict, count_param: str,
                 rendered: bool = False, create=None):
        self.heat = heat
        self.label = label
        self.kwargs = kwargs
        # heatclient's stacks.create(**kwargs) by default
        self._create = create or (lambda: heat.stacks.create(**kwargs))
        self.count_param = count_param
        self.rendered = rendered   # celtic: the driver re-renders the pool's servers
        self.id = None

    def create(self, timeout: float = 3600) -> float:
        started = time.monotonic()
        self.id = self._create()['stack']['id']
        _, seconds = _settle(self.heat, self.id, 'CREATE', started, timeout)
        _say('%s: created in %.1fs' % (self.label, seconds))
        return seconds

    def rows(self) -> list[heatwatch.Row]:
        return heatwatch.rows(self.heat, self.id)

    def scale_out(self, minions: int, timeout: float = 3600) -> float:
        if self.rendered:
            update = celtic_stack.scale_kwargs(self.heat, self.id, minions)
        else:
            update = {'existing': True, 'parameters': {self.count_param: minions}}
        started = time.monotonic()
        self.heat.stacks.update(self.id, **update)
        _, seconds = _settle(self.heat, self.id, 'UPDATE', started, timeout)
        _say('%s: %d minions in %.1fs' % (self.label, minions, seconds))
        return seconds

    def delete(self, timeout: float = 3600) -> None:
        if self.id is None:
            return
        self.heat.stacks.delete(self.id)
        heatwatch.wait(self.heat, self.id, timeout=timeout, gone_ok=True)
        _say('%s: deleted' % self.label)


def _celtic(plane, heat, name: str, minions: int) -> Design:
    # registered with the lab's celtic-vendordata, which gives the nodes their secrets
    # (the request and its PKI are built here, before the create is timed)
    kwargs = celtic_stack.registered_kwargs(heat, name, plane, minions=minions,
                                            timeout_mins=60)

    def create():
        created = heat.stacks.create(**kwargs)
        plane.clusters.created(name, created['stack']['id'])
        return created
    return Design(heat, name, kwargs, 'minion_count', rendered=True, create=create)


def _old(heat, root: str, name: str, minions: int) -> Design:
    return Design(heat, name, old_driver.create_kwargs(
        root, name, masters=3, minions=minions, image='ubuntu-24.04', flavor='m1.medium',
        keypair='lab', external_network='public'), 'number_of_minions')


def _per_minion(before: list, after: list, label: str) -> tuple[int, int]:
    """(resources per minion, fixed resources) from a LARGE -> LARGE + 1 scale-out."""
    change = heatwatch.compare(before, after)
    _say('%s %d -> %d: %s' % (label, LARGE, LARGE + 1, change.summary()))
    if change.deleted or change.replaced:
        raise RuntimeError('%s: the scale-out replaced or deleted resources' % label)
    per = len(after) - len(before)
    return per, len(before) - LARGE * per


def _median_scale_out(design: Design, size: int, samples: list[float]) -> float:
    """Add one minion at a time to a stack of ``size`` until there are SAMPLES
    timings (``samples`` holds those taken already); their median."""
    while len(samples) < SAMPLES:
        size += 1
        samples.append(design.scale_out(size))
    _say('%s: one-minion scale-outs %s s, median %.1f s' % (
        design.label, ', '.join('%.1f' % s for s in samples), statistics.median(samples)))
    return statistics.median(samples)


def measure(plane, root: str | None) -> dict[str, float]:
    """Every figure; the old driver's only when ``root`` (its templates) is given."""
    heat = plane.heat('demo', direct=True)
    plane.cloud.set_behaviour([], {'boot_seconds': BOOT_SECONDS})
    figures: dict[str, float] = {}

    small = _celtic(plane, heat, 'cel3', 3)
    small.create()
    figures['celtic_scale_out_seconds_n3'] = _median_scale_out(small, 3, [])
    small.delete()

    big = _celtic(plane, heat, 'cel%d' % LARGE, LARGE)
    figures['celtic_create_seconds_n50'] = big.create()
    before = big.rows()
    first = big.scale_out(LARGE + 1)
    per, fixed = _per_minion(before, big.rows(), 'celtic')
    figures['celtic_scale_out_seconds_n50'] = _median_scale_out(big, LARGE + 1, [first])
    big.delete()
    predicted = celtic_stack.resource_count(minions=LARGE)
    if len(before) != predicted:
        raise RuntimeError('celtic: Heat holds %d resources at %d minions, the driver '
                           'predicts %d' % (len(before), LARGE, predicted))
    figures['celtic_resources_per_minion'] = per
    figures['celtic_fixed_resources'] = fixed
    figures['celtic_max_minions'] = (HEAT_LIMIT - fixed) // per
    figures['scale_out_growth_ratio'] = (figures['celtic_scale_out_seconds_n50']
                                         / figures['celtic_scale_out_seconds_n3'])
    if root is None:
        return figures

    old = _old(heat, root, 'old%d' % LARGE, LARGE)
    figures['old_create_seconds_n50'] = old.create()
    before = old.rows()
    try:
        figures['old_scale_out_seconds_n50'] = old.scale_out(LARGE + 1, OLD_UPDATE_TIMEOUT)
    except TimeoutError as error:
        _say('old driver: %s; reporting the time-box as a lower bound' % error)
        figures['old_scale_out_seconds_n50'] = OLD_UPDATE_TIMEOUT
    old_per, old_fixed = _per_minion(before, old.rows(), 'old')
    old.delete()
    figures['old_max_minions'] = (HEAT_LIMIT - old_fixed) // old_per
    _say('old driver: %d resources per minion, %d fixed' % (old_per, old_fixed))
    return figures


ORDER = ('celtic_resources_per_minion', 'celtic_fixed_resources', 'celtic_max_minions',
         'old_max_minions', 'celtic_create_seconds_n50', 'old_create_seconds_n50',
         'celtic_scale_out_seconds_n3', 'celtic_scale_out_seconds_n50',
         'scale_out_growth_ratio', 'old_scale_out_seconds_n50')


def main() -> int:
    backend = backend_mod.from_environment(
        os.environ.get('CELTIC_HARNESS_BACKEND') or 'mariadb')
    root = None
    if not quick():
        try:
            root = old_driver.fetch()
        except Exception as error:
            _say('cannot get the old driver\'s templates: %s' % error)
            return 1
    plane = controlplane.ControlPlane(backend=backend, with_magnum=False, progress=_say)
    try:
        plane.start()
        _say('control plane: %s, %d heat-engine worker(s)'
             % (plane.backend.describe(), plane.engine_workers))
        figures = measure(plane, root)
    except Exception as error:  # a benchmark that cannot measure says why
        _say('failed: %s' % error)
        return 1
    finally:
        plane.stop()
    for name in ORDER:
        if name not in figures:
            continue   # the quick variant does not run the old driver
        value = figures[name]
        # figures are named for the size measured: n50 in the full run
        shown = name.replace('_n50', '_n%d' % LARGE)
        print('%s: %s' % (shown, value if isinstance(value, int) else '%.2f' % value))
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
