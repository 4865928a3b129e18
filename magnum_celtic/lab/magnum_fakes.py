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

"""The only Magnum internals the lab replaces: its Glance, Nova, Neutron and Cinder look-ups.

magnum-api validates cluster templates and clusters against the cloud (the image's
``os_distro`` and ``magnum_driver`` select the driver; flavors, keypairs and networks
must exist). Here ``OpenStackClients.glance/nova/neutron/cinder`` return small proxies
that answer those look-ups with real openstacksdk resource objects built from the lab's
fake cloud (``cloud.json``, the same one Heat's stand-ins use). Calls the lab does not
model raise ``NotImplementedError`` naming the call.
"""

from __future__ import annotations

import os

from openstack import exceptions as sdk_exceptions
from openstack.block_storage.v3 import limits as sdk_volume_limits
from openstack.block_storage.v3 import type as sdk_volume_type
from openstack.compute.v2 import availability_zone as sdk_zone
from openstack.compute.v2 import flavor as sdk_flavor
from openstack.compute.v2 import keypair as sdk_keypair
from openstack.compute.v2 import limits as sdk_limits
from openstack.image.v2 import image as sdk_image
from openstack.network.v2 import extension as sdk_extension
from openstack.network.v2 import floating_ip as sdk_floating_ip
from openstack.network.v2 import network as sdk_network
from openstack.network.v2 import quota as sdk_quota
from openstack.network.v2 import subnet as sdk_subnet

from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab import quotas

CLOUD_DIR_ENV = 'CELTIC_LAB_CLOUD_DIR'


def _cloud() -> cloud_mod.Cloud:
    return cloud_mod.Cloud(os.environ[CLOUD_DIR_ENV])


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != 'preexisting'}


def _matches(obj, filters: dict) -> bool:
    return all(getattr(obj, key, None) == value for key, value in filters.items())


def _listed(kind: str, build, filters: dict):
    """openstacksdk objects of one cloud.json kind that match the filters."""
    for record in _cloud().snapshot()[kind].values():
        obj = build(record)
        if _matches(obj, filters):
            yield obj


def _found(kind: str, build, name_or_id, ignore_missing: bool, missing: str):
    """One object by name or id; None or NotFoundException(missing) when absent."""
    try:
        return build(_cloud().find(kind, name_or_id))
    except cloud_mod.NotFound:
        if ignore_missing:
            return None
        raise sdk_exceptions.NotFoundException(missing)


class _Proxy:
    service = ''

    def __getattr__(self, name):
        raise NotImplementedError('the lab cloud does not model %s.%s' % (self.service, name))


class FakeGlance(_Proxy):
    """Images of the lab cloud."""

    service = 'glance'

    @staticmethod
    def _image(record: dict):
        return sdk_image.Image(
            id=record['id'], name=record['name'], os_distro=record['os_distro'],
            status=record['status'], min_ram=record['min_ram'],
            min_disk=record['min_disk'], properties=dict(record['properties']),
            **record['properties'])

    def find_image(self, name_or_id, ignore_missing=True, **kwargs):
        try:
            return _found('images', self._image, name_or_id, ignore_missing,
                          'No Image found for %s' % name_or_id)
        except cloud_mod.CloudError as exc:
            raise sdk_exceptions.DuplicateResource(str(exc))

    def get_image(self, image):
        return self.find_image(getattr(image, 'id', image), ignore_missing=False)

    def images(self, **filters):
        return _listed('images', self._image, filters)


class FakeNova(_Proxy):
    """Flavors, keypairs, availability zones and limits of the lab cloud."""

    service = 'nova'

    @staticmethod
    def _flavor(record: dict):
        return sdk_flavor.Flavor(**_public(record))

    def flavors(self, details=True, **filters):
        return _listed('flavors', self._flavor, filters)

    def find_flavor(self, name_or_id, ignore_missing=True, **kwargs):
        return _found('flavors', self._flavor, name_or_id, ignore_missing,
                      'No Flavor found for %s' % name_or_id)

    def get_flavor(self, flavor):
        return self.find_flavor(getattr(flavor, 'id', flavor), ignore_missing=False)

    def get_keypair(self, keypair, user_id=None):
        name = getattr(keypair, 'name', keypair)
        try:
            return sdk_keypair.Keypair(**_public(_cloud().find('keypairs', name)))
        except cloud_mod.NotFound:
            raise sdk_exceptions.NotFoundException('Keypair %s not found' % name)

    def keypairs(self, **query):
        for record in _cloud().snapshot()['keypairs'].values():
            yield sdk_keypair.Keypair(**_public(record))

    def availability_zones(self, details=False):
        for name in quotas.availability_zones(_cloud().snapshot()):
            yield sdk_zone.AvailabilityZone(zoneName=name, zoneState={'available': True})

    def get_limits(self, **query):
        left = quotas.left(_cloud().snapshot())
        absolute = {}
        for kind, limit_key, used_key in (
                ('instances', 'maxTotalInstances', 'totalInstancesUsed'),
                ('cores', 'maxTotalCores', 'totalCoresUsed'),
                ('ram', 'maxTotalRAMSize', 'totalRAMUsed'),
                ('server_groups', 'maxServerGroups', 'totalServerGroupsUsed')):
            absolute[limit_key], absolute[used_key] = left[kind]
        return sdk_limits.Limits(absolute=absolute)

    def find_keypair(self, name_or_id, ignore_missing=True, **kwargs):
        try:
            return self.get_keypair(name_or_id)
        except sdk_exceptions.NotFoundException:
            if ignore_missing:
                return None
            raise


class FakeNeutron(_Proxy):
    """Networks, subnets, floating IPs, extensions and quotas of the lab cloud."""

    service = 'neutron'

    @staticmethod
    def _network(record: dict):
        return sdk_network.Network(
            id=record['id'], name=record['name'], status=record.get('status', 'ACTIVE'),
            is_router_external=bool(record.get('router:external')),
            is_shared=bool(record.get('shared')), mtu=record.get('mtu'))

    def networks(self, **filters):
        return _listed('networks', self._network, filters)

    def find_network(self, name_or_id, ignore_missing=True, **kwargs):
        return _found('networks', self._network, name_or_id, ignore_missing,
                      'No Network found for %s' % name_or_id)

    def get_network(self, network):
        return self.find_network(getattr(network, 'id', network), ignore_missing=False)

    @staticmethod
    def _subnet(record: dict):
        return sdk_subnet.Subnet(
            id=record['id'], name=record['name'], network_id=record['network_id'],
            cidr=record['cidr'], ip_version=record['ip_version'],
            gateway_ip=record.get('gateway_ip'))

    def subnets(self, **filters):
        return _listed('subnets', self._subnet, filters)

    def find_subnet(self, name_or_id, ignore_missing=True, **kwargs):
        return _found('subnets', self._subnet, name_or_id, ignore_missing,
                      'No Subnet found for %s' % name_or_id)

    def get_subnet(self, subnet):
        return self.find_subnet(getattr(subnet, 'id', subnet), ignore_missing=False)

    def extensions(self, **query):
        for alias in quotas.extensions(_cloud().snapshot()):
            yield sdk_extension.Extension(alias=alias, name=alias)

    def get_quota(self, project, details=False):
        left = quotas.left(_cloud().snapshot())
        fields = {name: {'limit': left[kind][0], 'used': left[kind][1], 'reserved': 0}
                  for kind, name in (('ports', 'port'), ('floating_ips', 'floatingip'),
                                     ('security_groups', 'security_group'),
                                     ('security_group_rules', 'security_group_rule'))}
        return sdk_quota.QuotaDetails(project_id=getattr(project, 'id', project), **fields)

    def ips(self, **filters):
        for record in _cloud().snapshot()['floating_ips'].values():
            fields = {k: v for k, v in _public(record).items() if k != 'created_at'}
            fip = sdk_floating_ip.FloatingIP(**fields)
            if _matches(fip, filters):
                yield fip


class FakeCinder(_Proxy):
    """Volume types and limits of the lab cloud."""

    service = 'cinder'

    def types(self, **filters):
        for record in _cloud().snapshot()['volume_types'].values():
            yield sdk_volume_type.Type(id=record['id'], name=record['name'])

    def get_limits(self, project=None):
        left = quotas.left(_cloud().snapshot())
        return sdk_volume_limits.Limits(absolute={
            'maxTotalVolumes': left['volumes'][0], 'totalVolumesUsed': left['volumes'][1],
            'maxTotalVolumeGigabytes': left['gigabytes'][0],
            'totalGigabytesUsed': left['gigabytes'][1]})


def install(cloud_dir: str | None = None) -> None:
    """Point Magnum's Glance/Nova/Neutron/Cinder clients at the lab cloud."""
    if cloud_dir:
        os.environ[CLOUD_DIR_ENV] = cloud_dir
    if not os.environ.get(CLOUD_DIR_ENV):
        raise RuntimeError('%s is not set' % CLOUD_DIR_ENV)
    from magnum_celtic.lab import magnum_2026_1
    if magnum_2026_1.magnum_has_trusts():
        magnum_2026_1.install_clients(os.environ[CLOUD_DIR_ENV])
        # the driver's preflight reads through openstacksdk proxies of its own there
        # (inventory.SdkClients): the same lab proxies as on Magnum 23 answer them
        from magnum_celtic import inventory
        inventory.SdkClients.glance = lambda self: FakeGlance()
        inventory.SdkClients.nova = lambda self: FakeNova()
        inventory.SdkClients.neutron = lambda self: FakeNeutron()
        inventory.SdkClients.cinder = lambda self: FakeCinder()
        return
    from magnum.common import clients
    clients.OpenStackClients.glance = lambda self: FakeGlance()
    clients.OpenStackClients.nova = lambda self: FakeNova()
    clients.OpenStackClients.neutron = lambda self: FakeNeutron()
    clients.OpenStackClients.cinder = lambda self: FakeCinder()
