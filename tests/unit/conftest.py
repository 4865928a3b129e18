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

"""Start the slow validate subprocesses as soon as collection ends (validate_runs)."""

from __future__ import annotations

from tests.unit import validate_runs


def pytest_collection_finish(session):
    if any('validate_runs' in getattr(item, 'fixturenames', ())
           for item in session.items):
        validate_runs.start()


def pytest_sessionfinish(session, exitstatus):
    validate_runs.stop()
