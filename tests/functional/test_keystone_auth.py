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

"""Keystone login against the lab's real Keystone: real tokens of a project member, a
project reader and a user of another project, validated by Keystone exactly as
k8s-keystone-auth validates them, mapped to Kubernetes users and groups, and decided
by celtic's default policy for the demo project.

The webhook's logic is tests/keystone_webhook.py, a port of cloud-provider-openstack
v1.36.0 (commit bae07f4939caf612e71c43a3a65eaa42cc2bfbae) checked case by case against
upstream's own tests in tests/unit/test_keystone_webhook_port.py. Cost: the session's
``lab`` (Keystone and Heat, shared with the other lab tests) and a dozen Keystone calls.
"""

from __future__ import annotations

import secrets

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from magnum_celtic import keystone_auth
from tests import keystone_webhook as hook

A = hook.Attributes
ALLOW, NO = 'allow', 'no opinion'


@pytest.fixture(scope='module')
def outsider(lab):
    """A member of another project, in a Keystone group: (session, project id)."""
    admin = lab.session('admin')
    base = lab.keystone_url
    suffix = secrets.token_hex(4)
    password = secrets.token_hex(16)
    created = []

    def post(path, body):
        answer = admin.post(base + path, json=body, raise_exc=True).json()
        return next(iter(answer.values()))['id']

    try:
        project = post('/projects', {'project': {'name': 'other-' + suffix,
                                                 'domain_id': 'default'}})
        created.append('/projects/' + project)
        user = post('/users', {'user': {'name': 'outsider-' + suffix, 'password': password,
                                        'domain_id': 'default'}})
        created.append('/users/' + user)
        group = post('/groups', {'group': {'name': 'k8s-team-' + suffix,
                                           'domain_id': 'default'}})
        created.append('/groups/' + group)
        roles = admin.get(base + '/roles?name=member', raise_exc=True).json()['roles']
        grant = '%s/projects/%s/users/%s/roles/%s' % (base, project, user, roles[0]['id'])
        admin.put(grant, raise_exc=True)
        admin.put('%s/groups/%s/users/%s' % (base, group, user), raise_exc=True)
        auth = v3.Password(auth_url=base, username='outsider-' + suffix,
                           password=password, user_domain_id='default',
                           project_id=project)
        yield ks_session.Session(auth=auth), project, 'k8s-team-' + suffix
    finally:
        for path in reversed(created):
            admin.delete(base + path, raise_exc=False)


@pytest.fixture(scope='module')
def users(lab, outsider):
    """Each lab user as the webhook authenticates its token, and the demo project."""
    session, _, _ = outsider
    found = {name: hook.authenticate(lab.keystone_url, lab.session(name).get_token())
             for name in ('demo', 'demo_reader')}
    found['outsider'] = hook.authenticate(lab.keystone_url, session.get_token())
    return found, lab.session('demo').get_project_id()


def test_tokens_become_kubernetes_users_with_the_project_as_a_group(users, outsider):
    found, project = users
    _, other_project, team = outsider
    member, reader, other = found['demo'], found['demo_reader'], found['outsider']
    assert (member.name, member.groups) == ('demo', [project])
    assert (reader.name, reader.groups) == ('demo_reader', [project])
    # the user's Keystone groups come first, then the token's project
    assert (other.groups) == [team, other_project]
    assert member.extra[hook.PROJECT_ID] == [project]
    assert member.extra[hook.PROJECT_NAME] == ['demo']
    # Keystone lists implied roles in a token: a member is a reader too
    assert {'member', 'reader'} <= set(member.extra[hook.ROLES])
    assert set(reader.extra[hook.ROLES]) == {'reader'}
    assert member.uid and member.uid != reader.uid


def test_an_invalid_token_is_not_authenticated(lab):
    with pytest.raises(hook.Unauthenticated):
        hook.authenticate(lab.keystone_url, 'gAAAAA' + secrets.token_hex(60))


CASES = [
    # who, request, what the apiserver makes of the webhook's answer
    ('demo', A(None, 'create', api_group='apps', namespace='default',
               resource='deployments'), ALLOW),
    ('demo', A(None, 'get', namespace='default', resource='secrets'), ALLOW),
    ('demo', A(None, 'list', resource='nodes'), ALLOW),
    ('demo', A(None, 'create', api_group='rbac.authorization.k8s.io',
               namespace='default', resource='rolebindings'), NO),
    ('demo', A(None, 'get', namespace='kube-system', resource='secrets'), NO),
    ('demo_reader', A(None, 'list', namespace='default', resource='pods'), ALLOW),
    ('demo_reader', A(None, 'get', namespace='default', resource='pods',
                      subresource='log'), ALLOW),
    ('demo_reader', A(None, 'create', api_group='apps', namespace='default',
                      resource='deployments'), NO),
    ('demo_reader', A(None, 'get', namespace='default', resource='secrets'), NO),
    ('demo_reader', A(None, 'create', namespace='default', resource='pods',
                      subresource='exec'), NO),
    ('outsider', A(None, 'list', namespace='default', resource='pods'), NO),
    ('outsider', A(None, 'create', api_group='apps', namespace='default',
                   resource='deployments'), NO),
    ('outsider', A(None, 'list', resource='nodes'), NO),
]


@pytest.mark.parametrize('who,attrs,expected', CASES)
def test_the_default_policy_decides_for_real_tokens(users, who, attrs, expected):
    found, project = users
    attrs.user = hook.as_the_apiserver_sends_it(found[who])
    assert hook.decision(keystone_auth.policy(project), attrs) == expected
