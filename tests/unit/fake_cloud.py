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

"""Keystone and Heat, answered at the HTTP boundary with requests_mock.

python-heatclient, keystoneauth1 and Magnum's KeystoneClientV3 run for real; only the
HTTP responses are canned. The fake Heat behaves like heat-api 27 where the driver can
tell: a stack looked up by id answers 302 to ``/stacks/<name>/<id>`` (heatclient's
session follows it, keeping the method), errors carry Heat's JSON error body, an
update of a stack with an action in progress is a 409, a stack that is gone is a 404.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
import uuid
from typing import Any

import requests
import requests_mock

KEYSTONE = 'https://keystone.example.test/identity/v3'
HEAT_PUBLIC = 'https://heat.example.test:8004/v1'
HEAT_INTERNAL = 'https://heat-internal.example.test:8004/v1'
NEUTRON = 'https://neutron.example.test:9696'
USER_TOKEN = 'user-token-0123'
SERVICE_TOKEN = 'service-token-4567'
SERVICE_PROJECT = 'service-project-id'
JSON = {'Content-Type': 'application/json; charset=UTF-8'}


def catalog(project_id: str) -> list[dict[str, Any]]:
    """A Keystone v3 catalog with Heat's public and internal endpoints."""
    def endpoint(interface: str, root: str) -> dict[str, Any]:
        return {'id': 'heat-' + interface, 'interface': interface,
                'region': 'RegionOne', 'region_id': 'RegionOne',
                'url': '%s/%s' % (root, project_id)}
    return [{'type': 'orchestration', 'name': 'heat', 'id': 'heat',
             'endpoints': [endpoint('public', HEAT_PUBLIC),
                           endpoint('internal', HEAT_INTERNAL)]},
            {'type': 'identity', 'name': 'keystone', 'id': 'keystone',
             'endpoints': [{'id': 'keystone-' + interface, 'interface': interface,
                            'region': 'RegionOne', 'region_id': 'RegionOne',
                            'url': KEYSTONE} for interface in ('public', 'internal')]},
            {'type': 'network', 'name': 'neutron', 'id': 'neutron',
             'endpoints': [{'id': 'neutron-public', 'interface': 'public',
                            'region': 'RegionOne', 'region_id': 'RegionOne',
                            'url': NEUTRON}]}]


def token_body(project_id: str, user_id: str, roles: list[str]) -> dict[str, Any]:
    """A Keystone v3 token response body (what auth_token_info holds)."""
    domain = {'id': 'default', 'name': 'Default'}
    return {'token': {
        'methods': ['password'],
        'expires_at': '2099-01-01T00:00:00.000000Z',
        'issued_at': '2026-01-01T00:00:00.000000Z',
        'project': {'id': project_id, 'name': project_id, 'domain': domain},
        'user': {'id': user_id, 'name': user_id, 'domain': domain},
        'roles': [{'id': 'role-' + r, 'name': r} for r in roles],
        'catalog': catalog(project_id)}}


class FakeKeystone:
    """Keystone v3 for the service user of ``[keystone_auth]``."""

    def __init__(self, mocker: requests_mock.Mocker):
        self.token_requests: list[dict[str, Any]] = []
        self.reachable = True
        mocker.get(KEYSTONE, headers=JSON, json={'version': {
            'id': 'v3.14', 'status': 'stable', 'updated': '2020-04-07T00:00:00Z',
            'links': [{'rel': 'self', 'href': KEYSTONE + '/'}],
            'media-types': [{'base': 'application/json',
                             'type': 'application/vnd.openstack.identity-v3+json'}]}})
        mocker.post(KEYSTONE + '/auth/tokens', text=self._issue)
        #: tokens a service (keystonemiddleware) may validate: token -> (project, roles)
        self.valid_tokens: dict[str, tuple[str, list[str]]] = {}
        mocker.get(KEYSTONE + '/auth/tokens', text=self._validate)

    def _validate(self, request: Any, context: Any) -> str:
        token = request.headers.get('X-Subject-Token')
        context.headers.update(JSON)
        if token == SERVICE_TOKEN:
            return json.dumps(token_body(SERVICE_PROJECT, 'magnum', ['admin', 'service']))
        if token not in self.valid_tokens:
            context.status_code = 404
            return json.dumps({'error': {'code': 404, 'message': 'Could not find token',
                                         'title': 'Not Found'}})
        project, roles = self.valid_tokens[token]
        return json.dumps(token_body(project, 'user-of-' + token, roles))

    def _issue(self, request: Any, context: Any) -> str:
        if not self.reachable:
            raise requests.exceptions.ConnectionError('keystone is down')
        self.token_requests.append(request.json())
        context.status_code = 201
        context.headers.update(JSON)
        context.headers['X-Subject-Token'] = SERVICE_TOKEN
        return json.dumps(token_body(SERVICE_PROJECT, 'magnum', ['admin', 'service']))


class FakeNeutron:
    """Neutron's networks and subnets, as the driver looks them up by name."""

    def __init__(self, mocker: requests_mock.Mocker):
        self.networks: list[dict[str, Any]] = []
        self.subnets: list[dict[str, Any]] = []
        mocker.get(NEUTRON + '/', headers=JSON, json={'versions': [{
            'id': 'v2.0', 'status': 'CURRENT',
            'links': [{'href': NEUTRON + '/v2.0/', 'rel': 'self'}]}]})
        mocker.get(NEUTRON + '/v2.0/networks', headers=JSON, json=self._networks)
        mocker.get(NEUTRON + '/v2.0/subnets', headers=JSON, json=self._subnets)

    @staticmethod
    def _matching(items, request):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
        return [item for item in items
                if all(str(item.get(key)) in values for key, values in query.items()
                       if key in item)]

    def _networks(self, request: Any, context: Any) -> dict[str, Any]:
        return {'networks': self._matching(self.networks, request)}

    def _subnets(self, request: Any, context: Any) -> dict[str, Any]:
        return {'subnets': self._matching(self.subnets, request)}


@dataclasses.dataclass
class Stack:
    id: str
    name: str
    project: str
    status: str
    reason: str = ''
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    request: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: the files of its last create or update (a PATCH's merged in)
    files: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Call:
    """One request Heat received."""
    method: str
    host: str
    project: str
    path: str
    token: str | None
    body: Any
    query: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def resolves_outputs(self) -> bool:
        """heat-api resolves a GET's outputs unless told resolve_outputs=false."""
        return self.query.get('resolve_outputs', 'true').lower() not in ('false', '0')


def heat_error(status: int, title: str, error_type: str, message: str) -> dict:
    """Heat's JSON error body (heat.api.middleware.fault)."""
    explanations = {400: 'The server could not comply with the request since it is '
                         'either malformed or otherwise incorrect.',
                    403: 'Access was denied to this resource.',
                    404: 'The resource could not be found.',
                    409: 'There was a conflict when trying to complete your request.'}
    return {'explanation': explanations.get(status, title), 'code': status,
            'error': {'message': message, 'traceback': None, 'type': error_type},
            'title': title}


_PATH = re.compile(r'^/v1/(?P<project>[^/]+)/stacks(?:/(?P<rest>.*))?$')


class FakeHeat:
    """heat-api's stacks resource, kept in memory."""

    def __init__(self, mocker: requests_mock.Mocker):
        self.stacks: dict[str, Stack] = {}
        #: resource listings (nested) by stack id, and the signals resources received
        self.resources: dict[str, list[dict[str, Any]]] = {}
        self.signals: list[tuple[str, str, Any]] = []
        #: reads of a handle's metadata that do not show its newest signal yet (heat-engine
        #: writes a signal after heat-api has answered it)
        self.signal_lag_reads = 0
        self.metadata_reads = 0
        self.files_reads = 0
        self.calls: list[Call] = []
        self._failures: dict[str, Any] = {}
        for root in (HEAT_PUBLIC, HEAT_INTERNAL):
            mocker.register_uri(requests_mock.ANY, re.compile(re.escape(root) + '/'),
                                text=self._answer)

    # ---- test helpers ------------------------------------------------------------------

    def add(self, name: str, status: str = 'CREATE_COMPLETE', outputs=None,
            project: str = 'fake_project', reason: str = '') -> str:
        """A stack that already exists; returns its id."""
        stack_id = str(uuid.uuid4())
        self.stacks[stack_id] = Stack(stack_id, name, project, status, reason,
                                      dict(outputs or {}))
        return stack_id

    def add_cluster(self, name: str, status: str, outputs: dict[str, Any]) -> str:
        """A cluster stack as celtic.yaml builds it: the default pool's member outputs
        (``minion_addresses``, ...) are in the servers stack, which the cluster stack's
        ``minion_nodes_stack`` output names. Returns the cluster stack's id."""
        pool = {key[len('minion_'):]: value for key, value in outputs.items()
                if key in POOL_OUTPUTS}
        nodes = self.add(name + '-minions-3kx7-nodes-q2lp', status, pool)
        shown = {key: value for key, value in outputs.items() if key not in POOL_OUTPUTS}
        shown['minion_nodes_stack'] = 'arn:openstack:heat::%s:stacks/%s/%s' % (
            self.stacks[nodes].project, self.stacks[nodes].name, nodes)
        return self.add(name, status, shown)

    def set(self, stack_id: str, status: str, reason: str = '', outputs=None) -> None:
        """What heat-engine did meanwhile."""
        stack = self.stacks[stack_id]
        stack.status, stack.reason = status, reason
        if outputs is not None:
            stack.outputs = dict(outputs)

    def purge(self, stack_id: str) -> None:
        """The stack is gone (deleted and purged): lookups answer 404."""
        del self.stacks[stack_id]

    def fail(self, method: str, status: int, error_type: str, message: str,
             title: str = '') -> None:
        """Answer every ``method`` request (or '*') with a Heat error."""
        titles = {400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found',
                  409: 'Conflict', 500: 'Internal Server Error'}
        self._failures[method] = (status, heat_error(status, title or titles[status],
                                                     error_type, message))

    def unreachable(self, method: str = '*') -> None:
        """Requests (of ``method``) cannot connect."""
        self._failures[method] = requests.exceptions.ConnectionError(
            'Failed to establish a new connection: [Errno 111] Connection refused')

    def heal(self) -> None:
        self._failures.clear()

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def only_stack(self) -> Stack:
        assert len(self.stacks) == 1, self.stacks
        return next(iter(self.stacks.values()))

    # ---- the API -----------------------------------------------------------------------

    def _answer(self, request: Any, context: Any) -> str:
        url = urllib.parse.urlsplit(request.url)
        match = _PATH.match(url.path)
        assert match, 'not a Heat stacks URL: %s' % request.url
        body = None
        if request.body:
            body = json.loads(request.body)
        project = match.group('project')
        rest = [urllib.parse.unquote(p) for p in (match.group('rest') or '').split('/')
                if p]
        self.calls.append(Call(request.method, url.netloc, project, '/'.join(rest),
                               request.headers.get('X-Auth-Token'), body,
                               dict(urllib.parse.parse_qsl(url.query))))
        failure = self._failures.get(request.method, self._failures.get('*'))
        if isinstance(failure, Exception):
            raise failure
        context.headers.update(JSON)
        if failure:
            context.status_code = failure[0]
            return json.dumps(failure[1])
        if not rest and request.method == 'POST':
            return self._create(project, body, context)
        if len(rest) == 1:
            return self._lookup(request, url, project, rest[0], context)
        if len(rest) in (3, 5) and rest[2] == 'resources':
            stack = self.stacks.get(rest[1])
            if stack is None or stack.name != rest[0]:
                return self._not_found(rest[1], context)
            if len(rest) == 3 and request.method == 'GET':
                context.status_code = 200
                depth = int((request.qs.get('nested_depth') or ['0'])[0])
                return json.dumps({'resources': self.listing(stack.id, depth)})
            if len(rest) == 5 and rest[4] == 'signal' and request.method == 'POST':
                self.signals.append((stack.id, rest[3], body))
                context.status_code = 200
                return ''
            if len(rest) == 5 and rest[4] == 'metadata' and request.method == 'GET':
                self.metadata_reads += 1
                received = [b for sid, name, b in self.signals
                            if sid == stack.id and name == rest[3]]
                if self.signal_lag_reads > 0 and received:
                    self.signal_lag_reads -= 1
                    received = received[:-1]
                context.status_code = 200
                return json.dumps({'metadata': {str(b.get('id')): b for b in received}})
        if len(rest) == 3 and rest[2] == 'files' and request.method == 'GET':
            stack = self.stacks.get(rest[1])
            if stack is None or stack.name != rest[0]:
                return self._not_found(rest[1], context)
            self.files_reads += 1
            context.status_code = 200
            return json.dumps(stack.files)
        if len(rest) == 2:
            stack = self.stacks.get(rest[1])
            if stack is None or stack.name != rest[0]:
                return self._not_found(rest[1], context)
            return getattr(self, '_' + request.method.lower())(stack, body, context)
        raise AssertionError('unexpected Heat request %s %s'
                             % (request.method, request.url))

    def listing(self, stack_id: str, depth: int) -> list[dict[str, Any]]:
        """The rows heat-api lists for a stack and ``nested_depth``: those of the stack
        itself and of the stacks nested in it, at most ``depth`` levels down. A row is
        in the stack its ``stack`` link names (else in the one it is stored under)."""
        def link(row: dict[str, Any], rel: str) -> str | None:
            for entry in row.get('links') or []:
                if entry.get('rel') == rel:
                    return entry['href'].rstrip('/').rsplit('/', 1)[1]
            return None
        rows = [(key, row) for key, stored in self.resources.items() for row in stored]
        parent = {}
        for key, row in rows:
            nested = link(row, 'nested')
            if nested:
                parent[nested] = link(row, 'stack') or key
        found = []
        for key, row in rows:
            at, level = link(row, 'stack') or key, 0
            while at != stack_id and at in parent and level < depth:
                at, level = parent[at], level + 1
            if at == stack_id:
                found.append(row)
        return found

    def _not_found(self, name: str, context: Any) -> str:
        context.status_code = 404
        return json.dumps(heat_error(404, 'Not Found', 'EntityNotFound',
                                     'The Stack (%s) could not be found.' % name))

    def _create(self, project: str, body: dict, context: Any) -> str:
        name = body['stack_name']
        if any(s.name == name for s in self.stacks.values()):
            context.status_code = 409
            return json.dumps(heat_error(409, 'Conflict', 'StackExists',
                                         'The Stack (%s) already exists.' % name))
        stack_id = str(uuid.uuid4())
        self.stacks[stack_id] = Stack(stack_id, name, project, 'CREATE_IN_PROGRESS',
                                      'Stack CREATE started',
                                      parameters=dict(body.get('parameters') or {}),
                                      request=body, files=dict(body.get('files') or {}))
        context.status_code = 201
        return json.dumps({'stack': {'id': stack_id, 'links': [
            {'href': '%s/%s/stacks/%s/%s' % (HEAT_PUBLIC, project, name, stack_id),
             'rel': 'self'}]}})

    def _lookup(self, request: Any, url: Any, project: str, key: str,
                context: Any) -> str:
        stack = self.stacks.get(key) or next(
            (s for s in self.stacks.values() if s.name == key), None)
        if stack is None:
            return self._not_found(key, context)
        context.status_code = 302
        # heat-api's lookup keeps the query (resolve_outputs=...) on the redirect
        context.headers['Location'] = '%s://%s/v1/%s/stacks/%s/%s%s' % (
            url.scheme, url.netloc, project, stack.name, stack.id,
            ('?' + url.query) if url.query else '')
        return ''

    def _get(self, stack: Stack, body: Any, context: Any) -> str:
        context.status_code = 200
        shown = {'id': stack.id, 'stack_name': stack.name, 'stack_status': stack.status,
                 'stack_status_reason': stack.reason,
                 # heat-api masks hidden ones; the driver only looks at the names
                 'parameters': dict(stack.parameters), 'links': []}
        # heat-api leaves the outputs out when asked not to resolve them
        if self.calls[-1].resolves_outputs:
            shown['outputs'] = [{'output_key': k, 'output_value': v, 'description': k}
                                for k, v in stack.outputs.items()]
        return json.dumps({'stack': shown})

    def _patch(self, stack: Stack, body: dict, context: Any) -> str:
        if stack.status.endswith('_IN_PROGRESS'):
            context.status_code = 409
            action = stack.status.rsplit('_', 2)[0]
            return json.dumps(heat_error(
                409, 'Conflict', 'ActionInProgress',
                'Stack %s already has an action (%s) in progress.'
                % (stack.name, action)))
        stack.parameters.update(body.get('parameters') or {})
        stack.files.update(body.get('files') or {})
        stack.status, stack.reason = 'UPDATE_IN_PROGRESS', 'Stack UPDATE started'
        context.status_code = 202
        return ''

    def _put(self, stack: Stack, body: dict, context: Any) -> str:
        """A whole-stack update: a new template, files and every parameter."""
        answer = self._patch(stack, {}, context)
        if context.status_code == 202:
            stack.parameters = dict(body.get('parameters') or {})
            stack.request = body
            stack.files = dict(body.get('files') or {})
        return answer

    def _delete(self, stack: Stack, body: Any, context: Any) -> str:
        stack.status, stack.reason = 'DELETE_IN_PROGRESS', 'Stack DELETE started'
        context.status_code = 204
        return ''


#: the cluster outputs the driver reads from the default pool's servers stack
POOL_OUTPUTS = ('minion_addresses', 'minion_server_ids', 'minion_members',
                'minion_next_index')


def cluster_outputs(vip: str = '10.0.0.5', fip: str = '172.24.4.10',
                    masters=('10.0.0.11', '10.0.0.12', '10.0.0.13'),
                    minions=('10.0.0.21', '10.0.0.22'), minion_ids=None,
                    kube_version: str = 'v1.36') -> dict[str, Any]:
    """celtic.yaml's outputs as Heat resolves them for a complete cluster."""
    minion_ids = list(minion_ids if minion_ids is not None else
                      ['server-%d' % i for i in range(len(minions))])
    return {
        'api_address': 'https://%s:6443' % (fip or vip),
        'api_vip': vip, 'api_vip_fip': fip,
        'master_addresses': list(masters), 'minion_addresses': list(minions),
        'master_members': ' '.join(masters), 'master_removal': '',
        'minion_server_ids': minion_ids,
        'minion_members': [str(i) for i in range(len(minion_ids))],
        'minion_next_index': len(minion_ids),
        'proxy_vip': '10.0.0.6', 'proxy_vip_fip': '172.24.4.11',
        'proxy_addresses': ['10.0.0.31', '10.0.0.32'],
        'storage_addresses': ['10.0.0.41', '10.0.0.42', '10.0.0.43'],
        'kube_version': kube_version,
        'fixed_network': 'net-0001', 'fixed_subnet': 'subnet-0001',
        'minion_security_groups': ['sg-cluster', 'sg-k8s', 'sg-minion'],
        'cluster_facts': {'api_vip': vip, 'api_vip_fip': fip,
                          'master_addresses': list(masters),
                          'fixed_network_cidr': '10.0.0.0/24'},
    }
