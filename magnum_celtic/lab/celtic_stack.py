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

"""A celtic stack request without Magnum: what the driver would send for a sample cluster.

The request (template, files with the role bundles, environment files, parameters) is
built by the driver's own pure modules from a sample cluster (``magnum_celtic.sample``:
a ClusterSpec from labels and counts, and throwaway CAs shaped like Magnum's), so the
Heat-level tests and benchmarks exercise exactly what a cluster create sends, with no
Magnum in the way.

Nodes get their secrets from celtic-vendordata, which only serves clusters it knows:
``create(heat, name, lab=plane)`` registers the sample cluster (its uuid, the stack's
name, the project of the creating user, its PKI) with the lab's celtic-vendordata
before the stack exists, creates it, and tells the service the stack's id
(``ControlPlane.clusters``). A stack created from ``create_kwargs`` alone is unknown
to it: its nodes get no secrets and fail.
"""

from __future__ import annotations

import os
from typing import Any


def templates_dir() -> str:
    """The celtic templates: CELTIC_LAB_TEMPLATES_DIR, else the checkout's (or the
    installed package's)."""
    from magnum_celtic import templates
    return templates.resolve_dir(os.environ.get('CELTIC_LAB_TEMPLATES_DIR') or None)


def request(name: str, masters: int = 3, minions: int = 3, proxies: int = 2,
            storage: int = 3, labels: dict[str, str] | None = None,
            timeout_mins: int = 30, lab: Any = None, project_id: str | None = None,
            **parameters: Any):
    """The driver's StackRequest for a cluster called name.

    Node names are ``<name>-<role>-<index>``; parameters overrides single stack
    parameters (e.g. ``wait_timeout``). With ``lab`` (a ControlPlane without Magnum),
    the cluster is registered with its celtic-vendordata as ``project_id``'s (see
    ``create``)."""
    import dataclasses
    from magnum_celtic import request as stack
    from magnum_celtic import sample
    from magnum_celtic import templates
    all_labels = {'proxy_count': str(proxies), 'storage_count': str(storage)}
    all_labels.update(labels or {})
    spec = sample.sample_spec(labels=all_labels, masters=masters, minions=minions,
                              name=name)
    cluster_pki = sample.sample_pki(spec.cluster_uuid)
    built = stack.cluster_request(spec, cluster_pki,
                                  templates.TemplateSet(templates_dir()), timeout_mins)
    if lab is not None:
        lab.clusters.add(spec.cluster_uuid, project_id, name, cluster_pki)
    values = dict(built.parameters, name_prefix=name, **parameters)
    return dataclasses.replace(built, stack_name=name, parameters=values)


def create_kwargs(name: str, **options: Any) -> dict[str, Any]:
    """Keyword arguments for heatclient ``stacks.create`` (see ``request``)."""
    return request(name, **options).create_kwargs()


def registered_kwargs(heat, name: str, lab: Any, **options: Any) -> dict[str, Any]:
    """``create_kwargs``, the cluster registered with the lab's celtic-vendordata as
    the project of heatclient ``heat``'s user; after ``stacks.create``, tell the lab
    the stack's id (``lab.clusters.created(name, id)``), or use ``create``."""
    project_id = heat.http_client.session.get_project_id()
    return request(name, lab=lab, project_id=project_id, **options).create_kwargs()


def create(heat, name: str, lab: Any, **options: Any) -> dict[str, Any]:
    """Create the stack with heatclient ``heat`` as its user would, registered with
    the lab's celtic-vendordata so that its nodes get their secrets; returns Heat's
    answer (``['stack']['id']``). ``options``: see ``request``."""
    created = heat.stacks.create(**registered_kwargs(heat, name, lab, **options))
    lab.clusters.created(name, created['stack']['id'])
    return created


def resource_count(masters: int = 3, minions: int = 3, proxies: int = 2,
                   storage: int = 3) -> int:
    """What the driver predicts Heat will count for such a stack."""
    from magnum_celtic import budget
    from magnum_celtic import sample
    spec = sample.sample_spec(labels={'proxy_count': str(proxies),
                                      'storage_count': str(storage)},
                              masters=masters, minions=minions, name='count')
    return budget.resource_count(spec)


def scale_kwargs(heat, stack_id: str, minions: int, remove=(),
                 pool_stack: bool = False) -> dict[str, Any]:
    """heatclient ``stacks.update`` keyword arguments for the resize the driver sends
    (a PATCH of the count and the re-rendered minion_nodes.yaml), from the stack's
    current outputs."""
    from magnum_celtic import request as stack
    from magnum_celtic import templates
    from magnum_celtic.lab import heatwatch
    outputs = heatwatch.outputs(heat.stacks.get(stack_id, resolve_outputs=True), heat)
    parameters, files = stack.scale_request(templates.TemplateSet(templates_dir()),
                                            outputs, minions, remove, pool_stack)
    return {'existing': True, 'parameters': parameters, 'files': files}
