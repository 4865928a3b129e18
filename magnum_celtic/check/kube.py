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

"""The Kubernetes side of ``magnum-celtic check``, through the official Python client.

Everything runs in one namespace the check creates (``celtic-check``) with small pods
whose output is the evidence. Requests to the cluster's own addresses (the proxy VIP's
floating IP) go through ``Probe``: straight to the address on a real cloud, or, when the
Kubernetes endpoint is overridden for a test or a diagnosis (``--kube-api``), to that
endpoint's ``/celtic-check/probe/<address>/<port>/<path>`` so that a stand-in can answer
for the data plane too (the README says which steps only a real cloud exercises).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from magnum_celtic.check.report import StepFailed

NAMESPACE = 'celtic-check'
IMAGE_BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.36.1-1'
IMAGE_WEB = 'registry.k8s.io/e2e-test-images/agnhost:2.53'
#: the port of the check's LoadBalancer Service (80 and 443 belong to the ingress)
LB_PORT = 18080
STORAGE_CLASS = 'celtic-gluster'


class Probe:
    """An HTTP GET to an address of the cluster, timed, never raising."""

    def __init__(self, override: str | None = None, timeout: float = 3.0):
        self.override = override.rstrip('/') if override else None
        self.timeout = timeout

    def url(self, address: str, port: int, path: str = '/') -> str:
        if self.override:
            return '%s/celtic-check/probe/%s/%d%s' % (self.override, address, port, path)
        return 'http://%s:%d%s' % (address, port, path)

    def get(self, address: str, port: int, path: str = '/',
            host: str | None = None) -> tuple[int | None, str]:
        request = urllib.request.Request(self.url(address, port, path))
        if host:
            request.add_header('Host', host)
            request.add_header('X-Celtic-Check-Host', host)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, answer.read(200).decode(errors='replace')
        except urllib.error.HTTPError as error:
            return error.code, str(error.reason)
        except (OSError, ValueError) as error:
            return None, str(getattr(error, 'reason', error))


class Kube:
    """The cluster's Kubernetes API with the kubeconfig Magnum signed."""

    def __init__(self, kubeconfig: dict[str, Any], timeout: float = 600.0):
        from kubernetes import client
        config = client.Configuration()
        config.host = kubeconfig['server']
        config.ssl_ca_cert = kubeconfig['ca']
        config.cert_file = kubeconfig['cert']
        config.key_file = kubeconfig['key']
        config.verify_ssl = True
        self.api_client = client.ApiClient(config)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.net = client.NetworkingV1Api(self.api_client)
        self.version_api = client.VersionApi(self.api_client)
        self.timeout = timeout
        self.server = kubeconfig['server']

    # ------------------------------------------------------------------ basics

    def version(self, timeout: float | None = None) -> str:
        kwargs = {'_request_timeout': timeout} if timeout else {}
        info = self.version_api.get_code(**kwargs)
        return info.git_version

    def nodes(self) -> dict[str, str]:
        """Node name -> Ready / NotReady / Unknown."""
        result = {}
        for node in self.core.list_node().items:
            ready = [c.status for c in node.status.conditions or [] if c.type == 'Ready']
            result[node.metadata.name] = {'True': 'Ready', 'False': 'NotReady'}.get(
                ready[0] if ready else '', 'Unknown')
        return result

    def wait_ready(self, expected: int, timeout: float | None = None) -> dict[str, str]:
        deadline = time.monotonic() + (timeout or self.timeout)
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                seen = self.nodes()
            except Exception as error:   # the API itself may still be coming back
                seen = {'(API)': 'unreachable: %s' % str(error)[:80]}
            if len(seen) == expected and set(seen.values()) == {'Ready'}:
                return seen
            time.sleep(2)
        raise StepFailed('%d of %d nodes Ready' % (
            sum(v == 'Ready' for v in seen.values()), expected), nodes=seen,
            expected=expected)

    def ensure_namespace(self) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        try:
            self.core.create_namespace(client.V1Namespace(
                metadata=client.V1ObjectMeta(name=NAMESPACE)))
        except ApiException as error:
            if error.status != 409:
                raise

    def delete_namespace(self) -> None:
        from kubernetes.client.rest import ApiException
        try:
            self.core.delete_namespace(NAMESPACE)
        except ApiException:
            pass

    # ------------------------------------------------------------------ pods

    def run_pod(self, prefix: str, command: str, node: str | None = None,
                claim: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 300) -> tuple[str, str, str]:
        """Run one busybox pod to completion: (pod name, phase, log)."""
        from kubernetes import client
        name = '%s-%s' % (prefix, uuid.uuid4().hex[:6])
        volumes, mounts = [], []
        if claim:
            volumes.append(client.V1Volume(
                name='data', persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                    claim_name=claim)))
            mounts.append(client.V1VolumeMount(name='data', mount_path='/data'))
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={'app': 'celtic-check'}),
            spec=client.V1PodSpec(
                # a node selector, not nodeName: a WaitForFirstConsumer claim binds only
                # for a pod the scheduler places
                restart_policy='Never', volumes=volumes or None,
                node_selector={'kubernetes.io/hostname': node} if node else None,
                containers=[client.V1Container(
                    name='check', image=IMAGE_BUSYBOX, command=['sh', '-c', command],
                    env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()]
                    or None, volume_mounts=mounts or None)]))
        self.core.create_namespaced_pod(NAMESPACE, pod)
        deadline = time.monotonic() + timeout
        phase = 'Pending'
        while time.monotonic() < deadline:
            phase = self.core.read_namespaced_pod(name, NAMESPACE).status.phase
            if phase in ('Succeeded', 'Failed'):
                break
            time.sleep(2)
        try:
            log = self.core.read_namespaced_pod_log(name, NAMESPACE)
        except Exception as error:
            log = 'no log: %s' % error
        return name, phase, (log or '')[-2000:]

    # ------------------------------------------------------------------ workloads

    def web_service(self, name: str, port: int) -> None:
        """A Deployment of two agnhost netexec replicas exposed as a LoadBalancer
        Service on ``port``."""
        from kubernetes import client
        labels = {'app': name}
        self.apps.create_namespaced_deployment(NAMESPACE, client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=2, selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(
                        name='web', image=IMAGE_WEB, args=['netexec', '--http-port=8080'],
                        ports=[client.V1ContainerPort(container_port=8080)])])))))
        self.core.create_namespaced_service(NAMESPACE, client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(type='LoadBalancer', selector=labels, ports=[
                client.V1ServicePort(port=port, target_port=8080, protocol='TCP')])))

    def wait_deployment(self, name: str, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            status = self.apps.read_namespaced_deployment(name, NAMESPACE).status
            ready = status.ready_replicas or 0
            if ready >= 1:
                return ready
            time.sleep(2)
        raise StepFailed('deployment %s has no ready replica after %ds' % (name, timeout),
                         deployment=name, ready_replicas=ready)

    def wait_ingress_address(self, name: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.core.read_namespaced_service(name, NAMESPACE).status
            ingress = (status.load_balancer and status.load_balancer.ingress) or []
            if ingress and (ingress[0].ip or ingress[0].hostname):
                return ingress[0].ip or ingress[0].hostname
            time.sleep(2)
        events = [e.message for e in self.core.list_namespaced_event(
            NAMESPACE, field_selector='involvedObject.name=%s' % name).items]
        raise StepFailed('service %s has no load balancer address after %ds (celtic-lb '
                         'did not write status)' % (name, timeout), service=name,
                         events=events[-5:])

    def ingress(self, name: str, service: str, port: int, host: str) -> str | None:
        """An Ingress routing ``host`` to the Service; returns the IngressClass used
        (the default one, else the only one)."""
        from kubernetes import client
        classes = self.net.list_ingress_class().items
        chosen = None
        for cls in classes:
            annotations = cls.metadata.annotations or {}
            if annotations.get('ingressclass.kubernetes.io/is-default-class') == 'true':
                chosen = cls.metadata.name
        if chosen is None and len(classes) == 1:
            chosen = classes[0].metadata.name
        if chosen is None:
            raise StepFailed('no default IngressClass (is the ingress_controller label '
                             'set?)', ingress_classes=[c.metadata.name for c in classes])
        self.net.create_namespaced_ingress(NAMESPACE, client.V1Ingress(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1IngressSpec(ingress_class_name=chosen, rules=[
                client.V1IngressRule(host=host, http=client.V1HTTPIngressRuleValue(paths=[
                    client.V1HTTPIngressPath(path='/', path_type='Prefix', backend=(
                        client.V1IngressBackend(service=client.V1IngressServiceBackend(
                            name=service, port=client.V1ServiceBackendPort(
                                number=port)))))]))])))
        return chosen

    def rwx_claim(self, name: str, size: str = '1Gi') -> None:
        from kubernetes import client
        self.core.create_namespaced_persistent_volume_claim(
            NAMESPACE, client.V1PersistentVolumeClaim(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PersistentVolumeClaimSpec(
                    access_modes=['ReadWriteMany'], storage_class_name=STORAGE_CLASS,
                    resources=client.V1VolumeResourceRequirements(
                        requests={'storage': size}))))

    def claim_phase(self, name: str) -> str:
        return self.core.read_namespaced_persistent_volume_claim(
            name, NAMESPACE).status.phase or 'Pending'
