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

"""The Heat client wrapper: python-heatclient against Heat's REST API (requests_mock)."""

from __future__ import annotations

import pytest
import requests
import requests_mock
from keystoneauth1 import session as ks_session
from keystoneauth1.access import access
from keystoneauth1.identity import access as access_plugin
from keystoneauth1.identity import v3

from magnum_celtic import conf
from magnum_celtic import heat
from magnum_celtic.request import StackRequest
from tests.unit import fake_cloud

CONF = conf.CONF


@pytest.fixture
def http():
    with requests_mock.Mocker(case_sensitive=True) as mocker:
        yield mocker


@pytest.fixture
def fake_heat(http):
    return fake_cloud.FakeHeat(http)


@pytest.fixture
def override():
    changed = []

    def set_option(name, value, group='heat_client'):
        CONF.set_override(name, value, group=group)
        changed.append((name, group))
    yield set_option
    for name, group in changed:
        CONF.clear_override(name, group=group)


def user_session(project='fake_project'):
    auth_ref = access.create(body=fake_cloud.token_body(project, 'u', ['member']),
                             auth_token=fake_cloud.USER_TOKEN)
    return ks_session.Session(auth=access_plugin.AccessInfoPlugin(auth_ref))


def request(name='celtic-k1-5d12f6fd'):
    return StackRequest(stack_name=name, template='heat_template_version: 2021-04-16',
                        files={'a.yaml': 'x'}, environment_files=[],
                        parameters={'minion_count': 2}, hidden=frozenset(),
                        timeout_mins=30)


# ---- the happy paths -------------------------------------------------------------------

def test_create_posts_the_request_and_returns_the_stack_id(fake_heat):
    stack_id = heat.Heat(user_session()).create(request().create_kwargs())
    created = fake_heat.stacks[stack_id]
    assert created.name == 'celtic-k1-5d12f6fd'
    assert created.request['timeout_mins'] == 30
    assert created.request['parameters'] == {'minion_count': 2}
    assert fake_heat.calls[0].token == fake_cloud.USER_TOKEN


def test_get_returns_status_reason_and_outputs_in_one_lookup(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'UPDATE_FAILED', {'api_vip': '10.0.0.5'},
                             reason='Resource UPDATE failed: x')
    state = heat.Heat(user_session()).get(stack_id)
    assert state == heat.StackState(stack_id, 'celtic-k1', 'UPDATE_FAILED',
                                    'Resource UPDATE failed: x', {'api_vip': '10.0.0.5'})
    assert state.action == 'UPDATE'
    assert [c.path for c in fake_heat.calls] == [stack_id, 'celtic-k1/' + stack_id]


def test_get_with_the_stack_name_is_one_request_to_the_canonical_url(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'CREATE_COMPLETE', {'api_vip': '10.0.0.5'})
    state = heat.Heat(user_session()).get(stack_id, 'celtic-k1')
    assert state.outputs == {'api_vip': '10.0.0.5'}
    assert [c.path for c in fake_heat.calls] == ['celtic-k1/' + stack_id]


def test_get_with_a_name_that_does_not_match_falls_back_to_the_id(fake_heat):
    stack_id = fake_heat.add('celtic-older-name', 'CREATE_COMPLETE')
    state = heat.Heat(user_session()).get(stack_id, 'celtic-k1')
    assert state.name == 'celtic-older-name'
    assert [c.path for c in fake_heat.calls] == [
        'celtic-k1/' + stack_id, stack_id, 'celtic-older-name/' + stack_id]


def test_get_with_a_name_of_a_stack_that_is_gone_is_none(fake_heat):
    assert heat.Heat(user_session()).get('f00d0000-0000-4000-8000-000000000000',
                                         'celtic-k1') is None


def test_get_without_outputs_tells_heat_not_to_resolve_them(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'CREATE_COMPLETE', {'api_vip': '10.0.0.5'})
    state = heat.Heat(user_session()).get(stack_id, 'celtic-k1', outputs=False)
    assert (state.status, state.outputs) == ('CREATE_COMPLETE', {})
    assert [c.resolves_outputs for c in fake_heat.calls] == [False]


def test_a_poll_of_a_stack_in_progress_is_one_request_without_outputs(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'CREATE_IN_PROGRESS', {'api_vip': '10.0.0.5'})
    state = heat.Heat(user_session()).poll(stack_id, 'celtic-k1')
    assert (state.status, state.outputs) == ('CREATE_IN_PROGRESS', {})
    assert [(c.path, c.resolves_outputs) for c in fake_heat.calls] == [
        ('celtic-k1/' + stack_id, False)]


def test_reads_are_bounded_by_heat_read_timeout_and_changes_are_not(
        fake_heat, http, override):
    # a heat-engine killed while it answered a poll's GET left heat-api (and the poll,
    # holding the cluster's lock) waiting for its rpc_response_timeout
    override('heat_read_timeout', 7, group='celtic')
    stack_id = fake_heat.add('celtic-k1', 'CREATE_COMPLETE', {'api_vip': '10.0.0.5'})
    client = heat.Heat(user_session())
    client.poll(stack_id, 'celtic-k1')
    client.files(stack_id, 'celtic-k1')
    client.update(stack_id, {'minion_count': 3})
    timeouts = {(r.method, r.path.rsplit('/', 1)[-1]): r.timeout
                for r in http.request_history if '/stacks' in r.path}
    assert timeouts[('GET', stack_id)] == 7
    assert timeouts[('GET', 'files')] == 7
    assert timeouts[('PATCH', stack_id)] is None


def test_reads_without_the_bound_when_the_caller_asks(fake_heat, http, override):
    # celtic-vendordata: its tree read of a cluster at Heat's cap takes about a minute
    override('heat_read_timeout', 7, group='celtic')
    stack_id = fake_heat.add('celtic-k1', 'CREATE_IN_PROGRESS')
    heat.Heat(user_session(), bounded_reads=False).poll(stack_id, 'celtic-k1')
    assert [r.timeout for r in http.request_history if '/stacks' in r.path] == [None]


def test_a_shorter_session_timeout_still_holds_for_reads(fake_heat, http, override):
    override('heat_read_timeout', 90, group='celtic')
    stack_id = fake_heat.add('celtic-k1', 'CREATE_IN_PROGRESS')
    session = user_session()
    session.timeout = 20
    heat.Heat(session).poll(stack_id, 'celtic-k1')
    assert [r.timeout for r in http.request_history if '/stacks' in r.path] == [20]


def test_no_read_timeout_when_it_is_0(fake_heat, http, override):
    override('heat_read_timeout', 0, group='celtic')
    stack_id = fake_heat.add('celtic-k1', 'CREATE_IN_PROGRESS')
    heat.Heat(user_session()).poll(stack_id, 'celtic-k1')
    assert [r.timeout for r in http.request_history if '/stacks' in r.path] == [None]


def test_a_read_that_times_out_is_heat_unavailable(fake_heat, http):
    stack_id = fake_heat.add('celtic-k1', 'CREATE_IN_PROGRESS')
    http.get(requests_mock.ANY, exc=requests.exceptions.ReadTimeout)
    with pytest.raises(heat.HeatUnavailable) as raised:
        heat.Heat(user_session()).poll(stack_id, 'celtic-k1')
    assert str(raised.value).endswith('status of stack %s: it did not answer in time'
                                      % stack_id)


@pytest.mark.parametrize('stack_status', ['CREATE_COMPLETE', 'UPDATE_FAILED',
                                          'ROLLBACK_COMPLETE'])
def test_a_poll_of_a_stack_heat_is_done_with_reads_its_outputs(fake_heat, stack_status):
    stack_id = fake_heat.add('celtic-older-name', stack_status, {'api_vip': '10.0.0.5'})
    state = heat.Heat(user_session()).poll(stack_id, 'celtic-k1')
    assert (state.status, state.outputs) == (stack_status, {'api_vip': '10.0.0.5'})
    # the second request goes straight to the name Heat answered with
    assert [(c.path, c.resolves_outputs) for c in fake_heat.calls] == [
        ('celtic-k1/' + stack_id, False), (stack_id, False),
        ('celtic-older-name/' + stack_id, False),
        ('celtic-older-name/' + stack_id, True)]


def _arn(fake_heat, stack_id):
    stack = fake_heat.stacks[stack_id]
    return 'arn:openstack:heat::%s:stacks/%s/%s' % (stack.project, stack.name, stack.id)


POOL = {'members': ['0', '2'], 'next_index': 3, 'server_ids': ['s-0', 's-2'],
        'addresses': ['10.0.0.21', '10.0.0.23'], 'names': ['k1-minion-0', 'k1-minion-2']}


def test_get_reads_the_default_pools_members_from_its_servers_stack(fake_heat):
    nodes = fake_heat.add('celtic-k1-minions-abc-nodes-def', 'CREATE_COMPLETE', POOL)
    stack_id = fake_heat.add('celtic-k1', 'CREATE_COMPLETE', {
        'api_vip': '10.0.0.5', 'minion_nodes_stack': _arn(fake_heat, nodes)})
    state = heat.Heat(user_session()).get(stack_id, 'celtic-k1')
    assert state.outputs == {
        'api_vip': '10.0.0.5', 'minion_nodes_stack': _arn(fake_heat, nodes),
        'minion_members': ['0', '2'], 'minion_next_index': 3,
        'minion_server_ids': ['s-0', 's-2'], 'minion_addresses': ['10.0.0.21', '10.0.0.23'],
        'minion_names': ['k1-minion-0', 'k1-minion-2']}
    assert [(c.path, c.resolves_outputs) for c in fake_heat.calls] == [
        ('celtic-k1/' + stack_id, True),
        ('celtic-k1-minions-abc-nodes-def/' + nodes, True)]


def test_get_reads_a_nodegroups_members_under_their_own_names(fake_heat):
    nodes = fake_heat.add('celtic-k1-gpu-abc-nodes-def', 'UPDATE_COMPLETE', POOL)
    stack_id = fake_heat.add('celtic-k1-gpu', 'UPDATE_COMPLETE',
                             {'nodes_stack': _arn(fake_heat, nodes)})
    outputs = heat.Heat(user_session()).get(stack_id, 'celtic-k1-gpu').outputs
    assert {k: outputs[k] for k in POOL} == POOL


def test_a_stack_from_an_earlier_release_keeps_its_own_member_outputs(fake_heat):
    nodes = fake_heat.add('celtic-k1-minions-abc-nodes-def', 'CREATE_COMPLETE', POOL)
    stack_id = fake_heat.add('celtic-k1', 'CREATE_COMPLETE', {
        'minion_addresses': ['10.0.0.99'], 'minion_nodes_stack': _arn(fake_heat, nodes)})
    assert heat.Heat(user_session()).get(stack_id).outputs['minion_addresses'] == [
        '10.0.0.99']


def test_a_servers_stack_that_is_gone_adds_no_member_outputs(fake_heat):
    gone = fake_heat.add('celtic-k1-minions-abc-nodes-def', 'CREATE_FAILED')
    stack_id = fake_heat.add('celtic-k1', 'CREATE_FAILED',
                             {'minion_nodes_stack': _arn(fake_heat, gone)})
    fake_heat.purge(gone)
    state = heat.Heat(user_session()).get(stack_id, 'celtic-k1')
    assert 'minion_addresses' not in state.outputs
    assert heat.Heat(user_session()).get(stack_id, 'celtic-k1', outputs=False).outputs == {}
    assert [c.resolves_outputs for c in fake_heat.calls] == [True, True, False]


def test_a_poll_of_a_stack_that_is_gone_is_none(fake_heat):
    assert heat.Heat(user_session()).poll('f00d0000-0000-4000-8000-000000000000',
                                          'celtic-k1') is None
    stack_id = fake_heat.add('celtic-k1', 'DELETE_COMPLETE')
    assert heat.Heat(user_session()).poll(stack_id, 'celtic-k1') is None
    # by name, then by id; then the deleted stack: none of them for outputs
    assert [c.resolves_outputs for c in fake_heat.calls] == [False, False, False]


@pytest.mark.parametrize('stack_status,action', [('CREATE_IN_PROGRESS', 'CREATE'),
                                                 ('ROLLBACK_COMPLETE', 'ROLLBACK'),
                                                 ('INIT', 'INIT')])
def test_stack_action_of_every_status(stack_status, action):
    assert heat.StackState('i', 'n', stack_status, '', {}).action == action


def test_a_stack_that_does_not_exist_is_none(fake_heat):
    client = heat.Heat(user_session())
    assert client.get('f00d0000-0000-4000-8000-000000000000') is None
    assert client.get(None) is None
    assert len(fake_heat.calls) == 1


def test_a_deleted_stack_heat_still_shows_is_none(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'DELETE_COMPLETE')
    assert heat.Heat(user_session()).get(stack_id) is None


def test_update_patches_only_the_given_parameters(fake_heat):
    stack_id = fake_heat.add('celtic-k1')
    heat.Heat(user_session()).update(stack_id, {'minion_count': 5}, rollback=True,
                                     timeout_mins=20)
    patch = fake_heat.calls_of('PATCH')[-1]
    assert patch.path == 'celtic-k1/' + stack_id
    assert patch.body == {'parameters': {'minion_count': 5}, 'disable_rollback': False,
                          'timeout_mins': 20}
    assert fake_heat.stacks[stack_id].status == 'UPDATE_IN_PROGRESS'


def test_delete_reports_whether_there_was_a_stack(fake_heat):
    stack_id = fake_heat.add('celtic-k1')
    client = heat.Heat(user_session())
    assert client.delete(stack_id) is True
    assert fake_heat.stacks[stack_id].status == 'DELETE_IN_PROGRESS'
    fake_heat.purge(stack_id)
    assert client.delete(stack_id) is False
    assert client.delete(None) is False


# ---- errors ----------------------------------------------------------------------------

def test_bad_request_is_rejected_with_heats_message(fake_heat):
    fake_heat.fail('POST', 400, 'StackValidationFailed',
                   'Parameter \'master_count\' is invalid: 2 is not an allowed value '
                   '[1, 3, 5, 7]')
    with pytest.raises(heat.HeatRejected) as error:
        heat.Heat(user_session()).create(request().create_kwargs())
    assert str(error.value) == ("Heat rejected the stack celtic-k1-5d12f6fd: Parameter "
                                "'master_count' is invalid: 2 is not an allowed value "
                                "[1, 3, 5, 7]")


def test_maximum_resources_per_stack_names_the_settings_to_raise(fake_heat):
    fake_heat.fail('POST', 400, 'RequestLimitExceeded',
                   'Request limit exceeded: Maximum resources per stack exceeded.')
    with pytest.raises(heat.HeatRejected) as error:
        heat.Heat(user_session()).create(request().create_kwargs())
    message = str(error.value)
    assert 'max_resources_per_stack' in message
    assert 'raise max_resources_per_stack in heat.conf' in message
    assert '[celtic] heat_max_resources_per_stack in magnum.conf' in message
    assert 'separate nodegroup' in message


def test_a_busy_stack_is_heat_busy(fake_heat):
    stack_id = fake_heat.add('celtic-k1', 'UPDATE_IN_PROGRESS')
    with pytest.raises(heat.HeatBusy,
                       match='Heat stack is busy: Stack celtic-k1 already has an action '
                             r'\(UPDATE\) in progress'):
        heat.Heat(user_session()).update(stack_id, {'minion_count': 1})


def test_a_forbidden_request_is_rejected(fake_heat):
    fake_heat.fail('DELETE', 403, 'Forbidden',
                   'You are not authorized to use stacks:delete.')
    stack_id = fake_heat.add('celtic-k1')
    with pytest.raises(heat.HeatRejected, match='Heat refused the delete of stack .*: '
                                                'You are not authorized'):
        heat.Heat(user_session()).delete(stack_id)


def test_a_server_error_is_heat_unavailable(fake_heat):
    fake_heat.fail('GET', 500, 'InternalError', 'database is locked')
    with pytest.raises(heat.HeatUnavailable, match='status of stack s1'):
        heat.Heat(user_session()).get('s1')


def test_a_connection_error_is_heat_unavailable(fake_heat):
    fake_heat.unreachable()
    with pytest.raises(heat.HeatUnavailable, match='Heat is unavailable for the stack '
                                                   'celtic-k1-5d12f6fd') as error:
        heat.Heat(user_session()).create(request().create_kwargs())
    # words, not the connection library's text (that goes to the log)
    assert str(error.value).endswith(': it could not be reached')
    assert 'Errno' not in str(error.value)


def test_a_server_error_keeps_no_sql_text(fake_heat):
    fake_heat.fail('GET', 500, 'InternalError',
                   '(sqlite3.OperationalError) database is locked [SQL: SELECT 1]')
    with pytest.raises(heat.HeatUnavailable) as error:
        heat.Heat(user_session()).get('s1')
    assert 'sqlite3' not in str(error.value) and 'SQL' not in str(error.value)
    assert 'heat-api log' in str(error.value)


def test_a_stack_is_found_by_name(fake_heat):
    stack_id = fake_heat.add('celtic-k1-5d12f6fd', status='CREATE_IN_PROGRESS')
    found = heat.Heat(user_session()).find('celtic-k1-5d12f6fd')
    assert (found.id, found.status) == (stack_id, 'CREATE_IN_PROGRESS')
    assert heat.Heat(user_session()).find('celtic-nothing') is None


def test_an_error_page_that_is_not_json_is_still_reported(http):
    http.register_uri(requests_mock.ANY, fake_cloud.HEAT_PUBLIC + '/fake_project/stacks',
                      status_code=400, text='<html>Bad Request</html>',
                      headers={'Content-Type': 'text/html'})
    with pytest.raises(heat.HeatRejected, match='<html>Bad Request</html>'):
        heat.Heat(user_session()).create(request().create_kwargs())


def test_error_message_of_a_plain_exception():
    assert heat._message(RuntimeError('ERROR: boom')) == 'boom'


# ---- finding Heat ------------------------------------------------------------------

def test_endpoint_comes_from_the_catalog_of_the_session(override):
    assert heat.orchestration_endpoint(user_session(), None) == (
        fake_cloud.HEAT_PUBLIC + '/fake_project')
    override('endpoint_type', 'internal')
    assert heat.orchestration_endpoint(user_session(), None) == (
        fake_cloud.HEAT_INTERNAL + '/fake_project')


def test_endpoint_names_the_clusters_project_for_the_service_user():
    endpoint = heat.orchestration_endpoint(user_session(fake_cloud.SERVICE_PROJECT),
                                           'cluster-project')
    assert endpoint == fake_cloud.HEAT_PUBLIC + '/cluster-project'


def test_no_endpoint_in_the_region_is_a_clear_error(override, fake_heat):
    override('region_name', 'RegionTwo')
    with pytest.raises(heat.HeatUnavailable, match='cannot find Heat: publicURL '
                                                   'endpoint for orchestration service '
                                                   'in RegionTwo region not found'):
        heat.Heat(user_session()).get('s1')
    assert fake_heat.calls == []


def test_keystone_unreachable_is_heat_unavailable(http):
    keystone = fake_cloud.FakeKeystone(http)
    keystone.reachable = False
    auth = v3.Password(auth_url=fake_cloud.KEYSTONE, username='magnum',
                       password='x', project_name='service', user_domain_id='default',
                       project_domain_id='default')
    with pytest.raises(heat.HeatUnavailable, match='cannot find Heat'):
        heat.Heat(ks_session.Session(auth=auth)).get('s1')


def test_the_session_is_reused_without_heat_tls_options():
    session = user_session()
    assert heat._tls_session(session) is session


def test_heat_tls_options_make_a_session_of_their_own(override):
    session = user_session()
    override('ca_file', '/etc/ssl/heat-ca.pem')
    tls = heat._tls_session(session)
    assert tls is not session and tls.auth is session.auth
    assert tls.verify == '/etc/ssl/heat-ca.pem'
    override('cert_file', '/etc/ssl/client.pem')
    override('key_file', '/etc/ssl/client.key')
    assert heat._tls_session(session).cert == ('/etc/ssl/client.pem',
                                               '/etc/ssl/client.key')
    override('insecure', True)
    assert heat._tls_session(session).verify is False


def test_friendly_leaves_other_messages_alone():
    assert heat.friendly('Stack create timed out') == 'Stack create timed out'
