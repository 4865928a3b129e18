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
