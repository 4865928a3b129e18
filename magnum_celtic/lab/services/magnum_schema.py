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
