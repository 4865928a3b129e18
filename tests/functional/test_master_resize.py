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


"""Master count change through Magnum (``openstack coe cluster resize --nodegroup
default-master N``): 1 -> 3 -> 5 -> 3 masters, each UPDATE_COMPLETE, the masters that
stay keep their server and address, the new ones get fresh servers, and every master's
server metadata lists the members (what node/members.sh on a running master reads).
5 -> 3 is two stack updates: the leaving masters' servers are deleted only after
master 0 reported them out (its report, through celtic-vendordata's relay, completes
the masters' members_wait; Heat's events show the order). An even count is refused by
the API naming the field; 3 -> 1 (the master that stays would not be a majority) is
refused by the driver before Heat is touched (doc/master-resize.md).

Real Keystone, Heat and Magnum; stand-in servers with 1 s boots; 1 minion, no proxies,
no storage nodes, so the module stays cheap.
"""

from __future__ import annotations

import ipaddress

import pytest

from magnumclient import exceptions as magnum_exc

from magnum_celtic.lab import clusterwatch

TIMEOUT = 600
FIXED = ipaddress.ip_network('10.0.0.0/24')
NAME = 'mres'


def _describe(cluster) -> str:
    return '%s: %s' % (cluster.status, cluster.status_reason)


def _masters(lab) -> dict[str, dict]:
    return {s['name']: s for s in lab.cloud.snapshot()['servers'].values()
            if s['name'].startswith(NAME + '-master-')}


@pytest.fixture(scope='module')
def magnum(magnum_lab):
    return magnum_lab.magnum('demo')


@pytest.fixture(scope='module')
def cluster(magnum_lab, magnum):
    template = clusterwatch.create_template(magnum, 'mres-template')
    created = magnum.clusters.create(
        name=NAME, cluster_template_id=template.uuid, master_count=1, node_count=1,
        keypair='lab', labels={'proxy_count': '0', 'storage_count': '0'},
        merge_labels=True)
    final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
    assert final.status == 'CREATE_COMPLETE', _describe(final)
    state = {'uuid': created.uuid}
    yield state
    try:
        magnum.clusters.delete(created.uuid)
        gone = clusterwatch.wait(magnum, created.uuid, 'DELETE', timeout=TIMEOUT)
        assert gone is None or gone.status == 'DELETE_COMPLETE'
    finally:
        magnum.cluster_templates.delete(template.uuid)


def _resize_masters(magnum_lab, magnum, cluster, count):
    before = _masters(magnum_lab)
    old = magnum.clusters.get(cluster['uuid'])
    magnum.clusters.resize(cluster['uuid'], node_count=count, nodegroup='default-master')
    final = clusterwatch.wait(magnum, cluster['uuid'], 'UPDATE', timeout=TIMEOUT,
                              before=old)
    return old, before, final


@pytest.mark.parametrize('count', [3, 5])
def test_master_resize_grows_the_control_plane(magnum_lab, magnum, cluster, count):
    old, before, final = _resize_masters(magnum_lab, magnum, cluster, count)
    assert final.status == 'UPDATE_COMPLETE', _describe(final)
    assert final.master_count == count
    group = magnum.nodegroups.get(cluster['uuid'], 'default-master')
    assert (group.node_count, group.status) == (count, 'UPDATE_COMPLETE')
    # the masters that were there keep their server and their address
    assert final.master_addresses[:len(old.master_addresses)] == old.master_addresses
    assert len(set(final.master_addresses)) == count
    assert all(ipaddress.ip_address(a) in FIXED for a in final.master_addresses)
    assert final.api_address == old.api_address
    after = _masters(magnum_lab)
    assert sorted(after) == ['%s-master-%d' % (NAME, i) for i in range(count)]
    assert all(after[n]['id'] == s['id'] for n, s in before.items())
    assert all(s['status'] == 'ACTIVE' for s in after.values())
    # every master, old and new, is told the members (node/members.sh reads this)
    for server in after.values():
        assert server['metadata']['celtic_members'].split() == final.master_addresses
    assert len(final.node_addresses) == 1


def test_master_resize_to_an_even_count_is_refused_naming_the_field(magnum, cluster):
    with pytest.raises(magnum_exc.HttpError) as error:
        magnum.clusters.resize(cluster['uuid'], node_count=4, nodegroup='default-master')
    assert ('node_count of the master nodegroup must be one of 1, 3, 5, 7'
            in str(error.value)), error.value
    assert magnum.clusters.get(cluster['uuid']).master_count == 5


def _events(heat, stack_name):
    return list(heat.events.list(stack_name, nested_depth=4))


def test_master_resize_removes_masters_after_they_left(magnum_lab, magnum, cluster):
    old, before, final = _resize_masters(magnum_lab, magnum, cluster, 3)
    assert final.status == 'UPDATE_COMPLETE', _describe(final)
    assert final.master_count == 3
    group = magnum.nodegroups.get(cluster['uuid'], 'default-master')
    assert (group.node_count, group.status) == (3, 'UPDATE_COMPLETE')
    # the masters that stay keep their server, their address and the API address
    assert final.master_addresses == old.master_addresses[:3]
    assert final.api_address == old.api_address
    after = _masters(magnum_lab)
    assert sorted(after) == ['%s-master-%d' % (NAME, i) for i in range(3)]
    assert all(after[n]['id'] == before[n]['id'] for n in after)
    for server in after.values():
        assert server['metadata']['celtic_members'].split() == final.master_addresses
        assert server['metadata']['celtic_removal'] == ''
    heat = magnum_lab.heat('demo')
    name = 'celtic-%s-%s' % (NAME, cluster['uuid'][:8])
    stack = heat.stacks.get(name)
    assert (stack.parameters['master_count'], stack.parameters['master_removal']) == (
        '3', '')
    # the order: master 0's report completed members_wait before any server or port
    # of the leaving masters was deleted
    events = _events(heat, name)
    reported = [e.event_time for e in events if e.resource_name == 'members_wait'
                and e.resource_status in ('CREATE_COMPLETE', 'UPDATE_COMPLETE')]
    deleted = [e.event_time for e in events
               if e.resource_name in ('3', '4', 'master-3', 'master-4')
               and e.resource_status == 'DELETE_IN_PROGRESS']
    assert reported and deleted, (reported, deleted)
    assert max(reported) <= min(deleted), (reported, deleted)
    # the report came from master 0's members run (its console), none from the others
    for server_name, server in after.items():
        with open(magnum_lab.cloud.node_dir(server_name, server['id']) + '/console.log') as f:
            runs = f.read().split('lab node: members ')[1:]
        assert runs, server_name
        reported = any('reported SUCCESS' in run for run in runs)
        assert reported == server_name.endswith('-master-0'), (server_name, runs)


def test_master_resize_3_to_1_is_refused_before_heat(magnum_lab, magnum, cluster):
    old, before, final = _resize_masters(magnum_lab, magnum, cluster, 1)
    assert final.status == 'UPDATE_FAILED', _describe(final)
    assert ('3 -> 1 is refused: the masters that stay must be more than half of the 3 '
            'there are' in final.status_reason), _describe(final)
    assert 'allowed: 3, 5, 7' in final.status_reason, _describe(final)
    assert final.master_count == 3
    after = _masters(magnum_lab)
    assert {n: s['id'] for n, s in after.items()} == {n: s['id'] for n, s in before.items()}
    # Heat was not asked: the cluster's stack is as the 5 -> 3 update left it
    heat = magnum_lab.heat('demo')
    name = 'celtic-%s-%s' % (NAME, cluster['uuid'][:8])
    stack = heat.stacks.get(name)
    assert (stack.stack_status, stack.parameters['master_count']) == ('UPDATE_COMPLETE', '3')
