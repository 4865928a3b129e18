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

"""The one-way data flow of doc/architecture.md, checked on the installed modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import magnum_celtic

PACKAGE = os.path.dirname(magnum_celtic.__file__)
#: modules that do no I/O: plain data in, plain data out (templates reads files)
PURE = ('labels', 'spec', 'pki', 'request', 'expand', 'budget', 'outputs', 'status',
        'templates', 'preflight', 'keystone_auth')
#: what may never be imported by a pure module: Magnum, clients, configuration
IMPURE = ('magnum', 'heatclient', 'keystoneauth1', 'oslo_config', 'oslo_log',
          'magnum_celtic.conf', 'magnum_celtic.heat', 'magnum_celtic.adapters',
          'magnum_celtic.certs', 'magnum_celtic.driver', 'magnum_celtic.vendordata',
          'magnum_celtic.inventory')


def imports(module: str) -> set[str]:
    """The modules ``magnum_celtic.<module>`` imports (any depth of its code)."""
    with open(os.path.join(PACKAGE, module + '.py'), encoding='utf-8') as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update('%s.%s' % (node.module, alias.name) for alias in node.names)
    return found


def test_status_reads_neither_heat_nor_configuration():
    assert not {'magnum_celtic.heat', 'magnum_celtic.conf'} & imports('status')


def test_the_preflight_reads_the_cloud_only_through_inventory():
    assert imports('preflight') & {'magnum_celtic.spec'}
    assert 'magnum_celtic.preflight' in imports('inventory')
    assert not {'magnum_celtic.heat', 'magnum_celtic.adapters',
                'magnum_celtic.driver'} & imports('inventory')


def test_the_heat_client_does_not_import_the_request_builders():
    assert not {'magnum_celtic.request', 'magnum_celtic.expand',
                'magnum_celtic.budget', 'magnum_celtic.stack'} & imports('heat')


@pytest.mark.parametrize('module', PURE)
def test_pure_modules_import_nothing_that_does_io(module):
    bad = {name for name in imports(module)
           if any(name == i or name.startswith(i + '.') for i in IMPURE)}
    assert bad == set()


def test_the_driver_and_celtic_vendordata_import_no_lab():
    # The labs ship in the wheel (doc/architecture.md, "The labs") but a conductor,
    # magnum-api or celtic-vendordata never loads them.
    code = ('import sys\n'
            'import magnum_celtic.driver, magnum_celtic.vendordata\n'
            'import magnum_celtic.validation, magnum_celtic.cmd.main\n'
            'print(sorted(m for m in sys.modules\n'
            '             if m.split(".")[:2] == ["magnum_celtic", "lab"]))\n')
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env=env, timeout=120, cwd='/')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == '[]'
