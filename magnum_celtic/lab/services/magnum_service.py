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

"""magnum-api or magnum-conductor as Magnum starts them (magnum.cmd.api / .conductor),
with the lab cloud's look-ups.

On the embedded back end (a second conductor beside magnum_all, tests of two
conductors) the database is sqlite: the same lock fixes as magnum_all (they do nothing
on MariaDB).

Usage: python -m magnum_celtic.lab.services.magnum_service api|conductor MAGNUM_CONF
[MORE_CONF ...]
"""

import importlib
import sys

import magnum  # noqa: F401

from magnum_celtic.lab import magnum_fakes
from magnum_celtic.lab import process
from magnum_celtic.lab import sqlite

SERVICES = ('api', 'conductor')


def main() -> None:
    process.workers_die_with_service()
    service, conf_files = sys.argv[1], sys.argv[2:]
    if service not in SERVICES or not conf_files:
        sys.exit('usage: magnum_service %s MAGNUM_CONF [MORE_CONF ...]'
                 % '|'.join(SERVICES))
    # First: Magnum 22 (2026.1) monkey-patches for eventlet when magnum.cmd is
    # imported, and its database API imported before that (magnum_writers) leaves the
    # conductor's RPC server deaf. Both patches below act on classes and module
    # attributes that Magnum looks up at call time.
    command = importlib.import_module('magnum.cmd.%s' % service)
    magnum_fakes.install()
    sqlite.magnum_writers()
    sys.argv = ['magnum-%s' % service]
    for conf_file in conf_files:
        sys.argv += ['--config-file', conf_file]
    command.main()


if __name__ == '__main__':
    main()
