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

"""The software-config agent of a lab server (the old in-tree driver's nodes).

celtic's nodes report once, through a wait condition (node.py runs them). The old
in-tree Magnum driver's nodes ran heat-container-agent instead: os-collect-config
fetches the server's deployments from Heat, heat-config runs each one, and
heat-config-notify reports it back. With ``signal_transport: HEAT_SIGNAL`` (what
that driver used) the report is a Keystone password authentication as the
deployment's own stack-domain user, then a POST of the deployment's outputs to the
heat-api signal URL of the deployment resource.

This module plays the agent for one deployment, and only the agent: the deployment
itself (its derived config, its stack-domain user, its record, the metadata pushed to
the server, the signal's handling) is Heat's own code (standins/heat_software.py).
The agent learns of the deployment the moment Heat stores it, which is kind to the
old design (a real os-collect-config polls every 30 s). The config "runs" for the
deployment's ``deployment_seconds`` (lab behaviour, default 1 s), then the report is
sent as heat-config-notify sends it (a Keystone token for the deployment's stack-domain
user, then a POST to Heat's signal URL, each retried with the node library's
``celtic_retry``: celtic nodes themselves report through celtic-vendordata's relay
since issue 23), run the way node.py runs nodes (niced, one of the node slots, killed
when the deployment goes away). Nothing secret is put on a command line: the Keystone
request body and the token header are 0600 files.
"""

from __future__ import annotations

import json
import os
import shutil
import threading

from magnum_celtic.lab import celtic_stack
from magnum_celtic.lab import node

NOTIFY_SCRIPT = r'''
# The lab's heat-config-notify: a Keystone token for the deployment's stack-domain user,
# then its outputs POSTed to Heat's signal URL (files in this directory), with the node
# library's retry and logging (celtic nodes no longer signal Heat themselves: issue 23).
set -uo pipefail
source "$AGENT_LIBRARY"
agent_token_once() {
    curl -sS -f -o /dev/null -D headers --max-time 60 \
        -H 'Content-Type: application/json' --data-binary @auth.json "$(cat auth_url)" ||
        return 1
    tr -d '\r' <headers | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p' |
        sed 's/^/X-Auth-Token: /' >token_header
    [[ -s token_header ]]
}
agent_post_once() {
    curl -sS -f -o /dev/null --max-time 120 -H @token_header \
        -H 'Content-Type: application/json' --data-binary @signal.json "$(cat alarm_url)"
}
celtic_retry -n "${CELTIC_SIGNAL_ATTEMPTS:-8}" -d 2 -m 30 -- agent_token_once &&
    celtic_retry -n "${CELTIC_SIGNAL_ATTEMPTS:-8}" -d 2 -m 30 -- agent_post_once &&
    celtic_info "deployment $AGENT_DEPLOYMENT reported"
'''


def library() -> str:
    """The node library the report is sent with (the templates' lib/celtic.sh)."""
    return os.path.join(celtic_stack.templates_dir(), 'fragments', 'lib', 'celtic.sh')


def _private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)


def auth_request(user_id: str, password: str, project_id: str) -> dict:
    """Keystone v3 password authentication of a stack-domain user, project-scoped."""
    return {'auth': {'identity': {'methods': ['password'],
                                  'password': {'user': {'id': user_id,
                                                        'password': password}}},
                     'scope': {'project': {'id': project_id}}}}


def outputs(config_name: str, status_code: int = 0) -> dict:
    """What heat-config-notify sends for a config that ran."""
    return {'deploy_stdout': 'lab agent: %s ran' % config_name, 'deploy_stderr': '',
            'deploy_status_code': status_code}


def report(root: str, deployment_id: str, seconds: float, credentials: dict,
           signal_url: str, config_name: str) -> threading.Thread:
    """Run the deployment for ``seconds``, then report it, in the background.

    ``credentials`` is Heat's own for the deployment (SignalResponder's
    ``_get_heat_signal_credentials``: auth_url, user_id, password, project_id)."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    # the files NOTIFY_SCRIPT reads from its work directory
    _private(os.path.join(root, 'auth.json'), json.dumps(auth_request(
        credentials['user_id'], credentials['password'], credentials['project_id'])))
    _private(os.path.join(root, 'auth_url'),
             credentials['auth_url'].rstrip('/') + '/auth/tokens')
    _private(os.path.join(root, 'signal.json'), json.dumps(outputs(config_name)))
    _private(os.path.join(root, 'alarm_url'), signal_url)
    _private(os.path.join(root, 'notify.sh'), NOTIFY_SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith('_proxy') and not k.startswith(('OS_', 'CELTIC_'))}
    env.update({'no_proxy': '127.0.0.1,localhost',
                'PATH': os.pathsep.join([node.lab_bin_dir(root), env.get('PATH', '')]),
                'AGENT_LIBRARY': library(), 'AGENT_DEPLOYMENT': deployment_id,
                'CELTIC_ROLE': 'agent', 'CELTIC_ETC': root,
                'CELTIC_LOG_FILE': os.path.join(root, 'agent.log')})

    def notify():
        with open(os.path.join(root, 'agent.log'), 'a') as console:
            node.run_shell(deployment_id, os.path.join(root, 'notify.sh'), root, env,
                           console)

    return node.in_background('lab-agent-%s' % deployment_id[:8], seconds, notify)


def forget(root: str, deployment_id: str) -> None:
    """The deployment is gone: stop its report and remove its files."""
    node.stop(deployment_id)
    shutil.rmtree(root, ignore_errors=True)
