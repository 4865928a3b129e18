"""heat-engine as its console script starts it (heat.cmd.engine), with every worker it
forks dying with it (see process.workers_die_with_service).

Usage: python -m magnum_celtic.lab.services.heat_engine --config-file HEAT_CONF ...
"""

import sys

from magnum_celtic.lab import process


def main() -> None:
    process.workers_die_with_service()
    sys.argv = ['heat-engine'] + sys.argv[1:]
    from heat.cmd import engine
    engine.main()


if __name__ == '__main__':
    main()
