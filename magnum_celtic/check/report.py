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

"""Steps, their results, the progress lines, the summary table and the JSON report."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from typing import Any, Callable, TextIO

PASS = 'pass'
FAIL = 'fail'
SKIP = 'skip'

#: where to look when a step fails: the doc sections, then the node logs worth fetching
#: (ssh with the cluster's keypair; the node library logs to /var/log/celtic.log and
#: journalctl -t celtic, README "Troubleshooting a failed create")
NODE_LOG = '/var/log/celtic.log, journalctl -t celtic, /var/log/cloud-init-output.log'
WHERE_TO_LOOK = {
    'create': ('README.md "Troubleshooting a failed create"; doc/nodes.md section 3',
               'openstack coe cluster show <cluster> -c status_reason names the node and '
               'step; on that node: ' + NODE_LOG),
    'kubeconfig': ('doc/vip-ha.md; README.md "Troubleshooting a failed create"',
                   'masters: ' + NODE_LOG + ', journalctl -u kubelet -u pacemaker '
                   '-u corosync, crm_mon -1'),
    'nodes-ready': ('doc/nodes.md section 3',
                    'the NotReady node: journalctl -u kubelet -u containerd, ' + NODE_LOG),
    'coredns': ('doc/nodes.md (the CNI and add-ons)',
                'kubectl -n kube-system logs -l k8s-app=kube-dns; the CNI pods\' logs'),
    'loadbalancer': ('doc/celtic-lb.md "Troubleshooting"',
                     'proxies: journalctl -u celtic-lb -u haproxy, crm_mon -1; '
                     'kubectl describe service (its Events)'),
    'ingress': ('doc/celtic-lb.md "Troubleshooting"; doc/storage.md section 8 "Ingress"',
                'the ingress controller\'s pod logs; proxies: journalctl -u celtic-lb'),
    'rwx-storage': ('doc/storage.md sections 4 and 5',
                    'storage nodes: journalctl -u glusterd, gluster volume status; '
                    'minions: the gluster mount unit\'s journal, ' + NODE_LOG),
    'api-failover': ('doc/vip-ha.md sections 2 and 4',
                     'masters: journalctl -u pacemaker -u corosync, crm_mon -1'),
    'proxy-failover': ('doc/vip-ha.md; doc/celtic-lb.md "Troubleshooting"',
                       'proxies: journalctl -u pacemaker -u corosync -u haproxy '
                       '-u celtic-lb, crm_mon -1'),
    'resize': ('README.md "Troubleshooting a failed create" (the same for UPDATE_FAILED)',
               'openstack coe cluster show -c status_reason; the new minion: ' + NODE_LOG),
    'delete': ('README.md "Troubleshooting a failed create" step 4 (Heat\'s view)',
               'openstack stack event list <stack> --nested-depth 4'),
    'leftovers': ('README.md "Verify celtic on your cloud"',
                  'the objects the evidence lists: delete them by hand'),
}


class StepFailed(Exception):
    """A step's check did not hold; the evidence says what was seen."""

    def __init__(self, message: str, **evidence: Any):
        super().__init__(message)
        self.evidence = evidence


@dataclasses.dataclass
class Result:
    name: str
    status: str
    seconds: float
    summary: str
    evidence: dict[str, Any]
    where_to_look: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Step:
    """A named check: ``run()`` returns (summary, evidence) or raises StepFailed.

    ``needs`` names the earlier steps that must have passed for this one to mean
    anything (otherwise it is skipped, saying which)."""

    name: str
    title: str
    run: Callable[[], tuple[str, dict[str, Any]]]
    needs: tuple[str, ...] = ()
    skip_reason: str = ''


class Runner:
    """Runs steps in order, prints a progress line for each and the summary table."""

    def __init__(self, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.out = out or sys.stdout
        self.clock = clock
        self.results: list[Result] = []
        self.started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())

    def _passed(self, name: str) -> bool:
        return any(r.name == name and r.status == PASS for r in self.results)

    def say(self, message: str) -> None:
        self.out.write(message + '\n')
        self.out.flush()

    def run(self, step: Step) -> Result:
        missing = [n for n in step.needs if not self._passed(n)]
        if step.skip_reason or missing:
            reason = step.skip_reason or 'needs %s, which did not pass' % ', '.join(missing)
            result = Result(step.name, SKIP, 0.0, reason, {})
        else:
            self.say('[check %s] %s ...' % (time.strftime('%H:%M:%S'), step.title))
            t0 = self.clock()
            try:
                summary, evidence = step.run()
                status = PASS
            except StepFailed as failure:
                summary, evidence, status = str(failure), failure.evidence, FAIL
            except Exception as error:   # an unexpected error is a failure with its cause
                text = str(error).strip()
                summary = '%s: %s' % (type(error).__name__, ' '.join(text.split())[:200])
                evidence = {'error': text.splitlines()[-6:],
                            'traceback': traceback.format_exc(limit=4).splitlines()[-6:]}
                status = FAIL
            result = Result(step.name, status, round(self.clock() - t0, 1), summary,
                            evidence)
            if status == FAIL and step.name in WHERE_TO_LOOK:
                doc, logs = WHERE_TO_LOOK[step.name]
                result.where_to_look = {'docs': doc, 'node_logs': logs}
        self.results.append(result)
        self.say('[check %s] %-15s %s %6.1fs  %s' % (
            time.strftime('%H:%M:%S'), result.name, result.status.upper(), result.seconds,
            result.summary))
        return result

    @property
    def failed(self) -> bool:
        return any(r.status == FAIL for r in self.results)

    def table(self) -> str:
        rows = [('step', 'result', 'seconds', 'summary')]
        rows += [(r.name, r.status.upper(), '%.1f' % r.seconds, r.summary)
                 for r in self.results]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ['%-*s  %-*s  %*s  %s' % (widths[0], a, widths[1], b, widths[2], c, d)
                 for a, b, c, d in rows]
        lines.insert(1, '-' * min(99, max(len(line) for line in lines)))
        return '\n'.join(lines)

    def report(self, context: dict[str, Any]) -> dict[str, Any]:
        return {'started': self.started,
                'finished': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                'result': FAIL if self.failed else PASS,
                'passed': sum(r.status == PASS for r in self.results),
                'failed': sum(r.status == FAIL for r in self.results),
                'skipped': sum(r.status == SKIP for r in self.results),
                'seconds': round(sum(r.seconds for r in self.results), 1),
                **context,
                'steps': [r.as_dict() for r in self.results]}

    def write_report(self, path: str, context: dict[str, Any]) -> None:
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.report(context), f, indent=2, sort_keys=False, default=str)
            f.write('\n')
