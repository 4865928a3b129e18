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

"""The Heat resource budget: how many resources a celtic stack tree holds.

Heat counts every resource of every nesting level against ``max_resources_per_stack``;
the driver refuses, before anything is sent, a cluster or nodegroup whose stack would
not fit (``adapters.check_stack_size`` / ``check_pool_size`` with magnum.conf's
``[celtic] heat_max_resources_per_stack``). Pure: counts from a ClusterSpec.
"""

from __future__ import annotations

from magnum_celtic.spec import ClusterSpec

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
#: node_group.yaml on the masters only: members_handle (doc/master-resize.md); its
#: members_wait exists only between the two updates of a master removal, which add no
#: server, so a stack at the cap can still remove masters only with one resource spare
MASTER_MEMBERS = 1


def resource_count(spec: ClusterSpec, minions: int | None = None) -> int:
    """How many resources Heat counts in the cluster's stack tree."""
    n = spec.minion_count if minions is None else minions
    total = FIXED_RESOURCES + POOL + PER_MINION * n
    if not spec.uses_existing_network:
        total += NETWORK_RESOURCES
    total += (VIP_ADDRESSES + NODE_GROUP + MASTER_MEMBERS
              + spec.masters.count * PER_HA_NODE)
    if spec.proxies.count:
        total += VIP_ADDRESSES + NODE_GROUP + spec.proxies.count * PER_HA_NODE
    if spec.storage.count:
        total += NODE_GROUP + spec.storage.count * PER_STORAGE_NODE
    if n == 0:
        total -= 1   # the wait condition exists only with minions
    return total


def max_minions(spec: ClusterSpec, limit: int) -> int:
    """The largest default-pool size whose stack stays within ``limit`` resources."""
    if limit < resource_count(spec, 1):
        return 0
    return (limit - resource_count(spec, 0) - 1) // PER_MINION


def pool_resource_count(count: int) -> int:
    """How many resources Heat counts in a nodegroup's own stack of ``count`` workers
    (minion.yaml: its POOL resources, the servers stack, one per minion)."""
    return POOL + 1 + count * PER_MINION


def stack_size_error(spec: ClusterSpec, limit: int | None,
                     minions: int | None = None) -> str | None:
    """Why a default pool of ``minions`` (default: the spec's) does not fit ``limit``
    resources, or None when it does (or when ``limit`` is None or negative: Heat's
    own limit applies)."""
    if limit is None or limit < 0:
        return None
    needed = resource_count(spec, minions)
    if needed <= limit:
        return None
    n = spec.minion_count if minions is None else minions
    return ('%d workers in the default nodegroup need %d Heat resources but Heat '
            'allows %d per stack (max_resources_per_stack; at most %d workers '
            'fit). Ask the operator to raise max_resources_per_stack in heat.conf '
            'and [celtic] heat_max_resources_per_stack in magnum.conf, or add '
            'workers in another nodegroup, which has a stack of its own.'
            % (n, needed, limit, max_minions(spec, limit)))


def pool_size_error(count: int, limit: int | None) -> str | None:
    """Why a nodegroup of ``count`` workers does not fit its own stack, or None."""
    if limit is None or limit < 0:
        return None
    needed = pool_resource_count(count)
    if needed <= limit:
        return None
    return ('%d workers need %d Heat resources but Heat allows %d per stack '
            '(max_resources_per_stack); split them into several nodegroups'
            % (count, needed, limit))


def scaling_size_error(spec: ClusterSpec, limit: int | None) -> str | None:
    """Why the default pool's label max_node_count does not fit ``limit`` resources
    (the autoscaler would grow the stack past Heat's cap), or None."""
    high = spec.scaling.max_nodes
    if not spec.scaling.autoscaling or high is None:
        return None
    error = stack_size_error(spec, limit, high)
    if error is None:
        return None
    return 'label max_node_count %d is more than the stack can hold: %s' % (high, error)


def pool_max_error(max_node_count: int | None, limit: int | None) -> str | None:
    """Why a nodegroup's max_node_count does not fit its own stack, or None."""
    if max_node_count is None:
        return None
    error = pool_size_error(max_node_count, limit)
    if error is None:
        return None
    return 'max_node_count %d is more than the nodegroup\'s stack can hold: %s' % (
        max_node_count, error)
