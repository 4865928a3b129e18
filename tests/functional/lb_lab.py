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

"""A loopback lab for celtic-lb: a fake Kubernetes API, minion backends, real HAProxy.

Used by the live test (tests/functional/test_celtic_lb_live.py) and the benchmark
(tests/bench/lb.py). Everything binds 127.0.0.0/8 on ports the caller chooses (the
project keeps 18000-18999 for these labs) and every process is stopped by its PID.

- FakeKube serves list + watch (chunked, with resourceVersion) of Services and Nodes over
  HTTPS and behaves like kube-apiserver where celtic-lb depends on it: BOOKMARK events
  when asked for, an ERROR 410 event on a watch from an expired version (`compact()`),
  504 ResourceVersionTooLarge from a lagging apiserver and 429 with Retry-After (`fail()`),
  `ipMode: VIP` defaulted on an ingress IP and a status with ingress refused on a Service
  that is not a LoadBalancer (422), coordination.k8s.io Leases with optimistic concurrency
  (409). It requires a client certificate signed by the lab CA, applies merge patches to
  services/status and records posted Events.
- Minion backends are small HTTP servers on 127.0.0.x:<nodePort> that answer with
  "<node>:<nodePort>", so a response names the backend that served it.
"""
from __future__ import annotations

import copy
import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

from magnum_celtic.lab import plumbing

try:
    from tests.functional import rootfs
except ImportError:
    import rootfs

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CELTIC_LB_DIR = os.path.join(REPO, 'heat_templates', 'fragments', 'celtic-lb')
CELTIC_LB = os.path.join(CELTIC_LB_DIR, 'celtic_lb.py')
BASE_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
# HAProxy and celtic-lb run from a proxy node's clean Debian root (rootfs.py): HAProxy
# and python3 are there because the proxy fragment's install steps put them there.
SUITE = 'bookworm'
# The proxy's install steps of what the lab runs (HAProxy and celtic-lb's python3).
ROOT_STEPS = ('base-packages', 'proxy-haproxy-package')
PYTHON = 'python3'
HAPROXY = '/usr/sbin/haproxy'


def missing_requirements() -> list:
    """What this machine lacks to run the lab (empty when it can)."""
    return rootfs.missing_requirements() + [t for t in ('openssl',) if not shutil.which(t)]


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = 'condition'):
    """Poll `predicate` until it returns a true value (returned) or fail after `timeout`
    (the shared lab plumbing, failing as a test assertion)."""
    return plumbing.wait_until(predicate, timeout, interval, what, error=AssertionError)


# --------------------------------------------------------------------------------------
# throwaway PKI (openssl CLI)

def make_pki(directory: str) -> dict:
    """A CA, a server certificate for 127.0.0.1 and celtic-lb's client certificate."""
    os.makedirs(directory, exist_ok=True)
    path = {name: os.path.join(directory, name) for name in (
        'ca.crt', 'ca.key', 'server.crt', 'server.key', 'celtic-lb.crt', 'celtic-lb.key',
        'other.crt', 'other.key')}

    def run(*args):
        subprocess.run(['openssl', *args], check=True, capture_output=True, timeout=60)

    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    run('req', '-x509', *ec, '-keyout', path['ca.key'], '-out', path['ca.crt'], '-days', '2',
        '-subj', '/CN=lab-kubernetes-ca')
    for name, subj, ext in (
            ('server', '/CN=kube-apiserver',
             'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'),
            ('celtic-lb', '/O=celtic:lb/CN=celtic-lb', 'extendedKeyUsage=clientAuth'),
            ('other', '/O=system:nodes/CN=somebody', 'extendedKeyUsage=clientAuth')):
        csr = os.path.join(directory, name + '.csr')
        extfile = os.path.join(directory, name + '.ext')
        with open(extfile, 'w') as f:
            f.write(ext + '\n')
        run('req', '-new', *ec, '-keyout', path[name + '.key'], '-out', csr, '-subj', subj)
        run('x509', '-req', '-in', csr, '-CA', path['ca.crt'], '-CAkey', path['ca.key'],
            '-CAcreateserial', '-out', path[name + '.crt'], '-days', '2', '-extfile', extfile)
    return path


# --------------------------------------------------------------------------------------
# fake Kubernetes API

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    """List + watch of Services and Nodes, service status patches and Events, over TLS."""

    def __init__(self, port: int, pki: dict, host: str = '127.0.0.1'):
        self.host, self.port, self.pki = host, port, pki
        self.cond = threading.Condition()
        self.version = 1000
        self.clock = 0
        self.objects: dict[str, dict] = {'services': {}, 'nodes': {}}
        self.history: dict[str, list] = {'services': [], 'nodes': []}
        self.expired_below = {'services': 0, 'nodes': 0}
        self.generation = 0
        self.events: list[dict] = []
        self.patches: list[tuple] = []
        self.leases: dict[str, dict] = {}
        self.watches: list[tuple] = []           # (kind, resourceVersion) of each watch
        self.faults: list[tuple] = []            # (method, path prefix, code) to answer once
        self.bookmark_seconds = 1.0
        self.requests: list[tuple] = []          # (method, path, client CN)
        self.server = None
        self.thread = None

    @property
    def url(self) -> str:
        return 'https://%s:%d' % (self.host, self.port)

    # the objects ----------------------------------------------------------------------

    def _record(self, kind: str, event_type: str, obj: dict):
        self.version += 1
        obj['metadata']['resourceVersion'] = str(self.version)
        self.history[kind].append((self.version, event_type, copy.deepcopy(obj)))
        self.cond.notify_all()

    def put(self, kind: str, obj: dict) -> dict:
        """Create or replace an object (keeps uid, creation time and status of the old one)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault('metadata', {})
        key = '%s/%s' % (meta.get('namespace', ''), meta['name'])
        with self.cond:
            old = self.objects[kind].get(key)
            if old:
                meta['uid'] = old['metadata']['uid']
                meta['creationTimestamp'] = old['metadata']['creationTimestamp']
                obj.setdefault('status', old.get('status', {}))
            else:
                self.clock += 1
                meta.setdefault('uid', str(uuid.uuid4()))
                meta.setdefault('creationTimestamp', (BASE_TIME + datetime.timedelta(
                    seconds=self.clock)).strftime('%Y-%m-%dT%H:%M:%SZ'))
                obj.setdefault('status', {})
            self.objects[kind][key] = obj
            self._record(kind, 'MODIFIED' if old else 'ADDED', obj)
            return copy.deepcopy(obj)

    def delete(self, kind: str, name: str, namespace: str = ''):
        with self.cond:
            obj = self.objects[kind].pop('%s/%s' % (namespace, name))
            self._record(kind, 'DELETED', obj)

    def get(self, kind: str, name: str, namespace: str = '') -> dict:
        with self.cond:
            return copy.deepcopy(self.objects[kind]['%s/%s' % (namespace, name)])

    def put_service(self, name: str, ports: list, namespace: str = 'default', **spec) -> dict:
        """ports: (port, nodePort) or (port, nodePort, protocol) tuples."""
        spec.setdefault('type', 'LoadBalancer')
        spec['ports'] = [{'name': 'p%d' % p[0], 'port': p[0], 'nodePort': p[1],
                          'protocol': p[2] if len(p) > 2 else 'TCP', 'targetPort': 8080}
                         for p in ports]
        return self.put('services', {'apiVersion': 'v1', 'kind': 'Service',
                                     'metadata': {'name': name, 'namespace': namespace},
                                     'spec': spec})

    def put_node(self, name: str, address: str, ready: bool = True, control_plane=False):
        labels = {'kubernetes.io/hostname': name}
        if control_plane:
            labels['node-role.kubernetes.io/control-plane'] = ''
        return self.put('nodes', {
            'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name, 'labels': labels},
            'spec': {},
            'status': {'conditions': [
                {'type': 'MemoryPressure', 'status': 'False'},
                {'type': 'Ready', 'status': 'True' if ready else 'Unknown'}],
                'addresses': [{'type': 'Hostname', 'address': name},
                              {'type': 'InternalIP', 'address': address}]}})

    def compact(self):
        """Forget the history: a watch from an older resourceVersion now gets 410 Gone."""
        with self.cond:
            for kind in self.history:
                self.history[kind] = []
                self.expired_below[kind] = self.version + 1

    def fail(self, method: str, prefix: str, code: int, times: int = 1):
        """The next `times` METHOD requests under PREFIX fail with CODE: 429 (with
        Retry-After: 1) as a throttling apiserver, 504 ResourceVersionTooLarge on a watch
        as an apiserver whose cache lags the version asked for."""
        with self.cond:
            self.faults += [(method, prefix, code)] * times

    def drop_watches(self):
        """End every open watch stream (as an apiserver restart or VIP move would)."""
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def events_for(self, name: str, reason: str | None = None, namespace='default') -> list:
        with self.cond:
            return [e for e in self.events if e['involvedObject']['name'] == name
                    and e['involvedObject']['namespace'] == namespace
                    and (reason is None or e['reason'] == reason)]

    def count(self, method: str, path: str) -> int:
        with self.cond:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    # the server -----------------------------------------------------------------------

    def start(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.pki['ca.crt'])
        ctx.load_cert_chain(self.pki['server.crt'], self.pki['server.key'])
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server = http.server.ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                             do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={'poll_interval': 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server:
            self.drop_watches()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)

    def list_body(self, kind: str) -> dict:
        with self.cond:
            return {'kind': kind.capitalize()[:-1] + 'List', 'apiVersion': 'v1',
                    'metadata': {'resourceVersion': str(self.version)},
                    'items': [copy.deepcopy(o) for o in self.objects[kind].values()]}


LEASE = re.compile(r'/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases/([^/]+)')


def _make_handler(kube: FakeKube):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            self.cn = None
            try:
                self.connection.settimeout(10)
                self.connection.do_handshake()
                subject = dict(x[0] for x in self.connection.getpeercert()['subject'])
                self.cn = subject.get('commonName')
                self.connection.settimeout(None)
            except (ssl.SSLError, OSError, KeyError, TypeError):
                self.close_connection = True

        def _json(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str):
            self._json(code, {'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                              'code': code, 'reason': reason, 'message': message})

        def _body(self):
            return json.loads(self.rfile.read(int(self.headers.get('Content-Length') or 0)))

        def _allowed(self) -> bool:
            url = urllib.parse.urlsplit(self.path)
            with kube.cond:
                kube.requests.append((self.command, url.path, self.cn))
                fault = next((f for f in kube.faults if f[0] == self.command
                              and url.path.startswith(f[1])), None)
                if fault:
                    kube.faults.remove(fault)
            if self.cn != 'celtic-lb':      # RBAC in one line: only celtic-lb's identity
                self._status(403, 'Forbidden', 'User "%s" cannot %s %s' % (
                    self.cn, self.command, url.path))
                return False
            if fault and fault[2] == 429:
                data = json.dumps({'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                                   'code': 429, 'reason': 'TooManyRequests',
                                   'message': 'too many requests, please try again later',
                                   'details': {'retryAfterSeconds': 1}}).encode()
                self.send_response(429)
                self.send_header('Retry-After', '1')
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return False
            if fault:
                self._status(fault[2], 'Timeout', 'Timeout: Too large resource version: '
                             'the apiserver has not caught up yet')
                return False
            return True

        def do_GET(self):
            if not self._allowed():
                return
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            kind = url.path.rsplit('/', 1)[-1]
            lease = LEASE.fullmatch(url.path)
            if lease:
                with kube.cond:
                    found = kube.leases.get('%s/%s' % lease.groups())
                    return (self._json(200, copy.deepcopy(found)) if found else self._status(
                        404, 'NotFound', 'leases.coordination.k8s.io "%s" not found'
                        % lease.group(2)))
            if url.path not in ('/api/v1/services', '/api/v1/nodes'):
                return self._status(404, 'NotFound', url.path)
            if query.get('watch') in ('1', 'true'):
                return self._watch(kind, int(query.get('resourceVersion') or 0),
                                   float(query.get('timeoutSeconds') or 60),
                                   query.get('allowWatchBookmarks') == 'true')
            self._json(200, kube.list_body(kind))

        def _chunk(self, data: bytes):
            self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
            self.wfile.flush()

        def _watch(self, kind: str, since: int, timeout: float, bookmarks: bool):
            with kube.cond:
                kube.watches.append((kind, since))
                if since > kube.version:
                    return self._status(504, 'Timeout', 'Timeout: Too large resource version: '
                                        '%d, current: %d' % (since, kube.version))
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Transfer-Encoding', 'chunked')
            self.end_headers()
            self.close_connection = True
            deadline = time.monotonic() + timeout
            bookmark_at = time.monotonic() + kube.bookmark_seconds
            with kube.cond:
                generation = kube.generation
            try:
                while True:
                    if bookmarks and time.monotonic() >= bookmark_at:
                        # as kube-apiserver: a quiet watch learns the current version
                        with kube.cond:
                            version = kube.version
                        self._chunk(json.dumps({'type': 'BOOKMARK', 'object': {
                            'kind': kind.capitalize()[:-1], 'apiVersion': 'v1',
                            'metadata': {'resourceVersion': str(version)}}}).encode() + b'\n')
                        bookmark_at = time.monotonic() + kube.bookmark_seconds
                    with kube.cond:
                        if since < kube.expired_below[kind]:
                            pending = [json.dumps({'type': 'ERROR', 'object': {
                                'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure',
                                'code': 410, 'reason': 'Expired',
                                'message': 'too old resource version: %d' % since}})]
                            ended = True
                        else:
                            pending = [json.dumps({'type': t, 'object': o})
                                       for v, t, o in kube.history[kind] if v > since]
                            since = max([since] + [v for v, _, _ in kube.history[kind]])
                            ended = False
                            if not pending:
                                left = deadline - time.monotonic()
                                if left <= 0 or kube.generation != generation:
                                    ended = True
                                else:
                                    kube.cond.wait(min(left, 0.5))
                    for line in pending:
                        self._chunk(line.encode() + b'\n')
                    if ended:
                        break
                self.wfile.write(b'0\r\n\r\n')
            except OSError:
                pass

        def do_PATCH(self):
            if not self._allowed():
                return
            m = re.fullmatch(r'/api/v1/namespaces/([^/]+)/services/([^/]+)/status', self.path)
            if not m:
                return self._status(404, 'NotFound', self.path)
            if self.headers.get('Content-Type') != 'application/merge-patch+json':
                return self._status(415, 'UnsupportedMediaType', 'want a merge patch')
            body = self._body()
            key = '%s/%s' % m.groups()
            with kube.cond:
                obj = kube.objects['services'].get(key)
                if obj is None:
                    return self._status(404, 'NotFound', 'services "%s" not found' % m.group(2))
                status = merge_patch(obj.get('status') or {}, body.get('status') or {})
                ingress = (status.get('loadBalancer') or {}).get('ingress') or []
                if ingress and (obj.get('spec') or {}).get('type') != 'LoadBalancer':
                    return self._status(422, 'Invalid', 'Service "%s" is invalid: '
                                        'status.loadBalancer.ingress: Forbidden: may only be '
                                        'used when `spec.type` is \'LoadBalancer\''
                                        % m.group(2))
                for entry in ingress:
                    if entry.get('ip') and not entry.get('ipMode'):
                        entry['ipMode'] = 'VIP'          # the default since 1.30
                    if entry.get('ipMode') not in (None, 'VIP', 'Proxy') or (
                            entry.get('ipMode') and not entry.get('ip')):
                        return self._status(422, 'Invalid', 'status.loadBalancer.ingress.'
                                            'ipMode: Invalid value')
                kube.patches.append((key, body))
                obj['status'] = status
                kube._record('services', 'MODIFIED', obj)
                result = copy.deepcopy(obj)
            self._json(200, result)

        def _lease_write(self, create: bool):
            m = LEASE.fullmatch(self.path) if not create else re.fullmatch(
                r'/apis/coordination.k8s.io/v1/namespaces/([^/]+)/leases', self.path)
            if not m:
                return self._status(404, 'NotFound', self.path)
            body = self._body()
            name = body.get('metadata', {}).get('name')
            key = '%s/%s' % (m.group(1), name if create else m.group(2))
            with kube.cond:
                old = kube.leases.get(key)
                if create and old:
                    return self._status(409, 'AlreadyExists',
                                        'leases.coordination.k8s.io "%s" already exists' % name)
                if not create:
                    if not old:
                        return self._status(404, 'NotFound', 'leases "%s" not found' % name)
                    if body.get('metadata', {}).get('resourceVersion') != \
                            old['metadata']['resourceVersion']:
                        return self._status(409, 'Conflict', 'Operation cannot be fulfilled '
                                            'on leases.coordination.k8s.io "%s": the object '
                                            'has been modified' % name)
                kube.version += 1
                body.setdefault('metadata', {})['resourceVersion'] = str(kube.version)
                body['metadata']['namespace'] = m.group(1)
                kube.leases[key] = body
                result = copy.deepcopy(body)
            self._json(201 if create else 200, result)

        def do_PUT(self):
            if self._allowed():
                self._lease_write(create=False)

        def do_POST(self):
            if not self._allowed():
                return
            if self.path.startswith('/apis/coordination.k8s.io/'):
                return self._lease_write(create=True)
            m = re.fullmatch(r'/api/v1/namespaces/([^/]+)/events', self.path)
            if not m:
                return self._status(404, 'NotFound', self.path)
            body = self._body()
            if body.get('involvedObject', {}).get('namespace') != m.group(1):
                return self._status(422, 'Invalid', 'involvedObject.namespace does not match')
            with kube.cond:
                kube.events.append(body)
            self._json(201, body)

    return Handler


# --------------------------------------------------------------------------------------
# minions: one HTTP server per (node address, nodePort)

class QuietServer(http.server.ThreadingHTTPServer):
    """A minion's NodePort: a client that goes away mid-answer is not an error here."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class Minions:
    """HTTP servers standing in for the NodePorts of the minions."""

    def __init__(self):
        self.servers: dict[tuple, http.server.ThreadingHTTPServer] = {}

    def serve(self, node: str, address: str, port: int):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if 'sleep' in query:
                    time.sleep(min(float(query['sleep']), 5.0))
                data = ('%s:%d' % (node, port)).encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = QuietServer((address, port), Handler)
        threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1},
                         daemon=True).start()
        self.servers[(address, port)] = server

    def stop(self):
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        self.servers = {}


class ManyListeners:
    """Thousands of minion NodePorts (and kube-proxy health ports) in one thread: every
    listener answers any HTTP request with "<node>:<port>" and counts its connections
    (a TCP or HTTP health check is one), for the scale benchmark."""

    def __init__(self):
        import selectors
        self.selector = selectors.DefaultSelector()
        self.accepts: dict[int, int] = {}        # port -> connections accepted
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None

    def listen(self, node: str, address: str, port: int):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(64)
        sock.setblocking(False)
        self.selector.register(sock, 1, ('listener', ('%s:%d' % (node, port)).encode(), port))

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def count(self, ports=None) -> int:
        with self.lock:
            return sum(n for p, n in self.accepts.items() if ports is None or p in ports)

    def _loop(self):
        while not self.stopping.is_set():
            for key, _ in self.selector.select(0.1):
                kind, body, port = key.data[0], key.data[1], key.data[2]
                if kind == 'listener':
                    try:
                        conn, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    with self.lock:
                        self.accepts[port] = self.accepts.get(port, 0) + 1
                    conn.setblocking(False)
                    self.selector.register(conn, 1, ('conn', body, b''))
                    continue
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b''
                seen = port + data
                if data and b'\r\n\r\n' not in seen:
                    self.selector.modify(key.fileobj, 1, ('conn', body, seen))
                    continue
                self.selector.unregister(key.fileobj)
                if data:
                    try:
                        key.fileobj.setblocking(True)
                        key.fileobj.settimeout(1)
                        key.fileobj.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n'
                                            b'Connection: close\r\n\r\n%s' % (len(body), body))
                    except OSError:
                        pass
                key.fileobj.close()

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


class ListenerProcesses:
    """ManyListeners in child processes, each under the per-process descriptor limit:
    `nodes` ({name: address}) each listening on `ports`. The children write their
    connection counts to a file twice a second; stopped by PID."""

    def __init__(self, workdir: str, nodes: dict, ports: list, per_process: int = 15000):
        self.dir, self.children, self.counts = workdir, [], []
        items = sorted(nodes.items())
        step = max(1, per_process // max(1, len(ports)))
        for first in range(0, len(items), step):
            index = len(self.children)
            spec = os.path.join(workdir, 'listeners-%d.json' % index)
            counts = os.path.join(workdir, 'listeners-%d.count' % index)
            with open(spec, 'w') as f:
                json.dump({'nodes': items[first:first + step], 'ports': list(ports)}, f)
            self.counts.append(counts)
            self.children.append(Process(
                [sys.executable, os.path.abspath(__file__), '--listen', spec, counts],
                os.path.join(workdir, 'listeners-%d.log' % index)))

    def start(self):
        for child in self.children:
            child.start()
        wait_until(lambda: all(os.path.exists(c) for c in self.counts) or any(
            not c.alive() for c in self.children), 120, 0.1, 'the listeners')
        dead = [c.output()[-2000:] for c in self.children if not c.alive()]
        if dead:
            raise RuntimeError('a listener process failed: %s' % dead[0])
        return self

    def count(self) -> int:
        total = 0
        for path in self.counts:
            with open(path) as f:
                total += json.load(f)['accepts']
        return total

    def stop(self):
        for child in self.children:
            child.stop()


def _listen_main(spec_path: str, counts_path: str):
    with open(spec_path) as f:
        spec = json.load(f)
    listeners = ManyListeners()
    for name, address in spec['nodes']:
        for port in spec['ports']:
            listeners.listen(name, address, port)
    listeners.start()
    while True:
        with open(counts_path + '.tmp', 'w') as f:
            json.dump({'accepts': listeners.count()}, f)
        os.replace(counts_path + '.tmp', counts_path)
        time.sleep(0.5)


def get(port: int, path: str = '/', host: str = '127.0.0.1', timeout: float = 2.0):
    """Body of GET http://host:port/path over a new connection, or None on any failure."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request('GET', path)
        resp = conn.getresponse()
        body = resp.read().decode()
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def refused(port: int, host: str = '127.0.0.1') -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# the processes: HAProxy (master-worker) and celtic-lb

class Process:
    """A child process with its output in a log file, stopped by its PID."""

    def __init__(self, argv: list, log_path: str):
        self.argv, self.log_path = argv, log_path
        self.proc = None

    def start(self):
        self.log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def output(self) -> str:
        with open(self.log_path, errors='replace') as f:
            return f.read()


class Lab:
    """celtic-lb + HAProxy + FakeKube + minions, wired together in `workdir`."""

    def __init__(self, workdir: str, api_port: int, reserved=(), ingress='203.0.113.10',
                 poison: str | None = None, debounce: float = 0.05, health_port: int = 18256,
                 hard_stop_after: str = '10m', min_interval: float = 0.0,
                 bind: str = '127.0.0.1', kube: FakeKube | None = None,
                 node_name: str = 'lab-proxy-0'):
        """KUBE: the FakeKube of another Lab (a second proxy against the same API)."""
        self.dir = workdir
        self.root = rootfs.lab_root(('proxy',), SUITE, ROOT_STEPS)
        self.shared_kube = kube is not None
        self.pki = kube.pki if kube else make_pki(os.path.join(workdir, 'pki'))
        self.kube = kube or FakeKube(api_port, self.pki)
        self.minions = Minions()
        self.haproxy = self.celtic_lb = None
        self.others: list[Process] = []           # every celtic-lb started, stopped at the end
        self.cfg_path = os.path.join(workdir, 'haproxy.cfg')
        self.ingress = ingress
        self.bind = bind
        params = {'api_vip': '127.0.0.1', 'api_port': api_port, 'proxy_vip': bind,
                  'proxy_vip_fip': ingress, 'lb_reserved_ports': list(reserved)}
        self.params_path = os.path.join(workdir, 'params.json')
        with open(self.params_path, 'w') as f:
            json.dump(params, f)
        haproxy_bin = HAPROXY
        if poison:
            # fault injection: "haproxy -c" refuses any config that serves this namespace
            wrapper = os.path.join(workdir, 'haproxy-check')
            with open(wrapper, 'w') as f:
                f.write('#!/bin/sh\nfor last; do :; done\n'
                        'if grep -q "svc_%s_" "$last"; then\n'
                        '  echo "[ALERT] (0) : config : injected failure for namespace %s" >&2\n'
                        '  exit 1\nfi\nexec %s "$@"\n' % (poison, poison, haproxy_bin))
            os.chmod(wrapper, 0o755)
            haproxy_bin = wrapper
        self.settings = {
            'params_file': self.params_path,
            'ca_file': self.pki['ca.crt'], 'cert_file': self.pki['celtic-lb.crt'],
            'key_file': self.pki['celtic-lb.key'],
            'haproxy_bin': haproxy_bin, 'haproxy_config': self.cfg_path,
            'template': os.path.join(CELTIC_LB_DIR, 'haproxy.cfg.tmpl'),
            'service_template': os.path.join(CELTIC_LB_DIR, 'haproxy-service.cfg.tmpl'),
            'stats_socket': os.path.join(workdir, 'haproxy.sock'),
            'server_state_file': os.path.join(workdir, 'server-state'),
            'node_name': node_name, 'debounce_seconds': debounce, 'lease_seconds': 3,
            'node_health_port': health_port, 'hard_stop_after': hard_stop_after,
            'reload_min_interval': min_interval, 'reload_confirm_seconds': 3.0,
        }
        # the reload is a script so that a test can make it do nothing and still exit 0,
        # as a reload whose new worker fails does (touch <workdir>/reload-noop)
        self.reload_script = os.path.join(workdir, 'reload.sh')

    def start(self):
        if not self.shared_kube:
            self.kube.start()
        config = os.path.join(self.dir, 'celtic-lb.json')
        with open(config, 'w') as f:
            json.dump(self.settings, f)
        base = [PYTHON, CELTIC_LB, '--config', config]
        subprocess.run(self.in_root(base + ['--write-initial-config']), check=True, timeout=60,
                       capture_output=True)
        self.haproxy = Process(self.in_root([HAPROXY, '-W', '-db', '-f', self.cfg_path]),
                               os.path.join(self.dir, 'haproxy.log')).start()
        wait_until(lambda: os.path.exists(self.settings['stats_socket']), 10,
                   what='the HAProxy stats socket')
        # The shell's kill: a minbase root has no /usr/bin/kill (procps), and a node
        # reloads through systemctl anyway.
        with open(self.reload_script, 'w') as f:
            f.write('#!/bin/sh\n[ -e %s/reload-noop ] && exit 0\nexec kill -USR2 %d\n'
                    % (self.dir, self.haproxy.pid))
        os.chmod(self.reload_script, 0o755)
        self.start_celtic_lb()
        return self

    def start_celtic_lb(self, name: str = 'celtic-lb', **options):
        """(Re)start celtic-lb (NAME.log; OPTIONS override the lab's settings)."""
        config = os.path.join(self.dir, name + '.json')
        with open(config, 'w') as f:
            json.dump(dict(self.settings, **options), f)
        process = Process(self.in_root([PYTHON, CELTIC_LB, '--config', config,
                                        '--reload-command', 'sh ' + self.reload_script]),
                          os.path.join(self.dir, name + '.log')).start()
        if name == 'celtic-lb':
            self.celtic_lb = process
        self.others.append(process)
        return process

    def reloads(self) -> int:
        return self.haproxy.output().count('Reloading HAProxy')

    def workers(self) -> list:
        """PIDs of the HAProxy master's worker processes (old ones included)."""
        found = []
        for entry in os.listdir('/proc'):
            try:
                with open('/proc/%s/stat' % entry) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except (OSError, IndexError):
                continue
            if entry.isdigit() and int(fields[1]) == self.haproxy.pid:
                found.append(int(entry))
        return found

    def in_root(self, argv: list) -> list:
        """argv run from the proxy root, on this machine's network (loopback), with the
        lab's directory and this repository (read-only) at their own paths. The command
        execs down to argv, so its PID is argv's (HAProxy's for the reload signal)."""
        pki = os.path.dirname(self.pki['ca.crt'])
        shared = ((pki, pki, 'ro'),) if not pki.startswith(self.dir + os.sep) else ()
        return self.root.command(argv, binds=((self.dir, self.dir), (REPO, REPO, 'ro')) + shared)

    def stop(self):
        for part in self.others + [self.haproxy]:
            if part:
                part.stop()
        self.minions.stop()
        if not self.shared_kube:
            self.kube.stop()

    def config(self) -> str:
        with open(self.cfg_path) as f:
            return f.read()

    def bodies(self, port: int, count: int = 12) -> list:
        return [get(port) for _ in range(count)]


if __name__ == '__main__' and sys.argv[1:2] == ['--listen']:
    _listen_main(sys.argv[2], sys.argv[3])
