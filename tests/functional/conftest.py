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

"""Fixtures of the lab tests: one real Keystone + Heat (+ Magnum) for the whole session.

The back end comes from ``--lab-backend`` or ``CELTIC_HARNESS_BACKEND``: ``embedded``
(default: sqlite, in-process messaging) or ``mariadb`` (per-run MariaDB databases and a
RabbitMQ vhost; CI). ``--lab-keep`` keeps the state directory (logs, configs, the fake
cloud, every simulated node's files) and prints where it is.

Only tests that ask for ``lab`` (or a fixture built on it) start the control plane, so
the other functional tests in this directory are not slowed down by it.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import controlplane


def _terminate(signum, frame):
    raise KeyboardInterrupt('SIGTERM')


def pytest_configure(config):
    # A CI time limit or a `kill` sends SIGTERM: let the fixtures stop every service
    # (by PID) and drop the run's databases, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _terminate)
    config.addinivalue_line('markers', 'heat_limit: the Heat resource-cap tests '
                                       '(run with --heat-limit)')


def pytest_addoption(parser):
    group = parser.getgroup('celtic lab')
    group.addoption('--lab-backend', choices=backend_mod.BACKENDS, default=None,
                    help='embedded (sqlite, in-process messaging) or mariadb (MariaDB + '
                         'RabbitMQ); default: $CELTIC_HARNESS_BACKEND or embedded')
    group.addoption('--lab-keep', action='store_true',
                    help='keep the lab state directory (logs, fake cloud, node files)')
    group.addoption('--heat-limit', action='store_true',
                    help='also run the Heat resource-cap tests (test_heat_limit.py, about '
                         '8 minutes: Heat stores a 1000-row stack); tox -e heat-limit '
                         'runs them, .ci/run runs that')


def pytest_collection_modifyitems(config, items):
    # The modules that never start Magnum run first, each kept whole and in its order:
    # once a test starts Magnum (magnum_lab), the lab's own celtic-vendordata, which
    # serves the stacks the Heat-only tests create, gives way to the real one.
    magnum_modules = {getattr(item, 'module', None) for item in items
                      if 'magnum_lab' in getattr(item, 'fixturenames', ())}
    items.sort(key=lambda item: getattr(item, 'module', None) in magnum_modules)
    if config.getoption('--heat-limit'):
        return
    skip = pytest.mark.skip(reason='the Heat resource-cap tests take about 5 minutes: '
                                   'tox -e heat-limit (run by hand, like the full benchmarks)')
    for item in items:
        if 'heat_limit' in item.keywords:
            item.add_marker(skip)


_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    # each module's time, setup and teardown included (tests/gate_lanes.sh balances its
    # two functional lanes by these)
    module = report.nodeid.split('::', 1)[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _MODULE_SECONDS:
        return
    terminalreporter.write_sep('=', 'seconds per module (setup, call and teardown)')
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line('%8.1f  %s' % (seconds, module))


def _progress(message: str) -> None:
    sys.stderr.write('[lab %s] %s\n' % (time.strftime('%H:%M:%S'), message))


@pytest.fixture(scope='session')
def lab(request):
    """Keystone and Heat (Magnum joins through ``magnum_lab``), stopped at the end."""
    keep = request.config.getoption('--lab-keep')
    plane = controlplane.ControlPlane(
        backend=backend_mod.from_environment(request.config.getoption('--lab-backend')),
        with_magnum=False, keep_state=keep, progress=_progress)
    plane.start()
    _progress('control plane up in %.0fs (%s), state in %s'
              % (plane.timings['total'], plane.backend.describe(), plane.state_dir))
    try:
        yield plane
    finally:
        plane.stop()
        if keep:
            _progress('kept %s' % plane.state_dir)


@pytest.fixture(scope='session')
def magnum_lab(lab):
    """The same control plane with magnum-api and magnum-conductor running."""
    lab.start_magnum()
    return lab


#: the labels of ``every_role_cluster``: it has the autoscaler's credential
AUTOSCALING_LABELS = {'auto_scaling_enabled': 'true', 'min_node_count': '1',
                      'max_node_count': '3'}
#: ... and auto-healing (test_healing.py runs its master's healer)
HEALING_LABELS = {'auto_healing_enabled': 'true'}
#: the name of the cluster ``every_role_cluster`` makes (its nodes are ``roles-<role>-<i>``)
EVERY_ROLE_CLUSTER = 'roles'


@pytest.fixture(scope='session')
def every_role_cluster(magnum_lab):
    """The uuid of a cluster with every role (1 master, 2 proxies, 3 storage nodes,
    1 minion), the autoscaling and auto-healing labels (so an application credential
    on its master) and a nodegroup ``pool2`` of one minion, created through Magnum by
    the project member demo; shared by the modules that read it (the secrets walk,
    the vendordata checks) and test_healing.py, which replaces its minion (the roles
    and the counts stay), deleted with its template at the end of the session."""
    from magnum_celtic.lab import clusterwatch
    timeout = 900
    magnum = magnum_lab.magnum('demo')
    template = clusterwatch.create_template(magnum, '%s-template' % EVERY_ROLE_CLUSTER)
    # autoscaling labels: the masters also get the cluster's application credential,
    # which the secrets walk then searches for
    created = magnum.clusters.create(name=EVERY_ROLE_CLUSTER,
                                     cluster_template_id=template.uuid,
                                     master_count=1, node_count=1, keypair='lab',
                                     labels=dict(AUTOSCALING_LABELS,
                                                 **HEALING_LABELS))
    final = clusterwatch.wait(magnum, created.uuid, 'CREATE', timeout=timeout)
    assert final.status == 'CREATE_COMPLETE', final.status_reason
    magnum.nodegroups.create(created.uuid, name='pool2', node_count=1, flavor_id='m1.small')
    group = clusterwatch.wait_nodegroup(magnum, created.uuid, 'pool2', 'CREATE',
                                        timeout=timeout)
    assert group.status == 'CREATE_COMPLETE', group.status_reason
    clusterwatch.wait(magnum, created.uuid, 'UPDATE', timeout=timeout, before=final)
    yield created.uuid
    magnum.nodegroups.delete(created.uuid, 'pool2')
    clusterwatch.wait_nodegroup(magnum, created.uuid, 'pool2', 'DELETE', timeout=timeout)
    magnum.clusters.delete(created.uuid)
    gone = clusterwatch.wait(magnum, created.uuid, 'DELETE', timeout=timeout)
    assert gone is None, '%s: %s' % (gone.status, gone.status_reason)
    magnum.cluster_templates.delete(template.uuid)


@pytest.fixture
def behaviour(lab):
    """Set per-server behaviour for one test (reset to the defaults afterwards)."""
    def set_rules(*rules: dict, **defaults) -> None:
        lab.cloud.set_behaviour(list(rules), defaults or None)
    yield set_rules
    lab.cloud.set_behaviour([])


def log_tail(lab, name: str, lines: int = 20) -> str:
    """The end of one service's log, for assertion messages."""
    path = os.path.join(lab.log_dir(), name + '.log')
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''
