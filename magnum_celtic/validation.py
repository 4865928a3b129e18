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

"""Heat's own validator over every stack the driver can render.

``magnum-celtic validate`` runs this. It renders the cluster stack for every
combination of the feature environments (floating IPs, existing network, proxies,
storage), each with the template conditions both ways (boot volume, availability
zone, key pair, an empty worker pool), plus a nodegroup's own stack, and hands each
request to openstack-heat's ``Stack.validate()`` in-process, merged the way heat-engine
merges it. Heat needs no service for that once the look-ups of images, flavors and
networks are answered locally (the only stand-ins here).

Heat does not check ``get_attr`` against the outputs of a nested *template*, so a
static check does that on top: every ``get_attr`` on a template resource (or a group of
them) must name an output of that template.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from types import SimpleNamespace
from typing import Any, Iterator

import yaml

from magnum_celtic import sample
from magnum_celtic import outputs as out
from magnum_celtic import request as req
from magnum_celtic.request import StackRequest
from magnum_celtic.templates import TemplateSet

GROUP_ATTRIBUTES = {'refs', 'refs_map', 'attributes', 'removed_rsrc_list', 'show',
                    'OS::stack_id'}
SAMPLE_OUTPUTS = {out.FIXED_NETWORK: 'net-id', out.FIXED_SUBNET: 'subnet-id',
                  out.MINION_SECURITY_GROUPS: ['sg-cluster', 'sg-k8s', 'sg-minion'],
                  # cluster_facts is a node settings document, not outputs
                  out.CLUSTER_FACTS: {'api_vip': '10.0.0.5', 'master_addresses':
                                      ['10.0.0.11', '10.0.0.12', '10.0.0.13']}}


@dataclasses.dataclass
class Combination:
    name: str
    request: StackRequest


@dataclasses.dataclass
class Failure:
    combination: str
    error: str


def combinations(templates: TemplateSet) -> Iterator[Combination]:
    """Every stack request shape the driver can send."""
    pki = sample.sample_pki()
    for fip, existing, proxies, storage, variant in itertools.product(
            (True, False), (False, True), (2, 0), (3, 0), (False, True)):
        labels = {'master_lb_floating_ip_enabled': str(fip).lower(),
                  'proxy_count': str(proxies), 'storage_count': str(storage)}
        fields: dict[str, Any] = {}
        if existing:
            fields.update(fixed_network='private', fixed_subnet='private-subnet')
        if variant:
            labels.update(boot_volume_size='20', boot_volume_type='ssd',
                          availability_zone='nova', storage_volume_type='ssd')
            fields['network_driver'] = 'calico'
        spec = sample.sample_spec(labels=labels, minions=0 if variant else 3,
                                  template=fields)
        if variant:
            spec = dataclasses.replace(spec, ssh_key_name='')
        name = '%s fip=%s existing_network=%s proxies=%d storage=%d' % (
            'variant' if variant else 'base', fip, existing, proxies, storage)
        yield Combination(name, req.cluster_request(spec, pki, templates, 60))
    spec = sample.sample_spec()
    for count in (2, 0):
        pool = dataclasses.replace(spec.default_pool, nodegroup='gpu', pool_name='gpu',
                                   count=count)
        yield Combination('nodegroup stack count=%d' % count,
                          req.pool_request(spec, pool, pki, SAMPLE_OUTPUTS,
                                           templates, 60))


class HeatValidator:
    """openstack-heat's template validation, in this process."""

    def __init__(self) -> None:
        from oslo_config import cfg
        from heat.common import config  # noqa: F401  (registers Heat's options)
        from heat.common import context, messaging
        from heat.engine import resources
        cfg.CONF([], project='heat', default_config_files=[])
        cfg.CONF.set_override('connection', 'sqlite://', group='database')
        resources.initialise()
        messaging.setup('fake://', optional=True)
        self._answer_lookups_locally()
        self.context = context.RequestContext.from_dict({
            'tenant_id': 'celtic', 'project_id': 'celtic', 'username': 'celtic',
            'roles': ['admin', 'member'], 'auth_token': 'validate', 'is_admin': True})

    @staticmethod
    def _answer_lookups_locally() -> None:
        # Custom constraints (glance.image, nova.flavor, neutron.network, ...) and the
        # server's image/flavor/limits checks ask the cloud; here nothing answers.
        from heat.engine import constraints, resource
        from heat.engine.clients.os import glance, nova
        constraints.BaseCustomConstraint.validate = (
            lambda self, value, ctx, *a, **kw: True)
        resource.Resource.is_service_available = classmethod(
            lambda cls, ctx: (True, None))
        nova.NovaClientPlugin.is_version_supported = lambda self, version: True
        nova.NovaClientPlugin.get_flavor = (
            lambda self, flavor: SimpleNamespace(ram=4096, disk=40, vcpus=2))
        nova.NovaClientPlugin.absolute_limits = lambda self: {
            'maxServerMeta': 128, 'maxPersonality': 5, 'maxPersonalitySize': 10240}
        glance.GlanceClientPlugin.get_image = (
            lambda self, image: SimpleNamespace(status='active', min_ram=0, min_disk=0))

    def validate(self, request: StackRequest) -> None:
        """Raise Heat's own exception when Heat would reject the request."""
        from heat.common import environment_util, template_format
        from heat.engine import environment, stack as heat_stack, template
        files = dict(request.files)
        tmpl = template.Template(template_format.parse(request.template), files=files)
        params = {'parameters': dict(request.parameters), 'resource_registry': {},
                  'parameter_defaults': {}}
        environment_util.merge_environments(list(request.environment_files), files,
                                            params, tmpl.all_param_schemata(files))
        tmpl.env = environment.Environment(params)
        heat_stack.Stack(self.context, request.stack_name, tmpl).validate()
        static_check(request)


def static_check(request: StackRequest) -> None:
    """Every get_attr on a template resource names one of that template's outputs."""
    registry: dict[str, str] = {}
    for env_name in request.environment_files:
        env = yaml.safe_load(request.files[env_name]) or {}
        registry.update(env.get('resource_registry') or {})
    sources = dict(request.files)
    sources['(root)'] = request.template
    parsed_files: dict[str, Any] = {}

    def parse(name: str) -> Any:
        # Each file once: yaml parsing dominated validate's run time.
        if name not in parsed_files:
            parsed_files[name] = yaml.safe_load(sources[name]) or {}
        return parsed_files[name]

    for name in sources:
        if not name.endswith('.yaml') and name != '(root)':
            continue
        parsed = parse(name)
        if not isinstance(parsed, dict) or 'heat_template_version' not in parsed:
            continue
        resources = parsed.get('resources') or {}
        for ref in _get_attrs(parsed):
            if not ref or ref[0] not in resources or len(ref) < 2:
                continue
            rtype, group = _nested_type(resources[ref[0]], registry)
            if rtype is None or rtype not in request.files:
                continue
            attribute = ref[1]
            if not isinstance(attribute, str):
                continue
            if group and attribute in GROUP_ATTRIBUTES:
                continue
            if group and attribute.startswith('resource.'):
                continue
            outputs = parse(rtype).get('outputs') or {}
            if attribute not in outputs and attribute not in ('OS::stack_id', 'show'):
                where = 'root template' if name == '(root)' else name
                raise ValueError('%s: get_attr %s: %s has no output %s'
                                 % (where, ref[:2], rtype, attribute))


def _nested_type(resource: dict, registry: dict[str, str]) -> tuple[str | None, bool]:
    rtype = resource.get('type')
    group = rtype == 'OS::Heat::ResourceGroup'
    if group:
        rtype = ((resource.get('properties') or {}).get('resource_def') or {}).get('type')
    if not isinstance(rtype, str):
        return None, group
    rtype = registry.get(rtype, rtype)
    return (rtype if rtype.endswith('.yaml') else None), group


def _get_attrs(node: Any) -> Iterator[list]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'get_attr' and isinstance(value, list):
                yield value
            yield from _get_attrs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _get_attrs(item)


def run(templates: TemplateSet, out=print) -> int:
    """Validate every combination; print one line per failure and a summary."""
    started = time.monotonic()
    validator = HeatValidator()
    failures: list[Failure] = []
    count = 0
    for combo in combinations(templates):
        count += 1
        try:
            validator.validate(combo.request)
        except Exception as error:  # Heat raises many types; each is a finding
            failures.append(Failure(combo.name, '%s: %s' % (type(error).__name__,
                                                            error)))
    for failure in failures:
        out('FAIL %s\n  %s' % (failure.combination, failure.error))
    out('validated %d combinations, %d errors (%.1fs)'
        % (count, len(failures), time.monotonic() - started))
    return 1 if failures else 0
