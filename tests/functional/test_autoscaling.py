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

"""The autoscaler on the lab: what the masters received authenticates at Keystone,
celtic's provider (celtic-autoscaler-provider, the master fragment
``autoscaler/celtic_autoscaler.py``, run here as the masters run it: a process with
that credential file) resizes the cluster through Magnum when a gRPC client makes the
calls cluster-autoscaler makes, the credential is held to its project, and dies with
the cluster.

The client speaks cluster-autoscaler's external gRPC cloud provider protocol
(``kubernetes/autoscaler`` cluster-autoscaler-1.36.1,
``cluster-autoscaler/cloudprovider/externalgrpc/``; celtic's statement of it:
doc/autoscaler-externalgrpc.proto) in the order its core loop does: Refresh,
NodeGroups, NodeGroupForNode, NodeGroupTargetSize, NodeGroupNodes, then
NodeGroupIncreaseSize to scale up and NodeGroupDeleteNodes with the Kubernetes node it
chose (providerID ``openstack:///<server uuid>``, as celtic's kubelets register, and
the node name) to scale down. The provider's own requests: Magnum's nodegroups and
resize API with ``node_count``, ``nodegroup`` and ``nodes_to_remove`` (the server
UUID), and celtic's stack outputs (``minion_nodes_stack``, then ``server_ids`` and
``names``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import grpc
import pytest
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from magnum_celtic import outputs
from magnum_celtic import pki
from magnum_celtic import request as req
from magnum_celtic import templates
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


def _provider_module():
    """celtic_autoscaler.py of the installed wheel, for its client and messages."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('celtic_autoscaler', PROVIDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROVIDER = os.path.join(templates.default_dir(), 'fragments', 'autoscaler',
                        'celtic_autoscaler.py')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def provider(magnum_lab, scaled, tmp_path):
    """celtic-autoscaler-provider for the cluster, with the credential file the master
    received, and a client of it (the calls cluster-autoscaler makes)."""
    masters = [s for name, s in _servers(magnum_lab).items() if '-master-' in name]
    credential = os.path.join(magnum_lab.cloud.node_dir(masters[0]['name'],
                                                        masters[0]['id']),
                              'etc', 'celtic', 'secrets', pki.CREDENTIAL_FILE)
    port = _free_port()
    log = open(tmp_path / 'provider.log', 'w+')
    process = subprocess.Popen(
        [sys.executable, '-I', PROVIDER, '--credential', credential, '--cluster-uuid',
         scaled['uuid'], '--listen', '127.0.0.1:%d' % port, '--refresh-seconds', '1'],
        stdout=log, stderr=subprocess.STDOUT)
    module = _provider_module()
    channel = grpc.insecure_channel('127.0.0.1:%d' % port)
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        yield module, module.Client(channel, timeout=120), log
    finally:
        channel.close()
        process.terminate()
        process.wait(timeout=30)
        log.seek(0)
        text = log.read()
        log.close()
        # the provider never logs the secret
        assert scaled['credential']['application_credential_secret'] not in text


def _wait_update(lab, uuid: str, before) -> None:
    magnum = lab.magnum('demo')
    final = clusterwatch.wait(magnum, uuid, 'UPDATE', timeout=TIMEOUT, before=before)
    assert final.status == 'UPDATE_COMPLETE', final.status_reason


def test_autoscaler_provider_scales_up_by_two_then_removes_one_named_node(magnum_lab,
                                                                          scaled,
                                                                          provider):
    module, client, log = provider
    heat = magnum_lab.heat(session=_session(scaled['credential']))
    uuid = scaled['uuid']
    magnum = magnum_lab.magnum('demo')
    node = module.PB['ExternalGrpcNode']

    client.Refresh()
    groups = client.NodeGroups().nodeGroups
    assert [(g.id, g.minSize, g.maxSize) for g in groups] == [(POOL, 1, 4)]
    servers = _servers(magnum_lab)
    master = next(name for name in servers if '-master-' in name)
    assert client.NodeGroupForNode(node=node(
        name=master, labels={'node-role.kubernetes.io/control-plane': ''})).nodeGroup.id \
        == ''
    before = _server_ids(heat, scaled['stack_id'])
    assert client.NodeGroupTargetSize(id=POOL).targetSize == 1
    assert {i.id for i in client.NodeGroupNodes(id=POOL).instances} == {
        'openstack:///' + s for s in before}

    # scale up by 2
    previous = magnum.clusters.get(uuid)
    client.NodeGroupIncreaseSize(id=POOL, delta=2)
    _wait_update(magnum_lab, uuid, previous)
    grown = _server_ids(heat, scaled['stack_id'])
    added = grown - before
    assert before < grown and len(added) == 2, (before, grown)
    assert client.NodeGroupTargetSize(id=POOL).targetSize == 3
    time.sleep(1.5)   # past the provider's refresh interval
    client.Refresh()
    assert {i.id for i in client.NodeGroupNodes(id=POOL).instances} == {
        'openstack:///' + s for s in grown}

    # the autoscaler picks one of the new nodes to remove
    chosen = sorted(added)[0]
    name = next(n for n, s in _servers(magnum_lab).items() if s['id'] == chosen)
    by_id = node(name=name, providerID='openstack:///' + chosen)
    assert client.NodeGroupForNode(node=by_id).nodeGroup.id == POOL
    assert client.NodeGroupForNode(node=node(name=name)).nodeGroup.id == POOL
    previous = magnum.clusters.get(uuid)
    client.NodeGroupDeleteNodes(id=POOL, nodes=[by_id])
    _wait_update(magnum_lab, uuid, previous)
    assert _server_ids(heat, scaled['stack_id']) == grown - {chosen}
    assert chosen not in {s['id'] for s in _servers(magnum_lab).values()}
    assert magnum.nodegroups.get(uuid, POOL).node_count == 2
    # and below the minimum it refuses, without touching the cluster
    left = sorted(grown - {chosen})
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupDeleteNodes(id=POOL, nodes=[
            node(providerID='openstack:///' + s) for s in left])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert magnum.clusters.get(uuid).status == 'UPDATE_COMPLETE'


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
