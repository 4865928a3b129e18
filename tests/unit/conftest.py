"""Start the slow validate subprocesses as soon as collection ends (validate_runs)."""

from __future__ import annotations

from tests.unit import validate_runs


def pytest_collection_finish(session):
    if any('validate_runs' in getattr(item, 'fixturenames', ())
           for item in session.items):
        validate_runs.start()


def pytest_sessionfinish(session, exitstatus):
    validate_runs.stop()
