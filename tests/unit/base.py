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

"""Magnum's own test base (sqlite DbTestCase, test objects) with a fake cloud.

Everything Magnum does runs for real: its objects and database, its conductor handlers
and periodic status job, its x509keypair certificate manager, its Keystone session
plumbing. Heat and Keystone are answered at the HTTP boundary (fake_cloud).
"""

from __future__ import annotations

import fixtures
from keystoneauth1 import loading as ka_loading
from requests_mock.contrib import fixture as rm_fixture

from magnum.common import context as magnum_context
import magnum.conf
from magnum.common import rpc
from magnum.conductor.handlers.common import cert_manager
from magnum import objects
from magnum.objects import fields
from magnum.tests import fake_notifier
from magnum.tests.unit.db import base as db_base
from magnum.tests.unit.objects import utils as obj_utils

from magnum_celtic import driver
from tests.unit import fake_cloud

TEMPLATE_UUID = '0a8f7e44-6ff4-4d2c-9a48-4f3cbb1b6e11'
CLUSTER_UUID = '5d12f6fd-a196-4bf0-ae4c-1f639a523a52'
EXTERNAL_NETWORK = 'd1f02cfb-d27f-4068-9332-84d907cb0e2e'
VENDORDATA_URL = 'https://celtic-vendordata.example.test:9518'


class DriverTestCase(db_base.DbTestCase):
    """A celtic cluster template in Magnum's test database and a fake cloud."""

    def setUp(self):
        super().setUp()
        self.config(cert_manager_type='x509keypair', group='certificates')
        # Real CAs from Magnum, with keys small enough to generate quickly.
        self.config(rsa_key_size=1024, group='x509')
        self.config(public_url=VENDORDATA_URL, group='celtic_vendordata')
        self._configure_service_user()
        self.http = self.useFixture(rm_fixture.Fixture(case_sensitive=True))
        self.keystone = fake_cloud.FakeKeystone(self.http)
        self.heat = fake_cloud.FakeHeat(self.http)
        self.useFixture(fixtures.MockPatchObject(
            rpc, 'NOTIFIER', fake_notifier.FakeNotifier(None)))
        # The user's RPC context carries the user's token and its catalog.
        self.user_context = magnum_context.RequestContext(
            auth_token=fake_cloud.USER_TOKEN,
            auth_token_info=fake_cloud.token_body('fake_project', 'fake_user',
                                                  ['member']),
            project_id='fake_project', user_id='fake_user', is_admin=False)
        self.driver = driver.Driver()
        self.template = obj_utils.create_test_cluster_template(
            self.user_context, uuid=TEMPLATE_UUID, name='celtic-template',
            driver='celtic', cluster_distro='ubuntu', image_id='debian-13',
            flavor_id='m1.medium', master_flavor_id='m1.large',
            keypair_id='default', external_network_id=EXTERNAL_NETWORK,
            fixed_network=None, network_driver='flannel',
            http_proxy=None, https_proxy=None, no_proxy=None,
            docker_volume_size=None, dns_nameserver='192.0.2.53',
            master_lb_enabled=True, floating_ip_enabled=True,
            labels={'kube_tag': 'v1.36'})

    def _configure_service_user(self):
        # What an operator writes in [keystone_auth] for Magnum's service user.
        self.configure_password_auth('keystone_auth')

    def configure_password_auth(self, group: str) -> None:
        """Magnum's service user (password auth on the fake Keystone) in a magnum.conf
        group: [keystone_auth] for the driver, [keystone_authtoken] for the services."""
        conf = magnum.conf.CONF
        opts = ka_loading.get_auth_plugin_conf_options('password')
        conf.register_opts(opts, group=group)

        def unregister():
            # auth_url is a required option: left registered, it would fail the
            # next test's CONF() of Magnum's fixtures.
            conf.reset()
            conf.unregister_opts(opts, group=group)
        self.addCleanup(unregister)
        self.config(auth_type='password', auth_url=fake_cloud.KEYSTONE,
                    username='magnum', password='service-secret',
                    project_name='service', user_domain_id='default',
                    project_domain_id='default', group=group)

    # ---- Magnum objects --------------------------------------------------------------

    def admin_context(self):
        """The context of Magnum's periodic status job: no token, no project."""
        return magnum_context.make_admin_context(all_tenants=True)

    def new_cluster(self, labels=None, **fields_):
        """A cluster object as the API hands it to cluster_create (not saved yet)."""
        values = dict(uuid=CLUSTER_UUID, name='k1', cluster_template_id=TEMPLATE_UUID,
                      stack_id=None, api_address=None, keypair='default',
                      labels=dict(labels or {'kube_tag': 'v1.36'}),
                      master_flavor_id='m1.large', flavor_id='m1.medium',
                      create_timeout=60, floating_ip_enabled=True,
                      master_lb_enabled=True)
        values.update(fields_)
        cluster = obj_utils.get_test_cluster(self.user_context, **values)
        return cluster

    def stored_cluster(self, master_count=3, node_count=2, status='CREATE_COMPLETE',
                       stack_outputs=None, stack_status='CREATE_COMPLETE',
                       labels=None):
        """A cluster that exists: DB rows, real CAs, and its stack in Heat.

        Its default nodegroups share the cluster's status while it is created or
        deleted, and are CREATE_COMPLETE otherwise."""
        cluster = self.new_cluster(labels)
        cluster.status = status
        cluster.create()
        cert_manager.generate_certificates_to_cluster(cluster,
                                                      context=self.user_context)
        stack_id = self.heat.add_cluster('celtic-k1-5d12f6fd', stack_status,
                                         fake_cloud.cluster_outputs() if stack_outputs is None
                                         else stack_outputs)
        cluster.stack_id = stack_id
        cluster.api_address = 'https://172.24.4.10:6443'
        cluster.save()
        for role, count in (('master', master_count), ('worker', node_count)):
            ng = objects.NodeGroup(self.user_context)
            ng.cluster_id = cluster.uuid
            ng.project_id = cluster.project_id
            ng.name = 'default-%s' % role
            ng.role = role
            ng.is_default = True
            ng.node_count = count
            ng.image_id = 'debian-13'
            ng.flavor_id = 'm1.large' if role == 'master' else 'm1.medium'
            ng.labels = dict(cluster.labels)
            ng.stack_id = stack_id
            # An update or rollback marks the nodegroups it touches itself.
            ng.status = (status if status.startswith(('CREATE', 'DELETE'))
                         else Status.CREATE_COMPLETE)
            ng.create()
        return objects.Cluster.get_by_uuid(self.user_context, cluster.uuid)

    def add_pool(self, cluster, name='gpu', node_count=2, status='CREATE_COMPLETE',
                 with_stack=True, stack_status='CREATE_COMPLETE', addresses=None):
        """A non-default worker nodegroup, with its own stack unless told otherwise."""
        ng = objects.NodeGroup(self.user_context)
        ng.cluster_id = cluster.uuid
        ng.project_id = cluster.project_id
        ng.name = name
        ng.role = 'worker'
        ng.is_default = False
        ng.node_count = node_count
        ng.image_id = 'debian-13'
        ng.flavor_id = 'g1.large'
        ng.labels = {}
        ng.status = status
        ng.stack_id = None
        if with_stack:
            ng.stack_id = self.heat.add(
                'celtic-k1-5d12f6fd-%s' % name, stack_status,
                {'addresses': list(addresses or ['10.0.0.51', '10.0.0.52']),
                 'server_ids': ['gpu-server-0', 'gpu-server-1'],
                 'members': ['0', '1'], 'next_index': 2,
                 'names': ['k1-gpu-0', 'k1-gpu-1']})
        ng.create()
        return ng

    def nodegroup(self, cluster, name):
        return objects.NodeGroup.get(self.user_context, cluster.uuid, name)

    def poll(self, cluster_uuid=CLUSTER_UUID):
        """One run of Magnum's periodic status job for the cluster.

        Returns the cluster as the job left it (its row may be gone)."""
        from magnum.service import periodic
        from oslo_service import loopingcall
        ctx = self.admin_context()
        cluster = objects.Cluster.get_by_uuid(ctx, cluster_uuid)
        job = periodic.ClusterUpdateJob(ctx, cluster)
        self.assertRaises(loopingcall.LoopingCallDone, job.update_status)
        return cluster

    def reload(self, cluster_uuid=CLUSTER_UUID):
        return objects.Cluster.get_by_uuid(self.user_context, cluster_uuid)

    def statuses(self, cluster):
        """{nodegroup name: (status, status_reason)} as stored."""
        return {ng.name: (ng.status, ng.status_reason)
                for ng in objects.NodeGroup.list(self.user_context, cluster.uuid)}


Status = fields.ClusterStatus
