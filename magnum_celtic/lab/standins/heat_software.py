"""Stand-in for what a node agent does with an ``OS::Heat::SoftwareDeployment``.

celtic does not use software deployments (a node reports once, through its wait
condition); the old in-tree Magnum driver did, one or two per node, with
heat-container-agent on the server running the config and signalling back. The Heat
benchmarks run those templates too, so this stand-in keeps Heat's own class (schema,
validation, the row in the stack) and replaces only the agent: a deployment whose
action is in ``actions`` completes ``deployment_seconds`` after it is created (server
behaviour, default 1 s; the figure the reference measurements used), any other action
completes at once, as the real resource does when it has nothing to run.
"""

from __future__ import annotations

import time

from heat.engine.resources.openstack.heat import software_deployment

from magnum_celtic.lab.standins.base import StandIn
from magnum_celtic.lab.standins.base import _project
from magnum_celtic.lab.standins.base import lab_cloud

DEFAULT_SECONDS = 1.0


class StandInSoftwareDeployment(StandIn, software_deployment.SoftwareDeployment):
    kind = 'software_deployments'

    def _create_record(self, doc, record_id):
        return {'id': record_id, 'name': self.physical_resource_name(),
                'server_id': self.properties[self.SERVER],
                'config_id': self.properties[self.CONFIG], 'status': 'IN_PROGRESS',
                'tenant_id': _project(self)}

    def handle_create(self):
        if self.CREATE not in (self.properties[self.DEPLOY_ACTIONS] or []):
            return None
        record_id = super().handle_create()
        rules = lab_cloud().behaviour(self.physical_resource_name())
        seconds = float(rules.get('deployment_seconds', DEFAULT_SECONDS))
        return {'id': record_id, 'done_at': time.time() + seconds}

    def check_create_complete(self, handle):
        if not handle:
            return True
        if time.time() < handle['done_at']:
            return False
        with lab_cloud().transaction() as doc:
            record = doc['software_deployments'].get(handle['id'])
            if record is not None:
                record['status'] = 'COMPLETE'
        return True

    def handle_update(self, json_snippet, tmpl_diff, prop_diff):
        return None

    def check_update_complete(self, *args):
        return True

    def handle_delete(self):
        return StandIn.handle_delete(self)

    def check_delete_complete(self, *args):
        return True

    def get_attribute(self, key, *path):
        # deploy_stdout / deploy_stderr / deploy_status_code and config outputs: the
        # stand-in agent ran nothing, so there is nothing to report
        return None
