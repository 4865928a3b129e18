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

"""The magnum-celtic command line: render, validate, lab.

``validate`` imports openstack-heat, whose oslo.config options must not mix with
Magnum's in this process, so it runs in subprocesses (validate_runs.py, started when
collection ends). ``render`` runs in-process through ``main()`` and once as the console
script.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from magnum_celtic import sample
from magnum_celtic import request as req
from magnum_celtic import templates
from magnum_celtic import validation
from magnum_celtic.cmd import main as cli
from tests.unit import validate_runs as runs

TEMPLATES = templates.default_dir()


@pytest.fixture(autouse=True)
def without_lab(monkeypatch):
    """The lab's command-line module is another engineer's (and may import Heat):
    these tests see the command line as an install without the lab extras does."""
    monkeypatch.setitem(sys.modules, 'magnum_celtic.lab.cli', None)


def run_cli(*argv):
    """magnum-celtic as a console script: (exit code, stdout, stderr)."""
    done = subprocess.run(runs.command(*argv), capture_output=True, text=True,
                          timeout=600, env=runs.environment())
    return done.returncode, done.stdout, done.stderr


# ---- render ----------------------------------------------------------------------

def test_render_refuses_a_bad_label_naming_it(capsys):
    assert cli.main(['render', '--labels', 'proxy_count=two']) == 2
    err = capsys.readouterr().err
    assert err.strip() == ('error: label proxy_count must be an integer from 0 to 16, '
                           'got "two"')


def test_render_console_script_exits_non_zero_naming_proxy_count():
    code, out, err = run_cli('render', '--labels', 'proxy_count=two')
    assert code != 0
    assert 'proxy_count' in err
    assert out == ''


def test_render_prints_a_request_without_any_secret(capsys):
    assert cli.main(['render', '--masters', '1', '--minions', '4',
                     '--labels', 'storage_count=0, proxy_count=2',
                     '--template-fields', 'network_driver=calico']) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    params = document['parameters']
    for secret in req.LEGACY_SECRET_PARAMETERS + (
            'etcd_ca_key', 'front_proxy_ca_key', 'service_account_key', 'master_ha_secret',
            'proxy_ha_secret', 'lb_client_key'):
        assert secret not in params
    assert req.MASK not in out
    assert 'PRIVATE KEY' not in out
    assert params['signal_transport'] == 'TOKEN_SIGNAL'
    assert params['ca_cert'].startswith('-----BEGIN CERTIFICATE-----')
    assert (params['master_count'], params['minion_count'], params['storage_count']) == (
        1, 4, 0)
    assert params['node_settings']['network_driver'] == 'calico'
    assert document['environment_files'] == ['environments/defaults.yaml',
                                             'environments/no_storage.yaml']
    assert document['heat_resources'] > 0
    assert document['max_minions_under_1000'] > 4


def test_render_writes_the_templates_and_masked_parameters(tmp_path, capsys):
    out_dir = tmp_path / 'request'
    assert cli.main(['render', '--output-dir', str(out_dir)]) == 0
    assert 'no secret in it' in capsys.readouterr().out
    assert (out_dir / 'celtic.yaml').read_text() == open(
        os.path.join(TEMPLATES, 'celtic.yaml')).read()
    assert (out_dir / 'environments' / 'defaults.yaml').is_file()
    assert [p.name.split('.')[0] for p in sorted((out_dir / 'bundles').iterdir())] == [
        'master', 'minion', 'proxy', 'storage']
    parameters = json.loads((out_dir / 'parameters.json').read_text())
    assert 'ca_key' not in parameters
    for written in out_dir.rglob('*'):
        if written.is_file():
            assert 'PRIVATE KEY' not in written.read_text(), written


def test_render_with_autoscaling_names_what_the_masters_receive(tmp_path, capsys):
    """Issue 17's command: the masters receive the autoscaler (from celtic-vendordata,
    named by digest in their bundle); min above max is refused naming the label."""
    labels = 'auto_scaling_enabled=true,min_node_count=1,max_node_count=5'
    assert cli.main(['render', '--labels', labels]) == 0
    document = json.loads(capsys.readouterr().out)
    master = document['node_files']['master']
    assert {'node/autoscaler.sh', 'autoscaler/celtic_autoscaler.py',
            'manifests/cluster-autoscaler.yaml'} <= set(master['celtic_vendordata'])
    assert 'master.sh' in master['user_data']
    assert document['node_files']['minion']['celtic_vendordata'] == []
    assert document['parameters']['node_settings']['auto_scaling_enabled'] is True
    out_dir = tmp_path / 'request'
    assert cli.main(['render', '--labels', labels, '--output-dir', str(out_dir)]) == 0
    served = (out_dir / 'vendordata' / 'master.txz.b64').read_text()
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(served)), mode='r:xz') as tar:
        assert 'node/autoscaler.sh' in tar.getnames()
    assert [p.name for p in (out_dir / 'vendordata').iterdir()] == ['master.txz.b64']
    capsys.readouterr()
    assert cli.main(['render', '--labels', 'auto_scaling_enabled=true,min_node_count=5,'
                     'max_node_count=2']) == 2
    assert 'min_node_count' in capsys.readouterr().err


def test_render_warns_on_stderr(capsys):
    assert cli.main(['render', '--labels', 'proxy_count=0']) == 0
    assert ('warning: ingress_controller traefik is not installed'
            in capsys.readouterr().err)


@pytest.mark.parametrize('argv,message', [
    (['render', '--labels', 'proxy_count'],
     '--labels must be key=value pairs separated by commas, got "proxy_count"'),
    (['render', '--template-fields', 'network_driver'],
     '--template-fields must be key=value pairs'),
    (['render', '--masters', '2'], 'master_count must be an odd number >= 1'),
    (['render', '--template-fields', 'http_proxy=proxy:3128'],
     'cluster template field http_proxy must be an http:// or https:// URL'),
])
def test_render_refuses_bad_arguments_clearly(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_render_with_templates_from_another_directory(tmp_path, capsys):
    copy = tmp_path / 'templates'
    shutil.copytree(TEMPLATES, copy)
    assert cli.main(['--templates-dir', str(copy), 'render']) == 0
    assert json.loads(capsys.readouterr().out)['stack_name'].startswith('celtic-sample')


def test_lab_without_its_extras_says_how_to_install_them(capsys):
    assert cli.main(['lab']) == 2
    assert capsys.readouterr().err == (
        "error: magnum-celtic lab needs the lab extra (module magnum_celtic.lab.cli is "
        "not installed): pip install 'magnum-celtic[lab]'\n")


def _without(modules, *argv):
    """magnum-celtic in a process where ``modules`` cannot be imported, as on an
    install without the lab extra: (exit code, stdout, stderr)."""
    code = ('import sys\n'
            'for name in %r: sys.modules[name] = None\n'
            'from magnum_celtic.cmd.main import main\n'
            'sys.exit(main(%r))\n' % (list(modules), list(argv)))
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, env=runs.environment())
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize('command,missing', [
    ('validate', 'heat'), ('lab', 'heat'), ('lab', 'keystone'), ('lab', 'magnumclient')])
def test_a_command_without_the_lab_extra_says_what_to_install_in_one_line(command,
                                                                          missing):
    code, out, err = _without([missing], command)
    assert code == 2
    assert out == ''
    assert err == ("error: magnum-celtic %s needs the lab extra (module %s is not "
                   "installed): pip install 'magnum-celtic[lab]'\n" % (command, missing))


def _parsed_with(monkeypatch, func):
    """``magnum-celtic render`` whose command function is ``func``."""
    parsed = cli.parser().parse_args(['render'])
    parsed.func = func
    monkeypatch.setattr(cli.argparse.ArgumentParser, 'parse_args',
                        lambda self, argv=None: parsed)


def test_a_lab_module_imported_further_down_is_reported_as_the_extra(monkeypatch, capsys):
    def needs_pymysql(_args):
        raise ModuleNotFoundError("No module named 'pymysql'", name='pymysql')
    _parsed_with(monkeypatch, needs_pymysql)
    assert cli.main(['render']) == 2
    assert capsys.readouterr().err == (
        "error: magnum-celtic render needs the lab extra (module pymysql is not "
        "installed): pip install 'magnum-celtic[lab]'\n")


def test_an_unrelated_missing_module_is_not_blamed_on_the_extra(monkeypatch):
    def broken(_args):
        raise ModuleNotFoundError("No module named 'nosuch'", name='nosuch')
    _parsed_with(monkeypatch, broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(['render'])


# ---- validate: Heat's own validator, in subprocesses ------------------------------------

@pytest.fixture(scope='module')
def validate_runs():
    """`magnum-celtic validate` on the real templates and on two broken copies
    (started by conftest.py when collection ends)."""
    return runs.results()


@pytest.fixture(scope='module')
def combos():
    """What validate validates, rendered once (no Heat needed to render)."""
    return list(validation.combinations(templates.TemplateSet(TEMPLATES)))


def _cluster_combos(combos):
    return [c for c in combos if not c.name.startswith('nodegroup stack')]


def test_validate_passes_every_combination_the_driver_can_render(validate_runs,
                                                                 combos):
    code, out, err = validate_runs['good']
    assert code == 0, out + err[-3000:]
    assert 'validated %d combinations, 0 errors' % len(combos) in out
    assert 'FAIL' not in out


def test_validate_fails_on_an_unknown_property_naming_the_resource(validate_runs,
                                                                   combos):
    code, out, _err = validate_runs['unknown property']
    assert code == 1
    assert 'resources.cluster_facts.properties: Unknown Property colour' in out
    # Every cluster stack fails; the nodegroup stacks do not use celtic.yaml.
    assert 'validated %d combinations, %d errors' % (
        len(combos), len(_cluster_combos(combos))) in out


def test_validate_fails_on_a_bad_get_attr_naming_the_resource(validate_runs):
    code, out, _err = validate_runs['bad get_attr']
    assert code == 1
    assert 'The Referenced Attribute (cluster_facts valeu) is incorrect' in out


# ---- validate: the parts that need no Heat ----------------------------------------------

def test_combinations_cover_every_environment_toggle_and_the_nodegroup_stack(combos):
    environments = {tuple(c.request.environment_files) for c in combos}
    for env in ('no_floating_ip', 'existing_network', 'no_proxies', 'no_storage'):
        assert any('environments/%s.yaml' % env in e for e in environments)
    assert any('no_floating_ip' in str(e) and 'existing_network' in str(e)
               and 'no_proxies' in str(e) and 'no_storage' in str(e)
               for e in environments)
    pools = [c for c in combos if c.name.startswith('nodegroup stack')]
    assert [c.request.parameters['count'] for c in pools] == [2, 0]
    assert len({c.name for c in combos}) == len(combos)


def test_static_check_accepts_the_real_templates(combos):
    for combo in combos:
        validation.static_check(combo.request)


def test_static_check_catches_a_get_attr_on_a_missing_template_output(tmp_path):
    broken = runs.broken_copy(str(tmp_path / 't'), 'celtic.yaml', lambda text: text.replace(
        'value: {get_attr: [network, network]}', 'value: {get_attr: [network, netwrk]}'))
    request = req.cluster_request(sample.sample_spec(), sample.sample_pki(),
                                  templates.TemplateSet(broken), 60)
    with pytest.raises(ValueError) as error:
        validation.static_check(request)
    assert str(error.value) == ("root template: get_attr ['network', 'netwrk']: "
                                "network.yaml has no output netwrk")


def test_static_check_knows_group_attributes():
    group = {'type': 'OS::Heat::ResourceGroup',
             'properties': {'resource_def': {'type': 'Celtic::Node'}}}
    assert validation._nested_type(group, {'Celtic::Node': 'node.yaml'}) == (
        'node.yaml', True)
    assert validation._nested_type({'type': 'OS::Nova::Server'}, {}) == (None, False)
    assert validation._nested_type({'type': {'if': []}}, {}) == (None, False)
    assert list(validation._get_attrs({'a': [{'get_attr': ['x', 'y']}],
                                       'b': {'get_attr': 'not-a-list'}})) == [['x', 'y']]


def test_run_reports_each_failing_combination_and_the_totals(monkeypatch, combos):
    class RejectsNoStorage:
        """Stands in for Heat: rejects every request without storage nodes."""
        def validate(self, request):
            if 'environments/no_storage.yaml' in request.environment_files:
                raise RuntimeError('boom')
    monkeypatch.setattr(validation, 'HeatValidator', RejectsNoStorage)
    lines = []
    code = validation.run(templates.TemplateSet(TEMPLATES), out=lines.append)
    failures = [line for line in lines if line.startswith('FAIL ')]
    assert code == 1
    without_storage = [c for c in combos if 'environments/no_storage.yaml'
                       in c.request.environment_files]
    assert len(failures) == len(without_storage) == 16
    assert all('storage=0' in line and 'RuntimeError: boom' in line
               for line in failures)
    assert lines[-1].startswith('validated %d combinations, 16 errors' % len(combos))
