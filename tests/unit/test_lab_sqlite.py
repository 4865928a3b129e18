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

"""The lab's sqlite set-up for Heat refuses a delete of a row still referenced, as
MariaDB does (Heat relies on that refusal). Each case runs in its own interpreter: the
set-up registers its listeners on every SQLAlchemy engine of the process."""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import sqlalchemy
from sqlalchemy import exc
from magnum_celtic.lab import sqlite
sqlite.serialise_writers(foreign_keys=sys.argv[2] == 'on')
engine = sqlalchemy.create_engine('sqlite:///' + sys.argv[1])
with engine.begin() as db:
    db.exec_driver_sql('CREATE TABLE data (id INTEGER PRIMARY KEY)')
    db.exec_driver_sql('CREATE TABLE resource (id INTEGER PRIMARY KEY, '
                       'data_id INTEGER REFERENCES data(id))')
    db.exec_driver_sql('INSERT INTO data (id) VALUES (1)')
    db.exec_driver_sql('INSERT INTO resource (id, data_id) VALUES (1, 1)')
try:
    with engine.begin() as db:
        db.exec_driver_sql('DELETE FROM data WHERE id = 1')
except exc.IntegrityError:
    print('refused')
else:
    print('deleted')
"""


@pytest.mark.parametrize('foreign_keys, outcome', [('on', 'refused'), ('off', 'deleted')])
def test_heats_sqlite_refuses_deleting_a_referenced_row(tmp_path, foreign_keys, outcome):
    done = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path / 'heat.sqlite'),
                           foreign_keys], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == outcome
