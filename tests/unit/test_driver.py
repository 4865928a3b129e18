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

"""The celtic driver driven by Magnum's own conductor handlers and periodic job.

Magnum 23's objects, sqlite database, conductor handlers, periodic status job and
x509keypair certificate manager run for real; python-heatclient and keystoneauth1 run
for real against Heat and Keystone answered by requests_mock (tests/unit/fake_cloud).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from unittest import mock

import fixtures
import yaml
from magnum.common import exception
from magnum.conductor.handlers import ca_conductor
from magnum.conductor.handlers import cluster_conductor
from magnum.conductor.handlers import nodegroup_conductor
from magnum.conductor.handlers.common import cert_manager
from magnum.drivers.common import driver as magnum_driver
from magnum.drivers.common import k8s_monitor
from magnum import objects
from magnum.tests import fake_notifier
from magnum.tests.unit.objects import utils as obj_utils
from oslo_utils import uuidutils

from magnum_celtic import certs
from magnum_celtic import driver
from magnum_celtic import pki
from magnum_celtic import request as req
from magnum_celtic import status
from tests.unit import base
from tests.unit import fake_cloud

Status = base.Status
CA_REFS = ('ca_cert_ref', 'etcd_ca_cert_ref', 'front_proxy_ca_cert_ref',
           'magnum_cert_ref')
WAIT_FAILURE = ('Resource CREATE failed: WaitConditionFailure: resources.masters.'
                'resources.group.resources.wait: k1-master-1: step kubeadm-init '
                'failed: [ERROR Port-6443]: Port 6443 is in use')


def _text(pem):
    return pem.decode() if isinstance(pem, bytes) else pem


def _events():
    return [(m.event_type, m.priority) for m in fake_notifier.NOTIFICATIONS]


# ---- create ----------------------------------------------------------------------------

class CreateClusterTest(base.DriverTestCase):

    def create(self, cluster=None, timeout=45, masters=3, workers=2):
        cluster = cluster or self.new_cluster()
        cluster_conductor.Handler().cluster_create(
            self.user_context, cluster, masters, workers, timeout)
        return self.reload()

    def test_create_sets_stack_id_and_returns_while_the_stack_is_in_progress(self):
        stored = self.create()
        stack = self.heat.only_stack()
        self.assertEqual(stack.id, stored.stack_id)
        self.assertEqual('CREATE_IN_PROGRESS', stack.status)
        self.assertEqual(Status.CREATE_IN_PROGRESS, stored.status)
        # One POST and nothing else: the driver does not wait for Heat.
        self.assertEqual(['POST'], [c.method for c in self.heat.calls])
        self.assertEqual({stack.id}, {ng.stack_id for ng in stored.nodegroups})

    def test_create_says_what_is_being_built(self):
        stored = self.create()
        self.assertEqual('creating 3 masters, 2 minions, 2 proxies, 3 storage nodes: '
                         '10 servers, 3 volumes of 50 GiB', stored.status_reason)

    def test_create_saves_magnums_certificate_refs_before_anything_else(self):
        # Magnum sets the refs on the object only and saves them after the hook: a
        # conductor killed inside the hook must not leave the certificates unreferenced
        class Killed(BaseException):
            pass
        cluster = self.new_cluster()
        with mock.patch.object(driver.adapters, 'cluster_spec', side_effect=Killed):
            self.assertRaises(Killed, cluster_conductor.Handler().cluster_create,
                              self.user_context, cluster, 3, 2, 45)
        stored = self.reload()
        self.assertEqual(Status.CREATE_IN_PROGRESS, stored.status)
        refs = {getattr(stored, r) for r in CA_REFS}
        self.assertEqual(4, len(refs - {None}))
        self.assertEqual(refs, {kp.uuid for kp in
                                objects.X509KeyPair.list(self.user_context)})
        self.assertEqual([], self.heat.calls)

    def test_a_create_a_poll_gave_up_sends_nothing_and_keeps_its_refs(self):
        generate = cert_manager.generate_certificates_to_cluster

        def slow_step(cluster, context=None):
            generate(cluster, context=context)
            # a poll in another conductor gave the create up meanwhile
            stored = objects.Cluster.get_by_uuid(self.user_context, cluster.uuid)
            stored.status = Status.CREATE_FAILED
            stored.status_reason = 'magnum-conductor stopped during ...'
            stored.save()
        cluster = self.new_cluster()
        with mock.patch.object(cert_manager, 'generate_certificates_to_cluster',
                               side_effect=slow_step):
            self.assertRaises(exception.MagnumException,
                              cluster_conductor.Handler().cluster_create,
                              self.user_context, cluster, 3, 2, 45)
        stored = self.reload()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertIn('the create was given up before the celtic driver started it',
                      stored.status_reason)
        self.assertEqual([], self.heat.calls)
        self.assertEqual({getattr(stored, r) for r in CA_REFS},
                         {kp.uuid for kp in objects.X509KeyPair.list(self.user_context)})

    def test_create_honours_the_requested_create_timeout(self):
        self.create(timeout=45)
        request = self.heat.only_stack().request
        self.assertEqual(45, request['timeout_mins'])
        self.assertEqual(45 * 60, request['parameters']['wait_timeout'])
        self.assertTrue(request['disable_rollback'])

    def test_create_without_a_timeout_falls_back_to_celtic_create_timeout(self):
        self.config(create_timeout=75, group='celtic')
        self.create(cluster=self.new_cluster(create_timeout=None), timeout=None)
        self.assertEqual(75, self.heat.only_stack().request['timeout_mins'])

    def test_create_sends_the_request_with_the_users_token_to_the_catalog_endpoint(self):
        self.create()
        call = self.heat.calls[0]
        self.assertEqual(('heat.example.test:8004', 'fake_project'),
                         (call.host, call.project))
        self.assertEqual(fake_cloud.USER_TOKEN, call.token)
        self.assertEqual([], self.keystone.token_requests)

    def test_heat_client_endpoint_type_selects_the_catalog_interface(self):
        self.config(endpoint_type='internalURL', group='heat_client')
        self.create()
        self.assertEqual('heat-internal.example.test:8004', self.heat.calls[0].host)

    def test_create_hands_magnums_ca_certificates_and_no_secret_to_the_stack(self):
        stored = self.create()
        request = self.heat.only_stack().request
        params = request['parameters']
        sent = json.dumps(request)
        for kind, prefix in ((None, 'ca'), ('etcd', 'etcd_ca'),
                             ('front-proxy', 'front_proxy_ca')):
            cert = cert_manager.get_cluster_ca_certificate(stored, self.user_context,
                                                           kind)
            self.assertEqual(_text(cert.get_certificate()), params[prefix + '_cert'])
            self.assertNotIn(prefix + '_key', params)
        self.assertEqual(3, len({params['ca_cert'], params['etcd_ca_cert'],
                                 params['front_proxy_ca_cert']}))
        self.assertEqual(pki.discovery_hash(params['ca_cert']),
                         params['discovery_hash'])
        self.assertEqual('TOKEN_SIGNAL', params['signal_transport'])
        secrets = certs.cluster_pki(self.user_context, stored)
        self.assertNotIn('PRIVATE KEY', sent)
        for value in (secrets.bootstrap_token, secrets.master_ha_secret,
                      secrets.proxy_ha_secret):
            self.assertNotIn(value, sent)

    def test_create_renders_counts_flavors_and_labels_from_the_cluster(self):
        cluster = self.new_cluster(labels={'kube_tag': 'v1.35.2', 'proxy_count': '0',
                                           'storage_count': '3'})
        self.create(cluster=cluster, masters=1, workers=4)
        request = self.heat.only_stack().request
        params = request['parameters']
        self.assertEqual((1, 4, 0, 3), (params['master_count'], params['minion_count'],
                                        params['proxy_count'],
                                        params['storage_count']))
        self.assertEqual(('m1.large', 'm1.medium', 'debian-13', 'default'),
                         (params['master_flavor'], params['minion_flavor'],
                          params['image'], params['ssh_key_name']))
        self.assertEqual(base.EXTERNAL_NETWORK, params['external_network'])
        self.assertEqual(['192.0.2.53'], params['dns_nameservers'])
        self.assertEqual('v1.35.2', params['node_settings']['kube_tag'])
        self.assertIn('environments/no_proxies.yaml', request['environment_files'])
        self.assertEqual('', params['lb_client_cert'])

    def test_bad_label_fails_the_create_before_anything_is_sent_to_heat(self):
        cluster = self.new_cluster(labels={'proxy_count': 'two'})
        self.assertRaises(exception.InvalidParameterValue, self.create, cluster)
        stored = self.reload()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertIn('label proxy_count must be an integer from 0 to 16, got "two"',
                      stored.status_reason)
        self.assertEqual([], self.heat.calls)

    def test_even_master_count_fails_the_create_naming_master_count(self):
        self.assertRaises(exception.InvalidParameterValue, self.create, masters=2)
        self.assertIn('master_count must be an odd number', self.reload().status_reason)
        self.assertEqual([], self.heat.calls)

    def test_heat_400_fails_the_create_with_heats_own_message(self):
        self.heat.fail('POST', 400, 'StackValidationFailed',
                       'Property error: resources.network.properties.cidr: '
                       '"10.0.0.0/33" does not validate')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        stored = self.reload()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertEqual('Heat rejected the stack celtic-k1-5d12f6fd: Property error: '
                         'resources.network.properties.cidr: "10.0.0.0/33" does not '
                         'validate', stored.status_reason)

    def test_heats_resource_limit_error_names_max_resources_per_stack(self):
        self.heat.fail('POST', 400, 'RequestLimitExceeded',
                       'Request limit exceeded: Maximum resources per stack exceeded.')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        reason = self.reload().status_reason
        self.assertIn('max_resources_per_stack', reason)
        self.assertIn('heat.conf', reason)
        self.assertIn('[celtic] heat_max_resources_per_stack', reason)

    def test_too_many_workers_for_the_stack_limit_are_refused_before_heat(self):
        self.config(heat_max_resources_per_stack=120, group='celtic')
        self.assertRaises(exception.InvalidParameterValue, self.create, workers=200)
        reason = self.reload().status_reason
        self.assertIn('200 workers in the default nodegroup need', reason)
        self.assertIn('max_resources_per_stack', reason)
        self.assertEqual([], self.heat.calls)

    def test_without_celtic_vendordata_no_cluster_is_created(self):
        self.config(public_url=None, group='celtic_vendordata')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        reason = self.reload().status_reason
        self.assertIn('celtic-vendordata', reason)
        self.assertIn('[celtic_vendordata] public_url', reason)
        self.assertEqual([], self.heat.calls)

    def test_heat_unreachable_fails_the_create_saying_so(self):
        self.heat.unreachable()
        self.assertRaises(exception.MagnumException, self.create)
        stored = self.reload()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertIn('Heat is unavailable for the stack celtic-k1-5d12f6fd',
                      stored.status_reason)

    def test_a_stack_name_heat_already_has_is_reported_as_busy(self):
        self.heat.add('celtic-k1-5d12f6fd')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertIn('The Stack (celtic-k1-5d12f6fd) already exists',
                      self.reload().status_reason)

    def test_nodes_get_the_configured_ca_bundle(self):
        bundle = os.path.join(self.useFixture(fixtures.TempDir()).path, 'ca.pem')
        with open(bundle, 'w') as handle:
            handle.write('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
        self.config(node_openstack_ca_file=bundle, group='celtic')
        self.create()
        self.assertIn('MIIB', self.heat.only_stack().request['parameters']['openstack_ca'])

    def test_an_unreadable_node_ca_bundle_fails_the_create_naming_the_file(self):
        self.config(openstack_ca_file='/nonexistent/ca.pem', group='drivers')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertIn('cannot read the CA bundle for nodes /nonexistent/ca.pem',
                      self.reload().status_reason)


class ExistingNetworkTest(base.DriverTestCase):
    """A template naming an existing network but no subnet: the driver asks Neutron."""

    def setUp(self):
        super().setUp()
        self.neutron = fake_cloud.FakeNeutron(self.http)
        self.template.fixed_network = 'private'
        self.template.fixed_subnet = None
        self.template.save()

    def create(self):
        cluster_conductor.Handler().cluster_create(
            self.user_context, self.new_cluster(), 3, 2, 60)
        return self.reload()

    def test_the_ipv4_subnet_of_the_named_network_is_used(self):
        self.neutron.networks = [{'id': 'net-1', 'name': 'private'},
                                 {'id': 'net-2', 'name': 'private-2'},
                                 {'id': base.EXTERNAL_NETWORK, 'name': 'public',
                                  'router:external': True}]
        self.neutron.subnets = [{'id': 'sub-6', 'network_id': 'net-1', 'ip_version': 6},
                                {'id': 'sub-4', 'network_id': 'net-1', 'ip_version': 4}]
        self.create()
        request = self.heat.only_stack().request
        self.assertEqual(('private', 'sub-4'),
                         (request['parameters']['existing_network'],
                          request['parameters']['existing_subnet']))
        self.assertIn('environments/existing_network.yaml',
                      request['environment_files'])

    def test_an_unknown_network_fails_the_create_naming_it(self):
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertEqual('fixed_network private: not found', self.reload().status_reason)
        self.assertEqual([], self.heat.calls)

    def test_an_ambiguous_network_name_fails_the_create(self):
        self.neutron.networks = [{'id': 'net-1', 'name': 'private'},
                                 {'id': 'net-2', 'name': 'private'}]
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertEqual('fixed_network private: several networks have that name',
                         self.reload().status_reason)

    def test_a_network_without_an_ipv4_subnet_fails_the_create(self):
        self.template.fixed_network = '7d8a7e5c-2f4b-4c55-a3a1-0d8f1d3c9e11'
        self.template.save()
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertEqual('fixed_network 7d8a7e5c-2f4b-4c55-a3a1-0d8f1d3c9e11 has no IPv4 '
                         'subnet: give --fixed-subnet', self.reload().status_reason)


# ---- status ------------------------------------------------------------------------------

class StatusTest(base.DriverTestCase):

    def test_poll_runs_as_the_service_user_against_the_clusters_project(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS,
                                      stack_status='CREATE_IN_PROGRESS')
        self.poll()
        auth = self.keystone.token_requests[0]['auth']['identity']['password']['user']
        self.assertEqual(('magnum', 'service-secret'), (auth['name'], auth['password']))
        # one request per poll while Heat works: straight to Heat's canonical
        # /stacks/<name>/<id>, and without the outputs (resolving them costs Heat a
        # walk through the nested stacks)
        lookups = [c for c in self.heat.calls if c.path.endswith(cluster.stack_id)]
        self.assertEqual([('celtic-k1-5d12f6fd/' + cluster.stack_id, False)],
                         [(c.path, c.resolves_outputs) for c in lookups])
        self.assertEqual(('fake_project', fake_cloud.SERVICE_TOKEN),
                         (lookups[0].project, lookups[0].token))

    def test_create_in_progress_stays_in_progress(self):
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS,
                            stack_status='CREATE_IN_PROGRESS')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.CREATE_IN_PROGRESS, stored.status)
        self.assertEqual({'default-master': (Status.CREATE_IN_PROGRESS, None),
                          'default-worker': (Status.CREATE_IN_PROGRESS, None)},
                         self.statuses(stored))
        self.assertEqual([], fake_notifier.NOTIFICATIONS)

    def test_a_poll_in_progress_keeps_what_an_earlier_poll_saved(self):
        # No outputs while Heat works: the addresses known so far stay.
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS,
                                      stack_status='UPDATE_IN_PROGRESS')
        cluster.api_address = 'https://172.24.4.99:6443'
        cluster.save()
        worker = cluster.default_ng_worker
        worker.node_addresses = ['10.0.0.21']
        worker.save()
        self.poll()
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, 'https://172.24.4.99:6443'),
                         (stored.status, stored.api_address))
        self.assertEqual(['10.0.0.21'], stored.default_ng_worker.node_addresses)

    def test_create_complete_sets_api_address_addresses_and_version(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        cluster.api_address = None
        cluster.save()
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.CREATE_COMPLETE, stored.status)
        self.assertEqual('https://172.24.4.10:6443', stored.api_address)
        self.assertEqual('v1.36', stored.coe_version)
        self.assertEqual(['10.0.0.11', '10.0.0.12', '10.0.0.13'],
                         stored.default_ng_master.node_addresses)
        self.assertEqual(['10.0.0.21', '10.0.0.22'],
                         stored.default_ng_worker.node_addresses)
        self.assertEqual({Status.CREATE_COMPLETE},
                         {s for s, _ in self.statuses(stored).values()})
        self.assertEqual([('magnum.cluster.create', 'INFO')], _events())

    def test_api_address_without_floating_ips_is_the_vip(self):
        outputs = fake_cloud.cluster_outputs(fip='')
        # What celtic.yaml's api_address yielded without a floating IP before
        # floating_ips (yaql): the VIP is read from api_vip.
        outputs['api_address'] = 'https://:6443'
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS, stack_outputs=outputs)
        self.poll()
        self.assertEqual('https://10.0.0.5:6443', self.reload().api_address)

    def test_create_failed_reports_the_failing_resource_and_the_nodes_words(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS,
                                      stack_status='CREATE_FAILED')
        self.heat.set(cluster.stack_id, 'CREATE_FAILED', WAIT_FAILURE)
        self.poll()
        stored = self.reload()
        expected = ('masters.group.wait failed: k1-master-1: step kubeadm-init '
                    'failed: [ERROR Port-6443]: Port 6443 is in use')
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertEqual(expected, stored.status_reason)
        self.assertEqual((Status.CREATE_FAILED, expected),
                         self.statuses(stored)['default-master'])
        self.assertEqual([('magnum.cluster.create', 'ERROR')], _events())

    def test_stack_gone_while_creating_is_create_failed(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        self.heat.purge(cluster.stack_id)
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertEqual("the cluster's Heat stack does not exist", stored.status_reason)

    def test_heat_unreachable_while_polling_leaves_everything_unchanged(self):
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        self.heat.unreachable()
        self.poll()
        stored = self.reload()
        self.assertEqual((Status.CREATE_IN_PROGRESS, 'Completed successfully'),
                         (stored.status, stored.status_reason))
        self.assertEqual({Status.CREATE_IN_PROGRESS},
                         {s for s, _ in self.statuses(stored).values()})
        self.heat.heal()
        self.poll()
        self.assertEqual(Status.CREATE_COMPLETE, self.reload().status)

    def test_keystone_unreachable_while_polling_leaves_the_status_unchanged(self):
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        self.keystone.reachable = False
        self.poll()
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.reload().status)
        self.assertEqual([], self.heat.calls)

    def test_heat_refusing_the_service_user_leaves_the_status_unchanged(self):
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        self.heat.fail('GET', 403, 'Forbidden',
                       'You are not authorized to use stacks:lookup.')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.CREATE_IN_PROGRESS, stored.status)
        self.assertIn("status unknown: Magnum's service user cannot read the stack",
                      stored.status_reason)
        self.assertIn('You are not authorized to use stacks:lookup.',
                      stored.status_reason)

    def test_update_in_progress_stays_until_heat_completes_it(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS,
                                      stack_status='UPDATE_IN_PROGRESS')
        worker = cluster.default_ng_worker
        worker.status = Status.UPDATE_IN_PROGRESS
        worker.save()
        self.poll()
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)
        self.heat.set(cluster.stack_id, 'UPDATE_COMPLETE', outputs=fake_cloud.
                      cluster_outputs(minions=('10.0.0.21', '10.0.0.22', '10.0.0.23')))
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.UPDATE_COMPLETE, stored.status)
        self.assertEqual((Status.UPDATE_COMPLETE, Status.CREATE_COMPLETE),
                         (stored.default_ng_worker.status,
                          stored.default_ng_master.status))
        self.assertEqual(['10.0.0.21', '10.0.0.22', '10.0.0.23'],
                         stored.default_ng_worker.node_addresses)

    def test_a_resize_heat_has_not_started_yet_stays_in_progress(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS,
                                      stack_status='CREATE_COMPLETE')
        worker = cluster.default_ng_worker
        worker.status = Status.UPDATE_IN_PROGRESS
        worker.save()
        self.poll()
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)

    def test_update_failed_names_the_nodegroup_resource_and_reason(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS)
        worker = cluster.default_ng_worker
        worker.status = Status.UPDATE_IN_PROGRESS
        worker.save()
        self.heat.set(cluster.stack_id, 'UPDATE_FAILED',
                      'Resource UPDATE failed: WaitConditionFailure: resources.minions.'
                      'resources.wait: k1-minion-2: step kubeadm-join failed (exit 1)')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.UPDATE_FAILED, stored.status)
        self.assertEqual('default-worker: minions.wait failed: k1-minion-2: step '
                         'kubeadm-join failed (exit 1)', stored.status_reason)
        self.assertEqual([('magnum.cluster.update', 'ERROR')], _events())

    def test_rollback_in_progress_complete_and_failed_are_reported(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS)
        worker = cluster.default_ng_worker
        worker.status = Status.UPDATE_IN_PROGRESS
        worker.save()
        reason = ('Resource UPDATE failed: ResourceInError: resources.minions.'
                  'resources.nodes.resources[2]: Went to status ERROR due to '
                  '"Message: No valid host was found."')
        self.heat.set(cluster.stack_id, 'ROLLBACK_IN_PROGRESS', reason)
        self.poll()
        self.assertEqual(Status.ROLLBACK_IN_PROGRESS, self.reload().status)
        self.heat.set(cluster.stack_id, 'ROLLBACK_COMPLETE', reason)
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.ROLLBACK_COMPLETE, stored.status)
        self.assertEqual('minions.nodes[2] failed: Went to status ERROR due to '
                         '"Message: No valid host was found."', stored.status_reason)

    def test_rollback_failed_is_reported_as_rollback_failed(self):
        cluster = self.stored_cluster(status=Status.ROLLBACK_IN_PROGRESS)
        worker = cluster.default_ng_worker
        worker.status = Status.ROLLBACK_IN_PROGRESS
        worker.save()
        self.heat.set(cluster.stack_id, 'ROLLBACK_FAILED',
                      'Resource UPDATE failed: ResourceInError: resources.minions.'
                      'resources.nodes.resources[0]: Went to status ERROR')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.ROLLBACK_FAILED, stored.status)
        self.assertIn('minions.nodes[0] failed: Went to status ERROR',
                      stored.status_reason)

    def test_delete_in_progress_then_failed(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS,
                                      stack_status='DELETE_IN_PROGRESS')
        self.poll()
        self.assertEqual(Status.DELETE_IN_PROGRESS, self.reload().status)
        self.heat.set(cluster.stack_id, 'DELETE_FAILED',
                      'Resource DELETE failed: Conflict: resources.network.resources.'
                      'router: Router has ports still attached')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.DELETE_FAILED, stored.status)
        self.assertEqual('network.router failed: Router has ports still attached',
                         stored.status_reason)

    def test_stack_gone_while_deleting_completes_and_magnum_removes_the_cluster(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        refs = [getattr(cluster, r) for r in CA_REFS]
        self.heat.purge(cluster.stack_id)
        polled = self.poll()
        self.assertEqual(Status.DELETE_COMPLETE, polled.status)
        self.assertRaises(exception.ClusterNotFound, self.reload)
        self.assertEqual([], objects.NodeGroup.list(self.user_context, cluster.uuid))
        # Magnum deletes the CA and its client cert; celtic the etcd and front-proxy CAs.
        for ref in refs:
            self.assertRaises(exception.X509KeyPairNotFound,
                              objects.X509KeyPair.get_by_uuid, self.user_context, ref)

    def test_delete_completes_even_if_a_leftover_ca_is_already_gone(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        objects.X509KeyPair.get_by_uuid(self.user_context,
                                        cluster.etcd_ca_cert_ref).destroy()
        cluster.front_proxy_ca_cert_ref = None
        cluster.save()
        self.heat.purge(cluster.stack_id)
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertRaises(exception.ClusterNotFound, self.reload)

    def test_stack_reported_delete_complete_is_delete_complete(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        self.heat.set(cluster.stack_id, 'DELETE_COMPLETE')
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)

    def test_client_files_cached_for_the_monitor_are_removed_on_delete(self):
        cache = self.useFixture(fixtures.TempDir()).path
        self.config(temp_cache_dir=cache, group='cluster')
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        cert_manager.create_client_files(cluster, self.user_context)
        self.assertTrue(os.path.isdir(os.path.join(cache, cluster.uuid)))
        self.heat.purge(cluster.stack_id)
        self.poll()
        self.assertFalse(os.path.exists(os.path.join(cache, cluster.uuid)))

    def test_a_cluster_not_in_progress_is_not_polled(self):
        self.stored_cluster(status=Status.CREATE_COMPLETE)
        self.driver.update_cluster_status(self.admin_context(), self.reload())
        self.assertEqual([], self.heat.calls)

    def test_overlapping_polls_of_one_cluster_do_not_both_run(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        with driver.poll_lock(cluster.uuid) as held:
            self.assertTrue(held.acquired)
            self.driver.update_cluster_status(self.admin_context(), self.reload())
        self.assertEqual([], self.heat.calls)
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.reload().status)

    def _without_stack(self, age_seconds, refs=True):
        """A cluster being created that has no stack; ``refs``: whether its certificate
        refs are saved (the driver's create began) or not (Magnum's own step)."""
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        self.heat.purge(cluster.stack_id)
        cluster.stack_id = None
        if not refs:
            for ref in CA_REFS:
                setattr(cluster, ref, None)
        cluster.save()
        self._age(cluster, age_seconds)
        return cluster

    @staticmethod
    def _age(cluster, age_seconds):
        # created_at and updated_at are not fields Magnum lets save() change: age the
        # row directly
        from magnum.db.sqlalchemy import api as db_api
        from magnum.db.sqlalchemy import models
        from oslo_utils import timeutils
        then = timeutils.utcnow() - datetime.timedelta(seconds=age_seconds)
        with db_api._session_for_write() as session:
            session.query(models.Cluster).filter_by(uuid=cluster.uuid).update(
                {'created_at': then, 'updated_at': then})

    def test_a_cluster_still_being_sent_to_heat_is_left_alone(self):
        # the conductor marks CREATE_IN_PROGRESS before Heat has answered
        self._without_stack(age_seconds=5)
        self.poll()
        # asked for by name only (a conductor may have died before saving its id)
        self.assertEqual([('GET', 'celtic-k1-5d12f6fd')],
                         [(c.method, c.path) for c in self.heat.calls])
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.reload().status)

    def test_a_create_stopped_in_the_driver_fails_once_its_request_had_time(self):
        # refs saved: the driver's create began; the poll holds the lock, so no
        # conductor is in it any more
        cluster = self._without_stack(age_seconds=driver.SEND_GRACE - 20)
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.poll().status)
        self._age(cluster, driver.SEND_GRACE + 5)
        stored = self.poll()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertEqual('magnum-conductor stopped while the celtic driver was sending '
                         'the cluster\'s stack to Heat, and no stack was recorded for '
                         'it after %d s (one Heat took in that moment is found by name '
                         'and removed by the delete): delete the cluster and create it '
                         'again'
                         % driver.SEND_GRACE, stored.status_reason)
        self.assertEqual(Status.CREATE_FAILED, self.reload().status)

    def test_a_create_stopped_in_magnums_certificate_step_fails_after_its_grace(self):
        cluster = self._without_stack(age_seconds=driver.CERT_STEP_GRACE - 30,
                                      refs=False)
        # Magnum's own step may still be running in a live conductor
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.poll().status)
        self._age(cluster, driver.CERT_STEP_GRACE + 5)
        stored = self.poll()
        self.assertEqual(Status.CREATE_FAILED, stored.status)
        self.assertIn('stopped during Magnum\'s own certificate step of the create, '
                      'before the celtic driver ran', stored.status_reason)

    def test_a_nodegroup_still_being_sent_to_heat_is_not_failed(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS)
        self.add_pool(cluster, status=Status.CREATE_IN_PROGRESS, with_stack=False)
        self.poll()
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, Status.CREATE_IN_PROGRESS),
                         (stored.status, self.nodegroup(stored, 'gpu').status))

    def test_poll_reads_the_database_not_the_stale_object(self):
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        stale = objects.Cluster.get_by_uuid(self.admin_context(), cluster.uuid)
        cluster.status = Status.CREATE_COMPLETE
        cluster.save()
        self.driver.update_cluster_status(self.admin_context(), stale)
        self.assertEqual([], self.heat.calls)


# ---- nodegroups -------------------------------------------------------------------------

class NodeGroupTest(base.DriverTestCase):

    def test_create_nodegroup_starts_its_own_stack_wired_to_the_cluster(self):
        cluster = self.stored_cluster()
        # What Magnum's API hands the conductor for `nodegroup create`.
        ng = objects.NodeGroup(
            self.user_context, uuid='7c0f6a41-8d0e-4a8e-9d3c-5f3a1e2b9c01', name='gpu',
            cluster_id=cluster.uuid, project_id='fake_project', role='worker',
            is_default=False, node_count=2, min_node_count=1, max_node_count=None,
            flavor_id='g1.large', image_id='debian-13', labels={},
            node_labels={'accelerator': 'nvidia'},
            node_taints=[{'key': 'gpu', 'value': 'true', 'effect': 'NoSchedule'}])
        nodegroup_conductor.Handler().nodegroup_create(self.user_context, cluster, ng)
        stored = self.nodegroup(cluster, 'gpu')
        pool = self.heat.stacks[stored.stack_id]
        self.assertEqual('celtic-k1-5d12f6fd-gpu', pool.name)
        self.assertEqual(Status.CREATE_IN_PROGRESS, stored.status)
        params = pool.request['parameters']
        self.assertEqual((2, 'g1.large', 'gpu', 'net-0001', 'subnet-0001'),
                         (params['count'], params['flavor'], params['pool_name'],
                          params['network'], params['subnet']))
        self.assertEqual(['sg-cluster', 'sg-k8s', 'sg-minion'],
                         params['security_groups'])
        self.assertEqual({'accelerator': 'nvidia'}, params['params']['node_labels'])
        self.assertEqual([{'key': 'gpu', 'value': 'true', 'effect': 'NoSchedule'}],
                         params['params']['node_taints'])
        self.assertEqual('10.0.0.5', params['params']['api_vip'])
        self.assertIn('OS::Nova::Server', pool.request['template'])
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)

    def test_nodegroup_stack_gets_the_clusters_ca_certificate_and_no_secret(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, status=Status.CREATE_IN_PROGRESS)
        self.driver.create_nodegroup(self.user_context, cluster, ng)
        request = self.heat.stacks[ng.stack_id].request
        params = request['parameters']
        expected = certs.cluster_pki(self.user_context, cluster)
        self.assertEqual(expected.ca.cert, params['ca_cert'])
        self.assertEqual('TOKEN_SIGNAL', params['signal_transport'])
        self.assertNotIn(expected.bootstrap_token, json.dumps(request))
        self.assertNotIn('PRIVATE KEY', json.dumps(request))

    def test_create_nodegroup_needs_a_complete_cluster_stack(self):
        cluster = self.stored_cluster(stack_status='UPDATE_IN_PROGRESS')
        ng = self.add_pool(cluster, with_stack=False)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn("needs the cluster's Heat stack to be complete, it is "
                      "UPDATE_IN_PROGRESS", str(error))
        self.assertEqual([], self.heat.calls_of('POST'))

    def test_without_celtic_vendordata_no_nodegroup_is_created(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False)
        self.config(public_url=None, group='celtic_vendordata')
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn('[celtic_vendordata] public_url', str(error))
        self.assertEqual([], self.heat.calls_of('POST'))

    def test_a_nodegroup_named_like_a_role_is_refused_before_heat(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, name='Minion', with_stack=False)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn('nodegroup name Minion would give its nodes the names of the '
                      'minion nodes', str(error))
        self.assertEqual([], self.heat.calls_of('POST'))

    def test_nodegroup_names_that_collide_once_made_dns_safe_are_refused(self):
        cluster = self.stored_cluster()
        self.add_pool(cluster, name='gpu_a')
        ng = self.add_pool(cluster, name='gpu.a', with_stack=False)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn('nodegroup name gpu.a and nodegroup gpu_a give the same node names',
                      str(error))

    def test_a_master_nodegroup_is_refused(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False)
        ng.role = 'master'
        self.assertRaises(exception.NotSupported, self.driver.create_nodegroup,
                          self.user_context, cluster, ng)

    def test_pool_nodegroup_creation_is_polled_to_complete(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS)
        ng = self.add_pool(cluster, status=Status.CREATE_IN_PROGRESS,
                           stack_status='CREATE_IN_PROGRESS')
        self.poll()
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)
        self.heat.set(ng.stack_id, 'CREATE_COMPLETE')
        self.poll()
        stored = self.reload()
        gpu = self.nodegroup(stored, 'gpu')
        self.assertEqual((Status.UPDATE_COMPLETE, Status.CREATE_COMPLETE),
                         (stored.status, gpu.status))
        self.assertEqual(['10.0.0.51', '10.0.0.52'], gpu.node_addresses)
        lookups = [c for c in self.heat.calls if c.path.endswith(ng.stack_id)]
        self.assertEqual('fake_project', lookups[0].project)
        # in progress: one request without the outputs; complete: then with them
        self.assertEqual([False, False, True], [c.resolves_outputs for c in lookups])

    def test_pool_nodegroup_failure_fails_the_update_naming_the_nodegroup(self):
        cluster = self.stored_cluster(status=Status.UPDATE_IN_PROGRESS)
        self.add_pool(cluster, status=Status.CREATE_IN_PROGRESS,
                      stack_status='CREATE_FAILED')
        self.heat.set(self.nodegroup(cluster, 'gpu').stack_id, 'CREATE_FAILED',
                      'Resource CREATE failed: WaitConditionFailure: resources.wait: '
                      'k1-gpu-0: step containerd failed (exit 1)')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.UPDATE_FAILED, stored.status)
        self.assertEqual('gpu: wait failed: k1-gpu-0: step containerd failed (exit 1)',
                         stored.status_reason)

    def test_update_pool_nodegroup_patches_its_labels_and_taints(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        ng.node_labels = {'tier': 'batch'}
        nodegroup_conductor.Handler().nodegroup_update(self.user_context, cluster, ng)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual('celtic-k1-5d12f6fd-gpu/%s' % ng.stack_id, patch.path)
        self.assertEqual({'tier': 'batch'},
                         patch.body['parameters']['params']['node_labels'])
        self.assertEqual(Status.UPDATE_IN_PROGRESS,
                         self.nodegroup(cluster, 'gpu').status)

    def test_update_pool_nodegroup_reads_no_certificate_and_keeps_the_nodes_ca(self):
        # A label update plans its one parameter from the spec and the cluster's
        # outputs: it used to render the whole pool request (reading the cluster's
        # CAs from Magnum's certificate manager) and drop openstack_ca from it.
        bundle = os.path.join(self.useFixture(fixtures.TempDir()).path, 'ca.pem')
        with open(bundle, 'w') as handle:
            handle.write('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
        self.config(node_openstack_ca_file=bundle, group='celtic')
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, status=Status.CREATE_IN_PROGRESS)
        self.driver.create_nodegroup(self.user_context, cluster, ng)
        created = self.heat.stacks[ng.stack_id].request['parameters']
        self.assertIn('MIIB', created['openstack_ca'])
        self.heat.set(ng.stack_id, 'CREATE_COMPLETE')
        cert_manager.delete_certificates_from_cluster(cluster, context=self.user_context)
        ng.node_labels = {'tier': 'batch'}
        self.driver.update_nodegroup(self.user_context, cluster, ng)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual(['params'], sorted(patch.body['parameters']))
        expected = dict(created['params'], node_labels={'tier': 'batch'})
        self.assertEqual(expected, patch.body['parameters']['params'])

    def test_update_default_worker_patches_the_minion_pool_settings(self):
        cluster = self.stored_cluster()
        worker = cluster.default_ng_worker
        worker.node_taints = [{'key': 'dedicated', 'effect': 'NoExecute'}]
        self.driver.update_nodegroup(self.user_context, cluster, worker)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual({'minion_pool_settings': {
            'pool': 'default-worker', 'node_labels': {},
            'node_taints': [{'key': 'dedicated', 'value': '',
                             'effect': 'NoExecute'}]}}, patch.body['parameters'])

    def test_update_master_nodegroup_leaves_the_worker_pool_alone(self):
        cluster = self.stored_cluster()
        master = cluster.default_ng_master
        master.max_node_count = 5
        self.driver.update_nodegroup(self.user_context, cluster, master)
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_delete_nodegroup_saves_delete_in_progress_and_deletes_its_stack(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        nodegroup_conductor.Handler().nodegroup_delete(self.user_context, cluster, ng)
        self.assertEqual(Status.DELETE_IN_PROGRESS,
                         self.nodegroup(cluster, 'gpu').status)
        self.assertEqual('DELETE_IN_PROGRESS', self.heat.stacks[ng.stack_id].status)
        self.assertEqual(['celtic-k1-5d12f6fd-gpu/%s' % ng.stack_id],
                         [c.path for c in self.heat.calls_of('DELETE')
                          if '/' in c.path])

    def test_poll_destroys_the_nodegroup_once_its_stack_is_gone(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        nodegroup_conductor.Handler().nodegroup_delete(self.user_context, cluster, ng)
        self.poll()
        self.assertEqual(Status.DELETE_IN_PROGRESS,
                         self.nodegroup(cluster, 'gpu').status)
        self.heat.purge(ng.stack_id)
        self.poll()
        self.assertRaises(exception.NodeGroupNotFound, self.nodegroup, cluster, 'gpu')
        stored = self.reload()
        self.assertEqual(Status.UPDATE_COMPLETE, stored.status)
        self.assertEqual(['default-master', 'default-worker'],
                         sorted(ng.name for ng in stored.nodegroups))

    def test_deleting_a_nodegroup_that_never_got_a_stack_destroys_it(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, status=Status.CREATE_FAILED)
        nodegroup_conductor.Handler().nodegroup_delete(self.user_context, cluster, ng)
        self.assertEqual([], self.heat.calls)
        self.poll()
        self.assertRaises(exception.NodeGroupNotFound, self.nodegroup, cluster, 'gpu')
        self.assertEqual(Status.UPDATE_COMPLETE, self.reload().status)

    def test_nodegroup_stack_delete_failure_fails_the_cluster_update(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        nodegroup_conductor.Handler().nodegroup_delete(self.user_context, cluster, ng)
        self.heat.set(ng.stack_id, 'DELETE_FAILED',
                      'Resource DELETE failed: Conflict: resources.nodes: in use')
        self.poll()
        stored = self.reload()
        self.assertEqual(Status.UPDATE_FAILED, stored.status)
        self.assertEqual('gpu: nodes failed: in use', stored.status_reason)

    def test_heat_refusing_the_nodegroup_stack_fails_the_nodegroup(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False)
        self.heat.fail('POST', 400, 'StackValidationFailed',
                       'Parameter \'flavor\': Error validating value \'g1.large\': '
                       'The Flavor ID (g1.large) could not be found.')
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn('The Flavor ID (g1.large) could not be found', str(error))

    def test_a_nodegroup_without_a_flavor_is_refused(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False)
        ng.flavor_id = None
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertEqual('flavor_id is required: the nodegroup flavor', str(error))

    def test_too_many_workers_for_a_nodegroup_stack_are_refused(self):
        self.config(heat_max_resources_per_stack=20, group='celtic')
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, node_count=30)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.create_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertEqual('30 workers need 35 Heat resources but Heat allows 20 per stack '
                         '(max_resources_per_stack); split them into several '
                         'nodegroups', str(error))

    def test_update_pool_nodegroup_with_heat_unreachable_fails_clearly(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        self.heat.unreachable('GET')
        error = self.assertRaises(exception.MagnumException,
                                  self.driver.update_nodegroup, self.user_context,
                                  cluster, ng)
        self.assertIn('Heat is unavailable for the status of stack', str(error))

    def test_heat_unreachable_fails_the_nodegroup_delete(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        self.heat.unreachable('DELETE')
        self.assertRaises(exception.MagnumException,
                          nodegroup_conductor.Handler().nodegroup_delete,
                          self.user_context, cluster, ng)
        self.assertEqual(Status.DELETE_FAILED, self.nodegroup(cluster, 'gpu').status)


# ---- resize, update, upgrade ---------------------------------------------------------------

def rendered_members(patch) -> tuple[list[str], int]:
    """The members (and next index) of the minion_nodes.yaml a PATCH sent."""
    outputs = yaml.safe_load(patch.body['files']['minion_nodes.yaml'])['outputs']
    return outputs['members']['value'], outputs['next_index']['value']


class ResizeTest(base.DriverTestCase):

    def resize(self, cluster, count, remove=None, nodegroup=None):
        nodegroup = nodegroup or cluster.default_ng_worker
        return cluster_conductor.Handler().cluster_resize(
            self.user_context, cluster, count, remove, nodegroup)

    def test_a_resize_whose_conductor_died_before_heat_got_it_fails_at_a_later_poll(self):
        """Killed inside the driver's hook, before Heat took the update: the cluster
        is polled (saved UPDATE_IN_PROGRESS first), waits out the grace in which a
        hook may still be sending, then fails naming what to do, the count as Heat
        has it (churn's stuck resize, README Benchmarks)."""
        cluster = self.stored_cluster(status=Status.CREATE_COMPLETE, node_count=2)
        self.heat.stacks[cluster.stack_id].parameters['minion_count'] = '2'
        with mock.patch('magnum_celtic.heat.Heat.update', side_effect=SystemExit(-9)):
            self.assertRaises(SystemExit, self.resize, cluster, 3)
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, Status.UPDATE_IN_PROGRESS, 3),
                         (stored.status, stored.default_ng_worker.status,
                          stored.default_ng_worker.node_count))
        self.assertEqual([], self.heat.calls_of('PATCH'))
        self.driver.update_cluster_status(self.admin_context(), stored)
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)
        later = time.time() + status.RESIZE_SEND_GRACE + 1
        with mock.patch.object(driver.time, 'time', return_value=later):
            self.driver.update_cluster_status(self.admin_context(), self.reload())
        stored = self.reload()
        worker = stored.default_ng_worker
        self.assertEqual((Status.UPDATE_FAILED, Status.UPDATE_FAILED, 2),
                         (stored.status, worker.status, worker.node_count))
        self.assertIn('magnum-conductor stopped while the celtic driver was sending this '
                      'resize to Heat (to 3 nodes)', stored.status_reason)
        self.assertIn('run the resize again', worker.status_reason)
        # the resize again works
        self.resize(self.reload(), 3)
        self.assertEqual({'minion_count': 3}, self.heat.calls_of('PATCH')[-1].body[
            'parameters'])

    def test_resize_removes_exactly_the_named_servers(self):
        cluster = self.stored_cluster(stack_outputs=fake_cloud.cluster_outputs(
            minion_ids=['6f1e-aaaa', '6f1e-bbbb']))
        self.resize(cluster, 1, ['6f1e-bbbb'])
        patch = self.heat.calls_of('PATCH')
        self.assertEqual([cluster.stack_id, 'celtic-k1-5d12f6fd/%s' % cluster.stack_id],
                         [c.path for c in patch])
        self.assertEqual({'minion_count': 1}, patch[-1].body['parameters'])
        self.assertEqual((['0'], 2), rendered_members(patch[-1]))
        self.assertTrue(patch[-1].body['disable_rollback'])
        self.assertEqual(fake_cloud.USER_TOKEN, patch[-1].token)
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, 1, Status.UPDATE_IN_PROGRESS),
                         (stored.status, stored.default_ng_worker.node_count,
                          stored.default_ng_worker.status))

    def test_an_unchanged_count_with_a_server_named_replaces_it(self):
        """What auto-healing asks (node/heal.sh): the named server goes, a new member
        with a fresh index comes, the count and Magnum's node_count stay."""
        cluster = self.stored_cluster(stack_outputs=fake_cloud.cluster_outputs(
            minion_ids=['6f1e-aaaa', '6f1e-bbbb']))
        self.resize(cluster, 2, ['6f1e-aaaa'])
        patch = self.heat.calls_of('PATCH')
        self.assertEqual({'minion_count': 2}, patch[-1].body['parameters'])
        self.assertEqual((['1', '2'], 3), rendered_members(patch[-1]))
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, 2, Status.UPDATE_IN_PROGRESS),
                         (stored.status, stored.default_ng_worker.node_count,
                          stored.default_ng_worker.status))

    def test_nodes_to_remove_may_name_the_server(self):
        outputs = fake_cloud.cluster_outputs(minion_ids=['6f1e-aaaa', '6f1e-bbbb'])
        outputs['minion_names'] = ['k1-minion-0', 'k1-minion-1']
        cluster = self.stored_cluster(stack_outputs=outputs)
        self.resize(cluster, 1, ['k1-minion-1'])
        patch = self.heat.calls_of('PATCH')
        self.assertEqual((['0'], 2), rendered_members(patch[-1]))

    def test_a_wrong_node_name_is_refused_listing_the_names(self):
        outputs = fake_cloud.cluster_outputs(minion_ids=['6f1e-aaaa', '6f1e-bbbb'])
        outputs['minion_names'] = ['k1-minion-0', 'k1-minion-1']
        cluster = self.stored_cluster(stack_outputs=outputs)
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 1, ['k1-minion-7', 'x'])
        self.assertEqual('nodes_to_remove: k1-minion-7, x are not nodes of nodegroup '
                         'default-worker (its nodes: k1-minion-0, k1-minion-1; nothing '
                         'was changed)', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_unknown_servers_to_remove_are_refused_before_any_heat_update(self):
        cluster = self.stored_cluster(stack_outputs=fake_cloud.cluster_outputs(
            minion_ids=['6f1e-aaaa', '6f1e-bbbb']))
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 1, ['no-such-server'])
        self.assertEqual('nodes_to_remove: no-such-server is not a node of nodegroup '
                         'default-worker (its nodes: 6f1e-aaaa, 6f1e-bbbb; nothing was '
                         'changed)', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))
        stored = self.reload()
        self.assertEqual((Status.UPDATE_FAILED, 2),
                         (stored.status, stored.default_ng_worker.node_count))

    def test_servers_to_remove_cannot_be_checked_without_heat(self):
        cluster = self.stored_cluster()
        self.heat.unreachable('GET')
        error = self.assertRaises(exception.MagnumException, self.resize, cluster, 1,
                                  ['server-1'])
        self.assertIn('Heat is unavailable', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_a_negative_stack_limit_leaves_the_limit_to_heat(self):
        self.config(heat_max_resources_per_stack=-1, group='celtic')
        cluster = self.stored_cluster()
        self.resize(cluster, 5000)
        self.assertEqual(5000, self.heat.calls_of('PATCH')[-1].body['parameters'][
            'minion_count'])
        ng = self.add_pool(cluster)
        self.resize(cluster, 5000, nodegroup=ng)
        self.assertEqual(5000, self.heat.calls_of('PATCH')[-1].body['parameters'][
            'count'])

    def test_resize_of_a_nodegroup_whose_stack_never_existed_is_refused(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, status=Status.CREATE_FAILED)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.resize_cluster, self.user_context, cluster,
                                  None, 3, [], ng)
        self.assertIn('nodegroup gpu has no Heat stack (its creation failed)', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_resize_of_a_pool_nodegroup_patches_its_own_stack(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        self.resize(cluster, 1, ['gpu-server-0'], nodegroup=ng)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual('celtic-k1-5d12f6fd-gpu/%s' % ng.stack_id, patch.path)
        self.assertEqual({'count': 1}, patch.body['parameters'])
        self.assertEqual((['1'], 2), rendered_members(patch))

    def test_resize_of_a_stack_from_before_the_vendordata_moves_its_secrets_out(self):
        cluster = self.stored_cluster(stack_outputs=fake_cloud.cluster_outputs(
            minion_ids=['6f1e-aaaa', '6f1e-bbbb']))
        # what Heat shows of a stack the previous release created
        self.heat.stacks[cluster.stack_id].parameters = {
            'ca_key': '******', 'bootstrap_token': '******', 'minion_count': '2'}
        self.resize(cluster, 1, ['6f1e-bbbb'])
        self.assertEqual([], self.heat.calls_of('PATCH'))
        put = self.heat.calls_of('PUT')[-1]
        self.assertEqual('celtic-k1-5d12f6fd/%s' % cluster.stack_id, put.path)
        params = put.body['parameters']
        # its handles keep HEAT_SIGNAL: Heat would replace them and their wait
        # conditions otherwise
        self.assertEqual('HEAT_SIGNAL', params['signal_transport'])
        self.assertEqual(1, params['minion_count'])
        self.assertEqual((['0'], 2), rendered_members(put))
        self.assertFalse(req.LEGACY_SECRET_PARAMETERS[0] in params)
        self.assertIn('signal_transport', put.body['template'])
        self.assertNotIn('PRIVATE KEY', json.dumps(put.body))
        self.assertTrue(put.body['disable_rollback'])
        # the next resize is an ordinary PATCH
        self.heat.set(cluster.stack_id, 'UPDATE_COMPLETE')
        puts = len(self.heat.calls_of('PUT'))
        self.resize(cluster, 2)
        self.assertEqual(puts, len(self.heat.calls_of('PUT')))
        self.assertEqual({'minion_count': 2},
                         self.heat.calls_of('PATCH')[-1].body['parameters'])

    def test_resize_of_a_pool_from_before_the_vendordata_moves_its_secrets_out(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        self.heat.stacks[ng.stack_id].parameters = {'bootstrap_token': '******',
                                                    'count': '2'}
        self.resize(cluster, 1, ['gpu-server-0'], nodegroup=ng)
        put = self.heat.calls_of('PUT')[-1]
        self.assertEqual('celtic-k1-5d12f6fd-gpu/%s' % ng.stack_id, put.path)
        self.assertEqual(('HEAT_SIGNAL', 1), (put.body['parameters']['signal_transport'],
                                              put.body['parameters']['count']))
        self.assertNotIn('bootstrap_token', put.body['parameters'])
        self.assertEqual((['1'], 2), rendered_members(put))
        self.assertNotIn('PRIVATE KEY', json.dumps(put.body))

    def test_resize_of_a_pool_beyond_the_stack_limit_is_refused(self):
        self.config(heat_max_resources_per_stack=50, group='celtic')
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 60, None, ng)
        self.assertIn('max_resources_per_stack', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def master_cluster(self, masters):
        cluster = self.stored_cluster(master_count=masters)
        self.heat.stacks[cluster.stack_id].parameters['master_count'] = str(masters)
        return cluster

    def test_growing_the_masters_patches_the_count_and_one_port_per_master(self):
        cluster = self.master_cluster(1)
        # two masters were removed before: their reports stay in the masters' wait
        self.heat.stacks[cluster.stack_id].parameters.update(master_departed='2',
                                                             master_reports='3')
        self.resize(cluster, 3, None, cluster.default_ng_master)
        patch = self.heat.calls_of('PATCH')
        self.assertEqual('celtic-k1-5d12f6fd/%s' % cluster.stack_id, patch[-1].path)
        self.assertEqual({'master_count': 3, 'master_reports': 5},
                         patch[-1].body['parameters'])
        resources = json.loads(patch[-1].body['files']['addresses.yaml'])['resources']
        self.assertEqual(['master-0', 'master-1', 'master-2'],
                         sorted(r for r in resources if r.startswith('master-')))
        self.assertEqual(['proxy-0', 'proxy-1'],
                         sorted(r for r in resources if r.startswith('proxy-')))
        self.assertEqual(['files', 'parameters'],
                         sorted(k for k in patch[-1].body if k in ('files', 'parameters',
                                                                   'template')))
        # only the addresses: re-sending a role's bundle with it made Heat fail the
        # masters' update ("ResourcePropertiesData with id N not found"); the masters
        # it boots get the bundle and add-on files the stack holds, rendered together
        self.assertEqual(['addresses.yaml'], sorted(patch[-1].body['files']))
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, 3, Status.UPDATE_IN_PROGRESS),
                         (stored.status, stored.default_ng_master.node_count,
                          stored.default_ng_master.status))

    FIVE = ('10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14', '10.0.0.15')

    def five_masters(self, **outputs):
        cluster = self.stored_cluster(master_count=5, stack_outputs=dict(
            fake_cloud.cluster_outputs(masters=self.FIVE), **outputs))
        self.heat.stacks[cluster.stack_id].parameters.update(master_count='5',
                                                             master_reports='5')
        return cluster

    def test_a_stack_without_master_reports_is_sent_none(self):
        # a stack whose template counts the masters' reports itself (yaql, before
        # master_reports) would refuse a parameter its template does not declare
        cluster = self.master_cluster(1)
        self.resize(cluster, 3, None, cluster.default_ng_master)
        self.assertEqual({'master_count': 3},
                         self.heat.calls_of('PATCH')[-1].body['parameters'])

    def test_removing_masters_first_tells_the_staying_ones_and_keeps_every_server(self):
        cluster = self.five_masters()
        self.resize(cluster, 3, None, cluster.default_ng_master)
        patch = self.heat.calls_of('PATCH')
        self.assertEqual({'master_removal': '10.0.0.14 10.0.0.15'},
                         patch[-1].body['parameters'])
        addresses = json.loads(patch[-1].body['files']['addresses.yaml'])
        # every port stays (the servers too: master_count is not in the PATCH) ...
        self.assertEqual(['master-%d' % i for i in range(5)],
                         sorted(r for r in addresses['resources']
                                if r.startswith('master-')))
        self.assertEqual(5, len(addresses['outputs']['master_addresses']['value']))
        # ... and the member list the masters are told names the first three
        self.assertEqual([{'get_attr': ['master-%d' % i, 'fixed_ips', 0, 'ip_address']}
                          for i in range(3)],
                         addresses['outputs']['master_members']['value'])
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, 3), (stored.status,
                                                          stored.default_ng_master.node_count))
        # the status poll says what the update waits for
        self.poll()
        self.assertEqual('removing masters 1/2: master 0 takes 10.0.0.14 10.0.0.15 out of '
                         'Kubernetes, etcd, corosync and HAProxy', self.reload().status_reason)

    def test_the_poll_deletes_the_removed_masters_once_master_0_reported(self):
        cluster = self.five_masters()
        self.resize(cluster, 3, None, cluster.default_ng_master)
        stack = self.heat.stacks[cluster.stack_id]
        sent = len(self.heat.calls_of('PATCH'))
        # Heat still waits for master 0's report: nothing more is sent
        self.poll()
        self.assertEqual(sent, len(self.heat.calls_of('PATCH')))
        self.assertEqual(Status.UPDATE_IN_PROGRESS, self.reload().status)
        # master 0 reported: members_wait complete, the stack UPDATE_COMPLETE
        self.heat.set(cluster.stack_id, 'UPDATE_COMPLETE', outputs=fake_cloud.cluster_outputs(
            masters=self.FIVE) | {'master_removal': '10.0.0.14 10.0.0.15',
                                  'master_members': ' '.join(self.FIVE[:3])})
        self.poll()
        patch = self.heat.calls_of('PATCH')
        self.assertGreater(len(patch), sent)
        sent = len(patch)
        self.assertEqual({'master_count': 3, 'master_removal': '', 'master_departed': 2,
                          'master_reports': 5}, patch[-1].body['parameters'])
        addresses = json.loads(patch[-1].body['files']['addresses.yaml'])
        self.assertEqual(['master-0', 'master-1', 'master-2'],
                         sorted(r for r in addresses['resources'] if r.startswith('master-')))
        stored = self.reload()
        self.assertEqual(Status.UPDATE_IN_PROGRESS, stored.status)
        self.assertEqual('removing masters 2/2: 10.0.0.14 10.0.0.15 left etcd and corosync; '
                         'deleting their servers', stored.status_reason)
        self.assertEqual('3', str(stack.parameters['master_count']))
        # Heat deleted them: the resize is complete
        self.heat.set(cluster.stack_id, 'UPDATE_COMPLETE',
                      outputs=fake_cloud.cluster_outputs(masters=self.FIVE[:3]))
        self.poll()
        stored = self.reload()
        self.assertEqual(sent, len(self.heat.calls_of('PATCH')))
        self.assertEqual((Status.UPDATE_COMPLETE, Status.UPDATE_COMPLETE, list(self.FIVE[:3])),
                         (stored.status, stored.default_ng_master.status,
                          stored.default_ng_master.node_addresses))

    def test_a_failed_removal_is_retried_by_the_same_resize(self):
        cluster = self.five_masters(master_removal='10.0.0.14 10.0.0.15')
        self.heat.set(cluster.stack_id, 'UPDATE_FAILED', 'WaitConditionFailure: ...')
        self.resize(cluster, 3, None, cluster.default_ng_master)
        patch = self.heat.calls_of('PATCH')
        self.assertEqual({'master_removal': '10.0.0.14 10.0.0.15'},
                         patch[-1].body['parameters'])

    def test_growth_is_refused_while_a_removal_is_pending(self):
        cluster = self.five_masters(master_removal='10.0.0.14 10.0.0.15')
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 7, None, cluster.default_ng_master)
        self.assertIn('the removal of masters 10.0.0.14 10.0.0.15 is not finished; run '
                      'the resize to 3 again', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_a_shrink_that_would_lose_quorum_is_refused_naming_what_is_allowed(self):
        cluster = self.master_cluster(3)
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 1, None, cluster.default_ng_master)
        self.assertEqual('node_count of the master nodegroup: 3 -> 1 is refused: the '
                         'masters that stay must be more than half of the 3 there are, so '
                         'etcd and corosync keep quorum while the others leave (remove '
                         'masters in steps); allowed: 3, 5, 7', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))
        self.assertEqual(3, self.reload().default_ng_master.node_count)

    def test_a_shrink_is_refused_while_a_master_is_unhealthy(self):
        cluster = self.five_masters()
        cluster.health_status = 'UNHEALTHY'
        cluster.health_status_reason = {'api': 'ok', 'k1-master-1.Ready': 'False',
                                        'k1-minion-0.Ready': 'True'}
        cluster.save()
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 3, None, cluster.default_ng_master)
        self.assertIn('5 -> 3 is refused while a master is unhealthy '
                      '(health_status_reason: k1-master-1.Ready: False)', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_a_shrink_of_a_stack_from_an_earlier_release_is_refused(self):
        cluster = self.five_masters()
        self.heat.stacks[cluster.stack_id].outputs.pop('master_removal')
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 3, None, cluster.default_ng_master)
        self.assertIn('created by an earlier celtic release, whose stack cannot remove '
                      'masters (allowed: 5 or more)', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_more_masters_need_master_lb_enabled(self):
        cluster = self.master_cluster(1)
        cluster.master_lb_enabled = False
        cluster.save()
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 3, None, cluster.default_ng_master)
        self.assertIn('needs master_lb_enabled', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_masters_of_a_stack_from_an_earlier_release_are_refused(self):
        cluster = self.master_cluster(1)
        self.heat.stacks[cluster.stack_id].outputs.pop('master_members')
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 3, None, cluster.default_ng_master)
        self.assertIn('created by an earlier celtic release', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))

    def test_a_master_resize_of_a_missing_stack_is_refused(self):
        cluster = self.master_cluster(1)
        self.heat.stacks.pop(cluster.stack_id)
        error = self.assertRaises(exception.InvalidParameterValue,
                                  self.driver.resize_cluster, self.user_context, cluster,
                                  None, 3, [], cluster.default_ng_master)
        self.assertIn('does not exist', str(error))

    def test_resize_while_heat_is_busy_says_the_stack_is_busy(self):
        cluster = self.stored_cluster(stack_status='UPDATE_IN_PROGRESS')
        error = self.assertRaises(exception.InvalidParameterValue, self.resize,
                                  cluster, 3)
        self.assertIn('Heat stack is busy: Stack celtic-k1-5d12f6fd already has an '
                      'action (UPDATE) in progress', str(error))

    def test_update_cluster_scales_the_default_worker_pool(self):
        cluster = self.stored_cluster()
        cluster_conductor.Handler().cluster_update(
            self.user_context, cluster, 4, None, None, rollback=True)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual({'minion_count': 4}, patch.body['parameters'])
        self.assertEqual((['0', '1', '2', '3'], 4), rendered_members(patch))
        self.assertFalse(patch.body['disable_rollback'])
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, Status.UPDATE_IN_PROGRESS, 4),
                         (stored.status, stored.default_ng_worker.status,
                          stored.default_ng_worker.node_count))

    def test_update_cluster_refused_by_heat_leaves_no_nodegroup_in_progress(self):
        cluster = self.stored_cluster()
        self.heat.fail('PATCH', 400, 'StackValidationFailed', 'Parameter invalid')
        self.assertRaises(exception.InvalidParameterValue,
                          cluster_conductor.Handler().cluster_update,
                          self.user_context, cluster, 4, None, None)
        stored = self.reload()
        self.assertEqual(Status.UPDATE_FAILED, stored.status)
        self.assertEqual((Status.CREATE_COMPLETE, 2),
                         (stored.default_ng_worker.status,
                          stored.default_ng_worker.node_count))


# ---- upgrade -----------------------------------------------------------------------------


class UpgradeTest(base.DriverTestCase):
    """openstack coe cluster upgrade: kubeadm's rules and what an upgrade may change are
    checked before anything; a no-op is done; the rolling upgrade is refused until it
    is built (doc/upgrade.md)."""

    def new_template(self, **fields_):
        values = dict(uuid='9a1b7a52-1111-4b4b-8c8c-000000000002',
                      name='celtic-template-2', driver='celtic', cluster_distro='ubuntu',
                      image_id='debian-13', flavor_id='m1.medium',
                      master_flavor_id='m1.large', keypair_id='default',
                      external_network_id=base.EXTERNAL_NETWORK, fixed_network=None,
                      network_driver='flannel', http_proxy=None, https_proxy=None,
                      no_proxy=None, docker_volume_size=None,
                      dns_nameserver='192.0.2.53', master_lb_enabled=True,
                      floating_ip_enabled=True, labels={'kube_tag': 'v1.36'})
        values.update(fields_)
        return obj_utils.create_test_cluster_template(self.user_context, **values)

    def upgrade(self, cluster, template, nodegroup=None):
        return cluster_conductor.Handler().cluster_upgrade(
            self.user_context, cluster, template, 1,
            nodegroup or cluster.default_ng_worker)

    def assert_refused_untouched(self, cluster, template, *expected):
        error = self.assertRaises(exception.NotSupported, self.upgrade, cluster, template)
        for text in expected:
            self.assertIn(text, str(error))
        stored = self.reload()
        self.assertEqual((Status.CREATE_COMPLETE, base.TEMPLATE_UUID,
                          Status.CREATE_COMPLETE),
                         (stored.status, stored.cluster_template_id,
                          stored.default_ng_worker.status))
        self.assertEqual([], self.heat.calls_of('PATCH'))
        return str(error)

    def test_upgrade_to_the_next_minor_is_refused_until_built_and_changes_nothing(self):
        cluster = self.stored_cluster()
        log = self.useFixture(fixtures.FakeLogger(level=logging.WARNING,
                                                  name=driver.__name__))
        # the database fixture's alembic logging config disables loggers made before it
        logger = logging.getLogger(driver.__name__)
        self.addCleanup(setattr, logger, 'disabled', logger.disabled)
        logger.disabled = False
        message = self.assert_refused_untouched(
            cluster, self.new_template(labels={'kube_tag': 'v1.37'}),
            'cluster k1 cannot be upgraded to template celtic-template-2 yet, '
            'celtic\'s rolling upgrade is not built: create a new cluster from the '
            'template and move the workloads; the upgrade would change '
            'kube_tag v1.36 -> v1.37 (doc/upgrade)')
        self.assertNotIn('is not supported', message)
        self.assertIn('refused: cluster k1 cannot be upgraded', log.output)

    def test_the_part_of_a_refusal_the_cli_shows_says_what_to_do(self):
        # Magnum's API gives the CLI a fault's text up to its first full stop
        cluster = self.stored_cluster(labels={'kube_tag': 'v1.35.1'})
        for labels, expected in (
                ({'kube_tag': 'v1.37'}, 'kubeadm upgrades a control plane one minor at '
                                        'a time, and kube_tag v1'),
                ({'kube_tag': 'v1.34'}, 'to a newer release only'),
                ({'kube_tag': 'v1.36'}, 'rolling upgrade is not built: create a new '
                                        'cluster from the template and move the '
                                        'workloads; the upgrade would change kube_tag v1')):
            template = self.new_template(labels=labels, uuid=uuidutils.generate_uuid(),
                                         name='t-%s' % labels['kube_tag'][3:])
            error = self.assertRaises(exception.NotSupported, self.upgrade, cluster,
                                      template)
            self.assertIn(expected, str(error).split('.', 1)[0])

    def test_upgrade_to_a_new_image_is_refused_until_built_naming_it(self):
        cluster = self.stored_cluster()
        self.assert_refused_untouched(cluster, self.new_template(image_id='debian-13-b'),
                                      'image debian-13 -> debian-13-b')

    def test_upgrade_to_other_add_on_labels_is_refused_until_built_naming_them(self):
        # the cluster's labels are its own: a template switch alone would not apply them
        cluster = self.stored_cluster()
        self.assert_refused_untouched(
            cluster, self.new_template(labels={'kube_tag': 'v1.36',
                                               'calico_tag': 'v3.32.5'}),
            'would change labels calico_tag (doc/upgrade)')

    def test_upgrade_skipping_a_minor_is_refused_naming_the_rule(self):
        cluster = self.stored_cluster(labels={'kube_tag': 'v1.34'})
        self.assert_refused_untouched(
            cluster, self.new_template(labels={'kube_tag': 'v1.36.2'}),
            'cluster k1 cannot be upgraded to template celtic-template-2: kubeadm '
            'upgrades a control plane one minor at a time, and kube_tag v1.34 -> '
            'v1.36.2 skips v1.35 (upgrade to a v1.35 template first)')

    def test_upgrade_to_an_older_release_is_refused(self):
        cluster = self.stored_cluster(labels={'kube_tag': 'v1.36.4'})
        for older in ('v1.35', 'v1.36.3'):
            self.assert_refused_untouched(
                cluster, self.new_template(labels={'kube_tag': older},
                                           uuid=uuidutils.generate_uuid(),
                                           name='t-%s' % older),
                'newer release only, and kube_tag v1.36.4 -> %s is a downgrade' % older)

    def test_upgrade_to_a_template_with_another_network_is_refused_naming_it(self):
        cluster = self.stored_cluster()
        self.assert_refused_untouched(
            cluster, self.new_template(external_network_id='other-public',
                                       network_driver='calico'),
            'changes external_network, network_driver, which an upgrade cannot')

    def test_upgrade_with_a_bad_kube_tag_names_the_label(self):
        cluster = self.stored_cluster()
        self.assert_refused_untouched(
            cluster, self.new_template(labels={'kube_tag': 'v1.99'}),
            'label kube_tag must be a supported Kubernetes minor')

    def test_upgrade_to_the_same_release_is_an_empty_heat_update_then_complete(self):
        cluster = self.stored_cluster()
        template = self.new_template()
        self.upgrade(cluster, template)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual('celtic-k1-5d12f6fd/%s' % cluster.stack_id, patch.path)
        self.assertEqual({}, patch.body['parameters'])
        stored = self.reload()
        self.assertEqual((Status.UPDATE_IN_PROGRESS, template.uuid),
                         (stored.status, stored.cluster_template_id))
        self.heat.set(cluster.stack_id, 'UPDATE_COMPLETE')
        self.poll()
        stored = self.reload()
        self.assertEqual((Status.UPDATE_COMPLETE, Status.UPDATE_COMPLETE),
                         (stored.status, stored.default_ng_worker.status))

    def test_upgrade_of_a_pool_on_the_clusters_image_is_an_update_of_its_stack(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        self.upgrade(cluster, cluster.cluster_template, ng)
        patch = self.heat.calls_of('PATCH')[-1]
        self.assertEqual(('celtic-k1-5d12f6fd-gpu/%s' % ng.stack_id, {}),
                         (patch.path, patch.body['parameters']))
        self.assertEqual(base.TEMPLATE_UUID, self.reload().cluster_template_id)

    def test_upgrade_of_a_pool_on_another_image_is_refused_until_built(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        ng.image_id = 'debian-12'
        ng.save()
        error = self.assertRaises(exception.NotSupported, self.upgrade, cluster,
                                  cluster.cluster_template, ng)
        self.assertIn('nodegroup gpu of cluster k1 cannot be upgraded to template '
                      'celtic-template yet', str(error))
        self.assertIn('would change image debian-12 -> debian-13', str(error))
        self.assertEqual([], self.heat.calls_of('PATCH'))


# ---- delete ------------------------------------------------------------------------------

class DeleteClusterTest(base.DriverTestCase):

    def delete(self, cluster):
        cluster_conductor.Handler().cluster_delete(self.user_context, cluster.uuid)
        return self.reload()

    def test_delete_marks_every_nodegroup_and_deletes_every_stack(self):
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        with mock.patch.object(driver.Driver, 'pre_delete_cluster',
                               autospec=True, return_value=None) as pre_delete:
            stored = self.delete(cluster)
        pre_delete.assert_called_once()
        self.assertEqual(Status.DELETE_IN_PROGRESS, stored.status)
        self.assertEqual({Status.DELETE_IN_PROGRESS},
                         {s for s, _ in self.statuses(stored).values()})
        self.assertEqual({'DELETE_IN_PROGRESS'},
                         {self.heat.stacks[i].status for i in (ng.stack_id,
                                                               cluster.stack_id)})

    def test_delete_then_polls_until_the_row_is_gone(self):
        cluster = self.stored_cluster()
        self.add_pool(cluster)
        self.delete(cluster)
        self.poll()
        self.assertEqual(Status.DELETE_IN_PROGRESS, self.reload().status)
        for stack_id in list(self.heat.stacks):
            self.heat.purge(stack_id)
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertRaises(exception.ClusterNotFound, self.reload)
        self.assertEqual([('magnum.cluster.delete', 'INFO')],
                         [e for e in _events() if e[0].endswith('delete')][-1:])

    def test_delete_of_a_cluster_whose_stack_was_never_created(self):
        cluster = self.stored_cluster()
        self.heat.purge(cluster.stack_id)
        cluster.stack_id = None
        cluster.save()
        stored = self.delete(cluster)
        self.assertEqual(Status.DELETE_IN_PROGRESS, stored.status)
        self.assertEqual([('GET', 'celtic-k1-5d12f6fd')],
                         [(c.method, c.path) for c in self.heat.calls])
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertRaises(exception.ClusterNotFound, self.reload)

    def test_delete_of_a_stack_that_is_already_gone_is_not_an_error(self):
        cluster = self.stored_cluster()
        self.heat.purge(cluster.stack_id)
        stored = self.delete(cluster)
        self.assertEqual(Status.DELETE_IN_PROGRESS, stored.status)
        self.assertEqual([cluster.stack_id],
                         [c.path for c in self.heat.calls_of('DELETE')])
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)

    def _unreferenced(self, cluster):
        """The cluster as a conductor killed in Magnum's certificate step leaves it:
        its certificates stored, their refs never saved; with a CA of another name and
        an application credential record of the same owner beside them."""
        stored = {r: getattr(cluster, r) for r in CA_REFS}
        for ref in CA_REFS:
            setattr(cluster, ref, None)
        cluster.save()
        from magnum.common import cert_manager as cert_backends
        from magnum.common.x509 import operations as x509_ops
        other = cert_backends.get_backend().CertManager.store_cert(
            certificate=x509_ops.generate_ca_certificate(
                'k2', encryption_password='pw')['certificate'],
            private_key='unused', context=self.user_context)
        record = objects.X509KeyPair(self.user_context, certificate=json.dumps(
            {'kind': 'celtic-application-credential/v1'}), private_key='sealed',
            project_id='fake_project', user_id='fake_user')
        record.create()
        return stored, {other, record.uuid}

    def _rows(self):
        return {kp.uuid for kp in objects.X509KeyPair.list(self.user_context)}

    def test_delete_removes_the_certificates_a_stopped_create_never_referred_to(self):
        cluster = self.stored_cluster()
        stored, kept = self._unreferenced(cluster)
        self.assertEqual(set(stored.values()) | kept, self._rows())
        self.delete(cluster)
        self.heat.purge(cluster.stack_id)
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertEqual(kept, self._rows())

    def test_those_certificates_stay_while_a_cluster_of_that_name_is_created(self):
        cluster = self.stored_cluster()
        stored, kept = self._unreferenced(cluster)
        twin = obj_utils.get_test_cluster(
            self.user_context, uuid='0c3a1a3e-3d1b-4b8e-8f43-3f0b6a0c2d11', name='k1',
            cluster_template_id=base.TEMPLATE_UUID, stack_id=None,
            status=Status.CREATE_IN_PROGRESS)
        twin.create()
        self.delete(cluster)
        self.heat.purge(cluster.stack_id)
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertEqual(set(stored.values()) | kept, self._rows())

    def test_certificates_another_cluster_refers_to_are_kept(self):
        cluster = self.stored_cluster()
        stored, kept = self._unreferenced(cluster)
        # the twin refers to the CA and the client certificate; the other two CAs
        # (subject k1, referred to by nothing) go
        pair = {stored['ca_cert_ref'], stored['magnum_cert_ref']}
        twin = obj_utils.get_test_cluster(
            self.user_context, uuid='0c3a1a3e-3d1b-4b8e-8f43-3f0b6a0c2d11', name='k1',
            cluster_template_id=base.TEMPLATE_UUID, stack_id=None,
            status=Status.CREATE_COMPLETE, ca_cert_ref=stored['ca_cert_ref'],
            magnum_cert_ref=stored['magnum_cert_ref'])
        twin.create()
        self.delete(cluster)
        self.heat.purge(cluster.stack_id)
        self.assertEqual(Status.DELETE_COMPLETE, self.poll().status)
        self.assertEqual(pair | kept, self._rows())

    def test_with_barbican_those_certificates_are_only_named_in_the_log(self):
        cluster = self.stored_cluster()
        stored, kept = self._unreferenced(cluster)
        self.config(cert_manager_type='barbican', group='certificates')
        with mock.patch.object(certs.LOG, 'warning') as warning:
            self.assertEqual([], certs.delete_unsaved_certificates(self.reload()))
        self.assertIn("up to three CAs named 'k1' and a certificate named "
                      "Magnum-Conductor of project fake_project",
                      warning.call_args[0][0] % warning.call_args[0][1:])
        self.config(cert_manager_type='x509keypair', group='certificates')
        self.assertEqual(set(stored.values()) | kept, self._rows())

    def test_heat_unreachable_fails_the_delete_saying_so(self):
        cluster = self.stored_cluster()
        self.heat.unreachable()
        self.assertRaises(exception.MagnumException, self.delete, cluster)
        stored = self.reload()
        self.assertEqual(Status.DELETE_FAILED, stored.status)
        self.assertIn('Heat is unavailable for the delete of stack',
                      stored.status_reason)


# ---- faults: crashes, two conductors, raw errors ----------------------------------------

class FaultsTest(base.DriverTestCase):

    def test_a_stack_whose_id_was_never_saved_is_found_by_name(self):
        # the conductor died between Heat's answer and saving the stack id
        cluster = self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        stack_id = cluster.stack_id
        cluster.stack_id = None
        cluster.save()
        stored = self.poll()
        self.assertEqual((Status.CREATE_COMPLETE, stack_id),
                         (stored.status, self.reload().stack_id))
        self.assertEqual({stack_id}, {ng.stack_id for ng in self.reload().nodegroups})

    def test_a_delete_finds_a_stack_whose_id_was_never_saved(self):
        cluster = self.stored_cluster()
        stack_id = cluster.stack_id
        cluster.stack_id = None
        cluster.save()
        self.delete = cluster_conductor.Handler().cluster_delete
        self.delete(self.user_context, cluster.uuid)
        self.assertEqual('DELETE_IN_PROGRESS', self.heat.stacks[stack_id].status)

    def test_a_database_error_becomes_words_not_sql(self):
        from oslo_db import exception as db_exc
        cluster = self.stored_cluster()
        raw = ('(sqlite3.OperationalError) database is locked [SQL: UPDATE nodegroup '
               'SET status=? WHERE nodegroup.id = ?]')
        with mock.patch.object(objects.NodeGroup, 'save', autospec=True,
                               side_effect=db_exc.DBError(raw)):
            self.assertRaises(exception.MagnumException,
                              cluster_conductor.Handler().cluster_delete,
                              self.user_context, cluster.uuid)
        stored = self.reload()
        self.assertEqual(Status.DELETE_FAILED, stored.status)
        self.assertEqual('cluster delete failed: Magnum\'s database was busy or could '
                         'not be reached (details in the magnum-conductor log); run it '
                         'again', stored.status_reason)

    def test_an_unexpected_error_says_where_to_look(self):
        cluster = self.stored_cluster()
        with mock.patch.object(objects.NodeGroup, 'save', autospec=True,
                               side_effect=KeyError('flavor_id')):
            self.assertRaises(exception.MagnumException,
                              cluster_conductor.Handler().cluster_delete,
                              self.user_context, cluster.uuid)
        reason = self.reload().status_reason
        self.assertIn('unexpected error in the celtic driver', reason)
        self.assertNotIn('KeyError', reason)

    def test_an_operation_waits_for_another_conductor_then_says_so(self):
        from magnum_celtic import adapters
        cluster = self.stored_cluster()
        self.useFixture(fixtures.MockPatchObject(driver, 'OPERATION_LOCK_WAIT', 0.2))
        with adapters.cluster_lock(cluster.uuid) as held:
            self.assertTrue(held)
            self.assertRaises(exception.MagnumException,
                              cluster_conductor.Handler().cluster_delete,
                              self.user_context, cluster.uuid)
        self.assertIn('another Magnum conductor has been working on this cluster',
                      self.reload().status_reason)
        self.assertEqual([], self.heat.calls_of('DELETE'))

    def test_a_poll_while_another_conductor_holds_the_cluster_does_nothing(self):
        from magnum_celtic import adapters
        self.stored_cluster(status=Status.CREATE_IN_PROGRESS)
        with adapters.cluster_lock(base.CLUSTER_UUID) as held:
            self.assertTrue(held)
            self.poll()
        self.assertEqual([], self.heat.calls)
        self.assertEqual(Status.CREATE_IN_PROGRESS, self.reload().status)

    def test_the_cluster_lock_is_one_holder_at_a_time(self):
        from magnum_celtic import adapters
        with adapters.cluster_lock('c1') as first:
            with adapters.cluster_lock('c1', wait=0.2) as second:
                with adapters.cluster_lock('c2') as other:
                    self.assertEqual((True, False, True), (first, second, other))
        with adapters.cluster_lock('c1') as again:
            self.assertTrue(again)

    def test_a_cluster_another_conductor_finished_is_not_reported_again(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        ctx = self.admin_context()
        stale = objects.Cluster.get_by_uuid(ctx, cluster.uuid)
        cluster.status = Status.DELETE_COMPLETE
        cluster.save()
        self.driver.update_cluster_status(ctx, stale)
        # Magnum's job acts on what the driver leaves: not a second clean-up
        self.assertEqual(Status.DELETE_IN_PROGRESS, stale.status)
        self.assertEqual([], self.heat.calls)

    def test_a_cluster_another_conductor_removed_is_not_an_error(self):
        cluster = self.stored_cluster(status=Status.DELETE_IN_PROGRESS)
        ctx = self.admin_context()
        stale = objects.Cluster.get_by_uuid(ctx, cluster.uuid)
        for ng in objects.NodeGroup.list(ctx, cluster.uuid):
            ng.destroy()
        cluster.destroy()
        self.driver.update_cluster_status(ctx, stale)
        self.assertEqual(Status.DELETE_IN_PROGRESS, stale.status)

    def test_a_nodegroup_destroyed_twice_is_not_an_error(self):
        from magnum_celtic import adapters
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster)
        twin = objects.NodeGroup.get(self.user_context, cluster.uuid, ng.uuid)
        self.assertEqual((True, False), (adapters.destroy_nodegroup(ng),
                                         adapters.destroy_nodegroup(twin)))


# ---- certificates, monitor, federation, validation, lookup ----------------------------

class CertificateTest(base.DriverTestCase):

    def test_ca_rotation_restores_the_previous_cas_and_is_not_supported(self):
        cluster = self.stored_cluster()
        before = {r: getattr(cluster, r) for r in CA_REFS}
        ca_pem = cert_manager.get_cluster_ca_certificate(
            cluster, self.user_context).get_certificate()
        error = self.assertRaises(exception.NotSupported,
                                  ca_conductor.Handler().rotate_ca_certificate,
                                  self.user_context, cluster)
        self.assertIn('Rotating the CA of a celtic cluster', str(error))
        stored = self.reload()
        self.assertEqual(before, {r: getattr(stored, r) for r in CA_REFS})
        self.assertEqual(ca_pem, cert_manager.get_cluster_ca_certificate(
            stored, self.user_context).get_certificate())
        # The certificates Magnum generated for the rotation are gone again.
        self.assertEqual(sorted(before.values()), sorted(
            kp.uuid for kp in objects.X509KeyPair.list(self.user_context)))

    def test_ca_rotation_restores_the_refs_even_if_a_new_ca_cannot_be_deleted(self):
        cluster = self.stored_cluster()
        before = {r: getattr(cluster, r) for r in CA_REFS}
        cert_manager.generate_certificates_to_cluster(cluster, self.user_context)
        objects.X509KeyPair.get_by_uuid(self.user_context,
                                        cluster.etcd_ca_cert_ref).destroy()
        self.assertRaises(exception.NotSupported, self.driver.rotate_ca_certificate,
                          self.user_context, cluster)
        self.assertEqual(before, {r: getattr(cluster, r) for r in CA_REFS})

    def test_get_monitor_is_magnums_kubernetes_monitor(self):
        cluster = self.stored_cluster()
        monitor = self.driver.get_monitor(self.user_context, cluster)
        self.assertIsInstance(monitor, k8s_monitor.K8sMonitor)
        self.assertIs(cluster, monitor.cluster)

    def test_get_scale_manager_is_none(self):
        self.assertIsNone(self.driver.get_scale_manager(self.user_context, None, None))

    def test_federation_methods_are_not_implemented(self):
        for method in (self.driver.create_federation, self.driver.update_federation,
                       self.driver.delete_federation):
            self.assertRaises(NotImplementedError, method, self.user_context, None)

    def test_master_size_must_be_odd_and_at_least_one(self):
        for size in (1, 3, 5):
            self.driver.validate_master_size(size)
        for size in (0, 2, 4):
            self.assertRaises(exception.MasterNGSizeInvalid,
                              self.driver.validate_master_size, size)

    def test_master_resize_takes_odd_counts_up_to_seven_at_the_api(self):
        for size in (1, 3, 5, 7):
            self.driver.validate_master_resize(size)
        for size in (0, 2, 4, 9, -1):
            error = self.assertRaises(exception.InvalidParameterValue,
                                      self.driver.validate_master_resize, size)
            self.assertEqual('node_count of the master nodegroup must be one of 1, 3, 5, '
                             '7 (an odd number: etcd and corosync keep quorum with a '
                             'majority of the masters), got %d' % size, str(error))


class LookupTest(base.DriverTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(setattr, magnum_driver.Driver, 'definitions', None)
        magnum_driver.Driver.definitions = None

    def test_provides_ubuntu_and_debian_vms_for_kubernetes(self):
        self.assertEqual([{'server_type': 'vm', 'os': 'ubuntu', 'coe': 'kubernetes'},
                          {'server_type': 'vm', 'os': 'debian', 'coe': 'kubernetes'}],
                         self.driver.provides)

    def test_magnum_finds_the_driver_by_name(self):
        found = magnum_driver.Driver.get_driver('vm', 'ubuntu', 'kubernetes', 'celtic')
        self.assertIsInstance(found, driver.Driver)

    def test_magnum_finds_the_driver_by_ubuntu_and_debian_tuples(self):
        for distro in ('ubuntu', 'debian'):
            found = magnum_driver.Driver.get_driver('vm', distro, 'kubernetes')
            self.assertIsInstance(found, driver.Driver)

    def test_other_distros_are_not_provided(self):
        self.assertRaises(exception.ClusterTypeNotSupported,
                          magnum_driver.Driver.get_driver, 'vm', 'fedora-coreos',
                          'kubernetes')

    def test_the_conductor_selects_the_driver_from_the_template(self):
        cluster = self.stored_cluster()
        found = magnum_driver.Driver.get_driver_for_cluster(self.user_context, cluster)
        self.assertIsInstance(found, driver.Driver)

    def test_construction_does_no_io(self):
        driver.Driver()
        self.assertEqual([], self.http.request_history)
