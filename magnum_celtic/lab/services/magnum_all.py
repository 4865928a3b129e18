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

"""magnum-api and magnum-conductor in one process, for the embedded back end.

``fake://`` messaging only connects endpoints inside one process, so the conductor (the
same RPC endpoints and periodic tasks magnum-conductor runs) and the API application
(Magnum's own, keystonemiddleware included) share this process. Added: the lab cloud's
Glance/Nova/Neutron look-ups (magnum_fakes) and the sqlite lock fixes.
Usage: python -m magnum_celtic.lab.services.magnum_all MAGNUM_CONF PORT
"""

import importlib.metadata
import sys

if int(importlib.metadata.version('magnum').split('.')[0]) < 23:
    # Magnum 2026.1's services run on eventlet, monkey-patched before anything else
    # (its magnum/cmd does the same)
    import eventlet
    eventlet.monkey_patch()

import magnum  # noqa: F401,E402  (2026.2: selects oslo.service's threading back end first)
from oslo_log import log as logging  # noqa: E402

from magnum_celtic.lab import process  # noqa: E402
from magnum_celtic.lab import magnum_fakes  # noqa: E402
from magnum_celtic.lab import sqlite  # noqa: E402
from magnum_celtic.lab.services import wsgi  # noqa: E402

LOG = logging.getLogger('magnum-all')


def main() -> None:
    process.workers_die_with_service()
    conf_file, port = sys.argv[1], int(sys.argv[2])
    magnum_fakes.install()
    from magnum.common import rpc_service
    from magnum.common import service
    from magnum.common import short_id
    import magnum.conf

    service.prepare_service(['magnum-all', '--config-file', conf_file])
    conf = magnum.conf.CONF
    if conf.database.connection.startswith('sqlite'):
        sqlite.magnum_writers()

    from magnum.conductor.handlers import ca_conductor
    from magnum.conductor.handlers import cluster_conductor
    from magnum.conductor.handlers import conductor_listener
    from magnum.conductor.handlers import credential_conductor
    from magnum.conductor.handlers import federation_conductor
    from magnum.conductor.handlers import indirection_api
    from magnum.conductor.handlers import nodegroup_conductor
    from magnum.drivers.common import driver as driver_module

    LOG.info('drivers: %s', [ep.name for ep, _ in driver_module.Driver.load_entry_points()])
    endpoints = [indirection_api.Handler(), cluster_conductor.Handler(),
                 conductor_listener.Handler(), credential_conductor.Handler(),
                 ca_conductor.Handler(), federation_conductor.Handler(),
                 nodegroup_conductor.Handler()]
    server = rpc_service.Service.create(conf.conductor.topic, short_id.generate_id(),
                                        endpoints, binary='magnum-conductor')
    server.create_periodic_tasks()
    server.start()

    # magnum-api would reach the database through the conductor (indirection API); in
    # one process that would make the conductor call itself, so objects use the
    # database directly here
    from magnum.api import app as api_app
    wsgi.serve(api_app.load_app(), port, 'magnum', on_stop=server.stop)


if __name__ == '__main__':
    main()
