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

"""What the project's cloud offers, read for the preflight (I/O).

One list per kind, never one call per node: the flavors, the image, the user's
keypairs, the networks, the Neutron extensions and the three services' quotas and
usage; the volume types, the availability zones and the subnets only when the
cluster names one. Through the openstacksdk proxies Magnum's ``OpenStackClients``
hands out (Magnum 2026.2). A kind that cannot be read (a client of another shape, as
Magnum 2026.1's legacy clients, or a service that refuses) is left out of the
:class:`preflight.Cloud` and its checks are skipped, with one log line saying so: Heat
still checks it, later.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import oslo_messaging
from magnum.common import clients
from magnum.common import exception
from oslo_log import log as logging

from magnum_celtic import preflight
from magnum_celtic.spec import ClusterSpec

LOG = logging.getLogger(__name__)


class Refused(oslo_messaging.ExpectedException, exception.InvalidParameterValue):
    """An ordinary user mistake (Magnum's InvalidParameterValue): the driver logs it as
    one WARNING line, and Magnum's RPC server, which logs any other exception from a
    conductor handler as an ERROR with its traceback, passes it on quietly (it is
    oslo.messaging's "expected exception"). Magnum still writes it to status_reason."""

    def __init__(self, message: str):
        exception.InvalidParameterValue.__init__(self, err=message)
        self.exc_info = (type(self), self, None)


def refused(what: str, message: str) -> Refused:
    """The error to raise for a user mistake, logged as one WARNING line."""
    LOG.warning('%s: %s', what, message)
    return Refused(message)


class SdkClients:
    """openstacksdk proxies for the preflight's reads on Magnum 22 (2026.1), whose
    ``OpenStackClients`` hands out the legacy python-*client objects; Magnum 23 hands
    out these very proxies. Built as Magnum 23 builds them: on Magnum's Keystone
    session, each endpoint from the catalog with magnum.conf's ``[<service>_client]``
    ``region_name`` and ``endpoint_type``."""

    #: method -> (magnum.conf client group, catalog service type, openstacksdk proxy)
    SERVICES = {'nova': ('nova', 'compute', 'compute'),
                'neutron': ('neutron', 'network', 'network'),
                'glance': ('glance', 'image', 'image'),
                'cinder': ('cinder', 'block-storage', 'block_storage')}

    def __init__(self, osc: Any):
        self._osc = osc

    def _proxy(self, method: str) -> Any:
        from openstack import connection
        group, service_type, proxy = self.SERVICES[method]
        option = self._osc._get_client_option
        endpoint = self._osc.url_for(service_type=service_type,
                                     interface=option(group, 'endpoint_type'),
                                     region_name=option(group, 'region_name'))
        conn = connection.Connection(session=self._osc.keystone().session,
                                     **{'%s_endpoint_override' % proxy: endpoint})
        return getattr(conn, proxy)

    def nova(self) -> Any:
        return self._proxy('nova')

    def neutron(self) -> Any:
        return self._proxy('neutron')

    def glance(self) -> Any:
        return self._proxy('glance')

    def cinder(self) -> Any:
        return self._proxy('cinder')


def legacy_clients() -> bool:
    """Whether this Magnum's ``OpenStackClients`` hands out the legacy python-*client
    objects (Magnum 22) rather than openstacksdk proxies (Magnum 23)."""
    return hasattr(clients, 'novaclient')


def sdk_clients(context: Any) -> Any:
    """The clients the preflight reads through: Magnum's own on Magnum 23, the same
    openstacksdk proxies built by :class:`SdkClients` on Magnum 22."""
    osc = clients.OpenStackClients(context)
    return SdkClients(osc) if legacy_clients() else osc


class _Reader:
    """Counts the calls and keeps going when one kind cannot be read."""

    def __init__(self, context: Any, what: str, osc: Any = None):
        self.osc = osc or sdk_clients(context)
        self.project_id = getattr(context, 'project_id', None)
        self.what = what
        self.calls = 0
        self.skipped: list[str] = []

    def read(self, kind: str, call: Callable[[], Any], api: bool = True) -> Any:
        """``call()``, or None (logged) when it fails; ``api``: it is an API call (a
        client's construction is not)."""
        self.calls += int(api)
        try:
            return call()
        except Exception as error:  # noqa: B902 - any client, any failure: skip the kind
            self.skipped.append(kind)
            LOG.info('%s: preflight cannot read %s (%s: %s); Heat will check it',
                     self.what, kind, type(error).__name__, error)
            return None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _left(limit: Any, used: Any, reserved: Any = 0) -> int | None:
    """What is left of a quota; None when unlimited (-1) or unknown."""
    if limit is None:
        return None
    limit = _int(limit)
    if limit < 0:
        return None
    return limit - _int(used) - _int(reserved)


def _flavors(nova: Any) -> tuple[preflight.Flavor, ...]:
    return tuple(preflight.Flavor(id=str(f.id), name=str(f.name or f.id),
                                  vcpus=_int(f.vcpus), ram=_int(f.ram), disk=_int(f.disk))
                 for f in nova.flavors(details=True))


def _image(glance: Any, image: str) -> preflight.Image | None:
    found = glance.find_image(image, ignore_missing=True)
    if found is None:
        return preflight.Image(id=image, name=image, os_distro=None, magnum_driver=None,
                               exists=False)
    properties = getattr(found, 'properties', None) or {}
    driver = getattr(found, 'magnum_driver', None) or properties.get('magnum_driver')
    distro = getattr(found, 'os_distro', None) or properties.get('os_distro')
    return preflight.Image(id=str(found.id), name=str(found.name or found.id),
                           os_distro=distro, magnum_driver=driver,
                           min_disk=_int(found.min_disk), min_ram=_int(found.min_ram))


def _nova_left(nova: Any) -> dict[str, int | None]:
    limits = nova.get_limits().absolute
    return {'instances': _left(limits.instances, limits.instances_used),
            'cores': _left(limits.total_cores, limits.total_cores_used),
            'ram': _left(limits.total_ram, limits.total_ram_used),
            'server_groups': _left(limits.server_groups, limits.server_groups_used)}


_NEUTRON_QUOTAS = (('ports', 'ports'), ('floating_ips', 'floating_ips'),
                   ('security_groups', 'security_groups'),
                   ('security_group_rules', 'security_group_rules'))


def _neutron_left(neutron: Any, project_id: str) -> dict[str, int | None]:
    quota = neutron.get_quota(project_id, details=True)
    left = {}
    for key, attribute in _NEUTRON_QUOTAS:
        detail = getattr(quota, attribute, None) or {}
        left[key] = _left(detail.get('limit'), detail.get('used'), detail.get('reserved'))
    return left


def _cinder_left(cinder: Any) -> dict[str, int | None]:
    limits = cinder.get_limits().absolute
    return {'volumes': _left(limits.max_total_volumes, limits.total_volumes_used),
            'gigabytes': _left(limits.max_total_volume_gigabytes,
                               limits.total_gigabytes_used)}


def read(context: Any, spec: ClusterSpec, what: str, image: str | None = None,
         volumes: bool = True, osc: Any = None) -> preflight.Cloud:
    """The cloud as the preflight of ``spec`` needs it (``what`` names the cluster in
    the log line with the time and the number of calls).

    :param image: the image to read (default: the cluster's)
    :param volumes: whether the request creates volumes (else Cinder is not asked)
    :param osc: the clients (default: Magnum's ``OpenStackClients`` of ``context``)"""
    started = time.monotonic()
    reader = _Reader(context, what, osc)
    nova = reader.read('Nova', reader.osc.nova, api=False)
    neutron = reader.read('Neutron', reader.osc.neutron, api=False)
    glance = reader.read('Glance', reader.osc.glance, api=False)
    values: dict[str, Any] = {}
    left: dict[str, int | None] = {}
    if nova is not None:
        values['flavors'] = reader.read('flavors', lambda: _flavors(nova))
        if spec.ssh_key_name:
            values['keypairs'] = reader.read(
                'keypairs', lambda: frozenset(k.name for k in nova.keypairs()))
        if spec.availability_zone:
            values['availability_zones'] = reader.read(
                'availability zones', lambda: frozenset(
                    z.name for z in nova.availability_zones(details=False)
                    if (z.state or {}).get('available', True)))
        left.update(reader.read('Nova quotas', lambda: _nova_left(nova)) or {})
    if glance is not None:
        values['image'] = reader.read('image', lambda: _image(glance, image or spec.image))
    if neutron is not None:
        values['networks'] = reader.read('networks', lambda: tuple(
            preflight.Network(id=str(n.id), name=str(n.name or ''),
                              external=bool(n.is_router_external))
            for n in neutron.networks()))
        if spec.uses_existing_network:
            values['subnets'] = reader.read('subnets', lambda: tuple(
                preflight.Subnet(id=str(s.id), name=str(s.name or ''),
                                 network_id=str(s.network_id))
                for s in neutron.subnets()))
        values['extensions'] = reader.read('extensions', lambda: frozenset(
            e.alias for e in neutron.extensions()))
        if reader.project_id:
            left.update(reader.read('Neutron quotas',
                                    lambda: _neutron_left(neutron, reader.project_id))
                        or {})
    wants_types = ((spec.storage.count and spec.storage_volume_type)
                   or (spec.boot_volume_size and spec.boot_volume_type))
    if volumes and (wants_types or spec.storage.count or spec.boot_volume_size):
        cinder = reader.read('Cinder', reader.osc.cinder, api=False)
        if cinder is not None:
            if wants_types:
                values['volume_types'] = reader.read('volume types', lambda: frozenset(
                    name for t in cinder.types() for name in (t.id, t.name) if name))
            left.update(reader.read('Cinder quotas', lambda: _cinder_left(cinder)) or {})
    LOG.info('%s: preflight read the cloud in %.2fs (%d calls%s)', what,
             time.monotonic() - started, reader.calls,
             '; skipped: ' + ', '.join(reader.skipped) if reader.skipped else '')
    return preflight.Cloud(quota_left=left, **{k: v for k, v in values.items()
                                               if v is not None})


# ---- the checks the driver's hooks call ----------------------------------------------

def check_cluster(context: Any, cluster: Any, spec: ClusterSpec, osc: Any = None) -> None:
    """Refuse, before Heat is called, a cluster the cloud cannot hold (every reason in
    one message)."""
    what = 'cluster %s' % cluster.uuid
    cloud = read(context, spec, what, osc=osc)
    need = preflight.cluster_need(spec, preflight.flavor_index(cloud.flavors))
    LOG.info('%s: preflight: the cluster needs %s', what,
             ', '.join('%s %d' % (k, v) for k, v in need.items() if v))
    found = preflight.problems(spec, cloud, need)
    if found:
        raise refused(what, preflight.refusal(found, 'cluster'))


def check_workers(context: Any, cluster: Any, spec: ClusterSpec, pool: Any, added: int,
                  new_pool: bool, osc: Any = None) -> None:
    """Refuse ``added`` more workers of ``pool`` (a ``spec.PoolSpec``: a resize, or a
    new nodegroup when ``new_pool``) that the cloud cannot hold."""
    _check_added(context, cluster, spec, 'nodegroup %s' % pool.nodegroup,
                 preflight.Nodes('minion', 'flavor_id', added, pool.flavor), pool.image,
                 'nodegroup' if new_pool else 'resize', new_pool, osc)


def check_masters(context: Any, cluster: Any, spec: ClusterSpec, added: int,
                  osc: Any = None) -> None:
    """Refuse ``added`` more masters (a master resize) that the cloud cannot hold."""
    _check_added(context, cluster, spec, 'masters',
                 preflight.Nodes('master', 'master_flavor_id', added, spec.masters.flavor),
                 None, 'resize', False, osc)


def _check_added(context: Any, cluster: Any, spec: ClusterSpec, part: str,
                 group: preflight.Nodes, image: str | None, kind: str, new_group: bool,
                 osc: Any) -> None:
    what = 'cluster %s %s' % (cluster.uuid, part)
    cloud = read(context, spec, what, image=image, volumes=bool(spec.boot_volume_size),
                 osc=osc)
    need = preflight.added_need(spec, preflight.flavor_index(cloud.flavors), group,
                                new_group)
    checked = dataclasses.replace(group, count=max(group.count, 1))
    found = preflight.problems(spec, cloud, need, [checked], verb='this %s needs' % kind)
    if found:
        raise refused(what, preflight.refusal(found, kind))


def completion_notes(context: Any, cluster: Any, reason: str, spec_of: Callable) -> str:
    """``reason`` with what was ignored or switched off (``spec_of(context, cluster)``
    gives the cluster's spec; a cluster whose spec no longer builds gets no notes)."""
    try:
        spec = spec_of(context, cluster)
    except Exception as error:  # noqa: B902 - notes are a courtesy, never a failure
        LOG.info('cluster %s: no notes for status_reason: %s', cluster.uuid, error)
        return reason
    return preflight.with_notes(reason, preflight.notes(spec)) or reason
