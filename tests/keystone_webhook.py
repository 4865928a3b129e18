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

"""A port of k8s-keystone-auth's decisions, for the tests: token -> user, request -> allow.

Ported line by line from kubernetes/cloud-provider-openstack at tag v1.36.0 (commit
bae07f4939caf612e71c43a3a65eaa42cc2bfbae), the release celtic pins for Kubernetes 1.36
(magnum_celtic/labels.py); these files are the same, byte for byte, at v1.34.1 and
v1.35.0, the other releases pinned:

- ``pkg/identity/keystone/authenticator.go``: ``Keystoner.GetTokenInfo`` (GET
  /v3/auth/tokens with the user's own token as both X-Auth-Token and X-Subject-Token),
  ``Keystoner.GetGroups`` (GET /v3/users/<id>/groups, same token) and
  ``Authenticator.AuthenticateToken`` (groups = Keystone group names + the token's
  project id; extras: roles, project id and name, user domain id and name);
- ``pkg/identity/keystone/authorizer.go``: ``getAllowed``,
  ``resourcePermissionAllowed``, ``nonResourcePermissionAllowed``,
  ``resourceMatches``, ``nonResourceMatches``, ``match`` and ``Authorizer.Authorize``;
- ``pkg/identity/keystone/keystone.go``: ``Auth.authorizeToken`` (the SubjectAccess
  Review's user, ``group`` and ``extra``; no uid; an empty policy denies) and
  ``syncRoles`` (a no-op without a sync configuration, which celtic does not set).

The webhook answers ``allowed: true`` or ``allowed: false`` and never ``denied``, so
for the apiserver (authorization-mode Node,Webhook,RBAC) false means "no opinion":
RBAC decides next. :func:`decision` says that in words.

What is not ported: the HTTP server, the ConfigMap informer, data synchronisation.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Mapping

import requests

ROLES = 'alpha.kubernetes.io/identity/roles'
PROJECT_ID = 'alpha.kubernetes.io/identity/project/id'
PROJECT_NAME = 'alpha.kubernetes.io/identity/project/name'
DOMAIN_ID = 'alpha.kubernetes.io/identity/user/domain/id'
DOMAIN_NAME = 'alpha.kubernetes.io/identity/user/domain/name'
MATCH_TYPES = ('group', 'project', 'role', 'user')


@dataclasses.dataclass
class User:
    """k8s.io/apiserver's user.DefaultInfo."""
    name: str
    uid: str = ''
    groups: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, list[str]] | None = None


@dataclasses.dataclass
class Attributes:
    """k8s.io/apiserver's authorizer.AttributesRecord (what a SubjectAccessReview says)."""
    user: User
    verb: str
    namespace: str = ''
    api_group: str = ''
    resource: str = ''
    subresource: str = ''
    name: str = ''
    path: str = ''
    resource_request: bool = True


class Unauthenticated(Exception):
    """The webhook's TokenReview answer would be authenticated: false."""


# ---- authentication (authenticator.go) --------------------------------------------------

def authenticate(auth_url: str, token: str, verify: Any = True) -> User:
    """AuthenticateToken: the user Keystone says ``token`` belongs to."""
    base = auth_url.rstrip('/')
    headers = {'X-Auth-Token': token, 'X-Subject-Token': token}
    answer = requests.get(base + '/auth/tokens', headers=headers, timeout=30, verify=verify)
    if answer.status_code != 200:
        raise Unauthenticated('failed to authenticate: Keystone answered %d'
                              % answer.status_code)
    body = answer.json()['token']
    project = body.get('project')
    if project is None:
        raise Unauthenticated('failed to extract project information from Keystone '
                              'response')
    user = body['user']
    roles = [role['name'] for role in body.get('roles') or []]
    groups = []
    url = '%s/users/%s/groups' % (base, user['id'])
    while url:  # users.ListGroups(...).AllPages
        page = requests.get(url, headers={'X-Auth-Token': token}, timeout=30,
                            verify=verify)
        if page.status_code != 200:
            raise Unauthenticated('failed to get user groups from Keystone: %d'
                                  % page.status_code)
        doc = page.json()
        groups.extend(group['name'] for group in doc.get('groups') or [])
        url = (doc.get('links') or {}).get('next')
    return User(name=user['name'], uid=user['id'], groups=groups + [project['id']],
                extra={ROLES: roles, PROJECT_ID: [project['id']],
                       PROJECT_NAME: [project['name']],
                       DOMAIN_ID: [user['domain']['id']],
                       DOMAIN_NAME: [user['domain']['name']]})


def as_the_apiserver_sends_it(user: User) -> User:
    """The user of the SubjectAccessReview the apiserver sends after authenticating
    ``user``: its groups plus system:authenticated; the webhook reads no uid."""
    return User(name=user.name, uid='', groups=list(user.groups) + ['system:authenticated'],
                extra={k: list(v) for k, v in (user.extra or {}).items()})


# ---- authorization (authorizer.go) ------------------------------------------------------

class _Skip(Exception):
    """getAllowed's error: the permission definition does not apply."""


def get_allowed(definition: str, value: str) -> set[str]:
    """getAllowed."""
    allowed: set[str] = set()
    if definition == value or definition == '*' or value == '':
        allowed.add(value)
    elif definition.find('!') == 0 and definition.find('[') != 1:
        if definition[1:] == value or definition[1:] == '*':
            raise _Skip()
        allowed.add(value)
    elif definition.find('[') == 0 and definition.find(']') == len(definition) - 1:
        try:
            items = json.loads(definition.replace("'", '"'))
        except ValueError:
            raise _Skip()
        for item in items:
            allowed.add(value if item == '*' else item)
    elif (definition.find('!') == 0 and definition.find('[') == 1 and
          definition.find(']') == len(definition) - 1):
        try:
            items = json.loads(definition[1:].replace("'", '"'))
        except ValueError:
            raise _Skip()
        if any(item == value or item == '*' for item in items):
            raise _Skip()
        allowed.add(value)
    return allowed


def resource_permission_allowed(spec: Mapping[str, list[str]], attrs: Attributes) -> bool:
    """resourcePermissionAllowed: version 2's "namespace/resource": [verbs]."""
    ns, res, verb = attrs.namespace, attrs.resource, attrs.verb
    for key, value in spec.items():
        verbs = {v.lower() for v in value}
        if '*' in verbs:
            verbs.add(verb)
        parts = key.split('/')
        if len(parts) != 2:
            continue
        ns_def, res_def = parts[0].strip().lower(), parts[1].strip().lower()
        if ns_def != '*' and ns == '':
            continue
        try:
            namespaces = get_allowed(ns_def, ns)
            resources = get_allowed(res_def, res)
        except _Skip:
            continue
        if ns in namespaces and res in resources and verb in verbs:
            return True
    return False


def non_resource_permission_allowed(spec: Mapping[str, list[str]],
                                    attrs: Attributes) -> bool:
    """nonResourcePermissionAllowed: exact paths only."""
    for key, value in spec.items():
        verbs = set(value)
        if '*' in verbs:
            verbs.add(attrs.verb)
        if key == attrs.path and attrs.verb in verbs:
            return True
    return False


def _has(value: str, values: Iterable[str]) -> bool:
    return value in list(values)


def resource_matches(entry: Mapping[str, Any], attrs: Attributes) -> bool:
    """resourceMatches: version 1's resource (a missing version or namespace is a nil
    pointer the webhook dereferences: KeyError here)."""
    spec = entry['resource']
    if spec['version'] != '*' and spec['version'] != attrs.api_group:
        return False
    if spec['namespace'] != '*' and spec['namespace'] != attrs.namespace:
        return False
    resources = spec.get('resources') or []
    if attrs.subresource:
        if not (_has('*', resources) or _has(attrs.resource + '/*', resources) or
                _has(attrs.resource + '/' + attrs.subresource, resources)):
            return False
    elif not (_has('*', resources) or _has(attrs.resource, resources)):
        return False
    verbs = spec.get('verbs') or []
    if not (_has('*', verbs) or _has(attrs.verb, verbs)):
        return False
    return match(entry.get('match') or [], attrs)


def non_resource_matches(entry: Mapping[str, Any], attrs: Attributes) -> bool:
    """nonResourceMatches: a path, "*" or a trailing "*" prefix."""
    spec = entry['nonresource']
    verbs = spec.get('verbs') or []
    if _has('', verbs):
        return False
    path = spec.get('path')
    if path is None:
        return False
    if not (_has('*', verbs) or _has(attrs.verb, verbs)):
        return False
    if (path != '*' and path != attrs.path and
            (not path.endswith('*') or not attrs.path.startswith(path.rstrip('*')))):
        return False
    return match(entry.get('match') or [], attrs)


def match(rules: Iterable[Mapping[str, Any]], attrs: Attributes) -> bool:
    """match: every rule of version 1's "match" list must hold."""
    user = attrs.user
    extra = user.extra or {}
    for rule in rules:
        kind, values = rule.get('type'), rule.get('values') or []
        if kind not in MATCH_TYPES:
            return False
        if _has('*', values):
            continue
        if kind == 'group':
            if not any(_has(group, values) for group in user.groups):
                return False
        elif kind == 'user':
            if not _has(user.name, values) and not _has(user.uid, values):
                return False
        elif kind == 'project':
            if any(_has(item, values) for item in extra.get(PROJECT_ID, [])):
                continue
            if any(_has(item, values) for item in extra.get(PROJECT_NAME, [])):
                continue
            return False
        elif kind == 'role':
            if any(_has(item, values) for item in extra.get(ROLES, [])):
                continue
            return False
    return True


def authorize(policy: list[Mapping[str, Any]], attrs: Attributes) -> bool:
    """authorizeToken + Authorize: the webhook's ``allowed``."""
    if not policy:
        return False  # no policy: deny by default
    user = attrs.user
    if user.extra is None:
        return False  # "No auth info found."
    user_roles = set(user.extra.get(ROLES, []))
    user_projects = set(user.extra.get(PROJECT_NAME, [])) | set(user.extra.get(PROJECT_ID, []))
    for entry in policy:
        users = entry.get('users')
        if users is not None:
            policy_roles = set(users.get('roles') or [])
            policy_projects = set(users.get('projects') or [])
            if not user_roles >= policy_roles or not policy_projects & user_projects:
                continue
        if attrs.resource_request:
            if entry.get('resource_permissions') is not None:
                if resource_permission_allowed(entry['resource_permissions'], attrs):
                    return True
            elif entry.get('resource') is not None:
                if resource_matches(entry, attrs):
                    return True
        else:
            if entry.get('nonresource_permissions') is not None:
                if non_resource_permission_allowed(entry['nonresource_permissions'], attrs):
                    return True
            elif entry.get('nonresource') is not None:
                if non_resource_matches(entry, attrs):
                    return True
    return False


def decision(policy: list[Mapping[str, Any]], attrs: Attributes) -> str:
    """What the apiserver makes of the webhook's answer: "allow", or "no opinion"
    (RBAC decides next)."""
    return 'allow' if authorize(policy, attrs) else 'no opinion'
