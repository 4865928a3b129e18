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

"""The autoscaler's credential on the lab: what the masters received authenticates at
Keystone, resizes the cluster through Magnum exactly as the autoscaler would, is held
to its project, and dies with the cluster.

The request sequence replayed is the one of celtic's autoscaler provider
(doc/autoscaling.md): its Magnum calls are those of cluster-autoscaler's Magnum
provider, ``kubernetes/autoscaler`` at commit 1dbeacf,
``cluster-autoscaler/cloudprovider/magnum/magnum_manager_impl.go``: ``nodeGroupSize``
(``nodegroups.Get``), ``updateNodeCount`` (``clusters.Resize`` with ``node_count`` and
``nodegroup``) and ``deleteNodes`` (``clusters.Resize`` with ``nodes_to_remove``, the
node's SystemUUID, which is the Nova server UUID); its Heat reads are celtic's own
stack outputs (``minion_nodes_stack``, then the servers stack's ``server_ids``), where
the Magnum provider would look for the old driver's ``kube_minions`` ResourceGroup.
"""

from __future__ import annotations

import json
import os

import pytest
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from magnum_celtic import outputs
from magnum_celtic import pki
from magnum_celtic import request as req
from magnum_celtic.lab import clusterwatch

TIMEOUT = 600
NAME = 'asc'
POOL = 'default-worker'
#: Magnum's API microversion the requests ask for (nodegroups need >= 1.9)
MAGNUM_VERSION = {'OpenStack-API-Version': 'container-infra 1.10'}
MAGNUM = {'service_type': 'container-infra', 'interface': 'public'}


def _servers(lab) -> dict[str, dict]:
    return {s['name']: s for s in lab.cloud.snapshot()['servers'].values()
            if s['name'].startswith(NAME + '-')}


def _credential_file(lab) -> dict:
    masters = [s for name, s in _servers(lab).items() if '-master-' in name]
    assert masters, sorted(_servers(lab))
    path = os.path.join(lab.cloud.node_dir(masters[0]['name'], masters[0]['id']), 'etc',
                        'celtic', 'secrets', pki.CREDENTIAL_FILE)
    assert os.stat(path).st_mode & 0o077 == 0, 'the credential file is readable by others'
    with open(path) as f:
        return json.load(f)


def _session(doc: dict) -> ks_session.Session:
    auth = v3.ApplicationCredential(
        auth_url=doc['auth_url'], application_credential_id=doc['application_credential_id'],
        application_credential_secret=doc['application_credential_secret'])
    return ks_session.Session(auth=auth, timeout=60)


@pytest.fixture(scope='module')
def scaled(magnum_lab):
    """A small cluster (1 master, 1 minion, no proxies, no storage) with the
    autoscaler's labels, created by demo."""
    magnum = magnum_lab.magnum('demo')
    template = clusterwatch.create_template(
        magnum, '%s-template' % NAME,
        labels={'proxy_count': '0', 'storage_count': '0', 'auto_scaling_enabled': 'true',
                'min_node_count': '1', 'max_node_count': '4'})
    created = magnum.clusters.create(name=NAME, cluster_template_id=template.uuid,
                                     master_count=1, node_count=1, keypair='lab')
    final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
    state = {'uuid': created.uuid, 'deleted': False}
    try:
        assert final.status == 'CREATE_COMPLETE', final.status_reason
        # Magnum does not show a member the stack id: the stack is found by its name
        state['stack_id'] = req.cluster_stack_name(NAME, created.uuid)
        state['credential'] = _credential_file(magnum_lab)
        yield state
    finally:
        if not state['deleted']:
            try:
                magnum.clusters.delete(created.uuid)
                clusterwatch.wait(magnum, created.uuid, 'DELETE', timeout=TIMEOUT)
            except Exception:
                pass
        magnum.cluster_templates.delete(template.uuid)


def _server_ids(heat, stack_id: str) -> set[str]:
    """What celtic's provider reads: the cluster stack's minion_nodes_stack, then that
    stack's server_ids (the server UUIDs of its members)."""
    def output(stack, key):
        return next(o['output_value'] for o in stack.outputs if o['output_key'] == key)
    root = heat.stacks.get(stack_id)
    servers = heat.stacks.get(outputs.nested_stack_path(
        output(root, outputs.MINION_NODES_STACK)))
    return set(output(servers, outputs.SERVER_IDS) or ())


def _resize(lab, session, cluster_uuid: str, body: dict) -> None:
    magnum = lab.magnum('demo')
    before = magnum.clusters.get(cluster_uuid)
    answer = session.post('/clusters/%s/actions/resize' % cluster_uuid, json=body,
                          headers=MAGNUM_VERSION, endpoint_filter=MAGNUM)
    assert answer.status_code == 202, answer.text
    final = clusterwatch.wait(magnum, cluster_uuid, 'UPDATE', timeout=TIMEOUT,
                              before=before)
    assert final.status == 'UPDATE_COMPLETE', final.status_reason


def test_autoscaling_credential_reaches_the_masters_only_and_authenticates(magnum_lab,
                                                                           scaled):
    doc = scaled['credential']
    assert doc['auth_url'].rstrip('/') == magnum_lab.keystone_url.rstrip('/')
    session = _session(doc)
    assert session.get_project_id() == magnum_lab.session('demo').get_project_id()
    for name, server in _servers(magnum_lab).items():
        if '-master-' in name:
            continue
        secrets = os.path.join(magnum_lab.cloud.node_dir(name, server['id']), 'etc',
                               'celtic', 'secrets')
        assert pki.CREDENTIAL_FILE not in os.listdir(secrets), name


def test_autoscaler_requests_scale_up_by_two_then_remove_one_named_node(magnum_lab,
                                                                        scaled):
    session = _session(scaled['credential'])
    heat = magnum_lab.heat(session=session)
    uuid = scaled['uuid']
    group = session.get('/clusters/%s/nodegroups/%s' % (uuid, POOL),
                        headers=MAGNUM_VERSION, endpoint_filter=MAGNUM).json()
    assert (group['node_count'], group['min_node_count'], group['max_node_count']) == (
        1, 1, 4)
    before = _server_ids(heat, scaled['stack_id'])
    _resize(magnum_lab, session, uuid, {'node_count': 3, 'nodegroup': POOL})
    grown = _server_ids(heat, scaled['stack_id'])
    added = grown - before
    assert before < grown and len(added) == 2, (before, grown)
    chosen = sorted(added)[0]
    _resize(magnum_lab, session, uuid, {'node_count': 2, 'nodes_to_remove': [chosen],
                                        'nodegroup': POOL})
    assert _server_ids(heat, scaled['stack_id']) == grown - {chosen}
    assert chosen not in {s['id'] for s in _servers(magnum_lab).values()}


def test_the_credential_is_held_to_its_project(magnum_lab, scaled):
    session = _session(scaled['credential'])
    admin = magnum_lab.session('admin')
    other = admin.get_project_id()
    # Heat: another project's stacks
    answer = session.get('/%s/stacks' % other, raise_exc=False,
                         endpoint_filter={'service_type': 'orchestration',
                                          'interface': 'public'},
                         endpoint_override=magnum_lab.heat_url)
    assert answer.status_code in (401, 403, 404), answer.text
    # Magnum: the clusters it lists are its project's only
    listed = session.get('/clusters', headers=MAGNUM_VERSION,
                         endpoint_filter=MAGNUM).json()['clusters']
    assert {c['uuid'] for c in listed} <= {
        c.uuid for c in magnum_lab.magnum('demo').clusters.list()}
    # and it cannot make credentials of its own (not unrestricted)
    user = session.get_user_id()
    answer = session.post('/users/%s/application_credentials' % user, raise_exc=False,
                          json={'application_credential': {'name': 'escape'}},
                          endpoint_filter={'service_type': 'identity',
                                           'interface': 'public'})
    assert answer.status_code == 403, answer.text


def test_after_cluster_delete_the_credential_no_longer_authenticates(magnum_lab, scaled):
    magnum = magnum_lab.magnum('demo')
    magnum.clusters.delete(scaled['uuid'])
    gone = clusterwatch.wait(magnum, scaled['uuid'], 'DELETE', timeout=TIMEOUT)
    scaled['deleted'] = True
    assert gone is None or gone.status == 'DELETE_COMPLETE'
    with pytest.raises((ks_exc.Unauthorized, ks_exc.NotFound)):
        _session(scaled['credential']).get_token()
