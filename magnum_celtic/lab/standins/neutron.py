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

"""Neutron stand-ins: networks, subnets, routers, security groups, ports, floating IPs."""

from __future__ import annotations

from typing import Any

from heat.engine.resources.openstack.neutron import floatingip
from heat.engine.resources.openstack.neutron import net
from heat.engine.resources.openstack.neutron import port
from heat.engine.resources.openstack.neutron import router
from heat.engine.resources.openstack.neutron import security_group
from heat.engine.resources.openstack.neutron import security_group_rule
from heat.engine.resources.openstack.neutron import subnet

from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab.standins.base import BadRequest
from magnum_celtic.lab.standins.base import StandIn
from magnum_celtic.lab.standins.base import _find
from magnum_celtic.lab.standins.base import _not_found
from magnum_celtic.lab.standins.base import _project
from magnum_celtic.lab.standins.base import lab_cloud


def _subnet_for(doc: dict, network_id: str, subnet_id: str | None) -> dict:
    if subnet_id:
        found = doc['subnets'].get(subnet_id)
        if found is None:
            raise _not_found('subnets', subnet_id)
        if found['network_id'] != network_id:
            raise BadRequest('Invalid input for operation: Failed to create port on '
                             'network %s, because fixed_ips included invalid subnet %s.'
                             % (network_id, subnet_id))
        return found
    candidates = [s for s in doc['subnets'].values() if s['network_id'] == network_id]
    if not candidates:
        raise BadRequest('Network %s has no subnet to allocate an address from.'
                         % network_id)
    return sorted(candidates, key=lambda s: s.get('created_at', ''))[0]


def _mac(record_id: str) -> str:
    raw = bytes.fromhex(record_id.replace('-', '')[-6:])
    return 'fa:16:3e:%02x:%02x:%02x' % tuple(raw)


def new_port(doc: dict, port_id: str, name: str, network_id: str, fixed_ips: list | None,
             security_groups: list, project: str, **extra: Any) -> dict:
    """A Neutron port with its addresses allocated (also used for Nova-created ports)."""
    network = doc['networks'].get(network_id)
    if network is None:
        raise _not_found('networks', network_id)
    addresses = []
    for request in (fixed_ips if fixed_ips is not None else [{}]):
        subnet_id = request.get('subnet') or request.get('subnet_id')
        found = _subnet_for(doc, network_id, subnet_id)
        ip = cloud_mod.Cloud.allocate_ip(doc, found, port_id, hint=name,
                                         wanted=request.get('ip_address'))
        addresses.append({'subnet_id': found['id'], 'ip_address': ip})
    record = {
        'id': port_id, 'name': name, 'network_id': network_id, 'fixed_ips': addresses,
        'mac_address': _mac(port_id), 'status': 'DOWN', 'admin_state_up': True,
        'device_id': '', 'device_owner': '', 'security_groups': list(security_groups),
        'allowed_address_pairs': [], 'port_security_enabled': True,
        'propagate_uplink_status': False, 'qos_policy_id': None, 'dns_assignment': [],
        'tenant_id': project, 'project_id': project}
    record.update(extra)
    return record


class StandInNet(StandIn, net.Net):
    kind = 'networks'

    def _create_record(self, doc, record_id):
        props = self.properties
        return {'id': record_id, 'name': self._name(), 'status': 'ACTIVE',
                'admin_state_up': props[self.ADMIN_STATE_UP],
                'shared': bool(props[self.SHARED]), 'mtu': 1450,
                'port_security_enabled': props[self.PORT_SECURITY_ENABLED]
                if props[self.PORT_SECURITY_ENABLED] is not None else True,
                'qos_policy_id': None, 'l2_adjacency': True, 'segments': [],
                'router:external': False, 'tenant_id': _project(self)}

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        if name == self.SUBNETS:
            doc = lab_cloud().snapshot()
            return sorted(s['id'] for s in doc['subnets'].values()
                          if s['network_id'] == self.resource_id)
        return super()._resolve_attribute(name)

    def _delete_record(self, doc, record):
        ports = [p for p in doc['ports'].values() if p['network_id'] == record['id']]
        if ports:
            raise cloud_mod.Conflict(
                'Unable to complete operation on network %s. There are one or more ports '
                'still in use on the network.' % record['id'])
        for sub in [s for s in doc['subnets'].values() if s['network_id'] == record['id']]:
            del doc['subnets'][sub['id']]


class StandInSubnet(StandIn, subnet.Subnet):
    kind = 'subnets'

    def _create_record(self, doc, record_id):
        props = self.properties
        network_id = props[self.NETWORK]
        if network_id not in doc['networks']:
            raise _not_found('networks', network_id)
        record = cloud_mod.subnet_record(
            record_id, self._name(), network_id, props[self.CIDR],
            dns_nameservers=list(props[self.DNS_NAMESERVERS] or []),
            host_routes=list(props[self.HOST_ROUTES] or []),
            enable_dhcp=props[self.ENABLE_DHCP], tenant_id=_project(self))
        if props[self.GATEWAY_IP] not in (None, 'auto'):
            record['gateway_ip'] = props[self.GATEWAY_IP] or None
        if props[self.ALLOCATION_POOLS]:
            record['allocation_pools'] = [dict(p) for p in props[self.ALLOCATION_POOLS]]
        return record

    def _delete_record(self, doc, record):
        if doc.get('ips', {}).get(record['id']):
            raise cloud_mod.Conflict(
                'Unable to complete operation on subnet %s: One or more ports have an IP '
                'allocation from this subnet.' % record['id'])
        doc.get('ips', {}).pop(record['id'], None)


class StandInRouter(StandIn, router.Router):
    kind = 'routers'

    def _gateway(self, doc, record_id, info):
        if not info:
            return None
        network_id = info.get(self.EXTERNAL_GATEWAY_NETWORK)
        ext = _subnet_for(doc, network_id, None)
        ip = cloud_mod.Cloud.allocate_ip(doc, ext, record_id, hint=record_id)
        return {'network_id': network_id,
                'enable_snat': info.get(self.EXTERNAL_GATEWAY_ENABLE_SNAT, True)
                if info.get(self.EXTERNAL_GATEWAY_ENABLE_SNAT) is not None else True,
                'external_fixed_ips': [{'subnet_id': ext['id'], 'ip_address': ip}]}

    def _create_record(self, doc, record_id):
        props = self.properties
        return {'id': record_id, 'name': self._name(), 'status': 'ACTIVE',
                'admin_state_up': props[self.ADMIN_STATE_UP],
                'external_gateway_info': self._gateway(
                    doc, record_id, props[self.EXTERNAL_GATEWAY]),
                'tenant_id': _project(self)}

    def _update_record(self, doc, record, prop_diff):
        if self.EXTERNAL_GATEWAY in prop_diff:
            cloud_mod.Cloud.release_ips(doc, record['id'])
            record['external_gateway_info'] = self._gateway(
                doc, record['id'], prop_diff.pop(self.EXTERNAL_GATEWAY))
        super()._update_record(doc, record, prop_diff)

    def _delete_record(self, doc, record):
        if any(i['router_id'] == record['id'] for i in doc['router_interfaces'].values()):
            raise cloud_mod.Conflict('Router %s still has ports' % record['id'])


class StandInRouterInterface(StandIn, router.RouterInterface):
    kind = 'router_interfaces'

    def _create_record(self, doc, record_id):
        props = dict(self.properties)
        router_id = props.get(self.ROUTER)
        if router_id not in doc['routers']:
            raise _not_found('routers', router_id)
        subnet_id = props.get(self.SUBNET)
        port_id = props.get(self.PORT)
        if subnet_id:
            found = doc['subnets'].get(subnet_id)
            if found is None:
                raise _not_found('subnets', subnet_id)
            key, value = 'subnet_id', subnet_id
        else:
            found_port = doc['ports'].get(port_id)
            if found_port is None:
                raise _not_found('ports', port_id)
            subnet_id = found_port['fixed_ips'][0]['subnet_id']
            key, value = 'port_id', port_id
        interface_id = '%s:%s=%s' % (router_id, key, value)
        if interface_id in doc['router_interfaces']:
            raise BadRequest('Router already has a port on subnet %s' % subnet_id)
        gateway = doc['subnets'][subnet_id].get('gateway_ip')
        if key == 'subnet_id' and gateway:
            doc.setdefault('ips', {}).setdefault(subnet_id, {})[gateway] = interface_id
        return {'id': interface_id, 'router_id': router_id, 'subnet_id': subnet_id,
                'port_id': port_id}


class StandInSecurityGroup(StandIn, security_group.SecurityGroup):
    kind = 'security_groups'

    def _create_record(self, doc, record_id):
        props = self.properties
        rules = []
        for rule in props[self.RULES] or []:
            formatted = {k: v for k, v in dict(rule).items() if v is not None}
            if formatted.get('remote_mode') == 'remote_group_id' and not formatted.get(
                    'remote_group_id'):
                formatted['remote_group_id'] = record_id
            rules.append(formatted)
        return {'id': record_id, 'name': self._name(),
                'description': props[self.DESCRIPTION], 'rules': rules,
                'stateful': props.get(self.STATEFUL, True), 'tenant_id': _project(self)}

    def _delete_record(self, doc, record):
        users = [p['name'] or p['id'] for p in doc['ports'].values()
                 if record['id'] in p.get('security_groups', [])]
        if users:
            raise cloud_mod.Conflict('Security Group %s in use.' % record['id'])


class StandInSecurityGroupRule(StandIn, security_group_rule.SecurityGroupRule):
    """A rule added to an existing group (the old in-tree driver's templates use these)."""
    kind = 'security_group_rules'

    def _create_record(self, doc, record_id):
        props = self.properties
        group = doc['security_groups'].get(props[self.SECURITY_GROUP])
        if group is None:
            raise _not_found('security_groups', props[self.SECURITY_GROUP])
        rule = {k: v for k, v in props.items() if v is not None}
        rule.pop(self.SECURITY_GROUP, None)
        group['rules'].append(dict(rule, id=record_id))
        return {'id': record_id, 'name': self.physical_resource_name(),
                'security_group_id': group['id'], 'tenant_id': _project(self)}

    def _delete_record(self, doc, record):
        group = doc['security_groups'].get(record['security_group_id'])
        if group is not None:
            group['rules'] = [r for r in group['rules'] if r.get('id') != record['id']]


class StandInPort(StandIn, port.Port):
    kind = 'ports'

    def _create_record(self, doc, record_id):
        props = self.properties
        fixed_ips = None if props[self.NO_FIXED_IPS] else (
            [dict(f) for f in props[self.FIXED_IPS]] if props[self.FIXED_IPS] else None)
        record = new_port(
            doc, record_id, self._name(), props[self.NETWORK],
            [] if props[self.NO_FIXED_IPS] else fixed_ips,
            [_find('security_groups', sg, doc)['id']
             for sg in props[self.SECURITY_GROUPS] or []], _project(self))
        record['allowed_address_pairs'] = [
            {'ip_address': p['ip_address'], 'mac_address': p.get('mac_address')
             or record['mac_address']}
            for p in props[self.ALLOWED_ADDRESS_PAIRS] or []]
        record['admin_state_up'] = props[self.ADMIN_STATE_UP]
        if props[self.DEVICE_ID]:
            record['device_id'] = props[self.DEVICE_ID]
        if props[self.DEVICE_OWNER]:
            record['device_owner'] = props[self.DEVICE_OWNER]
        if props[self.PORT_SECURITY_ENABLED] is not None:
            record['port_security_enabled'] = props[self.PORT_SECURITY_ENABLED]
        return record

    def _update_record(self, doc, record, prop_diff):
        if self.ALLOWED_ADDRESS_PAIRS in prop_diff:
            record['allowed_address_pairs'] = [
                {'ip_address': p['ip_address'], 'mac_address': p.get('mac_address')
                 or record['mac_address']}
                for p in prop_diff.pop(self.ALLOWED_ADDRESS_PAIRS) or []]
        if self.SECURITY_GROUPS in prop_diff:
            record['security_groups'] = [
                _find('security_groups', sg, doc)['id']
                for sg in prop_diff.pop(self.SECURITY_GROUPS) or []]
        if self.FIXED_IPS in prop_diff:
            cloud_mod.Cloud.release_ips(doc, record['id'])
            fresh = new_port(doc, record['id'], record['name'], record['network_id'],
                             [dict(f) for f in prop_diff.pop(self.FIXED_IPS) or [{}]], [], '')
            record['fixed_ips'] = fresh['fixed_ips']
        super()._update_record(doc, record, prop_diff)

    def _resolve_attribute(self, name):
        if self.resource_id is None:
            return None
        record = self._show_resource()
        if name == self.SUBNETS_ATTR:
            doc = lab_cloud().snapshot()
            return [doc['subnets'][f['subnet_id']] for f in record['fixed_ips']
                    if f['subnet_id'] in doc['subnets']]
        if name == self.NETWORK_ATTR:
            return lab_cloud().snapshot()['networks'].get(record['network_id'])
        return record.get(name)

    def _delete_record(self, doc, record):
        for fip in doc['floating_ips'].values():
            if fip.get('port_id') == record['id']:
                fip.update(port_id=None, fixed_ip_address=None, router_id=None,
                           status='DOWN')


class StandInFloatingIP(StandIn, floatingip.FloatingIP):
    kind = 'floating_ips'

    @staticmethod
    def _associate(doc, record, port_id, fixed_ip):
        if not port_id:
            record.update(port_id=None, fixed_ip_address=None, router_id=None,
                          status='DOWN')
            return
        found = doc['ports'].get(port_id)
        if found is None:
            raise _not_found('ports', port_id)
        if not found['fixed_ips']:
            raise BadRequest('Port %s does not have any IP addresses' % port_id)
        address = fixed_ip or found['fixed_ips'][0]['ip_address']
        subnet_id = next((f['subnet_id'] for f in found['fixed_ips']
                          if f['ip_address'] == address), None)
        if subnet_id is None:
            raise BadRequest('Port %s does not have fixed ip %s' % (port_id, address))
        routed = [r for r in doc['routers'].values()
                  if (r.get('external_gateway_info') or {}).get('network_id')
                  == record['floating_network_id']
                  and any(i['router_id'] == r['id'] and i['subnet_id'] == subnet_id
                          for i in doc['router_interfaces'].values())]
        if not routed:
            raise BadRequest(
                'External network %s is not reachable from subnet %s.  Therefore, cannot '
                'associate Port %s with a Floating IP.'
                % (record['floating_network_id'], subnet_id, port_id))
        record.update(port_id=port_id, fixed_ip_address=address, router_id=routed[0]['id'],
                      status='ACTIVE')

    def _create_record(self, doc, record_id):
        props = self.properties
        network_id = props[self.FLOATING_NETWORK]
        ext = _subnet_for(doc, network_id, props[self.FLOATING_SUBNET])
        record = {'id': record_id, 'floating_network_id': network_id,
                  'floating_ip_address': cloud_mod.Cloud.allocate_ip(
                      doc, ext, record_id, hint=self.physical_resource_name(),
                      wanted=props[self.FLOATING_IP_ADDRESS]),
                  'tenant_id': _project(self), 'name': None}
        self._associate(doc, record, props[self.PORT_ID], props[self.FIXED_IP_ADDRESS])
        return record

    def _update_record(self, doc, record, prop_diff):
        if self.PORT_ID in prop_diff or self.FIXED_IP_ADDRESS in prop_diff:
            self._associate(doc, record, prop_diff.get(self.PORT_ID, record['port_id']),
                            prop_diff.get(self.FIXED_IP_ADDRESS))
