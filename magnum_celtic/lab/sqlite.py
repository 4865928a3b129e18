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

"""Make oslo.db on a sqlite file survive multi-threaded OpenStack services.

pysqlite opens transactions lazily: a thread that read inside a transaction and then
writes fails at once with "database is locked" when another connection wrote meanwhile.
Two remedies, chosen per service:

- ``serialise_writers`` (Heat's convergence engine: many threads, short transactions):
  every transaction starts with ``BEGIN IMMEDIATE``, so it takes the write lock up front
  and waits for it (busy timeout) instead of failing halfway;
- ``wait_for_locks`` (Magnum, Keystone: long read transactions that rarely write):
  WAL journal, so readers never block the writer, and a busy timeout.

Only the lab's embedded back end needs this; MariaDB needs nothing.
"""

from sqlalchemy import event
from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 600000


def _is_sqlite(dbapi_connection) -> bool:
    return type(dbapi_connection).__module__.startswith('sqlite3')


def wait_for_locks(busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """WAL journal plus a busy timeout on every sqlite connection."""
    @event.listens_for(Engine, 'connect')
    def _on_connect(dbapi_connection, record):
        if _is_sqlite(dbapi_connection):
            dbapi_connection.execute('PRAGMA busy_timeout = %d' % busy_timeout_ms)
            dbapi_connection.execute('PRAGMA journal_mode = WAL')


def serialise_writers(busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """wait_for_locks, and every transaction takes the write lock when it begins."""
    wait_for_locks(busy_timeout_ms)

    @event.listens_for(Engine, 'begin')
    def _on_begin(connection):
        # oslo.db only emits its own BEGIN when this marker is absent
        if connection.dialect.name == 'sqlite' and 'in_transaction' not in connection.info:
            connection.exec_driver_sql('BEGIN IMMEDIATE')
            connection.info['in_transaction'] = True
