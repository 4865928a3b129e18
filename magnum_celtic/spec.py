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

"""ClusterSpec: the typed, validated description of one celtic cluster.

Built from plain data (the cluster template's fields, the cluster's fields, its labels,
the operator's ``[celtic_cluster_labels]`` defaults and a few magnum.conf values), so
it does no I/O and is tested without mocks. Every bad value raises
:class:`SpecError` naming the field and what is allowed, before anything is created.

Precedence for a label: cluster label (which already holds the template's labels, as
Magnum merges them) > ``[celtic_cluster_labels]`` > the built-in default of
:data:`magnum_celtic.labels.LABELS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from typing import Any, Mapping, Sequence

from magnum_celtic import keystone_auth
from magnum_celtic import labels as label_table
from magnum_celtic.labels import BY_NAME, FROM_CLUSTER, LabelError

SUPPORTED_DISTROS = ('ubuntu', 'debian')
NETWORK_DRIVERS = ('flannel', 'calico')
API_PORT = 6443
LB_RESERVED_PORTS = (22, 2224)
STORAGE_VOLUME_NAME = 'celtic'
STORAGE_MOUNT_PATH = '/var/lib/celtic-gluster'
DEFAULT_POOL = 'default-worker'
DEFAULT_POOL_NAME = 'minion'
TAINT_EFFECTS = ('NoSchedule', 'PreferNoSchedule', 'NoExecute')


class SpecError(LabelError):
    """The cluster cannot be built as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class Defaults:
    """The magnum.conf values some labels default to."""
    boot_volume_size: int = 0
    boot_volume_type: str = ''
    docker_volume_type: str = ''
    nodes_affinity_policy: str = 'soft-anti-affinity'
    heat_max_resources_per_stack: int = 1000
    #: the Keystone URL the masters' webhook checks user tokens at (appcred's rule:
    #: [celtic] credential_auth_url, else [keystone_authtoken] www_authenticate_uri)
    keystone_auth_url: str = ''
    #: the text of [celtic] keystone_auth_default_policy (None: the built-in default)
    keystone_auth_policy: str | None = None
    #: why that file could not be read (refused for clusters with Keystone login)
    keystone_auth_policy_error: str = ''


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """A minion pool (a Magnum worker nodegroup)."""
    nodegroup: str
    pool_name: str
    count: int
    flavor: str
    image: str
    node_labels: Mapping[str, str]
    node_taints: tuple[Mapping[str, str], ...]

    def settings(self) -> dict[str, Any]:
        """What the pool's minions read from params.json besides node_settings."""
        return {'pool': self.nodegroup,
                'node_labels': dict(self.node_labels),
                'node_taints': [dict(t) for t in self.node_taints]}


@dataclasses.dataclass(frozen=True)
class RoleSpec:
    """The nodes of one HA role (masters, proxies, storage): how many, which flavor."""
    count: int
    flavor: str


@dataclasses.dataclass(frozen=True)
class ScalingSpec:
    """Autoscaling and auto-healing of the default worker pool (labels
    auto_scaling_enabled, min_node_count, max_node_count, auto_healing_enabled)."""
    autoscaling: bool = False
    min_nodes: int = 1
    max_nodes: int | None = None
    healing: bool = False
    #: the cluster-autoscaler release the masters run ('' when none is pinned for the
    #: cluster's Kubernetes minor and the label does not name one)
    autoscaler_tag: str = ''

    @property
    def needs_credential(self) -> bool:
        """Whether something on the masters calls OpenStack: then the cluster gets an
        application credential (magnum_celtic.appcred)."""
        return self.autoscaling or self.healing


@dataclasses.dataclass(frozen=True)
class KeystoneSpec:
    """Keystone login (label keystone_auth_enabled): what the masters' k8s-keystone-auth
    webhook needs. No secret: it checks the tokens users send, with Keystone."""
    auth_url: str
    project_id: str
    policy: tuple[Mapping[str, Any], ...]
    tag: str

    def node_settings(self) -> dict[str, Any]:
        """The keys the masters read (doc/node-contract.md)."""
        return {'keystone_auth_url': self.auth_url,
                'keystone_auth_project_id': self.project_id,
                'keystone_auth_policy': [dict(entry) for entry in self.policy],
                'k8s_keystone_auth_tag': self.tag}


#: the Service port of Headlamp (label dashboard_service_type LoadBalancer: the port on
#: the proxy VIP too)
DASHBOARD_PORT = 8443

#: the roles whose nodes the cluster stack holds besides the default pool, in the
#: order the templates name them
HA_ROLES = ('master', 'proxy', 'storage')
#: the master counts celtic.yaml takes (its master_count allowed_values): odd, so etcd
#: and corosync keep quorum with a majority of the masters
MASTER_COUNTS = (1, 3, 5, 7)


def master_resize_error(requested: Any, current: int | None = None) -> str | None:
    """Why the master nodegroup cannot be resized to ``requested`` masters (from
    ``current``, when known), or None.

    Growth to any odd count. A shrink only when the masters that stay are more than
    half of the current ones: the leaving masters stop corosync before the others
    shrink their member list, so for a while the ones that stay are all there is of
    the old list, and they must still have its quorum (and etcd, whose members leave
    one by one, keeps a majority throughout): 5 -> 3 and 7 -> 5 are offered, 3 -> 1,
    5 -> 1 and 7 -> 3 are not (resize in steps; doc/master-resize.md)."""
    allowed = [n for n in MASTER_COUNTS
               if current is None or n >= current or 2 * n > current]
    if isinstance(requested, int) and requested in allowed:
        return None
    shown = ', '.join(str(n) for n in allowed)
    if (isinstance(requested, int) and current is not None and requested < current
            and requested in MASTER_COUNTS):
        return ('node_count of the master nodegroup: %d -> %d is refused: the masters '
                'that stay must be more than half of the %d there are, so etcd and '
                'corosync keep quorum while the others leave (remove masters in steps); '
                'allowed: %s' % (current, requested, current, shown))
    return ('node_count of the master nodegroup must be one of %s (an odd number: '
            'etcd and corosync keep quorum with a majority of the masters), got %s'
            % (shown, requested))


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Everything the stack request needs, resolved and validated.

    Grouped: identity; the nodes, per role (``masters``, ``proxies``, ``storage``, each
    a :class:`RoleSpec`, and ``default_pool``); network and access; volumes and
    placement; the node-bound labels (``node_values``, one entry per ``LABELS`` row
    with ``node=True``) and the settings derived for the nodes; the operation."""
    # identity
    cluster_name: str
    cluster_uuid: str
    name_prefix: str
    cluster_distro: str
    image: str
    ssh_key_name: str
    # nodes, per role
    masters: RoleSpec
    proxies: RoleSpec
    storage: RoleSpec
    default_pool: PoolSpec
    # network and access
    external_network: str
    existing_network: str
    existing_subnet: str
    fixed_network_cidr: str
    dns_nameservers: tuple[str, ...]
    floating_ips: bool
    api_allowed_cidrs: tuple[str, ...]
    proxy_allowed_cidrs: tuple[str, ...]
    ssh_allowed_cidrs: tuple[str, ...]
    storage_volume_size: int
    storage_volume_type: str
    boot_volume_size: int
    boot_volume_type: str
    availability_zone: str
    server_group_policy: str
    # what the nodes run
    network_driver: str
    node_values: Mapping[str, Any]
    http_proxy: str
    https_proxy: str
    no_proxy: str
    # the operation
    create_timeout_minutes: int
    warnings: tuple[str, ...] = ()
    scaling: ScalingSpec = ScalingSpec()
    #: Keystone login, when label keystone_auth_enabled is true
    keystone: KeystoneSpec | None = None

    @property
    def roles(self) -> dict[str, RoleSpec]:
        """The HA roles' nodes by role name (HA_ROLES order)."""
        return {'master': self.masters, 'proxy': self.proxies, 'storage': self.storage}

    @property
    def minion_count(self) -> int:
        """Minions of the default worker pool."""
        return self.default_pool.count

    @property
    def kube_minor(self) -> str:
        """The minor of kube_tag (v1.36 for v1.36 and v1.36.3)."""
        return '.'.join(self.node_values['kube_tag'].split('.')[:2])

    @property
    def needs_credential(self) -> bool:
        """Whether something on the masters calls OpenStack (the autoscaler,
        auto-healing, the cloud provider, Cinder CSI): then the cluster gets an
        application credential (magnum_celtic.appcred)."""
        return (self.scaling.needs_credential
                or bool(self.node_values.get('cloud_provider_enabled'))
                or bool(self.node_values.get('cinder_csi_enabled')))

    @property
    def dns_service_ip(self) -> str:
        """The cluster DNS address: the tenth address of the service network."""
        return str(ipaddress.IPv4Network(self.node_values['service_network_cidr'])[10])

    @property
    def uses_existing_network(self) -> bool:
        return bool(self.existing_network)

    def node_settings(self) -> dict[str, Any]:
        """The settings every node reads from /etc/celtic/params.json: the node-bound
        labels as they are, and what the driver derives for the nodes."""
        pinned = label_table.addon_versions(self.node_values['kube_tag'])
        return {
            # the add-on releases pinned per minor that no label overrides
            **{name: tag for name, tag in pinned.items() if name not in BY_NAME},
            **self.node_values,
            'kube_minor': self.kube_minor,
            'network_driver': self.network_driver,
            'dns_service_ip': self.dns_service_ip,
            'http_proxy': self.http_proxy,
            'https_proxy': self.https_proxy,
            'no_proxy': self.no_proxy,
            'storage_volume_name': STORAGE_VOLUME_NAME,
            'storage_mount_path': STORAGE_MOUNT_PATH,
            'api_port': API_PORT,
            'lb_reserved_ports': list(LB_RESERVED_PORTS),
            **(self.keystone.node_settings() if self.keystone else {}),
            'cluster_autoscaler_tag': self.scaling.autoscaler_tag,
        }


# ---- building ------------------------------------------------------------------------

def build(template: Mapping[str, Any], cluster: Mapping[str, Any],
          cluster_labels: Mapping[str, str], worker: Mapping[str, Any],
          operator_labels: Mapping[str, str | None] | None = None,
          defaults: Defaults = Defaults()) -> ClusterSpec:
    """Resolve and validate a cluster.

    :param template: cluster template fields (image_id, external_network_id, ...)
    :param cluster: cluster fields (uuid, name, master_count, keypair, ...)
    :param cluster_labels: the cluster's labels (Magnum already merged the template's)
    :param worker: the default worker nodegroup (node_count, flavor_id, image_id,
        node_labels, node_taints)
    :param operator_labels: ``[celtic_cluster_labels]`` values (None = unset)
    :param defaults: magnum.conf values some labels default to
    """
    warnings: list[str] = []
    resolver = _LabelResolver(cluster_labels, operator_labels or {}, warnings)
    _check_platform(template)

    floating_ip_enabled = _field_bool(cluster, template, 'floating_ip_enabled', True)
    master_lb_enabled = _field_bool(cluster, template, 'master_lb_enabled', False)
    master_count = _count('master_count', cluster.get('master_count', 1))
    if master_count < 1 or master_count % 2 == 0:
        raise SpecError('master_count must be an odd number >= 1 (1, 3, 5, ...): '
                        'pacemaker and etcd need a majority to survive a master '
                        'loss, got %s' % master_count)
    if master_count > 1 and not master_lb_enabled:
        raise SpecError('master_count %d needs master_lb_enabled: celtic puts the '
                        'masters behind a pacemaker-managed API VIP; create the '
                        'cluster template with --master-lb-enabled' % master_count)

    worker_flavor = _required(worker.get('flavor_id') or cluster.get('flavor_id')
                              or template.get('flavor_id'), 'flavor_id',
                              'the worker flavor (cluster template --flavor)')
    master_flavor = _required(cluster.get('master_flavor_id')
                              or template.get('master_flavor_id') or worker_flavor,
                              'master_flavor_id', 'the master flavor')
    image = _required(template.get('image_id'), 'image_id', 'a Glance image')
    external_network = _required(template.get('external_network_id'),
                                 'external_network_id',
                                 'the external network for the router and the '
                                 'floating IPs (--external-network)')

    existing_network = cluster.get('fixed_network') or template.get('fixed_network') or ''
    existing_subnet = cluster.get('fixed_subnet') or template.get('fixed_subnet') or ''
    if existing_subnet and not existing_network:
        raise SpecError('fixed_subnet %s was given without fixed_network: give both '
                        'or neither' % existing_subnet)
    if existing_network and not existing_subnet:
        raise SpecError('fixed_network %s has no fixed_subnet: name the subnet the '
                        'nodes use (--fixed-subnet)' % existing_network)

    pool = _pool(worker, DEFAULT_POOL, DEFAULT_POOL_NAME, worker_flavor, image)
    scaling = _scaling(resolver, pool.count, resolver.get('kube_tag'))
    network_driver = template.get('network_driver') or 'flannel'
    if network_driver not in NETWORK_DRIVERS:
        raise SpecError('cluster template field network_driver must be one of %s, '
                        'got "%s"' % (', '.join(NETWORK_DRIVERS), network_driver))

    # With an existing network the CIDR is the subnet's (adapters looks it up).
    fixed_cidr = (template.get('existing_subnet_cidr')
                  if existing_network and template.get('existing_subnet_cidr')
                  else resolver.get('fixed_network_cidr'))
    node_values = {label.name: resolver.get(label.name)
                   for label in label_table.LABELS if label.node}
    # node labels defaulting from the cluster are the releases pinned per minor
    pinned = label_table.addon_versions(node_values['kube_tag'])
    node_values.update({name: pinned[name] for name, value in node_values.items()
                        if value is None and name in pinned})
    pod_cidr = node_values['pod_network_cidr']
    service_cidr = node_values['service_network_cidr']
    _check_networks(fixed_cidr, pod_cidr, service_cidr)

    http_proxy = _proxy_url(template.get('http_proxy'), 'http_proxy')
    https_proxy = _proxy_url(template.get('https_proxy'), 'https_proxy')
    user_no_proxy = _no_proxy(template.get('no_proxy'))

    if template.get('docker_volume_size') or cluster.get('docker_volume_size'):
        warnings.append('docker_volume_size is ignored: celtic keeps container '
                        'images on the boot disk (use boot_volume_size)')

    # Before the spec copies the warnings: unknown labels add theirs.
    resolver.check_unknown()
    proxies = RoleSpec(resolver.get('proxy_count'),
                       resolver.get('proxy_flavor') or worker_flavor)
    ingress = node_values['ingress_controller']
    if ingress != 'none' and proxies.count == 0:
        warnings.append('ingress_controller %s is not installed: it is published by '
                        'the proxies and proxy_count is 0' % ingress)
    no_proxy = (_full_no_proxy(user_no_proxy, fixed_cidr, node_values)
                if (http_proxy or https_proxy) else '')
    keystone = _keystone(resolver, node_values, cluster, defaults)
    _check_dashboard(node_values, proxies, warnings)
    return ClusterSpec(
        cluster_name=str(cluster.get('name') or cluster['uuid']),
        cluster_uuid=str(cluster['uuid']),
        name_prefix=name_prefix(cluster.get('name') or '', cluster['uuid']),
        cluster_distro=str(template.get('cluster_distro')),
        image=image,
        ssh_key_name=cluster.get('keypair') or template.get('keypair_id') or '',
        masters=RoleSpec(master_count, master_flavor),
        proxies=proxies,
        storage=RoleSpec(resolver.get('storage_count'),
                         resolver.get('storage_flavor') or worker_flavor),
        default_pool=pool,
        external_network=external_network,
        existing_network=existing_network,
        existing_subnet=existing_subnet,
        fixed_network_cidr=fixed_cidr,
        dns_nameservers=_nameservers(template.get('dns_nameserver')),
        floating_ips=resolver.get('master_lb_floating_ip_enabled',
                                  floating_ip_enabled),
        api_allowed_cidrs=resolver.get('master_lb_allowed_cidrs'),
        proxy_allowed_cidrs=resolver.get('proxy_allowed_cidrs'),
        ssh_allowed_cidrs=resolver.get('ssh_allowed_cidrs'),
        storage_volume_size=resolver.get('storage_volume_size'),
        storage_volume_type=resolver.get('storage_volume_type',
                                         defaults.docker_volume_type or ''),
        boot_volume_size=resolver.get('boot_volume_size', defaults.boot_volume_size),
        boot_volume_type=resolver.get('boot_volume_type',
                                      defaults.boot_volume_type or ''),
        availability_zone=resolver.get('availability_zone'),
        server_group_policy=resolver.get('server_group_policy',
                                         defaults.nodes_affinity_policy),
        network_driver=network_driver,
        node_values=node_values,
        http_proxy=http_proxy,
        https_proxy=https_proxy,
        no_proxy=no_proxy,
        create_timeout_minutes=int(cluster.get('create_timeout') or 0),
        warnings=tuple(warnings),
        scaling=scaling,
        keystone=keystone,
    )


#: ClusterSpec fields an upgrade may change (the image, and the distribution it brings)
_UPGRADABLE = frozenset({'image', 'cluster_distro', 'warnings'})


def upgrade_kube_tag(template_labels: Mapping[str, str] | None,
                     operator_labels: Mapping[str, str | None]) -> str:
    """The kube_tag a cluster upgraded to a template gets: the template's label, else
    [celtic_cluster_labels], else celtic's default (the order a create resolves it)."""
    resolver = _LabelResolver(template_labels or {}, operator_labels, [])
    return resolver.get('kube_tag')


def upgrade_changes(current: ClusterSpec, target: ClusterSpec, kube_tag: str,
                    labels_before: Mapping[str, str] | None = None,
                    labels_after: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """What an upgrade from ``current`` to ``target`` (the cluster's spec with the new
    template) and ``kube_tag`` changes, in words; () when nothing (a no-op).
    ``labels_before``/``labels_after``: the old and the new template's labels (the
    add-on labels a rolling upgrade will carry).

    Raises SpecError naming the rule the target breaks: kubeadm takes a control plane
    one minor at a time and never back, and an upgrade changes the Kubernetes release
    and the image, not the cluster's network, access or volumes. Each message says
    the rule before any version: Magnum's API shows the CLI its text up to the first
    full stop (the rest is the error's detail, ``--debug``)."""
    before = current.node_values['kube_tag']
    old, new = label_table.kube_minor_number(before), label_table.kube_minor_number(
        kube_tag)
    old_patch, new_patch = _patch(before), _patch(kube_tag)
    if new < old or (new == old and None not in (old_patch, new_patch)
                     and new_patch < old_patch):
        raise SpecError('kubeadm upgrades a control plane to a newer release only, and '
                        'kube_tag %s -> %s is a downgrade (create a new cluster for an '
                        'older one)' % (before, kube_tag))
    if new > old + 1:
        raise SpecError('kubeadm upgrades a control plane one minor at a time, and '
                        'kube_tag %s -> %s skips %s (upgrade to a v1.%d template first)'
                        % (before, kube_tag, ', '.join('v1.%d' % m for m in range(
                            old + 1, new)), old + 1))
    fixed = [f.name for f in dataclasses.fields(ClusterSpec)
             if f.name not in _UPGRADABLE
             and _comparable(getattr(current, f.name)) != _comparable(
                 getattr(target, f.name))]
    if fixed:
        raise SpecError('the new template changes %s, which an upgrade cannot: it '
                        'changes kube_tag, the image and labels only (create a new cluster '
                        'for the rest)' % ', '.join(fixed))
    changes = []
    if kube_tag != before:
        changes.append('kube_tag %s -> %s' % (before, kube_tag))
    if target.image != current.image:
        changes.append('image %s -> %s' % (current.image, target.image))
    before_labels = {k: v for k, v in (labels_before or {}).items() if k != 'kube_tag'}
    after_labels = {k: v for k, v in (labels_after or {}).items() if k != 'kube_tag'}
    differing = sorted(k for k in set(before_labels) | set(after_labels)
                       if before_labels.get(k) != after_labels.get(k))
    if differing:
        changes.append('labels %s' % ', '.join(differing))
    return tuple(changes)


def _patch(kube_tag: str) -> int | None:
    """The patch of v1.36.3 (3); None for a minor alone (its newest patch at boot)."""
    parts = kube_tag.strip().split('.')
    return int(parts[2]) if len(parts) > 2 else None


def _comparable(value: Any) -> Any:
    """A spec field as an upgrade compares it: a pool without its image."""
    if isinstance(value, PoolSpec):
        return dataclasses.replace(value, image='')
    return value


def build_pool(nodegroup: Mapping[str, Any], image: str) -> PoolSpec:
    """The pool of a non-default worker nodegroup."""
    return _pool(nodegroup, str(nodegroup['name']),
                 pool_name(str(nodegroup['name'])),
                 _required(nodegroup.get('flavor_id'), 'flavor_id',
                           'the nodegroup flavor'),
                 nodegroup.get('image_id') or image)


def name_prefix(cluster_name: str, cluster_uuid: str) -> str:
    """A DNS-safe prefix of at most 20 characters for node and resource names."""
    prefix = _dns_label(cluster_name, 20)
    return prefix or 'celtic-' + str(cluster_uuid)[:8]


RESERVED_POOL_NAMES = ('master', 'minion', 'proxy', 'storage')


def pool_name(nodegroup_name: str) -> str:
    """The DNS-safe middle part of a pool's node names."""
    return _dns_label(nodegroup_name, 20) or 'pool'


def check_pool_name(name: str, others: Sequence[str]) -> str:
    """The pool name of nodegroup ``name``, refused when node or stack names would
    collide with a role's or another nodegroup's (``others``: their names)."""
    pool = pool_name(name)
    if pool in RESERVED_POOL_NAMES:
        raise SpecError('nodegroup name %s would give its nodes the names of the %s '
                        'nodes: choose another name' % (name, pool))
    clash = [other for other in others if pool_name(other) == pool]
    if clash:
        raise SpecError('nodegroup name %s and nodegroup %s give the same node names '
                        '(%s-<index>): choose names that differ in letters or digits'
                        % (name, clash[0], pool))
    return pool


def _dns_label(text: str, limit: int) -> str:
    label = re.sub(r'[^a-z0-9-]+', '-', text.lower())[:limit]
    return label.strip('-')


# ---- helpers ---------------------------------------------------------------------

class _LabelResolver:
    """Label lookup with precedence, typed parsing and a record of what was read."""

    def __init__(self, cluster_labels: Mapping[str, str],
                 operator_labels: Mapping[str, str | None], warnings: list[str]):
        self._cluster = {str(k): v for k, v in (cluster_labels or {}).items()}
        self._operator = operator_labels
        self._warnings = warnings

    def get(self, name: str, cluster_default: Any = None) -> Any:
        label = BY_NAME[name]
        if name in self._cluster and self._cluster[name] is not None:
            return label.value(self._cluster[name], 'label')
        operator_value = self._operator.get(name)
        if operator_value not in (None, ''):
            return label.value(operator_value, '[celtic_cluster_labels]')
        if label.default is FROM_CLUSTER:
            return cluster_default
        return label.default

    def check_unknown(self) -> None:
        known = set(BY_NAME)
        for name in sorted(self._cluster):
            if name in known or name in label_table.FOREIGN_LABELS:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
            if close:
                raise SpecError('label %s is not a celtic label; did you mean %s?'
                                % (name, close[0]))
            self._warnings.append('label %s is not used by celtic' % name)


def _scaling(resolver: _LabelResolver, count: int, kube_tag: str) -> ScalingSpec:
    """The autoscaling labels, checked against each other and the default pool."""
    minor = int(kube_tag.split('.')[1])
    pinned = label_table.ADDON_VERSIONS_BY_MINOR.get(minor, {}).get(
        'cluster_autoscaler_tag', '')
    scaling = ScalingSpec(autoscaling=resolver.get('auto_scaling_enabled'),
                          min_nodes=resolver.get('min_node_count'),
                          max_nodes=resolver.get('max_node_count'),
                          healing=resolver.get('auto_healing_enabled'),
                          autoscaler_tag=resolver.get('cluster_autoscaler_tag', pinned))
    if scaling.autoscaling and not scaling.autoscaler_tag:
        raise SpecError('label auto_scaling_enabled: no cluster-autoscaler release is '
                        'pinned for Kubernetes v1.%d yet (pinned: %s); set label '
                        'cluster_autoscaler_tag to a release of v1.%d, or choose '
                        'another kube_tag' % (minor, ', '.join(
                            'v1.%d' % m for m, row in sorted(
                                label_table.ADDON_VERSIONS_BY_MINOR.items())
                            if row['cluster_autoscaler_tag']), minor))
    low, high = scaling.min_nodes, scaling.max_nodes
    if high is None:
        if scaling.autoscaling:
            raise SpecError('label max_node_count is required when '
                            'auto_scaling_enabled is true: the most workers the '
                            'autoscaler may grow the default nodegroup to')
        return scaling
    if low > high:
        raise SpecError('label min_node_count (%d) must not be above label '
                        'max_node_count (%d)' % (low, high))
    if scaling.autoscaling and not low <= count <= high:
        raise SpecError('node_count %d of the default nodegroup must be within labels '
                        'min_node_count and max_node_count (%d to %d) when '
                        'auto_scaling_enabled is true' % (count, low, high))
    return scaling


def _keystone(resolver: _LabelResolver, node_values: Mapping[str, Any],
              cluster: Mapping[str, Any], defaults: Defaults) -> KeystoneSpec | None:
    """Keystone login's settings when label keystone_auth_enabled asks for it."""
    # read (so a bad value is refused) whether or not the webhook is enabled
    tag = resolver.get('k8s_keystone_auth_tag', label_table.addon_versions(
        node_values['kube_tag'])['k8s_keystone_auth_tag'])
    if not node_values['keystone_auth_enabled']:
        return None
    if not defaults.keystone_auth_url:
        raise SpecError('label keystone_auth_enabled needs the Keystone URL the masters '
                        'check user tokens at: set [celtic] credential_auth_url (or '
                        '[keystone_authtoken] www_authenticate_uri) in magnum.conf')
    project_id = str(cluster.get('project_id') or '')
    if not project_id:
        raise SpecError('label keystone_auth_enabled needs the cluster\'s project id '
                        '(the default policy is scoped to it)')
    try:
        if defaults.keystone_auth_policy_error:
            raise keystone_auth.PolicyError(defaults.keystone_auth_policy_error)
        policy = keystone_auth.policy(project_id, defaults.keystone_auth_policy)
    except keystone_auth.PolicyError as error:
        raise SpecError('the Keystone authorization policy ([celtic] '
                        'keystone_auth_default_policy) %s' % error)
    return KeystoneSpec(defaults.keystone_auth_url, project_id, tuple(policy), tag)


def _check_dashboard(node_values: Mapping[str, Any], proxies: RoleSpec,
                     warnings: list[str]) -> None:
    """The dashboard labels, checked against each other, Keystone login and the
    proxies."""
    if node_values['dashboard_service_type'] != 'LoadBalancer':
        return
    if not node_values['dashboard_enabled']:
        warnings.append('label dashboard_service_type LoadBalancer is ignored: '
                        'dashboard_enabled is false')
        return
    if not node_values['keystone_auth_enabled']:
        raise SpecError('label dashboard_service_type LoadBalancer needs '
                        'keystone_auth_enabled=true: users log in to a published '
                        'dashboard with their Keystone token')
    if proxies.count == 0:
        raise SpecError('label dashboard_service_type LoadBalancer needs proxies '
                        '(proxy_count >= 1): celtic-lb publishes it on the proxy VIP')


def _check_platform(template: Mapping[str, Any]) -> None:
    server_type = template.get('server_type') or 'vm'
    if server_type != 'vm':
        raise SpecError('cluster template field server_type must be vm, got "%s": '
                        'celtic builds clusters of Nova virtual machines' % server_type)
    coe = template.get('coe') or 'kubernetes'
    if coe != 'kubernetes':
        raise SpecError('cluster template field coe must be kubernetes, got "%s"' % coe)
    distro = template.get('cluster_distro')
    if distro not in SUPPORTED_DISTROS:
        raise SpecError('the image os_distro must be one of %s, got "%s": set the '
                        'image property os_distro' % (', '.join(SUPPORTED_DISTROS),
                                                      distro))
    if template.get('tls_disabled'):
        raise SpecError('cluster template field tls_disabled must be false: celtic '
                        'clusters always serve the API over TLS with Magnum\'s CA')
    if template.get('registry_enabled'):
        raise SpecError('cluster template field registry_enabled is not supported: '
                        'use the label container_infra_prefix for a private registry')


def _field_bool(cluster: Mapping[str, Any], template: Mapping[str, Any], name: str,
                default: bool) -> bool:
    for source in (cluster, template):
        value = source.get(name)
        if value is not None:
            return bool(value)
    return default


def _count(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SpecError('%s must be an integer, got "%s"' % (name, value))


def _required(value: Any, field: str, what: str) -> str:
    if not value:
        raise SpecError('%s is required: %s' % (field, what))
    return str(value)


def _pool(nodegroup: Mapping[str, Any], name: str, pool: str, flavor: str,
          image: str) -> PoolSpec:
    count = _count('node_count', nodegroup.get('node_count', 0))
    if count < 0:
        raise SpecError('node_count must be an integer >= 0, got %d' % count)
    node_labels = dict(nodegroup.get('node_labels') or {})
    for key, value in node_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpecError('node_labels must map strings to strings, got %r: %r'
                            % (key, value))
        _check_label(key, value)
    taints = []
    for taint in nodegroup.get('node_taints') or ():
        if not isinstance(taint, Mapping) or not taint.get('key'):
            raise SpecError('each node_taints item needs a key, got %r' % (taint,))
        effect = taint.get('effect') or 'NoSchedule'
        if effect not in TAINT_EFFECTS:
            raise SpecError('node_taints effect must be one of %s, got "%s"'
                            % (', '.join(TAINT_EFFECTS), effect))
        _check_label_key(str(taint['key']), 'node_taints key')
        _check_label_value(str(taint.get('value') or ''), 'node_taints value')
        taints.append({'key': str(taint['key']), 'value': str(taint.get('value') or ''),
                       'effect': effect})
    return PoolSpec(nodegroup=name, pool_name=pool, count=count, flavor=flavor,
                    image=image, node_labels=node_labels, node_taints=tuple(taints))


_LABEL_NAME = re.compile(r'^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')
_LABEL_PREFIX = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
# What a kubelet may set on its own Node in the kubernetes.io and k8s.io namespaces
# (the NodeRestriction admission plugin refuses the rest, e.g. node-role.kubernetes.io).
_KUBELET_PREFIXES = ('kubelet.kubernetes.io', 'node.kubernetes.io')
_KUBELET_KEYS = ('kubernetes.io/hostname', 'kubernetes.io/arch', 'kubernetes.io/os',
                 'beta.kubernetes.io/instance-type', 'node.kubernetes.io/instance-type',
                 'failure-domain.beta.kubernetes.io/region',
                 'failure-domain.beta.kubernetes.io/zone',
                 'topology.kubernetes.io/region', 'topology.kubernetes.io/zone')


def _check_label_key(key: str, field: str) -> None:
    prefix, _, name = key.rpartition('/')
    if (not _LABEL_NAME.match(name) or len(prefix) > 253
            or (prefix and not _LABEL_PREFIX.match(prefix))):
        raise SpecError('%s must be a Kubernetes label key ([prefix/]name, name of at '
                        'most 63 letters, digits, "-", "_", "."), got "%s"' % (field, key))


def _check_label_value(value: str, field: str) -> None:
    if value and not _LABEL_NAME.match(value):
        raise SpecError('%s must be empty or at most 63 letters, digits, "-", "_", ".", '
                        'got "%s"' % (field, value))


def _check_label(key: str, value: str) -> None:
    _check_label_key(key, 'node_labels key')
    _check_label_value(value, 'node_labels value')
    prefix = key.rpartition('/')[0]
    restricted = any(prefix == ns or prefix.endswith('.' + ns)
                     for ns in ('kubernetes.io', 'k8s.io'))
    if restricted and prefix not in _KUBELET_PREFIXES and key not in _KUBELET_KEYS:
        raise SpecError('node_labels key %s cannot be set by a kubelet (the '
                        'NodeRestriction admission plugin refuses it): use a key outside '
                        'the kubernetes.io and k8s.io namespaces, or under '
                        'node.kubernetes.io/' % key)


def _check_networks(fixed: str, pod: str, service: str) -> None:
    nets = {'fixed_network_cidr': ipaddress.IPv4Network(fixed),
            'pod_network_cidr': ipaddress.IPv4Network(pod),
            'service_network_cidr': ipaddress.IPv4Network(service)}
    names = list(nets)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if nets[first].overlaps(nets[second]):
                raise SpecError('label %s %s overlaps %s %s: choose ranges that do '
                                'not overlap' % (first, nets[first], second,
                                                 nets[second]))
    if nets['service_network_cidr'].prefixlen > 28:
        raise SpecError('label service_network_cidr must be a /28 or larger (cluster '
                        'DNS takes its tenth address), got %s' % service)
    if nets['pod_network_cidr'].prefixlen > 24:
        raise SpecError('label pod_network_cidr must be a /24 or larger (each node '
                        'gets a /24), got %s' % pod)
    if nets['fixed_network_cidr'].prefixlen > 28:
        raise SpecError('label fixed_network_cidr must be a /28 or larger, got %s'
                        % fixed)


_PROXY_URL = re.compile(r'^https?://[A-Za-z0-9.\-\[\]:@%_]+(:\d{1,5})?/?$')


def _proxy_url(value: Any, field: str) -> str:
    if not value:
        return ''
    text = str(value).strip()
    if not _PROXY_URL.match(text):
        raise SpecError('cluster template field %s must be an http:// or https:// '
                        'URL such as http://proxy.example.com:3128, got "%s"'
                        % (field, text))
    return text


def _no_proxy(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    items = tuple(item.strip() for item in str(value).split(',') if item.strip())
    for item in items:
        if re.search(r'\s', item):
            raise SpecError('cluster template field no_proxy must be a comma-separated '
                            'list of hosts, domains or CIDRs, got "%s"' % value)
    return items


def _full_no_proxy(user: Sequence[str], fixed_cidr: str,
                   node_values: Mapping[str, Any]) -> str:
    """The user's no_proxy plus what must never go through a proxy inside the cluster."""
    entries = list(user) + ['localhost', '127.0.0.1', '169.254.169.254',
                            fixed_cidr, node_values['pod_network_cidr'],
                            node_values['service_network_cidr'], '.svc',
                            '.' + node_values['cluster_domain']]
    seen: list[str] = []
    for entry in entries:
        if entry not in seen:
            seen.append(entry)
    return ','.join(seen)


def _nameservers(value: Any) -> tuple[str, ...]:
    if not value:
        return ('8.8.8.8',)
    servers = tuple(item.strip() for item in str(value).split(',') if item.strip())
    for server in servers:
        try:
            ipaddress.IPv4Address(server)
        except ValueError:
            raise SpecError('cluster template field dns_nameserver must be an IPv4 '
                            'address (or a comma-separated list), got "%s"' % value)
    return servers
