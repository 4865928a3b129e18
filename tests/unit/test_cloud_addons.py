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

"""The cloud add-ons master 0 applies: the OpenStack cloud-controller-manager and
Cinder CSI (node/cloud.sh, doc/cloud-provider.md).

The manifests are rendered as node/addons.sh renders them (every {{CELTIC_<KEY>}} from
a sample cluster's node settings and its stack facts) for every supported Kubernetes
minor, validated with kubernetes-validate --strict for that minor, and checked for
what celtic relies on: the releases of the per-minor table, the service controller
off, the credential's Secret mounted only by the two controllers on the masters and
readable only by their user. The Secret itself is what node/cloud.sh writes from a
credential file, rendered here by the real script and validated the same way.
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

from magnum_celtic import labels
from magnum_celtic import sample

FRAGMENTS = pathlib.Path(__file__).resolve().parents[2] / 'heat_templates' / 'fragments'
MANIFESTS = FRAGMENTS / 'manifests'
CCM = 'openstack-cloud-controller-manager.yaml'
CSI = 'cinder-csi.yaml'
PLACEHOLDER = re.compile(r'{{\s*([A-Z][A-Z0-9_]*)\s*}}')
CLUSTER_UUID = '5a3a8f0e-0c6b-4a1e-9d2f-3c1e2b7a9d10'
SECRET = 'celtic-cloud-config'


def settings(minor: int = 36) -> dict:
    spec = sample.sample_spec(labels={'kube_tag': 'v1.%d' % minor,
                                      'cloud_provider_enabled': 'true',
                                      'cinder_csi_enabled': 'true'})
    # the stack's facts every node's params.json also holds (celtic.yaml cluster_facts)
    return dict(spec.node_settings(), cluster_uuid=CLUSTER_UUID)


def render(name: str, minor: int = 36) -> str:
    text = (MANIFESTS / name).read_text()
    values = {'CELTIC_' + key.upper(): str(value) for key, value in settings(minor).items()}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def documents(name: str, minor: int = 36) -> list[dict]:
    return [d for d in yaml.safe_load_all(render(name, minor)) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d['kind'] == kind and name in (None, d['metadata']['name'])]
    assert len(found) == 1, (kind, name, [d['metadata']['name'] for d in docs])
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload['spec']['template']['spec']


def container(workload: dict, name: str) -> dict:
    [found] = [c for c in pod_spec(workload)['containers'] if c['name'] == name]
    return found


@pytest.mark.parametrize('minor', labels.SUPPORTED_KUBE_MINORS)
@pytest.mark.parametrize('name', [CCM, CSI])
def test_manifest_passes_strict_validation_for_every_supported_minor(name, minor):
    for doc in documents(name, minor):
        kubernetes_validate.validate(doc, '1.%d.0' % minor, strict=True)


@pytest.mark.parametrize('name', [CCM, CSI])
def test_placeholders_are_node_settings(name):
    used = set(PLACEHOLDER.findall((MANIFESTS / name).read_text()))
    known = {'CELTIC_' + key.upper() for key in settings()}
    assert used and used <= known, used - known


@pytest.mark.parametrize('minor', labels.SUPPORTED_KUBE_MINORS)
def test_every_image_is_the_release_the_table_pins_for_the_minor(minor):
    pins = labels.ADDON_VERSIONS_BY_MINOR[minor]
    expected = {
        'registry.k8s.io/provider-os/openstack-cloud-controller-manager':
            pins['cloud_provider_tag'],
        'registry.k8s.io/provider-os/cinder-csi-plugin': pins['cinder_csi_plugin_tag'],
        'registry.k8s.io/sig-storage/csi-provisioner': pins['csi_provisioner_tag'],
        'registry.k8s.io/sig-storage/csi-attacher': pins['csi_attacher_tag'],
        'registry.k8s.io/sig-storage/csi-resizer': pins['csi_resizer_tag'],
        'registry.k8s.io/sig-storage/livenessprobe': pins['csi_livenessprobe_tag'],
        'registry.k8s.io/sig-storage/csi-node-driver-registrar':
            pins['csi_node_driver_registrar_tag'],
    }
    images = set()
    for name in (CCM, CSI):
        images |= set(re.findall(r'^\s*(?:-\s+)?image:\s*(\S+)$', render(name, minor), re.M))
    assert {image.rsplit(':', 1)[0]: image.rsplit(':', 1)[1] for image in images} == expected


# ---- the cloud-controller-manager ----------------------------------------------------------

def test_ccm_runs_the_node_controllers_only_never_the_service_controller():
    daemonset = one(documents(CCM), 'DaemonSet')
    args = container(daemonset, 'openstack-cloud-controller-manager')['args']
    assert '--cloud-provider=openstack' in args
    assert '--controllers=cloud-node,cloud-node-lifecycle' in args
    assert not [a for a in args if 'service' in a and a.startswith('--controllers')]
    assert '--cloud-config=/etc/config/cloud.conf' in args
    assert '--cluster-name=' + CLUSTER_UUID in args
    assert '--use-service-account-credentials=false' in args
    # its rights: Nodes and its own lease and events; nothing on Services but reading,
    # no Secrets, no PersistentVolumes
    rules = one(documents(CCM), 'ClusterRole')['rules']
    granted = {(res, verb) for rule in rules for res in rule['resources']
               for verb in rule['verbs']}
    assert ('nodes', 'delete') in granted and ('nodes/status', 'patch') in granted
    forbidden = {'secrets', 'persistentvolumes', 'services/status', 'serviceaccounts/token'}
    assert not {r for r, _ in granted} & forbidden
    assert {v for r, v in granted if r == 'services'} == {'list', 'watch'}


def test_ccm_runs_on_the_masters_and_tolerates_the_taint_it_removes():
    pod = pod_spec(one(documents(CCM), 'DaemonSet'))
    assert pod['nodeSelector']['node-role.kubernetes.io/control-plane'] == ''
    keys = {t['key'] for t in pod['tolerations']}
    assert {'node.cloudprovider.kubernetes.io/uninitialized',
            'node-role.kubernetes.io/control-plane'} <= keys
    assert pod['hostNetwork'] is True and pod['dnsPolicy'] == 'Default'


# ---- Cinder CSI ------------------------------------------------------------------------------

def test_celtic_cinder_is_an_expandable_class_beside_the_default_gluster_one():
    storage_class = one(documents(CSI), 'StorageClass')
    assert storage_class['metadata']['name'] == 'celtic-cinder'
    assert storage_class['provisioner'] == one(documents(CSI), 'CSIDriver')['metadata']['name']
    assert storage_class['allowVolumeExpansion'] is True
    assert storage_class['volumeBindingMode'] == 'WaitForFirstConsumer'
    assert 'storageclass.kubernetes.io/is-default-class' not in storage_class[
        'metadata'].get('annotations', {})
    gluster = [d for d in yaml.safe_load_all((MANIFESTS / 'storage.yaml').read_text())
               if d and d['kind'] == 'StorageClass']
    assert gluster[0]['metadata']['annotations'][
        'storageclass.kubernetes.io/is-default-class'] == 'true'
    # only PersistentVolumes: no inline volumes that skip the class
    assert one(documents(CSI), 'CSIDriver')['spec']['volumeLifecycleModes'] == ['Persistent']


def test_csi_controller_provisions_attaches_and_resizes_on_the_masters():
    deployment = one(documents(CSI), 'Deployment')
    pod = pod_spec(deployment)
    assert pod['nodeSelector']['node-role.kubernetes.io/control-plane'] == ''
    assert {c['name'] for c in pod['containers']} == {
        'csi-provisioner', 'csi-attacher', 'csi-resizer', 'liveness-probe',
        'cinder-csi-plugin'}
    args = container(deployment, 'cinder-csi-plugin')['args']
    assert '--provide-node-service=false' in args
    assert '--cloud-config=/etc/config/cloud.conf' in args
    assert '--cluster=' + CLUSTER_UUID in args


def test_csi_node_plugin_runs_everywhere_without_the_credential():
    daemonset = one(documents(CSI), 'DaemonSet')
    pod = pod_spec(daemonset)
    assert pod['tolerations'] == [{'operator': 'Exists'}]
    args = container(daemonset, 'cinder-csi-plugin')['args']
    assert '--provide-controller-service=false' in args
    assert not [a for a in args if a.startswith('--cloud-config')]
    assert not [v for v in pod['volumes'] if 'secret' in v or 'configMap' in v]


# ---- the credential: only the two controllers, on the masters, read it --------------------

def test_only_the_two_controllers_mount_the_credential_readable_by_their_user_only():
    mounting = {}
    for name in (CCM, CSI):
        for doc in documents(name):
            if doc['kind'] not in ('DaemonSet', 'Deployment'):
                continue
            pod = pod_spec(doc)
            secrets = [v['secret'] for v in pod.get('volumes', []) if 'secret' in v]
            if secrets:
                mounting[doc['metadata']['name']] = (pod, secrets)
    assert set(mounting) == {'openstack-cloud-controller-manager', 'csi-cinder-controller'}
    for pod, secrets in mounting.values():
        assert [s['secretName'] for s in secrets] == [SECRET]
        assert pod['nodeSelector']['node-role.kubernetes.io/control-plane'] == ''
    # the controller manager runs as 1001: group-readable through fsGroup, no one else
    ccm_pod, [ccm_secret] = mounting['openstack-cloud-controller-manager']
    assert ccm_secret['defaultMode'] == 0o440
    context = ccm_pod['securityContext']
    assert context['runAsNonRoot'] is True
    assert context['fsGroup'] == context['runAsGroup'] == context['runAsUser']
    # the CSI controller runs as root: the owner alone
    _, [csi_secret] = mounting['csi-cinder-controller']
    assert csi_secret['defaultMode'] == 0o400


SCRIPT = r'''
set -euo pipefail
source "$CELTIC_LIB_DIR/lib/celtic.sh"
source "$CELTIC_LIB_DIR/node/kubernetes.sh"
source "$CELTIC_LIB_DIR/node/addons.sh"
source "$CELTIC_LIB_DIR/node/cloud.sh"
kube_apply_once() { :; }
cloud_config_secret
'''


def rendered_secret(tmp_path: pathlib.Path, credential: dict, ca: str = '') -> tuple:
    etc = tmp_path / 'etc'
    (etc / 'secrets').mkdir(parents=True)
    (etc / 'secrets' / 'application-credential.json').write_text(json.dumps(credential))
    if ca:
        (etc / 'openstack-ca.pem').write_text(ca)
    env = dict(os.environ, CELTIC_ETC=str(etc), CELTIC_LIB_DIR=str(FRAGMENTS),
               CELTIC_ROOT=str(tmp_path), CELTIC_STATE_DIR=str(tmp_path / 'state'),
               CELTIC_LOG_FILE='')
    result = subprocess.run(['bash', '-c', SCRIPT], env=env, capture_output=True,
                            text=True, timeout=60)
    path = etc / 'manifests' / (SECRET + '.yaml')
    return result, path


CREDENTIAL = {'auth_type': 'v3applicationcredential',
              'auth_url': 'https://keystone.example.com:5000/v3',
              'region_name': 'RegionOne', 'application_credential_id': 'ac1d',
              'application_credential_secret': 'a"quoted\\secret', 'project_id': 'p1'}


def test_the_secret_node_cloud_sh_writes_is_valid_0600_and_quotes_the_credential(tmp_path):
    result, path = rendered_secret(tmp_path, CREDENTIAL, ca='-----BEGIN CERTIFICATE-----\n')
    assert result.returncode == 0, result.stderr
    assert oct(path.stat().st_mode & 0o777) == '0o600'
    assert CREDENTIAL['application_credential_secret'] not in result.stdout + result.stderr
    doc = yaml.safe_load(path.read_text())
    for minor in labels.SUPPORTED_KUBE_MINORS:
        kubernetes_validate.validate(doc, '1.%d.0' % minor, strict=True)
    assert (doc['metadata']['name'], doc['metadata']['namespace']) == (SECRET, 'kube-system')
    conf = base64.b64decode(doc['data']['cloud.conf']).decode()
    assert 'application-credential-secret = "a\\"quoted\\\\secret"' in conf.splitlines()
    assert conf.splitlines()[-2:] == ['[LoadBalancer]', 'enabled = false']
    assert 'ca-file = "/etc/config/openstack-ca.pem"' in conf.splitlines()
    assert base64.b64decode(doc['data']['openstack-ca.pem']).startswith(b'-----BEGIN')


def test_a_credential_value_on_two_lines_is_refused_not_written(tmp_path):
    result, path = rendered_secret(
        tmp_path, dict(CREDENTIAL, application_credential_secret='one\n[Global]'))
    assert result.returncode != 0
    assert 'spans lines' in result.stderr
    assert not path.exists()
