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

"""Heat resource plugins that stand in for Nova, Neutron and Cinder.

Each class subclasses Heat's own resource class for the type it replaces and is
registered under the real type name (``OS::Nova::Server``, ``OS::Neutron::Port``, ...,
and the node agent behind ``OS::Heat::SoftwareDeployment``),
so ``properties_schema``, ``attributes_schema``, translation rules, ``validate()``,
update policies and replacement rules are Heat's. Only the calls to the cloud are
replaced: they read and write the lab's fake cloud (``cloud.py``) instead. Each stand-in
is one resource row, exactly like the real resource in a real cloud.

Heat loads this through a tiny module in ``plugin_dirs`` (written by the harness,
``controlplane.PLUGIN_MODULE``) that re-exports ``resource_mapping()`` and
``constraint_mapping()``; the fake cloud's
directory comes from ``[celtic_lab] cloud_dir`` in heat.conf. The client-backed custom
constraints (``glance.image``, ``nova.flavor``, ``neutron.network``, ...) are replaced
too, by constraints that look the value up in the fake cloud.
"""

from __future__ import annotations

from heat.engine import constraints

from magnum_celtic.lab import cloud as cloud_mod
from magnum_celtic.lab.standins import cinder
from magnum_celtic.lab.standins import heat_software
from magnum_celtic.lab.standins import neutron
from magnum_celtic.lab.standins import nova
from magnum_celtic.lab.standins.base import lab_cloud


class CloudLookup(constraints.BaseCustomConstraint):
    """A client-backed custom constraint answered by the lab cloud."""

    kind = ''
    allow_empty = False

    def validate(self, value, context, template=None):
        if not value and self.allow_empty:
            return True
        try:
            lab_cloud().find(self.kind, value)
        except cloud_mod.CloudError as exc:
            self._error_message = str(exc)
            return False
        return True


def _lookup(kind: str, allow_empty: bool = False) -> type:
    return type('CloudLookup_%s' % kind, (CloudLookup,),
                {'kind': kind, 'allow_empty': allow_empty})


def constraint_mapping() -> dict:
    """Client-backed constraints the lab cloud answers (they override Heat's)."""
    return {
        'glance.image': _lookup('images'),
        'nova.flavor': _lookup('flavors'),
        'nova.keypair': _lookup('keypairs', allow_empty=True),
        'nova.server': _lookup('servers'),
        'neutron.network': _lookup('networks'),
        'neutron.subnet': _lookup('subnets'),
        'neutron.port': _lookup('ports'),
        'neutron.router': _lookup('routers'),
        'neutron.security_group': _lookup('security_groups'),
        'cinder.volume': _lookup('volumes'),
        'cinder.vtype': _lookup('volume_types'),
    }


def resource_mapping() -> dict:
    """Heat resource types the lab replaces, under their real names."""
    return {
        'OS::Nova::Server': nova.StandInServer,
        'OS::Nova::ServerGroup': nova.StandInServerGroup,
        'OS::Neutron::Net': neutron.StandInNet,
        'OS::Neutron::Subnet': neutron.StandInSubnet,
        'OS::Neutron::Router': neutron.StandInRouter,
        'OS::Neutron::RouterInterface': neutron.StandInRouterInterface,
        'OS::Neutron::SecurityGroup': neutron.StandInSecurityGroup,
        'OS::Neutron::SecurityGroupRule': neutron.StandInSecurityGroupRule,
        'OS::Neutron::Port': neutron.StandInPort,
        'OS::Neutron::FloatingIP': neutron.StandInFloatingIP,
        'OS::Cinder::Volume': cinder.StandInVolume,
        'OS::Cinder::VolumeAttachment': cinder.StandInVolumeAttachment,
        'OS::Heat::SoftwareDeployment': heat_software.StandInSoftwareDeployment,
    }
