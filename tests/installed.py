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

"""Is the magnum_celtic under test the installed wheel, as operators install it?

The gates (tox) install the built wheel and set CELTIC_TEST_INSTALLED_WHEEL=1; then a run
that imports the checkout's copy instead (a develop install, the checkout first on
sys.path) would test something no operator runs, so it is refused.
"""

from __future__ import annotations

import importlib.metadata
import json
import os

DIST_NAME = 'magnum-celtic'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join('share', 'magnum-celtic', 'heat_templates')


def required() -> bool:
    """The environment says the package under test must be the installed wheel."""
    return os.environ.get('CELTIC_TEST_INSTALLED_WHEEL') == '1'


def problem() -> str | None:
    """Why the package under test is not the installed wheel, or None when it is."""
    import magnum_celtic
    from magnum_celtic import templates
    package = os.path.realpath(os.path.dirname(magnum_celtic.__file__))
    if package == os.path.join(REPO, 'magnum_celtic'):
        return ('magnum_celtic is imported from the checkout (%s), not from the installed '
                'wheel' % package)
    try:
        dist = importlib.metadata.distribution(DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        return '%s is not installed' % DIST_NAME
    direct_url = dist.read_text('direct_url.json')
    if direct_url and json.loads(direct_url).get('dir_info', {}).get('editable'):
        return '%s is an editable (develop) install' % DIST_NAME
    installed = {os.path.realpath(str(dist.locate_file(f))) for f in dist.files or ()}
    if os.path.realpath(magnum_celtic.__file__) not in installed:
        return ('magnum_celtic (%s) is not the package the %s wheel installed'
                % (magnum_celtic.__file__, DIST_NAME))
    root = templates.default_dir()
    if not root.endswith(os.sep + DATA_DIR):
        return 'the templates come from %s, not the wheel\'s data files' % root
    return None
