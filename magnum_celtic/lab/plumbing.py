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

"""The plumbing every lab shares: run a command, wait for a condition, stop processes by
PID, the PIDs of a network namespace.

Used by the control-plane lab (this package) and by the network-namespace labs of the
functional tests (``tests/functional/vip_lab.py``, ``lb_lab.py``, the gluster lab of
``test_gluster_live.py``), so that each of them waits and stops the same way. Nothing
of the driver imports it (doc/architecture.md, "The labs").
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, Iterable


def sh(cmd: list[str], timeout: float = 30, check: bool = True,
       **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its output; with ``check``, a failure raises RuntimeError
    with the command and the end of its stderr."""
    result = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    return result


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.2,
               what: str = 'condition',
               error: type[Exception] = TimeoutError) -> object:
    """Poll ``predicate`` until it returns a true value (returned), or raise ``error``
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise error(f'timed out after {timeout:.1f}s waiting for {what}')
        time.sleep(interval)


def proc_state(pid: int) -> str:
    """The state letter of a process (/proc/<pid>/stat), '' when it is gone."""
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rsplit(') ', 1)[1][:1]
    except (OSError, IndexError):
        return ''


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    return proc_state(pid) not in ('', 'Z')


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_pids(pids: list[int], grace: float = 3.0, kill_wait: float = 0.0,
              poll: Callable[[], None] | None = None) -> list[int]:
    """SIGTERM each PID, SIGKILL those still alive after ``grace`` seconds, then wait
    up to ``kill_wait`` seconds for them to go. ``poll`` runs at every check (a
    subreaper collects its adopted zombies there). Returns the PIDs still alive."""
    remaining = list(pids)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        if not remaining:
            break
        _signal(remaining, sig)
        deadline = time.monotonic() + wait
        while True:
            if poll is not None:
                poll()
            remaining = [p for p in remaining if alive(p)]
            if not remaining or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    return remaining


def netns_pids(name: str) -> list[int]:
    """The PIDs of network namespace ``name`` (``ip netns pids``)."""
    result = sh(['ip', 'netns', 'pids', name], check=False, timeout=10)
    return [int(p) for p in result.stdout.split()]


def netns_list() -> list[str]:
    """The names of the network namespaces ``ip netns`` knows."""
    result = sh(['ip', 'netns', 'list'], check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def destroy_netns(names: Iterable[str]) -> None:
    """Stop every process of these namespaces by PID, then delete the namespaces."""
    names = list(names)
    pids = sorted({p for n in names for p in netns_pids(n)})
    if pids:
        kill_pids(pids)
    for name in names:
        sh(['ip', 'netns', 'del', name], check=False)
