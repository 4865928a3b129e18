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

"""Keystone login (label ``keystone_auth_enabled``): the authorization policy of the
k8s-keystone-auth webhook on the masters. Pure: text in, policy out; the driver
(``adapters.py``) reads the operator's file.

The webhook (cloud-provider-openstack's k8s-keystone-auth) authenticates an OpenStack
token (user, Keystone groups, the token's project id as a group, the roles as user
extras) and then allows a request when one entry of its policy matches; when none
does it has no opinion and Kubernetes RBAC decides (``--authorization-mode=Node,
Webhook,RBAC``). The policy lives in the ConfigMap ``kube-system/k8s-auth-policy``,
written once at cluster creation: a cluster admin may edit it, the webhook reloads it.

Why the tiers are policy entries and not RBAC groups: the webhook's only way to add
groups (its sync configuration's ``role-mappings``) looks at the role alone, in any
project, so a member of *another* project would get the group too. A policy entry
checks the project and the role together.

The default (:data:`DEFAULT_POLICY`), scoped to the cluster's project:

========== =========================================================================
role       may
========== =========================================================================
reader     get, list, watch what Kubernetes' ``view`` role shows (no Secrets, no
           exec, attach, port-forward or proxy), plus Nodes, PersistentVolumes and
           StorageClasses, in every namespace; port-forward to the dashboard (its
           namespace only)
member     everything above, and any verb on any namespaced resource except Roles,
           RoleBindings, ResourceQuotas and LimitRanges, in every namespace but the
           cluster's own (:data:`SYSTEM_NAMESPACES`): like ``edit``
admin      anything, cluster-wide (like ``cluster-admin``)
========== =========================================================================

Keystone's default roles imply each other (admin > member > reader) and a token lists
the implied roles too, so a member also matches the reader entry. An operator replaces
the default for every new cluster with ``[celtic] keystone_auth_default_policy`` (a
JSON file in the same format; ``$PROJECT_ID`` becomes the cluster's project id).
"""

from __future__ import annotations

import json
from typing import Any

#: the placeholder an operator's policy file uses for the cluster's project (Magnum's
#: ``[kubernetes] keystone_auth_default_policy`` used the same)
PROJECT_PLACEHOLDER = '$PROJECT_ID'
#: Headlamp's namespace (label dashboard_enabled)
DASHBOARD_NAMESPACE = 'celtic-dashboard'
#: namespaces only admins may change (Kubernetes' own and celtic's add-ons)
SYSTEM_NAMESPACES = ('kube-system', 'kube-public', 'kube-node-lease', 'celtic-ingress',
                     'celtic-storage', DASHBOARD_NAMESPACE)
#: namespaced resources a member may not change (RBAC and quotas: the admin's)
ADMIN_ONLY_RESOURCES = ('roles', 'rolebindings', 'resourcequotas', 'limitranges')
#: what a reader may read: Kubernetes' view role (its resources and read-only
#: subresources, no secrets) plus the cluster's nodes and storage
READER_RESOURCES = (
    'pods', 'pods/log', 'pods/status', 'services', 'services/status', 'endpoints',
    'endpointslices', 'configmaps', 'persistentvolumeclaims',
    'persistentvolumeclaims/status', 'replicationcontrollers',
    'replicationcontrollers/scale', 'replicationcontrollers/status', 'serviceaccounts',
    'events', 'limitranges', 'resourcequotas', 'resourcequotas/status', 'namespaces',
    'namespaces/status', 'bindings', 'deployments', 'deployments/scale',
    'deployments/status', 'replicasets', 'replicasets/scale', 'replicasets/status',
    'statefulsets', 'statefulsets/scale', 'statefulsets/status', 'daemonsets',
    'daemonsets/status', 'controllerrevisions', 'horizontalpodautoscalers',
    'horizontalpodautoscalers/status', 'jobs', 'jobs/status', 'cronjobs',
    'cronjobs/status', 'ingresses', 'ingresses/status', 'ingressclasses',
    'networkpolicies', 'poddisruptionbudgets', 'poddisruptionbudgets/status',
    'nodes', 'persistentvolumes', 'storageclasses')


def _list(items: tuple[str, ...]) -> str:
    """A webhook list pattern: ['a', 'b'] (single quotes, as its parser expects)."""
    return '[%s]' % ', '.join("'%s'" % item for item in items)


#: the default policy (k8s-keystone-auth's format; both its versions are used: the
#: reader entry in version 1 form, whose resource match sees subresources, so a reader
#: gets pods/log but not pods/exec; the others in version 2 form, which can exclude
#: namespaces)
DEFAULT_POLICY: list[dict[str, Any]] = [
    {'users': {'projects': [PROJECT_PLACEHOLDER], 'roles': ['reader']},
     'resource': {'verbs': ['get', 'list', 'watch'], 'resources': list(READER_RESOURCES),
                  'version': '*', 'namespace': '*'}},
    # the way to the dashboard (kubectl port-forward into its namespace, nothing else)
    {'users': {'projects': [PROJECT_PLACEHOLDER], 'roles': ['reader']},
     'resource': {'verbs': ['get', 'create'], 'resources': ['pods/portforward'],
                  'version': '*', 'namespace': DASHBOARD_NAMESPACE}},
    {'users': {'projects': [PROJECT_PLACEHOLDER], 'roles': ['member']},
     'resource_permissions': {'!%s/!%s' % (_list(SYSTEM_NAMESPACES),
                                           _list(ADMIN_ONLY_RESOURCES)): ['*']}},
    {'users': {'projects': [PROJECT_PLACEHOLDER], 'roles': ['admin']},
     'resource_permissions': {'*/*': ['*']},
     'nonresource': {'verbs': ['*'], 'path': '*'}},
]


class PolicyError(ValueError):
    """A policy the webhook could not use; the message says what is wrong."""


def policy(project_id: str, text: str | None = None) -> list[dict[str, Any]]:
    """The policy of a cluster of project ``project_id``: ``text`` (an operator's JSON
    file) or the default, with every ``$PROJECT_ID`` replaced; raises PolicyError when
    the text is not a policy the webhook can load."""
    if text is None:
        text = json.dumps(DEFAULT_POLICY)
    try:
        entries = json.loads(text.replace(PROJECT_PLACEHOLDER, project_id))
    except ValueError as error:
        raise PolicyError('is not JSON (%s)' % error)
    if not isinstance(entries, list) or not entries:
        raise PolicyError('must be a non-empty JSON list of policy entries')
    for index, entry in enumerate(entries):
        problem = _entry_problem(entry)
        if problem:
            raise PolicyError('entry %d %s' % (index, problem))
    return entries


def _entry_problem(entry: Any) -> str | None:
    """What would make the webhook skip, misread or crash on one entry."""
    if not isinstance(entry, dict):
        return 'is not an object'
    kinds = {'resource', 'nonresource', 'resource_permissions',
             'nonresource_permissions'} & set(entry)
    if not kinds:
        return ('grants nothing: it needs resource, nonresource, resource_permissions '
                'or nonresource_permissions')
    users = entry.get('users')
    if users is not None:
        if not isinstance(users, dict) or not users.get('projects'):
            # the webhook skips an entry whose users name no project
            return 'has users without projects: it would never match'
        if not all(isinstance(v, list) for v in users.values()):
            return 'has users whose values are not lists'
    # a version 1 resource without version or namespace crashes the webhook's match
    resource = entry.get('resource')
    if resource is not None and not (isinstance(resource, dict) and
                                     {'verbs', 'resources', 'version',
                                      'namespace'} <= set(resource)):
        return 'has a resource without verbs, resources, version and namespace'
    nonresource = entry.get('nonresource')
    if nonresource is not None and not (isinstance(nonresource, dict) and
                                        {'verbs', 'path'} <= set(nonresource)):
        return 'has a nonresource without verbs and path'
    if 'users' not in entry and not entry.get('match'):
        return 'has neither users nor match: it would allow every user'
    return None
