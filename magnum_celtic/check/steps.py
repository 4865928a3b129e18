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

"""The steps of ``magnum-celtic check``, its options, and the run."""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
import uuid
from typing import Any, Callable

from magnum_celtic.check import report as report_mod
from magnum_celtic.check.report import Step
from magnum_celtic.check.report import StepFailed

#: the environment variable of --kube-api (test and diagnosis only)
KUBE_API_ENV = 'CELTIC_CHECK_KUBE_API'

STEP_NAMES = ('create', 'kubeconfig', 'nodes-ready', 'coredns', 'loadbalancer', 'ingress',
              'rwx-storage', 'api-failover', 'proxy-failover', 'resize', 'delete',
              'leftovers')
#: steps that a failed or skipped create makes meaningless, and --skip cannot remove
ALWAYS = ('create', 'delete', 'leftovers')

HELP = """\
Create a small celtic cluster through Magnum on your cloud and prove it, step by step:
create; kubeconfig (Magnum-signed, as `openstack coe cluster config`); nodes-ready;
coredns; loadbalancer (a Deployment behind a LoadBalancer Service answers on the proxy
VIP's floating IP); ingress (the same through the ingress controller); rwx-storage (a
ReadWriteMany claim on celtic-gluster written on one minion, read on another);
api-failover and proxy-failover (each master, then each proxy, is stopped through Nova
in turn while a client polls the VIP: the longest outage is measured, the server started
again, the cluster healthy again); resize (up by one minion, then down removing that
minion); delete; leftovers (no server, port, floating IP, volume, security group or stack
of the cluster is left).

One progress line per step, a summary table, a JSON report with --report; exit status 0
when every step passed or was skipped, 1 when one failed, 2 on bad options. On a failure
the cluster is deleted unless --keep is given; the report names the docs and node logs
to look at. No credential is printed or written.

Needs the check extra: pip install 'magnum-celtic[check]'.
"""

_NAME = re.compile(r'^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument('--os-cloud', default=os.environ.get('OS_CLOUD'),
                        help='the clouds.yaml entry to use (default: $OS_CLOUD); '
                             'clouds.yaml is found as the openstack CLI finds it '
                             '($OS_CLIENT_CONFIG_FILE, ./clouds.yaml, '
                             '~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)')
    parser.add_argument('--template', help='an existing celtic cluster template (name or '
                        'uuid); otherwise one is made from --image, --flavor and '
                        '--external-network and deleted at the end')
    parser.add_argument('--image', help='Glance image with os_distro and '
                        'magnum_driver=celtic (without --template)')
    parser.add_argument('--flavor', help='Nova flavor of every node (without --template)')
    parser.add_argument('--master-flavor', help='Nova flavor of the masters (default: '
                        '--flavor)')
    parser.add_argument('--external-network', help='the external network for the floating '
                        'IPs (without --template)')
    parser.add_argument('--keypair', help='Nova keypair for the nodes (needed to fetch node '
                        'logs after a failure)')
    parser.add_argument('--name', default=None, help='cluster name, a DNS label of at most '
                        '20 characters (default: celtic-check-<random>)')
    parser.add_argument('--masters', type=int, default=3, help='master count (default 3)')
    parser.add_argument('--proxies', type=int, default=2, help='proxy count (default 2; '
                        'the proxy-failover step needs 2, the loadbalancer and ingress '
                        'steps 1)')
    parser.add_argument('--minions', type=int, default=2, help='minion count (default 2; '
                        'rwx-storage needs 2)')
    parser.add_argument('--storage', type=int, default=3, help='storage node count '
                        '(default 3; 0 skips rwx-storage)')
    parser.add_argument('--labels', default='', help='extra cluster labels, k=v,...')
    parser.add_argument('--skip', default='', help='steps to leave out, comma separated '
                        '(create, delete and leftovers always run): ' +
                        ', '.join(n for n in STEP_NAMES if n not in ALWAYS))
    parser.add_argument('--keep', action='store_true', help='on a failure keep the cluster '
                        '(and the check\'s Kubernetes namespace) for inspection instead of '
                        'deleting it')
    parser.add_argument('--report', metavar='FILE', help='write the JSON report here')
    parser.add_argument('--timeout', type=float, default=3600, help='seconds for each '
                        'cluster operation (create, resize, delete; default 3600)')
    parser.add_argument('--answer-timeout', type=float, default=300, help='seconds to wait '
                        'for a LoadBalancer Service or the ingress to answer over HTTP '
                        '(default 300)')
    parser.add_argument('--failover-limit', type=float, default=30.0, help='the longest '
                        'acceptable API or LoadBalancer outage in seconds when a VIP '
                        'holder is stopped (default 30)')
    parser.add_argument('--failover-window', type=float, default=20.0, help='seconds to '
                        'keep polling after a server is SHUTOFF before starting it again '
                        '(default 20)')
    parser.add_argument('--kube-api', default=os.environ.get(KUBE_API_ENV),
                        help='TEST AND DIAGNOSIS ONLY (default: $%s): send every '
                             'Kubernetes request, and every request to a cluster address '
                             '(as <URL>/celtic-check/probe/<address>/<port>/<path>), to '
                             'this URL instead of the cluster; the functional test points '
                             'it at a stand-in Kubernetes API. Never needed on a real '
                             'cloud' % KUBE_API_ENV)


def _labels(text: str) -> dict[str, str]:
    result = {}
    for item in filter(None, (p.strip() for p in text.split(','))):
        if '=' not in item:
            raise ValueError('--labels must be key=value pairs separated by commas, '
                             'got "%s"' % item)
        key, value = item.split('=', 1)
        result[key.strip()] = value.strip()
    return result


def validate_args(args: argparse.Namespace) -> list[str]:
    """Problems with the options, each naming the option."""
    problems = []
    if not args.os_cloud:
        problems.append('--os-cloud is required (or set OS_CLOUD)')
    if not args.template:
        missing = [o for o, v in (('--image', args.image), ('--flavor', args.flavor),
                                  ('--external-network', args.external_network)) if not v]
        if missing:
            problems.append('without --template, %s %s needed' % (
                ', '.join(missing), 'is' if len(missing) == 1 else 'are'))
    elif args.image or args.flavor or args.external_network:
        problems.append('--template excludes --image, --flavor and --external-network')
    if args.masters < 1 or args.masters % 2 == 0:
        problems.append('--masters must be odd and at least 1, got %d' % args.masters)
    for option, value in (('--proxies', args.proxies), ('--storage', args.storage)):
        if value < 0:
            problems.append('%s must be 0 or more, got %d' % (option, value))
    if args.minions < 1:
        problems.append('--minions must be at least 1, got %d' % args.minions)
    if args.name is not None and not _NAME.match(args.name):
        problems.append('--name must be a DNS label of at most 20 characters (a-z, 0-9, '
                        '-), got "%s"' % args.name)
    unknown = [s for s in _skip(args) if s not in STEP_NAMES or s in ALWAYS]
    if unknown:
        problems.append('--skip: unknown or mandatory steps: %s' % ', '.join(unknown))
    try:
        _labels(args.labels)
    except ValueError as error:
        problems.append(str(error))
    for option in ('failover_limit', 'failover_window', 'timeout', 'answer_timeout'):
        if getattr(args, option) <= 0:
            problems.append('--%s must be positive' % option.replace('_', '-'))
    return problems


def _skip(args: argparse.Namespace) -> list[str]:
    return [s.strip() for s in (args.skip or '').split(',') if s.strip()]


# --------------------------------------------------------------------------- outages

class Outage:
    """Polls ``probe()`` every ``interval`` seconds in a thread; measures the longest
    run of failed polls (from the first failure to the next success)."""

    def __init__(self, probe: Callable[[], bool], interval: float = 0.2):
        self.probe = probe
        self.interval = interval
        self.samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name='celtic-check-poll')

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                ok = bool(self.probe())
            except Exception:
                ok = False
            self.samples.append((t, ok))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def __enter__(self) -> 'Outage':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def last_ok(self) -> bool:
        return bool(self.samples) and self.samples[-1][1]

    def in_outage(self) -> bool:
        return bool(self.samples) and not self.samples[-1][1]

    def longest(self, since: float = 0.0) -> float:
        worst, start = 0.0, None
        for t, ok in self.samples:
            if t < since:
                continue
            if not ok and start is None:
                start = t
            elif ok and start is not None:
                worst, start = max(worst, t - start), None
        if start is not None:
            worst = max(worst, time.monotonic() - start)
        return round(worst, 2)

    def failures(self, since: float = 0.0) -> int:
        return sum(1 for t, ok in self.samples if t >= since and not ok)


# --------------------------------------------------------------------------- the check

class Check:
    """The state the steps share: the cloud, the cluster, the Kubernetes client."""

    def __init__(self, args: argparse.Namespace, out=None):
        self.args = args
        self.runner = report_mod.Runner(out=out)
        self.name = args.name or 'celtic-check-%s' % uuid.uuid4().hex[:6]
        self.labels = dict(_labels(args.labels), proxy_count=str(args.proxies),
                           storage_count=str(args.storage))
        self.cloud = None
        self.kube = None
        self.kubeconfig: dict[str, Any] | None = None
        self.probe = None
        self.facts: dict[str, Any] = {}

    def say(self, message: str) -> None:
        self.runner.say('[check %s]   %s' % (time.strftime('%H:%M:%S'), message))

    # ------------------------------------------------------------------ steps

    def step_create(self):
        self.cloud.ensure_template(
            '%s-template' % self.name, self.args.template, self.args.image,
            self.args.flavor, self.args.master_flavor, self.args.external_network,
            self.args.keypair, {})
        cluster = self.cloud.create_cluster(self.name, self.args.masters, self.args.minions,
                                            self.args.keypair, self.labels)
        outputs = self.cloud.stack_outputs()
        self.facts.update(cluster=cluster.uuid, api_address=cluster.api_address,
                          proxy_address=outputs.get('proxy_vip_fip') or outputs.get(
                              'proxy_vip'))
        servers = {s.name: s.status for s in self.cloud.servers()}
        return ('%s %s, %d servers, API %s' % (cluster.name, cluster.status, len(servers),
                                               cluster.api_address),
                {'cluster': cluster.uuid, 'stack': self.cloud.stack_id(),
                 'status': cluster.status, 'api_address': cluster.api_address,
                 'proxy_address': self.facts['proxy_address'],
                 'coe_version': cluster.coe_version, 'servers': servers,
                 'master_addresses': cluster.master_addresses,
                 'node_addresses': cluster.node_addresses})

    def step_kubeconfig(self):
        from magnum_celtic.check import kube as kube_mod
        self.kubeconfig = self.cloud.kubeconfig(self.args.kube_api)
        self.kube = kube_mod.Kube(self.kubeconfig)
        version = self.kube.version()
        evidence = {k: self.kubeconfig[k] for k in ('server', 'api_address', 'subject',
                                                    'issuer', 'not_after')}
        evidence['server_version'] = version
        if self.args.kube_api:
            evidence['note'] = ('Kubernetes requests went to --kube-api, not to the '
                                'cluster\'s API address')
        self.kube.ensure_namespace()
        summary = 'Magnum-signed %s answered by %s' % (self.kubeconfig['subject'], version)
        return summary, evidence

    def _expected_nodes(self) -> int:
        return self.args.masters + self.args.minions + self.facts.get('extra_minions', 0)

    def step_nodes_ready(self):
        nodes = self.kube.nodes()
        expected = self._expected_nodes()
        ready = sorted(n for n, s in nodes.items() if s == 'Ready')
        evidence = {'nodes': nodes, 'expected': expected}
        if len(ready) != expected or len(nodes) != expected:
            raise StepFailed('%d of %d nodes Ready (%s)' % (
                len(ready), expected, ', '.join('%s %s' % (n, s) for n, s in
                                                sorted(nodes.items()) if s != 'Ready')
                or 'missing nodes'), **evidence)
        return 'all %d nodes Ready' % expected, evidence

    def step_coredns(self):
        pod, phase, log = self.kube.run_pod(
            'dns', 'nslookup kubernetes.default.svc.cluster.local')
        evidence = {'pod': pod, 'phase': phase, 'log': log.splitlines()[-6:]}
        if phase != 'Succeeded' or 'Address' not in log.split('kubernetes.default')[-1]:
            raise StepFailed('nslookup kubernetes.default from a pod: %s' % phase,
                             **evidence)
        return 'kubernetes.default resolves from a pod', evidence

    def step_loadbalancer(self):
        from magnum_celtic.check import kube as kube_mod
        self.kube.web_service('web', kube_mod.LB_PORT)
        ready = self.kube.wait_deployment('web')
        address = self.kube.wait_ingress_address('web')
        expected = self.facts.get('proxy_address')
        evidence = {'service': 'web', 'port': kube_mod.LB_PORT, 'ready_replicas': ready,
                    'status_address': address, 'proxy_vip_address': expected}
        if expected and address != expected:
            raise StepFailed('the Service\'s address %s is not the proxy VIP\'s %s'
                             % (address, expected), **evidence)
        code, body = self._answer(address, kube_mod.LB_PORT, '/hostname')
        evidence.update(http_status=code, body=body[:80], url=self.probe.url(
            address, kube_mod.LB_PORT, '/hostname'))
        if code != 200:
            raise StepFailed('http://%s:%d/ did not answer (%s: %s)' % (
                address, kube_mod.LB_PORT, code, body[:80]), **evidence)
        self.facts['lb'] = (address, kube_mod.LB_PORT)
        summary = 'http://%s:%d/ answers (pod %s)' % (
            address, kube_mod.LB_PORT, body.strip()[:40])
        return summary, evidence

    def _answer(self, address: str, port: int, path: str,
                host: str | None = None) -> tuple[int | None, str]:
        deadline = time.monotonic() + self.args.answer_timeout
        code, body = None, ''
        while time.monotonic() < deadline:
            code, body = self.probe.get(address, port, path, host)
            if code == 200:
                break
            time.sleep(2)
        return code, body

    def step_ingress(self):
        from magnum_celtic.check import kube as kube_mod
        host = 'check.celtic.invalid'
        cls = self.kube.ingress('web', 'web', kube_mod.LB_PORT, host)
        address = self.facts['proxy_address']
        code, body = self._answer(address, 80, '/hostname', host)
        evidence = {'ingress_class': cls, 'host': host, 'url': self.probe.url(
            address, 80, '/hostname'), 'http_status': code, 'body': body[:80]}
        if code != 200:
            raise StepFailed('http://%s/ with Host %s did not answer through the ingress '
                             'controller (%s: %s)' % (address, host, code, body[:80]),
                             **evidence)
        return 'Host %s answers on %s:80 via %s' % (host, address, cls), evidence

    def step_rwx(self):
        minions = [s.name for s in self.cloud.servers('minion')][:2]
        self.kube.rwx_claim('shared')
        token = uuid.uuid4().hex
        writer, w_phase, w_log = self.kube.run_pod(
            'rwx-write', 'echo "$TOKEN" > /data/check && cat /data/check', node=minions[0],
            claim='shared', env={'TOKEN': token})
        reader, r_phase, r_log = self.kube.run_pod(
            'rwx-read', 'cat /data/check', node=minions[1], claim='shared')
        evidence = {'claim': 'shared', 'storage_class': 'celtic-gluster',
                    'claim_phase': self.kube.claim_phase('shared'),
                    'writer': {'pod': writer, 'node': minions[0], 'phase': w_phase},
                    'reader': {'pod': reader, 'node': minions[1], 'phase': r_phase,
                               'log': r_log.strip()[-200:]}, 'token': token}
        if w_phase != 'Succeeded' or r_phase != 'Succeeded' or token not in r_log:
            raise StepFailed('what %s wrote was not read on %s (writer %s, reader %s)' % (
                minions[0], minions[1], w_phase, r_phase), **evidence)
        return 'written on %s, read on %s' % tuple(minions), evidence

    def _failover(self, role: str, poll: Callable[[], bool],
                  healthy: Callable[[], dict]) -> tuple[str, dict]:
        limit, window = self.args.failover_limit, self.args.failover_window
        runs = []
        servers = self.cloud.servers(role)
        with Outage(poll) as outage:
            deadline = time.monotonic() + 30
            while not outage.last_ok() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not outage.last_ok():
                raise StepFailed('not answering before any server was stopped',
                                 samples=len(outage.samples))
            for server in servers:
                self.say('stopping %s through Nova' % server.name)
                t0 = time.monotonic()
                stop_seconds = self.cloud.stop_server(server.id)
                # keep polling for the window; an outage still running then is given
                # up to the limit to end
                end = time.monotonic() + window
                while time.monotonic() < end or (outage.in_outage() and
                                                 outage.longest(t0) <= limit):
                    time.sleep(0.2)
                longest, failed = outage.longest(t0), outage.failures(t0)
                answering = outage.last_ok()
                self.say('%s: longest outage %.1fs, answering: %s; starting it' % (
                    server.name, longest, answering))
                start_seconds = self.cloud.start_server(server.id)
                health = healthy()
                runs.append({'server': server.name, 'stop_seconds': round(stop_seconds, 1),
                             'longest_outage_seconds': longest, 'failed_polls': failed,
                             'answering_while_stopped': answering,
                             'start_seconds': round(start_seconds, 1), 'healthy_after':
                             health})
                if not answering or longest > limit:
                    raise StepFailed('%s stopped: outage %.1fs (limit %.0fs), answering '
                                     'again: %s' % (server.name, longest, limit, answering),
                                     runs=runs, limit=limit)
        worst = max(r['longest_outage_seconds'] for r in runs)
        return ('each of %d %s stopped in turn; longest outage %.1fs (limit %.0fs)'
                % (len(runs), {'master': 'masters', 'proxy': 'proxies'}[role], worst,
                   limit),
                {'runs': runs, 'limit': limit, 'poll_interval': 0.2})

    def step_api_failover(self):
        from magnum_celtic.check import kube as kube_mod
        poller = kube_mod.Kube(self.kubeconfig)

        def healthy():
            return {'nodes_ready': len(self.kube.wait_ready(self._expected_nodes()))}
        return self._failover('master', lambda: bool(poller.version(timeout=1.0)), healthy)

    def step_proxy_failover(self):
        from magnum_celtic.check import kube as kube_mod
        address, port = self.facts['lb']
        fast = kube_mod.Probe(self.args.kube_api, timeout=1.0)

        def poll():
            return fast.get(address, port, '/hostname')[0] == 200

        def healthy():
            code, _ = self._answer(address, port, '/hostname')
            if code != 200:
                raise StepFailed('the Service does not answer after the proxy is back')
            return {'service_answers': True}
        return self._failover('proxy', poll, healthy)

    def step_resize(self):
        before = {s.id for s in self.cloud.servers('minion')}
        up = self.cloud.resize(self.args.minions + 1)
        added = [s for s in self.cloud.servers('minion') if s.id not in before]
        if len(added) != 1:
            raise StepFailed('resize up added %d minion servers, not 1' % len(added),
                             added=[s.name for s in added], status=up.status)
        new = added[0]
        self.facts['extra_minions'] = 1
        nodes_up = self.kube.wait_ready(self._expected_nodes())
        evidence = {'added': new.name, 'node_count_up': up.node_count,
                    'nodes_ready_up': len(nodes_up)}
        down = self.cloud.resize(self.args.minions, nodes_to_remove=[new.id])
        self.facts['extra_minions'] = 0
        after = {s.id: s.name for s in self.cloud.servers('minion')}
        evidence.update(node_count_down=down.node_count, minions_after=sorted(after.values()))
        if new.id in after or set(after) != before:
            raise StepFailed('resize down did not remove exactly %s' % new.name, **evidence)
        evidence['nodes_ready_down'] = len(self.kube.wait_ready(self._expected_nodes()))
        return 'added %s, then removed it' % new.name, evidence

    def step_delete(self):
        if self.kube is not None:
            self.kube.delete_namespace()
        retried = self.cloud.delete_cluster()
        self.cloud.delete_own_template()
        return ('cluster %s deleted%s' % (self.name, ' (after a retry)' if retried else ''),
                {'cluster': self.cloud.cluster_uuid, 'retried_after': retried})

    def step_leftovers(self):
        left = self.cloud.leftovers()
        if left:
            raise StepFailed('left behind: %s' % ', '.join(
                '%d %s' % (len(v), k) for k, v in sorted(left.items())), leftovers=left)
        return 'no server, port, floating IP, volume, security group or stack left', {
            'checked': ['servers', 'ports', 'floating_ips', 'volumes', 'security_groups',
                        'stacks']}

    # ------------------------------------------------------------------ the run

    def steps(self) -> list[Step]:
        a = self.args
        skip = set(_skip(a))
        k8s = ('create', 'kubeconfig')

        def reason(name, need_text=''):
            if name in skip:
                return 'left out by --skip'
            return need_text

        return [
            Step('create', 'create the cluster through Magnum', self.step_create),
            Step('kubeconfig', 'kubeconfig signed by Magnum; GET /version',
                 self.step_kubeconfig, ('create',), reason('kubeconfig')),
            Step('nodes-ready', 'every node Ready', self.step_nodes_ready, k8s,
                 reason('nodes-ready')),
            Step('coredns', 'CoreDNS answers a pod', self.step_coredns, k8s,
                 reason('coredns')),
            Step('loadbalancer', 'a LoadBalancer Service answers on the proxy VIP',
                 self.step_loadbalancer, k8s,
                 reason('loadbalancer', '' if a.proxies else 'no proxies (--proxies 0)')),
            Step('ingress', 'the same through the ingress controller', self.step_ingress,
                 k8s + ('loadbalancer',), reason('ingress')),
            Step('rwx-storage', 'a ReadWriteMany claim shared by two minions',
                 self.step_rwx, k8s, reason('rwx-storage', '' if a.storage and
                                            a.minions >= 2 else
                                            'needs storage nodes and 2 minions')),
            Step('api-failover', 'stop each master in turn; the API through its VIP',
                 self.step_api_failover, k8s, reason('api-failover', '' if a.masters >= 2
                                                     else 'a single master cannot fail '
                                                     'over')),
            Step('proxy-failover', 'stop each proxy in turn; the Service through its VIP',
                 self.step_proxy_failover, k8s + ('loadbalancer',),
                 reason('proxy-failover', '' if a.proxies >= 2 else
                        'needs 2 proxies')),
            Step('resize', 'resize up by one minion, then down removing it',
                 self.step_resize, k8s, reason('resize')),
        ]

    def run(self) -> int:
        from magnum_celtic.check import cloud as cloud_mod
        from magnum_celtic.check import kube as kube_mod
        self.probe = kube_mod.Probe(self.args.kube_api)
        self.say('cloud %s, cluster %s: %d masters, %d proxies, %d minions, %d storage'
                 % (self.args.os_cloud, self.name, self.args.masters, self.args.proxies,
                    self.args.minions, self.args.storage))
        if self.args.kube_api:
            self.say('--kube-api: Kubernetes and cluster-address requests go to %s, not '
                     'to the cluster (test and diagnosis only)' % self.args.kube_api)
        try:
            self.cloud = cloud_mod.Cloud(self.args.os_cloud, timeout=self.args.timeout)
        except Exception as error:
            self.runner.say('error: cannot use cloud %s: %s: %s' % (
                self.args.os_cloud, type(error).__name__, error))
            return 2
        kept = False
        try:
            for step in self.steps():
                self.runner.run(step)
                if step.name == 'create' and self.cloud.cluster_uuid is None:
                    break
            if self.cloud.cluster_uuid is not None:
                if self.runner.failed and self.args.keep:
                    kept = True
                    self.runner.results.append(report_mod.Result(
                        'delete', report_mod.SKIP, 0.0, 'kept by --keep after a failure: '
                        'openstack coe cluster delete %s' % self.cloud.cluster_uuid, {}))
                else:
                    self.runner.run(Step('delete', 'delete the cluster', self.step_delete))
                    self.runner.run(Step('leftovers', 'nothing of the cluster is left',
                                         self.step_leftovers, ('delete',)))
            elif self.cloud.own_template:
                self.cloud.delete_own_template()
        finally:
            self.cloud.close()
        self.runner.say('')
        self.runner.say(self.runner.table())
        failed = self.runner.failed
        context = {'cloud': self.args.os_cloud, 'cluster': {
            'name': self.name, 'uuid': self.cloud.cluster_uuid, 'kept': kept,
            'masters': self.args.masters, 'proxies': self.args.proxies,
            'minions': self.args.minions, 'storage': self.args.storage},
            'kube_api_override': bool(self.args.kube_api)}
        if self.args.report:
            self.runner.write_report(self.args.report, context)
            self.runner.say('report: %s' % self.args.report)
        if failed:
            self.runner.say('FAILED: %s' % ', '.join(
                r.name for r in self.runner.results if r.status == report_mod.FAIL))
            for r in self.runner.results:
                if r.where_to_look:
                    self.runner.say('  %s: see %s; node logs: %s' % (
                        r.name, r.where_to_look['docs'], r.where_to_look['node_logs']))
        return 1 if failed else 0


def run(args: argparse.Namespace, out=None) -> int:
    problems = validate_args(args)
    if problems:
        for problem in problems:
            print('error: %s' % problem, file=sys.stderr)
        return 2
    return Check(args, out=out).run()
