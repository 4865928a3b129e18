#!/usr/bin/python3
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

"""celtic-autoscaler-provider: cluster-autoscaler's external gRPC cloud provider for one
celtic cluster (doc/autoscaling.md): node groups from Magnum's nodegroups, nodes from
celtic's stack outputs, every change through Magnum's resize API with the cluster's
application credential."""

# One node group per worker nodegroup of the cluster that has a max_node_count. Its
# nodes are the servers of the nodegroup's servers stack (minion_nodes_stack or
# nodes_stack, then server_ids and names); a Kubernetes node is matched by its
# providerID (openstack:///<server uuid>, which celtic's kubelets register with) or
# else by its name. The credential file is read again whenever a token is needed (a
# rotated credential is picked up); the secret and tokens are never logged. Needs
# python3 with grpcio and protobuf (python3-grpcio, python3-protobuf); the service's
# descriptors are built at run time from the table below (the interface:
# doc/autoscaler-externalgrpc.proto).

from __future__ import annotations

import argparse
import calendar
import concurrent.futures
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
from google.protobuf import any_pb2
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import duration_pb2
from google.protobuf import message_factory
from google.protobuf import timestamp_pb2

LOG = logging.getLogger('celtic-autoscaler-provider')

PACKAGE = 'clusterautoscaler.cloudprovider.v1.externalgrpc'
SERVICE = PACKAGE + '.CloudProvider'
PROTO_FILE = 'celtic/externalgrpc.proto'
PROVIDER_ID_PREFIX = 'openstack:///'
#: Magnum's API microversion: nodegroups need >= 1.9, resize >= 1.7
MAGNUM_VERSION = 'container-infra 1.10'
DEFAULT_LISTEN = '127.0.0.1:8086'
CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane'

# ---- the interface: messages (field name, number, type) and methods ---------------------
# A type is a scalar (string, int32, double, bool, bytes), a message of this package, a
# google.protobuf one, 'map<string, T>', or an enum ('enum InstanceStatus.InstanceState');
# a leading '*' makes the field repeated.
_WKT = {'google.protobuf.Any': any_pb2, 'google.protobuf.Timestamp': timestamp_pb2,
        'google.protobuf.Duration': duration_pb2}
_SCALARS = {
    'string': descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    'int32': descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    'double': descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    'bool': descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    'bytes': descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}
_NODE = 'ExternalGrpcNode'
_TIME = 'google.protobuf.Timestamp'
_DURATION = 'google.protobuf.Duration'
_OPTIONS = 'NodeGroupAutoscalingOptions'
MESSAGES: dict[str, tuple[tuple[str, int, str], ...]] = {
    'NodeGroup': (('id', 1, 'string'), ('minSize', 2, 'int32'), ('maxSize', 3, 'int32'),
                  ('debug', 4, 'string')),
    _NODE: (('providerID', 1, 'string'), ('name', 2, 'string'),
            ('labels', 3, 'map<string, string>'),
            ('annotations', 4, 'map<string, string>')),
    'NodeGroupsRequest': (),
    'NodeGroupsResponse': (('nodeGroups', 1, '*NodeGroup'),),
    'NodeGroupForNodeRequest': (('node', 1, _NODE),),
    'NodeGroupForNodeResponse': (('nodeGroup', 1, 'NodeGroup'),),
    'PricingNodePriceRequest': (('node', 1, _NODE), ('startTimestamp', 4, _TIME),
                                ('endTimestamp', 5, _TIME)),
    'PricingNodePriceResponse': (('price', 1, 'double'),),
    'PricingPodPriceRequest': (('pod_bytes', 4, 'bytes'), ('startTimestamp', 5, _TIME),
                               ('endTimestamp', 6, _TIME)),
    'PricingPodPriceResponse': (('price', 1, 'double'),),
    'GPULabelRequest': (),
    'GPULabelResponse': (('label', 1, 'string'),),
    'GetAvailableGPUTypesRequest': (),
    'GetAvailableGPUTypesResponse': (('gpuTypes', 1, 'map<string, google.protobuf.Any>'),),
    'CleanupRequest': (),
    'CleanupResponse': (),
    'RefreshRequest': (),
    'RefreshResponse': (),
    'NodeGroupTargetSizeRequest': (('id', 1, 'string'),),
    'NodeGroupTargetSizeResponse': (('targetSize', 1, 'int32'),),
    'NodeGroupIncreaseSizeRequest': (('delta', 1, 'int32'), ('id', 2, 'string')),
    'NodeGroupIncreaseSizeResponse': (),
    'NodeGroupDeleteNodesRequest': (('nodes', 1, '*' + _NODE), ('id', 2, 'string')),
    'NodeGroupDeleteNodesResponse': (),
    'NodeGroupDecreaseTargetSizeRequest': (('delta', 1, 'int32'), ('id', 2, 'string')),
    'NodeGroupDecreaseTargetSizeResponse': (),
    'NodeGroupNodesRequest': (('id', 1, 'string'),),
    'NodeGroupNodesResponse': (('instances', 1, '*Instance'),),
    'Instance': (('id', 1, 'string'), ('status', 2, 'InstanceStatus')),
    'InstanceStatus': (('instanceState', 1, 'enum InstanceStatus.InstanceState'),
                       ('errorInfo', 2, 'InstanceErrorInfo')),
    'InstanceErrorInfo': (('errorCode', 1, 'string'), ('errorMessage', 2, 'string'),
                          ('instanceErrorClass', 3, 'int32')),
    'NodeGroupTemplateNodeInfoRequest': (('id', 1, 'string'),),
    'NodeGroupTemplateNodeInfoResponse': (('nodeBytes', 2, 'bytes'),),
    _OPTIONS: (('scaleDownUtilizationThreshold', 1, 'double'),
               ('scaleDownGpuUtilizationThreshold', 2, 'double'),
               ('zeroOrMaxNodeScaling', 6, 'bool'),
               ('ignoreDaemonSetsUtilization', 7, 'bool'),
               ('scaleDownUnneededDuration', 8, _DURATION),
               ('scaleDownUnreadyDuration', 9, _DURATION),
               ('MaxNodeProvisionDuration', 10, _DURATION)),
    'NodeGroupAutoscalingOptionsRequest': (('id', 1, 'string'), ('defaults', 2, _OPTIONS)),
    'NodeGroupAutoscalingOptionsResponse': (('nodeGroupAutoscalingOptions', 1, _OPTIONS),),
}
#: enums nested in a message: message -> (enum name, ((value name, number), ...))
ENUMS = {'InstanceStatus': ('InstanceState', (('unspecified', 0), ('instanceRunning', 1),
                                              ('instanceCreating', 2),
                                              ('instanceDeleting', 3)))}
#: the service's methods, in the interface's order: method -> (request, response)
METHODS: dict[str, tuple[str, str]] = {
    'NodeGroups': ('NodeGroupsRequest', 'NodeGroupsResponse'),
    'NodeGroupForNode': ('NodeGroupForNodeRequest', 'NodeGroupForNodeResponse'),
    'PricingNodePrice': ('PricingNodePriceRequest', 'PricingNodePriceResponse'),
    'PricingPodPrice': ('PricingPodPriceRequest', 'PricingPodPriceResponse'),
    'GPULabel': ('GPULabelRequest', 'GPULabelResponse'),
    'GetAvailableGPUTypes': ('GetAvailableGPUTypesRequest', 'GetAvailableGPUTypesResponse'),
    'Cleanup': ('CleanupRequest', 'CleanupResponse'),
    'Refresh': ('RefreshRequest', 'RefreshResponse'),
    'NodeGroupTargetSize': ('NodeGroupTargetSizeRequest', 'NodeGroupTargetSizeResponse'),
    'NodeGroupIncreaseSize': ('NodeGroupIncreaseSizeRequest',
                              'NodeGroupIncreaseSizeResponse'),
    'NodeGroupDeleteNodes': ('NodeGroupDeleteNodesRequest', 'NodeGroupDeleteNodesResponse'),
    'NodeGroupDecreaseTargetSize': ('NodeGroupDecreaseTargetSizeRequest',
                                    'NodeGroupDecreaseTargetSizeResponse'),
    'NodeGroupNodes': ('NodeGroupNodesRequest', 'NodeGroupNodesResponse'),
    'NodeGroupTemplateNodeInfo': ('NodeGroupTemplateNodeInfoRequest',
                                  'NodeGroupTemplateNodeInfoResponse'),
    'NodeGroupGetOptions': ('NodeGroupAutoscalingOptionsRequest',
                            'NodeGroupAutoscalingOptionsResponse'),
}


def _add_field(message, name: str, number: int, kind: str) -> None:
    F = descriptor_pb2.FieldDescriptorProto
    field = message.field.add(name=name, number=number, label=F.LABEL_OPTIONAL)
    if kind.startswith('*'):
        field.label = F.LABEL_REPEATED
        kind = kind[1:]
    if kind.startswith('map<'):
        value = kind[4:-1].split(',', 1)[1].strip()
        entry_name = name[0].upper() + name[1:] + 'Entry'
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        _add_field(entry, 'key', 1, 'string')
        _add_field(entry, 'value', 2, value)
        field.label = F.LABEL_REPEATED
        field.type = F.TYPE_MESSAGE
        field.type_name = '.%s.%s.%s' % (PACKAGE, message.name, entry_name)
    elif kind in _SCALARS:
        field.type = _SCALARS[kind]
    elif kind.startswith('enum '):
        field.type = F.TYPE_ENUM
        field.type_name = '.%s.%s' % (PACKAGE, kind[5:])
    elif kind in _WKT:
        field.type = F.TYPE_MESSAGE
        field.type_name = '.' + kind
    else:
        field.type = F.TYPE_MESSAGE
        field.type_name = '.%s.%s' % (PACKAGE, kind)


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The interface as a FileDescriptorProto (what protoc would make of the .proto)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE, package=PACKAGE, syntax='proto3',
        dependency=sorted(m.DESCRIPTOR.name for m in _WKT.values()))
    for name, fields in MESSAGES.items():
        message = proto.message_type.add(name=name)
        if name in ENUMS:
            enum_name, values = ENUMS[name]
            enum = message.enum_type.add(name=enum_name)
            for value_name, number in values:
                enum.value.add(name=value_name, number=number)
        for field in fields:
            _add_field(message, *field)
    service = proto.service.add(name=SERVICE.rsplit('.', 1)[1])
    for method, (request, response) in METHODS.items():
        service.method.add(name=method, input_type='.%s.%s' % (PACKAGE, request),
                           output_type='.%s.%s' % (PACKAGE, response))
    return proto


def _message_classes() -> dict[str, type]:
    """A class per message, in a pool of its own (protobuf 3.21 as Debian 12 ships it,
    and the newer runtimes alike)."""
    pool = descriptor_pool.DescriptorPool()
    for module in _WKT.values():
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file_descriptor_proto().SerializeToString())
    make = getattr(message_factory, 'GetMessageClass', None)
    factory = None if make else message_factory.MessageFactory(pool)
    classes = {}
    for name in MESSAGES:
        descriptor = pool.FindMessageTypeByName('%s.%s' % (PACKAGE, name))
        classes[name] = make(descriptor) if make else factory.GetPrototype(descriptor)
    return classes


PB = _message_classes()


# ---- OpenStack, stdlib only -------------------------------------------------------------

class CloudError(Exception):
    """An OpenStack call failed; ``status`` is its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class OpenStack:
    """A Keystone token from the application credential file, the service catalog, and
    JSON requests to Magnum and Heat with it."""

    def __init__(self, credential_file: str, cafile: str = '', insecure: bool = False,
                 timeout: float = 30.0):
        self.credential_file = credential_file
        self.timeout = timeout
        if insecure:
            self._tls = ssl._create_unverified_context()
        else:
            self._tls = ssl.create_default_context(cafile=cafile or None)
        self._token = None
        self._expires = 0.0
        self._catalog = []
        self._region = ''
        self._lock = threading.Lock()

    def _credential(self) -> dict:
        with open(self.credential_file) as f:
            doc = json.load(f)
        for key in ('auth_url', 'application_credential_id',
                    'application_credential_secret'):
            if not doc.get(key):
                raise CloudError('%s has no %s' % (self.credential_file, key))
        return doc

    def _authenticate(self) -> None:
        doc = self._credential()
        url = doc['auth_url'].rstrip('/')
        if not url.endswith('/v3'):
            url += '/v3'
        body = {'auth': {'identity': {
            'methods': ['application_credential'],
            'application_credential': {'id': doc['application_credential_id'],
                                       'secret': doc['application_credential_secret']}}}}
        status, headers, answer = self._http('POST', url + '/auth/tokens', body)
        if status != 201:
            raise CloudError('Keystone refused the cluster\'s application credential %s '
                             '(HTTP %d)' % (doc['application_credential_id'], status),
                             status)
        token = answer['token']
        self._token = headers.get('X-Subject-Token')
        expires = token.get('expires_at') or ''
        try:
            self._expires = calendar.timegm(time.strptime(expires[:19],
                                                          '%Y-%m-%dT%H:%M:%S'))
        except ValueError:
            self._expires = time.time() + 600
        self._catalog = token.get('catalog') or []
        self._region = doc.get('region_name') or ''
        LOG.info('authenticated with application credential %s',
                 doc['application_credential_id'])

    def endpoint(self, service_type: str) -> str:
        for service in self._catalog:
            if service.get('type') != service_type:
                continue
            for endpoint in service.get('endpoints') or ():
                if endpoint.get('interface') != 'public':
                    continue
                if self._region and endpoint.get('region_id', endpoint.get('region')) \
                        not in (self._region, None):
                    continue
                return endpoint['url'].rstrip('/')
        raise CloudError('the service catalog has no public %s endpoint%s'
                         % (service_type, ' in region ' + self._region
                            if self._region else ''))

    def _http(self, method: str, url: str, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header('Accept', 'application/json')
        if data is not None:
            request.add_header('Content-Type', 'application/json')
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout,
                                        context=self._tls) as answer:
                status, got, text = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, got, text = error.code, error.headers, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise CloudError('%s %s: %s' % (method, _safe(url), error))
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = {'raw': text[:300].decode(errors='replace')}
        return status, got, parsed

    def request(self, method: str, service_type: str, path: str, body=None,
                headers=None, expect=(200,)):
        """``method`` on ``service_type``'s endpoint + ``path``; the JSON answer, or
        CloudError with the service's own message. A 401 re-authenticates once."""
        for attempt in (1, 2):
            with self._lock:
                if self._token is None or time.time() > self._expires - 120:
                    self._authenticate()
                token, base = self._token, self.endpoint(service_type)
            status, _, answer = self._http(method, base + path, body,
                                           dict(headers or {}, **{'X-Auth-Token': token}))
            if status == 401 and attempt == 1:
                with self._lock:
                    self._token = None
                continue
            if status not in expect:
                raise CloudError('%s %s: HTTP %d: %s' % (method, path, status,
                                                         _fault(answer)), status)
            return answer
        raise AssertionError('unreachable')


def _safe(url: str) -> str:
    return urllib.parse.urlsplit(url)._replace(query='').geturl()


def _fault(answer) -> str:
    """The message in a Magnum, Heat or Keystone error body."""
    if isinstance(answer, dict):
        errors = answer.get('errors')
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get('detail') or errors[0].get('title') or errors[0])
        for key in ('faultstring', 'explanation', 'message'):
            if answer.get(key):
                return str(answer[key])
        for value in answer.values():
            if isinstance(value, dict) and value.get('message'):
                return str(value['message'])
    return str(answer)[:300]


# ---- celtic's names (magnum_celtic.spec / request: kept equal by a unit test) ------------

def _dns_label(text: str, limit: int) -> str:
    return re.sub(r'[^a-z0-9-]+', '-', text.lower())[:limit].strip('-')


def cluster_stack_name(cluster_name: str, cluster_uuid: str) -> str:
    prefix = _dns_label(cluster_name or '', 20) or 'celtic-' + cluster_uuid[:8]
    return 'celtic-%s-%s' % (prefix, cluster_uuid[:8])


def pool_stack_name(cluster_name: str, cluster_uuid: str, nodegroup: str) -> str:
    return '%s-%s' % (cluster_stack_name(cluster_name, cluster_uuid),
                      _dns_label(nodegroup, 20) or 'pool')


def nested_stack_path(reference: str) -> str:
    _, marker, path = str(reference).partition(':stacks/')
    return path if marker else str(reference)


def server_id_of(provider_id: str) -> str:
    """The server UUID in a providerID (``openstack:///<uuid>``, any ``.../<uuid>``)."""
    return provider_id.rstrip('/').rsplit('/', 1)[-1] if provider_id else ''


# ---- the provider -----------------------------------------------------------------------

class Group:
    """One worker nodegroup as the autoscaler sees it."""

    def __init__(self, doc: dict, servers: list[tuple[str, str]]):
        self.name = doc['name']
        self.min = int(doc.get('min_node_count') or 0)
        self.max = int(doc['max_node_count'])
        self.target = int(doc.get('node_count') or 0)
        self.status = doc.get('status') or ''
        #: (server name, server uuid) of every member that has a server
        self.servers = servers

    def message(self):
        return PB['NodeGroup'](id=self.name, minSize=self.min, maxSize=self.max,
                               debug='%s: %d node(s) in [%d, %d], %s' % (
                                   self.name, self.target, self.min, self.max, self.status))

    def find(self, node) -> str | None:
        """The server UUID of ``node`` (an ExternalGrpcNode) in this group, or None."""
        wanted = server_id_of(node.providerID)
        for name, uuid in self.servers:
            if wanted and uuid == wanted:
                return uuid
        if not wanted:
            for name, uuid in self.servers:
                if name and name.lower() == (node.name or '').lower():
                    return uuid
        return None


class Provider:
    """The CloudProvider service: node groups from Magnum, nodes from celtic's stacks,
    every change through Magnum's resize API."""

    def __init__(self, cloud: OpenStack, cluster_uuid: str, refresh_seconds: float = 30):
        self.cloud = cloud
        self.cluster_uuid = cluster_uuid
        self.refresh_seconds = refresh_seconds
        self._cluster_name = None
        self._groups: dict[str, Group] = {}
        self._read_at = 0.0
        self._lock = threading.RLock()
        self._skipped: set[str] = set()

    # -- reading ----------------------------------------------------------------------
    def _magnum(self, method, path, body=None, expect=(200,)):
        return self.cloud.request(method, 'container-infra',
                                  '/clusters/%s%s' % (self.cluster_uuid, path), body,
                                  {'OpenStack-API-Version': MAGNUM_VERSION}, expect)

    def _stack_outputs(self, name_or_path: str) -> dict:
        stack = self.cloud.request('GET', 'orchestration', '/stacks/%s' % name_or_path,
                                   expect=(200,))['stack']
        return {o['output_key']: o.get('output_value') for o in stack.get('outputs') or ()}

    def _servers(self, doc: dict) -> list[tuple[str, str]]:
        if self._cluster_name is None:
            self._cluster_name = self._magnum('GET', '')['name'] or ''
        if doc.get('is_default'):
            stack = cluster_stack_name(self._cluster_name, self.cluster_uuid)
            key = 'minion_nodes_stack'
        else:
            stack = pool_stack_name(self._cluster_name, self.cluster_uuid, doc['name'])
            key = 'nodes_stack'
        reference = self._stack_outputs(stack).get(key)
        if not reference:
            raise CloudError('stack %s has no output %s yet' % (stack, key))
        outputs = self._stack_outputs(nested_stack_path(reference))
        ids = outputs.get('server_ids') or []
        names = outputs.get('names') or []
        names = list(names) + [''] * (len(ids) - len(names))
        return [(n or '', i) for n, i in zip(names, ids) if i]

    def _read_group(self, name: str) -> Group | None:
        doc = self._magnum('GET', '/nodegroups/%s' % urllib.parse.quote(name, safe=''))
        if doc.get('role') == 'master' or doc.get('max_node_count') is None:
            return None
        return Group(doc, self._servers(doc))

    def refresh(self, force: bool = False) -> dict[str, Group]:
        with self._lock:
            if not force and time.monotonic() - self._read_at < self.refresh_seconds:
                return self._groups
            groups = {}
            for item in self._magnum('GET', '/nodegroups')['nodegroups']:
                if item.get('role') == 'master':
                    continue
                group = self._read_group(item['name'])
                if group is None:
                    if item['name'] not in self._skipped:
                        LOG.info('nodegroup %s has no max_node_count: not autoscaled',
                                 item['name'])
                        self._skipped.add(item['name'])
                    continue
                groups[group.name] = group
            self._groups = groups
            self._read_at = time.monotonic()
            return groups

    def _group(self, name: str, context, fresh: bool = False) -> Group:
        with self._lock:
            group = None if fresh else self.refresh().get(name)
            if group is None:
                group = self._read_group(name)
                if group is not None:
                    self._groups[name] = group
        if group is None:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          'no autoscaled nodegroup %s in cluster %s' % (name,
                                                                        self.cluster_uuid))
        return group

    def _resize(self, group: Group, count: int, remove=(), context=None) -> None:
        body = {'node_count': count, 'nodegroup': group.name}
        if remove:
            body['nodes_to_remove'] = list(remove)
        self._magnum('POST', '/actions/resize', body, expect=(200, 202))
        LOG.info('resize of nodegroup %s: %d -> %d%s', group.name, group.target, count,
                 ', removing %s' % ', '.join(remove) if remove else '')
        with self._lock:
            group.target = count
            self._groups[group.name] = group
            self._read_at = 0.0   # the next Refresh reads the new state

    # -- the RPCs -----------------------------------------------------------------------
    def NodeGroups(self, request, context):
        return PB['NodeGroupsResponse'](
            nodeGroups=[g.message() for g in self.refresh().values()])

    def NodeGroupForNode(self, request, context):
        groups = self.refresh()
        # a master is never autoscaled: no fresh read for it
        master = CONTROL_PLANE_LABEL in request.node.labels
        for attempt in (1, 2):
            for group in groups.values():
                if group.find(request.node):
                    return PB['NodeGroupForNodeResponse'](nodeGroup=group.message())
            if attempt == 1 and not master and time.monotonic() - self._read_at > 5:
                groups = self.refresh(force=True)   # a node newer than the last read
            else:
                break
        # masters and anything else: not autoscaled (empty id)
        return PB['NodeGroupForNodeResponse'](nodeGroup=PB['NodeGroup']())

    def NodeGroupTargetSize(self, request, context):
        return PB['NodeGroupTargetSizeResponse'](
            targetSize=self._group(request.id, context).target)

    def NodeGroupIncreaseSize(self, request, context):
        if request.delta <= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'delta must be positive, got %d' % request.delta)
        group = self._group(request.id, context, fresh=True)
        count = group.target + request.delta
        if count > group.max:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'nodegroup %s: %d + %d is above its max_node_count %d'
                          % (group.name, group.target, request.delta, group.max))
        self._resize(group, count)
        return PB['NodeGroupIncreaseSizeResponse']()

    def NodeGroupDeleteNodes(self, request, context):
        group = self._group(request.id, context, fresh=True)
        chosen = []
        for node in request.nodes:
            uuid = group.find(node)
            if uuid is None:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              'node %s (%s) is not a server of nodegroup %s'
                              % (node.name, node.providerID or 'no providerID',
                                 group.name))
            if uuid not in chosen:
                chosen.append(uuid)
        if not chosen:
            return PB['NodeGroupDeleteNodesResponse']()
        count = group.target - len(chosen)
        if count < group.min:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          'nodegroup %s: removing %d of %d nodes is below its '
                          'min_node_count %d' % (group.name, len(chosen), group.target,
                                                 group.min))
        self._resize(group, count, chosen)
        return PB['NodeGroupDeleteNodesResponse']()

    def NodeGroupDecreaseTargetSize(self, request, context):
        if request.delta >= 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          'delta must be negative, got %d' % request.delta)
        group = self._group(request.id, context, fresh=True)
        count = group.target + request.delta
        if count < len(group.servers):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          'nodegroup %s: target %d would be below its %d existing '
                          'servers (nodes are removed by name: DeleteNodes)'
                          % (group.name, count, len(group.servers)))
        if count < group.min:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          'nodegroup %s: target %d is below its min_node_count %d'
                          % (group.name, count, group.min))
        self._resize(group, count)
        return PB['NodeGroupDecreaseTargetSizeResponse']()

    def NodeGroupNodes(self, request, context):
        group = self._group(request.id, context)
        running = PB['InstanceStatus'](instanceState=1)
        return PB['NodeGroupNodesResponse'](instances=[
            PB['Instance'](id=PROVIDER_ID_PREFIX + uuid, status=running)
            for _, uuid in group.servers])

    def Refresh(self, request, context):
        self.refresh()
        return PB['RefreshResponse']()

    def Cleanup(self, request, context):
        return PB['CleanupResponse']()

    def GPULabel(self, request, context):
        return PB['GPULabelResponse'](label='')

    def GetAvailableGPUTypes(self, request, context):
        return PB['GetAvailableGPUTypesResponse']()

    def _unimplemented(self, what: str):
        def method(request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, what)
        return method

    def handlers(self) -> dict:
        """The RPC implementations; the ones celtic does not offer answer UNIMPLEMENTED,
        which the autoscaler takes as 'not implemented' (defaults apply)."""
        missing = {
            'PricingNodePrice': 'celtic has no pricing',
            'PricingPodPrice': 'celtic has no pricing',
            'NodeGroupTemplateNodeInfo': 'no node templates: a nodegroup scales from '
                                         'its existing nodes, not from zero',
            'NodeGroupGetOptions': 'the autoscaler\'s own options apply',
        }
        return {name: getattr(self, name, None) or self._unimplemented(missing[name])
                for name in METHODS}


def _guarded(provider: Provider, method):
    """An RPC whose OpenStack failures become gRPC errors with the service's message."""
    def call(request, context):
        try:
            return method(request, context)
        except CloudError as error:
            LOG.warning('%s', error)
            code = (grpc.StatusCode.UNAUTHENTICATED if error.status in (401, 403)
                    else grpc.StatusCode.FAILED_PRECONDITION if error.status in (400, 409)
                    else grpc.StatusCode.NOT_FOUND if error.status == 404
                    else grpc.StatusCode.UNAVAILABLE)
            context.abort(code, str(error))
    return call


def generic_handler(provider: Provider):
    handlers = {}
    for name, implementation in provider.handlers().items():
        request, response = METHODS[name]
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            _guarded(provider, implementation),
            request_deserializer=PB[request].FromString,
            response_serializer=PB[response].SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


class Client:
    """A client of the service (tests, benchmarks, an operator's checks): one method per
    RPC, taking and returning this module's message classes."""

    def __init__(self, channel, timeout: float = 60.0):
        self.timeout = timeout
        for name, (request, response) in METHODS.items():
            setattr(self, name, self._method(channel, name, request, response))

    def _method(self, channel, name, request, response):
        call = channel.unary_unary('/%s/%s' % (SERVICE, name),
                                   request_serializer=PB[request].SerializeToString,
                                   response_deserializer=PB[response].FromString)

        def invoke(message=None, **fields):
            return call(message if message is not None else PB[request](**fields),
                        timeout=self.timeout)
        return invoke


def serve(provider: Provider, listen: str, tls_dir: str = '', workers: int = 4):
    """Start the server on ``listen``; with ``tls_dir``, mutual TLS (server.crt,
    server.key and the ca.crt that signed the autoscaler's client certificate)."""
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((generic_handler(provider),))
    if tls_dir:
        def read(name):
            with open(os.path.join(tls_dir, name), 'rb') as f:
                return f.read()
        credentials = grpc.ssl_server_credentials(
            [(read('server.key'), read('server.crt'))], root_certificates=read('ca.crt'),
            require_client_auth=True)
        port = server.add_secure_port(listen, credentials)
    else:
        port = server.add_insecure_port(listen)
    if not port:
        raise SystemExit('cannot listen on %s' % listen)
    server.start()
    return server, port


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--credential', required=True,
                        help='the application credential JSON file')
    parser.add_argument('--cluster-uuid', required=True)
    parser.add_argument('--listen', default=DEFAULT_LISTEN,
                        help='host:port (default %(default)s)')
    parser.add_argument('--tls-dir', default='',
                        help='server.crt, server.key, ca.crt: mutual TLS')
    parser.add_argument('--os-cacert', default='',
                        help='CA bundle of the OpenStack endpoints')
    parser.add_argument('--insecure', action='store_true',
                        help='do not verify the OpenStack endpoints\' certificates')
    parser.add_argument('--refresh-seconds', type=float, default=30.0,
                        help='how long a read of the nodegroups serves (default '
                             '%(default)s)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    cafile = args.os_cacert if args.os_cacert and os.path.getsize(args.os_cacert) else ''
    cloud = OpenStack(args.credential, cafile=cafile, insecure=args.insecure)
    provider = Provider(cloud, args.cluster_uuid, args.refresh_seconds)
    server, port = serve(provider, args.listen, args.tls_dir)
    LOG.info('serving cluster %s on %s (port %d, %s)', args.cluster_uuid, args.listen,
             port, 'mutual TLS' if args.tls_dir else 'plaintext')
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop(5).wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
