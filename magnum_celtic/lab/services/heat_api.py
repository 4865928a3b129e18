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

"""heat-api: Heat's own WSGI application (heat.api.openstack.wsgi), served on loopback.

Heat 27 ships the API only as WSGI; this is the WSGI container. Usage:
python -m magnum_celtic.lab.services.heat_api HEAT_CONF PORT
"""

import sys

from magnum_celtic.lab import process
from magnum_celtic.lab.services import wsgi


def main() -> None:
    process.workers_die_with_service()
    conf_file, port = sys.argv[1], int(sys.argv[2])
    sys.argv = ['heat-api', '--config-file', conf_file]
    from heat.api.openstack import wsgi as heat_wsgi
    app = heat_wsgi.init_application()
    wsgi.serve(app, port, 'heat-api')


if __name__ == '__main__':
    main()
