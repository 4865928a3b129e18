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

# keystone_auth.sh: Keystone login (label keystone_auth_enabled). Every master's
# apiserver sends OpenStack tokens (TokenReview) and the requests of their users
# (SubjectAccessReview) to cloud-provider-openstack's k8s-keystone-auth, a DaemonSet on
# the masters listening on 127.0.0.1:8443 only (manifests/keystone-auth.yaml). The
# webhook checks each token with Keystone (keystone_auth_url; it needs no credential of
# its own) and decides by the policy in ConfigMap kube-system/k8s-auth-policy; no match
# is no opinion, and RBAC decides (authorization-mode Node,Webhook,RBAC).
#
# Every master, before kubeadm init or join: the webhook's serving certificate (cluster
# CA, 127.0.0.1), the apiserver's webhook kubeconfig and Keystone's CA bundle under
# /etc/kubernetes/keystone-auth, mounted read-only into the apiserver and the webhook.
# Master 0, with the addons: the policy, the webhook's RBAC and the DaemonSet.
# Sourced after lib/celtic.sh, node/kubernetes.sh and node/addons.sh.

KEYSTONE_AUTH_DIR=/etc/kubernetes/keystone-auth
KEYSTONE_AUTH_PORT=8443
# k8s-keystone-auth serves the v1beta1 review APIs only (its Handler refuses v1)
KEYSTONE_AUTH_REVIEW_VERSION=v1beta1

keystone_auth_enabled() {
    [[ "${CELTIC_KEYSTONE_AUTH_ENABLED:-false}" == true ]]
}

# keystone_auth_apiserver: exports KUBE_APISERVER_ARGS and KUBE_APISERVER_VOLUMES (JSON
# for kubeadm v1beta4's ClusterConfiguration.apiServer: [] without Keystone login).
# ClusterConfiguration is stored in the cluster, so the masters that join get the same.
keystone_auth_apiserver() {
    export KUBE_APISERVER_ARGS="[]" KUBE_APISERVER_VOLUMES="[]"
    keystone_auth_enabled || return 0
    KUBE_APISERVER_ARGS=$(celtic_python - "$KEYSTONE_AUTH_DIR/webhook.kubeconfig" \
        "$KEYSTONE_AUTH_REVIEW_VERSION" <<'PY'
import json, sys
config, version = sys.argv[1:3]
print(json.dumps([
    {'name': 'authentication-token-webhook-config-file', 'value': config},
    {'name': 'authentication-token-webhook-version', 'value': version},
    {'name': 'authorization-mode', 'value': 'Node,Webhook,RBAC'},
    {'name': 'authorization-webhook-config-file', 'value': config},
    {'name': 'authorization-webhook-version', 'value': version},
]))
PY
) || celtic_die "cannot render the apiserver's webhook arguments"
    KUBE_APISERVER_VOLUMES=$(printf '[{"name": "keystone-auth", "hostPath": "%s", "mountPath": "%s", "readOnly": true, "pathType": "Directory"}]' \
        "$KEYSTONE_AUTH_DIR" "$KEYSTONE_AUTH_DIR")
}

# keystone_auth_files: on every master, before kubeadm: the webhook's certificate, the
# apiserver's kubeconfig for it and the CA bundle the webhook trusts Keystone with.
keystone_auth_files() {
    local dir=${CELTIC_ROOT:-}$KEYSTONE_AUTH_DIR ca
    keystone_auth_enabled || return 0
    [[ -n "${CELTIC_KEYSTONE_AUTH_URL:-}" ]] ||
        celtic_die "keystone_auth_enabled without keystone_auth_url in the node parameters"
    kube_serving_cert "$dir" k8s-keystone-auth "IP:127.0.0.1"
    celtic_write_file "$dir/webhook.kubeconfig" 0600 <<EOF
# The apiserver's view of k8s-keystone-auth (TokenReview and SubjectAccessReview): the
# DaemonSet on this master, on the loopback, with a certificate of the cluster CA.
apiVersion: v1
kind: Config
clusters:
  - name: k8s-keystone-auth
    cluster:
      server: https://127.0.0.1:$KEYSTONE_AUTH_PORT/webhook
      certificate-authority: /etc/kubernetes/pki/ca.crt
users:
  - name: kube-apiserver
    user: {}
contexts:
  - name: webhook
    context: {cluster: k8s-keystone-auth, user: kube-apiserver}
current-context: webhook
EOF
    # Keystone's CA: the operator's bundle for the OpenStack APIs, else the system's
    if [[ -s "$CELTIC_ETC/openstack-ca.pem" ]]; then
        ca=$CELTIC_ETC/openstack-ca.pem
    else
        ca=${CELTIC_ROOT:-}/etc/ssl/certs/ca-certificates.crt
    fi
    [[ -s "$ca" ]] || celtic_die "no CA bundle to trust Keystone with ($ca is empty)"
    celtic_write_file "$dir/keystone-ca.pem" 0644 <"$ca"
}

# keystone_auth_addon: master 0: the policy ConfigMap, the webhook's RBAC and DaemonSet.
# The policy is applied once: a cluster admin may edit it (the webhook reloads it).
keystone_auth_addon() {
    KEYSTONE_AUTH_POLICY_JSON=$(celtic_python - "${CELTIC_KEYSTONE_AUTH_POLICY:-}" <<'PY'
import json, sys
policy = json.loads(sys.argv[1])
if not isinstance(policy, list) or not policy:
    sys.exit('keystone_auth_policy must be a non-empty list')
# the inside of a double-quoted YAML scalar holding the policy's JSON text (JSON's
# string escapes are YAML's)
print(json.dumps(json.dumps(policy, indent=2, sort_keys=True))[1:-1])
PY
) || celtic_die "keystone_auth_policy in the node parameters is not a policy list"
    export KEYSTONE_AUTH_POLICY_JSON KEYSTONE_AUTH_DIR KEYSTONE_AUTH_PORT
    kube_apply_manifest "$CELTIC_LIB_DIR/manifests/keystone-auth.yaml"
}
