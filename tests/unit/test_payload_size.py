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

"""Every role's cloud-init payload fits Nova's user_data limit.

Nova refuses user_data larger than 65535 bytes once base64-encoded. The payload of each
role is built here the way Heat builds it: the role's CloudConfig ``cloud_config`` map
with its HOT functions resolved for a sample cluster (files, parameters), dumped with
Heat's own YAML dumper and prefixed with ``#cloud-config``. No payload carries a secret:
the nodes fetch theirs from celtic-vendordata (doc/security.md).
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import unittest

import yaml

from magnum_celtic import sample
from magnum_celtic import request as req
from magnum_celtic import templates

NOVA_USER_DATA_LIMIT = 65535


class _Resolver:
    """The few HOT functions the payload templates use, evaluated locally."""

    def __init__(self, files, params):
        self.files = files
        self.params = params

    def __call__(self, node):
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == 'get_file':
                return self.files[value]
            if key == 'get_param':
                return self.params[value]
            if key == 'get_attr':
                raise AssertionError('a payload reads a resource attribute: %r' % value)
            if key == 'list_concat':
                return [item for part in self(value) for item in part]
            if key == 'map_merge':
                merged = {}
                for part in self(value):
                    merged.update(part or {})
                return merged
            if key == 'str_replace':
                text = self(value['template'])
                for name, replacement in self(value['params']).items():
                    if not isinstance(replacement, str):
                        replacement = json.dumps(replacement, sort_keys=True)
                    text = text.replace(name, replacement)
                return text
        return {k: self(v) for k, v in node.items()}


def _unpack(packed):
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed)), mode='r:xz') as tar:
        return {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}


def _payload(cloud_config):
    from heat.common import template_format  # Heat's own dumper, as CloudConfig uses
    return '#cloud-config\n' + yaml.dump(cloud_config, Dumper=template_format.yaml_dumper)


class PayloadSizeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.templates = templates.TemplateSet(templates.default_dir())
        # every feature that adds to the payload: Keystone login also sends the policy
        cls.spec = sample.sample_spec(labels={'container_infra_prefix':
                                              'registry.example.com:5000/mirror/k8s/',
                                              'keystone_auth_enabled': 'true',
                                              'dashboard_enabled': 'true',
                                              'dashboard_service_type': 'LoadBalancer'})
        cls.pki = sample.sample_pki()
        cls.request = req.cluster_request(cls.spec, cls.pki, cls.templates, 60)
        cls.facts = {'cluster_name': 'x' * 64, 'api_vip': '10.0.0.100',
                     'master_addresses': ['10.0.0.%d' % i for i in range(7)],
                     'proxy_addresses': ['10.0.0.%d' % i for i in range(16)],
                     'storage_addresses': ['10.0.0.%d' % i for i in range(24)]}

    def _group_payload(self, role_template):
        role = yaml.safe_load(self.templates.read(role_template))
        group = yaml.safe_load(self.templates.read('node_group.yaml'))
        files = dict(self.templates.closure(role_template, []))
        params = dict(self.request.parameters)
        role_params = {p: params.get(p, '') for p in role['parameters']}
        role_params['params'] = dict(params['node_settings'], **self.facts)
        resolve_role = _Resolver(files, role_params)
        group_props = resolve_role(role['resources']['group']['properties'])
        resolve_group = _Resolver(files, group_props)
        return _payload(resolve_group(
            group['resources']['config']['properties']['cloud_config']))

    def _minion_payload(self):
        pool = yaml.safe_load(self.templates.read('minion.yaml'))
        files = dict(self.templates.closure('minion.yaml', []))
        params = {p: self.request.parameters.get(p, '') for p in pool['parameters']}
        params['params'] = dict(self.request.parameters['node_settings'], **self.facts)
        params['ca_cert'] = self.request.parameters['ca_cert']
        return _payload(_Resolver(files, params)(
            pool['resources']['config']['properties']['cloud_config']))

    def _assert_no_secret(self, role, payload):
        pki = self.pki
        self.assertNotIn('PRIVATE KEY', payload, role)
        for secret in (pki.bootstrap_token, pki.master_ha_secret, pki.proxy_ha_secret):
            self.assertNotIn(secret, payload, role)
        self.assertNotIn('/etc/celtic/secrets', payload, role)
        self.assertNotIn('signal.json', payload, role)
        self.assertIsNone(re.search(r'password', payload, re.I), role)

    def _assert_fits(self, role, payload):
        self._assert_no_secret(role, payload)
        encoded = len(base64.b64encode(payload.encode()))
        self.assertLess(encoded, NOVA_USER_DATA_LIMIT,
                        '%s user_data is %d bytes in base64, Nova allows %d'
                        % (role, encoded, NOVA_USER_DATA_LIMIT))
        return encoded

    def test_master_payload_fits_nova_user_data_limit(self):
        payload = self._group_payload('master.yaml')
        self.assertIn('/usr/local/lib/celtic/master.sh', payload)
        self.assertIn(self.pki.ca.cert.splitlines()[1], payload)
        self._assert_fits('master', payload)

    def test_proxy_payload_fits_nova_user_data_limit(self):
        payload = self._group_payload('proxy.yaml')
        self.assertIn('/usr/local/lib/celtic/proxy.sh', payload)
        self._assert_fits('proxy', payload)

    def test_storage_payload_fits(self):
        self._assert_fits('storage', self._group_payload('storage.yaml'))

    def test_minion_payload_fits(self):
        payload = self._minion_payload()
        self.assertIn('/usr/local/lib/celtic/minion.sh', payload)
        self._assert_fits('minion', payload)

    def test_the_secret_check_can_fail(self):
        payload = self._minion_payload() + self.pki.bootstrap_token
        with self.assertRaises(AssertionError):
            self._assert_no_secret('minion', payload)

    def test_files_from_vendordata_are_not_secret_and_stay_small(self):
        """The masters' optional add-ons travel in celtic-vendordata's answer (which
        Nova caches per instance); they are fragments, never a secret."""
        files = self.templates.vendordata_bundle('master')
        self.assertTrue(files)
        text = b''.join(content for _name, (_mode, content) in _unpack(files).items())
        self._assert_no_secret('master vendordata files', text.decode('utf-8'))
        self.assertLess(len(files), NOVA_USER_DATA_LIMIT,
                        'the masters\' files from celtic-vendordata are %d bytes' % len(files))
