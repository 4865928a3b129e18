#!/usr/bin/python3
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

"""celtic-heal's decisions (node/heal.sh runs it): which master heals, and which workers
of which nodegroup it replaces. Pure: JSON documents in, one JSON plan out; stdlib only
(the masters run it with ``python3 -I -S``). doc/autoscaling.md, "Auto-healing".

``heal_plan.py leader NODES_JSON ADDRESS...``
    prints the address of the master that heals: the first of the masters' addresses
    (index order) whose Kubernetes Node is Ready. Every master reads the same Node list,
    so they agree without a lock; a master whose own Node is not Ready never heals.

``heal_plan.py plan INPUT_JSON``
    INPUT: ``{"now": epoch seconds, "unhealthy_seconds": N, "max_unhealthy_percent": P,
    "nodes": <kubectl get nodes -o json>, "error_servers": [server ids in ERROR],
    "pools": [{"name", "node_count", "status", "members": [[name, server id], ...]}]}``
    (``pools``: the worker nodegroups only; a master is never in one).
    Prints ``{"log": [[level, line], ...], "replace": null or {"nodegroup",
    "node_count", "ids", "names"}}``: at most one nodegroup per run, and in it every
    unhealthy worker, unless they are more than P% of it (then none: a wider outage).
"""

from __future__ import annotations

import calendar
import json
import sys
import time

#: Node labels of a control-plane node: such a Node is never replaced, whatever pool
#: names it (belt and braces: pools hold workers only)
CONTROL_PLANE_LABELS = ('node-role.kubernetes.io/control-plane',
                        'node-role.kubernetes.io/master')


def ready_condition(node: dict) -> dict | None:
    """The Node's Ready condition, or None when the kubelet never posted one."""
    for condition in (node.get('status') or {}).get('conditions') or ():
        if condition.get('type') == 'Ready':
            return condition
    return None


def internal_ip(node: dict) -> str:
    for address in (node.get('status') or {}).get('addresses') or ():
        if address.get('type') == 'InternalIP':
            return address.get('address') or ''
    return ''


def is_control_plane(node: dict) -> bool:
    labels = (node.get('metadata') or {}).get('labels') or {}
    return any(label in labels for label in CONTROL_PLANE_LABELS)


def epoch(timestamp: str) -> float | None:
    """Kubernetes' RFC 3339 UTC time (``2026-12-07T10:00:00Z``) in epoch seconds."""
    try:
        return float(calendar.timegm(time.strptime(timestamp, '%Y-%m-%dT%H:%M:%SZ')))
    except (TypeError, ValueError):
        return None


def leader(nodes: dict, addresses: list[str]) -> str:
    """The first master address whose Node is Ready ('' when none is)."""
    ready = {internal_ip(n) for n in nodes.get('items') or ()
             if (ready_condition(n) or {}).get('status') == 'True'}
    return next((a for a in addresses if a in ready), '')


def cap(size: int, percent: int) -> int:
    """How many workers of a pool of ``size`` may be unhealthy and still be replaced:
    ``percent`` of the pool, rounded down, but at least one (a pool of one worker can
    always get its worker back)."""
    return max(1, size * percent // 100)


def unhealthy_members(pool: dict, nodes: dict[str, dict], errors: set[str], now: float,
                      bound: int, log: list) -> list[tuple[str, str, str]]:
    """(name, server id, why) of each member of ``pool`` to replace."""
    found = []
    for name, server_id in pool['members']:
        node = nodes.get(name)
        if node is not None and is_control_plane(node):
            log.append(['WARN', 'node %s of nodegroup %s is a control-plane node: never '
                                'replaced' % (name, pool['name'])])
            continue
        if server_id in errors:
            found.append((name, server_id, 'its server %s is in ERROR' % server_id))
            continue
        if node is None:
            # not registered (yet, or deleted by hand): the kubelet says nothing, and a
            # server that is not in ERROR may be booting; nothing to go by
            continue
        condition = ready_condition(node) or {}
        if condition.get('status') == 'True':
            continue
        since = epoch(condition.get('lastTransitionTime') or '')
        if since is None:
            since = epoch((node.get('metadata') or {}).get('creationTimestamp') or '')
        age = int(now - since) if since is not None else 0
        state = 'NotReady' if condition.get('status') == 'False' else 'Unknown'
        if age >= bound:
            found.append((name, server_id, 'Ready is %s since %ds (bound %ds)'
                          % (state, age, bound)))
        else:
            log.append(['INFO', '%s of nodegroup %s: Ready is %s since %ds; replaced '
                                'after %ds' % (name, pool['name'], state, age, bound)])
    return found


def plan(doc: dict) -> dict:
    """The plan of one run (see the module's docstring)."""
    log: list = []
    nodes = {(n.get('metadata') or {}).get('name'): n
             for n in (doc.get('nodes') or {}).get('items') or ()}
    errors = set(doc.get('error_servers') or ())
    now, bound = float(doc['now']), int(doc['unhealthy_seconds'])
    percent = int(doc['max_unhealthy_percent'])
    replace = None
    for pool in doc.get('pools') or ():
        name, size = pool['name'], len(pool['members'])
        status = pool.get('status') or ''
        if not status.endswith('_COMPLETE'):
            log.append(['INFO', 'nodegroup %s is %s: not healing it now' % (name, status)])
            continue
        if size != pool['node_count']:
            log.append(['INFO', 'nodegroup %s: Magnum says %s workers, its stack has %d: '
                                'a change is under way, not healing it now'
                        % (name, pool['node_count'], size)])
            continue
        bad = unhealthy_members(pool, nodes, errors, now, bound, log)
        if not bad:
            continue
        names = ', '.join('%s (%s)' % (n, why) for n, _, why in bad)
        allowed = cap(size, percent)
        if len(bad) > allowed:
            log.append(['WARN', 'nodegroup %s: %d of its %d workers are unhealthy (%s), '
                                'more than auto_healing_max_unhealthy_percent=%d%% allows '
                                '(%d): replacing none, this looks like a wider outage '
                                'than broken nodes' % (name, len(bad), size, names,
                                                       percent, allowed)])
            continue
        if replace is not None:
            log.append(['INFO', 'nodegroup %s: %s wait for the replacement in nodegroup %s'
                        % (name, names, replace['nodegroup'])])
            continue
        log.append(['INFO', 'nodegroup %s: replacing %s' % (name, names)])
        replace = {'nodegroup': name, 'node_count': pool['node_count'],
                   'ids': [i for _, i, _ in bad], 'names': [n for n, _, _ in bad]}
    return {'log': log, 'replace': replace}


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == 'leader':
        with open(argv[1]) as f:
            print(leader(json.load(f), argv[2:]))
        return 0
    if len(argv) == 2 and argv[0] == 'plan':
        with open(argv[1]) as f:
            print(json.dumps(plan(json.load(f)), sort_keys=True))
        return 0
    sys.stderr.write('usage: heal_plan.py leader NODES_JSON ADDRESS... | '
                     'plan INPUT_JSON\n')
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
