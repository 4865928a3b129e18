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

"""Each role's nodes receive exactly the fragment files their scripts use.

A node gets its fragments as one packed bundle per role (fragments/bundles.yaml). A
file a script sources or renders but the bundle lacks would only fail on a real node,
at boot, so it is caught here instead.
"""

from __future__ import annotations

import base64
import hashlib
import io
import lzma
import os
import pathlib
import re
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import yaml

from magnum_celtic import templates

ROLES = ('master', 'minion', 'proxy', 'storage')
# "$CELTIC_LIB_DIR/node/ha.sh", "${CELTIC_LIB_DIR}/templates/x.tmpl", ...
LIB_REFERENCE = re.compile(r'\$\{?CELTIC_LIB_DIR\}?/([A-Za-z0-9_./-]+[A-Za-z0-9_])')
# the checkout's fragments (the sources), whichever copy the package under test uses
CHECKOUT_FRAGMENTS = pathlib.Path(__file__).resolve().parents[2] / 'heat_templates' / 'fragments'


def unpack(packed):
    """A packed bundle as {member name: (mode, content)}."""
    raw = lzma.decompress(base64.b64decode(packed))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}


def manifest_files(root, role):
    """The role's files as fragments/bundles.yaml lists them, read with plain yaml:
    (the user_data bundle's, the files from celtic-vendordata)."""
    with open(os.path.join(root, 'fragments', 'bundles.yaml'), encoding='utf-8') as f:
        manifest = yaml.safe_load(f)
    return (sorted(set(manifest['common']) | set(manifest[role])),
            sorted(manifest.get('vendordata', {}).get(role) or []))


class BundleTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.templates = templates.TemplateSet(templates.default_dir())
        cls.fragments = os.path.join(cls.templates.root, 'fragments')

    def _delivered(self, role):
        """Every file the role's nodes receive: its bundle's and celtic-vendordata's."""
        return set(self.templates.bundle_files(role)) | set(
            self.templates.vendordata_files(role))

    def _references(self, role):
        """Files under CELTIC_LIB_DIR the role's own scripts name."""
        found = {}
        for name in sorted(self._delivered(role)):
            if not name.endswith('.sh'):
                continue
            text = self.templates.read('fragments/' + name)
            for reference in LIB_REFERENCE.findall(text):
                found.setdefault(reference, name)
        return found

    def test_every_file_a_role_script_names_is_in_its_bundle(self):
        for role in ROLES:
            bundle = self._delivered(role)
            for reference, script in self._references(role).items():
                directory = os.path.join(self.fragments, reference)
                if '*' in reference or os.path.isdir(directory):
                    continue
                with self.subTest(role=role, file=reference):
                    self.assertIn(reference, bundle,
                                  '%s (used by %s) is not in the %s bundle: add it to '
                                  'fragments/bundles.yaml' % (reference, script, role))

    def test_every_role_runs_its_own_entry_script_with_the_library(self):
        for role in ROLES:
            files = self.templates.bundle_files(role)
            self.assertIn('%s.sh' % role, files)
            self.assertIn('lib/celtic.sh', files)

    def test_every_fragment_file_is_delivered_to_some_role(self):
        delivered = set()
        for role in ROLES:
            delivered.update(self._delivered(role))
        on_disk = set()
        for base, dirs, files in os.walk(CHECKOUT_FRAGMENTS):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for name in files:
                on_disk.add(os.path.relpath(os.path.join(base, name), CHECKOUT_FRAGMENTS))
        on_disk.discard('bundles.yaml')
        self.assertEqual(set(), on_disk - delivered,
                         'fragment files no role receives (list them in '
                         'fragments/bundles.yaml or delete them)')

    def test_bundle_unpacks_to_the_fragment_files_and_is_reproducible(self):
        packed = self.templates.bundle('proxy')
        self.assertEqual(packed, templates.TemplateSet(self.templates.root).bundle('proxy'))
        raw = lzma.decompress(base64.b64decode(packed))
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            members = {m.name: m for m in tar.getmembers()}
            self.assertEqual(sorted(members), self.templates.bundle_files('proxy'))
            script = tar.extractfile(members['proxy.sh']).read().decode()
        self.assertEqual(script, templates.strip_shell_comments(
            self.templates.read('fragments/proxy.sh')))
        self.assertEqual(0o755, members['proxy.sh'].mode)
        self.assertEqual(0, members['proxy.sh'].mtime)

    def test_secrets_never_travel_in_a_bundle(self):
        for role in ROLES:
            for name in self.templates.bundle_files(role):
                self.assertFalse(name.startswith('secrets/'), name)

    def test_each_bundle_holds_exactly_the_files_the_manifest_names(self):
        for role in ROLES:
            with self.subTest(role=role):
                in_bundle, from_vendordata = manifest_files(self.templates.root, role)
                members = unpack(self.templates.bundle(role))
                extra = self.templates.vendordata_bundle(role)
                if from_vendordata:
                    digest = members.pop(templates.VENDORDATA_DIGEST)[1].decode().strip()
                    self.assertEqual(hashlib.sha256(extra.encode()).hexdigest(), digest)
                    served = unpack(extra)
                    self.assertEqual(from_vendordata, sorted(served))
                    for name, (_mode, content) in served.items():
                        self.assertEqual(self.templates.node_copy(name), content)
                else:
                    self.assertEqual('', extra)
                self.assertEqual(in_bundle, sorted(members))
                for name, (_mode, content) in members.items():
                    self.assertEqual(self.templates.node_copy(name), content)

    def test_no_file_travels_both_ways_and_only_masters_get_files_from_vendordata(self):
        """celtic-vendordata serves the masters' optional add-ons; every other role has
        all its files in its user_data (a node without vendordata reports why)."""
        for role in ROLES:
            with self.subTest(role=role):
                both = set(self.templates.bundle_files(role)) & set(
                    self.templates.vendordata_files(role))
                self.assertEqual(set(), both)
                self.assertEqual(role == 'master',
                                 bool(self.templates.vendordata_files(role)))

    def test_files_from_vendordata_are_sourced_only_after_the_vendordata_step(self):
        """master.sh sources them in master_source_addons, which each entry point
        calls after the vendordata step has unpacked them, never at its top."""
        script = self.templates.read('fragments/master.sh')
        later = {name for name in self.templates.vendordata_files('master')
                 if name.endswith('.sh')}
        body = script.split('master_source_addons() {', 1)[1].split('\n}\n', 1)[0]
        for line in script.splitlines():
            sourced = re.match(r'\s*source "\$CELTIC_LIB_DIR/([^"]+)"', line)
            if sourced and sourced.group(1) in later:
                with self.subTest(file=sourced.group(1)):
                    self.assertIn(line, body)
        self.assertEqual(later, {'node/%s.sh' % m for m in re.search(
            r'for module in ([a-z_ ]+); do', body).group(1).split()})
        main = script.split('master_main() {', 1)[1]
        self.assertLess(main.index('common_setup'), main.index('master_source_addons'))


def bash_reading(script: str) -> str:
    """What bash understood of SCRIPT: the whole file parsed as one function's body
    (nothing runs) and printed back by ``declare -f``, which drops comments."""
    result = subprocess.run(
        ['bash', '-c', 'eval "$(printf \'__script() {\\n%s\\n}\' "$1")" && declare -f __script',
         'bash', script], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise AssertionError('bash could not parse it: %s' % result.stderr.strip())
    return result.stdout


class NodeCopyTest(unittest.TestCase):
    """Shell scripts reach nodes without their full-line comments, and nothing else
    changes: bash reads every stripped script exactly as it reads the source."""

    @classmethod
    def setUpClass(cls):
        cls.templates = templates.TemplateSet(templates.default_dir())

    def _files(self, role):
        """The role's files, its bundle's and celtic-vendordata's."""
        return sorted(set(self.templates.bundle_files(role))
                      | set(self.templates.vendordata_files(role)))

    def test_bash_reads_every_stripped_script_as_it_reads_the_source(self):
        scripts = sorted({n for r in ROLES for n in self._files(r)
                          if n.endswith('.sh')})
        self.assertIn('lib/celtic.sh', scripts)
        for name in scripts:
            source = self.templates.read('fragments/' + name)
            stripped = self.templates.node_copy(name).decode('utf-8')
            with self.subTest(script=name):
                self.assertLess(len(stripped), len(source))
                self.assertEqual(source.count('\n'), stripped.count('\n'),
                                 'line numbers on the node must match the source')
                self.assertEqual(bash_reading(source), bash_reading(stripped))

    def test_comment_lines_go_and_here_documents_stay(self):
        # (line of the source, the same line on the node)
        lines = [
            ('#!/bin/bash', '#!/bin/bash'),
            ('# a comment', ''),
            ('x=1  # after code: kept', 'x=1  # after code: kept'),
            ('    # indented comment', ''),
            ("python3 - <<'PY'", "python3 - <<'PY'"),
            ('# python comment inside the here-document', '# python comment inside the '
                                                          'here-document'),
            ('PY', 'PY'),
            ('cat <<-EOF', 'cat <<-EOF'),
            ('\t# config line', '\t# config line'),
            ('\tEOF', '\tEOF'),
            ('y=$(( x << 2 ))', 'y=$(( x << 2 ))'),
            ('z=<<<"$x"', 'z=<<<"$x"'),
            ('# last', ''),
        ]
        self.assertEqual('\n'.join(node for _, node in lines),
                         templates.strip_shell_comments('\n'.join(src for src, _ in lines)))

    def test_other_files_are_sent_unchanged(self):
        for role in ('proxy', 'master'):
            for name in self._files(role):
                if (not name.endswith(('.sh', '.py')) and not name.startswith('manifests/')
                        and name != templates.PACKAGE_TABLE):
                    with self.subTest(file=name):
                        self.assertEqual(
                            self.templates.read('fragments/' + name).encode('utf-8'),
                            self.templates.node_copy(name))

    def test_python_programs_are_the_same_program_without_comments_or_docstrings(self):
        import ast
        for name in ('celtic-lb/celtic_lb.py', 'autoscaler/celtic_autoscaler.py'):
            with self.subTest(file=name):
                source = self.templates.read('fragments/' + name)
                sent = self.templates.node_copy(name).decode('utf-8')
                self.assertTrue(sent.startswith('#!/usr/bin/python3\n'))
                self.assertNotIn('\n#', sent)
                self.assertLess(len(sent), len(source))
                tree = ast.parse(source)
                # the module docstring stays (the programs print it in --help)
                self.assertEqual(ast.get_docstring(tree), ast.get_docstring(ast.parse(sent)))
                for node in ast.walk(tree):
                    if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and len(
                            node.body) > 1 and ast.get_docstring(node) is not None:
                        node.body = node.body[1:]
                self.assertEqual(ast.dump(tree), ast.dump(ast.parse(sent)))

    def test_the_package_table_keeps_what_nodes_read_name_distribution_package(self):
        source = self.templates.read('fragments/' + templates.PACKAGE_TABLE)
        sent = self.templates.node_copy(templates.PACKAGE_TABLE).decode('utf-8')
        rows = [line.split() for line in source.splitlines()
                if line.strip() and not line.startswith('#')]
        self.assertEqual([row[:3] for row in rows], [line.split() for line in sent.splitlines()])
        self.assertNotIn('#', sent)
        self.assertNotIn('https://', sent)

    def test_manifests_lose_only_their_leading_comment_block(self):
        self.assertEqual('a: 1\n# kept\nb: |\n  # content\n',
                         templates.strip_leading_comments(
                             '# what this is\n#\na: 1\n# kept\nb: |\n  # content\n'))
        for name in self._files('master'):
            if name.startswith('manifests/'):
                with self.subTest(file=name):
                    source = self.templates.read('fragments/' + name)
                    sent = self.templates.node_copy(name).decode('utf-8')
                    self.assertTrue(source.endswith(sent))
                    self.assertEqual(list(yaml.safe_load_all(source)),
                                     list(yaml.safe_load_all(sent)))


class StrayFilesTest(unittest.TestCase):
    """What an install or an editor leaves beside the fragments never reaches a node."""

    STRAYS = {
        # pip byte-compiles the installed celtic_lb.py (not UTF-8: 0xa7... magic)
        'celtic-lb/__pycache__/celtic_lb.cpython-311.pyc': b'\xa7\r\r\n\x00\x00\x00\x00',
        'celtic-lb/celtic_lb.py~': b'# an editor backup\n',
        'manifests/.storage.yaml.swp': b'b0VIM 9.0\x00\xff',
        'manifests/scratch.yaml': b'kind: Scratch\n',
        'node/ha.sh.orig': b'#!/bin/bash\n',
    }

    def setUp(self):
        self.clean = templates.TemplateSet(templates.default_dir())
        work = tempfile.mkdtemp(prefix='celtic-strays-')
        self.addCleanup(shutil.rmtree, work)
        root = os.path.join(work, 'heat_templates')
        shutil.copytree(self.clean.root, root,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        for name, content in self.STRAYS.items():
            path = os.path.join(root, 'fragments', name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as handle:
                handle.write(content)
        self.littered = templates.TemplateSet(root)

    def test_strays_in_the_fragment_directories_are_not_packed(self):
        for role in ROLES:
            with self.subTest(role=role):
                members = unpack(self.littered.bundle(role))
                members.pop(templates.VENDORDATA_DIGEST, None)
                in_bundle, from_vendordata = manifest_files(self.littered.root, role)
                self.assertEqual(in_bundle, sorted(members))
                self.assertEqual(self.clean.bundle(role), self.littered.bundle(role))
                self.assertEqual(self.clean.vendordata_bundle(role),
                                 self.littered.vendordata_bundle(role))

    def test_a_directory_entry_in_the_manifest_is_refused_naming_it(self):
        path = os.path.join(self.littered.root, 'fragments', 'bundles.yaml')
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text.replace('  - proxy.sh\n', '  - proxy.sh\n  - celtic-lb/\n'))
        with self.assertRaisesRegex(templates.TemplatesNotFound,
                                    "role proxy: entry 'celtic-lb/' must be the path of "
                                    "one file under fragments/"):
            templates.TemplateSet(self.littered.root).bundle_files('proxy')
