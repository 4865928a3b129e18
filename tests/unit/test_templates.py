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

"""Finding the templates and collecting the files a stack request carries."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from magnum_celtic import templates

ROOT = templates.default_dir()


def template_set(root=ROOT):
    return templates.TemplateSet(root)


def test_templates_beside_the_package_or_its_installed_data_files_are_found():
    assert os.path.isfile(os.path.join(ROOT, templates.ROOT_TEMPLATE))
    beside = os.path.realpath(os.path.join(os.path.dirname(templates.__file__),
                                           '..', 'heat_templates'))
    if os.path.isdir(beside):    # a checkout (develop install)
        assert ROOT == beside
    else:                        # the wheel: its data files
        assert ROOT.endswith(os.path.join('share', 'magnum-celtic', 'heat_templates'))


def test_installed_data_files_location_is_a_candidate():
    assert any(c.endswith(os.path.join('share', 'magnum-celtic', 'heat_templates'))
               for c in templates._candidates())


def test_no_templates_anywhere_is_a_clear_error(monkeypatch):
    templates.default_dir.cache_clear()
    monkeypatch.setattr(templates, '_candidates', lambda: ['/nonexistent/a'])
    try:
        with pytest.raises(templates.TemplatesNotFound,
                           match='celtic Heat templates not found in /nonexistent/a'):
            templates.default_dir()
    finally:
        monkeypatch.undo()
        templates.default_dir.cache_clear()


def test_configured_templates_dir_wins(tmp_path):
    shutil.copy(os.path.join(ROOT, templates.ROOT_TEMPLATE), tmp_path)
    assert templates.resolve_dir(str(tmp_path)) == str(tmp_path)
    assert templates.resolve_dir('') == ROOT


def test_configured_templates_dir_without_celtic_yaml_is_refused(tmp_path):
    with pytest.raises(templates.TemplatesNotFound,
                       match=r'\[celtic\] templates_dir %s has no celtic.yaml'
                             % tmp_path):
        templates.resolve_dir(str(tmp_path))


def test_reading_outside_the_templates_directory_is_refused():
    with pytest.raises(templates.TemplatesNotFound, match='outside the templates'):
        template_set().read('../setup.cfg')


def test_a_missing_file_is_named():
    with pytest.raises(templates.TemplatesNotFound,
                       match='cannot read template file nope.yaml: No such file'):
        template_set().read('nope.yaml')


def test_environment_registry_paths_become_root_relative():
    env = yaml.safe_load(template_set().environment('defaults.yaml'))
    registry = env['resource_registry']
    assert registry['Celtic::Network'] == 'network.yaml'
    assert registry['Celtic::Optional::FloatingIP'] == 'OS::Neutron::FloatingIP'


def test_a_bundle_is_reproducible_and_read_by_its_file_name():
    first, second = template_set(), template_set()
    assert first.bundle('minion') == second.bundle('minion')
    minion = yaml.safe_load(first.read('minion.yaml'))
    bundle_file = next(iter(_get_files(minion['resources'])))
    assert bundle_file.startswith('bundles/minion.')
    assert second.read(bundle_file) == first.bundle('minion')


def _get_files(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'get_file' and value.startswith('bundles/'):
                yield value
            else:
                yield from _get_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _get_files(item)


def test_a_bundle_of_an_unknown_role_is_refused():
    with pytest.raises(templates.TemplatesNotFound, match='lists no role nobody'):
        template_set().bundle_files('nobody')


def _functions(node, name):
    """Every use of the intrinsic function ``name`` in a parsed template."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == name:
                yield value
            yield from _functions(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _functions(item, name)


def test_no_template_uses_yaql():
    # Heat 27's engine threads share one yaql parser: two expressions parsed at once
    # can fail a stack with "Bad expression Parse error" (doc/harness.md)
    found = {}
    for directory, _, names in os.walk(ROOT):
        if 'fragments' in os.path.relpath(directory, ROOT).split(os.sep):
            continue
        for name in names:
            if name.endswith('.yaml'):
                path = os.path.join(directory, name)
                with open(path) as stream:
                    uses = list(_functions(yaml.safe_load(stream), 'yaql'))
                if uses:
                    found[os.path.relpath(path, ROOT)] = uses
    assert found == {}
    assert list(_functions({'outputs': {'a': {'value': {'yaql': {'expression': '1'}}}}},
                           'yaql')) == [{'expression': '1'}]
