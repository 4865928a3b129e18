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

"""The storage and ingress addons master 0 applies: valid, pinned, and consistent.

manifests/storage.yaml (local-path-provisioner serving the celtic-gluster StorageClass
from the GlusterFS mount) and manifests/ingress-traefik.yaml (Traefik behind a
LoadBalancer Service that celtic-lb publishes on the proxy VIP) are rendered the way
node/addons.sh renders them: every {{CELTIC_<KEY>}} from the node settings of a sample
cluster. Then they must pass kubernetes-validate --strict (offline schemas) for the
Kubernetes minor the driver deploys, and say what the rest of celtic relies on.
"""

from __future__ import annotations

import os
import re

import kubernetes_validate
import pytest
import yaml

from magnum_celtic import sample

MANIFESTS = os.path.join(os.path.dirname(__file__), '..', '..', 'heat_templates',
                         'fragments', 'manifests')
KUBERNETES = '1.36.0'
PLACEHOLDER = re.compile(r'{{\s*([A-Z][A-Z0-9_]*)\s*}}')


def settings():
    return sample.sample_spec().node_settings()


def render(name):
    with open(os.path.join(MANIFESTS, name)) as f:
        text = f.read()
    values = {'CELTIC_' + key.upper(): str(value) for key, value in settings().items()}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def documents(name):
    return [d for d in yaml.safe_load_all(render(name)) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d['kind'] == kind and name in (None, d['metadata']['name'])]
    assert len(found) == 1, (kind, name, [d['metadata']['name'] for d in docs])
    return found[0]


@pytest.mark.parametrize('name', ['storage.yaml', 'ingress-traefik.yaml'])
def test_manifest_passes_strict_validation(name):
    for doc in documents(name):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize('name', ['storage.yaml', 'ingress-traefik.yaml'])
def test_placeholders_are_node_settings(name):
    with open(os.path.join(MANIFESTS, name)) as f:
        used = set(PLACEHOLDER.findall(f.read()))
    known = {'CELTIC_' + key.upper() for key in settings()}
    assert used and used <= known, used - known


@pytest.mark.parametrize('name', ['storage.yaml', 'ingress-traefik.yaml'])
def test_every_image_is_pinned_and_fully_named(name):
    images = re.findall(r'^\s*(?:-\s+)?image:\s*(\S+)$', render(name), re.M)
    assert images
    for image in images:
        registry, _, rest = image.partition('/')
        assert registry == 'docker.io' and ':' in rest, image
        assert not rest.endswith((':latest', ':')), image


def test_gluster_storage_class_is_the_default_served_from_the_mount():
    docs = documents('storage.yaml')
    storage_class = one(docs, 'StorageClass')
    assert storage_class['metadata']['name'] == 'celtic-gluster'
    assert storage_class['metadata']['annotations'][
        'storageclass.kubernetes.io/is-default-class'] == 'true'
    # The helper pod that makes the directory runs where the first consumer runs.
    assert storage_class['volumeBindingMode'] == 'WaitForFirstConsumer'

    deployment = one(docs, 'Deployment')
    container = deployment['spec']['template']['spec']['containers'][0]
    assert container['image'].endswith(
        'local-path-provisioner:' + settings()['local_path_provisioner_tag'])
    assert '--provisioner-name=' + storage_class['provisioner'] in container['command']
    config_map = one(docs, 'ConfigMap')
    assert '--configmap-name=' + config_map['metadata']['name'] in container['command']
    account = one(docs, 'ServiceAccount')['metadata']['name']
    assert deployment['spec']['template']['spec']['serviceAccountName'] == account
    assert '--service-account-name=' + account in container['command']

    config = yaml.safe_load(config_map['data']['config.json'])
    assert config == {'nodePathMap': [],
                      'sharedFileSystemPath': settings()['storage_mount_path']}
    helper = yaml.safe_load(config_map['data']['helperPod.yaml'])
    kubernetes_validate.validate(helper, KUBERNETES, strict=True)
    # local-path-provisioner rejects helper templates that bring their own volumes or
    # security context (it adds the hostPath itself).
    assert not {'volumes', 'securityContext', 'nodeName'} & set(helper['spec'])


def test_provisioner_runs_on_minions_only():
    deployment = one(documents('storage.yaml'), 'Deployment')
    terms = deployment['spec']['template']['spec']['affinity']['nodeAffinity'][
        'requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms']
    assert terms == [{'matchExpressions': [
        {'key': 'node-role.kubernetes.io/control-plane', 'operator': 'DoesNotExist'}]}]


def test_traefik_is_a_load_balancer_service_on_80_and_443_with_the_default_class():
    docs = documents('ingress-traefik.yaml')
    service = one(docs, 'Service')
    assert service['spec']['type'] == 'LoadBalancer'
    # celtic-lb serves LoadBalancer Services without a class, and needs their NodePorts.
    assert 'loadBalancerClass' not in service['spec']
    assert service['spec']['allocateLoadBalancerNodePorts'] is True
    assert {(p['port'], p['targetPort']) for p in service['spec']['ports']} == {
        (80, 'web'), (443, 'websecure')}

    deployment = one(docs, 'Deployment')
    pod = deployment['spec']['template']['spec']
    container = pod['containers'][0]
    assert container['image'] == 'docker.io/traefik:' + settings()['ingress_tag']
    ports = {p['name']: p['containerPort'] for p in container['ports']}
    assert ports == {'web': 8000, 'websecure': 8443, 'traefik': 8080}
    assert '--providers.kubernetesingress.ingressendpoint.publishedservice=%s/%s' % (
        service['metadata']['namespace'], service['metadata']['name']) in container['args']
    assert service['spec']['selector'] == deployment['spec']['selector']['matchLabels']

    ingress_class = one(docs, 'IngressClass')
    assert ingress_class['spec']['controller'] == 'traefik.io/ingress-controller'
    assert ingress_class['metadata']['annotations'][
        'ingressclass.kubernetes.io/is-default-class'] == 'true'


def test_traefik_runs_unprivileged_under_the_restricted_pod_security_level():
    docs = documents('ingress-traefik.yaml')
    namespace = one(docs, 'Namespace')
    assert namespace['metadata']['labels']['pod-security.kubernetes.io/enforce'] == 'restricted'
    pod = one(docs, 'Deployment')['spec']['template']['spec']
    assert pod['securityContext']['runAsNonRoot'] is True
    assert pod['securityContext']['seccompProfile'] == {'type': 'RuntimeDefault'}
    context = pod['containers'][0]['securityContext']
    assert context['allowPrivilegeEscalation'] is False
    assert context['capabilities'] == {'drop': ['ALL']}
    # unprivileged ports only: no NET_BIND_SERVICE needed
    assert all(p['containerPort'] > 1024 for p in pod['containers'][0]['ports'])


# ---- metrics-server (every cluster) ---------------------------------------------------

@pytest.mark.parametrize('minor', [34, 35, 36, 37])
def test_metrics_server_passes_strict_validation_for_every_supported_minor(minor):
    from magnum_celtic import labels
    assert minor in labels.SUPPORTED_KUBE_MINORS
    for doc in documents('metrics-server.yaml'):
        kubernetes_validate.validate(doc, '1.%d.0' % minor, strict=True)


def test_metrics_server_serves_the_metrics_api_with_a_pinned_image_and_least_rights():
    docs = documents('metrics-server.yaml')
    api = one(docs, 'APIService')
    assert api['metadata']['name'] == 'v1beta1.metrics.k8s.io'
    service = one(docs, 'Service')
    assert api['spec']['service'] == {'name': service['metadata']['name'],
                                      'namespace': service['metadata']['namespace']}
    deployment = one(docs, 'Deployment')
    assert service['spec']['selector'] == deployment['spec']['selector']['matchLabels']
    pod = deployment['spec']['template']['spec']
    container = pod['containers'][0]
    assert container['image'] == ('registry.k8s.io/metrics-server/metrics-server:'
                                  + settings()['metrics_server_tag'])
    assert settings()['metrics_server_tag'].startswith('v')
    assert pod['securityContext']['runAsNonRoot'] is True
    assert container['securityContext']['readOnlyRootFilesystem'] is True
    assert container['securityContext']['capabilities'] == {'drop': ['ALL']}
    # it reads kubelets' resource metrics and nothing it could change
    rules = one(docs, 'ClusterRole', 'system:metrics-server')['rules']
    assert {verb for rule in rules for verb in rule['verbs']} <= {'get', 'list', 'watch'}
    account = one(docs, 'ServiceAccount')['metadata']['name']
    assert pod['serviceAccountName'] == account


def test_metrics_server_is_in_the_masters_bundle_and_applied_by_master_zero():
    root = os.path.join(MANIFESTS, '..')
    with open(os.path.join(root, 'bundles.yaml')) as f:
        assert 'manifests/metrics-server.yaml' in yaml.safe_load(f)['master']
    with open(os.path.join(root, 'master.sh')) as f:
        assert '"$manifests/metrics-server.yaml"' in f.read()


# ---- cluster-autoscaler (auto_scaling_enabled) ----------------------------------------

def _autoscaler_documents(tag):
    with open(os.path.join(MANIFESTS, 'cluster-autoscaler.yaml')) as f:
        text = f.read()
    values = {'CELTIC_' + key.upper(): str(value) for key, value in settings().items()}
    values['CELTIC_CLUSTER_AUTOSCALER_TAG'] = tag
    return [d for d in yaml.safe_load_all(PLACEHOLDER.sub(lambda m: values[m.group(1)],
                                                          text)) if d]


@pytest.mark.parametrize('minor', [34, 35, 36, 37])
def test_cluster_autoscaler_passes_strict_validation_for_every_supported_minor(minor):
    from magnum_celtic import labels
    assert minor in labels.SUPPORTED_KUBE_MINORS
    # a minor without a pinned release runs the one the label cluster_autoscaler_tag names
    tag = (labels.ADDON_VERSIONS_BY_MINOR[minor]['cluster_autoscaler_tag']
           or 'v1.%d.0' % minor)
    for doc in _autoscaler_documents(tag):
        kubernetes_validate.validate(doc, '1.%d.0' % minor, strict=True)


def test_every_pinned_autoscaler_release_is_of_its_kubernetes_minor():
    from magnum_celtic import labels
    for minor, row in labels.ADDON_VERSIONS_BY_MINOR.items():
        tag = row['cluster_autoscaler_tag']
        assert tag == '' or re.match(r'^v1\.%d\.\d+$' % minor, tag), (minor, tag)


def test_cluster_autoscaler_runs_on_the_masters_with_celtic_s_provider():
    docs = _autoscaler_documents(settings()['cluster_autoscaler_tag'])
    pod = one(docs, 'Deployment')['spec']['template']['spec']
    container = pod['containers'][0]
    assert container['image'] == ('registry.k8s.io/autoscaling/cluster-autoscaler:'
                                  + settings()['cluster_autoscaler_tag'])
    assert settings()['cluster_autoscaler_tag'] == 'v1.36.1'   # sample: kube_tag v1.36
    assert '--cloud-provider=externalgrpc' in container['command']
    assert '--cloud-config=/etc/celtic/autoscaler/cloud-config.yaml' in container['command']
    # the provider listens on each master's loopback: the pod runs there, on its network
    assert pod['hostNetwork'] is True
    assert pod['nodeSelector']['node-role.kubernetes.io/control-plane'] == ''
    assert {'key': 'node-role.kubernetes.io/control-plane', 'operator': 'Exists',
            'effect': 'NoSchedule'} in pod['tolerations']
    mount = container['volumeMounts'][0]
    assert mount['mountPath'] == '/etc/celtic/autoscaler' and mount['readOnly'] is True
    volume = {v['name']: v for v in pod['volumes']}[mount['name']]
    assert volume['hostPath']['path'] == '/etc/celtic/autoscaler'
    # distroless's nonroot user: node/autoscaler.sh gives it the client key
    assert pod['securityContext']['runAsUser'] == 65532
    assert container['securityContext']['readOnlyRootFilesystem'] is True
    assert container['securityContext']['capabilities'] == {'drop': ['ALL']}
    # no OpenStack credential in the pod: no secret, no env
    assert 'env' not in container and 'Secret' not in {d['kind'] for d in docs}
    account = one(docs, 'ServiceAccount')['metadata']['name']
    assert pod['serviceAccountName'] == account


def test_cluster_autoscaler_is_in_the_masters_files_and_applied_by_master_zero_on_demand():
    root = os.path.join(MANIFESTS, '..')
    with open(os.path.join(root, 'bundles.yaml')) as f:
        manifest = yaml.safe_load(f)
    # the masters' optional add-ons come from celtic-vendordata (bundles.yaml)
    master = manifest['vendordata']['master']
    for name in ('manifests/cluster-autoscaler.yaml', 'node/autoscaler.sh',
                 'autoscaler/celtic_autoscaler.py'):
        assert name in master
    with open(os.path.join(root, 'master.sh')) as f:
        text = f.read()
    assert ('if autoscaler_enabled; then\n        celtic_step addon-autoscaler '
            'kube_apply_manifest "$manifests/cluster-autoscaler.yaml"') in text
