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

"""ClusterSpec: validation messages, precedence of label sources, derived settings."""

from __future__ import annotations

import re

import pytest

from magnum_celtic import labels as labels_mod
from magnum_celtic import sample
from magnum_celtic import spec
from magnum_celtic.labels import LabelError

UUID = 'c0ffee00-1234-4abc-8def-0123456789ab'
TEMPLATE = {'image_id': 'debian-13', 'flavor_id': 'm1.medium',
            'master_flavor_id': 'm1.large', 'external_network_id': 'public',
            'network_driver': 'flannel', 'cluster_distro': 'debian',
            'server_type': 'vm', 'coe': 'kubernetes', 'floating_ip_enabled': True,
            'master_lb_enabled': True, 'dns_nameserver': '192.0.2.53',
            'keypair_id': 'template-key'}
CLUSTER = {'uuid': UUID, 'name': 'Prod Cluster #1', 'master_count': 3,
           'keypair': 'ops', 'create_timeout': 30}
WORKER = {'name': 'default-worker', 'node_count': 3, 'flavor_id': 'm1.medium',
          'image_id': 'debian-13'}


def build(labels=None, template=None, cluster=None, worker=None, operator=None,
          defaults=spec.Defaults()):
    """spec.build on a valid cluster with some fields changed (None removes one)."""
    def merged(base, changes):
        result = dict(base)
        for key, value in (changes or {}).items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = value
        return result
    return spec.build(merged(TEMPLATE, template), merged(CLUSTER, cluster),
                      dict(labels or {}), merged(WORKER, worker), operator or {},
                      defaults)


# ---- every bad input names the field and what is allowed -------------------------------

BAD_INPUTS = [
    # labels
    ('proxy_count word', dict(labels={'proxy_count': 'two'}),
     'label proxy_count must be an integer from 0 to 16, got "two"'),
    ('proxy_count too high', dict(labels={'proxy_count': '17'}),
     'label proxy_count must be an integer from 0 to 16, got "17"'),
    ('storage_count negative', dict(labels={'storage_count': '-1'}),
     'label storage_count must be an integer from 0 to 24, got "-1"'),
    ('storage_volume_size zero', dict(labels={'storage_volume_size': '0'}),
     'label storage_volume_size must be an integer >= 1, got "0"'),
    ('boot_volume_size word', dict(labels={'boot_volume_size': 'ten'}),
     'label boot_volume_size must be an integer >= 0, got "ten"'),
    ('kube_tag unsupported minor', dict(labels={'kube_tag': 'v1.20'}),
     'label kube_tag must be a supported Kubernetes minor (v1.34, v1.35, v1.36, '
     'v1.37) or one of their releases such as v1.36.2, got "v1.20"'),
    ('kube_tag without v', dict(labels={'kube_tag': '1.36.1'}),
     'label kube_tag must be a supported Kubernetes minor (v1.34, v1.35, v1.36, '
     'v1.37)'),
    ('flannel_tag not a release', dict(labels={'flannel_tag': 'latest'}),
     'label flannel_tag must be a release tag such as v1.2.3, got "latest"'),
    ('pod_network_cidr host bits', dict(labels={'pod_network_cidr': '10.100.0.1/16'}),
     'label pod_network_cidr must be an IPv4 network in CIDR notation such as '
     '10.0.0.0/24, got "10.100.0.1/16"'),
    ('service_network_cidr IPv6', dict(labels={'service_network_cidr': 'fd00::/108'}),
     'label service_network_cidr must be an IPv4 network in CIDR notation'),
    ('allowed cidrs with garbage',
     dict(labels={'master_lb_allowed_cidrs': '192.0.2.0/24,bogus'}),
     'label master_lb_allowed_cidrs must be a comma-separated list of IPv4 CIDRs '
     'such as 192.0.2.0/24,0.0.0.0/0, got "192.0.2.0/24,bogus"'),
    ('allowed cidrs empty', dict(labels={'ssh_allowed_cidrs': ' , '}),
     'label ssh_allowed_cidrs must be a comma-separated list of IPv4 CIDRs'),
    ('auto_scaling_enabled not boolean', dict(labels={'auto_scaling_enabled': 'maybe'}),
     'label auto_scaling_enabled must be true or false, got "maybe"'),
    ('auto_healing_enabled not boolean', dict(labels={'auto_healing_enabled': 'soon'}),
     'label auto_healing_enabled must be true or false, got "soon"'),
    ('auto_healing_unhealthy_seconds too short',
     dict(labels={'auto_healing_unhealthy_seconds': '30'}),
     'label auto_healing_unhealthy_seconds must be an integer >= 60, got "30"'),
    ('auto_healing_max_unhealthy_percent zero',
     dict(labels={'auto_healing_max_unhealthy_percent': '0'}),
     'label auto_healing_max_unhealthy_percent must be an integer from 1 to 100, got "0"'),
    ('auto_healing_max_unhealthy_percent with a percent sign',
     dict(labels={'auto_healing_max_unhealthy_percent': '40%'}),
     'label auto_healing_max_unhealthy_percent must be an integer from 1 to 100, '
     'got "40%"'),
    ('min_node_count negative', dict(labels={'min_node_count': '-1'}),
     'label min_node_count must be an integer >= 0, got "-1"'),
    ('max_node_count negative', dict(labels={'max_node_count': '-2'}),
     'label max_node_count must be empty or an integer >= 0, got "-2"'),
    ('min above max', dict(labels={'min_node_count': '5', 'max_node_count': '2'}),
     'label min_node_count (5) must not be above label max_node_count (2)'),
    ('autoscaling without max', dict(labels={'auto_scaling_enabled': 'true'}),
     'label max_node_count is required when auto_scaling_enabled is true'),
    ('node_count above max', dict(labels={'auto_scaling_enabled': 'true',
                                          'max_node_count': '2'}),
     'node_count 3 of the default nodegroup must be within labels min_node_count and '
     'max_node_count (1 to 2)'),
    ('node_count below min', dict(labels={'auto_scaling_enabled': 'true',
                                          'min_node_count': '4',
                                          'max_node_count': '9'}),
     'node_count 3 of the default nodegroup must be within labels min_node_count and '
     'max_node_count (4 to 9)'),
    ('autoscaling on a minor without a pinned autoscaler',
     dict(labels={'auto_scaling_enabled': 'true', 'max_node_count': '5',
                  'kube_tag': 'v1.37'}),
     'label auto_scaling_enabled: no cluster-autoscaler release is pinned for '
     'Kubernetes v1.37 yet (pinned: v1.34, v1.35, v1.36); set label '
     'cluster_autoscaler_tag'),
    ('cluster_autoscaler_tag not a release',
     dict(labels={'cluster_autoscaler_tag': '1.36'}),
     'label cluster_autoscaler_tag must be a release tag such as v1.2.3, got "1.36"'),
    ('floating ip flag not boolean',
     dict(labels={'master_lb_floating_ip_enabled': 'maybe'}),
     'label master_lb_floating_ip_enabled must be true or false, got "maybe"'),
    ('ingress controller unknown', dict(labels={'ingress_controller': 'nginx'}),
     'label ingress_controller must be one of traefik, none, got "nginx"'),
    ('server group policy unknown', dict(labels={'server_group_policy': 'spread'}),
     'label server_group_policy must be one of anti-affinity, soft-anti-affinity, '
     'affinity, soft-affinity, got "spread"'),
    ('registry prefix without slash',
     dict(labels={'container_infra_prefix': 'registry.example.com/k8s'}),
     'label container_infra_prefix must be empty, or a registry and path ending in '
     '"/" such as registry.example.com:5000/k8s/'),
    ('cluster domain upper case', dict(labels={'cluster_domain': 'Cluster.Local'}),
     'label cluster_domain must be a lower-case DNS domain such as cluster.local'),
    ('flavor name with a space', dict(labels={'proxy_flavor': 'm1 large'}),
     'label proxy_flavor must be empty or a name of letters, digits, ".", "_", ":" '
     'and "-", got "m1 large"'),
    ('typo of a label', dict(labels={'proxy_cont': '3'}),
     'label proxy_cont is not a celtic label; did you mean proxy_count?'),
    ('operator default invalid', dict(operator={'storage_count': 'lots'}),
     '[celtic_cluster_labels] storage_count must be an integer from 0 to 24, got '
     '"lots"'),
    # CIDR overlaps and sizes
    ('pod network overlaps fixed network', dict(labels={'pod_network_cidr': '10.0.0.0/16'}),
     'label fixed_network_cidr 10.0.0.0/24 overlaps pod_network_cidr 10.0.0.0/16: '
     'choose ranges that do not overlap'),
    ('service network overlaps pod network',
     dict(labels={'service_network_cidr': '10.100.128.0/20'}),
     'label pod_network_cidr 10.100.0.0/16 overlaps service_network_cidr '
     '10.100.128.0/20: choose ranges that do not overlap'),
    ('service network too small', dict(labels={'service_network_cidr': '10.254.0.0/29'}),
     'label service_network_cidr must be a /28 or larger (cluster DNS takes its '
     'tenth address), got 10.254.0.0/29'),
    ('pod network too small', dict(labels={'pod_network_cidr': '10.100.0.0/25'}),
     'label pod_network_cidr must be a /24 or larger (each node gets a /24), got '
     '10.100.0.0/25'),
    ('fixed network too small', dict(labels={'fixed_network_cidr': '10.0.0.0/29'}),
     'label fixed_network_cidr must be a /28 or larger, got 10.0.0.0/29'),
    # counts
    ('even master count', dict(cluster={'master_count': 2}),
     'master_count must be an odd number >= 1 (1, 3, 5, ...): pacemaker and etcd need '
     'a majority to survive a master loss, got 2'),
    ('no masters', dict(cluster={'master_count': 0}),
     'master_count must be an odd number >= 1 (1, 3, 5, ...)'),
    ('master count not a number', dict(cluster={'master_count': 'three'}),
     'master_count must be an integer, got "three"'),
    ('several masters without the master LB', dict(
        cluster={'master_lb_enabled': False}, template={'master_lb_enabled': False}),
     'master_count 3 needs master_lb_enabled: celtic puts the masters behind a '
     'pacemaker-managed API VIP; create the cluster template with '
     '--master-lb-enabled'),
    ('negative worker count', dict(worker={'node_count': -1}),
     'node_count must be an integer >= 0, got -1'),
    # proxies (template fields)
    ('http_proxy without scheme', dict(template={'http_proxy': 'proxy.example.com:3128'}),
     'cluster template field http_proxy must be an http:// or https:// URL such as '
     'http://proxy.example.com:3128, got "proxy.example.com:3128"'),
    ('https_proxy other scheme', dict(template={'https_proxy': 'socks5://proxy:1080'}),
     'cluster template field https_proxy must be an http:// or https:// URL'),
    ('no_proxy with spaces', dict(template={'http_proxy': 'http://proxy:3128',
                                            'no_proxy': 'example.com,intra net'}),
     'cluster template field no_proxy must be a comma-separated list of hosts, '
     'domains or CIDRs, got "example.com,intra net"'),
    # template fields
    ('network driver not supported', dict(template={'network_driver': 'cilium'}),
     'cluster template field network_driver must be one of flannel, calico, got '
     '"cilium"'),
    ('bare metal', dict(template={'server_type': 'bm'}),
     'cluster template field server_type must be vm, got "bm"'),
    ('other coe', dict(template={'coe': 'swarm'}),
     'cluster template field coe must be kubernetes, got "swarm"'),
    ('image without a supported os_distro', dict(template={'cluster_distro': 'fedora-coreos'}),
     'the image os_distro must be one of ubuntu, debian, got "fedora-coreos"'),
    ('tls disabled', dict(template={'tls_disabled': True}),
     'cluster template field tls_disabled must be false'),
    ('magnum registry', dict(template={'registry_enabled': True}),
     'cluster template field registry_enabled is not supported: use the label '
     'container_infra_prefix'),
    ('dns nameserver not an address', dict(template={'dns_nameserver': '8.8.8'}),
     'cluster template field dns_nameserver must be an IPv4 address (or a '
     'comma-separated list), got "8.8.8"'),
    # missing image / flavor / external network, half an existing network
    ('no image', dict(template={'image_id': None}),
     'image_id is required: a Glance image'),
    ('no flavor anywhere', dict(template={'flavor_id': None, 'master_flavor_id': None},
                                worker={'flavor_id': None}),
     'flavor_id is required: the worker flavor (cluster template --flavor)'),
    ('no external network', dict(template={'external_network_id': None}),
     'external_network_id is required: the external network for the router and the '
     'floating IPs (--external-network)'),
    ('subnet without network', dict(template={'fixed_subnet': 'private-subnet'}),
     'fixed_subnet private-subnet was given without fixed_network: give both or '
     'neither'),
    ('network without subnet', dict(cluster={'fixed_network': 'private'}),
     'fixed_network private has no fixed_subnet: name the subnet the nodes use '
     '(--fixed-subnet)'),
    # taints and node labels
    ('taint without key', dict(worker={'node_taints': [{'value': 'x'}]}),
     "each node_taints item needs a key, got {'value': 'x'}"),
    ('taint effect unknown', dict(worker={'node_taints': [{'key': 'gpu',
                                                          'effect': 'NoWay'}]}),
     'node_taints effect must be one of NoSchedule, PreferNoSchedule, NoExecute, got '
     '"NoWay"'),
    ('node label value not a string', dict(worker={'node_labels': {'rack': 7}}),
     "node_labels must map strings to strings, got 'rack': 7"),
]


@pytest.mark.parametrize('changes,message', [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field_and_what_is_allowed(changes, message):
    with pytest.raises(LabelError) as error:
        build(**changes)
    assert message in str(error.value)


def test_there_are_at_least_twenty_bad_input_cases():
    assert len(BAD_INPUTS) >= 20


def test_spec_errors_are_label_errors_the_driver_translates():
    with pytest.raises(spec.SpecError):
        build(cluster={'master_count': 2})
    assert issubclass(spec.SpecError, LabelError)


# ---- precedence: cluster label > [celtic_cluster_labels] > built-in default ----------

def test_built_in_default_applies_when_nobody_sets_a_label():
    assert build().proxies.count == 2


def test_operator_default_overrides_the_built_in_default():
    assert build(operator={'proxy_count': '4'}).proxies.count == 4


def test_cluster_label_overrides_the_operator_default():
    assert build(labels={'proxy_count': '1'},
                 operator={'proxy_count': '4'}).proxies.count == 1


def test_an_empty_or_unset_operator_option_means_the_built_in_default():
    assert build(operator={'proxy_count': '', 'storage_count': None}).storage.count == 3
    assert build(operator={'proxy_count': ''}).proxies.count == 2


def test_a_cluster_label_of_none_falls_through_to_the_operator_default():
    assert build(labels={'proxy_count': None},
                 operator={'proxy_count': '5'}).proxies.count == 5


def test_operator_default_overrides_magnum_conf_for_labels_defaulting_from_it():
    defaults = spec.Defaults(nodes_affinity_policy='soft-affinity',
                             boot_volume_size=20, boot_volume_type='fast',
                             docker_volume_type='bulk')
    built = build(defaults=defaults)
    assert (built.server_group_policy, built.boot_volume_size, built.boot_volume_type,
            built.storage_volume_type) == ('soft-affinity', 20, 'fast', 'bulk')
    built = build(defaults=defaults,
                  operator={'server_group_policy': 'anti-affinity'},
                  labels={'boot_volume_size': '0', 'storage_volume_type': 'ssd'})
    assert (built.server_group_policy, built.boot_volume_size,
            built.storage_volume_type) == ('anti-affinity', 0, 'ssd')


def test_floating_ips_follow_the_cluster_unless_the_label_says_otherwise():
    assert build().floating_ips is True
    assert build(cluster={'floating_ip_enabled': False}).floating_ips is False
    assert build(cluster={'floating_ip_enabled': False},
                 labels={'master_lb_floating_ip_enabled': 'true'}).floating_ips is True
    assert build(template={'floating_ip_enabled': False}).floating_ips is False


def test_cluster_fields_win_over_template_fields():
    built = build(cluster={'fixed_network': 'net-a', 'fixed_subnet': 'sub-a'},
                  template={'fixed_network': 'net-t', 'fixed_subnet': 'sub-t'})
    assert (built.existing_network, built.existing_subnet) == ('net-a', 'sub-a')
    assert built.uses_existing_network
    assert build(cluster={'keypair': None}).ssh_key_name == 'template-key'


# ---- typos and other labels -------------------------------------------------------------

def test_labels_of_other_drivers_are_only_a_warning():
    built = build(labels={'auto_healing_controller': 'x', 'monitoring_stack': 'x'})
    assert built.warnings == ('label monitoring_stack is not used by celtic',)


def test_magnum_labels_celtic_knowingly_ignores_raise_no_warning():
    assert build(labels={'monitoring_enabled': 'true', 'os_distro': 'debian'}).warnings == ()


def test_autoscaling_labels_become_the_scaling_spec_and_reach_the_nodes():
    built = build(labels={'auto_scaling_enabled': 'true', 'min_node_count': '2',
                          'max_node_count': '7', 'auto_healing_enabled': 'yes'})
    assert built.scaling == spec.ScalingSpec(autoscaling=True, min_nodes=2, max_nodes=7,
                                             healing=True, autoscaler_tag='v1.36.1')
    assert built.scaling.needs_credential
    assert built.node_settings()['auto_scaling_enabled'] is True
    assert built.node_settings()['auto_healing_enabled'] is True
    assert built.node_settings()['cluster_autoscaler_tag'] == 'v1.36.1'
    assert 'max_node_count' not in built.node_settings()


def test_auto_healing_labels_reach_the_nodes_with_their_defaults():
    assert (build().node_settings()['auto_healing_unhealthy_seconds'],
            build().node_settings()['auto_healing_max_unhealthy_percent']) == (300, 40)
    built = build(labels={'auto_healing_enabled': 'true',
                          'auto_healing_unhealthy_seconds': '600',
                          'auto_healing_max_unhealthy_percent': '25'})
    assert built.scaling.needs_credential
    assert (built.node_settings()['auto_healing_enabled'],
            built.node_settings()['auto_healing_unhealthy_seconds'],
            built.node_settings()['auto_healing_max_unhealthy_percent']) == (True, 600, 25)


@pytest.mark.parametrize('kube_tag,expected', [('v1.34', 'v1.34.5'), ('v1.35.3', 'v1.35.2'),
                                               ('v1.36', 'v1.36.1')])
def test_the_autoscaler_release_follows_the_kubernetes_minor(kube_tag, expected):
    built = build(labels={'auto_scaling_enabled': 'true', 'max_node_count': '5',
                          'kube_tag': kube_tag})
    assert built.node_settings()['cluster_autoscaler_tag'] == expected


def test_a_minor_without_a_pinned_autoscaler_takes_the_label_or_needs_none():
    built = build(labels={'auto_scaling_enabled': 'true', 'max_node_count': '5',
                          'kube_tag': 'v1.37', 'cluster_autoscaler_tag': 'v1.37.0'})
    assert built.node_settings()['cluster_autoscaler_tag'] == 'v1.37.0'
    assert build(labels={'kube_tag': 'v1.37'}).node_settings()[
        'cluster_autoscaler_tag'] == ''


def test_no_autoscaling_needs_no_credential_and_allows_a_pool_outside_min_max():
    built = build(labels={'min_node_count': '1', 'max_node_count': '2'},
                  worker={'node_count': 5})
    assert built.scaling == spec.ScalingSpec(min_nodes=1, max_nodes=2,
                                             autoscaler_tag='v1.36.1')
    assert not built.scaling.needs_credential
    assert not build().scaling.needs_credential


# ---- the cloud provider and Cinder CSI (doc/cloud-provider.md) -------------------------

@pytest.mark.parametrize('label', ['cloud_provider_enabled', 'cinder_csi_enabled'])
def test_a_cloud_add_on_needs_the_credential_and_reaches_the_nodes(label):
    built = build(labels={label: 'true'})
    assert built.needs_credential
    assert not built.scaling.needs_credential
    assert built.node_settings()[label] is True


def test_no_cloud_add_on_by_default_and_no_credential():
    built = build()
    assert not built.needs_credential
    settings = built.node_settings()
    assert settings['cloud_provider_enabled'] is False
    assert settings['cinder_csi_enabled'] is False


@pytest.mark.parametrize('label', ['cloud_provider_enabled', 'cinder_csi_enabled'])
def test_a_bad_cloud_add_on_switch_is_refused_naming_the_label(label):
    with pytest.raises(LabelError) as caught:
        build(labels={label: 'maybe'})
    assert str(caught.value) == 'label %s must be true or false, got "maybe"' % label


@pytest.mark.parametrize('label', ['cloud_provider_tag', 'cinder_csi_plugin_tag'])
def test_a_bad_cloud_add_on_release_is_refused_naming_the_label(label):
    with pytest.raises(LabelError) as caught:
        build(labels={label: 'latest'})
    assert str(caught.value) == ('label %s must be a release tag such as v1.2.3, got '
                                 '"latest"' % label)


@pytest.mark.parametrize('minor', labels_mod.SUPPORTED_KUBE_MINORS)
def test_cloud_add_on_releases_follow_the_kubernetes_minor(minor):
    settings = build(labels={'kube_tag': 'v1.%d.2' % minor}).node_settings()
    for name, tag in labels_mod.ADDON_VERSIONS_BY_MINOR[minor].items():
        if name == 'k8s_keystone_auth_tag':   # only with Keystone login: KeystoneSpec's
            continue                           # (tests/unit/test_keystone_auth.py)
        assert settings[name] == tag, name


def test_a_cloud_add_on_release_label_overrides_its_minor_s_pin():
    settings = build(labels={'kube_tag': 'v1.35', 'cloud_provider_tag': 'v1.35.9',
                             'cinder_csi_plugin_tag': 'v1.35.8'}).node_settings()
    assert (settings['cloud_provider_tag'], settings['cinder_csi_plugin_tag']) == (
        'v1.35.9', 'v1.35.8')
    # the sidecars stay the minor's
    assert settings['csi_provisioner_tag'] == labels_mod.ADDON_VERSIONS_BY_MINOR[35][
        'csi_provisioner_tag']


def test_an_operator_default_pins_a_cloud_add_on_release_for_every_cluster():
    built = build(operator={'cloud_provider_tag': 'v1.36.7'})
    assert built.node_settings()['cloud_provider_tag'] == 'v1.36.7'


def test_close_match_check_suggests_the_celtic_label():
    with pytest.raises(spec.SpecError, match='did you mean storage_volume_size'):
        build(labels={'storage_volume_sise': '10'})


# ---- derived settings ----------------------------------------------------------------

def test_defaults_of_a_plain_cluster():
    built = build()
    assert (built.node_values['kube_tag'], built.network_driver, built.masters.count,
            built.minion_count, built.proxies.count, built.storage.count) == (
        'v1.36', 'flannel', 3, 3, 2, 3)
    assert (built.node_values['pod_network_cidr'], built.node_values['service_network_cidr'],
            built.fixed_network_cidr) == ('10.100.0.0/16', '10.254.0.0/16',
                                          '10.0.0.0/24')
    assert (built.masters.flavor, built.proxies.flavor, built.storage.flavor) == (
        'm1.large', 'm1.medium', 'm1.medium')
    assert built.dns_nameservers == ('192.0.2.53',)
    assert built.api_allowed_cidrs == ('0.0.0.0/0',)
    assert (built.http_proxy, built.no_proxy) == ('', '')
    assert built.create_timeout_minutes == 30


def test_name_prefix_is_dns_safe_and_short():
    assert build().name_prefix == 'prod-cluster-1'
    assert spec.name_prefix('A' * 40, UUID) == 'a' * 20
    assert spec.name_prefix('x' * 19 + '-y', UUID) == 'x' * 19
    assert spec.name_prefix('', UUID) == 'celtic-c0ffee00'
    assert spec.name_prefix('___', UUID) == 'celtic-c0ffee00'
    assert build(cluster={'name': None}).cluster_name == UUID


def test_pool_names_are_dns_safe():
    assert spec.pool_name('GPU_nodes.a') == 'gpu-nodes-a'
    assert spec.pool_name('--') == 'pool'


def test_cluster_dns_is_the_tenth_service_address():
    built = build(labels={'service_network_cidr': '172.20.0.0/16'})
    assert built.dns_service_ip == '172.20.0.10'
    assert built.node_settings()['dns_service_ip'] == '172.20.0.10'


def test_kube_minor_of_a_release_and_of_a_minor():
    assert build(labels={'kube_tag': 'v1.35.4'}).kube_minor == 'v1.35'
    assert build(labels={'kube_tag': 'v1.37'}).kube_minor == 'v1.37'


def test_master_flavor_falls_back_to_the_worker_flavor():
    assert build(template={'master_flavor_id': None}).masters.flavor == 'm1.medium'


def test_proxy_settings_add_everything_that_must_bypass_the_proxy():
    built = build(template={'http_proxy': 'http://user:pw@proxy.example.com:3128',
                            'https_proxy': 'https://proxy.example.com:3129/',
                            'no_proxy': 'example.com, localhost,10.0.0.0/24'},
                  labels={'cluster_domain': 'k8s.internal'})
    assert built.http_proxy == 'http://user:pw@proxy.example.com:3128'
    assert built.no_proxy.split(',') == [
        'example.com', 'localhost', '10.0.0.0/24', '127.0.0.1', '169.254.169.254',
        '10.100.0.0/16', '10.254.0.0/16', '.svc', '.k8s.internal']


def test_several_dns_nameservers():
    assert build(template={'dns_nameserver': '192.0.2.1, 192.0.2.2'}
                 ).dns_nameservers == ('192.0.2.1', '192.0.2.2')
    assert build(template={'dns_nameserver': None}).dns_nameservers == ('8.8.8.8',)


def test_ingress_without_proxies_is_a_warning():
    built = build(labels={'proxy_count': '0'})
    assert ('ingress_controller traefik is not installed: it is published by the '
            'proxies and proxy_count is 0') in built.warnings
    assert build(labels={'proxy_count': '0', 'ingress_controller': 'none'}
                 ).warnings == ()


def test_docker_volume_size_is_ignored_with_a_warning():
    assert any('docker_volume_size is ignored' in w
               for w in build(template={'docker_volume_size': 20}).warnings)


def test_worker_pool_taints_and_labels():
    built = build(worker={'node_labels': {'tier': 'web'},
                          'node_taints': [{'key': 'dedicated', 'value': 'web'},
                                          {'key': 'spot', 'effect': 'NoExecute'}]})
    assert built.default_pool.settings() == {
        'pool': 'default-worker', 'node_labels': {'tier': 'web'},
        'node_taints': [{'key': 'dedicated', 'value': 'web', 'effect': 'NoSchedule'},
                        {'key': 'spot', 'value': '', 'effect': 'NoExecute'}]}


def test_node_settings_carry_what_the_nodes_read():
    settings = build(template={'network_driver': 'calico'}).node_settings()
    assert settings['network_driver'] == 'calico'
    assert settings['api_port'] == 6443
    assert settings['lb_reserved_ports'] == [22, 2224]
    assert settings['storage_volume_name'] == 'celtic'
    assert settings['kube_minor'] == 'v1.36'


def test_every_node_bound_label_reaches_the_nodes_as_it_is():
    # a LABELS row with node=True is all a new node setting needs
    from magnum_celtic.labels import LABELS
    node_labels = [label for label in LABELS if label.node]
    assert {'kube_tag', 'ingress_tag', 'container_infra_prefix'} <= {
        label.name for label in node_labels}
    built = build(labels={'kube_tag': 'v1.35.2', 'ingress_tag': 'v3.7.1',
                          'container_infra_prefix': 'mirror.example/celtic/'})
    settings = built.node_settings()
    for label in node_labels:
        assert settings[label.name] == built.node_values[label.name]
    assert (settings['kube_tag'], settings['kube_minor'], settings['ingress_tag'],
            settings['container_infra_prefix']) == (
        'v1.35.2', 'v1.35', 'v3.7.1', 'mirror.example/celtic/')


def test_the_nodes_of_each_role_are_grouped():
    built = build(labels={'proxy_count': '3', 'storage_flavor': 's1'})
    assert built.roles == {'master': spec.RoleSpec(3, 'm1.large'),
                           'proxy': spec.RoleSpec(3, 'm1.medium'),
                           'storage': spec.RoleSpec(3, 's1')}
    assert list(built.roles) == list(spec.HA_ROLES)


def test_build_pool_of_a_non_default_nodegroup():
    pool = spec.build_pool({'name': 'GPU pool', 'node_count': 2, 'flavor_id': 'g1',
                            'image_id': None}, 'debian-13')
    assert (pool.nodegroup, pool.pool_name, pool.count, pool.flavor, pool.image) == (
        'GPU pool', 'gpu-pool', 2, 'g1', 'debian-13')
    with pytest.raises(spec.SpecError, match='flavor_id is required: the nodegroup '
                                             'flavor'):
        spec.build_pool({'name': 'gpu', 'node_count': 1}, 'debian-13')


# ---- node labels and taints a kubelet can apply, nodegroup names -------------------

@pytest.mark.parametrize('labels,message', [
    ({'node-role.kubernetes.io/worker': ''},
     'node_labels key node-role.kubernetes.io/worker cannot be set by a kubelet'),
    ({'example.k8s.io/x': 'y'}, 'node_labels key example.k8s.io/x cannot be set'),
    ({'bad key': 'v'}, 'node_labels key must be a Kubernetes label key'),
    ({'team': 'a b'}, 'node_labels value must be empty or at most 63 letters'),
], ids=['node-role', 'k8s.io namespace', 'space in key', 'space in value'])
def test_node_labels_a_kubelet_cannot_set_are_refused(labels, message):
    with pytest.raises(spec.SpecError, match=re.escape(message)):
        spec.build_pool({'name': 'gpu', 'node_count': 1, 'flavor_id': 'f',
                         'node_labels': labels}, 'img')


def test_node_labels_in_the_kubelet_namespaces_are_accepted():
    labels = {'node.kubernetes.io/pool': 'gpu', 'topology.kubernetes.io/zone': 'az1',
              'team': 'ml'}
    pool = spec.build_pool({'name': 'gpu', 'node_count': 1, 'flavor_id': 'f',
                            'node_labels': labels}, 'img')
    assert pool.node_labels['team'] == 'ml'


def test_a_taint_with_a_bad_key_is_refused():
    with pytest.raises(spec.SpecError, match='node_taints key must be'):
        taints = [{'key': 'a b', 'effect': 'NoSchedule'}]
        spec.build_pool({'name': 'gpu', 'node_count': 1, 'flavor_id': 'f',
                         'node_taints': taints}, 'img')


def test_existing_subnet_cidr_replaces_the_fixed_network_cidr_label():
    fields = {'fixed_network': 'net', 'fixed_subnet': 'sub',
              'existing_subnet_cidr': '192.168.7.0/24'}
    built = sample.sample_spec(template=fields, labels={'fixed_network_cidr': '10.9.0.0/24'})
    assert built.fixed_network_cidr == '192.168.7.0/24'


def test_pool_names_colliding_with_roles_or_each_other_are_refused():
    assert spec.check_pool_name('gpu', ['cpu']) == 'gpu'
    with pytest.raises(spec.SpecError, match='names of the storage nodes'):
        spec.check_pool_name('storage', [])
    with pytest.raises(spec.SpecError, match='give the same node names'):
        spec.check_pool_name('GPU', ['gpu'])
