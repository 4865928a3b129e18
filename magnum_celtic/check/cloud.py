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

"""The OpenStack side of ``magnum-celtic check``: openstacksdk with the operator's
clouds.yaml entry, Magnum through python-magnumclient on the same keystoneauth session.

Nothing here prints or returns a credential: the session's token stays in the session,
the client key of the kubeconfig stays in a 0700 temporary directory removed at the end.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from magnum_celtic.check.report import StepFailed

#: how often cluster and server states are polled
POLL_SECONDS = 2.0


def _connect(os_cloud: str):
    import openstack
    return openstack.connect(cloud=os_cloud)


class Cloud:
    """One cloud, one cluster: what the steps ask of OpenStack."""

    def __init__(self, os_cloud: str, timeout: float = 3600.0):
        from magnumclient import client as magnum_client
        self.conn = _connect(os_cloud)
        self.timeout = timeout
        self.magnum = magnum_client.Client(
            '1', session=self.conn.session, service_type='container-infra',
            interface=self.conn.config.get_interface() or 'public',
            region_name=self.conn.config.get_region_name() or None,
            api_version='latest')
        self.cluster_uuid: str | None = None
        self.cluster_name: str | None = None
        self.template_uuid: str | None = None
        self.own_template = False
        self.baseline: dict[str, set[str]] = {}
        self._tmp = tempfile.mkdtemp(prefix='celtic-check-')
        os.chmod(self._tmp, 0o700)

    # ------------------------------------------------------------------ Magnum

    def ensure_template(self, name: str, template: str | None, image: str | None,
                        flavor: str | None, master_flavor: str | None,
                        external_network: str | None, keypair: str | None,
                        labels: dict[str, str]) -> Any:
        if template:
            found = self.magnum.cluster_templates.get(template)
            self.template_uuid = found.uuid
            return found
        created = self.magnum.cluster_templates.create(
            name=name, coe='kubernetes', driver='celtic', image_id=image,
            flavor_id=flavor, master_flavor_id=master_flavor or flavor,
            external_network_id=external_network, keypair_id=keypair,
            network_driver='flannel', master_lb_enabled=True, floating_ip_enabled=True,
            labels=labels)
        self.template_uuid = created.uuid
        self.own_template = True
        return created

    def create_cluster(self, name: str, masters: int, minions: int, keypair: str | None,
                       labels: dict[str, str]) -> Any:
        self.baseline = self.inventory()
        kwargs = dict(name=name, cluster_template_id=self.template_uuid,
                      master_count=masters, node_count=minions, labels=labels,
                      merge_labels=True)
        if keypair:
            kwargs['keypair'] = keypair
        created = self.magnum.clusters.create(**kwargs)
        self.cluster_uuid, self.cluster_name = created.uuid, name
        return self.wait_cluster('CREATE')

    def cluster(self) -> Any:
        return self.magnum.clusters.get(self.cluster_uuid)

    def _poll_cluster(self, since: list[float]) -> Any:
        """The cluster, riding out transient API errors for up to 120 s in a row:
        magnum-api answers 400 on a cluster whose nodegroups the conductor has not
        stored yet (master_count is not valid then), and a real cloud has its 503s.
        ``since`` holds when the current run of errors began."""
        from magnumclient import exceptions as magnum_exc
        try:
            found = self.cluster()
        except magnum_exc.NotFound:
            raise
        except Exception as error:
            if not since:
                since.append(time.monotonic())
            if time.monotonic() - since[0] > 120:
                raise StepFailed('Magnum keeps failing to show the cluster: %s' % error,
                                 cluster=self.cluster_uuid)
            return None
        since.clear()
        return found

    def wait_cluster(self, action: str, gone_ok: bool = False) -> Any:
        """Wait for <action>_COMPLETE (or, with gone_ok, for the cluster to vanish)."""
        from magnumclient import exceptions as magnum_exc
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        seen = None
        errors: list[float] = []
        while time.monotonic() < deadline:
            try:
                now = self._poll_cluster(errors)
            except magnum_exc.NotFound:
                if gone_ok:
                    return None
                if action == 'CREATE' and seen is None and time.monotonic() - t0 < 120:
                    # magnum-api answers 202 before the conductor has stored the cluster
                    time.sleep(POLL_SECONDS / 4)
                    continue
                raise StepFailed('the cluster disappeared during %s' % action,
                                 cluster=self.cluster_uuid)
            if now is None:
                time.sleep(POLL_SECONDS)
                continue
            seen = now
            if seen.status == '%s_COMPLETE' % action:
                return seen
            if seen.status.endswith('_FAILED'):
                raise StepFailed('%s: %s' % (seen.status, seen.status_reason),
                                 cluster=self.cluster_uuid, status=seen.status,
                                 status_reason=seen.status_reason,
                                 faults=getattr(seen, 'faults', None))
            time.sleep(POLL_SECONDS)
        raise StepFailed('%s did not finish in %ds (status %s)' % (
            action, self.timeout, getattr(seen, 'status', '?')),
            cluster=self.cluster_uuid, status=getattr(seen, 'status', None),
            status_reason=getattr(seen, 'status_reason', None))

    def resize(self, node_count: int, nodes_to_remove: list[str] | None = None) -> Any:
        before = self.cluster()
        self.magnum.clusters.resize(self.cluster_uuid, node_count=node_count,
                                    nodes_to_remove=nodes_to_remove or None)
        # wait for the update to begin (the status is still the previous *_COMPLETE)
        deadline = time.monotonic() + 60
        errors: list[float] = []
        while time.monotonic() < deadline:
            now = self._poll_cluster(errors)
            if now is not None and (now.status != before.status or
                                    now.updated_at != before.updated_at):
                break
            time.sleep(0.5)
        return self.wait_cluster('UPDATE')

    def delete_cluster(self) -> list[str]:
        """Delete the cluster and wait until Magnum no longer has it; a DELETE_FAILED
        is retried once (what an operator does first). Returns the failures seen."""
        from magnumclient import exceptions as magnum_exc
        failures: list[str] = []
        for attempt in range(2):
            try:
                self.magnum.clusters.delete(self.cluster_uuid)
            except magnum_exc.NotFound:
                return failures
            try:
                self.wait_cluster('DELETE', gone_ok=True)
                return failures
            except StepFailed as failure:
                failures.append(str(failure))
                if attempt:
                    failure.evidence['earlier_attempts'] = failures[:-1]
                    raise
        return failures

    def delete_own_template(self) -> None:
        if self.own_template and self.template_uuid:
            self.magnum.cluster_templates.delete(self.template_uuid)
            self.own_template = False

    def stack_outputs(self) -> dict[str, Any]:
        stack = self.conn.orchestration.get_stack(self.stack_id())
        return {o['output_key']: o.get('output_value') for o in stack.outputs or []}

    def stack_id(self) -> str:
        """The cluster's Heat stack: Magnum shows ``stack_id`` to admins only; celtic
        names the stack celtic-<name prefix>-<first 8 characters of the uuid>."""
        found = getattr(self.cluster(), 'stack_id', None)
        if found:
            return found
        suffix = '-' + (self.cluster_uuid or '')[:8]
        for stack in self.conn.orchestration.stacks():
            if stack.name.startswith('celtic-') and stack.name.endswith(suffix):
                return stack.id
        raise StepFailed('no Heat stack named celtic-*%s in the project' % suffix)

    def kubeconfig(self, api_override: str | None = None) -> dict[str, Any]:
        """The admin kubeconfig as ``openstack coe cluster config`` makes it: a new key,
        a CSR (CN=admin, O=system:masters) signed by Magnum, the cluster CA from Magnum.
        Returns paths (in the private temporary directory) and the facts shown as
        evidence; the key is never returned in text."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import padding
        from magnumclient.common import utils as magnum_utils
        cluster = self.cluster()
        csr = magnum_utils.generate_csr_and_key()
        signed = self.magnum.certificates.create(cluster_uuid=cluster.uuid,
                                                 csr=csr['csr']).pem
        ca = self.magnum.certificates.get(cluster_uuid=cluster.uuid).pem
        cert = x509.load_pem_x509_certificate(signed.encode())
        ca_cert = x509.load_pem_x509_certificate(ca.encode())
        try:
            ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                        padding.PKCS1v15(), cert.signature_hash_algorithm)
        except Exception as error:
            raise StepFailed('the client certificate Magnum signed does not verify '
                             'against the cluster CA (%s)' % error,
                             subject=cert.subject.rfc4514_string(),
                             issuer=cert.issuer.rfc4514_string(),
                             ca=ca_cert.subject.rfc4514_string())
        paths = {}
        for name, text in (('ca.pem', ca), ('cert.pem', signed), ('key.pem', csr['key'])):
            path = os.path.join(self._tmp, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'w') as f:
                f.write(text)
            paths[name] = path
        return {'server': api_override or cluster.api_address, 'api_address':
                cluster.api_address, 'ca': paths['ca.pem'], 'cert': paths['cert.pem'],
                'key': paths['key.pem'], 'subject': cert.subject.rfc4514_string(),
                'issuer': cert.issuer.rfc4514_string(),
                'not_after': cert.not_valid_after_utc.isoformat()}

    # ------------------------------------------------------------------ Nova

    def servers(self, role: str | None = None) -> list[Any]:
        """The cluster's servers (named <cluster>-<role>-<index> by the templates)."""
        prefix = '%s-%s' % (self.cluster_name, role + '-' if role else '')
        found = [s for s in self.conn.compute.servers(details=True)
                 if (s.name or '').startswith(prefix)]
        return sorted(found, key=lambda s: s.name)

    def _wait_server(self, server_id: str, status: str, timeout: float = 600) -> Any:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.conn.compute.get_server(server_id)
            if seen.status == status:
                return seen
            if seen.status == 'ERROR':
                break
            time.sleep(POLL_SECONDS / 2)
        raise StepFailed('server %s is %s, not %s' % (
            getattr(seen, 'name', server_id), getattr(seen, 'status', '?'), status),
            server=server_id, status=getattr(seen, 'status', None))

    def stop_server(self, server_id: str) -> float:
        t0 = time.monotonic()
        self.conn.compute.stop_server(server_id)
        self._wait_server(server_id, 'SHUTOFF')
        return time.monotonic() - t0

    def start_server(self, server_id: str, timeout: float = 600) -> float:
        t0 = time.monotonic()
        self.conn.compute.start_server(server_id)
        self._wait_server(server_id, 'ACTIVE', timeout)
        return time.monotonic() - t0

    # ------------------------------------------------------------------ the audit

    def inventory(self) -> dict[str, set[str]]:
        """The ids of what the project has now, by kind (taken before the create so
        that the audit reports only what appeared during the check)."""
        c = self.conn
        kinds = {
            'servers': lambda: c.compute.servers(),
            'ports': lambda: c.network.ports(),
            'floating_ips': lambda: c.network.ips(),
            'security_groups': lambda: c.network.security_groups(),
            'volumes': lambda: c.block_storage.volumes(),
            'stacks': lambda: c.orchestration.stacks(),
        }
        return {kind: {o.id for o in lister()} for kind, lister in kinds.items()}

    def leftovers(self) -> dict[str, list[str]]:
        """What the cluster left behind: every object of these kinds that was not in the
        project before the create and either carries the cluster's name (servers, ports,
        security groups, volumes, stacks) or is a floating IP created since."""
        c = self.conn
        name = self.cluster_name or ''
        uuid = self.cluster_uuid or ''
        listers = {
            'servers': c.compute.servers, 'ports': c.network.ports,
            'floating_ips': c.network.ips, 'security_groups': c.network.security_groups,
            'volumes': c.block_storage.volumes, 'stacks': c.orchestration.stacks,
        }
        left: dict[str, list[str]] = {}
        for kind, lister in listers.items():
            before = self.baseline.get(kind, set())
            for obj in lister():
                if obj.id in before:
                    continue
                label = getattr(obj, 'name', None) or getattr(
                    obj, 'floating_ip_address', None) or obj.id
                text = ' '.join(str(getattr(obj, a, '') or '') for a in
                                ('name', 'description'))
                if kind == 'floating_ips' or name in text or uuid[:8] in text:
                    left.setdefault(kind, []).append('%s (%s)' % (label, obj.id))
        return left

    def close(self) -> None:
        import shutil
        shutil.rmtree(self._tmp, ignore_errors=True)
