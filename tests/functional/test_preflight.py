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

"""Preflight through real Magnum and Heat: what the cloud lacks is refused before Heat.

Each refused cluster is asked for through python-magnumclient as the user demo; the
test asserts the named message in ``status_reason``, no stack and no new object in the
lab cloud. The lab cloud enforces its quotas (``lab/quotas.py``), so the cluster that
exactly fits its quotas proves the preflight's arithmetic both ways: one fewer and the
preflight refuses, one more needed than counted and the cloud refuses mid-stack.
"""

from __future__ import annotations

import contextlib
import copy
import time

import pytest
from heatclient import exc as heat_exc
from magnumclient import exceptions as magnum_exc

from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import quotas

TIMEOUT = 900


@pytest.fixture(scope='module')
def magnum(magnum_lab):
    return magnum_lab.magnum('demo')


@pytest.fixture(scope='module')
def template(magnum):
    ct = clusterwatch.create_template(magnum, 'preflight')
    yield ct
    with contextlib.suppress(Exception):
        magnum.cluster_templates.delete(ct.uuid)


def _delete(magnum, uuid: str) -> None:
    """Delete a cluster and wait until Magnum has forgotten it. One at a time: the
    embedded lab's sqlite does not take a delete beside another write. While its
    nodegroups are going, Magnum's API may answer 400 for the cluster: asked again."""
    try:
        magnum.clusters.delete(uuid)
    except magnum_exc.NotFound:
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            cluster = magnum.clusters.get(uuid)
        except magnum_exc.NotFound:
            return
        except magnum_exc.BadRequest:
            cluster = None
        if cluster is not None and cluster.status == 'DELETE_COMPLETE':
            return
        if cluster is not None and cluster.status == 'CREATE_FAILED':
            magnum.clusters.delete(uuid)   # the delete was lost to a locked database
        time.sleep(1)
    raise AssertionError('cluster %s was not deleted in 120s' % uuid)


@contextlib.contextmanager
def cloud_changed(lab, **changes):
    """Change the lab cloud's catalogue for one test (quotas, extensions, an image)."""
    with lab.cloud.transaction() as doc:
        saved = {key: copy.deepcopy(doc.get(key)) for key in changes}
        for key, change in changes.items():
            if callable(change):
                change(doc)
            else:
                doc[key] = change
    try:
        yield
    finally:
        with lab.cloud.transaction() as doc:
            for key, value in saved.items():
                if value is None:
                    doc.pop(key, None)
                else:
                    doc[key] = value


def _stacks(lab, uuid: str) -> list[str]:
    return [s.stack_name for s in lab.heat('demo').stacks.list()
            if uuid[:8] in s.stack_name and s.stack_status != 'DELETE_COMPLETE']


def _refused(lab, magnum, template, name, labels=None) -> str:
    """Ask for a cluster that must be refused: its status_reason, once it is checked
    that no stack and no cloud object was created (and the cluster deleted)."""
    baseline = lab.cloud.leftovers()
    all_labels = {'proxy_count': '1', 'storage_count': '1', 'storage_volume_size': '5'}
    all_labels.update(labels or {})
    created = magnum.clusters.create(name=name, cluster_template_id=template.uuid,
                                     master_count=1, node_count=1, keypair='lab',
                                     labels=all_labels, merge_labels=True)
    try:
        final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
        assert final.status == 'CREATE_FAILED', (final.status, final.status_reason)
        assert final.status_reason.startswith('preflight: '), final.status_reason
        assert _stacks(lab, created.uuid) == []
        assert lab.cloud.leftovers() == baseline
        return final.status_reason
    finally:
        _delete(magnum, created.uuid)


# The shape every case asks for: 1 master, 1 minion, 1 proxy, 1 storage node (m1.small:
# 1 vCPU, 2048 MiB), a 5 GiB storage volume, a new network, floating IPs.
NEED = {'instances': 4, 'cores': 4, 'ram': 8192, 'ports': 4 + 2 + 2, 'floating_ips': 2,
        'security_groups': 6, 'security_group_rules': 21 + 12 + 3, 'server_groups': 4,
        'volumes': 1, 'gigabytes': 5}


def test_preflight_refuses_a_cluster_over_each_quota_naming_need_and_left(
        magnum_lab, magnum, template):
    from magnum_celtic import preflight
    used = quotas.usage(magnum_lab.cloud.snapshot())
    short = {kind: used[kind] + NEED[kind] - 1 for kind in quotas.KINDS}
    with cloud_changed(magnum_lab, quotas=short):
        reason = _refused(magnum_lab, magnum, template, 'pf-quotas')
    assert '(10 problems)' in reason, reason
    for kind, name in preflight.QUOTAS:
        assert ('quota: %s: this cluster needs %d, the project has %d left'
                % (name, NEED[kind], NEED[kind] - 1)) in reason, (kind, reason)
    assert 'quota: floating IPs: this cluster needs 2, the project has 1 left' in reason


def _without_extensions(doc):
    doc['extensions'] = [e for e in quotas.DEFAULT_EXTENSIONS
                         if e not in ('port-security', 'allowed-address-pairs')]


def _image_needs(doc):
    image = next(i for i in doc['images'].values() if i['name'] == 'debian-12-plain')
    image.update(min_ram=4096, min_disk=30)


def test_preflight_refuses_a_cluster_naming_each_missing_resource(magnum_lab, magnum,
                                                                  template):
    labels = {'proxy_flavor': 'nope-flavor', 'storage_flavor': 'gone-flavor',
              'storage_volume_type': 'nope', 'boot_volume_size': '10',
              'boot_volume_type': 'nope-boot', 'availability_zone': 'nowhere'}
    with cloud_changed(magnum_lab, extensions=_without_extensions, images=_image_needs):
        reason = _refused(magnum_lab, magnum, template, 'pf-resources', labels)
    for expected in (
            'flavor: proxy_flavor nope-flavor does not exist (flavors: m1.large, '
            'm1.medium, m1.small)',
            'flavor: storage_flavor gone-flavor does not exist',
            'image debian-12-plain needs 4096 MiB of RAM (min_ram) but master_flavor_id '
            'm1.small has 2048 MiB',
            'image debian-12-plain needs a 30 GiB disk (min_disk) but boot_volume_size '
            'gives 10 GiB',
            'volume type: storage_volume_type nope does not exist (volume types: '
            'standard)',
            'volume type: boot_volume_type nope-boot does not exist',
            'availability_zone nowhere does not exist (zones: nova)',
            'Neutron extension port-security is not enabled',
            'Neutron extension allowed-address-pairs is not enabled'):
        assert expected in reason, (expected, reason)


def test_preflight_one_problem_reads_as_one_sentence(magnum_lab, magnum, template):
    reason = _refused(magnum_lab, magnum, template, 'pf-one',
                      {'proxy_flavor': 'nope-flavor'})
    assert reason == ('preflight: the cluster cannot be built, nothing was created: '
                      'flavor: proxy_flavor nope-flavor does not exist (flavors: '
                      'm1.large, m1.medium, m1.small)')


def test_preflight_exact_fit_is_created_and_a_resize_past_quota_is_refused(
        magnum_lab, magnum, template):
    """Every quota at exactly what the cluster needs: created (the lab cloud would
    refuse one object more), then a resize by one minion is refused before Heat."""
    lab = magnum_lab
    used = quotas.usage(lab.cloud.snapshot())
    exact = {kind: used[kind] + NEED[kind] for kind in quotas.KINDS}
    with cloud_changed(lab, quotas=exact):
        created = magnum.clusters.create(
            name='pffit', cluster_template_id=template.uuid, master_count=1,
            node_count=1, keypair='lab', merge_labels=True,
            labels={'proxy_count': '1', 'storage_count': '1',
                    'storage_volume_size': '5', 'network_driver': 'calico'})
        try:
            seen = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not seen:
                cluster = clusterwatch.get(magnum, created.uuid)
                if cluster and (cluster.status_reason or '').startswith('creating'):
                    seen = cluster.status_reason
                time.sleep(0.5)
            assert seen == ('creating 1 master, 1 minion, 1 proxy, 1 storage node: '
                            '4 servers, 1 volume of 5 GiB'), seen
            final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
            assert final.status == 'CREATE_COMPLETE', final.status_reason
            assert quotas.usage(lab.cloud.snapshot()) == exact
            # what was ignored stays visible after completion
            assert 'note: label network_driver is not used by celtic' in (
                final.status_reason), final.status_reason
            # one more minion does not fit: refused before Heat is called
            stack = lab.heat('demo').stacks.get(_stacks(lab, created.uuid)[0])
            magnum.clusters.resize(created.uuid, node_count=2)
            after = clusterwatch.wait(magnum, created.uuid, 'UPDATE', timeout=TIMEOUT,
                                      before=final)
            assert after.status == 'UPDATE_FAILED', after.status
            assert ('quota: instances: this resize needs 1, the project has 0 left'
                    in after.status_reason), after.status_reason
            assert after.node_count == 1
            again = lab.heat('demo').stacks.get(stack.id)
            assert (again.stack_status, again.updated_time) == (
                stack.stack_status, stack.updated_time)
            # a node named by its server name (what kubectl shows) that is not there
            magnum.clusters.resize(created.uuid, node_count=0,
                                   nodes_to_remove=['pffit-minion-7'])
            wrong = clusterwatch.wait(magnum, created.uuid, 'UPDATE', timeout=TIMEOUT,
                                      before=after)
            assert ('nodes_to_remove: pffit-minion-7 is not a node of nodegroup '
                    'default-worker (its nodes: pffit-minion-0; nothing was changed)'
                    in wrong.status_reason), wrong.status_reason
        finally:
            _delete(magnum, created.uuid)


def test_the_lab_cloud_refuses_a_create_over_quota(magnum_lab):
    """The stand-ins enforce the quotas themselves (the preflight is not the only
    guard): a server group over its quota is refused with Nova's words."""
    lab = magnum_lab
    used = quotas.usage(lab.cloud.snapshot())
    heat = lab.heat('demo')
    template = {'heat_template_version': '2021-04-16', 'resources': {
        'group': {'type': 'OS::Nova::ServerGroup', 'properties': {
            'policies': ['soft-anti-affinity']}}}}
    with cloud_changed(lab, quotas={'server_groups': used['server_groups']}):
        stack = heat.stacks.create(stack_name='pf-lab-quota', template=template)
        stack_id = stack['stack']['id']
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = heat.stacks.get(stack_id)
                if not state.stack_status.endswith('IN_PROGRESS'):
                    break
                time.sleep(0.5)
            assert state.stack_status == 'CREATE_FAILED', state.stack_status
            assert 'Quota exceeded for server_groups' in state.stack_status_reason
            assert quotas.usage(lab.cloud.snapshot()) == used
        finally:
            heat.stacks.delete(stack_id)
            # gone before the next test walks the project's stacks
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if heat.stacks.get(stack_id).stack_status == 'DELETE_COMPLETE':
                        break
                except heat_exc.HTTPNotFound:
                    break
                time.sleep(0.5)
