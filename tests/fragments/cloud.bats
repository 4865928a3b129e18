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

# node/cloud.sh through master.sh and minion.sh: the cloud-controller-manager and
# Cinder CSI are applied only when their labels ask; the application credential
# becomes the Secret celtic-cloud-config (a 0600 file, never in a log or a call);
# kubelets defer to the cloud provider only when it runs.

load helpers
load kube_stubs

APPCRED_SECRET=s3cr3t-Of-The-AppCred-0123456789

setup() {
    kube_test_setup
    # what celtic-vendordata gives a master of a cluster that has a credential
    printf '%s\n' "{\"auth_type\": \"v3applicationcredential\",
        \"auth_url\": \"https://keystone.example.com:5000/v3\",
        \"region_name\": \"RegionOne\", \"application_credential_id\": \"ac1d\",
        \"application_credential_secret\": \"$APPCRED_SECRET\",
        \"project_id\": \"p1\"}" >"$CELTIC_ETC/secrets/application-credential.json"
    chmod 600 "$CELTIC_ETC/secrets/application-credential.json"
}

run_master() {
    run bash "$FRAGMENTS/master.sh"
}

# secret_keys / secret_file KEY: the data keys of the rendered Secret
# celtic-cloud-config, and one of them decoded (the file is the script's own output:
# a fixed layout, read without a YAML library).
secret_data() {
    python3 - "$CELTIC_ETC/manifests/celtic-cloud-config.yaml" "$@" <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().splitlines()
head = lines[:lines.index('data:')]
assert head == ['apiVersion: v1', 'kind: Secret', 'metadata:',
                '  name: celtic-cloud-config', '  namespace: kube-system',
                '  labels:', '    app.kubernetes.io/part-of: celtic', 'type: Opaque'], head
data = dict(line.strip().split(': ', 1) for line in lines[len(head) + 1:])
if len(sys.argv) > 2:
    sys.stdout.write(base64.b64decode(data[sys.argv[2]]).decode())
else:
    print(' '.join(sorted(data)))
PY
}

secret_file() {
    secret_data "$1"
}

# the secret is nowhere but in the Secret's file and the credential file
refute_secret_leaked() {
    run grep -rlF "$APPCRED_SECRET" "$CALLS" "$CELTIC_LOG_FILE" "$SIGNALS" \
        "$CELTIC_ETC/params.json" "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_failure
}

@test "by default neither add-on, no Secret, and kubelets without the cloud provider" {
    kube_params master
    run_master
    assert_success
    refute_called 'kubectl .* apply .*(celtic-cloud-config|openstack-cloud-controller-manager|cinder-csi).yaml'
    [ ! -e "$CELTIC_ETC/manifests/celtic-cloud-config.yaml" ]
    run grep -F 'cloud-provider' "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_failure
}

@test "cloud_provider_enabled: the Secret, then the controller, then the wait for this node" {
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_success
    assert_called 'kubectl .* apply .*celtic-cloud-config.yaml'
    assert_called 'kubectl .* apply .*openstack-cloud-controller-manager.yaml'
    refute_called 'kubectl .* apply .*cinder-csi.yaml'
    secret_line=$(grep -nE '^kubectl .* apply .*celtic-cloud-config.yaml' "$CALLS" | cut -d: -f1)
    ccm_line=$(grep -nE '^kubectl .* apply .*openstack-cloud-controller-manager.yaml' "$CALLS" | cut -d: -f1)
    wait_line=$(grep -nE '^kubectl .* get node testnode-0 -o jsonpath=\{.spec.taints' "$CALLS" | cut -d: -f1)
    [ "$secret_line" -lt "$ccm_line" ]
    [ "$ccm_line" -lt "$wait_line" ]
    run grep -E 'image: ' "$CELTIC_ETC/manifests/openstack-cloud-controller-manager.yaml"
    assert_output --partial 'registry.k8s.io/provider-os/openstack-cloud-controller-manager:v1.36.0'
    run grep -F -- '--cluster-name=5d12f6fd-0000-4000-8000-000000000001' \
        "$CELTIC_ETC/manifests/openstack-cloud-controller-manager.yaml"
    assert_success
    refute_secret_leaked
}

@test "cloud.conf: the credential, the region, the LoadBalancer controller off; file 0600" {
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_success
    [ "$(stat -c %a "$CELTIC_ETC/manifests/celtic-cloud-config.yaml")" = 600 ]
    [ "$(stat -c %a "$CELTIC_ETC/secrets/application-credential.json")" = 600 ]
    run secret_file cloud.conf
    assert_success
    assert_line '[Global]'
    assert_line 'auth-url = "https://keystone.example.com:5000/v3"'
    assert_line 'application-credential-id = "ac1d"'
    assert_line "application-credential-secret = \"$APPCRED_SECRET\""
    assert_line 'region = "RegionOne"'
    assert_line '[LoadBalancer]'
    assert_line 'enabled = false'
    refute_line --partial 'ca-file'
    refute_line --partial 'tls-insecure'
    # no other key: nothing of the node's CA when the node has none
    run secret_data
    assert_output 'cloud.conf'
}

@test "cloud.conf trusts the OpenStack CA the node has, or skips verification when told" {
    printf -- '-----BEGIN CERTIFICATE-----\nopenstack\n-----END CERTIFICATE-----\n' \
        >"$CELTIC_ETC/openstack-ca.pem"
    kube_params master '{"cinder_csi_enabled": true}'
    run_master
    assert_success
    run secret_file cloud.conf
    assert_line 'ca-file = "/etc/config/openstack-ca.pem"'
    run secret_file openstack-ca.pem
    assert_output --partial 'openstack'

    rm -rf "$CELTIC_STATE_DIR/applied"
    kube_params master '{"cinder_csi_enabled": true, "openstack_insecure": true}'
    run_master
    assert_success
    run secret_file cloud.conf
    assert_line 'tls-insecure = true'
    refute_line --partial 'ca-file'
}

@test "cinder_csi_enabled alone: the Secret and Cinder CSI, no controller manager, kubelets unchanged" {
    kube_params master '{"cinder_csi_enabled": true}'
    run_master
    assert_success
    assert_called 'kubectl .* apply .*celtic-cloud-config.yaml'
    assert_called 'kubectl .* apply .*cinder-csi.yaml'
    refute_called 'kubectl .* apply .*openstack-cloud-controller-manager.yaml'
    refute_called 'kubectl .* get node testnode-0 -o jsonpath=\{.spec.taints.*'
    run grep -F 'cloud-provider' "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_failure
    run grep -E 'image: ' "$CELTIC_ETC/manifests/cinder-csi.yaml"
    assert_output --partial 'registry.k8s.io/provider-os/cinder-csi-plugin:v1.36.0'
    assert_output --partial 'registry.k8s.io/sig-storage/csi-provisioner:v5.3.0'
    refute_secret_leaked
}

@test "both add-ons follow the registry prefix" {
    kube_params master '{"cloud_provider_enabled": true, "cinder_csi_enabled": true,
        "container_infra_prefix": "registry.example.com/mirror/"}'
    run_master
    assert_success
    run grep -h 'image:' "$CELTIC_ETC/manifests/openstack-cloud-controller-manager.yaml" \
        "$CELTIC_ETC/manifests/cinder-csi.yaml"
    refute_line --regexp 'registry\.k8s\.io'
    assert_line --partial 'registry.example.com/mirror/openstack-cloud-controller-manager:v1.36.0'
    assert_line --partial 'registry.example.com/mirror/csi-node-driver-registrar:v2.15.0'
}

@test "a label asking for an add-on without the credential fails the step, naming it" {
    rm "$CELTIC_ETC/secrets/application-credential.json"
    kube_with_heat
    kube_params master '{"cinder_csi_enabled": true}'
    run_master
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    run signal_field 1 reason
    assert_output --partial 'testnode-0: step addon-cloud-config failed: the cluster'"'"'s application credential was not delivered'
    refute_called 'kubectl .* apply .*cinder-csi.yaml'
}

@test "a credential without auth_url fails with what to set in magnum.conf" {
    python3 - "$CELTIC_ETC/secrets/application-credential.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc['auth_url'] = ''
json.dump(doc, open(sys.argv[1], 'w'))
PY
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_failure
    assert_output --partial 'the application credential has no auth_url'
    assert_output --partial 'credential_auth_url'
    refute_secret_leaked
}

@test "a node the controller never initialises fails the create at step cloud-provider-ready" {
    kube_with_heat
    kube_params master '{"cloud_provider_enabled": true}'
    # the kubelet's taint stays: the controller cannot reach Nova
    stub_script kubectl '
case "$*" in
    *"jsonpath={.spec.taints"*) echo "node.cloudprovider.kubernetes.io/uninitialized node-role.kubernetes.io/control-plane" ;;
    *" get node "*) echo True ;;
    *" apply "*) file=${!#}; mkdir -p "$BATS_TEST_TMPDIR/applied"; cp "$file" "$BATS_TEST_TMPDIR/applied/" ;;
esac'
    export CLOUD_INIT_WAIT=20
    run_master
    assert_failure
    run signal_field 1 reason
    assert_output --partial 'testnode-0: step cloud-provider-ready failed: openstack-cloud-controller-manager did not initialise node testnode-0'
}

@test "with the cloud provider a master's kubelet is external and names its server" {
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_success
    run grep -F 'kubeletExtraArgs' "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_output '  kubeletExtraArgs: [{"name": "node-ip", "value": "10.0.0.11"}, {"name": "provider-id", "value": "openstack:///11111111-2222-3333-4444-555555555555"}, {"name": "cloud-provider", "value": "external"}]'
}

@test "with the cloud provider a minion's kubelet is external too; the minion gets no credential" {
    export CELTIC_NODE_NAME=demo-minion-0 CELTIC_NODE_IP=10.0.0.51
    rm -f "$CELTIC_ETC/secrets/application-credential.json"
    kube_params minion '{"cloud_provider_enabled": true, "cinder_csi_enabled": true}'
    run bash "$FRAGMENTS/minion.sh"
    assert_success
    run grep -F 'kubeletExtraArgs' "$BATS_TEST_TMPDIR/kubeadm-join-seen.yaml"
    assert_output '  kubeletExtraArgs: [{"name": "node-ip", "value": "10.0.0.51"}, {"name": "provider-id", "value": "openstack:///11111111-2222-3333-4444-555555555555"}, {"name": "cloud-provider", "value": "external"}]'
    refute_called 'kubectl .* apply .*'
    [ ! -e "$CELTIC_ETC/secrets/application-credential.json" ]
}

@test "a server whose instance id is not a Nova uuid gets no provider id: the controller finds it by name" {
    export CELTIC_NODE_ID=testnode-0
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_success
    run grep -F 'kubeletExtraArgs' "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_output '  kubeletExtraArgs: [{"name": "node-ip", "value": "10.0.0.11"}, {"name": "cloud-provider", "value": "external"}]'
}

@test "a second run applies nothing again and writes nothing" {
    kube_params master '{"cloud_provider_enabled": true, "cinder_csi_enabled": true}'
    run_master
    assert_success
    calls_before=$(wc -l <"$CALLS")
    run_master
    assert_success
    run calls_since "$calls_before"
    refute_line --regexp '^kubectl .* apply'
}

@test "after a rotation, master.sh cloud-config re-applies the Secret with the new credential" {
    kube_params master '{"cloud_provider_enabled": true}'
    run_master
    assert_success
    # celtic-vendordata now serves the rotated credential
    sed -i "s/$APPCRED_SECRET/rotated-Secret-42/" "$CELTIC_ETC/secrets/application-credential.json"
    write_vendordata master
    sed -i "s/rotated-Secret-42/ignored-local-copy/" "$CELTIC_ETC/secrets/application-credential.json"
    calls_before=$(wc -l <"$CALLS")
    run bash "$FRAGMENTS/master.sh" cloud-config
    assert_success
    run calls_since "$calls_before"
    assert_line --regexp '^kubectl .* apply .*celtic-cloud-config.yaml'
    refute_line --regexp '^kubectl .* apply .*openstack-cloud-controller-manager.yaml'
    run secret_file cloud.conf
    assert_line 'application-credential-secret = "rotated-Secret-42"'
    run grep -rlF 'rotated-Secret-42' "$CALLS" "$CELTIC_LOG_FILE"
    assert_failure
}

@test "master.sh cloud-config on a cluster without either label says so" {
    kube_params master
    run bash "$FRAGMENTS/master.sh" cloud-config
    assert_failure
    assert_output --partial 'neither cloud_provider_enabled nor cinder_csi_enabled is set'
}
