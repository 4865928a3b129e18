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

"""The parts of ``magnum-celtic check`` that need no cloud: the step runner and its
report, the option rules, the outage measurement. The steps themselves run against the
lab in tests/functional/test_check.py."""

from __future__ import annotations

import argparse
import io
import json
import time

import pytest

from magnum_celtic.check import report
from magnum_celtic.check import steps


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    steps.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_runner_times_each_step_skips_what_depends_on_a_failure_and_reports(tmp_path):
    out = io.StringIO()
    runner = report.Runner(out=out)

    def fails():
        raise report.StepFailed('1 of 2 nodes Ready', nodes={'a': 'Ready', 'b': 'NotReady'})

    def breaks():
        raise RuntimeError('line one\nline two')

    runner.run(report.Step('create', 'create', lambda: ('made', {'id': 1})))
    runner.run(report.Step('nodes-ready', 'nodes', fails, ('create',)))
    runner.run(report.Step('coredns', 'dns', breaks, ('create',)))
    runner.run(report.Step('resize', 'resize', lambda: ('x', {}), ('nodes-ready',)))
    runner.run(report.Step('ingress', 'ingress', lambda: ('x', {}), (), 'no proxies'))
    by_name = {r.name: r for r in runner.results}
    assert [r.status for r in runner.results] == ['pass', 'fail', 'fail', 'skip', 'skip']
    assert by_name['nodes-ready'].evidence['nodes']['b'] == 'NotReady'
    assert 'doc/nodes.md' in by_name['nodes-ready'].where_to_look['docs']
    assert by_name['coredns'].summary == 'RuntimeError: line one line two'
    assert by_name['resize'].summary == 'needs nodes-ready, which did not pass'
    assert by_name['ingress'].summary == 'no proxies'
    assert runner.failed
    text = out.getvalue()
    assert 'nodes-ready     FAIL' in text and 'resize          SKIP' in text
    table = runner.table().splitlines()
    assert table[0].split() == ['step', 'result', 'seconds', 'summary']
    assert len(table) == 2 + 5
    path = tmp_path / 'r.json'
    runner.write_report(str(path), {'cloud': 'c'})
    doc = json.loads(path.read_text())
    assert (doc['result'], doc['passed'], doc['failed'], doc['skipped']) == ('fail', 1, 2, 2)
    assert doc['cloud'] == 'c' and [s['name'] for s in doc['steps']][0] == 'create'


def test_every_step_has_somewhere_to_look():
    assert set(report.WHERE_TO_LOOK) == set(steps.STEP_NAMES)


@pytest.mark.parametrize('argv,problem', [
    ([], '--os-cloud is required'),
    (['--os-cloud', 'c', '--image', 'i'], 'without --template, --flavor, '
                                          '--external-network are needed'),
    (['--os-cloud', 'c', '--template', 't', '--image', 'i'], '--template excludes'),
    (['--os-cloud', 'c', '--template', 't', '--masters', '0'], '--masters must be odd'),
    (['--os-cloud', 'c', '--template', 't', '--minions', '0'], '--minions must be at least'),
    (['--os-cloud', 'c', '--template', 't', '--storage', '-1'], '--storage must be 0 or'),
    (['--os-cloud', 'c', '--template', 't', '--name', 'x' * 21], '--name must be a DNS'),
    (['--os-cloud', 'c', '--template', 't', '--skip', 'leftovers'], '--skip: unknown'),
    (['--os-cloud', 'c', '--template', 't', '--labels', 'novalue'], '--labels must be'),
    (['--os-cloud', 'c', '--template', 't', '--failover-limit', '0'],
     '--failover-limit must be positive'),
])
def test_bad_options_are_named(monkeypatch, argv, problem):
    monkeypatch.delenv('OS_CLOUD', raising=False)
    problems = steps.validate_args(_args(*argv))
    assert any(problem in p for p in problems), problems


def test_good_options_pass():
    assert steps.validate_args(_args('--os-cloud', 'c', '--template', 't', '--skip',
                                     'resize,ingress', '--name', 'celtic-check-1')) == []


def test_outage_is_the_longest_run_of_failed_polls():
    answers = iter([True, True, False, False, False, True, True, False, True] + [True] * 99)
    with steps.Outage(lambda: next(answers), interval=0.02) as outage:
        time.sleep(0.4)
    assert 0.04 <= outage.longest() <= 0.2
    assert outage.failures() == 4
    assert outage.last_ok()


def test_check_without_its_extra_says_what_to_install(monkeypatch, capsys):
    # cmd_check itself: the whole parser would import the lab's cli module, which
    # test_cmd.py expects not to be importable in this process
    from magnum_celtic.cmd import main as cli
    monkeypatch.setitem(__import__('sys').modules, 'kubernetes', None)
    assert cli.cmd_check(_args('--os-cloud', 'c', '--template', 't')) == 2
    err = capsys.readouterr().err
    assert "module kubernetes is not installed): pip install 'magnum-celtic[check]'" in err
