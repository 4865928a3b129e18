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
