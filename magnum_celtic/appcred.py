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

"""The cluster's Keystone application credential: created, kept, rotated, deleted.

Does I/O: Keystone's REST API on a keystoneauth session (the owner's token while the
driver holds it, Magnum's service user otherwise) and Magnum's database.

Magnum 23 has no trusts, so whatever on a cluster's masters must call OpenStack (the
autoscaler, auto-healing, the cloud provider, Cinder CSI) uses one application
credential, created for the cluster's owner in ``create_cluster`` (the only time the
driver surely holds the owner's token), limited to the owner's project and to
``[celtic] credential_roles``.

Keystone shows a credential's secret once, at creation, so the driver keeps it: in
Magnum's ``x509keypair`` table (which no Magnum API serves; the same table and access
as the cluster's CA keys with Magnum's default certificate backend), in a row whose
uuid derives from the cluster's, its secret encrypted (Fernet) with a key derived from
the cluster's CA key (:func:`pki.credential_key`): reading it needs both Magnum's
database and its certificate store. Nothing of it goes to Heat, to the cluster's
labels or to any view: celtic-vendordata serves it to the masters only, as the secret
file :data:`pki.CREDENTIAL_FILE` (doc/autoscaling.md, doc/security.md).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from cryptography import fernet
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg
from oslo_log import log as logging

from magnum_celtic import conf
from magnum_celtic import pki

LOG = logging.getLogger(__name__)
CONF = conf.CONF

#: what the record's certificate field says it is
RECORD_KIND = 'celtic-application-credential/v1'
_NAMESPACE = uuid.UUID('8d7c3f56-1f2e-4b0a-9c55-6a51c0de1701')
_IDENTITY = {'service_type': 'identity', 'interface': 'public', 'version': (3, 0)}


class CredentialError(Exception):
    """Keystone refused or failed; the message says what to do (never a secret)."""


@dataclasses.dataclass(frozen=True)
class Credential:
    """One cluster's application credential as the driver keeps it."""
    id: str
    name: str
    user_id: str
    project_id: str
    secret: str = dataclasses.field(repr=False)
    #: credentials a rotation replaced and that are not deleted yet
    retired: tuple[str, ...] = ()

    def node_file(self, auth_url: str, region_name: str | None) -> str:
        """The content of the masters' secret file: what an OpenStack client needs."""
        return json.dumps({'auth_type': 'v3applicationcredential',
                           'auth_url': auth_url,
                           'region_name': region_name or '',
                           'application_credential_id': self.id,
                           'application_credential_secret': self.secret,
                           'project_id': self.project_id}, indent=2, sort_keys=True)


def record_uuid(cluster_uuid: str) -> str:
    """The uuid of the cluster's credential record (derived: nothing else to store)."""
    return str(uuid.uuid5(_NAMESPACE, 'celtic-credential:' + cluster_uuid))


def node_auth_url() -> str:
    """The Keystone URL the masters authenticate at (``[celtic] credential_auth_url``,
    else ``[keystone_authtoken] www_authenticate_uri``, else ``[keystone_auth]
    auth_url``)."""
    if CONF.celtic.credential_auth_url:
        return CONF.celtic.credential_auth_url
    for group, name in (('keystone_authtoken', 'www_authenticate_uri'),
                        ('keystone_auth', 'auth_url')):
        try:
            value = CONF[group][name]
        except (KeyError, AttributeError, cfg.NoSuchOptError):
            continue
        if value:
            return value
    return ''


# ---- Keystone --------------------------------------------------------------------------

def _describe(error: Exception) -> str:
    status = getattr(error, 'http_status', None)
    return 'Keystone answered %s' % status if status else type(error).__name__


def create(session: Any, user_id: str, project_id: str, cluster_uuid: str,
           roles: list[str]) -> Credential:
    """A new application credential of ``user_id`` (the caller of ``session``) on its
    project, with ``roles`` only, not unrestricted (it cannot make credentials or
    trusts), without expiry (rotation replaces it)."""
    name = 'celtic-%s-%d' % (cluster_uuid, int(time.time() * 1000))
    body = {'application_credential': {
        'name': name,
        'description': 'celtic cluster %s: the components on its masters that call '
                       'OpenStack (autoscaler, auto-healing, cloud provider, Cinder '
                       'CSI); deleted with the cluster' % cluster_uuid,
        'roles': [{'name': role} for role in roles],
        'unrestricted': False}}
    try:
        answer = session.post('/users/%s/application_credentials' % user_id,
                              json=body, endpoint_filter=_IDENTITY, raise_exc=True)
    except ks_exc.HttpError as error:
        if error.http_status in (400, 403):
            raise CredentialError(
                'Keystone refused an application credential with roles %s for this '
                'cluster (%s): the cluster owner needs those roles on the project, '
                'and a token that may create application credentials (not one from '
                'a restricted application credential)' % (', '.join(roles),
                                                          _describe(error)))
        raise CredentialError('cannot create the cluster\'s application credential: '
                              '%s' % _describe(error))
    except ks_exc.ClientException as error:
        raise CredentialError('cannot reach Keystone to create the cluster\'s '
                              'application credential: %s' % _describe(error))
    made = answer.json()['application_credential']
    return Credential(id=made['id'], name=made['name'], user_id=user_id,
                      project_id=made.get('project_id') or project_id,
                      secret=made['secret'])


def delete(session: Any, user_id: str, credential_id: str, cluster_uuid: str) -> bool:
    """Delete one credential; True when it is gone (also when it already was: deleted
    by hand, or its owner left and Keystone deleted it with them)."""
    try:
        session.delete('/users/%s/application_credentials/%s' % (user_id, credential_id),
                       endpoint_filter=_IDENTITY, raise_exc=True)
    except ks_exc.NotFound:
        LOG.info('cluster %s: application credential %s of user %s is already gone '
                 '(deleted, or its owner left the cloud)', cluster_uuid, credential_id,
                 user_id)
        return True
    except ks_exc.ClientException as error:
        LOG.warning('cluster %s: application credential %s of user %s not deleted: %s',
                    cluster_uuid, credential_id, user_id, _describe(error))
        return False
    LOG.info('cluster %s: application credential %s deleted', cluster_uuid,
             credential_id)
    return True


# ---- the record in Magnum's database ---------------------------------------------------

def _fernet(seed: bytes) -> fernet.Fernet:
    return fernet.Fernet(pki.credential_key(seed))


def save(context: Any, cluster: Any, seed: bytes, credential: Credential) -> None:
    """Keep ``credential`` as the cluster's (replacing the one kept before)."""
    from magnum import objects
    from magnum.common import exception
    certificate = json.dumps({'kind': RECORD_KIND, 'id': credential.id,
                              'name': credential.name, 'user_id': credential.user_id,
                              'project_id': credential.project_id,
                              'retired': list(credential.retired)})
    token = _fernet(seed).encrypt(credential.secret.encode()).decode()
    ident = record_uuid(cluster.uuid)
    try:
        row = objects.X509KeyPair.get_by_uuid(context, ident)
    except exception.X509KeyPairNotFound:
        objects.X509KeyPair(context, uuid=ident, certificate=certificate,
                            private_key=token, project_id=cluster.project_id,
                            user_id=cluster.user_id).create()
        return
    row.certificate, row.private_key = certificate, token
    row.save()


def load(context: Any, cluster: Any, seed: bytes) -> Credential | None:
    """The cluster's credential, or None when it has none."""
    from magnum import objects
    from magnum.common import exception
    try:
        row = objects.X509KeyPair.get_by_uuid(context, record_uuid(cluster.uuid))
    except exception.X509KeyPairNotFound:
        return None
    doc = json.loads(row.certificate)
    if doc.get('kind') != RECORD_KIND:
        return None
    try:
        secret = _fernet(seed).decrypt(row.private_key.encode()).decode()
    except fernet.InvalidToken:
        LOG.error('cluster %s: its application credential record does not decrypt '
                  'with its CA (was the CA replaced?)', cluster.uuid)
        return None
    return Credential(id=doc['id'], name=doc['name'], user_id=doc['user_id'],
                      project_id=doc['project_id'], secret=secret,
                      retired=tuple(doc.get('retired') or ()))


def forget(context: Any, cluster: Any) -> None:
    """Drop the cluster's record (idempotent)."""
    from magnum import objects
    from magnum.common import exception
    try:
        objects.X509KeyPair.get_by_uuid(context, record_uuid(cluster.uuid)).destroy()
    except exception.X509KeyPairNotFound:
        pass


# ---- what the driver does ---------------------------------------------------------------

def provide(context: Any, session: Any, cluster: Any, seed: bytes) -> Credential:
    """Create the cluster's credential with the owner's ``session`` and keep it."""
    credential = create(session, context.user_id, cluster.project_id, cluster.uuid,
                        list(CONF.celtic.credential_roles))
    save(context, cluster, seed, credential)
    LOG.info('cluster %s: application credential %s created for user %s with roles '
             '%s', cluster.uuid, credential.id, credential.user_id,
             ', '.join(CONF.celtic.credential_roles))
    return credential


def rotate(context: Any, session: Any, cluster: Any, seed: bytes) -> Credential:
    """A new credential becomes the cluster's (celtic-vendordata serves it to the
    masters from now on); the one it replaces is retired, and a credential an earlier
    rotation retired is deleted now. Returns the new credential."""
    old = load(context, cluster, seed)
    if old is None:
        raise CredentialError('cluster %s has no application credential to rotate: '
                              'it gets one when one of the labels '
                              'auto_scaling_enabled, auto_healing_enabled, '
                              'cloud_provider_enabled or cinder_csi_enabled is true'
                              % cluster.uuid)
    if context.user_id != old.user_id:
        LOG.warning('cluster %s: the credential of user %s is replaced by one of user '
                    '%s, who asked for the rotation', cluster.uuid, old.user_id,
                    context.user_id)
    new = create(session, context.user_id, cluster.project_id, cluster.uuid,
                 list(CONF.celtic.credential_roles))
    still = tuple(rid for rid in old.retired
                  if not delete(session, old.user_id, rid, cluster.uuid))
    new = dataclasses.replace(new, retired=still + (old.id,))
    save(context, cluster, seed, new)
    LOG.info('cluster %s: application credential %s replaces %s', cluster.uuid,
             new.id, old.id)
    return new


def remove(context: Any, owner_session: Any, service_session: Any, cluster: Any,
           seed: bytes | None) -> None:
    """Delete every credential of the cluster and its record (idempotent). The owner's
    session when the caller is the owner, else Magnum's service user's (Keystone's
    policy must let it: doc/autoscaling.md). A credential that cannot be deleted is
    logged with its id, and its record kept, so that the next try finds it."""
    credential = load(context, cluster, seed) if seed is not None else None
    if credential is None:
        forget(context, cluster)
        return
    session = (owner_session if owner_session is not None
               and context.user_id == credential.user_id else service_session)
    left = [cid for cid in (credential.id,) + credential.retired
            if not delete(session, credential.user_id, cid, cluster.uuid)]
    if left:
        LOG.error('cluster %s: application credentials %s of user %s could not be '
                  'deleted; delete them in Keystone', cluster.uuid, ', '.join(left),
                  credential.user_id)
        return
    forget(context, cluster)
