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

"""What a lab node ended up with, against doc/node-contract.md §3: each role exactly
its own secret files, all private (0600), no CA or SA key off the masters, a private
signal.json.

The standard library only, and runnable as a script (``python -S node_contract.py ROOT
ROLE LEGACY EXPECTED``): a node runs it as its ``node-contract`` step inside its node
slot, where importing the driver's packages (cryptography for ``pki``) cost more CPU than
the node's real steps. The harness passes the role's expected files (``node.role_secrets``,
from ``pki.role_secrets``), computed once in its own process.
"""

from __future__ import annotations

import os
import sys

#: CA/SA keys only masters may hold (§3), and the cluster's application credential
#: (pki.CREDENTIAL_FILE), which only a cluster with autoscaling or healing has
MASTER_ONLY_SECRETS = ('ca.key', 'etcd-ca.key', 'front-proxy-ca.key', 'sa.key',
                       'application-credential.json')


def check_secrets(root: str, role: str, expected: tuple[str, ...] | list[str],
                  legacy: bool = False) -> list[str]:
    """Problems with the secrets and signal credentials under ``root`` of a node of
    ``role``, which must hold exactly ``expected`` (a legacy node may hold more)."""
    etc = root + '/etc/celtic'
    problems = []
    signal = os.path.join(etc, 'signal.json')
    if not os.path.exists(signal):
        problems.append('signal.json is not delivered')
    elif os.stat(signal).st_mode & 0o077:
        problems.append('signal.json is readable by others')
    secrets_dir = os.path.join(etc, 'secrets')
    held = sorted(os.listdir(secrets_dir)) if os.path.isdir(secrets_dir) else []
    for name in expected:
        path = os.path.join(secrets_dir, name)
        if name not in held:
            problems.append('secret %s is not delivered' % name)
        elif os.stat(path).st_mode & 0o077:
            problems.append('secret %s is readable by others' % name)
    if role != 'master':
        leaked = [n for n in MASTER_ONLY_SECRETS if n in held]
        if leaked:
            problems.append('a %s must not receive %s' % (role, ', '.join(leaked)))
    extra = [n for n in held if n not in expected and n not in MASTER_ONLY_SECRETS]
    if extra and not legacy:
        problems.append('a %s must not receive %s' % (role, ', '.join(extra)))
    return problems


if __name__ == '__main__':
    root_arg, role_arg, legacy_arg, expected_arg = sys.argv[1:5]
    print('; '.join(check_secrets(root_arg, role_arg, expected_arg.split(),
                                  legacy_arg == '1')))
