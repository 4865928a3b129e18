"""Load a magnum.conf the way magnum-conductor and magnum-api start.

    magnum_start.py MAGNUM_CONF

Magnum's own ``prepare_service`` on ``--config-file MAGNUM_CONF`` (the
command line the plugin gives both services), then ``log_opt_values``, which
both services call at start and which reads, so type-checks, every
registered option. Exit status 1 with the error when Magnum would not start.
Nothing is connected to: no database, no message bus, no Keystone.
"""

from __future__ import annotations

import logging
import sys
import warnings


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")
    import magnum.conf
    from magnum.common import service

    try:
        service.prepare_service(["magnum-conductor", "--config-file", argv[0]])
        magnum.conf.CONF.log_opt_values(logging.getLogger("magnum_start"), logging.DEBUG)
    except Exception as exc:  # what the service would die of
        print(f"magnum would not start with {argv[0]}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
