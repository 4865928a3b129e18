"""magnum-api or magnum-conductor as Magnum starts them (magnum.cmd.api / .conductor),
with the lab cloud's look-ups.

Usage: python -m magnum_celtic.lab.services.magnum_service api|conductor MAGNUM_CONF
"""

import importlib
import sys

import magnum  # noqa: F401

from magnum_celtic.lab import magnum_fakes
from magnum_celtic.lab import process

SERVICES = ('api', 'conductor')


def main() -> None:
    process.workers_die_with_service()
    service, conf_file = sys.argv[1], sys.argv[2]
    if service not in SERVICES:
        sys.exit('usage: magnum_service %s MAGNUM_CONF' % '|'.join(SERVICES))
    magnum_fakes.install()
    sys.argv = ['magnum-%s' % service, '--config-file', conf_file]
    importlib.import_module('magnum.cmd.%s' % service).main()


if __name__ == '__main__':
    main()
