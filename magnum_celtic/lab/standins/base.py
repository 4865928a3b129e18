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

"""What every stand-in shares: the fake cloud, the client-plugin stand-in, the mixin."""

from __future__ import annotations

import functools
import time

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import excutils

from heat.common import exception

from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab import quotas

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('cloud_dir', help='Directory of the lab fake cloud (cloud.json).'),
    cfg.IntOpt('node_signal_attempts',
               help='How often a simulated node tries to reach Keystone and Heat '
                    '(default: what lib/celtic.sh does on a real node).'),
]
cfg.CONF.register_opts(OPTS, group='celtic_lab')

#: the lab's Keystone and Heat are real: stack-domain users, signal URLs
REAL_CLIENTS = ('keystone', 'heat')

#: Nova's limit on user_data, base64-encoded
NOVA_USER_DATA_LIMIT = 65535

_NEUTRON_ENTITIES = {'network': 'networks', 'subnet': 'subnets', 'port': 'ports',
                     'router': 'routers', 'security_group': 'security_groups'}


class BadRequest(cloud_mod.CloudError):
    """What Nova or Neutron answers with HTTP 400."""


class Forbidden(cloud_mod.CloudError):
    """What Nova or Neutron answers with HTTP 403 (a quota, a policy)."""


@functools.lru_cache(maxsize=None)
def _cloud(directory: str) -> cloud_mod.Cloud:
    return cloud_mod.Cloud(directory)


def lab_cloud() -> cloud_mod.Cloud:
    """The fake cloud this engine serves."""
    directory = cfg.CONF.celtic_lab.cloud_dir
    if not directory:
        raise exception.Error('[celtic_lab] cloud_dir is not set in heat.conf')
    return _cloud(directory)


def _not_found(kind: str, name_or_id: str) -> exception.EntityNotFound:
    return exception.EntityNotFound(entity=cloud_mod._singular(kind), name=name_or_id)


def _find(kind: str, name_or_id: str, doc: dict | None = None) -> dict:
    try:
        return lab_cloud().find(kind, name_or_id, doc)
    except cloud_mod.NotFound:
        raise _not_found(kind, name_or_id)


# ------------------------------------------------------------------------------------
# what a stand-in gets instead of a client plugin

class CloudClientPlugin:
    """Answers the client-plugin calls Heat's resource code makes, from the fake cloud.

    Constants (``RES_TYPE_NETWORK``, ...) and pure helpers come from the real plugin;
    a call that would reach a real service and is not modelled here fails loudly.
    """

    _PURE = ('meta_serialize', 'service_types')

    def __init__(self, resource, name: str):
        self._resource = resource
        self._name = name

    def __getattr__(self, attr: str):
        if attr.isupper() or attr in self._PURE:
            real = self._resource.stack.clients.client_plugin(self._name)
            return getattr(real, attr)
        raise NotImplementedError('the lab cloud does not model the %s client call %s'
                                  % (self._name, attr))

    # errors ---------------------------------------------------------------------
    def is_not_found(self, ex) -> bool:
        return isinstance(ex, (exception.EntityNotFound, cloud_mod.NotFound))

    def is_conflict(self, ex) -> bool:
        return isinstance(ex, cloud_mod.Conflict)

    def is_over_limit(self, ex) -> bool:
        return False

    @excutils.exception_filter
    def ignore_not_found(self, ex):
        return self.is_not_found(ex)

    @excutils.exception_filter
    def ignore_conflict_and_not_found(self, ex):
        return self.is_conflict(ex) or self.is_not_found(ex)

    # capabilities ---------------------------------------------------------------
    def _get_region_name(self) -> str:
        return cfg.CONF.region_name_for_services

    def is_version_supported(self, version) -> bool:
        return True

    def has_extension(self, alias) -> bool:
        return True

    def does_endpoint_exist(self, service_type, service_name) -> bool:
        return True

    def absolute_limits(self) -> dict:
        return {'maxServerMeta': 128, 'maxPersonality': 5, 'maxPersonalitySize': 10240}

    # look-ups -------------------------------------------------------------------
    def get_image(self, image):
        return _Obj(_find('images', image))

    def get_flavor(self, flavor):
        return _Obj(_find('flavors', flavor))

    def find_image_by_name_or_id(self, image) -> str:
        return _find('images', image)['id']

    def find_flavor_by_name_or_id(self, flavor) -> str:
        return _find('flavors', flavor)['id']

    def get_keypair(self, key_name):
        return _Obj(_find('keypairs', key_name))

    def find_resourceid_by_name_or_id(self, entity, name_or_id, cmd_resource=None) -> str:
        kind = _NEUTRON_ENTITIES.get(entity)
        if kind is None:
            raise NotImplementedError('the lab cloud has no Neutron %s' % entity)
        return _find(kind, name_or_id)['id']

    def get_secgroup_uuids(self, security_groups) -> list[str]:
        return [_find('security_groups', sg)['id'] for sg in security_groups or []]


class _Obj:
    """Attribute access to a cloud record (what a client library would return)."""

    def __init__(self, record: dict):
        self.__dict__.update(record)


# ------------------------------------------------------------------------------------
# the common behaviour

class StandIn:
    """Mixin for Heat's resource classes: cloud calls go to the lab cloud."""

    #: the cloud.json collection this resource lives in
    kind: str = ''

    @classmethod
    def is_service_available(cls, context):
        return (True, None)

    def client(self, name=None, version=None):
        if name in REAL_CLIENTS:
            return super().client(name, version=version)
        raise NotImplementedError('%s is a lab stand-in and has no real %s client'
                                  % (self.type(), name or self.default_client_name))

    def client_plugin(self, name=None):
        if name in REAL_CLIENTS:
            return super().client_plugin(name)
        return CloudClientPlugin(self, name or self.default_client_name)

    # records --------------------------------------------------------------------
    def _record(self, doc: dict | None = None) -> dict | None:
        if self.resource_id is None:
            return None
        doc = lab_cloud().snapshot() if doc is None else doc
        return doc.get(self.kind, {}).get(self.resource_id)

    def _show_resource(self):
        record = self._record()
        if record is None:
            raise _not_found(self.kind, self.resource_id)
        return {k: v for k, v in record.items() if k != 'preexisting'}

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        return self._show_resource().get(name)

    def get_live_resource_data(self):
        return self._show_resource()

    def needs_replace_failed(self):
        record = self._record()
        return record is None or record.get('status') == 'ERROR'

    def _name(self) -> str:
        props = self.properties
        given = props.get('name') if 'name' in props else None
        return given or self.physical_resource_name()

    # lifecycle ------------------------------------------------------------------
    def _create_record(self, doc: dict, record_id: str) -> dict:
        raise NotImplementedError

    def handle_create(self):
        record_id = cloud_mod.new_id()
        with lab_cloud().transaction() as doc:
            before = quotas.usage(doc) if doc.get('quotas') else None
            record = self._create_record(doc, record_id)
            record.setdefault('id', record_id)
            record.setdefault('created_at', time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                          time.gmtime()))
            doc.setdefault(self.kind, {})[record['id']] = record
            if before is not None:
                try:
                    quotas.enforce(doc, before)
                except quotas.OverQuota as error:
                    # raised inside the transaction: nothing is stored
                    raise Forbidden(str(error))
        self.resource_id_set(record['id'])
        return record['id']

    def check_create_complete(self, *args):
        return True

    def _update_record(self, doc: dict, record: dict, prop_diff: dict) -> None:
        record.update({k: v for k, v in prop_diff.items()
                       if isinstance(v, (str, int, float, bool, list, dict, type(None)))})

    def handle_update(self, json_snippet, tmpl_diff, prop_diff):
        if not prop_diff or self.resource_id is None:
            return None
        with lab_cloud().transaction() as doc:
            record = doc.get(self.kind, {}).get(self.resource_id)
            if record is None:
                raise _not_found(self.kind, self.resource_id)
            self._update_record(doc, record, dict(prop_diff))
        return None

    def check_update_complete(self, *args):
        return True

    def _delete_record(self, doc: dict, record: dict) -> None:
        """Refuse (Conflict) or clean up what depends on record; the caller removes it."""

    def handle_delete(self):
        if self.resource_id is None:
            return None
        with lab_cloud().transaction() as doc:
            record = doc.get(self.kind, {}).get(self.resource_id)
            if record is not None:
                self._delete_record(doc, record)
                doc[self.kind].pop(self.resource_id, None)
                lab_cloud().release_ips(doc, self.resource_id)
        return None

    def check_delete_complete(self, *args):
        return True

    def prepare_for_replace(self):
        return None

    def restore_prev_rsrc(self, convergence=False):
        return None


def _project(resource) -> str:
    return resource.context.project_id or ''
