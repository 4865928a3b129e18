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

"""Heat stacks -> cluster and nodegroup status: every transition, no Heat, no DB."""

from __future__ import annotations

import pytest

from magnum_celtic import status
from magnum_celtic.outputs import StackState

OUTPUTS = {'api_address': 'https://172.24.4.10:6443', 'api_vip': '10.0.0.5',
           'api_vip_fip': '172.24.4.10', 'kube_version': 'v1.36',
           'master_addresses': ['10.0.0.11', '10.0.0.12', '10.0.0.13'],
           'minion_addresses': ['10.0.0.21', None, '10.0.0.22']}
WAIT_FAILURE = ('Resource CREATE failed: WaitConditionFailure: resources.minions.'
                'resources.wait: k1-minion-0: step kubeadm-join failed: token expired')


def stack(stack_status, reason='', outputs=OUTPUTS, name='celtic-k1'):
    return StackState(id='stack-id', name=name, status=stack_status, reason=reason,
                      outputs=dict(outputs))


def ngs(master='CREATE_IN_PROGRESS', worker='CREATE_IN_PROGRESS', pools=()):
    views = [status.NodeGroupView('default-master', 'master', True, master, None),
             status.NodeGroupView('default-worker', 'worker', True, worker, None)]
    views += [status.NodeGroupView(name, 'worker', False, st, stack_id)
              for name, st, stack_id in pools]
    return views


def ng_status(result):
    return {name: r.status for name, r in result.nodegroups.items()}


# ---- the cluster's own status ------------------------------------------------------

@pytest.mark.parametrize('current,stack_status,worker,expected', [
    ('CREATE_IN_PROGRESS', 'CREATE_IN_PROGRESS', 'CREATE_IN_PROGRESS',
     'CREATE_IN_PROGRESS'),
    ('CREATE_IN_PROGRESS', 'CREATE_COMPLETE', 'CREATE_IN_PROGRESS', 'CREATE_COMPLETE'),
    ('CREATE_IN_PROGRESS', 'CREATE_FAILED', 'CREATE_IN_PROGRESS', 'CREATE_FAILED'),
    ('UPDATE_IN_PROGRESS', 'UPDATE_IN_PROGRESS', 'UPDATE_IN_PROGRESS',
     'UPDATE_IN_PROGRESS'),
    ('UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE', 'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE'),
    ('UPDATE_IN_PROGRESS', 'UPDATE_FAILED', 'UPDATE_IN_PROGRESS', 'UPDATE_FAILED'),
    ('UPDATE_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS', 'UPDATE_IN_PROGRESS',
     'ROLLBACK_IN_PROGRESS'),
    ('ROLLBACK_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS',
     'ROLLBACK_IN_PROGRESS'),
    ('ROLLBACK_IN_PROGRESS', 'ROLLBACK_COMPLETE', 'ROLLBACK_IN_PROGRESS',
     'ROLLBACK_COMPLETE'),
    ('ROLLBACK_IN_PROGRESS', 'ROLLBACK_FAILED', 'ROLLBACK_IN_PROGRESS',
     'ROLLBACK_FAILED'),
    ('DELETE_IN_PROGRESS', 'DELETE_IN_PROGRESS', 'DELETE_IN_PROGRESS',
     'DELETE_IN_PROGRESS'),
    ('DELETE_IN_PROGRESS', 'DELETE_FAILED', 'DELETE_IN_PROGRESS', 'DELETE_FAILED'),
])
def test_cluster_status_follows_its_stack(current, stack_status, worker, expected):
    master = 'CREATE_IN_PROGRESS' if current.startswith('CREATE') else (
        'DELETE_IN_PROGRESS' if current.startswith('DELETE') else 'CREATE_COMPLETE')
    reason = WAIT_FAILURE if stack_status.endswith(('FAILED', 'ROLLBACK_COMPLETE')) \
        else ''
    result = status.cluster_status(current, stack(stack_status, reason),
                                   ngs(master, worker), {})
    assert result.status == expected
    assert result.nodegroups['default-worker'].status == stack_status
    assert result.destroy == []
    if expected.endswith('_IN_PROGRESS'):
        assert result.reason is None
    elif reason:
        assert 'minions.wait failed: k1-minion-0: step kubeadm-join failed: token ' \
               'expired' in result.reason


def test_only_reportable_statuses_are_produced():
    reported = {'%s_%s' % (a, s) for a in status.REPORTED_ACTIONS
                for s in ('IN_PROGRESS', 'COMPLETE', 'FAILED')}
    for stack_status in sorted(reported) + ['SUSPEND_COMPLETE', 'CHECK_COMPLETE']:
        for current in ('CREATE_IN_PROGRESS', 'UPDATE_IN_PROGRESS',
                        'DELETE_IN_PROGRESS', 'ROLLBACK_IN_PROGRESS'):
            result = status.cluster_status(
                current, stack(stack_status, 'Resource failed: x'),
                ngs(current, current), {})
            assert result.status in reported, (current, stack_status)


def test_stack_gone_while_deleting_is_delete_complete_and_while_creating_failed():
    deleted = status.cluster_status('DELETE_IN_PROGRESS', None,
                                    ngs('DELETE_IN_PROGRESS', 'DELETE_IN_PROGRESS'), {})
    assert (deleted.status, deleted.reason) == ('DELETE_COMPLETE', 'deleted')
    assert set(ng_status(deleted).values()) == {'DELETE_COMPLETE'}
    created = status.cluster_status('CREATE_IN_PROGRESS', None, ngs(), {})
    assert (created.status, created.reason) == (
        'CREATE_FAILED', "the cluster's Heat stack does not exist")
    assert created.nodegroups['default-worker'].reason == \
        'its Heat stack does not exist'


def test_stack_gone_while_updating_fails_the_update():
    result = status.cluster_status('UPDATE_IN_PROGRESS', None,
                                   ngs('CREATE_COMPLETE', 'UPDATE_IN_PROGRESS'), {})
    assert (result.status, result.reason) == (
        'UPDATE_FAILED', 'default-worker: its Heat stack does not exist')


# ---- reasons -----------------------------------------------------------------------

@pytest.mark.parametrize('reason,expected', [
    (WAIT_FAILURE, 'minions.wait failed: k1-minion-0: step kubeadm-join failed: '
                   'token expired'),
    ('Resource CREATE failed: WaitConditionFailure: resources.masters.resources.group.'
     'resources.wait: k1-master-2: step pcs-cluster-setup failed (exit 1)',
     'masters.group.wait failed: k1-master-2: step pcs-cluster-setup failed (exit 1)'),
    ('Resource CREATE failed: ResourceInError: resources.storage.resources.group.'
     'resources.nodes.resources[1].resources.volume: Went to status error due to '
     '"Unknown"', 'storage.group.nodes[1].volume failed: Went to status error due to '
                  '"Unknown"'),
    ('Resource UPDATE failed: Forbidden: resources.minions.resources.nodes.resources'
     '[2]: Quota exceeded for cores: Requested 4, but already used 20 of 20 cores',
     'minions.nodes[2] failed: Quota exceeded for cores: Requested 4, but already '
     'used 20 of 20 cores'),
    ('Create timed out', 'Create timed out'),
    ('', 'Heat stack celtic-k1 is CREATE_FAILED'),
])
def test_failure_reason_is_the_failing_resource_and_its_reason(reason, expected):
    assert status.failure_reason(stack('CREATE_FAILED', reason)) == expected


def test_a_wait_timeout_says_which_group_who_reported_and_where_to_look():
    reason = status.failure_reason(stack(
        'CREATE_FAILED', 'Resource CREATE failed: WaitConditionTimeout: resources.masters.'
                         'resources.group.resources.wait: 1 of 3 received - k1-master-0: '
                         'master ready'))
    assert reason.startswith('masters: 1 of 3 nodes reported before the wait timeout '
                             '(reported: k1-master-0). ')
    assert 'openstack console log show' in reason
    assert 'no celtic vendordata' in reason
    assert 'WaitConditionTimeout' not in reason
    none = status.failure_reason(stack(
        'CREATE_FAILED', 'Resource CREATE failed: WaitConditionTimeout: resources.minions.'
                         'resources.wait: 0 of 2 received'))
    assert none.startswith('minions: 0 of 2 nodes reported before the wait timeout. ')


def test_heat_resource_limit_reason_says_what_to_raise():
    failed = stack('CREATE_FAILED', 'Request limit exceeded: Maximum resources per '
                   'stack exceeded.')
    reason = status.failure_reason(failed, 1000)
    assert 'max_resources_per_stack, 1000 resources' in reason
    assert '[celtic] heat_max_resources_per_stack in magnum.conf' in reason
    # the limit comes in as an argument (status reads no configuration)
    assert 'as heat.conf sets it' in status.failure_reason(failed, -1)
    result = status.cluster_status('CREATE_IN_PROGRESS', failed, [], {}, 800)
    assert 'max_resources_per_stack, 800 resources' in result.reason


def test_every_failed_nodegroup_is_named_in_the_cluster_reason():
    pool_stack = stack('CREATE_FAILED', 'Resource CREATE failed: WaitConditionFailure: '
                       'resources.wait: k1-gpu-0: step containerd failed (exit 1)',
                       outputs={})
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('UPDATE_FAILED', WAIT_FAILURE),
        ngs('CREATE_COMPLETE', 'UPDATE_IN_PROGRESS',
            [('gpu', 'CREATE_IN_PROGRESS', 'gpu-stack')]),
        {'gpu': pool_stack})
    assert result.status == 'UPDATE_FAILED'
    assert result.reason == (
        'default-worker: minions.wait failed: k1-minion-0: step kubeadm-join failed: '
        'token expired; gpu: wait failed: k1-gpu-0: step containerd failed (exit 1)')


# ---- addresses and version ---------------------------------------------------------

def test_api_address_addresses_and_version_from_the_outputs():
    result = status.cluster_status('CREATE_IN_PROGRESS', stack('CREATE_COMPLETE'),
                                   ngs(), {})
    assert result.api_address == 'https://172.24.4.10:6443'
    assert result.coe_version == 'v1.36'
    assert result.nodegroups['default-master'].addresses == [
        '10.0.0.11', '10.0.0.12', '10.0.0.13']
    # A member whose address Heat does not know yet is left out.
    assert result.nodegroups['default-worker'].addresses == ['10.0.0.21', '10.0.0.22']


@pytest.mark.parametrize('outputs,expected', [
    ({'api_address': 'https://:6443', 'api_vip_fip': '', 'api_vip': '10.0.0.5'},
     'https://10.0.0.5:6443'),
    ({'api_address': 'https://:6443', 'api_vip_fip': '172.24.4.9',
      'api_vip': '10.0.0.5'}, 'https://172.24.4.9:6443'),
    ({'api_address': None, 'api_vip': None}, None),
    ({}, None),
    # worked out once, from the VIP outputs: the template's own api_address is not read
    ({'api_address': 'https://192.0.2.1:6443', 'api_vip': '10.0.0.5'},
     'https://10.0.0.5:6443'),
])
def test_api_address_when_the_template_output_has_no_host(outputs, expected):
    result = status.cluster_status('CREATE_IN_PROGRESS',
                                   stack('CREATE_IN_PROGRESS', outputs=outputs),
                                   ngs(), {})
    assert result.api_address == expected


def test_outputs_heat_has_not_resolved_yet_are_left_alone():
    result = status.cluster_status(
        'CREATE_IN_PROGRESS', stack('CREATE_IN_PROGRESS', outputs={
            'master_addresses': None, 'kube_version': '', 'minion_addresses': 'x'}),
        ngs(), {})
    assert (result.api_address, result.coe_version) == (None, None)
    assert result.nodegroups['default-master'].addresses is None
    assert result.nodegroups['default-worker'].addresses is None


# ---- nodegroups with stacks of their own ------------------------------------------

def test_pool_nodegroup_follows_its_own_stack_and_addresses():
    pool_stack = stack('CREATE_COMPLETE', outputs={'addresses': ['10.0.0.51']})
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('CREATE_COMPLETE'),
        ngs('CREATE_COMPLETE', 'CREATE_COMPLETE',
            [('gpu', 'CREATE_IN_PROGRESS', 'gpu-stack')]), {'gpu': pool_stack})
    assert result.status == 'UPDATE_COMPLETE'
    assert result.nodegroups['gpu'].status == 'CREATE_COMPLETE'
    assert result.nodegroups['gpu'].addresses == ['10.0.0.51']


def test_deleted_pool_nodegroup_is_destroyed_and_the_update_completes():
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('CREATE_COMPLETE'),
        ngs('CREATE_COMPLETE', 'CREATE_COMPLETE',
            [('gpu', 'DELETE_IN_PROGRESS', 'gpu-stack')]), {'gpu': None})
    assert result.destroy == ['gpu']
    assert result.status == 'UPDATE_COMPLETE'


def test_pool_nodegroup_without_a_stack_is_not_judged_by_the_cluster_stack():
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('UPDATE_COMPLETE'),
        ngs('CREATE_COMPLETE', 'CREATE_COMPLETE',
            [('gpu', 'DELETE_IN_PROGRESS', None)]), {})
    assert result.destroy == ['gpu']
    assert result.nodegroups['gpu'].status == 'DELETE_COMPLETE'


def test_an_earlier_failure_of_the_cluster_stack_does_not_fail_a_nodegroup_change():
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('UPDATE_FAILED', WAIT_FAILURE),
        ngs('CREATE_COMPLETE', 'UPDATE_FAILED',
            [('gpu', 'CREATE_IN_PROGRESS', 'gpu-stack')]),
        {'gpu': stack('CREATE_COMPLETE', outputs={})})
    assert result.status == 'UPDATE_COMPLETE'


def test_a_pool_stack_still_working_keeps_the_cluster_updating():
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', stack('CREATE_COMPLETE'),
        ngs('CREATE_COMPLETE', 'CREATE_COMPLETE',
            [('gpu', 'UPDATE_IN_PROGRESS', 'gpu-stack')]),
        {'gpu': stack('UPDATE_IN_PROGRESS', outputs={})})
    assert (result.status, result.reason) == ('UPDATE_IN_PROGRESS', None)


def test_cluster_delete_waits_for_pool_stacks():
    result = status.cluster_status(
        'DELETE_IN_PROGRESS', None,
        ngs('DELETE_IN_PROGRESS', 'DELETE_IN_PROGRESS',
            [('gpu', 'DELETE_IN_PROGRESS', 'gpu-stack')]),
        {'gpu': stack('DELETE_IN_PROGRESS', outputs={})})
    assert result.status == 'DELETE_IN_PROGRESS'
    assert result.destroy == []


def test_a_pool_stack_that_fails_to_delete_fails_the_cluster_delete():
    result = status.cluster_status(
        'DELETE_IN_PROGRESS', None,
        ngs('DELETE_IN_PROGRESS', 'DELETE_IN_PROGRESS',
            [('gpu', 'DELETE_IN_PROGRESS', 'gpu-stack')]),
        {'gpu': stack('DELETE_FAILED', 'Resource DELETE failed: Conflict: '
                      'resources.nodes: port in use', outputs={})})
    assert (result.status, result.reason) == ('DELETE_FAILED',
                                              'gpu: nodes failed: port in use')


def test_a_stack_in_an_action_magnum_cannot_report_leaves_nodegroups_alone():
    result = status.cluster_status('UPDATE_IN_PROGRESS', stack('SUSPEND_COMPLETE'),
                                   ngs('CREATE_COMPLETE', 'UPDATE_IN_PROGRESS'), {})
    assert result.nodegroups['default-worker'].status == 'UPDATE_IN_PROGRESS'
    assert result.status == 'UPDATE_IN_PROGRESS'


# ---- reasons of faults: never raw program text ---------------------------------------

@pytest.mark.parametrize('origin, words', [
    ('oslo_db.exception', "Magnum's database was busy or could not be reached"),
    ('sqlalchemy.exc', "Magnum's database was busy or could not be reached"),
    ('keystoneauth1.exceptions.connection', 'Keystone could not be reached'),
    ('oslo_messaging.exceptions', "Magnum's message bus could not be reached"),
    ('builtins', 'unexpected error in the celtic driver'),
])
def test_an_unexpected_error_is_named_by_what_failed(origin, words):
    reason = status.error_reason('cluster delete', origin)
    assert reason.startswith('cluster delete failed')
    assert words in reason and 'magnum-conductor log' in reason


def test_a_busy_cluster_says_who_and_what_to_do():
    reason = status.busy_reason('cluster resize', 120)
    assert 'another Magnum conductor' in reason and '120 s' in reason
    assert 'run it again' in reason


def test_a_stack_reason_with_sql_is_cut_where_the_sql_starts():
    stack = StackState(id='s1', name='k1', status='CREATE_FAILED',
                       reason='Resource CREATE failed: (pymysql.err.OperationalError) '
                              '(2013, Lost connection) [SQL: SELECT 1]', outputs={})
    reason = status.failure_reason(stack)
    assert reason == ('Resource CREATE failed: internal error (the details are in the '
                      'heat-engine log)')


def test_a_stack_whose_engine_went_down_says_what_to_do():
    stack = StackState(id='s1', name='k1', status='DELETE_FAILED',
                       reason='Engine went down during stack DELETE', outputs={})
    reason = status.failure_reason(stack)
    assert 'heat-engine stopped' in reason and 'run the delete again' in reason


def _stalled(status, started, minutes=1):
    return StackState(id='s1', name='k1', status=status, reason='Stack CREATE started',
                      outputs={}, started=started, timeout_minutes=minutes)


def test_a_stack_past_its_timeout_that_heat_never_ended_fails_saying_why():
    stack = _stalled('CREATE_IN_PROGRESS', 1000.0)
    views = [status.NodeGroupView('default-master', 'master', True,
                                  'CREATE_IN_PROGRESS', None)]
    waiting = status.cluster_status('CREATE_IN_PROGRESS', stack, views, {},
                                    now=1000.0 + 60 + status.STALL_GRACE)
    assert waiting.status == 'CREATE_IN_PROGRESS'
    failed = status.cluster_status('CREATE_IN_PROGRESS', stack, views, {},
                                   now=1000.0 + 61 + status.STALL_GRACE)
    assert failed.status == 'CREATE_FAILED'
    assert 'heat-engine probably stopped' in failed.reason
    assert '1-minute timeout' in failed.reason and 'create it again' in failed.reason


def test_a_stalled_delete_asks_for_the_delete_again():
    stack = _stalled('DELETE_IN_PROGRESS', 0.0, minutes=2)
    assert status.settled(stack, 1000.0).status == 'DELETE_FAILED'
    assert 'run the delete again' in status.settled(stack, 1000.0).reason


@pytest.mark.parametrize('stack', [
    _stalled('CREATE_COMPLETE', 0.0), _stalled('CREATE_IN_PROGRESS', None),
    _stalled('CREATE_IN_PROGRESS', 0.0, minutes=None), None])
def test_only_an_in_progress_stack_with_a_timeout_can_stall(stack):
    assert status.settled(stack, 10 ** 9) is stack
    assert status.settled(_stalled('CREATE_IN_PROGRESS', 0.0), None).status == (
        'CREATE_IN_PROGRESS')


# ---- a resize that never reached Heat -------------------------------------------------

NOW = 1_800_000_000.0


def resizing(count=3, asked_ago=status.RESIZE_SEND_GRACE + 1, role='worker',
             default=True, name='default-worker', stack_id=None):
    return status.NodeGroupView(name, role, default, 'UPDATE_IN_PROGRESS', stack_id,
                                node_count=count, changed_at=NOW - asked_ago)


def counted(stack_status, **parameters):
    return StackState(id='stack-id', name='celtic-k1', status=stack_status, reason='',
                      outputs=dict(OUTPUTS), parameters=parameters)


def test_a_resize_whose_conductor_died_before_heat_got_it_fails_and_restores_the_count():
    """Magnum saved the nodegroup (3 nodes, UPDATE_IN_PROGRESS), the conductor was
    killed inside the driver's hook: the stack still has 1, Heat is not working."""
    master = status.NodeGroupView('default-master', 'master', True, 'CREATE_COMPLETE', None)
    for stack_status in ('CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_FAILED'):
        result = status.cluster_status(
            'UPDATE_IN_PROGRESS', counted(stack_status, minion_count='1', master_count='3'),
            [master, resizing(3)], {}, now=NOW)
        worker = result.nodegroups['default-worker']
        assert (worker.status, worker.node_count) == ('UPDATE_FAILED', 1), stack_status
        assert worker.reason == (
            'magnum-conductor stopped while the celtic driver was sending this resize '
            'to Heat (to 3 nodes); Heat never got it and nothing changed (the nodegroup '
            'has 1): run the resize again')
        assert result.status == 'UPDATE_FAILED'
        assert result.reason == 'default-worker: ' + worker.reason


def test_a_resize_is_not_judged_lost_while_it_may_still_be_on_its_way_or_heat_works():
    master = status.NodeGroupView('default-master', 'master', True, 'CREATE_COMPLETE', None)
    # an earlier update's UPDATE_COMPLETE is not this resize's
    young = status.cluster_status(
        'UPDATE_IN_PROGRESS', counted('UPDATE_COMPLETE', minion_count='1'),
        [master, resizing(3, asked_ago=status.RESIZE_SEND_GRACE - 1)], {}, now=NOW)
    assert young.nodegroups['default-worker'].node_count is None
    assert young.nodegroups['default-worker'].status == 'UPDATE_IN_PROGRESS'
    assert young.status == 'UPDATE_IN_PROGRESS'
    working = status.cluster_status(
        'UPDATE_IN_PROGRESS', counted('UPDATE_IN_PROGRESS', minion_count='1'),
        [master, resizing(3)], {}, now=NOW)
    assert working.status == 'UPDATE_IN_PROGRESS'
    done = status.cluster_status(
        'UPDATE_IN_PROGRESS', counted('UPDATE_COMPLETE', minion_count='3'),
        [master, resizing(3)], {}, now=NOW)
    assert (done.status, done.nodegroups['default-worker'].node_count) == (
        'UPDATE_COMPLETE', None)


def test_a_lost_replacement_keeps_its_count_and_is_told_by_a_stack_never_updated():
    """A resize with nodes_to_remove and the same count (auto-healing's) shows only
    in the stack's action."""
    pool = resizing(2, role='worker', default=False, name='gpu', stack_id='pool-id')
    master = status.NodeGroupView('default-master', 'master', True, 'CREATE_COMPLETE', None)
    worker = status.NodeGroupView('default-worker', 'worker', True, 'CREATE_COMPLETE', None)
    result = status.cluster_status(
        'UPDATE_IN_PROGRESS', counted('CREATE_COMPLETE', minion_count='1'),
        [master, worker, pool], {'gpu': counted('CREATE_COMPLETE', count='2')}, now=NOW)
    assert (result.nodegroups['gpu'].status, result.nodegroups['gpu'].node_count) == (
        'UPDATE_FAILED', 2)
    updated = status.cluster_status(
        'UPDATE_IN_PROGRESS', counted('CREATE_COMPLETE', minion_count='1'),
        [master, worker, pool], {'gpu': counted('UPDATE_COMPLETE', count='2')}, now=NOW)
    assert updated.nodegroups['gpu'].status == 'UPDATE_COMPLETE'


def test_a_master_removal_waiting_for_master_0_is_not_a_lost_resize():
    master = resizing(3, role='master', name='default-master')
    worker = status.NodeGroupView('default-worker', 'worker', True, 'CREATE_COMPLETE', None)
    waiting = counted('UPDATE_COMPLETE', master_count='5', master_removal='10.0.0.14 10.0.0.15')
    result = status.cluster_status('UPDATE_IN_PROGRESS', waiting, [master, worker], {},
                                   now=NOW)
    assert result.nodegroups['default-master'].status != 'UPDATE_FAILED'
    lost = counted('UPDATE_COMPLETE', master_count='5', master_removal='')
    result = status.cluster_status('UPDATE_IN_PROGRESS', lost, [master, worker], {}, now=NOW)
    assert (result.nodegroups['default-master'].status,
            result.nodegroups['default-master'].node_count) == ('UPDATE_FAILED', 5)
