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

"""Autoscaling: the autoscaler's scale-up beside a plain resize of the same size.

Prints one ``name: value`` line each:

  resize_up_seconds       ``openstack coe cluster resize`` (magnumclient) from 1 to 3
                          workers: request to the cluster's UPDATE_COMPLETE, when Magnum
                          reports the new nodes (median of the samples)
  autoscale_up_seconds    the same growth asked as cluster-autoscaler asks it: a gRPC
                          NodeGroupIncreaseSize(delta=2) to celtic-autoscaler-provider
                          (the master fragment, run with the credential the master
                          received), request to UPDATE_COMPLETE (median)
  autoscale_overhead_ratio  autoscale_up_seconds / resize_up_seconds (goal <= 1.2: the
                          provider adds a Keystone token and two reads, not a stack pass)

One cluster (1 master, 1 worker, no proxies, no storage, auto_scaling_enabled with
max_node_count 3, 1 s boots) through real Keystone, Heat and Magnum (the embedded back
end unless CELTIC_HARNESS_BACKEND says otherwise). Each sample grows 1 -> 3 by resize,
shrinks back to 1 (untimed), grows 1 -> 3 through the provider, shrinks back to 1: the
two timed operations start from the same state on the same lab, one after the other.
Full run: ``tox -e bench -- autoscale`` (3 samples, about 6 minutes on 2 cores). Quick
(``--quick``, what .ci/run runs, about 3 minutes): 1 sample.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time

from magnum_celtic import pki
from magnum_celtic import templates
from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import clusterwatch
from magnum_celtic.lab import controlplane

from tests.bench import quick

SAMPLES = max(1, int(os.environ.get('CELTIC_BENCH_AUTOSCALE_SAMPLES',
                                    '1' if quick() else '3')))
TIMEOUT = 600.0
POLL = 0.5
NAME = 'bas'
POOL = 'default-worker'
PROVIDER = os.path.join(templates.default_dir(), 'fragments', 'autoscaler',
                        'celtic_autoscaler.py')


def _say(text: str) -> None:
    sys.stderr.write('[bench autoscale %s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


def _provider_module():
    spec = importlib.util.spec_from_file_location('celtic_autoscaler', PROVIDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _credential_file(plane) -> str:
    servers = plane.cloud.snapshot()['servers'].values()
    master = next(s for s in servers if s['name'].startswith(NAME + '-master-'))
    return os.path.join(plane.cloud.node_dir(master['name'], master['id']), 'etc',
                        'celtic', 'secrets', pki.CREDENTIAL_FILE)


def _timed(magnum, uuid: str, start) -> float:
    """Seconds from start() to the cluster's UPDATE_COMPLETE."""
    before = magnum.clusters.get(uuid)
    started = time.monotonic()
    start()
    final = clusterwatch.wait(magnum, uuid, 'UPDATE', timeout=TIMEOUT, interval=POLL,
                              before=before)
    seconds = time.monotonic() - started
    if final.status != 'UPDATE_COMPLETE':
        raise RuntimeError('%s: %s' % (final.status, final.status_reason))
    return seconds


def _measure(plane) -> dict[str, float]:
    magnum = plane.magnum('demo')
    template = clusterwatch.create_template(
        magnum, '%s-template' % NAME,
        labels={'proxy_count': '0', 'storage_count': '0', 'auto_scaling_enabled': 'true',
                'min_node_count': '1', 'max_node_count': '3'})
    uuid = None
    process = None
    try:
        uuid = magnum.clusters.create(name=NAME, cluster_template_id=template.uuid,
                                      master_count=1, node_count=1, keypair='lab').uuid
        final = clusterwatch.wait(magnum, uuid, 'CREATE', timeout=TIMEOUT)
        if final.status != 'CREATE_COMPLETE':
            raise RuntimeError('create: %s: %s' % (final.status, final.status_reason))
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, '-I', PROVIDER, '--credential', _credential_file(plane),
             '--cluster-uuid', uuid, '--listen', '127.0.0.1:%d' % port],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import grpc
        channel = grpc.insecure_channel('127.0.0.1:%d' % port)
        grpc.channel_ready_future(channel).result(timeout=60)
        client = _provider_module().Client(channel, timeout=120)
        client.Refresh()
        resize, autoscale = [], []
        for sample in range(SAMPLES):
            resize.append(_timed(magnum, uuid, lambda: magnum.clusters.resize(
                uuid, 3, nodegroup=POOL)))
            _timed(magnum, uuid, lambda: magnum.clusters.resize(uuid, 1, nodegroup=POOL))
            autoscale.append(_timed(magnum, uuid, lambda: client.NodeGroupIncreaseSize(
                id=POOL, delta=2)))
            _timed(magnum, uuid, lambda: magnum.clusters.resize(uuid, 1, nodegroup=POOL))
            _say('sample %d: resize %.1fs, autoscale %.1fs'
                 % (sample + 1, resize[-1], autoscale[-1]))
        channel.close()
        up, plain = statistics.median(autoscale), statistics.median(resize)
        return {'resize_up_seconds': plain, 'autoscale_up_seconds': up,
                'autoscale_overhead_ratio': up / plain}
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        if uuid is not None:
            try:
                magnum.clusters.delete(uuid)
                clusterwatch.wait(magnum, uuid, 'DELETE', timeout=TIMEOUT)
            except Exception as error:
                _say('delete: %s' % error)
        magnum.cluster_templates.delete(template.uuid)


def main() -> int:
    plane = controlplane.ControlPlane(backend=backend_mod.from_environment(),
                                      with_magnum=True, progress=_say)
    try:
        plane.start()
        _say('control plane: %s' % plane.backend.describe())
        figures = _measure(plane)
    except Exception as error:  # a benchmark that cannot measure says why
        _say('failed: %s: %s' % (type(error).__name__, error))
        return 1
    finally:
        plane.stop()
    for name in ('resize_up_seconds', 'autoscale_up_seconds', 'autoscale_overhead_ratio'):
        print('%s: %.2f' % (name, figures[name]))
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
