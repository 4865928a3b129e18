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

"""Unit tests of celtic-lb's pure parts: ports, backends, rendering, status, the install
decision, and the controller's statuses and Events against a recording fake API."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import string
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LB_DIR = os.path.join(REPO, 'heat_templates', 'fragments', 'celtic-lb')
_spec = importlib.util.spec_from_file_location('celtic_lb', os.path.join(LB_DIR, 'celtic_lb.py'))
lb = importlib.util.module_from_spec(_spec)
_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True   # no __pycache__ in fragments/
_spec.loader.exec_module(lb)
sys.dont_write_bytecode = _bytecode

HAPROXY = shutil.which('haproxy')
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason='needs haproxy')


def svc(name, ports, namespace='default', age=0, **spec):
    """A LoadBalancer Service; ports are (port, nodePort[, protocol]) tuples."""
    spec.setdefault('type', 'LoadBalancer')
    spec['ports'] = [{'name': 'p%d' % p[0], 'port': p[0], 'nodePort': p[1],
                      'protocol': p[2] if len(p) > 2 else 'TCP'} for p in ports]
    return {'metadata': {'name': name, 'namespace': namespace, 'uid': 'uid-' + name,
                         'resourceVersion': '1',
                         'creationTimestamp': '2026-01-01T00:%02d:00Z' % age},
            'spec': spec, 'status': {}}


def node(name, address='10.0.0.1', ready='True', labels=None, taints=None, addresses=None):
    return {'metadata': {'name': name, 'labels': labels or {}},
            'spec': {'taints': taints} if taints else {},
            'status': {'conditions': [{'type': 'Ready', 'status': ready}] if ready else [],
                       'addresses': addresses if addresses is not None else
                       [{'type': 'Hostname', 'address': name},
                        {'type': 'InternalIP', 'address': address}]}}


def templates():
    with open(os.path.join(LB_DIR, 'haproxy.cfg.tmpl')) as f:
        main = string.Template(f.read())
    with open(os.path.join(LB_DIR, 'haproxy-service.cfg.tmpl')) as f:
        service = string.Template(f.read())
    return main, service


def render(frontends, servers, bind='10.0.0.100'):
    main, service = templates()
    sections = [lb.render_service(service, fe, servers, bind) for fe in sorted(frontends.values())]
    return lb.render_config(main, sections, {'stats_socket': '/run/haproxy/admin.sock',
                                             'server_state_file': '/var/lib/haproxy/server-state'},
                            lb.render_nodes(servers, 10256))


def haproxy_check(text, tmp_path):
    path = tmp_path / 'haproxy.cfg'
    path.write_text(text)
    return subprocess.run([HAPROXY, '-c', '-f', str(path)], capture_output=True, text=True)


# ---- which Services are ours -------------------------------------------------------

@pytest.mark.parametrize('spec, ours', [
    ({'type': 'LoadBalancer'}, True),
    ({'type': 'LoadBalancer', 'loadBalancerClass': 'celtic.io/haproxy'}, True),
    ({'type': 'LoadBalancer', 'loadBalancerClass': 'example.com/metallb'}, False),
    ({'type': 'NodePort'}, False),
    ({'type': 'ClusterIP'}, False),
    ({}, False),
])
def test_only_load_balancers_without_a_class_or_with_ours_are_ours(spec, ours):
    assert lb.is_ours({'metadata': {}, 'spec': spec}, 'celtic.io/haproxy') is ours


# ---- ports ---------------------------------------------------------------------------

def test_each_tcp_port_gets_a_frontend_on_its_own_port_with_its_node_port():
    frontends, refusals = lb.allocate([svc('web', [(80, 30080), (443, 30443)])], [22, 2224])
    assert refusals == []
    assert {p: (f.key, f.node_port) for p, f in frontends.items()} == {
        80: ('default/web', 30080), 443: ('default/web', 30443)}


def test_the_older_service_keeps_a_contested_port_whatever_the_list_order():
    old, new = svc('old', [(80, 30001)], age=1), svc('new', [(80, 30002), (81, 30003)], age=2)
    for order in ([old, new], [new, old]):
        frontends, refusals = lb.allocate(order, [])
        assert frontends[80].key == 'default/old' and frontends[81].key == 'default/new'
        assert [(r.key, r.port, r.reason) for r in refusals] == [
            ('default/new', 80, 'PortConflict')]
        assert 'older Service default/old' in refusals[0].message


def test_services_of_the_same_second_are_ordered_by_namespace_and_name():
    # every proxy must reach the same decision from the same objects
    a, b = svc('a', [(80, 30001)], namespace='zz'), svc('b', [(80, 30002)], namespace='aa')
    assert lb.allocate([a, b], [])[0][80].key == 'aa/b'
    assert lb.allocate([b, a], [])[0][80].key == 'aa/b'


@pytest.mark.parametrize('port, reason, words', [
    ((53, 30053, 'UDP'), 'UnsupportedProtocol', 'TCP only'),
    ((3868, 30068, 'SCTP'), 'UnsupportedProtocol', 'TCP only'),
    ((22, 30022), 'ReservedPort', 'reserved ports: 22, 2224'),
    ((2224, 30024), 'ReservedPort', 'is reserved'),
    ((80, None), 'NoNodePort', 'allocateLoadBalancerNodePorts'),
])
def test_ports_that_cannot_be_served_are_refused_with_a_reason(port, reason, words):
    frontends, refusals = lb.allocate([svc('x', [port, (8080, 30080)])], [22, 2224])
    assert list(frontends) == [8080]
    assert len(refusals) == 1 and refusals[0].reason == reason and words in refusals[0].message


def test_source_ranges_are_normalised_and_bad_ones_reported():
    service = svc('x', [(80, 30080)],
                  loadBalancerSourceRanges=['10.1.2.3/8', ' 192.0.2.0/24', 'nope'])
    frontends, refusals = lb.allocate([service], [])
    assert frontends[80].source_ranges == ('10.0.0.0/8', '192.0.2.0/24')
    assert [(r.reason, r.port) for r in refusals] == [('InvalidSourceRange', 0)]
    assert 'nope' in refusals[0].message


# ---- backends ------------------------------------------------------------------------

def test_backends_are_the_ready_minions_only():
    nodes = [
        node('m-2', '10.0.0.12'), node('m-1', '10.0.0.11'),
        node('m-3', '10.0.0.13', ready='False'), node('m-4', '10.0.0.14', ready='Unknown'),
        node('m-5', '10.0.0.15', ready=None),
        node('master-0', '10.0.0.5', labels={'node-role.kubernetes.io/control-plane': ''}),
        node('old-master', '10.0.0.6', labels={'node-role.kubernetes.io/master': ''}),
        node('x', '10.0.0.7',
             labels={'node.kubernetes.io/exclude-from-external-load-balancers': ''}),
        node('going', '10.0.0.8',
             taints=[{'key': 'ToBeDeletedByClusterAutoscaler', 'effect': 'NoSchedule'}]),
        node('no-ip', addresses=[{'type': 'Hostname', 'address': 'no-ip'}]),
    ]
    # every minion is configured; the ones not Ready go to maintenance at runtime
    assert lb.backends(nodes) == ([('m-1', '10.0.0.11'), ('m-2', '10.0.0.12'),
                                   ('m-3', '10.0.0.13'), ('m-4', '10.0.0.14'),
                                   ('m-5', '10.0.0.15')], {'m-3', 'm-4', 'm-5'}, False)


def test_ipv4_internal_address_is_preferred():
    dual = node('m', addresses=[{'type': 'InternalIP', 'address': 'fd00::1'},
                                {'type': 'ExternalIP', 'address': '203.0.113.1'},
                                {'type': 'InternalIP', 'address': '10.0.0.9'}])
    assert lb.node_address(dual) == '10.0.0.9'
    assert lb.node_address(node('m', 'fd00::2')) == 'fd00::2'


def test_when_no_minion_is_ready_all_minions_stay_and_health_checks_decide():
    nodes = [node('m-1', '10.0.0.11', ready='Unknown'), node('m-2', '10.0.0.12', ready='Unknown'),
             node('master-0', '10.0.0.5', labels={'node-role.kubernetes.io/control-plane': ''})]
    assert lb.backends(nodes) == ([('m-1', '10.0.0.11'), ('m-2', '10.0.0.12')], set(), True)
    assert lb.backends([]) == ([], set(), False)


# ---- rendering -----------------------------------------------------------------------

@needs_haproxy
def test_rendered_config_passes_haproxy_check(tmp_path):
    services = [
        svc('web', [(80, 30080), (443, 30443)], loadBalancerSourceRanges=['10.0.0.0/8']),
        svc('local', [(8443, 31443)], externalTrafficPolicy='Local', healthCheckNodePort=32100,
            sessionAffinity='ClientIP'),
        svc('empty', [(9000, 31000)]),
    ]
    frontends, _ = lb.allocate(services, [22])
    text = render(frontends, [('m-1', '10.0.0.11'), ('m-6', 'fd00::6')])
    result = haproxy_check(text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert text.startswith(lb.MANAGED)
    assert text.count('\nlisten ') == 4 and 'option redispatch' in text


def test_each_frontend_binds_the_vip_and_tracks_one_shared_check_per_minion():
    frontends, _ = lb.allocate([svc('web', [(80, 30080)])], [])
    text = render(frontends, [('m-1', '10.0.0.11'), ('m-2', '10.0.0.12')])
    section = text[text.index('listen svc_default_web_80'):]
    assert '    bind 10.0.0.100:80\n' in section
    assert '    description Service default/web port p80\n' in section
    assert '    balance roundrobin\n' in section
    assert ('    server m-1 10.0.0.11:30080 track celtic_nodes/m-1\n'
            '    server m-2 10.0.0.12:30080 track celtic_nodes/m-2\n') in section
    assert 'httpchk' not in section
    nodes = text[text.index('backend celtic_nodes'):text.index('listen ')]
    assert 'option httpchk GET /healthz' in nodes
    assert ('    server m-1 10.0.0.11:10256 check\n'
            '    server m-2 10.0.0.12:10256 check\n') in nodes


def test_the_number_of_checks_grows_with_nodes_not_services():
    services = [svc('s%d' % i, [(1000 + i, 30000 + i)], age=i) for i in range(20)]
    servers = [('m-%d' % i, '10.0.1.%d' % i) for i in range(5)]
    text = render(lb.allocate(services, [])[0], servers)
    checked = [ln for ln in text.splitlines() if ln.strip().startswith('server ')
               and ln.rstrip().endswith(' check')]
    assert len(checked) == 5                 # one per minion, not 20 x 5


def test_the_generation_names_the_rest_of_the_file():
    frontends = lb.allocate([svc('web', [(80, 30080)])], [])[0]
    one, two = render(frontends, [('m-1', '10.0.0.11')]), render(frontends, [])
    assert lb.generation(one) and lb.generation(two) and lb.generation(one) != lb.generation(two)
    assert render(frontends, [('m-1', '10.0.0.11')]) == one
    assert 'hard-stop-after 10m' in one


def test_local_traffic_policy_checks_kube_proxy_health_port_and_affinity_balances_by_source():
    service = svc('l', [(80, 30080)], externalTrafficPolicy='Local', healthCheckNodePort=32100,
                  sessionAffinity='ClientIP')
    text = render(lb.allocate([service], [])[0], [('m-1', '10.0.0.11')])
    assert 'option httpchk GET /healthz' in text and 'http-check expect status 200' in text
    assert 'server m-1 10.0.0.11:30080 check port 32100' in text
    assert 'balance source' in text


def test_source_ranges_reject_other_clients():
    service = svc('s', [(80, 30080)], loadBalancerSourceRanges=['10.0.0.0/8', '192.0.2.0/24'])
    text = render(lb.allocate([service], [])[0], [('m-1', '10.0.0.11')])
    assert 'tcp-request connection reject unless { src 10.0.0.0/8 192.0.2.0/24 }' in text


def test_names_cannot_inject_configuration():
    evil = svc('web\n    bind :22', [(80, 30080)], namespace='ns#x')
    text = render(lb.allocate([evil], [])[0], [('m\nuser root', '10.0.0.11')])
    assert '\n    bind :22' not in text and '\nuser root' not in text
    listen = next(line for line in text.splitlines() if line.startswith('listen '))
    assert len(listen.split()) == 2 and listen.endswith('_80')


def test_no_ready_minion_renders_an_empty_backend_not_a_broken_one():
    text = render(lb.allocate([svc('web', [(80, 30080)])], [])[0], [])
    assert '# no minion' in text


def test_ipv6_vip_and_servers_are_written_for_haproxy():
    frontends = lb.allocate([svc('web', [(80, 30080)])], [])[0]
    text = render(frontends, [('m', 'fd00::5')], bind='fd00::100')
    assert 'bind ipv6@fd00::100:80' in text and 'server m ipv6@fd00::5:30080 track' in text
    assert 'server m ipv6@fd00::5:10256 check' in text


def test_the_template_must_not_ask_for_unknown_values():
    with pytest.raises(KeyError):
        lb.render_config(string.Template('$nonsense'), [],
                         {'stats_socket': 's', 'server_state_file': 'f'})


# ---- status --------------------------------------------------------------------------

def test_status_patch_names_the_proxy_address_and_the_refused_ports():
    service = svc('x', [(80, 30080), (53, 30053, 'UDP')])
    _, refusals = lb.allocate([service], [])
    body = lb.status_patch('203.0.113.10', service['spec']['ports'], refusals, True)
    ports = [{'port': 80, 'protocol': 'TCP'},
             {'port': 53, 'protocol': 'UDP', 'error': 'celtic.io/UnsupportedProtocol'}]
    assert body == {'status': {'loadBalancer': {'ingress': [
        {'ip': '203.0.113.10', 'ipMode': 'Proxy', 'ports': ports}]}}}


def test_status_patch_without_frontend_removes_the_ingress():
    assert lb.status_patch('203.0.113.10', [], [], False) == {
        'status': {'loadBalancer': {'ingress': None}}}


def test_status_patch_uses_hostname_for_a_name():
    body = lb.status_patch('lb.example.com', [{'port': 80, 'protocol': 'TCP'}], [], True)
    assert body['status']['loadBalancer']['ingress'][0]['hostname'] == 'lb.example.com'


def test_status_comparison_ignores_server_defaults_and_order():
    have = [{'ip': '203.0.113.10', 'ipMode': 'Proxy',
             'ports': [{'port': 81, 'protocol': 'TCP'}, {'port': 80, 'protocol': 'TCP'}]}]
    want = [{'ip': '203.0.113.10', 'ipMode': 'Proxy',
             'ports': [{'port': 80, 'protocol': 'TCP'}, {'port': 81, 'protocol': 'TCP'}]}]
    assert lb._normal_ingress(have) == lb._normal_ingress(want)
    # the API server's default (VIP) is not what we want: written again
    assert lb._normal_ingress([dict(have[0], ipMode='VIP')]) != lb._normal_ingress(want)
    assert lb._normal_ingress(None) == lb._normal_ingress([]) != lb._normal_ingress(want)


# ---- installing a config: check, isolate, keep the previous one ------------------------

@pytest.fixture
def settings(tmp_path):
    return {'template': os.path.join(LB_DIR, 'haproxy.cfg.tmpl'),
            'service_template': os.path.join(LB_DIR, 'haproxy-service.cfg.tmpl'),
            'haproxy_config': str(tmp_path / 'haproxy.cfg'), 'haproxy_bin': HAPROXY or 'haproxy',
            'stats_socket': str(tmp_path / 'admin.sock'),
            'server_state_file': str(tmp_path / 'state'),
            'reload_command': ['true'], 'class_name': 'celtic.io/haproxy',
            'reserved_ports': [22, 2224], 'bind_address': '10.0.0.100',
            'ingress_address': '203.0.113.10', 'node_name': 'proxy-0', 'resync_seconds': 600,
            'debounce_seconds': 0, 'node_health_port': 10256, 'reload_confirm_seconds': 0.2,
            'reload_min_interval': 0, 'hard_stop_after': '10m', 'lease_seconds': 15,
            'lease_namespace': 'kube-system', 'lease_name': 'celtic-lb'}


class FakeHAProxy(lb.HAProxy):
    """check() refuses any text containing a poisoned word; reloads are counted; a
    reload that works makes the file's generation the running one, one that "works" with
    `starts=False` (exit 0, new worker failed) does not."""

    def __init__(self, cfg, poison=('POISON',), reload_ok=True, starts=True):
        super().__init__(cfg)
        self.poison, self.reload_ok, self.reloads, self.checks = poison, reload_ok, 0, 0
        self.starts, self.running, self.commands = starts, None, []

    def check(self, text):
        self.checks += 1
        bad = [p for p in self.poison if p in text]
        return '[ALERT] bad %s' % bad[0] if bad else None

    def reload(self, text):
        self.reloads += 1
        if self.reload_ok and self.starts:
            self.running = lb.generation(self.current())
        return self.reload_ok

    def running_generation(self):
        return self.running

    def runtime(self, commands):
        self.commands += commands
        return []


def test_a_service_that_breaks_the_config_is_left_out_and_the_others_installed(settings):
    ha = FakeHAProxy(settings)
    served, rejected, _ = ha.apply({'a/one': 'listen one\n', 'b/bad': 'listen POISON\n',
                                    'c/two': 'listen two\n'})
    assert served == {'a/one', 'c/two'} and list(rejected) == ['b/bad']
    assert 'bad POISON' in rejected['b/bad']
    text = ha.current()
    assert 'listen one' in text and 'listen two' in text and 'POISON' not in text
    assert ha.reloads == 1


def test_a_service_whose_change_breaks_the_config_keeps_its_previous_frontends(settings):
    ha = FakeHAProxy(settings)
    ha.apply({'a/web': 'listen web-v1\n'})
    served, rejected, _ = ha.apply({'a/web': 'listen web-v2 POISON\n',
                                    'b/new': 'listen new\n'})
    assert served == {'a/web', 'b/new'} and list(rejected) == ['a/web']
    assert 'listen web-v1' in ha.current() and 'listen new' in ha.current()


def test_a_broken_template_installs_nothing_and_keeps_the_previous_file(settings, tmp_path):
    ha = FakeHAProxy(settings)
    ha.apply({'a/web': 'listen web\n'})
    before = ha.current()
    ha.poison = ('managed-by',)              # every candidate fails, even the unchanged one
    served, rejected, _ = ha.apply({'a/web': 'listen web\n', 'b/x': 'listen x\n'})
    assert ha.current() == before and served == {'a/web'} and 'b/x' in rejected
    assert ha.reloads == 1


def test_an_unchanged_picture_neither_checks_nor_reloads(settings):
    ha = FakeHAProxy(settings)
    ha.apply({'a/web': 'listen web\n'})
    checks, reloads = ha.checks, ha.reloads
    ha.apply({'a/web': 'listen web\n'})
    assert (ha.checks, ha.reloads) == (checks, reloads)


def test_a_failed_reload_is_retried_on_the_next_pass(settings):
    ha = FakeHAProxy(settings, reload_ok=False)
    assert ha.apply({'a/web': 'listen web\n'}) == (set(), {}, {'a/web'})
    assert ha.reloads == 1
    ha.reload_ok, ha.retry_at = True, 0
    assert ha.apply({'a/web': 'listen web\n'}) == ({'a/web'}, {}, set())
    assert ha.reloads == 2


def test_a_reload_that_exits_0_but_does_not_serve_is_not_counted(settings):
    ha = FakeHAProxy(settings, starts=False)
    assert ha.apply({'a/web': 'listen web\n'}) == (set(), {}, {'a/web'})
    # not retried at once (at most every 30 s), then served once a worker takes it
    assert ha.apply({'a/web': 'listen web\n'}) == (set(), {}, {'a/web'}) and ha.reloads == 1
    ha.starts, ha.retry_at = True, 0
    assert ha.apply({'a/web': 'listen web\n'}) == ({'a/web'}, {}, set())


def test_a_file_written_before_a_restart_is_reloaded_by_the_next_process(settings):
    first = FakeHAProxy(settings, reload_ok=False)
    first.apply({'a/web': 'listen web\n'})
    assert 'listen web' in first.current()
    second = FakeHAProxy(settings)           # a new celtic-lb, the same file
    assert second.apply({'a/web': 'listen web\n'}) == ({'a/web'}, {}, set())
    assert second.reloads == 1


def test_a_bind_probe_tells_another_program_from_haproxy():
    import socket
    other = socket.socket()
    other.bind(('127.0.0.1', 0))
    other.listen()
    try:
        assert lb.port_in_use('127.0.0.1', other.getsockname()[1])
    finally:
        other.close()
    like_haproxy = socket.socket()
    like_haproxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    like_haproxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    like_haproxy.bind(('127.0.0.1', 0))
    like_haproxy.listen()
    try:
        assert not lb.port_in_use('127.0.0.1', like_haproxy.getsockname()[1])
    finally:
        like_haproxy.close()


@needs_haproxy
def test_real_haproxy_check_reports_the_alert_without_the_temporary_path(settings):
    ha = lb.HAProxy(settings)
    assert ha.check(ha.render({'a/web': 'listen web\n    bind :18999\n    mode tcp\n'})) is None
    problem = ha.check(ha.render({'a/web': 'listen web\n    balance roundrobinX\n'}))
    assert 'ALERT' in problem and 'balance only supports' in problem
    assert '[haproxy.cfg:' in problem and '.celtic-lb-check.' not in problem
    assert os.listdir(os.path.dirname(settings['haproxy_config'])) == []


@needs_haproxy
def test_initial_config_is_written_once(settings):
    assert lb.write_initial_config(settings) == 0
    first = lb.HAProxy(settings).current()
    assert first.startswith(lb.MANAGED) and 'listen ' not in first
    with open(settings['haproxy_config'], 'a') as f:
        f.write('# later content from celtic-lb\n')
    assert lb.write_initial_config(settings) == 0
    assert lb.HAProxy(settings).current().endswith('# later content from celtic-lb\n')


# ---- the controller against a recording API --------------------------------------------

class RecordingKube:
    def __init__(self):
        self.calls = []

    def request(self, method, path, body=None, ctype='application/json'):
        self.calls.append((method, path, body, ctype))
        return {}

    def of(self, method):
        return [c for c in self.calls if c[0] == method]


@pytest.fixture
def controller(settings):
    kube = RecordingKube()
    ctl = lb.Controller(settings, kube)
    ctl.haproxy = FakeHAProxy(settings)
    ctl.leader.leading = True
    ctl.nodes.items = {'/m-1': node('m-1', '10.0.0.11'), '/m-2': node('m-2', '10.0.0.12')}

    def set_services(*services):
        ctl.services.items = {lb.service_key(s): s for s in services}
    ctl.set_services = set_services
    return ctl, kube


def test_reconcile_writes_status_and_events_once(controller):
    ctl, kube = controller
    old, new = svc('old', [(80, 30001)], age=1), svc('new', [(80, 30002)], age=2)
    ctl.set_services(old, new)
    ctl.reconcile()

    patches = {c[1]: c[2] for c in kube.of('PATCH')}
    assert c_type(kube) == {'application/merge-patch+json'}
    assert patches['/api/v1/namespaces/default/services/old/status']['status']['loadBalancer'][
        'ingress'][0]['ip'] == '203.0.113.10'
    assert '/api/v1/namespaces/default/services/new/status' not in patches  # nothing to clear
    events = [c[2] for c in kube.of('POST')]
    assert sorted((e['involvedObject']['name'], e['reason'], e['type']) for e in events) == [
        ('new', 'PortConflict', 'Warning'), ('old', 'EnsuredLoadBalancer', 'Normal')]
    conflict = next(e for e in events if e['reason'] == 'PortConflict')
    assert conflict['metadata']['namespace'] == 'default'
    assert conflict['involvedObject']['namespace'] == 'default'
    assert conflict['involvedObject']['uid'] == 'uid-new'
    assert conflict['source'] == {'component': 'celtic-lb', 'host': 'proxy-0'}

    # the API now shows the status we wrote: a second pass changes nothing
    old['status'] = {'loadBalancer': {'ingress': [
        {'ip': '203.0.113.10', 'ipMode': 'Proxy', 'ports': [{'port': 80, 'protocol': 'TCP'}]}]}}
    kube.calls.clear()
    ctl.reconcile()
    assert kube.calls == []


def c_type(kube):
    return {c[3] for c in kube.of('PATCH')}


def test_the_newer_service_gets_the_port_when_the_older_one_goes(controller):
    ctl, kube = controller
    old, new = svc('old', [(80, 30001)], age=1), svc('new', [(80, 30002)], age=2)
    ctl.set_services(old, new)
    ctl.reconcile()
    kube.calls.clear()
    ctl.set_services(new)
    ctl.reconcile()
    assert [c[1] for c in kube.of('PATCH')] == ['/api/v1/namespaces/default/services/new/status']
    assert [(c[2]['reason']) for c in kube.of('POST')] == ['EnsuredLoadBalancer']
    assert 'server m-1 10.0.0.11:30002 track celtic_nodes/m-1' in ctl.haproxy.current()


def test_a_node_readiness_flip_is_a_runtime_command_not_a_reload(controller):
    ctl, kube = controller
    ctl.set_services(svc('web', [(80, 30001)]),
                     svc('loc', [(81, 30002)], externalTrafficPolicy='Local',
                         healthCheckNodePort=32000))
    ctl.reconcile()
    reloads, text = ctl.haproxy.reloads, ctl.haproxy.current()
    ctl.haproxy.commands.clear()
    ctl.nodes.items['/m-2'] = node('m-2', '10.0.0.12', ready='False')
    ctl.reconcile()
    assert ctl.haproxy.commands == ['set server celtic_nodes/m-2 state maint',
                                    'set server svc_default_loc_81/m-2 state maint']
    ctl.haproxy.commands.clear()
    ctl.nodes.items['/m-2'] = node('m-2', '10.0.0.12')
    ctl.reconcile()
    assert ctl.haproxy.commands == ['set server celtic_nodes/m-2 state ready',
                                    'set server svc_default_loc_81/m-2 state ready']
    assert (ctl.haproxy.reloads, ctl.haproxy.current()) == (reloads, text)


def test_a_service_not_yet_served_by_a_confirmed_reload_gets_no_status_nor_event(controller):
    ctl, kube = controller
    ctl.haproxy.starts = False
    ctl.set_services(svc('web', [(80, 30001)]))
    ctl.reconcile()
    assert kube.of('PATCH') == [] and kube.of('POST') == []
    ctl.haproxy.starts, ctl.haproxy.retry_at = True, 0
    ctl.reconcile()
    assert [c[2]['reason'] for c in kube.of('POST')] == ['EnsuredLoadBalancer']
    assert len(kube.of('PATCH')) == 1


def test_load_balancer_ip_is_honoured_only_for_the_proxy_address():
    ours = svc('ours', [(80, 30001)], loadBalancerIP='203.0.113.10')
    other = svc('other', [(81, 30002)], loadBalancerIP='198.51.100.7', age=1)
    frontends, refusals = lb.allocate([ours, other], [], ('203.0.113.10', '10.0.0.100'))
    assert list(frontends) == [80]
    assert [(r.key, r.reason) for r in refusals] == [('default/other',
                                                      'LoadBalancerIPUnavailable')]
    assert '198.51.100.7' in refusals[0].message and '203.0.113.10' in refusals[0].message


def test_the_source_ranges_annotation_applies_when_the_field_is_empty():
    noted = svc('n', [(80, 30001)])
    noted['metadata']['annotations'] = {lb.SOURCE_RANGES: '10.0.0.0/8, 192.0.2.1/32'}
    assert lb.allocate([noted], [])[0][80].source_ranges == ('10.0.0.0/8', '192.0.2.1/32')
    both = svc('b', [(80, 30001)], loadBalancerSourceRanges=['172.16.0.0/12'])
    both['metadata']['annotations'] = {lb.SOURCE_RANGES: '10.0.0.0/8'}
    assert lb.allocate([both], [])[0][80].source_ranges == ('172.16.0.0/12',)


def test_a_port_another_program_holds_is_refused_with_an_event():
    frontends, refusals = lb.allocate([svc('a', [(80, 30001), (81, 30002)])], [], busy={80})
    assert list(frontends) == [81]
    assert [(r.port, r.reason) for r in refusals] == [(80, 'PortInUse')]


def test_a_service_that_stops_being_a_load_balancer_loses_our_address(controller):
    ctl, kube = controller
    was = svc('was', [(80, 30001)], type='ClusterIP')
    was['status'] = {'loadBalancer': {'ingress': [{'ip': '203.0.113.10'}]}}
    other = svc('other', [(81, 30002)], type='ClusterIP')
    other['status'] = {'loadBalancer': {'ingress': [{'ip': '198.51.100.1'}]}}
    ctl.set_services(was, other)
    ctl.reconcile()
    assert [(c[1], c[2]) for c in kube.of('PATCH')] == [
        ('/api/v1/namespaces/default/services/was/status',
         {'status': {'loadBalancer': {'ingress': None}}})]


def test_a_rejected_service_gets_an_invalid_config_event_and_no_status(controller):
    ctl, kube = controller
    ctl.set_services(svc('POISON', [(80, 30001)]), svc('fine', [(81, 30002)]))
    ctl.reconcile()
    reasons = {(c[2]['involvedObject']['name'], c[2]['reason']) for c in kube.of('POST')}
    assert ('POISON', 'InvalidConfig') in reasons and ('fine', 'EnsuredLoadBalancer') in reasons
    assert [c[1].split('/')[-2] for c in kube.of('PATCH')] == ['fine']


def test_a_resolved_refusal_is_reported_again_if_it_comes_back(controller):
    ctl, kube = controller
    udp = svc('dns', [(53, 30053, 'UDP'), (54, 30054)])
    ctl.set_services(udp)
    ctl.reconcile()
    ctl.set_services(svc('dns', [(54, 30054)]))
    ctl.reconcile()
    ctl.set_services(udp)
    ctl.reconcile()
    assert [c[2]['reason'] for c in kube.of('POST')].count('UnsupportedProtocol') == 2


def test_only_the_leader_writes_status(controller):
    ctl, kube = controller
    ctl.leader.leading = False
    ctl.set_services(svc('web', [(80, 30001)]))
    ctl.reconcile()
    assert kube.of('PATCH') == [] and [c[2]['reason'] for c in kube.of('POST')] == [
        'EnsuredLoadBalancer']


class LeaseKube:
    """One Lease with resourceVersion checks, as the apiserver keeps it."""

    def __init__(self):
        self.lease, self.version = None, 0

    def request(self, method, path, body=None, ctype=None):
        if method == 'GET':
            if self.lease is None:
                raise lb.ApiError(404, 'not found')
            return json.loads(json.dumps(self.lease))
        if method == 'POST' and self.lease is not None:
            raise lb.ApiError(409, 'exists')
        if method == 'PUT' and body['metadata'].get('resourceVersion') != \
                self.lease['metadata']['resourceVersion']:
            raise lb.ApiError(409, 'conflict')
        self.version += 1
        self.lease = dict(body, metadata=dict(body['metadata'], resourceVersion=str(self.version)))
        return self.lease


def test_one_lease_holder_and_a_takeover_once_it_stops_renewing(monkeypatch):
    import threading
    kube, clock = LeaseKube(), [1000.0]
    monkeypatch.setattr(lb.time, 'monotonic', lambda: clock[0])
    cfg = {'node_name': 'p-0', 'lease_seconds': 15, 'lease_namespace': 'kube-system',
           'lease_name': 'celtic-lb'}
    one = lb.Leader(kube, cfg, threading.Event())
    two = lb.Leader(kube, dict(cfg, node_name='p-1'), threading.Event())
    one.attempt()
    two.attempt()
    assert (one.leading, two.leading) == (True, False)
    clock[0] += 5
    one.attempt()                       # renews: p-1 sees it change
    clock[0] += 10
    two.attempt()
    assert not two.leading
    clock[0] += 16                      # p-0 stopped renewing a whole duration ago
    two.attempt()
    assert two.leading and kube.lease['spec']['holderIdentity'] == 'p-1'
    assert kube.lease['spec']['leaseTransitions'] == 1
    one.attempt()
    assert not one.leading


def test_a_throttled_request_waits_as_told_and_is_retried(monkeypatch):
    import threading
    k = lb.Kube.__new__(lb.Kube)
    k.conn, k.lock = None, threading.Lock()
    answers = [lb.ApiError(429, 'slow down', 2.0), {'ok': True}]
    sleeps = []

    class Conn:
        def close(self):
            pass

    def send(conn, method, path, body, ctype):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer

        class Resp:
            will_close = False

            def read(self):
                return json.dumps(answer).encode()
        return Resp()
    monkeypatch.setattr(k, '_connect', lambda timeout: Conn(), raising=False)
    monkeypatch.setattr(k, '_send', send, raising=False)
    monkeypatch.setattr(lb.time, 'sleep', sleeps.append)
    assert k.request('GET', '/api/v1/services') == {'ok': True} and sleeps == [2.0]
    assert lb._retry_after('abc') == 1.0 and lb._retry_after('600') == 30.0


def test_renewed_certificate_files_are_used_by_the_next_connection(tmp_path, monkeypatch):
    files = [tmp_path / n for n in ('ca.crt', 'lb.crt', 'lb.key')]
    for f in files:
        f.write_text('x')
    loads = []

    def context(self):
        loads.append(1)
        self.stamp = self._stamp()
        return 'context %d' % len(loads)
    monkeypatch.setattr(lb.Kube, '_context', context)
    monkeypatch.setattr(lb.http.client.HTTPSConnection, 'connect', lambda self: None)
    kube = lb.Kube('https://192.0.2.1:6443', *[str(f) for f in files])
    with pytest.raises(AttributeError):          # no socket: connect() was stubbed
        kube._connect(1)
    assert kube.tls == 'context 1'
    os.utime(files[1], ns=(1, 1))
    with pytest.raises(AttributeError):
        kube._connect(1)
    assert kube.tls == 'context 2'


# ---- watching ------------------------------------------------------------------------

class ScriptedKube:
    def __init__(self, events):
        self.events = events

    def watch(self, path, version, timeout):
        yield from self.events


def test_watch_applies_events_and_remembers_the_resource_version():
    import threading
    web = svc('web', [(80, 30080)])
    moved = json.loads(json.dumps(web))
    moved['metadata']['resourceVersion'] = '7'
    gone = svc('gone', [(81, 30081)])
    watcher = lb.Watcher(ScriptedKube([
        {'type': 'ADDED', 'object': web}, {'type': 'MODIFIED', 'object': moved},
        {'type': 'ADDED', 'object': gone}, {'type': 'DELETED', 'object': gone},
        {'type': 'BOOKMARK', 'object': {'metadata': {'resourceVersion': '9'}}}]),
        'services', '/api/v1/services', threading.Event(), 600)
    assert watcher._watch('1', 10) == '9'
    assert list(watcher.items) == ['default/web']
    assert watcher.wake.is_set()


def test_an_expired_watch_raises_gone_for_a_new_list():
    import threading
    expired = {'type': 'ERROR', 'object': {'code': 410, 'message': 'too old'}}
    watcher = lb.Watcher(ScriptedKube([expired]), 'nodes', '/api/v1/nodes',
                         threading.Event(), 600)
    with pytest.raises(lb.ApiError) as err:
        watcher._watch('1', 10)
    assert err.value.status == 410


# ---- configuration -------------------------------------------------------------------

def test_configuration_comes_from_params_then_the_config_file_then_options(tmp_path):
    params = tmp_path / 'params.json'
    params.write_text(json.dumps({'api_vip': '10.0.0.10', 'api_port': 6443,
                                  'proxy_vip': '10.0.0.20', 'proxy_vip_fip': '203.0.113.20',
                                  'lb_reserved_ports': [22, 2224, 9]}))
    cfg = lb.load_config(lb.parse_args(['--params-file', str(params)]))
    assert cfg['api_url'] == 'https://10.0.0.10:6443'
    assert (cfg['bind_address'], cfg['ingress_address']) == ('10.0.0.20', '203.0.113.20')
    assert cfg['reserved_ports'] == [22, 2224, 9]
    assert cfg['reload_command'] == 'systemctl try-reload-or-restart haproxy'

    conf = tmp_path / 'lb.json'
    conf.write_text(json.dumps({'params_file': str(params), 'api_url': 'https://127.0.0.1:18443',
                                'reserved_ports': '18022, 18023'}))
    cfg = lb.load_config(lb.parse_args(['--config', str(conf), '--bind-address', '127.0.0.1']))
    assert cfg['api_url'] == 'https://127.0.0.1:18443' and cfg['bind_address'] == '127.0.0.1'
    assert cfg['reserved_ports'] == [18022, 18023]


def test_without_a_floating_ip_the_status_address_is_the_vip(tmp_path):
    params = tmp_path / 'params.json'
    params.write_text(json.dumps({'api_vip': '10.0.0.10', 'proxy_vip': '10.0.0.20',
                                  'proxy_vip_fip': ''}))
    cfg = lb.load_config(lb.parse_args(['--params-file', str(params)]))
    assert cfg['ingress_address'] == '10.0.0.20' and cfg['reserved_ports'] == [22, 2224]


def test_a_node_without_proxy_vip_fails_with_a_clear_message(tmp_path):
    params = tmp_path / 'params.json'
    params.write_text(json.dumps({'api_vip': '10.0.0.10', 'proxy_vip': None}))
    with pytest.raises(SystemExit) as err:
        lb.load_config(lb.parse_args(['--params-file', str(params)]))
    assert 'bind_address' in str(err.value) and 'proxy_vip' in str(err.value)
