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

"""Faults: services killed mid-operation, two conductors, concurrent requests.

The real magnum-conductor, heat-engine and Keystone processes of the lab are killed
with SIGKILL by PID and started again (``ControlPlane.kill`` / ``restart``; on the
embedded back end magnum-conductor shares its process with magnum-api, heat-engine
with heat-api, so the API goes down with it). Every case ends in a state a user can
act on, and a delete afterwards leaves nothing: no stack, no cloud object, no
certificate ref. Small clusters (1 master, 1 minion, no proxies, no storage), 1 s
boots, bounded waits.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
import time

import pytest

from magnumclient import exceptions as magnum_exc

from magnum_celtic.lab import clusterwatch

TIMEOUT = 300
#: statuses in the order one cluster's life goes through them (never backwards)
ORDER = ('CREATE_IN_PROGRESS', 'CREATE_COMPLETE', 'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE',
         'DELETE_IN_PROGRESS', 'DELETE_COMPLETE', 'GONE')
#: text that must never reach a user (raw database or Python error text)
RAW = re.compile(r'sqlite3|pymysql|\[SQL:|Traceback|database is locked|object at 0x')


@pytest.fixture(scope='module')
def magnum(magnum_lab):
    return magnum_lab.magnum('demo')


@pytest.fixture(scope='module')
def template(magnum):
    ct = clusterwatch.create_template(magnum, 'faults')
    yield ct
    try:
        magnum.cluster_templates.delete(ct.uuid)
    except Exception:
        pass


@pytest.fixture
def baseline(magnum_lab):
    """What exists before the test: the test must leave exactly that."""
    return {'cloud': magnum_lab.cloud.leftovers(),
            'certificates': magnum_lab.magnum_rows('x509keypair')}


def _small(magnum, template, name):
    return magnum.clusters.create(
        name=name, cluster_template_id=template.uuid, master_count=1, node_count=1,
        keypair='lab', labels={'proxy_count': '0', 'storage_count': '0'},
        merge_labels=True)


def _describe(cluster) -> str:
    if cluster is None:
        return 'gone'
    return '%s: %s' % (cluster.status, cluster.status_reason)


def _until(what: str, check, timeout: float = 120.0, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('%s did not happen in %.0fs' % (what, timeout))


def _has_stack(magnum, uuid):
    cluster = clusterwatch.get(magnum, uuid)
    if cluster is not None and (getattr(cluster, 'cluster_id', None)
                                or getattr(cluster, 'stack_id', None)):
        return cluster
    return None


def _status_is(magnum, uuid, status):
    def check():
        cluster = clusterwatch.get(magnum, uuid)
        return cluster is not None and cluster.status == status
    return check


def _stacks(lab, uuid: str) -> list[str]:
    return ['%s (%s)' % (s.stack_name, s.stack_status)
            for s in lab.heat('demo', direct=True).stacks.list()
            if uuid[:8] in s.stack_name]


def _stack_status_is(lab, uuid: str, statuses) -> bool:
    """Whether the cluster's own stack is in one of ``statuses``."""
    return any(s.stack_status in statuses
               for s in lab.heat('demo', direct=True).stacks.list()
               if s.stack_name.endswith(uuid[:8]))


def _delete_until_gone(lab, magnum, uuid: str) -> None:
    """Delete as a user does after a failure: again while it ends DELETE_FAILED."""
    for _ in range(3):
        before = clusterwatch.get(magnum, uuid)
        if before is None:
            return
        try:
            magnum.clusters.delete(uuid)
        except magnum_exc.NotFound:
            return
        # the API answers before the conductor marks the delete: a DELETE_FAILED
        # seen now is the earlier one
        _until('the delete of %s to start' % uuid, lambda: _delete_started(
            magnum, uuid, before), timeout=60)
        final = clusterwatch.wait(magnum, uuid, 'DELETE', timeout=TIMEOUT)
        if final is None or final.status == 'DELETE_COMPLETE':
            return
        assert final.status == 'DELETE_FAILED', _describe(final)
        assert final.status_reason and not RAW.search(final.status_reason), (
            _describe(final))
    raise AssertionError('cluster %s not deleted after three deletes' % uuid)


def _delete_started(magnum, uuid, before) -> bool:
    now = clusterwatch.get(magnum, uuid)
    return (now is None or now.status == 'DELETE_IN_PROGRESS'
            or now.updated_at != before.updated_at)


def _nothing_left(lab, baseline, uuids) -> None:
    stacks = [s for uuid in uuids for s in _stacks(lab, uuid)]
    assert stacks == [], stacks
    left = {kind: sorted(set(names) - set(baseline['cloud'].get(kind, [])))
            for kind, names in lab.cloud.leftovers().items()}
    assert not any(left.values()), left
    assert lab.magnum_rows('x509keypair') == baseline['certificates']


def _restart_magnum(lab) -> None:
    lab.restart(lab.conductor_name)
    if lab.backend.distributed:
        lab.service('magnum-api')  # still up: only the conductor died


def _log_lines(lab, name: str, pattern: str) -> list[str]:
    path = os.path.join(lab.log_dir(), name + '.log')
    if not os.path.exists(path):
        return []
    with open(path, errors='replace') as f:
        return [line.rstrip() for line in f if re.search(pattern, line)]


# ---- magnum-conductor killed during create, resize and delete ------------------------

def test_crash_magnum_conductor_during_create_resize_delete(
        magnum_lab, magnum, template, behaviour, baseline):
    lab = magnum_lab
    behaviour({'match': 'kc-*', 'configure_seconds': 4})
    created = _small(magnum, template, 'kc')
    try:
        _until('the stack of kc', lambda: _has_stack(magnum, created.uuid))
        lab.kill(lab.conductor_name)
        time.sleep(2)
        _restart_magnum(lab)
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_COMPLETE', _describe(final)

        magnum.clusters.resize(created.uuid, node_count=2)
        # killed once Heat has the update: the driver marks the cluster
        # UPDATE_IN_PROGRESS before it sends it, and a kill in between is the lost
        # resize (UPDATE_FAILED, "run the resize again": test_driver's
        # test_a_resize_whose_conductor_died_before_heat_got_it_fails_at_a_later_poll)
        _until('resize of kc in Heat', lambda: _stack_status_is(
            lab, created.uuid, ('UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE')))
        lab.kill(lab.conductor_name)
        time.sleep(2)
        _restart_magnum(lab)
        final = clusterwatch.wait(magnum, created.uuid, 'UPDATE', timeout=TIMEOUT,
                                  before=final)
        assert final.status == 'UPDATE_COMPLETE', _describe(final)
        assert final.node_count == 2 and len(final.node_addresses) == 2, _describe(final)

        magnum.clusters.delete(created.uuid)
        _until('delete of kc', lambda: (clusterwatch.get(magnum, created.uuid) is None or
                                        _status_is(magnum, created.uuid,
                                                   'DELETE_IN_PROGRESS')()))
        lab.kill(lab.conductor_name)
        time.sleep(2)
        _restart_magnum(lab)
        gone = clusterwatch.wait(magnum, created.uuid, 'DELETE', timeout=TIMEOUT)
        assert gone is None or gone.status == 'DELETE_COMPLETE', _describe(gone)
    finally:
        behaviour()
        if not lab.service(lab.conductor_name).alive():
            _restart_magnum(lab)
        _delete_until_gone(lab, magnum, created.uuid)
    _nothing_left(lab, baseline, [created.uuid])


# ---- heat-engine killed during create and during delete ------------------------------

def test_crash_heat_engine_during_create_and_delete(magnum_lab, magnum, template,
                                                    behaviour, baseline):
    """One kill hits a create (cluster hc1) and a delete (cluster hc2) at once.

    Heat's convergence engine leaves a stack whose engine died IN_PROGRESS for good;
    celtic fails it once its timeout (1 minute here) and a grace have passed, saying
    heat-engine stopped and what to do; the delete the user runs then cleans up."""
    lab = magnum_lab
    behaviour({'match': 'hc1-*', 'configure_seconds': 8})
    timeout = {'create_timeout': 1}
    second = magnum.clusters.create(
        name='hc2', cluster_template_id=template.uuid, master_count=1, node_count=1,
        keypair='lab', labels={'proxy_count': '0', 'storage_count': '0'},
        merge_labels=True, **timeout)
    uuids = [second.uuid]
    try:
        final = clusterwatch.wait(magnum, second.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_COMPLETE', _describe(final)
        first = magnum.clusters.create(
            name='hc1', cluster_template_id=template.uuid, master_count=1,
            node_count=1, keypair='lab', labels={'proxy_count': '0',
                                                 'storage_count': '0'},
            merge_labels=True, **timeout)
        uuids.append(first.uuid)
        _until('the servers of hc1', lambda: any(
            s['name'].startswith('hc1-') for s in lab.cloud.snapshot()['servers'].values()))
        magnum.clusters.delete(second.uuid)
        _until('delete of hc2', _status_is(magnum, second.uuid, 'DELETE_IN_PROGRESS'))
        lab.kill(lab.engine_name)
        time.sleep(2)
        lab.restart(lab.engine_name)
        created = clusterwatch.wait(magnum, first.uuid, 'CREATE', timeout=TIMEOUT)
        assert created.status in ('CREATE_COMPLETE', 'CREATE_FAILED'), _describe(created)
        if created.status == 'CREATE_FAILED':
            assert 'heat-engine' in created.status_reason, _describe(created)
        deleted = clusterwatch.wait(magnum, second.uuid, 'DELETE', timeout=TIMEOUT)
        if deleted is not None and deleted.status == 'DELETE_FAILED':
            assert 'heat-engine' in deleted.status_reason, _describe(deleted)
        for cluster in (created, deleted):
            assert not RAW.search(getattr(cluster, 'status_reason', '') or ''), (
                _describe(cluster))
    finally:
        behaviour()
        if not lab.service(lab.engine_name).alive():
            lab.restart(lab.engine_name)
        for uuid in uuids:
            _delete_until_gone(lab, magnum, uuid)
    _nothing_left(lab, baseline, uuids)


# ---- Keystone stopped for 60 s while the nodes signal --------------------------------

def test_crash_keystone_stopped_while_nodes_signal(magnum_lab, magnum, template,
                                                   behaviour, baseline):
    lab = magnum_lab
    # the nodes configure for 6 s, then report: into the outage. Keystone goes once
    # both nodes hold their signal credentials (Nova's metadata service, which needs
    # Keystone to ask celtic-vendordata, has answered them: a boot without Keystone
    # is another fault)
    behaviour({'match': 'ks-*', 'configure_seconds': 6})
    created = _small(magnum, template, 'ks')

    def nodes_ready():
        servers = [s for s in lab.cloud.snapshot()['servers'].values()
                   if s['name'].startswith('ks-')]
        return len(servers) >= 2 and all(os.path.exists(os.path.join(
            lab.cloud.node_dir(s['name'], s['id']), 'etc', 'celtic', 'signal.json'))
            for s in servers)
    try:
        _until('the nodes of ks to get their credentials', nodes_ready, timeout=180,
               interval=0.2)
        lab.kill('keystone')
        try:
            time.sleep(60)
        finally:
            lab.restart('keystone')
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_COMPLETE', _describe(final)
    finally:
        behaviour()
        _delete_until_gone(lab, magnum, created.uuid)
    _nothing_left(lab, baseline, [created.uuid])


# ---- two conductors and concurrent requests -------------------------------------------

class _History:
    """Every status each cluster showed, sampled every half second."""

    def __init__(self, magnum, uuids):
        self.magnum = magnum
        self.seen = {uuid: [] for uuid in uuids}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            for uuid, seen in self.seen.items():
                try:
                    cluster = clusterwatch.get(self.magnum, uuid)
                except Exception:  # an API busy for a moment: sample again
                    continue
                status = cluster.status if cluster is not None else 'GONE'
                if status == 'GONE' and not seen:
                    continue   # the API answers before the conductor wrote the row
                if not seen or seen[-1] != status:
                    seen.append(status)
            self.stop.wait(0.5)

    def backwards(self) -> dict[str, list[str]]:
        bad = {}
        for uuid, seen in self.seen.items():
            ranks = [ORDER.index(s) for s in seen if s in ORDER]
            if any(b < a for a, b in zip(ranks, ranks[1:])) or any(
                    s not in ORDER for s in seen):
                bad[uuid] = seen
        return bad


def test_two_conductors_concurrent_create_resize_delete(magnum_lab, magnum, template,
                                                        behaviour, baseline):
    """Three clusters created, resized and deleted at once (two deletes in one
    request, as `openstack coe cluster delete a b` does), with a second conductor
    polling the same clusters (and, on RabbitMQ, taking half of the operations)."""
    lab = magnum_lab
    names = ('cc1', 'cc2', 'cc3')
    lab.add_conductor()
    uuids = []
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(names))
    try:
        uuids = [c.uuid for c in pool.map(lambda n: _small(magnum, template, n), names)]
        history = _History(magnum, uuids)
        history.thread.start()
        try:
            finals = list(pool.map(lambda u: clusterwatch.wait(
                magnum, u, 'CREATE', timeout=TIMEOUT), uuids))
            for final in finals:
                assert final.status == 'CREATE_COMPLETE', _describe(final)
            list(pool.map(lambda u: magnum.clusters.resize(u, node_count=2), uuids))
            finals = list(pool.map(lambda pair: clusterwatch.wait(
                magnum, pair[0], 'UPDATE', timeout=TIMEOUT, before=pair[1]),
                zip(uuids, finals)))
            for final in finals:
                assert final.status == 'UPDATE_COMPLETE', _describe(final)
                assert final.node_count == 2, _describe(final)
            for uuid in uuids:   # back to back, as one CLI call with several names
                magnum.clusters.delete(uuid)
            gone = list(pool.map(lambda u: clusterwatch.wait(
                magnum, u, 'DELETE', timeout=TIMEOUT), uuids))
            assert all(g is None or g.status == 'DELETE_COMPLETE' for g in gone), [
                _describe(g) for g in gone]
            time.sleep(1)
        finally:
            history.stop.set()
            history.thread.join(timeout=10)
        assert history.backwards() == {}, history.seen
        assert all(seen[-1] == 'GONE' for seen in history.seen.values()), history.seen
    finally:
        pool.shutdown(wait=True)
        for uuid in uuids:
            _delete_until_gone(lab, magnum, uuid)
        lab.remove_service('magnum-conductor-2')
    _nothing_left(lab, baseline, uuids)
    # nothing done twice, nothing locked: the conductors' logs say so
    for name in (lab.conductor_name, 'magnum-conductor-2'):
        trouble = _log_lines(lab, name, r'database is locked|NodeGroupNotFound|'
                                        r'ClusterNotFound|could not delete|'
                                        r'CertificateStorageException')
        assert trouble == [], '%s:\n%s' % (name, '\n'.join(trouble[:10]))
