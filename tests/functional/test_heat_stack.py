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

"""The celtic Heat templates on a real Heat 27, without Magnum or the driver.

A celtic stack (3 masters, 2 proxies, 3 minions, 3 storage nodes) is created from the
templates with python-heatclient on a Keystone session, as an operator would with
``openstack stack create``. Every server is a stand-in whose simulated node runs the
real shell library: it gets its secrets from celtic-vendordata (the service's code, with
the lab's stacks as its clusters: lab/heat_clusters.py) through the Nova stand-in's
DynamicJSON call, and reports through the service's signal relay to its group's wait
condition; the stack only completes when every node's signal arrived. Then the minion
pool grows by one, shrinks by a chosen member, and the stack is deleted: nothing may be
left in Heat, in the fake cloud or in Heat's Keystone stack domain.
"""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from magnum_celtic.lab import celtic_stack
from magnum_celtic.lab import heatwatch

STACK = 'hlab'
FIXED = ipaddress.ip_network('10.0.0.0/24')
FLOATING = ipaddress.ip_network('172.24.4.0/24')
TIMEOUT = 900


def _servers(lab, prefix: str) -> dict[str, dict]:
    servers = lab.cloud.snapshot()['servers'].values()
    return {s['name']: s for s in servers if s['name'].startswith(prefix + '-')}


def _console(lab, server: dict) -> str:
    path = os.path.join(lab.cloud.node_dir(server['name'], server['id']), 'console.log')
    with open(path) as f:
        return f.read()


def _wait_data(heat, tree) -> dict[str, dict[str, str]]:
    """Every wait condition's data, by the id of its stack: node name -> the data its
    node sent (the relay signals with the node's name as the id)."""
    data = {}
    for row in tree:
        if row.type == 'OS::Heat::WaitCondition':
            res = heat.resources.get(row.stack_id, row.name, with_attr=['data'])
            data[row.stack_id] = json.loads(res.attributes['data'] or '{}')
    return data


def _assert_nothing_left(lab, stack_name: str, baseline: dict) -> None:
    """No stack of that name in Heat, and nothing in the cloud beyond baseline."""
    heat = lab.heat('demo')
    left = ['%s (%s)' % (s.stack_name, s.stack_status)
            for s in heat.stacks.list(show_nested=True)
            if s.stack_name.startswith(stack_name) and s.stack_status != 'DELETE_COMPLETE']
    assert left == [], 'Heat still has stacks %s' % left
    cloud_left = {kind: sorted(set(names) - set(baseline.get(kind, [])))
                  for kind, names in lab.cloud.leftovers().items()}
    assert not any(cloud_left.values()), 'the cloud still has %s' % cloud_left


def _stack_domain(lab) -> tuple[list, list[str]]:
    """The projects and the user names in Heat's Keystone stack domain."""
    from keystoneclient.v3 import client as ks_client
    keystone = ks_client.Client(session=lab.session('admin'), interface='public')
    domain = keystone.domains.find(name='heat')
    return (keystone.projects.list(domain=domain),
            [u.name for u in keystone.users.list(domain=domain)])


@pytest.fixture(scope='module')
def stack(lab):
    """The module's celtic stack: created by the first test, deleted by the last."""
    heat = lab.heat('demo')
    baseline = lab.cloud.leftovers()
    created = celtic_stack.create(heat, STACK, lab=lab)
    state = {'id': created['stack']['id'], 'baseline': baseline}
    yield state
    try:
        heat.stacks.delete(state['id'])
        heatwatch.wait(heat, state['id'], timeout=TIMEOUT, gone_ok=True)
    except Exception:  # the last test deletes it; this only cleans up after a failure
        pass


def test_create_completes_when_every_node_signalled(lab, stack):
    heat = lab.heat('demo')
    final = heatwatch.wait(heat, stack['id'], timeout=TIMEOUT)
    tree = heatwatch.rows(heat, stack['id'])
    assert final.stack_status == 'CREATE_COMPLETE', (
        '%s: %s\n%s' % (final.stack_status, final.stack_status_reason,
                        '\n'.join(heatwatch.failures(tree))))
    outputs = heatwatch.outputs(final, heat)
    stack['outputs'] = outputs

    api = outputs['api_address']
    assert api.startswith('https://') and api.endswith(':6443')
    assert ipaddress.ip_address(api[len('https://'):-len(':6443')]) in FLOATING
    for key, count in (('master_addresses', 3), ('minion_addresses', 3),
                       ('proxy_addresses', 2), ('storage_addresses', 3)):
        addresses = outputs[key]
        assert len(addresses) == count == len(set(addresses)), (key, addresses)
        assert all(ipaddress.ip_address(a) in FIXED for a in addresses), (key, addresses)
    assert ipaddress.ip_address(outputs['api_vip']) in FIXED
    assert outputs['api_vip'] not in outputs['master_addresses']

    servers = _servers(lab, STACK)
    assert sorted(servers) == sorted(
        ['%s-master-%d' % (STACK, i) for i in range(3)]
        + ['%s-minion-%d' % (STACK, i) for i in range(3)]
        + ['%s-proxy-%d' % (STACK, i) for i in range(2)]
        + ['%s-storage-%d' % (STACK, i) for i in range(3)])
    assert all(s['status'] == 'ACTIVE' for s in servers.values())
    assert sorted(outputs['minion_server_ids']) == sorted(
        s['id'] for n, s in servers.items() if '-minion-' in n)

    # each node got its secrets from celtic-vendordata and reported through its signal
    # relay with the real library: its wait condition holds "<node>: <role> ready" under
    # the node's name (a master's: its name and instance id, so a master that replaces
    # a removed one of the same name is waited for), and nothing else signalled
    def report_id(name, server):
        return '%s %s' % (name, server['id']) if '-master-' in name else name

    by_condition = _wait_data(heat, tree)
    data = {k: v for signals in by_condition.values() for k, v in signals.items()}
    assert sorted(data) == sorted(report_id(n, s) for n, s in servers.items()), (
        by_condition)
    for name, server in servers.items():
        role = name.split('-')[-2]
        assert data[report_id(name, server)] == '%s: %s ready' % (name, role), (
            name, by_condition)
        assert 'reported SUCCESS' in _console(lab, server)
    relayed = open(os.path.join(lab.log_dir(), 'celtic-vendordata-lab.log')).read()
    for name, server in servers.items():
        assert 'signal of instance %s (%s, SUCCESS) relayed' % (
            server['id'], report_id(name, server)[:64]) in relayed


def test_each_cloud_object_is_one_heat_resource(lab, stack):
    heat = lab.heat('demo')
    tree = heatwatch.rows(heat, stack['id'])
    servers = [r for r in tree if r.type == 'OS::Nova::Server']
    assert len(servers) == 11
    # stand-ins are plugins: no nested stack behind a server, port or floating IP
    assert not any(r.nested for r in tree if r.type.startswith(('OS::Nova', 'OS::Neutron',
                                                                'OS::Cinder')))
    assert lab.cloud.count('servers') >= 11
    stack['rows'] = len(tree)


def test_resource_count_matches_the_drivers_formula(lab, stack):
    from magnum_celtic import budget
    from magnum_celtic import sample
    spec = sample.sample_spec(masters=3, minions=3)
    assert (spec.proxies.count, spec.storage.count) == (2, 3)
    assert budget.resource_count(spec) == stack['rows']


def test_scale_out_creates_only_the_new_minion(lab, stack):
    heat = lab.heat('demo')
    before = heatwatch.rows(heat, stack['id'])
    heat.stacks.update(stack['id'], **celtic_stack.scale_kwargs(heat, stack['id'], 4))
    final = heatwatch.wait(heat, stack['id'], timeout=TIMEOUT)
    after = heatwatch.rows(heat, stack['id'])
    assert final.stack_status == 'UPDATE_COMPLETE', (
        '%s\n%s' % (final.stack_status_reason, '\n'.join(heatwatch.failures(after))))
    change = heatwatch.compare(before, after)
    assert [(r.name, r.type) for r in change.created] == [('3', 'OS::Nova::Server')], (
        change.summary())
    assert change.deleted == [] and change.replaced == [], change.summary()
    outputs = heatwatch.outputs(final, heat)
    assert len(outputs['minion_addresses']) == 4
    new = _servers(lab, STACK)['%s-minion-3' % STACK]
    assert 'reported SUCCESS' in _console(lab, new)
    stack['outputs'] = outputs


def test_scale_in_removes_the_chosen_minion(lab, stack):
    heat = lab.heat('demo')
    ids = stack['outputs']['minion_server_ids']
    chosen = ids[1]
    before = heatwatch.rows(heat, stack['id'])
    update = celtic_stack.scale_kwargs(heat, stack['id'], 3, [chosen])
    heat.stacks.update(stack['id'], **update)
    final = heatwatch.wait(heat, stack['id'], timeout=TIMEOUT)
    after = heatwatch.rows(heat, stack['id'])
    assert final.stack_status == 'UPDATE_COMPLETE', final.stack_status_reason
    change = heatwatch.compare(before, after)
    assert [r.physical_id for r in change.deleted] == [chosen], change.summary()
    assert change.created == [] and change.replaced == [], change.summary()
    remaining = heatwatch.outputs(final, heat)['minion_server_ids']
    assert sorted(remaining) == sorted(i for i in ids if i != chosen)
    assert chosen not in lab.cloud.snapshot()['servers']


def test_delete_leaves_nothing_behind(lab, stack):
    heat = lab.heat('demo')
    heat.stacks.delete(stack['id'])
    final = heatwatch.wait(heat, stack['id'], timeout=TIMEOUT, gone_ok=True)
    assert final is None, '%s: %s\n%s' % (
        final.stack_status, final.stack_status_reason,
        '\n'.join(heatwatch.failures(heatwatch.rows(heat, stack['id']))))
    _assert_nothing_left(lab, STACK, stack['baseline'])
    # Heat removed the stack-domain project and users behind the wait-condition handles
    projects, users = _stack_domain(lab)
    assert projects == []
    assert users == ['heat_domain_admin']


def test_a_failing_node_fails_the_stack_naming_node_and_step(lab, behaviour):
    name = 'hfail'
    behaviour({'match': '%s-minion-1' % name,
               'fail': {'step': 'kubeadm-join',
                        'message': 'the API VIP did not answer on 6443'}})
    heat = lab.heat('demo')
    baseline = lab.cloud.leftovers()
    created = celtic_stack.create(heat, name, lab=lab, masters=1, minions=2, proxies=0,
                                  storage=0)
    final = heatwatch.wait(heat, created['stack']['id'], timeout=TIMEOUT)
    try:
        assert final.stack_status == 'CREATE_FAILED'
        assert ('%s-minion-1: step kubeadm-join failed: the API VIP did not answer on 6443'
                % name) in final.stack_status_reason
    finally:
        heat.stacks.delete(created['stack']['id'])
        heatwatch.wait(heat, created['stack']['id'], timeout=TIMEOUT, gone_ok=True)
    _assert_nothing_left(lab, name, baseline)


def test_without_floating_ips_the_api_address_is_the_vip(lab):
    """environments/no_floating_ip.yaml: no floating IP in the cloud, and the outputs
    that name one (a Heat condition on floating_ips, no yaql) give '' and the VIP."""
    name = 'hnofip'
    heat = lab.heat('demo')
    baseline = lab.cloud.leftovers()
    created = celtic_stack.create(heat, name, lab=lab, masters=1, minions=1, proxies=0,
                                  storage=0,
                                  labels={'master_lb_floating_ip_enabled': 'false'})
    try:
        final = heatwatch.wait(heat, created['stack']['id'], timeout=TIMEOUT)
        assert final.stack_status == 'CREATE_COMPLETE', final.stack_status_reason
        assert str(final.parameters['floating_ips']).lower() == 'false'
        outputs = heatwatch.outputs(final, heat)
        assert ipaddress.ip_address(outputs['api_vip']) in FIXED
        assert outputs['api_address'] == 'https://%s:6443' % outputs['api_vip']
        assert (outputs['api_vip_fip'], outputs['proxy_vip_fip']) == ('', '')
        assert outputs['kube_version'].startswith('v1.')
        left = lab.cloud.leftovers()
        assert set(left.get('floating_ips', [])) == set(baseline.get('floating_ips', []))
    finally:
        heat.stacks.delete(created['stack']['id'])
        heatwatch.wait(heat, created['stack']['id'], timeout=TIMEOUT, gone_ok=True)
    _assert_nothing_left(lab, name, baseline)


DEPLOYMENT_TEMPLATE = '''
heat_template_version: 2021-04-16
resources:
  config:
    type: OS::Heat::SoftwareConfig
    properties: {group: script, config: "#!/bin/sh\\ntrue\\n"}
  server:
    type: OS::Nova::Server
    properties:
      image: ubuntu-24.04
      flavor: m1.small
      networks: [{network: private}]
      user_data_format: SOFTWARE_CONFIG
      software_config_transport: POLL_SERVER_HEAT
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server}
      signal_transport: HEAT_SIGNAL
      actions: [CREATE]
  on_update:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server}
      signal_transport: HEAT_SIGNAL
      actions: [UPDATE]
outputs:
  stdout: {value: {get_attr: [deployment, deploy_stdout]}}
  status_code: {value: {get_attr: [deployment, deploy_status_code]}}
'''


def test_a_software_deployment_completes_only_by_its_agents_signal(lab):
    """The old driver's node plumbing, as the scale benchmark runs it: Heat's own
    SoftwareDeployment; the lab agent reports it through Keystone and heat-api."""
    heat = lab.heat('demo')
    baseline = lab.cloud.leftovers()
    created = heat.stacks.create(stack_name='hsd', template=DEPLOYMENT_TEMPLATE)
    stack_id = created['stack']['id']
    try:
        final = heatwatch.wait(heat, stack_id, timeout=TIMEOUT)
        assert final.stack_status == 'CREATE_COMPLETE', final.stack_status_reason
        outputs = heatwatch.outputs(final, heat)
        # deploy_stdout is only known to Heat from the signal's body
        assert outputs['stdout'] == 'lab agent: deployment CREATE ran'
        assert outputs['status_code'] == 0
        # the server got its own stack-domain user for polling, as with real Heat
        metadata = heat.resources.metadata(stack_id, 'server')
        poll = metadata['os-collect-config']['heat']
        assert poll['user_id'] and poll['password'] and poll['resource_name'] == 'server'
        assert [[i['value'] for i in d['inputs'] if i['name'] == 'deploy_resource_name']
                for d in metadata['deployments']] == [['deployment']]
        # the UPDATE-only deployment has nothing to run at create
        sd = heat.software_deployments.list(server_id=heat.resources.get(
            stack_id, 'server').physical_resource_id)
        assert [d.status for d in sd] == ['COMPLETE']
    finally:
        heat.stacks.delete(stack_id)
        heatwatch.wait(heat, stack_id, timeout=TIMEOUT, gone_ok=True)
    _assert_nothing_left(lab, 'hsd', baseline)
    assert _stack_domain(lab)[1] == ['heat_domain_admin']
