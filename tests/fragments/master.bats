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

# master.sh: master 0 initialises the cluster behind the VIP, the other masters join
# the control plane; every run after the first changes nothing.

load helpers
load kube_stubs

setup() {
    kube_test_setup
    kube_params master
}

run_master() {
    run bash "$FRAGMENTS/master.sh"
}

# line_of PATTERN: the number of the first call matching PATTERN (extended regex).
line_of() {
    grep -nE "^$1" "$CALLS" | head -n 1 | cut -d: -f1
}

@test "master 0: membership, VIP, then kubeadm init, CNI, addons, Ready; signals SUCCESS" {
    kube_with_heat
    run_master
    assert_success
    assert_called 'ha_cluster_setup master 10.0.0.11 10.0.0.12 10.0.0.13'
    assert_called 'api_vip_setup '
    assert_called "kubeadm init --config $CELTIC_ETC/kubeadm/init.yaml"
    [ "$(line_of ha_cluster_setup)" -lt "$(line_of api_vip_setup)" ]
    [ "$(line_of api_vip_setup)" -lt "$(line_of 'kubeadm init')" ]
    [ "$(line_of 'kubeadm init')" -lt "$(line_of 'kubectl .* apply .*cni-flannel.yaml')" ]
    assert_called 'kubectl .* apply .*celtic-lb-rbac.yaml'
    assert_called 'kubectl .* apply .*storage.yaml'
    assert_called 'kubectl .* apply .*ingress-traefik.yaml'
    assert_called 'kubectl .* apply .*metrics-server.yaml'
    assert_called 'kubectl --kubeconfig .*/etc/kubernetes/admin.conf get node testnode-0 .*'
    refute_called 'kubeadm join.*'
    [ "$(signal_field 1 status)" = SUCCESS ]
    [ "$(signal_field 1 reason)" = "testnode-0: master ready" ]
    # the report's id names its server: a master replacing a removed one of the same
    # name is not taken for it (doc/master-resize.md)
    [ "$(signal_field 1 id)" = "testnode-0 $CELTIC_NODE_ID" ]
}

@test "master 0's kubeadm config: VIP endpoint, SANs, token ttl 0, CIDRs, own bind address" {
    run_master
    assert_success
    [ "$(stat -c %a "$CELTIC_ETC/kubeadm/init.yaml")" = 600 ]
    run cat "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_line 'controlPlaneEndpoint: "10.0.0.100:6443"'
    assert_line '  certSANs: ["10.0.0.100", "172.24.4.50", "10.0.0.11", "10.0.0.12", "10.0.0.13", "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]'
    assert_line "  - token: \"$TOKEN\""
    assert_line '    ttl: 0s'
    assert_line '  podSubnet: "10.100.0.0/16"'
    assert_line 'kubernetesVersion: "v1.36.10"'
    assert_line '  advertiseAddress: "10.0.0.11"'
    assert_line '  ignorePreflightErrors: [Port-6443]'
    run cat "$CELTIC_ETC/kubeadm/patches/kube-apiserver+json.yaml"
    assert_line '  value: --bind-address=10.0.0.11'
}

@test "Magnum's CAs and the service-account key are placed for kubeadm, sa.pub derived" {
    run_master
    assert_success
    pki=$ROOT/etc/kubernetes/pki
    for f in ca.crt etcd/ca.crt front-proxy-ca.crt sa.pub; do
        [ "$(stat -c %a "$pki/$f")" = 644 ]
    done
    for f in ca.key etcd/ca.key front-proxy-ca.key sa.key; do
        [ "$(stat -c %a "$pki/$f")" = 600 ]
    done
    cmp "$CELTIC_ETC/secrets/etcd-ca.key" "$pki/etcd/ca.key"
    cmp "$CELTIC_ETC/pki/front-proxy-ca.crt" "$pki/front-proxy-ca.crt"
    assert_called "openssl pkey -in $pki/sa.key -pubout"
    run cat "$pki/sa.pub"
    assert_line sa-pub
}

@test "a second run changes nothing: no init, no download, no apply, no write" {
    run_master
    assert_success
    calls_before=$(wc -l <"$CALLS")
    log_before=$(wc -l <"$CELTIC_LOG_FILE")
    run_master
    assert_success
    run calls_since "$calls_before"
    refute_line --regexp '^kubeadm (init|join|reset)'
    refute_line --regexp '^(apt-get -o DPkg::Lock::Timeout=600 install|gpg|sysctl)'
    # the only request is the report to the signal relay: nothing is downloaded again
    [ "$(calls_since "$calls_before" | grep '^curl' | grep -vc " $RELAY_URL\$")" -eq 0 ]
    refute_line --regexp '^systemctl (restart|daemon-reload)'
    refute_line --regexp '^kubectl .* apply'
    run log_since "$log_before"
    refute_line --partial 'wrote '
}

@test "addons follow the features: no proxies, no storage, no ingress" {
    kube_params master '{"proxy_addresses": null, "storage_addresses": null,
        "ingress_controller": "traefik"}'
    run_master
    assert_success
    assert_called 'kubectl .* apply .*cni-flannel.yaml'
    refute_called 'kubectl .* apply .*(celtic-lb-rbac|storage|ingress-traefik).yaml'
    # metrics-server is on every cluster
    assert_called 'kubectl .* apply .*metrics-server.yaml'
    kube_params master '{"ingress_controller": "none"}'
    run_master
    assert_called 'kubectl .* apply .*celtic-lb-rbac.yaml'
    refute_called 'kubectl .* apply .*ingress-traefik.yaml'
}

@test "the registry prefix reaches kubeadm, the CNI and the addons" {
    kube_params master '{"container_infra_prefix": "registry.example.com/mirror/"}'
    run_master
    assert_success
    run cat "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
    assert_line 'imageRepository: "registry.example.com/mirror"'
    run grep -h 'image:' "$BATS_TEST_TMPDIR"/applied/*.yaml
    refute_line --regexp 'image: ["\x27]?(ghcr|docker)\.io'
    assert_line --partial 'registry.example.com/mirror/flannel:v0.28.9'
    assert_line --partial "'registry.example.com/mirror/traefik:v3.5.0'"
    assert_line --partial 'registry.example.com/mirror/metrics-server:v0.8.0'
}

@test "another master waits for the VIP and joins the control plane with the disk's certificates" {
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=testnode-1
    run_master
    assert_success
    assert_called 'api_vip_setup '
    assert_called 'curl .* https://10.0.0.100:6443/version'
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubeadm=1.36.2-1.1 .*'
    assert_called "kubeadm join --config $CELTIC_ETC/kubeadm/join.yaml"
    refute_called 'kubeadm init.*'
    refute_called 'kubectl .* apply.*'
    refute_called '.*(certificate-key|upload-certs).*'
    [ "$(line_of 'curl .*/version')" -lt "$(line_of 'kubeadm join')" ]
    assert [ -s "$ROOT/etc/kubernetes/pki/ca.key" ]
    run cat "$BATS_TEST_TMPDIR/kubeadm-join-seen.yaml"
    assert_line 'controlPlane:'
    assert_line '  localAPIEndpoint: {advertiseAddress: "10.0.0.12", bindPort: 6443}'
    assert_line '  taints: [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]'
    refute_line --partial certificateKey
    run cat "$CELTIC_ETC/kubeadm/patches/kube-apiserver+json.yaml"
    assert_line '  value: --bind-address=10.0.0.12'
}

@test "a failed kubeadm init signals FAILURE with the node and step, never the token" {
    kube_with_heat
    export FAKE_INIT_RC=1
    run_master
    assert_failure
    [ "$(grep -c '^kubeadm init' "$CALLS")" = 2 ]
    assert_called 'kubeadm reset --force'
    [ "$(signal_field 1 status)" = FAILURE ]
    run signal_field 1 reason
    assert_output --partial 'testnode-0: step kubeadm-init failed: kubeadm init failed'
    run grep -rF "$TOKEN" "$CALLS" "$CELTIC_LOG_FILE" "$SIGNALS"
    assert_failure
}

@test "master 0: an init that fails after kubeadm reset is retried with Magnum's CA, not a new one" {
    kube_with_heat
    export FAKE_INIT_FAILS=1
    run_master
    assert_success
    [ "$(grep -c '^kubeadm init' "$CALLS")" = 2 ]
    assert_called 'kubeadm reset --force'
    [ "$(line_of 'kubeadm reset')" -lt "$(grep -n '^kubeadm init' "$CALLS" | sed -n 2p | cut -d: -f1)" ]
    run cat "$BATS_TEST_TMPDIR/pki-seen"
    assert_output $'init magnum-ca\ninit magnum-ca'
    cmp "$ROOT/etc/kubernetes/pki/ca.key" "$CELTIC_ETC/secrets/ca.key"
    [ "$(signal_field 1 status)" = SUCCESS ]
}

@test "a joining master retried after kubeadm reset still finds the shared certificates" {
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=testnode-1 FAKE_JOIN_FAILS=2
    run_master
    assert_success
    [ "$(grep -c '^kubeadm join' "$CALLS")" = 3 ]
    [ "$(grep -c '^kubeadm reset --force' "$CALLS")" = 2 ]
    run cat "$BATS_TEST_TMPDIR/pki-seen"
    assert_output $'join magnum-ca\njoin magnum-ca\njoin magnum-ca'
    for f in ca.key sa.key etcd/ca.key front-proxy-ca.key; do
        assert [ -s "$ROOT/etc/kubernetes/pki/$f" ]
    done
}

@test "a master whose address is not in master_addresses fails at step identity" {
    kube_with_heat
    export CELTIC_NODE_IP=10.0.0.99
    run_master
    assert_failure
    run signal_field 1 reason
    assert_output --partial 'step identity failed: this node'"'"'s address 10.0.0.99 is not in master_addresses'
}

@test "with a proxy, containerd and kubelet get drop-ins and apt its proxy" {
    kube_params master '{"http_proxy": "http://proxy.example:3128",
        "https_proxy": "http://proxy.example:3128", "no_proxy": "10.0.0.100,.svc"}'
    run_master
    assert_success
    for unit in containerd kubelet; do
        run cat "$ROOT/etc/systemd/system/$unit.service.d/http-proxy.conf"
        assert_line 'Environment="NO_PROXY=10.0.0.100,.svc"'
    done
    assert [ -s "$ROOT/etc/apt/apt.conf.d/90celtic-proxy" ]
}

@test "master.sh sources with the real HA and API VIP modules" {
    [[ -f "$FRAGMENTS/node/ha.sh" && -f "$FRAGMENTS/node/api_vip.sh" ]] ||
        skip "node/ha.sh or node/api_vip.sh not written yet"
    run bash -c "CELTIC_LIB_DIR='$FRAGMENTS' source '$FRAGMENTS/master.sh' &&
        declare -F ha_cluster_setup api_vip_setup kube_cni master_main"
    assert_success
}

@test "every master ends its boot with celtic-members.timer, after the node is Ready" {
    kube_with_heat
    export MEMBERS_UNIT_DIR="$ROOT/etc/systemd/system"
    run_master
    assert_success
    assert_called 'systemctl enable --now celtic-members.timer'
    [ "$(line_of 'kubectl --kubeconfig .*admin.conf get node testnode-0')" -lt \
        "$(line_of 'systemctl enable --now celtic-members.timer')" ]
    grep -q "ExecStart=/bin/bash $CELTIC_LIB_DIR/master.sh members" \
        "$MEMBERS_UNIT_DIR/celtic-members.service"
}

@test "master.sh members: the timer's run applies the member list; it reports only while a removal is pending" {
    kube_with_heat
    export HA_COROSYNC_DIR="$ROOT/etc/corosync"
    mkdir -p "$HA_COROSYNC_DIR" "$ROOT/metadata/openstack/latest"
    printf 'ring0_addr: 10.0.0.11\n' >"$HA_COROSYNC_DIR/corosync.conf"
    meta="$ROOT/metadata/openstack/latest/meta_data.json"
    printf '{"meta": {"celtic_members": "10.0.0.11 10.0.0.12 10.0.0.13", "celtic_removal": ""}}\n' >"$meta"
    run bash "$FRAGMENTS/master.sh" members
    assert_success
    assert_called 'api_vip_setup '
    refute_called 'kubeadm .*'
    [ ! -s "$SIGNALS" ]
    # the first update of a removal: master 0 reports to the members handle
    printf '{"meta": {"celtic_members": "10.0.0.11 10.0.0.12 10.0.0.13", "celtic_removal": "10.0.0.14 10.0.0.15"}}\n' >"$meta"
    run bash "$FRAGMENTS/master.sh" members
    assert_success
    [ "$(signal_field 1 handle)" = members ]
    [ "$(signal_field 1 id)" = members ]
    [ "$(signal_field 1 status)" = SUCCESS ]
    [ "$(signal_field 1 reason)" = "testnode-0: masters 10.0.0.14 10.0.0.15 left Kubernetes, etcd, corosync and HAProxy" ]
}

@test "auto_healing_enabled=true: every master ends its boot with celtic-heal.timer too" {
    kube_params master '{"auto_healing_enabled": true}'
    kube_with_heat
    export HEAL_UNIT_DIR="$ROOT/etc/systemd/system"
    run_master
    assert_success
    assert_called 'systemctl enable --now celtic-heal.timer'
    [ "$(line_of 'systemctl enable --now celtic-members.timer')" -lt \
        "$(line_of 'systemctl enable --now celtic-heal.timer')" ]
    grep -q "ExecStart=/bin/bash $CELTIC_LIB_DIR/master.sh heal" \
        "$HEAL_UNIT_DIR/celtic-heal.service"
    grep -q "OnUnitActiveSec=60" "$HEAL_UNIT_DIR/celtic-heal.timer"
}

@test "without auto_healing_enabled no healer: no celtic-heal unit, and master.sh heal does nothing" {
    kube_with_heat
    export HEAL_UNIT_DIR="$ROOT/etc/systemd/system"
    run_master
    assert_success
    refute_called 'systemctl enable --now celtic-heal.timer'
    [ ! -e "$HEAL_UNIT_DIR/celtic-heal.service" ]
    : >"$CALLS"
    : >"$SIGNALS"
    run bash "$FRAGMENTS/master.sh" heal
    assert_success
    assert_output --partial 'auto_healing_enabled is not true'
    refute_called 'kubectl .*'
    refute_called 'curl .*'
    [ ! -s "$SIGNALS" ]
}
