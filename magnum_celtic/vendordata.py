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

"""celtic-vendordata: the nodes' secrets through Nova's metadata service, and their
wait-condition signals relayed to Heat. Does I/O (Magnum's database and certificate
manager, Heat as Magnum's service user). Clusters are found through one seam,
:class:`Clusters` (:class:`MagnumClusters` here; the labs without Magnum run this same
service on the stacks they created, ``magnum_celtic.lab.heat_clusters``).

Two routes (doc/security.md has the design and the threat model):

``POST /v1/vendordata``
    Nova's DynamicJSON call for every instance that reads its metadata, behind
    keystonemiddleware (magnum.conf ``[keystone_authtoken]``) and one of
    ``[celtic_vendordata] allowed_roles``. The instance's user-data names its cluster and
    role (``/etc/celtic/params.json``), but only as a hint: the answer is the role's
    secrets only when Heat, read as admin, shows that this instance is a server of
    that cluster's stacks in the group of that role, with the role's fragment files
    that travel here rather than in the user_data (``files``: the masters' optional
    add-ons, fragments/bundles.yaml, read from the cluster stack's files). Anything
    else is ``{}`` (Nova then serves no ``celtic`` key) and one WARNING line.
``POST /v1/signal``
    A node's SUCCESS or FAILURE, signed with the per-node key vendordata gave it
    (``pki.signal_key``); relayed to the wait condition handle of the node's group
    (``"handle": "members"``: the group's members_handle, master 0's report during a
    master removal).

Heat is read once per stack tree and kept (:class:`ServerIndex`): a resource listing
of a tree loads every resource of it, so one listing per booting node would cost a
900-minion cluster 900 full loads. A server the index does not know yet makes it read
the tree again, at most once a second per stack. A cluster's PKI is derived once and
kept (:class:`PKICache`): deriving it loads the CA key and signs a certificate, tens of
milliseconds of CPU that every node's two requests would otherwise pay again. Heat is
read through one Keystone session of Magnum's service user, not a new token per request.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import gzip
import hmac
import json
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterable, Mapping

import yaml
from oslo_log import log as logging

from magnum_celtic import conf
from magnum_celtic import heat as heat_api
from magnum_celtic import pki
from magnum_celtic import templates

LOG = logging.getLogger(__name__)
CONF = conf.CONF

VERSION = 1
#: largest signal body accepted, and the longest reason
SIGNAL_LIMIT = 64 * 1024
REASON_LIMIT = 1000
#: where a node's params.json is written by its user-data (the hint)
PARAMS_PATH = '/etc/celtic/params.json'
#: levels below a stack that the listing walks (a master's server is 4 levels down)
NESTED_DEPTH = 5
#: the resource of the root stack (or of a nodegroup's stack) a server's group hangs
#: from -> the role of its servers
GROUP_ROLES = {'masters': 'master', 'proxies': 'proxy', 'storage': 'storage',
               'minions': 'minion', 'nodes': 'minion'}
SERVER_TYPE = 'OS::Nova::Server'
WAIT_HANDLE = 'wait_handle'
#: the handles of a group a node may signal: its boot report (no ``handle`` in the
#: signal) and master 0's report that removed masters are out (doc/master-resize.md)
HANDLES = {'': WAIT_HANDLE, 'members': 'members_handle'}
#: seconds between two reads of one stack tree, however many nodes ask
MIN_REREAD_SECONDS = 1.0
MAX_INDEXED_STACKS = 512
#: how long a relayed signal is watched for in its handle's metadata before the next
#: signal to that handle goes, and how long a signal waits for its turn at most
SIGNAL_RECORD_SECONDS = 10.0
SIGNAL_TURN_SECONDS = 60.0
#: pauses between two reads of the handle's metadata (the last one repeats)
SIGNAL_POLL_SECONDS = (0.02, 0.05, 0.1, 0.2)


class Refused(Exception):
    """The request gets nothing; the message is the reason logged (never a secret)."""


# ---- the hint in the user-data ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Hint:
    """What an instance's user-data claims: its cluster, role and pool."""
    cluster_uuid: str
    role: str
    pool: str | None


def read_hint(user_data: str | None) -> Hint | None:
    """The celtic params of a user-data (Nova's base64 text); None for any other
    instance, found without parsing when the user-data does not name params.json."""
    if not user_data:
        return None
    try:
        raw = base64.b64decode(user_data)
        if raw[:2] == b'\x1f\x8b':
            raw = gzip.decompress(raw)
    except (binascii.Error, ValueError, OSError, EOFError):
        return None
    if PARAMS_PATH.encode() not in raw:
        return None
    try:
        doc = yaml.load(raw, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
        entry = next(e for e in doc.get('write_files') or []
                     if isinstance(e, dict) and e.get('path') == PARAMS_PATH)
        params = json.loads(entry.get('content') or '')
    except (yaml.YAMLError, AttributeError, StopIteration, ValueError, TypeError):
        return None
    if not isinstance(params, dict):
        return None
    uuid, role, pool = params.get('cluster_uuid'), params.get('role'), params.get('pool')
    if not isinstance(uuid, str) or not isinstance(role, str):
        return None
    return Hint(uuid, role, pool if isinstance(pool, str) else None)


# ---- where a server is in its stack tree --------------------------------------------

@dataclasses.dataclass(frozen=True)
class Placement:
    """A server of a celtic stack tree: the role of its group and the group's wait
    condition handle (stack name, stack id), if it has one."""
    role: str
    handle: tuple[str, str] | None


def _link(row: Mapping[str, Any], rel: str) -> tuple[str, str] | None:
    """(stack name, stack id) of a row's ``stack`` or ``nested`` link."""
    for link in row.get('links') or []:
        if link.get('rel') == rel:
            parts = urllib.parse.urlsplit(link.get('href', '')).path.split('/')
            if 'stacks' in parts and len(parts) >= parts.index('stacks') + 3:
                at = parts.index('stacks')
                return (urllib.parse.unquote(parts[at + 1]),
                        urllib.parse.unquote(parts[at + 2]))
    return None


def placements(rows: Iterable[Mapping[str, Any]]) -> dict[str, Placement]:
    """instance id -> Placement, from one nested resource listing of a stack tree.

    A server's role comes from the resource of the listed stack its group hangs from
    (``masters``, ``proxies``, ``storage``, ``minions``; ``nodes`` in a nodegroup's
    stack), found by walking the nested-stack links up; its handle is the nearest
    ``wait_handle`` on that walk."""
    rows = list(rows)
    parent: dict[str, tuple[str, str]] = {}
    handles: dict[str, tuple[str, str]] = {}
    for row in rows:
        stack, nested = _link(row, 'stack'), _link(row, 'nested')
        if stack and nested:
            parent[nested[1]] = (stack[1], row.get('resource_name', ''))
        if stack and row.get('resource_name') == WAIT_HANDLE:
            handles[stack[1]] = stack
    found = {}
    for row in rows:
        stack = _link(row, 'stack')
        instance = row.get('physical_resource_id')
        if row.get('resource_type') != SERVER_TYPE or not instance or not stack:
            continue
        top, handle, at, seen = row.get('resource_name', ''), None, stack[1], set()
        while at not in seen:
            seen.add(at)
            handle = handle or handles.get(at)
            if at not in parent:
                break
            at, top = parent[at]
        role = GROUP_ROLES.get(top)
        if role:
            found[instance] = Placement(role, handle)
    return found


def pool_stacks(rows: Iterable[Mapping[str, Any]],
                servers: Mapping[str, Placement]) -> dict[str, tuple[str, Placement]]:
    """The stacks of a listing that hold minion servers as their own rows (a pool's
    servers stack, ``minion_nodes.yaml``): stack id -> (stack name, the Placement of
    every server in it). A minion added later is a new row of that one stack."""
    found = {}
    for row in rows:
        placement = servers.get(row.get('physical_resource_id') or '')
        stack = _link(row, 'stack')
        if placement and placement.role == 'minion' and stack:
            found[stack[1]] = (stack[0], placement)
    return found


@dataclasses.dataclass
class _Entry:
    lock: threading.Lock
    read_at: float = float('-inf')
    servers: dict[str, Placement] = dataclasses.field(default_factory=dict)
    pools: dict[str, tuple[str, Placement]] = dataclasses.field(default_factory=dict)
    pools_read_at: float = float('-inf')


class ServerIndex:
    """The servers of stack trees, read from Heat once and again only when a server
    is asked for that the last read, started after the request came, did not show.
    One read at a time per stack; a request that arrives meanwhile waits for it.

    A minion the index does not know is looked for first in the servers stacks of the
    tree's pools (one stack each, ``nested_depth`` 0): a resize adds its minions there,
    and listing that one stack costs heat-engine about a third of listing the tree
    (which loads every nested stack: masters, proxies, storage, addresses...). Only a
    minion not found there makes the whole tree be read again."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.reads = 0
        self.pool_reads = 0
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()

    def _entry(self, stack_id: str) -> _Entry:
        with self._guard:
            entry = self._entries.pop(stack_id, None) or _Entry(threading.Lock())
            self._entries[stack_id] = entry          # most recently used last
            while len(self._entries) > MAX_INDEXED_STACKS:
                self._entries.pop(next(iter(self._entries)))
            return entry

    def known(self, stack_id: str, instance_id: str) -> Placement | None:
        """What the last read of the tree says about the instance, reading nothing."""
        with self._guard:
            entry = self._entries.get(stack_id)
        if entry is None or self.clock() - entry.read_at >= self.seconds:
            return None
        return entry.servers.get(instance_id)

    def _pause(self, entry: _Entry, last: float) -> None:
        wait = last + MIN_REREAD_SECONDS - self.clock()
        if wait > 0:
            time.sleep(wait)

    def _read_pools(self, entry: _Entry, instance_id: str, asked_at: float,
                    read_pool: Callable[[str, str], list[Mapping[str, Any]] | None]
                    ) -> Placement | None:
        """Look for a minion in the pools' servers stacks (each read as a whole: what
        it lists is every server of that pool now)."""
        if entry.pools_read_at < asked_at:
            self._pause(entry, entry.pools_read_at)
            started = self.clock()
            for stack_id, (name, placement) in list(entry.pools.items()):
                rows = read_pool(stack_id, name)
                self.pool_reads += 1
                if rows is None:         # the pool is gone: the tree read tells the rest
                    continue
                entry.servers = {i: p for i, p in entry.servers.items() if p != placement}
                for row in rows:
                    instance = row.get('physical_resource_id')
                    if row.get('resource_type') == SERVER_TYPE and instance:
                        entry.servers[instance] = placement
            entry.pools_read_at = started
        return entry.servers.get(instance_id)

    def find(self, stack_id: str, instance_id: str,
             read: Callable[[], list[Mapping[str, Any]] | None],
             read_pool: Callable[[str, str], list[Mapping[str, Any]] | None] | None = None
             ) -> Placement | None:
        """Where ``instance_id`` is in the tree of ``stack_id`` (``read()`` lists it;
        ``read_pool(stack id, name)``, when given, lists one pool's servers stack: the
        caller expects a minion)."""
        asked_at = self.clock()
        entry = self._entry(stack_id)
        with entry.lock:
            fresh = self.clock() - entry.read_at < self.seconds
            if fresh and (instance_id in entry.servers or entry.read_at >= asked_at):
                return entry.servers.get(instance_id)
            if read_pool is not None and entry.pools:
                found = self._read_pools(entry, instance_id, asked_at, read_pool)
                if found:
                    return found
            self._pause(entry, entry.read_at)
            started = self.clock()
            rows = list(read() or [])
            self.reads += 1
            entry.servers = placements(rows)
            entry.pools = pool_stacks(rows, entry.servers)
            entry.read_at = started
            return entry.servers.get(instance_id)


class PKICache:
    """Each cluster's PKI, derived once and kept in this process's memory only, for at
    most ``seconds`` and MAX_INDEXED_STACKS clusters. An entry is keyed by the cluster
    and by what changes when its certificates do (``Clusters.pki_version``), so a
    rotated CA is derived anew at once. A version of None is never kept."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.builds = 0
        self._entries: dict[Any, tuple[float, pki.ClusterPKI]] = {}
        self._guard = threading.Lock()

    def peek(self, version: Any) -> pki.ClusterPKI | None:
        """The kept PKI of that version, deriving nothing."""
        if version is None:
            return None
        with self._guard:
            entry = self._entries.get(version)
        if entry is None or self.clock() - entry[0] >= self.seconds:
            return None
        return entry[1]

    def get(self, version: Any, build: Callable[[], pki.ClusterPKI]) -> pki.ClusterPKI:
        """The PKI of that version: kept, or ``build()`` (then kept)."""
        found = self.peek(version)
        if found is not None:
            return found
        built = build()
        self.builds += 1
        if version is not None and self.seconds > 0:
            with self._guard:
                self._entries.pop(version, None)
                self._entries[version] = (self.clock(), built)   # most recent last
                while len(self._entries) > MAX_INDEXED_STACKS:
                    self._entries.pop(next(iter(self._entries)))
        return built


# ---- where the clusters come from ----------------------------------------------------

class Clusters:
    """Where the service finds a cluster, the stacks its servers are in and its PKI:
    the service's one seam. In production it is Magnum (:class:`MagnumClusters`);
    the Heat-only labs, which run no Magnum, pass the stacks they created
    (``magnum_celtic.lab.vendordata``). Everything else (the hint, the project and
    role checks, Heat read as admin, the secrets of each role, the signal relay) is
    the service's own and the same for both."""

    def cluster(self, context: Any, cluster_uuid: str) -> Any:
        """The cluster (``uuid``, ``project_id``, ``stack_id``); :class:`Refused` when
        there is none."""
        raise NotImplementedError

    def stacks(self, cluster: Any, pool: str | None) -> list[tuple[str, str]]:
        """(stack id, stack name) of the trees a server of ``pool`` may be in: a
        nodegroup's own stack, or the cluster's (every other node); all of them when
        the pool is not known (a signal)."""
        raise NotImplementedError

    def pki(self, context: Any, cluster: Any) -> pki.ClusterPKI:
        """The cluster's CAs and the secrets derived from them."""
        raise NotImplementedError

    def seed(self, context: Any, cluster: Any) -> bytes:
        """The cluster's seed (``ClusterPKI.seed``): all a signal key needs."""
        raise NotImplementedError

    def pki_version(self, cluster: Any) -> Any:
        """A hashable that names the cluster's certificates: it changes whenever
        :meth:`pki` would return another PKI. None: never keep this cluster's PKI."""
        return None

    def credential(self, context: Any, cluster: Any, seed: bytes) -> str | None:
        """The masters' application credential file (``pki.CREDENTIAL_FILE``), or None
        when the cluster has none. Read on every master's request, never kept: a
        rotation reaches the next master that asks."""
        return None


class MagnumClusters(Clusters):
    """Magnum's clusters: its database and its certificate manager."""

    def cluster(self, context: Any, cluster_uuid: str) -> Any:
        from magnum.common import exception
        from magnum import objects
        try:
            return objects.Cluster.get_by_uuid(context, cluster_uuid)
        except (exception.ClusterNotFound, exception.InvalidUUID, ValueError):
            raise Refused('cluster %s does not exist' % cluster_uuid)

    def stacks(self, cluster: Any, pool: str | None) -> list[tuple[str, str]]:
        from magnum_celtic import adapters
        from magnum_celtic import request as stack
        root = [(cluster.stack_id, stack.cluster_stack_name(cluster.name, cluster.uuid))]
        pools = [(ng.stack_id, stack.pool_stack_name(cluster.name, cluster.uuid, ng.name),
                  ng.name) for ng in adapters.iter_pool_nodegroups(cluster)]
        if pool is None:
            return root + [(sid, name) for sid, name, _ in pools]
        own = [(sid, name) for sid, name, ng_name in pools if ng_name == pool]
        return own or root

    def pki(self, context: Any, cluster: Any) -> pki.ClusterPKI:
        from magnum_celtic import certs
        return certs.cluster_pki(context, cluster)

    def seed(self, context: Any, cluster: Any) -> bytes:
        from magnum_celtic import certs
        return certs.cluster_seed(context, cluster)

    def credential(self, context: Any, cluster: Any, seed: bytes) -> str | None:
        from magnum_celtic import appcred
        found = appcred.load(context, cluster, seed)
        if found is None:
            return None
        return found.node_file(appcred.node_auth_url(), CONF.heat_client.region_name)

    def pki_version(self, cluster: Any) -> Any:
        # Magnum stores each certificate under a new ref when it issues one (a CA
        # rotation gives new refs), so the refs name the PKI
        return (cluster.uuid, cluster.ca_cert_ref, cluster.etcd_ca_cert_ref,
                cluster.front_proxy_ca_cert_ref, cluster.magnum_cert_ref)


# ---- the service ---------------------------------------------------------------------

class HandleRelay:
    """Signals to a wait condition handle, one at a time, each until Heat has recorded it.

    heat-api answers a signal once heat-engine has *started* handling it; the engine then
    merges it into the handle's metadata with a compare-and-swap write which, when another
    signal of the same handle wrote first, is retried after a random exponential pause
    (Heat's ``retry_on_conflict``: up to 11 attempts, pauses of up to 60 s; after the
    last one the signal is dropped). The nodes of a pool finish within seconds of each
    other and all signal the pool's one handle: in a 50-minion create on the lab the
    pool's wait condition saw its last signal 13 s after the relay had passed it on (a
    create of 34 s instead of 24 s). One signal per handle at a time, each watched until
    the handle's metadata shows it (``Heat.signal_ids``), leaves the engine nothing to
    retry. Handles are independent; a signal that waits longer than
    SIGNAL_TURN_SECONDS for its turn goes anyway (the node's own timeout is longer), and
    one that Heat has not recorded after SIGNAL_RECORD_SECONDS lets the next one go."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 record_seconds: float = SIGNAL_RECORD_SECONDS,
                 turn_seconds: float = SIGNAL_TURN_SECONDS):
        self.clock = clock
        self.sleep = sleep
        self.record_seconds = record_seconds
        self.turn_seconds = turn_seconds
        self._turns: dict[str, list[Any]] = {}   # handle -> [lock, signals using it]
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def _turn(self, key: str) -> Any:
        with self._guard:
            entry = self._turns.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        got = entry[0].acquire(timeout=self.turn_seconds)
        if not got:
            LOG.warning('signals to %s queued for over %.0f s: relaying one out of turn',
                        key, self.turn_seconds)
        try:
            yield
        finally:
            if got:
                entry[0].release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    self._turns.pop(key, None)

    def relay(self, heat: heat_api.Heat, stack_name: str, stack_id: str,
              resource_name: str, data: Mapping[str, Any]) -> bool:
        """Signal the handle (``Heat.signal``: False when it is gone) and wait, in turn,
        until Heat has recorded it."""
        with self._turn('%s/%s' % (stack_id, resource_name)):
            if not heat.signal(stack_name, stack_id, resource_name, data):
                return False
            self._wait_recorded(heat, stack_name, stack_id, resource_name,
                                str(data['id']))
            return True

    def _wait_recorded(self, heat: heat_api.Heat, stack_name: str, stack_id: str,
                       resource_name: str, signal_id: str) -> None:
        deadline = self.clock() + self.record_seconds
        pauses = iter(SIGNAL_POLL_SECONDS)
        while True:
            try:
                ids = heat.signal_ids(stack_name, stack_id, resource_name)
            except heat_api.HeatError as error:   # it was relayed: this read only paces
                LOG.info('signal %s to %s/%s relayed; its record not read: %s',
                         signal_id[:64], stack_name, resource_name, error)
                return
            if ids is None or signal_id in ids:
                return
            if self.clock() >= deadline:
                LOG.warning('signal %s to %s/%s not recorded by Heat after %.0f s; the '
                            'next one goes', signal_id[:64], stack_name, resource_name,
                            self.record_seconds)
                return
            self.sleep(next(pauses, SIGNAL_POLL_SECONDS[-1]))


class Service:
    """The two operations, on the clusters of ``clusters`` (Magnum's by default) and
    Heat (as Magnum's service user, magnum.conf ``[keystone_auth]``)."""

    def __init__(self, index: ServerIndex | None = None,
                 clusters: Clusters | None = None):
        self.index = index or ServerIndex(CONF.celtic_vendordata.index_seconds)
        self.clusters = clusters or MagnumClusters()
        self.pkis = PKICache(CONF.celtic_vendordata.index_seconds)
        self.relay = HandleRelay()
        self._session: Any = None
        self._session_lock = threading.Lock()
        self._files: dict[str, tuple[float, dict[str, str]]] = {}
        self._files_lock = threading.Lock()

    @staticmethod
    def _context() -> Any:
        from magnum.common import context
        return context.make_admin_context(all_tenants=True)

    def _heat(self, context: Any, cluster: Any) -> heat_api.Heat:
        """Heat as Magnum's service user, through one Keystone session (its token is
        reused until it expires; keystoneauth then fetches another). Its reads are not
        cut at ``[celtic] heat_read_timeout``: that bound is for the status poll, which
        holds the cluster's lock; a node that asks here while heat-engine is gone
        retries, and the tree read of a cluster at Heat's cap takes tens of seconds."""
        from magnum_celtic import adapters
        with self._session_lock:
            if self._session is None:
                self._session = adapters.keystone_session(context)
            session = self._session
        return heat_api.Heat(session, project_id=cluster.project_id, bounded_reads=False)

    def files(self, context: Any, cluster: Any, role: str) -> str:
        """The fragment files ``role``'s nodes get from here (a base64 xz tar; ''
        for none): the cluster stack's own copy (``templates.served_file``), rendered
        with the bundles its servers boot from, so a master never gets another
        release's. A stack an earlier release created has none (its masters carry
        every file in their user_data). Read once per stack for ``index_seconds``."""
        stack_id, stack_name = self.clusters.stacks(cluster, None)[0]   # the cluster's
        with self._files_lock:
            kept = self._files.get(stack_id)
            if kept is not None and kept[0] > time.monotonic():
                return kept[1].get(role, '')
        stored = self._heat(context, cluster).files(stack_id, stack_name) or {}
        served = {name: stored.get(templates.served_file(name), '')
                  for name in pki.ROLES}
        with self._files_lock:
            self._files[stack_id] = (
                time.monotonic() + CONF.celtic_vendordata.index_seconds, served)
        return served.get(role, '')

    def _pki(self, context: Any, cluster: Any) -> pki.ClusterPKI:
        return self.pkis.get(self.clusters.pki_version(cluster),
                             lambda: self.clusters.pki(context, cluster))

    def _seed(self, context: Any, cluster: Any) -> bytes:
        kept = self.pkis.peek(self.clusters.pki_version(cluster))
        return kept.seed if kept is not None else self.clusters.seed(context, cluster)

    def _locate(self, context: Any, cluster: Any, instance_id: str,
                pool: str | None, minion: bool = False) -> Placement | None:
        """Where the instance is in the cluster's stacks; ``minion``: the caller says it
        is one (then its pool's servers stack is read before the whole tree)."""
        if not cluster.stack_id:
            raise Refused('cluster %s has no stack' % cluster.uuid)
        heat = self._heat(context, cluster)
        stacks = self.clusters.stacks(cluster, pool)
        for stack_id, _ in stacks:   # a signal: the tree vendordata read already
            found = self.index.known(stack_id, instance_id)
            if found:
                return found
        read_pool = (lambda sid, name: heat.resources(sid, name)) if minion else None
        for stack_id, name in stacks:
            found = self.index.find(
                stack_id, instance_id,
                lambda: heat.resources(stack_id, name, nested_depth=NESTED_DEPTH),
                read_pool)
            if found:
                return found
        return None

    def vendordata(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Nova's DynamicJSON request -> what Nova serves under ``celtic``, or {}."""
        hint = read_hint(request.get('user-data'))
        if hint is None:
            return {}
        instance_id = str(request.get('instance-id') or '')
        try:
            return self._vendordata(request, hint, instance_id)
        except Refused as refusal:
            LOG.warning('vendordata for instance %s refused: %s', instance_id, refusal)
        except heat_api.HeatError as error:
            LOG.warning('vendordata for instance %s not served: %s', instance_id, error)
        except Exception as error:  # whatever broke, Nova gets {} and no traceback
            LOG.warning('vendordata for instance %s failed: %s: %s', instance_id,
                        type(error).__name__, error)
        return {}

    def _vendordata(self, request: Mapping[str, Any], hint: Hint,
                    instance_id: str) -> dict[str, Any]:
        if hint.role not in pki.ROLES:
            raise Refused('user-data names an unknown role %r' % hint.role[:40])
        context = self._context()
        cluster = self.clusters.cluster(context, hint.cluster_uuid)
        if cluster.project_id != request.get('project-id'):
            raise Refused('cluster %s is not of project %s'
                          % (cluster.uuid, request.get('project-id')))
        minion = hint.role == 'minion'
        placement = self._locate(context, cluster, instance_id,
                                 hint.pool if minion else None, minion)
        if placement is None:
            raise Refused('not a server of the stacks of cluster %s' % cluster.uuid)
        if placement.role != hint.role:
            raise Refused('user-data says %s, Heat says %s of cluster %s'
                          % (hint.role, placement.role, cluster.uuid))
        cluster_pki = self._pki(context, cluster)
        credential = (self.clusters.credential(context, cluster, cluster_pki.seed)
                      if placement.role == 'master' else None)
        secrets = pki.role_secrets(cluster_pki, credential=credential)[placement.role]
        files = self.files(context, cluster, placement.role) if placement.role == 'master' \
            else ''
        LOG.info('vendordata for instance %s: %s of cluster %s, %d secrets%s', instance_id,
                 placement.role, cluster.uuid, len(secrets),
                 ', fragment files of %d bytes' % len(files) if files else '')
        answer = {'version': VERSION, 'cluster_uuid': cluster.uuid, 'role': placement.role,
                  'node': request.get('hostname') or '',
                  'secrets': secrets,
                  'signal': {'url': signal_url(), 'cluster_uuid': cluster.uuid,
                             'instance_id': instance_id,
                             'key': pki.signal_key(cluster_pki.seed, instance_id)}}
        if files:
            answer['files'] = files
        return answer

    def signal(self, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        """A node's signal -> (HTTP status, JSON answer)."""
        try:
            doc = json.loads(body)
            cluster_uuid, instance_id = doc['cluster_uuid'], doc['instance_id']
            if not isinstance(cluster_uuid, str) or not isinstance(instance_id, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return 400, {'error': 'the body must be a JSON object with cluster_uuid '
                                  'and instance_id'}
        try:
            context = self._context()
            cluster = self.clusters.cluster(context, cluster_uuid)
            key = pki.signal_key(self._seed(context, cluster), instance_id)
        except Refused as refusal:
            LOG.warning('signal of instance %s refused: %s', instance_id, refusal)
            return 401, {'error': 'unauthorized'}
        except Exception as error:
            LOG.warning('signal of instance %s not checked: %s: %s', instance_id,
                        type(error).__name__, error)
            return 503, {'error': 'not relayed, try again'}
        expected = 'sha256=' + hmac.new(key.encode(), body, 'sha256').hexdigest()
        if not hmac.compare_digest(expected.encode(), (signature or '').strip().encode()):
            LOG.warning('signal of instance %s refused: wrong signature', instance_id)
            return 401, {'error': 'unauthorized'}
        problem = _signal_problem(doc)
        if problem:
            return 400, {'error': problem}
        data = {'status': doc['status'], 'reason': doc.get('reason') or '',
                'data': doc.get('data') or '', 'id': doc.get('id') or instance_id}
        try:
            placement = self._locate(context, cluster, instance_id, None)
            if placement is None or placement.handle is None:
                LOG.warning('signal of instance %s dropped: no wait condition of cluster '
                            '%s waits for it', instance_id, cluster.uuid)
                return 404, {'error': 'no wait condition waits for this node'}
            heat = self._heat(context, cluster)
            if not self.relay.relay(heat, placement.handle[0], placement.handle[1],
                                    HANDLES[doc.get('handle') or ''], data):
                return 404, {'error': 'no wait condition waits for this node'}
        except Refused as refusal:
            LOG.warning('signal of instance %s dropped: %s', instance_id, refusal)
            return 404, {'error': 'no wait condition waits for this node'}
        except heat_api.HeatUnavailable as error:
            LOG.warning('signal of instance %s not relayed yet: %s', instance_id, error)
            return 503, {'error': 'Heat is unavailable, try again'}
        except heat_api.HeatError as error:
            LOG.warning('signal of instance %s not relayed: %s', instance_id, error)
            return 409, {'error': 'Heat did not take the signal'}
        except Exception as error:  # the node retries; no traceback leaves the service
            LOG.warning('signal of instance %s not relayed: %s: %s', instance_id,
                        type(error).__name__, error)
            return 503, {'error': 'not relayed, try again'}
        LOG.info('signal of instance %s (%s, %s) relayed to cluster %s', instance_id,
                 data['id'][:64], data['status'], cluster.uuid)
        return 202, {'status': 'relayed'}


def _signal_problem(doc: Mapping[str, Any]) -> str | None:
    if doc.get('status') not in ('SUCCESS', 'FAILURE'):
        return 'status must be SUCCESS or FAILURE'
    for field in ('reason', 'id', 'data', 'handle'):
        if not isinstance(doc.get(field, ''), str):
            return '%s must be a string' % field
    if (doc.get('handle') or '') not in HANDLES:
        return 'handle must be one of %s' % ', '.join(sorted(h for h in HANDLES if h))
    if len(doc.get('reason') or '') > REASON_LIMIT:
        return 'reason must be at most %d characters' % REASON_LIMIT
    return None


def signal_url() -> str:
    """Where nodes send their signals."""
    return (CONF.celtic_vendordata.public_url or '').rstrip('/') + '/v1/signal'


# ---- WSGI ----------------------------------------------------------------------------

def _answer(start_response: Callable, status: int, doc: Any) -> list[bytes]:
    reasons = {200: 'OK', 202: 'Accepted', 400: 'Bad Request', 401: 'Unauthorized',
               403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
               409: 'Conflict', 413: 'Payload Too Large', 503: 'Service Unavailable'}
    body = json.dumps(doc).encode()
    start_response('%d %s' % (status, reasons.get(status, '')),
                   [('Content-Type', 'application/json'),
                    ('Content-Length', str(len(body)))])
    return [body]


def _read_body(environ: Mapping[str, Any]) -> bytes | None:
    """The request body, or None when it is over SIGNAL_LIMIT."""
    try:
        length = int(environ.get('CONTENT_LENGTH') or 0)
    except ValueError:
        length = 0
    if length > SIGNAL_LIMIT:
        return None
    body = environ['wsgi.input'].read(length if length else SIGNAL_LIMIT + 1)
    return None if len(body) > SIGNAL_LIMIT else body


class Application:
    """The WSGI application: keystonemiddleware in front of /v1/vendordata only (the
    signal relay is authenticated by its signature)."""

    def __init__(self, service: Service | None = None,
                 auth_conf: Mapping[str, Any] | None = None):
        from keystonemiddleware import auth_token
        self.service = service or Service()
        self._authenticated_vendordata = auth_token.AuthProtocol(
            self._vendordata, dict(auth_conf or {'oslo_config_config': CONF}))

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get('PATH_INFO', '').rstrip('/')
        method = environ.get('REQUEST_METHOD')
        routes = {'/v1/vendordata': self._authenticated_vendordata,
                  '/v1/signal': self._signal}
        if path in ('', '/v1') and method == 'GET':
            return _answer(start_response, 200, {'versions': [
                {'id': 'v1', 'status': 'CURRENT', 'routes': sorted(routes)}]})
        if path not in routes:
            return _answer(start_response, 404, {'error': 'not found'})
        if method != 'POST':
            return _answer(start_response, 405, {'error': 'POST only'})
        return routes[path](environ, start_response)

    def _vendordata(self, environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get('HTTP_X_IDENTITY_STATUS') != 'Confirmed':
            return _answer(start_response, 401, {'error': 'unauthorized'})
        roles = {r.strip() for r in (environ.get('HTTP_X_ROLES') or '').split(',')}
        if not roles & set(CONF.celtic_vendordata.allowed_roles):
            return _answer(start_response, 403, {'error': 'a role of [celtic_vendordata] '
                                                          'allowed_roles is needed'})
        body = _read_body(environ)
        if body is None:
            return _answer(start_response, 413, {'error': 'too large'})
        try:
            request = json.loads(body)
            if not isinstance(request, dict):
                raise ValueError
        except ValueError:
            return _answer(start_response, 400, {'error': 'the body must be a JSON '
                                                          'object'})
        return _answer(start_response, 200, self.service.vendordata(request))

    def _signal(self, environ: dict, start_response: Callable) -> list[bytes]:
        body = _read_body(environ)
        if body is None:
            return _answer(start_response, 413, {'error': 'a signal is at most %d bytes'
                                                          % SIGNAL_LIMIT})
        status, doc = self.service.signal(body, environ.get('HTTP_X_CELTIC_SIGNATURE'))
        return _answer(start_response, status, doc)


def prepare(argv: list[str]) -> None:
    """magnum.conf and logging, as Magnum's own services set them up."""
    from magnum.common import service
    service.prepare_service(argv)


def init_application(argv: list[str] | None = None) -> Application:
    """The WSGI application for uWSGI or mod_wsgi (magnum.conf from
    CELTIC_VENDORDATA_CONFIG, else /etc/magnum/magnum.conf)."""
    import os
    config = os.environ.get('CELTIC_VENDORDATA_CONFIG', '/etc/magnum/magnum.conf')
    prepare(argv if argv is not None else ['celtic-vendordata', '--config-file', config])
    return Application()


def main(argv: list[str] | None = None) -> None:
    """celtic-vendordata [--config-file magnum.conf]: serve on bind_host:bind_port."""
    prepare(['celtic-vendordata'] + list(sys.argv[1:] if argv is None else argv))
    serve(Application())


def serve(application: Application) -> None:
    """Serve ``application`` on ``[celtic_vendordata]`` bind_host:bind_port until
    stopped (magnum.conf already read: :func:`prepare`)."""
    import socketserver
    from wsgiref import simple_server

    if not CONF.celtic_vendordata.public_url:
        LOG.warning('[celtic_vendordata] public_url is not set: nodes cannot signal '
                    'and the driver refuses to create clusters')

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True
        request_queue_size = 128

    class Handler(simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            LOG.debug('%s %s', self.address_string(), format % args)

    group = CONF.celtic_vendordata
    server = simple_server.make_server(group.bind_host, group.bind_port, application,
                                       server_class=Server, handler_class=Handler)
    LOG.info('celtic-vendordata listening on %s:%d', group.bind_host, group.bind_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
