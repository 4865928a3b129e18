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

"""The lab's fake cloud: what Nova, Neutron, Cinder and Glance would know.

One JSON document (``cloud.json``) in the lab's cloud directory holds the pre-existing
catalogue (images, flavors, keypairs, volume types, the external and a private network)
and every object the Heat stand-ins create (servers, ports, floating IPs, networks,
subnets, routers, security groups, server groups, volumes, attachments). Several
heat-engine worker processes and magnum-api read and write it, so every change happens
under an exclusive ``flock`` and is written atomically. Addresses come from the owning
subnet's CIDR (floating IPs from the external network's 172.24.4.0/24); the preferred
address is derived from the object's name, so a cluster gets the same addresses on every
run unless two names collide.

A second document (``behaviour.json``, written by the harness) tells servers how to
behave: per name glob, how long they take to boot and to configure, and whether they fail.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import fnmatch
import ipaddress
import json
import os
import uuid
import zlib
from typing import Any, Iterator

CLOUD_FILE = 'cloud.json'
LOCK_FILE = 'cloud.lock'
BEHAVIOUR_FILE = 'behaviour.json'

#: kinds of objects the stand-ins create, as they appear in cloud.json
KINDS = ('servers', 'ports', 'floating_ips', 'networks', 'subnets', 'routers',
         'router_interfaces', 'security_groups', 'security_group_rules', 'server_groups',
         'volumes', 'volume_attachments')
#: catalogue kinds that exist before any stack
CATALOGUE_KINDS = ('images', 'flavors', 'keypairs', 'volume_types')

EXTERNAL_NETWORK = 'public'
EXTERNAL_CIDR = '172.24.4.0/24'
PRIVATE_NETWORK = 'private'
PRIVATE_CIDR = '10.1.0.0/24'

DEFAULT_IMAGES = (
    # name, os_distro, extra properties
    ('ubuntu-24.04', 'ubuntu', {'magnum_driver': 'celtic'}),
    ('debian-12', 'debian', {'magnum_driver': 'celtic'}),
    ('debian-12-plain', 'debian', {}),
    # an image meant for another driver (not installed here)
    ('ubuntu-24.04-capi', 'ubuntu', {'magnum_driver': 'k8s_capi_helm_v1'}),
)
DEFAULT_FLAVORS = (
    # name, vcpus, ram MiB, disk GiB
    ('m1.small', 1, 2048, 20),
    ('m1.medium', 2, 4096, 40),
    ('m1.large', 4, 8192, 80),
)
DEFAULT_KEYPAIRS = ('lab', 'default')
DEFAULT_VOLUME_TYPES = ('standard',)

DEFAULT_BEHAVIOUR = {'boot_seconds': 1.0, 'configure_seconds': 0.0}


class CloudError(Exception):
    """A request the fake cloud refuses, worded like the real service would."""


class NotFound(CloudError):
    """The named object does not exist."""


class Conflict(CloudError):
    """The object is still in use."""


def _new_id() -> str:
    return str(uuid.uuid4())


def default_catalogue() -> dict[str, Any]:
    """The pre-existing cloud: images, flavors, keypairs, volume types, two networks."""
    doc: dict[str, Any] = {kind: {} for kind in KINDS + CATALOGUE_KINDS}
    doc['ips'] = {}
    for name, distro, props in DEFAULT_IMAGES:
        image_id = str(uuid.uuid5(uuid.NAMESPACE_URL, 'celtic-lab/image/' + name))
        doc['images'][image_id] = {
            'id': image_id, 'name': name, 'os_distro': distro, 'status': 'active',
            'min_ram': 0, 'min_disk': 0, 'properties': dict(props), 'preexisting': True}
    for name, vcpus, ram, disk in DEFAULT_FLAVORS:
        doc['flavors'][name] = {'id': name, 'name': name, 'vcpus': vcpus, 'ram': ram,
                                'disk': disk, 'preexisting': True}
    for name in DEFAULT_KEYPAIRS:
        doc['keypairs'][name] = {'id': name, 'name': name, 'type': 'ssh',
                                 'preexisting': True}
    for name in DEFAULT_VOLUME_TYPES:
        doc['volume_types'][name] = {'id': name, 'name': name, 'preexisting': True}
    for net_name, cidr, external in ((EXTERNAL_NETWORK, EXTERNAL_CIDR, True),
                                     (PRIVATE_NETWORK, PRIVATE_CIDR, False)):
        net_id = str(uuid.uuid5(uuid.NAMESPACE_URL, 'celtic-lab/net/' + net_name))
        subnet_id = str(uuid.uuid5(uuid.NAMESPACE_URL, 'celtic-lab/subnet/' + net_name))
        doc['networks'][net_id] = {
            'id': net_id, 'name': net_name, 'router:external': external,
            'status': 'ACTIVE', 'admin_state_up': True, 'shared': external,
            'mtu': 1500, 'preexisting': True}
        doc['subnets'][subnet_id] = subnet_record(
            subnet_id, net_name + '-subnet', net_id, cidr, preexisting=True)
    return doc


def subnet_record(subnet_id: str, name: str, network_id: str, cidr: str,
                  preexisting: bool = False, **extra: Any) -> dict[str, Any]:
    """A Neutron-shaped subnet (gateway on the first host, pool from the second)."""
    net = ipaddress.ip_network(cidr, strict=False)
    hosts = list(_host_range(net, 0, 2))
    record = {
        'id': subnet_id, 'name': name, 'network_id': network_id, 'cidr': str(net),
        'ip_version': net.version, 'gateway_ip': str(hosts[0]) if hosts else None,
        'allocation_pools': ([{'start': str(hosts[1]),
                               'end': str(net.broadcast_address - 1)}]
                             if len(hosts) > 1 else []),
        'enable_dhcp': True, 'dns_nameservers': [], 'host_routes': [],
        'preexisting': preexisting}
    record.update(extra)
    return record


def _host_range(net: ipaddress._BaseNetwork, skip: int, count: int | None = None):
    """Host addresses of net (without network and broadcast), from index skip."""
    first = int(net.network_address) + 1 + skip
    last = int(net.broadcast_address) - 1
    stop = last + 1 if count is None else min(last + 1, first + count)
    for value in range(first, stop):
        yield ipaddress.ip_address(value)


class Cloud:
    """Access to one lab's fake cloud directory (safe across processes)."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, CLOUD_FILE)
        self._lock_path = os.path.join(directory, LOCK_FILE)
        self._cache: tuple[tuple[int, int], dict] | None = None

    # ------------------------------------------------------------------ set-up

    def initialise(self) -> None:
        """Create the directory with the default catalogue and default behaviour."""
        os.makedirs(self.directory, exist_ok=True)
        os.makedirs(os.path.join(self.directory, 'nodes'), exist_ok=True)
        with self.transaction() as doc:
            if not doc:
                doc.update(default_catalogue())
        if not os.path.exists(os.path.join(self.directory, BEHAVIOUR_FILE)):
            self.set_behaviour([])

    # ----------------------------------------------------------------- storage

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, 'a') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        # One local reference: the engine's threads share this object, and a writer
        # in another thread may drop the cache between two reads of the attribute.
        cached = self._cache
        if cached is None or cached[0] != key:
            with open(self.path) as f:
                cached = (key, json.load(f))
            self._cache = cached
        return cached[1]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Yield the whole document for a read-modify-write under the lock."""
        with self._locked():
            doc = copy.deepcopy(self._read())
            yield doc
            tmp = '%s.%d.tmp' % (self.path, os.getpid())
            with open(tmp, 'w') as f:
                json.dump(doc, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            self._cache = None

    def snapshot(self) -> dict:
        """A read-only view of the document (re-read only when the file changed).

        No lock: writers replace the file atomically, so a reader sees the state
        before or after a change, never half of it."""
        return self._read()

    # ------------------------------------------------------------------ lookup

    def find(self, kind: str, name_or_id: str, doc: dict | None = None) -> dict:
        """The object of this kind with this id or (unique) name, else NotFound."""
        doc = self.snapshot() if doc is None else doc
        objects = doc.get(kind, {})
        if name_or_id in objects:
            return objects[name_or_id]
        named = [o for o in objects.values() if o.get('name') == name_or_id]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise CloudError('Multiple %s matches found for name %r, use an ID to be '
                             'more specific.' % (kind, name_or_id))
        raise NotFound('%s %s could not be found.' % (_singular(kind), name_or_id))

    def leftovers(self) -> dict[str, list[str]]:
        """Objects created by stacks that still exist, by kind (names or ids)."""
        doc = self.snapshot()
        left = {}
        for kind in KINDS:
            names = [o.get('name') or o['id'] for o in doc.get(kind, {}).values()
                     if not o.get('preexisting')]
            if names:
                left[kind] = sorted(names)
        return left

    def count(self, kind: str) -> int:
        """How many objects of this kind stacks created."""
        return sum(1 for o in self.snapshot().get(kind, {}).values()
                   if not o.get('preexisting'))

    # -------------------------------------------------------------- addressing

    @staticmethod
    def allocate_ip(doc: dict, subnet: dict, owner: str, hint: str,
                    wanted: str | None = None) -> str:
        """Give owner an address of subnet: wanted, or the first free one from a
        position derived from hint."""
        used = doc.setdefault('ips', {}).setdefault(subnet['id'], {})
        net = ipaddress.ip_network(subnet['cidr'])
        if wanted:
            if ipaddress.ip_address(wanted) not in net:
                raise CloudError('IP address %s is not a valid IP for the specified '
                                 'subnet.' % wanted)
            if wanted in used:
                raise Conflict('IP address %s already allocated in subnet %s'
                               % (wanted, subnet['id']))
            used[wanted] = owner
            return wanted
        pool = [ipaddress.ip_address(p) for p in
                (subnet['allocation_pools'][0]['start'],
                 subnet['allocation_pools'][0]['end'])] if subnet.get(
                     'allocation_pools') else None
        if not pool:
            raise CloudError('No more IP addresses available on subnet %s.' % subnet['id'])
        start, end = int(pool[0]), int(pool[1])
        size = end - start + 1
        offset = zlib.crc32(hint.encode()) % size
        for step in range(size):
            candidate = str(ipaddress.ip_address(start + (offset + step) % size))
            if candidate not in used:
                used[candidate] = owner
                return candidate
        raise CloudError('No more IP addresses available on network %s.'
                         % subnet['network_id'])

    @staticmethod
    def release_ips(doc: dict, owner: str) -> None:
        """Free every address held by owner."""
        for used in doc.get('ips', {}).values():
            for ip in [ip for ip, who in used.items() if who == owner]:
                del used[ip]

    # --------------------------------------------------------------- behaviour

    def set_behaviour(self, rules: list[dict], defaults: dict | None = None) -> None:
        """Tell servers how to behave.

        rules: a list of {"match": "<name glob>", "boot_seconds": N,
        "configure_seconds": N, "fail": {"step": "...", "message": "..."},
        "error": "<Nova fault>", "refuse": "<why Nova turns the create down>"}; the
        first rule whose glob matches a server's name
        applies on top of defaults.
        """
        doc = {'defaults': dict(DEFAULT_BEHAVIOUR, **(defaults or {})), 'servers': rules}
        path = os.path.join(self.directory, BEHAVIOUR_FILE)
        tmp = path + '.%d.tmp' % os.getpid()
        with open(tmp, 'w') as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, path)

    def behaviour(self, server_name: str) -> dict:
        """How the server called server_name behaves (see set_behaviour)."""
        try:
            with open(os.path.join(self.directory, BEHAVIOUR_FILE)) as f:
                doc = json.load(f)
        except FileNotFoundError:
            doc = {}
        result = dict(DEFAULT_BEHAVIOUR, **doc.get('defaults', {}))
        for rule in doc.get('servers', []):
            if fnmatch.fnmatchcase(server_name, rule.get('match', '*')):
                result.update({k: v for k, v in rule.items() if k != 'match'})
                break
        return result

    def node_dir(self, server_name: str, server_id: str) -> str:
        """Where the simulated node keeps its files and its console log."""
        return os.path.join(self.directory, 'nodes', '%s-%s' % (server_name, server_id[:8]))


def _singular(kind: str) -> str:
    return {'servers': 'Server', 'ports': 'Port', 'floating_ips': 'Floating IP',
            'networks': 'Network', 'subnets': 'Subnet', 'routers': 'Router',
            'security_groups': 'Security group', 'server_groups': 'Server group',
            'volumes': 'Volume', 'images': 'Image', 'flavors': 'Flavor',
            'keypairs': 'Keypair', 'volume_types': 'Volume type'}.get(kind, kind)


def new_id() -> str:
    """A fresh UUID string for a cloud object."""
    return _new_id()
