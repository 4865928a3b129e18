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

"""tests/keystone_webhook.py is a faithful port of k8s-keystone-auth's authorizer, and
what celtic's default policy decides for a member, a reader, an admin and a user of
another project.

The first two tables are upstream's own tests (cloud-provider-openstack v1.36.0,
pkg/identity/keystone/authorizer_test.go TestAuthorizer and TestAuthorizerVersion2,
with their policy files authorizer_test_policy.json and
authorizer_test_policy_version2.json), case by case: the port must decide as the Go
code does. The real tokens are in tests/functional/test_keystone_auth.py.
"""

from __future__ import annotations

import pytest

from magnum_celtic import keystone_auth
from tests import keystone_webhook as hook
from tests.keystone_webhook import Attributes as A
from tests.keystone_webhook import User

# ---- upstream TestAuthorizer (policy version 1) ---------------------------------------

UPSTREAM_V1_POLICY = [
    {'resource': {'verbs': ['get', 'list'],
                  'resources': ['user_resource1', 'user_resource2'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'user', 'values': ['user1']},
               {'type': 'role', 'values': ['role1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['group_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'group', 'values': ['group1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['group_role_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'group', 'values': ['group1']},
               {'type': 'role', 'values': ['role3']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['project_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'project', 'values': ['project1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['role_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'role', 'values': ['role1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['core_resource'],
                  'version': '',
                  'namespace': '*'},
     'match': [{'type': 'role', 'values': ['role1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/user'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/group'},
     'match': [{'type': 'group', 'values': ['group1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/project'},
     'match': [{'type': 'project', 'values': ['project1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/role'},
     'match': [{'type': 'role', 'values': ['role1']}]},
    {'resource': {'verbs': ['*'],
                  'resources': ['unknown_type_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'unknown_type', 'values': ['*']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['user_resource'],
                  'version': '*',
                  'namespace': '*'},
     'nonresource': {'verbs': ['get'], 'path': '/user'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'resource': {'verbs': [''],
                  'resources': ['user_resource'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'nonresource': {'verbs': [''], 'path': '/user'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'resource': {'verbs': ['get'], 'version': '*', 'namespace': '*'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'nonresource': {'verbs': ['get']},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['user_resource1/subresource1'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'resource': {'verbs': ['get'],
                  'resources': ['user_resource3/*'],
                  'version': '*',
                  'namespace': '*'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/api'},
     'match': [{'type': 'user', 'values': ['user1']}]},
    {'nonresource': {'verbs': ['get'], 'path': '/api/*'},
     'match': [{'type': 'user', 'values': ['user1']}]},
]

USER1 = User('user1', groups=['group1'],
             extra={hook.PROJECT_NAME: ['project1'], hook.ROLES: ['role1']})
USER2 = User('user2', groups=['group2'],
             extra={hook.PROJECT_NAME: ['project2'], hook.ROLES: ['role2']})

V1_CASES = [
    (A(USER1, 'get', resource='user_resource1'), True),
    (A(USER1, 'list', resource='user_resource2'), True),
    (A(USER1, 'patch', resource='user_resource1'), False),
    (A(USER2, 'get', resource='user_resource1'), False),
    (A(USER1, 'get', resource='group_resource'), True),
    (A(USER1, 'patch', resource='group_resource'), False),
    (A(USER2, 'get', resource='group_resource'), False),
    (A(USER1, 'get', resource='group_role_resource'), False),
    (A(USER1, 'get', resource='project_resource'), True),
    (A(USER1, 'patch', resource='project_resource'), False),
    (A(USER2, 'get', resource='project_resource'), False),
    (A(USER1, 'get', resource='role_resource'), True),
    (A(USER1, 'patch', resource='role_resource'), False),
    (A(USER2, 'get', resource='role_resource'), False),
    (A(USER1, 'get', resource='core_resource'), True),
    (A(USER1, 'get', resource='core_resource', api_group='NonCoreAPIGroup'), False),
    (A(USER1, 'get', path='/user', resource_request=False), True),
    (A(USER1, 'patch', path='/user', resource_request=False), False),
    (A(USER2, 'get', path='/user', resource_request=False), False),
    (A(USER1, 'get', path='/group', resource_request=False), True),
    (A(USER1, 'patch', path='/group', resource_request=False), False),
    (A(USER2, 'get', path='/group', resource_request=False), False),
    (A(USER1, 'get', path='/project', resource_request=False), True),
    (A(USER1, 'patch', path='/project', resource_request=False), False),
    (A(USER2, 'get', path='/project', resource_request=False), False),
    (A(USER1, 'get', path='/role', resource_request=False), True),
    (A(USER1, 'patch', path='/role', resource_request=False), False),
    (A(USER2, 'get', path='/role', resource_request=False), False),
    (A(USER1, 'get', resource='unknown_type_resource'), False),
    (A(USER1, 'get', resource='user_resource1', subresource='subresource1'), True),
    (A(USER1, 'get', resource='user_resource1', subresource='subresource2'), False),
    (A(USER1, 'get', resource='user_resource3', subresource='wildcard_resource'), True),
    (A(USER1, 'get', path='/api', resource_request=False), True),
    (A(USER1, 'get', path='/imaginary_api/path/none', resource_request=False), False),
    (A(USER1, 'get', path='/api/represents/wildcard', resource_request=False), True),
]


@pytest.mark.parametrize('attrs,allowed', V1_CASES)
def test_the_port_decides_upstream_s_version_1_cases_as_upstream(attrs, allowed):
    assert hook.authorize(UPSTREAM_V1_POLICY, attrs) is allowed


# ---- upstream TestAuthorizerVersion2 ----------------------------------------------------

_KINDS_WITH_RBAC = ("['namespaces', 'clusterrolebindings', 'clusterroles', "
                    "'podsecuritypolicies', 'rolebindings', 'roles', "
                    "'podSecurityPolicies']")
_CLUSTER_KINDS = ("['namespaces', 'clusterrolebindings', 'clusterroles', "
                  "'podsecuritypolicies', 'podSecurityPolicies']")
UPSTREAM_V2_POLICY = [
    {'users': {'roles': ['developer'], 'projects': ['demo']},
     'resource_permissions': {
         "!kube-system/!" + _KINDS_WITH_RBAC: ['*'],
         "!kube-system/" + _KINDS_WITH_RBAC: ['get', 'list'],
         "*/" + _CLUSTER_KINDS: ['get', 'list']}},
    {'users': {'roles': ['viewer'],
               'projects': ['demo', 'cd08a539b7c845ddb92c5d08752101d1']},
     'resource_permissions': {"default/['*']": ['get', 'list']}},
    {'users': {'roles': ['clusteradmin'], 'projects': ['demo']},
     'resource_permissions': {'*/*': ['*']},
     'nonresource_permissions': {'/healthz': ['get', 'post']}},
    {'users': {'roles': ['testuser'], 'projects': ['demo']},
     'resource_permissions': {"*/['namespaces', 'clusterroles']": ['get', 'list'],
                              "default/['pods', 'deployments']": ['get', 'list']}},
]

DEVELOPER = User('developer', groups=['group1'],
                 extra={hook.PROJECT_NAME: ['demo'], hook.ROLES: ['developer']})
VIEWER = User('viewer', groups=['group2'],
              extra={hook.PROJECT_NAME: ['demo'],
                     hook.PROJECT_ID: ['ff9db8980cf24a74bc9dd796b6ce811f'],
                     hook.ROLES: ['viewer']})
ANOTHER_VIEWER = User('anotherviewer', groups=['group'],
                      extra={hook.PROJECT_NAME: ['alt_demo'],
                             hook.PROJECT_ID: ['cd08a539b7c845ddb92c5d08752101d1'],
                             hook.ROLES: ['viewer']})
CLUSTER_ADMIN = User('clusteradmin', groups=['group2'],
                     extra={hook.PROJECT_NAME: ['demo'], hook.ROLES: ['clusteradmin']})
TEST_USER1 = User('test1', groups=['group'])
TEST_USER2 = User('test2', groups=['group'],
                  extra={hook.PROJECT_NAME: ['demo'], hook.ROLES: ['testuser']})

V2_CASES = [
    (A(DEVELOPER, 'get', namespace='default', resource='pods'), True),
    (A(DEVELOPER, 'get', namespace='default', resource='clusterroles'), True),
    (A(DEVELOPER, 'get', resource='clusterroles'), True),
    (A(DEVELOPER, 'create', resource='clusterrolebindings'), False),
    (A(DEVELOPER, 'get', resource='podsecuritypolicies'), True),
    (A(VIEWER, 'get', namespace='default', resource='deployments'), True),
    (A(VIEWER, 'get', namespace='kube-system', resource='services'), False),
    (A(VIEWER, 'create', namespace='default', resource='pods'), False),
    (A(ANOTHER_VIEWER, 'get', namespace='default', resource='deployments'), True),
    (A(ANOTHER_VIEWER, 'get', namespace='kube-system', resource='services'), False),
    (A(ANOTHER_VIEWER, 'create', namespace='default', resource='pods'), False),
    (A(CLUSTER_ADMIN, 'create', resource='clusterroles'), True),
    (A(CLUSTER_ADMIN, 'get', namespace='kube-system', resource='secrets'), True),
    (A(DEVELOPER, 'get', path='/healthz', resource_request=False), False),
    (A(VIEWER, 'get', path='/healthz', resource_request=False), False),
    (A(CLUSTER_ADMIN, 'get', path='/healthz', resource_request=False), True),
    (A(TEST_USER1, 'get', resource='namespaces'), False),
    (A(TEST_USER1, 'get', namespace='default', resource='pods'), False),
    (A(TEST_USER2, 'get', resource='namespaces'), True),
    (A(TEST_USER2, 'get', resource='pods'), False),
    (A(TEST_USER2, 'get', namespace='default', resource='pods'), True),
]


@pytest.mark.parametrize('attrs,allowed', V2_CASES)
def test_the_port_decides_upstream_s_version_2_cases_as_upstream(attrs, allowed):
    assert hook.authorize(UPSTREAM_V2_POLICY, attrs) is allowed


def test_an_empty_policy_denies_everyone():
    assert hook.authorize([], A(CLUSTER_ADMIN, 'get', resource='pods')) is False


# ---- celtic's default policy ------------------------------------------------------------

PROJECT = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
OTHER = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'


def keystone_user(name, project, *roles):
    """A user as the webhook authenticates it, as the apiserver then sends it."""
    return hook.as_the_apiserver_sends_it(User(
        name, uid=name + '-id', groups=[project],
        extra={hook.ROLES: list(roles), hook.PROJECT_ID: [project],
               hook.PROJECT_NAME: [name + '-project'], hook.DOMAIN_ID: ['default'],
               hook.DOMAIN_NAME: ['Default']}))


# Keystone's default roles imply each other: a member's token lists reader too
READER = keystone_user('reader', PROJECT, 'reader')
MEMBER = keystone_user('member', PROJECT, 'member', 'reader')
ADMIN = keystone_user('admin', PROJECT, 'admin', 'member', 'reader')
OUTSIDER = keystone_user('outsider', OTHER, 'admin', 'member', 'reader')
SERVICE_ACCOUNT = User('system:serviceaccount:default:app',
                       groups=['system:serviceaccounts', 'system:authenticated'],
                       extra={'authentication.kubernetes.io/pod-name': ['app-1']})

ALLOW, NO = 'allow', 'no opinion'
DEFAULT_CASES = [
    # readers: view-like, everywhere, no secrets, no way into a container
    (READER, A(None, 'list', namespace='default', resource='pods'), ALLOW),
    (READER, A(None, 'get', namespace='kube-system', resource='pods', subresource='log'),
     ALLOW),
    (READER, A(None, 'watch', api_group='apps', namespace='default',
               resource='deployments'), ALLOW),
    (READER, A(None, 'list', resource='nodes'), ALLOW),
    (READER, A(None, 'list', resource='namespaces'), ALLOW),
    (READER, A(None, 'get', namespace='default', resource='secrets'), NO),
    (READER, A(None, 'create', namespace='default', resource='pods'), NO),
    (READER, A(None, 'get', namespace='default', resource='pods', subresource='exec'), NO),
    (READER, A(None, 'create', namespace='default', resource='pods', subresource='exec'),
     NO),
    (READER, A(None, 'get', namespace='default', resource='pods',
               subresource='portforward'), NO),
    (READER, A(None, 'get', namespace='default', resource='services',
               subresource='proxy'), NO),
    # ... but may reach the dashboard with kubectl port-forward
    (READER, A(None, 'create', namespace='celtic-dashboard', resource='pods',
               subresource='portforward'), ALLOW),
    # members: edit-like outside the cluster's own namespaces
    (MEMBER, A(None, 'create', api_group='apps', namespace='default',
               resource='deployments'), ALLOW),
    (MEMBER, A(None, 'delete', namespace='team-a', resource='pods'), ALLOW),
    (MEMBER, A(None, 'get', namespace='default', resource='secrets'), ALLOW),
    (MEMBER, A(None, 'create', namespace='default', resource='pods', subresource='exec'),
     ALLOW),
    (MEMBER, A(None, 'list', namespace='default', resource='pods'), ALLOW),
    (MEMBER, A(None, 'create', api_group='rbac.authorization.k8s.io', namespace='default',
               resource='rolebindings'), NO),
    (MEMBER, A(None, 'update', namespace='default', resource='resourcequotas'), NO),
    (MEMBER, A(None, 'get', namespace='kube-system', resource='secrets'), NO),
    (MEMBER, A(None, 'delete', api_group='apps', namespace='celtic-dashboard',
               resource='deployments'), NO),
    (MEMBER, A(None, 'create', resource='namespaces'), NO),
    (MEMBER, A(None, 'delete', resource='nodes'), NO),
    (MEMBER, A(None, 'get', path='/metrics', resource_request=False), NO),
    # admins: anything
    (ADMIN, A(None, 'create', api_group='rbac.authorization.k8s.io',
              resource='clusterrolebindings'), ALLOW),
    (ADMIN, A(None, 'get', namespace='kube-system', resource='secrets'), ALLOW),
    (ADMIN, A(None, 'get', path='/metrics', resource_request=False), ALLOW),
    # another project's users, whatever their roles there: nothing (RBAC: discovery)
    (OUTSIDER, A(None, 'list', namespace='default', resource='pods'), NO),
    (OUTSIDER, A(None, 'get', namespace='default', resource='secrets'), NO),
    (OUTSIDER, A(None, 'get', path='/metrics', resource_request=False), NO),
    # not a Keystone user at all: the webhook stays out of RBAC's way
    (SERVICE_ACCOUNT, A(None, 'list', namespace='default', resource='pods'), NO),
]


@pytest.mark.parametrize('user,attrs,expected', DEFAULT_CASES,
                         ids=lambda v: v.name if isinstance(v, User) else None)
def test_the_default_policy_decides_by_project_and_role(user, attrs, expected):
    attrs.user = user
    assert hook.decision(keystone_auth.policy(PROJECT), attrs) == expected
