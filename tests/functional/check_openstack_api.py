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

"""The compute, network and block-storage REST answers openstacksdk needs for
``magnum-celtic check``, served from the lab's fake cloud.

The lab's Nova, Neutron and Cinder are Heat resource plugins (magnum_celtic/lab/standins)
with no REST API of their own; the check reaches OpenStack only through openstacksdk, so
this server answers the requests it makes, from the same cloud.json the stand-ins write:
version discovery, ``GET servers/detail`` and ``servers/<id>``, the ``os-stop`` and
``os-start`` server actions (SHUTOFF / ACTIVE in cloud.json, which the stand-in
Kubernetes API reads to decide who holds a VIP), ``GET ports``, ``floatingips``,
``security-groups`` and ``volumes/detail``. Every request needs a token that the real
Keystone validates; answers are scoped to the token's project. The clouds.yaml entry of
the test points the three services at it (``*_endpoint_override``), and reaches Keystone,
Heat and Magnum through the real catalog.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from tests.functional.loopback_http import JSONHandler
from tests.functional.loopback_http import LoopbackServer


class OpenStackAPI(LoopbackServer):
    """A threaded HTTP server on a free loopback port; ``url(service)`` for clouds.yaml."""

    def __init__(self, lab):
        self.lab = lab
        self.cloud = lab.cloud
        self._admin = lab.session('admin')
        self._tokens: dict[str, str] = {}
        self.requests: list[str] = []
        self._listen(self._handler())

    def url(self, service: str) -> str:
        return {'compute': 'http://127.0.0.1:%d/compute/v2.1' % self.port,
                'network': 'http://127.0.0.1:%d/network' % self.port,
                'block_storage': 'http://127.0.0.1:%d/volume/v3' % self.port}[service]

    # ------------------------------------------------------------------ auth

    def project_of(self, token: str | None) -> str | None:
        """The project of a token, as Keystone says (None: not valid)."""
        if not token:
            return None
        if token not in self._tokens:
            answer = requests.get(self.lab.keystone_url + '/auth/tokens', timeout=10,
                                  headers={'X-Auth-Token': self._admin.get_token(),
                                           'X-Subject-Token': token})
            if answer.status_code != 200:
                return None
            self._tokens[token] = answer.json()['token']['project']['id']
        return self._tokens[token]

    # ------------------------------------------------------------------ views

    @staticmethod
    def _mine(record: dict, project: str) -> bool:
        owner = record.get('tenant_id') or record.get('project_id')
        return owner in (None, '', project) or bool(record.get('preexisting'))

    def server_view(self, doc: dict, record: dict) -> dict[str, Any]:
        addresses: dict[str, list] = {}
        for port_id in record.get('ports', []):
            port = doc['ports'].get(port_id)
            if port is None:
                continue
            net = doc['networks'].get(port['network_id'], {}).get('name') or 'net'
            for fixed in port['fixed_ips']:
                addresses.setdefault(net, []).append(
                    {'addr': fixed['ip_address'], 'version': 4,
                     'OS-EXT-IPS:type': 'fixed'})
        return {'id': record['id'], 'name': record['name'], 'status': record['status'],
                'tenant_id': record.get('tenant_id'),
                'metadata': record.get('metadata', {}),
                'addresses': addresses, 'flavor': {'original_name': record.get('flavor')},
                'image': {'id': record.get('image')}, 'key_name': record.get('key_name'),
                'OS-EXT-STS:power_state': 1 if record['status'] == 'ACTIVE' else 4,
                'created': record.get('created_at'), 'links': []}

    def server_action(self, server_id: str, project: str, body: dict) -> int:
        with self.cloud.transaction() as doc:
            record = doc['servers'].get(server_id)
            if record is None or not self._mine(record, project):
                return 404
            if 'os-stop' in body:
                if record['status'] != 'ACTIVE':
                    return 409
                record['status'] = 'SHUTOFF'
            elif 'os-start' in body:
                if record['status'] != 'SHUTOFF':
                    return 409
                record['status'] = 'ACTIVE'
            else:
                return 400
        self.requests.append('%s %s' % (next(iter(body)), server_id))
        return 202

    # ------------------------------------------------------------------ HTTP

    def _handler(self):
        api = self

        class Handler(JSONHandler):

            def _versions(self, path: str) -> Any:
                base = 'http://127.0.0.1:%d' % api.port
                if path.startswith('/compute'):
                    one = {'id': 'v2.1', 'status': 'CURRENT', 'version': '2.96',
                           'min_version': '2.1',
                           'links': [{'rel': 'self', 'href': base + '/compute/v2.1/'}]}
                    return {'version': one} if 'v2.1' in path else {'versions': [one]}
                if path.startswith('/network'):
                    return {'versions': [{'id': 'v2.0', 'status': 'CURRENT', 'links': [
                        {'rel': 'self', 'href': base + '/network/v2.0/'}]}]}
                one = {'id': 'v3.0', 'status': 'CURRENT', 'version': '3.70',
                       'min_version': '3.0',
                       'links': [{'rel': 'self', 'href': base + '/volume/v3/'}]}
                return {'version': one} if 'v3' in path else {'versions': [one]}

            def _route(self, method: str) -> None:
                path = self.path.split('?')[0].rstrip('/')
                api.requests.append('%s %s' % (method, path))
                if re.fullmatch(r'/(compute(/v2\.1)?|network(/v2\.0)?|volume(/v3)?)',
                                path) and method == 'GET':
                    return self._send(200, self._versions(path))
                project = api.project_of(self.headers.get('X-Auth-Token'))
                if project is None:
                    return self._send(401, {'error': {'message': 'The request you have '
                                                      'made requires authentication.'}})
                length = int(self.headers.get('Content-Length') or 0)
                body = json.loads(self.rfile.read(length) or b'{}') if length else {}
                doc = api.cloud.snapshot()
                m = re.fullmatch(r'/compute/v2\.1/servers/([^/]+)/action', path)
                if m and method == 'POST':
                    return self._send(api.server_action(m.group(1), project, body))
                if method != 'GET':
                    return self._send(405)
                if path in ('/compute/v2.1/servers/detail', '/compute/v2.1/servers'):
                    return self._send(200, {'servers': [
                        api.server_view(doc, s) for s in doc['servers'].values()
                        if api._mine(s, project)]})
                m = re.fullmatch(r'/compute/v2\.1/servers/([^/]+)', path)
                if m:
                    record = doc['servers'].get(m.group(1))
                    if record is None or not api._mine(record, project):
                        return self._send(404, {'itemNotFound': {
                            'message': 'Instance %s could not be found.' % m.group(1),
                            'code': 404}})
                    return self._send(200, {'server': api.server_view(doc, record)})
                m = re.fullmatch(r'/network(?:/v2\.0)?/(ports|floatingips|security-groups)',
                                 path)
                if m:
                    kind = {'ports': 'ports', 'floatingips': 'floating_ips',
                            'security-groups': 'security_groups'}[m.group(1)]
                    key = {'floating_ips': 'floatingips'}.get(kind, kind)
                    return self._send(200, {key: [
                        dict(r, project_id=r.get('tenant_id'), description='')
                        for r in doc[kind].values() if api._mine(r, project)]})
                if re.fullmatch(r'/volume/v3(?:/[^/]+)?/volumes(/detail)?', path):
                    return self._send(200, {'volumes': [
                        r for r in doc['volumes'].values() if api._mine(r, project)]})
                return self._send(404, {'error': 'not modelled: %s %s' % (method, path)})

            def do_GET(self):
                self._route('GET')

            def do_POST(self):
                self._route('POST')

        return Handler
