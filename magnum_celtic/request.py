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

"""ClusterSpec + ClusterPKI -> the exact Heat stack request the driver sends.

Stack names, the feature environments, the parameters of the cluster's stack
(``celtic.yaml``) and of a nodegroup's own stack (``minion.yaml``), the PATCH of a
resize, and the whole-template request that moves a stack an earlier release created.
Pure: it reads template files (through ``TemplateSet``, expanded by
:mod:`magnum_celtic.expand`) but talks to no service. ``magnum-celtic render`` prints
what these functions return (secrets masked), and the unit tests assert on it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

from magnum_celtic import expand
from magnum_celtic import outputs as out
from magnum_celtic import spec as spec_mod
from magnum_celtic.pki import ClusterPKI
from magnum_celtic.spec import ClusterSpec, PoolSpec
from magnum_celtic.templates import ADDRESSES_TEMPLATE, NODES_TEMPLATE, POOL_TEMPLATE
from magnum_celtic.templates import ROOT_TEMPLATE
from magnum_celtic.templates import TemplateSet

MASK = '***'
# WaitCondition accepts at most 12 h.
MAX_WAIT_SECONDS = 43200


#: the wait handles' signal_transport: TOKEN_SIGNAL for the stacks this release creates
#: (their `signal` attribute is null; only a token that expires with Keystone's token
#: lifetime is shown; no node uses it: the relay signals as admin), HEAT_SIGNAL kept on a
#: stack an earlier release created (True). Never NO_SIGNAL: Heat's NO_SIGNAL handle
#: signals itself SUCCESS at every status check (SignalResponder._service_signal), so
#: its wait condition would complete without any node.
SIGNAL_TRANSPORTS = {False: 'TOKEN_SIGNAL', True: 'HEAT_SIGNAL'}
#: hidden parameters the stacks of earlier releases had (cluster stack, nodegroup
#: stack): a stack that still has one holds secrets in its parameters, configs and
#: events, and its wait handles are HEAT_SIGNAL ones
LEGACY_SECRET_PARAMETERS = ('ca_key', 'bootstrap_token')


def signal_transport(legacy: bool) -> str:
    """The value of the templates' ``signal_transport`` parameter."""
    return SIGNAL_TRANSPORTS[bool(legacy)]


def created_with_secrets(parameters: Mapping[str, Any]) -> bool:
    """Whether a stack (its parameters as Heat shows them) was created by a release
    that passed the secrets through Heat. Its next resize replaces its template with
    this release's (:func:`migration_request`), keeping its wait handles' HEAT_SIGNAL:
    Heat replaces a handle whose signal_transport changes (the property is not
    update_allowed), and the wait condition with it, which would then wait for
    signals that running nodes never send again."""
    return any(name in (parameters or {}) for name in LEGACY_SECRET_PARAMETERS)


def migration_request(request: 'StackRequest', parameters: Mapping[str, Any],
                      files: Mapping[str, str]) -> 'StackRequest':
    """A full request (``cluster_request``/``pool_request`` with legacy_signals)
    with a resize's parameters and re-rendered files (:func:`scale_request`) on top:
    what replaces the template of a stack :func:`created_with_secrets`."""
    return dataclasses.replace(request, parameters={**request.parameters, **parameters},
                               files={**request.files, **files})


@dataclasses.dataclass(frozen=True)
class StackRequest:
    """One Heat stack create/update request."""
    stack_name: str
    template: str
    files: Mapping[str, str]
    environment_files: Sequence[str]
    parameters: Mapping[str, Any]
    hidden: frozenset[str]
    timeout_mins: int

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for heatclient ``stacks.create``."""
        return {'stack_name': self.stack_name,
                'template': self.template,
                'files': dict(self.files),
                'environment_files': list(self.environment_files),
                'parameters': dict(self.parameters),
                'timeout_mins': self.timeout_mins,
                'disable_rollback': True}

    def masked(self) -> dict[str, Any]:
        """The request as ``render`` shows it: hidden parameters replaced by ***."""
        params = {k: (MASK if k in self.hidden and v else v)
                  for k, v in sorted(self.parameters.items())}
        return {'stack_name': self.stack_name,
                'template': ROOT_TEMPLATE if self.template else None,
                'environment_files': list(self.environment_files),
                'files': sorted(self.files),
                'timeout_mins': self.timeout_mins,
                'parameters': params}


def stack_name(spec: ClusterSpec) -> str:
    """Heat stack name of the cluster: starts with a letter, unique per cluster."""
    return 'celtic-%s-%s' % (spec.name_prefix, spec.cluster_uuid[:8])


def cluster_stack_name(cluster_name: str | None, cluster_uuid: str) -> str:
    """stack_name() from what Magnum stores of a cluster (its name and uuid never
    change), for the status poll, which has no ClusterSpec."""
    return 'celtic-%s-%s' % (spec_mod.name_prefix(cluster_name or '', cluster_uuid),
                             str(cluster_uuid)[:8])


def pool_stack_name(cluster_name: str | None, cluster_uuid: str,
                    nodegroup_name: str) -> str:
    """The stack name of a nodegroup with a stack of its own."""
    return '%s-%s' % (cluster_stack_name(cluster_name, cluster_uuid),
                      spec_mod.pool_name(nodegroup_name))


def environment_files(spec: ClusterSpec) -> list[str]:
    """The feature environments, in order, for this cluster."""
    envs = ['defaults.yaml']
    if not spec.floating_ips:
        envs.append('no_floating_ip.yaml')
    if spec.uses_existing_network:
        envs.append('existing_network.yaml')
    if spec.proxies.count == 0:
        envs.append('no_proxies.yaml')
    if spec.storage.count == 0:
        envs.append('no_storage.yaml')
    return envs


def wait_timeout(spec: ClusterSpec, default_minutes: int) -> tuple[int, int]:
    """(stack timeout in minutes, wait-condition timeout in seconds)."""
    minutes = spec.create_timeout_minutes or default_minutes
    return minutes, min(minutes * 60, MAX_WAIT_SECONDS)


def node_settings(spec: ClusterSpec, openstack_insecure: bool = False) -> dict[str, Any]:
    """node_settings plus the operator's TLS choice for nodes reporting to Heat."""
    settings = spec.node_settings()
    settings['openstack_insecure'] = bool(openstack_insecure)
    return settings


def cluster_request(spec: ClusterSpec, pki: ClusterPKI, templates: TemplateSet,
                    default_timeout: int, openstack_ca: str = '',
                    openstack_insecure: bool = False,
                    legacy_signals: bool = False) -> StackRequest:
    """The request that creates the cluster's stack (or, with ``legacy_signals``,
    replaces the template of one an earlier release created: see
    :func:`created_with_secrets`)."""
    envs = environment_files(spec)
    files = templates.closure(ROOT_TEMPLATE, envs)
    template = files.pop(ROOT_TEMPLATE)
    files[NODES_TEMPLATE] = expand.render_nodes(files[NODES_TEMPLATE],
                                                expand.Members.first(spec.minion_count))
    files[ADDRESSES_TEMPLATE] = expand.render_addresses(
        files[ADDRESSES_TEMPLATE], {role: nodes.count for role, nodes in spec.roles.items()})
    # the masters' optional add-ons: no template reads them; celtic-vendordata serves
    # them from here, so a master always gets those its bundle was rendered with
    files.update(templates.served_files())
    minutes, seconds = wait_timeout(spec, default_timeout)
    params = {
        'cluster_name': spec.cluster_name,
        'cluster_uuid': spec.cluster_uuid,
        'name_prefix': spec.name_prefix,
        'image': spec.image,
        'master_flavor': spec.masters.flavor,
        'minion_flavor': spec.default_pool.flavor,
        'proxy_flavor': spec.proxies.flavor,
        'storage_flavor': spec.storage.flavor,
        'ssh_key_name': spec.ssh_key_name,
        'availability_zone': spec.availability_zone,
        'server_group_policy': spec.server_group_policy,
        'boot_volume_size': spec.boot_volume_size,
        'boot_volume_type': spec.boot_volume_type,
        'master_count': spec.masters.count,
        'master_reports': spec.masters.count,
        'minion_count': spec.minion_count,
        'proxy_count': spec.proxies.count,
        'storage_count': spec.storage.count,
        'external_network': spec.external_network,
        'fixed_network_cidr': spec.fixed_network_cidr,
        'dns_nameservers': list(spec.dns_nameservers),
        'existing_network': spec.existing_network,
        'existing_subnet': spec.existing_subnet,
        'api_allowed_cidrs': list(spec.api_allowed_cidrs),
        'proxy_allowed_cidrs': list(spec.proxy_allowed_cidrs),
        'ssh_allowed_cidrs': list(spec.ssh_allowed_cidrs),
        'storage_volume_size': spec.storage_volume_size,
        'storage_volume_type': spec.storage_volume_type,
        'node_settings': node_settings(spec, openstack_insecure),
        'minion_pool_settings': spec.default_pool.settings(),
        'wait_timeout': seconds,
        'openstack_ca': openstack_ca,
        'signal_transport': signal_transport(legacy_signals),
        # public material only: the secrets reach the nodes through celtic-vendordata
        'ca_cert': pki.ca.cert,
        'etcd_ca_cert': pki.etcd_ca.cert,
        'front_proxy_ca_cert': pki.front_proxy_ca.cert,
        'discovery_hash': pki.discovery_hash,
        'lb_client_cert': pki.lb_client.cert if spec.proxies.count else '',
    }
    return StackRequest(stack_name=stack_name(spec), template=template, files=files,
                        environment_files=['environments/' + e for e in envs],
                        parameters=params, hidden=hidden_parameters(template),
                        timeout_mins=minutes)


def pool_node_params(spec: ClusterSpec, pool: PoolSpec, cluster_outputs: Mapping[str, Any],
                     openstack_insecure: bool = False) -> dict[str, Any]:
    """The ``params`` parameter of a nodegroup's own stack: node_settings, the facts
    the cluster stack published and the pool's own settings. A label or taint update
    PATCHes this one parameter; the stack keeps the rest (openstack_ca among them)."""
    node_params = node_settings(spec, openstack_insecure)
    node_params.update(cluster_outputs.get(out.CLUSTER_FACTS) or {})
    node_params.update(pool.settings())
    return node_params


def pool_request(spec: ClusterSpec, pool: PoolSpec, pki: ClusterPKI,
                 cluster_outputs: Mapping[str, Any], templates: TemplateSet,
                 default_timeout: int, openstack_ca: str = '',
                 openstack_insecure: bool = False,
                 legacy_signals: bool = False) -> StackRequest:
    """The request of a non-default worker nodegroup's own stack (minion.yaml)."""
    files = templates.closure(POOL_TEMPLATE, [])
    template = files.pop(POOL_TEMPLATE)
    files[NODES_TEMPLATE] = expand.render_nodes(files[NODES_TEMPLATE],
                                                expand.Members.first(pool.count))
    minutes, seconds = wait_timeout(spec, default_timeout)
    node_params = pool_node_params(spec, pool, cluster_outputs, openstack_insecure)
    params = {
        'name_prefix': spec.name_prefix,
        'pool_name': pool.pool_name,
        'count': pool.count,
        'image': pool.image,
        'flavor': pool.flavor,
        'ssh_key_name': spec.ssh_key_name,
        'availability_zone': spec.availability_zone,
        'server_group_policy': spec.server_group_policy,
        'boot_volume_size': spec.boot_volume_size,
        'boot_volume_type': spec.boot_volume_type,
        'network': cluster_outputs[out.FIXED_NETWORK],
        'subnet': cluster_outputs[out.FIXED_SUBNET],
        'security_groups': list(cluster_outputs[out.MINION_SECURITY_GROUPS]),
        'params': node_params,
        'wait_timeout': seconds,
        'openstack_ca': openstack_ca,
        'signal_transport': signal_transport(legacy_signals),
        'ca_cert': pki.ca.cert,
    }
    name = '%s-%s' % (stack_name(spec), pool.pool_name)
    return StackRequest(stack_name=name, template=template, files=files,
                        environment_files=[], parameters=params,
                        hidden=hidden_parameters(template), timeout_mins=minutes)


def scale_request(templates: TemplateSet, outputs: Mapping[str, Any], count: int,
                  nodes_to_remove: Sequence[str] = (),
                  pool_stack: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameters, files) of the PATCH update that resizes a pool to ``count``: the
    count and minion_nodes.yaml re-rendered for the new members; everything else
    stays as it is."""
    members = expand.plan_members(outputs, count, nodes_to_remove, pool_stack)
    files = {NODES_TEMPLATE: expand.render_nodes(templates.read(NODES_TEMPLATE), members)}
    return {('count' if pool_stack else 'minion_count'): count}, files


def master_resize_request(spec: ClusterSpec, templates: TemplateSet,
                          stack_parameters: Mapping[str, Any], count: int | None = None,
                          finish_removal: int | bool = False
                          ) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameters, files) of the PATCH update that changes the master count to
    ``count`` (``spec.masters.count`` by default): the count and addresses.yaml
    re-rendered with one port per master (the ports of the masters that stay are the
    same resources, so every master keeps its address).

    Growth: Heat updates every running master's server metadata (celtic_members) in
    place and boots the new ones, which join the control plane; node/members.sh on
    the running masters takes the new members into corosync and HAProxy.
    ``finish_removal`` (the new master_departed: masters removed over the cluster's
    life): the second update of a shrink (:func:`master_removal_request` was the
    first): the count goes down, master_removal is emptied, and Heat deletes the
    servers and ports of the masters that already left (doc/master-resize.md).
    ``stack_parameters``: the stack's, as Heat shows them: master_reports, the count
    plus master_departed, goes with the count to a stack whose template has it."""
    count = spec.masters.count if count is None else int(count)
    counts = {role: nodes.count for role, nodes in spec.roles.items()}
    counts['master'] = count
    files = {ADDRESSES_TEMPLATE: expand.render_addresses(templates.read(ADDRESSES_TEMPLATE),
                                                         counts)}
    parameters: dict[str, Any] = {'master_count': count}
    if finish_removal is not False:
        parameters['master_removal'] = ''
        parameters['master_departed'] = departed = int(finish_removal)
    else:
        departed = number_parameter(stack_parameters.get('master_departed'))
    if 'master_reports' in stack_parameters:
        parameters['master_reports'] = count + departed
    return parameters, files


def number_parameter(value: Any) -> int:
    """A number parameter as Heat shows it (a string), 0 when it is not one."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def master_removal_request(spec: ClusterSpec, templates: TemplateSet, current: int,
                           leaving: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameters, files) of the first update of a master shrink: every port and
    server stays (``current`` masters), the member list the masters are told
    (celtic_members) names only the first ``current - len(leaving)``, and
    master_removal names the ``leaving`` addresses, which makes the masters' group
    wait for master 0's report that they are out of etcd, corosync and HAProxy. The
    count does not change until that report is in (doc/master-resize.md)."""
    counts = {role: nodes.count for role, nodes in spec.roles.items()}
    counts['master'] = int(current)
    staying = {'master': int(current) - len(leaving)}
    files = {ADDRESSES_TEMPLATE: expand.render_addresses(templates.read(ADDRESSES_TEMPLATE),
                                                         counts, staying)}
    return {'master_removal': ' '.join(leaving)}, files


def hidden_parameters(template_text: str) -> frozenset[str]:
    """Names of the parameters a template declares ``hidden: true``."""
    import yaml
    parsed = yaml.safe_load(template_text) or {}
    return frozenset(name for name, schema in (parsed.get('parameters') or {}).items()
                     if isinstance(schema, Mapping) and schema.get('hidden'))


def to_json(request: StackRequest) -> str:
    """The masked request as pretty JSON (what ``magnum-celtic render`` prints)."""
    return json.dumps(request.masked(), indent=2, sort_keys=True)
