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

"""Cinder stand-ins: volumes and their attachments."""

from __future__ import annotations

import json

from heat.engine.resources.openstack.cinder import volume as cinder_volume

from magnum_celtic.lab.standins.base import BadRequest
from magnum_celtic.lab.standins.base import StandIn
from magnum_celtic.lab.standins.base import _not_found


class StandInVolume(StandIn, cinder_volume.CinderVolume):
    kind = 'volumes'

    def _create_record(self, doc, record_id):
        props = self.properties
        return {'id': record_id, 'name': self._name(), 'size': props[self.SIZE],
                'status': 'available', 'volume_type': props[self.VOLUME_TYPE] or 'standard',
                'availability_zone': props[self.AVAILABILITY_ZONE] or 'nova',
                'description': props[self.DESCRIPTION], 'bootable': 'false',
                'encrypted': False, 'multiattach': bool(props[self.MULTI_ATTACH]),
                'metadata': dict(props[self.METADATA] or {}), 'attachments': [],
                'snapshot_id': props[self.SNAPSHOT_ID], 'source_volid': props[self.SOURCE_VOLID]}

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        record = self._show_resource()
        if name == self.METADATA_ATTR:
            return json.dumps(record['metadata'])
        if name == self.METADATA_VALUES_ATTR:
            return record['metadata']
        if name == self.DISPLAY_NAME_ATTR:
            return record['name']
        if name == self.DISPLAY_DESCRIPTION_ATTR:
            return record['description']
        if name == self.ATTACHMENTS_LIST:
            return record['attachments']
        return str(record.get(name))

    def _delete_record(self, doc, record):
        if record['status'] == 'in-use':
            raise BadRequest('Invalid volume: Volume status must be available or error or '
                             'error_restoring or error_extending or error_managing and must '
                             'not be migrating, attached, belong to a group, have snapshots, '
                             'awaiting a transfer, or be disassociated from snapshots after '
                             'volume transfer.')

    def handle_delete(self):
        return StandIn.handle_delete(self)

    def check_delete_complete(self, *args):
        return True


class StandInVolumeAttachment(StandIn, cinder_volume.CinderVolumeAttachment):
    kind = 'volume_attachments'

    def _create_record(self, doc, record_id):
        props = self.properties
        volume = doc['volumes'].get(props[self.VOLUME_ID])
        if volume is None:
            raise _not_found('volumes', props[self.VOLUME_ID])
        if props[self.INSTANCE_ID] not in doc['servers']:
            raise _not_found('servers', props[self.INSTANCE_ID])
        if volume['status'] != 'available':
            raise BadRequest('Invalid volume: volume %s status must be available'
                             % volume['id'])
        device = props[self.DEVICE] or '/dev/vdb'
        volume['status'] = 'in-use'
        volume['attachments'] = [{'server_id': props[self.INSTANCE_ID],
                                  'attachment_id': record_id, 'device': device}]
        # Nova names the attachment after the volume
        return {'id': volume['id'], 'server_id': props[self.INSTANCE_ID],
                'volume_id': volume['id'], 'device': device}

    def _delete_record(self, doc, record):
        volume = doc['volumes'].get(record['volume_id'])
        if volume is not None:
            volume.update(status='available', attachments=[])

    def _update_record(self, doc, record, prop_diff):
        self._delete_record(doc, record)
        props = dict(record)
        props.update(prop_diff)
        volume = doc['volumes'].get(props.get('volume_id'))
        if volume is None:
            raise _not_found('volumes', props.get('volume_id'))
        volume['status'] = 'in-use'
        record.update(server_id=props.get('instance_uuid', record['server_id']))

    def check_create_complete(self, *args):
        return True

    def check_delete_complete(self, *args):
        return True
