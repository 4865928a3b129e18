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

"""Service processes of the lab: free loopback ports, start, readiness, stop by PID.

Every service runs in its own session (its PID is its process-group id), so stopping
it also ends whatever it started (heat-engine workers, simulated nodes). On Linux each
service also gets SIGTERM when the process that started it dies, so a harness killed
with SIGKILL does not leave a control plane behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable

#: loopback ports other engineers' tests own on this machine kind
RESERVED_PORTS = range(18000, 19000)

_handed_out: set[int] = set()


class ServiceError(Exception):
    """A service did not start or did not become ready."""


def free_port() -> int:
    """A loopback TCP port nobody listens on now (never one of RESERVED_PORTS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        if port not in RESERVED_PORTS and port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ServiceError('no free loopback port found')


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no graceful shutdown without us
    except OSError:
        pass


def workers_die_with_service() -> None:
    """Called first in a service process: children it forks (oslo.service workers of
    heat-engine, magnum-conductor, ...) die with it. PR_SET_PDEATHSIG is not inherited
    across fork, so without this a lab killed with SIGKILL leaves orphaned workers."""
    if sys.platform.startswith('linux'):
        os.register_at_fork(after_in_child=_die_with_parent)


def http_ready(url: str) -> Callable[[], bool]:
    """A readiness check: url answers HTTP at all (any status below 500)."""
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except (OSError, ValueError):
            return False
    return check


class Service:
    """One service process of the control plane."""

    def __init__(self, name: str, argv: list[str], log_path: str,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 ready: Callable[[], bool] | None = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.ready = ready
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The service's PID (also its process-group id)."""
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start the process (returns at once; see wait_ready)."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith('linux') else None)
        finally:
            log.close()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Return when the readiness check passes; raise if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError('%s exited with status %s before it was ready; last '
                                   'lines of %s:\n%s' % (self.name, self.proc.returncode,
                                                         self.log_path, self.tail()))
            if self.ready is None or self.ready():
                return
            time.sleep(0.2)
        raise ServiceError('%s was not ready after %.0fs; last lines of %s:\n%s'
                           % (self.name, timeout, self.log_path, self.tail()))

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Crash the service: ``sig`` (SIGKILL by default: no clean-up of any kind) to
        its process group, and reap it. Returns the PID it had; ``start()`` runs the
        same command again (see ControlPlane.restart)."""
        if self.proc is None:
            return None
        pid = self.proc.pid
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        return pid

    def tail(self, lines: int = 15) -> str:
        """The last lines of the service's log."""
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode(errors='replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left (a lab has nothing
        to shut down gracefully: a heat-engine would wait for stacks in progress)."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure no member of its group survives
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)


def run(argv: list[str], log_path: str, env: dict[str, str] | None = None,
        timeout: float = 600.0) -> None:
    """Run a set-up command to completion (its output goes to log_path)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, 'ab') as log:
        log.write(('\n$ %s\n' % ' '.join(argv)).encode())
        log.flush()
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, timeout=timeout,
                              preexec_fn=_die_with_parent)
    if proc.returncode:
        with open(log_path, 'rb') as log:
            tail = log.read()[-3000:].decode(errors='replace')
        raise ServiceError('%s failed (exit %d):\n%s' % (' '.join(argv[:3]),
                                                         proc.returncode, tail))
