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

"""The per-Kubernetes-minor version table: a full row for every supported minor, a
label for every component, and a reason for every row that lags its minor."""

from __future__ import annotations

import re

import pytest

from magnum_celtic import labels
from magnum_celtic import versions


def test_every_supported_minor_has_a_full_row_and_nothing_else_is_pinned():
    assert sorted(versions.BY_KUBE_MINOR) == sorted(labels.SUPPORTED_KUBE_MINORS)
    for minor, row in versions.BY_KUBE_MINOR.items():
        assert tuple(row) == versions.COMPONENTS, minor


def test_every_pin_is_a_release_tag_with_a_label_to_override_it():
    for component in versions.COMPONENTS:
        label = labels.BY_NAME[component + '_tag']
        assert label.default is labels.FROM_CLUSTER
        assert 'versions.py' in label.default_doc
        for row in versions.BY_KUBE_MINOR.values():
            assert label.value(row[component]) == row[component]


def test_a_pin_of_another_minor_says_why():
    for minor, row in versions.BY_KUBE_MINOR.items():
        for component, tag in row.items():
            pinned_minor = int(re.match(r'v1\.(\d+)\.', tag).group(1))
            if pinned_minor != minor:
                assert (minor, component) in versions.NOTES
            # never a release newer than the cluster's Kubernetes
            assert pinned_minor <= minor


def test_an_unpinned_minor_names_the_component_and_the_table():
    with pytest.raises(KeyError, match='no k8s_keystone_auth release is pinned for '
                                       'Kubernetes 1.20'):
        versions.pinned('k8s_keystone_auth', 20)
