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

"""Where the Heat templates are, and the set of files a stack request carries.

The templates ship with the package as data files (``share/magnum-celtic/
heat_templates``), so a wheel install finds them; in a source checkout they are the
top-level ``heat_templates/`` directory.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import importlib.metadata
import io
import lzma
import os
import re
import sys
import tarfile

import yaml

DIST_NAME = 'magnum-celtic'
ROOT_TEMPLATE = 'celtic.yaml'
POOL_TEMPLATE = 'minion.yaml'
#: the servers of a pool, rendered by the driver per member (stack.render_nodes)
NODES_TEMPLATE = 'minion_nodes.yaml'
#: the cluster's ports, rendered by the driver with one per master, proxy and storage node
ADDRESSES_TEMPLATE = 'addresses.yaml'
_DATA_PATH = 'share/magnum-celtic/heat_templates'
BUNDLE_MANIFEST = 'fragments/bundles.yaml'
#: fragments/bundles.yaml's section of the files each role gets from celtic-vendordata
VENDORDATA_SECTION = 'vendordata'
_NOT_ROLES = ('common', VENDORDATA_SECTION)
#: in a role's bundle when it has files from celtic-vendordata: their bundle's SHA-256
VENDORDATA_DIGEST = 'vendordata.sha256'
_BUNDLE = re.compile(r'^bundles/([a-z]+)\.txz\.b64$')
# one file named by fragments/bundles.yaml: a relative path, no directory, no '..'
#: the start of a here-document (``<<TAG``, ``<<-'TAG'``); its body is data, not shell
_HEREDOC = re.compile(r"""(?<!<)<<(?!<)(-?)\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\2""")
_COMMENT_LINE = re.compile(r'^\s*#')
_MANIFEST_ENTRY = re.compile(r'^(?!.*(?:^|/)\.\.?(?:/|$))[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$')
_GET_FILE = re.compile(r'get_file:\s*([^\s{}\[\],]+)')
_TYPE = re.compile(r'^\s*type:\s*([A-Za-z0-9_./-]+\.yaml)\s*$', re.MULTILINE)


def served_file(role: str) -> str:
    """The cluster stack's file that holds what celtic-vendordata serves ``role``'s
    nodes (:meth:`TemplateSet.vendordata_bundle`; no template reads it)."""
    return 'vendordata/%s.txz.b64' % role


class TemplatesNotFound(RuntimeError):
    """The Heat templates are not installed where the driver looks for them."""


def _candidates() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.join(os.path.dirname(here), 'heat_templates')]
    try:
        dist = importlib.metadata.distribution(DIST_NAME)
        for entry in dist.files or ():
            if str(entry).endswith(_DATA_PATH + '/' + ROOT_TEMPLATE):
                found.append(os.path.dirname(str(dist.locate_file(entry))))
    except importlib.metadata.PackageNotFoundError:
        pass
    found.append(os.path.join(sys.prefix, _DATA_PATH))
    return found


@functools.lru_cache(maxsize=None)
def default_dir() -> str:
    """The directory holding celtic.yaml: the checkout's, else the installed copy."""
    for candidate in _candidates():
        if os.path.isfile(os.path.join(candidate, ROOT_TEMPLATE)):
            return os.path.realpath(candidate)
    raise TemplatesNotFound('celtic Heat templates not found in %s'
                            % ', '.join(_candidates()))


def resolve_dir(configured: str | None) -> str:
    """``[celtic] templates_dir`` when set, else :func:`default_dir`."""
    if configured:
        if not os.path.isfile(os.path.join(configured, ROOT_TEMPLATE)):
            raise TemplatesNotFound('[celtic] templates_dir %s has no %s'
                                    % (configured, ROOT_TEMPLATE))
        return configured
    return default_dir()


class TemplateSet:
    """The templates, environments and fragments of one templates directory.

    ``files`` maps paths relative to the templates directory to their content; those
    names are what the templates use (``type: node.yaml``, ``get_file:
    fragments/lib/celtic.sh``), so the stack Heat stores does not depend on where the
    package is installed.
    """

    def __init__(self, root: str):
        self.root = root
        self._cache: dict[str, str] = {}

    def read(self, name: str) -> str:
        """The content of one file, by its name relative to the root.

        ``bundles/<role>.txz.b64`` is not a file on disk: it is the role's fragments
        packed by :meth:`bundle`.
        """
        bundle = _BUNDLE.match(name)
        if bundle and name not in self._cache:
            self._cache[name] = self.bundle(bundle.group(1))
        if name not in self._cache:
            path = os.path.normpath(os.path.join(self.root, name))
            if not path.startswith(os.path.normpath(self.root) + os.sep):
                raise TemplatesNotFound('%s is outside the templates directory' % name)
            try:
                with open(path, encoding='utf-8') as handle:
                    self._cache[name] = handle.read()
            except OSError as exc:
                raise TemplatesNotFound('cannot read template file %s: %s'
                                        % (name, exc.strerror))
        return self._cache[name]

    def bundle_files(self, role: str) -> list[str]:
        """The fragment files (relative to fragments/) a role's nodes receive in their
        user_data.

        Exactly the files fragments/bundles.yaml names, never what else lies in the
        directory: an install leaves byte-code beside celtic_lb.py, an editor leaves
        backups, and none of that may reach a node (or break the packing).
        """
        manifest = self._bundle_manifest()
        if role not in manifest or role in _NOT_ROLES:
            raise TemplatesNotFound('%s lists no role %s' % (BUNDLE_MANIFEST, role))
        return self._entries(role, list(manifest.get('common') or [])
                             + list(manifest[role] or []))

    def vendordata_files(self, role: str) -> list[str]:
        """The fragment files a role's nodes receive from celtic-vendordata at boot
        (fragments/bundles.yaml's ``vendordata`` section; none for most roles): the
        optional add-ons' files, which would not fit in Nova's user_data limit beside
        the boot steps."""
        section = self._bundle_manifest().get(VENDORDATA_SECTION) or {}
        return self._entries(role, list(section.get(role) or []))

    def _bundle_manifest(self) -> dict:
        return yaml.safe_load(self.read(BUNDLE_MANIFEST)) or {}

    @staticmethod
    def _entries(role: str, entries: list) -> list[str]:
        for entry in entries:
            if not isinstance(entry, str) or not _MANIFEST_ENTRY.match(entry):
                raise TemplatesNotFound(
                    '%s: role %s: entry %r must be the path of one file under '
                    'fragments/ (letters, digits, "._-/", no directory, no "..")'
                    % (BUNDLE_MANIFEST, role, entry))
        return sorted(set(entries))

    def node_copy(self, name: str) -> bytes:
        """A fragment file as the nodes receive it.

        Shell scripts lose their full-line comments, which are for the people who read
        the source (a quarter of the master's payload, with Nova's 64 KiB user_data
        limit the constraint). Each comment line becomes an empty line, so line numbers
        in a node's error messages match the source; the first line (shebang) and the
        bodies of here-documents (Python, config files) are kept as they are. Python
        programs lose their comments and their functions' and classes' docstrings
        (:func:`strip_python_comments`); Kubernetes manifests their leading comment
        block (:func:`strip_leading_comments`); the package table its comments and its
        ``source`` column, the page each row was checked against, which is for the people
        who update it (:func:`node_package_table`). Other files are sent unchanged.
        """
        text = self.read('fragments/' + name)
        if name.endswith('.sh'):
            text = strip_shell_comments(text)
        elif name.endswith('.py'):
            text = strip_python_comments(text)
        elif name.startswith('manifests/') and name.endswith('.yaml'):
            text = strip_leading_comments(text)
        elif name == PACKAGE_TABLE:
            text = node_package_table(text)
        return text.encode('utf-8')

    def bundle(self, role: str) -> str:
        """The role's user_data fragments as a base64 xz-compressed tar, byte-for-byte
        reproducible (fixed order, times and owners), so re-rendering a stack changes
        nothing. xz packs shell about 10% tighter than gzip, and Nova's 64 KiB
        user_data limit is the constraint; nodes unpack it with Python's tarfile.

        A role with files from celtic-vendordata (:meth:`vendordata_bundle`) also gets
        ``VENDORDATA_DIGEST``: the SHA-256 of that bundle, which the node checks before
        it unpacks what celtic-vendordata served, so the files always belong to the
        release that rendered the stack."""
        members = [(name, self.node_copy(name)) for name in self.bundle_files(role)]
        extra = self.vendordata_bundle(role)
        if extra:
            digest = hashlib.sha256(extra.encode('ascii')).hexdigest()
            members.append((VENDORDATA_DIGEST, (digest + '\n').encode('ascii')))
        return _pack(members)

    def served_files(self) -> dict[str, str]:
        """The cluster stack's files celtic-vendordata serves from, by
        :func:`served_file` name: one per role that has any."""
        manifest = self._bundle_manifest().get(VENDORDATA_SECTION) or {}
        packed = {role: self.vendordata_bundle(role) for role in sorted(manifest)}
        return {served_file(role): files for role, files in packed.items() if files}

    def vendordata_bundle(self, role: str) -> str:
        """The role's files from celtic-vendordata (:meth:`vendordata_files`), packed
        like :meth:`bundle`; '' for a role without any."""
        names = self.vendordata_files(role)
        return _pack([(name, self.node_copy(name)) for name in names]) if names else ''

    def environment(self, name: str) -> str:
        """An environment file with its registry paths made root-relative."""
        env = yaml.safe_load(self.read('environments/' + name)) or {}
        registry = env.get('resource_registry') or {}
        for key, value in list(registry.items()):
            if isinstance(value, str) and value.endswith('.yaml'):
                registry[key] = os.path.normpath(os.path.join('environments', value))
        return yaml.safe_dump(env, default_flow_style=False, sort_keys=False)

    def closure(self, root_template: str, environments: list[str]) -> dict[str, str]:
        """Every file a stack built from ``root_template`` and ``environments`` uses."""
        files: dict[str, str] = {}
        pending = [root_template]
        for env_name in environments:
            text = self.environment(env_name)
            files['environments/' + env_name] = text
            registry = (yaml.safe_load(text) or {}).get('resource_registry') or {}
            pending.extend(v for v in registry.values()
                           if isinstance(v, str) and v.endswith('.yaml'))
        while pending:
            name = pending.pop()
            if name in files:
                continue
            text = self.read(name)
            files[name] = text
            if name.endswith('.yaml'):
                pending.extend(_GET_FILE.findall(text))
                pending.extend(_TYPE.findall(text))
        return files


#: which package each distribution installs for a name (lib/celtic.sh reads its first
#: three columns: name, distribution, package)
PACKAGE_TABLE = 'lib/packages.txt'


def node_package_table(text: str) -> str:
    """The package table as nodes read it: each row's name, distribution and package,
    without the comments and the source column."""
    rows = [' '.join(line.split()[:3]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]
    return '\n'.join(rows) + '\n'


def _pack(members: list[tuple[str, bytes]]) -> str:
    """``members`` (name, content) as a base64 xz-compressed GNU tar, reproducible:
    in the given order, mtime 0, owner root, scripts 0755 and other files 0644."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(('.sh', '.py')) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = 'root'
            tar.addfile(info, io.BytesIO(data))
    packed = lzma.compress(raw.getvalue(), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                           preset=9 | lzma.PRESET_EXTREME)
    return base64.b64encode(packed).decode('ascii')


def strip_leading_comments(text: str) -> str:
    """``text`` (a YAML manifest) without the comment lines it starts with: what the
    file is for, said to its readers. Nothing after the first other line is touched
    (a comment line inside a block scalar is content)."""
    lines = text.split('\n')
    first = 0
    while first < len(lines) and _COMMENT_LINE.match(lines[first]):
        first += 1
    return '\n'.join(lines[first:])


def strip_python_comments(text: str) -> str:
    """``text`` (a Python program) without comments and without the docstrings of its
    classes and functions, as ``ast.unparse`` writes it back: the same program (its
    syntax tree minus those strings), about a fifth smaller once compressed. The
    shebang and the module docstring stay (a program may print its ``__doc__``);
    line numbers in a node's traceback are the unparsed program's, not the source's.
    """
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (len(body) > 1 and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:]
    shebang = text.split('\n', 1)[0] + '\n' if text.startswith('#!') else ''
    return shebang + ast.unparse(tree) + '\n'


def strip_shell_comments(text: str) -> str:
    """``text`` (a bash script) with every full-line comment made an empty line.

    The shebang stays, and so does every line of a here-document's body, up to its
    terminator (``<<-`` terminators may be indented). A ``#`` after code is left alone:
    only lines that are nothing but a comment go.
    """
    lines = text.split('\n')
    out: list[str] = []
    terminator: str | None = None
    indented = False
    for number, line in enumerate(lines):
        if terminator is not None:
            out.append(line)
            if (line.lstrip('\t') if indented else line) == terminator:
                terminator = None
            continue
        if number > 0 and _COMMENT_LINE.match(line):
            out.append('')
            continue
        out.append(line)
        match = _HEREDOC.search(line)
        if match:
            indented, terminator = bool(match.group(1)), match.group(3)
    return '\n'.join(out)
