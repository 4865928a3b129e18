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

"""The stack outputs the driver reads: one table, checked against the templates."""

from __future__ import annotations

import ast
import os

import pytest
import yaml

import magnum_celtic
from magnum_celtic import outputs as out
from magnum_celtic import templates

#: string literals equal to an output name that are something else where they appear
#: (module, literal): Magnum's own field names, node settings keys
NOT_OUTPUTS = {
    ('adapters.py', 'fixed_network'), ('adapters.py', 'fixed_subnet'),
    ('spec.py', 'fixed_network'), ('spec.py', 'fixed_subnet'),
    # a sample cluster_facts value: node settings, not outputs
    ('validation.py', 'api_vip'), ('validation.py', 'master_addresses'),
    # the stack parameter of that name, which the output shows
    ('request.py', 'master_removal'),
    # addresses.yaml's own output of that name, cut while masters are removed
    ('expand.py', 'master_members'),
    # the relay's name for the masters' members_handle
    ('vendordata.py', 'members'),
}


def declared(name: str) -> set[str]:
    ts = templates.TemplateSet(templates.resolve_dir(''))
    return set(yaml.safe_load(ts.read(name)).get('outputs') or {})


@pytest.mark.parametrize('stack', [out.CLUSTER_STACK, out.POOL_STACK, out.SERVERS_STACK])
def test_the_table_and_the_templates_name_the_same_outputs(stack):
    in_table = {o.name for o in out.OUTPUTS if o.stack == stack}
    in_template = declared(stack)
    assert in_table - in_template == set(), 'read by the driver, declared nowhere'
    assert in_template - in_table == set(), 'declared, missing from outputs.OUTPUTS'


def test_every_output_says_what_it_feeds_and_is_named_once():
    assert len(out.BY_NAME) == len(out.OUTPUTS)
    assert all(o.feeds for o in out.OUTPUTS)
    assert {out.BY_NAME[n].stack for n in out.NODES_STACK_OUTPUT.values()} == {
        out.CLUSTER_STACK, out.POOL_STACK}


def test_a_servers_stack_output_is_read_under_its_parents_name():
    assert out.pool_output(out.ADDRESSES, False) == 'minion_addresses'
    assert out.pool_output(out.SERVER_IDS, True) == 'server_ids'
    with pytest.raises(KeyError):
        out.pool_output(out.API_VIP, False)


def _names() -> set[str]:
    names = {o.name for o in out.OUTPUTS}
    return names | {out.pool_output(o.name, False) for o in out.OUTPUTS
                    if o.stack == out.SERVERS_STACK}


def test_no_other_driver_module_spells_an_output_name():
    package = os.path.dirname(magnum_celtic.__file__)
    names = _names()
    found = []
    for folder in (package, os.path.join(package, 'cmd')):
        for module in sorted(os.listdir(folder)):
            if not module.endswith('.py') or module == 'outputs.py':
                continue
            with open(os.path.join(folder, module), encoding='utf-8') as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and node.value in names
                        and (module, node.value) not in NOT_OUTPUTS):
                    found.append('%s:%d %s' % (module, node.lineno, node.value))
    assert found == []


def test_the_default_pool_and_a_nodegroup_read_their_servers_stack():
    fetched = []

    def fetch(path):
        fetched.append(path)
        return {out.ADDRESSES: ['10.0.0.7'], out.NAMES: ['k1-minion-0']}

    cluster = out.with_pool_outputs(
        {out.MINION_NODES_STACK: 'arn:openstack:heat::p:stacks/k1-minions/1',
         out.pool_output(out.NAMES, False): ['kept']}, fetch)
    assert cluster['minion_addresses'] == ['10.0.0.7']
    assert cluster['minion_names'] == ['kept']   # the stack's own output wins
    pool = out.with_pool_outputs({out.NODES_STACK: 'n%2Fx/2'}, fetch)
    assert pool['addresses'] == ['10.0.0.7']
    assert fetched == ['k1-minions/1', 'n/x/2']


@pytest.mark.parametrize('raw', [
    '(sqlite3.OperationalError) database is locked [SQL: UPDATE nodegroup SET status=?]',
    'Traceback (most recent call last):\n  File "x.py", line 1',
    'failed: <urllib3.connection.HTTPConnection object at 0x7f12ab34cd56>',
    "boom: KeyError('flavor_id')",
])
def test_scrub_keeps_no_program_text(raw):
    cleaned = out.scrub('step x: ' + raw)
    assert cleaned.startswith('step x')
    for word in ('sqlite3', 'SQL', 'Traceback', '0x7f', 'KeyError'):
        assert word not in cleaned
    assert 'heat-engine log' in cleaned


def test_scrub_leaves_a_persons_words_alone():
    text = 'k1-minion-0: step kubeadm-join failed: the API VIP did not answer'
    assert out.scrub(text) == text


@pytest.mark.parametrize('action, todo', [('CREATE', 'create it again'),
                                          ('DELETE', 'run the delete again'),
                                          ('UPDATE', 'run the resize again')])
def test_an_engine_that_went_down_is_worded_for_users(action, todo):
    text = out.friendly('Engine went down during stack %s' % action)
    assert text.startswith('heat-engine stopped') and todo in text


def test_scrub_keeps_the_address_of_a_failed_connection_only():
    text = out.scrub('minions.wait_handle failed: Unable to establish connection to '
                     'http://127.0.0.1:5000/v3/auth/tokens: HTTPConnectionPool(host='
                     "'127.0.0.1', port=5000): Max retries exceeded with url: /v3 (Caused "
                     'by NewConnectionError(...))')
    assert text == ('minions.wait_handle failed: Unable to establish connection to '
                    'http://127.0.0.1:5000/v3/auth/tokens (connection refused or timed '
                    'out; the details are in the heat-engine log)')


def test_heats_bare_timed_out_says_what_to_do():
    assert 'create_timeout' in out.friendly('Timed out')
