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

"""What the driver reads back from Heat: the one table of stack outputs.

:data:`OUTPUTS` names every output the code reads, which stack declares it and what it
feeds in Magnum; the rest of the package spells an output only through the constants
below (``tests/unit/test_outputs.py`` checks the table against the templates, both
ways). Also here: :class:`StackState` (one ``GET /stacks/<id>``), the merge of a pool's
servers-stack outputs into its parent's (:func:`with_pool_outputs`) and Heat's wording
made actionable (:func:`friendly`). Pure: plain data in, plain data out; ``heat.py``
(which fetches) and ``status.py`` (which maps) both import it.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from typing import Any, Callable, Mapping

#: the stacks whose outputs the driver reads: the cluster's (celtic.yaml), a nodegroup's
#: own (minion.yaml as a root template) and a pool's servers stack (minion_nodes.yaml,
#: rendered by the driver, read through :func:`with_pool_outputs`)
CLUSTER_STACK = 'celtic.yaml'
POOL_STACK = 'minion.yaml'
SERVERS_STACK = 'minion_nodes.yaml'


class Output(str):
    """One stack output the code reads: its name (the string itself), the stack that
    declares it and what it feeds in Magnum."""
    stack: str
    feeds: str

    def __new__(cls, name: str, stack: str, feeds: str) -> 'Output':
        output = super().__new__(cls, name)
        output.stack = stack
        output.feeds = feeds
        return output

    @property
    def name(self) -> str:
        return str(self)


# ---- the cluster stack (celtic.yaml) ---------------------------------------------------
#: cluster.api_address is https://<the API VIP's floating IP, else the VIP>:6443,
#: worked out by status.api_address; the template's api_address says it to operators
API_ADDRESS = Output('api_address', CLUSTER_STACK, 'operators only (stack output show)')
API_VIP = Output('api_vip', CLUSTER_STACK, 'cluster.api_address; the lab summary')
API_VIP_FIP = Output('api_vip_fip', CLUSTER_STACK, 'cluster.api_address')
MASTER_ADDRESSES = Output('master_addresses', CLUSTER_STACK,
                          'node_addresses of the master nodegroup')
MASTER_MEMBERS = Output('master_members', CLUSTER_STACK,
                        'master resize: present when the masters are told the member '
                        'list (celtic_members) and run celtic-members.timer')
MASTER_REMOVAL = Output('master_removal', CLUSTER_STACK,
                        'master shrink: the masters being removed between its two '
                        'updates (empty otherwise); present when masters can be removed')
KUBE_VERSION = Output('kube_version', CLUSTER_STACK, 'cluster.coe_version')
# read by the lab's summary only, nothing in Magnum
PROXY_VIP = Output('proxy_vip', CLUSTER_STACK, 'the lab summary')
PROXY_VIP_FIP = Output('proxy_vip_fip', CLUSTER_STACK, 'the lab summary')
PROXY_ADDRESSES = Output('proxy_addresses', CLUSTER_STACK, 'the lab summary')
STORAGE_ADDRESSES = Output('storage_addresses', CLUSTER_STACK, 'the lab summary')
# what a nodegroup's own stack is wired to (request.pool_request)
FIXED_NETWORK = Output('fixed_network', CLUSTER_STACK,
                       'the network parameter of a nodegroup stack')
FIXED_SUBNET = Output('fixed_subnet', CLUSTER_STACK,
                      'the subnet parameter of a nodegroup stack')
MINION_SECURITY_GROUPS = Output('minion_security_groups', CLUSTER_STACK,
                                'the security_groups parameter of a nodegroup stack')
CLUSTER_FACTS = Output('cluster_facts', CLUSTER_STACK,
                       'params of a nodegroup stack: the API VIP, CIDRs, ... its nodes '
                       'join with')
MINION_NODES_STACK = Output('minion_nodes_stack', CLUSTER_STACK,
                            'where the default pool\'s member outputs are read')
# ---- a nodegroup's own stack (minion.yaml) ---------------------------------------------
NODES_STACK = Output('nodes_stack', POOL_STACK,
                     'where a nodegroup\'s member outputs are read')
# ---- a pool's servers stack (minion_nodes.yaml), merged by with_pool_outputs -----------
MEMBERS = Output('members', SERVERS_STACK, 'resize planning: the members a pool has')
NEXT_INDEX = Output('next_index', SERVERS_STACK,
                    'resize planning: the index the next new member gets')
ADDRESSES = Output('addresses', SERVERS_STACK, 'node_addresses of a worker nodegroup')
SERVER_IDS = Output('server_ids', SERVERS_STACK,
                    'resize: which member a nodes_to_remove server UUID is')
NAMES = Output('names', SERVERS_STACK, 'nothing in Magnum: server names, for operators')

#: the table: every output the driver reads, in the order above
OUTPUTS: tuple[Output, ...] = tuple(value for value in list(globals().values())
                                    if isinstance(value, Output))

#: the prefix a servers-stack output takes once merged into the cluster stack's outputs
#: (the default pool, False) or a nodegroup stack's (True)
POOL_PREFIX = {False: 'minion_', True: ''}
#: the output that names a pool's servers stack, in the cluster stack (False) and in a
#: nodegroup's (True)
NODES_STACK_OUTPUT = {False: MINION_NODES_STACK, True: NODES_STACK}

BY_NAME = {output.name: output for output in OUTPUTS}


def pool_output(name: str, pool_stack: bool) -> str:
    """The name a servers-stack output is read under: as it is in a nodegroup's own
    stack (``pool_stack``), ``minion_<name>`` in the cluster stack (the default pool)."""
    if BY_NAME[name].stack != SERVERS_STACK:
        raise KeyError('%s is not an output of %s' % (name, SERVERS_STACK))
    return POOL_PREFIX[pool_stack] + name


@dataclasses.dataclass(frozen=True)
class StackState:
    """What one ``GET /stacks/<id>`` tells about a stack."""
    id: str
    name: str
    status: str
    reason: str
    outputs: Mapping[str, Any]
    #: the stack's parameters as Heat shows them (hidden ones masked)
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: when Heat started the stack's current operation (seconds since the epoch)
    started: float | None = None
    #: the stack's timeout (Heat's timeout_mins), None when it has none
    timeout_minutes: int | None = None

    @property
    def action(self) -> str:
        """CREATE, UPDATE, ... (the state may contain '_': IN_PROGRESS)."""
        for state in ('_IN_PROGRESS', '_COMPLETE', '_FAILED'):
            if self.status.endswith(state):
                return self.status[:-len(state)]
        return self.status


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
    (:func:`pool_output`: ``minion_addresses``, ...). Outputs the stack has itself win,
    so a stack created by an earlier release, which has them directly, reads the same."""
    merged = dict(outputs)
    for pool_stack, key in NODES_STACK_OUTPUT.items():
        reference = outputs.get(key)
        if not isinstance(reference, str) or not reference:
            continue
        for name, value in (fetch(nested_stack_path(reference)) or {}).items():
            merged.setdefault(POOL_PREFIX[pool_stack] + name, value)
    return merged


MAX_RESOURCES_HELP = (
    'the cluster needs more Heat resources than Heat allows in one stack '
    '(max_resources_per_stack, %s). Ask the operator to raise max_resources_per_stack '
    'in heat.conf (and [celtic] heat_max_resources_per_stack in magnum.conf), or '
    'put additional workers in a separate nodegroup: each nodegroup has a stack of '
    'its own')


# Text that is a program's, not a person's: an SQL error as SQLAlchemy words it, a
# Python traceback, an exception's repr. Never shown as a status_reason.
_RAW = re.compile(r'\((?:sqlite3|pymysql|psycopg2?|MySQLdb|oslo_db)[.\w]*\)|\[SQL: |'
                  r'Traceback \(most recent call last\)|<[\w.]+ object at 0x[0-9a-f]+>|'
                  r'\b\w+(?:Error|Exception)\(\'')


# A connection library's account of a failed connection (keystoneauth, requests,
# urllib3): the address before it is worth keeping, the rest is not.
_CONNECTION = re.compile(r'(?::\s*)?(?:HTTPConnectionPool|HTTPSConnectionPool|Max retries '
                         r'exceeded|\(Caused by|NewConnectionError|ConnectionRefusedError)')


def scrub(reason: str, log: str = 'heat-engine') -> str:
    """A reason with any raw program text (SQL errors, tracebacks, exception reprs,
    a connection library's internals) cut off and replaced by where to read it."""
    connection = _CONNECTION.search(reason)
    if connection:
        head = reason[:connection.start()].rstrip(' :-([')
        return '%s (connection refused or timed out; the details are in the %s log)' % (
            head, log)
    raw = _RAW.search(reason)
    if not raw:
        return reason
    head = reason[:raw.start()].rstrip(' :-([')
    return '%s%sinternal error (the details are in the %s log)' % (
        head, ': ' if head else '', log)


#: what a stack whose operation outlived its timeout tells the user
STALLED_HELP = (
    'Heat has been working on the stack\'s %(action)s for longer than its '
    '%(minutes)d-minute timeout and does not end it: its heat-engine probably stopped '
    'in the middle (the heat-engine log says). Nothing resumes it: %(todo)s')


def what_to_do(action: str) -> str:
    """What a user does about an operation Heat gave up on (CREATE, UPDATE, DELETE)."""
    return {'CREATE': 'delete the cluster (or nodegroup) and create it again',
            'DELETE': 'run the delete again'}.get(
                action, 'run the resize again, or delete the cluster')


#: Heat's reason for a stack whose heat-engine died mid-operation (it marks the stack
#: FAILED when an engine starts again), and what a user does about it
ENGINE_DOWN_HELP = (
    'heat-engine stopped while it was working on the stack (Heat: "%s"). Nothing '
    'resumes it: %s')
_ENGINE_DOWN = re.compile(r'Engine went down during (?:stack|resource) (\w+)')


def friendly(message: str, max_resources: int | None = 0) -> str:
    """Heat's wording made actionable where celtic knows better (``max_resources``:
    ``[celtic] heat_max_resources_per_stack``, which the caller reads)."""
    if 'Maximum resources per stack exceeded' in message:
        return MAX_RESOURCES_HELP % ('%d resources as this Magnum is configured'
                                     % max_resources if (max_resources or 0) > 0
                                     else 'as heat.conf sets it')
    if message.strip() == 'Timed out':
        return ('Heat stopped the operation at the stack\'s timeout (the cluster\'s '
                'create_timeout): run it again (a delete starts over where it stopped), '
                'or create the cluster with a longer create_timeout')
    engine_down = _ENGINE_DOWN.search(message)
    if engine_down:
        return ENGINE_DOWN_HELP % (engine_down.group(0),
                                   what_to_do(engine_down.group(1).upper()))
    return message
