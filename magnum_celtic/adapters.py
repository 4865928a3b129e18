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

"""Magnum objects -> the plain data the pure modules work on, and status back.

The one room that reads Magnum's objects (cluster, template, nodegroups; with the
Neutron look-up an existing network needs and the magnum.conf values a spec needs) and
writes a status result back onto them; the rule "does this nodegroup have a stack of
its own" (:func:`has_own_stack`) is here and nowhere else. It also hands out the
services the driver sends through (Heat on Magnum's Keystone session, the template
set) and turns the pure size checks (:mod:`budget`) and celtic-vendordata's setup into
Magnum's errors. Certificates are in :mod:`certs`; ``spec``, ``request``, ``expand``,
``budget``, ``outputs`` and ``status`` stay pure.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import threading
import time
import types
from typing import Any, Iterator, Mapping

from magnum.common import clients
from magnum.common import exception
from oslo_log import log as logging
from oslo_utils import uuidutils

from magnum_celtic import appcred
from magnum_celtic import budget
from magnum_celtic import conf
from magnum_celtic import heat as heat_api
from magnum_celtic import inventory
from magnum_celtic import labels
from magnum_celtic import spec as spec_mod
from magnum_celtic import status
from magnum_celtic import templates
from magnum_celtic.outputs import StackState

LOG = logging.getLogger(__name__)
CONF = conf.CONF

_TEMPLATE_FIELDS = (
    'image_id', 'flavor_id', 'master_flavor_id', 'keypair_id', 'external_network_id',
    'fixed_network', 'fixed_subnet', 'dns_nameserver', 'network_driver', 'http_proxy',
    'https_proxy', 'no_proxy', 'tls_disabled', 'registry_enabled', 'server_type',
    'cluster_distro', 'coe', 'docker_volume_size', 'floating_ip_enabled',
    'master_lb_enabled')
_CLUSTER_FIELDS = (
    'uuid', 'name', 'keypair', 'master_flavor_id', 'flavor_id', 'floating_ip_enabled',
    'master_lb_enabled', 'fixed_network', 'fixed_subnet', 'create_timeout',
    'docker_volume_size', 'project_id')


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name, None) for name in names}


def nodegroup_data(nodegroup: Any) -> dict[str, Any]:
    """A nodegroup as spec.py reads it (node_labels/node_taints exist from API 1.14)."""
    return {'name': nodegroup.name, 'node_count': nodegroup.node_count,
            'flavor_id': nodegroup.flavor_id, 'image_id': nodegroup.image_id,
            'node_labels': getattr(nodegroup, 'node_labels', None) or {},
            'node_taints': getattr(nodegroup, 'node_taints', None) or [],
            'labels': nodegroup.labels or {}}


def pool_spec(nodegroup: Any, spec: spec_mod.ClusterSpec) -> spec_mod.PoolSpec:
    """A worker nodegroup as a PoolSpec; raises InvalidParameterValue on bad input."""
    try:
        return spec_mod.build_pool(nodegroup_data(nodegroup), spec.image)
    except spec_mod.SpecError as error:
        raise exception.InvalidParameterValue(err=str(error))


def check_new_pool_name(cluster: Any, nodegroup: Any) -> None:
    """Refuse a new nodegroup whose name collides with a role or another nodegroup."""
    others = [ng.name for ng in cluster.nodegroups
              if not ng.is_default and ng.uuid != nodegroup.uuid]
    try:
        spec_mod.check_pool_name(nodegroup.name, others)
    except spec_mod.SpecError as error:
        raise exception.InvalidParameterValue(err=str(error))


def operator_labels() -> dict[str, str | None]:
    """``[celtic_cluster_labels]`` as a plain mapping."""
    group = CONF.celtic_cluster_labels
    return {label.name: getattr(group, label.name) for label in labels.LABELS}


def magnum_defaults() -> spec_mod.Defaults:
    """The magnum.conf values some label defaults come from."""
    return spec_mod.Defaults(
        boot_volume_size=CONF.cinder.default_boot_volume_size or 0,
        boot_volume_type=CONF.cinder.default_boot_volume_type or '',
        docker_volume_type=CONF.cinder.default_docker_volume_type or '',
        nodes_affinity_policy=CONF.cluster.nodes_affinity_policy or 'soft-anti-affinity',
        heat_max_resources_per_stack=CONF.celtic.heat_max_resources_per_stack,
        keystone_auth_url=appcred.node_auth_url(),
        **_keystone_policy())


def _keystone_policy() -> dict[str, str | None]:
    """``[celtic] keystone_auth_default_policy``'s text, or why it cannot be read (an
    error only for the clusters that ask for Keystone login, which spec.py refuses)."""
    path = CONF.celtic.keystone_auth_default_policy
    if not path:
        return {}
    try:
        with open(path, encoding='utf-8') as handle:
            return {'keystone_auth_policy': handle.read()}
    except (OSError, UnicodeDecodeError) as error:
        return {'keystone_auth_policy_error': '%s cannot be read: %s' % (
            path, getattr(error, 'strerror', None) or error)}


def cluster_spec(context: Any, cluster: Any, template: Any = None,
                 warn: bool = True) -> spec_mod.ClusterSpec:
    """Validate and resolve a cluster; raises InvalidParameterValue on bad input
    (``warn``: log the spec's warnings, once per operation)."""
    template = template or cluster.cluster_template
    template_data = _fields(template, _TEMPLATE_FIELDS)
    cluster_data = _fields(cluster, _CLUSTER_FIELDS)
    cluster_data['master_count'] = cluster.master_count
    _resolve_existing_subnet(context, template_data, cluster_data)
    try:
        spec = spec_mod.build(template_data, cluster_data, cluster.labels or {},
                              nodegroup_data(cluster.default_ng_worker),
                              operator_labels(), magnum_defaults())
    except labels.LabelError as error:
        raise inventory.refused('cluster %s' % cluster.uuid, str(error))
    for warning in spec.warnings if warn else ():
        LOG.warning('cluster %s: %s', cluster.uuid, warning)
    return spec


class _Neutron:
    """Networks and subnets (objects with id, name, cidr) from the Neutron client Magnum
    hands out: openstacksdk's network proxy on Magnum 2026.2, python-neutronclient's
    v2 client (dicts from list_* calls) on 2026.1."""

    def __init__(self, client: Any):
        self.client = client
        # looked up on the class: a legacy client has list_networks, an sdk proxy not
        self.legacy = callable(getattr(type(client), 'list_networks', None))

    def _listed(self, kind: str, filters: dict[str, Any]) -> list[Any]:
        if self.legacy:
            found = getattr(self.client, 'list_' + kind)(**filters)[kind]
            return [types.SimpleNamespace(**{'name': None, 'cidr': None, **item})
                    for item in found]
        return list(getattr(self.client, kind)(**filters))

    def networks(self, **filters: Any) -> list[Any]:
        return self._listed('networks', filters)

    def subnets(self, **filters: Any) -> list[Any]:
        return self._listed('subnets', filters)


def _resolve_existing_subnet(context: Any, template: dict, cluster: dict) -> None:
    """Find the subnet of an existing fixed network (and its CIDR, which the nodes'
    no_proxy and the CIDR overlap checks need)."""
    network = cluster.get('fixed_network') or template.get('fixed_network')
    subnet = cluster.get('fixed_subnet') or template.get('fixed_subnet')
    if not network:
        return
    neutron = _Neutron(clients.OpenStackClients(context).neutron())
    if not subnet:
        if not uuidutils.is_uuid_like(network):
            found = [n for n in neutron.networks(name=network) if n.name == network]
            if len(found) != 1:
                raise exception.InvalidParameterValue(
                    err='fixed_network %s: %s' % (network, 'not found' if not found else
                                                  'several networks have that name'))
            network = found[0].id
        subnets = list(neutron.subnets(network_id=network, ip_version=4))
        if not subnets:
            raise exception.InvalidParameterValue(
                err='fixed_network %s has no IPv4 subnet: give --fixed-subnet' % network)
        cluster['fixed_subnet'] = subnets[0].id
        template['existing_subnet_cidr'] = subnets[0].cidr
        return
    found = [s for s in neutron.subnets() if subnet in (s.id, s.name)]
    if len(found) != 1:
        raise exception.InvalidParameterValue(
            err='fixed_subnet %s: %s' % (subnet, 'not found' if not found else
                                         'several subnets have that name, use its id'))
    template['existing_subnet_cidr'] = found[0].cidr


def template_set() -> templates.TemplateSet:
    """The templates this conductor renders from."""
    return templates.TemplateSet(templates.resolve_dir(CONF.celtic.templates_dir))


def keystone_session(context: Any) -> Any:
    """The Keystone session of the caller of ``context`` (the user, or Magnum's
    service user)."""
    return clients.OpenStackClients(context).keystone().session


def service_session() -> Any:
    """The Keystone session of Magnum's service user (magnum.conf [keystone_auth])."""
    from magnum.common import context as magnum_context
    return keystone_session(magnum_context.make_admin_context())


def heat_client(context: Any, project_id: str | None = None) -> heat_api.Heat:
    """Heat as the caller of ``context`` (the user, or Magnum's service user)."""
    return heat_api.Heat(keystone_session(context), project_id=project_id)


def check_stack_size(spec: spec_mod.ClusterSpec, minions: int | None = None) -> None:
    """Refuse a default pool that would not fit Heat's max_resources_per_stack."""
    limit = CONF.celtic.heat_max_resources_per_stack
    error = budget.stack_size_error(spec, limit, minions)
    if error is None and minions is None:
        error = budget.scaling_size_error(spec, limit)
    if error:
        raise exception.InvalidParameterValue(err=error)


def check_vendordata() -> None:
    """Refuse to boot nodes that could get neither their secrets nor a way to report:
    celtic-vendordata's [celtic_vendordata] public_url must be set."""
    if not CONF.celtic_vendordata.public_url:
        raise exception.InvalidParameterValue(
            err='this Magnum is not set up for celtic clusters: celtic-vendordata, '
                'which hands the nodes their secrets, has no public_url. Ask the '
                'operator to run celtic-vendordata, register it with Nova and set '
                '[celtic_vendordata] public_url in magnum.conf')


def check_pool_size(count: int, max_node_count: int | None = None) -> None:
    """Refuse a nodegroup whose own stack would not fit max_resources_per_stack, now
    or at its max_node_count (the autoscaler grows it up to that)."""
    limit = CONF.celtic.heat_max_resources_per_stack
    error = (budget.pool_size_error(count, limit)
             or budget.pool_max_error(max_node_count, limit))
    if error:
        raise exception.InvalidParameterValue(err=error)


def record_scaling_bounds(cluster: Any, spec: spec_mod.ClusterSpec) -> None:
    """The default worker nodegroup's min_node_count and max_node_count from the labels
    (when max_node_count is given), so that Magnum's resize API and the autoscaler,
    which read the nodegroup, keep to them."""
    if spec.scaling.max_nodes is None:
        return
    worker = cluster.default_ng_worker
    worker.min_node_count = spec.scaling.min_nodes
    worker.max_node_count = spec.scaling.max_nodes
    worker.save()


def has_own_stack(cluster: Any, nodegroup: Any) -> bool:
    """Whether a nodegroup lives in a stack of its own (minion.yaml), the one rule.

    The default nodegroups (masters, the default workers) are in the cluster's stack and
    share its stack id; every other worker nodegroup gets a stack of its own at create.
    Its ``stack_id`` is None while (or when) that stack was never created."""
    return not nodegroup.is_default and nodegroup.stack_id != cluster.stack_id


def stack_id_of(cluster: Any, nodegroup: Any) -> str | None:
    """The id of the stack a nodegroup's servers are in (None: it never got one)."""
    return nodegroup.stack_id if has_own_stack(cluster, nodegroup) else cluster.stack_id


def nodegroup_views(cluster: Any) -> list[status.NodeGroupView]:
    """The nodegroups as status.py sees them."""
    views = []
    for ng in cluster.nodegroups:
        own = ng.stack_id if has_own_stack(cluster, ng) else None
        changed = getattr(ng, 'updated_at', None) or getattr(ng, 'created_at', None)
        views.append(status.NodeGroupView(
            name=ng.name, role=ng.role, is_default=bool(ng.is_default), status=ng.status,
            stack_id=own, node_count=ng.node_count,
            changed_at=_epoch(changed) if changed is not None else None))
    return views


def _epoch(moment: Any) -> float:
    """A Magnum timestamp (naive UTC, or aware) as seconds since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def apply_status(cluster: Any, result: status.ClusterResult) -> list[Any]:
    """Write a status result onto the Magnum objects; returns nodegroups to destroy."""
    to_destroy = []
    for ng in cluster.nodegroups:
        update = result.nodegroups.get(ng.name)
        if update is None:
            continue
        changed = False
        for field, value in (('status', update.status),
                             ('status_reason', update.reason),
                             ('node_addresses', update.addresses),
                             ('node_count', update.node_count)):
            if value is not None and getattr(ng, field) != value:
                setattr(ng, field, value)
                changed = True
        if ng.name in result.destroy:
            to_destroy.append(ng)
        elif changed:
            ng.save()
    if result.api_address:
        cluster.api_address = result.api_address
    if result.coe_version:
        cluster.coe_version = result.coe_version
    if result.status != cluster.status:
        LOG.info('cluster %s: %s -> %s%s', cluster.uuid, cluster.status, result.status,
                 (' (%s)' % result.reason) if result.reason else '')
    cluster.status = result.status
    if result.reason is not None:
        cluster.status_reason = result.reason
    return to_destroy


# ---- one conductor at a time per cluster ----------------------------------------------

#: the prefix of a cluster's lock name (MySQL allows 64 characters: 15 + a uuid's 36)
LOCK_PREFIX = 'celtic-cluster-'
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@contextlib.contextmanager
def cluster_lock(cluster_uuid: str, wait: float = 0.0) -> Iterator[bool]:
    """Hold the cluster's lock, shared by every conductor of this Magnum, for the
    block; yields False when it could not be had within ``wait`` seconds.

    Magnum runs the status poll of every cluster in every conductor, with no lock,
    and hands operations to any conductor: two of them can map the same stack at
    once (a status going back, a nodegroup destroyed twice) or resize a stack the
    other is deleting. The lock is the database's, so it needs no other service:
    MySQL/MariaDB's named lock (``GET_LOCK``; the server drops it when the holding
    connection dies, so a conductor killed mid-poll leaves nothing held),
    PostgreSQL's advisory lock, and on sqlite (one host) a file lock beside the
    database file. An in-memory database (tests) gets a lock of this process."""
    from oslo_db.sqlalchemy import enginefacade
    engine = enginefacade.writer.get_engine()
    name = LOCK_PREFIX + cluster_uuid
    dialect = engine.dialect.name
    if dialect in ('mysql', 'postgresql'):
        with _database_lock(engine, dialect, name, wait) as held:
            yield held
        return
    path = engine.url.database if dialect == 'sqlite' else None
    if path and path != ':memory:':
        with _file_lock(os.path.join(os.path.dirname(os.path.abspath(path)),
                                     'celtic-locks', name), wait) as held:
            yield held
        return
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    held = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    try:
        yield held
    finally:
        if held:
            lock.release()


@contextlib.contextmanager
def _database_lock(engine: Any, dialect: str, name: str, wait: float) -> Iterator[bool]:
    import sqlalchemy as sa
    if dialect == 'mysql':
        take = sa.text('SELECT GET_LOCK(:name, :wait)')
        give = sa.text('SELECT RELEASE_LOCK(:name)')
        key: Any = name
    else:
        take = sa.text('SELECT pg_try_advisory_lock(hashtext(:name))')
        give = sa.text('SELECT pg_advisory_unlock(hashtext(:name))')
        key = name
    connection = engine.connect()
    held = False
    try:
        deadline = time.monotonic() + wait
        while True:
            held = bool(connection.execute(take, {'name': key, 'wait': wait}).scalar())
            connection.commit()
            if held or dialect == 'mysql' or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        yield held
    finally:
        try:
            if held:
                connection.execute(give, {'name': key})
                connection.commit()
        finally:
            connection.close()


@contextlib.contextmanager
def _file_lock(path: str, wait: float) -> Iterator[bool]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'a') as handle:
        deadline = time.monotonic() + wait
        held = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(handle, fcntl.LOCK_UN)


def destroy_nodegroup(nodegroup: Any) -> bool:
    """Destroy a nodegroup's record; False when it was already gone (another
    conductor, or Magnum's own clean-up, got there first)."""
    try:
        nodegroup.destroy()
    except exception.NodeGroupNotFound:
        return False
    return True


def iter_pool_nodegroups(cluster: Any) -> Iterator[Any]:
    """Non-default worker nodegroups that have a stack of their own."""
    for ng in cluster.nodegroups:
        if has_own_stack(cluster, ng) and ng.stack_id:
            yield ng


def outputs_or_fail(state: StackState | None, what: str) -> Mapping[str, Any]:
    """The outputs of a complete cluster stack, or a clear error."""
    if state is None or not state.status.endswith('_COMPLETE'):
        raise exception.InvalidParameterValue(
            err='%s needs the cluster\'s Heat stack to be complete, it is %s'
                % (what, state.status if state else 'missing'))
    return state.outputs
