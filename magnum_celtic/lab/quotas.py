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

"""The lab cloud's quotas: what the project uses, and the refusal when it goes over.

The lab has one project that creates things (the stand-ins count every object a stack
created). ``cloud.json`` holds ``quotas`` (kind -> limit; absent or -1: unlimited);
usage is counted from the objects the way each service counts it: Nova its servers'
flavors and server groups, Neutron its ports (with the DHCP port of every new subnet
and the port of every router interface, which the stand-ins do not store), floating
IPs, security groups and their rules (with the two egress rules Neutron adds to each
new group), Cinder its volumes and the boot volumes Nova creates for servers booted
from a volume. A create that takes a kind over its limit is refused with the
service's wording and nothing is stored, so the driver's preflight arithmetic is
checked against a cloud that refuses when over.
"""

from __future__ import annotations

from typing import Any

#: quota kinds (the preflight's names) -> the service that refuses
KINDS = {'instances': 'nova', 'cores': 'nova', 'ram': 'nova', 'server_groups': 'nova',
         'ports': 'neutron', 'floating_ips': 'neutron', 'security_groups': 'neutron',
         'security_group_rules': 'neutron', 'volumes': 'cinder', 'gigabytes': 'cinder'}
#: Neutron's singular resource names, as its 409 names them
_NEUTRON_NAMES = {'ports': 'port', 'floating_ips': 'floatingip',
                  'security_groups': 'security_group',
                  'security_group_rules': 'security_group_rule'}
#: the rules Neutron adds to every new security group (IPv4 and IPv6 egress)
DEFAULT_EGRESS_RULES = 2
#: the Neutron extensions the lab cloud has (what a default ML2/OVN deployment lists
#: among others); ``cloud.json`` ``extensions`` overrides it
DEFAULT_EXTENSIONS = ('external-net', 'router', 'quotas', 'quota_details',
                      'security-group', 'port-security', 'allowed-address-pairs',
                      'extra_dhcp_opt', 'availability_zone')
DEFAULT_AVAILABILITY_ZONES = ('nova',)


class OverQuota(Exception):
    """A create over a quota (each service words it its own way)."""


def _created(doc: dict, kind: str) -> list[dict]:
    return [o for o in doc.get(kind, {}).values() if not o.get('preexisting')]


def usage(doc: dict) -> dict[str, int]:
    """What the project uses, per quota kind."""
    flavors = doc.get('flavors', {})
    servers = _created(doc, 'servers')
    used = dict.fromkeys(KINDS, 0)
    used['instances'] = len(servers)
    for server in servers:
        flavor = flavors.get(server.get('flavor')) or next(
            (f for f in flavors.values() if f.get('name') == server.get('flavor')), {})
        used['cores'] += int(flavor.get('vcpus') or 0)
        used['ram'] += int(flavor.get('ram') or 0)
        if server.get('boot_volume_size'):
            used['volumes'] += 1
            used['gigabytes'] += int(server['boot_volume_size'])
    used['server_groups'] = len(_created(doc, 'server_groups'))
    used['ports'] = (len(_created(doc, 'ports'))
                     + sum(1 for s in _created(doc, 'subnets') if s.get('enable_dhcp'))
                     + sum(1 for i in doc.get('router_interfaces', {})
                           if ':subnet_id=' in i))
    used['floating_ips'] = len(_created(doc, 'floating_ips'))
    groups = _created(doc, 'security_groups')
    used['security_groups'] = len(groups)
    used['security_group_rules'] = sum(len(g.get('rules') or []) + DEFAULT_EGRESS_RULES
                                       for g in groups)
    volumes = _created(doc, 'volumes')
    used['volumes'] += len(volumes)
    used['gigabytes'] += sum(int(v.get('size') or 0) for v in volumes)
    return used


def limits(doc: dict) -> dict[str, int]:
    """The project's limits (-1: unlimited)."""
    set_ = doc.get('quotas') or {}
    return {kind: int(set_.get(kind, -1)) for kind in KINDS}


def enforce(doc: dict, before: dict[str, int]) -> None:
    """Refuse the change that took ``doc`` from ``before`` over a limit."""
    after = usage(doc)
    for kind, limit in limits(doc).items():
        if limit < 0 or after[kind] <= limit or after[kind] <= before[kind]:
            continue
        service = KINDS[kind]
        requested = after[kind] - before[kind]
        if service == 'nova':
            raise OverQuota('Quota exceeded for %s: Requested %d, but already used %d of '
                            '%d %s (HTTP 403)' % (kind, requested, before[kind], limit,
                                                  kind))
        if service == 'neutron':
            raise OverQuota('Quota exceeded for resources: [\'%s\']. (HTTP 409)'
                            % _NEUTRON_NAMES[kind])
        raise OverQuota('VolumeLimitExceeded: Maximum number of %s allowed (%d) '
                        'exceeded for quota \'%s\'. (HTTP 413)' % (kind, limit, kind))


def extensions(doc: dict) -> tuple[str, ...]:
    """The Neutron extension aliases the lab cloud lists."""
    found = doc.get('extensions')
    return tuple(found) if found is not None else DEFAULT_EXTENSIONS


def availability_zones(doc: dict) -> tuple[str, ...]:
    """Nova's availability zones in the lab cloud."""
    found = doc.get('availability_zones')
    return tuple(found) if found is not None else DEFAULT_AVAILABILITY_ZONES


def left(doc: dict) -> dict[str, Any]:
    """(limit, used) per kind, for the fake clients' quota answers."""
    used = usage(doc)
    return {kind: (limit, used[kind]) for kind, limit in limits(doc).items()}
