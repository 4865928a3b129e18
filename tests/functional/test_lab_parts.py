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

"""The lab's own parts, without services: fake cloud, behaviour rules, node simulator.

Fast checks that the harness itself tells the truth: addresses are unique and inside
their subnet, behaviour rules match by name, and the node simulator refuses what a real
node could not use (an undelivered script, a leaked CA key, a non-text file).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import lzma
import tarfile
import threading

import yaml

from magnum_celtic import sample
from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab import node


def test_addresses_are_unique_and_inside_the_subnet(tmp_path):
    cloud = cloud_mod.Cloud(str(tmp_path))
    cloud.initialise()
    with cloud.transaction() as doc:
        subnet = next(s for s in doc['subnets'].values() if s['name'] == 'private-subnet')
        addresses = [cloud.allocate_ip(doc, subnet, 'port-%d' % i, hint='node-%d' % (i % 7))
                     for i in range(200)]
    assert len(set(addresses)) == 200
    network = ipaddress.ip_network(subnet['cidr'])
    assert all(ipaddress.ip_address(a) in network for a in addresses)
    assert subnet['gateway_ip'] not in addresses


def test_the_same_name_gets_the_same_address(tmp_path):
    first, second = [], []
    for target, directory in ((first, 'a'), (second, 'b')):
        cloud = cloud_mod.Cloud(str(tmp_path / directory))
        cloud.initialise()
        with cloud.transaction() as doc:
            subnet = next(s for s in doc['subnets'].values() if s['name'] == 'private-subnet')
            target.extend(cloud.allocate_ip(doc, subnet, 'p%d' % i, hint='c1-master-%d' % i)
                          for i in range(3))
    assert first == second


def test_readers_and_writers_in_threads_of_one_process_share_the_store(tmp_path):
    # heat-engine's threads share one Cloud: a reader must never see the cache dropped
    # by a writer half way through its read (seen as "'NoneType' object is not
    # subscriptable" on a server's port at 50 minions)
    cloud = cloud_mod.Cloud(str(tmp_path))
    cloud.initialise()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            try:
                cloud.find('networks', 'private')
            except BaseException as error:  # noqa: B902 (any failure fails the test)
                errors.append(error)
                return

    def write(index):
        for i in range(150):
            with cloud.transaction() as doc:
                doc.setdefault('ports', {})['p-%d-%d' % (index, i)] = {'id': 'x'}

    readers = [threading.Thread(target=read) for _ in range(4)]
    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    for thread in readers:
        thread.join(60)
    assert errors == []
    assert len(cloud.snapshot()['ports']) == 300


def test_behaviour_rules_match_by_name_first_rule_wins(tmp_path):
    cloud = cloud_mod.Cloud(str(tmp_path))
    cloud.initialise()
    cloud.set_behaviour([{'match': 'c1-minion-1', 'fail': {'step': 's', 'message': 'm'}},
                         {'match': 'c1-*', 'boot_seconds': 7}], {'boot_seconds': 2})
    assert cloud.behaviour('c1-minion-1')['fail'] == {'step': 's', 'message': 'm'}
    assert cloud.behaviour('c1-minion-1')['boot_seconds'] == 2
    assert cloud.behaviour('c1-master-0')['boot_seconds'] == 7
    assert cloud.behaviour('c2-master-0') == {'boot_seconds': 2, 'configure_seconds': 0.0}


#: the library of this release fetches its secrets; the previous release's did not
LIBRARY = 'celtic_fetch_vendordata() { :; }\n'
OLD_LIBRARY = '# lib\n'


def _payload(role: str, secrets: dict[str, str], sources: list[str],
             bundled: dict[str, str], signal: bool = False) -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w') as tar:
        for name, text in bundled.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    bundle = base64.b64encode(lzma.compress(raw.getvalue())).decode()
    params = {k: None for k in node.STACK_KEYS}
    params.update(role=role, pool='default-worker', node_labels={}, node_taints=[])
    files = [
        {'path': '/usr/local/lib/celtic/bundle.txz', 'encoding': 'b64', 'content': bundle},
        {'path': '/etc/celtic/params.json', 'content': json.dumps(params)},
        {'path': '/etc/celtic/pki/ca.crt', 'content': 'cert'},
    ] + [{'path': '/etc/celtic/secrets/' + n, 'permissions': '0600', 'content': c}
         for n, c in secrets.items()]
    if signal:
        files.append({'path': '/etc/celtic/signal.json', 'permissions': '0600',
                      'content': '{}'})
    script = '\n'.join('source "$CELTIC_LIB_DIR/%s"' % s for s in sources)
    files.append({'path': '/usr/local/lib/celtic/%s.sh' % role, 'content': script})
    runcmd = [['bash', '-c', "python3 -c 'x' /usr/local/lib/celtic/bundle.txz "
               "/usr/local/lib/celtic && exec bash /usr/local/lib/celtic/%s.sh" % role]]
    return '#cloud-config\n' + yaml.safe_dump({'write_files': files, 'runcmd': runcmd})


def test_a_complete_payload_passes_the_contract(tmp_path):
    payload = _payload('minion', {}, ['lib/celtic.sh'], {'lib/celtic.sh': LIBRARY})
    role, problems = node.prepare(payload, str(tmp_path))
    assert (role, problems) == ('minion', [])
    assert (tmp_path / 'usr/local/lib/celtic/lib/celtic.sh').read_text() == LIBRARY


def test_a_payload_that_carries_any_secret_fails_the_contract(tmp_path):
    payload = _payload('minion', {'bootstrap-token': 'abcdef.0123456789abcdef'},
                       ['lib/celtic.sh', 'node/kubernetes.sh'], {'lib/celtic.sh': LIBRARY},
                       signal=True)
    payload += '# -----BEGIN PRIVATE KEY-----\n'
    role, problems = node.prepare(payload, str(tmp_path))
    assert role == 'minion'
    assert 'minion.sh sources node/kubernetes.sh, which is not delivered' in problems
    assert 'the payload carries secret files (bootstrap-token)' in problems
    assert 'the payload carries signal.json' in problems
    assert 'the payload carries a private key block' in problems


def test_a_payload_that_spells_a_vendordata_secret_fails_the_contract(tmp_path):
    vendor = tmp_path / 'metadata/openstack/latest/vendor_data2.json'
    vendor.parent.mkdir(parents=True)
    vendor.write_text(json.dumps({'celtic': {
        'secrets': {'bootstrap-token': 'abcdef.0123456789abcdef'},
        'signal': {'key': 'k' * 64}}}))
    payload = _payload('minion', {}, ['lib/celtic.sh'], {'lib/celtic.sh': LIBRARY})
    payload += '# abcdef.0123456789abcdef %s\n' % ('k' * 64)
    _, problems = node.prepare(payload, str(tmp_path))
    assert problems == ['the payload carries secret bootstrap-token',
                        'the payload carries the signal key']


def test_a_payload_of_the_previous_release_keeps_its_own_contract(tmp_path):
    """Its secrets came in the payload: the lab boots it as that release did, so a
    stack the previous release created can be built and migrated here."""
    payload = _payload('minion', {'bootstrap-token': 't'}, ['lib/celtic.sh'],
                       {'lib/celtic.sh': OLD_LIBRARY}, signal=True)
    assert node.prepare(payload, str(tmp_path)) == ('minion', [])
    assert node.is_legacy(str(tmp_path))
    assert node.check_secrets(str(tmp_path), 'minion', legacy=True) == []


def test_what_a_node_ends_up_with_is_exactly_its_roles_secrets(tmp_path):
    from magnum_celtic import pki
    assert node.role_secrets() == {
        role: tuple(sorted(files)) for role, files in pki.role_secrets(
            sample.sample_pki(), proxies=True).items()}
    secrets = tmp_path / 'etc/celtic/secrets'
    secrets.mkdir(parents=True)
    (secrets / 'ca.key').write_text('k')
    (secrets / 'ha-secret').write_text('h')
    (secrets / 'ha-secret').chmod(0o644)
    problems = node.check_secrets(str(tmp_path), 'minion')
    assert problems == ['signal.json is not delivered',
                        'secret bootstrap-token is not delivered',
                        'a minion must not receive ca.key',
                        'a minion must not receive ha-secret']
    for name in node.role_secrets()['master']:
        (secrets / name).write_text('x')
        (secrets / name).chmod(0o600)
    (tmp_path / 'etc/celtic/signal.json').write_text('{}')
    (tmp_path / 'etc/celtic/signal.json').chmod(0o600)
    assert node.check_secrets(str(tmp_path), 'master') == []
    (secrets / 'sa.key').chmod(0o640)
    assert node.check_secrets(str(tmp_path), 'master') == [
        'secret sa.key is readable by others']


def test_non_text_content_is_refused_like_cloud_init(tmp_path):
    payload = '#cloud-config\n' + yaml.safe_dump(
        {'write_files': [{'path': '/etc/celtic/signal.json', 'content': {'a': 1}}]})
    try:
        node.prepare(payload, str(tmp_path))
    except node.PayloadError as error:
        assert 'not text' in str(error)
    else:
        raise AssertionError('a mapping as file content was accepted')
