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

"""Live test of celtic-lb: real HAProxy on loopback, a fake Kubernetes API, HTTP minions.

The lab (lb_lab.py) serves Services and Nodes over HTTPS with client-certificate auth,
runs HAProxy in master-worker mode (reloaded with USR2, as systemd does on a node) and
celtic-lb against both. Minion "NodePorts" are HTTP servers on 127.0.0.2-.5 that answer
with their node name and port, so each response tells which backend served it.

Ports (18000-18499): API 18443, frontends 18080-18099, reserved 18022, nodePorts 18301-18309,
kube-proxy health 18256.
"""
from __future__ import annotations

import http.client
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lb_lab  # noqa: E402
from lb_lab import refused, wait_until  # noqa: E402

pytestmark = pytest.mark.skipif(bool(lb_lab.missing_requirements()),
                                reason='needs ' + ', '.join(lb_lab.missing_requirements()))

NODES = {'minion-a': '127.0.0.2', 'minion-b': '127.0.0.3', 'minion-c': '127.0.0.4'}
MASTER = ('master-0', '127.0.0.5')
NODE_PORTS = range(18301, 18310)
HEALTH_PORT = 18256                     # kube-proxy's :10256 on the lab's nodes
TIMEOUT = 10
HARD_STOP = 3                           # seconds an old HAProxy worker may live
ROUND = 0.4                             # seconds per reload in the 50-reload test


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    lab = lb_lab.Lab(str(tmp_path_factory.mktemp('celtic-lb')), api_port=18443,
                     reserved=[18022], poison='poison',
                     hard_stop_after='%ds' % HARD_STOP)
    try:
        for name, address in list(NODES.items()) + [MASTER]:
            for port in list(NODE_PORTS) + [HEALTH_PORT]:
                lab.minions.serve(name, address, port)
            lab.kube.put_node(name, address, control_plane=name == MASTER[0])
        lab.start()
        yield lab
    finally:
        lab.stop()
        for name in ('celtic-lb.log', 'haproxy.log'):
            path = os.path.join(lab.dir, name)
            if os.path.exists(path):
                with open(path, errors='replace') as f:
                    sys.stderr.write('---- %s (tail)\n%s\n' % (name, f.read()[-4000:]))


def served_by(lab, port, expect, what):
    """Wait until the frontend `port` answers from exactly the set `expect` of backends."""
    def check():
        seen = {b for b in lab.bodies(port, 12)}
        return seen == set(expect)
    wait_until(check, TIMEOUT, 0.05, what)


def ingress(lab, name, namespace='default'):
    status = lab.kube.get('services', name, namespace).get('status') or {}
    return (status.get('loadBalancer') or {}).get('ingress')


def test_celtic_lb_authenticates_with_its_own_certificate(lab):
    wait_until(lambda: lab.kube.count('GET', '/api/v1/nodes'), TIMEOUT, what='a node list')
    assert {cn for _, _, cn in lab.kube.requests} == {'celtic-lb'}


def test_a_new_service_is_served_by_every_ready_minion_and_gets_its_status(lab):
    lab.kube.put_service('web', [(18080, 18301)])

    served_by(lab, 18080, {'%s:18301' % n for n in NODES}, 'web on every minion')
    assert '%s:18301' % MASTER[0] not in lab.bodies(18080, 20)
    wait_until(lambda: ingress(lab, 'web'), TIMEOUT, what='the status of web')
    assert ingress(lab, 'web') == [{'ip': lab.ingress, 'ipMode': 'Proxy',
                                    'ports': [{'port': 18080, 'protocol': 'TCP'}]}]
    wait_until(lambda: lab.kube.events_for('web', 'EnsuredLoadBalancer'), TIMEOUT, what='an Event')
    config = lab.config()
    assert 'listen svc_default_web_18080' in config and 'option redispatch' in config
    assert '127.0.0.5' not in config


def test_a_port_change_moves_the_frontend(lab):
    lab.kube.put_service('web', [(18081, 18302)])

    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'web on its new port')
    wait_until(lambda: refused(18080), TIMEOUT, what='the old port to close')
    wait_until(lambda: ingress(lab, 'web') == [
        {'ip': lab.ingress, 'ipMode': 'Proxy', 'ports': [{'port': 18081, 'protocol': 'TCP'}]}],
        TIMEOUT,
        what='the status to follow the port')


def test_a_not_ready_minion_leaves_the_backends_and_comes_back_without_a_reload(lab):
    reloads = lab.reloads()
    lab.kube.put_node('minion-b', NODES['minion-b'], ready=False)
    served_by(lab, 18081, {'minion-a:18302', 'minion-c:18302'}, 'minion-b to leave')

    lab.kube.put_node('minion-b', NODES['minion-b'], ready=True)
    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'minion-b to come back')
    assert lab.reloads() == reloads         # the runtime API, not a reload
    assert 'track celtic_nodes/minion-b' in lab.config()


def test_one_health_check_per_node_on_kube_proxy_shared_by_all_services(lab):
    # run alone (-k), the module's lab has no Service yet: give it the one the tests
    # before leave (idempotent), so the check lines are there to count
    lab.kube.put_service('web', [(18081, 18302)])
    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'web')
    config = lab.config()
    checks = [ln.split()[1] for ln in config.splitlines()
              if ln.strip().startswith('server ') and ' check' in ln]
    assert sorted(checks) == sorted(NODES)          # only the celtic_nodes backend checks
    assert 'server minion-a 127.0.0.2:%d check' % HEALTH_PORT in config


def test_the_older_service_keeps_a_contested_port(lab):
    lab.kube.put_service('web2', [(18081, 18303)])

    events = wait_until(lambda: lab.kube.events_for('web2', 'PortConflict'), TIMEOUT,
                        what='a PortConflict Event on web2')
    assert events[0]['type'] == 'Warning'
    assert 'older Service default/web' in events[0]['message']
    assert events[0]['involvedObject']['kind'] == 'Service'
    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'web to keep 18081')
    assert not ingress(lab, 'web2')

    lab.kube.delete('services', 'web', 'default')
    served_by(lab, 18081, {'%s:18303' % n for n in NODES}, 'web2 to take 18081 over')
    wait_until(lambda: ingress(lab, 'web2'), TIMEOUT, what='the status of web2')


def test_udp_and_reserved_ports_are_refused_with_events(lab):
    lab.kube.put_service('mixed', [(18082, 18304), (18083, 18305, 'UDP'), (18022, 18306)])

    served_by(lab, 18082, {'%s:18304' % n for n in NODES}, 'the TCP port of mixed')
    wait_until(lambda: lab.kube.events_for('mixed', 'UnsupportedProtocol'), TIMEOUT,
               what='an UnsupportedProtocol Event')
    reserved = wait_until(lambda: lab.kube.events_for('mixed', 'ReservedPort'), TIMEOUT,
                          what='a ReservedPort Event')
    assert '18022/TCP is reserved' in reserved[0]['message']
    assert refused(18022)
    wait_until(lambda: ingress(lab, 'mixed'), TIMEOUT, what='the status of mixed')
    ports = {(p['port'], p['protocol']): p.get('error') for p in ingress(lab, 'mixed')[0]['ports']}
    assert ports == {(18082, 'TCP'): None, (18083, 'UDP'): 'celtic.io/UnsupportedProtocol',
                     (18022, 'TCP'): 'celtic.io/ReservedPort'}


def test_services_of_another_load_balancer_class_are_ignored(lab):
    lab.kube.put_service('foreign', [(18084, 18307)], loadBalancerClass='example.com/other')
    lab.kube.put_service('mine', [(18085, 18307)], loadBalancerClass='celtic.io/haproxy')

    served_by(lab, 18085, {'%s:18307' % n for n in NODES}, 'the celtic-class Service')
    assert refused(18084)
    assert not ingress(lab, 'foreign')
    assert not lab.kube.events_for('foreign')


def test_a_config_that_haproxy_refuses_is_never_installed(lab):
    # the lab's haproxy -c refuses any config serving namespace "poison" (fault injection)
    lab.kube.put_service('bad', [(18086, 18308)], namespace='poison')
    lab.kube.put_service('good', [(18087, 18308)])

    events = wait_until(lambda: lab.kube.events_for('bad', 'InvalidConfig', 'poison'), TIMEOUT,
                        what='an InvalidConfig Event')
    assert 'injected failure' in events[0]['message']
    served_by(lab, 18087, {'%s:18308' % n for n in NODES}, 'the good Service despite the bad one')
    assert refused(18086)
    assert 'poison' not in lab.config()
    assert not ingress(lab, 'bad', 'poison')
    lab.kube.delete('services', 'bad', 'poison')


def test_a_reload_keeps_established_connections(lab):
    conn = http.client.HTTPConnection('127.0.0.1', 18085, timeout=5)
    try:
        conn.request('GET', '/')
        first = conn.getresponse().read().decode()
        conn.request('GET', '/?sleep=1')       # in flight while HAProxy reloads
        time.sleep(0.1)
        reloads = lab.haproxy.output().count('Reloading HAProxy')
        lab.kube.put_service('extra', [(18088, 18309)])
        served_by(lab, 18088, {'%s:18309' % n for n in NODES}, 'the extra Service')
        assert lab.haproxy.output().count('Reloading HAProxy') > reloads
        second = conn.getresponse().read().decode()
        conn.request('GET', '/')
        third = conn.getresponse().read().decode()
    finally:
        conn.close()
    assert first == second == third and first.endswith(':18307')


def test_watches_recover_from_expiry_and_dropped_connections(lab):
    lists = lab.kube.count('GET', '/api/v1/services')
    lab.kube.compact()
    lab.kube.drop_watches()
    lab.kube.put_service('late', [(18089, 18309)])

    served_by(lab, 18089, {'%s:18309' % n for n in NODES}, 'a Service created after the expiry')
    assert lab.kube.count('GET', '/api/v1/services') > lists


def test_a_port_another_program_holds_is_refused_and_does_not_block_the_others(lab):
    squatter = socket.socket()
    squatter.bind(('127.0.0.1', 18090))
    squatter.listen()
    try:
        lab.kube.put_service('squatted', [(18090, 18304)])
        lab.kube.put_service('after', [(18091, 18305)])
        events = wait_until(lambda: lab.kube.events_for('squatted', 'PortInUse'), TIMEOUT,
                            what='a PortInUse Event on the squatted Service')
        assert events[0]['type'] == 'Warning' and '18090/TCP' in events[0]['message']
        served_by(lab, 18091, {'%s:18305' % n for n in NODES}, 'the Service created after it')
        wait_until(lambda: ingress(lab, 'after'), TIMEOUT, what='the status of the later one')
        assert not ingress(lab, 'squatted')
        assert not lab.kube.events_for('squatted', 'EnsuredLoadBalancer')
        assert 'svc_default_squatted_' not in lab.config()
    finally:
        squatter.close()
    # once the port is free, the next pass (any change, or the 30 s one) serves it
    lab.kube.put_node('minion-a', NODES['minion-a'])
    served_by(lab, 18090, {'%s:18304' % n for n in NODES}, 'the freed port')
    wait_until(lambda: ingress(lab, 'squatted'), TIMEOUT, what='the status once served')


def test_status_waits_for_a_confirmed_reload_and_a_restart_does_not_lose_it(lab):
    # a reload that exits 0 but changes nothing, as one whose new worker fails to start
    noop = os.path.join(lab.dir, 'reload-noop')
    open(noop, 'w').close()
    try:
        lab.kube.put_service('unsure', [(18092, 18306)])
        wait_until(lambda: 'svc_default_unsure_18092' in lab.config(), TIMEOUT,
                   what='the configuration file to serve it')
        time.sleep(1)                    # a status would be written by now
        assert refused(18092)
        assert not ingress(lab, 'unsure')
        assert not lab.kube.events_for('unsure', 'EnsuredLoadBalancer')
        wait_until(lambda: 'did not take the new configuration' in lab.celtic_lb.output(),
                   TIMEOUT, what='celtic-lb to notice the reload did nothing')
        # celtic-lb stops between writing the file and a reload that works
        lab.celtic_lb.stop()
    finally:
        os.unlink(noop)
    lab.start_celtic_lb()
    served_by(lab, 18092, {'%s:18306' % n for n in NODES}, 'the file written before the restart')
    wait_until(lambda: ingress(lab, 'unsure'), TIMEOUT, what='the status after the restart')
    wait_until(lambda: lab.kube.events_for('unsure', 'EnsuredLoadBalancer'), TIMEOUT,
               what='an EnsuredLoadBalancer Event after the restart')


def test_hard_stop_after_bounds_old_workers_across_50_reloads(lab):
    lab.kube.put_service('churn', [(18093, 18307)])
    served_by(lab, 18093, {'%s:18307' % n for n in NODES}, 'the churning Service')
    held, most, reloads = [], 0, lab.reloads()
    try:
        for i in range(50):
            # a long-lived (keep-alive, idle) connection on the current worker ...
            conn = http.client.HTTPConnection('127.0.0.1', 18093, timeout=5)
            conn.request('GET', '/')
            assert conn.getresponse().read()
            held.append(conn)
            # ... then a change: one reload, the worker holding it becomes an old one
            lab.kube.put_service('churn', [(18093, 18308 - i % 2)])
            started = time.monotonic()
            served_by(lab, 18093, {'%s:%d' % (n, 18308 - i % 2) for n in NODES},
                      'reload %d' % (i + 1))
            time.sleep(max(0.0, ROUND - (time.monotonic() - started)))
            most = max(most, len(lab.workers()))
        assert lab.reloads() - reloads >= 50
        # without hard-stop-after all 50 old workers would hold their connection for 1 h;
        # with it at most the ones of the last HARD_STOP seconds (one reload per ROUND)
        assert most <= 2 + HARD_STOP / ROUND, most
        wait_until(lambda: len(lab.workers()) == 1, HARD_STOP + TIMEOUT, 0.2,
                   'the old workers to be stopped')
        held[0].sock.settimeout(1)
        assert held[0].sock.recv(1) == b''       # cut by hard-stop-after, not kept
        assert lb_lab.get(18093) == 'minion-a:18307' or lb_lab.get(18093)
    finally:
        for conn in held:
            conn.close()


def test_throttling_and_a_lagging_apiserver_are_waited_out(lab):
    lab.kube.fail('GET', '/api/v1/services', 429, times=2)
    lab.kube.fail('GET', '/api/v1/nodes', 504)
    lab.kube.drop_watches()
    lab.kube.put_service('patient', [(18094, 18309)])
    served_by(lab, 18094, {'%s:18309' % n for n in NODES}, 'a Service after 429s and a 504')
    wait_until(lambda: ingress(lab, 'patient'), TIMEOUT, what='its status')
    output = lab.celtic_lb.output()
    assert 'throttled' in output and 'behind our version' in output


def test_a_quiet_watch_resumes_from_its_last_bookmark(lab):
    last_service = max(int(s['metadata']['resourceVersion'])
                       for s in lab.kube.list_body('services')['items'])
    wait_until(lambda: lab.kube.version > last_service, TIMEOUT,
               what='the version to move on (Lease renewals)')
    time.sleep(2 * lab.kube.bookmark_seconds + 0.5)
    watches = len(lab.kube.watches)
    lab.kube.drop_watches()
    wait_until(lambda: any(k == 'services' for k, _ in lab.kube.watches[watches:]), TIMEOUT,
               what='the services watch to resume')
    since = next(v for k, v in lab.kube.watches[watches:] if k == 'services')
    assert since > last_service           # from a bookmark, not from its last event


def test_a_service_that_stops_being_a_load_balancer_is_cleared_without_a_rejection(lab):
    lab.kube.put_service('patient', [(18094, 18309)], type='NodePort')
    wait_until(lambda: refused(18094), TIMEOUT, what='its frontend to go')
    wait_until(lambda: not ingress(lab, 'patient'), TIMEOUT, what='its status to be cleared')
    assert 'status update failed' not in lab.celtic_lb.output()


def test_two_instances_one_status_writer_and_a_takeover(lab, tmp_path):
    wait_until(lambda: lab.kube.leases.get('kube-system/celtic-lb'), TIMEOUT, what='a Lease')
    assert lab.kube.leases['kube-system/celtic-lb']['spec']['holderIdentity'] == 'lab-proxy-0'
    second = lb_lab.Lab(str(tmp_path), api_port=18443, kube=lab.kube, bind='127.0.0.9',
                        node_name='lab-proxy-1', hard_stop_after='%ds' % HARD_STOP)
    second.settings['stats_socket'] = str(tmp_path / 'haproxy.sock')
    try:
        second.start()
        patches = len(lab.kube.patches)
        lab.kube.put_service('both', [(18095, 18301)])
        for bind in ('127.0.0.1', '127.0.0.9'):       # each proxy serves it
            wait_until(lambda: lb_lab.get(18095, host=bind), TIMEOUT, what='both on ' + bind)
        wait_until(lambda: ingress(lab, 'both'), TIMEOUT, what='its status')
        wait_until(lambda: 'generation' in second.celtic_lb.output(), TIMEOUT, what='proxy 1')
        time.sleep(1)
        writes = [k for k, _ in lab.kube.patches[patches:] if k == 'default/both']
        assert len(writes) == 1                       # the leader's, not one per proxy
        assert 'became the status writer' not in second.celtic_lb.output()

        lab.celtic_lb.stop()                          # the leader's proxy goes away
        wait_until(lambda: 'became the status writer' in second.celtic_lb.output(),
                   3 * 3 + TIMEOUT, 0.2, 'proxy 1 to take the Lease over')
        assert lab.kube.leases['kube-system/celtic-lb']['spec']['holderIdentity'] == \
            'lab-proxy-1'
        lab.kube.put_service('both', [(18095, 18301), (18096, 18302)])
        wait_until(lambda: len(ingress(lab, 'both')[0]['ports']) == 2, TIMEOUT,
                   what='the new leader to write the status')
    finally:
        second.stop()
        for name in ('celtic-lb.log', 'haproxy.log'):
            if os.path.exists(os.path.join(second.dir, name)):
                with open(os.path.join(second.dir, name), errors='replace') as f:
                    sys.stderr.write('---- proxy 1 %s (tail)\n%s\n' % (name, f.read()[-3000:]))
        lab.start_celtic_lb()
    wait_until(lambda: 'listed' in lab.celtic_lb.output(), TIMEOUT, what='celtic-lb back')


def test_source_ranges_are_enforced_by_haproxy_and_a_foreign_load_balancer_ip_refused(lab):
    lab.kube.put_service('closed', [(18097, 18303)], loadBalancerSourceRanges=['10.0.0.0/8'])
    lab.kube.put_service('open', [(18098, 18303)], loadBalancerSourceRanges=['127.0.0.0/8'])
    lab.kube.put_service('elsewhere', [(18099, 18303)], loadBalancerIP='198.51.100.7')
    served_by(lab, 18098, {'%s:18303' % n for n in NODES}, 'the Service open to 127/8')
    wait_until(lambda: 'svc_default_closed_18097' in lab.config(), TIMEOUT, what='closed')
    assert not refused(18097)                     # HAProxy listens ...
    assert lb_lab.get(18097) is None              # ... and turns this client away
    events = wait_until(lambda: lab.kube.events_for('elsewhere', 'LoadBalancerIPUnavailable'),
                        TIMEOUT, what='a LoadBalancerIPUnavailable Event')
    assert '198.51.100.7' in events[0]['message']
    assert refused(18099) and not ingress(lab, 'elsewhere')


def test_deleting_services_removes_their_frontends(lab):
    for name in ('web2', 'mixed', 'mine', 'foreign', 'good', 'extra', 'late', 'squatted',
                 'after', 'unsure', 'churn', 'patient', 'both', 'closed', 'open',
                 'elsewhere'):
        lab.kube.delete('services', name, 'default')

    for port in (18081, 18082, 18085, 18087, 18088, 18089, 18090, 18091, 18092, 18093,
                 18094, 18095, 18096, 18097, 18098):
        wait_until(lambda: refused(port), TIMEOUT, what='port %d to close' % port)
    assert 'listen ' not in lab.config()
    assert lab.haproxy.alive() and lab.celtic_lb.alive()
    assert 'Traceback' not in lab.celtic_lb.output()
