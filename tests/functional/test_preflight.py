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
preflight refuses, one more needed than counted and the cloud refuses mid-stack. The
refused clusters are deleted together at the end of the module (a cluster without a
stack still goes through Magnum's delete).
"""

from __future__ import annotations

import contextlib
import time

import pytest

from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import quotas

TIMEOUT = 900


@pytest.fixture(scope='module')
def magnum(magnum_lab):
    return magnum_lab.magnum('demo')


@pytest.fixture(scope='module')
def template(magnum):
    ct = magnum.cluster_templates.create(
        name='preflight', image_id='debian-12-plain', driver='celtic', keypair_id='lab',
        external_network_id='public', flavor_id='m1.small', master_flavor_id='m1.small',
        coe='kubernetes', network_driver='flannel', master_lb_enabled=True,
        floating_ip_enabled=True)
    yield ct
    with contextlib.suppress(Exception):
        magnum.cluster_templates.delete(ct.uuid)


@pytest.fixture(scope='module')
def refused(magnum_lab, magnum):
    """Clusters to delete at the end of the module, all at once."""
    uuids: list[str] = []
    yield uuids
    for uuid in uuids:
        with contextlib.suppress(Exception):
            magnum.clusters.delete(uuid)
    for uuid in uuids:
        final = clusterwatch.wait(magnum, uuid, 'DELETE', timeout=TIMEOUT)
        assert final is None or final.status == 'DELETE_COMPLETE', final.status


@contextlib.contextmanager
def cloud_changed(lab, **changes):
    """Change the lab cloud's catalogue for one test (quotas, extensions, an image)."""
    with lab.cloud.transaction() as doc:
        saved = {key: doc.get(key) for key in changes}
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


def _create_refused(lab, magnum, template, refused, name, labels=None, **fields):
    baseline = lab.cloud.leftovers()
    all_labels = {'proxy_count': '1', 'storage_count': '1', 'storage_volume_size': '5'}
    all_labels.update(labels or {})
    created = magnum.clusters.create(name=name, cluster_template_id=template.uuid,
                                     master_count=1, node_count=1, keypair='lab',
                                     labels=all_labels, merge_labels=True, **fields)
    refused.append(created.uuid)
    final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=TIMEOUT)
    assert final.status == 'CREATE_FAILED', (final.status, final.status_reason)
    assert final.status_reason.startswith('preflight: '), final.status_reason
    assert _stacks(lab, created.uuid) == []
    assert lab.cloud.leftovers() == baseline
    return final.status_reason


# The shape every case asks for: 1 master, 1 minion, 1 proxy, 1 storage node (m1.small:
# 1 vCPU, 2048 MiB), a 5 GiB storage volume, a new network, floating IPs.
NEED = {'instances': 4, 'cores': 4, 'ram': 8192, 'ports': 4 + 2 + 2, 'floating_ips': 2,
        'security_groups': 6, 'security_group_rules': 21 + 12 + 3, 'server_groups': 4,
        'volumes': 1, 'gigabytes': 5}


@pytest.mark.parametrize('kind', sorted(quotas.KINDS))
def test_preflight_refuses_a_cluster_over_each_quota(magnum_lab, magnum, template, refused,
                                                     kind):
    from magnum_celtic import preflight
    used = quotas.usage(magnum_lab.cloud.snapshot())
    limit = used[kind] + NEED[kind] - 1
    with cloud_changed(magnum_lab, quotas={kind: limit}):
        reason = _create_refused(magnum_lab, magnum, template, refused,
                                 'pfq-%s' % kind.replace('_', '-'))
    assert ('quota: %s: this cluster needs %d, the project has %d left'
            % (preflight.QUOTA_NAMES[kind], NEED[kind], NEED[kind] - 1)) in reason, reason


def _without_extensions(doc):
    doc['extensions'] = [e for e in quotas.DEFAULT_EXTENSIONS
                         if e not in ('port-security', 'allowed-address-pairs')]


def _image_needs(doc, **props):
    image = next(i for i in doc['images'].values() if i['name'] == 'debian-12-plain')
    image.update(props)


RESOURCE_CASES = {
    'proxy-flavor': ({'proxy_flavor': 'nope-flavor'}, {},
                     'flavor: proxy_flavor nope-flavor does not exist'),
    'storage-flavor': ({'storage_flavor': 'nope-flavor'}, {},
                       'flavor: storage_flavor nope-flavor does not exist'),
    'volume-type': ({'storage_volume_type': 'nope'}, {},
                    'volume type: storage_volume_type nope does not exist'),
    'boot-volume-type': ({'boot_volume_size': '10', 'boot_volume_type': 'nope'}, {},
                         'volume type: boot_volume_type nope does not exist'),
    'zone': ({'availability_zone': 'nowhere'}, {},
             'availability_zone nowhere does not exist (zones: nova)'),
    'extensions': ({}, {'extensions': _without_extensions},
                   'Neutron extension port-security is not enabled'),
    'min-ram': ({}, {'images': lambda doc: _image_needs(doc, min_ram=4096)},
                'image debian-12-plain needs 4096 MiB of RAM (min_ram) but '
                'master_flavor_id m1.small has 2048 MiB'),
    'min-disk': ({}, {'images': lambda doc: _image_needs(doc, min_disk=30)},
                 'image debian-12-plain needs a 30 GiB disk (min_disk) but flavor_id '
                 'm1.small gives 20 GiB'),
}


@pytest.mark.parametrize('case', sorted(RESOURCE_CASES))
def test_preflight_refuses_a_cluster_missing_a_resource(magnum_lab, magnum, template,
                                                        refused, case):
    labels, changes, expected = RESOURCE_CASES[case]
    with cloud_changed(magnum_lab, **changes):
        reason = _create_refused(magnum_lab, magnum, template, refused,
                                 'pfr-%s' % case, labels=labels)
    assert expected in reason, reason


def test_preflight_reports_every_problem_in_one_message(magnum_lab, magnum, template,
                                                        refused):
    with cloud_changed(magnum_lab, quotas={'floating_ips': quotas.usage(
            magnum_lab.cloud.snapshot())['floating_ips'] + 1}):
        reason = _create_refused(
            magnum_lab, magnum, template, refused, 'pf-all',
            labels={'proxy_flavor': 'nope-flavor', 'storage_volume_type': 'nope'})
    assert '(3 problems)' in reason, reason
    for part in ('1) flavor: proxy_flavor nope-flavor',
                 '2) volume type: storage_volume_type nope',
                 '3) quota: floating IPs: this cluster needs 2, the project has 1 left'):
        assert part in reason, reason


def test_preflight_exact_fit_is_created_and_a_resize_past_quota_is_refused(
        magnum_lab, magnum, template):
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
                cluster = magnum.clusters.get(created.uuid)
                if cluster.status_reason and cluster.status_reason.startswith('creating'):
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
            magnum.clusters.delete(created.uuid)
            gone = clusterwatch.wait(magnum, created.uuid, 'DELETE', timeout=TIMEOUT)
            assert gone is None or gone.status == 'DELETE_COMPLETE'


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
