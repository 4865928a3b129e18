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

"""Every pytest run under tox tests the installed wheel (see tests/installed.py)."""

from __future__ import annotations

import pytest

from tests import installed


def pytest_configure(config):
    if installed.required():
        problem = installed.problem()
        if problem:
            raise pytest.UsageError('CELTIC_TEST_INSTALLED_WHEEL=1 but %s: the gates test '
                                    'the built wheel (tox installs it)' % problem)
