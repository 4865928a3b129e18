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

"""Heat's resource cap, for real, and what the driver makes of it.

Heat documents ``max_resources_per_stack`` (1000 by default) as a cap on the rows of a
whole stack tree, and the driver keeps celtic stacks within it (925 minions with 3
masters, 2 proxies and 3 storage nodes), refusing a bigger create or resize before Heat
is called. What Heat 27 itself enforces with the convergence engine is narrower, as
measured here: every template alone, when Heat creates the stack or nested stack made
from it (heat/engine/service.py, ``_validate_template``). Its tree-wide check
(heat/engine/resources/stack_resource.py, ``_validate_nested_resources``) runs only while
validating a stack that is not stored yet, where the tree counts 0 rows: a 1001-row
celtic stack is created and updated without complaint (seen in this lab).

The tests: the largest stack the driver allows (1000 resources) is created, Heat holds
exactly the rows the driver predicts, and it can still change; and the template Heat
does check, the minion pool's (minion_nodes.yaml, rendered with one server per minion),
is refused by Heat one server above the cap: Heat validates a template resource's
template with the request, so the create itself gets Heat's own error (HTTP 400) and
nothing is made; the driver turns it into advice naming the cap and the settings to
raise.

The big-stack test stops once Heat holds the whole tree. The masters, proxies and
storage nodes take their time to boot, and Nova (the lab's stand-in) refuses every
minion server as it would over quota, so no 925 servers are built. That stack is not
deleted (a delete starts its 925 servers one second apart, doc/harness.md: a quarter of
an hour for nothing): the lab's Heat and its databases are thrown away at the end.
Run: tox -e heat-limit (by hand, like the full benchmarks; the README has its figures).
"""

from __future__ import annotations

import time

import pytest

from heatclient import exc as heat_exc

from magnum_celtic import heat as heat_api
from magnum_celtic import vendordata
from magnum_celtic.conf import CONF
from magnum_celtic.lab import celtic_stack
from magnum_celtic.lab import heatwatch

pytestmark = pytest.mark.heat_limit

QUOTA = 'Quota exceeded for instances: Requested 1, but already used 0 of 0 instances'
TIMEOUT = 900
HEAT_LIMIT_TEXT = 'Maximum resources per stack exceeded'


def _largest_pool(limit: int) -> int:
    """The driver's own prediction: the most minions whose stack stays within limit."""
    per_minion = celtic_stack.resource_count(minions=2) - celtic_stack.resource_count(
        minions=1)
    fixed = celtic_stack.resource_count(minions=1) - per_minion
    largest = (limit - fixed) // per_minion
    assert celtic_stack.resource_count(minions=largest) <= limit
    assert celtic_stack.resource_count(minions=largest + 1) > limit
    return largest


def _create(lab, name: str, minions: int):
    heat = lab.heat('demo')
    created = celtic_stack.create(heat, name, lab=lab, minions=minions, timeout_mins=20)
    return heat, created['stack']['id']


def _physical_id(heat, stack_id: str, name: str) -> str:
    try:
        return heat.resources.get(stack_id, name).physical_resource_id or ''
    except heat_exc.HTTPNotFound:  # not created yet
        return ''


def _wait_rows(heat, stack_id: str, minions: int) -> int:
    """Wait until Heat holds the minions' servers (minion_nodes.yaml's members) (it stores a nested
    stack's rows when it creates that stack), then count the rows of the whole tree
    once (a nested listing of 1000 rows takes Heat tens of seconds: 27 s on 2026-12-08)."""
    started = time.monotonic()
    members = 0
    while time.monotonic() - started < TIMEOUT:
        pool = _physical_id(heat, stack_id, 'minions')
        group = _physical_id(heat, pool, 'nodes') if pool else ''
        members = sum(1 for r in heat.resources.list(group)
                      if r.resource_type == 'OS::Nova::Server') if group else 0
        if members >= minions:
            break
        time.sleep(5)
    assert members == minions, 'Heat holds %d of %d minion rows' % (members, minions)
    return len(heatwatch.rows(heat, stack_id))


def _parameters_update(heat, stack_id: str, minions: int):
    """The update the driver's resize sends, straight to Heat."""
    update = celtic_stack.scale_kwargs(heat, stack_id, minions)
    return heat.stacks.update(stack_id, **update)


@pytest.fixture
def refusing_nova(behaviour):
    # the other roles stay BUILD meanwhile: no simulated node runs
    behaviour({'match': 'lim*-minion-*', 'refuse': QUOTA}, boot_seconds=TIMEOUT)


def test_heat_refuses_a_pool_over_the_cap_and_the_driver_says_what_to_raise(lab):
    limit = lab.heat_options['max_resources_per_stack']
    # one pool template of 1001 servers (and its server group); sent as the driver
    # sends it, through its Heat client
    oversized = celtic_stack.request('lim-over', minions=limit + 1, timeout_mins=20)
    with pytest.raises(heat_api.HeatRejected) as refused:
        heat_api.Heat(lab.session('demo')).create(oversized.create_kwargs())
    message = str(refused.value)
    assert 'max_resources_per_stack' in message
    assert 'heat.conf' in message
    assert 'separate nodegroup' in message
    assert HEAT_LIMIT_TEXT not in message  # Heat's words replaced by advice
    # refused before anything was made
    assert [s.stack_name for s in lab.heat('demo').stacks.list()] == []
    assert lab.cloud.count('servers') == 0
    print('\n%d minions: Heat refuses the request ("%s"); the driver says: %s'
          % (limit + 1, HEAT_LIMIT_TEXT, message))


def test_the_largest_stack_the_driver_allows_is_created_and_can_change(
        lab, refusing_nova):
    # last: this stack keeps Heat busy until the lab stops
    limit = lab.heat_options['max_resources_per_stack']
    largest = _largest_pool(limit)
    assert largest >= 300
    expected = celtic_stack.resource_count(minions=largest)
    assert expected <= limit
    heat, stack_id = _create(lab, 'lim-max', largest)
    started = time.monotonic()
    assert _wait_rows(heat, stack_id, largest) == expected
    stored = time.monotonic() - started
    reads = _timed_reads(lab, stack_id, 'lim-max')
    _parameters_update(heat, stack_id, largest)  # a resize of it is accepted
    print('\n%d minions: %d resources stored by Heat after %.0fs; an update is accepted'
          % (largest, expected, stored))
    print('reads of that stack while Heat still builds it (seconds): %s'
          % ', '.join('%s %.1f' % item for item in reads.items()))


def _timed_reads(lab, stack_id: str, name: str) -> dict[str, float]:
    """The driver's status-poll reads of the stack, each within ``[celtic]
    heat_read_timeout`` (they raise HeatUnavailable past it), and celtic-vendordata's
    read of the whole tree (not bounded so), timed."""
    seconds = {}
    poll = heat_api.Heat(lab.session('demo'))
    unbounded = heat_api.Heat(lab.session('demo'), bounded_reads=False)
    for what, read in (
            ('status poll', lambda: poll.get(stack_id, name, outputs=False)),
            ('outputs', lambda: poll.get(stack_id, name, outputs=True)),
            ('vendordata tree', lambda: unbounded.resources(
                stack_id, name, nested_depth=vendordata.NESTED_DEPTH))):
        started = time.monotonic()
        assert read() is not None, what
        seconds[what] = time.monotonic() - started
    bound = CONF.celtic.heat_read_timeout
    assert seconds['status poll'] + seconds['outputs'] < bound / 2, (
        'the status poll\'s reads of the largest stack took %s: too close to '
        '[celtic] heat_read_timeout (%d s)' % (seconds, bound))
    return seconds
