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

"""The preflight's cloud reads: one list per kind, through openstacksdk's own resource
objects (the proxies below answer as Magnum 2026.2's clients do)."""

from __future__ import annotations

import types

import pytest
from magnum.common import exception
from openstack.block_storage.v3 import limits as volume_limits
from openstack.block_storage.v3 import type as volume_type
from openstack.compute.v2 import availability_zone
from openstack.compute.v2 import flavor
from openstack.compute.v2 import keypair
from openstack.compute.v2 import limits as compute_limits
from openstack.image.v2 import image
from openstack.network.v2 import extension
from openstack.network.v2 import network
from openstack.network.v2 import quota
from openstack.network.v2 import subnet

from magnum_celtic import inventory
from tests.unit.test_spec import build


class Recorder:
    """An sdk proxy that records the calls made to it."""

    def __init__(self, calls, name, **answers):
        self._calls, self._name, self._answers = calls, name, answers

    def __getattr__(self, attr):
        if attr not in self._answers:
            raise AttributeError(attr)

        def call(*args, **kwargs):
            self._calls.append('%s.%s' % (self._name, attr))
            answer = self._answers[attr]
            if isinstance(answer, Exception):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer
        return call


def clients(calls, used_instances=1, **overrides):
    nova = dict(
        flavors=lambda **kw: iter([flavor.Flavor(id='f-1', name='m1.medium', vcpus=2,
                                                 ram=4096, disk=40),
                                   flavor.Flavor(id='f-2', name='m1.large', vcpus=4,
                                                 ram=8192, disk=80)]),
        keypairs=lambda: iter([keypair.Keypair(name='ops')]),
        availability_zones=lambda details=False: iter([
            availability_zone.AvailabilityZone(zoneName='nova',
                                               zoneState={'available': True}),
            availability_zone.AvailabilityZone(zoneName='down',
                                               zoneState={'available': False})]),
        get_limits=lambda: compute_limits.Limits(absolute={
            'maxTotalInstances': 20, 'totalInstancesUsed': used_instances,
            'maxTotalCores': -1, 'totalCoresUsed': 3, 'maxTotalRAMSize': 100000,
            'totalRAMUsed': 0, 'maxServerGroups': 10, 'totalServerGroupsUsed': 0}))
    neutron = dict(
        networks=lambda: iter([
            network.Network(id='n-1', name='public', is_router_external=True)]),
        subnets=lambda: iter([subnet.Subnet(id='s-1', name='sub', network_id='n-1')]),
        extensions=lambda: iter([extension.Extension(alias='port-security')]),
        get_quota=lambda project, details=False: quota.QuotaDetails(
            port={'limit': 50, 'used': 10, 'reserved': 2},
            floatingip={'limit': -1, 'used': 0, 'reserved': 0}))
    glance = dict(find_image=lambda name, ignore_missing=True: image.Image(
        id='i-1', name=name, os_distro='debian', min_disk=0, min_ram=0,
        properties={'magnum_driver': 'celtic'}))
    cinder = dict(
        types=lambda: iter([volume_type.Type(id='t-1', name='fast')]),
        get_limits=lambda: volume_limits.Limits(absolute={
            'maxTotalVolumes': 10, 'totalVolumesUsed': 4,
            'maxTotalVolumeGigabytes': 1000, 'totalGigabytesUsed': 900}))
    services = {'nova': nova, 'neutron': neutron, 'glance': glance, 'cinder': cinder}
    for key, value in overrides.items():
        service, _, attr = key.partition('__')
        if attr:
            services[service][attr] = value
        else:
            services[service] = value
    return types.SimpleNamespace(**{
        name: (lambda answers=answers, name=name: (
            Recorder(calls, name, **answers) if not isinstance(answers, Exception)
            else (_ for _ in ()).throw(answers)))
        for name, answers in services.items()})


CONTEXT = types.SimpleNamespace(project_id='p-1')
CLUSTER = types.SimpleNamespace(uuid='c-1')


def test_read_lists_each_kind_once_and_computes_what_is_left():
    calls = []
    spec = build({'storage_volume_type': 'fast', 'availability_zone': 'nova'},
                 template={'external_network_id': 'public', 'fixed_network': 'n-1',
                           'fixed_subnet': 's-1'})
    cloud = inventory.read(CONTEXT, spec, 'cluster c-1', osc=clients(calls))
    assert sorted(calls) == sorted([
        'nova.flavors', 'nova.keypairs', 'nova.availability_zones', 'nova.get_limits',
        'glance.find_image', 'neutron.networks', 'neutron.subnets',
        'neutron.extensions', 'neutron.get_quota', 'cinder.types',
        'cinder.get_limits'])
    assert [f.name for f in cloud.flavors] == ['m1.medium', 'm1.large']
    assert cloud.image.magnum_driver == 'celtic' and cloud.image.os_distro == 'debian'
    assert cloud.keypairs == {'ops'} and cloud.availability_zones == {'nova'}
    assert cloud.volume_types == {'t-1', 'fast'}
    assert cloud.extensions == {'port-security'}
    assert cloud.quota_left == {'instances': 19, 'cores': None, 'ram': 100000,
                                'server_groups': 10, 'ports': 38, 'floating_ips': None,
                                'security_groups': None, 'security_group_rules': None,
                                'volumes': 6, 'gigabytes': 100}


def test_read_skips_what_the_cluster_does_not_name():
    calls = []
    spec = build({'storage_count': '0'}, cluster={'keypair': None},
                 template={'keypair_id': None})
    inventory.read(CONTEXT, spec, 'cluster c-1', osc=clients(calls))
    assert not {'nova.keypairs', 'nova.availability_zones', 'neutron.subnets',
                'cinder.types', 'cinder.get_limits'} & set(calls)


def test_a_kind_that_cannot_be_read_is_skipped_not_fatal():
    calls = []
    osc = clients(calls, nova=RuntimeError('no compute endpoint'),
                  neutron__extensions=RuntimeError('403'),
                  glance__find_image=lambda name, ignore_missing=True: None)
    cloud = inventory.read(CONTEXT, build(), 'cluster c-1', osc=osc)
    assert cloud.flavors is None and cloud.extensions is None
    assert cloud.image.exists is False
    assert 'instances' not in cloud.quota_left and cloud.quota_left['ports'] == 38


def test_check_cluster_refuses_with_every_problem_in_one_message():
    spec = build({'proxy_flavor': 'nope'})
    with pytest.raises(exception.InvalidParameterValue) as error:
        inventory.check_cluster(CONTEXT, CLUSTER, spec,
                                osc=clients([], used_instances=15))
    message = str(error.value)
    assert message.startswith('preflight: the cluster cannot be built, nothing was '
                              'created (4 problems): 1) flavor: proxy_flavor nope')
    assert 'quota: instances: this cluster needs 11, the project has 5 left' in message
    assert 'Neutron extension allowed-address-pairs is not enabled' in message


def test_check_workers_counts_only_the_added_servers():
    spec = build({'storage_count': '0'})
    osc = clients([], used_instances=18,
                  neutron__extensions=lambda: iter([
                      extension.Extension(alias='port-security'),
                      extension.Extension(alias='allowed-address-pairs')]))
    pool = spec.default_pool
    inventory.check_workers(CONTEXT, CLUSTER, spec, pool, 2, new_pool=False, osc=osc)
    with pytest.raises(exception.InvalidParameterValue) as error:
        inventory.check_workers(CONTEXT, CLUSTER, spec, pool, 3, new_pool=True, osc=osc)
    assert str(error.value) == (
        'preflight: the nodegroup cannot be built, nothing was created: quota: '
        'instances: this nodegroup needs 3, the project has 2 left')


def test_completion_notes_are_a_courtesy():
    spec = build({'proxy_count': '0'})
    assert inventory.completion_notes(CONTEXT, CLUSTER, 'done',
                                      lambda c, cl: spec).startswith(
        'done; note: ingress_controller')

    def broken(context, cluster):
        raise ValueError('gone')
    assert inventory.completion_notes(CONTEXT, CLUSTER, 'done', broken) == 'done'


def test_a_refusal_is_magnums_error_and_an_expected_rpc_exception():
    import oslo_messaging
    with pytest.raises(inventory.Refused) as error:
        raise inventory.refused('cluster c-1', 'label proxy_count must be an integer')
    assert isinstance(error.value, exception.InvalidParameterValue)
    assert isinstance(error.value, oslo_messaging.ExpectedException)
    assert str(error.value) == 'label proxy_count must be an integer'
    assert error.value.exc_info[1] is error.value


def test_check_masters_counts_the_added_masters_with_the_master_flavor():
    spec = build({'storage_count': '0'})
    osc = clients([], used_instances=18,
                  neutron__extensions=lambda: iter([
                      extension.Extension(alias='port-security'),
                      extension.Extension(alias='allowed-address-pairs')]))
    inventory.check_masters(CONTEXT, CLUSTER, spec, 2, osc=osc)
    with pytest.raises(exception.InvalidParameterValue) as error:
        inventory.check_masters(CONTEXT, CLUSTER, spec, 4, osc=osc)
    assert str(error.value) == (
        'preflight: the resize cannot be built, nothing was created: quota: '
        'instances: this resize needs 4, the project has 2 left')


class _LegacyClients:
    """Magnum 22's OpenStackClients as SdkClients uses it: the catalog and the session."""

    def __init__(self):
        self.asked = []
        self.session = object()

    def url_for(self, **kwargs):
        self.asked.append(kwargs)
        return 'https://%s.example.test/v1' % kwargs['service_type']

    def _get_client_option(self, group, option):
        return {'endpoint_type': 'internalURL', 'region_name': 'R-%s' % group}[option]

    def keystone(self):
        return types.SimpleNamespace(session=self.session)


def test_on_magnum_22_the_preflight_reads_through_openstacksdk_on_magnums_session(
        monkeypatch):
    """The Connection each proxy comes from: Magnum's session, the catalog's endpoint
    for magnum.conf's interface and region (a real proxy would ask that endpoint for
    its versions at once, so the Connection is recorded here)."""
    from openstack import connection
    made = []

    def record(**kwargs):
        made.append(kwargs)
        return types.SimpleNamespace(compute='C', network='N', image='I',
                                     block_storage='B')
    monkeypatch.setattr(connection, 'Connection', record)
    legacy = _LegacyClients()
    sdk = inventory.SdkClients(legacy)
    assert [sdk.nova(), sdk.neutron(), sdk.glance(), sdk.cinder()] == ['C', 'N', 'I', 'B']
    assert made == [
        {'session': legacy.session,
         'compute_endpoint_override': 'https://compute.example.test/v1'},
        {'session': legacy.session,
         'network_endpoint_override': 'https://network.example.test/v1'},
        {'session': legacy.session,
         'image_endpoint_override': 'https://image.example.test/v1'},
        {'session': legacy.session,
         'block_storage_endpoint_override': 'https://block-storage.example.test/v1'}]
    group = {'compute': 'nova', 'network': 'neutron', 'image': 'glance',
             'block-storage': 'cinder'}
    assert legacy.asked == [
        {'service_type': t, 'interface': 'internalURL', 'region_name': 'R-%s' % group[t]}
        for t in ('compute', 'network', 'image', 'block-storage')]


def test_magnum_23_clients_are_used_as_they_are(monkeypatch):
    from magnum.common import clients as magnum_clients
    assert not inventory.legacy_clients()  # the unit tests run on Magnum 23
    monkeypatch.setattr(magnum_clients, 'OpenStackClients', lambda context: ('osc', context))
    assert inventory.sdk_clients(CONTEXT) == ('osc', CONTEXT)
    monkeypatch.setattr(magnum_clients, 'novaclient', object(), raising=False)
    assert isinstance(inventory.sdk_clients(CONTEXT), inventory.SdkClients)
