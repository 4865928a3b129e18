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

"""The driver's Heat client: python-heatclient on a keystoneauth session.

Magnum 2026.2 ships no Heat client, so celtic owns this. Every Heat failure leaves here
as one of three errors a caller can act on:

- :class:`HeatRejected`: Heat refused the request (bad parameters, limits); the
  message says what to change and is safe to show the user;
- :class:`HeatBusy`: the stack is in the middle of another operation;
- :class:`HeatUnavailable`: Heat or Keystone could not be reached; callers that only
  poll keep the cluster's state unchanged and try again later.

A stack that does not exist is not an error: :meth:`Heat.get` returns None and
:meth:`Heat.delete` returns False.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Mapping

from heatclient import client as heat_client
from heatclient import exc as heat_exc
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from oslo_log import log as logging

from magnum_celtic import conf
from magnum_celtic import outputs as outputs_mod
from magnum_celtic.outputs import StackState

LOG = logging.getLogger(__name__)
CONF = conf.CONF


class HeatError(Exception):
    """Base of the errors this module raises."""


class HeatRejected(HeatError):
    """Heat refused the request; the message is meant for the user."""


class HeatBusy(HeatError):
    """The stack is busy with another operation."""


class HeatUnavailable(HeatError):
    """Heat (or Keystone on the way to it) could not be reached."""


def _message(error: Exception) -> str:
    detail = getattr(error, 'error', None)
    if isinstance(detail, dict):
        inner = detail.get('error') or {}
        text = inner.get('message') or detail.get('explanation') or ''
        if text:
            return str(text)
    text = str(error)
    return re.sub(r'^ERROR:\s*', '', text).strip()


def friendly(message: str) -> str:
    """Heat's wording made actionable (:func:`outputs.friendly` with this Magnum's
    ``[celtic] heat_max_resources_per_stack``)."""
    return outputs_mod.friendly(message, CONF.celtic.heat_max_resources_per_stack)


def _translate(error: Exception, what: str) -> HeatError:
    if isinstance(error, heat_exc.HTTPBadRequest):
        return HeatRejected('Heat rejected the %s: %s' % (what, friendly(_message(error))))
    if isinstance(error, heat_exc.HTTPNotFound):
        return HeatRejected('Heat has no such stack for the %s: %s'
                            % (what, _message(error)))
    if isinstance(error, heat_exc.HTTPConflict):
        return HeatBusy('Heat stack is busy: %s' % _message(error))
    if isinstance(error, (heat_exc.HTTPForbidden, heat_exc.HTTPUnauthorized)):
        return HeatRejected('Heat refused the %s: %s' % (what, _message(error)))
    LOG.warning('Heat is unavailable for the %s: %s', what, error)
    return HeatUnavailable('Heat is unavailable for the %s: %s' % (what, _why(error)))


def _why(error: Exception) -> str:
    """Why Heat could not answer, in words (the exception's own text, with its
    addresses and library internals, goes to the log only)."""
    if isinstance(error, ks_exc.ConnectTimeout):
        return 'it did not answer in time'
    if isinstance(error, (ks_exc.ConnectFailure, heat_exc.CommunicationError)):
        return 'it could not be reached'
    if isinstance(error, ks_exc.Unauthorized):
        return 'Keystone did not accept Magnum\'s credentials'
    if isinstance(error, (ks_exc.DiscoveryFailure, ks_exc.EndpointNotFound)):
        return 'Keystone could not be reached or lists no Heat endpoint'
    if isinstance(error, (heat_exc.HTTPInternalServerError,
                          ks_exc.InternalServerError)):
        return 'it failed on an internal error (%s)' % outputs_mod.scrub(
            _message(error), 'heat-api')
    if isinstance(error, (heat_exc.HTTPException, ks_exc.HttpError)):
        message = _message(error)
        code = getattr(error, 'code', None) or getattr(error, 'http_status', None)
        if not message or message == 'None':
            return 'it answered HTTP %s' % (code or 'an error')
        return 'it answered %s' % outputs_mod.scrub(message, 'heat-api')
    return 'it could not be reached'


_TRANSIENT = (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure,
              ks_exc.EndpointNotFound, ks_exc.ServiceUnavailable, ks_exc.GatewayTimeout,
              ks_exc.BadGateway, ks_exc.InternalServerError, ks_exc.Unauthorized,
              heat_exc.CommunicationError, heat_exc.HTTPServiceUnavailable,
              heat_exc.HTTPInternalServerError, heat_exc.HTTPBadGateway)


def _epoch(text: Any) -> float | None:
    """Heat's ``2026-12-07T06:49:25Z`` (UTC) as seconds since the epoch."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.strptime(text.rstrip('Z')[:19], '%Y-%m-%dT%H:%M:%S')
    except ValueError:
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _timing(stack: Any) -> dict[str, Any]:
    """When the stack's current operation started (an update's or delete's
    updated_time, else its creation_time) and its timeout."""
    status = getattr(stack, 'stack_status', '') or ''
    started = None
    if not status.startswith('CREATE'):
        started = _epoch(getattr(stack, 'updated_time', None))
    started = started or _epoch(getattr(stack, 'creation_time', None))
    timeout = getattr(stack, 'timeout_mins', None)
    return {'started': started,
            'timeout_minutes': int(timeout) if isinstance(timeout, (int, float))
            and timeout > 0 else None}


def _state(stack: Any, **fields: Any) -> StackState:
    """StackState of a heatclient stack: its id, name, status and reason, and
    ``fields``."""
    return StackState(id=stack.id, name=getattr(stack, 'stack_name', ''),
                      status=stack.stack_status,
                      reason=getattr(stack, 'stack_status_reason', '') or '', **fields)


def _output_values(stack: Any) -> dict[str, Any]:
    return {o['output_key']: o.get('output_value')
            for o in (getattr(stack, 'outputs', None) or [])}


def orchestration_endpoint(session: ks_session.Session, project_id: str | None) -> str:
    """The Heat endpoint, pointed at ``project_id`` when given.

    The catalog's URL carries the caller's project (``/v1/<project>``). Magnum's status
    poll runs as its service user, whose project is not the cluster's: the URL must
    name the cluster's project (Heat lets admins read stacks of other projects).
    """
    endpoint = session.get_endpoint(service_type='orchestration',
                                    interface=CONF.heat_client.endpoint_type,
                                    region_name=CONF.heat_client.region_name)
    if not endpoint:
        raise HeatUnavailable('no orchestration endpoint in the Keystone catalog '
                              '(check [heat_client] region_name and endpoint_type)')
    if project_id:
        endpoint = re.sub(r'/v1/[^/]+/?$', '/v1/%s' % project_id, endpoint.rstrip('/'))
    return endpoint


def _tls_session(base: ks_session.Session) -> ks_session.Session:
    opts = CONF.heat_client
    if not (opts.ca_file or opts.cert_file or opts.insecure):
        return base
    verify: Any = False if opts.insecure else (opts.ca_file or base.verify)
    cert = (opts.cert_file, opts.key_file) if opts.cert_file else base.cert
    return ks_session.Session(auth=base.auth, verify=verify, cert=cert,
                              timeout=base.timeout)


class Heat:
    """One Heat endpoint seen through one Keystone session."""

    def __init__(self, session: ks_session.Session, project_id: str | None = None,
                 client: Any = None, bounded_reads: bool = True):
        """``bounded_reads``: reads stop at ``[celtic] heat_read_timeout`` (the
        driver's); False: only the session's own timeout holds (celtic-vendordata,
        whose one read of a whole tree at Heat's cap takes Heat tens of seconds)."""
        self._session = _tls_session(session)
        self._project_id = project_id
        self._client = client
        self._reader = client
        self._bounded_reads = bounded_reads
        self._endpoint: str | None = None

    def _client_on(self, session: ks_session.Session) -> Any:
        if self._endpoint is None:
            try:
                self._endpoint = orchestration_endpoint(self._session, self._project_id)
            except _TRANSIENT as error:
                LOG.warning('cannot find Heat: %s', error)
                raise HeatUnavailable('cannot find Heat: %s' % (
                    error if isinstance(error, ks_exc.EndpointNotFound)
                    else _why(error)))
        return heat_client.Client(
            CONF.heat_client.api_version, session=session,
            endpoint_override=self._endpoint, service_type='orchestration')

    @property
    def client(self) -> Any:
        """heatclient for what changes a stack (never cut short: Heat may have done
        it by the time an answer times out)."""
        if self._client is None:
            self._client = self._client_on(self._session)
        return self._client

    @property
    def reader(self) -> Any:
        """heatclient for reads, each bounded by ``[celtic] heat_read_timeout``: a
        heat-engine that dies while it answers a GET leaves heat-api waiting for its
        rpc_response_timeout (5 minutes in the lab), and the status poll with it,
        holding the cluster's lock; a read that times out is tried at the next poll."""
        if self._reader is None:
            seconds = CONF.celtic.heat_read_timeout if self._bounded_reads else 0
            if seconds and self._session.timeout:
                # the session's own timeout ([keystone_auth] timeout) still holds
                seconds = min(seconds, self._session.timeout)
            self._reader = self.client if not seconds else self._client_on(
                ks_session.Session(auth=self._session.auth, verify=self._session.verify,
                                   cert=self._session.cert, timeout=seconds))
        return self._reader

    def create(self, create_kwargs: Mapping[str, Any]) -> str:
        """Create a stack (``create_kwargs``: heatclient's ``stacks.create`` keyword
        arguments, ``StackRequest.create_kwargs()``); returns its id without waiting."""
        name = create_kwargs.get('stack_name')
        try:
            created = self.client.stacks.create(**create_kwargs)
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'stack %s' % name)
        stack_id = created['stack']['id']
        LOG.info('Heat stack %s (%s) create started', name, stack_id)
        return stack_id

    def update(self, stack_id: str, parameters: Mapping[str, Any],
               rollback: bool = False, timeout_mins: int | None = None,
               files: Mapping[str, str] | None = None) -> None:
        """Change some parameters of a stack, keeping its template and the rest;
        ``files`` replace those of the same name (Heat merges them into the stack's)."""
        kwargs: dict[str, Any] = {'existing': True, 'parameters': dict(parameters),
                                  'disable_rollback': not rollback}
        if files:
            kwargs['files'] = dict(files)
        if timeout_mins:
            kwargs['timeout_mins'] = timeout_mins
        try:
            self.client.stacks.update(stack_id, **kwargs)
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'update of stack %s' % stack_id)
        LOG.info('Heat stack %s update started (%s)', stack_id,
                 ', '.join(sorted(parameters)))

    def replace(self, stack_id: str, create_kwargs: Mapping[str, Any],
                rollback: bool = False) -> None:
        """Update a stack to a whole new request (``create_kwargs`` as for
        :meth:`create`): its template, files, environments and every parameter
        (parameters the new template lacks are dropped, which a PATCH update cannot
        do)."""
        kwargs = dict(create_kwargs)
        kwargs.pop('stack_name', None)
        kwargs['disable_rollback'] = not rollback
        try:
            self.client.stacks.update(stack_id, **kwargs)
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'update of stack %s' % stack_id)
        LOG.info('Heat stack %s update to a new template started', stack_id)

    def delete(self, stack_id: str | None) -> bool:
        """Start deleting a stack; False when there is no such stack."""
        if not stack_id:
            return False
        try:
            self.client.stacks.delete(stack_id)
        except heat_exc.HTTPNotFound:
            return False
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'delete of stack %s' % stack_id)
        LOG.info('Heat stack %s delete started', stack_id)
        return True

    def get(self, stack_id: str | None, name: str | None = None,
            outputs: bool = True) -> StackState | None:
        """The stack, with its outputs unless ``outputs`` is False; None when it does
        not exist.

        With the stack's ``name`` it is one request to Heat's canonical URL
        (``/stacks/<name>/<id>``); by id alone Heat answers with a redirect there,
        which doubles the requests of every status poll. A name that does not match
        (a stack named by an older release) falls back to the id.

        Resolving the outputs makes heat-engine load every nested stack the outputs
        name and read each node's address, so a status poll asks without them
        (:meth:`poll`).
        """
        if not stack_id:
            return None
        try:
            if name:
                try:
                    stack = self.reader.stacks.get('%s/%s' % (name, stack_id),
                                                   resolve_outputs=outputs)
                except heat_exc.HTTPNotFound:
                    stack = self.reader.stacks.get(stack_id, resolve_outputs=outputs)
            else:
                stack = self.reader.stacks.get(stack_id, resolve_outputs=outputs)
        except heat_exc.HTTPNotFound:
            return None
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'status of stack %s' % stack_id)
        if getattr(stack, 'stack_status', '') == 'DELETE_COMPLETE':
            return None
        # heat-api leaves the outputs out when it is told not to resolve them
        values = _output_values(stack)
        if outputs:
            try:
                values = outputs_mod.with_pool_outputs(values, self._outputs_of)
            except (heat_exc.HTTPException, *_TRANSIENT) as error:
                raise _translate(error, 'outputs of stack %s' % stack_id)
        return _state(stack, outputs=values,
                      parameters=dict(getattr(stack, 'parameters', None) or {}),
                      **_timing(stack))

    def find(self, name: str) -> StackState | None:
        """The stack called ``name`` (without outputs); None when there is none.

        For a stack whose id Magnum never stored: the conductor that created it died
        between Heat's answer and saving the id."""
        try:
            stack = self.reader.stacks.get(name, resolve_outputs=False)
        except heat_exc.HTTPNotFound:
            return None
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'look-up of stack %s' % name)
        if getattr(stack, 'stack_status', '') == 'DELETE_COMPLETE':
            return None
        return _state(stack, outputs={}, parameters={})

    def _outputs_of(self, path: str) -> dict[str, Any] | None:
        """The resolved outputs of a nested stack (``<name>/<id>``); None when gone."""
        try:
            return _output_values(self.reader.stacks.get(path, resolve_outputs=True))
        except heat_exc.HTTPNotFound:
            return None

    def poll(self, stack_id: str | None, name: str | None = None) -> StackState | None:
        """The stack for a status poll: without outputs while Heat is still working
        on it (one cheap request per poll), with them once it is not (a second
        request, once per operation). Magnum's own Heat poller did the same."""
        state = self.get(stack_id, name, outputs=False)
        if state is None or state.status.endswith('_IN_PROGRESS'):
            return state
        return self.get(state.id, state.name or name, outputs=True)

    def files(self, stack_id: str, name: str | None = None) -> dict[str, str] | None:
        """The files the stack was created or last updated with (``GET
        /stacks/<name>/<id>/files``: every file of the request, Heat merging a PATCH's
        into the stack's); None when the stack does not exist."""
        paths = (['%s/%s' % (name, stack_id)] if name else []) + [stack_id]
        for path in paths:
            try:
                return dict(self.reader.stacks.files(path) or {})
            except heat_exc.HTTPNotFound:
                continue
            except (heat_exc.HTTPException, *_TRANSIENT) as error:
                raise _translate(error, 'files of stack %s' % stack_id)
        return None

    def resources(self, stack_id: str, name: str | None = None,
                  nested_depth: int = 0) -> list[dict[str, Any]] | None:
        """One resource listing of a stack tree (rows as heat-api returns them, with
        their ``links``); None when the stack does not exist. By ``<name>/<id>`` when
        the name is known (no redirect), by id when that name does not match."""
        paths = (['%s/%s' % (name, stack_id)] if name else []) + [stack_id]
        for path in paths:
            try:
                rows = self.reader.resources.list(path, nested_depth=nested_depth)
                return [row.to_dict() for row in rows]
            except heat_exc.HTTPNotFound:
                continue
            except (heat_exc.HTTPException, *_TRANSIENT) as error:
                raise _translate(error, 'resource list of stack %s' % stack_id)
        return None

    def signal(self, stack_name: str, stack_id: str, resource_name: str,
               data: Mapping[str, Any]) -> bool:
        """Signal a resource (a wait condition handle); False when it is gone."""
        try:
            self.client.resources.signal('%s/%s' % (stack_name, stack_id),
                                         resource_name, data=dict(data))
        except heat_exc.HTTPNotFound:
            return False
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'signal of %s in stack %s' % (resource_name, stack_id))
        return True

    def signal_ids(self, stack_name: str, stack_id: str,
                   resource_name: str) -> set[str] | None:
        """The ids of the signals a wait condition handle has recorded (its metadata's
        keys); None when it is gone. heat-api answers a signal before heat-engine has
        written it, so this is how a sender learns it was recorded."""
        try:
            metadata = self.reader.resources.metadata('%s/%s' % (stack_name, stack_id),
                                                      resource_name)
        except heat_exc.HTTPNotFound:
            return None
        except (heat_exc.HTTPException, *_TRANSIENT) as error:
            raise _translate(error, 'metadata of %s in stack %s'
                             % (resource_name, stack_id))
        return {str(key) for key in metadata} if isinstance(metadata, dict) else set()
