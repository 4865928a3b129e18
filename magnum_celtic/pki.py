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

"""Cluster secrets derived from the certificates Magnum generated for the cluster.

Magnum creates the Kubernetes CA, the etcd CA, the front-proxy CA and an admin client
certificate before ``create_cluster`` runs. kubeadm signs everything with those CAs, so
``openstack coe cluster config`` and Magnum's health monitor just work.

Everything else the nodes need is *derived* here from the Kubernetes CA key with HMAC,
so that rendering the stack again (update, resize, nodegroup create) yields the same
bytes and never replaces a node or locks one out:

- the kubeadm bootstrap token (created with ``ttl: 0``: a node added months later
  still joins),
- the discovery hash of the CA (public),
- the HA secrets of the masters' and the proxies' corosync clusters,
- celtic-lb's client certificate (ECDSA P-256 key from a derived scalar, signed with
  PKCS#1 v1.5, which is deterministic).

The service-account signing key is the admin client certificate's key: Magnum keeps it
for the life of the cluster.

Which node gets which secret is decided here too, once: :func:`role_secrets` maps each
role to the files it finds under ``/etc/celtic/secrets/`` (celtic-vendordata serves
them, the lab checks them). :func:`signal_key` derives the per-node key a node signs
its wait-condition signal with, so that nothing needs to be stored for it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import hmac

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LB_USER = 'celtic-lb'
LB_GROUP = 'celtic:lb'
_TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789'


@dataclasses.dataclass(frozen=True)
class CertPair:
    """A PEM certificate and its unencrypted PEM private key."""
    cert: str
    key: str


@dataclasses.dataclass(frozen=True)
class ClusterPKI:
    """The PKI material of one cluster, as the stack parameters need it."""
    ca: CertPair
    etcd_ca: CertPair
    front_proxy_ca: CertPair
    service_account_key: str
    bootstrap_token: str
    discovery_hash: str
    master_ha_secret: str
    proxy_ha_secret: str
    lb_client: CertPair
    #: the HMAC key every derived secret comes from (never printed)
    seed: bytes = dataclasses.field(default=b'', repr=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def build(cluster_uuid: str, ca: CertPair, etcd_ca: CertPair,
          front_proxy_ca: CertPair, magnum_client_key: str) -> ClusterPKI:
    """Derive every secret of the cluster from Magnum's certificates."""
    ca = CertPair(_text(ca.cert), _text(ca.key))
    seed = _seed(ca.key, cluster_uuid)
    return ClusterPKI(
        ca=ca,
        etcd_ca=CertPair(_text(etcd_ca.cert), _text(etcd_ca.key)),
        front_proxy_ca=CertPair(_text(front_proxy_ca.cert), _text(front_proxy_ca.key)),
        service_account_key=_text(magnum_client_key),
        bootstrap_token=bootstrap_token(seed),
        discovery_hash=discovery_hash(ca.cert),
        master_ha_secret=_derive(seed, b'ha:masters').hex(),
        proxy_ha_secret=_derive(seed, b'ha:proxies').hex(),
        lb_client=lb_client_cert(seed, ca),
        seed=seed,
    )


#: the roles of a celtic cluster, and the directory on a node their secrets go to
ROLES = ('master', 'proxy', 'minion', 'storage')
SECRETS_DIR = '/etc/celtic/secrets'
#: the masters' file with the cluster's application credential (magnum_celtic.appcred),
#: when the cluster has one
CREDENTIAL_FILE = 'application-credential.json'


def role_secrets(cluster: ClusterPKI, proxies: bool = True,
                 credential: str | None = None) -> dict[str, dict[str, str]]:
    """role -> {file name under SECRETS_DIR: content}: what each role's nodes receive.

    The one home of that mapping: CA and service-account keys on masters only, the
    bootstrap token where a node joins (masters and minions), each HA cluster its own
    secret, celtic-lb's client key on the proxies (when the cluster has proxies),
    the cluster's application credential (``credential``, the file's content, when
    it has one) on the masters only, nothing on storage nodes."""
    proxy = {'ha-secret': cluster.proxy_ha_secret}
    if proxies:
        proxy = {'celtic-lb.key': cluster.lb_client.key, **proxy}
    master = {'ca.key': cluster.ca.key,
              'etcd-ca.key': cluster.etcd_ca.key,
              'front-proxy-ca.key': cluster.front_proxy_ca.key,
              'sa.key': cluster.service_account_key,
              'bootstrap-token': cluster.bootstrap_token,
              'ha-secret': cluster.master_ha_secret}
    if credential is not None:
        master[CREDENTIAL_FILE] = credential
    return {
        'master': master,
        'proxy': proxy,
        'minion': {'bootstrap-token': cluster.bootstrap_token},
        'storage': {},
    }


def signal_key(seed: bytes, instance_id: str) -> str:
    """The key (64 hex characters) node ``instance_id`` signs its signals with:
    HMAC-SHA256 of the cluster's seed, recomputed on each signal, never stored."""
    return hmac.new(seed, b'celtic-signal:' + instance_id.encode(),
                    hashlib.sha256).hexdigest()


def credential_key(seed: bytes) -> bytes:
    """The Fernet key the cluster's application credential secret is kept encrypted
    with in Magnum's database (magnum_celtic.appcred): derived from the seed, so
    reading it back needs the cluster's CA key as well."""
    return base64.urlsafe_b64encode(_derive(seed, b'celtic-credential-store'))


def seed_of(ca_key_pem: bytes | str, cluster_uuid: str) -> bytes:
    """The seed every derived secret of the cluster comes from (ClusterPKI.seed)."""
    return _seed(_text(ca_key_pem), cluster_uuid)


def _seed(ca_key_pem: str, cluster_uuid: str) -> bytes:
    key = serialization.load_pem_private_key(ca_key_pem.encode(), password=None)
    der = key.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return hmac.new(der, b'celtic:' + cluster_uuid.encode(), hashlib.sha256).digest()


def _derive(seed: bytes, purpose: bytes) -> bytes:
    return hmac.new(seed, purpose, hashlib.sha256).digest()


def bootstrap_token(seed: bytes) -> str:
    """A kubeadm bootstrap token ``[a-z0-9]{6}.[a-z0-9]{16}`` derived from ``seed``."""
    stream = _derive(seed, b'bootstrap-token') + _derive(seed, b'bootstrap-token:2')
    chars = [_TOKEN_ALPHABET[b % len(_TOKEN_ALPHABET)] for b in stream[:22]]
    return ''.join(chars[:6]) + '.' + ''.join(chars[6:22])


def discovery_hash(ca_cert_pem: str) -> str:
    """kubeadm's CA pin: sha256 of the CA's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return 'sha256:' + hashlib.sha256(spki).hexdigest()


def lb_client_cert(seed: bytes, ca: CertPair) -> CertPair:
    """celtic-lb's client certificate: CN=celtic-lb, O=celtic:lb, signed by the CA.

    Its RBAC (a ClusterRole bound to the user celtic-lb) lets it read Services and
    Nodes, write Service status and Events: nothing more.
    """
    ca_cert = x509.load_pem_x509_certificate(ca.cert.encode())
    ca_key = serialization.load_pem_private_key(ca.key.encode(), password=None)
    order = int('FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551', 16)
    scalar = int.from_bytes(_derive(seed, b'celtic-lb:key'), 'big') % (order - 1) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    serial = int.from_bytes(_derive(seed, b'celtic-lb:serial')[:19], 'big') | 1
    not_before = _as_utc(ca_cert, 'not_valid_before')
    not_after = _as_utc(ca_cert, 'not_valid_after')
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, LB_GROUP),
                                 x509.NameAttribute(NameOID.COMMON_NAME, LB_USER)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return CertPair(cert.public_bytes(serialization.Encoding.PEM).decode(),
                    key_pem.decode())


def _as_utc(cert: x509.Certificate, name: str) -> datetime.datetime:
    value = getattr(cert, name + '_utc', None)
    if value is None:
        value = getattr(cert, name).replace(tzinfo=datetime.timezone.utc)
    return value
