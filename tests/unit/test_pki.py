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

"""Secrets derived from Magnum's certificates: stable, well-formed, least privilege."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from magnum.common.x509 import operations

from magnum_celtic import pki

UUID = '5d12f6fd-a196-4bf0-ae4c-1f639a523a52'


def magnum_ca(name):
    """A CA exactly as Magnum's x509 operations generate one, key decrypted."""
    generated = operations.generate_ca_certificate(name, encryption_password=b'pw')
    key = operations.decrypt_key(generated['private_key'], b'pw')
    return pki.CertPair(generated['certificate'], key)


@pytest.fixture(scope='module')
def cas():
    return SimpleNamespace(ca=magnum_ca('k1'), etcd=magnum_ca('k1'),
                           front_proxy=magnum_ca('k1'),
                           admin_key=magnum_ca('admin').key)


@pytest.fixture(scope='module')
def cluster_pki(cas):
    return pki.build(UUID, cas.ca, cas.etcd, cas.front_proxy, cas.admin_key)


def test_rendering_again_derives_exactly_the_same_secrets(cas, cluster_pki):
    again = pki.build(UUID, cas.ca, cas.etcd, cas.front_proxy, cas.admin_key)
    assert again == cluster_pki
    assert dataclasses.asdict(again) == dataclasses.asdict(cluster_pki)


def test_another_cluster_gets_other_secrets(cas, cluster_pki):
    other = pki.build('0c7e7f0a-0000-4000-8000-000000000000', cas.ca, cas.etcd,
                      cas.front_proxy, cas.admin_key)
    for field in ('bootstrap_token', 'master_ha_secret', 'proxy_ha_secret'):
        assert getattr(other, field) != getattr(cluster_pki, field)
    assert other.lb_client.key != cluster_pki.lb_client.key
    # The CA pin is public and depends on the CA only.
    assert other.discovery_hash == cluster_pki.discovery_hash


def test_another_ca_gives_other_secrets(cas, cluster_pki):
    other = pki.build(UUID, magnum_ca('k1'), cas.etcd, cas.front_proxy, cas.admin_key)
    assert other.bootstrap_token != cluster_pki.bootstrap_token
    assert other.discovery_hash != cluster_pki.discovery_hash


def test_bootstrap_token_has_kubeadms_format(cluster_pki):
    assert re.fullmatch(r'[a-z0-9]{6}\.[a-z0-9]{16}', cluster_pki.bootstrap_token)


def test_ha_secrets_are_distinct_256_bit_hex(cluster_pki):
    for secret in (cluster_pki.master_ha_secret, cluster_pki.proxy_ha_secret):
        assert re.fullmatch(r'[0-9a-f]{64}', secret)
    assert cluster_pki.master_ha_secret != cluster_pki.proxy_ha_secret


def test_discovery_hash_is_the_sha256_of_the_ca_public_key_info(cluster_pki, cas):
    cert = x509.load_pem_x509_certificate(cas.ca.cert)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cluster_pki.discovery_hash == 'sha256:' + hashlib.sha256(spki).hexdigest()


@pytest.mark.skipif(not shutil.which('openssl'), reason='needs the openssl command')
def test_discovery_hash_matches_kubeadms_documented_openssl_pipeline(cluster_pki):
    # kubeadm docs: openssl x509 -pubkey | openssl rsa -pubin -outform der | sha256sum
    pubkey = subprocess.run(['openssl', 'x509', '-pubkey', '-noout'],
                            input=cluster_pki.ca.cert.encode(), capture_output=True,
                            check=True).stdout
    der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'der'],
                         input=pubkey, capture_output=True, check=True).stdout
    assert cluster_pki.discovery_hash == 'sha256:' + hashlib.sha256(der).hexdigest()


def test_magnums_pem_bytes_become_text(cas, cluster_pki):
    assert isinstance(cluster_pki.ca.cert, str) and isinstance(cluster_pki.ca.key, str)
    assert cluster_pki.ca.cert == cas.ca.cert.decode()
    assert cluster_pki.etcd_ca.key == cas.etcd.key.decode()
    assert cluster_pki.front_proxy_ca.cert == cas.front_proxy.cert.decode()


def test_service_account_key_is_magnums_admin_key(cas, cluster_pki):
    assert cluster_pki.service_account_key == cas.admin_key.decode()


def lb_cert(cluster_pki):
    return x509.load_pem_x509_certificate(cluster_pki.lb_client.cert.encode())


def test_celtic_lb_certificate_chains_to_the_cluster_ca(cluster_pki):
    ca = x509.load_pem_x509_certificate(cluster_pki.ca.cert.encode())
    cert = lb_cert(cluster_pki)
    cert.verify_directly_issued_by(ca)
    assert ca.not_valid_before_utc <= cert.not_valid_before_utc
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc


def test_celtic_lb_is_a_client_of_its_own_group_not_a_cluster_admin(cluster_pki):
    cert = lb_cert(cluster_pki)
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        'celtic-lb']
    organizations = [a.value for a in
                     subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert organizations == ['celtic:lb']
    assert 'system:masters' not in organizations
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_celtic_lb_key_belongs_to_its_certificate(cluster_pki):
    key = serialization.load_pem_private_key(cluster_pki.lb_client.key.encode(), None)

    def public(k):
        return k.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public(key.public_key()) == public(lb_cert(cluster_pki).public_key())


def test_validity_of_a_certificate_without_utc_accessors():
    naive = datetime.datetime(2030, 1, 2, 3, 4, 5)
    legacy = SimpleNamespace(not_valid_after=naive)
    assert pki._as_utc(legacy, 'not_valid_after') == naive.replace(
        tzinfo=datetime.timezone.utc)


def test_each_role_gets_exactly_its_own_secrets(cluster_pki):
    secrets = pki.role_secrets(cluster_pki)
    assert secrets == {
        'master': {'ca.key': cluster_pki.ca.key, 'etcd-ca.key': cluster_pki.etcd_ca.key,
                   'front-proxy-ca.key': cluster_pki.front_proxy_ca.key,
                   'sa.key': cluster_pki.service_account_key,
                   'bootstrap-token': cluster_pki.bootstrap_token,
                   'ha-secret': cluster_pki.master_ha_secret},
        'proxy': {'celtic-lb.key': cluster_pki.lb_client.key,
                  'ha-secret': cluster_pki.proxy_ha_secret},
        'minion': {'bootstrap-token': cluster_pki.bootstrap_token},
        'storage': {}}
    assert set(secrets) == set(pki.ROLES)
    assert 'celtic-lb.key' not in pki.role_secrets(cluster_pki, proxies=False)['proxy']


def test_signal_keys_are_per_node_and_need_nothing_stored(cas, cluster_pki):
    key = pki.signal_key(cluster_pki.seed, 'a1b2')
    assert re.fullmatch(r'[0-9a-f]{64}', key)
    assert key == pki.signal_key(
        pki.build(UUID, cas.ca, cas.etcd, cas.front_proxy, cas.admin_key).seed, 'a1b2')
    assert key != pki.signal_key(cluster_pki.seed, 'a1b3')
    other = pki.build('0' + UUID[1:], cas.ca, cas.etcd, cas.front_proxy, cas.admin_key)
    assert key != pki.signal_key(other.seed, 'a1b2')
    assert cluster_pki.seed.hex() not in repr(cluster_pki)
