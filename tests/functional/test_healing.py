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

"""Auto-healing on the lab, through real Keystone, Heat and Magnum: a worker whose server
went into ERROR is replaced, the pool keeps its size and the cluster ends
UPDATE_COMPLETE.

The healer is the real one: ``master.sh heal`` (node/heal.sh, node/heal_plan.py) from
the bundle the cluster's master received, with the application credential
celtic-vendordata gave it, run in that master's lab root. Only what the lab has no REST
API for stands in: Nova's ``servers/detail`` (tests/functional/check_openstack_api.py,
reading the lab cloud where the server was put in ERROR) and kubectl (a script printing
the Node list: the master Ready, the worker NotReady for less than the bound, so only
its server's ERROR can have it replaced).

Cost: one Heat update of the session's ``every_role_cluster`` (it has
``auto_healing_enabled=true``) and two passes of the healer; no cluster of its own.
The cluster keeps every role and its node count, which is all the modules that read it
afterwards look at.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from magnum_celtic import outputs
from magnum_celtic import pki
from magnum_celtic import request as req
from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import node as lab_node
from tests.functional.check_openstack_api import OpenStackAPI

NAME = 'roles'   # conftest.EVERY_ROLE_CLUSTER
POOL = 'default-worker'
TIMEOUT = 600

KUBECTL = r'''#!/bin/bash
echo "kubectl $*" >>"$HEAL_TEST_CALLS"
case "$*" in
  *" get nodes -o json") cat "$HEAL_TEST_NODES" ;;
esac
exit 0
'''


def _servers(lab) -> dict[str, dict]:
    return {s['name']: s for s in lab.cloud.snapshot()['servers'].values()
            if s['name'].startswith(NAME + '-')}


def _pool_servers(lab, uuid: str) -> list[str]:
    """The default pool's server ids, as Heat's outputs list them."""
    heat = lab.heat('demo')

    def output(stack, key):
        return next(o['output_value'] for o in stack.outputs if o['output_key'] == key)
    root = heat.stacks.get(req.cluster_stack_name(NAME, uuid))
    servers = heat.stacks.get(outputs.nested_stack_path(
        output(root, outputs.MINION_NODES_STACK)))
    return list(output(servers, outputs.SERVER_IDS) or ())


def _node(name: str, address: str, ready: str, since: float, control_plane=False):
    labels = {'node-role.kubernetes.io/control-plane': ''} if control_plane else {}
    stamp = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))
    return {'metadata': {'name': name, 'labels': labels, 'creationTimestamp': stamp},
            'status': {'addresses': [{'type': 'InternalIP', 'address': address}],
                       'conditions': [{'type': 'Ready', 'status': ready,
                                       'lastTransitionTime': stamp}]}}


class Healer:
    """``master.sh heal`` as celtic-heal.timer runs it, in the master's lab root."""

    def __init__(self, lab, tmp_path, compute_url: str):
        masters = [s for n, s in _servers(lab).items() if '-master-' in n]
        assert len(masters) == 1, sorted(_servers(lab))
        self.server = masters[0]
        self.root = lab.cloud.node_dir(self.server['name'], self.server['id'])
        with open(os.path.join(self.root, 'etc', 'celtic', 'params.json')) as f:
            self.params = json.load(f)
        self.address = self.params['master_addresses'][0]
        bin_dir = tmp_path / 'bin'
        bin_dir.mkdir()
        (bin_dir / 'kubectl').write_text(KUBECTL)
        (bin_dir / 'kubectl').chmod(0o755)
        self.calls = tmp_path / 'kubectl.calls'
        self.calls.write_text('')
        self.nodes = tmp_path / 'nodes.json'
        env = lab_node.node_environment(self.root, self.server['name'],
                                        self.server['id'], self.address, 'master',
                                        None, None)
        env.update(PATH=str(bin_dir) + os.pathsep + env['PATH'],
                   CELTIC_HEAL_COMPUTE_URL=compute_url,
                   HEAL_TEST_CALLS=str(self.calls), HEAL_TEST_NODES=str(self.nodes))
        self.env = env

    def set_nodes(self, *items: dict) -> None:
        self.nodes.write_text(json.dumps({'items': list(items)}))

    def run(self) -> subprocess.CompletedProcess:
        script = os.path.join(self.env['CELTIC_LIB_DIR'], 'master.sh')
        return subprocess.run(['bash', script, 'heal'], env=self.env, cwd=self.root,
                              capture_output=True, text=True, timeout=180)


@pytest.fixture(scope='module')
def compute(magnum_lab):
    with OpenStackAPI(magnum_lab) as api:
        yield api


def test_heal_a_worker_whose_server_is_in_error_is_replaced_pool_size_kept(
        magnum_lab, every_role_cluster, compute, tmp_path):
    uuid = every_role_cluster
    magnum = magnum_lab.magnum('demo')
    healer = Healer(magnum_lab, tmp_path, compute.url('compute'))
    # the healer's credential is the one celtic-vendordata gave this master, 0600
    credential = os.path.join(healer.root, 'etc', 'celtic', 'secrets', pki.CREDENTIAL_FILE)
    assert os.stat(credential).st_mode & 0o077 == 0
    assert healer.params['auto_healing_enabled'] is True

    before_ids = _pool_servers(magnum_lab, uuid)
    before_count = magnum.nodegroups.get(uuid, POOL).node_count
    assert len(before_ids) == before_count == 1, (before_ids, before_count)
    bad = before_ids[0]
    bad_name = next(n for n, s in _servers(magnum_lab).items() if s['id'] == bad)
    with magnum_lab.cloud.transaction() as doc:
        doc['servers'][bad]['status'] = 'ERROR'
    now = time.time()
    # its kubelet went silent 20 s ago: well within the bound (300 s), so only the
    # server's ERROR can have it replaced now
    healer.set_nodes(_node(healer.server['name'], healer.address, 'True', now - 3600,
                           control_plane=True),
                     _node(bad_name, '10.0.0.250', 'Unknown', now - 20))
    before = magnum.clusters.get(uuid)

    first = healer.run()
    assert first.returncode == 0, first.stderr
    assert 'heal: nodegroup %s: replacing %s (its server %s is in ERROR)' % (
        POOL, bad_name, bad) in first.stderr, first.stderr
    assert 'Magnum replaces %s of nodegroup %s (resize, node_count 1 kept)' % (
        bad_name, POOL) in first.stderr, first.stderr
    assert 'kubectl --kubeconfig %s/etc/kubernetes/admin.conf cordon %s' % (
        healer.root, bad_name) in healer.calls.read_text()

    final = clusterwatch.wait(magnum, uuid, 'UPDATE', timeout=TIMEOUT, before=before)
    assert final.status == 'UPDATE_COMPLETE', final.status_reason
    after_ids = _pool_servers(magnum_lab, uuid)
    assert bad not in after_ids and len(after_ids) == before_count, (before_ids, after_ids)
    assert bad not in {s['id'] for s in _servers(magnum_lab).values()}
    group = magnum.nodegroups.get(uuid, POOL)
    assert (group.node_count, group.status) == (before_count, 'UPDATE_COMPLETE')

    # the next pass: nothing to replace; the replaced worker's Node is deleted
    new_name = next(n for n, s in _servers(magnum_lab).items() if s['id'] == after_ids[0])
    healer.set_nodes(_node(healer.server['name'], healer.address, 'True', now - 3600,
                           control_plane=True),
                     _node(bad_name, '10.0.0.250', 'Unknown', now - 600),
                     _node(new_name, '10.0.0.251', 'True', time.time()))
    second = healer.run()
    assert second.returncode == 0, second.stderr
    assert 'replacing' not in second.stderr, second.stderr
    assert 'kubectl --kubeconfig %s/etc/kubernetes/admin.conf delete node %s ' \
           '--ignore-not-found' % (healer.root, bad_name) in healer.calls.read_text()
    assert magnum.clusters.get(uuid).status == 'UPDATE_COMPLETE'
