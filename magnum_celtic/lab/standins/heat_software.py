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

"""``OS::Heat::SoftwareDeployment`` as Heat runs it, with the lab playing the agent.

celtic does not use software deployments (a node reports once, through its wait
condition); the old in-tree Magnum driver did, one or two per node, with
heat-container-agent on the server running the config and signalling back. The Heat
benchmarks run those templates too, so this class is Heat's own resource with nothing
replaced but the two places that would reach a cloud or a guest:

- when Heat has stored a deployment that expects a signal, the server's agent
  (agent.py) runs it for ``deployment_seconds`` (lab behaviour, default 1 s, the
  figure the reference measurements used) and reports it through Keystone and heat-api
  as heat-config-notify does, with the deployment's own stack-domain user;
- "does the server still exist" asks the lab cloud instead of Nova.

Everything else is Heat's: the derived config with the signal credentials, the
stack-domain user, the deployment record and the metadata Heat pushes to the server,
the polling until the deployment is COMPLETE, the signal's handling, and the clean-up
(user, derived config, record) on delete. Only ``HEAT_SIGNAL`` (and ``NO_SIGNAL``,
which needs no agent) is played; another transport is refused with a clear error.
"""

from __future__ import annotations

import os

from heat.common import exception
from heat.engine.resources.openstack.heat import software_deployment

from magnum_celtic.lab import agent
from magnum_celtic.lab.standins.base import lab_cloud

DEFAULT_SECONDS = 1.0


class StandInSoftwareDeployment(software_deployment.SoftwareDeployment):

    def _agent_dir(self) -> str:
        return os.path.join(lab_cloud().directory, 'agents', self.resource_id or 'none')

    def _handle_action(self, action, config=None, prev_derived_config=None):
        if not (self._signal_transport_heat() or self._signal_transport_none()):
            # refused before Heat stores anything for the deployment
            raise exception.Error(
                'the lab plays the software-config agent for signal_transport '
                'HEAT_SIGNAL only, not %s' % self.properties[self.SIGNAL_TRANSPORT])
        sd = super()._handle_action(action, config=config,
                                    prev_derived_config=prev_derived_config)
        if sd:
            self._run_on_server(action)
        return sd

    def _run_on_server(self, action) -> None:
        credentials = self._get_heat_signal_credentials()
        url = self._get_heat_signal_url(project_id=credentials['project_id'])
        rules = lab_cloud().behaviour(self.physical_resource_name())
        seconds = float(rules.get('deployment_seconds', DEFAULT_SECONDS))
        agent.report(self._agent_dir(), self.resource_id, seconds, credentials, url,
                     '%s %s' % (self.name, action))

    def _server_exists(self, sd):
        return sd['server_id'] in lab_cloud().snapshot().get('servers', {})

    def _delete_resource(self):
        if self.resource_id is not None:
            agent.forget(self._agent_dir(), self.resource_id)
        super()._delete_resource()
