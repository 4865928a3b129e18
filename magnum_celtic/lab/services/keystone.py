"""Keystone's public WSGI application (the real one), served on loopback.

Usage: python -m magnum_celtic.lab.services.keystone PORT (config from
OS_KEYSTONE_CONFIG_FILES). The embedded back end adds the sqlite lock fixes.
"""

import os
import sys

from magnum_celtic.lab import process
from magnum_celtic.lab.services import wsgi


def main() -> None:
    process.workers_die_with_service()
    port = int(sys.argv[1])
    sys.argv = sys.argv[:1]  # keystone parses the command line itself
    if os.environ.get('CELTIC_LAB_SQLITE'):
        from magnum_celtic.lab import sqlite
        sqlite.serialise_writers()  # every token issue writes last_active_at
    from keystone.server import wsgi as keystone_wsgi
    app = keystone_wsgi.initialize_public_application()
    wsgi.serve(app, port, 'keystone')


if __name__ == '__main__':
    main()
