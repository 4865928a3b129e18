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

"""``magnum-celtic``: render, validate, lab.

``render``    print (or write) the exact Heat stack request the driver would send for
              the given counts, labels and template fields. It carries no secret
              (the nodes fetch theirs from celtic-vendordata); a hidden parameter
              would be masked.
``validate``  run Heat's own validator over every template and environment
              combination the driver can render.
``lab``       the whole control plane (Keystone, Heat, Magnum) on this machine and a
              celtic cluster through it; see ``magnum-celtic lab --help``.
``check``     a celtic cluster on your own cloud, proven step by step (create, nodes,
              DNS, LoadBalancer, ingress, RWX storage, failovers, resize, delete, no
              leftovers); see ``magnum-celtic check --help``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings

from magnum_celtic.labels import LabelError

warnings.filterwarnings('ignore', category=DeprecationWarning)

#: what to install for the commands that run OpenStack services in this process
LAB_EXTRA = "pip install 'magnum-celtic[lab]'"
#: the top-level modules of the lab extra each command imports (the driver needs none)
LAB_MODULES = {
    'validate': ('heat',),
    'lab': ('heat', 'keystone', 'magnumclient'),
}
_EXTRA_MODULES = {'heat', 'keystone', 'magnumclient', 'pymysql'}


class MissingExtra(Exception):
    """A command needs the lab extra, which is not installed."""

    def __init__(self, command: str, module: str):
        super().__init__('magnum-celtic %s needs the lab extra (module %s is not '
                         'installed): %s' % (command, module, LAB_EXTRA))


def _require_lab_extra(command: str) -> None:
    for module in LAB_MODULES[command]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            raise MissingExtra(command, error.name or module)


def _pairs(text: str, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(','))):
        if '=' not in item:
            raise LabelError('%s must be key=value pairs separated by commas, got "%s"'
                             % (what, item))
        key, value = item.split('=', 1)
        result[key.strip()] = value.strip()
    return result


def _templates(args: argparse.Namespace):
    from magnum_celtic import templates
    return templates.TemplateSet(templates.resolve_dir(args.templates_dir))


def cmd_render(args: argparse.Namespace) -> int:
    from magnum_celtic import budget, request as req, sample
    labels = _pairs(args.labels, '--labels')
    fields = _pairs(args.template_fields, '--template-fields')
    spec = sample.sample_spec(labels=labels, masters=args.masters,
                              minions=args.minions, name=args.name,
                              distro=args.distro, template=fields)
    templates = _templates(args)
    request = req.cluster_request(spec, sample.sample_pki(spec.cluster_uuid), templates, 60)
    for warning in spec.warnings:
        print('warning: %s' % warning, file=sys.stderr)
    if args.output_dir:
        _write_request(request, args.output_dir)
        print('wrote %s (no secret in it: the nodes fetch theirs from celtic-vendordata)'
              % args.output_dir)
        return 0
    document = request.masked()
    # what each role's nodes receive: in their user_data bundle, from celtic-vendordata
    document['node_files'] = {
        role: {'user_data': templates.bundle_files(role),
               'celtic_vendordata': templates.vendordata_files(role)}
        for role in ('master', 'minion', 'proxy', 'storage')}
    document['heat_resources'] = budget.resource_count(spec)
    document['max_minions_under_1000'] = budget.max_minions(spec, 1000)
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def _write_request(request, directory: str) -> None:
    for name, content in list(request.files.items()) + [('celtic.yaml', request.template)]:
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(content)
    with open(os.path.join(directory, 'parameters.json'), 'w', encoding='utf-8') as f:
        json.dump(request.masked()['parameters'], f, indent=2, sort_keys=True)


def cmd_validate(args: argparse.Namespace) -> int:
    _require_lab_extra('validate')
    from magnum_celtic import validation
    return validation.run(_templates(args))


def cmd_lab(args: argparse.Namespace) -> int:
    _require_lab_extra('lab')
    try:
        from magnum_celtic.lab import cli
    except ImportError as error:
        raise MissingExtra('lab', getattr(error, 'name', None) or 'magnum_celtic.lab.cli')
    return cli.run_lab(args)


#: what to install for ``check`` (openstacksdk, python-magnumclient, kubernetes)
CHECK_EXTRA = "pip install 'magnum-celtic[check]'"
CHECK_MODULES = ('openstack', 'magnumclient', 'kubernetes')


def cmd_check(args: argparse.Namespace) -> int:
    for module in CHECK_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            print('error: magnum-celtic check needs the check extra (module %s is not '
                  'installed): %s' % (module, CHECK_EXTRA), file=sys.stderr)
            return 2
    from magnum_celtic.check import steps
    return steps.run(args)


def parser() -> argparse.ArgumentParser:
    """The command line's argument parser."""
    top = argparse.ArgumentParser(prog='magnum-celtic', description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument('--templates-dir', default='',
                     help='templates to use instead of the installed ones')
    subs = top.add_subparsers(dest='command', required=True)

    render = subs.add_parser('render', help='print the stack request of a cluster')
    render.add_argument('--name', default='sample')
    render.add_argument('--masters', type=int, default=3)
    render.add_argument('--minions', type=int, default=3)
    render.add_argument('--distro', default='ubuntu', choices=('ubuntu', 'debian'))
    render.add_argument('--labels', default='',
                        help='cluster labels, e.g. proxy_count=3,storage_count=0')
    render.add_argument('--template-fields', default='',
                        help='cluster template fields, e.g. network_driver=calico')
    render.add_argument('--output-dir', default='',
                        help='write the templates and parameters here instead')
    render.set_defaults(func=cmd_render)

    validate = subs.add_parser('validate', help='validate every stack combination')
    validate.set_defaults(func=cmd_validate)

    lab = subs.add_parser('lab', help='a celtic cluster on this machine, end to end')
    try:
        from magnum_celtic.lab import cli as lab_cli
        lab_cli.add_arguments(lab)
    except ImportError:
        pass
    lab.set_defaults(func=cmd_lab)

    from magnum_celtic.check import steps as check_steps
    check = subs.add_parser('check', help='prove celtic on your own cloud, step by step')
    check_steps.add_arguments(check)
    check.set_defaults(func=cmd_check)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the magnum-celtic console script."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LabelError as error:
        print('error: %s' % error, file=sys.stderr)
        return 2
    except MissingExtra as error:
        print('error: %s' % error, file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        # a module of the extra imported further down (e.g. PyMySQL for MariaDB)
        top = (error.name or '').split('.')[0]
        if top not in _EXTRA_MODULES:
            raise
        print('error: %s' % MissingExtra(args.command, top), file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
