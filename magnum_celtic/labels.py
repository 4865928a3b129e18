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

"""The label table: every cluster label celtic reads, its type, default and meaning.

This is the single source of truth for labels. ``[celtic_cluster_labels]`` options,
the README's label reference (checked by a unit test) and :class:`ClusterSpec
<magnum_celtic.spec.ClusterSpec>` validation all come from :data:`LABELS`.

A label value is always a string (Magnum stores labels as strings); each label has a
parser that turns it into a typed value or raises :class:`LabelError` with a message
that names the label, what is allowed and what was given.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any, Callable

# Versions pinned by default. Change them here only: nodes, docs and tests read them
# from this table.
DEFAULT_KUBE_TAG = 'v1.36'
SUPPORTED_KUBE_MINORS = (34, 35, 36, 37)
DEFAULT_FLANNEL_TAG = 'v0.28.9'
DEFAULT_CALICO_TAG = 'v3.32.4'
DEFAULT_INGRESS_TAG = 'v3.7.11'
DEFAULT_LOCAL_PATH_PROVISIONER_TAG = 'v0.0.37'
DEFAULT_METRICS_SERVER_TAG = 'v0.8.0'
DEFAULT_DASHBOARD_TAG = 'v0.45.0'

# Add-ons whose release follows the Kubernetes minor: one row per supported minor, the
# one table of their pins. cloud-provider-openstack releases one line per minor (its
# images registry.k8s.io/provider-os/*:v1.<minor>.<patch>); the CSI sidecars are the
# ones its manifests of that release name. A minor it has not released yet gets its
# newest release (a cloud-controller-manager may be one minor older than the
# apiserver: Kubernetes' version skew policy). Read by spec.py (label defaults, node
# settings), the README's table (tests/unit/test_labels.py) and the manifests' tests.
# cluster-autoscaler's minor follows Kubernetes' too (the newest patch of its tags); an
# empty cell is a minor it has not released yet: such a cluster cannot have
# auto_scaling_enabled unless label cluster_autoscaler_tag names a release.
# The CSI sidecars are the same in every release line pinned here.
_CSI_SIDECARS = {'csi_attacher_tag': 'v4.10.0', 'csi_provisioner_tag': 'v5.3.0',
                 'csi_resizer_tag': 'v1.14.0', 'csi_livenessprobe_tag': 'v2.17.0',
                 'csi_node_driver_registrar_tag': 'v2.15.0'}


def _row(autoscaler: str, cloud_provider: str) -> dict[str, str]:
    """One row: cluster-autoscaler's release (or ''), cloud-provider-openstack's
    ``cloud_provider`` release of each of its components."""
    return {'cluster_autoscaler_tag': autoscaler,
            'k8s_keystone_auth_tag': cloud_provider, 'cloud_provider_tag': cloud_provider,
            'cinder_csi_plugin_tag': cloud_provider, **_CSI_SIDECARS}


ADDON_VERSIONS_BY_MINOR: dict[int, dict[str, str]] = {
    34: _row('v1.34.5', 'v1.34.1'),
    35: _row('v1.35.2', 'v1.35.0'),
    36: _row('v1.36.1', 'v1.36.0'),
    # no cloud-provider-openstack v1.37 release yet: its v1.36 line (k8s-keystone-auth
    # v1.36.0 serves the webhook API 1.37 calls)
    37: _row('', 'v1.36.0'),
}


SERVER_GROUP_POLICIES = ('anti-affinity', 'soft-anti-affinity', 'affinity',
                         'soft-affinity')
INGRESS_CONTROLLERS = ('traefik', 'none')
DASHBOARD_SERVICE_TYPES = ('ClusterIP', 'LoadBalancer')
MAX_PROXIES = 16
MAX_STORAGE_NODES = 24


class LabelError(ValueError):
    """A label (or a template field) has a value celtic cannot use."""


# ---- parsers: str -> value, raising ValueError("<what is allowed>") -------------------

def _integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        allowed = ('an integer >= %d' % minimum if maximum is None
                   else 'an integer from %d to %d' % (minimum, maximum))
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise ValueError(allowed)
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(allowed)
        return value
    parse.allowed = ('an integer >= %d' % minimum if maximum is None
                     else 'an integer from %d to %d' % (minimum, maximum))
    return parse


def _boolean(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ('true', 'yes', '1', 'on'):
        return True
    if value in ('false', 'no', '0', 'off'):
        return False
    raise ValueError('true or false')


_boolean.allowed = 'true or false'


def _choice(*values: str) -> Callable[[str], str]:
    allowed = 'one of ' + ', '.join(values)

    def parse(text: str) -> str:
        value = str(text).strip()
        if value not in values:
            raise ValueError(allowed)
        return value
    parse.allowed = allowed
    return parse


def _cidr(text: str) -> str:
    try:
        return str(ipaddress.IPv4Network(str(text).strip(), strict=True))
    except ValueError:
        raise ValueError('an IPv4 network in CIDR notation such as 10.0.0.0/24')


_cidr.allowed = 'an IPv4 network in CIDR notation such as 10.0.0.0/24'


def _cidr_list(text: str) -> tuple[str, ...]:
    allowed = 'a comma-separated list of IPv4 CIDRs such as 192.0.2.0/24,0.0.0.0/0'
    items = [item.strip() for item in str(text).split(',') if item.strip()]
    if not items:
        raise ValueError(allowed)
    try:
        return tuple(str(ipaddress.IPv4Network(item, strict=True)) for item in items)
    except ValueError:
        raise ValueError(allowed)


_cidr_list.allowed = 'a comma-separated list of IPv4 CIDRs'

_TAG = re.compile(r'^v\d+\.\d+\.\d+$')


def _release_tag(text: str) -> str:
    value = str(text).strip()
    if not _TAG.match(value):
        raise ValueError('a release tag such as v1.2.3')
    return value


_release_tag.allowed = 'a release tag such as v1.2.3'

_KUBE_TAG = re.compile(r'^v1\.(\d+)(\.\d+)?$')


def _kube_tag(text: str) -> str:
    minors = ', '.join('v1.%d' % m for m in SUPPORTED_KUBE_MINORS)
    allowed = ('a supported Kubernetes minor (%s) or one of their releases '
               'such as v1.%d.2' % (minors, SUPPORTED_KUBE_MINORS[-2]))
    value = str(text).strip()
    match = _KUBE_TAG.match(value)
    if not match or int(match.group(1)) not in SUPPORTED_KUBE_MINORS:
        raise ValueError(allowed)
    return value


_kube_tag.allowed = 'a supported Kubernetes minor or release'

_DNS_NAME = re.compile(r'^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)'
                       r'(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')


def _dns_domain(text: str) -> str:
    value = str(text).strip()
    if not _DNS_NAME.match(value):
        raise ValueError('a lower-case DNS domain such as cluster.local')
    return value


_dns_domain.allowed = 'a lower-case DNS domain'

_REGISTRY_PREFIX = re.compile(
    r'^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*/$')


def _registry_prefix(text: str) -> str:
    value = str(text).strip()
    if value and not _REGISTRY_PREFIX.match(value):
        raise ValueError('empty, or a registry and path ending in "/" such as '
                         'registry.example.com:5000/k8s/')
    return value


_registry_prefix.allowed = 'a registry prefix ending in "/"'

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$')


def _name(text: str) -> str:
    value = str(text).strip()
    if value and not _NAME.match(value):
        raise ValueError('empty or a name of letters, digits, ".", "_", ":" and "-"')
    return value


_name.allowed = 'a name'


def _optional_count(text: str) -> int | None:
    value = str(text).strip()
    if not value:
        return None
    try:
        count = int(value, 10)
    except ValueError:
        raise ValueError('empty or an integer >= 0')
    if count < 0:
        raise ValueError('empty or an integer >= 0')
    return count


_optional_count.allowed = 'empty or an integer >= 0'


# ---- the table -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Label:
    """One cluster label: how to parse it, its default and what it means."""
    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    default_doc: str = ''
    #: a node setting: its value goes as it is to every node's params.json under the
    #: label's name (ClusterSpec.node_values); a new such label is this one row
    node: bool = False

    def __post_init__(self):
        if not self.default_doc:
            object.__setattr__(self, 'default_doc', _show(self.default))

    @property
    def allowed(self) -> str:
        """What values the label accepts, in words."""
        return getattr(self.parse, 'allowed', '')

    def value(self, text: Any, source: str = 'label') -> Any:
        """Parse ``text``; raise LabelError naming ``source`` and the label."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise LabelError('%s %s must be %s, got "%s"'
                             % (source, self.name, exc, text))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, tuple):
        return ','.join(value)
    if value == '':
        return '(empty)'
    return str(value)


# A default that is not a constant: resolved by spec.py from the cluster and magnum.conf
# (a release pinned per Kubernetes minor: from ADDON_VERSIONS_BY_MINOR).
FROM_CLUSTER = object()
PER_KUBE_MINOR_DOC = 'per Kubernetes minor (README: Add-on versions)'

LABELS: tuple[Label, ...] = (
    Label('kube_tag', _kube_tag, DEFAULT_KUBE_TAG,
          'Kubernetes version: a minor (newest patch of that minor) or an exact '
          'release', node=True),
    Label('flannel_tag', _release_tag, DEFAULT_FLANNEL_TAG,
          'flannel release when network_driver is flannel', node=True),
    Label('calico_tag', _release_tag, DEFAULT_CALICO_TAG,
          'Calico release when network_driver is calico', node=True),
    Label('pod_network_cidr', _cidr, '10.100.0.0/16',
          'Pod network; must not overlap the service network or the fixed network',
          node=True),
    Label('service_network_cidr', _cidr, '10.254.0.0/16',
          'Service (ClusterIP) network; cluster DNS gets its tenth address',
          node=True),
    Label('cluster_domain', _dns_domain, 'cluster.local',
          'Kubernetes cluster DNS domain', node=True),
    Label('fixed_network_cidr', _cidr, '10.0.0.0/24',
          'CIDR of the network celtic creates (ignored with an existing fixed '
          'network)'),
    Label('master_lb_floating_ip_enabled', _boolean, FROM_CLUSTER,
          'Floating IPs on the API VIP and the proxy VIP',
          'the cluster\'s floating_ip_enabled'),
    Label('master_lb_allowed_cidrs', _cidr_list, ('0.0.0.0/0',),
          'Who may reach the Kubernetes API on 6443'),
    Label('proxy_allowed_cidrs', _cidr_list, ('0.0.0.0/0',),
          'Who may reach LoadBalancer Services and ingress on the proxy VIP'),
    Label('ssh_allowed_cidrs', _cidr_list, ('0.0.0.0/0',),
          'Who may reach the nodes on SSH (port 22)'),
    Label('proxy_count', _integer(0, MAX_PROXIES), 2,
          'Proxy nodes (HAProxy for LoadBalancer Services and ingress); 0 disables '
          'them'),
    Label('proxy_flavor', _name, FROM_CLUSTER,
          'Nova flavor of the proxy nodes', 'the worker flavor'),
    Label('storage_count', _integer(0, MAX_STORAGE_NODES), 3,
          'GlusterFS storage nodes; 0 disables storage'),
    Label('storage_flavor', _name, FROM_CLUSTER,
          'Nova flavor of the storage nodes', 'the worker flavor'),
    Label('storage_volume_size', _integer(1), 50,
          'Size in GiB of each storage node\'s Cinder brick volume'),
    Label('storage_volume_type', _name, FROM_CLUSTER,
          'Cinder volume type of the bricks',
          '[cinder] default_docker_volume_type'),
    Label('ingress_controller', _choice(*INGRESS_CONTROLLERS), 'traefik',
          'Ingress controller published on the proxy VIP (ports 80/443)',
          node=True),
    Label('ingress_tag', _release_tag, DEFAULT_INGRESS_TAG,
          'Ingress controller release', node=True),
    Label('local_path_provisioner_tag', _release_tag,
          DEFAULT_LOCAL_PATH_PROVISIONER_TAG,
          'local-path-provisioner release serving the celtic-gluster StorageClass',
          node=True),
    Label('metrics_server_tag', _release_tag, DEFAULT_METRICS_SERVER_TAG,
          'metrics-server release (kubectl top, HorizontalPodAutoscalers), on every '
          'cluster', node=True),
    Label('container_infra_prefix', _registry_prefix, '',
          'Registry prefix for every image the cluster pulls (private mirror)',
          node=True),
    Label('boot_volume_size', _integer(0), FROM_CLUSTER,
          'Boot every node from a Cinder volume of this size in GiB; 0 boots from '
          'the image', '[cinder] default_boot_volume_size'),
    Label('boot_volume_type', _name, FROM_CLUSTER,
          'Cinder volume type of boot volumes', '[cinder] default_boot_volume_type'),
    Label('availability_zone', _name, '',
          'Nova (and Cinder) availability zone of every node'),
    Label('server_group_policy', _choice(*SERVER_GROUP_POLICIES), FROM_CLUSTER,
          'Nova server group policy of each role',
          '[cluster] nodes_affinity_policy'),
    Label('auto_scaling_enabled', _boolean, False,
          'Autoscaling of the worker nodegroups: cluster-autoscaler on the masters '
          'with celtic\'s provider, which resizes through Magnum with the cluster\'s '
          'application credential (doc/autoscaling.md)', node=True),
    Label('cluster_autoscaler_tag', _release_tag, FROM_CLUSTER,
          'cluster-autoscaler release run when auto_scaling_enabled is true',
          PER_KUBE_MINOR_DOC),
    Label('min_node_count', _integer(0), 1,
          'Fewest workers the autoscaler keeps in the default nodegroup (other '
          'nodegroups: their own min_node_count)'),
    Label('max_node_count', _optional_count, None,
          'Most workers the autoscaler grows the default nodegroup to; required '
          'with auto_scaling_enabled (other nodegroups: their own max_node_count)',
          '(unset)'),
    Label('auto_healing_enabled', _boolean, False,
          'Replacing unhealthy workers (never masters) through Magnum\'s resize: the '
          'cluster gets its application credential and its masters celtic-heal.timer '
          '(doc/autoscaling.md)', node=True),
    Label('auto_healing_unhealthy_seconds', _integer(60), 300,
          'How long a worker\'s Node must be NotReady (or Unknown) before '
          'auto-healing replaces it; a server in ERROR is replaced at once',
          node=True),
    Label('auto_healing_max_unhealthy_percent', _integer(1, 100), 40,
          'Auto-healing replaces nothing in a nodegroup where more than this share '
          'of the workers is unhealthy (a wider outage, not broken nodes); at least '
          'one worker per nodegroup may always be replaced', node=True),
    Label('keystone_auth_enabled', _boolean, False,
          'Keystone login: the masters run k8s-keystone-auth, the apiserver accepts '
          'OpenStack tokens and authorizes them by the project\'s roles (README '
          '"Logging in with Keystone")', node=True),
    Label('k8s_keystone_auth_tag', _release_tag, FROM_CLUSTER,
          'k8s-keystone-auth release (cloud-provider-openstack) when '
          'keystone_auth_enabled', PER_KUBE_MINOR_DOC),
    Label('dashboard_enabled', _boolean, False,
          'Headlamp, the Kubernetes web UI, in namespace celtic-dashboard; users log '
          'in with a token, never anonymously', node=True),
    Label('dashboard_tag', _release_tag, DEFAULT_DASHBOARD_TAG,
          'Headlamp release when dashboard_enabled', node=True),
    Label('dashboard_service_type', _choice(*DASHBOARD_SERVICE_TYPES), 'ClusterIP',
          'ClusterIP: Headlamp through kubectl port-forward only; LoadBalancer: also '
          'on the proxy VIP, port 8443 (needs keystone_auth_enabled and proxies)',
          node=True),
    Label('cloud_provider_enabled', _boolean, False,
          'openstack-cloud-controller-manager on the masters: node addresses, provider '
          'IDs and zones from Nova, the Node of a deleted server removed (its '
          'LoadBalancer controller off: celtic-lb serves those); the cluster gets its '
          'application credential (doc/cloud-provider.md)', node=True),
    Label('cloud_provider_tag', _release_tag, FROM_CLUSTER,
          'openstack-cloud-controller-manager release', PER_KUBE_MINOR_DOC,
          node=True),
    Label('cinder_csi_enabled', _boolean, False,
          'Cinder CSI: the celtic-cinder StorageClass (ReadWriteOnce Cinder volumes, '
          'expandable) beside celtic-gluster; the cluster gets its application '
          'credential (doc/cloud-provider.md)', node=True),
    Label('cinder_csi_plugin_tag', _release_tag, FROM_CLUSTER,
          'cinder-csi-plugin release', PER_KUBE_MINOR_DOC, node=True),
)

BY_NAME: dict[str, Label] = {label.name: label for label in LABELS}

# Labels Magnum or other tools use that celtic knowingly ignores (not typos).
FOREIGN_LABELS = frozenset({
    'auto_healing_controller', 'monitoring_enabled',
    'kube_dashboard_enabled', 'etcd_volume_size', 'docker_volume_type',
    'os_distro', 'magnum_driver',
})


def kube_minor_number(kube_tag: str) -> int:
    """The minor of a valid kube_tag (36 for v1.36 and v1.36.3)."""
    return int(kube_tag.strip().split('.')[1])


def addon_versions(kube_tag: str) -> dict[str, str]:
    """The pinned add-on releases for the minor of ``kube_tag`` (a valid kube_tag)."""
    return dict(ADDON_VERSIONS_BY_MINOR[kube_minor_number(kube_tag)])


def addon_versions_table() -> str:
    """The README's add-on versions table, generated from ADDON_VERSIONS_BY_MINOR."""
    names = list(ADDON_VERSIONS_BY_MINOR[SUPPORTED_KUBE_MINORS[0]])
    rows = ['| Kubernetes | %s |' % ' | '.join('`%s`' % n for n in names),
            '|---|%s' % ('---|' * len(names))]
    for minor in SUPPORTED_KUBE_MINORS:
        row = ADDON_VERSIONS_BY_MINOR[minor]
        rows.append('| v1.%d | %s |' % (minor, ' | '.join(row[n] or '(none yet)'
                                                          for n in names)))
    return '\n'.join(rows)


def reference_table() -> str:
    """The README's label reference, generated from :data:`LABELS`."""
    rows = ['| label | default | allowed | meaning |', '|---|---|---|---|']
    for label in LABELS:
        rows.append('| `%s` | %s | %s | %s |'
                    % (label.name, label.default_doc, label.allowed, label.doc))
    return '\n'.join(rows)
