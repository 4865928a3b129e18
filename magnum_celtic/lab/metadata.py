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

"""What Nova's metadata service serves a lab node: its DynamicJSON vendordata.

Real Nova, when an instance reads ``openstack/latest/vendor_data2.json``, POSTs the
instance's facts to each ``vendordata_dynamic_targets`` entry with the token of its
``[vendordata_dynamic_auth]`` user, bounded by a timeout, and serves the JSON answers
under the targets' names; a target that fails (timeout, refused connection, an HTTP
error, not JSON) is left out, so the document may be ``{}``. The Nova stand-in does
the same once, when a server becomes ACTIVE and before its node simulator starts, and
writes the document where the node reads it:
``<node dir>/metadata/openstack/latest/vendor_data2.json`` (the node's
``CELTIC_METADATA_URL`` is ``file://<node dir>/metadata``).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: the name celtic-vendordata must be registered under in nova.conf
TARGET = 'celtic'
VENDOR_DATA = os.path.join('metadata', 'openstack', 'latest', 'vendor_data2.json')

OPTS = [
    cfg.StrOpt('vendordata_url',
               help='The DynamicJSON target (celtic-vendordata .../v1/vendordata); '
                    'unset: nodes get an empty vendor_data2.json, as from a Nova '
                    'without the target.'),
    cfg.StrOpt('nova_auth_url', help='Keystone of Nova\'s vendordata user.'),
    cfg.StrOpt('nova_username', default='nova'),
    cfg.StrOpt('nova_password', secret=True),
    cfg.StrOpt('nova_project', default='service'),
    cfg.FloatOpt('vendordata_timeout', default=30.0,
                 help='Seconds Nova waits for the target (nova.conf [api] '
                      'vendordata_dynamic_read_timeout; devstack sets 30).'),
]
cfg.CONF.register_opts(OPTS, group='celtic_lab')

_session_lock = threading.Lock()
_sessions: dict[tuple, Any] = {}


def _session() -> Any:
    """Nova's keystoneauth session for its vendordata user (one per engine)."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    opts = cfg.CONF.celtic_lab
    key = (opts.nova_auth_url, opts.nova_username, opts.nova_project)
    with _session_lock:
        if key not in _sessions:
            auth = v3.Password(auth_url=opts.nova_auth_url, username=opts.nova_username,
                               password=opts.nova_password, project_name=opts.nova_project,
                               user_domain_id='default', project_domain_id='default')
            _sessions[key] = ks_session.Session(auth=auth)
        return _sessions[key]


def request_body(project_id: str, server_id: str, image_id: str | None, user_data: str,
                 hostname: str, metadata: dict[str, str], roles: list[str]) -> dict:
    """The body Nova's DynamicJSON provider POSTs for one instance."""
    return {'project-id': project_id, 'instance-id': server_id, 'image-id': image_id,
            'user-data': base64.b64encode(user_data.encode()).decode() if user_data
            else None,
            'hostname': hostname, 'metadata': dict(metadata),
            'boot-roles': ','.join(roles)}


def vendor_data(body: dict) -> dict[str, Any]:
    """vendor_data2.json as Nova would serve it: {"celtic": answer}, or {}."""
    opts = cfg.CONF.celtic_lab
    if not opts.vendordata_url:
        return {}
    try:
        response = _session().post(opts.vendordata_url, json=body, raise_exc=False,
                                   timeout=opts.vendordata_timeout,
                                   headers={'Accept': 'application/json'})
        if response.status_code != 200:
            LOG.warning('vendordata target %s answered %d for instance %s', TARGET,
                        response.status_code, body.get('instance-id'))
            return {}
        return {TARGET: response.json()}
    except Exception as error:   # Nova logs and leaves the target out
        LOG.warning('vendordata target %s failed for instance %s: %s', TARGET,
                    body.get('instance-id'), type(error).__name__)
        return {}


def vendor_data_for_boot(body: dict, attempts: int = 3, pause: float = 2.0) -> dict[str, Any]:
    """vendor_data2.json for a booting celtic guest. A guest that finds no celtic part
    reads its metadata again (the fragments retry for about two minutes) and Nova, its
    15 s cache expired, asks the target again; the lab's guest reads one file, so the
    stand-in asks again here, a bounded number of times, for a guest whose user-data
    is celtic's. A target that answers late (a server Heat lists a moment after Nova
    made it ACTIVE) is then served as on a real cloud."""
    document = vendor_data(body)
    celtic = b'/etc/celtic/params.json' in base64.b64decode(body.get('user-data') or '')
    for _ in range(attempts - 1):
        if TARGET in document or not celtic:
            break
        time.sleep(pause)
        document = vendor_data(body)
    return document


def in_background(name: str, delay: float, work: Any) -> threading.Thread:
    """Run work after delay seconds in a thread of its own (a guest reading its
    metadata while it boots)."""
    def body():
        if delay:
            time.sleep(delay)
        work()
    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


def write(node_dir: str, document: dict[str, Any]) -> str:
    """Write vendor_data2.json under the node's directory; returns its path."""
    path = os.path.join(node_dir, VENDOR_DATA)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(document, f)
    os.chmod(path, 0o600)
    return path
