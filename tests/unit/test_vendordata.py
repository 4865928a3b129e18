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

"""celtic-vendordata on Magnum's real database, objects and certificate manager, with
Heat and Keystone answered at the HTTP boundary (keystonemiddleware runs for real)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import os
import tarfile
import threading
import time

import fixtures
import yaml
from keystonemiddleware import auth_token  # noqa: F401  (registers [keystone_authtoken])

from magnum_celtic import certs
from magnum_celtic import pki
from magnum_celtic import templates
from magnum_celtic import vendordata
from tests.unit import base
from tests.unit import fake_cloud

NOVA_TOKEN = 'nova-vendordata-token'
MEMBER_TOKEN = 'member-token'
PROJECT = 'fake_project'


def user_data(role, cluster_uuid=base.CLUSTER_UUID, pool=None):
    """A role's user-data as Nova stores it: base64 of the #cloud-config Heat built."""
    params = {'cluster_uuid': cluster_uuid, 'role': role}
    if pool:
        params['pool'] = pool
    doc = {'write_files': [{'path': '/usr/local/lib/celtic/bundle.txz', 'content': 'eHo='},
                           {'path': '/etc/celtic/params.json', 'permissions': '0644',
                            'content': json.dumps(params)}]}
    return base64.b64encode(('#cloud-config\n' + yaml.safe_dump(doc)).encode()).decode()


def nova_request(instance_id, data, project=PROJECT, hostname='k1-node'):
    return {'project-id': project, 'instance-id': instance_id, 'image-id': 'debian-13',
            'user-data': data, 'hostname': hostname, 'metadata': {},
            'boot-roles': 'member,reader'}


class Tree:
    """Heat's nested resource listing of a stack tree, row by row as heat-api
    shows them (links to the containing and the nested stack)."""

    def __init__(self, heat, root_id):
        self.heat, self.root_id = heat, root_id
        self.rows = heat.resources.setdefault(root_id, [])

    def href(self, stack_id):
        stack = self.heat.stacks[stack_id]
        return '%s/%s/stacks/%s/%s' % (fake_cloud.HEAT_PUBLIC, PROJECT, stack.name,
                                       stack.id)

    def row(self, stack_id, name, kind, physical='', nested=None):
        links = [{'rel': 'self', 'href': self.href(stack_id) + '/resources/' + name},
                 {'rel': 'stack', 'href': self.href(stack_id)}]
        if nested:
            links.append({'rel': 'nested', 'href': self.href(nested)})
        self.rows.append({'resource_name': name, 'resource_type': kind,
                          'physical_resource_id': nested or physical,
                          'resource_status': 'CREATE_COMPLETE', 'links': links})

    def nested(self, parent_id, name, kind):
        child = self.heat.add('%s-%s-abcdefghijkl' % (self.heat.stacks[parent_id].name,
                                                      name))
        self.row(parent_id, name, kind, nested=child)
        return child

    def ha_group(self, resource, template, servers):
        """masters/proxies/storage: <role>.yaml -> node_group.yaml -> group -> node.yaml"""
        role_stack = self.nested(self.root_id, resource, template)
        group = self.nested(role_stack, 'group', 'node_group.yaml')
        for name, kind in (('server_group', 'OS::Nova::ServerGroup'),
                           ('wait_handle', 'OS::Heat::WaitConditionHandle'),
                           ('config', 'OS::Heat::CloudConfig'),
                           ('wait', 'OS::Heat::WaitCondition')):
            self.row(group, name, kind, physical=name + '-id')
        members = self.nested(group, 'nodes', 'OS::Heat::ResourceGroup')
        for index, server in enumerate(servers):
            node = self.nested(members, str(index), 'node.yaml')
            self.row(node, 'server', 'OS::Nova::Server', physical=server)
        return group

    def pool(self, parent_id, servers, resource='minions'):
        """minion.yaml (nested under the root, or the root of a nodegroup's stack)"""
        pool = (parent_id if resource is None
                else self.nested(parent_id, resource, 'minion.yaml'))
        for name, kind in (('wait_handle', 'OS::Heat::WaitConditionHandle'),
                           ('config', 'OS::Heat::CloudConfig'),
                           ('wait', 'OS::Heat::WaitCondition')):
            self.row(pool, name, kind, physical=name + '-id')
        members = self.nested(pool, 'nodes', 'minion_nodes.yaml')
        self.row(members, 'server_group', 'OS::Nova::ServerGroup', physical='sg')
        for index, server in enumerate(servers):
            self.row(members, str(index), 'OS::Nova::Server', physical=server)
        return pool


class VendordataTestCase(base.DriverTestCase):

    def setUp(self):
        super().setUp()
        self.keystone.valid_tokens.update({NOVA_TOKEN: ('service-project-id', ['service']),
                                           MEMBER_TOKEN: (PROJECT, ['member'])})
        self.cluster = self.stored_cluster()
        tree = Tree(self.heat, self.cluster.stack_id)
        self.groups = {
            'master': tree.ha_group('masters', 'master.yaml', ['master-0', 'master-1']),
            'proxy': tree.ha_group('proxies', 'proxy.yaml', ['proxy-0']),
            'storage': tree.ha_group('storage', 'storage.yaml', ['storage-0']),
            'minion': tree.pool(self.cluster.stack_id, ['minion-0', 'minion-1'])}
        gpu = self.add_pool(self.cluster, name='gpu')
        self.groups['gpu'] = Tree(self.heat, gpu.stack_id).pool(
            gpu.stack_id, ['gpu-0'], resource=None)
        self.service = vendordata.Service()
        self.pki = certs.cluster_pki(self.admin_context(), self.cluster)
        self.warnings = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        # the database fixture's alembic logging config disables loggers made before it
        logger = logging.getLogger(vendordata.__name__)
        self.addCleanup(setattr, logger, 'disabled', logger.disabled)
        logger.disabled = False
        self._configure_authtoken()

    def _configure_authtoken(self):
        # magnum.conf's [keystone_authtoken], which keystonemiddleware reads
        group = 'keystone_authtoken'
        self.configure_password_auth(group)
        self.config(www_authenticate_uri=fake_cloud.KEYSTONE, group=group)

    def ask(self, instance_id, role, **kwargs):
        pool = kwargs.pop('pool', None)
        return self.service.vendordata(nova_request(
            instance_id, user_data(role, pool=pool, **kwargs)))

    # ---- what each role receives -------------------------------------------------------

    def test_a_master_gets_exactly_the_master_secrets_and_its_signal_key(self):
        answer = self.ask('master-1', 'master')
        self.assertEqual({'ca.key', 'etcd-ca.key', 'front-proxy-ca.key', 'sa.key',
                          'bootstrap-token', 'ha-secret'}, set(answer['secrets']))
        # today's contents: what request.py sent as the masters' hidden parameters
        self.assertEqual(self.pki.ca.key, answer['secrets']['ca.key'])
        self.assertEqual(self.pki.service_account_key, answer['secrets']['sa.key'])
        self.assertEqual(self.pki.bootstrap_token, answer['secrets']['bootstrap-token'])
        self.assertEqual(self.pki.master_ha_secret, answer['secrets']['ha-secret'])
        self.assertEqual((1, base.CLUSTER_UUID, 'master', 'k1-node'),
                         (answer['version'], answer['cluster_uuid'], answer['role'],
                          answer['node']))
        self.assertEqual({'url': base.VENDORDATA_URL + '/v1/signal',
                          'cluster_uuid': base.CLUSTER_UUID, 'instance_id': 'master-1',
                          'key': pki.signal_key(self.pki.seed, 'master-1')},
                         answer['signal'])

    def test_a_master_gets_the_add_on_files_of_its_own_stack(self):
        """The masters' optional add-ons travel here (fragments/bundles.yaml's vendordata
        section), as the cluster stack holds them (rendered with the bundle in their
        user_data, which names them by SHA-256); no other role gets files. Heat's files
        are read once for every master of the stack."""
        rendered = templates.TemplateSet(templates.default_dir())
        served = rendered.served_files()
        self.heat.stacks[self.cluster.stack_id].files.update(served)
        files = self.ask('master-0', 'master')['files']
        self.assertEqual(served['vendordata/master.txz.b64'], files)
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(rendered.bundle('master'))),
                          mode='r:xz') as tar:
            digest = tar.extractfile(templates.VENDORDATA_DIGEST).read().decode().strip()
        self.assertEqual(hashlib.sha256(files.encode()).hexdigest(), digest)
        self.assertEqual(files, self.ask('master-1', 'master')['files'])
        self.assertEqual(1, self.heat.files_reads)
        for instance, role, pool in (('proxy-0', 'proxy', None),
                                     ('storage-0', 'storage', None),
                                     ('minion-0', 'minion', 'default-worker')):
            with self.subTest(role=role):
                self.assertNotIn('files', self.ask(instance, role, pool=pool))

    def test_a_master_of_a_stack_from_an_earlier_release_gets_no_files(self):
        """Such a stack holds no served files: its masters' user_data carries every
        file (and no digest to check), so the answer has secrets only."""
        answer = self.ask('master-0', 'master')
        self.assertNotIn('files', answer)
        self.assertIn('ca.key', answer['secrets'])

    def test_a_proxy_gets_the_lb_key_and_its_ha_secret_only(self):
        answer = self.ask('proxy-0', 'proxy')
        self.assertEqual({'celtic-lb.key': self.pki.lb_client.key,
                          'ha-secret': self.pki.proxy_ha_secret}, answer['secrets'])

    def test_a_minion_of_a_nodegroup_gets_only_its_token(self):
        answer = self.ask('gpu-0', 'minion', pool='gpu')
        self.assertEqual({'bootstrap-token': self.pki.bootstrap_token}, answer['secrets'])
        self.assertEqual({'bootstrap-token': self.pki.bootstrap_token},
                         self.ask('minion-1', 'minion', pool='default-worker')['secrets'])

    def test_a_storage_node_gets_no_secret(self):
        answer = self.ask('storage-0', 'storage')
        self.assertEqual({}, answer['secrets'])
        self.assertEqual('storage', answer['role'])

    # ---- who gets nothing --------------------------------------------------------------

    def test_a_non_celtic_instance_gets_nothing_without_a_database_or_heat_call(self):
        plain = base64.b64encode(b'#cloud-config\npackages: [nginx]\n').decode()
        for data in (plain, None, '', 'not base64!'):
            self.assertEqual({}, self.service.vendordata(nova_request('vm-1', data)))
        self.assertEqual([], self.heat.calls)
        self.assertEqual('', self.warnings.output)

    def test_an_instance_of_another_project_gets_nothing(self):
        answer = self.service.vendordata(nova_request(
            'master-0', user_data('master'), project='intruder'))
        self.assertEqual({}, answer)
        self.assertIn('instance master-0 refused: cluster %s is not of project intruder'
                      % base.CLUSTER_UUID, self.warnings.output)

    def test_a_server_outside_the_clusters_stacks_gets_nothing(self):
        self.assertEqual({}, self.ask('copied-user-data', 'master'))
        self.assertIn('not a server of the stacks of cluster', self.warnings.output)
        self.assertEqual({}, self.ask('master-0', 'master',
                                      cluster_uuid='c0ffee00-0000-4000-8000-000000000000'))

    def test_a_forged_role_hint_is_refused(self):
        self.assertEqual({}, self.ask('minion-0', 'master'))
        self.assertEqual({}, self.ask('proxy-0', 'master'))
        self.assertEqual({}, self.ask('gpu-0', 'storage'))
        self.assertIn('instance minion-0 refused: user-data says master, Heat says minion',
                      self.warnings.output)
        for secret in (self.pki.ca.key, self.pki.bootstrap_token):
            self.assertNotIn(secret, self.warnings.output)

    def test_heat_unreachable_serves_nothing_and_says_why_without_a_traceback(self):
        self.heat.unreachable()
        self.assertEqual({}, self.ask('master-0', 'master'))
        self.assertIn('vendordata for instance master-0 not served: Heat is unavailable',
                      self.warnings.output)
        self.assertNotIn('Traceback', self.warnings.output)

    # ---- Heat is read once per stack tree ----------------------------------------------

    def test_many_nodes_of_one_cluster_cost_one_listing(self):
        for instance, role in (('master-0', 'master'), ('master-1', 'master'),
                               ('proxy-0', 'proxy'), ('minion-0', 'minion'),
                               ('minion-1', 'minion')):
            self.assertEqual(role, self.ask(instance, role)['role'])
        listings = [c for c in self.heat.calls if c.path.endswith('/resources')]
        self.assertEqual(1, len(listings))
        self.assertEqual({'nested_depth': str(vendordata.NESTED_DEPTH)}, listings[0].query)

    def add_minion(self, index, server):
        """A resize: one more server in the default pool's servers stack."""
        servers_stack = self.heat.resources[self.cluster.stack_id][-1]['links'][1][
            'href'].rsplit('/', 1)[1]
        Tree(self.heat, self.cluster.stack_id).row(servers_stack, str(index),
                                                   'OS::Nova::Server', physical=server)
        return servers_stack

    def listings(self):
        return [(c.path.split('/')[-2], c.query.get('nested_depth'))
                for c in self.heat.calls if c.path.endswith('/resources')]

    def test_a_minion_added_later_is_found_in_its_pool_without_reading_the_tree(self):
        self.ask('minion-0', 'minion')
        servers_stack = self.add_minion(2, 'minion-2')
        self.assertEqual('minion', self.ask('minion-2', 'minion')['role'])
        # the tree once (create), then the pool's servers stack alone (depth 0)
        self.assertEqual([(self.cluster.stack_id, str(vendordata.NESTED_DEPTH)),
                          (servers_stack, None)], self.listings())
        self.assertEqual((1, 1), (self.service.index.reads, self.service.index.pool_reads))
        # its signal goes to the pool's handle
        self.assertEqual(202, self.signal('minion-2', id='k1-minion-2')[0])
        self.assertEqual(self.groups['minion'], self.heat.signals[0][0])

    def test_a_server_outside_the_pools_makes_the_tree_be_read_again(self):
        self.ask('minion-0', 'minion')
        self.service.index.clock = lambda base=__import__('time').monotonic(): base + 5
        # a master added later, and an instance that claims to be a minion but is in
        # no pool (a master's server): the pools, then the tree, then the refusal
        master_node = next(r for r in self.heat.resources[self.cluster.stack_id]
                           if r['physical_resource_id'] == 'master-1')
        Tree(self.heat, self.cluster.stack_id).row(
            master_node['links'][1]['href'].rsplit('/', 1)[1], 'spare',
            'OS::Nova::Server', physical='master-9')
        self.assertEqual({}, self.ask('master-9', 'minion'))
        self.assertEqual((2, 1), (self.service.index.reads, self.service.index.pool_reads))
        self.assertIn('user-data says minion, Heat says master', self.warnings.output)

    def test_a_cluster_pki_is_derived_once_and_heat_read_with_one_token(self):
        derived = []
        real = self.service.clusters.pki
        self.service.clusters.pki = lambda context, cluster: derived.append(1) or real(
            context, cluster)
        tokens = len(self.keystone.token_requests)
        for instance, role in (('master-0', 'master'), ('master-1', 'master'),
                               ('proxy-0', 'proxy'), ('minion-0', 'minion')):
            self.assertEqual(role, self.ask(instance, role)['role'])
        self.assertEqual(202, self.signal('master-0')[0])
        self.assertEqual(1, len(derived))
        # Magnum's service user: one token for the listing and the signal, not one each
        self.assertEqual(1, len(self.keystone.token_requests) - tokens)

    def test_heat_reads_are_not_cut_at_the_status_polls_bound(self):
        # [celtic] heat_read_timeout bounds the status poll, which holds the cluster's
        # lock; a whole-tree read at Heat's cap takes about a minute
        self.config(heat_read_timeout=7, group='celtic')
        self.assertEqual('master', self.ask('master-0', 'master')['role'])
        reads = [r.timeout for r in self.http.request_history
                 if r.method == 'GET' and '/stacks' in r.path]
        self.assertTrue(reads)
        self.assertEqual({None}, set(reads))

    def test_new_certificates_are_derived_anew_at_once(self):
        before = self.ask('master-0', 'master')['secrets']['ca.key']
        self.assertEqual(self.pki.ca.key, before)
        # a CA rotation stores the new CA under a new ref
        self.cluster.ca_cert_ref = None
        self.cluster.save()
        certs.cert_manager.generate_certificates_to_cluster(
            self.cluster, context=self.admin_context())
        self.cluster.save()
        after = self.ask('master-0', 'master')['secrets']['ca.key']
        self.assertNotEqual(before, after)
        self.assertEqual(certs.cluster_pki(self.admin_context(), self.cluster).ca.key,
                         after)
        self.assertEqual(2, self.service.pkis.builds)

    def test_a_kept_pki_expires(self):
        self.ask('master-0', 'master')
        self.service.pkis.clock = lambda base=__import__('time').monotonic(): (
            base + vendordata.CONF.celtic_vendordata.index_seconds + 1)
        self.ask('master-0', 'master')
        self.assertEqual(2, self.service.pkis.builds)

    # ---- the signal relay --------------------------------------------------------------

    def signal(self, instance_id, body=None, key=None, **fields):
        doc = dict({'cluster_uuid': base.CLUSTER_UUID, 'instance_id': instance_id,
                    'status': 'SUCCESS', 'reason': 'ready', 'id': 'k1-master-0',
                    'data': ''}, **fields)
        raw = body if body is not None else json.dumps(doc).encode()
        key = key or pki.signal_key(self.pki.seed, instance_id)
        signature = 'sha256=' + hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
        return self.service.signal(raw, signature)

    def test_a_signal_is_relayed_to_the_wait_handle_of_the_nodes_group(self):
        self.assertEqual((202, {'status': 'relayed'}),
                         self.signal('master-0', reason='master-0 is ready'))
        self.assertEqual([(self.groups['master'], 'wait_handle',
                           {'status': 'SUCCESS', 'reason': 'master-0 is ready',
                            'data': '', 'id': 'k1-master-0'})], self.heat.signals)
        self.assertEqual(202, self.signal('gpu-0', status='FAILURE', id='k1-gpu-0')[0])
        self.assertEqual((self.groups['gpu'], 'wait_handle'), self.heat.signals[1][:2])
        self.assertEqual('FAILURE', self.heat.signals[1][2]['status'])
        signal_calls = [c for c in self.heat.calls if c.path.endswith('/signal')]
        self.assertEqual({PROJECT}, {c.project for c in signal_calls})

    def test_master_0s_removal_report_goes_to_the_members_handle_of_its_group(self):
        self.assertEqual(202, self.signal('master-0', handle='members', id='members',
                                          reason='k1-master-0: masters left')[0])
        self.assertEqual([(self.groups['master'], 'members_handle',
                           {'status': 'SUCCESS', 'reason': 'k1-master-0: masters left',
                            'data': '', 'id': 'members'})], self.heat.signals)
        # no other handle can be named
        self.assertEqual((400, {'error': 'handle must be one of members'}),
                         self.signal('master-0', handle='wait'))
        self.assertEqual(400, self.signal('master-0', handle=['members'])[0])
        self.assertEqual(1, len(self.heat.signals))

    def test_the_signal_of_a_node_vendordata_served_reads_no_tree_again(self):
        self.ask('gpu-0', 'minion', pool='gpu')
        self.assertEqual(202, self.signal('gpu-0')[0])
        listings = [c.path for c in self.heat.calls if c.path.endswith('/resources')]
        self.assertEqual(['celtic-k1-5d12f6fd-gpu/%s/resources' % self.nodegroup(
            self.cluster, 'gpu').stack_id], listings)

    def test_a_wrong_signature_is_401_and_nothing_reaches_heat(self):
        wrong = pki.signal_key(self.pki.seed, 'master-1')
        self.assertEqual((401, {'error': 'unauthorized'}),
                         self.signal('master-0', key=wrong))
        self.assertEqual(401, self.service.signal(b'{"cluster_uuid": "%s", "instance_id":'
                                                  b' "master-0"}' % base.CLUSTER_UUID.encode(),
                                                  None)[0])
        self.assertEqual([], self.heat.signals)

    def test_a_signal_that_is_not_valid_is_refused_naming_the_field(self):
        self.assertEqual(400, self.signal('master-0', status='DONE')[0])
        self.assertIn('reason', self.signal('master-0', reason='x' * 1001)[1]['error'])
        self.assertEqual(400, self.service.signal(b'nonsense', 'sha256=00')[0])
        self.assertEqual([], self.heat.signals)

    def test_heat_unreachable_makes_the_node_retry(self):
        self.signal('master-0')      # the index is read
        self.heat.unreachable('POST')
        self.assertEqual(503, self.signal('master-0')[0])

    def test_a_signal_is_answered_once_heat_has_recorded_it(self):
        pauses = []
        self.service.relay.sleep = pauses.append
        self.heat.signal_lag_reads = 2      # heat-engine writes it after two reads
        self.assertEqual(202, self.signal('master-0')[0])
        self.assertEqual(3, self.heat.metadata_reads)
        self.assertEqual([0.02, 0.05], pauses)

    def test_a_signal_whose_record_cannot_be_read_is_still_relayed(self):
        self.signal('master-0')      # the index is read
        self.heat.unreachable('GET')
        self.assertEqual((202, {'status': 'relayed'}), self.signal('master-1'))
        self.assertEqual(2, len(self.heat.signals))

    # ---- the cluster source of the labs without Magnum --------------------------------

    def test_the_lab_source_answers_as_magnum_does_for_the_stacks_it_registered(self):
        from magnum_celtic.lab import heat_clusters
        path = self.useFixture(fixtures.TempDir()).join('vendordata/clusters.json')
        root = self.heat.stacks[self.cluster.stack_id].name
        registry = heat_clusters.Registry(path)
        registry.add(base.CLUSTER_UUID, PROJECT, root, self.pki)
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)
        magnum = self.service
        self.service = vendordata.Service(
            clusters=heat_clusters.Registered(path, pending_seconds=0))
        # registered, but Heat has not given the stack an id yet
        self.assertEqual({}, self.ask('master-1', 'master'))
        self.assertIn('cluster %s has no stack' % base.CLUSTER_UUID, self.warnings.output)
        registry.created(root, self.cluster.stack_id)
        for instance, role in (('master-1', 'master'), ('proxy-0', 'proxy'),
                               ('storage-0', 'storage'), ('minion-0', 'minion')):
            request = nova_request(instance, user_data(role))
            self.assertEqual(magnum.vendordata(request), self.service.vendordata(request))
            self.assertEqual(role, self.service.vendordata(request)['role'])
        # the same checks refuse the same requests
        self.assertEqual({}, self.service.vendordata(
            nova_request('master-0', user_data('master'), project='intruder')))
        self.assertEqual({}, self.ask('minion-0', 'master'))
        self.assertEqual({}, self.ask('master-0', 'master',
                                      cluster_uuid='c0ffee00-0000-4000-8000-000000000000'))
        self.assertIn('cluster c0ffee00-0000-4000-8000-000000000000 does not exist',
                      self.warnings.output)
        # and the signal relay reaches the group's wait handle
        self.assertEqual(202, self.signal('master-0')[0])
        self.assertEqual((self.groups['master'], 'wait_handle'), self.heat.signals[-1][:2])
        self.assertEqual(401, self.signal('master-0', key=pki.signal_key(b'x', 'master-0'))[0])

    # ---- over HTTP, behind keystonemiddleware -----------------------------------------

    def call(self, path, body, **headers):
        app = vendordata.Application(self.service)
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        environ = {'REQUEST_METHOD': 'POST', 'PATH_INFO': path, 'SERVER_NAME': 'x',
                   'SERVER_PORT': '9518', 'wsgi.url_scheme': 'http',
                   'CONTENT_LENGTH': str(len(raw)), 'CONTENT_TYPE': 'application/json',
                   'wsgi.input': io.BytesIO(raw)}
        environ.update({'HTTP_' + k.upper().replace('-', '_'): v
                        for k, v in headers.items()})
        answer = {}

        def start_response(status, response_headers, exc_info=None):
            answer['status'] = int(status.split()[0])
        body = b''.join(app(environ, start_response))
        return answer['status'], json.loads(body) if body.startswith(b'{') else body

    def test_nova_with_a_service_token_gets_the_answer(self):
        status, doc = self.call('/v1/vendordata', nova_request('minion-0',
                                                               user_data('minion')),
                                x_auth_token=NOVA_TOKEN)
        self.assertEqual(200, status)
        self.assertEqual({'bootstrap-token': self.pki.bootstrap_token}, doc['secrets'])

    def test_no_token_a_bad_token_or_a_member_token_gets_nothing(self):
        request = nova_request('master-0', user_data('master'))
        self.assertEqual(401, self.call('/v1/vendordata', request)[0])
        self.assertEqual(401, self.call('/v1/vendordata', request,
                                        x_auth_token='forged')[0])
        status, doc = self.call('/v1/vendordata', request, x_auth_token=MEMBER_TOKEN)
        self.assertEqual(403, status)
        self.assertNotIn('secrets', doc)

    def test_the_signal_route_needs_no_token_but_its_signature(self):
        raw = json.dumps({'cluster_uuid': base.CLUSTER_UUID, 'instance_id': 'proxy-0',
                          'status': 'SUCCESS', 'reason': '', 'id': 'p', 'data': ''}).encode()
        key = pki.signal_key(self.pki.seed, 'proxy-0')
        good = 'sha256=' + hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
        self.assertEqual(202, self.call('/v1/signal', raw, x_celtic_signature=good)[0])
        self.assertEqual(401, self.call('/v1/signal', raw, x_celtic_signature='sha256=0')[0])
        self.assertEqual(413, self.call('/v1/signal', b'x' * (64 * 1024 + 1))[0])
        self.assertEqual(1, len(self.heat.signals))


class _RecordingHeat:
    """Heat's signal API as heat-api and heat-engine answer it: a signal is recorded in
    the handle's metadata some reads after heat-api took it."""

    def __init__(self, lag_reads=1, gone=()):
        self.lag_reads = lag_reads
        self.gone = set(gone)
        self.guard = threading.Lock()
        self.pending: dict[str, list] = {}
        self.recorded: dict[str, set] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}

    def signal(self, stack_name, stack_id, resource_name, data):
        if stack_id in self.gone:
            return False
        with self.guard:
            self.in_flight[stack_id] = self.in_flight.get(stack_id, 0) + 1
            self.most_in_flight[stack_id] = max(self.most_in_flight.get(stack_id, 0),
                                                self.in_flight[stack_id])
            self.pending.setdefault(stack_id, []).append([data['id'], self.lag_reads])
        return True

    def signal_ids(self, stack_name, stack_id, resource_name):
        time.sleep(0.001)
        with self.guard:
            for entry in list(self.pending.get(stack_id, [])):
                entry[1] -= 1
                if entry[1] < 0:
                    self.pending[stack_id].remove(entry)
                    self.recorded.setdefault(stack_id, set()).add(entry[0])
                    self.in_flight[stack_id] -= 1
            return set(self.recorded.get(stack_id, ()))


def test_signals_to_one_handle_go_one_at_a_time_and_handles_do_not_wait_for_each_other():
    heat = _RecordingHeat(lag_reads=2)
    relay = vendordata.HandleRelay(sleep=lambda seconds: time.sleep(0.001))
    threads = [threading.Thread(target=relay.relay,
                                args=(heat, 'pool-%d' % (i % 2), 'stack-%d' % (i % 2),
                                      'wait_handle', {'id': 'node-%d' % i}))
               for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert heat.recorded == {'stack-0': {'node-%d' % i for i in range(0, 20, 2)},
                             'stack-1': {'node-%d' % i for i in range(1, 20, 2)}}
    assert heat.most_in_flight == {'stack-0': 1, 'stack-1': 1}
    assert relay._turns == {}


def test_a_signal_heat_does_not_record_in_time_lets_the_next_one_go():
    now = [0.0]
    relay = vendordata.HandleRelay(clock=lambda: now[0], record_seconds=1.0,
                                   sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    heat = _RecordingHeat(lag_reads=10 ** 6)
    assert relay.relay(heat, 'pool', 'stack', 'wait_handle', {'id': 'node-0'}) is True
    assert 1.0 <= now[0] < 1.5
    assert relay.relay(_RecordingHeat(gone={'stack'}), 'pool', 'stack', 'wait_handle',
                       {'id': 'node-1'}) is False


def test_placements_name_the_role_from_the_group_a_server_hangs_from():
    assert vendordata.placements([]) == {}
    assert vendordata.read_hint(base64.b64encode(b'/etc/celtic/params.json: [').decode()) \
        is None
