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

"""celtic-autoscaler-provider (fragments/autoscaler/celtic_autoscaler.py), the installed
copy, over real gRPC on loopback against a recording stand-in of Magnum and Heat: its
interface is doc/autoscaler-externalgrpc.proto, its names are the driver's, and every
change it makes is one Magnum resize within the nodegroup's bounds, naming exactly the
servers of the nodes the autoscaler chose. The lab test (tests/functional/
test_autoscaling.py) runs the same program against the real services.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys

import grpc
import pytest

from magnum_celtic import request as req
from magnum_celtic import templates

PROGRAM = os.path.join(templates.default_dir(), 'fragments', 'autoscaler',
                       'celtic_autoscaler.py')
PROTO = os.path.join(os.path.dirname(__file__), '..', '..', 'doc',
                     'autoscaler-externalgrpc.proto')
_spec = importlib.util.spec_from_file_location('celtic_autoscaler', PROGRAM)
cap = importlib.util.module_from_spec(_spec)
_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
_spec.loader.exec_module(cap)
sys.dont_write_bytecode = _bytecode

CLUSTER = '5d12f6fd-0000-4000-8000-000000000001'
NAME = 'demo'
STACK = req.cluster_stack_name(NAME, CLUSTER)
SERVERS = 'celtic-demo-minions/0a0a'
MASTER = 'demo-master-0'


def uuid(n: int) -> str:
    return '00000000-0000-4000-8000-%012d' % n


class FakeCloud:
    """Magnum's nodegroups and celtic's stack outputs, and a record of the requests."""

    def __init__(self, count=2, low=1, high=4, others=()):
        self.calls = []
        self.groups = {
            'default-master': {'name': 'default-master', 'role': 'master',
                               'is_default': True, 'node_count': 1,
                               'min_node_count': 1, 'max_node_count': None},
            'default-worker': {'name': 'default-worker', 'role': 'worker',
                               'is_default': True, 'node_count': count,
                               'min_node_count': low, 'max_node_count': high,
                               'status': 'CREATE_COMPLETE'},
        }
        for name in others:
            self.groups[name] = {'name': name, 'role': 'worker', 'is_default': False,
                                 'node_count': 1, 'min_node_count': 0,
                                 'max_node_count': None}
        self.servers = [('demo-minion-%d' % i, uuid(i)) for i in range(count)]

    def request(self, method, service_type, path, body=None, headers=None, expect=(200,)):
        self.calls.append((method, service_type, path, body))
        if service_type == 'container-infra':
            assert headers == {'OpenStack-API-Version': cap.MAGNUM_VERSION}
            base = '/clusters/%s' % CLUSTER
            assert path.startswith(base), path
            rest = path[len(base):]
            if rest == '':
                return {'uuid': CLUSTER, 'name': NAME}
            if rest == '/nodegroups':
                return {'nodegroups': [{'name': n, 'role': g['role']}
                                       for n, g in self.groups.items()]}
            if rest.startswith('/nodegroups/'):
                return dict(self.groups[rest.split('/')[-1]])
            if rest == '/actions/resize':
                # Magnum records the new count at once; the stack follows
                self.groups[body['nodegroup']]['node_count'] = body['node_count']
                return {'uuid': CLUSTER}
        if service_type == 'orchestration':
            if path == '/stacks/' + STACK:
                return {'stack': {'outputs': [
                    {'output_key': 'minion_nodes_stack',
                     'output_value': 'arn:openstack:heat::p:stacks/' + SERVERS}]}}
            if path == '/stacks/' + SERVERS:
                return {'stack': {'outputs': [
                    {'output_key': 'server_ids', 'output_value': [s[1] for s in
                                                                  self.servers]},
                    {'output_key': 'names', 'output_value': [s[0] for s in
                                                             self.servers]}]}}
        raise AssertionError('unexpected request %s %s %s' % (method, service_type, path))

    def resizes(self):
        return [body for method, _, path, body in self.calls
                if path.endswith('/actions/resize')]


@pytest.fixture
def served():
    """The provider on a loopback port, a client, and the stand-in cloud."""
    cloud = FakeCloud()
    provider = cap.Provider(cloud, CLUSTER, refresh_seconds=0)
    server, port = cap.serve(provider, '127.0.0.1:0')
    channel = grpc.insecure_channel('127.0.0.1:%d' % port)
    try:
        yield cap.Client(channel, timeout=10), cloud
    finally:
        channel.close()
        server.stop(0)


def node(name='', provider_id='', **labels):
    return cap.PB['ExternalGrpcNode'](name=name, providerID=provider_id, labels=labels)


# ---- the interface --------------------------------------------------------------------

def _proto_text():
    with open(PROTO) as f:
        return re.sub(r'//[^\n]*', '', f.read())


def test_the_descriptors_are_the_interface_the_proto_file_states():
    text = _proto_text()
    assert re.search(r'package\s+%s\s*;' % re.escape(cap.PACKAGE), text)
    stated = {method: (request, response) for method, request, response in re.findall(
        r'rpc\s+(\w+)\((\w+)\)\s+returns\s+\((\w+)\)', text)}
    assert stated == cap.METHODS
    assert list(stated) == list(cap.METHODS)
    built = {m.name: m for m in cap.file_descriptor_proto().message_type}
    body = re.compile(r'message\s+(\w+)\s*{((?:[^{}]|{[^{}]*})*)}', re.S)
    messages = dict(body.findall(text))
    assert set(messages) == set(built) == set(cap.MESSAGES)
    field = re.compile(r'(repeated\s+)?(map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;')
    for name, inner in messages.items():
        inner = re.sub(r'enum\s+\w+\s*{[^}]*}', '', inner)
        fields = [(f_name, int(number), ('*' if rep else '') + kind)
                  for rep, kind, f_name, number in field.findall(inner)]
        expected = [(n, num, k.replace('enum InstanceStatus.InstanceState',
                                       'InstanceState'))
                    for n, num, k in cap.MESSAGES[name]]
        assert fields == expected, name


def test_messages_round_trip_on_the_wire():
    request = cap.PB['NodeGroupDeleteNodesRequest'](
        id='default-worker', nodes=[node('demo-minion-1', 'openstack:///' + uuid(1),
                                         pool='a')])
    again = cap.PB['NodeGroupDeleteNodesRequest'].FromString(request.SerializeToString())
    assert again.nodes[0].labels == {'pool': 'a'}
    assert again.nodes[0].providerID == 'openstack:///' + uuid(1)


@pytest.mark.parametrize('name', ['demo', 'Big Cluster_01', '', '-x-', 'a' * 40])
def test_stack_names_are_the_drivers(name):
    assert cap.cluster_stack_name(name, CLUSTER) == req.cluster_stack_name(name, CLUSTER)
    for pool in ('gpu', 'GPU pool', '***'):
        assert cap.pool_stack_name(name, CLUSTER, pool) == req.pool_stack_name(
            name, CLUSTER, pool)


# ---- node groups and nodes --------------------------------------------------------------

def test_one_group_per_worker_nodegroup_with_a_max(served):
    client, _ = served
    groups = client.NodeGroups().nodeGroups
    assert [(g.id, g.minSize, g.maxSize) for g in groups] == [('default-worker', 1, 4)]
    assert client.NodeGroupTargetSize(id='default-worker').targetSize == 2
    instances = client.NodeGroupNodes(id='default-worker').instances
    assert [i.id for i in instances] == ['openstack:///' + uuid(0),
                                         'openstack:///' + uuid(1)]
    assert {i.status.instanceState for i in instances} == {1}


def test_a_node_is_found_by_provider_id_or_by_name_and_a_master_is_in_no_group(served):
    client, _ = served
    by_id = client.NodeGroupForNode(node=node('whatever', 'openstack:///' + uuid(1)))
    assert by_id.nodeGroup.id == 'default-worker'
    by_name = client.NodeGroupForNode(node=node('demo-minion-0'))
    assert by_name.nodeGroup.id == 'default-worker'
    master = node(MASTER, **{cap.CONTROL_PLANE_LABEL: ''})
    assert client.NodeGroupForNode(node=master).nodeGroup.id == ''
    # a providerID names its server: a matching name does not override it
    stranger = node('demo-minion-0', 'openstack:///' + uuid(99))
    assert client.NodeGroupForNode(node=stranger).nodeGroup.id == ''


# ---- changes: Magnum resizes within the bounds -------------------------------------------

def test_increase_is_one_resize_of_that_nodegroup(served):
    client, cloud = served
    client.NodeGroupIncreaseSize(id='default-worker', delta=2)
    assert cloud.resizes() == [{'node_count': 4, 'nodegroup': 'default-worker'}]
    assert client.NodeGroupTargetSize(id='default-worker').targetSize == 4


def test_increase_beyond_max_or_not_positive_is_refused_and_nothing_is_sent(served):
    client, cloud = served
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupIncreaseSize(id='default-worker', delta=3)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'max_node_count 4' in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupIncreaseSize(id='default-worker', delta=0)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupIncreaseSize(id='default-master', delta=1)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert cloud.resizes() == []


def test_delete_names_exactly_the_chosen_servers(served):
    client, cloud = served
    cloud.servers.append(('demo-minion-2', uuid(2)))
    cloud.groups['default-worker']['node_count'] = 3
    client.NodeGroupDeleteNodes(id='default-worker', nodes=[
        node('demo-minion-2', 'openstack:///' + uuid(2))])
    assert cloud.resizes() == [{'node_count': 2, 'nodegroup': 'default-worker',
                                'nodes_to_remove': [uuid(2)]}]


def test_delete_of_a_node_elsewhere_or_below_min_is_refused(served):
    client, cloud = served
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupDeleteNodes(id='default-worker', nodes=[node(MASTER)])
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert MASTER in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupDeleteNodes(id='default-worker', nodes=[
            node('demo-minion-0'), node('demo-minion-1')])
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'min_node_count 1' in error.value.details()
    assert cloud.resizes() == []


def test_decrease_target_only_drops_servers_not_made_yet(served):
    client, cloud = served
    cloud.groups['default-worker']['node_count'] = 4   # two servers not made yet
    with pytest.raises(grpc.RpcError) as error:
        client.NodeGroupDecreaseTargetSize(id='default-worker', delta=-3)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    client.NodeGroupDecreaseTargetSize(id='default-worker', delta=-2)
    assert cloud.resizes() == [{'node_count': 2, 'nodegroup': 'default-worker'}]


def test_what_celtic_does_not_offer_answers_unimplemented(served):
    client, _ = served
    for method in ('PricingNodePrice', 'PricingPodPrice', 'NodeGroupTemplateNodeInfo',
                   'NodeGroupGetOptions'):
        with pytest.raises(grpc.RpcError) as error:
            getattr(client, method)()
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED, method
    assert client.GPULabel().label == ''
    client.Refresh()
    client.Cleanup()


def test_a_magnum_refusal_reaches_the_autoscaler_with_magnum_s_words():
    class Busy(FakeCloud):
        def request(self, method, service_type, path, body=None, headers=None,
                    expect=(200,)):
            if path.endswith('/actions/resize'):
                raise cap.CloudError('POST /actions/resize: HTTP 409: cluster is '
                                     'UPDATE_IN_PROGRESS', 409)
            return super().request(method, service_type, path, body, headers, expect)
    provider = cap.Provider(Busy(), CLUSTER, refresh_seconds=0)
    server, port = cap.serve(provider, '127.0.0.1:0')
    try:
        client = cap.Client(grpc.insecure_channel('127.0.0.1:%d' % port), timeout=10)
        with pytest.raises(grpc.RpcError) as error:
            client.NodeGroupIncreaseSize(id='default-worker', delta=1)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert 'UPDATE_IN_PROGRESS' in error.value.details()
    finally:
        server.stop(0)


def test_mutual_tls_refuses_a_client_without_the_certificate(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import datetime
    import ipaddress

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name('ca')).issuer_name(name('ca'))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(ca_key, hashes.SHA256()))
    pems = {'ca.crt': ca.public_bytes(serialization.Encoding.PEM)}
    for who, usage in (('server', ExtendedKeyUsageOID.SERVER_AUTH),
                       ('client', ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(who)).issuer_name(name('ca'))
                   .public_key(key.public_key()).serial_number(2 if who == 'server' else 3)
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), False))
        if who == 'server':
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), False)
        pems[who + '.crt'] = builder.sign(ca_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM)
        pems[who + '.key'] = pem_key(key)
    for file_name, data in pems.items():
        (tmp_path / file_name).write_bytes(data)
    provider = cap.Provider(FakeCloud(), CLUSTER, refresh_seconds=0)
    server, port = cap.serve(provider, '127.0.0.1:0', tls_dir=str(tmp_path))
    address = '127.0.0.1:%d' % port
    try:
        good = grpc.secure_channel(address, grpc.ssl_channel_credentials(
            pems['ca.crt'], pems['client.key'], pems['client.crt']))
        assert cap.Client(good, timeout=10).NodeGroups().nodeGroups[0].id == \
            'default-worker'
        anonymous = grpc.secure_channel(address, grpc.ssl_channel_credentials(
            pems['ca.crt']))
        with pytest.raises(grpc.RpcError) as error:
            cap.Client(anonymous, timeout=10).NodeGroups()
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        plain = grpc.insecure_channel(address)
        with pytest.raises(grpc.RpcError):
            cap.Client(plain, timeout=10).NodeGroups()
    finally:
        server.stop(0)
