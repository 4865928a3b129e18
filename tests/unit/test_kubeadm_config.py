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

"""The kubeadm configurations the masters and minions render, checked structurally.

kubeadm itself is not available here, so each configuration is rendered by the real
fragments (bash, the real templates under heat_templates/fragments/templates, a sample
params.json) and the YAML is parsed and checked against what kubeadm v1beta4 expects
and what celtic needs: the VIP as endpoint, every address in the SANs, a token that
never expires, the apiserver bound to its own master's address, the pool's labels and
taints on workers.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
FRAGMENTS = REPO / 'heat_templates' / 'fragments'
TOKEN = 'q1w2e3.r4t5y6u7i8o9p0a1'
DISCOVERY_HASH = 'sha256:' + '0f' * 32
MASTERS = ['10.0.0.11', '10.0.0.12', '10.0.0.13']
KUBEADM = 'kubeadm.k8s.io/v1beta4'
SERVER_ID = '0b5c7d4e-1f2a-4b3c-8d9e-0f1a2b3c4d5e'

# Fields of the kubeadm v1beta4 types celtic writes (kubeadm rejects unknown fields).
KNOWN_FIELDS = {
    'InitConfiguration': {'apiVersion', 'kind', 'bootstrapTokens', 'nodeRegistration',
                          'localAPIEndpoint', 'certificateKey', 'skipPhases', 'patches',
                          'timeouts', 'dryRun'},
    'ClusterConfiguration': {'apiVersion', 'kind', 'etcd', 'networking',
                             'kubernetesVersion', 'controlPlaneEndpoint', 'apiServer',
                             'controllerManager', 'scheduler', 'dns', 'proxy',
                             'certificatesDir', 'imageRepository', 'featureGates',
                             'clusterName', 'encryptionAlgorithm',
                             'certificateValidityPeriod', 'caCertificateValidityPeriod'},
    'JoinConfiguration': {'apiVersion', 'kind', 'dryRun', 'nodeRegistration',
                          'caCertPath', 'discovery', 'controlPlane', 'skipPhases',
                          'patches', 'timeouts'},
    'NodeRegistrationOptions': {'name', 'criSocket', 'taints', 'kubeletExtraArgs',
                                'ignorePreflightErrors', 'imagePullPolicy',
                                'imagePullSerial'},
    'BootstrapToken': {'token', 'description', 'ttl', 'expires', 'usages', 'groups'},
}

PARAMS = {
    'kube_tag': 'v1.36', 'kube_minor': 'v1.36', 'network_driver': 'flannel',
    'pod_network_cidr': '10.100.0.0/16', 'service_network_cidr': '10.254.0.0/16',
    'dns_service_ip': '10.254.0.10', 'cluster_domain': 'cluster.example',
    'container_infra_prefix': '', 'http_proxy': '', 'https_proxy': '', 'no_proxy': '',
    'api_port': 6443, 'discovery_hash': DISCOVERY_HASH, 'cluster_name': 'prod-eu',
    'api_vip': '10.0.0.100', 'api_vip_fip': '203.0.113.7', 'master_addresses': MASTERS,
}

SCRIPT = r'''
set -euo pipefail
source "$CELTIC_LIB_DIR/master.sh"
celtic_load_params
master_source_addons
case "$1" in
    init) master_identity; master_render_init ;;
    join-control-plane) master_identity; master_render_join ;;
    join-worker) kube_defaults; kube_render_join worker ;;
esac
'''


def render(tmp_path: pathlib.Path, what: str, node_ip: str = MASTERS[0],
           **overrides) -> tuple[pathlib.Path, str]:
    """Render one kubeadm configuration with the real fragments; return etc and text."""
    root = tmp_path / 'root'
    etc = root / 'etc' / 'celtic'
    (etc / 'secrets').mkdir(parents=True)
    (etc / 'params.json').write_text(json.dumps(dict(PARAMS, **overrides)))
    (etc / 'secrets' / 'bootstrap-token').write_text(TOKEN + '\n')
    lib = tmp_path / 'lib'
    (lib / 'node').mkdir(parents=True)
    for entry in ('lib', 'templates', 'master.sh'):
        (lib / entry).symlink_to(FRAGMENTS / entry)
    for module in ('common', 'kubernetes', 'addons', 'members', 'keystone_auth',
                   'dashboard', 'cloud', 'autoscaler', 'heal'):
        (lib / 'node' / f'{module}.sh').symlink_to(FRAGMENTS / 'node' / f'{module}.sh')
    for module in ('ha', 'api_vip'):  # other engineers' modules, not needed to render
        (lib / 'node' / f'{module}.sh').write_text('')
    stubs = tmp_path / 'bin'
    stubs.mkdir()
    (stubs / 'kubeadm').write_text('#!/bin/sh\necho v1.36.3\n')
    (stubs / 'kubeadm').chmod(0o755)
    env = dict(os.environ, PATH=f'{stubs}:{os.environ["PATH"]}', CELTIC_ROOT=str(root),
               CELTIC_ETC=str(etc), CELTIC_LIB_DIR=str(lib),
               CELTIC_STATE_DIR=str(root / 'var'), CELTIC_LOG_FILE='',
               CELTIC_NODE_IP=node_ip, CELTIC_NODE_NAME='Prod-EU-Node-1',
               CELTIC_NODE_ID=os.environ.get('CELTIC_NODE_ID', SERVER_ID))
    subprocess.run(['bash', '-c', SCRIPT, 'render', what], env=env, check=True,
                   capture_output=True, text=True, timeout=60)
    kind = 'init' if what == 'init' else 'join'
    path = etc / 'kubeadm' / f'{kind}.yaml'
    assert oct(path.stat().st_mode & 0o777) == '0o600', 'holds the token: must be 0600'
    return etc, path.read_text()


def documents(text: str) -> dict[str, dict]:
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    by_kind = {doc['kind']: doc for doc in docs}
    assert len(by_kind) == len(docs), 'one document per kind'
    return by_kind


def assert_known_fields(kind: str, mapping: dict) -> None:
    unknown = set(mapping) - KNOWN_FIELDS[kind]
    assert not unknown, f'{kind} has fields kubeadm v1beta4 does not know: {unknown}'


def kubelet_args(registration: dict) -> dict[str, str]:
    args = registration['kubeletExtraArgs']
    assert all(set(arg) == {'name', 'value'} for arg in args), 'v1beta4: name/value list'
    return {arg['name']: arg['value'] for arg in args}


@pytest.fixture(scope='module')
def init(tmp_path_factory):
    etc, text = render(tmp_path_factory.mktemp('init'), 'init')
    return etc, documents(text)


def test_init_has_the_three_documents_kubeadm_expects(init):
    _, docs = init
    assert {kind: doc['apiVersion'] for kind, doc in docs.items()} == {
        'InitConfiguration': KUBEADM, 'ClusterConfiguration': KUBEADM,
        'KubeletConfiguration': 'kubelet.config.k8s.io/v1beta1'}
    assert_known_fields('InitConfiguration', docs['InitConfiguration'])
    assert_known_fields('ClusterConfiguration', docs['ClusterConfiguration'])
    assert_known_fields('NodeRegistrationOptions',
                        docs['InitConfiguration']['nodeRegistration'])


def test_init_endpoint_is_the_vip_and_sans_cover_every_way_in(init):
    _, docs = init
    cluster = docs['ClusterConfiguration']
    assert cluster['controlPlaneEndpoint'] == '10.0.0.100:6443'
    sans = cluster['apiServer']['certSANs']
    for name in ['10.0.0.100', '203.0.113.7', *MASTERS, 'localhost',
                 'kubernetes.default.svc.cluster.example']:
        assert name in sans
    assert len(sans) == len(set(sans))
    assert cluster['clusterName'] == 'prod-eu'
    assert cluster['kubernetesVersion'] == 'v1.36.3'
    assert cluster['imageRepository'] == 'registry.k8s.io'
    assert cluster['certificatesDir'] == '/etc/kubernetes/pki'


def test_init_token_never_expires_and_is_the_delivered_one(init):
    _, docs = init
    tokens = docs['InitConfiguration']['bootstrapTokens']
    assert len(tokens) == 1
    assert_known_fields('BootstrapToken', tokens[0])
    assert tokens[0]['token'] == TOKEN
    assert re.fullmatch(r'[a-z0-9]{6}\.[a-z0-9]{16}', tokens[0]['token'])
    assert tokens[0]['ttl'] in ('0s', 0, '0')
    assert 'expires' not in tokens[0]
    assert set(tokens[0]['usages']) == {'signing', 'authentication'}
    assert tokens[0]['groups'] == ['system:bootstrappers:kubeadm:default-node-token']


def test_init_networking_and_kubelet(init):
    _, docs = init
    assert docs['ClusterConfiguration']['networking'] == {
        'podSubnet': '10.100.0.0/16', 'serviceSubnet': '10.254.0.0/16',
        'dnsDomain': 'cluster.example'}
    kubelet = docs['KubeletConfiguration']
    assert kubelet['cgroupDriver'] == 'systemd'
    assert kubelet['clusterDNS'] == ['10.254.0.10']
    assert kubelet['clusterDomain'] == 'cluster.example'


def test_init_apiserver_binds_its_own_address_through_a_node_patch(init):
    etc, docs = init
    first = docs['InitConfiguration']
    assert first['localAPIEndpoint'] == {'advertiseAddress': MASTERS[0], 'bindPort': 6443}
    # Not in ClusterConfiguration: that one is shared by every master.
    extra = docs['ClusterConfiguration']['apiServer'].get('extraArgs') or []
    assert not [a for a in extra if a.get('name') == 'bind-address']
    patches = pathlib.Path(first['patches']['directory'])
    assert patches == etc / 'kubeadm' / 'patches'
    patch = yaml.safe_load((patches / 'kube-apiserver+json.yaml').read_text())
    assert patch == [{'op': 'add', 'path': '/spec/containers/0/command/-',
                      'value': f'--bind-address={MASTERS[0]}'}]


def test_init_registers_a_tainted_control_plane_node(init):
    _, docs = init
    registration = docs['InitConfiguration']['nodeRegistration']
    assert registration['name'] == 'prod-eu-node-1'
    assert registration['criSocket'] == 'unix:///run/containerd/containerd.sock'
    assert registration['taints'] == [{'key': 'node-role.kubernetes.io/control-plane',
                                       'effect': 'NoSchedule'}]
    # every kubelet names its server (the autoscaler's provider matches nodes by it)
    assert kubelet_args(registration) == {'node-ip': MASTERS[0],
                                          'provider-id': 'openstack:///' + SERVER_ID}
    # HAProxy holds VIP:6443 on the masters; kubeadm's port check would refuse.
    assert registration['ignorePreflightErrors'] == ['Port-6443']


def test_init_without_floating_ip_and_with_a_registry_prefix(tmp_path):
    _, text = render(tmp_path, 'init', api_vip_fip='',
                     container_infra_prefix='registry.example.com:5000/mirror/')
    cluster = documents(text)['ClusterConfiguration']
    assert '' not in cluster['apiServer']['certSANs']
    assert cluster['imageRepository'] == 'registry.example.com:5000/mirror'


def test_control_plane_join_uses_the_vip_and_the_certificates_on_disk(tmp_path):
    etc, text = render(tmp_path, 'join-control-plane', node_ip=MASTERS[2])
    docs = documents(text)
    join = docs['JoinConfiguration']
    assert set(docs) == {'JoinConfiguration'}
    assert join['apiVersion'] == KUBEADM
    assert_known_fields('JoinConfiguration', join)
    assert join['discovery']['bootstrapToken'] == {
        'apiServerEndpoint': '10.0.0.100:6443', 'token': TOKEN,
        'caCertHashes': [DISCOVERY_HASH]}
    assert join['controlPlane'] == {
        'localAPIEndpoint': {'advertiseAddress': MASTERS[2], 'bindPort': 6443}}
    assert 'certificateKey' not in join['controlPlane']
    assert join['nodeRegistration']['taints'][0]['effect'] == 'NoSchedule'
    assert join['nodeRegistration']['ignorePreflightErrors'] == ['Port-6443']
    patch = yaml.safe_load((etc / 'kubeadm' / 'patches' / 'kube-apiserver+json.yaml')
                           .read_text())
    assert patch[0]['value'] == f'--bind-address={MASTERS[2]}'
    assert pathlib.Path(join['patches']['directory']) == etc / 'kubeadm' / 'patches'


def test_worker_join_carries_the_pool_labels_and_taints(tmp_path):
    _, text = render(tmp_path, 'join-worker', node_ip='10.0.0.57',
                     node_labels={'celtic.openstack.org/pool': 'gpu',
                                  'node.kubernetes.io/disk': 'ssd',
                                  'node-role.kubernetes.io/worker': ''},
                     node_taints=[{'key': 'dedicated', 'value': 'gpu',
                                   'effect': 'NoSchedule'},
                                  {'key': 'spot', 'effect': 'PreferNoSchedule'}])
    join = documents(text)['JoinConfiguration']
    assert_known_fields('JoinConfiguration', join)
    assert_known_fields('NodeRegistrationOptions', join['nodeRegistration'])
    assert 'controlPlane' not in join and 'patches' not in join
    assert join['discovery']['bootstrapToken']['apiServerEndpoint'] == '10.0.0.100:6443'
    assert join['discovery']['bootstrapToken']['caCertHashes'] == [DISCOVERY_HASH]
    registration = join['nodeRegistration']
    args = kubelet_args(registration)
    assert args['node-ip'] == '10.0.0.57'
    # The kubelet refuses to start with a node-role label: it is left out.
    assert sorted(args['node-labels'].split(',')) == [
        'celtic.openstack.org/pool=gpu', 'node.kubernetes.io/disk=ssd']
    assert registration['taints'] == [
        {'key': 'dedicated', 'value': 'gpu', 'effect': 'NoSchedule'},
        {'key': 'spot', 'effect': 'PreferNoSchedule'}]
    assert registration['ignorePreflightErrors'] == []


def test_worker_without_labels_or_taints_registers_untainted(tmp_path):
    _, text = render(tmp_path, 'join-worker', node_ip='10.0.0.57',
                     node_labels={}, node_taints=[])
    registration = documents(text)['JoinConfiguration']['nodeRegistration']
    assert registration['taints'] == []
    assert kubelet_args(registration) == {'node-ip': '10.0.0.57',
                                          'provider-id': 'openstack:///' + SERVER_ID}


def test_init_without_keystone_login_leaves_the_apiserver_s_authorization_alone(init):
    _, docs = init
    api_server = docs['ClusterConfiguration']['apiServer']
    assert api_server['extraArgs'] == [] and api_server['extraVolumes'] == []


def test_init_with_keystone_login_sends_tokens_and_requests_to_the_webhook(tmp_path):
    _, text = render(tmp_path, 'init', keystone_auth_enabled=True,
                     keystone_auth_url='https://keystone.example.com/v3')
    api_server = documents(text)['ClusterConfiguration']['apiServer']
    args = {arg['name']: arg['value'] for arg in api_server['extraArgs']}
    assert all(set(arg) == {'name', 'value'} for arg in api_server['extraArgs'])
    config = '/etc/kubernetes/keystone-auth/webhook.kubeconfig'
    assert args == {
        'authentication-token-webhook-config-file': config,
        # k8s-keystone-auth answers the v1beta1 reviews only
        'authentication-token-webhook-version': 'v1beta1',
        'authorization-mode': 'Node,Webhook,RBAC',
        'authorization-webhook-config-file': config,
        'authorization-webhook-version': 'v1beta1'}
    # the apiserver's static pod sees the directory, read-only (kubeadm's HostPathMount)
    assert api_server['extraVolumes'] == [{
        'name': 'keystone-auth', 'hostPath': '/etc/kubernetes/keystone-auth',
        'mountPath': '/etc/kubernetes/keystone-auth', 'readOnly': True,
        'pathType': 'Directory'}]


@pytest.mark.parametrize('what', ['init', 'join-control-plane', 'join-worker'])
def test_with_the_cloud_provider_every_kubelet_is_external_and_names_its_server(
        tmp_path, what):
    _, text = render(tmp_path, what, node_ip=MASTERS[1] if what != 'join-worker'
                     else '10.0.0.57', cloud_provider_enabled=True,
                     node_labels={}, node_taints=[])
    docs = documents(text)
    registration = docs['InitConfiguration' if what == 'init'
                        else 'JoinConfiguration']['nodeRegistration']
    assert_known_fields('NodeRegistrationOptions', registration)
    args = kubelet_args(registration)
    assert args['cloud-provider'] == 'external'
    assert args['provider-id'] == 'openstack:///' + SERVER_ID


def test_without_the_cloud_provider_no_kubelet_defers_to_one(tmp_path):
    _, text = render(tmp_path, 'init', cloud_provider_enabled=False)
    args = kubelet_args(documents(text)['InitConfiguration']['nodeRegistration'])
    assert 'cloud-provider' not in args
    # the provider ID the cloud controller would set, set by the kubelet itself
    assert args['provider-id'] == 'openstack:///' + SERVER_ID


def test_a_node_registers_with_its_server_as_provider_id(tmp_path, monkeypatch):
    # cloud-init's instance id (here CELTIC_NODE_ID) is the Nova server UUID: the
    # autoscaler's provider matches nodes to servers by it (doc/autoscaling.md)
    server = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f'
    monkeypatch.setenv('CELTIC_NODE_ID', server)
    _, text = render(tmp_path / 'worker', 'join-worker', node_ip='10.0.0.57',
                     node_labels={}, node_taints=[])
    registration = documents(text)['JoinConfiguration']['nodeRegistration']
    assert kubelet_args(registration) == {'node-ip': '10.0.0.57',
                                          'provider-id': 'openstack:///' + server}
    # a node id that is not a server UUID (no cloud-init: the host name) gives none
    monkeypatch.setenv('CELTIC_NODE_ID', 'Prod-EU-Node-1')
    _, text = render(tmp_path / 'plain', 'join-worker', node_ip='10.0.0.57',
                     node_labels={}, node_taints=[])
    registration = documents(text)['JoinConfiguration']['nodeRegistration']
    assert 'provider-id' not in kubelet_args(registration)
