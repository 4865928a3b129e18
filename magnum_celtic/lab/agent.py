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
a bash script with curl, like a celtic node's, run the way node.py runs nodes (niced,
one of the node slots, killed when the deployment goes away). Nothing secret is put on
a command line: the Keystone request body and the token header are 0600 files.
"""

from __future__ import annotations

import json
import os
import shutil
import threading

from magnum_celtic.lab import node

#: the number of reports a deployment gets before the agent gives up (a real
#: heat-config-notify tries once; os-collect-config runs it again at the next poll)
ATTEMPTS = 3
RETRY_SECONDS = 2

NOTIFY_SCRIPT = r'''
# The lab's heat-config-notify: authenticate as the deployment's stack-domain user,
# then signal the deployment's outputs to heat-api.
set -uo pipefail
for attempt in $(seq 1 "$AGENT_ATTEMPTS"); do
    token=$(curl -sS -f -o /dev/null -D - --max-time 60 \
                -H 'Content-Type: application/json' --data @auth.json \
                "$AGENT_AUTH_URL/auth/tokens" |
            awk 'tolower($1) == "x-subject-token:" {print $2}' | tr -d '\r')
    if [[ -n "$token" ]]; then
        printf 'X-Auth-Token: %s\n' "$token" > token_header
        if curl -sS -f -o /dev/null --max-time 120 -H @token_header \
                -H 'Content-Type: application/json' --data @outputs.json \
                "$AGENT_SIGNAL_URL"; then
            echo "agent: deployment $AGENT_DEPLOYMENT reported (attempt $attempt)"
            exit 0
        fi
    fi
    echo "agent: deployment $AGENT_DEPLOYMENT: report failed (attempt $attempt)"
    sleep "$AGENT_RETRY_SECONDS"
done
exit 1
'''


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
    _private(os.path.join(root, 'auth.json'), json.dumps(auth_request(
        credentials['user_id'], credentials['password'], credentials['project_id'])))
    _private(os.path.join(root, 'outputs.json'), json.dumps(outputs(config_name)))
    _private(os.path.join(root, 'notify.sh'), NOTIFY_SCRIPT)
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith('_proxy') and not k.startswith(('OS_', 'CELTIC_'))}
    env.update({'no_proxy': '127.0.0.1,localhost',
                'AGENT_AUTH_URL': credentials['auth_url'].rstrip('/'),
                'AGENT_SIGNAL_URL': signal_url, 'AGENT_DEPLOYMENT': deployment_id,
                'AGENT_ATTEMPTS': str(ATTEMPTS), 'AGENT_RETRY_SECONDS': str(RETRY_SECONDS)})

    def notify():
        with open(os.path.join(root, 'agent.log'), 'a') as console:
            node.run_shell(deployment_id, os.path.join(root, 'notify.sh'), root, env,
                           console)

    return node.in_background('lab-agent-%s' % deployment_id[:8], seconds, notify)


def forget(root: str, deployment_id: str) -> None:
    """The deployment is gone: stop its report and remove its files."""
    node.stop(deployment_id)
    shutil.rmtree(root, ignore_errors=True)
