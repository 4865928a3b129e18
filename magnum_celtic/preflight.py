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

"""Preflight: what a cluster needs from the cloud, and what the cloud lacks.

Pure: a :class:`ClusterSpec` and a :class:`Cloud` (what ``inventory.py`` read from
Nova, Neutron, Cinder and Glance, once per kind) in, plain data out. It answers four
questions before anything is sent to Heat:

- what the cluster (or a resize, or a new nodegroup) needs, per quota
  (:func:`cluster_need`, :func:`pool_need`), counted from the templates' shape: the
  same counts :mod:`budget` keeps for Heat's resource limit;
- what is missing or wrong (:func:`problems`): flavors, the image, the keypair,
  volume types, the availability zone, the external network, an existing
  network and subnet, the Neutron extensions the VIPs need, and every quota the
  request does not fit; all of them in one list, so the user fixes them together;
- what is being built (:func:`describe_build`), for ``status_reason`` while it is;
- what was ignored or switched off (:func:`notes`), kept in ``status_reason`` after
  completion.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Sequence

from magnum_celtic.spec import SUPPORTED_DISTROS, ClusterSpec

DRIVER_NAME = 'celtic'

#: quota kinds, in the order messages list them: (key, what the user calls it)
QUOTAS = (('instances', 'instances'), ('cores', 'cores'), ('ram', 'RAM (MiB)'),
          ('ports', 'ports'), ('floating_ips', 'floating IPs'),
          ('security_groups', 'security groups'),
          ('security_group_rules', 'security group rules'),
          ('server_groups', 'server groups'), ('volumes', 'volumes'),
          ('gigabytes', 'volume gigabytes'))
QUOTA_NAMES = dict(QUOTAS)

#: the Neutron extensions the VIPs need (alias, why)
EXTENSIONS = (('port-security', 'the VIP and member ports carry security groups'),
              ('allowed-address-pairs', 'the API and proxy VIPs move between nodes '
                                        'as allowed address pairs'))

# The templates' shape (security.yaml, addresses.yaml, network.yaml): kept beside
# budget.py's counts and checked by the lab cloud, which refuses when over.
SECURITY_GROUPS = 6            # cluster, k8s, proxy, master, minion, storage
#: rules of the six groups without the CIDR lists (cluster 1, k8s 6, proxy 2,
#: master 6, minion 2, storage 4)
FIXED_RULES = 21
#: Neutron adds an IPv4 and an IPv6 egress rule to every new group
DEFAULT_EGRESS_RULES = 2
#: a new network's ports: the router interface and the DHCP port
NETWORK_PORTS = 2


class PreflightError(Exception):
    """The cloud cannot hold the request; the message lists every reason."""

    def __init__(self, problems: Sequence[str], what: str = 'cluster'):
        self.problems = tuple(problems)
        super().__init__(refusal(problems, what))


@dataclasses.dataclass(frozen=True)
class Flavor:
    """A Nova flavor: vcpus, RAM in MiB, disk in GiB."""
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int


@dataclasses.dataclass(frozen=True)
class Image:
    """The Glance image the nodes boot."""
    id: str
    name: str
    os_distro: str | None
    magnum_driver: str | None
    min_disk: int = 0
    min_ram: int = 0
    exists: bool = True


@dataclasses.dataclass(frozen=True)
class Network:
    """A Neutron network and whether it is external (router:external)."""
    id: str
    name: str
    external: bool


@dataclasses.dataclass(frozen=True)
class Subnet:
    """A Neutron subnet and its network."""
    id: str
    name: str
    network_id: str


@dataclasses.dataclass(frozen=True)
class Cloud:
    """What the project's cloud offers, read once per kind (``inventory.py``).

    A kind that could not be read is None and its checks are skipped (the reader
    logs why); ``quota_left`` maps a :data:`QUOTAS` key to what the project has
    left (absent or None: unlimited)."""
    flavors: tuple[Flavor, ...] | None = None
    image: Image | None = None
    keypairs: frozenset[str] | None = None
    volume_types: frozenset[str] | None = None
    availability_zones: frozenset[str] | None = None
    networks: tuple[Network, ...] | None = None
    subnets: tuple[Subnet, ...] | None = None
    extensions: frozenset[str] | None = None
    quota_left: Mapping[str, int | None] = dataclasses.field(default_factory=dict)


# ---- what is built ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Nodes:
    """The servers of one role: how many, with which flavor, which data volume."""
    role: str
    field: str
    count: int
    flavor: str
    volume_gb: int = 0


def nodes(spec: ClusterSpec, minions: int | None = None) -> tuple[Nodes, ...]:
    """The cluster's servers per role (masters, the default pool, proxies, storage)."""
    storage_gb = spec.storage_volume_size if spec.storage.count else 0
    return (Nodes('master', 'master_flavor_id', spec.masters.count, spec.masters.flavor),
            Nodes('minion', 'flavor_id',
                  spec.minion_count if minions is None else minions,
                  spec.default_pool.flavor),
            Nodes('proxy', 'proxy_flavor', spec.proxies.count, spec.proxies.flavor),
            Nodes('storage', 'storage_flavor', spec.storage.count, spec.storage.flavor,
                  storage_gb))


def _zero() -> dict[str, int]:
    return {key: 0 for key, _ in QUOTAS}


def _servers_need(groups: Iterable[Nodes], flavors: Mapping[str, Flavor],
                  boot_gb: int) -> dict[str, int]:
    need = _zero()
    for group in groups:
        flavor = flavors.get(group.flavor)
        need['instances'] += group.count
        need['cores'] += group.count * (flavor.vcpus if flavor else 0)
        need['ram'] += group.count * (flavor.ram if flavor else 0)
        need['ports'] += group.count
        if group.volume_gb:
            need['volumes'] += group.count
            need['gigabytes'] += group.count * group.volume_gb
        if boot_gb:
            need['volumes'] += group.count
            need['gigabytes'] += group.count * boot_gb
    return need


def flavor_index(flavors: Iterable[Flavor] | None) -> dict[str, Flavor]:
    """Flavors by id and by name."""
    index: dict[str, Flavor] = {}
    for flavor in flavors or ():
        index.setdefault(flavor.name, flavor)
        index[flavor.id] = flavor
    return index


def cluster_need(spec: ClusterSpec, flavors: Mapping[str, Flavor]) -> dict[str, int]:
    """What creating the cluster takes from each quota (:data:`QUOTAS` keys)."""
    groups = nodes(spec)
    need = _servers_need(groups, flavors, spec.boot_volume_size)
    has_proxies = spec.proxies.count > 0
    need['ports'] += 1 + int(has_proxies)            # the VIP ports
    if not spec.uses_existing_network:
        need['ports'] += NETWORK_PORTS
    if spec.floating_ips:
        need['floating_ips'] = 1 + int(has_proxies)
    need['security_groups'] = SECURITY_GROUPS
    need['security_group_rules'] = (
        FIXED_RULES + SECURITY_GROUPS * DEFAULT_EGRESS_RULES
        + len(spec.ssh_allowed_cidrs) + len(spec.proxy_allowed_cidrs)
        + len(spec.api_allowed_cidrs))
    # one per HA role with nodes, one for the default pool
    need['server_groups'] = sum(1 for g in groups if g.role != 'minion' and g.count) + 1
    return need


def pool_need(spec: ClusterSpec, flavors: Mapping[str, Flavor], flavor: str,
              added: int, new_pool: bool = False) -> dict[str, int]:
    """What ``added`` more workers of ``flavor`` take (a resize, a new nodegroup: then
    ``new_pool`` adds its server group)."""
    return added_need(spec, flavors, Nodes('minion', 'flavor_id', added, flavor), new_pool)


def added_need(spec: ClusterSpec, flavors: Mapping[str, Flavor], group: Nodes,
               new_group: bool = False) -> dict[str, int]:
    """What the servers of ``group`` take when they are added to a running cluster
    (more workers, more masters; ``new_group`` adds a server group: a new nodegroup)."""
    need = _servers_need([dataclasses.replace(group, count=max(group.count, 0))], flavors,
                         spec.boot_volume_size)
    need['server_groups'] = int(new_group)
    return need


# ---- what is missing -------------------------------------------------------------------

def problems(spec: ClusterSpec, cloud: Cloud, need: Mapping[str, int],
             groups: Sequence[Nodes] | None = None, verb: str = 'this cluster needs'
             ) -> list[str]:
    """Every reason the cloud cannot hold the request, one message each.

    :param groups: the servers whose flavors and image are checked (default: the
        whole cluster's, :func:`nodes`)
    :param verb: how a quota message names the request ("this cluster needs",
        "this resize needs")"""
    groups = list(nodes(spec) if groups is None else groups)
    found: list[str] = []
    found += _flavor_problems(groups, cloud)
    found += _image_problems(spec, cloud, groups)
    found += _access_problems(spec, cloud, groups)
    found += _network_problems(spec, cloud)
    found += quota_problems(need, cloud.quota_left, verb)
    return found


def _flavor_problems(groups: Sequence[Nodes], cloud: Cloud) -> list[str]:
    if cloud.flavors is None:
        return []
    index = flavor_index(cloud.flavors)
    missing: dict[str, list[str]] = {}
    for group in groups:
        if group.count and group.flavor not in index:
            missing.setdefault(group.flavor, []).append(group.field)
    names = ', '.join(sorted({f.name for f in cloud.flavors})) or 'none'
    return ['flavor: %s %s does not exist (flavors: %s)'
            % (' and '.join(fields), flavor, names) for flavor, fields in missing.items()]


def _image_problems(spec: ClusterSpec, cloud: Cloud, groups: Sequence[Nodes]) -> list[str]:
    image = cloud.image
    if image is None:
        return []
    label = 'image %s' % (image.name or image.id)
    if not image.exists:
        return ['%s does not exist (image_id of the cluster template or nodegroup)'
                % label]
    found = []
    if image.os_distro not in SUPPORTED_DISTROS:
        found.append('%s: property os_distro must be one of %s, got "%s"'
                     % (label, ', '.join(SUPPORTED_DISTROS), image.os_distro or ''))
    if image.magnum_driver and image.magnum_driver != DRIVER_NAME:
        found.append('%s: property magnum_driver is "%s": that image is meant for '
                     'another driver (celtic images have magnum_driver=%s or none)'
                     % (label, image.magnum_driver, DRIVER_NAME))
    index = flavor_index(cloud.flavors)
    for group in groups:
        flavor = index.get(group.flavor)
        if not group.count or flavor is None:
            continue
        if image.min_ram and flavor.ram < image.min_ram:
            found.append('%s needs %d MiB of RAM (min_ram) but %s %s has %d MiB'
                         % (label, image.min_ram, group.field, flavor.name, flavor.ram))
        if spec.boot_volume_size:
            disk, what = spec.boot_volume_size, 'boot_volume_size'
        else:
            disk, what = flavor.disk, '%s %s' % (group.field, flavor.name)
        if image.min_disk and disk and disk < image.min_disk:
            found.append('%s needs a %d GiB disk (min_disk) but %s gives %d GiB'
                         % (label, image.min_disk, what, disk))
    return sorted(set(found), key=found.index)


def _access_problems(spec: ClusterSpec, cloud: Cloud, groups: Sequence[Nodes]) -> list[str]:
    found = []
    if (spec.ssh_key_name and cloud.keypairs is not None
            and spec.ssh_key_name not in cloud.keypairs):
        found.append('keypair %s does not exist for this user (keypairs: %s)'
                     % (spec.ssh_key_name, ', '.join(sorted(cloud.keypairs)) or 'none'))
    if cloud.volume_types is not None:
        wanted = []
        if spec.storage.count and spec.storage_volume_type:
            wanted.append(('storage_volume_type', spec.storage_volume_type))
        if spec.boot_volume_size and spec.boot_volume_type:
            wanted.append(('boot_volume_type', spec.boot_volume_type))
        for field, value in wanted:
            if value not in cloud.volume_types:
                found.append('volume type: %s %s does not exist (volume types: %s)'
                             % (field, value, ', '.join(sorted(cloud.volume_types))
                                or 'none'))
    if (spec.availability_zone and cloud.availability_zones is not None
            and spec.availability_zone not in cloud.availability_zones):
        found.append('availability_zone %s does not exist (zones: %s)'
                     % (spec.availability_zone,
                        ', '.join(sorted(cloud.availability_zones)) or 'none'))
    return found


def _network_problems(spec: ClusterSpec, cloud: Cloud) -> list[str]:
    found = []
    if cloud.networks is not None:
        external = _named(cloud.networks, spec.external_network)
        if not external:
            found.append('external_network_id %s does not exist (external networks: %s)'
                         % (spec.external_network,
                            ', '.join(sorted(n.name or n.id for n in cloud.networks
                                             if n.external)) or 'none'))
        elif not any(n.external for n in external):
            found.append('external_network_id %s is not an external network '
                         '(router:external is false): the router and the floating '
                         'IPs need one' % spec.external_network)
        if spec.uses_existing_network:
            found += _existing_network_problems(spec, cloud)
    if cloud.extensions is not None:
        for alias, why in EXTENSIONS:
            if alias not in cloud.extensions:
                found.append('Neutron extension %s is not enabled (%s): ask the '
                             'operator to enable it' % (alias, why))
    return found


def _existing_network_problems(spec: ClusterSpec, cloud: Cloud) -> list[str]:
    networks = _named(cloud.networks or (), spec.existing_network)
    if not networks:
        return ['fixed_network %s does not exist' % spec.existing_network]
    if cloud.subnets is None:
        return []
    subnets = _named(cloud.subnets, spec.existing_subnet)
    if not subnets:
        return ['fixed_subnet %s does not exist' % spec.existing_subnet]
    if not {s.network_id for s in subnets} & {n.id for n in networks}:
        return ['fixed_subnet %s is not a subnet of fixed_network %s'
                % (spec.existing_subnet, spec.existing_network)]
    return []


def _named(items: Iterable, name_or_id: str) -> list:
    return [item for item in items if name_or_id in (item.id, item.name)]


def quota_problems(need: Mapping[str, int], left: Mapping[str, int | None],
                   verb: str = 'this cluster needs') -> list[str]:
    """One message per quota the need does not fit."""
    found = []
    for key, name in QUOTAS:
        have = left.get(key)
        wanted = need.get(key, 0)
        if have is not None and wanted > have:
            found.append('quota: %s: %s %d, the project has %d left'
                         % (name, verb, wanted, max(have, 0)))
    return found


def refusal(found: Sequence[str], what: str = 'cluster') -> str:
    """The one message that reports every problem."""
    if len(found) == 1:
        return 'preflight: the %s cannot be built, nothing was created: %s' % (
            what, found[0])
    return ('preflight: the %s cannot be built, nothing was created (%d problems): %s'
            % (what, len(found), '; '.join('%d) %s' % (i, p)
                                           for i, p in enumerate(found, 1))))


# ---- what the user sees ----------------------------------------------------------------

_PLURAL = {'master': 'masters', 'minion': 'minions', 'proxy': 'proxies',
           'storage': 'storage nodes'}
_SINGULAR = {'storage': 'storage node'}


def _count(number: int, role: str) -> str:
    return '%d %s' % (number, _SINGULAR.get(role, role) if number == 1 else _PLURAL[role])


def describe_build(spec: ClusterSpec) -> str:
    """"creating 1 master, 1 minion, 2 proxies, 3 storage nodes: 7 servers, 3 volumes
    of 50 GiB" (status_reason while the cluster is created)."""
    groups = nodes(spec)
    shown = [g for g in groups if g.count or g.role in ('master', 'minion')]
    servers = sum(g.count for g in groups)
    parts = ['%d server%s' % (servers, '' if servers == 1 else 's')]
    volumes = sum(g.count for g in groups if g.volume_gb)
    if volumes:
        parts.append('%d volume%s of %d GiB' % (volumes, '' if volumes == 1 else 's',
                                                spec.storage_volume_size))
    if spec.boot_volume_size:
        parts.append('%d boot volume%s of %d GiB' % (servers, '' if servers == 1 else 's',
                                                     spec.boot_volume_size))
    return 'creating %s: %s' % (', '.join(_count(g.count, g.role) for g in shown),
                                ', '.join(parts))


def notes(spec: ClusterSpec) -> tuple[str, ...]:
    """What was ignored or switched off by another choice (spec warnings first)."""
    found = list(spec.warnings)
    if not spec.proxies.count:
        found.append('no proxies (proxy_count 0): Services of type LoadBalancer get no '
                     'address')
    if not spec.storage.count:
        found.append('no storage nodes (storage_count 0): no celtic-gluster '
                     'StorageClass')
    if not spec.floating_ips:
        found.append('no floating IPs: the API is reachable on the cluster network only')
    return tuple(found)


def with_notes(reason: str | None, found: Sequence[str]) -> str | None:
    """A status reason with the notes after it ("...; note: ...")."""
    if not found:
        return reason
    text = '; '.join('note: %s' % n for n in found)
    return '%s; %s' % (reason, text) if reason else text
