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

"""A sample cluster for the command line: ``render``, ``validate`` and the lab.

Builds the same ClusterSpec and ClusterPKI the driver builds from Magnum, from command
line values instead, with a throwaway CA generated on the spot (Magnum's CA layout: an
RSA CA per purpose and an admin client key).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from magnum_celtic import pki
from magnum_celtic import spec as spec_mod

SAMPLE_UUID = '5a3a8f0e-0c6b-4a1e-9d2f-3c1e2b7a9d10'
#: the sample cluster's project and the Keystone its users log in at (label
#: keystone_auth_enabled; the driver takes them from the cluster and magnum.conf)
SAMPLE_PROJECT_ID = '0123456789abcdef0123456789abcdef'
SAMPLE_KEYSTONE_URL = 'https://keystone.example.com:5000/v3'


def ca_pair(common_name: str, key_size: int = 2048) -> pki.CertPair:
    """A self-signed CA like the ones Magnum generates for a cluster."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return pki.CertPair(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode())


def sample_pki(cluster_uuid: str = SAMPLE_UUID) -> pki.ClusterPKI:
    """PKI material shaped like Magnum's, for rendering without Magnum."""
    ca = ca_pair('sample')
    admin = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    admin_pem = admin.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return pki.build(cluster_uuid, ca, ca_pair('sample-etcd'),
                     ca_pair('sample-front-proxy'), admin_pem)


def sample_spec(labels: Mapping[str, str] | None = None, masters: int = 3,
                minions: int = 3, name: str = 'sample', distro: str = 'ubuntu',
                template: Mapping[str, Any] | None = None,
                cluster_uuid: str | None = None,
                defaults: spec_mod.Defaults | None = None) -> spec_mod.ClusterSpec:
    """A ClusterSpec for ``name`` with the given counts, labels and template fields."""
    template_fields = {'image_id': 'ubuntu-24.04', 'flavor_id': 'm1.medium',
                       'master_flavor_id': 'm1.medium', 'external_network_id': 'public',
                       'network_driver': 'flannel', 'cluster_distro': distro,
                       'server_type': 'vm', 'coe': 'kubernetes',
                       'floating_ip_enabled': True, 'master_lb_enabled': True,
                       'dns_nameserver': '8.8.8.8'}
    template_fields.update(template or {})
    cluster = {'uuid': cluster_uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
               'name': name, 'master_count': masters, 'keypair': 'default',
               'create_timeout': 60, 'project_id': SAMPLE_PROJECT_ID}
    worker = {'name': spec_mod.DEFAULT_POOL, 'node_count': minions,
              'flavor_id': template_fields['flavor_id'],
              'image_id': template_fields['image_id']}
    return spec_mod.build(template_fields, cluster, dict(labels or {}), worker,
                          defaults=defaults or spec_mod.Defaults(
                              keystone_auth_url=SAMPLE_KEYSTONE_URL))
