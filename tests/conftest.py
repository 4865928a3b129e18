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
