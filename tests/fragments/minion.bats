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

# minion.sh: a worker joins through the VIP with the never-expiring token, at the
# apiserver's version, with its pool's labels and taints, after mounting the volume.

load helpers
load kube_stubs

setup() {
    kube_test_setup
    export CELTIC_NODE_NAME=Demo-Default-Worker-3 CELTIC_NODE_IP=10.0.0.51
    kube_params minion
}

run_minion() {
    run bash "$FRAGMENTS/minion.sh"
}

line_of() {
    grep -nE "^$1" "$CALLS" | head -n 1 | cut -d: -f1
}

@test "a minion waits for the VIP, installs the apiserver's version, mounts, joins, is Ready" {
    kube_with_heat
    run_minion
    assert_success
    assert_called 'curl -fsS --max-time 5 --cacert .*/etc/celtic/pki/ca.crt https://10.0.0.100:6443/version'
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubelet=1.36.2-1.1 kubeadm=1.36.2-1.1 kubectl=1.36.2-1.1'
    assert_called 'apt-mark -o DPkg::Lock::Timeout=600 hold kubelet kubeadm kubectl'
    assert_called 'gluster_client_mount '
    assert_called "kubeadm join --config $CELTIC_ETC/kubeadm/join.yaml"
    assert_called 'kubectl --kubeconfig .*/etc/kubernetes/kubelet.conf get node demo-default-worker-3 .*'
    [ "$(line_of 'nft|systemctl restart celtic-metadata-block')" -lt "$(line_of 'kubeadm join')" ]
    [ "$(line_of gluster_client_mount)" -lt "$(line_of 'kubeadm join')" ]
    refute_called 'kubeadm init.*'
    refute_called '(ha_cluster_setup|api_vip_setup).*'
    [ "$(signal_field 1 reason)" = "Demo-Default-Worker-3: minion ready" ]
}

@test "the join configuration: VIP discovery with the token and CA hash, the pool's labels and taints" {
    kube_params minion '{"node_labels": {"celtic.openstack.org/pool": "gpu"},
        "node_taints": [{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]}'
    run_minion
    assert_success
    [ "$(stat -c %a "$CELTIC_ETC/kubeadm/join.yaml")" = 600 ]
    run cat "$BATS_TEST_TMPDIR/kubeadm-join-seen.yaml"
    assert_line '    apiServerEndpoint: "10.0.0.100:6443"'
    assert_line "    token: \"$TOKEN\""
    assert_line "    caCertHashes: [\"sha256:$(printf 'ab%.0s' {1..32})\"]"
    assert_line '  name: "demo-default-worker-3"'
    assert_line '  kubeletExtraArgs: [{"name": "node-ip", "value": "10.0.0.51"}, {"name": "provider-id", "value": "openstack:///11111111-2222-3333-4444-555555555555"}, {"name": "node-labels", "value": "celtic.openstack.org/pool=gpu"}]'
    assert_line '  taints: [{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]'
    refute_line --partial controlPlane
}

@test "no storage nodes: no GlusterFS mount" {
    kube_params minion '{"storage_addresses": null}'
    run_minion
    assert_success
    refute_called 'gluster_client_mount.*'
}

@test "a second run changes nothing: no join, no install, no restart, no write" {
    run_minion
    assert_success
    calls_before=$(wc -l <"$CALLS")
    log_before=$(wc -l <"$CELTIC_LOG_FILE")
    run_minion
    assert_success
    run calls_since "$calls_before"
    refute_line --regexp '^kubeadm (join|reset)'
    refute_line --regexp '^(apt-get -o DPkg::Lock::Timeout=600 install|gpg|sysctl)'
    refute_line --regexp '^systemctl (restart|daemon-reload)'
    run log_since "$log_before"
    refute_line --partial 'wrote '
}

@test "a minion added days later joins the same way (the token has no expiry to check)" {
    run_minion
    assert_success
    # Nothing on the node depends on the date: a later boot renders the same config.
    cp "$CELTIC_ETC/kubeadm/join.yaml" "$BATS_TEST_TMPDIR/first.yaml"
    rm -rf "$ROOT/etc/kubernetes" "$ROOT/dpkg"/kube*
    run_minion
    assert_success
    cmp "$BATS_TEST_TMPDIR/first.yaml" "$CELTIC_ETC/kubeadm/join.yaml"
    [ "$(grep -c '^kubeadm join' "$CALLS")" = 2 ]
}

@test "when the VIP never answers the minion signals FAILURE at step wait-api" {
    kube_with_heat
    export FAKE_API_VERSION=""
    run_minion
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    run signal_field 1 reason
    assert_output --partial 'Demo-Default-Worker-3: step wait-api failed: the API at 10.0.0.100:6443 did not answer within 30s'
    refute_called 'kubeadm.*'
}

@test "a failing join is reset, retried, then signalled without the token" {
    kube_with_heat
    export FAKE_JOIN_RC=1
    run_minion
    assert_failure
    [ "$(grep -c '^kubeadm join' "$CALLS")" = 3 ]
    run signal_field 1 reason
    assert_output --partial 'step kubeadm-join failed'
    run grep -rF "$TOKEN" "$CALLS" "$CELTIC_LOG_FILE" "$SIGNALS"
    assert_failure
}

@test "a missing bootstrap token is named in the failure" {
    kube_with_heat
    rm "$CELTIC_ETC/secrets/bootstrap-token"
    # celtic-vendordata's answer lacks it too
    write_vendordata minion
    run_minion
    assert_failure
    run signal_field 1 reason
    assert_output --partial 'step kubeadm-config failed: secret bootstrap-token was not delivered'
}

@test "minion.sh sources with the real GlusterFS client module" {
    [[ -f "$FRAGMENTS/node/gluster_client.sh" ]] || skip "node/gluster_client.sh not written yet"
    run bash -c "CELTIC_LIB_DIR='$FRAGMENTS' source '$FRAGMENTS/minion.sh' &&
        declare -F gluster_client_mount kube_join minion_main"
    assert_success
}
