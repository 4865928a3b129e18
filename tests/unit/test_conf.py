"""The driver's magnum.conf options and their oslo-config-generator listing."""

from __future__ import annotations

from oslo_config import cfg

from magnum_celtic import conf
from magnum_celtic import labels


def test_list_opts_lists_the_three_groups():
    assert [group.name for group, _ in conf.list_opts()] == [
        'heat_client', 'celtic', 'celtic_cluster_labels']


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
