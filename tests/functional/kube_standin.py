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

"""A stand-in Kubernetes API for ``magnum-celtic check`` on the lab, which has no
Kubernetes: the test controls every answer, including the failing ones.

What it knows comes from the lab's fake cloud where a real cluster would learn it from
its nodes: the Nodes are the cluster's master and minion servers (a SHUTOFF server's
Node is NotReady, a name in ``not_ready`` too); the API VIP and the proxy VIP are held
by one ACTIVE master / proxy, and when the holder's server is stopped through Nova
(``os-stop``, SHUTOFF in cloud.json) requests through that VIP fail for
``failover_seconds`` before another ACTIVE server takes it, as pacemaker would move it.
Pods run nothing: their phase and log come from ``pod_result`` (busybox commands the
check sends are answered as a node would: nslookup, a file written and read on a
ReadWriteMany claim, shared unless ``rwx_shared`` is False). Requests to cluster
addresses arrive as ``/celtic-check/probe/<address>/<port>/<path>`` (the check's
``--kube-api``); the LoadBalancer Service answers there unless ``lb_answers`` is False.
Plain HTTP on loopback: the client certificate Magnum signed is checked by the check
itself (against the cluster CA), not by this server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, Callable

from tests.functional.loopback_http import JSONHandler
from tests.functional.loopback_http import LoopbackServer


class Vip:
    """Who holds a VIP among the ACTIVE servers of a role, and the outage when the
    holder is stopped."""

    def __init__(self, servers: Callable[[], dict[str, str]], failover_seconds: float):
        self.servers = servers
        self.failover_seconds = failover_seconds
        self.holder: str | None = None
        self.down_since: float | None = None
        self.moves: list[tuple[str | None, str]] = []
        self._lock = threading.Lock()

    def answers(self) -> bool:
        with self._lock:
            servers = self.servers()
            active = sorted(n for n, s in servers.items() if s == 'ACTIVE')
            if self.holder is None or self.holder not in servers:
                if not active:
                    return False
                self.holder = active[0]
            if servers.get(self.holder) == 'ACTIVE':
                self.down_since = None
                return True
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
            if now - self.down_since < self.failover_seconds or not active:
                return False
            self.moves.append((self.holder, active[0]))
            self.holder, self.down_since = active[0], None
            return True


class KubeStandIn(LoopbackServer):
    """The stand-in API on a free loopback port (``url``)."""

    def __init__(self, cloud, cluster_name: Callable[[], str | None],
                 failover_seconds: float = 1.0):
        self.cloud = cloud
        self.cluster_name = cluster_name
        self.not_ready: set[str] = set()
        self.lb_answers = True
        self.rwx_shared = True
        self.objects: dict[str, dict[str, Any]] = {}
        self.files: dict[str, str] = {}
        self.requests: list[str] = []
        self.api_vip = Vip(lambda: self._servers('master'), failover_seconds)
        self.proxy_vip = Vip(lambda: self._servers('proxy'), failover_seconds)
        self._listen(self._handler())
        self.url = 'http://127.0.0.1:%d' % self.port

    # ------------------------------------------------------------------ the cluster

    def _servers(self, role: str) -> dict[str, str]:
        name = self.cluster_name()
        if not name:
            return {}
        prefix = '%s-%s-' % (name, role)
        return {s['name']: s['status'] for s in self.cloud.snapshot()['servers'].values()
                if s['name'].startswith(prefix)}

    def proxy_address(self) -> str | None:
        """The floating IP of the proxy VIP port (what celtic-lb writes in status)."""
        doc = self.cloud.snapshot()
        name = self.cluster_name() or ''
        for fip in doc['floating_ips'].values():
            port = doc['ports'].get(fip.get('port_id') or '')
            if port and name in (port.get('name') or '') and 'proxy' in port['name']:
                return fip['floating_ip_address']
        return None

    def nodes(self) -> list[dict]:
        items = []
        for role in ('master', 'minion'):
            for name, status in sorted(self._servers(role).items()):
                ready = status == 'ACTIVE' and name not in self.not_ready
                items.append({'metadata': {'name': name, 'labels': {
                    'node-role.kubernetes.io/control-plane': ''} if role == 'master'
                    else {}}, 'status': {'conditions': [
                        {'type': 'Ready', 'status': 'True' if ready else 'False',
                         'reason': 'KubeletReady' if ready else 'KubeletNotReady'}]}})
        return items

    def pod_result(self, pod: dict) -> tuple[str, str]:
        """(phase, log) of a pod the check created."""
        name = pod['metadata']['name']
        spec = pod['spec']
        container = spec['containers'][0]
        env = {e['name']: e.get('value', '') for e in container.get('env') or []}
        claims = [v['persistentVolumeClaim']['claimName'] for v in spec.get('volumes') or []
                  if v.get('persistentVolumeClaim')]
        node = (spec.get('nodeSelector') or {}).get('kubernetes.io/hostname')
        if name.startswith('dns-'):
            return 'Succeeded', ('Server:\t\t10.254.0.10\nAddress:\t10.254.0.10:53\n\n'
                                 'Name:\tkubernetes.default.svc.cluster.local\n'
                                 'Address: 10.254.0.1\n')
        if name.startswith('rwx-write-') and claims:
            self.files[claims[0]] = env.get('TOKEN', '')
            self.files[claims[0] + '@node'] = node or ''
            return 'Succeeded', env.get('TOKEN', '') + '\n'
        if name.startswith('rwx-read-') and claims:
            same_node = self.files.get(claims[0] + '@node') == node
            if claims[0] in self.files and (self.rwx_shared or same_node):
                return 'Succeeded', self.files[claims[0]] + '\n'
            return 'Failed', "cat: can't open '/data/check': No such file or directory\n"
        return 'Failed', 'the stand-in does not run: %s\n' % container.get('command')

    def probe(self, address: str, port: int, host: str | None) -> tuple[int, str]:
        if address != self.proxy_address():
            return 504, 'no route to %s' % address
        if not self.proxy_vip.answers():
            return 503, 'the proxy VIP is moving'
        services = [o for k, o in self.objects.items() if k.startswith('services/')]
        if port == 80 and host:
            ingresses = [o for k, o in self.objects.items() if k.startswith('ingresses/')]
            if not any(r.get('host') == host for i in ingresses
                       for r in i['spec'].get('rules', [])):
                return 404, 'no ingress for %s' % host
        elif not any(p['port'] == port for s in services for p in s['spec']['ports']):
            return 504, 'nothing listens on %d' % port
        if not self.lb_answers:
            return 503, 'no server is available to handle this request'
        return 200, 'web-7d9c5-%d' % port

    # ------------------------------------------------------------------ HTTP

    def _handler(self):
        api = self

        class Handler(JSONHandler):

            def _status(self, code: int, message: str) -> None:
                self._send(code, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                                  'message': message, 'code': code})

            def _route(self, method: str) -> None:
                path, _, query = self.path.partition('?')
                path = path.rstrip('/') or '/'
                api.requests.append('%s %s' % (method, path))
                m = re.fullmatch(r'/celtic-check/probe/([^/]+)/(\d+)(/.*)?', path)
                if m:
                    code, text = api.probe(m.group(1), int(m.group(2)),
                                           self.headers.get('X-Celtic-Check-Host'))
                    return self._send(code, text, text=True)
                if not api.api_vip.answers():
                    return self._status(503, 'the API VIP is moving')
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                if path == '/version':
                    return self._send(200, {
                        'major': '1', 'minor': '33', 'gitVersion': 'v1.33.4-standin',
                        'gitCommit': '0' * 40, 'gitTreeState': 'clean',
                        'buildDate': '2026-12-01T00:00:00Z', 'goVersion': 'go1.24.5',
                        'compiler': 'gc', 'platform': 'linux/amd64'})
                if path == '/api/v1/nodes':
                    return self._send(200, {'kind': 'NodeList', 'apiVersion': 'v1',
                                            'metadata': {}, 'items': api.nodes()})
                if path == '/apis/networking.k8s.io/v1/ingressclasses':
                    return self._send(200, {'kind': 'IngressClassList', 'metadata': {},
                                            'items': [{'metadata': {
                                                'name': 'traefik', 'annotations': {
                                                    'ingressclass.kubernetes.io/'
                                                    'is-default-class': 'true'}},
                                                'spec': {'controller': 'traefik.io/'
                                                         'ingress-controller'}}]})
                if path == '/api/v1/namespaces':
                    return self._send(201, body)
                if re.fullmatch(r'/api/v1/namespaces/[^/]+', path) and method == 'DELETE':
                    api.objects.clear()
                    return self._send(200, {'kind': 'Status', 'status': 'Success'})
                m = re.fullmatch(r'/apis?/(?:[^/]+/)?v1/namespaces/([^/]+)/([a-z]+)'
                                 r'(?:/([^/]+))?(/log)?', path)
                if not m:
                    return self._status(404, 'the stand-in does not serve %s' % path)
                kind, name, log = m.group(2), m.group(3), m.group(4)
                if kind == 'events':
                    return self._send(200, {'kind': 'EventList', 'metadata': {},
                                            'items': []})
                if method == 'POST':
                    body.setdefault('metadata', {})
                    key = '%s/%s' % (kind, body['metadata'].get('name'))
                    if kind == 'pods':
                        phase, text = api.pod_result(body)
                        body['status'] = {'phase': phase}
                        api.files['log:' + body['metadata']['name']] = text
                    elif kind == 'deployments':
                        body['status'] = {'readyReplicas': body['spec'].get('replicas', 1),
                                          'replicas': body['spec'].get('replicas', 1)}
                    elif kind == 'services':
                        address = api.proxy_address()
                        body['status'] = {'loadBalancer': {'ingress': [{'ip': address}]}
                                          if address else {}}
                    elif kind == 'persistentvolumeclaims':
                        body['status'] = {'phase': 'Bound',
                                          'accessModes': body['spec']['accessModes']}
                    api.objects[key] = body
                    return self._send(201, body)
                found = api.objects.get('%s/%s' % (kind, name))
                if found is None:
                    return self._status(404, '%s "%s" not found' % (kind, name))
                if log:
                    return self._send(200, api.files.get('log:' + name, ''), text=True)
                return self._send(200, found)

            def do_GET(self):
                self._route('GET')

            def do_POST(self):
                self._route('POST')

            def do_DELETE(self):
                self._route('DELETE')

        return Handler
