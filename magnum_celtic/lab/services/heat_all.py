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

"""heat-engine and heat-api in one process, for the embedded back end.

``fake://`` messaging only connects endpoints inside one process, so the engine service
(the same ``EngineService`` heat-engine runs) and the heat-api WSGI application (the
same paste pipeline, keystonemiddleware included) share this process. Added: the sqlite
lock fixes. Usage: python -m magnum_celtic.lab.services.heat_all HEAT_CONF PORT
"""

import sys

import heat.cmd.engine  # noqa: F401  (selects oslo.service's threading back end first)
from oslo_config import cfg
from oslo_log import log as logging

from heat.common import config
from heat.common import messaging
from heat.rpc import api as rpc_api
from heat import version

from magnum_celtic.lab import process
from magnum_celtic.lab import sqlite
from magnum_celtic.lab.services import wsgi


def main() -> None:
    process.workers_die_with_service()
    conf_file, port = sys.argv[1], int(sys.argv[2])
    conf = cfg.CONF
    logging.register_options(conf)
    conf(['--config-file', conf_file], project='heat', prog='heat-engine',
         version=version.version_info.version_string())
    logging.setup(conf, 'heat-all')
    config.set_config_defaults()
    messaging.setup()
    config.startup_sanity_check()
    if conf.database.connection.startswith('sqlite'):
        sqlite.serialise_writers(foreign_keys=True)

    from heat.engine import service as engine
    engine_service = engine.EngineService(conf.host, rpc_api.ENGINE_TOPIC)
    engine_service.start()
    app = config.load_paste_app('heat-api')
    wsgi.serve(app, port, 'heat', on_stop=engine_service.stop)


if __name__ == '__main__':
    main()
