#!/bin/bash
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

# cloud.sh: the add-ons that call OpenStack, applied by master 0 after the CNI, each
# only when its label asks (doc/cloud-provider.md):
#   cloud_provider_enabled  openstack-cloud-controller-manager on the masters (node
#                           addresses, provider IDs, zones; the Node of a deleted
#                           server removed; its LoadBalancer controller off)
#   cinder_csi_enabled      cinder-csi-plugin: controller on the masters, node plugin
#                           on every node, the celtic-cinder StorageClass
# Both authenticate with the cluster's application credential, which celtic-vendordata
# gives the masters only (/etc/celtic/secrets/application-credential.json). It reaches
# them as cloud.conf in the Secret kube-system/celtic-cloud-config, rendered here into
# a 0600 file that no log line shows, and mounted only by the two controllers (pinned
# to the masters). The CSI node plugin gets no credential: its node service needs none.
# Sourced by master.sh after lib/celtic.sh, kubernetes.sh and addons.sh.

CLOUD_CREDENTIAL=application-credential.json
CLOUD_SECRET_NAME=celtic-cloud-config
CLOUD_INIT_WAIT=${CLOUD_INIT_WAIT:-900}

# cloud_wanted: true when a label asks for an add-on that needs the credential.
cloud_wanted() {
    [[ "${CELTIC_CLOUD_PROVIDER_ENABLED:-false}" == true ||
        "${CELTIC_CINDER_CSI_ENABLED:-false}" == true ]]
}

# cloud_config_secret: the Secret kube-system/celtic-cloud-config (cloud.conf, and the
# CA that signs the OpenStack endpoints when the node has one) from the application
# credential, written 0600 to $KUBE_MANIFEST_DIR/celtic-cloud-config.yaml. The secret
# goes from file to file inside python: never an argument, a variable or a log line.
cloud_config_secret() {
    local credential dest=$KUBE_MANIFEST_DIR/$CLOUD_SECRET_NAME.yaml rc=0
    local ca=$CELTIC_ETC/openstack-ca.pem insecure=${CELTIC_OPENSTACK_INSECURE:-false}
    credential=$(celtic_secret "$CLOUD_CREDENTIAL") ||
        celtic_die "the cluster's application credential was not delivered to this" \
            "master (cloud_provider_enabled and cinder_csi_enabled need it: see" \
            "doc/cloud-provider.md)"
    celtic_python - "$credential" "$dest" "$CLOUD_SECRET_NAME" "$ca" "$insecure" <<'PY' || rc=$?
import base64, json, os, sys
source, dest, name, ca_path, insecure = sys.argv[1:6]
try:
    with open(source) as f:
        cred = json.load(f)
    values = {key: cred[key] for key in ('auth_url', 'application_credential_id',
                                         'application_credential_secret')}
except (OSError, ValueError, KeyError, TypeError) as exc:
    sys.exit('the application credential file lacks %s' % (
        exc if isinstance(exc, KeyError) else 'valid JSON'))
missing = [key for key, value in values.items() if not isinstance(value, str) or not value]
if missing:
    sys.exit('the application credential has no %s (auth_url: set [celtic] '
             'credential_auth_url in magnum.conf)' % missing[0])
def quoted(value):
    # gcfg: a double-quoted value, backslash and quote escaped, one line
    if '\n' in value or '\r' in value:
        sys.exit('a credential value spans lines')
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"')
lines = ['[Global]',
         'auth-url = %s' % quoted(values['auth_url']),
         'application-credential-id = %s' % quoted(values['application_credential_id']),
         'application-credential-secret = %s'
         % quoted(values['application_credential_secret'])]
if cred.get('region_name'):
    lines.append('region = %s' % quoted(cred['region_name']))
files = {}
if insecure == 'true':
    lines.append('tls-insecure = true')
elif os.path.isfile(ca_path) and os.path.getsize(ca_path):
    with open(ca_path, 'rb') as f:
        files['openstack-ca.pem'] = f.read()
    lines.append('ca-file = "/etc/config/openstack-ca.pem"')
# celtic-lb serves LoadBalancer Services: the provider must not offer (or need) Octavia
lines += ['', '[LoadBalancer]', 'enabled = false', '']
files['cloud.conf'] = '\n'.join(lines).encode()
doc = ['apiVersion: v1', 'kind: Secret', 'metadata:', '  name: %s' % name,
       '  namespace: kube-system', '  labels:', '    app.kubernetes.io/part-of: celtic',
       'type: Opaque', 'data:']
doc += ['  %s: %s' % (key, base64.b64encode(value).decode())
        for key, value in sorted(files.items())]
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + '.tmp'
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, 'w') as f:
    f.write('\n'.join(doc) + '\n')
os.chmod(tmp, 0o600)
os.replace(tmp, dest)
PY
    [[ $rc -eq 0 ]] || celtic_die "cannot render cloud.conf from the application credential"
    kube_apply_once "$dest"
}

# cloud_node_initialized: this node no longer carries the taint the kubelet sets with
# --cloud-provider=external until the cloud-controller-manager has initialised it.
cloud_node_initialized() {
    local taints
    taints=$(kubectl --kubeconfig "$KUBE_ETC/admin.conf" get node "$KUBE_NODE_NAME" \
        -o 'jsonpath={.spec.taints[*].key}' 2>/dev/null) || return 1
    [[ " $taints " != *" node.cloudprovider.kubernetes.io/uninitialized "* ]]
}

# cloud_wait_initialized: until the controller has initialised this master (its
# provider ID and addresses from Nova): a credential Keystone refuses, or a Nova the
# masters cannot reach, fails the create here, named, rather than leaving every node
# unschedulable behind a cluster Magnum calls complete.
cloud_wait_initialized() {
    celtic_wait_for "$CLOUD_INIT_WAIT" 10 "the cloud controller to initialise $KUBE_NODE_NAME" \
        cloud_node_initialized ||
        celtic_die "openstack-cloud-controller-manager did not initialise node" \
            "$KUBE_NODE_NAME within ${CLOUD_INIT_WAIT}s (kubectl -n kube-system logs" \
            "ds/openstack-cloud-controller-manager: Keystone or Nova unreachable from" \
            "the masters? credential refused?)"
}

# cloud_addons: the credential's Secret, then each add-on its label asks for.
cloud_addons() {
    local manifests=$CELTIC_LIB_DIR/manifests
    cloud_wanted || return 0
    celtic_step addon-cloud-config cloud_config_secret
    if [[ "${CELTIC_CLOUD_PROVIDER_ENABLED:-false}" == true ]]; then
        celtic_step addon-cloud-provider kube_apply_manifest \
            "$manifests/openstack-cloud-controller-manager.yaml"
        celtic_step cloud-provider-ready cloud_wait_initialized
    fi
    if [[ "${CELTIC_CINDER_CSI_ENABLED:-false}" == true ]]; then
        celtic_step addon-cinder-csi kube_apply_manifest "$manifests/cinder-csi.yaml"
    fi
}
