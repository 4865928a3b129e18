#!/usr/bin/python3
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

"""celtic-lb: Kubernetes Services of type LoadBalancer on the celtic proxy VIP.

Watches Services and Nodes through the API VIP with its own client certificate, gives
every TCP port of every celtic Service a frontend on the proxy VIP (oldest Service wins a
port), renders haproxy.cfg from template files with every Ready minion's NodePort as a
backend, installs it only when `haproxy -c` accepts it, reloads HAProxy seamlessly and
writes the proxy address into status.loadBalancer. Stdlib only. See doc/celtic-lb.md.
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import random
import re
import shlex
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import NamedTuple

LOG = logging.getLogger('celtic-lb')
LIB = '/usr/local/lib/celtic/celtic-lb'
MANAGED = '# managed-by: celtic-lb'
CONTROL_PLANE = ('node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master')
EXCLUDED = 'node.kubernetes.io/exclude-from-external-load-balancers'
DEFAULTS = {
    'params_file': '/etc/celtic/params.json',
    'api_url': None,                     # https://<api_vip>:<api_port>
    'ca_file': '/etc/celtic/pki/ca.crt',
    'cert_file': '/etc/celtic/pki/celtic-lb.crt',
    'key_file': '/etc/celtic/secrets/celtic-lb.key',
    'bind_address': None,                # params proxy_vip
    'ingress_address': None,             # params proxy_vip_fip, else proxy_vip
    'reserved_ports': None,              # params lb_reserved_ports, else [22, 2224]
    'class_name': 'celtic.io/haproxy',
    'haproxy_bin': 'haproxy',
    'haproxy_config': '/etc/haproxy/haproxy.cfg',
    'template': LIB + '/haproxy.cfg.tmpl',
    'service_template': LIB + '/haproxy-service.cfg.tmpl',
    'stats_socket': '/run/haproxy/admin.sock',
    'server_state_file': '/var/lib/haproxy/server-state',
    # pacemaker starts and stops HAProxy: reload it where it runs, never start it
    'reload_command': 'systemctl try-reload-or-restart haproxy',
    'node_name': None,                   # this proxy's name in Events (hostname)
    'resync_seconds': 600,
    'debounce_seconds': 0.1,
    # kube-proxy's health endpoint on every node: one check per node, shared by all
    # Services (externalTrafficPolicy Local keeps its own healthCheckNodePort check)
    'node_health_port': 10256,
    # a reload counts only once the new worker reports the new config's generation
    'reload_confirm_seconds': 15.0,
    # changes that arrive within this time after a reload wait and share the next one
    'reload_min_interval': 1.0,
    # old workers (holding long connections) are stopped this long after a reload
    'hard_stop_after': '10m',
    # only the holder of this Lease writes Service status
    'lease_namespace': 'kube-system',
    'lease_name': 'celtic-lb',
    'lease_seconds': 15,
}
GENERATION = '@@celtic-lb-generation@@'


# --------------------------------------------------------------------------------------
# pure part: which Service gets which port, which nodes serve, what HAProxy runs

class Frontend(NamedTuple):
    """One TCP port of one Service on the proxy VIP."""
    port: int
    key: str                   # namespace/name
    port_name: str
    node_port: int
    health_port: int | None    # healthCheckNodePort when externalTrafficPolicy is Local
    source_ranges: tuple
    affinity: bool


class Refusal(NamedTuple):
    """A Service port that gets no frontend, and why (becomes a Warning Event)."""
    key: str
    port: int
    protocol: str
    reason: str
    message: str


def service_key(obj: dict) -> str:
    meta = obj.get('metadata', {})
    return '%s/%s' % (meta.get('namespace', ''), meta.get('name', ''))


def is_ours(svc: dict, class_name: str) -> bool:
    """A LoadBalancer Service without a loadBalancerClass, or with ours."""
    spec = svc.get('spec') or {}
    return (spec.get('type') == 'LoadBalancer'
            and spec.get('loadBalancerClass') in (None, class_name))


def _age(svc: dict) -> tuple:
    meta = svc.get('metadata', {})
    return (meta.get('creationTimestamp') or '', meta.get('namespace', ''), meta.get('name', ''))


SOURCE_RANGES = 'service.beta.kubernetes.io/load-balancer-source-ranges'


def source_ranges(svc: dict) -> tuple[list, list]:
    """(CIDRs, bad entries) of spec.loadBalancerSourceRanges, else of the annotation."""
    spec = svc.get('spec') or {}
    values = spec.get('loadBalancerSourceRanges') or []
    if not values:
        note = ((svc.get('metadata') or {}).get('annotations') or {}).get(SOURCE_RANGES) or ''
        values = [v for v in note.split(',') if v.strip()]
    ranges, bad = [], []
    for value in values:
        try:
            ranges.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            bad.append(str(value))
    return ranges, bad


def allocate(services: list, reserved, addresses=(), busy=()) -> tuple[dict, list]:
    """Give ports to Services, oldest first: ({port: Frontend}, [Refusal]).

    `addresses` are the ones a spec.loadBalancerIP may ask for (the proxy's); `busy` are
    ports another program holds on the proxy VIP (found by a bind probe)."""
    frontends: dict[int, Frontend] = {}
    refusals: list[Refusal] = []
    reserved, busy = {int(p) for p in reserved}, set(busy)
    for svc in sorted(services, key=_age):
        key, spec = service_key(svc), svc.get('spec') or {}
        local = spec.get('externalTrafficPolicy') == 'Local'
        ranges, bad = source_ranges(svc)
        if bad:
            refusals.append(Refusal(key, 0, '', 'InvalidSourceRange', 'loadBalancerSourceRanges '
                                    '%s: not CIDRs, ignored' % ', '.join(bad)))
        wanted_ip = spec.get('loadBalancerIP')
        for sp in spec.get('ports') or []:
            port, proto = int(sp.get('port', 0)), sp.get('protocol') or 'TCP'
            what = 'port %d/%s' % (port, proto)
            if wanted_ip and wanted_ip not in addresses:
                why = ('LoadBalancerIPUnavailable', 'loadBalancerIP %s: celtic-lb serves only '
                       '%s; remove loadBalancerIP or set it to that address'
                       % (wanted_ip, ' or '.join(a for a in addresses if a)))
            elif proto != 'TCP':
                why = ('UnsupportedProtocol', '%s: celtic-lb forwards TCP only' % what)
            elif port in reserved:
                why = ('ReservedPort', '%s is reserved on the proxy VIP (reserved ports: %s)'
                       % (what, ', '.join(str(p) for p in sorted(reserved))))
            elif not sp.get('nodePort'):
                why = ('NoNodePort', '%s has no nodePort (allocateLoadBalancerNodePorts is false)'
                       % what)
            elif port in frontends:
                why = ('PortConflict', '%s on the proxy VIP already belongs to the older '
                       'Service %s; this port gets no frontend until it is free'
                       % (what, frontends[port].key))
            elif port in busy:
                why = ('PortInUse', '%s: another program on the proxy already listens on this '
                       'port, HAProxy cannot bind it; this port gets no frontend until it is '
                       'free' % what)
            else:
                frontends[port] = Frontend(
                    port, key, sp.get('name') or '', int(sp['nodePort']),
                    spec.get('healthCheckNodePort') if local else None, tuple(ranges),
                    spec.get('sessionAffinity') == 'ClientIP')
                continue
            refusals.append(Refusal(key, port, proto, *why))
    return frontends, refusals


def port_in_use(address: str, port: int) -> bool:
    """Whether HAProxy's bind of address:port would fail: the same bind it makes (as root,
    SO_REUSEADDR and SO_REUSEPORT), so HAProxy's own listeners do not count, a listener of
    any other program does."""
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, 'SO_REUSEPORT'):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def node_ready(node: dict) -> bool:
    for cond in (node.get('status') or {}).get('conditions') or []:
        if cond.get('type') == 'Ready':
            return cond.get('status') == 'True'
    return False


def node_address(node: dict) -> str | None:
    """The first IPv4 InternalIP, else the first InternalIP."""
    found = [a.get('address') for a in (node.get('status') or {}).get('addresses') or []
             if a.get('type') == 'InternalIP' and a.get('address')]
    return next((a for a in found if ':' not in a), found[0] if found else None)


def backends(nodes: list) -> tuple[list, set, bool]:
    """([(name, address)] of every minion by name, the names of those not Ready, whether
    none was Ready).

    Minions are nodes without a control-plane role label and without the standard
    exclude-from-external-load-balancers label. Every minion is in the configuration;
    one that is not Ready is put in maintenance through the runtime API, without a
    reload. When no minion at all is Ready (a control-plane outage marks every node
    Unknown) none is put in maintenance and the health checks decide: emptying every
    backend would turn an API outage into a traffic outage.
    """
    minions = []
    for node in nodes:
        labels = (node.get('metadata') or {}).get('labels') or {}
        taints = (node.get('spec') or {}).get('taints') or []
        if any(label in labels for label in CONTROL_PLANE + (EXCLUDED,)):
            continue
        if any(t.get('key') == 'ToBeDeletedByClusterAutoscaler' for t in taints):
            continue
        address = node_address(node)
        if address:
            minions.append((node['metadata']['name'], address, node_ready(node)))
    fallback = bool(minions) and not any(m[2] for m in minions)
    down = set() if fallback else {name for name, _, ready in minions if not ready}
    return sorted((name, address) for name, address, _ in minions), down, fallback


def _safe(text: str, extra: str = '') -> str:
    """A name HAProxy accepts and nobody can inject through (letters, digits, _ . : -)."""
    return re.sub(r'[^A-Za-z0-9_.:%s-]' % extra, '-', str(text))


def _hostport(address: str, port: int) -> str:
    return ('ipv6@%s:%d' if ':' in address else '%s:%d') % (address, port)


NODES_BACKEND = 'celtic_nodes'


def section_name(fe: Frontend) -> str:
    namespace, name = fe.key.split('/', 1)
    return _safe('svc_%s_%s_%d' % (namespace, name, fe.port))


def render_service(template: string.Template, fe: Frontend, servers: list, bind: str) -> str:
    """The HAProxy section of one frontend, from the service template.

    A server follows its node's one shared check (`track`) on kube-proxy's health port;
    with externalTrafficPolicy Local it checks the Service's healthCheckNodePort itself."""
    namespace, name = fe.key.split('/', 1)
    options = []
    if fe.source_ranges:
        options.append('tcp-request connection reject unless { src %s }'
                       % ' '.join(fe.source_ranges))
    if fe.health_port:
        # kube-proxy answers 200 on healthCheckNodePort only where the Service has endpoints
        options += ['option httpchk GET /healthz', 'http-check expect status 200']
    lines = []
    for node, address in servers:
        check = (' check port %d' % fe.health_port if fe.health_port
                 else ' track %s/%s' % (NODES_BACKEND, _safe(node)))
        lines.append('server %s %s%s' % (_safe(node), _hostport(address, fe.node_port), check))
    return template.substitute(
        name=section_name(fe),
        description=_safe('Service %s/%s port %s' % (namespace, name, fe.port_name or fe.port),
                          '/ '),
        bind=_hostport(bind, fe.port), port=fe.port, node_port=fe.node_port,
        balance='source' if fe.affinity else 'roundrobin',
        options=''.join('    %s\n' % o for o in options),
        servers=''.join('    %s\n' % s for s in lines) or '    # no minion\n')


def render_nodes(servers: list, health_port: int) -> str:
    """The servers of the shared node-check backend: kube-proxy's /healthz on each minion."""
    return ''.join('    server %s %s check\n' % (_safe(n), _hostport(a, health_port))
                   for n, a in servers) or '    # no minion\n'


def render_config(template: string.Template, sections: list, settings: dict,
                  nodes: str = '') -> str:
    """The whole haproxy.cfg: the main template around the service sections, its
    generation (a hash of the rest) where the template says $generation."""
    body = template.substitute(
        managed=MANAGED, stats_socket=settings['stats_socket'],
        server_state_file=settings['server_state_file'],
        hard_stop_after=settings.get('hard_stop_after') or DEFAULTS['hard_stop_after'],
        nodes_backend=NODES_BACKEND, node_servers=nodes, generation=GENERATION,
        services='\n'.join(s.rstrip('\n') + '\n' for s in sections))
    return body.replace(GENERATION, hashlib.sha256(body.encode()).hexdigest()[:16])


def generation(text: str) -> str | None:
    """The generation a rendered haproxy.cfg declares (global `description`)."""
    m = re.search(r'^\s*description\s+celtic-lb-generation-([0-9a-f]+)\s*$', text, re.M)
    return m.group(1) if m else None


def status_patch(address: str, ports: list, refusals: list, served: bool) -> dict:
    """Merge patch for a Service's status: the proxy address, or no ingress at all."""
    if not served:
        return {'status': {'loadBalancer': {'ingress': None}}}
    errors = {(r.port, r.protocol): r.reason for r in refusals}
    entries = []
    for sp in ports:
        port, proto = int(sp.get('port', 0)), sp.get('protocol') or 'TCP'
        entry = {'port': port, 'protocol': proto}
        if (port, proto) in errors:
            entry['error'] = 'celtic.io/' + errors[(port, proto)]
        entries.append(entry)
    if _is_hostname(address):
        ingress = {'hostname': address, 'ports': entries}
    else:
        # Proxy: traffic to the address must go through HAProxy. Without it (VIP, the
        # default since Kubernetes 1.30) kube-proxy would short-cut in-cluster clients
        # to the Service, past HAProxy, even on the ports celtic-lb refused.
        ingress = {'ip': address, 'ipMode': 'Proxy', 'ports': entries}
    return {'status': {'loadBalancer': {'ingress': [ingress]}}}


def _is_hostname(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return False
    except ValueError:
        return True


def _normal_ingress(ingress) -> list:
    return sorted((i.get('ip'), i.get('hostname'), i.get('ipMode'),
                   sorted((p.get('port'), p.get('protocol'), p.get('error'))
                          for p in i.get('ports') or []))
                  for i in ingress or [])


# --------------------------------------------------------------------------------------
# Kubernetes API

class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__('HTTP %d: %s' % (status, message))
        self.status, self.retry_after = status, retry_after


def _retry_after(value) -> float:
    """Seconds of a Retry-After header (1 to 30; 1 when absent or not a number)."""
    try:
        return min(max(float(value), 1.0), 30.0)
    except (TypeError, ValueError):
        return 1.0


class Kube:
    """Just enough of the Kubernetes API: JSON requests and watch streams over TLS."""

    def __init__(self, url: str, ca: str, cert: str, key: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 443
        self.files = (ca, cert, key)
        self.stamp = None
        self.tls = self._context()
        self.conn: http.client.HTTPSConnection | None = None
        self.lock = threading.Lock()

    def _stamp(self):
        try:
            return tuple(os.stat(f).st_mtime_ns for f in self.files)
        except OSError:
            return self.stamp

    def _context(self) -> ssl.SSLContext:
        """A TLS context from the files as they are now (renewed certificates are
        picked up by the next connection, without a restart)."""
        ca, cert, key = self.files
        tls = ssl.create_default_context(cafile=ca)
        # Python >= 3.13 adds strict RFC 5280 checks that older CAs fail (a missing
        # authority key id): the chain and the address are still verified
        tls.verify_flags &= ~getattr(ssl, 'VERIFY_X509_STRICT', 0)
        tls.load_cert_chain(cert, key)
        self.stamp = self._stamp()
        return tls

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        if self._stamp() != self.stamp:
            try:
                self.tls = self._context()
                LOG.info('loaded the renewed certificate files')
            except (OSError, ssl.SSLError) as exc:
                LOG.warning('renewed certificate files unusable (%s): keeping the old ones',
                            exc)
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=timeout)
        conn.connect()
        # notice a vanished API VIP holder within about a minute, even on a quiet watch
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (('TCP_KEEPIDLE', 30), ('TCP_KEEPINTVL', 10), ('TCP_KEEPCNT', 3)):
            if hasattr(socket, opt):
                conn.sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
        return conn

    def _send(self, conn, method: str, path: str, body=None, ctype='application/json'):
        headers = {'Accept': 'application/json', 'User-Agent': 'celtic-lb'}
        data = None
        if body is not None:
            data, headers['Content-Type'] = json.dumps(body).encode(), ctype
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        if resp.status >= 300:
            text = resp.read().decode('utf-8', 'replace')
            try:
                text = json.loads(text).get('message', text)
            except ValueError:
                pass
            raise ApiError(resp.status, text[:300], _retry_after(resp.getheader('Retry-After'))
                           if resp.status == 429 else None)
        return resp

    def request(self, method: str, path: str, body=None, ctype='application/json') -> dict:
        """One request on a kept-alive connection (hundreds of status writes after a
        start do not each pay a TLS handshake), reconnecting once if it went stale."""
        for attempt in range(3):
            with self.lock:
                try:
                    if self.conn is None:
                        self.conn = self._connect(30)
                    resp = self._send(self.conn, method, path, body, ctype)
                    data = resp.read()
                    if resp.will_close:
                        self._drop()
                    return json.loads(data or b'{}')
                except ApiError as exc:
                    self._drop()
                    # a throttling apiserver (429) says when to come back: do, twice at most
                    if exc.status != 429 or attempt == 2:
                        raise
                    wait = exc.retry_after
                except (OSError, http.client.HTTPException):
                    # a kept-alive connection the server closed: once more on a new one
                    self._drop()
                    if attempt:
                        raise
                    continue
            LOG.info('%s %s: throttled, retrying in %.0fs', method, path, wait)
            time.sleep(wait)
        raise AssertionError('unreachable')

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def watch(self, path: str, version: str, timeout: int):
        """Yield watch events from `version` until the server ends the stream."""
        conn = self._connect(timeout + 30)
        try:
            query = urllib.parse.urlencode({'watch': 1, 'resourceVersion': version,
                                            'allowWatchBookmarks': 'true',
                                            'timeoutSeconds': timeout})
            resp = self._send(conn, 'GET', '%s?%s' % (path, query))
            for line in iter(resp.readline, b''):
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


class Watcher(threading.Thread):
    """Keeps a local copy of one resource kind with list + watch; wakes the reconciler."""

    def __init__(self, kube: Kube, kind: str, path: str, wake: threading.Event, resync: float):
        super().__init__(name='watch-' + kind, daemon=True)
        self.kube, self.kind, self.path, self.wake, self.resync = kube, kind, path, wake, resync
        self.items: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.synced = False

    def snapshot(self) -> list:
        with self.lock:
            return list(self.items.values())

    def _put(self, obj: dict, deleted=False):
        obj.get('metadata', {}).pop('managedFields', None)
        with self.lock:
            if deleted:
                self.items.pop(service_key(obj), None)
            else:
                self.items[service_key(obj)] = obj
        self.wake.set()

    def run(self):
        backoff = 1.0
        while True:
            try:
                listed = self.kube.request('GET', self.path)
                items = {}
                for obj in listed.get('items') or []:
                    obj.get('metadata', {}).pop('managedFields', None)
                    items[service_key(obj)] = obj
                with self.lock:        # swap whole: the reconciler never sees half a list
                    self.items = items
                self.synced = True
                self.wake.set()
                version = listed['metadata']['resourceVersion']
                LOG.info('listed %d %s at resourceVersion %s', len(items), self.kind, version)
                backoff, until = 1.0, time.monotonic() + self.resync
                while time.monotonic() < until:
                    started = time.monotonic()
                    version = self._watch(version, random.randint(240, 360))
                    if time.monotonic() - started < 1:
                        time.sleep(1)  # a server that ends watches at once is not hammered
            except (OSError, ValueError, KeyError, ApiError, http.client.HTTPException) as exc:
                if isinstance(exc, ApiError) and exc.status == 410:
                    LOG.info('%s watch expired: listing again', self.kind)
                    continue
                if isinstance(exc, ApiError) and exc.status == 504:
                    # an apiserver behind the version we hold (another one behind the VIP)
                    LOG.info('%s watch: the apiserver is behind our version (%s): listing '
                             'again', self.kind, exc)
                    time.sleep(1)
                    continue
                if isinstance(exc, ApiError) and exc.status == 429:
                    LOG.info('%s list/watch throttled: retrying in %.0fs', self.kind,
                             exc.retry_after)
                    time.sleep(exc.retry_after)
                    continue
                LOG.warning('%s list/watch failed (%s), retrying in %.0fs',
                            self.kind, exc, backoff)
                time.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)

    def _watch(self, version: str, timeout: int) -> str:
        for event in self.kube.watch(self.path, version, timeout):
            kind, obj = event.get('type'), event.get('object') or {}
            if kind == 'ERROR':
                raise ApiError(obj.get('code') or 500, obj.get('message', 'watch error'))
            version = obj.get('metadata', {}).get('resourceVersion', version)
            if kind in ('ADDED', 'MODIFIED', 'DELETED'):
                self._put(obj, deleted=kind == 'DELETED')
        return version


class Leader(threading.Thread):
    """Which proxy writes Service status: the holder of a coordination.k8s.io Lease.

    Every proxy configures its own HAProxy and records its own Events; only the holder
    patches status, so two proxies never fight over it. The holder renews the Lease every
    third of its duration; another takes it over when it has not changed for a whole
    duration as this process measured it (its own clock, not the holder's). Without the
    RBAC for Leases (an older manifest) every proxy writes status, as before."""

    def __init__(self, kube: Kube, cfg: dict, wake: threading.Event):
        super().__init__(name='leader', daemon=True)
        self.kube, self.wake = kube, wake
        self.identity = cfg['node_name']
        self.duration = int(cfg['lease_seconds'])
        self.path = '/apis/coordination.k8s.io/v1/namespaces/%s/leases' % cfg['lease_namespace']
        self.name = cfg['lease_name']
        self.leading = False
        self.observed: tuple | None = None      # (resourceVersion, monotonic time seen)

    @staticmethod
    def _now() -> str:
        return time.strftime('%Y-%m-%dT%H:%M:%S.000000Z', time.gmtime())

    def _set(self, leading: bool, why: str):
        if leading != self.leading:
            LOG.info('%s the status writer (Lease %s): %s', 'became' if leading else 'no longer',
                     self.name, why)
            self.leading = leading
            self.wake.set()

    def attempt(self):
        try:
            lease = self.kube.request('GET', '%s/%s' % (self.path, self.name))
        except ApiError as exc:
            if exc.status == 403:
                return self._set(True, 'no permission on Leases (HTTP 403): every proxy '
                                 'writes status')
            if exc.status != 404:
                raise
            body = {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                    'metadata': {'name': self.name},
                    'spec': {'holderIdentity': self.identity,
                             'leaseDurationSeconds': self.duration, 'acquireTime': self._now(),
                             'renewTime': self._now(), 'leaseTransitions': 0}}
            try:
                self.kube.request('POST', self.path, body)
            except ApiError as exc:
                if exc.status == 409:
                    return self._set(False, 'another proxy created it first')
                raise
            return self._set(True, 'created it')
        spec, meta = lease.get('spec') or {}, lease.get('metadata') or {}
        version = meta.get('resourceVersion')
        if not self.observed or self.observed[0] != version:
            self.observed = (version, time.monotonic())
        holder = spec.get('holderIdentity')
        duration = int(spec.get('leaseDurationSeconds') or self.duration)
        expired = time.monotonic() - self.observed[1] > duration
        if holder not in (self.identity, None, '') and not expired:
            return self._set(False, 'held by %s' % holder)
        spec = dict(spec, holderIdentity=self.identity, leaseDurationSeconds=self.duration,
                    renewTime=self._now())
        if holder != self.identity:
            spec['acquireTime'] = self._now()
            spec['leaseTransitions'] = int(spec.get('leaseTransitions') or 0) + 1
        try:
            self.kube.request('PUT', '%s/%s' % (self.path, self.name), dict(lease, spec=spec))
        except ApiError as exc:
            if exc.status == 409:
                return self._set(False, 'another proxy wrote it first')
            raise
        self._set(True, 'renewed' if holder == self.identity else 'took it over from %s'
                  % (holder or 'nobody'))

    def run(self):
        while True:
            try:
                self.attempt()
            except (OSError, ValueError, ApiError, http.client.HTTPException) as exc:
                # an API that cannot be reached: stop writing before another proxy may start
                LOG.warning('Lease %s: %s', self.name, exc)
                if self.observed and time.monotonic() - self.observed[1] > self.duration:
                    self._set(False, 'could not renew it')
            time.sleep(max(1.0, self.duration / 3.0) * random.uniform(0.9, 1.1))


# --------------------------------------------------------------------------------------
# HAProxy: check, install, reload

class HAProxy:
    """Installs a new haproxy.cfg only when `haproxy -c` accepts it, reloads, and counts
    the reload only once the new worker reports the new config's generation."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        with open(cfg['template']) as f:
            self.template = string.Template(f.read())
        with open(cfg['service_template']) as f:
            self.service_template = string.Template(f.read())
        self.installed: dict[str, str] = {}        # service key -> its sections, in the file
        self.confirmed: dict[str, str] = {}        # service key -> its sections, served
        self.last: tuple | None = None             # (input, outcome) of the last confirmed apply
        self.nodes = ''                            # the node-check servers of the config
        self.retry_at = 0.0                        # no new reload attempt before (monotonic)
        self.reloaded_at = 0.0                     # the last confirmed reload (monotonic)
        self.confirmed_reloads = 0
        self.check_seconds = 0.0

    def render(self, sections: dict) -> str:
        return render_config(self.template, [sections[k] for k in sorted(sections)], self.cfg,
                             self.nodes)

    def check(self, text: str) -> str | None:
        """None when haproxy accepts `text`, else its complaint."""
        directory = os.path.dirname(os.path.abspath(self.cfg['haproxy_config']))
        with tempfile.NamedTemporaryFile('w', dir=directory, prefix='.celtic-lb-check.',
                                         suffix='.cfg') as f:
            f.write(text)
            f.flush()
            proc = subprocess.run([self.cfg['haproxy_bin'], '-c', '-f', f.name], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode == 0:
            return None
        alerts = [ln.strip() for ln in proc.stdout.splitlines() if 'ALERT' in ln]
        complaint = ' '.join(alerts[:3] or proc.stdout.split()[-30:])
        return complaint.replace(f.name, 'haproxy.cfg')[:600]

    def current(self) -> str:
        try:
            with open(self.cfg['haproxy_config']) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def apply(self, wanted: dict, nodes: str = '') -> tuple[set, dict, set]:
        """Serve `wanted` ({key: sections}) with the node-check servers `nodes`.

        Returns (served keys, {key: why refused}, pending keys): served are the Services
        whose wanted sections a confirmed reload serves (or their previous version when
        the new one was refused); pending ones are installed but not confirmed yet."""
        if self.last and self.last[0] == (wanted, nodes):
            return self.last[1]
        self.nodes = nodes
        good, rejected = dict(wanted), {}
        started = time.monotonic()
        problem = self.check(self.render(good))
        self.check_seconds = time.monotonic() - started
        if problem:
            # find the Services that break the config; the others still get their change
            good = {k: v for k, v in wanted.items() if self.installed.get(k) == v}
            for key in sorted(set(wanted) - set(good)):
                why = self.check(self.render(dict(good, **{key: wanted[key]})))
                if why is None:
                    good[key] = wanted[key]
                    continue
                rejected[key] = why
                old = self.installed.get(key)
                if old is not None and self.check(self.render(dict(good, **{key: old}))) is None:
                    good[key] = old
            if self.check(self.render(good)):
                LOG.error('haproxy -c refuses even the unchanged Services (%s): keeping the '
                          'installed configuration; check %s', problem, self.cfg['template'])
                served = {k for k, v in self.confirmed.items() if wanted.get(k) == v}
                return served, rejected, set()
        text = self.render(good)
        if text != self.current():
            self._install(text)
            changes = ['+' + k for k in sorted(set(good) - set(self.installed))]
            changes += ['~' + k for k in sorted(good) if self.installed.get(k, good[k]) != good[k]]
            changes += ['-' + k for k in sorted(set(self.installed) - set(good))]
            LOG.info('installed %s: %d frontends of %d Services (%s)', self.cfg['haproxy_config'],
                     text.count('\nlisten '), len(good), ' '.join(changes) or 'backends changed')
            self.retry_at = 0.0
        self.installed = good
        if self.serves(text):
            self.confirmed = dict(good)
            outcome = (set(good), rejected, set())
            self.last = ((wanted, nodes), outcome)
            return outcome
        self.last = None
        served = {k for k, v in good.items() if self.confirmed.get(k) == v}
        return served, rejected, set(good) - served

    def serves(self, text: str) -> bool:
        """Whether HAProxy runs `text`; reload it (at most every 30 s while it fails) if not."""
        wanted = generation(text)
        running = self.running_generation()
        if wanted is None:
            LOG.warning('%s has no "description celtic-lb-generation-$generation": reloads '
                        'cannot be confirmed', self.cfg['template'])
        elif running == wanted:
            return True
        if time.monotonic() < self.retry_at:
            return False
        self.retry_at = time.monotonic() + 30
        started = time.monotonic()
        if not self.reload(text):
            return False
        if wanted is None:
            return True
        deadline = time.monotonic() + float(self.cfg['reload_confirm_seconds'])
        while time.monotonic() < deadline:
            running = self.running_generation()
            if running == wanted:
                self.retry_at, self.reloaded_at = 0.0, time.monotonic()
                self.confirmed_reloads += 1
                LOG.info('reloaded HAProxy: generation %s serves (haproxy -c %.2f s, reload '
                         'until served %.2f s)', wanted, self.check_seconds,
                         time.monotonic() - started)
                return True
            time.sleep(0.02)
        LOG.error('HAProxy did not take the new configuration (generation %s; it still runs '
                  '%s): a new worker failed to start, see its log (often "cannot bind '
                  'socket"); the previous configuration still serves; will retry',
                  wanted, running or 'nothing')
        return False

    def runtime(self, commands: list) -> list:
        """Run runtime-API commands on the stats socket; the answers that are not empty."""
        if not commands:
            return []
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(self.cfg['stats_socket'])
            sock.sendall(('; '.join(commands) + '\n').encode())
            answer = b''.join(iter(lambda: sock.recv(65536), b'')).decode('utf-8', 'replace')
        return [a.strip() for a in answer.split('\n\n') if a.strip()]

    def running_generation(self) -> str | None:
        try:
            info = self.runtime(['show info'])
        except OSError:
            return None
        m = re.search(r'^description:\s*celtic-lb-generation-([0-9a-f]+)\s*$',
                      '\n'.join(info), re.M | re.I)
        return m.group(1) if m else None

    def _install(self, text: str):
        path = self.cfg['haproxy_config']
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix='.celtic-lb.')
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def save_server_state(self, text: str):
        """Carry health-check and maintenance states over the reload to `text`
        (load-server-state-from-file), only for servers `text` has at the same address
        and port (HAProxy would otherwise restore the saved address over a new one) and
        that check for themselves (the node checks, Local Services): a few hundred lines
        rather than one per Service and node, which the new worker would have to load."""
        servers, section = set(), None
        for line in text.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ('listen', 'backend'):
                section = words[1]
            elif len(words) >= 3 and words[0] == 'server' and section and 'track' not in words:
                # a server that tracks another takes its state from it: nothing to carry
                address, _, port = words[2].rpartition(':')
                servers.add((section, words[1], address.replace('ipv6@', ''), port))
        backends = sorted({section for section, _, _, _ in servers})
        try:
            # only those backends: not a line per Service and node to dump and filter
            answers = self.runtime(['show servers state %s' % b for b in backends])
            lines = '\n'.join(answers).splitlines()
        except OSError as exc:
            LOG.debug('no server state saved: %s', exc)
            return
        names = next((ln[1:].split() for ln in lines if ln.startswith('#')), [])
        kept = []
        for line in lines:
            fields = dict(zip(names, line.split()))
            if (line.startswith('#') or len(line.split()) == 1) and line not in kept:
                kept.append(line)           # the version and the header, once
            elif (fields.get('be_name'), fields.get('srv_name'), fields.get('srv_addr'),
                  fields.get('srv_port')) in servers:
                kept.append(line)
        try:
            with open(self.cfg['server_state_file'], 'w') as f:
                f.write('\n'.join(kept) + '\n')
        except OSError as exc:
            LOG.debug('no server state saved: %s', exc)

    def reload(self, text: str) -> bool:
        self.save_server_state(text)
        command = self.cfg['reload_command']
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        try:
            proc = subprocess.run(argv, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            LOG.error('HAProxy reload (%s) failed: %s; will retry', ' '.join(argv), exc)
            return False
        if proc.returncode != 0:
            LOG.error('HAProxy reload (%s) failed with exit %d: %s; will retry', ' '.join(argv),
                      proc.returncode, proc.stdout.strip()[-300:])
            return False
        return True


# --------------------------------------------------------------------------------------
# the controller

class Controller:
    """Turns the watched Services and Nodes into HAProxy config, statuses and Events."""

    def __init__(self, cfg: dict, kube: Kube):
        self.cfg, self.kube = cfg, kube
        self.wake, self.stop = threading.Event(), threading.Event()
        resync = cfg['resync_seconds']
        self.services = Watcher(kube, 'services', '/api/v1/services', self.wake, resync)
        self.nodes = Watcher(kube, 'nodes', '/api/v1/nodes', self.wake, resync)
        self.haproxy = HAProxy(cfg)
        self.leader = Leader(kube, cfg, self.wake)
        self.reported: set = set()
        self.backends: tuple | None = None
        self.maint: dict[str, str] = {}            # node -> runtime state last applied

    def run(self):
        self.leader.start()
        self.services.start()
        self.nodes.start()
        while not self.stop.is_set():
            woken = self.wake.wait(30)
            if woken and self.stop.wait(self.cfg['debounce_seconds']):
                break
            # a storm of changes (Service edits, nodes joining) shares one reload
            calm = self.haproxy.reloaded_at + float(self.cfg['reload_min_interval'])
            if woken and self.stop.wait(max(0.0, calm - time.monotonic())):
                break
            self.wake.clear()
            # never render from a partial picture: an empty node list would empty backends
            if self.services.synced and self.nodes.synced:
                try:
                    self.reconcile()
                except Exception:
                    LOG.exception('reconcile failed; retrying on the next change')

    def reconcile(self):
        all_services = self.services.snapshot()
        ours = [s for s in all_services if is_ours(s, self.cfg['class_name'])]
        bind = self.cfg['bind_address']
        addresses = (self.cfg['ingress_address'], bind)
        frontends, _ = allocate(ours, self.cfg['reserved_ports'], addresses)
        # a port another program holds would make the new worker fail to start
        busy = {p for p in frontends if port_in_use(bind, p)}
        frontends, refusals = allocate(ours, self.cfg['reserved_ports'], addresses, busy)
        servers, down, fallback = backends(self.nodes.snapshot())
        if (servers, down) != self.backends:
            LOG.info('backends%s: %s', ' (no minion is Ready: all minions, health checks decide)'
                     if fallback else '', ', '.join(
                         '%s (%s%s)' % (n, a, ', not Ready' if n in down else '')
                         for n, a in servers) or 'none')
            self.backends = (servers, down)
        wanted: dict[str, str] = {}
        for fe in sorted(frontends.values()):
            section = render_service(self.haproxy.service_template, fe, servers, bind)
            wanted[fe.key] = wanted.get(fe.key, '') + section
        reloads = self.haproxy.confirmed_reloads
        served, rejected, pending = self.haproxy.apply(
            wanted, render_nodes(servers, int(self.cfg['node_health_port'])))
        self._maintenance(frontends, servers, down, reloads != self.haproxy.confirmed_reloads)
        notes = {(r.key, r.reason, r.message, 'Warning') for r in refusals}
        for key, why in rejected.items():
            notes.add((key, 'InvalidConfig', 'haproxy -c refused the configuration with this '
                       'Service; its previous frontends (if any) stay: ' + why, 'Warning'))
        for key in served:
            ports = sorted(fe.port for fe in frontends.values() if fe.key == key)
            notes.add((key, 'EnsuredLoadBalancer', 'ports %s on %s' % (
                ', '.join('%d/TCP' % p for p in ports), self.cfg['ingress_address']), 'Normal'))
        by_key = {service_key(s): s for s in all_services}
        our_keys = {service_key(s) for s in ours}
        for key, svc in by_key.items():
            if key in pending or not self.leader.leading:
                continue        # written once a reload is confirmed to serve it, by the leader
            if key in our_keys:
                self._write_status(svc, [r for r in refusals if r.key == key], key in served)
            elif (svc.get('spec') or {}).get('type') != 'LoadBalancer':
                self._clear_foreign_status(svc)
        # notes of pending Services wait too (they are compared again next time)
        notes = {n for n in notes if n[0] not in pending}
        for note in sorted(notes - self.reported):
            if note[0] in by_key:
                self._event(by_key[note[0]], *note[1:])
        self.reported = notes | {n for n in self.reported if n[0] in pending}
        if pending and any(port_in_use(bind, p) for p in frontends):
            self.wake.set()     # taken since the probe: refuse it on the next pass, at once

    def _maintenance(self, frontends: dict, servers: list, down: set, reloaded: bool):
        """Minions that are not Ready go to maintenance through the runtime API (their
        servers in every Service follow the shared check they track): no reload."""
        names = {n for n, _ in servers}
        if reloaded:
            self.maint = {}
        commands = []
        local = [section_name(fe) for fe in sorted(frontends.values()) if fe.health_port]
        for node in sorted(names):
            state = 'maint' if node in down else 'ready'
            if self.maint.get(node) == state:
                continue
            for backend in [NODES_BACKEND] + local:
                commands.append('set server %s/%s state %s' % (backend, _safe(node), state))
        if not commands:
            return
        try:
            for answer in self.haproxy.runtime(commands):
                LOG.warning('HAProxy runtime API: %s', answer[:200])
        except OSError as exc:
            LOG.warning('HAProxy runtime API unreachable (%s): node states are applied on '
                        'the next pass', exc)
            return
        self.maint = {n: ('maint' if n in down else 'ready') for n in names}
        if down:
            LOG.info('in maintenance (not Ready): %s', ', '.join(sorted(down)))

    def _write_status(self, svc: dict, refusals: list, served: bool):
        ports = (svc.get('spec') or {}).get('ports') or []
        body = status_patch(self.cfg['ingress_address'], ports, refusals, served)
        have = ((svc.get('status') or {}).get('loadBalancer') or {}).get('ingress')
        if _normal_ingress(have) == _normal_ingress(body['status']['loadBalancer']['ingress']):
            return
        self._patch_status(svc, body)
        LOG.info('Service %s: status.loadBalancer %s', service_key(svc),
                 'ingress %s' % self.cfg['ingress_address'] if served else 'cleared (no frontend)')

    def _clear_foreign_status(self, svc: dict):
        """A Service that stopped being a LoadBalancer loses the address we gave it."""
        have = ((svc.get('status') or {}).get('loadBalancer') or {}).get('ingress') or []
        address = self.cfg['ingress_address']
        if have and all(address in (i.get('ip'), i.get('hostname')) for i in have):
            self._patch_status(svc, status_patch(address, [], [], False))
            LOG.info('Service %s is no longer a LoadBalancer: cleared its status',
                     service_key(svc))

    def _patch_status(self, svc: dict, body: dict):
        meta = svc['metadata']
        try:
            self.kube.request('PATCH', '/api/v1/namespaces/%s/services/%s/status' % (
                meta['namespace'], meta['name']), body, 'application/merge-patch+json')
        except (OSError, ApiError, http.client.HTTPException) as exc:
            # retried by the periodic reconcile, not at once: the API may be down
            LOG.warning('Service %s: status update failed: %s', service_key(svc), exc)

    def _event(self, svc: dict, reason: str, message: str, kind: str):
        meta = svc['metadata']
        now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        node = self.cfg['node_name']
        body = {
            'apiVersion': 'v1', 'kind': 'Event',
            'metadata': {'name': '%s.%x' % (meta['name'], time.time_ns()),
                         'namespace': meta['namespace']},
            'involvedObject': {'apiVersion': 'v1', 'kind': 'Service', 'name': meta['name'],
                               'namespace': meta['namespace'], 'uid': meta.get('uid'),
                               'resourceVersion': meta.get('resourceVersion')},
            'reason': reason, 'message': message, 'type': kind, 'count': 1,
            'firstTimestamp': now, 'lastTimestamp': now,
            'source': {'component': 'celtic-lb', 'host': node},
            'reportingComponent': 'celtic-lb', 'reportingInstance': node,
        }
        log = LOG.warning if kind == 'Warning' else LOG.info
        log('Service %s: %s: %s', service_key(svc), reason, message)
        try:
            self.kube.request('POST', '/api/v1/namespaces/%s/events' % meta['namespace'], body)
        except (OSError, ApiError, http.client.HTTPException) as exc:
            LOG.warning('Service %s: could not record Event %s: %s', service_key(svc), reason, exc)


# --------------------------------------------------------------------------------------
# configuration and entry point

def load_config(args) -> dict:
    """Defaults < params.json < --config file < command-line options."""
    cfg = dict(DEFAULTS)
    overrides = {}
    if args.config:
        with open(args.config) as f:
            overrides.update(json.load(f))
    overrides.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    params_file = overrides.get('params_file', cfg['params_file'])
    params = {}
    if params_file and os.path.exists(params_file):
        with open(params_file) as f:
            params = json.load(f)
    if params.get('api_vip'):
        cfg['api_url'] = 'https://%s:%s' % (params['api_vip'], params.get('api_port') or 6443)
    cfg['bind_address'] = params.get('proxy_vip')
    cfg['ingress_address'] = params.get('proxy_vip_fip') or params.get('proxy_vip')
    cfg['reserved_ports'] = params.get('lb_reserved_ports') or [22, 2224]
    cfg['node_name'] = socket.gethostname()
    cfg.update(overrides)
    if isinstance(cfg['reserved_ports'], str):
        cfg['reserved_ports'] = [int(p) for p in re.split(r'[,\s]+', cfg['reserved_ports']) if p]
    if not re.fullmatch(r'[1-9][0-9]*(ms|s|m|h|d)', str(cfg['hard_stop_after'])):
        raise SystemExit('celtic-lb: hard_stop_after %r: give a time with its unit, such as '
                         '10m, 90s or 1h' % cfg['hard_stop_after'])
    for required in ('api_url', 'bind_address', 'ingress_address'):
        if not cfg[required]:
            raise SystemExit('celtic-lb: no %s: give --%s or the api_vip/proxy_vip keys of %s'
                             % (required, required.replace('_', '-'), params_file))
    return cfg


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='celtic-lb', description=__doc__.splitlines()[0])
    parser.add_argument('--config', help='JSON file with any of the options below (as keys)')
    for key, value in DEFAULTS.items():
        kind = float if isinstance(value, float) else int if isinstance(value, int) else str
        parser.add_argument('--' + key.replace('_', '-'), dest=key, type=kind,
                            help='default: %s' % (value if value is not None else 'from params'))
    parser.add_argument('--write-initial-config', action='store_true',
                        help='write a checked haproxy.cfg without Services unless celtic-lb '
                        'already manages it, then exit (used by proxy.sh)')
    parser.add_argument('-v', '--verbose', action='store_true')
    return parser.parse_args(argv)


def write_initial_config(cfg: dict) -> int:
    haproxy = HAProxy(cfg)
    if MANAGED in haproxy.current():
        return 0
    text = haproxy.render({})
    problem = haproxy.check(text)
    if problem:
        LOG.error('the initial haproxy.cfg is refused by haproxy -c: %s', problem)
        return 1
    haproxy._install(text)
    LOG.info('wrote the initial %s (no Services yet)', cfg['haproxy_config'])
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(asctime)s celtic-lb %(levelname)s: %(message)s')
    cfg = load_config(args)
    if args.write_initial_config:
        return write_initial_config(cfg)
    controller = Controller(cfg, Kube(cfg['api_url'], cfg['ca_file'], cfg['cert_file'],
                                      cfg['key_file']))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (controller.stop.set(), controller.wake.set()))
    LOG.info('watching %s as celtic-lb: frontends on %s, status address %s, reserved ports %s',
             cfg['api_url'], cfg['bind_address'], cfg['ingress_address'],
             ', '.join(str(p) for p in cfg['reserved_ports']))
    controller.run()
    LOG.info('stopped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
