"""Heat stacks -> the cluster's and its nodegroups' status, reasons and addresses.

Pure functions over plain data, so every transition of the Magnum contract is tested
without a Heat or a database. The driver feeds them the result of one ``GET`` per stack
(the cluster's, plus one per non-default nodegroup) and applies the result.

Only statuses Magnum's periodic job knows how to report are produced: CREATE, UPDATE,
DELETE and ROLLBACK with IN_PROGRESS, COMPLETE or FAILED.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping, Sequence

from magnum_celtic.heat import StackState, friendly

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


@dataclasses.dataclass
class NodeGroupResult:
    status: str
    reason: str
    addresses: list[str] | None


@dataclasses.dataclass
class ClusterResult:
    """What to write back: None means "leave as it is"."""
    status: str
    reason: str | None = None
    api_address: str | None = None
    coe_version: str | None = None
    nodegroups: dict[str, NodeGroupResult] = dataclasses.field(default_factory=dict)
    destroy: list[str] = dataclasses.field(default_factory=list)


def _state(status: str) -> str:
    return status.rsplit('_', 1)[-1] if '_' in status else status


def _action(status: str) -> str:
    return status.rsplit('_', 1)[0]


_RESOURCE_PATH = re.compile(r'resources\.([A-Za-z0-9_.\-]+?)(?:\.resources\.|: )')


def failure_reason(stack: StackState) -> str:
    """The failing resource and its reason, from Heat's stack status reason.

    Heat says e.g. ``Resource CREATE failed: WaitConditionFailure: resources.minions.
    resources.wait: k1-minion-2: step kubeadm-join failed: ...``; the user needs the
    role, the resource and the node's own words.
    """
    reason = (stack.reason or '').strip()
    if not reason:
        return 'Heat stack %s is %s' % (stack.name or stack.id, stack.status)
    reason = friendly(reason)
    match = re.search(r'((?:resources\.[A-Za-z0-9_\-]+\.?)+): (.*)$', reason, re.S)
    if match:
        path = '.'.join(p for p in match.group(1).split('.')
                        if p and p != 'resources')
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


def _nodegroup_status(current: str, stack: StackState | None,
                      deleting_cluster: bool) -> tuple[str, str]:
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
    if action == 'CREATE' and _action(current) == 'UPDATE':
        status = 'UPDATE_' + state
    reason = failure_reason(stack) if state == FAILED else ''
    return status, reason


def cluster_status(cluster_status: str, cluster_stack: StackState | None,
                   nodegroups: Sequence[NodeGroupView],
                   pool_stacks: Mapping[str, StackState | None]) -> ClusterResult:
    """Map the stacks of a cluster to the cluster's and nodegroups' new state.

    :param cluster_status: the cluster's current (Magnum) status
    :param cluster_stack: the cluster's stack, None when Heat has no such stack
    :param nodegroups: every nodegroup of the cluster
    :param pool_stacks: the stack of each non-default nodegroup, by nodegroup name
    """
    deleting = cluster_status == 'DELETE_IN_PROGRESS'
    result = ClusterResult(status=cluster_status)
    if cluster_stack is not None:
        api = cluster_stack.outputs.get('api_address')
        if isinstance(api, str) and api.startswith('https://') and '://:' not in api:
            result.api_address = api
        version = cluster_stack.outputs.get('kube_version')
        if isinstance(version, str) and version:
            result.coe_version = version

    states: list[str] = []
    failures: list[str] = []
    for ng in nodegroups:
        own_stack = ng.is_default or not ng.stack_id
        stack = cluster_stack if own_stack else pool_stacks.get(ng.name)
        addrs = _nodegroup_addresses(ng, cluster_stack, stack)
        if not ng.status.endswith(IN_PROGRESS) and not deleting:
            result.nodegroups[ng.name] = NodeGroupResult(ng.status, None, addrs)
            continue
        status, reason = _nodegroup_status(ng.status, stack, deleting)
        if not ng.is_default and status == 'DELETE_COMPLETE':
            result.destroy.append(ng.name)
        result.nodegroups[ng.name] = NodeGroupResult(status, reason or None, addrs)
        states.append(status)
        if status.endswith(FAILED):
            failures.append('%s: %s' % (ng.name, reason or status))

    result.status, result.reason = _aggregate(cluster_status, cluster_stack, states,
                                              failures)
    return result


def _nodegroup_addresses(ng: NodeGroupView, cluster_stack: StackState | None,
                         stack: StackState | None) -> list[str] | None:
    if ng.role == 'master':
        return addresses(cluster_stack, 'master_addresses')
    if ng.is_default:
        return addresses(cluster_stack, 'minion_addresses')
    return addresses(stack, 'addresses')


def _aggregate(current: str, cluster_stack: StackState | None, states: list[str],
               failures: list[str]) -> tuple[str, str | None]:
    action = _action(current)
    if action == 'DELETE':
        if cluster_stack is None and all(s == 'DELETE_COMPLETE' for s in states):
            return 'DELETE_COMPLETE', 'deleted'
        if cluster_stack is not None and cluster_stack.status == 'DELETE_FAILED':
            return 'DELETE_FAILED', failure_reason(cluster_stack)
        if failures:
            return 'DELETE_FAILED', '; '.join(failures)
        return 'DELETE_IN_PROGRESS', None
    if action == 'CREATE':
        if cluster_stack is None:
            return 'CREATE_FAILED', 'the cluster\'s Heat stack does not exist'
        stack_action, state = _action(cluster_stack.status), _state(cluster_stack.status)
        if stack_action == 'CREATE' and state == FAILED:
            return 'CREATE_FAILED', failure_reason(cluster_stack)
        if stack_action == 'CREATE' and state == COMPLETE:
            return 'CREATE_COMPLETE', 'Stack CREATE completed successfully'
        return 'CREATE_IN_PROGRESS', None
    if action in ('UPDATE', 'ROLLBACK'):
        stack_status = cluster_stack.status if cluster_stack is not None else ''
        if (any(s.endswith(IN_PROGRESS) for s in states)
                or (_action(stack_status) in ('UPDATE', 'ROLLBACK')
                    and stack_status.endswith(IN_PROGRESS))):
            return current if current.endswith(IN_PROGRESS) else 'UPDATE_IN_PROGRESS', None
        if failures:
            return 'UPDATE_FAILED', '; '.join(failures)
        if stack_status in ('UPDATE_FAILED', 'ROLLBACK_FAILED', 'ROLLBACK_COMPLETE'):
            return stack_status, failure_reason(cluster_stack)
        return 'UPDATE_COMPLETE', 'Stack UPDATE completed successfully'
    return current, None
