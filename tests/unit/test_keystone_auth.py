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

"""Keystone login and the dashboard as labels: the policy a cluster gets, the settings
its masters read, every refusal naming the label or the option to change."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

from magnum_celtic import adapters
from magnum_celtic import keystone_auth
from magnum_celtic import labels
from magnum_celtic import sample
from magnum_celtic import spec
from magnum_celtic import labels as label_table
from magnum_celtic.labels import LabelError
from tests.unit import base

PROJECT = 'f3c8a3d7e1b94a4c9c6a0b1e2d3f4a5b'
ON = {'keystone_auth_enabled': 'true'}


def build(labels_=None, defaults=None, **kwargs):
    return sample.sample_spec(labels=labels_, defaults=defaults, **kwargs)


# ---- the policy -------------------------------------------------------------------------

def test_the_default_policy_is_scoped_to_the_cluster_s_project_everywhere():
    policy = keystone_auth.policy(PROJECT)
    assert PROJECT in json.dumps(policy)
    assert keystone_auth.PROJECT_PLACEHOLDER not in json.dumps(policy)
    assert all(entry['users']['projects'] == [PROJECT] for entry in policy)
    assert sorted({role for e in policy for role in e['users']['roles']}) == [
        'admin', 'member', 'reader']


def test_an_operator_policy_gets_the_project_id_and_nothing_else_changes():
    text = json.dumps([{'users': {'projects': ['$PROJECT_ID'], 'roles': ['k8s-dev']},
                        'resource_permissions': {'default/pods': ['get']}}])
    assert keystone_auth.policy(PROJECT, text) == [
        {'users': {'projects': [PROJECT], 'roles': ['k8s-dev']},
         'resource_permissions': {'default/pods': ['get']}}]


@pytest.mark.parametrize('text,problem', [
    ('{"users": []', 'is not JSON'),
    ('{}', 'must be a non-empty JSON list'),
    ('[]', 'must be a non-empty JSON list'),
    ('[{"users": {"projects": ["x"]}}]', 'entry 0 grants nothing'),
    ('[{"users": {"roles": ["member"]}, "resource_permissions": {"*/*": ["*"]}}]',
     'entry 0 has users without projects'),
    ('[{"resource_permissions": {"*/*": ["*"]}}]',
     'entry 0 has neither users nor match: it would allow every user'),
    ('[{"users": {"projects": ["x"]}, "resource": {"verbs": ["get"], '
     '"resources": ["pods"]}}]', 'entry 0 has a resource without verbs, resources, '
                                 'version and namespace'),
    ('[{"users": {"projects": ["x"]}, "nonresource": {"verbs": ["get"]}}]',
     'entry 0 has a nonresource without verbs and path'),
])
def test_a_policy_the_webhook_would_skip_misread_or_crash_on_is_refused(text, problem):
    with pytest.raises(keystone_auth.PolicyError, match=problem):
        keystone_auth.policy(PROJECT, text)


# ---- the labels -------------------------------------------------------------------------

def test_without_the_labels_the_nodes_get_no_keystone_settings():
    settings = build().node_settings()
    assert settings['keystone_auth_enabled'] is False
    assert settings['dashboard_enabled'] is False
    assert settings['dashboard_service_type'] == 'ClusterIP'
    assert not {'keystone_auth_url', 'keystone_auth_policy',
                'k8s_keystone_auth_tag'} & set(settings)


def test_keystone_login_sends_the_masters_the_url_project_policy_and_pinned_webhook():
    built = build(ON, defaults=spec.Defaults(keystone_auth_url='https://ks.example/v3'))
    settings = built.node_settings()
    assert settings['keystone_auth_url'] == 'https://ks.example/v3'
    assert settings['keystone_auth_project_id'] == sample.SAMPLE_PROJECT_ID
    assert settings['keystone_auth_policy'] == keystone_auth.policy(
        sample.SAMPLE_PROJECT_ID)
    assert settings['k8s_keystone_auth_tag'] == label_table.ADDON_VERSIONS_BY_MINOR[36][
        'k8s_keystone_auth_tag']
    json.dumps(settings)  # params.json


@pytest.mark.parametrize('kube_tag,tag', [('v1.34', 'v1.34.1'), ('v1.35.2', 'v1.35.0'),
                                          ('v1.36', 'v1.36.0'), ('v1.37', 'v1.36.0')])
def test_the_webhook_follows_the_kubernetes_minor(kube_tag, tag):
    settings = build(dict(ON, kube_tag=kube_tag)).node_settings()
    assert settings['k8s_keystone_auth_tag'] == tag


def test_a_webhook_release_label_overrides_the_pin():
    settings = build(dict(ON, k8s_keystone_auth_tag='v1.36.1')).node_settings()
    assert settings['k8s_keystone_auth_tag'] == 'v1.36.1'


@pytest.mark.parametrize('name,value,allowed', [
    ('keystone_auth_enabled', 'maybe', 'true or false'),
    ('dashboard_enabled', 'yes please', 'true or false'),
    ('dashboard_service_type', 'NodePort', 'one of ClusterIP, LoadBalancer'),
    ('dashboard_tag', 'latest', 'a release tag such as v1.2.3'),
    ('k8s_keystone_auth_tag', '1.36.0', 'a release tag such as v1.2.3'),
])
def test_a_bad_value_is_refused_naming_the_label(name, value, allowed):
    with pytest.raises(LabelError) as error:
        build({name: value})
    assert str(error.value) == 'label %s must be %s, got "%s"' % (name, allowed, value)


def test_keystone_login_needs_keystone_s_url_from_magnum_conf():
    with pytest.raises(spec.SpecError, match=r'label keystone_auth_enabled needs the '
                       r'Keystone URL .* \[celtic\] credential_auth_url'):
        build(ON, defaults=spec.Defaults())


def test_an_unreadable_or_bad_operator_policy_is_refused_naming_the_option():
    unreadable = spec.Defaults(keystone_auth_url='https://ks.example/v3',
                               keystone_auth_policy_error='/etc/x.json cannot be read: '
                                                          'No such file or directory')
    with pytest.raises(spec.SpecError, match=r'\[celtic\] keystone_auth_default_policy\) '
                       r'/etc/x.json cannot be read'):
        build(ON, defaults=unreadable)
    bad = spec.Defaults(keystone_auth_url='https://ks.example/v3',
                        keystone_auth_policy='[{"resource_permissions": {}}]')
    with pytest.raises(spec.SpecError, match='keystone_auth_default_policy.*entry 0'):
        build(ON, defaults=bad)
    # a cluster without Keystone login is not bothered by it
    assert build(defaults=unreadable).keystone is None


def test_a_published_dashboard_needs_keystone_login_and_proxies():
    lb = {'dashboard_enabled': 'true', 'dashboard_service_type': 'LoadBalancer'}
    with pytest.raises(spec.SpecError, match='label dashboard_service_type LoadBalancer '
                                             'needs keystone_auth_enabled=true'):
        build(lb)
    with pytest.raises(spec.SpecError, match=r'needs proxies \(proxy_count >= 1\)'):
        build(dict(lb, proxy_count='0', **ON))
    published = build(dict(lb, **ON)).node_settings()
    assert published['dashboard_service_type'] == 'LoadBalancer'


def test_a_service_type_without_the_dashboard_is_a_warning():
    built = build({'dashboard_service_type': 'LoadBalancer'})
    assert ('label dashboard_service_type LoadBalancer is ignored: dashboard_enabled '
            'is false') in built.warnings


def test_magnum_s_old_dashboard_label_is_known_and_not_a_typo():
    assert 'kube_dashboard_enabled' in labels.FOREIGN_LABELS
    assert build({'kube_dashboard_enabled': 'true'}).node_values['dashboard_enabled'] is False


# ---- the driver reads magnum.conf ------------------------------------------------------

class MagnumDefaultsTest(base.DriverTestCase):

    def test_the_url_is_the_one_the_masters_credential_uses(self):
        self.config(credential_auth_url='https://keystone.example.test/v3', group='celtic')
        self.assertEqual('https://keystone.example.test/v3',
                         adapters.magnum_defaults().keystone_auth_url)

    def test_the_operator_s_policy_file_is_read(self):
        handle, path = tempfile.mkstemp(suffix='.json')
        self.addCleanup(os.unlink, path)
        with os.fdopen(handle, 'w') as f:
            f.write('[{"users": {"projects": ["$PROJECT_ID"]}, "match": []}]')
        self.config(keystone_auth_default_policy=path, group='celtic')
        defaults = adapters.magnum_defaults()
        self.assertIn('$PROJECT_ID', defaults.keystone_auth_policy)
        self.assertEqual('', defaults.keystone_auth_policy_error)

    def test_a_missing_policy_file_is_reported_not_raised(self):
        self.config(keystone_auth_default_policy='/nonexistent/policy.json',
                    group='celtic')
        defaults = adapters.magnum_defaults()
        self.assertIsNone(defaults.keystone_auth_policy)
        self.assertIn('/nonexistent/policy.json cannot be read',
                      defaults.keystone_auth_policy_error)

    def test_a_cluster_s_policy_is_scoped_to_its_project(self):
        self.config(credential_auth_url='https://keystone.example.test/v3', group='celtic')
        cluster = self.stored_cluster(labels={'kube_tag': 'v1.36',
                                              'keystone_auth_enabled': 'true'})
        built = adapters.cluster_spec(self.user_context, cluster, self.template)
        self.assertTrue(cluster.project_id)
        self.assertEqual(cluster.project_id, built.keystone.project_id)
        self.assertIn(cluster.project_id,
                      json.dumps(built.node_settings()['keystone_auth_policy']))
