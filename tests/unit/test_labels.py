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

"""The label table: one entry per label, parsers that say what they allow."""

from __future__ import annotations

import pathlib

import pytest

from magnum_celtic import labels
from magnum_celtic.labels import BY_NAME, FROM_CLUSTER, LABELS, LabelError


def test_label_names_are_unique_and_indexed():
    assert len({label.name for label in LABELS}) == len(LABELS)
    assert list(BY_NAME) == [label.name for label in LABELS]


def test_the_issue_s_labels_are_all_in_the_table():
    # network_driver, http(s)_proxy, no_proxy, dns_nameserver and the master LB flag
    # are cluster template fields: spec.py validates those.
    assert {'kube_tag', 'pod_network_cidr', 'service_network_cidr', 'proxy_count',
            'storage_count', 'storage_volume_size', 'ingress_controller',
            'container_infra_prefix', 'master_lb_floating_ip_enabled',
            'boot_volume_size', 'boot_volume_type', 'availability_zone',
            'server_group_policy'} <= set(BY_NAME)


@pytest.mark.parametrize('label', LABELS, ids=lambda label: label.name)
def test_every_label_is_documented_with_its_default_and_allowed_values(label):
    assert label.doc and not label.doc.endswith('.')
    assert label.default_doc
    assert label.allowed


@pytest.mark.parametrize('label', [lb for lb in LABELS if lb.default is not FROM_CLUSTER],
                         ids=lambda label: label.name)
def test_every_built_in_default_is_a_valid_value_of_its_label(label):
    text = ','.join(label.default) if isinstance(label.default, tuple) else (
        str(label.default).lower() if isinstance(label.default, bool) else
        '' if label.default is None else str(label.default))
    assert label.value(text) == label.default


def test_labels_defaulting_from_the_cluster_say_where_from():
    assert BY_NAME['server_group_policy'].default_doc == '[cluster] nodes_affinity_policy'
    assert BY_NAME['proxy_flavor'].default_doc == 'the worker flavor'


def test_default_doc_shows_values_as_an_operator_writes_them():
    assert BY_NAME['container_infra_prefix'].default_doc == '(empty)'
    assert BY_NAME['ssh_allowed_cidrs'].default_doc == '0.0.0.0/0'
    assert BY_NAME['proxy_count'].default_doc == '2'


@pytest.mark.parametrize('text,value', [('true', True), ('Yes', True), ('1', True),
                                        ('on', True), ('FALSE', False), ('no', False),
                                        ('0', False), (' off ', False)])
def test_booleans_accept_the_usual_spellings(text, value):
    assert BY_NAME['master_lb_floating_ip_enabled'].value(text) is value


def test_integers_are_range_checked_and_trimmed():
    proxy_count = BY_NAME['proxy_count']
    assert proxy_count.value(' 16 ') == 16
    assert proxy_count.value('0') == 0
    for bad in ('-1', '17', '2.0', '0x2', ''):
        with pytest.raises(LabelError, match='from 0 to 16'):
            proxy_count.value(bad)


def test_cidr_lists_are_normalised():
    assert BY_NAME['proxy_allowed_cidrs'].value(' 192.0.2.0/24 ,198.51.100.7/32,') == (
        '192.0.2.0/24', '198.51.100.7/32')


@pytest.mark.parametrize('tag', ['v1.34', 'v1.36', 'v1.36.3', 'v1.37.0'])
def test_supported_kube_tags(tag):
    assert BY_NAME['kube_tag'].value(tag) == tag


@pytest.mark.parametrize('tag', ['v1.33', 'v1.38.1', 'v2.0', 'v1.36-rc1', 'latest'])
def test_unsupported_kube_tags(tag):
    with pytest.raises(LabelError, match='label kube_tag must be a supported'):
        BY_NAME['kube_tag'].value(tag)


@pytest.mark.parametrize('prefix', ['', 'registry.example.com/',
                                    'registry.example.com:5000/k8s/mirror/',
                                    'localhost:5000/'])
def test_registry_prefixes_that_work(prefix):
    assert BY_NAME['container_infra_prefix'].value(prefix) == prefix


@pytest.mark.parametrize('prefix', ['Registry.example.com/', 'registry/k8s',
                                    'https://registry.example.com/'])
def test_registry_prefixes_that_do_not(prefix):
    with pytest.raises(LabelError, match='container_infra_prefix'):
        BY_NAME['container_infra_prefix'].value(prefix)


def test_error_names_the_source_of_the_value():
    with pytest.raises(LabelError) as error:
        BY_NAME['storage_count'].value('x', '[celtic_cluster_labels]')
    assert str(error.value) == ('[celtic_cluster_labels] storage_count must be an '
                                'integer from 0 to 24, got "x"')


def test_foreign_labels_are_not_celtic_labels():
    assert not labels.FOREIGN_LABELS & set(BY_NAME)


def test_reference_table_lists_every_label_with_default_and_allowed_values():
    table = labels.reference_table().splitlines()
    assert table[0] == '| label | default | allowed | meaning |'
    rows = table[2:]
    assert len(rows) == len(LABELS)
    for label, row in zip(LABELS, rows):
        assert row == '| `%s` | %s | %s | %s |' % (
            label.name, label.default_doc, label.allowed, label.doc)


def test_readme_label_reference_is_the_label_table():
    readme = (pathlib.Path(__file__).resolve().parents[2] / 'README.md').read_text()
    between = readme.split('<!-- labels:begin -->\n', 1)[1].split('\n<!-- labels:end -->', 1)[0]
    assert between == labels.reference_table(), (
        'README.md label reference differs from magnum_celtic/labels.py: paste '
        'labels.reference_table() between the labels:begin/end markers')


# ---- add-on releases pinned per Kubernetes minor --------------------------------------

def test_every_supported_minor_has_one_row_of_add_on_releases_with_the_same_columns():
    table = labels.ADDON_VERSIONS_BY_MINOR
    assert sorted(table) == sorted(labels.SUPPORTED_KUBE_MINORS)
    columns = {tuple(sorted(row)) for row in table.values()}
    assert len(columns) == 1
    for row in table.values():
        for name, tag in row.items():
            # cluster-autoscaler may have no release for a minor yet (an empty cell)
            if not (name == 'cluster_autoscaler_tag' and tag == ''):
                assert labels._release_tag(tag) == tag, (name, tag)


def test_cloud_provider_openstack_releases_are_never_newer_than_the_minor():
    # its release line v1.<minor> is built for Kubernetes v1.<minor>; a cluster may run
    # it one minor newer (skew policy), never older
    for minor, row in labels.ADDON_VERSIONS_BY_MINOR.items():
        for name in ('cloud_provider_tag', 'cinder_csi_plugin_tag'):
            release_minor = int(row[name].split('.')[1])
            assert minor - 1 <= release_minor <= minor, (minor, name, row[name])


def test_labels_pinned_per_minor_default_from_the_table():
    for name in ('cloud_provider_tag', 'cinder_csi_plugin_tag'):
        label = BY_NAME[name]
        assert label.default is FROM_CLUSTER and label.node
        assert label.default_doc == labels.PER_KUBE_MINOR_DOC
        assert all(name in row for row in labels.ADDON_VERSIONS_BY_MINOR.values())


def test_readme_add_on_versions_match_the_table():
    readme = (pathlib.Path(__file__).resolve().parents[2] / 'README.md').read_text()
    begin, end = '<!-- addon-versions:begin -->\n', '\n<!-- addon-versions:end -->'
    assert begin in readme and end in readme
    between = readme.split(begin, 1)[1].split(end, 1)[0]
    assert between == labels.addon_versions_table(), (
        'README.md add-on versions differ from magnum_celtic/labels.py: paste '
        'labels.addon_versions_table() between the addon-versions:begin/end markers')
