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

"""Churn: create / resize / delete cycles of small clusters with random faults, and
what each delete leaves behind.

Prints one ``name: value`` line each:

  churn_seed                    the seed of the faults' randomness (CELTIC_BENCH_CHURN_SEED
                                replays a run)
  churn_cycles                  cycles run (create, resize when the create completed,
                                delete; goal >= 30)
  churn_faults_injected         cycles that got a fault
  churn_failed_operations       operations that ended FAILED (a fault's expected outcome)
  churn_stuck_operations        operations that did not end in time (goal 0)
  churn_lost_requests           requests magnum-api accepted that no conductor ever
                                acted on (a create whose cluster never appeared, a
                                resize or delete that never started): the conductor
                                was killed after taking the request and before it
                                recorded anything (the embedded back end's in-process
                                queue dies with it; oslo.messaging acknowledges a cast
                                before running it, so RabbitMQ would not deliver it
                                again either). Magnum's, not a driver's: no driver
                                code ran. A lost delete is sent again, as a user would
  churn_raw_status_reasons      status reasons with raw database or Python text (goal 0)
  orphans_after_churn           what deletes left: Heat stacks, cloud objects (servers,
                                ports, floating IPs, volumes, security groups, networks,
                                ... of the lab's stand-in cloud), Magnum certificate refs
                                (goal 0)
  churn_slowest_delete_seconds  the longest delete, request to record gone (repeats of a
                                DELETE_FAILED delete included)

Faults, one per cycle at most, drawn with the seed: a minion that fails its step, a
minion whose server goes to ERROR, a quota refusal at the third minion of a resize to 3,
magnum-conductor killed with SIGKILL (then started again) during the create (once Heat
has the cycle's stack), the resize or the delete. A kill lands wherever the other
cycles of the round are, too: a create may die inside Magnum's own certificate step,
before any driver runs (Magnum 23 stores the four certificates one by one and saves
their refs on the cluster only afterwards). The driver fails such a create after two
minutes and its delete removes the certificates nothing refers to (x509keypair, the
lab's store; README "After a crash"); every x509keypair row a round leaves counts.

Clusters: 1 master, 1 minion, no proxies, no storage, 1 s boots, through
real Keystone, Heat and Magnum (the embedded back end unless CELTIC_HARNESS_BACKEND
says otherwise). Cycles run ``PARALLEL`` at a time (5; 3 in the quick variant);
after each round every cluster of the round is gone and the leftovers are counted
against what existed before.

Full run: ``tox -e bench -- churn`` (30 cycles, about 12 minutes on 2 cores). Quick
(``--quick``, what .ci/run runs, about 2 minutes): 3 cycles in one round, the faults
drawn from a failing node, a quota refusal and none (a server in ERROR costs Heat's
five create retries, a conductor kill the API's restart).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import re
import sys
import threading
import time
import traceback

from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import controlplane

from tests.bench import quick

CYCLES = int(os.environ.get('CELTIC_BENCH_CHURN_CYCLES', '3' if quick() else '30'))
PARALLEL = int(os.environ.get('CELTIC_BENCH_CHURN_PARALLEL', '3' if quick() else '5'))
SEED = int(os.environ.get('CELTIC_BENCH_CHURN_SEED') or random.SystemRandom().randrange(
    1, 10 ** 6))
#: seconds an operation may take before it counts as stuck: above the driver's longest
#: designed wait (a create whose conductor died before its stack id was saved fails
#: after driver.SEND_GRACE, 300 s, at the next poll)
TIMEOUT = 420.0
FAULTS = ('none', 'node_fails', 'server_error', 'quota_at_third_minion',
          'conductor_killed_create', 'conductor_killed_resize', 'conductor_killed_delete')
QUICK_FAULTS = ('none', 'node_fails', 'quota_at_third_minion')
RAW = re.compile(r'sqlite3|pymysql|\[SQL:|Traceback|database is locked|object at 0x')
#: what ``_wait`` returns for an operation that did not end in time. Compared with
#: ``is``: magnumclient's Resource.__ne__ answers False against any non-Resource
#: (``not NotImplemented``), so ``cluster != 'stuck'`` was False and no resize ran
STUCK = object()


def _say(text: str) -> None:
    sys.stderr.write('[bench churn %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


class Churn:
    """The cycles and what they found."""

    def __init__(self, plane, seed: int):
        self.plane = plane
        self.random = random.Random(seed)
        self.rules: dict[str, dict] = {}
        self.rules_lock = threading.Lock()
        self.kill_lock = threading.Lock()
        self.figures = {'churn_cycles': 0, 'churn_faults_injected': 0,
                        'churn_failed_operations': 0, 'churn_stuck_operations': 0,
                        'churn_lost_requests': 0,
                        'churn_raw_status_reasons': 0, 'orphans_after_churn': 0,
                        'churn_slowest_delete_seconds': 0.0}
        self.figures_lock = threading.Lock()
        self.template = None

    # ---- the API, through a conductor that may be restarting -------------------------

    def _call(self, fn, *args, **kwargs):
        """magnum-api may be down for seconds while a killed conductor restarts (on
        the embedded back end they share a process): ask again, bounded."""
        deadline = time.monotonic() + 300
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                name = type(error).__name__
                if name in ('NotFound', 'HTTPNotFound', 'BadRequest', 'Conflict'):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _get(self, magnum, uuid):
        """The cluster, None once gone. Magnum's status job removes a deleted
        cluster's nodegroups before the cluster: a GET in between fails with 400
        (master_count: Invalid input), so that answer is asked again."""
        for _ in range(20):
            try:
                return self._call(magnum.clusters.get, uuid)
            except Exception as error:
                if type(error).__name__ in ('NotFound', 'HTTPNotFound'):
                    return None
                if type(error).__name__ != 'BadRequest':
                    raise
                time.sleep(0.5)
        return None

    def _wait(self, magnum, uuid, action: str, before=None):
        """The cluster once ``action`` ended (None once a delete removed it);
        STUCK when it did not end in time."""
        deadline = time.monotonic() + TIMEOUT
        seen_progress = appeared = False
        cluster = None
        while time.monotonic() < deadline:
            cluster = self._get(magnum, uuid)
            if cluster is None:
                if action == 'DELETE':
                    return None
                time.sleep(1)   # the API answers before the conductor writes the row
                continue
            appeared = True
            status = cluster.status
            if status.endswith('IN_PROGRESS'):
                seen_progress = True
            elif status.startswith(action) and (
                    action != 'UPDATE' or seen_progress or before is None
                    or clusterwatch.changed_since(before, cluster)):
                self._check_reason(cluster)
                return cluster
            time.sleep(1)
        # lost: nothing of it was ever recorded. A resize whose node_count Magnum
        # saved (it does before the driver's hook) was taken: it is stuck, not lost.
        # Not updated_at: other writers (Magnum's health poll) may save it meanwhile
        lost = ((action == 'CREATE' and not appeared)
                or (action == 'UPDATE' and not seen_progress and before is not None
                    and cluster is not None and cluster.status == before.status
                    and cluster.status_reason == before.status_reason
                    and cluster.node_count == before.node_count))
        with self.figures_lock:
            self.figures['churn_lost_requests' if lost else 'churn_stuck_operations'] += 1
        _say('%s: %s %s' % (uuid, action, 'request lost: no conductor ever acted on it'
                            if lost else 'did not end in %.0fs' % TIMEOUT))
        return STUCK

    def _check_reason(self, cluster) -> None:
        if cluster.status.endswith('FAILED'):
            with self.figures_lock:
                self.figures['churn_failed_operations'] += 1
            _say('%s %s: %s' % (cluster.name, cluster.status, cluster.status_reason))
        if RAW.search(cluster.status_reason or ''):
            with self.figures_lock:
                self.figures['churn_raw_status_reasons'] += 1

    # ---- faults -------------------------------------------------------------------------

    def _behave(self, name: str, rule: dict | None) -> None:
        with self.rules_lock:
            if rule is None:
                self.rules.pop(name, None)
            else:
                self.rules[name] = dict(rule, match=rule.get('match', name + '-*'))
            self.plane.cloud.set_behaviour(list(self.rules.values()))

    def _kill_conductor(self) -> None:
        with self.kill_lock:
            self.plane.kill(self.plane.conductor_name)
            time.sleep(1)
            for attempt in range(3):   # a loaded machine may start it slowly
                try:
                    self.plane.restart(self.plane.conductor_name, timeout=240)
                    return
                except Exception as error:
                    _say('restart %d of %s failed: %s' % (
                        attempt + 1, self.plane.conductor_name, error))
            raise RuntimeError('%s did not start again' % self.plane.conductor_name)

    def _until_stack(self, magnum, uuid) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cluster = self._get(magnum, uuid)
            if cluster is not None and (getattr(cluster, 'cluster_id', None)
                                        or getattr(cluster, 'stack_id', None)
                                        or not cluster.status.endswith('IN_PROGRESS')):
                return
            time.sleep(0.3)

    def _until_in_progress(self, magnum, uuid, status: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            cluster = self._get(magnum, uuid)
            if cluster is None and status != 'DELETE_IN_PROGRESS':
                time.sleep(0.3)   # the API answers before the conductor writes the row
                continue
            if cluster is None or cluster.status == status:
                return
            time.sleep(0.3)

    def _delete_started(self, magnum, uuid, before) -> bool:
        """The API answers before the conductor marks a delete: wait for the mark (a
        DELETE_FAILED seen before it is the earlier delete's). False when no
        conductor took the delete within 120 s (its request was lost)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = self._get(magnum, uuid)
            if (now is None or now.status == 'DELETE_IN_PROGRESS'
                    or now.updated_at != before.updated_at):
                return True
            time.sleep(0.3)
        return False

    # ---- one cycle ----------------------------------------------------------------------

    def cycle(self, index: int, fault: str) -> None:
        """One cycle; an error is reported (with where it happened) and counted as a
        stuck operation, and the cycle's cluster is still deleted."""
        try:
            self._cycle(index, fault)
        except Exception:
            _say('ch%02d (%s): %s' % (index, fault, traceback.format_exc()))
            with self.figures_lock:
                self.figures['churn_stuck_operations'] += 1

    def _cycle(self, index: int, fault: str) -> None:
        name = 'ch%02d' % index
        magnum = self.plane.magnum('demo')
        if fault == 'node_fails':
            self._behave(name, {'match': name + '-minion-0',
                                'fail': {'step': 'kubeadm-join',
                                         'message': 'injected by the churn benchmark'}})
        elif fault == 'server_error':
            self._behave(name, {'match': name + '-minion-0',
                                'error': 'No valid host was found (injected)'})
        elif fault == 'quota_at_third_minion':
            self._behave(name, {'match': name + '-minion-2',
                                'refuse': 'Quota exceeded for instances: Requested 1, '
                                          'but already used 2 of 2 instances'})
        created = self._call(
            magnum.clusters.create, name=name, cluster_template_id=self.template.uuid,
            master_count=1, node_count=1, keypair='lab',
            labels={'proxy_count': '0', 'storage_count': '0'}, merge_labels=True)
        uuid = created.uuid
        if fault == 'conductor_killed_create':
            # once Heat has the stack: the driver's part of the create (the other
            # creates of the round may be anywhere, Magnum's certificate step too)
            self._until_stack(magnum, uuid)
            self._kill_conductor()
        final = self._wait(magnum, uuid, 'CREATE')
        if final is not STUCK and final is not None and final.status == 'CREATE_COMPLETE':
            size = 3 if fault == 'quota_at_third_minion' else 2
            self._call(magnum.clusters.resize, uuid, node_count=size)
            if fault == 'conductor_killed_resize':
                self._until_in_progress(magnum, uuid, 'UPDATE_IN_PROGRESS')
                self._kill_conductor()
            self._wait(magnum, uuid, 'UPDATE', before=final)
        started = time.monotonic()
        for attempt in range(3):
            before = self._get(magnum, uuid)
            if before is None:
                break
            try:
                self._call(magnum.clusters.delete, uuid)
            except Exception as error:
                if type(error).__name__ not in ('NotFound', 'HTTPNotFound'):
                    raise
            if not self._delete_started(magnum, uuid, before):
                with self.figures_lock:
                    self.figures['churn_lost_requests'] += 1
                _say('%s: delete request lost (no conductor took it); sent again' % name)
                continue
            if fault == 'conductor_killed_delete' and attempt == 0:
                self._until_in_progress(magnum, uuid, 'DELETE_IN_PROGRESS')
                self._kill_conductor()
            gone = self._wait(magnum, uuid, 'DELETE')
            if gone is None or (gone is not STUCK and gone.status == 'DELETE_COMPLETE'):
                break
            if gone is STUCK:
                break
        seconds = time.monotonic() - started
        self._behave(name, None)
        with self.figures_lock:
            self.figures['churn_cycles'] += 1
            if fault != 'none':
                self.figures['churn_faults_injected'] += 1
            self.figures['churn_slowest_delete_seconds'] = max(
                self.figures['churn_slowest_delete_seconds'], seconds)
        _say('%s (%s): deleted in %.1fs' % (name, fault, seconds))

    # ---- what is left -------------------------------------------------------------------

    def leftovers(self) -> set[str]:
        found = set()
        for kind, names in self.plane.cloud.leftovers().items():
            found.update('%s %s' % (kind, n) for n in names)
        heat = self.plane.heat('demo', direct=True)
        for stack in heat.stacks.list():
            if stack.stack_status != 'DELETE_COMPLETE':
                found.add('stack %s (%s)' % (stack.stack_name, stack.stack_status))
        for row in range(self.plane.magnum_rows('x509keypair')):
            found.add('certificate ref %d' % row)
        return found

    def run(self, cycles: int, parallel: int) -> None:
        faults = QUICK_FAULTS if quick() else FAULTS
        plan = [self.random.choice(faults) for _ in range(cycles)]
        _say('seed %d: %s' % (SEED, ', '.join(plan)))
        magnum = self.plane.magnum('demo')
        self.template = clusterwatch.create_template(magnum, 'churn')
        before = self.leftovers()
        seen: set[str] = set()
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            for start in range(0, cycles, parallel):
                jobs = [pool.submit(self.cycle, i, plan[i])
                        for i in range(start, min(start + parallel, cycles))]
                for job in jobs:
                    job.result()
                left = self.leftovers() - before
                new = left - seen
                seen |= left
                if new:
                    _say('after cycles %d-%d: left %s' % (start, start + len(jobs) - 1,
                                                          sorted(new)))
                self.figures['orphans_after_churn'] += len(new)
            # inside the pool: a magnum the cycles restarted was started by one of its
            # threads and dies with it (PR_SET_PDEATHSIG, lab/process.py)
            try:
                self._call(magnum.cluster_templates.delete, self.template.uuid)
            except Exception as error:  # the figures are taken; the lab goes anyway
                _say('template delete: %s' % error)


ORDER = ('churn_seed', 'churn_cycles', 'churn_faults_injected', 'churn_failed_operations',
         'churn_stuck_operations', 'churn_lost_requests', 'churn_raw_status_reasons',
         'orphans_after_churn', 'churn_slowest_delete_seconds')


def main() -> int:
    backend = backend_mod.from_environment()
    plane = controlplane.ControlPlane(backend=backend, with_magnum=True, progress=_say)
    churn = Churn(plane, SEED)
    churn.figures['churn_seed'] = SEED
    try:
        plane.start()
        _say('control plane: %s' % plane.backend.describe())
        churn.run(CYCLES, PARALLEL)
    except Exception as error:  # a benchmark that cannot measure says why
        _say('failed: %s: %s' % (type(error).__name__, error))
        if not churn.figures['churn_cycles']:
            return 1
    finally:
        plane.stop()
    for name in ORDER:
        value = churn.figures[name]
        print('%s: %s' % (name, '%.1f' % value if isinstance(value, float) else value))
    sys.stdout.flush()
    figures = churn.figures
    return 1 if (figures['orphans_after_churn'] or figures['churn_stuck_operations']
                 or figures['churn_raw_status_reasons']) else 0


if __name__ == '__main__':
    sys.exit(main())
