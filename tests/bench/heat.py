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

"""Benchmarks of the celtic stack on the real Heat engine (through real Magnum).

Prints one ``name: value`` line each:

  create_critical_path_ratio     stack create time / one server's boot time, every
                                 server taking the same T seconds (goal <= 1.3)
  scale_out_new_resources        Heat resources created by a 50 -> 51 minion resize (goal 1)
  scale_out_replaced_resources   ... replaced or deleted by it (goal 0)
  heat_calls_per_status_poll_n3  HTTP requests to Heat per status poll of the driver,
  heat_calls_per_status_poll_n50 with 3 and with 50 minions (goal 1 and 1)
  resources_per_minion           Heat resources one more minion costs
  max_minions_default_limit      the largest default pool whose stack stays within Heat's
                                 default max_resources_per_stack (1000; goal >= 300)

How: the lab's control plane (back end from CELTIC_HARNESS_BACKEND, embedded by default;
CI uses mariadb) runs two clusters one after the other through python-magnumclient,
both with 3 masters, 2 proxies and 3 storage nodes. The first has 3 minions and servers
that boot in T seconds (CELTIC_BENCH_BOOT_SECONDS, default 30): its stack's create time
comes from Heat's own events, and Magnum's status polls during the create are counted
at the gate in front of heat-api (every request through the catalog endpoint; polls are
the bursts of GETs ten seconds apart). The second has 50 minions: its polls are counted
the same way, then it is resized to 51 and every resource of the stack tree is compared
before and after. Run: python -m tests.bench.run heat (or tox -e bench -- heat).
The quick variant (``--quick``, what .ci/run runs) makes the second cluster 20 minions
(CELTIC_BENCH_HEAT_N) and names its figures for that size (``..._n20``).
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import time

from magnum_celtic import request as req
from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import controlplane
from magnum_celtic.lab import heatwatch

from tests.bench import quick

HEAT_LIMIT = 1000
#: the second cluster's size (the figures say n50 in the full run)
LARGE = int(os.environ.get('CELTIC_BENCH_HEAT_N', '20' if quick() else '50'))
POLL_GAP = 5.0          # Magnum polls every 10 s; one poll's requests are closer than this


def _say(text: str) -> None:
    sys.stderr.write('[bench heat %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


def _template(magnum):
    return clusterwatch.create_template(magnum, 'bench', image_id='ubuntu-24.04',
                                        flavor_id='m1.medium', master_flavor_id='m1.medium')


def _stack_id(cluster) -> str:
    return getattr(cluster, 'cluster_id', None) or getattr(cluster, 'stack_id', None)


def _event_time(event) -> float:
    stamp = event.event_time.replace('Z', '+00:00')
    return datetime.datetime.fromisoformat(stamp).timestamp()


def create_seconds(heat, stack_id: str) -> float:
    """Root stack CREATE_IN_PROGRESS -> CREATE_COMPLETE, from Heat's events."""
    stack = heat.stacks.get(stack_id)
    events = [e for e in heat.events.list(stack_id)
              if e.resource_name == stack.stack_name]
    start = min(_event_time(e) for e in events if e.resource_status == 'CREATE_IN_PROGRESS')
    end = max(_event_time(e) for e in events if e.resource_status == 'CREATE_COMPLETE')
    return end - start


def polls(requests, stack_id: str, since: float, until: float,
          stack_name: str = '') -> list[list[str]]:
    """The requests to Heat about one stack (by its id, or by its name, which its
    nested stacks' names start with: the servers stack whose outputs a poll reads once
    the stack is done) in a time window, grouped into Magnum's status polls (bursts ten
    seconds apart); groups that change something (the create itself) are not polls."""
    def about(line: str) -> bool:
        # the nodes' traffic is not Magnum's: celtic-vendordata lists the tree's
        # resources when a node asks for its secrets, reads the stack's files when a
        # master asks for its add-ons (vendordata/master.txz.b64) and posts the nodes'
        # signals to .../resources/wait_handle/signal; a status poll reads neither
        path = line.split(' HTTP/')[0]
        if '/resources' in path or path.endswith('/files'):
            return False
        return stack_id in line or (bool(stack_name) and '/stacks/%s' % stack_name in line)

    bursts: list[list[tuple[float, str]]] = []
    for t, line in sorted(r for r in requests if since <= r[0] <= until and about(r[1])):
        if bursts and t - bursts[-1][-1][0] < POLL_GAP:
            bursts[-1].append((t, line))
        else:
            bursts.append([(t, line)])
    return [[line for _, line in b] for b in bursts
            if all(line.startswith('GET ') for _, line in b)]


def create_cluster(plane, magnum, template, name: str, minions: int, boot: float):
    """Create a cluster; return (cluster, poll burst sizes seen while it was created)."""
    plane.cloud.set_behaviour([], {'boot_seconds': boot})
    started = time.time()
    created = magnum.clusters.create(name=name, cluster_template_id=template.uuid,
                                     master_count=3, node_count=minions, keypair='lab')
    cluster = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=3600)
    if cluster.status != 'CREATE_COMPLETE':
        raise RuntimeError('%s: %s: %s' % (name, cluster.status, cluster.status_reason))
    found = polls(plane.heat_gate.requests, _stack_id(cluster), started, time.time(),
                  req.cluster_stack_name(cluster.name, cluster.uuid))
    if not found:
        raise RuntimeError('%s: no status poll reached Heat during the create' % name)
    _say('%s: created; %d polls, requests per poll %s; one poll: %s' % (
        name, len(found), [len(p) for p in found],
        ' + '.join(line.split(' HTTP/')[0] for line in found[-1])))
    return cluster, [len(p) for p in found]


def main() -> int:
    boot = float(os.environ.get('CELTIC_BENCH_BOOT_SECONDS', '30'))
    plane = controlplane.ControlPlane(with_magnum=True, progress=_say)
    try:
        plane.start()
        magnum = plane.magnum('demo')
        heat = plane.heat('demo', direct=True)  # not through the gate: polls only there
        template = _template(magnum)

        small, small_polls = create_cluster(plane, magnum, template, 'bench3', 3, boot)
        create_time = create_seconds(heat, _stack_id(small))
        _say('bench3: stack create %.1fs with %.0fs boots' % (create_time, boot))
        magnum.clusters.delete(small.uuid)

        big, big_polls = create_cluster(plane, magnum, template, 'bench%d' % LARGE, LARGE,
                                        1.0)
        clusterwatch.wait(magnum, small.uuid, 'DELETE', timeout=3600)
        before = heatwatch.rows(heat, _stack_id(big))
        old = magnum.clusters.get(big.uuid)
        magnum.clusters.resize(big.uuid, node_count=LARGE + 1)
        resized = clusterwatch.wait(magnum, big.uuid, 'UPDATE', timeout=3600, before=old)
        if resized.status != 'UPDATE_COMPLETE':
            raise RuntimeError('resize: %s: %s' % (resized.status, resized.status_reason))
        after = heatwatch.rows(heat, _stack_id(big))
        change = heatwatch.compare(before, after)
        _say('%d -> %d: %s' % (LARGE, LARGE + 1, change.summary()))
        per_minion = len(after) - len(before)
        fixed = len(after) - per_minion * (LARGE + 1)
        magnum.clusters.delete(big.uuid)
        clusterwatch.wait(magnum, big.uuid, 'DELETE', timeout=3600)

        print('create_critical_path_ratio: %.2f' % (create_time / boot))
        print('scale_out_new_resources: %d' % len(change.created))
        replaced = len(change.replaced) + len(change.deleted)
        print('scale_out_replaced_resources: %d' % replaced)
        print('heat_calls_per_status_poll_n3: %g' % statistics.median(small_polls))
        print('heat_calls_per_status_poll_n%d: %g' % (LARGE, statistics.median(big_polls)))
        print('resources_per_minion: %d' % per_minion)
        limit = (HEAT_LIMIT - fixed) // per_minion if per_minion > 0 else 0
        print('max_minions_default_limit: %d' % limit)
        sys.stdout.flush()
        return 0
    except Exception as error:  # a benchmark that cannot measure says why
        plane.keep_state = True
        _say('failed: %s (service logs kept in %s)' % (error, plane.log_dir()))
        return 1
    finally:
        plane.stop()


if __name__ == '__main__':
    sys.exit(main())
