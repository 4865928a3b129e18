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

"""magnum.conf options of the celtic driver.

Four groups, registered at import time on Magnum's global CONF and listed for
oslo-config-generator through the ``oslo.config.opts`` entry point:

``[heat_client]``
    How the driver reaches Heat. Same names as the group Magnum removed in 2026.2, so an
    existing magnum.conf keeps working. Magnum 2026.1 (22.x) still registers this group
    itself: there celtic uses Magnum's options and registers only the ones Magnum lacks
    (registering an option twice with another help text is a DuplicateOptError).
``[celtic]``
    Driver settings.
``[celtic_cluster_labels]``
    Operator-wide label defaults: one option per row of the label table,
    :data:`magnum_celtic.labels.LABELS`; a cluster label overrides them.
``[celtic_vendordata]``
    celtic-vendordata, the service that hands nodes their secrets through Nova's
    metadata service and relays their wait-condition signals to Heat
    (:mod:`magnum_celtic.vendordata`).
"""

from __future__ import annotations

from oslo_config import cfg

# Magnum's own options first, so that the [heat_client] options Magnum 2026.1 registers
# are found below instead of colliding with celtic's when Magnum imports its conf later.
import magnum.conf  # noqa: F401,E402

from magnum_celtic import labels

CONF = cfg.CONF

heat_client_group = cfg.OptGroup(
    name='heat_client',
    title='How the celtic driver talks to Heat')

heat_client_opts = [
    cfg.StrOpt('region_name',
               help='Region of the orchestration endpoint in the Keystone '
                    'catalog. Unset: the region of the session.'),
    cfg.StrOpt('endpoint_type',
               default='publicURL',
               help='Interface of the orchestration endpoint: publicURL, '
                    'internalURL or adminURL (or public, internal, admin).'),
    cfg.StrOpt('api_version',
               default='1',
               help='Heat API version.'),
    cfg.StrOpt('ca_file',
               help='CA bundle to verify the Heat endpoint.'),
    cfg.StrOpt('cert_file',
               help='Client certificate for the Heat endpoint.'),
    cfg.StrOpt('key_file',
               help='Key of the client certificate for the Heat endpoint.'),
    cfg.BoolOpt('insecure',
                default=False,
                help='Do not verify the Heat endpoint certificate.'),
]

celtic_group = cfg.OptGroup(
    name='celtic',
    title='The celtic cluster driver')

celtic_opts = [
    cfg.IntOpt('create_timeout',
               default=60,
               min=1,
               help='Minutes a cluster may take to become ready when the '
                    'request sets no create_timeout.'),
    cfg.IntOpt('heat_read_timeout',
               default=90, min=0,
               help='Seconds one read of Heat (a status poll\'s GET of a stack, '
                    'its files or its resources) may take; the poll then leaves '
                    'the cluster as it is and asks again next time. A heat-engine '
                    'that dies while it answers leaves heat-api waiting for its '
                    'rpc_response_timeout, and a poll waiting with it holds the '
                    'cluster\'s lock that long. 0: no limit. Creates, updates and '
                    'deletes are never cut short, nor are celtic-vendordata\'s '
                    'reads (no lock waits on them, and its read of a whole stack '
                    'tree at Heat\'s cap takes Heat tens of seconds).'),
    cfg.IntOpt('heat_max_resources_per_stack',
               default=1000,
               help='The max_resources_per_stack of the Heat service. A '
                    'cluster whose stack would exceed it is refused before '
                    'anything is created. Keep it equal to heat.conf; -1 '
                    'disables the check (Heat still enforces its own).'),
    cfg.StrOpt('node_openstack_ca_file',
               default='',
               help='CA bundle the nodes trust when they report to '
                    'celtic-vendordata\'s relay ([celtic_vendordata] public_url). '
                    'Empty: [drivers] openstack_ca_file.'),
    cfg.ListOpt('credential_roles',
                default=['member', 'reader'],
                help='Roles of the application credential celtic creates for a '
                     'cluster whose labels ask for the autoscaler or auto-healing '
                     '(the owner must hold them on the project): member resizes the '
                     'cluster through Magnum; reader reads its stacks in Heat, whose '
                     'policies ask for reader itself (a credential\'s token carries '
                     'the roles it lists, not the roles they imply).'),
    cfg.StrOpt('credential_auth_url',
               default='',
               help='Keystone URL the masters authenticate their application '
                    'credential at. Empty: [keystone_authtoken] '
                    'www_authenticate_uri, else [keystone_auth] auth_url.'),
    cfg.StrOpt('keystone_auth_default_policy',
               default='',
               help='JSON file with the authorization policy of k8s-keystone-auth '
                    'for clusters with label keystone_auth_enabled (its ConfigMap '
                    'kube-system/k8s-auth-policy; $PROJECT_ID becomes the '
                    'cluster\'s project id). Read when a cluster is created. Empty: '
                    'celtic\'s default (project readers view, members edit, admins '
                    'administer: README "Logging in with Keystone"). Also the URL '
                    'the webhook checks tokens at is credential_auth_url\'s.'),
    cfg.BoolOpt('node_insecure',
                default=False,
                help='Nodes do not verify the certificate of celtic-vendordata\'s '
                     'relay when they report (test clouds only).'),
    cfg.StrOpt('templates_dir',
               default='',
               help='Directory with celtic.yaml and its nested templates. '
                    'Empty: the templates installed with the package.'),
]

vendordata_group = cfg.OptGroup(
    name='celtic_vendordata',
    title='celtic-vendordata: node secrets through Nova, signals to Heat',
    help='Register the service in nova.conf ([api] vendordata_providers = '
         'StaticJSON,DynamicJSON and vendordata_dynamic_targets = '
         'celtic@<url>/v1/vendordata); see doc/security.md.')

vendordata_opts = [
    cfg.HostAddressOpt('bind_host',
                       default='0.0.0.0',
                       help='Address celtic-vendordata listens on (celtic-vendordata '
                            'command; under uWSGI or Apache the server binds).'),
    cfg.PortOpt('bind_port',
                default=9518,
                help='Port celtic-vendordata listens on.'),
    cfg.URIOpt('public_url',
               schemes=['http', 'https'],
               help='The URL nodes reach celtic-vendordata at (no trailing '
                    '/v1): their wait-condition signals go to <public_url>/v1/'
                    'signal. Required: the driver refuses to create clusters '
                    'and nodegroups while it is unset, since no node could '
                    'receive its secrets or report.'),
    cfg.ListOpt('allowed_roles',
                default=['admin', 'service'],
                help='Keystone roles, one of which the token of a vendordata '
                     'request must hold (Nova\'s [vendordata_dynamic_auth] '
                     'user).'),
    cfg.IntOpt('index_seconds',
               default=300,
               min=0,
               help='How long the service keeps what it read from Heat about a '
                    'stack\'s servers; a server it does not know yet makes it '
                    'read the stack again at once.'),
]

cluster_labels_group = cfg.OptGroup(
    name='celtic_cluster_labels',
    title='Operator defaults for celtic cluster labels',
    help='Each option is the default of the cluster label of the same name; '
         'a label set on the cluster template or the cluster wins. Values '
         'use the label syntax and are validated like labels.')


def _label_opts() -> list[cfg.Opt]:
    return [cfg.StrOpt(label.name, help='%s (built-in default: %s)'
                       % (label.doc, label.default_doc))
            for label in labels.LABELS]


cluster_label_opts = _label_opts()


def _missing(conf: cfg.ConfigOpts, group: cfg.OptGroup,
             opts: list[cfg.Opt]) -> list[cfg.Opt]:
    """The options of ``opts`` that ``conf`` does not have in ``group`` yet, by name:
    those Magnum registered are Magnum's (same names and defaults), the rest celtic's."""
    conf.register_group(group)
    present = set(conf[group.name])
    return [opt for opt in opts if opt.dest not in present]


#: the [heat_client] options celtic registers on Magnum's CONF: all of them on Magnum
#: 2026.2, none on 2026.1 (whose options of the same names serve the driver)
own_heat_client_opts = _missing(CONF, heat_client_group, heat_client_opts)


def register_opts(conf: cfg.ConfigOpts = CONF) -> None:
    """Register every celtic option group on ``conf`` (idempotent); of
    ``[heat_client]`` only the options ``conf`` does not have already."""
    for group, opts in ((heat_client_group, _missing(conf, heat_client_group,
                                                     heat_client_opts)),
                        (celtic_group, celtic_opts),
                        (cluster_labels_group, cluster_label_opts),
                        (vendordata_group, vendordata_opts)):
        conf.register_group(group)
        conf.register_opts(opts, group=group)


def list_opts() -> list[tuple[cfg.OptGroup, list[cfg.Opt]]]:
    """oslo-config-generator entry point: every group and the options celtic owns
    (on Magnum 2026.1, Magnum's own namespace lists [heat_client])."""
    groups = [(heat_client_group, own_heat_client_opts),
              (celtic_group, celtic_opts),
              (cluster_labels_group, cluster_label_opts),
              (vendordata_group, vendordata_opts)]
    return [(group, opts) for group, opts in groups if opts]


register_opts()
