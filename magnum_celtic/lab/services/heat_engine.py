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
