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

"""The cluster's application credential: made at create with the owner's token, kept
encrypted in Magnum's database, served to the masters only, rotated, deleted with the
cluster. Magnum's conductor handlers and database run for real; Keystone's
application-credential API is answered at the HTTP boundary (fake_cloud's Keystone)."""

from __future__ import annotations

import json
import re
import uuid

from magnum.common import exception
from magnum.conductor.handlers import cluster_conductor
from magnum.conductor.handlers import credential_conductor
from magnum import objects

from magnum_celtic import adapters
from magnum_celtic import appcred
from magnum_celtic import certs
from magnum_celtic import pki
from magnum_celtic import vendordata
from tests.unit import base
from tests.unit import fake_cloud

SCALING = {'kube_tag': 'v1.36', 'auto_scaling_enabled': 'true', 'min_node_count': '1',
           'max_node_count': '4'}
URL = fake_cloud.KEYSTONE + '/users/fake_user/application_credentials'


class FakeApplicationCredentials:
    """Keystone's /users/<id>/application_credentials for the user fake_user."""

    def __init__(self, mocker):
        self.live: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.refuse_create = 0
        mocker.post(URL, text=self._create)
        mocker.delete(re.compile(URL + '/.*'), text=self._delete)

    def _create(self, request, context):
        body = request.json()
        self.requests.append(('POST', request.headers.get('X-Auth-Token'), body))
        context.headers.update(fake_cloud.JSON)
        if self.refuse_create:
            context.status_code = self.refuse_create
            return json.dumps({'error': {'code': self.refuse_create,
                                         'message': 'Invalid application credential: '
                                                    'role not assigned',
                                         'title': 'Forbidden'}})
        made = dict(body['application_credential'], id=uuid.uuid4().hex,
                    secret='s3cr3t-' + uuid.uuid4().hex, project_id='fake_project')
        self.live[made['id']] = made
        context.status_code = 201
        return json.dumps({'application_credential': made})

    def _delete(self, request, context):
        ident = request.path.rsplit('/', 1)[1]
        self.requests.append(('DELETE', request.headers.get('X-Auth-Token'), None))
        if self.live.pop(ident, None) is None:
            context.status_code = 404
            return json.dumps({'error': {'code': 404, 'message': 'not found',
                                         'title': 'Not Found'}})
        context.status_code = 204
        return ''


class CredentialTest(base.DriverTestCase):

    def setUp(self):
        super().setUp()
        self.creds = FakeApplicationCredentials(self.http)

    def create(self, labels=SCALING, workers=2):
        cluster = self.new_cluster(labels=labels)
        cluster_conductor.Handler().cluster_create(self.user_context, cluster, 3, workers,
                                                   45)
        return self.reload()

    def kept(self, cluster):
        return appcred.load(self.admin_context(), cluster,
                            certs.cluster_seed(self.admin_context(), cluster))

    def test_create_makes_one_credential_of_the_owner_with_the_configured_roles(self):
        stored = self.create()
        [(method, token, body)] = self.creds.requests
        self.assertEqual(('POST', fake_cloud.USER_TOKEN), (method, token))
        made = body['application_credential']
        self.assertEqual([{'name': 'member'}, {'name': 'reader'}], made['roles'])
        self.assertIs(False, made['unrestricted'])
        self.assertIn(stored.uuid, made['name'])
        kept = self.kept(stored)
        self.assertEqual(set(self.creds.live), {kept.id})
        self.assertEqual(self.creds.live[kept.id]['secret'], kept.secret)
        self.assertEqual(('fake_user', 'fake_project'), (kept.user_id, kept.project_id))

    def test_the_secret_is_kept_encrypted_and_never_sent_to_heat(self):
        stored = self.create()
        kept = self.kept(stored)
        row = objects.X509KeyPair.get_by_uuid(self.admin_context(),
                                              appcred.record_uuid(stored.uuid))
        self.assertNotIn(kept.secret, row.private_key + row.certificate)
        request = json.dumps(self.heat.only_stack().request)
        self.assertNotIn(kept.secret, request)
        self.assertNotIn(kept.secret, json.dumps(stored.as_dict(), default=str))

    def test_the_default_nodegroup_gets_the_labels_min_and_max(self):
        worker = self.create().default_ng_worker
        self.assertEqual((1, 4), (worker.min_node_count, worker.max_node_count))

    def test_a_cluster_without_autoscaling_or_healing_gets_no_credential(self):
        stored = self.create(labels={'kube_tag': 'v1.36'})
        self.assertEqual([], self.creds.requests)
        self.assertIsNone(self.kept(stored))

    def test_the_cloud_provider_alone_gets_the_cluster_a_credential(self):
        stored = self.create(labels={'kube_tag': 'v1.36', 'cloud_provider_enabled': 'true'})
        self.assertEqual(set(self.creds.live), {self.kept(stored).id})

    def test_cinder_csi_alone_gets_the_cluster_a_credential(self):
        stored = self.create(labels={'kube_tag': 'v1.36', 'cinder_csi_enabled': 'true'})
        self.assertEqual(set(self.creds.live), {self.kept(stored).id})

    def test_keystone_refusing_the_roles_fails_the_create_before_any_stack(self):
        self.creds.refuse_create = 403
        self.assertRaisesRegex(exception.InvalidParameterValue,
                               'Keystone refused an application credential with roles '
                               'member, reader', self.create)
        self.assertEqual({}, self.heat.stacks)

    def test_a_stack_heat_refuses_takes_the_new_credential_with_it(self):
        self.heat.fail('POST', 400, 'StackValidationFailed', 'bad template')
        self.assertRaises(exception.InvalidParameterValue, self.create)
        self.assertEqual({}, self.creds.live)
        self.assertEqual(['POST', 'DELETE'], [m for m, _, _ in self.creds.requests])

    def test_vendordata_serves_the_credential_to_masters_only(self):
        self.config(credential_auth_url='https://keystone.example.test/v3',
                    group='celtic')
        stored = self.create()
        kept = self.kept(stored)
        clusters = vendordata.MagnumClusters()
        context = self.admin_context()
        seed = certs.cluster_seed(context, stored)
        content = clusters.credential(context, stored, seed)
        doc = json.loads(content)
        self.assertEqual({'auth_type': 'v3applicationcredential',
                          'auth_url': 'https://keystone.example.test/v3',
                          'application_credential_id': kept.id,
                          'application_credential_secret': kept.secret,
                          'project_id': 'fake_project', 'region_name': ''}, doc)
        secrets = pki.role_secrets(certs.cluster_pki(context, stored), credential=content)
        self.assertEqual(content, secrets['master'][pki.CREDENTIAL_FILE])
        for role in ('proxy', 'minion', 'storage'):
            self.assertNotIn(pki.CREDENTIAL_FILE, secrets[role])

    def test_rotate_makes_a_new_credential_and_deletes_the_one_retired_before(self):
        stored = self.create()
        first = self.kept(stored).id
        stored.status = base.Status.CREATE_COMPLETE
        stored.save()
        credential_conductor.Handler().credential_rotate(self.user_context, stored)
        second = self.kept(stored)
        self.assertNotEqual(first, second.id)
        self.assertEqual((first,), second.retired)
        self.assertEqual({first, second.id}, set(self.creds.live))
        credential_conductor.Handler().credential_rotate(self.user_context, stored)
        third = self.kept(stored)
        self.assertEqual((second.id,), third.retired)
        self.assertEqual({second.id, third.id}, set(self.creds.live))

    def test_rotate_without_a_credential_says_which_labels_give_one(self):
        stored = self.create(labels={'kube_tag': 'v1.36'})
        stored.status = base.Status.CREATE_COMPLETE
        stored.save()
        self.assertRaisesRegex(exception.InvalidParameterValue,
                               'auto_scaling_enabled, auto_healing_enabled, '
                               'cloud_provider_enabled or cinder_csi_enabled',
                               credential_conductor.Handler().credential_rotate,
                               self.user_context, stored)

    def test_delete_deletes_every_credential_and_the_record_idempotently(self):
        stored = self.create()
        stored.status = base.Status.CREATE_COMPLETE
        stored.save()
        credential_conductor.Handler().credential_rotate(self.user_context, stored)
        gone_by_hand = self.kept(stored).retired[0]
        del self.creds.live[gone_by_hand]   # deleted in Keystone already: fine
        cluster_conductor.Handler().cluster_delete(self.user_context, stored.uuid)
        self.assertEqual({}, self.creds.live)
        self.assertIsNone(self.kept(stored))
        deletes = [t for m, t, _ in self.creds.requests if m == 'DELETE']
        self.assertEqual([fake_cloud.USER_TOKEN] * 2, deletes)

    def test_a_credential_keystone_will_not_delete_stays_recorded(self):
        stored = self.create()
        self.http.delete(re.compile(URL + '/.*'), status_code=503)
        appcred.remove(self.user_context, adapters.keystone_session(self.user_context),
                       None, stored, certs.cluster_seed(self.user_context, stored))
        self.assertIsNotNone(self.kept(stored))


class ScalingBoundsTest(base.DriverTestCase):

    def test_a_nodegroup_whose_max_its_stack_cannot_hold_is_refused_before_any_stack(self):
        self.config(heat_max_resources_per_stack=20, group='celtic')
        cluster = self.stored_cluster()
        ng = self.add_pool(cluster, with_stack=False, status=base.Status.CREATE_IN_PROGRESS)
        ng.max_node_count = 50
        stacks = set(self.heat.stacks)
        self.assertRaisesRegex(exception.InvalidParameterValue,
                               "max_node_count 50 is more than the nodegroup's stack "
                               "can hold", self.driver.create_nodegroup,
                               self.user_context, cluster, ng)
        self.assertEqual(stacks, set(self.heat.stacks))

    def test_a_cluster_max_node_count_its_stack_cannot_hold_is_refused(self):
        self.config(heat_max_resources_per_stack=100, group='celtic')
        cluster = self.new_cluster(labels=dict(SCALING, max_node_count='500'))
        self.assertRaisesRegex(exception.InvalidParameterValue,
                               'label max_node_count 500 is more than the stack can '
                               'hold', cluster_conductor.Handler().cluster_create,
                               self.user_context, cluster, 3, 2, 45)
        self.assertEqual({}, self.heat.stacks)
