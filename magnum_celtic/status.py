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

"""Heat stacks -> the cluster's and its nodegroups' status, reasons and addresses.

Pure functions over plain data (no Heat client, no configuration: the one limit a
reason mentions comes in as an argument), so every transition of the Magnum contract is
tested without a Heat or a database. The driver feeds them the result of one ``GET`` per
stack (the cluster's, plus one per non-default nodegroup) and applies the result. The
outputs read are named in :mod:`magnum_celtic.outputs`.

Only statuses Magnum's periodic job knows how to report are produced: CREATE, UPDATE,
DELETE and ROLLBACK with IN_PROGRESS, COMPLETE or FAILED.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

from magnum_celtic import outputs as out
from magnum_celtic.outputs import StackState

IN_PROGRESS = 'IN_PROGRESS'
COMPLETE = 'COMPLETE'
FAILED = 'FAILED'
REPORTED_ACTIONS = ('CREATE', 'UPDATE', 'DELETE', 'ROLLBACK')


@dataclasses.dataclass(frozen=True)
class NodeGroupView:
    """What status mapping needs to know about a nodegroup."""
    name: str
    role: str
    is_default: bool
    status: str
    stack_id: str | None
    #: Magnum's node_count (what the running operation asked for)
    node_count: int | None = None
    #: when Magnum last saved the nodegroup (seconds since the epoch): for a resize,
    #: when it asked for it
    changed_at: float | None = None


@dataclasses.dataclass
class NodeGroupResult:
    status: str
    reason: str
    addresses: list[str] | None
    #: the node count to write back (a resize that never reached Heat: the stack's)
    node_count: int | None = None


@dataclasses.dataclass
class ClusterResult:
    """What to write back: None means "leave as it is"."""
    status: str
    reason: str | None = None
    api_address: str | None = None
    coe_version: str | None = None
    nodegroups: dict[str, NodeGroupResult] = dataclasses.field(default_factory=dict)
    destroy: list[str] = dataclasses.field(default_factory=list)


def _split(status: str) -> tuple[str, str]:
    # The state may itself contain '_' (IN_PROGRESS): match the known states.
    for state in (IN_PROGRESS, COMPLETE, FAILED):
        if status.endswith('_' + state):
            return status[:-len(state) - 1], state
    return status, ''


def _state(status: str) -> str:
    return _split(status)[1]


def _action(status: str) -> str:
    return _split(status)[0]


# One step of a Heat resource path: "resources.<name>" or a group member "resources[2]".
_PATH_STEP = r'resources(?:\.[A-Za-z0-9_\-]+|\[\d+\])'


WAIT_TIMEOUT_HELP = (
    '%(where)s: %(got)s of %(want)s nodes reported before the wait timeout%(seen)s. A node '
    'that never reports could not finish booting or could not reach celtic-vendordata: '
    'read its console log (openstack console log show <server>); a line "no celtic '
    'vendordata" there means Nova\'s metadata service is not set up for celtic '
    '(magnum-celtic doc/security.md)')
_WAIT_TIMEOUT = re.compile(r'WaitConditionTimeout: ((?:%s\.?)+): (\d+) of (\d+) received'
                           r'(?: - (.*))?$' % _PATH_STEP, re.S)


def _wait_timeout(reason: str) -> str | None:
    """Heat's "WaitConditionTimeout: resources.masters...wait: 1 of 3 received - k1-
    master-0: master ready" as what the user can check: which group, who reported."""
    match = _WAIT_TIMEOUT.search(reason)
    if not match:
        return None
    groups = re.findall(r'resources\.([A-Za-z0-9_\-]+)', match.group(1))
    nodes = [r.split(':', 1)[0].strip() for r in (match.group(4) or '').split(';')
             if r.strip()]
    return WAIT_TIMEOUT_HELP % {
        'where': groups[0] if groups else 'nodes', 'got': match.group(2),
        'want': match.group(3),
        'seen': ' (reported: %s)' % ', '.join(nodes) if nodes else ''}


#: what failed, by the module of the exception a driver hook met
_ORIGINS = (
    (('oslo_db', 'sqlalchemy', 'pymysql', 'sqlite3', 'psycopg', 'MySQLdb'),
     'Magnum\'s database was busy or could not be reached', 'run it again'),
    (('keystoneauth1', 'keystoneclient'),
     'Keystone could not be reached or refused Magnum\'s service credentials',
     'run it again once Keystone answers'),
    (('oslo_messaging', 'kombu', 'amqp'),
     'Magnum\'s message bus could not be reached', 'run it again'),
)


def error_reason(operation: str, origin: str) -> str:
    """The status_reason of a driver hook that failed on an unexpected exception.

    :param operation: what the user asked for ("cluster delete", "resize", ...)
    :param origin: the module of the exception's class (``oslo_db.exception``...);
        its message is for the log only: it may hold SQL, addresses, internals
    """
    for prefixes, what, todo in _ORIGINS:
        if origin.split('.')[0] in prefixes:
            return '%s failed: %s (details in the magnum-conductor log); %s' % (
                operation, what, todo)
    return ('%s failed on an unexpected error in the celtic driver (details in the '
            'magnum-conductor log, under the cluster\'s uuid); run it again, and tell '
            'the operator if it keeps failing' % operation)


def busy_reason(operation: str, seconds: float) -> str:
    """An operation that waited too long for another conductor's work on the cluster."""
    return ('%s not started: another Magnum conductor has been working on this cluster '
            'for %.0f s; run it again in a moment' % (operation, seconds))


def failure_reason(stack: StackState, max_resources: int | None = 0) -> str:
    """The failing resource and its reason, from Heat's stack status reason.

    Heat says e.g. ``Resource CREATE failed: WaitConditionFailure: resources.minions.
    resources.wait: k1-minion-2: step kubeadm-join failed: ...``; the user needs the
    role, the resource and the node's own words. ``max_resources``: ``[celtic]
    heat_max_resources_per_stack``, named when Heat's resource limit is the reason.
    """
    reason = out.scrub((stack.reason or '').strip())
    if not reason:
        return 'Heat stack %s is %s' % (stack.name or stack.id, stack.status)
    reason = out.friendly(reason, max_resources)
    timeout = _wait_timeout(reason)
    if timeout:
        return timeout
    match = re.search(r'((?:%s\.?)+): (.*)$' % _PATH_STEP, reason, re.S)
    if match:
        steps = re.findall(r'resources(?:\.([A-Za-z0-9_\-]+)|\[(\d+)\])',
                           match.group(1))
        path = ''.join('.' + name if name else '[%s]' % index
                       for name, index in steps).lstrip('.')
        return '%s failed: %s' % (path, match.group(2).strip())
    return reason


def addresses(stack: StackState | None, key: str) -> list[str] | None:
    """A list-of-strings output, or None when it is not (yet) available."""
    if stack is None:
        return None
    value = stack.outputs.get(key)
    if isinstance(value, list):
        return [str(v) for v in value if v]
    return None


def _nodegroup_status(current: str, stack: StackState | None, deleting_cluster: bool,
                      max_resources: int | None) -> tuple[str, str]:
    """New (status, reason) of an in-progress nodegroup from its stack."""
    if stack is None:
        if _action(current) == 'DELETE' or deleting_cluster:
            return 'DELETE_COMPLETE', ''
        return _action(current) + '_FAILED', 'its Heat stack does not exist'
    action, state = _action(stack.status), _state(stack.status)
    if action not in REPORTED_ACTIONS:
        return current, ''
    if _action(current) == 'UPDATE' and action == 'CREATE':
        # A resize that Heat has not picked up yet reads CREATE_COMPLETE.
        return current, ''
    status = '%s_%s' % (action, state)
    reason = failure_reason(stack, max_resources) if state == FAILED else ''
    return status, reason


#: seconds past a stack's own timeout before celtic stops waiting for Heat to end it
STALL_GRACE = 30

#: seconds after Magnum asked for a resize before a stack that does not show it (its
#: count unchanged, Heat not working on it) means the resize never reached Heat
#: (:func:`_resize_not_in_heat`); until then the nodegroup stays in progress
RESIZE_SEND_GRACE = 120
LOST_RESIZE = ('magnum-conductor stopped while the celtic driver was sending this '
               'resize to Heat (to %(asked)s nodes); Heat never got it and nothing '
               'changed (the nodegroup has %(count)s): run the resize again')
#: the stack parameter that holds a nodegroup's count: (role, is_default) -> name
_COUNT_PARAMETER = {('master', True): 'master_count', ('worker', True): 'minion_count'}


def _resize_not_in_heat(ng: NodeGroupView, stack: StackState | None,
                        cluster_stack: StackState | None) -> int | None:
    """The stack's node count when the stack does not show ``ng``'s resize, else None.

    Magnum saves the nodegroup (UPDATE_IN_PROGRESS, the new node_count) before the
    driver's resize hook, which holds the cluster's lock until Heat has the update;
    a magnum-conductor killed inside the hook leaves it so. A poll then finds the
    stack not working and its count parameter not the asked one, or (a resize that
    keeps the count: nodes_to_remove) the stack never updated at all: Heat marks a
    stack it takes an update for UPDATE at once. A master removal's first update
    keeps the count on purpose (master_removal set)."""
    if (ng.status != 'UPDATE_IN_PROGRESS' or stack is None or ng.node_count is None
            or stack.status.endswith('_' + IN_PROGRESS)):
        return None
    if ng.role == 'master' and str((cluster_stack.parameters if cluster_stack else {})
                                   .get(out.MASTER_REMOVAL) or ''):
        return None
    name = _COUNT_PARAMETER.get((ng.role, ng.is_default), 'count')
    try:
        count = int(stack.parameters.get(name))
    except (TypeError, ValueError):
        return None
    untouched = stack.status == 'CREATE_COMPLETE'
    return count if count != ng.node_count or untouched else None


def settled(stack: StackState | None, now: float | None) -> StackState | None:
    """The stack, or, when its operation outlived its timeout (plus STALL_GRACE)
    and Heat still says IN_PROGRESS, the same stack FAILED with the reason why.

    Heat's convergence engine ends an operation at its timeout only while an engine
    works on it: an engine killed in the middle leaves the stack IN_PROGRESS for
    good, and the cluster with it. A new delete of such a stack works (Heat starts
    over), so the user gets a FAILED status and what to do."""
    if (stack is None or now is None or not stack.status.endswith('_' + IN_PROGRESS)
            or stack.started is None or not stack.timeout_minutes):
        return stack
    if now - stack.started <= stack.timeout_minutes * 60 + STALL_GRACE:
        return stack
    action = _action(stack.status)
    return dataclasses.replace(stack, status=action + '_' + FAILED, reason=(
        out.STALLED_HELP % {'action': action, 'minutes': stack.timeout_minutes,
                            'todo': out.what_to_do(action)}))


def cluster_status(cluster_status: str, cluster_stack: StackState | None,
                   nodegroups: Sequence[NodeGroupView],
                   pool_stacks: Mapping[str, StackState | None],
                   max_resources: int | None = 0, now: float | None = None
                   ) -> ClusterResult:
    """Map the stacks of a cluster to the cluster's and nodegroups' new state.

    :param cluster_status: the cluster's current (Magnum) status
    :param cluster_stack: the cluster's stack, None when Heat has no such stack
    :param nodegroups: every nodegroup of the cluster
    :param pool_stacks: the stack of each non-default nodegroup, by nodegroup name
    :param max_resources: ``[celtic] heat_max_resources_per_stack`` (for reasons)
    :param now: the time (seconds since the epoch), to fail a stack whose operation
        outlived its timeout (:func:`settled`); None: never
    """
    deleting = cluster_status == 'DELETE_IN_PROGRESS'
    cluster_stack = settled(cluster_stack, now)
    pool_stacks = {name: settled(stack, now) for name, stack in pool_stacks.items()}
    result = ClusterResult(status=cluster_status)
    if cluster_stack is not None:
        result.api_address = api_address(cluster_stack)
        version = cluster_stack.outputs.get(out.KUBE_VERSION)
        if isinstance(version, str) and version:
            result.coe_version = version

    states: list[str] = []
    failures: list[str] = []
    for ng in nodegroups:
        # A non-default nodegroup lives in a stack of its own; without one (its
        # create failed before Heat had it) there is nothing of it in Heat.
        stack = cluster_stack if ng.is_default else pool_stacks.get(ng.name)
        addrs = _nodegroup_addresses(ng, cluster_stack, stack)
        if not ng.status.endswith(IN_PROGRESS) and not deleting:
            result.nodegroups[ng.name] = NodeGroupResult(ng.status, None, addrs)
            continue
        unsent = _resize_not_in_heat(ng, stack, cluster_stack)
        if unsent is not None:
            if (now is None or ng.changed_at is None
                    or now - ng.changed_at < RESIZE_SEND_GRACE):
                # a hook (another conductor's) may still be sending it: wait
                result.nodegroups[ng.name] = NodeGroupResult(ng.status, None, addrs)
                states.append(ng.status)
                continue
            status, reason = 'UPDATE_FAILED', LOST_RESIZE % {
                'asked': ng.node_count, 'count': unsent}
            result.nodegroups[ng.name] = NodeGroupResult(status, reason, addrs, unsent)
            states.append(status)
            failures.append('%s: %s' % (ng.name, reason))
            continue
        status, reason = _nodegroup_status(ng.status, stack, deleting, max_resources)
        if not ng.is_default and status == 'DELETE_COMPLETE':
            result.destroy.append(ng.name)
        # A success clears the reason an earlier failure left.
        if status.endswith(FAILED):
            new_reason: str | None = reason
        else:
            new_reason = '' if status.endswith(COMPLETE) else None
        result.nodegroups[ng.name] = NodeGroupResult(status, new_reason, addrs)
        states.append(status)
        if status.endswith(FAILED):
            failures.append('%s: %s' % (ng.name, reason or status))

    result.status, result.reason = _aggregate(cluster_status, cluster_stack, states,
                                              failures, max_resources)
    # the first update of a master removal says what it waits for (the stack
    # parameter master_removal, which the output of that name shows)
    removal = str(((cluster_stack.parameters if cluster_stack is not None else None)
                   or {}).get(out.MASTER_REMOVAL) or '')
    if removal and result.status == 'UPDATE_IN_PROGRESS' and result.reason is None:
        result.reason = removal_reason(removal.split(), finishing=False)
    return result


def api_address(cluster_stack: StackState) -> str | None:
    """``https://<the API VIP's floating IP, else the VIP>:6443`` once Heat knows the
    address. Worked out here only, from the two VIP outputs (every celtic stack has
    them); the template's ``api_address`` output says the same to operators."""
    for key in (out.API_VIP_FIP, out.API_VIP):
        address = cluster_stack.outputs.get(key)
        if isinstance(address, str) and address:
            return 'https://%s:6443' % address
    return None


def _nodegroup_addresses(ng: NodeGroupView, cluster_stack: StackState | None,
                         stack: StackState | None) -> list[str] | None:
    if ng.role == 'master':
        return addresses(cluster_stack, out.MASTER_ADDRESSES)
    if ng.is_default:
        return addresses(cluster_stack, out.pool_output(out.ADDRESSES, False))
    return addresses(stack, out.pool_output(out.ADDRESSES, True))


def _aggregate(current: str, cluster_stack: StackState | None, states: list[str],
               failures: list[str], max_resources: int | None) -> tuple[str, str | None]:
    action = _action(current)
    if action == 'DELETE':
        if cluster_stack is None and all(s == 'DELETE_COMPLETE' for s in states):
            return 'DELETE_COMPLETE', 'deleted'
        if cluster_stack is not None and cluster_stack.status == 'DELETE_FAILED':
            return 'DELETE_FAILED', failure_reason(cluster_stack, max_resources)
        if failures:
            return 'DELETE_FAILED', '; '.join(failures)
        return 'DELETE_IN_PROGRESS', None
    if action == 'CREATE':
        if cluster_stack is None:
            return 'CREATE_FAILED', 'the cluster\'s Heat stack does not exist'
        stack_action, state = _action(cluster_stack.status), _state(cluster_stack.status)
        if stack_action == 'CREATE' and state == FAILED:
            return 'CREATE_FAILED', failure_reason(cluster_stack, max_resources)
        if stack_action == 'CREATE' and state == COMPLETE:
            return 'CREATE_COMPLETE', 'Stack CREATE completed successfully'
        return 'CREATE_IN_PROGRESS', None
    if action in ('UPDATE', 'ROLLBACK'):
        # Judge by the nodegroups the operation touched: the cluster stack may still
        # show an earlier update's failure while only a nodegroup's stack changed.
        stack_status = cluster_stack.status if cluster_stack is not None else ''
        if 'ROLLBACK_IN_PROGRESS' in states:
            return 'ROLLBACK_IN_PROGRESS', None
        if (any(s.endswith(IN_PROGRESS) for s in states)
                or (_action(stack_status) in ('UPDATE', 'ROLLBACK')
                    and stack_status.endswith(IN_PROGRESS))):
            return current if current.endswith(IN_PROGRESS) else 'UPDATE_IN_PROGRESS', None
        if failures:
            failed = 'ROLLBACK_FAILED' if 'ROLLBACK_FAILED' in states else 'UPDATE_FAILED'
            return failed, '; '.join(failures)
        if 'ROLLBACK_COMPLETE' in states:
            return 'ROLLBACK_COMPLETE', (failure_reason(cluster_stack, max_resources)
                                         if cluster_stack is not None else None)
        return 'UPDATE_COMPLETE', 'Stack UPDATE completed successfully'
    return current, None


def unhealthy_masters(health_status: str | None,
                      health_status_reason: Mapping[str, object] | None) -> str:
    """What Magnum's health monitor says is wrong with the control plane ('' when
    nothing): the API's error and every master Node that is not Ready (``<node>.Ready``
    entries of ``health_status_reason`` whose node is a master). Only an UNHEALTHY
    cluster is looked at: UNKNOWN (no monitor ran) refuses nothing, the masters check
    etcd themselves before they remove a member (node/members.sh)."""
    if health_status != 'UNHEALTHY' or not isinstance(health_status_reason, Mapping):
        return ''
    found = []
    for key, value in sorted(health_status_reason.items()):
        if key == 'api' and str(value) != 'ok':
            found.append('api: %s' % value)
        elif (key.endswith('.Ready') and '-master-' in key
              and str(value).lower() != 'true'):
            found.append('%s: %s' % (key, value))
    return ', '.join(found)


def removal_reason(leaving: Sequence[str], finishing: bool) -> str:
    """The status_reason of a cluster whose masters are being removed."""
    names = ' '.join(leaving)
    if finishing:
        return ('removing masters 2/2: %s left etcd and corosync; deleting their '
                'servers' % names)
    return ('removing masters 1/2: master 0 takes %s out of Kubernetes, etcd, '
            'corosync and HAProxy' % names)
