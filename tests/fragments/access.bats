#!/usr/bin/env bats
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

# Keystone login (node/keystone_auth.sh) and the dashboard (node/dashboard.sh) on the
# masters: each only when its label asks; the apiserver's webhook flags and files in
# place before kubeadm starts it, on every master. Real openssl and a real CA (the
# certificates are checked), the real manifests.

load helpers
load kube_stubs

setup() {
    kube_test_setup
    cp "$FRAGMENTS/manifests/keystone-auth.yaml" "$FRAGMENTS/manifests/dashboard.yaml" \
        "$CELTIC_LIB_DIR/manifests/"
    # a real cluster CA and service-account key: the certificates are really issued
    rm -f "$STUBS/openssl"
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=magnum -days 30 \
        -keyout "$CELTIC_ETC/secrets/ca.key" -out "$CELTIC_ETC/pki/ca.crt" 2>/dev/null
    openssl genrsa -out "$CELTIC_ETC/secrets/sa.key" 2048 2>/dev/null
    chmod 600 "$CELTIC_ETC/secrets/"*
    cp "$CELTIC_ETC/pki/ca.crt" "$CELTIC_ETC/openstack-ca.pem"
    # the node's vendordata serves the secrets as they are now
    kube_params master
}

KEYSTONE='{"keystone_auth_enabled": true,
    "keystone_auth_url": "https://keystone.example.com:5000/v3",
    "keystone_auth_project_id": "0123456789abcdef0123456789abcdef",
    "keystone_auth_policy": [{"users": {"projects": ["0123456789abcdef0123456789abcdef"],
        "roles": ["reader"]}, "resource": {"verbs": ["get"], "resources": ["pods"],
        "version": "*", "namespace": "*"}}],
    "k8s_keystone_auth_tag": "v1.36.0"}'

with() {
    kube_params master "$(python3 -c 'import json, sys
merged = {}
for doc in sys.argv[1:]:
    merged.update(json.loads(doc))
print(json.dumps(merged))' "$@")"
}

line_of() {
    grep -nE "^$1" "$CALLS" | head -n 1 | cut -d: -f1
}

@test "without the labels: no webhook, no flags, neither add-on applied" {
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert [ ! -e "$ROOT/etc/kubernetes/keystone-auth" ]
    run grep -E '^  extra(Args|Volumes):' "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_output $'  extraArgs: []\n  extraVolumes: []'
    refute_called 'kubectl .* apply .*(keystone-auth|dashboard).yaml'
    run grep -c 'step keystone-auth' "$CELTIC_LOG_FILE"
    assert_output 0
}

@test "keystone_auth_enabled: the webhook's files before kubeadm init, its flags, the add-on" {
    with "$KEYSTONE"
    run bash "$FRAGMENTS/master.sh"
    assert_success
    dir=$ROOT/etc/kubernetes/keystone-auth
    # the apiserver's side: the webhook on the loopback, trusted through the cluster CA
    run cat "$dir/webhook.kubeconfig"
    assert_line '      server: https://127.0.0.1:8443/webhook'
    assert_line '      certificate-authority: /etc/kubernetes/pki/ca.crt'
    [ "$(stat -c %a "$dir/tls.key")" = 600 ]
    openssl verify -CAfile "$CELTIC_ETC/pki/ca.crt" "$dir/tls.crt"
    run openssl x509 -in "$dir/tls.crt" -noout -ext subjectAltName,extendedKeyUsage
    assert_line --partial 'IP Address:127.0.0.1'
    assert_line --partial 'TLS Web Server Authentication'
    refute_line --partial 'Client'
    cmp "$dir/keystone-ca.pem" "$CELTIC_ETC/openstack-ca.pem"
    # ... written before kubeadm starts the apiserver with these flags
    [ "$(grep -n 'step keystone-auth: done' "$CELTIC_LOG_FILE" | cut -d: -f1)" -lt \
        "$(grep -n 'step kubeadm-init: start' "$CELTIC_LOG_FILE" | cut -d: -f1)" ]
    run cat "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_line --partial '{"name": "authorization-mode", "value": "Node,Webhook,RBAC"}'
    assert_line --partial '{"name": "authentication-token-webhook-config-file", "value": "/etc/kubernetes/keystone-auth/webhook.kubeconfig"}'
    assert_line --partial '{"name": "authorization-webhook-version", "value": "v1beta1"}'
    assert_line --partial '"mountPath": "/etc/kubernetes/keystone-auth", "readOnly": true'
    # master 0 applies the webhook with the policy the driver sent, after kubeadm init
    assert_called 'kubectl .* apply .*keystone-auth.yaml'
    [ "$(line_of 'kubeadm init')" -lt "$(line_of 'kubectl .* apply .*keystone-auth.yaml')" ]
    run grep -F -- '--keystone-url=https://keystone.example.com:5000/v3' \
        "$BATS_TEST_TMPDIR/applied/keystone-auth.yaml"
    assert_success
    run grep -F '0123456789abcdef0123456789abcdef' "$BATS_TEST_TMPDIR/applied/keystone-auth.yaml"
    assert_success
    refute_called 'kubectl .* apply .*dashboard.yaml'
}

@test "keystone_auth_enabled: a master that joins gets the same files before kubeadm join" {
    with "$KEYSTONE"
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=testnode-1
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert [ -s "$ROOT/etc/kubernetes/keystone-auth/webhook.kubeconfig" ]
    assert [ -s "$ROOT/etc/kubernetes/keystone-auth/tls.crt" ]
    [ "$(grep -n 'step keystone-auth: done' "$CELTIC_LOG_FILE" | cut -d: -f1)" -lt \
        "$(grep -n 'step kubeadm-join: start' "$CELTIC_LOG_FILE" | cut -d: -f1)" ]
    refute_called 'kubectl .* apply.*'
}

@test "keystone_auth_enabled: a second run keeps the webhook's certificate" {
    with "$KEYSTONE"
    run bash "$FRAGMENTS/master.sh"
    assert_success
    before=$(sha256sum "$ROOT/etc/kubernetes/keystone-auth/tls.crt")
    run bash "$FRAGMENTS/master.sh"
    assert_success
    [ "$(sha256sum "$ROOT/etc/kubernetes/keystone-auth/tls.crt")" = "$before" ]
}

@test "keystone_auth_enabled without a Keystone URL fails at step keystone-auth" {
    kube_with_heat
    with "$KEYSTONE" '{"keystone_auth_url": ""}'
    run bash "$FRAGMENTS/master.sh"
    assert_failure
    run signal_field 1 reason
    assert_output --partial 'step keystone-auth failed: keystone_auth_enabled without keystone_auth_url'
}

@test "dashboard_enabled: Headlamp applied with its own certificate, no Keystone webhook" {
    with '{"dashboard_enabled": true, "dashboard_tag": "v0.45.0",
        "dashboard_service_type": "ClusterIP"}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert_called 'kubectl .* apply .*dashboard.yaml'
    refute_called 'kubectl .* apply .*keystone-auth.yaml'
    assert [ ! -e "$ROOT/etc/kubernetes/keystone-auth" ]
    applied=$BATS_TEST_TMPDIR/applied/dashboard.yaml
    run grep -E '^  type: ' "$applied"
    assert_output '  type: "ClusterIP"'
    [ "$(stat -c %a "$CELTIC_ETC/manifests/dashboard.yaml")" = 600 ]
    # the key is in the applied Secret, never in the log
    key=$(base64 -w 0 "$CELTIC_STATE_DIR/dashboard/tls.key")
    grep -qF "$key" "$applied"
    run grep -F "$key" "$CELTIC_LOG_FILE"
    assert_failure
}

@test "dashboard_service_type LoadBalancer: a LoadBalancer Service, a certificate for the proxy VIP" {
    with "$KEYSTONE" '{"dashboard_enabled": true, "dashboard_tag": "v0.45.0",
        "dashboard_service_type": "LoadBalancer"}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    run grep -E '^  type: ' "$BATS_TEST_TMPDIR/applied/dashboard.yaml"
    assert_output '  type: "LoadBalancer"'
    run openssl x509 -in "$CELTIC_STATE_DIR/dashboard/tls.crt" -noout -ext subjectAltName
    assert_output --partial 'IP Address:10.0.0.200'
    assert_output --partial 'IP Address:172.24.4.51'
}

@test "the registry prefix reaches the webhook's and the dashboard's images" {
    with "$KEYSTONE" '{"dashboard_enabled": true, "dashboard_tag": "v0.45.0",
        "dashboard_service_type": "ClusterIP",
        "container_infra_prefix": "registry.example.com/mirror/"}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    run grep -h 'image:' "$BATS_TEST_TMPDIR/applied/keystone-auth.yaml" \
        "$BATS_TEST_TMPDIR/applied/dashboard.yaml"
    assert_line --partial 'registry.example.com/mirror/k8s-keystone-auth:v1.36.0'
    assert_line --partial 'registry.example.com/mirror/headlamp:v0.45.0'
    refute_line --regexp 'image: ["\x27]?(ghcr|registry\.k8s)\.io'
}
