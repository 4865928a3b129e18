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

"""Magnum objects and services -> the plain data the pure modules work on.

Everything that touches Magnum (its objects, its certificate manager, its Keystone
session, its Neutron look-ups, magnum.conf) is here, so that ``driver.py`` stays a thin
adapter and ``spec``, ``stack`` and ``status`` stay pure.
"""

from __future__ import annotations

import threading
import types
from typing import Any, Iterator, Mapping

from magnum.common import clients
from magnum.common import exception
from magnum.conductor.handlers.common import cert_manager
from oslo_log import log as logging
from oslo_utils import uuidutils

from magnum_celtic import conf
from magnum_celtic import heat as heat_api
from magnum_celtic import labels
from magnum_celtic import pki
from magnum_celtic import spec as spec_mod
from magnum_celtic import stack
from magnum_celtic import status
from magnum_celtic import templates

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
    'docker_volume_size')


def _fields(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name, None) for name in names}


def nodegroup_data(nodegroup: Any) -> dict[str, Any]:
    """A nodegroup as spec.py reads it (node_labels/node_taints exist from API 1.14)."""
    return {'name': nodegroup.name, 'node_count': nodegroup.node_count,
            'flavor_id': nodegroup.flavor_id, 'image_id': nodegroup.image_id,
            'node_labels': getattr(nodegroup, 'node_labels', None) or {},
            'node_taints': getattr(nodegroup, 'node_taints', None) or [],
            'labels': nodegroup.labels or {}}


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
        heat_max_resources_per_stack=CONF.celtic.heat_max_resources_per_stack)


def cluster_spec(context: Any, cluster: Any, template: Any = None) -> spec_mod.ClusterSpec:
    """Validate and resolve a cluster; raises InvalidParameterValue on bad input."""
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
        raise exception.InvalidParameterValue(err=str(error))
    for warning in spec.warnings:
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


def cluster_pki(context: Any, cluster: Any) -> pki.ClusterPKI:
    """Magnum's CAs and admin key, and the secrets derived from them."""
    def pair(kind: str | None) -> pki.CertPair:
        cert = cert_manager.get_cluster_ca_certificate(cluster, context, kind)
        return pki.CertPair(cert.get_certificate(), cert.get_decrypted_private_key())
    magnum_cert = cert_manager.get_cluster_magnum_cert(cluster, context)
    return pki.build(cluster.uuid, pair(None), pair('etcd'), pair('front-proxy'),
                     magnum_cert.get_decrypted_private_key())


def cluster_seed(context: Any, cluster: Any) -> bytes:
    """The cluster's seed (pki), from Magnum's CA key alone: what a signal key needs."""
    ca = cert_manager.get_cluster_ca_certificate(cluster, context)
    return pki.seed_of(ca.get_decrypted_private_key(), cluster.uuid)


def node_openstack_ca() -> str:
    """The CA bundle nodes trust when they report to Heat (may be empty)."""
    path = CONF.celtic.node_openstack_ca_file or CONF.drivers.openstack_ca_file
    if not path:
        return ''
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except OSError as error:
        raise exception.InvalidParameterValue(
            err='cannot read the CA bundle for nodes %s: %s' % (path, error.strerror))


def template_set() -> templates.TemplateSet:
    """The templates this conductor renders from."""
    return templates.TemplateSet(templates.resolve_dir(CONF.celtic.templates_dir))


def keystone_session(context: Any) -> Any:
    """The Keystone session of the caller of ``context`` (the user, or Magnum's
    service user)."""
    return clients.OpenStackClients(context).keystone().session


def heat_client(context: Any, project_id: str | None = None) -> heat_api.Heat:
    """Heat as the caller of ``context`` (the user, or Magnum's service user)."""
    return heat_api.Heat(keystone_session(context), project_id=project_id)


def check_stack_size(spec: spec_mod.ClusterSpec, minions: int | None = None) -> None:
    """Refuse a default pool that would not fit Heat's max_resources_per_stack."""
    limit = CONF.celtic.heat_max_resources_per_stack
    if limit is None or limit < 0:
        return
    needed = stack.resource_count(spec, minions)
    if needed > limit:
        n = spec.minion_count if minions is None else minions
        raise exception.InvalidParameterValue(
            err='%d workers in the default nodegroup need %d Heat resources but Heat '
                'allows %d per stack (max_resources_per_stack; at most %d workers '
                'fit). Ask the operator to raise max_resources_per_stack in heat.conf '
                'and [celtic] heat_max_resources_per_stack in magnum.conf, or add '
                'workers in another nodegroup, which has a stack of its own.'
                % (n, needed, limit, stack.max_minions(spec, limit)))


def check_vendordata() -> None:
    """Refuse to boot nodes that could get neither their secrets nor a way to report:
    celtic-vendordata's [celtic_vendordata] public_url must be set."""
    if not CONF.celtic_vendordata.public_url:
        raise exception.InvalidParameterValue(
            err='this Magnum is not set up for celtic clusters: celtic-vendordata, '
                'which hands the nodes their secrets, has no public_url. Ask the '
                'operator to run celtic-vendordata, register it with Nova and set '
                '[celtic_vendordata] public_url in magnum.conf')


def check_pool_size(count: int) -> None:
    """Refuse a nodegroup whose own stack would not fit max_resources_per_stack."""
    limit = CONF.celtic.heat_max_resources_per_stack
    if limit is None or limit < 0:
        return
    needed = stack.POOL + 1 + count * stack.PER_MINION
    if needed > limit:
        raise exception.InvalidParameterValue(
            err='%d workers need %d Heat resources but Heat allows %d per stack '
                '(max_resources_per_stack); split them into several nodegroups'
                % (count, needed, limit))


def nodegroup_views(cluster: Any) -> list[status.NodeGroupView]:
    """The nodegroups as status.py sees them."""
    views = []
    for ng in cluster.nodegroups:
        own = None if (ng.is_default or ng.stack_id == cluster.stack_id) else ng.stack_id
        views.append(status.NodeGroupView(name=ng.name, role=ng.role,
                                          is_default=bool(ng.is_default),
                                          status=ng.status, stack_id=own))
    return views


def delete_leftover_certificates(context: Any, cluster: Any) -> None:
    """Delete what Magnum's own clean-up leaks: the etcd and front-proxy CA refs and
    the client files it cached for the health monitor."""
    backend = None
    for attribute in ('etcd_ca_cert_ref', 'front_proxy_ca_cert_ref'):
        ref = getattr(cluster, attribute, None)
        if not ref:
            continue
        try:
            from magnum.common import cert_manager as cert_backends
            backend = backend or cert_backends.get_backend().CertManager
            backend.delete_cert(ref, resource_ref=cluster.uuid, context=context)
        except Exception as error:  # clean-up must never block the delete
            LOG.warning('cluster %s: could not delete %s: %s', cluster.uuid,
                        attribute, error)
    cert_manager.delete_client_files(cluster, context=context)


# Polls of one cluster must not overlap in this process (Magnum has no lock of its
# own; each poll runs in its own thread).
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class poll_lock:
    """Non-blocking per-cluster lock: ``acquired`` is False when a poll is running."""

    def __init__(self, cluster_uuid: str):
        with _locks_guard:
            self._lock = _locks.setdefault(cluster_uuid, threading.Lock())
        self.acquired = False

    def __enter__(self) -> 'poll_lock':
        self.acquired = self._lock.acquire(blocking=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.acquired:
            self._lock.release()


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
                             ('node_addresses', update.addresses)):
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


def restore_ca_refs(context: Any, cluster: Any) -> None:
    """Undo Magnum's CA regeneration: delete the new certificates and put the refs
    the cluster runs on back (rotation is not supported)."""
    from magnum import objects
    from magnum.common import cert_manager as cert_backends
    stored = objects.Cluster.get_by_uuid(context, cluster.uuid)
    backend = cert_backends.get_backend().CertManager
    for attribute in ('ca_cert_ref', 'etcd_ca_cert_ref', 'front_proxy_ca_cert_ref',
                      'magnum_cert_ref'):
        new, old = getattr(cluster, attribute, None), getattr(stored, attribute, None)
        if new and new != old:
            try:
                backend.delete_cert(new, resource_ref=cluster.uuid, context=context)
            except Exception as error:
                LOG.warning('cluster %s: could not delete the new %s: %s',
                            cluster.uuid, attribute, error)
            setattr(cluster, attribute, old)


def iter_pool_nodegroups(cluster: Any) -> Iterator[Any]:
    """Non-default worker nodegroups that have a stack of their own."""
    for ng in cluster.nodegroups:
        if not ng.is_default and ng.stack_id and ng.stack_id != cluster.stack_id:
            yield ng


def outputs_or_fail(state: heat_api.StackState | None, what: str) -> Mapping[str, Any]:
    """The outputs of a complete cluster stack, or a clear error."""
    if state is None or not state.status.endswith('_COMPLETE'):
        raise exception.InvalidParameterValue(
            err='%s needs the cluster\'s Heat stack to be complete, it is %s'
                % (what, state.status if state else 'missing'))
    return state.outputs
