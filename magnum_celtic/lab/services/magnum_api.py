"""magnum-api as Magnum starts it (magnum.cmd.api), with the lab cloud's look-ups.

Usage: python -m magnum_celtic.lab.services.magnum_api MAGNUM_CONF
"""

import sys

import magnum  # noqa: F401

from magnum_celtic.lab import process
from magnum_celtic.lab import magnum_fakes


def main() -> None:
    process.workers_die_with_service()
    conf_file = sys.argv[1]
    magnum_fakes.install()
    sys.argv = ['magnum-api', '--config-file', conf_file]
    from magnum.cmd import api
    api.main()


if __name__ == '__main__':
    main()
