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

"""The celtic Magnum driver: Magnum's hooks, each one read, plan, send.

Loaded by Magnum through the ``magnum.drivers`` entry point ``celtic``. Construction
does no I/O (Magnum instantiates drivers in every API and conductor process).

Every hook reads (Magnum's objects through ``adapters``, the certificates through
``certs``, a stack through ``heat``), plans with pure functions (``spec``, ``request``,
``expand``, ``budget``, ``status``) and sends (``heat``) or writes back (``adapters``).

One Heat stack per cluster holds the masters, the proxies, the storage nodes and the
default worker pool; every other worker nodegroup has a stack of its own built from
``minion.yaml``. Status comes from one ``GET`` per stack per poll.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable

from magnum.common import exception
from magnum.drivers.common import driver
from magnum.drivers.common import k8s_monitor
from magnum.objects import fields
from oslo_log import log as logging
from oslo_utils import timeutils

from magnum_celtic import adapters
from magnum_celtic import appcred
from magnum_celtic import certs
from magnum_celtic import conf
from magnum_celtic import expand
from magnum_celtic import heat as heat_api
from magnum_celtic import inventory
from magnum_celtic import outputs as out
from magnum_celtic import preflight
from magnum_celtic import request as req
from magnum_celtic import spec as spec_mod
from magnum_celtic import status

LOG = logging.getLogger(__name__)
CONF = conf.CONF
Status = fields.ClusterStatus

#: seconds a nodegroup being created may be without a stack id
SUBMIT_GRACE = 300

#: seconds a cluster being created may be without its certificate refs saved: Magnum's
#: own step before the driver (it generates and stores four certificates, seconds even
#: on a loaded machine); after that its conductor is taken for dead
CERT_STEP_GRACE = 120

#: seconds a cluster whose create the driver began (its certificate refs saved) may be
#: without a stack, with no conductor holding its lock: a request on its way to Heat
#: when the conductor died is then stored or lost. Not less: in the churn benchmark
#: (loaded 2-core machine) Heat stored such a stack more than 57 s after the request,
#: after a 60 s grace had failed its cluster as having none
SEND_GRACE = 300

#: seconds an operation waits for another conductor's work on the same cluster
OPERATION_LOCK_WAIT = 120

POLLED = (Status.CREATE_IN_PROGRESS, Status.UPDATE_IN_PROGRESS,
          Status.DELETE_IN_PROGRESS, Status.ROLLBACK_IN_PROGRESS)


def _user_error(error: Exception) -> exception.MagnumException:
    if isinstance(error, heat_api.HeatUnavailable):
        return exception.MagnumException(message=str(error))
    return exception.InvalidParameterValue(err=str(error))


def _being_submitted(cluster: Any) -> str | None:
    """What of the cluster is still on its way to Heat, if anything.

    The conductor sets CREATE_IN_PROGRESS before it sends the stack, so a status poll
    can land in between: a cluster (or a new nodegroup) that is being created and has
    no stack id yet is not failed for it while its conductor may still be working.
    The poll holds the cluster's lock, which a live create holds from the moment the
    driver's hook starts (and saves the certificate refs, :func:`_claim_create`) until
    it has saved the stack id. So a cluster without a stack whose refs are saved lost
    its conductor inside the driver's hook: it is failed SEND_GRACE after that save.
    A cluster whose refs are not saved is still (or died) in Magnum's own certificate
    step: CERT_STEP_GRACE after its creation. A nodegroup: SUBMIT_GRACE. After that a
    missing stack is a failure, reported by the usual mapping
    (:func:`_lost_create_reason` words it)."""
    now = timeutils.utcnow()

    def young(since: Any, grace: float) -> bool:
        if since is None:
            return True
        return (now - since.replace(tzinfo=None)).total_seconds() < grace

    if cluster.status == Status.CREATE_IN_PROGRESS and not cluster.stack_id:
        if cluster.ca_cert_ref:
            since = getattr(cluster, 'updated_at', None) or cluster.created_at
            if young(since, SEND_GRACE):
                return 'its stack'
        elif young(getattr(cluster, 'created_at', None), CERT_STEP_GRACE):
            return 'its stack'
    for ng in cluster.nodegroups:
        if (not ng.is_default and ng.status == Status.CREATE_IN_PROGRESS
                and not ng.stack_id
                and young(getattr(ng, 'created_at', None), SUBMIT_GRACE)):
            return 'the stack of nodegroup %s' % ng.name
    return None


def _lost_create_reason(cluster: Any) -> str:
    """Why a cluster being created has no stack, once no conductor can still send it."""
    if cluster.ca_cert_ref:
        # The status poll runs as Magnum's service user, which Heat lets read another
        # project's stack by id but not look it up by name: a stack Heat took just
        # before the conductor died is found only by the delete, with the user's token.
        return ('magnum-conductor stopped while the celtic driver was sending the '
                'cluster\'s stack to Heat, and no stack was recorded for it after %d s '
                '(one Heat took in that moment is found by name and removed by the '
                'delete): delete the cluster and create it again' % SEND_GRACE)
    return ('magnum-conductor stopped during Magnum\'s own certificate step of the '
            'create, before the celtic driver ran (no Heat stack exists for it): '
            'delete the cluster and create it again')


# Polls of one cluster must not overlap in this process (Magnum has no lock of its
# own; each poll runs in its own thread).
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class poll_lock:
    """Non-blocking per-cluster lock: ``acquired`` is False when a poll is running."""

    def __init__(self, cluster_uuid: str):
        with _locks_guard:
            self._lock = _locks.setdefault(cluster_uuid, threading.Lock())
        self.acquired = False

    def __enter__(self) -> 'poll_lock':
        self.acquired = self._lock.acquire(blocking=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.acquired:
            self._lock.release()


def _operation(name: str) -> Callable:
    """A hook that changes a cluster: it runs holding the cluster's lock (shared by
    every conductor: ``adapters.cluster_lock``), so it never overlaps a status poll
    or another operation on the same cluster; and whatever it raises becomes words a
    user can act on. Magnum writes ``str()`` of a hook's exception into the
    status_reason: a Magnum error (celtic's own, already worded for users) passes
    as it is, anything else (a database, Keystone or programming error, whose text
    may hold SQL, addresses or internals) is logged whole and replaced by what
    failed and what to do (``status.error_reason``)."""
    def decorate(hook: Callable) -> Callable:
        @functools.wraps(hook)
        def run(self, context, cluster, *args, **kwargs):
            try:
                with adapters.cluster_lock(cluster.uuid, OPERATION_LOCK_WAIT) as held:
                    if not held:
                        raise exception.MagnumException(
                            message=status.busy_reason(name, OPERATION_LOCK_WAIT))
                    return hook(self, context, cluster, *args, **kwargs)
            except exception.MagnumException:
                raise
            except Exception as error:
                LOG.exception('cluster %s: %s failed', cluster.uuid, name)
                raise exception.MagnumException(message=status.error_reason(
                    name, type(error).__module__ or ''))
        return run
    return decorate


class Driver(driver.Driver):
    """HA Kubernetes on Heat without Octavia (pacemaker VIPs, HAProxy proxies)."""

    @property
    def provides(self) -> list[dict[str, str]]:
        return [{'server_type': 'vm', 'os': distro, 'coe': 'kubernetes'}
                for distro in spec_mod.SUPPORTED_DISTROS]

    # ---- create -------------------------------------------------------------------

    @_operation('cluster create')
    def create_cluster(self, context, cluster, cluster_create_timeout):
        """Validate everything, then start the cluster's stack (does not wait)."""
        _claim_create(context, cluster)
        spec = adapters.cluster_spec(context, cluster)
        if cluster_create_timeout:
            spec = _with_timeout(spec, cluster_create_timeout)
        adapters.check_stack_size(spec)
        adapters.check_vendordata()
        inventory.check_cluster(context, cluster, spec)
        adapters.record_scaling_bounds(cluster, spec)
        request = req.cluster_request(
            spec, certs.cluster_pki(context, cluster), adapters.template_set(),
            CONF.celtic.create_timeout, certs.node_openstack_ca(),
            openstack_insecure=CONF.celtic.node_insecure)
        credential = _provide_credential(context, cluster, spec)
        try:
            cluster.stack_id = adapters.heat_client(context).create(
                request.create_kwargs())
        except heat_api.HeatError as error:
            if credential:
                _remove_credential(context, cluster)
            raise _user_error(error)
        cluster.status_reason = preflight.describe_build(spec)
        # saved at once (Magnum saves it again after this hook): a poll by another
        # conductor then finds the stack, and so does a delete after a crash here
        cluster.save()
        LOG.info('cluster %s: stack %s for %d masters, %d minions, %d proxies, '
                 '%d storage nodes', cluster.uuid, cluster.stack_id, spec.masters.count,
                 spec.minion_count, spec.proxies.count, spec.storage.count)

    # ---- status ---------------------------------------------------------------------

    def update_cluster_status(self, context, cluster, use_admin_ctx=False):
        """One GET per stack (two once Heat is done with it: then with its outputs); map
        it to the cluster and its nodegroups, and save."""
        with poll_lock(cluster.uuid) as lock:
            if not lock.acquired:
                return
            with adapters.cluster_lock(cluster.uuid) as held:
                if not held:
                    LOG.debug('cluster %s: another conductor is polling it or changing '
                              'it; not polled', cluster.uuid)
                    return
                self._poll(context, cluster)

    def _poll(self, context, cluster):
        """One poll, holding the cluster's lock."""
        found = cluster.status
        try:
            cluster.refresh()
        except exception.ClusterNotFound:
            # another conductor finished the delete and Magnum removed the record
            return
        if cluster.status not in POLLED:
            # Another conductor ended this operation (and Magnum there reported it,
            # removed a deleted cluster's certificates and records): leave this
            # conductor's copy as the job found it, so its job does none of it again.
            cluster.status = found
            return
        heat = adapters.heat_client(context, project_id=cluster.project_id)
        try:
            self._adopt_stacks(cluster, heat)
        except heat_api.HeatError as error:
            LOG.warning('cluster %s: status unchanged, %s', cluster.uuid, error)
            return
        submitting = _being_submitted(cluster)
        if submitting:
            LOG.debug('cluster %s: %s is still being sent to Heat; not polled',
                      cluster.uuid, submitting)
            return
        try:
            cluster_stack = heat.poll(
                cluster.stack_id, req.cluster_stack_name(cluster.name, cluster.uuid))
            pool_stacks = {ng.name: heat.poll(ng.stack_id, req.pool_stack_name(
                               cluster.name, cluster.uuid, ng.name))
                           for ng in adapters.iter_pool_nodegroups(cluster)}
        except heat_api.HeatRejected as error:
            # Not transient (a missing role, a wrong region): say so on the
            # cluster, whose status stays as it is.
            LOG.error('cluster %s: status unknown, %s', cluster.uuid, error)
            cluster.status_reason = ('status unknown: Magnum\'s service user '
                                     'cannot read the stack: %s' % error)
            cluster.save()
            return
        except heat_api.HeatError as error:
            LOG.warning('cluster %s: status unchanged, %s', cluster.uuid, error)
            return
        if (cluster.status == Status.UPDATE_IN_PROGRESS and cluster_stack is not None
                and cluster_stack.status == 'UPDATE_COMPLETE'
                and (cluster_stack.outputs or {}).get(out.MASTER_REMOVAL)):
            # the first update of a master shrink is done: send the second
            self._finish_master_removal(context, cluster, heat, cluster_stack)
            return
        result = status.cluster_status(cluster.status, cluster_stack,
                                       adapters.nodegroup_views(cluster),
                                       pool_stacks,
                                       CONF.celtic.heat_max_resources_per_stack,
                                       now=time.time())
        for nodegroup in adapters.apply_status(cluster, result):
            if adapters.destroy_nodegroup(nodegroup):
                LOG.info('cluster %s: nodegroup %s deleted', cluster.uuid,
                         nodegroup.name)
        if result.reason and result.status in (Status.CREATE_COMPLETE,
                                               Status.UPDATE_COMPLETE):
            # what was ignored or switched off stays visible (cluster show)
            cluster.status_reason = inventory.completion_notes(
                context, cluster, result.reason, _quiet_spec)
        if (cluster.status == Status.CREATE_FAILED and cluster_stack is None
                and not cluster.stack_id):
            cluster.status_reason = _lost_create_reason(cluster)
        if cluster.status == Status.DELETE_COMPLETE:
            certs.delete_leftover_certificates(context, cluster)
            if not cluster.ca_cert_ref:
                certs.delete_unsaved_certificates(cluster)
        cluster.save()

    @staticmethod
    def _adopt_stacks(cluster, heat) -> None:
        """Find by name the stacks whose ids Magnum never stored (a conductor that
        died between Heat's answer and saving the id), and store them.

        Heat looks a name up in the caller's project only: the delete (the user's
        token) finds such a stack; a status poll (Magnum's service user) finds it only
        when the cluster is in the service user's own project."""
        if not cluster.stack_id:
            found = heat.find(req.cluster_stack_name(cluster.name, cluster.uuid))
            if found is not None:
                LOG.info('cluster %s: its stack %s found by name', cluster.uuid,
                         found.id)
                cluster.stack_id = found.id
                cluster.save()
                for ng in cluster.nodegroups:
                    if ng.is_default and not ng.stack_id:
                        ng.stack_id = found.id
                        ng.save()
        for ng in cluster.nodegroups:
            if ng.is_default or ng.stack_id:
                continue
            found = heat.find(req.pool_stack_name(cluster.name, cluster.uuid, ng.name))
            if found is not None:
                LOG.info('cluster %s: the stack %s of nodegroup %s found by name',
                         cluster.uuid, found.id, ng.name)
                ng.stack_id = found.id
                ng.save()

    # ---- changes --------------------------------------------------------------------

    @_operation('cluster update')
    def update_cluster(self, context, cluster, scale_manager=None, rollback=False):
        """Legacy node_count PATCH: resize the default worker pool."""
        worker = cluster.default_ng_worker
        spec = adapters.cluster_spec(context, cluster)
        adapters.check_stack_size(spec, worker.node_count)
        self._resize(context, cluster, cluster.stack_id, worker.node_count, (), worker,
                     pool_stack=False, rollback=rollback)
        # Only once Heat took the update: on failure Magnum fails the cluster and
        # restores node_count, but would leave this status behind.
        worker.status = Status.UPDATE_IN_PROGRESS
        worker.save()
        _in_progress(cluster, Status.UPDATE_IN_PROGRESS)

    @_operation('cluster resize')
    def resize_cluster(self, context, cluster, resize_manager, node_count,
                       nodes_to_remove, nodegroup=None):
        """Resize a worker nodegroup; nodes_to_remove are Nova server UUIDs."""
        nodegroup = nodegroup or cluster.default_ng_worker
        # Saved before anything can fail: Magnum saved the nodegroup UPDATE_IN_PROGRESS
        # before this hook but the cluster only after it, and polls only clusters in
        # progress. A conductor killed in here would leave the nodegroup in progress
        # for good; so the poll looks at it, and fails a resize Heat never got
        # (status.LOST_RESIZE). A refusal below ends UPDATE_FAILED as before.
        _in_progress(cluster, Status.UPDATE_IN_PROGRESS)
        if nodegroup.role == 'master':
            self._resize_masters(context, cluster, node_count)
            _in_progress(cluster, Status.UPDATE_IN_PROGRESS)
            return
        pool_stack = adapters.has_own_stack(cluster, nodegroup)
        stack_id = adapters.stack_id_of(cluster, nodegroup)
        if not stack_id:
            raise exception.InvalidParameterValue(
                err='nodegroup %s has no Heat stack (its creation failed): delete it '
                    'and create it again' % nodegroup.name)
        if pool_stack:
            adapters.check_pool_size(node_count)
        else:
            adapters.check_stack_size(adapters.cluster_spec(context, cluster),
                                      node_count)
        self._resize(context, cluster, stack_id, node_count, nodes_to_remove or (),
                     nodegroup, pool_stack=pool_stack)
        _in_progress(cluster, Status.UPDATE_IN_PROGRESS)

    def validate_master_resize(self, node_count):
        """Magnum's API asks this before it accepts a master resize: a count celtic
        offers, or refused naming the field and what is allowed (nothing changed)."""
        error = spec_mod.master_resize_error(node_count)
        if error:
            raise exception.InvalidParameterValue(err=error)

    def _resize_masters(self, context, cluster, count):
        """Change the master count (doc/master-resize.md). Growth: one PATCH of the
        cluster's stack with the count and one address port per master; the new
        masters join the control plane, the running ones take them into corosync and
        HAProxy when Heat updates their server metadata. A shrink: the first of two
        updates (:meth:`_remove_masters`)."""
        heat = adapters.heat_client(context)
        try:
            state = heat.get(cluster.stack_id)
        except heat_api.HeatError as error:
            raise _user_error(error)
        if state is None:
            raise exception.InvalidParameterValue(
                err='the masters\' Heat stack %s does not exist' % cluster.stack_id)
        try:
            current = int(state.parameters.get('master_count'))
        except (TypeError, ValueError):
            current = None
        error = spec_mod.master_resize_error(count, current)
        if error:
            raise exception.InvalidParameterValue(err=error)
        if out.MASTER_MEMBERS not in (state.outputs or {}):
            raise exception.InvalidParameterValue(
                err='the master count of this cluster cannot change: it was created by '
                    'an earlier celtic release, whose masters do not take new members '
                    '(create a new cluster with the master count it needs)')
        spec = adapters.cluster_spec(context, cluster, warn=False)
        adapters.check_stack_size(spec)
        pending = (state.outputs or {}).get(out.MASTER_REMOVAL) or ''
        if current is not None and count < current:
            self._remove_masters(context, cluster, heat, state, spec, current, count)
            return
        if pending:
            raise exception.InvalidParameterValue(
                err='node_count of the master nodegroup: the removal of masters %s is '
                    'not finished; run the resize to %d again to finish it first'
                    % (pending, current - len(pending.split())))
        if current is not None and count > current:
            inventory.check_masters(context, cluster, spec, count - current)
        parameters, files = req.master_resize_request(spec, adapters.template_set(),
                                                      state.parameters)
        try:
            heat.update(cluster.stack_id, parameters, files=files)
        except heat_api.HeatError as error:
            raise _user_error(error)
        LOG.info('cluster %s: masters %s -> %d', cluster.uuid, current, count)

    def _remove_masters(self, context, cluster, heat, state, spec, current, count):
        """The first update of a master shrink: the masters that stay are told the
        shorter member list and master 0 takes the leaving ones (the highest indices)
        out of Kubernetes, etcd, corosync and HAProxy, then reports; the status poll
        sends the second update, which deletes their servers
        (:meth:`_finish_master_removal`). Refused while a master is unhealthy."""
        outputs = state.outputs or {}
        if out.MASTER_REMOVAL not in outputs:
            raise exception.InvalidParameterValue(
                err='node_count of the master nodegroup: %d -> %d is refused: this '
                    'cluster was created by an earlier celtic release, whose stack '
                    'cannot remove masters (allowed: %d or more)' % (current, count,
                                                                     current))
        addresses = [str(a) for a in outputs.get(out.MASTER_ADDRESSES) or []]
        if len(addresses) != current:
            raise exception.InvalidParameterValue(
                err='node_count of the master nodegroup: the stack lists %d master '
                    'addresses for %d masters; its last update did not complete: run '
                    'the previous resize again first' % (len(addresses), current))
        leaving = addresses[count:]
        pending = outputs.get(out.MASTER_REMOVAL) or ''
        if pending and pending.split() != leaving:
            raise exception.InvalidParameterValue(
                err='node_count of the master nodegroup: the removal of masters %s is '
                    'not finished; run the resize to %d again to finish it first'
                    % (pending, current - len(pending.split())))
        unhealthy = status.unhealthy_masters(
            getattr(cluster, 'health_status', None),
            getattr(cluster, 'health_status_reason', None))
        if unhealthy:
            raise exception.InvalidParameterValue(
                err='node_count of the master nodegroup: %d -> %d is refused while a '
                    'master is unhealthy (health_status_reason: %s): a master removal '
                    'needs every master that stays up; nothing was changed'
                    % (current, count, unhealthy))
        parameters, files = req.master_removal_request(spec, adapters.template_set(),
                                                       current, leaving)
        try:
            heat.update(cluster.stack_id, parameters, files=files)
        except heat_api.HeatError as error:
            raise _user_error(error)
        LOG.info('cluster %s: masters %d -> %d: %s leave first', cluster.uuid, current,
                 count, ' '.join(leaving))

    def _finish_master_removal(self, context, cluster, heat, stack) -> bool:
        """The second update of a master shrink, sent by the status poll once the
        first is UPDATE_COMPLETE (master 0 reported the leaving masters out): the
        count goes down and Heat deletes their servers and ports. True when it was
        sent (the cluster stays UPDATE_IN_PROGRESS)."""
        leaving = str((stack.outputs or {}).get(out.MASTER_REMOVAL) or '').split()
        try:
            current = int(stack.parameters.get('master_count'))
        except (TypeError, ValueError):
            LOG.error('cluster %s: masters %s were removed, but the stack shows no '
                      'master_count', cluster.uuid, ' '.join(leaving))
            return False
        count = current - len(leaving)
        departed = req.number_parameter(stack.parameters.get('master_departed'))
        spec = adapters.cluster_spec(context, cluster, warn=False)
        parameters, files = req.master_resize_request(
            spec, adapters.template_set(), stack.parameters, count,
            finish_removal=departed + len(leaving))
        try:
            heat.update(stack.id, parameters, files=files)
        except heat_api.HeatError as error:
            # tried again at the next poll: the stack is still UPDATE_COMPLETE with
            # master_removal set
            LOG.warning('cluster %s: the servers of the removed masters %s are not '
                        'deleted yet: %s', cluster.uuid, ' '.join(leaving), error)
            return False
        LOG.info('cluster %s: masters %s are out of etcd and corosync; %d -> %d, '
                 'deleting their servers', cluster.uuid, ' '.join(leaving), current,
                 count)
        cluster.status_reason = status.removal_reason(leaving, finishing=True)
        cluster.save()
        return True

    def _resize(self, context, cluster, stack_id, count, nodes_to_remove, nodegroup,
                pool_stack, rollback=False):
        """Re-render the pool's servers for ``count`` members (minus the nodes named)
        and PATCH the stack with them and the new count.

        A stack an earlier release created (its secrets in Heat) gets this release's
        whole template instead, its wait handles kept (doc/security.md, "A cluster
        created by an older version")."""
        nodegroup_name = nodegroup.name
        heat = adapters.heat_client(context)
        try:
            state = heat.get(stack_id)
        except heat_api.HeatError as error:
            raise _user_error(error)
        if state is None:
            raise exception.InvalidParameterValue(
                err='nodegroup %s: its Heat stack %s does not exist' % (nodegroup_name,
                                                                        stack_id))
        nodes_to_remove, unknown, valid = expand.resolve_members(
            state.outputs, nodes_to_remove, pool_stack)
        if unknown:
            message = ('nodes_to_remove: %s %s of nodegroup %s (its nodes: %s; nothing '
                       'was changed)'
                       % (', '.join(unknown), 'is not a node' if len(unknown) == 1
                          else 'are not nodes', nodegroup_name, ', '.join(valid) or 'none'))
            raise inventory.refused('cluster %s: resize refused' % cluster.uuid, message)
        current = expand.server_count(state.outputs, pool_stack)
        if count > current:
            spec = adapters.cluster_spec(context, cluster, warn=False)
            pool = (adapters.pool_spec(nodegroup, spec) if pool_stack
                    else spec.default_pool)
            inventory.check_workers(context, cluster, spec, pool, count - current,
                                    new_pool=False)
        parameters, files = req.scale_request(adapters.template_set(), state.outputs,
                                              count, nodes_to_remove, pool_stack)
        try:
            if req.created_with_secrets(state.parameters):
                request = req.migration_request(
                    self._legacy_request(context, cluster, nodegroup, pool_stack, heat),
                    parameters, files)
                LOG.info('cluster %s: stack %s was created with its secrets in Heat; '
                         'this resize moves it to templates without them',
                         cluster.uuid, stack_id)
                heat.replace(stack_id, request.create_kwargs(), rollback)
            else:
                heat.update(stack_id, parameters, rollback, files=files)
        except heat_api.HeatError as error:
            raise _user_error(error)

    def _legacy_request(self, context, cluster, nodegroup, pool_stack, heat):
        """This release's whole request for a stack an earlier release created, its
        wait handles staying HEAT_SIGNAL."""
        spec = adapters.cluster_spec(context, cluster)
        pki = certs.cluster_pki(context, cluster)
        if not pool_stack:
            return req.cluster_request(
                spec, pki, adapters.template_set(), CONF.celtic.create_timeout,
                certs.node_openstack_ca(), openstack_insecure=CONF.celtic.node_insecure,
                legacy_signals=True)
        outputs = adapters.outputs_or_fail(heat.get(cluster.stack_id),
                                           'nodegroup %s' % nodegroup.name)
        return req.pool_request(
            spec, adapters.pool_spec(nodegroup, spec), pki, outputs,
            adapters.template_set(), CONF.celtic.create_timeout, certs.node_openstack_ca(),
            openstack_insecure=CONF.celtic.node_insecure, legacy_signals=True)

    def _update(self, context, stack_id, parameters, rollback=False):
        try:
            adapters.heat_client(context).update(stack_id, parameters, rollback)
        except heat_api.HeatError as error:
            raise _user_error(error)

    @_operation('cluster upgrade')
    def upgrade_cluster(self, context, cluster, cluster_template, max_batch_size,
                        nodegroup, scale_manager=None, rollback=False):
        """Check the upgrade against kubeadm's rules and what an upgrade may change;
        one that changes nothing is done (an empty Heat update, so the status flow
        ends it UPDATE_COMPLETE) and records the template. The rolling upgrade itself
        is not built (doc/upgrade.md): any change is refused, and Magnum (on a
        NotSupported) leaves the cluster as it was and says why."""
        spec = adapters.cluster_spec(context, cluster, warn=False)
        own_stack = adapters.has_own_stack(cluster, nodegroup)
        try:
            if own_stack:
                # magnum-api lets such a nodegroup take only the cluster's template
                pool = adapters.pool_spec(nodegroup, spec)
                changes: tuple[str, ...] = (
                    ('image %s -> %s' % (pool.image, spec.image),)
                    if pool.image != spec.image else ())
            else:
                target = adapters.cluster_spec(context, cluster, template=cluster_template,
                                               warn=False)
                changes = spec_mod.upgrade_changes(
                    spec, target, spec_mod.upgrade_kube_tag(
                        cluster_template.labels, adapters.operator_labels()),
                    cluster.cluster_template.labels, cluster_template.labels)
        except (spec_mod.LabelError, exception.InvalidParameterValue) as error:
            raise _refused('%s cannot be upgraded to template %s: %s' % (
                _upgrade_target(cluster, nodegroup, own_stack), cluster_template.name,
                error))
        if changes:
            raise _refused(
                '%s cannot be upgraded to template %s yet, celtic\'s rolling upgrade is '
                'not built: create a new cluster from the template and move the '
                'workloads; the upgrade would change %s (doc/upgrade)' % (
                    _upgrade_target(cluster, nodegroup, own_stack),
                    cluster_template.name, '; '.join(changes)))
        stack_id = nodegroup.stack_id if own_stack else cluster.stack_id
        LOG.info('cluster %s: upgrade to template %s changes nothing (kube_tag %s, '
                 'image %s): an empty Heat update ends it', cluster.uuid,
                 cluster_template.uuid, spec.node_values['kube_tag'], spec.image)
        self._update(context, stack_id, {})
        if not own_stack:
            cluster.cluster_template_id = cluster_template.uuid

    # ---- delete ---------------------------------------------------------------------

    def pre_delete_cluster(self, context, cluster):
        """Nothing to release first: celtic creates no Octavia load balancers; the
        proxies that serve LoadBalancer Services are in the cluster's stack."""
        return None

    @_operation('cluster delete')
    def delete_cluster(self, context, cluster):
        """Delete the cluster's application credential; start deleting every stack of
        the cluster (polling finishes the job).

        A stack whose id Magnum never stored (its conductor died right after Heat
        took it) is found by its name, so it is not left behind."""
        self.pre_delete_cluster(context, cluster)
        _remove_credential(context, cluster)
        for nodegroup in cluster.nodegroups:
            nodegroup.status = Status.DELETE_IN_PROGRESS
            nodegroup.save()
        heat = adapters.heat_client(context)
        try:
            self._adopt_stacks(cluster, heat)
            for nodegroup in adapters.iter_pool_nodegroups(cluster):
                heat.delete(nodegroup.stack_id)
            if not heat.delete(cluster.stack_id):
                LOG.info('cluster %s: no Heat stack to delete', cluster.uuid)
        except heat_api.HeatError as error:
            raise _user_error(error)
        _in_progress(cluster, Status.DELETE_IN_PROGRESS)

    # ---- nodegroups -----------------------------------------------------------------

    @_operation('nodegroup create')
    def create_nodegroup(self, context, cluster, nodegroup):
        """A worker nodegroup gets a stack of its own (minion.yaml)."""
        if nodegroup.role == 'master':
            raise exception.NotSupported(operation='Adding a master nodegroup')
        spec = adapters.cluster_spec(context, cluster)
        pool = adapters.pool_spec(nodegroup, spec)
        adapters.check_new_pool_name(cluster, nodegroup)
        adapters.check_pool_size(pool.count, nodegroup.max_node_count)
        adapters.check_vendordata()
        inventory.check_workers(context, cluster, spec, pool, pool.count, new_pool=True)
        heat = adapters.heat_client(context)
        try:
            outputs = adapters.outputs_or_fail(heat.get(cluster.stack_id),
                                               'nodegroup %s' % nodegroup.name)
            request = req.pool_request(
                spec, pool, certs.cluster_pki(context, cluster), outputs,
                adapters.template_set(), CONF.celtic.create_timeout,
                certs.node_openstack_ca(),
                openstack_insecure=CONF.celtic.node_insecure)
            nodegroup.stack_id = heat.create(request.create_kwargs())
        except heat_api.HeatError as error:
            raise _user_error(error)
        nodegroup.save()

    @_operation('nodegroup update')
    def update_nodegroup(self, context, cluster, nodegroup):
        """Labels and taints for the pool's future nodes (min/max are Magnum's own)."""
        if nodegroup.role == 'master':
            # Only min/max can change on masters (Magnum's API refuses labels and
            # taints there): nothing in Heat to change, and the minion pool's
            # settings must not be overwritten with the masters'.
            return
        spec = adapters.cluster_spec(context, cluster)
        pool = adapters.pool_spec(nodegroup, spec)
        if not adapters.has_own_stack(cluster, nodegroup):
            self._update(context, cluster.stack_id,
                         {'minion_pool_settings': pool.settings()})
            return
        try:
            outputs = adapters.outputs_or_fail(
                adapters.heat_client(context).get(cluster.stack_id),
                'nodegroup %s' % nodegroup.name)
        except heat_api.HeatError as error:
            raise _user_error(error)
        params = req.pool_node_params(spec, pool, outputs,
                                      openstack_insecure=CONF.celtic.node_insecure)
        self._update(context, nodegroup.stack_id, {'params': params})

    @_operation('nodegroup delete')
    def delete_nodegroup(self, context, cluster, nodegroup):
        """Delete the nodegroup's stack; the poll destroys the row when it is gone."""
        nodegroup.status = Status.DELETE_IN_PROGRESS
        nodegroup.save()
        if adapters.has_own_stack(cluster, nodegroup) and nodegroup.stack_id:
            try:
                adapters.heat_client(context).delete(nodegroup.stack_id)
            except heat_api.HeatError as error:
                raise _user_error(error)

    # ---- certificates, monitoring ---------------------------------------------------

    def rotate_ca_certificate(self, context, cluster):
        """Not supported. Magnum already replaced the CA refs on ``cluster``; put the
        old ones back (and drop the new certificates) so the cluster keeps working."""
        certs.restore_ca_refs(context, cluster)
        raise exception.NotSupported(
            operation='Rotating the CA of a celtic cluster')

    def rotate_credential(self, context, cluster):
        """``openstack coe credential rotate``: a new application credential becomes
        the cluster's (celtic-vendordata serves it to the masters from now on, and
        their refresh picks it up); the one it replaces is deleted at the next
        rotation or with the cluster (doc/autoscaling.md)."""
        try:
            appcred.rotate(context, adapters.keystone_session(context), cluster,
                           certs.cluster_seed(context, cluster))
        except appcred.CredentialError as error:
            raise exception.InvalidParameterValue(err=str(error))

    def get_monitor(self, context, cluster):
        """Magnum's own Kubernetes health monitor (the API VIP, Magnum's admin cert)."""
        return k8s_monitor.K8sMonitor(context, cluster)

    def get_scale_manager(self, context, osclient, cluster):
        """celtic removes the nodes Magnum names; it needs no scale manager."""
        return None

    # ---- federation (no caller in Magnum) -------------------------------------------

    def create_federation(self, context, federation):
        raise NotImplementedError('celtic does not support federations')

    def update_federation(self, context, federation):
        raise NotImplementedError('celtic does not support federations')

    def delete_federation(self, context, federation):
        raise NotImplementedError('celtic does not support federations')


def _quiet_spec(context, cluster):
    return adapters.cluster_spec(context, cluster, warn=False)


def _claim_create(context, cluster) -> None:
    """The first step of the driver's create, holding the cluster's lock.

    Magnum 23 has just stored the cluster's four certificates and set their refs on
    this object only (it saves them after the hook): save them now, so that a
    conductor dying from here on leaves them referenced (the delete removes them) and
    a poll can tell that the driver's create began (:func:`_being_submitted`). A poll
    that gave the create up while Magnum's step was slow (CREATE_FAILED) is final:
    nothing is sent to Heat, and Magnum saves the refs with the failure."""
    from magnum import objects
    stored = objects.Cluster.get_by_uuid(context, cluster.uuid)
    if stored.status != Status.CREATE_IN_PROGRESS:
        raise exception.MagnumException(
            message='the create was given up before the celtic driver started it: the '
                    'cluster is %s (a status poll ends a create whose certificate step '
                    'took more than %d s); delete the cluster and create it again'
                    % (stored.status, CERT_STEP_GRACE))
    cluster.save()


def _in_progress(cluster: Any, new_status: str) -> None:
    """Save the status Magnum sets after the hook returns, while the hook still holds
    the cluster's lock: a poll by another conductor in between would otherwise map
    the stack against the old status and write that back over the new one."""
    cluster.status = new_status
    cluster.status_reason = None
    cluster.save()


def _provide_credential(context, cluster, spec) -> bool:
    """The cluster's application credential, when its labels ask for a component
    that calls OpenStack; True when one was made."""
    if not spec.needs_credential:
        return False
    try:
        appcred.provide(context, adapters.keystone_session(context), cluster,
                        certs.cluster_seed(context, cluster))
    except appcred.CredentialError as error:
        raise exception.InvalidParameterValue(err=str(error))
    return True


def _remove_credential(context, cluster) -> None:
    """Delete the cluster's application credential, if it has one; never raises (a
    credential left over is logged with its id)."""
    try:
        seed = certs.cluster_seed(context, cluster)
    except Exception as error:  # no CA left: nothing can decrypt the record
        LOG.warning('cluster %s: its CA is unreadable (%s); its application credential '
                    'record is dropped without deleting the credential',
                    cluster.uuid, type(error).__name__)
        seed = None
    try:
        appcred.remove(context, adapters.keystone_session(context),
                       adapters.service_session(), cluster, seed)
    except Exception as error:  # never block a delete
        LOG.error('cluster %s: its application credential was not deleted: %s',
                  cluster.uuid, type(error).__name__)


def _upgrade_target(cluster: Any, nodegroup: Any, own_stack: bool) -> str:
    """What an upgrade applies to, in a refusal's words."""
    if own_stack:
        return 'nodegroup %s of cluster %s' % (nodegroup.name, cluster.name)
    return 'cluster %s' % cluster.name


def _refused(message: str) -> exception.NotSupported:
    """A refusal Magnum passes to the user, changing nothing on the cluster
    (NotSupported: the conductor neither fails the cluster nor saves it). Magnum's API
    gives the CLI the text up to its first full stop (the whole text is the error's
    detail): the message says what to do before any version or file name."""
    LOG.warning('refused: %s', message)
    return exception.NotSupported(message=message.replace('%', '%%'))


def _with_timeout(spec: spec_mod.ClusterSpec, minutes: int) -> spec_mod.ClusterSpec:
    import dataclasses
    return dataclasses.replace(spec, create_timeout_minutes=int(minutes))
