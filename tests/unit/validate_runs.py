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

"""`magnum-celtic validate` on the real templates and on deliberately broken copies.

Heat's validator takes a while and must run outside the pytest process (openstack-heat's
oslo.config options must not mix with Magnum's), so the runs are started as soon as
pytest has collected a test that needs them (conftest.py) and run alongside the other
tests; test_cmd.py waits for their results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from magnum_celtic import templates

TEMPLATES = templates.default_dir()
_started: dict[str, subprocess.Popen] = {}
_results: dict[str, tuple[int, str, str]] = {}
_workdir: list[str] = []


def _unknown_property(text: str) -> str:
    # cluster_facts is an OS::Heat::Value: it has no property "colour".
    return text.replace('  cluster_facts:\n    type: OS::Heat::Value\n    properties:\n',
                        '  cluster_facts:\n    type: OS::Heat::Value\n    properties:\n'
                        '      colour: blue\n')


def _bad_get_attr(text: str) -> str:
    return text.replace('value: {get_attr: [cluster_facts, value]}',
                        'value: {get_attr: [cluster_facts, valeu]}')


BROKEN = {'unknown property': ('celtic.yaml', _unknown_property),
          'bad get_attr': ('celtic.yaml', _bad_get_attr)}


def broken_copy(directory: str, name: str, edit) -> str:
    """A copy of the templates with ``edit`` applied to the file ``name``."""
    shutil.copytree(TEMPLATES, directory)
    path = os.path.join(directory, name)
    with open(path, encoding='utf-8') as handle:
        text = handle.read()
    changed = edit(text)
    if changed == text:
        raise AssertionError('the edit did not change %s: the test needs updating'
                             % name)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(changed)
    return directory


def command(*argv: str) -> list[str]:
    return [sys.executable, '-m', 'magnum_celtic.cmd.main', *argv]


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONWARNINGS='ignore')


def start() -> None:
    """Start every run (idempotent)."""
    if _started:
        return
    _workdir.append(tempfile.mkdtemp(prefix='celtic-validate-'))
    dirs = {'good': None}
    for label, (name, edit) in BROKEN.items():
        dirs[label] = broken_copy(os.path.join(_workdir[0], label.replace(' ', '_')),
                                  name, edit)
    for label, directory in dirs.items():
        argv = (['--templates-dir', directory] if directory else []) + ['validate']
        _started[label] = subprocess.Popen(command(*argv), stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True,
                                           env=environment())


def results() -> dict[str, tuple[int, str, str]]:
    """{run: (exit code, stdout, stderr)}, waiting for the runs to finish."""
    start()
    for label, process in _started.items():
        if label not in _results:
            out, err = process.communicate(timeout=900)
            _results[label] = (process.returncode, out, err)
    return dict(_results)


def stop() -> None:
    """Kill runs nobody waited for and remove the copies."""
    for process in _started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()
    for directory in _workdir:
        shutil.rmtree(directory, ignore_errors=True)
