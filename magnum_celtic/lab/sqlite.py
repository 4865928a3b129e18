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
  and waits for it (busy timeout) instead of failing halfway. For Heat it also turns on
  foreign keys, which sqlite ignores unless asked: Heat deletes resource properties data
  it believes unreferenced and relies on the database refusing it
  (``DBReferenceError``) when a row is still referenced, as MariaDB does. Without the
  refusal, likely, an intermittent "ResourcePropertiesData with id N not found" at a
  master growth (doc/harness.md);
- ``wait_for_locks`` (Keystone: long read transactions that rarely write): WAL
  journal, so readers never block the writer, and a busy timeout;
- ``magnum_writers`` (Magnum: API, conductor and its status polls in threads, and a
  second conductor process): WAL and the busy timeout, and a transaction Magnum opens
  to write (``_session_for_write``) starts with ``BEGIN IMMEDIATE``; its reads stay
  deferred. WAL and a busy timeout alone are not enough: Magnum's writes read the row
  first (``UPDATE nodegroup`` after a ``SELECT`` in the same transaction), and a
  deferred transaction whose snapshot is older than another connection's commit cannot
  become a writer: sqlite answers "database is locked" at once, without waiting (it
  would deadlock otherwise). That is what two concurrent ``cluster delete`` met.
  ``BEGIN IMMEDIATE`` for every transaction (as for Heat) makes Magnum's long read
  transactions hold the write lock and stall everyone; only its writers need it.

Only the lab's embedded back end needs this; MariaDB needs nothing.
"""

import contextlib
import threading

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


def serialise_writers(busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                      foreign_keys: bool = False) -> None:
    """wait_for_locks, and every transaction takes the write lock when it begins;
    with ``foreign_keys``, sqlite enforces the schema's foreign keys as MariaDB does."""
    wait_for_locks(busy_timeout_ms)

    if foreign_keys:
        @event.listens_for(Engine, 'connect')
        def _enforce_foreign_keys(dbapi_connection, record):
            if _is_sqlite(dbapi_connection):
                dbapi_connection.execute('PRAGMA foreign_keys = ON')

    @event.listens_for(Engine, 'begin')
    def _on_begin(connection):
        # oslo.db only emits its own BEGIN when this marker is absent
        if connection.dialect.name == 'sqlite' and 'in_transaction' not in connection.info:
            connection.exec_driver_sql('BEGIN IMMEDIATE')
            connection.info['in_transaction'] = True


_writing = threading.local()


@contextlib.contextmanager
def writing():
    """Transactions this thread begins inside the block take the write lock first."""
    depth = getattr(_writing, 'depth', 0)
    _writing.depth = depth + 1
    try:
        yield
    finally:
        _writing.depth = depth


def immediate_writers(busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """wait_for_locks, and a transaction begun inside ``writing()`` is IMMEDIATE."""
    wait_for_locks(busy_timeout_ms)

    @event.listens_for(Engine, 'begin')
    def _on_begin(connection):
        if (connection.dialect.name == 'sqlite' and getattr(_writing, 'depth', 0)
                and 'in_transaction' not in connection.info):
            connection.exec_driver_sql('BEGIN IMMEDIATE')
            connection.info['in_transaction'] = True


def magnum_writers(busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    """immediate_writers for Magnum: every ``_session_for_write`` of its database API
    is a ``writing()`` block (call before Magnum's first database access)."""
    from magnum.db.sqlalchemy import api as db_api
    immediate_writers(busy_timeout_ms)
    for_write = db_api._session_for_write

    @contextlib.contextmanager
    def _session_for_write():
        with writing():
            with for_write() as session:
                yield session

    db_api._session_for_write = _session_for_write
