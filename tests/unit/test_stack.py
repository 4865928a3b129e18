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

"""The stack request: parameters, secrets, environments, files, resource counts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import tarfile

import pytest
import yaml

from magnum_celtic import sample
from magnum_celtic import spec as spec_mod
from magnum_celtic import budget
from magnum_celtic import expand
from magnum_celtic import outputs as out
from magnum_celtic import request as req
from magnum_celtic import templates

#: the hidden parameters the previous release sent (doc/security.md): none may come back
OLD_SECRET_PARAMETERS = {'ca_key', 'etcd_ca_key', 'front_proxy_ca_key',
                         'service_account_key', 'bootstrap_token', 'master_ha_secret',
                         'proxy_ha_secret', 'lb_client_key'}


@pytest.fixture(scope='module')
def template_set():
    return templates.TemplateSet(templates.default_dir())


@pytest.fixture(scope='module')
def pki():
    return sample.sample_pki()


def spec(labels=None, **kwargs):
    return sample.sample_spec(labels=labels, **kwargs)


def request_for(template_set, pki, labels=None, template=None, **kwargs):
    return req.cluster_request(spec(labels, template=template), pki, template_set,
                               60, **kwargs)


# ---- parameters --------------------------------------------------------------------

def test_parameters_come_from_the_spec_and_the_pki(template_set, pki):
    built = spec({'proxy_count': '3', 'storage_volume_size': '80',
                  'master_lb_allowed_cidrs': '192.0.2.0/24'})
    params = req.cluster_request(built, pki, template_set, 60,
                                 openstack_ca='CA-BUNDLE').parameters
    assert (params['master_count'], params['minion_count'], params['proxy_count'],
            params['storage_count']) == (3, 3, 3, 3)
    assert params['storage_volume_size'] == 80
    assert params['api_allowed_cidrs'] == ['192.0.2.0/24']
    assert params['dns_nameservers'] == ['8.8.8.8']
    assert params['name_prefix'] == built.name_prefix
    assert params['openstack_ca'] == 'CA-BUNDLE'
    assert params['node_settings'] == dict(built.node_settings(),
                                           openstack_insecure=False)
    assert params['minion_pool_settings'] == {'pool': 'default-worker',
                                              'node_labels': {}, 'node_taints': []}
    assert params['ca_cert'] == pki.ca.cert
    assert params['discovery_hash'] == pki.discovery_hash
    assert params['lb_client_cert'] == pki.lb_client.cert
    assert params['signal_transport'] == 'TOKEN_SIGNAL'


def test_every_parameter_sent_is_declared_by_celtic_yaml(template_set, pki):
    request = request_for(template_set, pki)
    declared = yaml.safe_load(request.template)['parameters']
    assert set(request.parameters) <= set(declared)


def test_no_celtic_lb_credentials_without_proxies(template_set, pki):
    params = request_for(template_set, pki, {'proxy_count': '0'}).parameters
    assert params['lb_client_cert'] == ''


def test_node_insecure_reaches_the_node_settings(template_set, pki):
    params = request_for(template_set, pki, openstack_insecure=True).parameters
    assert params['node_settings']['openstack_insecure'] is True


def test_create_kwargs_are_what_heatclient_posts(template_set, pki):
    request = request_for(template_set, pki)
    kwargs = request.create_kwargs()
    assert set(kwargs) == {'stack_name', 'template', 'files', 'environment_files',
                           'parameters', 'timeout_mins', 'disable_rollback'}
    assert kwargs['disable_rollback'] is True
    assert kwargs['stack_name'] == 'celtic-sample-%s' % spec().cluster_uuid[:8]


def test_timeouts_follow_the_cluster_and_cap_the_wait_condition():
    built = spec()
    assert req.wait_timeout(built, 60) == (60, 3600)
    long = dataclasses.replace(built, create_timeout_minutes=1000)
    assert req.wait_timeout(long, 60) == (1000, req.MAX_WAIT_SECONDS)
    assert req.wait_timeout(dataclasses.replace(built, create_timeout_minutes=0),
                            25) == (25, 1500)


def _members(text: str) -> tuple[list[str], int]:
    outputs = yaml.safe_load(text)['outputs']
    return outputs['members']['value'], outputs['next_index']['value']


def test_the_pool_is_rendered_with_one_member_per_minion(template_set, pki):
    request = req.cluster_request(spec(), pki, template_set, 60)
    nodes = yaml.safe_load(request.files[templates.NODES_TEMPLATE])
    assert sorted(nodes['resources']) == ['0', '1', '2', 'server_group']
    assert _members(request.files[templates.NODES_TEMPLATE]) == (['0', '1', '2'], 3)
    pattern = yaml.safe_load(template_set.read(templates.NODES_TEMPLATE))['resources']
    for index in ('0', '1', '2'):
        member = nodes['resources'][index]
        # every member is the pattern with its own index, and waits for the server
        # group (the pool's only resource that depends on nothing)
        expected = json.loads(json.dumps(pattern['member']).replace('%index%', index))
        assert member == expected
        assert member['properties']['scheduler_hints'] == {
            'group': {'get_resource': 'server_group'}}
    assert nodes['outputs']['server_ids']['value'] == [
        {'get_resource': i} for i in ('0', '1', '2')]
    assert nodes['outputs']['addresses']['value'][2] == {'get_attr': ['2', 'first_address']}


def test_a_big_pool_stays_within_heats_template_size(template_set):
    text = expand.render_nodes(template_set.read(templates.NODES_TEMPLATE),
                               expand.Members.first(1000))
    assert len(text) < 512 * 1024       # Heat's default max_template_size
    assert len(yaml.safe_load(text)['resources']) == 1001


OUTPUTS_3 = {'minion_members': ['0', '1', '2'], 'minion_next_index': 3,
             'minion_server_ids': ['s0', 's1', 's2']}


@pytest.mark.parametrize('count, remove, members, next_index', [
    (4, (), (0, 1, 2, 3), 4),             # grow: a fresh index
    (2, (), (0, 1), 3),                   # shrink: the highest index goes
    (2, ('s1',), (0, 2), 3),              # the named server goes
    (2, ('1',), (0, 2), 3),               # ... or the named member
    (3, ('s0',), (1, 2, 3), 4),           # replace a node: never its old index
    (0, (), (), 3),
])
def test_plan_members(count, remove, members, next_index):
    assert expand.plan_members(OUTPUTS_3, count, remove) == expand.Members(members,
                                                                           next_index)


def test_plan_members_never_reuses_an_index_and_copes_without_outputs():
    after_removal = {'members': ['0', '2'], 'next_index': 3, 'server_ids': ['a', 'c']}
    assert expand.plan_members(after_removal, 3, pool_stack=True) == expand.Members(
        (0, 2, 3), 4)
    # a stack whose pool never came up: the server list is all there is
    assert expand.plan_members({'minion_server_ids': ['a', None]}, 3) == expand.Members(
        (0, 1, 2), 3)
    assert expand.plan_members({}, 2) == expand.Members((0, 1), 2)


def test_scale_request_patches_the_count_and_the_rendered_pool(template_set):
    params, files = req.scale_request(template_set, OUTPUTS_3, 2, ('s0',))
    assert params == {'minion_count': 2}
    assert _members(files[templates.NODES_TEMPLATE]) == (['1', '2'], 3)
    params, files = req.scale_request(
        template_set, {'members': ['0'], 'next_index': 1, 'server_ids': ['x']}, 2,
        pool_stack=True)
    assert params == {'count': 2}
    assert _members(files[templates.NODES_TEMPLATE]) == (['0', '1'], 2)


# ---- secrets ---------------------------------------------------------------------

def _secret_values(pki):
    return {'ca.key': pki.ca.key, 'etcd-ca.key': pki.etcd_ca.key,
            'front-proxy-ca.key': pki.front_proxy_ca.key, 'sa.key': pki.service_account_key,
            'bootstrap-token': pki.bootstrap_token, 'master ha-secret': pki.master_ha_secret,
            'proxy ha-secret': pki.proxy_ha_secret, 'celtic-lb.key': pki.lb_client.key}


def _secret_carriers(request, pki):
    """(where, secret) for every parameter and file of a request that holds a secret
    value, or any private key block."""
    found = set()
    places = [('parameter %s' % k, json.dumps(v)) for k, v in request.parameters.items()]
    places += [('file %s' % k, v) for k, v in request.files.items()]
    places.append(('template', request.template))
    for where, text in places:
        if 'PRIVATE KEY' in text:
            found.add((where, 'a private key block'))
        for name, value in _secret_values(pki).items():
            # each long line of it (a PEM body line survives JSON escaping), but not
            # a line the matching certificate spells the same (an EC key's public part)
            public = ''.join((pki.ca.cert, pki.etcd_ca.cert, pki.front_proxy_ca.cert,
                              pki.lb_client.cert)).replace('\n', '')
            needles = [line for line in value.strip().splitlines()
                       if len(line) >= 12 and '-----' not in line and line not in public]
            if any(n in text for n in needles):
                found.add((where, name))
    return found


@pytest.mark.parametrize('labels', [{}, {'proxy_count': '0', 'storage_count': '0'}])
def test_no_parameter_file_or_template_of_the_request_carries_a_secret(
        template_set, pki, labels):
    request = request_for(template_set, pki, labels)
    assert _secret_carriers(request, pki) == set()
    assert request.hidden == frozenset()
    assert not OLD_SECRET_PARAMETERS & set(request.parameters)
    assert req.MASK not in req.to_json(request)


def test_the_secret_search_finds_a_secret_put_back(template_set, pki):
    request = request_for(template_set, pki)
    broken = dataclasses.replace(request, parameters=dict(request.parameters,
                                                          node_settings={'x': pki.ca.key}))
    assert ('parameter node_settings', 'ca.key') in _secret_carriers(broken, pki)


def test_no_template_writes_a_secret_file_or_hands_out_signal_credentials(template_set):
    for name in sorted(os.listdir(template_set.root)):
        if not name.endswith('.yaml'):
            continue
        text = template_set.read(name)
        assert '/etc/celtic/secrets' not in text, name
        assert 'signal.json' not in text, name
        parsed = yaml.safe_load(text)
        for rname, resource in (parsed.get('resources') or {}).items():
            assert 'get_attr' not in json.dumps(resource.get('properties') or {}) or \
                '"wait_handle"' not in json.dumps(resource.get('properties')), (name, rname)
            if resource.get('type') == 'OS::Heat::WaitConditionHandle':
                assert resource['properties']['signal_transport'] == {
                    'get_param': 'signal_transport'}, (name, rname)
        for pname, schema in (parsed.get('parameters') or {}).items():
            assert not (isinstance(schema, dict) and schema.get('hidden')), (name, pname)


def test_no_wait_handle_can_be_no_signal(template_set):
    """Heat's NO_SIGNAL handle signals itself SUCCESS at every status check, so its
    wait condition completes without a node: the templates must not allow it."""
    for name in ('celtic.yaml', 'node_group.yaml', 'minion.yaml'):
        schema = yaml.safe_load(template_set.read(name))['parameters']['signal_transport']
        assert schema['default'] == 'TOKEN_SIGNAL', name
        allowed = [c.get('allowed_values') for c in schema.get('constraints') or []]
        assert 'NO_SIGNAL' not in json.dumps(allowed) and allowed != [], name


def test_signal_transport_reaches_every_wait_handle(template_set, pki):
    """celtic.yaml's signal_transport is passed down to every group that has a handle
    (an unwired level would fall back to TOKEN_SIGNAL there and replace a legacy stack's
    handle)."""
    request = request_for(template_set, pki)
    root = yaml.safe_load(request.template)['resources']
    for name in ('masters', 'proxies', 'storage', 'minions'):
        assert root[name]['properties']['signal_transport'] == {
            'get_param': 'signal_transport'}, name
    for role in ('master.yaml', 'proxy.yaml', 'storage.yaml'):
        group = yaml.safe_load(request.files[role])['resources']['group']
        assert group['properties']['signal_transport'] == {
            'get_param': 'signal_transport'}, role


def test_a_stack_of_the_previous_release_keeps_heat_signal(template_set, pki):
    assert req.created_with_secrets({'ca_key': '******', 'minion_count': '2'})
    assert req.created_with_secrets({'bootstrap_token': '******', 'count': '1'})
    assert not req.created_with_secrets({'ca_cert': 'x', 'signal_transport': 'TOKEN_SIGNAL'})
    assert not req.created_with_secrets({})
    legacy = request_for(template_set, pki, legacy_signals=True)
    assert legacy.parameters['signal_transport'] == 'HEAT_SIGNAL'
    assert _secret_carriers(legacy, pki) == set()
    params, files = req.scale_request(template_set, {'minion_members': ['0', '2'],
                                                     'minion_next_index': 3,
                                                     'minion_server_ids': ['a', 'b']}, 1)
    merged = req.migration_request(legacy, params, files)
    assert merged.parameters['minion_count'] == 1
    assert merged.parameters['signal_transport'] == 'HEAT_SIGNAL'
    assert _members(merged.files[templates.NODES_TEMPLATE]) == (['0'], 3)
    assert merged.template == legacy.template
    assert set(merged.files) == set(legacy.files)


# ---- environments and files ------------------------------------------------------

@pytest.mark.parametrize('labels,template,expected', [
    ({}, {}, ['defaults.yaml']),
    ({'master_lb_floating_ip_enabled': 'false'}, {}, ['defaults.yaml',
                                                      'no_floating_ip.yaml']),
    ({}, {'fixed_network': 'private', 'fixed_subnet': 'private-subnet'},
     ['defaults.yaml', 'existing_network.yaml']),
    ({'proxy_count': '0'}, {}, ['defaults.yaml', 'no_proxies.yaml']),
    ({'storage_count': '0'}, {}, ['defaults.yaml', 'no_storage.yaml']),
    ({'master_lb_floating_ip_enabled': 'false', 'proxy_count': '0',
      'storage_count': '0'}, {'fixed_network': 'n', 'fixed_subnet': 's'},
     ['defaults.yaml', 'no_floating_ip.yaml', 'existing_network.yaml',
      'no_proxies.yaml', 'no_storage.yaml']),
], ids=['all features', 'no floating ip', 'existing network', 'no proxies',
        'no storage', 'everything off'])
def test_environment_per_toggle(template_set, pki, labels, template, expected):
    built = spec(labels, template=template)
    assert req.environment_files(built) == expected
    request = req.cluster_request(built, pki, template_set, 60)
    assert request.environment_files == ['environments/' + e for e in expected]
    for env in expected:
        assert 'environments/' + env in request.files


def _get_files(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'get_file':
                yield value
            else:
                yield from _get_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _get_files(item)


def _template_types(parsed):
    for resource in (parsed.get('resources') or {}).values():
        yield resource.get('type')
        definition = (resource.get('properties') or {}).get('resource_def') or {}
        yield definition.get('type')


@pytest.mark.parametrize('labels', [{}, {'proxy_count': '0', 'storage_count': '0'}],
                         ids=['all features', 'no proxies or storage'])
def test_files_closure_holds_every_file_the_templates_use(pki, labels):
    # A fresh template set: the files are compared with the disk below.
    template_set = templates.TemplateSet(templates.default_dir())
    request = request_for(template_set, pki, labels)
    files = request.files
    registry = {}
    for name in request.environment_files:
        registry.update(yaml.safe_load(files[name])['resource_registry'])
    needed = {v for v in registry.values() if v.endswith('.yaml')}
    for text in [request.template] + [t for n, t in files.items()
                                      if n.endswith('.yaml') and 'heat_template_version'
                                      in t]:
        parsed = yaml.safe_load(text)
        needed.update(_get_files(parsed))
        needed.update(registry.get(t, t) for t in _template_types(parsed)
                      if t and registry.get(t, t).endswith('.yaml'))
    assert needed <= set(files), needed - set(files)
    assert templates.ROOT_TEMPLATE not in files
    for name in needed:
        rendered = (templates.NODES_TEMPLATE, templates.ADDRESSES_TEMPLATE)
        if not name.startswith('bundles/') and name not in rendered:
            with open(f'{template_set.root}/{name}', encoding='utf-8') as disk:
                assert files[name] == disk.read()


def test_the_cluster_stack_holds_the_masters_add_on_files_its_bundle_names(pki):
    """celtic-vendordata serves a master the add-on files of its own stack: the ones
    rendered with the bundle in its user_data, whose vendordata.sha256 names them."""
    template_set = templates.TemplateSet(templates.default_dir())
    files = request_for(template_set, pki, {}).files
    served = files['vendordata/master.txz.b64']
    assert served == template_set.vendordata_bundle('master')
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(files['bundles/master.txz.b64'])),
                      mode='r:xz') as tar:
        named = tar.extractfile(templates.VENDORDATA_DIGEST).read().decode().strip()
    assert named == hashlib.sha256(served.encode()).hexdigest()
    assert [n for n in files if n.startswith('vendordata/')] == ['vendordata/master.txz.b64']


def test_rendering_twice_sends_the_same_request(pki):
    # Fresh template sets: a node added later gets exactly the same stack.
    first, second = (req.cluster_request(
        spec(), pki, templates.TemplateSet(templates.default_dir()), 60)
        for _ in range(2))
    assert first == second


# ---- nodegroup stacks ---------------------------------------------------------------

OUTPUTS = {'fixed_network': 'net-1', 'fixed_subnet': 'sub-1',
           'minion_security_groups': ['sg-a', 'sg-b'],
           'cluster_facts': {'api_vip': '10.0.0.5', 'pool': 'overridden'}}


def test_pool_request_wires_the_pool_to_the_cluster_network(template_set, pki):
    built = spec()
    pool = dataclasses.replace(built.default_pool, nodegroup='gpu', pool_name='gpu',
                               count=2, flavor='g1', node_labels={'a': 'b'})
    request = req.pool_request(built, pool, pki, OUTPUTS, template_set, 60)
    params = request.parameters
    assert request.stack_name == req.stack_name(built) + '-gpu'
    assert (params['network'], params['subnet'], params['security_groups']) == (
        'net-1', 'sub-1', ['sg-a', 'sg-b'])
    assert (params['count'], params['flavor']) == (2, 'g1')
    assert _members(request.files[templates.NODES_TEMPLATE]) == (['0', '1'], 2)
    assert params['params']['api_vip'] == '10.0.0.5'
    # The pool's own settings win over the cluster facts.
    assert (params['params']['pool'], params['params']['node_labels']) == (
        'gpu', {'a': 'b'})
    assert request.hidden == frozenset()
    assert not OLD_SECRET_PARAMETERS & set(params)
    assert params['signal_transport'] == 'TOKEN_SIGNAL'
    assert _secret_carriers(request, pki) == set()
    legacy = req.pool_request(built, pool, pki, OUTPUTS, template_set, 60,
                              legacy_signals=True)
    assert legacy.parameters['signal_transport'] == 'HEAT_SIGNAL'
    assert set(params) <= set(yaml.safe_load(request.template)['parameters'])
    assert request.environment_files == []


# ---- resource counts -------------------------------------------------------------

def test_each_minion_costs_one_resource_and_the_first_adds_the_wait_condition():
    built = spec()
    assert budget.resource_count(built, 1) == budget.resource_count(built, 0) + 2
    for n in (1, 5, 50):
        assert budget.resource_count(built, n + 1) == budget.resource_count(built, n) + 1
    assert budget.resource_count(built) == budget.resource_count(built, built.minion_count)


def test_optional_roles_and_network_change_the_count():
    full = spec()
    bare = spec({'proxy_count': '0', 'storage_count': '0'},
                template={'fixed_network': 'n', 'fixed_subnet': 's'})
    assert budget.resource_count(full, 3) - budget.resource_count(bare, 3) == (
        budget.NETWORK_RESOURCES
        + budget.VIP_ADDRESSES + budget.NODE_GROUP + 2 * budget.PER_HA_NODE
        + budget.NODE_GROUP + 3 * budget.PER_STORAGE_NODE)


@pytest.mark.parametrize('limit', [50, 83, 84, 200, 1000])
def test_max_minions_is_the_largest_pool_within_the_limit(limit):
    built = spec()
    most = budget.max_minions(built, limit)
    if most:
        assert budget.resource_count(built, most) <= limit
    assert budget.resource_count(built, most + 1) > limit


def test_max_node_count_the_stack_cannot_hold_is_refused_naming_the_label():
    labels = {'auto_scaling_enabled': 'true', 'min_node_count': '1'}
    built = sample.sample_spec(labels=dict(labels, max_node_count='5'))
    limit = budget.resource_count(built, 4)
    error = budget.scaling_size_error(built, limit)
    assert error.startswith('label max_node_count 5 is more than the stack can hold: ')
    assert budget.scaling_size_error(built, budget.resource_count(built, 5)) is None
    plain = sample.sample_spec(labels={'max_node_count': '5'})
    assert budget.scaling_size_error(plain, limit) is None


def test_a_nodegroup_max_node_count_its_stack_cannot_hold_is_refused():
    limit = budget.pool_resource_count(10)
    assert budget.pool_max_error(None, limit) is None
    assert budget.pool_max_error(10, limit) is None
    assert budget.pool_max_error(11, limit).startswith(
        "max_node_count 11 is more than the nodegroup's stack can hold: 11 workers")


def test_no_minion_fits_below_the_fixed_cost():
    built = spec()
    assert budget.max_minions(built, budget.resource_count(built, 1) - 1) == 0


def _resources(template_set, name):
    return yaml.safe_load(template_set.read(name))['resources']


def test_resource_constants_match_the_templates(template_set):
    assert len(_resources(template_set, 'celtic.yaml')) + len(
        _resources(template_set, 'security.yaml')) + 1 == budget.FIXED_RESOURCES
    assert len(_resources(template_set, 'network.yaml')) == budget.NETWORK_RESOURCES
    # addresses.yaml: a VIP port and its floating IP per HA role, and the port patterns
    addresses = _resources(template_set, 'addresses.yaml')
    assert set(addresses) - set(expand.PORT_PATTERNS) == {
        'master_vip', 'master_vip_floating_ip', 'proxy_vip', 'proxy_vip_floating_ip'}
    assert budget.VIP_ADDRESSES == 2
    group = _resources(template_set, 'node_group.yaml')
    # the masters' removal handle is always there, its wait only during a removal
    members = {r for r in group if r.startswith('members_')}
    assert members == {'members_handle', 'members_wait'}
    assert group['members_handle']['condition'] == 'has_members'
    assert group['members_wait']['condition'] == 'removing'
    assert budget.MASTER_MEMBERS == 1
    assert len(_resources(template_set, 'master.yaml')) + len(group) - len(
        members) == budget.NODE_GROUP
    # minion.yaml: everything but the nodes (counted in FIXED_RESOURCES), plus the
    # server group of minion_nodes.yaml; a member is PER_MINION.
    nodes = _resources(template_set, templates.NODES_TEMPLATE)
    assert len(_resources(template_set, 'minion.yaml')) - 1 + len(nodes) - 1 == budget.POOL
    minion = _resources(template_set, 'minion.yaml')
    assert minion['nodes']['type'] == templates.NODES_TEMPLATE
    assert nodes['member']['type'] == 'OS::Nova::Server' and budget.PER_MINION == 1
    node = _resources(template_set, 'node.yaml')
    assert len(node) == budget.PER_STORAGE_NODE - 2
    conditional = {r for r, d in node.items() if d.get('condition')}
    assert conditional == {'volume', 'attachment'}


def test_the_status_poll_names_the_stacks_the_driver_creates():
    # the poll builds the names from Magnum's row; they must be the ones create used
    for name in ('k1', 'A Cluster_with spaces and a very long name', ''):
        spec = sample.sample_spec(name=name or 'x', cluster_uuid='5d12f6fd-0000-4000-8000-0'
                                  '00000000001')
        if not name:
            spec = dataclasses.replace(spec, name_prefix=spec_mod.name_prefix(
                '', spec.cluster_uuid))
        assert req.cluster_stack_name(name, spec.cluster_uuid) == req.stack_name(spec)
        assert req.pool_stack_name(name, spec.cluster_uuid, 'GPU pool') == '%s-%s' % (
            req.stack_name(spec), spec_mod.pool_name('GPU pool'))


def test_a_nested_stack_reference_becomes_its_name_and_id():
    assert out.nested_stack_path(
        'arn:openstack:heat::p1:stacks/k1-minions-x-nodes-y/0f0e') == 'k1-minions-x-nodes-y/0f0e'
    assert out.nested_stack_path('k1-nodes/0f0e') == 'k1-nodes/0f0e'


def test_pool_outputs_are_merged_under_the_names_the_driver_reads():
    fetched = []

    def fetch(path):
        fetched.append(path)
        return {'members': ['0'], 'next_index': 1, 'server_ids': ['s-0']}

    cluster = out.with_pool_outputs(
        {'api_vip': 'v', 'minion_nodes_stack': 'arn:openstack:heat::p:stacks/n/1'}, fetch)
    assert cluster['minion_members'] == ['0'] and cluster['minion_next_index'] == 1
    pool = out.with_pool_outputs({'nodes_stack': 'arn:openstack:heat::p:stacks/m/2'},
                                 fetch)
    assert [pool[k] for k in ('members', 'next_index', 'server_ids')] == [['0'], 1, ['s-0']]
    assert fetched == ['n/1', 'm/2']
    # no servers stack named (an older stack, or one that failed early): nothing fetched
    assert out.with_pool_outputs({'minion_members': ['3']}, fetch) == {
        'minion_members': ['3']}
    assert out.with_pool_outputs({'minion_nodes_stack': None}, fetch) == {
        'minion_nodes_stack': None}
    assert len(fetched) == 2


def test_addresses_during_a_master_removal_keep_every_port_and_name_the_staying(
        template_set):
    counts = {'master': 5, 'proxy': 2, 'storage': 0}
    doc = json.loads(expand.render_addresses(template_set.read('addresses.yaml'), counts,
                                             {'master': 3}))
    assert [n for n in doc['resources'] if n.startswith('master-')] == [
        'master-%d' % i for i in range(5)]
    assert len(doc['outputs']['master_addresses']['value']) == 5
    assert doc['outputs']['master_members']['value'] == [
        {'get_attr': ['master-%d' % i, 'fixed_ips', 0, 'ip_address']} for i in range(3)]
    # by default every master stays
    doc = json.loads(expand.render_addresses(template_set.read('addresses.yaml'), counts))
    assert doc['outputs']['master_members'] == doc['outputs']['master_addresses']


@pytest.mark.parametrize('counts', [{'master': 3, 'proxy': 2, 'storage': 3},
                                    {'master': 1, 'proxy': 0, 'storage': 0}])
def test_addresses_are_rendered_with_one_port_per_node_and_one_leaf(template_set, counts):
    doc = json.loads(expand.render_addresses(template_set.read('addresses.yaml'), counts))
    resources = doc['resources']
    for role, count in counts.items():
        names = ['%s-%d' % (role, i) for i in range(count)]
        assert [n for n in resources if n.startswith(role + '-')] == names
        assert doc['outputs'][role + '_ports']['value'] == [
            {'get_resource': n} for n in names]
        assert doc['outputs'][role + '_addresses']['value'] == [
            {'get_attr': [n, 'fixed_ips', 0, 'ip_address']} for n in names]
        for i, name in enumerate(names):
            assert resources[name]['properties']['name']['list_join'][1][-2:] == [
                role, str(i)]
    assert not set(expand.PORT_PATTERNS) & set(resources)
    # every port waits for the master VIP (Heat starts a stack's leaves 1 s apart)
    for name, definition in resources.items():
        if name != 'master_vip':
            text = json.dumps(definition)
            assert 'master_vip' in text or 'proxy_vip' in text, name
