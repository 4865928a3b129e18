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
