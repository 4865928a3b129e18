"""Each role's nodes receive exactly the fragment files their scripts use.

A node gets its fragments as one packed bundle per role (fragments/bundles.yaml). A
file a script sources or renders but the bundle lacks would only fail on a real node,
at boot, so it is caught here instead.
"""

from __future__ import annotations

import base64
import io
import lzma
import os
import re
import tarfile
import unittest

from magnum_celtic import templates

ROLES = ('master', 'minion', 'proxy', 'storage')
# "$CELTIC_LIB_DIR/node/ha.sh", "${CELTIC_LIB_DIR}/templates/x.tmpl", ...
LIB_REFERENCE = re.compile(r'\$\{?CELTIC_LIB_DIR\}?/([A-Za-z0-9_./-]+[A-Za-z0-9_])')


class BundleTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.templates = templates.TemplateSet(templates.default_dir())
        cls.fragments = os.path.join(cls.templates.root, 'fragments')

    def _references(self, role):
        """Files under CELTIC_LIB_DIR the role's own scripts name."""
        found = {}
        for name in self.templates.bundle_files(role):
            if not name.endswith('.sh'):
                continue
            text = self.templates.read('fragments/' + name)
            for reference in LIB_REFERENCE.findall(text):
                found.setdefault(reference, name)
        return found

    def test_every_file_a_role_script_names_is_in_its_bundle(self):
        for role in ROLES:
            bundle = set(self.templates.bundle_files(role))
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
            delivered.update(self.templates.bundle_files(role))
        on_disk = set()
        for base, _dirs, files in os.walk(self.fragments):
            for name in files:
                on_disk.add(os.path.relpath(os.path.join(base, name), self.fragments))
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
        self.assertEqual(script, self.templates.read('fragments/proxy.sh'))
        self.assertEqual(0o755, members['proxy.sh'].mode)
        self.assertEqual(0, members['proxy.sh'].mtime)

    def test_secrets_never_travel_in_a_bundle(self):
        for role in ROLES:
            for name in self.templates.bundle_files(role):
                self.assertFalse(name.startswith('secrets/'), name)
