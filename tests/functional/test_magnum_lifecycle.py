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

"""A celtic cluster's life through python-magnumclient, as a cloud user lives it.

Real Keystone, real Heat and real Magnum (API and conductor); the driver is loaded
through its ``magnum.drivers`` entry point. The user is ``demo`` (a project member);
Magnum's periodic status sync polls Heat as the magnum service user. Servers are
stand-ins whose simulated nodes report to Heat with the real shell library.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import re
import time

import pytest

from magnumclient import exceptions as magnum_exc

from magnum_celtic.lab import clusterwatch

TIMEOUT = 900
#: 22 (2026.1) or 23 (2026.2): tox -e functional-magnum22 runs this module on Magnum 22
MAGNUM_RELEASE = int(importlib.metadata.version('magnum').split('.')[0])
FLOATING = ipaddress.ip_network('172.24.4.0/24')
FIXED = ipaddress.ip_network('10.0.0.0/24')


def _template(magnum, name: str, **fields):
    """A template without a driver field unless ``fields`` names one (the image's
    property selects the driver then)."""
    args = dict(image_id='ubuntu-24.04', driver=None, flavor_id='m1.medium',
                master_flavor_id='m1.medium')
    args.update(fields)
    return clusterwatch.create_template(magnum, name, **args)


def _cluster_servers(lab, prefix: str) -> dict[str, dict]:
    return {s['name']: s for s in lab.cloud.snapshot()['servers'].values()
            if s['name'].startswith(prefix + '-')}


def _stacks(lab, cluster_uuid: str) -> list[str]:
    heat = lab.heat('demo')
    return ['%s (%s)' % (s.stack_name, s.stack_status) for s in heat.stacks.list()
            if cluster_uuid[:8] in s.stack_name and s.stack_status != 'DELETE_COMPLETE']


def _delete(lab, cluster_uuid: str) -> None:
    magnum = lab.magnum('demo')
    try:
        magnum.clusters.delete(cluster_uuid)
    except magnum_exc.NotFound:
        return
    final = clusterwatch.wait(magnum, cluster_uuid, 'DELETE', timeout=TIMEOUT)
    assert _deleted(final), _describe(final)


def _deleted(final) -> bool:
    """Gone, or DELETE_COMPLETE: Magnum's status job removes the record right after
    saving that status (Magnum 22 first deletes the cluster's trustee and trust, so a
    poll can see it; asking again then may even fail while the nodegroups are gone)."""
    return final is None or final.status == 'DELETE_COMPLETE'


def _require_complete(cluster: dict) -> None:
    """Tests that change the cluster need the one the create test built."""
    if not cluster.get('created'):
        pytest.fail('the module\'s cluster was not created (see the create test)')


def _describe(cluster) -> str:
    return '%s: %s (faults %s)' % (cluster.status, cluster.status_reason,
                                   getattr(cluster, 'faults', None))


@pytest.fixture(scope='module')
def magnum(magnum_lab):
    return magnum_lab.magnum('demo')


@pytest.fixture(scope='module')
def template(magnum):
    """A cluster template that names the driver (--driver celtic)."""
    ct = _template(magnum, 'celtic-explicit', image_id='debian-12-plain', driver='celtic')
    yield ct
    try:
        magnum.cluster_templates.delete(ct.uuid)
    except Exception:
        pass


# ---- driver selection ---------------------------------------------------------------

def test_template_names_the_driver(template):
    assert template.cluster_distro == 'debian'
    if MAGNUM_RELEASE < 23:
        # Magnum 2026.1 takes a template's driver from the image property only (its API
        # overwrites --driver); the clusters of this template find celtic by
        # (vm, debian, kubernetes)
        assert template.driver is None
    else:
        assert template.driver == 'celtic'


def test_template_takes_the_driver_from_the_image_property(magnum):
    ct = _template(magnum, 'celtic-by-image', image_id='ubuntu-24.04')
    try:
        assert ct.driver == 'celtic'
        assert ct.cluster_distro == 'ubuntu'
    finally:
        magnum.cluster_templates.delete(ct.uuid)
    # the property is really read: an image naming another driver is refused
    with pytest.raises(magnum_exc.HttpError) as error:
        _template(magnum, 'other-driver', image_id='ubuntu-24.04-capi')
    assert 'k8s_capi_helm_v1' in str(error.value) or 'not supported' in str(error.value)


# ---- one cluster's life -------------------------------------------------------------

@pytest.fixture(scope='module')
def cluster(magnum_lab, magnum, template):
    """The module's cluster (3 masters, 3 minions, 2 proxies, 3 storage nodes)."""
    baseline = magnum_lab.cloud.leftovers()
    created = magnum.clusters.create(name='mlab', cluster_template_id=template.uuid,
                                     master_count=3, node_count=3, keypair='lab')
    state = {'uuid': created.uuid, 'baseline': baseline}
    yield state
    _delete(magnum_lab, created.uuid)


def test_cluster_create_completes_with_addresses(magnum_lab, magnum, cluster):
    final = clusterwatch.wait(magnum, cluster['uuid'], 'CREATE', timeout=TIMEOUT)
    assert final.status == 'CREATE_COMPLETE', _describe(final)
    cluster['created'] = True
    api = final.api_address
    assert re.match(r'^https://[0-9.]+:6443$', api), api
    assert ipaddress.ip_address(api[8:-5]) in FLOATING
    assert len(final.master_addresses) == 3
    assert len(final.node_addresses) == 3
    for address in final.master_addresses + final.node_addresses:
        assert ipaddress.ip_address(address) in FIXED
    assert final.coe_version
    groups = {g.name: g for g in magnum.nodegroups.list(cluster['uuid'])}
    assert {g.status for g in groups.values()} == {'CREATE_COMPLETE'}, groups
    servers = _cluster_servers(magnum_lab, 'mlab')
    assert len(servers) == 11 and all(s['status'] == 'ACTIVE' for s in servers.values())


def test_polling_runs_as_the_magnum_service_user(magnum_lab, cluster):
    """CREATE_COMPLETE was set by Magnum's periodic sync; its Heat requests came from
    the magnum service user (a different user, in another project)."""
    _require_complete(cluster)
    from keystoneclient.v3 import client as ks_client
    keystone = ks_client.Client(session=magnum_lab.session('admin'), interface='public')
    magnum_user = keystone.users.find(name='magnum').id
    demo_project = keystone.projects.find(name='demo').id
    polls = [line for line in magnum_lab.heat_api_log_lines()
             if 'GET /v1/%s/stacks/' % demo_project in line and magnum_user in line]
    assert polls, 'no stack GET by the magnum service user in the heat-api log'


def test_resize_up_adds_one_minion(magnum_lab, magnum, cluster):
    _require_complete(cluster)
    before = _cluster_servers(magnum_lab, 'mlab')
    old = magnum.clusters.get(cluster['uuid'])
    magnum.clusters.resize(cluster['uuid'], node_count=4)
    final = clusterwatch.wait(magnum, cluster['uuid'], 'UPDATE', timeout=TIMEOUT, before=old)
    assert final.status == 'UPDATE_COMPLETE', _describe(final)
    assert final.node_count == 4 and len(final.node_addresses) == 4
    after = _cluster_servers(magnum_lab, 'mlab')
    assert sorted(set(after) - set(before)) == ['mlab-minion-3']
    assert all(after[n]['id'] == s['id'] for n, s in before.items())


def test_resize_down_removes_the_chosen_node(magnum_lab, magnum, cluster):
    _require_complete(cluster)
    servers = _cluster_servers(magnum_lab, 'mlab')
    chosen = servers['mlab-minion-1']
    address = next(p['fixed_ips'][0]['ip_address'] for p in
                   magnum_lab.cloud.snapshot()['ports'].values()
                   if p['device_id'] == chosen['id'])
    old = magnum.clusters.get(cluster['uuid'])
    magnum.clusters.resize(cluster['uuid'], node_count=3, nodes_to_remove=[chosen['id']])
    final = clusterwatch.wait(magnum, cluster['uuid'], 'UPDATE', timeout=TIMEOUT, before=old)
    assert final.status == 'UPDATE_COMPLETE', _describe(final)
    assert final.node_count == 3
    assert address not in final.node_addresses and len(final.node_addresses) == 3
    after = _cluster_servers(magnum_lab, 'mlab')
    assert 'mlab-minion-1' not in after
    assert {'mlab-minion-0', 'mlab-minion-2', 'mlab-minion-3'} <= set(after)


def _refused_upgrade(magnum, cluster_uuid: str, name: str, kube_tag: str
                     ) -> tuple[str, str]:
    """Ask for an upgrade to a template at ``kube_tag``; return Magnum's refusal as the
    CLI shows it (the API cuts it at its first full stop) and whole (its detail)."""
    newer = _template(magnum, name, image_id='debian-12-plain', driver='celtic',
                      labels={'kube_tag': kube_tag})
    try:
        with pytest.raises(magnum_exc.HttpError) as refused:
            magnum.clusters.upgrade(cluster_uuid, newer.uuid)
    finally:
        magnum.cluster_templates.delete(newer.uuid)
    return str(refused.value), str(refused.value.details)


def test_upgrade_is_checked_first_and_one_that_changes_nothing_completes(
        magnum_lab, magnum, cluster, template):
    """openstack coe cluster upgrade (doc/upgrade.md): the next minor is refused until
    the rolling upgrade is built and an older one as a downgrade, both before anything
    changes; a template at the cluster's own release is an empty Heat update that ends
    UPDATE_COMPLETE with that template recorded, and so is the way back."""
    _require_complete(cluster)
    uuid = cluster['uuid']
    before = magnum.clusters.get(uuid)
    minor = int(before.coe_version.split('.')[1])
    newer = 'v1.%d' % (minor + 1)
    shown, whole = _refused_upgrade(magnum, uuid, 'celtic-next-minor', newer)
    assert 'rolling upgrade is not built: create a new cluster' in shown, shown
    assert 'would change kube_tag %s -> %s' % (before.coe_version, newer) in whole, whole
    older = 'v1.%d' % (minor - 1)
    shown, whole = _refused_upgrade(magnum, uuid, 'celtic-older-minor', older)
    assert 'kubeadm upgrades a control plane to a newer release only' in shown, shown
    assert '%s -> %s is a downgrade' % (before.coe_version, older) in whole, whole
    untouched = magnum.clusters.get(uuid)
    assert (untouched.status, untouched.cluster_template_id) == (
        before.status, before.cluster_template_id)
    servers = _cluster_servers(magnum_lab, 'mlab')

    same = _template(magnum, 'celtic-same-release', image_id='debian-12-plain',
                     driver='celtic')
    try:
        for target in (same, template):
            old = magnum.clusters.get(uuid)
            magnum.clusters.upgrade(uuid, target.uuid)
            final = clusterwatch.wait(magnum, uuid, 'UPDATE', timeout=TIMEOUT, before=old)
            assert final.status == 'UPDATE_COMPLETE', _describe(final)
            assert final.cluster_template_id == target.uuid
            assert final.coe_version == before.coe_version
    finally:
        try:
            magnum.cluster_templates.delete(same.uuid)
        except magnum_exc.HttpError:  # still the cluster's after a failure above
            pass
    after = _cluster_servers(magnum_lab, 'mlab')
    assert {n: s['id'] for n, s in after.items()} == {
        n: s['id'] for n, s in servers.items()}


def test_nodegroup_create_and_delete(magnum_lab, magnum, cluster):
    """Two nodegroups at once; pool2 is deleted here, pool3 stays for the cluster's
    delete (a cluster deleted with a nodegroup of its own must leave nothing either)."""
    _require_complete(cluster)
    old = magnum.clusters.get(cluster['uuid'])
    for name in ('pool2', 'pool3'):
        magnum.nodegroups.create(cluster['uuid'], name=name, node_count=1,
                                 flavor_id='m1.small')
    for name in ('pool2', 'pool3'):
        group = clusterwatch.wait_nodegroup(magnum, cluster['uuid'], name, 'CREATE',
                                            timeout=TIMEOUT)
        assert group.status == 'CREATE_COMPLETE', '%s %s: %s' % (
            name, group.status, group.status_reason)
        assert len(group.node_addresses) == 1
    cluster['kept_nodegroups'] = ['pool3']
    final = clusterwatch.wait(magnum, cluster['uuid'], 'UPDATE', timeout=TIMEOUT, before=old)
    assert final.status == 'UPDATE_COMPLETE', _describe(final)

    magnum.nodegroups.delete(cluster['uuid'], 'pool2')
    gone = clusterwatch.wait_nodegroup(magnum, cluster['uuid'], 'pool2', 'DELETE',
                                       timeout=TIMEOUT)
    assert gone is None, '%s: %s' % (gone.status, gone.status_reason)
    assert not any('-pool2' in s for s in _stacks(magnum_lab, cluster['uuid']))
    assert not any('pool2' in n for n in _cluster_servers(magnum_lab, 'mlab'))


def test_cluster_delete_leaves_nothing(magnum_lab, magnum, cluster):
    _require_complete(cluster)
    # the nodegroup test left pool3: its own stack goes with the cluster
    for name in cluster.get('kept_nodegroups', []):
        assert any('-%s' % name in s for s in _stacks(magnum_lab, cluster['uuid'])), name
    magnum.clusters.delete(cluster['uuid'])
    final = clusterwatch.wait(magnum, cluster['uuid'], 'DELETE', timeout=TIMEOUT)
    assert _deleted(final), _describe(final)
    assert _stacks(magnum_lab, cluster['uuid']) == []
    left = {kind: sorted(set(names) - set(cluster['baseline'].get(kind, [])))
            for kind, names in magnum_lab.cloud.leftovers().items()}
    assert not any(left.values()), left


# ---- failures -----------------------------------------------------------------------

def _small(magnum, template, name, **kwargs):
    labels = {'proxy_count': '0', 'storage_count': '0'}
    labels.update(kwargs.pop('labels', {}))
    return magnum.clusters.create(name=name, cluster_template_id=template.uuid,
                                  master_count=1, node_count=1, keypair='lab',
                                  labels=labels, merge_labels=True, **kwargs)


def test_a_failing_node_fails_the_cluster_naming_node_and_step(magnum_lab, magnum, template,
                                                               behaviour):
    behaviour({'match': 'mfail-minion-0',
               'fail': {'step': 'kubeadm-join', 'message': 'the API VIP did not answer'}})
    created = _small(magnum, template, 'mfail')
    try:
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_FAILED', _describe(final)
        assert ('mfail-minion-0: step kubeadm-join failed: the API VIP did not answer'
                in final.status_reason), _describe(final)
    finally:
        _delete(magnum_lab, created.uuid)


def test_bad_labels_fail_clearly_and_create_nothing(magnum_lab, magnum, template):
    baseline = magnum_lab.cloud.leftovers()
    created = _small(magnum, template, 'mbad', labels={'proxy_count': 'two'})
    try:
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_FAILED', _describe(final)
        assert 'proxy_count' in final.status_reason and 'two' in final.status_reason, (
            _describe(final))
        assert _stacks(magnum_lab, created.uuid) == []
        assert magnum_lab.cloud.leftovers() == baseline
    finally:
        _delete(magnum_lab, created.uuid)


def test_heat_unreachable_leaves_status_until_it_returns(magnum_lab, magnum, template,
                                                         behaviour):
    behaviour({'match': 'mgone-*', 'boot_seconds': 35})
    gate = magnum_lab.heat_gate
    created = _small(magnum, template, 'mgone')
    try:
        cluster = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cluster = clusterwatch.get(magnum, created.uuid)
            # the stack's id: cluster_id from API 1.13 (Magnum 2026.2), stack_id before
            if cluster is not None and (getattr(cluster, 'cluster_id', None)
                                        or getattr(cluster, 'stack_id', None)):
                break
            time.sleep(1)
        assert cluster is not None and cluster.status == 'CREATE_IN_PROGRESS'
        gate.cut()
        refused = gate.refused
        try:
            time.sleep(25)   # more than two of Magnum's 10-second status polls
            during = magnum.clusters.get(created.uuid)
            assert during.status == 'CREATE_IN_PROGRESS', _describe(during)
            assert gate.refused > refused, 'Magnum did not try to reach Heat'
        finally:
            gate.restore()
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_COMPLETE', _describe(final)
    finally:
        gate.restore()
        _delete(magnum_lab, created.uuid)
