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

"""The add-on versions that follow the Kubernetes minor: one table, one row per minor.

Pure data, no I/O. Components released in step with Kubernetes (cloud-provider-openstack
cuts one minor per Kubernetes minor and supports the matching one) are pinned here per
supported minor; a label of the same name (``<component>_tag``) overrides the pin for
one cluster. Add-ons that are not tied to a Kubernetes minor (flannel, Traefik,
Headlamp...) keep a single default in :mod:`magnum_celtic.labels`.

When a component has no release for a minor yet, the row names the newest release
that exists and says so in :data:`NOTES`; ``tests/unit/test_versions.py`` checks that
every supported minor has a full row.
"""

from __future__ import annotations

#: every component pinned per minor, in table order; its label is ``<name>_tag``
COMPONENTS = ('k8s_keystone_auth',)

#: Kubernetes minor -> component -> release tag
BY_KUBE_MINOR: dict[int, dict[str, str]] = {
    34: {'k8s_keystone_auth': 'v1.34.1'},
    35: {'k8s_keystone_auth': 'v1.35.0'},
    36: {'k8s_keystone_auth': 'v1.36.0'},
    37: {'k8s_keystone_auth': 'v1.36.0'},
}

#: why a row does not carry its own minor's release
NOTES = {
    (37, 'k8s_keystone_auth'): 'cloud-provider-openstack has no v1.37 release yet; '
                               'v1.36.0 serves the webhook API 1.37 calls',
}


def pinned(component: str, kube_minor: int) -> str:
    """The release of ``component`` pinned for Kubernetes 1.``kube_minor``."""
    try:
        return BY_KUBE_MINOR[kube_minor][component]
    except KeyError:
        raise KeyError('no %s release is pinned for Kubernetes 1.%s (magnum_celtic/'
                       'versions.py)' % (component, kube_minor))
