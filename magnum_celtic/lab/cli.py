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

"""``magnum-celtic lab``: a celtic cluster through real Keystone, Heat and Magnum, here.

Starts the control plane (embedded back end unless told otherwise), creates a cluster
template (``--driver celtic``) and a cluster as the ``demo`` user with
python-magnumclient, shows what Heat is doing while it works, prints the result (status,
API address, every role with its addresses and its Heat resources), then grows the
worker pool by one, shrinks it again removing a chosen node, and deletes the cluster.
With ``--keep`` it leaves the cluster up and waits for Ctrl-C instead. Every service is
stopped on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time

from magnum_celtic import outputs as out
from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import controlplane
from magnum_celtic.lab import heatwatch
from magnum_celtic.lab import process

#: root-stack resources of celtic.yaml, by the role they serve
ROLE_OF = {'masters': 'master', 'proxies': 'proxy', 'storage': 'storage', 'minions': 'minion'}
ROLES = ('master', 'proxy', 'minion', 'storage')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lab's options (the lead's ``magnum-celtic`` parser calls this)."""
    parser.add_argument('--backend', choices=backend_mod.BACKENDS, default=None,
                        help='embedded (default: sqlite, in-process messaging) or mariadb '
                             '(MariaDB + RabbitMQ on this machine)')
    parser.add_argument('--name', default='celtic-lab', help='cluster name')
    parser.add_argument('--masters', type=int, default=3)
    parser.add_argument('--minions', type=int, default=3)
    parser.add_argument('--proxies', type=int, default=2)
    parser.add_argument('--storage', type=int, default=3)
    parser.add_argument('--distro', choices=('ubuntu', 'debian'), default='ubuntu')
    parser.add_argument('--labels', default='',
                        help='more cluster labels, e.g. kube_tag=v1.36,proxy_count=0 (the '
                             'network driver is a template field, not a label)')
    parser.add_argument('--boot-seconds', type=float, default=2.0,
                        help='how long each stand-in server takes to boot')
    parser.add_argument('--keep', action='store_true',
                        help='keep the cluster up (no resize, no delete) until Ctrl-C')
    parser.add_argument('--state-dir', default='',
                        help='where logs, configs and the fake cloud live (default: a '
                             'temporary directory, removed at the end)')


class Screen:
    """What a person watching the lab reads: steps, one progress line, tables."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self._last = ''

    def clock(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return '%02d:%02d' % (seconds // 60, seconds % 60)

    def line(self, text: str = '') -> None:
        self.done()
        self.stream.write(text + '\n')
        self.stream.flush()

    def step(self, text: str) -> None:
        self.line('[%s] %s' % (self.clock(), text))

    def progress(self, text: str) -> None:
        text = '[%s]   %s' % (self.clock(), text)
        if self.tty:
            self.stream.write('\r' + text.ljust(len(self._last)))
            self.stream.flush()
            self._last = text
        elif text[8:] != self._last[8:]:
            self.stream.write(text + '\n')
            self.stream.flush()
            self._last = text

    def done(self) -> None:
        if self.tty and self._last:
            self.stream.write('\n')
        self._last = ''

    def table(self, rows: list[list[str]], indent: str = '  ') -> None:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.line(indent + '  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


class Lab:
    """One cluster's life, shown on a Screen."""

    def __init__(self, plane: controlplane.ControlPlane, args: argparse.Namespace,
                 screen: Screen):
        self.plane = plane
        self.args = args
        self.screen = screen
        self.magnum = plane.magnum('demo')
        self.heat = plane.heat('demo')
        self.prefix = ''
        self.cluster = None

    # ---- steps ----------------------------------------------------------------------

    def run(self) -> int:
        template = self.create_template()
        if not self.create_cluster(template):
            return 1
        if self.args.keep:
            return self.wait_for_interrupt()
        if self.args.minions >= 1:
            if not self.resize_up() or not self.resize_down():
                return 1
        return 0 if self.delete() else 1

    def create_template(self):
        image = 'ubuntu-24.04' if self.args.distro == 'ubuntu' else 'debian-12'
        template = clusterwatch.create_template(
            self.magnum, self.args.name + '-template', image_id=image,
            flavor_id='m1.medium', master_flavor_id='m1.medium')
        self.screen.step('cluster template %s: driver %s, image %s (%s)'
                         % (template.name, template.driver, image, template.cluster_distro))
        return template

    def create_cluster(self, template) -> bool:
        labels = {'proxy_count': str(self.args.proxies),
                  'storage_count': str(self.args.storage)}
        labels.update(_pairs(self.args.labels))
        self.plane.cloud.set_behaviour([], {'boot_seconds': self.args.boot_seconds})
        created = self.magnum.clusters.create(
            name=self.args.name, cluster_template_id=template.uuid,
            master_count=self.args.masters, node_count=self.args.minions, keypair='lab',
            labels=labels, merge_labels=True)
        self.screen.step('cluster %s: create (%s)' % (self.args.name, ', '.join(
            _count(n, role) for n, role in ((self.args.masters, 'master'),
                                            (self.args.proxies, 'prox'),
                                            (self.args.minions, 'minion'),
                                            (self.args.storage, 'storage node')))))
        started = time.monotonic()
        cluster = clusterwatch.wait(self.magnum, created.uuid, 'CREATE', timeout=3600,
                                    on_poll=self.show_progress)
        self.cluster = cluster
        elapsed = time.monotonic() - started
        self.screen.step('cluster %s: %s in %.0fs' % (cluster.name, cluster.status, elapsed))
        if cluster.status != 'CREATE_COMPLETE':
            self.screen.line('  reason: %s' % cluster.status_reason)
            return False
        self.show_cluster(cluster)
        return True

    def resize_up(self) -> bool:
        count = self.cluster.node_count + 1
        return self._resize(count, [], 'grow the worker pool to %d' % count)

    def resize_down(self) -> bool:
        servers = self.servers('minion')
        if not servers:
            return True
        chosen = sorted(servers)[0]
        return self._resize(self.cluster.node_count - 1, [servers[chosen]['id']],
                            'shrink the worker pool to %d, removing %s'
                            % (self.cluster.node_count - 1, chosen))

    def _resize(self, count: int, remove: list[str], what: str) -> bool:
        before = self.magnum.clusters.get(self.cluster.uuid)
        names_before = set(self.servers('minion'))
        self.screen.step('cluster %s: %s' % (self.cluster.name, what))
        started = time.monotonic()
        self.magnum.clusters.resize(self.cluster.uuid, node_count=count,
                                    nodes_to_remove=remove)
        cluster = clusterwatch.wait(self.magnum, self.cluster.uuid, 'UPDATE', timeout=3600,
                                    on_poll=self.show_progress, before=before)
        self.cluster = cluster
        after = set(self.servers('minion'))
        self.screen.step('cluster %s: %s in %.0fs; minions added %s, removed %s'
                         % (cluster.name, cluster.status, time.monotonic() - started,
                            ', '.join(sorted(after - names_before)) or 'none',
                            ', '.join(sorted(names_before - after)) or 'none'))
        if cluster.status != 'UPDATE_COMPLETE':
            self.screen.line('  reason: %s' % cluster.status_reason)
            return False
        self.screen.line('  minion addresses: %s' % ' '.join(cluster.node_addresses))
        return True

    def delete(self) -> bool:
        self.screen.step('cluster %s: delete' % self.cluster.name)
        started = time.monotonic()
        self.magnum.clusters.delete(self.cluster.uuid)
        final = clusterwatch.wait(self.magnum, self.cluster.uuid, 'DELETE', timeout=3600,
                                  on_poll=self.show_progress)
        if final is not None:
            self.screen.step('cluster %s: %s: %s' % (final.name, final.status,
                                                     final.status_reason))
            return False
        stacks = [s.stack_name for s in self.heat.stacks.list()]
        left = self.plane.cloud.leftovers()
        self.screen.step('cluster %s: deleted in %.0fs; Heat stacks left: %s; cloud '
                         'objects left: %s' % (self.cluster.name, time.monotonic() - started,
                                               len(stacks), sum(map(len, left.values()))))
        return not stacks and not left

    def wait_for_interrupt(self) -> int:
        state = self.plane.state_dir
        self.screen.line()
        self.screen.line('The cluster stays up until Ctrl-C. To look around:')
        self.screen.line('  source %s/openrc-demo' % state)
        self.screen.line('  openstack coe cluster show %s' % self.cluster.name)
        self.screen.line('  openstack stack list --nested')
        self.screen.line('  logs: %s/logs   simulated nodes: %s/cloud/nodes' % (state, state))
        while True:
            time.sleep(3600)

    # ---- what the person sees -------------------------------------------------------

    def servers(self, role: str) -> dict[str, dict]:
        if not self.prefix:
            return {}
        marker = '%s-%s-' % (self.prefix, role) if role != 'minion' else None
        result = {}
        for server in self.plane.cloud.snapshot()['servers'].values():
            name = server['name']
            if not name.startswith(self.prefix + '-'):
                continue
            if marker and name.startswith(marker):
                result[name] = server
            elif role == 'minion' and not any(
                    name.startswith('%s-%s-' % (self.prefix, r)) for r in
                    ('master', 'proxy', 'storage')):
                result[name] = server
        return result

    def show_progress(self, cluster) -> None:
        stack_id = getattr(cluster, 'cluster_id', None) or getattr(cluster, 'stack_id', None)
        text = '%-20s' % cluster.status
        if stack_id:
            try:
                tree = heatwatch.rows(self.heat, stack_id)
                if not self.prefix:
                    self.prefix = self._prefix(stack_id)
            except Exception:  # the stack may be gone (delete) or not there yet
                tree = []
            if tree:
                done = sum(1 for r in tree if r.status.endswith('_COMPLETE'))
                busy = sum(1 for r in tree if r.status.endswith('IN_PROGRESS'))
                text += ' Heat resources %d done, %d in progress, of %d' % (
                    done, busy, len(tree))
            servers = [s for role in ROLES for s in self.servers(role).values()]
            if servers:
                active = sum(1 for s in servers if s['status'] == 'ACTIVE')
                text += '; servers %d/%d booted, nodes reported %d' % (
                    active, len(servers), self._reported(servers))
        self.screen.progress(text)

    def _prefix(self, stack_id: str) -> str:
        stack = self.heat.stacks.get(stack_id, resolve_outputs=False)
        for param, value in (stack.parameters or {}).items():
            if param == 'name_prefix':
                return value
        return ''

    def _reported(self, servers: list[dict]) -> int:
        count = 0
        for server in servers:
            path = os.path.join(self.plane.cloud.node_dir(server['name'], server['id']),
                                'console.log')
            try:
                with open(path) as f:
                    count += 'signalled Heat: SUCCESS' in f.read()
            except OSError:
                pass
        return count

    def show_cluster(self, cluster) -> None:
        stack_id = getattr(cluster, 'cluster_id', None) or getattr(cluster, 'stack_id', None)
        stack = self.heat.stacks.get(stack_id)
        outputs = heatwatch.outputs(stack)
        tree = heatwatch.rows(self.heat, stack_id)
        owner = heatwatch.top_level(tree, stack.id)
        per_role: dict[str, int] = {}
        for row in tree:
            role = ROLE_OF.get(owner[row.key], 'shared')
            per_role[role] = per_role.get(role, 0) + 1
        addresses = {'master': cluster.master_addresses or [],
                     'minion': cluster.node_addresses or [],
                     'proxy': outputs.get(out.PROXY_ADDRESSES) or [],
                     'storage': outputs.get(out.STORAGE_ADDRESSES) or []}
        self.screen.line('  API address  %s   (VIP %s)' % (cluster.api_address,
                                                           outputs.get(out.API_VIP)))
        if outputs.get(out.PROXY_VIP):
            self.screen.line('  proxy VIP    %s   (floating %s)'
                             % (outputs.get(out.PROXY_VIP),
                                outputs.get(out.PROXY_VIP_FIP) or '-'))
        self.screen.line('  Kubernetes   %s' % (cluster.coe_version or '-'))
        rows = [['role', 'nodes', 'addresses', 'Heat resources']]
        for role in ROLES:
            rows.append([role, str(len(addresses[role])), ' '.join(addresses[role]) or '-',
                         str(per_role.get(role, 0))])
        rows.append(['shared', '', 'network, router, security groups', str(
            per_role.get('shared', 0))])
        rows.append(['total', str(sum(len(a) for a in addresses.values())), '',
                     str(len(tree))])
        self.screen.table(rows)


def _count(number: int, noun: str) -> str:
    if noun == 'prox':
        return '%d prox%s' % (number, 'y' if number == 1 else 'ies')
    return '%d %s%s' % (number, noun, '' if number == 1 else 's')


def _pairs(text: str) -> dict[str, str]:
    result = {}
    for item in filter(None, (p.strip() for p in text.split(','))):
        key, _, value = item.partition('=')
        result[key.strip()] = value.strip()
    return result


def _interrupt_once(signum, frame):
    """Ctrl-C or SIGTERM: stop the lab; further signals while it stops are ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt()


def _prerequisites() -> list[str]:
    missing = [tool for tool in ('bash', 'curl') if not shutil.which(tool)]
    return ['%s is not installed (the simulated nodes need it)' % t for t in missing]


def run_lab(args: argparse.Namespace) -> int:
    """The ``magnum-celtic lab`` command. Returns the process exit status."""
    screen = Screen()
    problems = _prerequisites()
    if problems:
        for problem in problems:
            screen.line('error: %s' % problem)
        return 2
    signal.signal(signal.SIGTERM, _interrupt_once)
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        chosen = backend_mod.from_environment(args.backend)
    except backend_mod.BackendError as error:
        screen.line('error: %s' % error)
        return 2
    plane = controlplane.ControlPlane(
        state_dir=args.state_dir or None, backend=chosen, with_magnum=True,
        keep_state=bool(args.state_dir), progress=lambda m: screen.step(m))
    screen.step('celtic lab: Keystone, Heat and Magnum on loopback, %s back end'
                % chosen.describe())
    status = 1
    try:
        plane.start()
        screen.step('control plane up in %.0fs: keystone %s, heat %s, magnum %s'
                    % (plane.timings['total'], plane.keystone_url, plane.heat_url,
                       plane.magnum_url))
        screen.line('  state, logs and the fake cloud: %s' % plane.state_dir)
        status = Lab(plane, args, screen).run()
    except KeyboardInterrupt:
        screen.line()
        screen.step('interrupted')
        status = 130
    except (process.ServiceError, backend_mod.BackendError) as error:
        screen.step('error: %s' % error)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        screen.step('stopping every service')
        plane.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        screen.step('done: nothing left running%s'
                    % ('' if not args.state_dir else '; state kept in %s' % plane.state_dir))
    return status
