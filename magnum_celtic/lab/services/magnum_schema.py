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

"""Magnum's schema on sqlite, built from its models (its migrations need ALTER constraint).

Usage: python -m magnum_celtic.lab.services.magnum_schema MAGNUM_CONF; then
``magnum-db-manage stamp head`` records it as current. MariaDB runs the real
``magnum-db-manage upgrade`` instead.
"""

import sys


def main() -> None:
    from magnum.common import service
    from magnum.db.sqlalchemy import models
    from oslo_db.sqlalchemy import enginefacade
    service.prepare_service(['magnum-schema', '--config-file', sys.argv[1]])
    models.Base.metadata.create_all(enginefacade.writer.get_engine())


if __name__ == '__main__':
    main()
