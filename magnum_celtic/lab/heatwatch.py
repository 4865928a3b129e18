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

"""Watching Heat from the outside: wait for a stack, list and compare its resources.

Used by the tests, the benchmarks and the lab command. Everything goes through
python-heatclient, as a user would see it; "resources" means every row of the stack
tree (``resources.list(nested_depth=...)``), which is what Heat counts against
``max_resources_per_stack``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

from heatclient import exc as heat_exc

NESTED_DEPTH = 10


class StackTimeout(AssertionError):
    """The stack did not leave IN_PROGRESS in time."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One resource of a stack tree."""
    stack_id: str
    name: str
    type: str
    physical_id: str
    status: str
    reason: str
    nested_id: str

    @property
    def nested(self) -> bool:
        """True when the resource is a nested stack (template resource, group)."""
        return bool(self.nested_id)

    @property
    def key(self) -> tuple[str, str]:
        return (self.stack_id, self.name)


def _link(resource, rel: str) -> str:
    for link in getattr(resource, 'links', []) or []:
        if link.get('rel') == rel:
            return link['href'].rstrip('/').rsplit('/', 1)[-1]
    return ''


def rows(heat, stack_id: str) -> list[Row]:
    """Every resource of the stack tree."""
    result = []
    for res in heat.resources.list(stack_id, nested_depth=NESTED_DEPTH):
        result.append(Row(_link(res, 'stack'), res.resource_name, res.resource_type,
                          res.physical_resource_id or '', res.resource_status,
                          res.resource_status_reason or '', _link(res, 'nested')))
    return result


def top_level(tree: Iterable[Row], root_id: str) -> dict[tuple[str, str], str]:
    """For each resource, the name of the root-stack resource it belongs under."""
    tree = list(tree)
    parent = {r.nested_id: r for r in tree if r.nested_id}
    result = {}
    for row in tree:
        current = row
        for _ in range(NESTED_DEPTH + 1):
            if current.stack_id == root_id or current.stack_id not in parent:
                break
            current = parent[current.stack_id]
        result[row.key] = current.name
    return result


def outputs(stack, heat=None) -> dict:
    """A stack's outputs as a dict (output errors as '<error: ...>').

    With ``heat``, a celtic stack's also include its pool's member outputs
    (``minion_addresses``, ...), read from the servers stack as the driver reads them
    (magnum_celtic.outputs.with_pool_outputs)."""
    result = {}
    for out in getattr(stack, 'outputs', None) or []:
        if out.get('output_error'):
            result[out['output_key']] = '<error: %s>' % out['output_error']
        else:
            result[out['output_key']] = out.get('output_value')
    if heat is None:
        return result
    from magnum_celtic import outputs as outputs_mod
    return outputs_mod.with_pool_outputs(
        result, lambda path: outputs(heat.stacks.get(path, resolve_outputs=True)))


def wait(heat, stack_id: str, timeout: float = 900.0, interval: float = 2.0,
         on_poll: Callable[[object], None] | None = None, gone_ok: bool = False):
    """Poll until the stack is no longer IN_PROGRESS; return it with its outputs (None
    when deleted).

    The polls do not ask Heat to resolve the outputs (as Magnum's poller and the
    driver's do not): that would make heat-engine walk the nested stacks at every
    poll and slow down what is being watched."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stack = heat.stacks.get(stack_id, resolve_outputs=False)
        except heat_exc.HTTPNotFound:
            if gone_ok:
                return None
            raise
        if on_poll is not None:
            on_poll(stack)
        if stack.stack_status == 'DELETE_COMPLETE' and gone_ok:
            return None
        if not stack.stack_status.endswith('IN_PROGRESS'):
            if stack.stack_status == 'DELETE_COMPLETE':
                return stack
            return heat.stacks.get(stack_id, resolve_outputs=True)
        if time.monotonic() > deadline:
            raise StackTimeout('stack %s still %s after %.0fs'
                               % (stack.stack_name, stack.stack_status, timeout))
        time.sleep(interval)


@dataclasses.dataclass
class Change:
    """What an update did to the stack tree."""
    created: list[Row]
    deleted: list[Row]
    replaced: list[tuple[Row, Row]]

    def summary(self) -> str:
        return 'created %s; deleted %s; replaced %s' % (
            [r.name + ':' + r.type for r in self.created] or 'nothing',
            [r.name + ':' + r.type for r in self.deleted] or 'nothing',
            [b.name + ':' + b.type for b, _ in self.replaced] or 'nothing')


def compare(before: Iterable[Row], after: Iterable[Row]) -> Change:
    """Resources created, deleted and replaced (same place, new physical id)."""
    old = {r.key: r for r in before}
    new = {r.key: r for r in after}
    created = [r for k, r in new.items() if k not in old]
    deleted = [r for k, r in old.items() if k not in new]
    replaced = [(old[k], new[k]) for k in old.keys() & new.keys()
                if old[k].physical_id and new[k].physical_id
                and old[k].physical_id != new[k].physical_id]
    return Change(created, deleted, replaced)


def failures(tree: Iterable[Row]) -> list[str]:
    """'<name> (<type>): <reason>' for each failed resource, innermost first."""
    failed = [r for r in tree if r.status.endswith('FAILED')]
    failed.sort(key=lambda r: r.nested)
    return ['%s (%s): %s' % (r.name, r.type, r.reason) for r in failed]
