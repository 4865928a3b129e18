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

"""What operators install: the wheel, its data files, its extras, its release hygiene.

The tests marked "installed wheel" run when the gate installed the built wheel
(CELTIC_TEST_INSTALLED_WHEEL=1, set by tox) and are skipped on a develop install,
where they would prove nothing.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import importlib.metadata
import io
import lzma
import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

from magnum_celtic import templates
from tests import installed

REPO = installed.REPO
ROLES = ('master', 'minion', 'proxy', 'storage')
LAB_MODULES = ('heat', 'keystone', 'magnumclient', 'pymysql')

wheel_only = pytest.mark.skipif(not installed.required(),
                                reason='needs the installed wheel (run through tox)')


def _git_files(*patterns):
    done = subprocess.run(['git', '-C', REPO, 'ls-files', '--', *patterns],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip('not a git checkout: %s' % done.stderr.strip())
    return [name for name in done.stdout.splitlines()
            if os.path.isfile(os.path.join(REPO, name))]


# ---- the installed wheel ------------------------------------------------------------

@wheel_only
def test_the_package_under_test_is_the_installed_wheel():
    assert installed.problem() is None


@wheel_only
def test_bundles_packed_from_the_installed_wheel_hold_exactly_the_manifest():
    root = templates.default_dir()
    assert root.endswith(os.path.join('share', 'magnum-celtic', 'heat_templates'))
    with open(os.path.join(REPO, 'heat_templates', 'fragments', 'bundles.yaml'),
              encoding='utf-8') as handle:
        manifest = yaml.safe_load(handle)
    packer = templates.TemplateSet(root)
    checkout = templates.TemplateSet(os.path.join(REPO, 'heat_templates'))
    for role in ROLES:
        members = _unpack(packer.bundle(role))
        served = _unpack(packer.vendordata_bundle(role))
        if served:  # the bundle names the files celtic-vendordata serves by digest
            assert members.pop(templates.VENDORDATA_DIGEST).decode().strip() == (
                hashlib.sha256(packer.vendordata_bundle(role).encode()).hexdigest())
        assert sorted(members) == sorted(set(manifest['common']) | set(manifest[role]))
        assert sorted(served) == sorted(manifest['vendordata'].get(role) or [])
        for name, content in {**members, **served}.items():
            # the checkout's file as a node receives it (shell without its comments)
            assert content == checkout.node_copy(name), name


def _unpack(packed):
    """A packed bundle as {name: content} ({} for '')."""
    if not packed:
        return {}
    raw = lzma.decompress(base64.b64decode(packed))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@wheel_only
def test_the_wheel_carries_every_template_and_environment_of_the_checkout():
    root = templates.default_dir()
    shipped = set()
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        shipped.update(os.path.relpath(os.path.join(base, f), root) for f in files
                       if not f.endswith('.pyc'))
    tracked = {os.path.relpath(name, 'heat_templates')
               for name in _git_files('heat_templates')}
    assert tracked == shipped


# ---- what the driver needs, and what only the tools need ----------------------------

def test_the_runtime_requirements_hold_nothing_of_the_lab_extra():
    with open(os.path.join(REPO, 'requirements.txt'), encoding='utf-8') as handle:
        runtime = {re.split(r'[<>=!~ ;\[#]', line.strip())[0].lower()
                   for line in handle if line.strip() and not line.startswith('#')}
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, 'setup.cfg'))
    lab = {re.split(r'[<>=!~ ;\[]', line.strip())[0].lower()
           for line in parser['extras']['lab'].splitlines() if line.strip()}
    assert {'openstack-heat', 'keystone'} <= lab
    assert runtime & lab == set()


def test_the_driver_loads_without_the_lab_extra():
    pytest.importorskip('magnum')
    code = ('import sys\n'
            'for name in %r: sys.modules[name] = None\n'
            'from magnum_celtic import driver\n'
            'print(driver.Driver().provides)\n' % (LAB_MODULES,))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'kubernetes' in done.stdout


@wheel_only
def test_the_installed_metadata_names_the_lab_extra_and_a_pbr_version():
    dist = importlib.metadata.distribution('magnum-celtic')
    assert 'lab' in (dist.metadata.get_all('Provides-Extra') or [])
    unconditional = {re.split(r'[<>=!~ ;\[(]', r)[0].lower()
                     for r in dist.requires or () if 'extra ==' not in r}
    assert 'magnum' in unconditional
    assert unconditional & {'openstack-heat', 'keystone', 'python-magnumclient',
                            'pymysql'} == set()
    # pbr: a tag gives X.Y.Z, commits after it (or no tag) a .devN pre-release
    assert re.match(r'^\d+\.\d+\.\d+(\.dev\d+)?$', dist.version), dist.version


# ---- release hygiene -----------------------------------------------------------------

HEADER = [
    'Licensed under the Apache License, Version 2.0 (the "License"); you may',
    'not use this file except in compliance with the License. You may obtain',
    'a copy of the License at',
    '',
    '     http://www.apache.org/licenses/LICENSE-2.0',
    '',
    'Unless required by applicable law or agreed to in writing, software',
    'distributed under the License is distributed on an "AS IS" BASIS, WITHOUT',
    'WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the',
    'License for the specific language governing permissions and limitations',
    'under the License.',
]


def _source_files():
    names = _git_files('*.py', '*.sh', '*.bash', '*.bats', '.ci/run', 'devstack/settings',
                       'devstack/lib/*', 'tests/functional/vip_lab_bin/*')
    return sorted(n for n in names if os.path.getsize(os.path.join(REPO, n)) > 0)


def _has_header(lines):
    start = 1 if lines and lines[0].startswith('#!') else 0
    body = [line[2:] if line.startswith('# ') else line[1:] if line.startswith('#')
            else None for line in lines[start:start + len(HEADER)]]
    return body == HEADER


def test_every_python_and_shell_source_carries_the_apache_header_after_its_shebang():
    missing = []
    for name in _source_files():
        with open(os.path.join(REPO, name), encoding='utf-8') as handle:
            lines = handle.read().splitlines()
        if not _has_header(lines):
            missing.append(name)
    assert missing == [], 'files without the Apache 2.0 header: %s' % missing


def test_the_header_check_sees_a_missing_or_misplaced_header():
    good = ['#!/bin/bash'] + ['# ' + line if line else '#' for line in HEADER] + ['x=1']
    assert _has_header(good)
    assert not _has_header(good[1:2] + good[:1] + good[2:])   # shebang not first
    assert not _has_header(['#!/bin/bash', 'set -e'])


NOTE_NAME = re.compile(r'^[a-z0-9][a-z0-9-]*-[0-9a-f]{16}\.yaml$')
NOTE_SECTIONS = {'prelude', 'features', 'issues', 'upgrade', 'deprecations', 'critical',
                 'security', 'fixes', 'other'}


def test_release_notes_are_reno_notes():
    notes = _git_files('releasenotes/notes')
    assert notes, 'no release notes under releasenotes/notes'
    for name in notes:
        assert NOTE_NAME.match(os.path.basename(name)), name
        with open(os.path.join(REPO, name), encoding='utf-8') as handle:
            note = yaml.safe_load(handle)
        assert isinstance(note, dict) and note, name
        assert set(note) <= NOTE_SECTIONS, (name, set(note) - NOTE_SECTIONS)
        for section, entries in note.items():
            if section == 'prelude':
                assert isinstance(entries, str), name
            else:
                assert isinstance(entries, list) and all(
                    isinstance(e, str) and e.strip() for e in entries), (name, section)
