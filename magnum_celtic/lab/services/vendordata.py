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

"""celtic-vendordata for a lab without Magnum: ``python -m
magnum_celtic.lab.services.vendordata <conf> <clusters file>``.

The service's own code (``magnum_celtic.vendordata``: configuration, keystonemiddleware,
the Service, the HTTP server) with one addition: its clusters come from the lab's file
(``magnum_celtic.lab.heat_clusters``) instead of Magnum's database. ``<conf>`` has the
magnum.conf sections the service reads ([keystone_authtoken], [keystone_auth],
[heat_client], [celtic_vendordata]).
"""

from __future__ import annotations

import sys

from magnum_celtic import vendordata
from magnum_celtic.lab import heat_clusters
from magnum_celtic.lab import process


def main() -> None:
    process.workers_die_with_service()
    conf_file, clusters_file = sys.argv[1], sys.argv[2]
    vendordata.prepare(['celtic-vendordata', '--config-file', conf_file])
    service = vendordata.Service(clusters=heat_clusters.Registered(clusters_file))
    vendordata.serve(vendordata.Application(service))


if __name__ == '__main__':
    main()
