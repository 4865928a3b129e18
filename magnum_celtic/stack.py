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

Pure: it reads template files but talks to no service. ``magnum-celtic render`` prints
what these functions return (secrets masked), and the unit tests assert on it.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from typing import Any, Callable, Mapping, Sequence

from magnum_celtic import spec as spec_mod
from magnum_celtic.pki import ClusterPKI
from magnum_celtic.spec import ClusterSpec, PoolSpec
from magnum_celtic.templates import ADDRESSES_TEMPLATE, NODES_TEMPLATE, POOL_TEMPLATE
from magnum_celtic.templates import ROOT_TEMPLATE
from magnum_celtic.templates import TemplateSet

MASK = '***'
# WaitCondition accepts at most 12 h.
MAX_WAIT_SECONDS = 43200

# Heat resources (every nesting level, as Heat counts them against
# max_resources_per_stack) of the templates. Kept next to the templates' shape and
# checked against a real Heat by the functional tests.
FIXED_RESOURCES = 8 + 6 + 1    # celtic.yaml + security.yaml + the pool's group
NETWORK_RESOURCES = 4          # network.yaml (0 with an existing network)
VIP_ADDRESSES = 2              # addresses.yaml, per HA role: the VIP port, its floating IP
NODE_GROUP = 5 + 1             # master/proxy/storage.yaml + node_group.yaml
POOL = 4                       # minion.yaml: handle, config, wait; the server group
PER_HA_NODE = 3                # its port, its node.yaml member, its server
PER_STORAGE_NODE = 5           # port, member, server, volume, attachment
PER_MINION = 1                 # a server


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
    if spec.proxy_count == 0:
        envs.append('no_proxies.yaml')
    if spec.storage_count == 0:
        envs.append('no_storage.yaml')
    return envs


def wait_timeout(spec: ClusterSpec, default_minutes: int) -> tuple[int, int]:
    """(stack timeout in minutes, wait-condition timeout in seconds)."""
    minutes = spec.create_timeout_minutes or default_minutes
    return minutes, min(minutes * 60, MAX_WAIT_SECONDS)


def resource_count(spec: ClusterSpec, minions: int | None = None) -> int:
    """How many resources Heat counts in the cluster's stack tree."""
    n = spec.minion_count if minions is None else minions
    total = FIXED_RESOURCES + POOL + PER_MINION * n
    if not spec.uses_existing_network:
        total += NETWORK_RESOURCES
    total += VIP_ADDRESSES + NODE_GROUP + spec.master_count * PER_HA_NODE
    if spec.proxy_count:
        total += VIP_ADDRESSES + NODE_GROUP + spec.proxy_count * PER_HA_NODE
    if spec.storage_count:
        total += NODE_GROUP + spec.storage_count * PER_STORAGE_NODE
    if n == 0:
        total -= 1   # the wait condition exists only with minions
    return total


def max_minions(spec: ClusterSpec, limit: int) -> int:
    """The largest default-pool size whose stack stays within ``limit`` resources."""
    if limit < resource_count(spec, 1):
        return 0
    return (limit - resource_count(spec, 0) - 1) // PER_MINION


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
    files[NODES_TEMPLATE] = render_nodes(files[NODES_TEMPLATE],
                                         Members.first(spec.minion_count))
    files[ADDRESSES_TEMPLATE] = render_addresses(files[ADDRESSES_TEMPLATE], {
        'master': spec.master_count, 'proxy': spec.proxy_count,
        'storage': spec.storage_count})
    minutes, seconds = wait_timeout(spec, default_timeout)
    params = {
        'cluster_name': spec.cluster_name,
        'cluster_uuid': spec.cluster_uuid,
        'name_prefix': spec.name_prefix,
        'image': spec.image,
        'master_flavor': spec.master_flavor,
        'minion_flavor': spec.default_pool.flavor,
        'proxy_flavor': spec.proxy_flavor,
        'storage_flavor': spec.storage_flavor,
        'ssh_key_name': spec.ssh_key_name,
        'availability_zone': spec.availability_zone,
        'server_group_policy': spec.server_group_policy,
        'boot_volume_size': spec.boot_volume_size,
        'boot_volume_type': spec.boot_volume_type,
        'master_count': spec.master_count,
        'minion_count': spec.minion_count,
        'proxy_count': spec.proxy_count,
        'storage_count': spec.storage_count,
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
        'lb_client_cert': pki.lb_client.cert if spec.proxy_count else '',
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
    node_params.update(cluster_outputs.get('cluster_facts') or {})
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
    files[NODES_TEMPLATE] = render_nodes(files[NODES_TEMPLATE], Members.first(pool.count))
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
        'network': cluster_outputs['fixed_network'],
        'subnet': cluster_outputs['fixed_subnet'],
        'security_groups': list(cluster_outputs['minion_security_groups']),
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


@dataclasses.dataclass(frozen=True)
class Members:
    """The members of a rendered minion_nodes.yaml: their indices (resource names and
    the last part of the server names) and the index the next new member gets."""
    indices: tuple[int, ...]
    next_index: int

    @classmethod
    def first(cls, count: int) -> 'Members':
        return cls(tuple(range(count)), count)


#: the pattern resource of minion_nodes.yaml that the driver repeats once per member
PATTERN = 'member'
#: outputs of minion_nodes.yaml as a nodegroup's stack shows them (True) and, in the
#: cluster stack, the names they have for the default pool (False); see with_pool_outputs
MEMBER_OUTPUTS = {False: ('minion_members', 'minion_next_index', 'minion_server_ids'),
                  True: ('members', 'next_index', 'server_ids')}
#: the output that names a pool's servers stack (minion_nodes.yaml), and the prefix its
#: outputs take when merged in: in the cluster stack (False) and a nodegroup's (True)
POOL_STACK_OUTPUTS = {False: ('minion_nodes_stack', 'minion_'), True: ('nodes_stack', '')}


def nested_stack_path(reference: str) -> str:
    """``<name>/<id>`` of a nested stack from its reference (Heat gives a template
    resource's as an ARN, ``arn:openstack:heat::<project>:stacks/<name>/<id>``)."""
    _, marker, path = reference.partition(':stacks/')
    return urllib.parse.unquote(path.strip('/') if marker else reference)


def with_pool_outputs(outputs: Mapping[str, Any],
                      fetch: Callable[[str], Mapping[str, Any] | None]) -> dict[str, Any]:
    """A cluster's or nodegroup's stack outputs with its pool's member outputs added.

    minion.yaml does not pass on the outputs of its servers stack: any output there that
    read a member attribute would make heat-engine resolve all of them (loading every
    server) at each of the pool's wait condition signals, once per node. It names the
    servers stack instead, and this reads that stack's outputs (``fetch(<name>/<id>)``,
    one GET) and adds them under the names older templates gave them
    (MEMBER_OUTPUTS, ``minion_addresses``, ...). Outputs the stack has itself win, so a
    stack created by an earlier release, which has them directly, reads the same."""
    merged = dict(outputs)
    for key, prefix in POOL_STACK_OUTPUTS.values():
        reference = outputs.get(key)
        if not isinstance(reference, str) or not reference:
            continue
        for name, value in (fetch(nested_stack_path(reference)) or {}).items():
            merged.setdefault(prefix + name, value)
    return merged


def _with_index(node: Any, index: int) -> Any:
    if isinstance(node, str):
        return node.replace('%index%', str(index))
    if isinstance(node, list):
        return [_with_index(item, index) for item in node]
    if isinstance(node, dict):
        return {key: _with_index(value, index) for key, value in node.items()}
    return node


def _for_member(node: Any, name: str, pattern: str = PATTERN) -> Any:
    """A pattern output item, pointed at one member instead of the pattern."""
    if isinstance(node, list):
        return [_for_member(item, name, pattern) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key == 'get_resource' and value == pattern:
            result[key] = name
        elif key == 'get_attr' and isinstance(value, list) and value[:1] == [pattern]:
            result[key] = [name] + value[1:]
        else:
            result[key] = _for_member(value, name, pattern)
    return result


def _refers_to(node: Any, pattern: str) -> bool:
    """Whether a template snippet names the pattern resource."""
    return _for_member(node, '', pattern) != node


def _expand_list_output(output: Mapping[str, Any],
                        members: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """An output whose value is a one-item list naming a pattern, with one item per
    member of that pattern instead (``members``: pattern -> member names in order);
    any other output as it is."""
    value = output.get('value')
    if isinstance(value, list) and len(value) == 1:
        for pattern, names in members.items():
            if _refers_to(value[0], pattern):
                return dict(output, value=[_for_member(value[0], n, pattern)
                                           for n in names])
    return dict(output)


#: the port patterns of addresses.yaml, by role
PORT_PATTERNS = {'master_port': 'master', 'proxy_port': 'proxy', 'storage_port': 'storage'}


def render_addresses(pattern_text: str, counts: Mapping[str, int]) -> str:
    """addresses.yaml with one copy of each role's port pattern per node of the role
    (``counts``: role -> nodes), named ``<role>-<index>``, and its list outputs naming
    them in index order. A role without nodes has no port and empty lists."""
    import yaml
    doc = yaml.safe_load(pattern_text)
    resources: dict[str, Any] = {}
    members: dict[str, list[str]] = {}
    for name, definition in doc['resources'].items():
        role = PORT_PATTERNS.get(name)
        if role is None:
            resources[name] = definition
            continue
        members[name] = ['%s-%d' % (role, i) for i in range(counts[role])]
        for index, member in enumerate(members[name]):
            resources[member] = _with_index(definition, index)
    outputs = {key: _expand_list_output(output, members)
               for key, output in (doc.get('outputs') or {}).items()}
    doc.update(heat_template_version=str(doc['heat_template_version']),
               resources=resources, outputs=outputs)
    return json.dumps(doc, indent=1, sort_keys=True) + '\n'


def render_nodes(pattern_text: str, members: Members) -> str:
    """minion_nodes.yaml with one copy of its ``member`` pattern per member.

    The servers share every property but their name, so the first one's properties
    are a YAML anchor the others merge (``<<: *server``): a 900-member pool stays near
    200 KB, well within Heat's max_template_size (512 KB by default). Everything is
    written as JSON flow collections, which YAML reads as they are."""
    import yaml
    doc = yaml.safe_load(pattern_text)
    resources = dict(doc['resources'])
    pattern = resources.pop(PATTERN)
    lines = ['heat_template_version: %s' % json.dumps(str(doc['heat_template_version'])),
             'description: "The servers of a minion pool, rendered by the celtic driver '
             'from minion_nodes.yaml: %d members."' % len(members.indices),
             'parameters: %s' % json.dumps(doc.get('parameters') or {}, sort_keys=True),
             'conditions: %s' % json.dumps(doc.get('conditions') or {}, sort_keys=True),
             'resources:']
    for name, definition in resources.items():
        lines.append('  %s: %s' % (json.dumps(name), json.dumps(definition, sort_keys=True)))
    properties = pattern.get('properties') or {}
    for position, index in enumerate(members.indices):
        if position == 0:
            body = '&server %s' % json.dumps(_with_index(properties, index), sort_keys=True)
        else:
            body = '{<<: *server, "name": %s}' % json.dumps(
                _with_index(properties.get('name'), index))
        lines.append('  %s: {"type": %s, "properties": %s}' % (
            json.dumps(str(index)), json.dumps(pattern['type']), body))
    outputs = {}
    names = [str(i) for i in members.indices]
    for key, output in (doc.get('outputs') or {}).items():
        output = _expand_list_output(output, {PATTERN: names})
        if key == 'members':
            output['value'] = names
        elif key == 'next_index':
            output['value'] = members.next_index
        outputs[key] = output
    lines.append('outputs: %s' % json.dumps(outputs, sort_keys=True))
    return '\n'.join(lines) + '\n'


def plan_members(outputs: Mapping[str, Any], count: int,
                 nodes_to_remove: Sequence[str] = (), pool_stack: bool = False) -> Members:
    """The members a pool has after a resize to ``count``.

    ``nodes_to_remove`` (Nova server UUIDs, or member names) go first; then, like a
    ResourceGroup, the highest indices go when the pool shrinks further, and new members
    take fresh indices when it grows (an index is never used twice, so a new node
    never takes the name of a removed one)."""
    members_key, next_key, ids_key = MEMBER_OUTPUTS[pool_stack]
    ids = list(outputs.get(ids_key) or [])
    names = outputs.get(members_key)
    if not isinstance(names, list):  # a stack whose pool template never came up
        names = [str(i) for i in range(len(ids))]
    indices = [int(n) for n in names if str(n).isdigit()]
    try:
        next_index = int(outputs.get(next_key))
    except (TypeError, ValueError):
        next_index = 0
    next_index = max([next_index] + [i + 1 for i in indices])
    server_of = dict(zip(indices, ids))
    remove = set(nodes_to_remove)
    keep = sorted(i for i in indices if str(i) not in remove and server_of.get(i) not in remove)
    keep = keep[:count]
    while len(keep) < count:
        keep.append(next_index)
        next_index += 1
    return Members(tuple(keep), next_index)


def scale_request(templates: TemplateSet, outputs: Mapping[str, Any], count: int,
                  nodes_to_remove: Sequence[str] = (),
                  pool_stack: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """(parameters, files) of the PATCH update that resizes a pool to ``count``: the
    count and minion_nodes.yaml re-rendered for the new members; everything else
    stays as it is."""
    members = plan_members(outputs, count, nodes_to_remove, pool_stack)
    files = {NODES_TEMPLATE: render_nodes(templates.read(NODES_TEMPLATE), members)}
    return {('count' if pool_stack else 'minion_count'): count}, files


def hidden_parameters(template_text: str) -> frozenset[str]:
    """Names of the parameters a template declares ``hidden: true``."""
    import yaml
    parsed = yaml.safe_load(template_text) or {}
    return frozenset(name for name, schema in (parsed.get('parameters') or {}).items()
                     if isinstance(schema, Mapping) and schema.get('hidden'))


def to_json(request: StackRequest) -> str:
    """The masked request as pretty JSON (what ``magnum-celtic render`` prints)."""
    return json.dumps(request.masked(), indent=2, sort_keys=True)
