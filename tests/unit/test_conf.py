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

"""The driver's magnum.conf options and their oslo-config-generator listing."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from magnum_celtic import conf
from magnum_celtic import labels


def test_list_opts_lists_the_four_groups():
    assert [group.name for group, _ in conf.list_opts()] == [
        'heat_client', 'celtic', 'celtic_cluster_labels', 'celtic_vendordata']


def test_vendordata_options_and_defaults():
    fresh = cfg.ConfigOpts()
    conf.register_opts(fresh)
    fresh([], default_config_files=[])
    group = fresh.celtic_vendordata
    assert (group.bind_host, group.bind_port, group.public_url, group.allowed_roles) == (
        '0.0.0.0', 9518, None, ['admin', 'service'])


def test_heat_client_keeps_the_option_names_magnum_removed():
    names = [opt.name for opt in conf.heat_client_opts]
    assert names == ['region_name', 'endpoint_type', 'api_version', 'ca_file',
                     'cert_file', 'key_file', 'insecure']
    defaults = {opt.name: opt.default for opt in conf.heat_client_opts}
    assert (defaults['endpoint_type'], defaults['api_version'],
            defaults['insecure']) == ('publicURL', '1', False)


def test_every_label_has_an_operator_default_option():
    opts = {opt.name: opt for opt in conf.cluster_label_opts}
    assert list(opts) == [label.name for label in labels.LABELS]
    for label in labels.LABELS:
        assert opts[label.name].default is None
        assert '(built-in default: %s)' % label.default_doc in opts[label.name].help


def test_register_opts_is_idempotent_on_a_fresh_config():
    fresh = cfg.ConfigOpts()
    conf.register_opts(fresh)
    conf.register_opts(fresh)
    fresh([], default_config_files=[])
    assert fresh.celtic.create_timeout == 60
    assert fresh.celtic.heat_max_resources_per_stack == 1000
    assert fresh.celtic_cluster_labels.kube_tag is None
    assert fresh.heat_client.endpoint_type == 'publicURL'


def test_options_are_registered_on_magnums_config_at_import():
    import magnum.conf
    assert magnum.conf.CONF.celtic.templates_dir == ''


def _magnum_2026_1_heat_client(conf):
    """[heat_client] as Magnum 22.0.0 registers it (magnum/conf/heat.py): the same
    names and defaults as celtic's, other help texts."""
    group = cfg.OptGroup('heat_client', title='Options for the Heat client')
    conf.register_group(group)
    conf.register_opts([
        cfg.StrOpt('region_name', help='Region in Identity service catalog.'),
        cfg.StrOpt('endpoint_type', default='publicURL', help='Type of endpoint.'),
        cfg.StrOpt('api_version', default='1', help='Version of Heat API.'),
        cfg.StrOpt('ca_file', help='Optional CA cert file.'),
        cfg.StrOpt('cert_file', help='Optional PEM-formatted certificate chain file.'),
        cfg.StrOpt('key_file', help='Optional PEM-formatted private key.'),
        cfg.BoolOpt('insecure', default=False, help='Do not verify.'),
    ], group=group)


def test_magnum_2026_1_heat_client_options_are_reused_not_registered_twice(tmp_path):
    fresh = cfg.ConfigOpts()
    _magnum_2026_1_heat_client(fresh)
    conf.register_opts(fresh)
    conf.register_opts(fresh)
    config = tmp_path / 'magnum.conf'
    config.write_text('[heat_client]\nregion_name = RegionTwo\ninsecure = true\n'
                      '[celtic]\ncreate_timeout = 30\n')
    fresh([], default_config_files=[str(config)])
    assert (fresh.heat_client.region_name, fresh.heat_client.insecure,
            fresh.heat_client.endpoint_type) == ('RegionTwo', True, 'publicURL')
    assert fresh.celtic.create_timeout == 30
    assert fresh._get_opt_info('region_name', 'heat_client')['opt'].help == (
        'Region in Identity service catalog.')


def test_only_the_heat_client_options_magnum_lacks_are_registered():
    fresh = cfg.ConfigOpts()
    group = cfg.OptGroup('heat_client')
    fresh.register_group(group)
    fresh.register_opt(cfg.StrOpt('region_name', help='Magnum\'s'), group=group)
    conf.register_opts(fresh)
    assert sorted(fresh.heat_client) == sorted(o.name for o in conf.heat_client_opts)
    assert fresh._get_opt_info('region_name', 'heat_client')['opt'].help == 'Magnum\'s'


def test_magnum_2026_2_leaves_every_heat_client_option_to_celtic():
    import importlib.metadata
    import magnum.conf
    if int(importlib.metadata.version('magnum').split('.')[0]) < 23:
        pytest.skip('Magnum 2026.1 registers [heat_client] itself')
    assert conf.own_heat_client_opts == conf.heat_client_opts
    for opt in conf.heat_client_opts:
        assert magnum.conf.CONF._get_opt_info(opt.name, 'heat_client')['opt'] is opt
