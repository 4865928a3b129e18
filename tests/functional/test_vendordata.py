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

"""celtic-vendordata on the lab: real Keystone, Heat and Magnum, the service started as a
lab process, and the Nova stand-in making Nova's DynamicJSON call for every server.

A cluster with every role (1 master, 2 proxies, 3 storage nodes, 1 minion) and a
nodegroup of one minion is created by the project member demo; every node's
vendor_data2.json must hold exactly its role's secrets, which the node then holds
(its vendordata step wrote them: the lab keeps both under the node's directory; its
user_data carries none), and a signal relayed by the service must reach the wait
condition handle of the node's group in Heat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request

import pytest

from magnum_celtic import pki
from magnum_celtic.lab import metadata

NAME = 'roles'   # conftest.EVERY_ROLE_CLUSTER


@pytest.fixture(scope='module')
def cluster(every_role_cluster):
    """The session's cluster with every role and a nodegroup (conftest.py)."""
    return every_role_cluster


def nodes(lab):
    """{server name: (server record, node dir)} of the cluster's servers."""
    return {s['name']: (s, lab.cloud.node_dir(s['name'], s['id']))
            for s in lab.cloud.snapshot()['servers'].values()
            if s['name'].startswith(NAME + '-')}


def held_by_the_node(root: str) -> dict[str, str]:
    secrets = os.path.join(root, 'etc', 'celtic', 'secrets')
    found = {}
    for name in sorted(os.listdir(secrets)) if os.path.isdir(secrets) else ():
        with open(os.path.join(secrets, name)) as f:
            found[name] = f.read()
    return found


def vendor_data(root: str) -> dict:
    with open(os.path.join(root, metadata.VENDOR_DATA)) as f:
        return json.load(f)


def role_of(name: str) -> str:
    role = name[len(NAME) + 1:].split('-')[0]
    return {'pool2': 'minion'}.get(role, role)


def test_every_node_gets_through_vendordata_exactly_its_roles_secrets_and_holds_them(
        magnum_lab, cluster):
    found = nodes(magnum_lab)
    assert {role_of(n) for n in found} == {'master', 'proxy', 'storage', 'minion'}, found
    assert len(found) == 1 + 2 + 3 + 1 + 1, sorted(found)
    for name, (server, root) in sorted(found.items()):
        document = vendor_data(root)
        assert list(document) == ['celtic'], (name, document)
        answer = document['celtic']
        assert (answer['version'], answer['cluster_uuid'], answer['role'],
                answer['node']) == (1, cluster, role_of(name), name)
        assert answer['secrets'] == held_by_the_node(root), name
        signal = answer['signal']
        assert signal['url'] == magnum_lab.vendordata_url + '/v1/signal'
        assert (signal['cluster_uuid'], signal['instance_id']) == (cluster, server['id'])
        assert len(signal['key']) == 64 and int(signal['key'], 16) >= 0
    by_role = {role_of(n): held_by_the_node(r) for n, (_, r) in found.items()}
    # the cluster has the autoscaling labels: its master also holds the credential
    assert set(by_role['master']) == {'ca.key', 'etcd-ca.key', 'front-proxy-ca.key',
                                      'sa.key', 'bootstrap-token', 'ha-secret',
                                      pki.CREDENTIAL_FILE}
    assert set(by_role['proxy']) == {'celtic-lb.key', 'ha-secret'}
    assert set(by_role['minion']) == {'bootstrap-token'}
    assert by_role['storage'] == {}


def _post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method='POST',
                                     headers=dict({'Content-Type': 'application/json'},
                                                  **headers))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b'{}')
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b'{}')


def _handle_metadata(lab) -> dict[str, dict]:
    """{stack name: wait_handle metadata} of every wait handle of the project."""
    heat = lab.heat('demo')
    found = {}
    for stack in heat.stacks.list(show_nested=True):
        if not stack.stack_name.startswith('celtic-%s-' % NAME):
            continue
        ident = '%s/%s' % (stack.stack_name, stack.id)
        names = [r.resource_name for r in heat.resources.list(ident)]
        if 'wait_handle' in names:
            found[stack.stack_name] = heat.resources.metadata(ident, 'wait_handle')
    return found


@pytest.mark.parametrize('node_role', ['master', 'pool2'])
def test_a_relayed_signal_reaches_the_wait_handle_of_the_nodes_group(
        magnum_lab, cluster, node_role):
    name, (server, root) = next((n, v) for n, v in sorted(nodes(magnum_lab).items())
                                if n.startswith('%s-%s-' % (NAME, node_role)))
    signal = vendor_data(root)['celtic']['signal']
    mark = 'relay-check-%s' % node_role
    body = json.dumps({'cluster_uuid': cluster, 'instance_id': server['id'],
                       'status': 'SUCCESS', 'reason': 'relayed by the test',
                       'id': mark, 'data': 'x'}).encode()
    digest = hmac.new(signal['key'].encode(), body, hashlib.sha256).hexdigest()
    assert _post(signal['url'], body, {'X-Celtic-Signature': 'sha256=' + digest[::-1]}) \
        == (401, {'error': 'unauthorized'})
    assert _post(signal['url'], body, {'X-Celtic-Signature': 'sha256=' + digest}) == (
        202, {'status': 'relayed'})
    holders = {stack: data[mark] for stack, data in _handle_metadata(magnum_lab).items()
               if mark in data}
    assert len(holders) == 1, holders
    (stack, entry), = holders.items()
    expected = '-masters-' if node_role == 'master' else '-pool2'
    assert expected in stack and entry['status'] == 'SUCCESS', (stack, entry)
    assert entry['reason'] == 'relayed by the test' and entry['data'] == 'x'


def test_nova_asking_for_a_server_under_another_role_gets_nothing(magnum_lab, cluster):
    """The role in the user-data is a hint: a minion whose user-data claimed to be a
    master would get nothing (Heat says which group created it)."""
    found = nodes(magnum_lab)
    minion, _ = next(v for n, v in found.items() if role_of(n) == 'minion')
    session = magnum_lab.session('nova')
    project = magnum_lab.session('demo').get_project_id()
    params = json.dumps({'cluster_uuid': cluster, 'role': 'master'})
    forged = '#cloud-config\nwrite_files:\n- path: /etc/celtic/params.json\n  content: %s\n' \
        % json.dumps(params)
    body = metadata.request_body(project, minion['id'], None, forged, minion['name'], {},
                                 ['member'])
    response = session.post(magnum_lab.vendordata_url + '/v1/vendordata', json=body)
    assert response.status_code == 200 and response.json() == {}
    honest = forged.replace('master', 'minion')
    body = metadata.request_body(project, minion['id'], None, honest, minion['name'], {},
                                 ['member'])
    answer = session.post(magnum_lab.vendordata_url + '/v1/vendordata', json=body).json()
    assert answer['role'] == 'minion' and set(answer['secrets']) == {'bootstrap-token'}
    demo = magnum_lab.session('demo')
    refused = demo.post(magnum_lab.vendordata_url + '/v1/vendordata', json=body,
                        raise_exc=False)
    assert refused.status_code == 403


def test_heat_lists_a_server_of_another_projects_tree_by_physical_resource_id(
        magnum_lab, cluster):
    """What Heat 27 offers for finding a server's group: as Magnum's service user (admin),
    a nested listing of another project's tree filtered by physical_resource_id answers
    the server's row alone, with the link to the stack that holds it. celtic-vendordata
    reads whole trees instead and keeps them (heat-engine builds every resource of each
    stack it visits either way; see doc/security.md)."""
    from heatclient import client as heat_client
    from magnum_celtic import vendordata
    server, _ = next(v for n, v in nodes(magnum_lab).items() if role_of(n) == 'master')
    project = magnum_lab.session('demo').get_project_id()
    admin = heat_client.Client('1', session=magnum_lab.session('magnum'),
                               endpoint_override='http://127.0.0.1:%d/v1/%s' % (
                                   magnum_lab.ports['heat'], project))
    root = next(s for s in magnum_lab.heat('demo').stacks.list()
                if s.stack_name.startswith('celtic-%s-' % NAME)
                and not s.stack_name.endswith('-pool2'))
    rows = admin.resources.list('%s/%s' % (root.stack_name, root.id),
                                nested_depth=vendordata.NESTED_DEPTH,
                                filters={'physical_resource_id': server['id']})
    assert [(r.resource_name, r.resource_type) for r in rows] == [
        ('server', 'OS::Nova::Server')]
    holder = vendordata._link(rows[0].to_dict(), 'stack')
    assert '-masters-' in holder[0], holder
    whole = [r.to_dict() for r in admin.resources.list(
        '%s/%s' % (root.stack_name, root.id), nested_depth=vendordata.NESTED_DEPTH)]
    assert vendordata.placements(whole)[server['id']].role == 'master'
