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

"""The cluster's certificates in Magnum's certificate manager, and the CA bundle of
the nodes.

Reading the CAs and the admin key a cluster's secrets derive from (:mod:`pki` derives
them), deleting what Magnum's own clean-up leaks, undoing a CA rotation celtic does
not support, and reading ``[celtic] node_openstack_ca_file``. Used by the driver and
by celtic-vendordata (which serves the secrets to the nodes).
"""

from __future__ import annotations

from typing import Any

from magnum.common import exception
from magnum.conductor.handlers.common import cert_manager
from oslo_log import log as logging

from magnum_celtic import conf
from magnum_celtic import pki

LOG = logging.getLogger(__name__)
CONF = conf.CONF


def cluster_pki(context: Any, cluster: Any) -> pki.ClusterPKI:
    """Magnum's CAs and admin key, and the secrets derived from them."""
    def pair(kind: str | None) -> pki.CertPair:
        cert = cert_manager.get_cluster_ca_certificate(cluster, context, kind)
        return pki.CertPair(cert.get_certificate(), cert.get_decrypted_private_key())
    magnum_cert = cert_manager.get_cluster_magnum_cert(cluster, context)
    return pki.build(cluster.uuid, pair(None), pair('etcd'), pair('front-proxy'),
                     magnum_cert.get_decrypted_private_key())


def cluster_seed(context: Any, cluster: Any) -> bytes:
    """The cluster's seed (pki), from Magnum's CA key alone: what a signal key needs."""
    ca = cert_manager.get_cluster_ca_certificate(cluster, context)
    return pki.seed_of(ca.get_decrypted_private_key(), cluster.uuid)


def node_openstack_ca() -> str:
    """The CA bundle nodes trust when they report to Heat (may be empty)."""
    path = CONF.celtic.node_openstack_ca_file or CONF.drivers.openstack_ca_file
    if not path:
        return ''
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except OSError as error:
        raise exception.InvalidParameterValue(
            err='cannot read the CA bundle for nodes %s: %s' % (path, error.strerror))


def delete_leftover_certificates(context: Any, cluster: Any) -> None:
    """Delete what Magnum's own clean-up leaks: the etcd and front-proxy CA refs and
    the client files it cached for the health monitor."""
    backend = None
    for attribute in ('etcd_ca_cert_ref', 'front_proxy_ca_cert_ref'):
        ref = getattr(cluster, attribute, None)
        if not ref:
            continue
        try:
            from magnum.common import cert_manager as cert_backends
            backend = backend or cert_backends.get_backend().CertManager
            backend.delete_cert(ref, resource_ref=cluster.uuid, context=context)
        except Exception as error:  # clean-up must never block the delete
            LOG.warning('cluster %s: could not delete %s: %s', cluster.uuid,
                        attribute, error)
    cert_manager.delete_client_files(cluster, context=context)


#: seconds after a cluster's record is created within which Magnum's create stores
#: its certificates (the step takes seconds; a poll gives it up after two minutes)
CERT_STEP_WINDOW = 600
_REF_FIELDS = ('ca_cert_ref', 'etcd_ca_cert_ref', 'front_proxy_ca_cert_ref',
               'magnum_cert_ref')


def delete_unsaved_certificates(cluster: Any) -> list[str]:
    """Delete the certificates Magnum stored for the create of ``cluster`` but never
    referred to; returns their refs.

    Magnum 23's create stores the cluster's three CAs and its client certificate one
    by one and sets their refs on the cluster only in memory; the driver saves them as
    its first step. A conductor that died in between leaves a cluster without refs
    (Magnum's own clean-up then deletes nothing) and up to four certificates nothing
    refers to. For a deleted cluster that has no ``ca_cert_ref``, with Magnum's
    ``x509keypair`` backend (its database), a row is deleted only if all of these hold:
    same project and user as the cluster; stored within CERT_STEP_WINDOW after the
    cluster's record; referenced by no cluster; and its certificate is a CA whose
    subject is the cluster's issuer name (its name, or its uuid when it has none) or a
    certificate signed by such a CA. Nothing is deleted while another cluster of the
    project with that issuer name has no saved refs and is CREATE_IN_PROGRESS (its
    create could be in that step now, its certificates matching the same rules).
    Other backends (Barbican) are not searched: a warning names what to look for."""
    from magnum.common import context as magnum_context
    from magnum import objects
    issuer = cluster.name or cluster.uuid
    if CONF.certificates.cert_manager_type != 'x509keypair':
        LOG.warning('cluster %s has no certificate refs (its create stopped in Magnum\'s '
                    'certificate step): up to three CAs named %r and a certificate '
                    'named Magnum-Conductor of project %s may be left in the %s '
                    'certificate store', cluster.uuid, issuer, cluster.project_id,
                    CONF.certificates.cert_manager_type)
        return []
    try:
        context = magnum_context.make_admin_context(all_tenants=True)
        owner = {'project_id': cluster.project_id}
        referenced = set()
        for other in objects.Cluster.dbapi.get_cluster_list(context, filters=owner):
            if other.uuid == cluster.uuid:
                continue
            refs = {getattr(other, f, None) for f in _REF_FIELDS} - {None}
            if (not refs and other.status == 'CREATE_IN_PROGRESS'
                    and (other.name or other.uuid) == issuer):
                LOG.warning('cluster %s has no certificate refs, but cluster %s of the '
                            'same name is being created: certificates it may be storing '
                            'now are not told apart from the leftovers, none deleted',
                            cluster.uuid, other.uuid)
                return []
            referenced |= refs
        rows = objects.X509KeyPair.list(
            context, filters=dict(owner, user_id=cluster.user_id))
        candidates = [row for row in rows if row.uuid not in referenced
                      and _in_window(row.created_at, cluster.created_at)]
        leftovers = _issued_for(issuer, candidates)
        for row in leftovers:
            row.destroy()
    except Exception as error:  # clean-up must never block the delete
        LOG.warning('cluster %s: could not look for the certificates its create left '
                    'unreferenced: %s', cluster.uuid, type(error).__name__)
        return []
    if leftovers:
        LOG.info('cluster %s: deleted %d certificates its create stored but never '
                 'referred to (its conductor stopped in Magnum\'s certificate step)',
                 cluster.uuid, len(leftovers))
    return [row.uuid for row in leftovers]


def _in_window(stored: Any, created: Any) -> bool:
    if stored is None or created is None:
        return False
    seconds = (stored.replace(tzinfo=None) - created.replace(tzinfo=None)).total_seconds()
    return -1 <= seconds <= CERT_STEP_WINDOW


def _issued_for(issuer: str, rows: list[Any]) -> list[Any]:
    """The rows holding a CA whose subject is ``issuer``, and those holding a
    certificate one of these CAs signed (anything else: an application credential
    record, another cluster's certificate, is not a match)."""
    from cryptography import exceptions as crypto_exc
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    def parsed(row: Any) -> Any:
        text = row.certificate or ''
        if 'BEGIN CERTIFICATE' not in text:
            return None
        try:
            return x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            return None

    def names(name: Any) -> list[str]:
        return [a.value for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]

    certs = [(row, parsed(row)) for row in rows]
    cas = []
    for row, cert in certs:
        if cert is None or names(cert.subject) != [issuer] or cert.issuer != cert.subject:
            continue
        try:
            if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                cas.append((row, cert))
        except x509.ExtensionNotFound:
            continue
    found = [row for row, _ in cas]
    for row, cert in certs:
        if cert is None or cert.issuer == cert.subject:
            continue
        for _, ca in cas:
            try:
                cert.verify_directly_issued_by(ca)
            except (crypto_exc.InvalidSignature, ValueError, TypeError):
                continue
            found.append(row)
            break
    return found


def restore_ca_refs(context: Any, cluster: Any) -> None:
    """Undo Magnum's CA regeneration: delete the new certificates and put the refs
    the cluster runs on back (rotation is not supported)."""
    from magnum import objects
    from magnum.common import cert_manager as cert_backends
    stored = objects.Cluster.get_by_uuid(context, cluster.uuid)
    backend = cert_backends.get_backend().CertManager
    for attribute in ('ca_cert_ref', 'etcd_ca_cert_ref', 'front_proxy_ca_cert_ref',
                      'magnum_cert_ref'):
        new, old = getattr(cluster, attribute, None), getattr(stored, attribute, None)
        if new and new != old:
            try:
                backend.delete_cert(new, resource_ref=cluster.uuid, context=context)
            except Exception as error:
                LOG.warning('cluster %s: could not delete the new %s: %s',
                            cluster.uuid, attribute, error)
            setattr(cluster, attribute, old)
