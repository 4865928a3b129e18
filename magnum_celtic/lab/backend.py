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

"""Where the lab's services keep their data and how they talk to each other.

``embedded`` (the default, any machine): one sqlite file per service and in-process
``fake://`` messaging, so Heat's engine and API share one process, and Magnum's API and
conductor share another.

``mariadb``: what an OpenStack deployment runs. Each service gets its own MariaDB
database and the run its own RabbitMQ virtual host (created at start, dropped at the
end), so heat-api, several heat-engine workers, magnum-api and magnum-conductor are
separate processes. Settings (environment):

  CELTIC_HARNESS_BACKEND     embedded | mariadb
  CELTIC_HARNESS_DB_URL      mysql+pymysql://root@127.0.0.1:3306 (a user that may create
                         and drop databases; ?unix_socket=/run/mysqld/mysqld.sock
                         where root authenticates through the socket)
  CELTIC_HARNESS_RABBIT_URL  rabbit://guest:guest@127.0.0.1:5672 (the vhost is made with
                         rabbitmqctl, which must run as a user allowed to manage RabbitMQ)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
import uuid

BACKENDS = ('embedded', 'mariadb')
DEFAULT_DB_URL = 'mysql+pymysql://root@127.0.0.1:3306'
DEFAULT_RABBIT_URL = 'rabbit://guest:guest@127.0.0.1:5672'
PREFIX = 'celtic_lab_'


class BackendError(Exception):
    """The database or the message bus is not usable."""


def from_environment(name: str | None = None) -> 'Backend':
    """The backend named, or the one CELTIC_HARNESS_BACKEND selects (default embedded)."""
    name = name or os.environ.get('CELTIC_HARNESS_BACKEND') or 'embedded'
    if name == 'embedded':
        return Embedded()
    if name == 'mariadb':
        return MariaDB(os.environ.get('CELTIC_HARNESS_DB_URL') or DEFAULT_DB_URL,
                       os.environ.get('CELTIC_HARNESS_RABBIT_URL') or DEFAULT_RABBIT_URL)
    raise BackendError('unknown lab backend %r: choose one of %s' % (name, ', '.join(BACKENDS)))


class Backend:
    """Databases and messaging for one lab run."""

    name = ''
    #: True when services of one project may run in separate processes
    distributed = False

    def prepare(self, state_dir: str) -> None:
        """Create what the run needs."""

    def database_url(self, service: str) -> str:
        raise NotImplementedError

    def transport_url(self) -> str:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove what prepare created."""

    def describe(self) -> str:
        """One line for a person."""
        return self.name


class Embedded(Backend):
    """sqlite files and in-process messaging."""

    name = 'embedded'

    def __init__(self):
        self.state_dir = ''

    def prepare(self, state_dir):
        self.state_dir = state_dir

    def database_url(self, service):
        path = os.path.join(self.state_dir, service, '%s.sqlite' % service)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return 'sqlite:///%s' % path

    def transport_url(self):
        return 'fake://'

    def describe(self):
        return 'embedded (sqlite, in-process messaging)'


class MariaDB(Backend):
    """Per-run MariaDB databases and a per-run RabbitMQ virtual host."""

    name = 'mariadb'
    distributed = True

    def __init__(self, db_url: str, rabbit_url: str):
        parsed = urllib.parse.urlparse(db_url)
        self.db_query = parsed.query
        self.db_url = parsed._replace(query='', path='').geturl().rstrip('/')
        self.rabbit_url = rabbit_url.rstrip('/')
        self.run_id = '%d_%s' % (os.getpid(), uuid.uuid4().hex[:6])
        self.databases: list[str] = []
        self.vhost = ''

    # databases ----------------------------------------------------------------------
    def _connect(self):
        import pymysql
        url = urllib.parse.urlparse(self.db_url.replace('mysql+pymysql', 'mysql'))
        socket_path = urllib.parse.parse_qs(self.db_query).get('unix_socket', [None])[0]
        try:
            return pymysql.connect(host=url.hostname or '127.0.0.1', port=url.port or 3306,
                                   user=urllib.parse.unquote(url.username or 'root'),
                                   password=urllib.parse.unquote(url.password or ''),
                                   unix_socket=socket_path, autocommit=True)
        except pymysql.err.MySQLError as exc:
            raise BackendError('cannot reach MariaDB at %s: %s' % (self.db_url, exc))

    def _database(self, service: str) -> str:
        return '%s%s_%s' % (PREFIX, self.run_id, service)

    def _drop_abandoned(self, cursor) -> None:
        """Drop databases of earlier runs whose process is gone."""
        cursor.execute("SHOW DATABASES LIKE '%s%%'" % PREFIX)
        for (name,) in cursor.fetchall():
            m = re.match(r'%s(\d+)_' % PREFIX, name)
            if m and not _pid_alive(int(m.group(1))):
                cursor.execute('DROP DATABASE IF EXISTS `%s`' % name)

    def prepare(self, state_dir):
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                self._drop_abandoned(cursor)
                for service in ('keystone', 'heat', 'magnum'):
                    name = self._database(service)
                    cursor.execute('CREATE DATABASE `%s` CHARACTER SET utf8' % name)
                    self.databases.append(name)
        finally:
            conn.close()
        self._create_vhost()

    def database_url(self, service):
        query = 'charset=utf8' + ('&' + self.db_query if self.db_query else '')
        return '%s/%s?%s' % (self.db_url, self._database(service), query)

    # messaging ----------------------------------------------------------------------
    def _rabbitmqctl(self, *args: str, check: bool = True) -> str:
        tool = shutil.which('rabbitmqctl') or '/usr/sbin/rabbitmqctl'
        try:
            proc = subprocess.run([tool, '-q', *args], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError('rabbitmqctl %s failed: %s' % (args[0], exc))
        if check and proc.returncode:
            raise BackendError('rabbitmqctl %s failed: %s' % (args[0], proc.stderr.strip()))
        return proc.stdout

    def _create_vhost(self) -> None:
        for line in self._rabbitmqctl('list_vhosts', check=False).splitlines():
            m = re.match(r'celtic-lab-(\d+)_', line.strip())
            if m and not _pid_alive(int(m.group(1))):
                self._rabbitmqctl('delete_vhost', line.strip(), check=False)
        self.vhost = 'celtic-lab-%s' % self.run_id
        user = urllib.parse.urlparse(self.rabbit_url).username or 'guest'
        self._rabbitmqctl('add_vhost', self.vhost)
        self._rabbitmqctl('set_permissions', '-p', self.vhost, user, '.*', '.*', '.*')

    def transport_url(self):
        return '%s/%s' % (self.rabbit_url, self.vhost)

    # cleanup ------------------------------------------------------------------------
    def cleanup(self):
        errors = []
        if self.databases:
            try:
                conn = self._connect()
                with conn.cursor() as cursor:
                    for name in self.databases:
                        cursor.execute('DROP DATABASE IF EXISTS `%s`' % name)
                conn.close()
                self.databases = []
            except Exception as exc:  # keep going: the vhost must go too
                errors.append(str(exc))
        if self.vhost:
            try:
                self._rabbitmqctl('delete_vhost', self.vhost)
                self.vhost = ''
            except BackendError as exc:
                errors.append(str(exc))
        if errors:
            raise BackendError('; '.join(errors))

    def describe(self):
        return 'mariadb (MariaDB %s, RabbitMQ vhost %s)' % (
            urllib.parse.urlparse(self.db_url.replace('mysql+pymysql', 'mysql')).netloc
            .split('@')[-1], self.vhost or '-')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
