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

"""Nova stand-ins: server groups, and servers whose guest is the node simulator."""

from __future__ import annotations

import base64
import time

from oslo_config import cfg
from oslo_utils import uuidutils

from heat.common import exception
from heat.engine.resources.openstack.nova import server
from heat.engine.resources.openstack.nova import server_group

from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab import metadata
from magnum_celtic.lab import node
from magnum_celtic.lab.standins.base import BadRequest
from magnum_celtic.lab.standins.base import Forbidden
from magnum_celtic.lab.standins.base import NOVA_USER_DATA_LIMIT
from magnum_celtic.lab.standins.base import StandIn
from magnum_celtic.lab.standins.base import _find
from magnum_celtic.lab.standins.base import _not_found
from magnum_celtic.lab.standins.base import _project
from magnum_celtic.lab.standins.base import lab_cloud
from magnum_celtic.lab.standins.neutron import _subnet_for
from magnum_celtic.lab.standins.neutron import new_port


class StandInServerGroup(StandIn, server_group.ServerGroup):
    kind = 'server_groups'

    def _create_record(self, doc, record_id):
        return {'id': record_id, 'name': self.physical_resource_name(),
                'policies': list(self.properties[self.POLICIES] or []),
                'rules': dict(self.properties[self.RULES] or {}), 'members': []}


class StandInServer(StandIn, server.Server):
    """A Nova server whose guest is the node simulator (node.py)."""

    kind = 'servers'

    def _nics(self, doc, server_id, name):
        props = self.properties
        groups = [_find('security_groups', sg, doc)['id']
                  for sg in props[self.SECURITY_GROUPS] or []]
        ports = []
        for nic in props[self.NETWORKS] or []:
            port_id = nic.get(self.NETWORK_PORT)
            if port_id:
                found = doc['ports'].get(port_id)
                if found is None:
                    raise _not_found('ports', port_id)
                if found.get('device_id'):
                    raise cloud_mod.Conflict('Port %s is still in use.' % port_id)
                found.update(device_id=server_id, device_owner='compute:nova',
                             status='ACTIVE')
                ports.append(port_id)
                continue
            network_id = nic.get(self.NETWORK_ID)
            subnet_id = nic.get(self.NETWORK_SUBNET)
            if not network_id and subnet_id:
                network_id = _find('subnets', subnet_id, doc)['network_id']
            if not network_id:
                network_id = _find('networks', cloud_mod.PRIVATE_NETWORK, doc)['id']
            request = {'subnet': subnet_id, 'ip_address': nic.get(self.NETWORK_FIXED_IP)}
            port_id = cloud_mod.new_id()
            doc['ports'][port_id] = new_port(
                doc, port_id, '', network_id, [request], groups, _project(self),
                device_id=server_id, device_owner='compute:nova', status='ACTIVE',
                nova_created=True)
            # the address is derived from the server's name, not the nameless port
            cloud_mod.Cloud.release_ips(doc, port_id)
            found = _subnet_for(doc, network_id, subnet_id)
            doc['ports'][port_id]['fixed_ips'] = [{
                'subnet_id': found['id'],
                'ip_address': cloud_mod.Cloud.allocate_ip(
                    doc, found, port_id, hint=name, wanted=request['ip_address'])}]
            ports.append(port_id)
        return ports

    def _user_data(self) -> str:
        content = self.properties[self.USER_DATA] or ''
        if self.user_data_raw() and uuidutils.is_uuid_like(content):
            content = self.get_software_config(content)
        return content

    def _create_record(self, doc, record_id):
        props = self.properties
        name = self._server_name()
        user_data = self._user_data()
        encoded = len(base64.b64encode(user_data.encode()))
        if encoded > NOVA_USER_DATA_LIMIT:
            raise BadRequest('User data too large. User data must be no larger than %d '
                             'bytes once base64 encoded. Your data is %d bytes'
                             % (NOVA_USER_DATA_LIMIT, encoded))
        image = props[self.IMAGE]
        boot_volume_size = 0
        for bdm in props[self.BLOCK_DEVICE_MAPPING_V2] or []:
            image = image or bdm.get(self.BLOCK_DEVICE_MAPPING_IMAGE)
            if bdm.get(self.BLOCK_DEVICE_MAPPING_BOOT_INDEX) == 0:
                # Nova creates the boot volume: it counts against Cinder's quota
                boot_volume_size = int(bdm.get(self.BLOCK_DEVICE_MAPPING_VOLUME_SIZE) or 0)
        hints = props[self.SCHEDULER_HINTS] or {}
        group_id = hints.get('group')
        if group_id:
            group = doc['server_groups'].get(group_id)
            if group is None:
                raise _not_found('server_groups', group_id)
            group['members'].append(record_id)
        metadata = {k: (v if isinstance(v, str) else str(v))
                    for k, v in (props[self.METADATA] or {}).items() if v is not None}
        return {'id': record_id, 'name': name, 'status': 'BUILD', 'image': image,
                'flavor': props[self.FLAVOR], 'key_name': props[self.KEY_NAME],
                'availability_zone': props[self.AVAILABILITY_ZONE], 'metadata': metadata,
                'server_group': group_id, 'ports': self._nics(doc, record_id, name),
                'user_data_bytes': encoded, 'tenant_id': _project(self),
                'boot_volume_size': boot_volume_size}

    def handle_create(self):
        name = self._server_name()
        behaviour = lab_cloud().behaviour(name)
        if behaviour.get('refuse'):
            # Nova turning the request down (quota, policy): nothing is stored
            raise Forbidden('%s (HTTP 403)' % behaviour['refuse'])
        if self.user_data_software_config():
            # what Heat does before asking Nova for a software-config server: the
            # server's own stack-domain user and the os-collect-config metadata that
            # tells its agent where to poll for deployments
            metadata = self.metadata_get(True) or {}
            self._create_transport_credentials(self.properties)
            self._populate_deployments_metadata(metadata, self.properties)
        server_id = super().handle_create()
        return {'id': server_id, 'name': name, 'behaviour': behaviour,
                'active_at': time.time() + float(behaviour.get('boot_seconds') or 0)}

    def check_create_complete(self, handle):
        if time.time() < handle['active_at']:
            return False
        behaviour = handle['behaviour']
        fault = behaviour.get('error')
        with lab_cloud().transaction() as doc:
            record = doc['servers'].get(handle['id'])
            if record is None:
                raise _not_found('servers', handle['id'])
            record['status'] = 'ERROR' if fault else 'ACTIVE'
            if fault:
                record['fault'] = {'message': fault, 'code': 500}
        if fault:
            raise exception.ResourceInError(resource_status='ERROR', status_reason=fault)
        if self.properties[self.USER_DATA_FORMAT] == self.SOFTWARE_CONFIG:
            # the guest is a software-config agent: it acts for each deployment Heat
            # stores for it (standins/heat_software.py, agent.py)
            return True
        cloud = lab_cloud()
        root = cloud.node_dir(handle['name'], handle['id'])
        user_data = self._user_data()
        body = metadata.request_body(
            _project(self), handle['id'], record.get('image'), user_data, handle['name'],
            record.get('metadata') or {}, list(self.context.roles or []))
        address = self._first_address(handle['id']) or ''

        def boot():
            # what the guest's first metadata read makes Nova do (every guest at once,
            # not in the node slots, which stand for the nodes' own CPUs), then cloud-init
            metadata.write(root, metadata.vendor_data_for_boot(body))
            node.in_background(
                'lab-node-%s' % handle['name'], 0,
                lambda: node.run(root, handle['name'], handle['id'], address, user_data,
                                 behaviour, cfg.CONF.celtic_lab.node_signal_attempts))
        metadata.in_background('lab-metadata-%s' % handle['name'],
                               float(behaviour.get('configure_seconds') or 0), boot)
        return True

    # attributes -----------------------------------------------------------------
    def _addresses(self, server_id: str, doc: dict | None = None) -> dict:
        doc = lab_cloud().snapshot() if doc is None else doc
        record = doc['servers'].get(server_id)
        if record is None:
            return {}
        result: dict[str, list] = {}
        for port_id in record['ports']:
            found = doc['ports'].get(port_id)
            if found is None:
                continue
            net_name = doc['networks'].get(found['network_id'], {}).get(
                'name') or found['network_id']
            entries = result.setdefault(net_name, [])
            for fixed in found['fixed_ips']:
                entries.append({'addr': fixed['ip_address'], 'version': 4,
                                'OS-EXT-IPS:type': 'fixed',
                                'OS-EXT-IPS-MAC:mac_addr': found['mac_address'],
                                'port': port_id, 'network': found['network_id']})
                for fip in doc['floating_ips'].values():
                    if fip.get('port_id') == port_id and fip.get(
                            'fixed_ip_address') == fixed['ip_address']:
                        entries.append({'addr': fip['floating_ip_address'], 'version': 4,
                                        'OS-EXT-IPS:type': 'floating',
                                        'OS-EXT-IPS-MAC:mac_addr': found['mac_address'],
                                        'port': None})
        return result

    def _first_address(self, server_id: str) -> str | None:
        for entries in self._addresses(server_id).values():
            for entry in entries:
                if entry['OS-EXT-IPS:type'] == 'fixed':
                    return entry['addr']
        return None

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        if name == self.NAME_ATTR:
            return self._server_name()
        if name == self.OS_COLLECT_CONFIG:
            return self.metadata_get().get('os-collect-config', {})
        doc = lab_cloud().snapshot()
        record = doc['servers'].get(self.resource_id)
        if record is None:
            return '' if name == self.FIRST_ADDRESS else None
        if name == self.FIRST_ADDRESS:
            return self._first_address(self.resource_id) or ''
        addresses = self._addresses(self.resource_id, doc)
        if name == self.ADDRESSES:
            result = dict(addresses)
            for label, entries in addresses.items():
                net_id = entries[0]['network'] if entries and 'network' in entries[0] else None
                if net_id:
                    result[net_id] = entries
            return result
        if name == self.NETWORKS_ATTR:
            result = {}
            for label, entries in addresses.items():
                ips = [e['addr'] for e in entries]
                result[label] = ips
                net_id = next((e['network'] for e in entries if 'network' in e), None)
                if net_id:
                    result[net_id] = ips
            return result
        if name == self.INSTANCE_NAME:
            return 'instance-%s' % self.resource_id[:8]
        if name in (self.ACCESSIPV4, self.ACCESSIPV6):
            return ''
        if name == self.CONSOLE_URLS:
            return {}
        if name == self.TAGS_ATTR:
            return list(self.properties[self.TAGS] or [])
        return None

    def _show_resource(self):
        """GET /servers/<id> (the `show` attribute) as Nova answers the requester:
        OS-EXT-SRV-ATTR:user_data (microversion >= 2.3) only to admins, as the
        os-extended-server-attributes policy says by default."""
        doc = lab_cloud().snapshot()
        record = doc['servers'].get(self.resource_id)
        if record is None:
            raise _not_found('servers', self.resource_id)
        addresses = self._addresses(self.resource_id, doc)
        view = {'id': record['id'], 'name': record['name'], 'status': record['status'],
                'tenant_id': record.get('tenant_id'), 'metadata': dict(record['metadata']),
                'key_name': record.get('key_name'), 'flavor': {'id': record['flavor']},
                'image': {'id': record.get('image')} if record.get('image') else '',
                'OS-EXT-AZ:availability_zone': record.get('availability_zone') or 'nova',
                'addresses': {label: [{k: v for k, v in e.items()
                                       if k not in ('port', 'network')} for e in entries]
                              for label, entries in addresses.items()}}
        if self.context.is_admin:
            # not kept in cloud.json (a scale run would carry every payload in every
            # transaction): the server's own property is what Nova was given
            view['OS-EXT-SRV-ATTR:user_data'] = base64.b64encode(
                self._user_data().encode()).decode()
        return view

    # update / delete ------------------------------------------------------------
    def _update_record(self, doc, record, prop_diff):
        for key in (self.NAME, self.FLAVOR, self.IMAGE, self.METADATA):
            if key in prop_diff:
                record[key] = prop_diff[key]

    def handle_update(self, json_snippet, tmpl_diff, prop_diff):
        result = StandIn.handle_update(self, json_snippet, tmpl_diff, prop_diff)
        if prop_diff and self.METADATA in prop_diff and self.resource_id:
            self._members_timer(prop_diff[self.METADATA] or {})
        return result

    def _members_timer(self, meta: dict) -> None:
        """What a running master's celtic-members.timer does after Heat changed its
        server metadata: read meta_data.json, run `master.sh members` (the lab runs
        the real report, members_run, with the work simulated: node.members_run)."""
        meta = {k: (v if isinstance(v, str) else str(v)) for k, v in meta.items()
                if v is not None}
        if meta.get('celtic_role') != 'master':
            return
        record = lab_cloud().snapshot()['servers'].get(self.resource_id)
        if record is None or record.get('status') != 'ACTIVE':
            return
        name, server_id = record['name'], record['id']
        root = lab_cloud().node_dir(name, server_id)
        address = self._first_address(server_id) or ''
        behaviour = lab_cloud().behaviour(name)
        attempts = cfg.CONF.celtic_lab.node_signal_attempts
        node.in_background(
            'lab-members-%s' % name, 0,
            lambda: node.members_run(root, name, server_id, address, meta, behaviour,
                                     attempts))

    def _delete_record(self, doc, record):
        node.stop(record['id'])
        for port_id in record['ports']:
            found = doc['ports'].get(port_id)
            if found is None:
                continue
            if found.get('nova_created'):
                del doc['ports'][port_id]
                cloud_mod.Cloud.release_ips(doc, port_id)
            else:
                found.update(device_id='', device_owner='', status='DOWN')
        for group in doc['server_groups'].values():
            if record['id'] in group['members']:
                group['members'].remove(record['id'])
        for attachment_id in [a for a, att in doc['volume_attachments'].items()
                              if att['server_id'] == record['id']]:
            attachment = doc['volume_attachments'].pop(attachment_id)
            volume = doc['volumes'].get(attachment['volume_id'])
            if volume is not None:
                volume.update(status='available', attachments=[])

    def handle_delete(self):
        if self.user_data_software_config():
            self._delete_user()   # as Heat's Server does
        return StandIn.handle_delete(self)

    def check_delete_complete(self, *args):
        return True
