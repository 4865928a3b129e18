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

"""The access add-ons master 0 applies: Keystone login (manifests/keystone-auth.yaml)
and the dashboard (manifests/dashboard.yaml).

Each is rendered by the real fragments (node/keystone_auth.sh, node/dashboard.sh, with a
real CA and openssl, kubectl a stub that keeps what it was asked to apply) from the
node settings the driver computes for a sample cluster, then checked with
kubernetes-validate --strict for every supported Kubernetes minor, and for what the
rest of celtic relies on: pinned images, the policy the driver sent, the webhook on
the loopback of the masters only, a dashboard without rights of its own.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

from magnum_celtic import keystone_auth
from magnum_celtic import labels
from magnum_celtic import sample
from magnum_celtic import spec as spec_mod

REPO = pathlib.Path(__file__).resolve().parents[2]
FRAGMENTS = REPO / 'heat_templates' / 'fragments'
FACTS = {'cluster_name': 'demo', 'api_vip': '10.0.0.100', 'api_vip_fip': '172.24.4.50',
         'master_addresses': ['10.0.0.11'], 'proxy_vip': '10.0.0.200',
         'proxy_vip_fip': '172.24.4.51', 'proxy_addresses': ['10.0.0.21'],
         'storage_addresses': None, 'role': 'master'}
LABELS = {'keystone_auth_enabled': 'true', 'dashboard_enabled': 'true'}

SCRIPT = r'''
set -euo pipefail
source "$CELTIC_LIB_DIR/master.sh"
celtic_load_params
master_source_addons
kube_defaults
keystone_auth_addon
dashboard_addon
'''


def render_addons(tmp_path: pathlib.Path, **label_overrides) -> dict[str, list[dict]]:
    """The documents master 0 would apply, per manifest file name."""
    spec = sample.sample_spec(labels=dict(LABELS, **label_overrides))
    root = tmp_path / 'root'
    etc = root / 'etc' / 'celtic'
    etc.mkdir(parents=True)
    (etc / 'params.json').write_text(json.dumps(dict(spec.node_settings(), **FACTS)))
    pki = root / 'etc' / 'kubernetes' / 'pki'
    pki.mkdir(parents=True)
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                    '-subj', '/CN=sample', '-days', '30', '-keyout', str(pki / 'ca.key'),
                    '-out', str(pki / 'ca.crt')], check=True, capture_output=True)
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    applied = tmp_path / 'applied'
    applied.mkdir()
    (bin_dir / 'kubectl').write_text('#!/bin/sh\nfor a; do f=$a; done\ncp "$f" "%s/"\n'
                                     % applied)
    (bin_dir / 'kubectl').chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', CELTIC_ROOT=str(root),
               CELTIC_ETC=str(etc), CELTIC_LIB_DIR=str(FRAGMENTS),
               CELTIC_STATE_DIR=str(root / 'var'), CELTIC_LOG_FILE='',
               CELTIC_NODE_IP='10.0.0.11', CELTIC_NODE_NAME='demo-master-0',
               CELTIC_SLEEP='true')
    subprocess.run(['bash', '-c', SCRIPT], env=env, check=True, capture_output=True,
                   text=True, timeout=120)
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
            for path in applied.iterdir()}


@pytest.fixture(scope='module')
def addons(tmp_path_factory):
    return render_addons(tmp_path_factory.mktemp('addons'))


def one(docs, kind, name=None):
    found = [d for d in docs if d['kind'] == kind and name in (None, d['metadata']['name'])]
    assert len(found) == 1, (kind, name)
    return found[0]


@pytest.mark.parametrize('minor', labels.SUPPORTED_KUBE_MINORS)
@pytest.mark.parametrize('name', ['keystone-auth.yaml', 'dashboard.yaml'])
def test_access_addons_pass_strict_validation_for_every_supported_minor(addons, name,
                                                                        minor):
    assert addons[name]
    for doc in addons[name]:
        kubernetes_validate.validate(doc, '1.%d.0' % minor, strict=True)


def test_the_webhook_is_pinned_for_the_minor_and_listens_on_the_loopback_of_masters(
        addons):
    docs = addons['keystone-auth.yaml']
    pod = one(docs, 'DaemonSet')['spec']['template']['spec']
    container = pod['containers'][0]
    assert container['image'] == 'registry.k8s.io/provider-os/k8s-keystone-auth:v1.36.0'
    assert pod['hostNetwork'] is True
    assert pod['nodeSelector'] == {'node-role.kubernetes.io/control-plane': ''}
    args = dict(arg.split('=', 1) for arg in container['args'])
    assert args['--listen'] == '127.0.0.1:8443'
    assert container['livenessProbe']['tcpSocket'] == {'host': '127.0.0.1', 'port': 8443}
    assert args['--keystone-url'] == sample.SAMPLE_KEYSTONE_URL
    assert args['--policy-configmap-name'] == one(docs, 'ConfigMap')['metadata']['name']
    assert one(docs, 'ConfigMap')['metadata'] == {
        'name': 'k8s-auth-policy', 'namespace': 'kube-system',
        'labels': {'app.kubernetes.io/name': 'k8s-keystone-auth',
                   'app.kubernetes.io/part-of': 'celtic'}}
    assert pod['volumes'][0]['hostPath'] == {'path': '/etc/kubernetes/keystone-auth',
                                             'type': 'Directory'}
    assert container['securityContext']['capabilities'] == {'drop': ['ALL']}


def test_the_policy_configmap_holds_the_policy_the_driver_sent(addons):
    config_map = one(addons['keystone-auth.yaml'], 'ConfigMap')
    assert json.loads(config_map['data']['policies']) == keystone_auth.policy(
        sample.SAMPLE_PROJECT_ID)


def test_the_webhook_may_read_config_maps_and_nothing_else(addons):
    docs = addons['keystone-auth.yaml']
    rules = one(docs, 'ClusterRole')['rules']
    assert rules == [{'apiGroups': [''], 'resources': ['configmaps'],
                      'verbs': ['get', 'list', 'watch']}]
    subjects = one(docs, 'ClusterRoleBinding')['subjects']
    assert subjects == [{'kind': 'ServiceAccount', 'name': 'k8s-keystone-auth',
                         'namespace': 'kube-system'}]


def test_the_dashboard_has_no_rights_and_never_uses_its_own_token(addons):
    docs = addons['dashboard.yaml']
    rbac = ('RoleBinding', 'ClusterRoleBinding', 'Role', 'ClusterRole')
    assert not [d for d in docs if d['kind'] in rbac]
    container = one(docs, 'Deployment')['spec']['template']['spec']['containers'][0]
    assert not [a for a in container['args'] if 'service-account-token' in a]
    assert '-in-cluster' in container['args']
    assert container['image'] == 'ghcr.io/headlamp-k8s/headlamp:' + labels.DEFAULT_DASHBOARD_TAG


def test_the_dashboard_serves_https_on_its_port_with_a_certificate_of_the_cluster_ca(
        addons):
    docs = addons['dashboard.yaml']
    service = one(docs, 'Service')
    assert service['spec']['type'] == 'ClusterIP'
    assert [p['port'] for p in service['spec']['ports']] == [spec_mod.DASHBOARD_PORT]
    container = one(docs, 'Deployment')['spec']['template']['spec']['containers'][0]
    assert '-tls-cert-path=/etc/headlamp-tls/tls.crt' in container['args']
    secret = one(docs, 'Secret', 'headlamp-tls')
    cert = base64.b64decode(secret['data']['tls.crt'])
    text = subprocess.run(['openssl', 'x509', '-noout', '-text'], input=cert,
                          capture_output=True, check=True).stdout.decode()
    assert 'TLS Web Server Authentication' in text
    assert 'TLS Web Client Authentication' not in text
    assert 'DNS:localhost' in text and 'IP Address:127.0.0.1' in text
    # not published: the proxy VIP is not among its names
    assert '10.0.0.200' not in text
    namespace = one(docs, 'Namespace')
    assert namespace['metadata']['name'] == keystone_auth.DASHBOARD_NAMESPACE
    assert namespace['metadata']['labels']['pod-security.kubernetes.io/enforce'] == \
        'restricted'


def test_a_published_dashboard_is_a_load_balancer_service_named_for_the_proxy_vip(
        tmp_path):
    docs = render_addons(tmp_path, dashboard_service_type='LoadBalancer')['dashboard.yaml']
    service = one(docs, 'Service')
    # celtic-lb serves LoadBalancer Services without a class
    assert service['spec']['type'] == 'LoadBalancer'
    assert 'loadBalancerClass' not in service['spec']
    cert = base64.b64decode(one(docs, 'Secret')['data']['tls.crt'])
    text = subprocess.run(['openssl', 'x509', '-noout', '-ext', 'subjectAltName'],
                          input=cert, capture_output=True, check=True).stdout.decode()
    assert re.search(r'IP Address:10\.0\.0\.200\b', text)
    assert re.search(r'IP Address:172\.24\.4\.51\b', text)
    for doc in docs:
        kubernetes_validate.validate(doc, '1.36.0', strict=True)


def test_the_access_addons_reach_the_masters_only():
    with open(FRAGMENTS / 'bundles.yaml') as f:
        bundles = yaml.safe_load(f)
    from_vendordata = bundles.pop('vendordata')
    for path in ('node/keystone_auth.sh', 'manifests/keystone-auth.yaml',
                 'node/dashboard.sh', 'manifests/dashboard.yaml'):
        # the optional add-ons travel in celtic-vendordata's answer to the masters
        assert path in from_vendordata['master']
        assert not [role for role, files in {**bundles, **from_vendordata}.items()
                    if role != 'master' and path in files]
        assert path not in bundles['master']
