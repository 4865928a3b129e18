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

"""``magnum-celtic check`` against the lab: every OpenStack-side step for real (Magnum
create, resize, delete; server stop and start through openstacksdk; the leftover audit
through openstacksdk and the real Heat), the Kubernetes side against a stand-in API the
test controls (kube_standin.py), once passing and once with injected failures.

The check runs as the installed console script with a real clouds.yaml
(``OS_CLIENT_CONFIG_FILE``): Keystone, Heat and Magnum come from the lab's catalog;
compute, network and block storage from check_openstack_api.py (the lab's Nova, Neutron
and Cinder have no REST API of their own), both reading the same fake cloud.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from magnum_celtic.check import steps as check_steps
from tests.functional.check_openstack_api import OpenStackAPI
from tests.functional.kube_standin import KubeStandIn

CLOUD = 'celtic-lab'
EVERY_STEP = list(check_steps.STEP_NAMES)


def _command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), 'magnum-celtic')
    return [script] if os.path.exists(script) else [sys.executable, '-m',
                                                    'magnum_celtic.cmd.main']


@pytest.fixture(scope='module')
def openstack_api(magnum_lab):
    with OpenStackAPI(magnum_lab) as api:
        yield api


@pytest.fixture(scope='module')
def clouds_yaml(magnum_lab, openstack_api, tmp_path_factory):
    demo = magnum_lab.users['demo']
    entry = {
        'auth': {'auth_url': magnum_lab.keystone_url, 'username': demo.username,
                 'password': demo.password, 'project_name': demo.project,
                 'user_domain_id': 'default', 'project_domain_id': 'default'},
        'region_name': 'RegionOne', 'interface': 'public', 'identity_api_version': 3,
        'compute_endpoint_override': openstack_api.url('compute'),
        'network_endpoint_override': openstack_api.url('network'),
        'block_storage_endpoint_override': openstack_api.url('block_storage'),
    }
    path = tmp_path_factory.mktemp('check') / 'clouds.yaml'
    path.write_text(yaml.safe_dump({'clouds': {CLOUD: entry}}))
    path.chmod(0o600)
    return str(path)


def _run(clouds_yaml: str, report: str, *argv: str, timeout: float = 900):
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds_yaml)
    env.pop('OS_CLOUD', None)
    env.pop('CELTIC_CHECK_KUBE_API', None)
    t0 = time.monotonic()
    done = subprocess.run(
        _command() + ['check', '--os-cloud', CLOUD, '--image', 'debian-12', '--flavor',
                      'm1.small', '--external-network', 'public', '--keypair', 'lab',
                      '--report', report] + list(argv),
        env=env, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(done.stdout[-6000:])
    with open(report) as f:
        return done, json.load(f), time.monotonic() - t0


def _steps(report: dict) -> dict[str, dict]:
    return {s['name']: s for s in report['steps']}


def _no_secret(magnum_lab, *texts: str) -> None:
    for user in magnum_lab.users.values():
        for text in texts:
            assert user.password not in text, 'a password of %s was printed' % user.username


# ---- options, without the lab --------------------------------------------------------

def test_check_help_documents_every_option():
    done = subprocess.run(_command() + ['check', '--help'], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import argparse
    parser = argparse.ArgumentParser()
    check_steps.add_arguments(parser)
    options = [o for a in parser._actions for o in a.option_strings if o.startswith('--')]
    assert len(options) > 15
    text = ' '.join(done.stdout.split())
    for option in options:
        assert option in text, option
    for name in EVERY_STEP:
        assert name in text, name
    assert 'TEST AND DIAGNOSIS ONLY' in text


@pytest.mark.parametrize('argv,message', [
    ([], '--os-cloud is required'),
    (['--os-cloud', 'x'], 'without --template, --image, --flavor, --external-network are'),
    (['--os-cloud', 'x', '--template', 't', '--masters', '2'], '--masters must be odd'),
    (['--os-cloud', 'x', '--template', 't', '--skip', 'delete'],
     '--skip: unknown or mandatory steps: delete'),
    (['--os-cloud', 'x', '--template', 't', '--name', 'Bad_Name'], '--name must be a DNS'),
])
def test_check_refuses_bad_options_naming_them(argv, message):
    env = dict(os.environ)
    env.pop('OS_CLOUD', None)
    done = subprocess.run(_command() + ['check'] + argv, capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr


# ---- against the lab ------------------------------------------------------------------

def test_check_passes_on_the_lab(magnum_lab, clouds_yaml, openstack_api, tmp_path):
    name = 'chk'
    with KubeStandIn(magnum_lab.cloud, lambda: name, failover_seconds=1.0) as kube:
        done, report, elapsed = _run(
            clouds_yaml, str(tmp_path / 'report.json'), '--name', name, '--masters', '3',
            '--proxies', '2', '--minions', '2', '--storage', '1', '--failover-window', '1.5',
            '--failover-limit', '10', '--answer-timeout', '20', '--timeout', '600',
            '--kube-api', kube.url)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = _steps(report)
    assert [s['name'] for s in report['steps']] == EVERY_STEP
    assert {n: s['status'] for n, s in steps.items()} == {n: 'pass' for n in EVERY_STEP}
    assert report['result'] == 'pass' and report['failed'] == 0
    assert report['cluster']['kept'] is False and report['kube_api_override'] is True
    # timings: the OpenStack operations really took time, the sum is the run's
    for op in ('create', 'resize', 'delete'):
        assert steps[op]['seconds'] >= 5, (op, steps[op]['seconds'])
    assert report['seconds'] <= elapsed
    # create: Magnum's view of the cluster, the servers through openstacksdk
    create = steps['create']['evidence']
    assert create['status'] == 'CREATE_COMPLETE'
    assert create['api_address'].startswith('https://172.24.4.')
    assert create['proxy_address'].startswith('172.24.4.')
    assert len(create['servers']) == 3 + 2 + 2 + 1
    # the kubeconfig was signed by Magnum for admin/system:masters
    kc = steps['kubeconfig']['evidence']
    assert 'CN=admin' in kc['subject'] and 'O=system:masters' in kc['subject']
    assert kc['server'] == kube.url and kc['api_address'] == create['api_address']
    # the LoadBalancer address is the proxy VIP's floating IP
    assert steps['loadbalancer']['evidence']['status_address'] == create['proxy_address']
    # failover: every master and proxy stopped and started through the Nova API; the
    # holder's stop made an outage of about the stand-in's failover time
    actions = [r.split()[0] for r in openstack_api.requests if r.startswith('os-')]
    assert actions.count('os-stop') == 5 and actions.count('os-start') == 5
    for step, count in (('api-failover', 3), ('proxy-failover', 2)):
        runs = steps[step]['evidence']['runs']
        assert len(runs) == count
        worst = max(r['longest_outage_seconds'] for r in runs)
        assert 0.6 <= worst <= 10, runs
    assert kube.api_vip.moves and kube.proxy_vip.moves
    # the shared claim: written on one minion, read on the other (pods placed by the
    # scheduler through a node selector)
    rwx = steps['rwx-storage']['evidence']
    assert rwx['writer']['node'] != rwx['reader']['node']
    assert rwx['token'] in rwx['reader']['log']
    # resize: one minion added, then that one removed
    resize = steps['resize']['evidence']
    assert resize['node_count_up'] == 3 and resize['node_count_down'] == 2
    assert resize['added'] not in resize['minions_after']
    # delete and the audit: nothing of the cluster left in the fake cloud either
    left = magnum_lab.cloud.leftovers()
    assert not any(name + '-' in n for names in left.values() for n in names), left
    # the output: a progress line per step, the summary table
    for step_name in EVERY_STEP:
        assert ('%s PASS' % step_name) in ' '.join(done.stdout.split())
    assert 'step' in done.stdout and 'result' in done.stdout
    _no_secret(magnum_lab, done.stdout, done.stderr, json.dumps(report))


def test_check_reports_injected_failures_with_evidence(magnum_lab, clouds_yaml, tmp_path):
    name = 'chkfail'
    with KubeStandIn(magnum_lab.cloud, lambda: name) as kube:
        kube.not_ready = {'%s-minion-0' % name}
        kube.lb_answers = False
        done, report, elapsed = _run(
            clouds_yaml, str(tmp_path / 'report.json'), '--name', name, '--masters', '1',
            '--proxies', '1', '--minions', '1', '--storage', '0', '--skip', 'resize',
            '--answer-timeout', '4', '--timeout', '600', '--kube-api', kube.url)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    steps = _steps(report)
    status = {n: s['status'] for n, s in steps.items()}
    assert status == {
        'create': 'pass', 'kubeconfig': 'pass', 'nodes-ready': 'fail', 'coredns': 'pass',
        'loadbalancer': 'fail', 'ingress': 'skip', 'rwx-storage': 'skip',
        'api-failover': 'skip', 'proxy-failover': 'skip', 'resize': 'skip',
        'delete': 'pass', 'leftovers': 'pass'}, status
    assert report['result'] == 'fail' and report['failed'] == 2
    nodes = steps['nodes-ready']
    assert nodes['evidence']['nodes']['%s-minion-0' % name] == 'NotReady'
    assert '1 of 2 nodes Ready' in nodes['summary']
    assert 'doc/nodes.md' in nodes['where_to_look']['docs']
    assert 'kubelet' in nodes['where_to_look']['node_logs']
    lb = steps['loadbalancer']
    assert lb['evidence']['http_status'] == 503
    assert lb['evidence']['status_address'] == steps['create']['evidence']['proxy_address']
    assert 'celtic-lb' in lb['where_to_look']['node_logs']
    assert 'left out by --skip' in steps['resize']['summary']
    assert 'single master' in steps['api-failover']['summary']
    # without --keep the failed cluster is deleted, and nothing of it is left
    assert report['cluster']['kept'] is False
    assert 'FAILED: nodes-ready, loadbalancer' in done.stdout
    assert 'doc/celtic-lb.md' in done.stdout
    left = magnum_lab.cloud.leftovers()
    assert not any(name + '-' in n for names in left.values() for n in names), left
    _no_secret(magnum_lab, done.stdout, done.stderr, json.dumps(report))


def test_check_keeps_a_failed_cluster_with_keep(magnum_lab, clouds_yaml, behaviour, tmp_path):
    """An OpenStack-side failure (a node that fails its join step, so Magnum reports
    CREATE_FAILED naming it): the create step fails with Magnum's reason, nothing that
    needs the cluster runs, and --keep leaves the cluster (and the template the check
    made for it) for the operator."""
    from magnum_celtic.lab import clusterwatch
    name = 'chkkeep'
    behaviour({'match': '%s-minion-0' % name,
               'fail': {'step': 'kubeadm-join', 'message': 'the API VIP did not answer'}})
    done, report, elapsed = _run(
        clouds_yaml, str(tmp_path / 'report.json'), '--name', name, '--masters', '1',
        '--proxies', '0', '--minions', '1', '--storage', '0', '--keep', '--timeout', '600')
    magnum = magnum_lab.magnum('demo')
    uuid = report['cluster']['uuid']
    try:
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
        steps = _steps(report)
        create = steps['create']
        assert create['status'] == 'fail'
        assert create['evidence']['status'] == 'CREATE_FAILED'
        assert ('%s-minion-0: step kubeadm-join failed: the API VIP did not answer' % name
                in create['summary']), create['summary']
        assert 'Troubleshooting a failed create' in create['where_to_look']['docs']
        assert all(steps[n]['status'] == 'skip' for n in EVERY_STEP[1:-2])
        assert steps['delete']['status'] == 'skip'
        assert 'kept by --keep' in steps['delete']['summary'] and uuid in steps[
            'delete']['summary']
        assert 'leftovers' not in steps
        assert report['cluster']['kept'] is True
        kept = magnum.clusters.get(uuid)
        assert kept.status == 'CREATE_FAILED'
        _no_secret(magnum_lab, done.stdout, done.stderr, json.dumps(report))
    finally:
        if uuid:
            magnum.clusters.delete(uuid)
            clusterwatch.wait(magnum, uuid, 'DELETE', timeout=600)
        for template in magnum.cluster_templates.list():
            if template.name == '%s-template' % name:
                magnum.cluster_templates.delete(template.uuid)
