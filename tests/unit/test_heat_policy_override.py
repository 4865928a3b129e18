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

"""etc/heat-policy-secrets.yaml: the Heat policy override doc/security.md offers.

Its effect is proven on the lab (tests/functional/test_secrets_exposure.py); here, that
every rule it sets is one Heat really has (a misspelt name would be ignored by Heat and
silently leave that call open) and that it only ever narrows access to admins."""

from __future__ import annotations

import os

import yaml

from heat import policies

POLICY_FILE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                           'heat-policy-secrets.yaml')
#: the read calls that return secret-bearing values (doc/security.md, "Finding")
SECRET_BEARING_CALLS = ('events:index', 'events:show', 'resource:show',
                        'software_configs:index', 'software_configs:show', 'stacks:export')


def _rules() -> dict:
    with open(POLICY_FILE) as f:
        return yaml.safe_load(f)


def test_every_overridden_rule_is_a_heat_policy():
    known = {rule.name for rule in policies.list_rules()}
    unknown = sorted(set(_rules()) - known)
    assert not unknown, 'not Heat policy names: %s' % unknown


def test_every_secret_bearing_call_is_admin_only():
    rules = _rules()
    assert {name: rules.get(name) for name in SECRET_BEARING_CALLS} == {
        name: 'role:admin' for name in SECRET_BEARING_CALLS}
    assert set(rules) == set(SECRET_BEARING_CALLS)
