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

# node/autoscaler.sh through master.sh: the provider service and the cluster-autoscaler
# manifest only when auto_scaling_enabled is true; the credential stays 0600 and the
# provider's TLS material is real (openssl is not stubbed where it is made).

load helpers
load kube_stubs

setup() {
    kube_test_setup
    # the client key goes to the user cluster-autoscaler runs as: here, whoever runs bats
    export AUTOSCALER_CLIENT_UID
    AUTOSCALER_CLIENT_UID=$(id -u)
    export AUTOSCALER_DIR="$CELTIC_ETC/autoscaler"
    export AUTOSCALER_UNIT_DIR="$ROOT/etc/systemd/system"
    cp "$FRAGMENTS/manifests/cluster-autoscaler.yaml" "$CELTIC_LIB_DIR/manifests/"
}

# credential: the cluster's application credential, as celtic-vendordata serves it
# (kube_params packs secrets/ into the node's vendordata).
credential() {
    printf '%s\n' '{"auth_url": "http://keystone.test/v3", "region_name": "RegionOne",
 "application_credential_id": "ac-1", "application_credential_secret": "s3cret-value",
 "project_id": "p-1"}' >"$CELTIC_ETC/secrets/application-credential.json"
}

# certificates_exist: what a first run left (openssl is a stub in the master tests).
certificates_exist() {
    mkdir -p "$AUTOSCALER_DIR"
    for f in ca.crt server.crt server.key client.crt client.key; do
        printf 'x\n' >"$AUTOSCALER_DIR/$f"
    done
}

@test "auto_scaling_enabled false: no provider, no autoscaler manifest" {
    credential
    kube_params master '{"auto_scaling_enabled": false}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert_called 'kubectl .* apply .*metrics-server.yaml'
    refute_called 'kubectl .* apply .*cluster-autoscaler.yaml'
    refute_called 'systemctl .*celtic-autoscaler-provider'
    [ ! -e "$AUTOSCALER_UNIT_DIR/celtic-autoscaler-provider.service" ]
    [ ! -e "$AUTOSCALER_DIR" ]
}

@test "auto_scaling_enabled true: master 0 applies the pinned autoscaler, runs the provider, credential 0600" {
    credential
    certificates_exist
    kube_params master '{"auto_scaling_enabled": true}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert_called 'kubectl .* apply .*cluster-autoscaler.yaml'
    assert_called 'apt-get .*install .*python3-grpcio python3-protobuf.*'
    assert_called 'systemctl restart celtic-autoscaler-provider'
    run grep -h 'image:' "$BATS_TEST_TMPDIR"/applied/cluster-autoscaler.yaml
    assert_output --partial 'registry.k8s.io/autoscaling/cluster-autoscaler:v1.36.1'
    run grep -h -- '--cloud-provider=externalgrpc' "$BATS_TEST_TMPDIR"/applied/cluster-autoscaler.yaml
    assert_success
    [ "$(stat -c %a "$CELTIC_ETC/secrets/application-credential.json")" = 600 ]
    unit=$AUTOSCALER_UNIT_DIR/celtic-autoscaler-provider.service
    grep -q -- "--credential $CELTIC_ETC/secrets/application-credential.json" "$unit"
    grep -q -- '--cluster-uuid 5d12f6fd-0000-4000-8000-000000000001' "$unit"
    grep -q -- "--listen 127.0.0.1:8086 --tls-dir $AUTOSCALER_DIR" "$unit"
    grep -q -- "ExecStart=/usr/bin/python3 -I $CELTIC_LIB_DIR/autoscaler/celtic_autoscaler.py" "$unit"
    run cat "$AUTOSCALER_DIR/cloud-config.yaml"
    assert_line 'address: "127.0.0.1:8086"'
    assert_line "key: \"$AUTOSCALER_DIR/client.key\""
    # the secret is on no command line, in no unit and in no log
    run grep -rl 's3cret-value' "$AUTOSCALER_UNIT_DIR" "$AUTOSCALER_DIR" "$CALLS" "$CELTIC_LOG_FILE"
    assert_failure 1
}

@test "the registry prefix reaches the autoscaler's image" {
    credential
    certificates_exist
    kube_params master '{"auto_scaling_enabled": true,
        "container_infra_prefix": "registry.example.com/mirror/"}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    run grep -h 'image:' "$BATS_TEST_TMPDIR"/applied/cluster-autoscaler.yaml
    assert_output --partial 'registry.example.com/mirror/cluster-autoscaler:v1.36.1'
}

@test "another master runs the provider too, but applies nothing" {
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=testnode-1
    credential
    certificates_exist
    kube_params master '{"auto_scaling_enabled": true}'
    run bash "$FRAGMENTS/master.sh"
    assert_success
    assert_called 'systemctl restart celtic-autoscaler-provider'
    refute_called 'kubectl .* apply .*'
}

@test "no credential delivered: step autoscaler-provider fails and says why" {
    kube_with_heat
    certificates_exist
    kube_params master '{"auto_scaling_enabled": true}'
    run bash "$FRAGMENTS/master.sh"
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    run signal_field 1 reason
    assert_output --partial 'autoscaler-provider'
    assert_output --partial 'application credential was not delivered'
}

@test "the provider's TLS: a server certificate for 127.0.0.1 and a client one, one CA, no CA key kept" {
    rm -f "$STUBS/openssl"
    run bash -c "source '$FRAGMENTS/lib/celtic.sh' && source '$FRAGMENTS/node/autoscaler.sh' &&
        autoscaler_tls"
    assert_success
    [ "$(stat -c %a "$AUTOSCALER_DIR/server.key")" = 600 ]
    [ "$(stat -c %a "$AUTOSCALER_DIR/client.key")" = 400 ]
    [ "$(stat -c %u "$AUTOSCALER_DIR/client.key")" = "$AUTOSCALER_CLIENT_UID" ]
    [ ! -e "$AUTOSCALER_DIR/ca.key" ]
    run find "$ROOT" -name 'ca.key' -path '*autoscaler*'
    assert_output ''
    openssl verify -CAfile "$AUTOSCALER_DIR/ca.crt" "$AUTOSCALER_DIR/server.crt" \
        "$AUTOSCALER_DIR/client.crt"
    run openssl x509 -in "$AUTOSCALER_DIR/server.crt" -noout -ext subjectAltName,extendedKeyUsage
    assert_output --partial 'IP Address:127.0.0.1'
    assert_output --partial 'TLS Web Server Authentication'
    run openssl x509 -in "$AUTOSCALER_DIR/client.crt" -noout -ext extendedKeyUsage
    assert_output --partial 'TLS Web Client Authentication'
    # a second run keeps them
    before=$(sha256sum "$AUTOSCALER_DIR/server.crt")
    run bash -c "source '$FRAGMENTS/lib/celtic.sh' && source '$FRAGMENTS/node/autoscaler.sh' &&
        autoscaler_tls"
    assert_success
    [ "$(sha256sum "$AUTOSCALER_DIR/server.crt")" = "$before" ]
}
