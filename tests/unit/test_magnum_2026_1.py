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

"""The driver's look-ups through the clients Magnum 2026.1 (22.x) hands out.

Magnum 22's ``OpenStackClients.neutron()`` is python-neutronclient's v2 client (dicts
from ``list_networks``), not openstacksdk's proxy. The existing-network tests run again
with that client, against the same Neutron HTTP answers.
"""

from __future__ import annotations

import fixtures
from magnum.common import clients
from neutronclient.v2_0 import client as neutron_client

from magnum_celtic import adapters
from tests.unit import fake_cloud
from tests.unit import test_driver


class ExistingNetworkOnLegacyNeutronTest(test_driver.ExistingNetworkTest):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(
            clients.OpenStackClients, 'neutron',
            lambda osc: neutron_client.Client(endpoint_url=fake_cloud.NEUTRON,
                                              token='magnum-22-token')))

    def test_the_legacy_client_is_the_one_asked(self):
        neutron = adapters._Neutron(clients.OpenStackClients(self.user_context).neutron())
        self.assertTrue(neutron.legacy)
        self.neutron.networks = [{'id': 'net-1', 'name': 'private'}]
        self.assertEqual([('net-1', 'private')],
                         [(n.id, n.name) for n in neutron.networks(name='private')])
