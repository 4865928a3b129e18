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

"""The clusters of a Heat-only lab, for celtic-vendordata.

A lab without Magnum (``ControlPlane(with_magnum=False)``) creates celtic stacks itself
(``celtic_stack``: the driver's request for a sample cluster, with a throwaway PKI).
celtic-vendordata finds clusters in Magnum's database, which such a lab does not have,
so the lab runs the same service with this cluster source instead
(``vendordata.Service(clusters=Registered(path))``, process
``magnum_celtic.lab.services.vendordata``): the lab writes each stack it creates to a
file under its state directory (``Registry.add`` before the create, so no node can
boot before its cluster is known; ``Registry.created`` with the stack's id once Heat
gave it), and the service reads it. Everything else the
service does (the hint, the project and role checks against Heat read as admin, the
role secrets, the signal relay) is its own code, as in the Magnum labs.

The file (0600) holds, per cluster uuid: the project, the root stack's name and id, and
the CAs and service-account key the stack's PKI was built from (``pki.build`` derives
the rest, as it does from Magnum's certificate manager).

The id comes from the lab, not from Heat: heat-api finds a stack by name only in the
caller's own project, and the service reads Heat as Magnum's service user.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from typing import Any

from magnum_celtic import pki
from magnum_celtic import vendordata

#: the file under the lab's state directory
FILE = os.path.join('vendordata', 'clusters.json')
#: how long a request for a registered cluster waits for its stack's id (the create
#: returned, the lab is writing it); below the Nova stand-in's vendordata timeout
PENDING_SECONDS = 20.0


def _pair(pair: pki.CertPair) -> dict[str, str]:
    return {'cert': pair.cert, 'key': pair.key}


class Registry:
    """The lab's side: the clusters it created (written, read by the service)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {'clusters': {}}

    def _save(self, doc: dict[str, Any]) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        partial = self.path + '.partial'
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump(doc, f)
        os.replace(partial, self.path)

    def add(self, cluster_uuid: str, project_id: str, stack_name: str,
            cluster_pki: pki.ClusterPKI) -> None:
        """Make a stack about to be created known to celtic-vendordata (replacing an
        earlier one of the same cluster uuid)."""
        with self._lock:
            doc = self._load()
            doc['clusters'][cluster_uuid] = {
                'project_id': project_id, 'stack_name': stack_name, 'stack_id': None,
                'ca': _pair(cluster_pki.ca), 'etcd_ca': _pair(cluster_pki.etcd_ca),
                'front_proxy_ca': _pair(cluster_pki.front_proxy_ca),
                'service_account_key': cluster_pki.service_account_key}
            self._save(doc)

    def created(self, stack_name: str, stack_id: str) -> None:
        """The id Heat gave the stack ``add`` registered under that name."""
        with self._lock:
            doc = self._load()
            for record in doc['clusters'].values():
                if record['stack_name'] == stack_name and not record['stack_id']:
                    record['stack_id'] = stack_id
            self._save(doc)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """What the service needs of a cluster (the fields of Magnum's Cluster it reads)."""
    uuid: str
    project_id: str
    stack_id: str
    stack_name: str
    record: dict = dataclasses.field(repr=False, compare=False)


class Registered(vendordata.Clusters):
    """The service's side: clusters from the lab's file, reread when it changes. A
    cluster whose stack has no id yet (its create just returned) is waited for, at
    most PENDING_SECONDS."""

    def __init__(self, path: str, pending_seconds: float = PENDING_SECONDS):
        self.path = path
        self.pending_seconds = pending_seconds
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._clusters: dict[str, dict[str, Any]] = {}

    def _record(self, cluster_uuid: str) -> dict[str, Any] | None:
        with self._lock:
            try:
                info = os.stat(self.path)
            except FileNotFoundError:
                return None
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if stamp != self._stamp:
                with open(self.path) as f:
                    self._clusters = json.load(f)['clusters']
                self._stamp = stamp
            return self._clusters.get(cluster_uuid)

    def cluster(self, context: Any, cluster_uuid: str) -> Cluster:
        deadline = time.monotonic() + self.pending_seconds
        record = self._record(cluster_uuid)
        while record is not None and not record['stack_id'] \
                and time.monotonic() < deadline:
            time.sleep(0.1)
            record = self._record(cluster_uuid)
        if record is None:
            raise vendordata.Refused('cluster %s does not exist' % cluster_uuid)
        # an empty stack id: the service refuses (the cluster has no stack)
        return Cluster(cluster_uuid, record['project_id'], record['stack_id'] or '',
                       record['stack_name'], record)

    def stacks(self, cluster: Cluster, pool: str | None) -> list[tuple[str, str]]:
        return [(cluster.stack_id, cluster.stack_name)]

    def pki(self, context: Any, cluster: Cluster) -> pki.ClusterPKI:
        record = cluster.record

        def pair(name: str) -> pki.CertPair:
            return pki.CertPair(record[name]['cert'], record[name]['key'])
        return pki.build(cluster.uuid, pair('ca'), pair('etcd_ca'), pair('front_proxy_ca'),
                         record['service_account_key'])

    def seed(self, context: Any, cluster: Cluster) -> bytes:
        return pki.seed_of(cluster.record['ca']['key'], cluster.uuid)

    def pki_version(self, cluster: Cluster) -> Any:
        # a cluster registered again (same uuid, a new stack) has new CAs
        return (cluster.uuid, cluster.stack_id, cluster.record['ca']['cert'])
