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

"""Watching Magnum the way a user does: python-magnumclient, polling a cluster.

Magnum answers create, resize and delete at once and works afterwards (the conductor
gets a cast, the periodic sync follows Heat), so a watcher must not mistake the state
before the action for its result: ``wait`` takes the action it waits for.

Used by the functional tests and the lab command.
"""

from __future__ import annotations

import time
from typing import Callable

from magnumclient import exceptions as magnum_exc

NOT_FOUND = (magnum_exc.NotFound,)


class ClusterTimeout(AssertionError):
    """The cluster did not settle in time."""


#: a cluster template on the lab cloud (lab/cloud.py's image, keypair, network and
#: flavors), as the lab's tests, benchmarks and main job create it
TEMPLATE_FIELDS = dict(image_id='debian-12-plain', driver='celtic', keypair_id='lab',
                       external_network_id='public', flavor_id='m1.small',
                       master_flavor_id='m1.small', coe='kubernetes',
                       network_driver='flannel', master_lb_enabled=True,
                       floating_ip_enabled=True)


def create_template(magnum, name: str, **fields):
    """Create the cluster template ``name`` on the lab cloud: TEMPLATE_FIELDS, with
    ``fields`` over them (a field given as None is left out: Magnum's default)."""
    args = dict(TEMPLATE_FIELDS, name=name, **fields)
    return magnum.cluster_templates.create(
        **{key: value for key, value in args.items() if value is not None})


def get(magnum, cluster_id: str, attempts: int = 20):
    """The cluster, or None when Magnum has no such cluster (any more, or yet).

    Between the cluster's row and its default nodegroups (just after a create, late in
    a delete) Magnum's API answers 400 "Invalid input for field/attribute master_count"
    (it counts the masters from the nodegroups): asked again, twice a second."""
    for attempt in range(attempts):
        try:
            return magnum.clusters.get(cluster_id)
        except NOT_FOUND:
            return None
        except magnum_exc.BadRequest as error:
            if 'master_count' not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.5)
    return None


def changed_since(before, now) -> bool:
    """Whether the cluster ``now`` was written after ``before`` was read. Magnum stores
    updated_at to the second: two refusals within one second leave it equal, so the
    status and its reason count too."""
    return any(getattr(now, field) != getattr(before, field)
               for field in ('updated_at', 'status', 'status_reason'))


def wait(magnum, cluster_id: str, action: str, timeout: float = 900.0,
         interval: float = 2.0, on_poll: Callable[[object], None] | None = None,
         before=None, start_timeout: float = 120.0):
    """Poll until the action (CREATE, UPDATE or DELETE) ended; return the cluster
    (None once a DELETE removed it).

    before: the cluster as it was before an UPDATE; its updated_at tells a finished
    update from the state the update started from. An action Magnum refused leaves the
    cluster as it was: after start_timeout seconds without a change that is an error
    (the conductor's reason is in its log), not a wait until timeout."""
    started = time.monotonic()
    seen_progress = False
    cluster = None

    def changed(now) -> bool:
        return before is None or changed_since(before, now)

    while True:
        cluster = get(magnum, cluster_id)
        if cluster is not None and on_poll is not None:
            on_poll(cluster)
        if cluster is None:
            if action == 'DELETE':
                return None
        else:
            status = cluster.status
            if status.endswith('IN_PROGRESS'):
                seen_progress = True
            elif status.startswith(action) and (
                    action != 'UPDATE' or seen_progress or changed(cluster)):
                return cluster
            elif (not seen_progress and time.monotonic() - started > start_timeout
                  and not changed(cluster)):
                raise ClusterTimeout('cluster %s: %s did not start in %.0fs (status %s: %s)'
                                     % (cluster_id, action, start_timeout, status,
                                        cluster.status_reason))
        if time.monotonic() - started > timeout:
            raise ClusterTimeout('cluster %s: %s did not finish in %.0fs (status %s)' % (
                cluster_id, action, timeout, cluster.status if cluster else 'missing'))
        time.sleep(interval)


def nodegroup(magnum, cluster_id: str, name: str):
    """The nodegroup, or None when it does not exist."""
    try:
        return magnum.nodegroups.get(cluster_id, name)
    except NOT_FOUND:
        return None


def wait_nodegroup(magnum, cluster_id: str, name: str, action: str,
                   timeout: float = 900.0, interval: float = 2.0):
    """Poll a nodegroup until the action (CREATE, UPDATE, DELETE) ended (None once a
    DELETE removed it)."""
    started = time.monotonic()
    group = None
    while True:
        group = nodegroup(magnum, cluster_id, name)
        if group is None and action == 'DELETE':
            return None
        if group is not None and group.status.startswith(action) and not (
                group.status.endswith('IN_PROGRESS')):
            return group
        if time.monotonic() - started > timeout:
            raise ClusterTimeout('nodegroup %s: %s did not finish in %.0fs (status %s)' % (
                name, action, timeout, group.status if group else 'missing'))
        time.sleep(interval)
