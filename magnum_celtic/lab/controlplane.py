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

"""The lab's control plane: Keystone, Heat and Magnum as real processes on loopback.

``ControlPlane.start()`` builds a private OpenStack control plane in a state directory:

1. the back end (sqlite files, or per-run MariaDB databases and a RabbitMQ vhost);
2. the fake cloud (cloud.json: images, flavors, keypairs, the public and a private
   network) that Heat's stand-ins and Magnum's look-ups share;
3. Keystone 30: ``keystone-manage db_sync``, fernet and credential keys, ``bootstrap``,
   then the lab's identities (service users heat and magnum, Heat's stack domain and its
   admin, a ``demo`` project and user) and the service catalog;
4. Heat 27: ``heat-manage db_sync``; heat-api (keystonemiddleware, real trusts) and
   heat-engine with the stand-in plugins (one process embedded; separate processes and
   several engine workers on RabbitMQ);
5. Magnum 23 (optional): schema (``magnum-db-manage upgrade`` on MariaDB), magnum-api and
   magnum-conductor with the celtic driver from its entry point, and celtic-vendordata
   (the driver's service, same magnum.conf), which the Nova stand-in calls as Nova's
   DynamicJSON vendordata does, with the token of the lab's ``nova`` service user.
   Without Magnum, the lab runs the same celtic-vendordata with its clusters taken from
   the stacks the lab creates (``heat_clusters``: ``celtic_stack.create(heat, name,
   lab=plane)`` registers each); ``start_magnum`` replaces it with the real one.

Every service binds a free loopback port and logs into ``<state>/logs``; ``stop()``
ends them by PID and removes the back end's databases and vhost.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Callable

from magnum_celtic.lab import backend as backend_mod
from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab import gate as gate_mod
from magnum_celtic.lab import magnum_2026_1
from magnum_celtic.lab import process

REGION = 'RegionOne'
DEMO_PROJECT = 'demo'
SERVICE_PROJECT = 'service'
STACK_DOMAIN = 'heat'
STACK_DOMAIN_ADMIN = 'heat_domain_admin'

#: heat.conf [DEFAULT] settings the lab uses unless told otherwise (see
#: reference/anchor-old-heat-driver.md: thread pool and RPC timeout matter at 50+ nodes)
HEAT_DEFAULTS = {
    'executor_thread_pool_size': 256,
    'rpc_response_timeout': 300,
    'max_resources_per_stack': 1000,
}

#: the lab's celtic-vendordata when Magnum does not run (see heat_clusters)
LAB_VENDORDATA = 'celtic-vendordata-lab'

#: seconds one readiness question to heat-api may take while the engines start
ENGINE_ASK_TIMEOUT = 5.0


#: the module the harness puts in Heat's plugin_dirs (Heat imports every module there)
PLUGIN_MODULE = '''"""celtic lab stand-ins (written by magnum_celtic.lab.controlplane)."""
from magnum_celtic.lab import standins


def resource_mapping():
    return standins.resource_mapping()


def constraint_mapping():
    return standins.constraint_mapping()
'''


def _ini(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, options in sections.items():
        lines.append('[%s]' % section)
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            lines.append('%s = %s' % (key, value))
        lines.append('')
    return '\n'.join(lines)


def _write(path: str, text: str, mode: int = 0o600) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def _venv_file(*parts: str) -> str:
    """A data file installed with a package into this Python's prefix (etc/heat/...)."""
    for prefix in (sys.prefix, sys.base_prefix, '/usr/local', '/usr'):
        path = os.path.join(prefix, *parts)
        if os.path.exists(path):
            return path
    raise process.ServiceError('%s is not installed under %s'
                               % (os.path.join(*parts), sys.prefix))


def _tool(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(path):
        return path
    found = shutil.which(name)
    if not found:
        raise process.ServiceError('%s is not installed next to %s' % (name, sys.executable))
    return found


def _source_root() -> str:
    """The directory that holds the magnum_celtic package being tested."""
    import magnum_celtic.lab
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(magnum_celtic.lab.__file__))))


class Credentials:
    """A Keystone user the lab created (password auth, project scoped)."""

    def __init__(self, username: str, password: str, project: str, domain: str = 'default'):
        self.username = username
        self.password = password
        self.project = project
        self.domain = domain

    def as_dict(self) -> dict[str, str]:
        return {'username': self.username, 'password': self.password,
                'project': self.project, 'domain': self.domain}


class ControlPlane:
    """Keystone + Heat (+ Magnum) for one lab run. Use as a context manager."""

    def __init__(self, state_dir: str | None = None, backend: backend_mod.Backend | None = None,
                 with_magnum: bool = True, engine_workers: int | None = None,
                 heat_options: dict[str, Any] | None = None, keep_state: bool = False,
                 progress: Callable[[str], None] | None = None):
        self.own_state_dir = state_dir is None
        self.state_dir = os.path.abspath(state_dir or tempfile.mkdtemp(prefix='celtic-lab-'))
        self.backend = backend or backend_mod.from_environment()
        self.with_magnum = with_magnum
        self.engine_workers = 1
        if self.backend.distributed:
            self.engine_workers = engine_workers or int(
                os.environ.get('CELTIC_HARNESS_ENGINE_WORKERS') or 2)
        self.heat_options = dict(HEAT_DEFAULTS, **(heat_options or {}))
        self.keep_state = keep_state
        self.progress = progress or (lambda message: None)
        self.services: list[process.Service] = []
        self.cloud = cloud_mod.Cloud(os.path.join(self.state_dir, 'cloud'))
        self.ports: dict[str, int] = {}
        self.users: dict[str, Credentials] = {}
        self.timings: dict[str, float] = {}
        self.heat_gate: gate_mod.Gate | None = None
        self.started = False
        self._stopped = False
        self.magnum_started = False
        # here, not at import: heat_clusters imports celtic-vendordata, hence Magnum's
        # options, which `magnum-celtic validate` (whose parser imports this module)
        # must not have registered before Heat's
        from magnum_celtic.lab import heat_clusters
        #: the celtic stacks a lab without Magnum created, for its celtic-vendordata
        self.clusters = heat_clusters.Registry(
            os.path.join(self.state_dir, heat_clusters.FILE))

    # ------------------------------------------------------------------ public API

    @property
    def keystone_url(self) -> str:
        """Keystone's v3 endpoint."""
        return 'http://127.0.0.1:%d/v3' % self.ports['keystone']

    @property
    def heat_url(self) -> str:
        """heat-api as the catalog lists it (through the gate a test can cut)."""
        return 'http://127.0.0.1:%d/v1' % self.ports['heat_gate']

    @property
    def vendordata_url(self) -> str:
        """celtic-vendordata's base URL ([celtic_vendordata] public_url)."""
        return 'http://127.0.0.1:%d' % self.ports['vendordata']

    @property
    def magnum_url(self) -> str:
        """magnum-api's v1 endpoint."""
        return 'http://127.0.0.1:%d/v1' % self.ports['magnum']

    def log_dir(self) -> str:
        """Where every service logs (<name>.log, <name>-access.log)."""
        return os.path.join(self.state_dir, 'logs')

    def __enter__(self) -> 'ControlPlane':
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Bring the control plane up (Magnum too when with_magnum)."""
        t0 = time.monotonic()
        try:
            self._step('back end', self._prepare_backend)
            self._step('keystone', self._start_keystone)
            self._step('heat', self._start_heat)
            if self.with_magnum:
                self._step('magnum', self._start_magnum)
            else:
                self._step('celtic-vendordata', self._start_lab_vendordata)
        except BaseException:
            # keep the logs of a control plane that did not come up
            self.keep_state = True
            self.progress('start failed; logs kept in %s' % self.log_dir())
            self.stop()
            raise
        self.timings['total'] = time.monotonic() - t0
        self.started = True

    def start_magnum(self) -> None:
        """Start Magnum on a running control plane (when it was started without it)."""
        if not self.magnum_started:
            self._step('magnum', self._start_magnum)

    def stop(self) -> None:
        """Stop every service by PID, drop the back end's data, remove the state."""
        if self._stopped:
            return
        self._stopped = True
        for service in reversed(self.services):
            service.stop()
        self.services = []
        if self.heat_gate is not None:
            self.heat_gate.stop()
        try:
            self.backend.cleanup()
        finally:
            if self.own_state_dir and not self.keep_state:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def session(self, user: str = 'demo', timeout: float = 300):
        """A keystoneauth session for one of the lab's users (demo, demo_reader, admin,
        magnum, heat)."""
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3
        cred = self.users[user]
        auth = v3.Password(auth_url=self.keystone_url, username=cred.username,
                           password=cred.password, project_name=cred.project,
                           user_domain_id=cred.domain, project_domain_id=cred.domain)
        return ks_session.Session(auth=auth, timeout=timeout)

    def heat(self, user: str = 'demo', session=None, direct: bool = False):
        """python-heatclient on a keystoneauth session (endpoint from the catalog; with
        direct, heat-api's own port, bypassing the gate a test can cut)."""
        from heatclient import client as heat_client
        session = session or self.session(user)
        kwargs = {}
        if direct:
            kwargs['endpoint_override'] = 'http://127.0.0.1:%d/v1/%s' % (
                self.ports['heat'], session.get_project_id())
        return heat_client.Client('1', session=session, service_type='orchestration',
                                  interface='public', region_name=REGION, **kwargs)

    def magnum(self, user: str = 'demo', session=None):
        """python-magnumclient on a keystoneauth session (endpoint from the catalog)."""
        from magnumclient import client as magnum_client
        return magnum_client.Client('1', session=session or self.session(user),
                                    interface='public', region_name=REGION,
                                    api_version='latest')

    def service(self, name: str) -> process.Service:
        """One of the running services by name."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    # ------------------------------------------------------------------ faults

    @property
    def conductor_name(self) -> str:
        """The service that runs magnum-conductor (with magnum-api when embedded)."""
        return 'magnum-conductor' if self.backend.distributed else 'magnum'

    @property
    def engine_name(self) -> str:
        """The service that runs heat-engine (with heat-api when embedded)."""
        return 'heat-engine' if self.backend.distributed else 'heat'

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Crash one service by PID (SIGKILL: no graceful shutdown, as a power cut or
        the OOM killer would); ``restart`` starts it again. Returns its PID."""
        service = self.service(name)
        pid = service.kill(sig)
        self.progress('%s (pid %s) killed with signal %d' % (name, pid, sig))
        return pid

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Start a killed (or running: it is killed first) service again with the same
        command, and wait until it serves (Heat: an engine answers; Magnum: a
        conductor reports)."""
        service = self.service(name)
        if service.alive():
            service.kill()
        service.start()
        service.wait_ready(timeout=timeout)
        if name in ('heat', 'heat-api', 'heat-engine'):
            self._wait_for_engines(timeout)
        elif name in ('magnum', 'magnum-api', 'magnum-conductor'):
            self._wait_for_conductor(timeout)
        self.progress('%s restarted (pid %s)' % (name, service.pid))

    def add_conductor(self, name: str = 'magnum-conductor-2') -> process.Service:
        """A further magnum-conductor process on the same database (its own host name);
        on RabbitMQ it shares the operations, on every back end it polls the same
        clusters (Magnum's periodic status sync runs in every conductor)."""
        if not self.magnum_started:
            raise process.ServiceError('Magnum is not running')
        base = os.path.join(self.state_dir, 'magnum')
        extra = _write(os.path.join(base, '%s.conf' % name), _ini({
            'DEFAULT': {'host': 'celtic-lab-%s' % name}}))
        service = self._spawn(name, self._python(
            'magnum_celtic.lab.services.magnum_service', 'conductor',
            os.path.join(base, 'magnum.conf'), extra),
            env=self._env(CELTIC_LAB_CLOUD_DIR=self.cloud.directory))
        service.wait_ready(timeout=3)
        return service

    def magnum_rows(self, table: str) -> int:
        """How many rows one of Magnum's tables holds (x509keypair: the certificate
        refs of clusters; cluster, nodegroup): what a delete must leave at zero."""
        import sqlalchemy as sa
        engine = sa.create_engine(self.backend.database_url('magnum'))
        try:
            with engine.connect() as connection:
                return int(connection.execute(
                    sa.text('SELECT COUNT(*) FROM %s' % table)).scalar())
        finally:
            engine.dispose()

    def remove_service(self, name: str) -> None:
        """Stop a service by PID and forget it (a conductor add_conductor started)."""
        service = self.service(name)
        service.stop()
        self.services.remove(service)

    def describe(self) -> dict[str, Any]:
        """What runs where (for a person, or a file a test reads)."""
        return {'state_dir': self.state_dir, 'backend': self.backend.describe(),
                'keystone': self.keystone_url, 'heat': self.heat_url,
                'magnum': self.magnum_url if self.magnum_started else None,
                'services': {s.name: s.pid for s in self.services},
                'users': {k: v.as_dict() for k, v in self.users.items()}}

    # ------------------------------------------------------------------ helpers

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        self.progress('starting %s' % name)
        t0 = time.monotonic()
        fn()
        self.timings[name] = time.monotonic() - t0

    def _dir(self, *parts: str, mode: int = 0o755) -> str:
        path = os.path.join(self.state_dir, *parts)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        return path

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
        paths = [_source_root()] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
        env['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(paths))
        env['PATH'] = os.pathsep.join([os.path.dirname(sys.executable), env.get('PATH', '')])
        env['no_proxy'] = env['NO_PROXY'] = '127.0.0.1,localhost'
        env.update(extra)
        return env

    def _pool(self) -> dict[str, int]:
        """Database pool settings: enough connections for the bounded request
        concurrency of each process (sqlite needs none)."""
        if not self.backend.distributed:
            return {}
        return {'max_pool_size': 10, 'max_overflow': 40, 'pool_timeout': 60}

    def _python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, '-m', module, *args]

    def heat_api_log_lines(self) -> list[str]:
        """heat-api's log (it names the user and project of every request)."""
        name = 'heat-api.log' if self.backend.distributed else 'heat.log'
        with open(os.path.join(self.log_dir(), name), errors='replace') as f:
            return f.readlines()

    def access_log(self, name: str) -> str:
        """The access log of an API service (one line per HTTP request)."""
        return os.path.join(self.log_dir(), name + '-access.log')

    def _spawn(self, name: str, argv: list[str], ready=None, env=None) -> process.Service:
        env = dict(env or self._env())
        env['CELTIC_LAB_ACCESS_LOG'] = self.access_log(name)
        service = process.Service(name, argv, os.path.join(self.log_dir(), name + '.log'),
                                  env=env, cwd=self.state_dir, ready=ready)
        service.start()
        self.services.append(service)
        return service

    def _run(self, name: str, argv: list[str], env=None) -> None:
        process.run(argv, os.path.join(self.log_dir(), name + '.log'), env=env or self._env())

    # ------------------------------------------------------------------ back end

    def _prepare_backend(self) -> None:
        self.backend.prepare(self.state_dir)
        self.cloud.initialise()
        for name in ('keystone', 'heat', 'heat_gate', 'magnum', 'vendordata'):
            self.ports[name] = process.free_port()
        self.heat_gate = gate_mod.Gate(self.ports['heat_gate'], self.ports['heat'])
        self.heat_gate.start()
        for name in ('admin', 'heat', 'magnum', 'nova', 'demo', 'demo_reader',
                     STACK_DOMAIN_ADMIN, magnum_2026_1.TRUSTEE_DOMAIN_ADMIN):
            project = {'admin': 'admin', 'demo': DEMO_PROJECT, 'demo_reader': DEMO_PROJECT,
                       STACK_DOMAIN_ADMIN: '',
                       magnum_2026_1.TRUSTEE_DOMAIN_ADMIN: ''}.get(name, SERVICE_PROJECT)
            self.users[name] = Credentials(name, secrets.token_hex(16), project)

    # ------------------------------------------------------------------ keystone

    def _keystone_conf(self) -> str:
        base = self._dir('keystone')
        keys = self._dir('keystone', 'fernet-keys', mode=0o700)
        credential_keys = self._dir('keystone', 'credential-keys', mode=0o700)
        return _write(os.path.join(base, 'keystone.conf'), _ini({
            'DEFAULT': {'debug': False, 'use_stderr': False,
                        'log_file': os.path.join(self.log_dir(), 'keystone-server.log')},
            'database': dict({'connection': self.backend.database_url('keystone')},
                             **self._pool()),
            'token': {'provider': 'fernet', 'expiration': 86400},
            'fernet_tokens': {'key_repository': keys},
            'fernet_receipts': {'key_repository': keys},
            'credential': {'key_repository': credential_keys},
            # the lab's passwords are random per run; bcrypt's minimum cost keeps every
            # node's signal (a password authentication) cheap
            'identity': {'password_hash_rounds': 4},
            'cache': {'enabled': True, 'backend': 'oslo_cache.dict', 'expiration_time': 600},
        }))

    def _start_keystone(self) -> None:
        conf = self._keystone_conf()
        env = self._env(OS_KEYSTONE_CONFIG_FILES=conf)
        if not self.backend.distributed:
            env['CELTIC_LAB_SQLITE'] = '1'
        manage = [_tool('keystone-manage'), '--config-file', conf]
        owner = ['--keystone-user', str(os.getuid()), '--keystone-group', str(os.getgid())]
        # independent set-up steps run side by side; the other projects' schemas need no
        # Keystone, so they are built meanwhile too
        with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
            jobs = [pool.submit(self._heat_schema)]
            if self.with_magnum:
                jobs.append(pool.submit(self._magnum_schema))
            keys = [pool.submit(self._run, 'keystone-%s' % step, manage + [step] + owner, env)
                    for step in ('fernet_setup', 'credential_setup')]
            self._run("keystone-db_sync", manage + ["db_sync"], env=env)
            for job in keys:
                job.result()
            self._provision_identity(conf, env)
            service = self._spawn('keystone', self._python(
                'magnum_celtic.lab.services.keystone', str(self.ports['keystone'])),
                ready=process.http_ready(self.keystone_url), env=env)
            service.wait_ready()
            for job in jobs:
                job.result()

    def _identity_spec(self) -> dict:
        users = []
        for name in ('heat', 'magnum'):
            users.append({'name': name, 'password': self.users[name].password,
                          'grants': [{'role': 'admin', 'project': SERVICE_PROJECT}]})
        # Nova's [vendordata_dynamic_auth] user: the service role is all it needs to be
        # answered by celtic-vendordata ([celtic_vendordata] allowed_roles)
        users.append({'name': 'nova', 'password': self.users['nova'].password,
                      'grants': [{'role': 'service', 'project': SERVICE_PROJECT}]})
        users.append({'name': 'demo', 'password': self.users['demo'].password,
                      'grants': [{'role': 'member', 'project': DEMO_PROJECT}]})
        # a read-only user of the same project: what Keystone's reader role may see is
        # part of what the secrecy tests check (tests/functional/test_secrets_exposure.py)
        users.append({'name': 'demo_reader', 'password': self.users['demo_reader'].password,
                      'grants': [{'role': 'reader', 'project': DEMO_PROJECT}]})
        # Heat's stack domain: the users behind every wait-condition handle live there
        users.append({'name': STACK_DOMAIN_ADMIN, 'domain': STACK_DOMAIN,
                      'password': self.users[STACK_DOMAIN_ADMIN].password,
                      'grants': [{'role': 'admin', 'domain': STACK_DOMAIN}]})
        domains = [STACK_DOMAIN]
        if magnum_2026_1.magnum_has_trusts():
            # Magnum 2026.1's trustee domain: a trustee user per cluster lives there
            trustee_admin = magnum_2026_1.TRUSTEE_DOMAIN_ADMIN
            domains.append(magnum_2026_1.TRUSTEE_DOMAIN)
            users.append({'name': trustee_admin, 'domain': magnum_2026_1.TRUSTEE_DOMAIN,
                          'password': self.users[trustee_admin].password,
                          'grants': [{'role': 'admin',
                                      'domain': magnum_2026_1.TRUSTEE_DOMAIN}]})
        return {
            'admin_password': self.users['admin'].password, 'identity_url': self.keystone_url,
            'region': REGION, 'roles': ['member', 'reader', 'service', 'heat_stack_user'],
            'domains': domains, 'projects': [SERVICE_PROJECT, DEMO_PROJECT],
            'users': users,
            'services': [
                {'type': 'orchestration', 'name': 'heat',
                 'url': 'http://127.0.0.1:%d/v1/%%(tenant_id)s' % self.ports['heat_gate']},
                {'type': 'container-infra', 'name': 'magnum', 'url': self.magnum_url}]}

    def _provision_identity(self, conf: str, env: dict) -> None:
        spec = _write(os.path.join(self.state_dir, 'keystone', 'lab-identities.json'),
                      json.dumps(self._identity_spec()))
        result_path = os.path.join(self.state_dir, 'keystone', 'lab-identities.out.json')
        self._run('keystone-bootstrap', self._python(
            'magnum_celtic.lab.services.keystone_setup', conf, spec, result_path), env=env)
        with open(result_path) as f:
            result = json.load(f)
        self.users[STACK_DOMAIN_ADMIN].domain = result['domains'][STACK_DOMAIN]
        openrc = ('export OS_AUTH_URL=%s\nexport OS_USERNAME=%%s\nexport OS_PASSWORD=%%s\n'
                  'export OS_PROJECT_NAME=%%s\nexport OS_USER_DOMAIN_ID=default\n'
                  'export OS_PROJECT_DOMAIN_ID=default\nexport OS_REGION_NAME=%s\n'
                  'export OS_IDENTITY_API_VERSION=3\n' % (self.keystone_url, REGION))
        for name in ('demo', 'admin'):
            c = self.users[name]
            _write(os.path.join(self.state_dir, 'openrc-%s' % name),
                   openrc % (c.username, c.password, c.project))

    # ------------------------------------------------------------------ heat

    def _heat_conf(self) -> str:
        base = self._dir('heat')
        plugins = self._dir('heat', 'plugins')
        _write(os.path.join(plugins, 'celtic_lab_cloud.py'), PLUGIN_MODULE, 0o644)
        heat = self.users['heat']
        auth = {'auth_type': 'password', 'auth_url': self.keystone_url,
                'username': heat.username, 'password': heat.password,
                'user_domain_id': 'default'}
        database = dict({'connection': self.backend.database_url('heat')}, **self._pool())
        return _write(os.path.join(base, 'heat.conf'), _ini({
            'DEFAULT': dict({
                'debug': False, 'use_stderr': False, 'host': 'celtic-lab',
                'transport_url': self.backend.transport_url(),
                'num_engine_workers': self.engine_workers,
                'plugin_dirs': plugins,
                'deferred_auth_method': 'trusts',
                'stack_user_domain_name': STACK_DOMAIN,
                'stack_domain_admin': STACK_DOMAIN_ADMIN,
                'stack_domain_admin_password': self.users[STACK_DOMAIN_ADMIN].password,
                'auth_encryption_key': secrets.token_hex(16),
                'encrypt_parameters_and_properties': True,
                'region_name_for_services': REGION,
            }, **self.heat_options),
            'database': database,
            'paste_deploy': {'api_paste_config': _venv_file('etc', 'heat', 'api-paste.ini')},
            'keystone_authtoken': dict(auth, www_authenticate_uri=self.keystone_url,
                                       project_name=SERVICE_PROJECT,
                                       project_domain_id='default',
                                       service_token_roles_required=True),
            'trustee': auth,
            'clients_keystone': {'auth_uri': self.keystone_url.rsplit('/v3', 1)[0]},
            'clients': {'endpoint_type': 'publicURL'},
            # signal URLs handed to nodes name heat-api itself, not the gate
            'clients_heat': {'url': 'http://127.0.0.1:%d/v1/%%(tenant_id)s'
                                    % self.ports['heat']},
            'oslo_messaging_notifications': {'driver': 'noop'},
            # empty (Heat's defaults) until a test overrides rules (set_heat_policy)
            'oslo_policy': {'policy_file': self._heat_policy_file({})},
            'celtic_lab': {'cloud_dir': self.cloud.directory,
                           'vendordata_url': self.vendordata_url + '/v1/vendordata',
                           'nova_auth_url': self.keystone_url,
                           'nova_username': self.users['nova'].username,
                           'nova_password': self.users['nova'].password,
                           'nova_project': SERVICE_PROJECT},
        }))

    def _heat_policy_file(self, rules: dict[str, str]) -> str:
        path = os.path.join(self.state_dir, 'heat', 'policy.yaml')
        previous = os.stat(path).st_mtime if os.path.exists(path) else 0.0
        _write(path, json.dumps(rules, indent=1), 0o644)
        # oslo.policy rereads the file when its mtime changes: never let two writes in
        # the same clock tick look like one
        stamp = max(time.time(), previous + 1.0)
        os.utime(path, (stamp, stamp))
        return path

    def set_heat_policy(self, rules: dict[str, str]) -> None:
        """Override Heat's policy rules (heat-api rereads the file on its next check);
        an empty dict restores Heat's defaults."""
        self._heat_policy_file(rules)

    def _heat_schema(self) -> None:
        conf = self._heat_conf()
        self._run('heat-manage', [_tool('heat-manage'), '--config-file', conf, 'db_sync'])

    def _start_heat(self) -> None:
        conf = os.path.join(self.state_dir, 'heat', 'heat.conf')
        api_ready = process.http_ready('http://127.0.0.1:%d/' % self.ports['heat'])
        if self.backend.distributed:
            api = self._spawn('heat-api', self._python(
                'magnum_celtic.lab.services.heat_api', conf, str(self.ports['heat'])),
                ready=api_ready)
            engine = self._spawn('heat-engine', self._python(
                'magnum_celtic.lab.services.heat_engine', '--config-file', conf,
                '--log-file', os.path.join(self.log_dir(), 'heat-engine-server.log')))
            api.wait_ready()
            engine.wait_ready(timeout=5)
        else:
            service = self._spawn('heat', self._python(
                'magnum_celtic.lab.services.heat_all', conf, str(self.ports['heat'])),
                ready=api_ready)
            service.wait_ready()
        self._wait_for_engines()

    def _wait_for_engines(self, timeout: float = 120.0) -> None:
        """Heat answers only once an engine serves RPC; count engines reporting up.

        Each question gets a short client timeout: heat-api's call to an engine whose
        RPC queue is not declared yet is dropped by RabbitMQ and would only end with
        heat-api's own RPC timeout (minutes); asking again a moment later is answered."""
        client = self.heat('admin', session=self.session('admin', timeout=ENGINE_ASK_TIMEOUT))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for service in self.services:
                if not service.alive():
                    raise process.ServiceError('%s died:\n%s' % (service.name, service.tail()))
            try:
                engines = [s for s in client.services.list() if s.status == 'up']
                if len(engines) >= self.engine_workers:
                    return
                last = '%d of %d engines up' % (len(engines), self.engine_workers)
            except Exception as exc:  # the engine is not serving RPC yet
                last = str(exc)
            time.sleep(0.5)
        raise process.ServiceError('heat-engine did not come up: %s' % last)

    # ------------------------------------------------------------------ magnum

    def _vendordata_sections(self) -> dict[str, dict[str, Any]]:
        """The magnum.conf sections celtic-vendordata reads: Keystone as Magnum's
        service user (tokens, Heat), [heat_client] and its own."""
        magnum = self.users['magnum']
        auth = {'auth_type': 'password', 'auth_url': self.keystone_url,
                'username': magnum.username, 'password': magnum.password,
                'user_domain_id': 'default', 'project_name': SERVICE_PROJECT,
                'project_domain_id': 'default'}
        return {
            'keystone_authtoken': dict(auth, www_authenticate_uri=self.keystone_url),
            'keystone_auth': auth,
            'heat_client': {'region_name': REGION, 'endpoint_type': 'publicURL'},
            'celtic_vendordata': {'bind_host': '127.0.0.1',
                                  'bind_port': self.ports['vendordata'],
                                  'public_url': self.vendordata_url},
        }

    def _magnum_conf(self) -> str:
        base = self._dir('magnum')
        paste = _write(os.path.join(base, 'api-paste.ini'),
                       open(_venv_file('etc', 'magnum', 'api-paste.ini')).read(), 0o644)
        return _write(os.path.join(base, 'magnum.conf'), _ini({
            'DEFAULT': {'debug': False, 'use_stderr': False, 'host': 'celtic-lab',
                        'transport_url': self.backend.transport_url(),
                        'periodic_enable': True, 'periodic_interval_max': 1,
                        'state_path': self._dir('magnum', 'state')},
            'database': dict({'connection': self.backend.database_url('magnum')},
                             **self._pool()),
            'api': {'host': '127.0.0.1', 'port': self.ports['magnum'],
                    'api_paste_config': paste, 'workers': 2},
            'conductor': {'workers': 1},
            'certificates': {'cert_manager_type': 'x509keypair'},
            'cluster': {'temp_cache_dir': self._dir('magnum', 'certificate-cache')},
            **self._vendordata_sections(),
            'oslo_messaging_notifications': {'driver': 'noop'},
            'oslo_concurrency': {'lock_path': self._dir('magnum', 'locks')},
            **self._magnum_trust(),
        }))

    def _magnum_trust(self) -> dict[str, dict[str, str]]:
        """Magnum 2026.1's [trust] section (2026.2 has no trusts)."""
        if not magnum_2026_1.magnum_has_trusts():
            return {}
        password = self.users[magnum_2026_1.TRUSTEE_DOMAIN_ADMIN].password
        return {'trust': magnum_2026_1.trust_options(password)}

    def _magnum_schema(self) -> None:
        conf = self._magnum_conf()
        if self.backend.distributed:
            self._run('magnum-db-manage', [_tool('magnum-db-manage'), '--config-file', conf,
                                           'upgrade'])
        else:
            # Magnum's migrations alter constraints, which sqlite cannot do: build the
            # schema from the models, then record it as current.
            self._run('magnum-db-manage', self._python(
                'magnum_celtic.lab.services.magnum_schema', conf))
            self._run('magnum-db-manage', [_tool('magnum-db-manage'), '--config-file', conf,
                                           'stamp', 'head'])

    def _start_magnum(self) -> None:
        conf = os.path.join(self.state_dir, 'magnum', 'magnum.conf')
        if not os.path.exists(conf):
            self._magnum_schema()
        env = self._env(CELTIC_LAB_CLOUD_DIR=self.cloud.directory)
        ready = process.http_ready('http://127.0.0.1:%d/' % self.ports['magnum'])
        if self.backend.distributed:
            api = self._spawn('magnum-api', self._python(
                'magnum_celtic.lab.services.magnum_service', 'api', conf), ready=ready, env=env)
            conductor = self._spawn('magnum-conductor', self._python(
                'magnum_celtic.lab.services.magnum_service', 'conductor', conf), env=env)
            api.wait_ready()
            conductor.wait_ready(timeout=3)
        else:
            service = self._spawn('magnum', self._python(
                'magnum_celtic.lab.services.magnum_all', conf, str(self.ports['magnum'])),
                ready=ready, env=env)
            service.wait_ready()
        self._wait_for_conductor()
        # the lab's celtic-vendordata (clusters of the lab's own stacks) gives way to
        # the real one on the same port, the target the Nova stand-in calls
        for service in [s for s in self.services if s.name == LAB_VENDORDATA]:
            service.stop()
            self.services.remove(service)
        vendordata = self._spawn('celtic-vendordata', [
            _tool('celtic-vendordata'), '--config-file', conf],
            ready=process.http_ready(self.vendordata_url + '/'), env=env)
        vendordata.wait_ready()
        self.magnum_started = True

    def _start_lab_vendordata(self) -> None:
        """celtic-vendordata without Magnum: the service's code, its clusters from
        the stacks this lab registers (heat_clusters)."""
        conf = _write(os.path.join(self._dir('vendordata'), 'vendordata.conf'), _ini({
            'DEFAULT': {'debug': False, 'use_stderr': False, 'host': 'celtic-lab'},
            **self._vendordata_sections()}))
        service = self._spawn(LAB_VENDORDATA, self._python(
            'magnum_celtic.lab.services.vendordata', conf, self.clusters.path),
            ready=process.http_ready(self.vendordata_url + '/'))
        service.wait_ready()

    def _wait_for_conductor(self, timeout: float = 60.0) -> None:
        client = self.magnum('admin')
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                states = [s.state for s in client.mservices.list()]
                if 'up' in states:
                    return
                last = states
            except Exception as exc:
                last = str(exc)
            time.sleep(0.5)
        raise process.ServiceError('magnum-conductor did not report up: %s' % last)
