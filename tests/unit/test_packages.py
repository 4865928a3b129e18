"""Every package a node fragment installs exists on every supported distribution.

The fragments name packages; fragments/lib/packages.txt maps each name to the package of
Debian 12, Debian 13 and Ubuntu 24.04, and celtic_install picks the row of the node's
distribution at boot. A name without a row would only fail on a real node, so it is
caught here, and so is a fragment that calls apt-get past the table.
"""

from __future__ import annotations

import os
import re

import pytest

from magnum_celtic import templates

FRAGMENTS = os.path.join(templates.default_dir(), 'fragments')
TABLE = os.path.join(FRAGMENTS, 'lib', 'packages.txt')
DISTROS = ('debian-12', 'debian-13', 'ubuntu-24.04')
# The functions that take package names of the table (lib/celtic.sh, node/ha.sh).
INSTALLERS = ('celtic_install', 'celtic_package_names', 'ha_install_packages')
CALL = re.compile(r'\b(%s)\s+((?:\\\n|[^\n|;&])*)' % '|'.join(INSTALLERS))


def _table():
    rows = {}
    with open(TABLE) as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith('#'):
                continue
            fields = line.split()
            assert len(fields) == 4, 'packages.txt line %d: want name, distro, package, ' \
                'source; got %r' % (number, line)
            name, distro, package, source = fields
            assert (name, distro) not in rows, 'packages.txt line %d repeats %s on %s' % (
                number, name, distro)
            rows[(name, distro)] = (package, source)
    return rows


def _scripts():
    for base, _dirs, files in os.walk(FRAGMENTS):
        for name in sorted(files):
            if name.endswith('.sh'):
                path = os.path.join(base, name)
                yield os.path.relpath(path, FRAGMENTS), open(path).read()


def _installed_names():
    """{package name: script} for every literal name passed to an installer."""
    found = {}
    for script, text in _scripts():
        for match in CALL.finditer(text):
            line_start = text.rfind('\n', 0, match.start()) + 1
            if re.match(r'\s*(#|\w+\(\))', text[line_start:match.start() + 1]):
                continue    # a comment or the function's own definition
            for word in match.group(2).replace('\\\n', ' ').split():
                word = word.strip('"\'')
                if word.startswith('$') or word.startswith('||'):
                    continue
                name = word.split('=', 1)[0]
                if re.fullmatch(r'[a-z0-9][a-z0-9.+-]*', name):
                    found.setdefault(name, script)
    return found


def test_the_fragments_install_the_packages_found_here():
    names = _installed_names()
    # The scan itself works: the names the issue is about are seen.
    for name in ('pacemaker-cli-utils', 'resource-agents', 'kubeadm', 'containerd.io',
                 'glusterfs-server', 'nftables'):
        assert name in names


@pytest.mark.parametrize('distro', DISTROS)
def test_every_installed_package_has_a_row_for_every_distribution(distro):
    rows = _table()
    missing = sorted('%s (%s)' % (name, script) for name, script in _installed_names().items()
                     if (name, distro) not in rows)
    assert not missing, 'no row in fragments/lib/packages.txt for %s: %s' % (
        distro, ', '.join(missing))


def test_every_row_names_a_supported_distribution_and_its_source():
    for (name, distro), (package, source) in _table().items():
        assert distro in DISTROS, '%s: unknown distribution %s' % (name, distro)
        assert source.startswith('https://'), '%s on %s: no source' % (name, distro)
        if source.startswith('https://packages.'):
            # the archive's own page names the very package of the row
            assert source.rstrip('/').endswith('/' + package), (name, distro, source)


def test_ubuntu_noble_has_no_resource_agents_package():
    rows = _table()
    assert rows[('resource-agents', 'ubuntu-24.04')][0] == 'resource-agents-base'
    assert rows[('resource-agents', 'debian-12')][0] == 'resource-agents'


def test_no_fragment_installs_past_the_table():
    for script, text in _scripts():
        if script == 'lib/celtic.sh':
            continue
        for pattern in (r'apt-get\s[^\n]*\binstall\b', r'\bceltic_apt_install\b',
                        r'\bapt\s+install\b'):
            assert not re.search(pattern, text), '%s installs without the package table ' \
                '(use celtic_install)' % script
