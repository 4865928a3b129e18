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


"""clusterwatch.wait tells an action's result from the state it started from."""

import types

import pytest

from magnum_celtic.lab import clusterwatch


def _cluster(status, reason='', updated_at='2026-12-07T13:20:00+00:00'):
    return types.SimpleNamespace(status=status, status_reason=reason, updated_at=updated_at)


class _Magnum:
    """python-magnumclient's clusters.get answering from a list, the last state kept."""

    def __init__(self, states):
        self.states = list(states)
        self.clusters = self

    def get(self, cluster_id):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch):
    monkeypatch.setattr(clusterwatch.time, 'sleep', lambda seconds: None)


def test_a_second_refusal_in_the_same_second_is_its_result():
    """Magnum stores updated_at to the second: a refused resize right after another
    refusal keeps it; the new reason tells the two apart."""
    before = _cluster('UPDATE_FAILED', 'quota: instances: this resize needs 1')
    after = _cluster('UPDATE_FAILED', 'nodes_to_remove: pffit-minion-7 is not a node')
    magnum = _Magnum([before, after])
    assert clusterwatch.wait(magnum, 'c', 'UPDATE', timeout=5, before=before) is after


def test_an_update_not_started_yet_is_waited_for():
    before = _cluster('CREATE_COMPLETE', 'done')
    done = _cluster('UPDATE_COMPLETE', 'done', updated_at='2026-12-07T13:21:00+00:00')
    magnum = _Magnum([before, before, _cluster('UPDATE_IN_PROGRESS'), done])
    assert clusterwatch.wait(magnum, 'c', 'UPDATE', timeout=5, before=before) is done


def test_an_update_that_never_starts_fails_after_the_start_timeout(monkeypatch):
    """Unchanged in every field: the update was refused before it changed anything
    (the conductor's log says why); an error after start_timeout, not at timeout."""
    before = _cluster('UPDATE_FAILED', 'quota: instances: this resize needs 1')
    clock = iter(range(0, 10_000, 10))
    magnum = _Magnum([before])
    monkeypatch.setattr(clusterwatch.time, 'monotonic', lambda: next(clock))
    with pytest.raises(clusterwatch.ClusterTimeout, match='did not start in 120s'):
        clusterwatch.wait(magnum, 'c', 'UPDATE', timeout=900, before=before)


@pytest.mark.parametrize('field, value, changed', [
    ('updated_at', '2026-12-07T13:20:01+00:00', True),
    ('status', 'UPDATE_COMPLETE', True),
    ('status_reason', 'another reason', True),
    (None, None, False),
])
def test_changed_since_compares_time_status_and_reason(field, value, changed):
    """The churn benchmark counts a resize as lost or stuck by this comparison."""
    before = _cluster('UPDATE_FAILED', 'a reason')
    now = _cluster('UPDATE_FAILED', 'a reason')
    if field:
        setattr(now, field, value)
    assert clusterwatch.changed_since(before, now) is changed
