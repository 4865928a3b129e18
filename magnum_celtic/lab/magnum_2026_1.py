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

"""What the lab adds when the installed Magnum is 2026.1 (22.x) instead of 2026.2.

Magnum 22 still has trusts: its API checks every request against the trustee domain and
its conductor creates a trustee user and a trust per cluster, so Keystone gets a trustee
domain with its admin and magnum.conf a ``[trust]`` section, as a Magnum 22 deployment
has. And its Glance/Nova/Neutron/Cinder look-ups go through the legacy python-*client
libraries (dicts and managers), not openstacksdk: the fakes below answer those from the
same lab cloud as :mod:`magnum_celtic.lab.magnum_fakes` does for 2026.2.
"""

from __future__ import annotations

import importlib.metadata
import types

from magnum_celtic.lab import cloud as cloud_mod

TRUSTEE_DOMAIN = 'magnum'
TRUSTEE_DOMAIN_ADMIN = 'magnum_domain_admin'


def magnum_has_trusts() -> bool:
    """The installed Magnum is 2026.1 (22.x) or older: trusts and legacy clients."""
    return int(importlib.metadata.version('magnum').split('.')[0]) < 23


def trust_options(admin_password: str) -> dict[str, str]:
    """magnum.conf [trust] for the lab's trustee domain."""
    return {'trustee_domain_name': TRUSTEE_DOMAIN,
            'trustee_domain_admin_name': TRUSTEE_DOMAIN_ADMIN,
            'trustee_domain_admin_domain_name': TRUSTEE_DOMAIN,
            'trustee_domain_admin_password': admin_password,
            'trustee_keystone_interface': 'public'}


def _cloud(cloud_dir: str) -> cloud_mod.Cloud:
    return cloud_mod.Cloud(cloud_dir)


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != 'preexisting'}


class _Images:
    """glanceclient v2 ``images``: dict-like images (os_distro and properties flat)."""

    def __init__(self, cloud_dir: str):
        self.cloud_dir = cloud_dir

    @staticmethod
    def _image(record: dict) -> dict:
        image = {k: v for k, v in _public(record).items() if k != 'properties'}
        image.update(record.get('properties') or {})
        return image

    def get(self, image_id):
        from glanceclient import exc
        try:
            return self._image(_cloud(self.cloud_dir).find('images', image_id))
        except cloud_mod.NotFound as error:
            raise exc.HTTPNotFound(str(error))

    def list(self, filters=None, **kwargs):
        wanted = dict(filters or {})
        for record in _cloud(self.cloud_dir).snapshot()['images'].values():
            image = self._image(record)
            if all(image.get(k) == v for k, v in wanted.items()):
                yield image


class _Flavors:
    def __init__(self, cloud_dir: str):
        self.cloud_dir = cloud_dir

    def list(self, detailed=True, **kwargs):
        return [types.SimpleNamespace(**_public(r))
                for r in _cloud(self.cloud_dir).snapshot()['flavors'].values()]


class _Keypairs:
    def __init__(self, cloud_dir: str):
        self.cloud_dir = cloud_dir

    def get(self, name, user_id=None):
        from novaclient import exceptions
        try:
            record = _cloud(self.cloud_dir).find('keypairs', name)
            return types.SimpleNamespace(**_public(record))
        except cloud_mod.NotFound:
            raise exceptions.NotFound(404, 'Keypair %s not found' % name)


class _VolumeTypes:
    def __init__(self, cloud_dir: str):
        self.cloud_dir = cloud_dir

    def list(self, **kwargs):
        return [types.SimpleNamespace(**_public(r))
                for r in _cloud(self.cloud_dir).snapshot()['volume_types'].values()]


class LegacyNeutron:
    """neutronclient v2: list_* calls answering {'<kind>': [dict, ...]}."""

    def __init__(self, cloud_dir: str):
        self.cloud_dir = cloud_dir

    def _list(self, kind: str, filters: dict) -> dict:
        records = [_public(r) for r in _cloud(self.cloud_dir).snapshot()[kind].values()]
        return {kind: [r for r in records
                       if all(r.get(k) == v for k, v in filters.items())]}

    def list_networks(self, **filters):
        return self._list('networks', filters)

    def list_subnets(self, **filters):
        return self._list('subnets', filters)

    def __getattr__(self, name):
        raise NotImplementedError('the lab cloud does not model neutron.%s' % name)


def install_clients(cloud_dir: str) -> None:
    """Point Magnum 22's legacy Glance/Nova/Neutron/Cinder clients at the lab cloud."""
    from magnum.common import clients
    clients.OpenStackClients.glance = lambda self: types.SimpleNamespace(
        images=_Images(cloud_dir))
    clients.OpenStackClients.nova = lambda self: types.SimpleNamespace(
        flavors=_Flavors(cloud_dir), keypairs=_Keypairs(cloud_dir))
    clients.OpenStackClients.neutron = lambda self: LegacyNeutron(cloud_dir)
    clients.OpenStackClients.cinder = lambda self: types.SimpleNamespace(
        volume_types=_VolumeTypes(cloud_dir))
