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
