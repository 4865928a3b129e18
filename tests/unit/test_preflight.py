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

"""The preflight's arithmetic and messages (pure: no mocks)."""

from __future__ import annotations

import pytest

from magnum_celtic import preflight
from magnum_celtic.preflight import Cloud, Flavor, Image, Network, Subnet
from tests.unit.test_spec import build

FLAVORS = (Flavor('f-1', 'm1.small', 1, 2048, 20), Flavor('f-2', 'm1.medium', 2, 4096, 40),
           Flavor('f-3', 'm1.large', 4, 8192, 80))
NETWORKS = (Network('n-pub', 'public', True), Network('n-priv', 'private', False))
GOOD = Cloud(flavors=FLAVORS,
             image=Image('i-1', 'debian-13', 'debian', 'celtic'),
             keypairs=frozenset({'ops'}), volume_types=frozenset({'standard', 'fast'}),
             availability_zones=frozenset({'nova'}), networks=NETWORKS,
             subnets=(Subnet('s-1', 'private-subnet', 'n-priv'),),
             extensions=frozenset({'port-security', 'allowed-address-pairs'}))


def need(spec):
    return preflight.cluster_need(spec, preflight.flavor_index(FLAVORS))


def cloud(**changes):
    import dataclasses
    return dataclasses.replace(GOOD, **changes)


# ---- arithmetic ----------------------------------------------------------------------

def test_default_cluster_needs_every_role_with_its_flavor():
    # 3 masters m1.large, 3 minions m1.medium, 2 proxies and 3 storage nodes m1.medium
    spec = build()
    assert need(spec) == {
        'instances': 11, 'cores': 3 * 4 + 8 * 2, 'ram': 3 * 8192 + 8 * 4096,
        'ports': 11 + 2 + 2, 'floating_ips': 2, 'security_groups': 6,
        'security_group_rules': 21 + 12 + 3, 'server_groups': 4,
        'volumes': 3, 'gigabytes': 150}


def test_no_proxies_no_storage_no_floating_ips_existing_network():
    spec = build({'proxy_count': '0', 'storage_count': '0',
                  'master_lb_floating_ip_enabled': 'false',
                  'ssh_allowed_cidrs': '10.0.0.0/8,192.168.0.0/16'},
                 template={'fixed_network': 'private', 'fixed_subnet': 's-1'})
    got = need(spec)
    assert (got['instances'], got['ports'], got['floating_ips'], got['server_groups'],
            got['volumes'], got['security_group_rules']) == (6, 6 + 1, 0, 2, 0, 21 + 12 + 4)


def test_boot_volumes_count_one_per_server():
    spec = build({'boot_volume_size': '10', 'storage_count': '0'})
    got = need(spec)
    assert (got['volumes'], got['gigabytes']) == (8, 80)


def test_unknown_flavor_counts_no_cores():
    spec = build({'proxy_flavor': 'nope'})
    assert need(spec)['cores'] == 3 * 4 + 6 * 2


def test_pool_need_adds_servers_and_a_server_group_for_a_new_pool():
    spec = build()
    index = preflight.flavor_index(FLAVORS)
    assert preflight.pool_need(spec, index, 'm1.small', 2, new_pool=True) == {
        'instances': 2, 'cores': 2, 'ram': 4096, 'ports': 2, 'floating_ips': 0,
        'security_groups': 0, 'security_group_rules': 0, 'server_groups': 1,
        'volumes': 0, 'gigabytes': 0}
    assert preflight.pool_need(spec, index, 'f-1', -1)['instances'] == 0


# ---- problems ------------------------------------------------------------------------

def test_a_cloud_with_everything_has_no_problem():
    spec = build()
    assert preflight.problems(spec, GOOD, need(spec)) == []


def test_nothing_read_means_nothing_checked():
    spec = build({'availability_zone': 'az9'})
    assert preflight.problems(spec, Cloud(), need(spec)) == []


@pytest.mark.parametrize('labels, template, changes, message', [
    ({'proxy_flavor': 'nope-flavor'}, {}, {},
     'flavor: proxy_flavor nope-flavor does not exist (flavors: m1.large, m1.medium, '
     'm1.small)'),
    ({}, {'master_flavor_id': 'gone'}, {},
     'flavor: master_flavor_id gone does not exist (flavors: m1.large, m1.medium, '
     'm1.small)'),
    ({}, {}, {'image': Image('i-1', 'debian-13', 'fedora', None)},
     'image debian-13: property os_distro must be one of ubuntu, debian, got "fedora"'),
    ({}, {}, {'image': Image('i-1', 'debian-13', 'debian', 'k8s_capi_helm_v1')},
     'image debian-13: property magnum_driver is "k8s_capi_helm_v1"'),
    ({}, {}, {'image': Image('i-1', 'debian-13', None, None, exists=False)},
     'image debian-13 does not exist'),
    ({}, {}, {'image': Image('i-1', 'debian-13', 'debian', None, min_ram=6000)},
     'image debian-13 needs 6000 MiB of RAM (min_ram) but flavor_id m1.medium has '
     '4096 MiB'),
    ({}, {}, {'image': Image('i-1', 'debian-13', 'debian', None, min_disk=60)},
     'image debian-13 needs a 60 GiB disk (min_disk) but flavor_id m1.medium gives '
     '40 GiB'),
    ({'boot_volume_size': '10'}, {}, {'image': Image('i-1', 'd', 'debian', None,
                                                     min_disk=30)},
     'image d needs a 30 GiB disk (min_disk) but boot_volume_size gives 10 GiB'),
    ({}, {}, {'keypairs': frozenset({'other'})},
     'keypair ops does not exist for this user (keypairs: other)'),
    ({'storage_volume_type': 'nope'}, {}, {},
     'volume type: storage_volume_type nope does not exist (volume types: fast, standard)'),
    ({'boot_volume_size': '10', 'boot_volume_type': 'nope'}, {}, {},
     'volume type: boot_volume_type nope does not exist'),
    ({'availability_zone': 'az9'}, {}, {},
     'availability_zone az9 does not exist (zones: nova)'),
    ({}, {'external_network_id': 'gone'}, {},
     'external_network_id gone does not exist (external networks: public)'),
    ({}, {'external_network_id': 'private'}, {},
     'external_network_id private is not an external network (router:external is false)'),
    ({}, {'fixed_network': 'gone', 'fixed_subnet': 's-1'}, {},
     'fixed_network gone does not exist'),
    ({}, {'fixed_network': 'private', 'fixed_subnet': 'gone'}, {},
     'fixed_subnet gone does not exist'),
    ({}, {'fixed_network': 'public', 'fixed_subnet': 'private-subnet'}, {},
     'fixed_subnet private-subnet is not a subnet of fixed_network public'),
    ({}, {}, {'extensions': frozenset({'port-security'})},
     'Neutron extension allowed-address-pairs is not enabled (the API and proxy VIPs '
     'move between nodes as allowed address pairs)'),
    ({}, {}, {'quota_left': {'floating_ips': 1}},
     'quota: floating IPs: this cluster needs 2, the project has 1 left'),
    ({}, {}, {'quota_left': {'ram': -5}},
     'quota: RAM (MiB): this cluster needs 57344, the project has 0 left'),
])
def test_each_problem_is_named(labels, template, changes, message):
    spec = build(labels, template=template)
    found = preflight.problems(spec, cloud(**changes), need(spec))
    assert any(message in p for p in found), found


def test_a_flavor_every_role_uses_is_one_problem_naming_every_field():
    spec = build(template={'master_flavor_id': 'gone'}, worker={'flavor_id': 'gone'})
    assert preflight.problems(spec, GOOD, need(spec)) == [
        'flavor: master_flavor_id and flavor_id and proxy_flavor and storage_flavor gone '
        'does not exist (flavors: m1.large, m1.medium, m1.small)']


def test_the_existing_subnet_is_not_checked_without_the_subnet_list():
    spec = build(template={'fixed_network': 'private', 'fixed_subnet': 'gone'})
    assert preflight.problems(spec, cloud(subnets=None), need(spec)) == []


def test_a_quota_that_exactly_fits_is_no_problem():
    spec = build()
    left = dict(need(spec))
    assert preflight.problems(spec, cloud(quota_left=left), need(spec)) == []
    left['instances'] -= 1
    assert preflight.problems(spec, cloud(quota_left=left), need(spec)) == [
        'quota: instances: this cluster needs 11, the project has 10 left']


def test_several_problems_are_reported_together_and_numbered():
    spec = build({'proxy_flavor': 'nope', 'availability_zone': 'az9'})
    found = preflight.problems(spec, cloud(quota_left={'ports': 0}), need(spec))
    error = preflight.PreflightError(found)
    assert error.problems == tuple(found) and len(found) == 3
    assert str(error).startswith('preflight: the cluster cannot be built, nothing was '
                                 'created (3 problems): 1) flavor: proxy_flavor nope ')
    assert '; 3) quota: ports: this cluster needs 15, the project has 0 left' in str(error)


def test_one_problem_is_one_sentence():
    assert preflight.refusal(['x'], 'resize') == (
        'preflight: the resize cannot be built, nothing was created: x')


def test_a_resize_checks_the_pool_flavor_and_says_resize():
    spec = build()
    index = preflight.flavor_index(FLAVORS)
    groups = [preflight.Nodes('minion', 'flavor_id', 1, 'm9.huge')]
    found = preflight.problems(spec, cloud(quota_left={'instances': 0}),
                               preflight.pool_need(spec, index, 'm9.huge', 1), groups,
                               verb='this resize needs')
    assert found[0].startswith('flavor: flavor_id m9.huge does not exist')
    assert found[-1] == 'quota: instances: this resize needs 1, the project has 0 left'


# ---- what the user sees --------------------------------------------------------------

def test_describe_build_of_the_seed_cluster():
    spec = build(cluster={'master_count': 1}, worker={'node_count': 1})
    assert preflight.describe_build(spec) == (
        'creating 1 master, 1 minion, 2 proxies, 3 storage nodes: 7 servers, '
        '3 volumes of 50 GiB')


def test_describe_build_without_optional_roles_and_with_boot_volumes():
    spec = build({'proxy_count': '0', 'storage_count': '1', 'boot_volume_size': '20'},
                 cluster={'master_count': 1}, worker={'node_count': 0})
    assert preflight.describe_build(spec) == (
        'creating 1 master, 0 minions, 1 storage node: 2 servers, 1 volume of 50 GiB, '
        '2 boot volumes of 20 GiB')


def test_describe_build_of_one_server():
    spec = build({'proxy_count': '0', 'storage_count': '0'},
                 cluster={'master_count': 1}, worker={'node_count': 0})
    assert preflight.describe_build(spec) == 'creating 1 master, 0 minions: 1 server'


def test_notes_keep_what_was_ignored_and_switched_off():
    spec = build({'proxy_count': '0', 'storage_count': '0', 'network_driver': 'calico',
                  'master_lb_floating_ip_enabled': 'false'},
                 template={'docker_volume_size': 5})
    found = preflight.notes(spec)
    assert ('docker_volume_size is ignored: celtic keeps container images on the boot '
            'disk (use boot_volume_size)') in found
    assert 'label network_driver is not used by celtic' in found
    assert any(n.startswith('no proxies (proxy_count 0)') for n in found)
    assert any(n.startswith('no storage nodes (storage_count 0)') for n in found)
    assert any(n.startswith('no floating IPs') for n in found)


def test_with_notes_appends_them_to_the_reason():
    assert preflight.with_notes('done', ()) == 'done'
    assert preflight.with_notes('done', ('a', 'b')) == 'done; note: a; note: b'
    assert preflight.with_notes(None, ('a',)) == 'note: a'
