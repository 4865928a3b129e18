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

"""The templates the driver renders, and the planning of a pool's members.

Why some templates are rendered
-------------------------------
Most of ``heat_templates/`` goes to Heat as it is. Two files are expanded by the
driver before they are sent, because Heat's own way of repeating a resource (a
``ResourceGroup``) costs more than the cluster can afford:

- ``minion_nodes.yaml`` holds one ``member`` pattern (a server); :func:`render_nodes`
  writes one copy per member, named by its index. A ResourceGroup would make each
  member a nested stack of its own (3 resources per worker instead of 1, against
  ``max_resources_per_stack``) and load them all at every update; with the members
  written out, a 900-worker pool is one stack of 900 servers, and a resize is a PATCH
  that adds or removes exactly the servers it names.
- ``addresses.yaml`` holds one port pattern per HA role; :func:`render_addresses`
  writes one port per node of the role and expands the list outputs that name them.

Since there is no ResourceGroup, the driver plans what one would have done on a resize
(:func:`plan_members`): named nodes go first, then the highest indices; new members take
fresh indices, so a new node never takes the name of a removed one. The members a pool
has come back as the servers stack's outputs (:mod:`magnum_celtic.outputs`).

Pure: text in, text out (the same input gives the same bytes).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

from magnum_celtic import outputs as out


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
#: the list outputs of addresses.yaml that name only the members that stay, by role
STAYING_OUTPUTS = {'master_members': 'master'}


def render_addresses(pattern_text: str, counts: Mapping[str, int],
                     staying: Mapping[str, int] | None = None) -> str:
    """addresses.yaml with one copy of each role's port pattern per node of the role
    (``counts``: role -> nodes), named ``<role>-<index>``, and its list outputs naming
    them in index order. A role without nodes has no port and empty lists.

    ``staying`` (role -> nodes) cuts the outputs of STAYING_OUTPUTS to the first nodes
    of the role: while masters are being removed their ports (and servers) are still
    there, but the member list the masters are told no longer names them
    (doc/master-resize.md). By default every node stays."""
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
    for key, role in STAYING_OUTPUTS.items():
        if key in outputs and isinstance(outputs[key].get('value'), list):
            keep = min(counts[role], (staying or {}).get(role, counts[role]))
            outputs[key]['value'] = outputs[key]['value'][:keep]
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
        if key == out.MEMBERS:
            output['value'] = names
        elif key == out.NEXT_INDEX:
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
    members_key, next_key, ids_key = (out.pool_output(name, pool_stack) for name in
                                      (out.MEMBERS, out.NEXT_INDEX, out.SERVER_IDS))
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


def resolve_members(outputs: Mapping[str, Any], nodes_to_remove: Sequence[str],
                    pool_stack: bool = False) -> tuple[list[str], list[str], list[str]]:
    """(the nodes_to_remove as server ids, the entries that are no node of the pool, the
    pool's node names): a resize names a node by its Nova server UUID or by its server
    name (what ``kubectl get nodes`` shows), which the servers stack's ``server_ids``
    and ``names`` outputs list in the same order."""
    ids = [str(s) for s in outputs.get(out.pool_output(out.SERVER_IDS, pool_stack)) or []]
    names = outputs.get(out.pool_output(out.NAMES, pool_stack))
    names = [str(n) for n in names] if isinstance(names, list) else []
    by_name = dict(zip(names, ids)) if len(names) == len(ids) else {}
    resolved, unknown = [], []
    for entry in nodes_to_remove:
        if entry in ids:
            resolved.append(entry)
        elif entry in by_name:
            resolved.append(by_name[entry])
        else:
            unknown.append(entry)
    valid = sorted(n for n in by_name if n) or sorted(s for s in ids if s)
    return resolved, unknown, valid


def server_count(outputs: Mapping[str, Any], pool_stack: bool = False) -> int:
    """How many servers a pool has now (its ``server_ids``)."""
    return len(outputs.get(out.pool_output(out.SERVER_IDS, pool_stack)) or [])
