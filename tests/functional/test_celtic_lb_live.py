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

Ports (18000-18499): API 18443, frontends 18080-18089, reserved 18022, nodePorts 18301-18309.
"""
from __future__ import annotations

import http.client
import os
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
TIMEOUT = 10


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    lab = lb_lab.Lab(str(tmp_path_factory.mktemp('celtic-lb')), api_port=18443,
                     reserved=[18022], poison='poison')
    try:
        for name, address in list(NODES.items()) + [MASTER]:
            for port in NODE_PORTS:
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
    assert ingress(lab, 'web') == [
        {'ip': lab.ingress, 'ports': [{'port': 18080, 'protocol': 'TCP'}]}]
    wait_until(lambda: lab.kube.events_for('web', 'EnsuredLoadBalancer'), TIMEOUT, what='an Event')
    config = lab.config()
    assert 'listen svc_default_web_18080' in config and 'option redispatch' in config
    assert '127.0.0.5' not in config


def test_a_port_change_moves_the_frontend(lab):
    lab.kube.put_service('web', [(18081, 18302)])

    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'web on its new port')
    wait_until(lambda: refused(18080), TIMEOUT, what='the old port to close')
    wait_until(lambda: ingress(lab, 'web') == [
        {'ip': lab.ingress, 'ports': [{'port': 18081, 'protocol': 'TCP'}]}], TIMEOUT,
        what='the status to follow the port')


def test_a_not_ready_minion_leaves_the_backends_and_comes_back(lab):
    lab.kube.put_node('minion-b', NODES['minion-b'], ready=False)
    served_by(lab, 18081, {'minion-a:18302', 'minion-c:18302'}, 'minion-b to leave')
    assert 'minion-b' not in lab.config()

    lab.kube.put_node('minion-b', NODES['minion-b'], ready=True)
    served_by(lab, 18081, {'%s:18302' % n for n in NODES}, 'minion-b to come back')


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


def test_deleting_services_removes_their_frontends(lab):
    for name in ('web2', 'mixed', 'mine', 'foreign', 'good', 'extra', 'late'):
        lab.kube.delete('services', name, 'default')

    for port in (18081, 18082, 18085, 18087, 18088, 18089):
        wait_until(lambda: refused(port), TIMEOUT, what='port %d to close' % port)
    assert 'listen ' not in lab.config()
    assert lab.haproxy.alive() and lab.celtic_lb.alive()
    assert 'Traceback' not in lab.celtic_lb.output()
