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

import dataclasses
import json

import pytest
import yaml

from magnum_celtic import sample
from magnum_celtic import spec as spec_mod
from magnum_celtic import stack
from magnum_celtic import templates

SECRETS = {'ca_key', 'etcd_ca_key', 'front_proxy_ca_key', 'service_account_key',
           'bootstrap_token', 'master_ha_secret', 'proxy_ha_secret', 'lb_client_key'}


@pytest.fixture(scope='module')
def template_set():
    return templates.TemplateSet(templates.default_dir())


@pytest.fixture(scope='module')
def pki():
    return sample.sample_pki()


def spec(labels=None, **kwargs):
    return sample.sample_spec(labels=labels, **kwargs)


def request_for(template_set, pki, labels=None, template=None, **kwargs):
    return stack.cluster_request(spec(labels, template=template), pki, template_set,
                                 60, **kwargs)


# ---- parameters --------------------------------------------------------------------

def test_parameters_come_from_the_spec_and_the_pki(template_set, pki):
    built = spec({'proxy_count': '3', 'storage_volume_size': '80',
                  'master_lb_allowed_cidrs': '192.0.2.0/24'})
    params = stack.cluster_request(built, pki, template_set, 60,
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
    assert (params['ca_cert'], params['ca_key']) == (pki.ca.cert, pki.ca.key)
    assert (params['bootstrap_token'], params['discovery_hash']) == (
        pki.bootstrap_token, pki.discovery_hash)
    assert params['lb_client_cert'] == pki.lb_client.cert


def test_every_parameter_sent_is_declared_by_celtic_yaml(template_set, pki):
    request = request_for(template_set, pki)
    declared = yaml.safe_load(request.template)['parameters']
    assert set(request.parameters) <= set(declared)


def test_no_celtic_lb_credentials_without_proxies(template_set, pki):
    params = request_for(template_set, pki, {'proxy_count': '0'}).parameters
    assert (params['lb_client_cert'], params['lb_client_key']) == ('', '')


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
    assert stack.wait_timeout(built, 60) == (60, 3600)
    long = dataclasses.replace(built, create_timeout_minutes=1000)
    assert stack.wait_timeout(long, 60) == (1000, stack.MAX_WAIT_SECONDS)
    assert stack.wait_timeout(dataclasses.replace(built, create_timeout_minutes=0),
                              25) == (25, 1500)


def _members(text: str) -> tuple[list[str], int]:
    outputs = yaml.safe_load(text)['outputs']
    return outputs['members']['value'], outputs['next_index']['value']


def test_the_pool_is_rendered_with_one_member_per_minion(template_set, pki):
    request = stack.cluster_request(spec(), pki, template_set, 60)
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
    text = stack.render_nodes(template_set.read(templates.NODES_TEMPLATE),
                              stack.Members.first(1000))
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
    assert stack.plan_members(OUTPUTS_3, count, remove) == stack.Members(members,
                                                                         next_index)


def test_plan_members_never_reuses_an_index_and_copes_without_outputs():
    after_removal = {'members': ['0', '2'], 'next_index': 3, 'server_ids': ['a', 'c']}
    assert stack.plan_members(after_removal, 3, pool_stack=True) == stack.Members(
        (0, 2, 3), 4)
    # a stack whose pool never came up: the server list is all there is
    assert stack.plan_members({'minion_server_ids': ['a', None]}, 3) == stack.Members(
        (0, 1, 2), 3)
    assert stack.plan_members({}, 2) == stack.Members((0, 1), 2)


def test_scale_request_patches_the_count_and_the_rendered_pool(template_set):
    params, files = stack.scale_request(template_set, OUTPUTS_3, 2, ('s0',))
    assert params == {'minion_count': 2}
    assert _members(files[templates.NODES_TEMPLATE]) == (['1', '2'], 3)
    params, files = stack.scale_request(
        template_set, {'members': ['0'], 'next_index': 1, 'server_ids': ['x']}, 2,
        pool_stack=True)
    assert params == {'count': 2}
    assert _members(files[templates.NODES_TEMPLATE]) == (['0', '1'], 2)


# ---- secrets ---------------------------------------------------------------------

def test_hidden_parameters_are_exactly_the_secrets(template_set, pki):
    request = request_for(template_set, pki)
    assert request.hidden == SECRETS
    secret_values = {pki.ca.key, pki.etcd_ca.key, pki.front_proxy_ca.key,
                     pki.service_account_key, pki.bootstrap_token,
                     pki.master_ha_secret, pki.proxy_ha_secret, pki.lb_client.key}
    carrying_secrets = {name for name, value in request.parameters.items()
                        if isinstance(value, str) and value in secret_values}
    assert carrying_secrets == SECRETS


def test_masked_render_shows_no_secret(template_set, pki):
    request = request_for(template_set, pki)
    masked = request.masked()
    assert {k for k, v in masked['parameters'].items() if v == stack.MASK} == SECRETS
    text = stack.to_json(request)
    for secret in (pki.ca.key, pki.bootstrap_token, pki.master_ha_secret,
                   pki.lb_client.key, pki.service_account_key):
        assert secret not in text
    assert 'PRIVATE KEY' not in text
    assert json.loads(text)['parameters']['ca_cert'] == pki.ca.cert
    assert masked['files'] == sorted(request.files)
    assert masked['template'] == 'celtic.yaml'


def test_an_empty_secret_is_shown_empty_not_masked(template_set, pki):
    masked = request_for(template_set, pki, {'proxy_count': '0'}).masked()
    assert masked['parameters']['lb_client_key'] == ''


def _secret_parameter_leaks(request):
    """(template, parameter) pairs of nested templates that receive a secret through
    get_param but do not declare the parameter hidden (Heat then shows it in `stack
    show` of the nested stack and stores it unencrypted)."""
    registry = {}
    for name in request.environment_files:
        registry.update(yaml.safe_load(request.files[name]).get('resource_registry')
                        or {})
    sources = dict(request.files, **{'(root)': request.template})
    leaks = set()
    pending = [('(root)', frozenset(request.hidden))]
    seen = set()
    while pending:
        name, secrets = pending.pop()
        if (name, secrets) in seen:
            continue
        seen.add((name, secrets))
        parsed = yaml.safe_load(sources[name])
        for resource in (parsed.get('resources') or {}).values():
            properties = resource.get('properties') or {}
            rtype = resource.get('type')
            if rtype == 'OS::Heat::ResourceGroup':
                definition = properties.get('resource_def') or {}
                rtype, properties = definition.get('type'), definition.get(
                    'properties') or {}
            rtype = registry.get(rtype, rtype)
            if rtype not in request.files:
                continue
            child = yaml.safe_load(request.files[rtype])['parameters']
            tainted = frozenset(p for p, v in properties.items()
                                if _uses_param(v, secrets))
            for parameter in tainted:
                if not (child.get(parameter) or {}).get('hidden'):
                    leaks.add((rtype, parameter))
            pending.append((rtype, tainted))
    return leaks


def _uses_param(value, names):
    if isinstance(value, dict):
        if 'get_param' in value and value['get_param'] in names:
            return True
        return any(_uses_param(v, names) for v in value.values())
    if isinstance(value, list):
        return any(_uses_param(v, names) for v in value)
    return False


def test_the_leak_check_finds_a_secret_passed_to_a_plain_parameter(template_set,
                                                                   pki):
    request = request_for(template_set, pki)
    files = dict(request.files)
    files['minion.yaml'] = files['minion.yaml'].replace(
        'bootstrap_token:\n    type: string\n    hidden: true',
        'bootstrap_token:\n    type: string')
    broken = dataclasses.replace(request, files=files)
    assert ('minion.yaml', 'bootstrap_token') in _secret_parameter_leaks(broken)


def test_nested_templates_keep_every_secret_hidden(template_set, pki):
    assert _secret_parameter_leaks(request_for(template_set, pki)) == set()


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
    assert stack.environment_files(built) == expected
    request = stack.cluster_request(built, pki, template_set, 60)
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


def test_rendering_twice_sends_the_same_request(pki):
    # Fresh template sets: a node added later gets exactly the same stack.
    first, second = (stack.cluster_request(
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
    request = stack.pool_request(built, pool, pki, OUTPUTS, template_set, 60)
    params = request.parameters
    assert request.stack_name == stack.stack_name(built) + '-gpu'
    assert (params['network'], params['subnet'], params['security_groups']) == (
        'net-1', 'sub-1', ['sg-a', 'sg-b'])
    assert (params['count'], params['flavor']) == (2, 'g1')
    assert _members(request.files[templates.NODES_TEMPLATE]) == (['0', '1'], 2)
    assert params['params']['api_vip'] == '10.0.0.5'
    # The pool's own settings win over the cluster facts.
    assert (params['params']['pool'], params['params']['node_labels']) == (
        'gpu', {'a': 'b'})
    assert request.hidden == {'bootstrap_token'}
    assert 'ca_key' not in params
    assert set(params) <= set(yaml.safe_load(request.template)['parameters'])
    assert request.environment_files == []


# ---- resource counts -------------------------------------------------------------

def test_each_minion_costs_one_resource_and_the_first_adds_the_wait_condition():
    built = spec()
    assert stack.resource_count(built, 1) == stack.resource_count(built, 0) + 2
    for n in (1, 5, 50):
        assert stack.resource_count(built, n + 1) == stack.resource_count(built, n) + 1
    assert stack.resource_count(built) == stack.resource_count(built, built.minion_count)


def test_optional_roles_and_network_change_the_count():
    full = spec()
    bare = spec({'proxy_count': '0', 'storage_count': '0'},
                template={'fixed_network': 'n', 'fixed_subnet': 's'})
    assert stack.resource_count(full, 3) - stack.resource_count(bare, 3) == (
        stack.NETWORK_RESOURCES
        + stack.VIP_ADDRESSES + stack.NODE_GROUP + 2 * stack.PER_HA_NODE
        + stack.NODE_GROUP + 3 * stack.PER_STORAGE_NODE)


@pytest.mark.parametrize('limit', [50, 83, 84, 200, 1000])
def test_max_minions_is_the_largest_pool_within_the_limit(limit):
    built = spec()
    most = stack.max_minions(built, limit)
    if most:
        assert stack.resource_count(built, most) <= limit
    assert stack.resource_count(built, most + 1) > limit


def test_no_minion_fits_below_the_fixed_cost():
    built = spec()
    assert stack.max_minions(built, stack.resource_count(built, 1) - 1) == 0


def _resources(template_set, name):
    return yaml.safe_load(template_set.read(name))['resources']


def test_resource_constants_match_the_templates(template_set):
    assert len(_resources(template_set, 'celtic.yaml')) + len(
        _resources(template_set, 'security.yaml')) + 1 == stack.FIXED_RESOURCES
    assert len(_resources(template_set, 'network.yaml')) == stack.NETWORK_RESOURCES
    # addresses.yaml: a VIP port and its floating IP per HA role, and the port patterns
    addresses = _resources(template_set, 'addresses.yaml')
    assert set(addresses) - set(stack.PORT_PATTERNS) == {
        'master_vip', 'master_vip_floating_ip', 'proxy_vip', 'proxy_vip_floating_ip'}
    assert stack.VIP_ADDRESSES == 2
    assert len(_resources(template_set, 'master.yaml')) + len(
        _resources(template_set, 'node_group.yaml')) == stack.NODE_GROUP
    # minion.yaml: everything but the nodes (counted in FIXED_RESOURCES), plus the
    # server group of minion_nodes.yaml; a member is PER_MINION.
    nodes = _resources(template_set, templates.NODES_TEMPLATE)
    assert len(_resources(template_set, 'minion.yaml')) - 1 + len(nodes) - 1 == stack.POOL
    minion = _resources(template_set, 'minion.yaml')
    assert minion['nodes']['type'] == templates.NODES_TEMPLATE
    assert nodes['member']['type'] == 'OS::Nova::Server' and stack.PER_MINION == 1
    node = _resources(template_set, 'node.yaml')
    assert len(node) == stack.PER_STORAGE_NODE - 2
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
        assert stack.cluster_stack_name(name, spec.cluster_uuid) == stack.stack_name(spec)
        assert stack.pool_stack_name(name, spec.cluster_uuid, 'GPU pool') == '%s-%s' % (
            stack.stack_name(spec), spec_mod.pool_name('GPU pool'))


def test_a_nested_stack_reference_becomes_its_name_and_id():
    assert stack.nested_stack_path(
        'arn:openstack:heat::p1:stacks/k1-minions-x-nodes-y/0f0e') == 'k1-minions-x-nodes-y/0f0e'
    assert stack.nested_stack_path('k1-nodes/0f0e') == 'k1-nodes/0f0e'


def test_pool_outputs_are_merged_under_the_names_the_driver_reads():
    fetched = []

    def fetch(path):
        fetched.append(path)
        return {'members': ['0'], 'next_index': 1, 'server_ids': ['s-0']}

    cluster = stack.with_pool_outputs(
        {'api_vip': 'v', 'minion_nodes_stack': 'arn:openstack:heat::p:stacks/n/1'}, fetch)
    assert cluster['minion_members'] == ['0'] and cluster['minion_next_index'] == 1
    pool = stack.with_pool_outputs({'nodes_stack': 'arn:openstack:heat::p:stacks/m/2'},
                                   fetch)
    assert [pool[k] for k in stack.MEMBER_OUTPUTS[True]] == [['0'], 1, ['s-0']]
    assert fetched == ['n/1', 'm/2']
    # no servers stack named (an older stack, or one that failed early): nothing fetched
    assert stack.with_pool_outputs({'minion_members': ['3']}, fetch) == {
        'minion_members': ['3']}
    assert stack.with_pool_outputs({'minion_nodes_stack': None}, fetch) == {
        'minion_nodes_stack': None}
    assert len(fetched) == 2


@pytest.mark.parametrize('counts', [{'master': 3, 'proxy': 2, 'storage': 3},
                                    {'master': 1, 'proxy': 0, 'storage': 0}])
def test_addresses_are_rendered_with_one_port_per_node_and_one_leaf(template_set, counts):
    doc = json.loads(stack.render_addresses(template_set.read('addresses.yaml'), counts))
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
    assert not set(stack.PORT_PATTERNS) & set(resources)
    # every port waits for the master VIP (Heat starts a stack's leaves 1 s apart)
    for name, definition in resources.items():
        if name != 'master_vip':
            text = json.dumps(definition)
            assert 'master_vip' in text or 'proxy_vip' in text, name
