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

# node/members.sh: a master count change on the running masters. Master 0 drains each
# leaving master, removes its etcd member and its Node before the corosync nodelist
# shrinks; every remaining master re-renders HAProxy + corosync through api_vip_setup;
# a rerun with nothing to change changes nothing.

load helpers

setup() {
    celtic_test_setup
    export HA_COROSYNC_DIR="$ROOT/etc/corosync"
    export MEMBERS_UNIT_DIR="$ROOT/etc/systemd/system"
    mkdir -p "$HA_COROSYNC_DIR" "$ROOT/metadata/openstack/latest"
    # shellcheck source=/dev/null
    source "$FRAGMENTS/lib/celtic.sh"
    # shellcheck source=/dev/null
    source "$FRAGMENTS/node/members.sh"
    KUBE_ETC="$ROOT/etc/kubernetes"
    stub crm_node
    stub systemctl
    # kubectl: the masters' Nodes and an etcd member list, as the cluster has them
    # (state in $ROOT/etcd: one "id address name" a line; $ROOT/nodes: "name address")
    stub_script kubectl '
case "$*" in
  *" get nodes "*) cat "$ROOT/nodes" 2>/dev/null ;;
  *" member list "*)
    while read -r id ip name; do
      echo "$id, started, $name, https://$ip:2380, https://$ip:2379, false"
    done <"$ROOT/etcd" ;;
  *" member remove "*) id=${*: -1}; grep -v "^$id " "$ROOT/etcd" >"$ROOT/etcd.new" || true
    mv "$ROOT/etcd.new" "$ROOT/etcd" ;;
  *" delete node "*) name=$(echo "$*" | sed "s/.* delete node \([^ ]*\).*/\1/")
    grep -v "^$name " "$ROOT/nodes" >"$ROOT/nodes.new" || true; mv "$ROOT/nodes.new" "$ROOT/nodes" ;;
esac
exit 0'
}

# api_vip_setup plays the real one's effect on corosync.conf (its own bats cover it).
api_vip_setup() {
    echo "api_vip_setup $CELTIC_MASTER_ADDRESSES" >>"$CALLS"
    local a i=0
    for a in $CELTIC_MASTER_ADDRESSES; do
        printf 'node {\n    name: master-%d\n    ring0_addr: %s\n}\n' "$i" "$a"
        i=$((i + 1))
    done >"$HA_COROSYNC_DIR/corosync.conf"
}

# cluster N: a running cluster of N masters 10.0.0.11.. (this node is master 0)
cluster() {
    local i
    : >"$ROOT/etcd"
    : >"$ROOT/nodes"
    addresses=()
    for ((i = 0; i < $1; i++)); do
        addresses+=("10.0.0.1$((i + 1))")
        echo "id$i 10.0.0.1$((i + 1)) demo-master-$i" >>"$ROOT/etcd"
        echo "demo-master-$i 10.0.0.1$((i + 1))" >>"$ROOT/nodes"
    done
    CELTIC_MASTER_ADDRESSES="${addresses[*]}" api_vip_setup
    : >"$CALLS"
}

# wanted ADDRESS...: the server metadata Heat set (celtic_members)
wanted() {
    printf '{"uuid": "x", "meta": {"celtic_role": "master", "celtic_members": "%s"}}\n' "$*" \
        >"$ROOT/metadata/openstack/latest/meta_data.json"
}

line_of() {
    grep -nE "^$1" "$CALLS" | head -n 1 | cut -d: -f1
}

@test "5 -> 3 on master 0: master 4 then 3 drained, out of etcd, Node deleted, then corosync, then crm_node" {
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_called 'kubectl --kubeconfig .*/admin.conf drain demo-master-4 --ignore-daemonsets --delete-emptydir-data --timeout=300s'
    assert_called 'kubectl --kubeconfig .*/admin.conf -n kube-system exec etcd-testnode-0 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member remove id4'
    assert_called 'kubectl .* member remove id3'
    assert_called 'kubectl .* delete node demo-master-4 --ignore-not-found'
    assert_called 'api_vip_setup 10.0.0.11 10.0.0.12 10.0.0.13'
    assert_called 'crm_node --force --remove master-4'
    assert_called 'crm_node --force --remove master-3'
    # the order: the highest index first; drain, etcd, Node; then corosync; then pacemaker
    [ "$(line_of 'kubectl .* drain demo-master-4')" -lt "$(line_of 'kubectl .* member remove id4')" ]
    [ "$(line_of 'kubectl .* member remove id4')" -lt "$(line_of 'kubectl .* delete node demo-master-4')" ]
    [ "$(line_of 'kubectl .* delete node demo-master-4')" -lt "$(line_of 'kubectl .* drain demo-master-3')" ]
    [ "$(line_of 'kubectl .* delete node demo-master-3')" -lt "$(line_of api_vip_setup)" ]
    [ "$(line_of api_vip_setup)" -lt "$(line_of 'crm_node --force --remove master-4')" ]
    run cat "$ROOT/etcd"
    assert_output $'id0 10.0.0.11 demo-master-0\nid1 10.0.0.12 demo-master-1\nid2 10.0.0.13 demo-master-2'
}

@test "5 -> 3 rerun, and a rerun after a half-done run: nothing is removed twice" {
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    # a first run that stopped after master 4 left etcd (its Node still there)
    grep -v '^id4 ' "$ROOT/etcd" >"$ROOT/etcd.new" && mv "$ROOT/etcd.new" "$ROOT/etcd"
    run members_reconcile
    assert_success
    refute_called 'kubectl .* member remove id4'
    assert_called 'kubectl .* delete node demo-master-4 --ignore-not-found'
    : >"$CALLS"
    run members_reconcile
    assert_success
    [ ! -s "$CALLS" ]
}

@test "5 -> 3 on a remaining master that is not master 0: corosync and HAProxy only" {
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=demo-master-1
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_called 'api_vip_setup 10.0.0.11 10.0.0.12 10.0.0.13'
    refute_called 'kubectl .*'
    refute_called 'crm_node .*'
}

@test "a leaving master does nothing: master 0 removes it" {
    export CELTIC_NODE_IP=10.0.0.15 CELTIC_NODE_NAME=demo-master-4
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_output --partial 'it is leaving'
    [ ! -s "$CALLS" ]
}

@test "1 -> 3 on master 0: the nodelist and HAProxy grow, nothing is removed" {
    cluster 1
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_called 'api_vip_setup 10.0.0.11 10.0.0.12 10.0.0.13'
    refute_called 'kubectl .*'
    refute_called 'crm_node .*'
    : >"$CALLS"
    run members_reconcile
    assert_success
    [ ! -s "$CALLS" ]
}

@test "no metadata yet: params.json's master_addresses is the list (no change at first boot)" {
    cluster 3
    rm -f "$ROOT/metadata/openstack/latest/meta_data.json"
    CELTIC_MASTER_ADDRESSES="10.0.0.11 10.0.0.12 10.0.0.13" run members_reconcile
    assert_success
    [ ! -s "$CALLS" ]
}

@test "a drain that times out fails the step naming the master and the PDB" {
    cluster 3
    wanted 10.0.0.11
    stub_script kubectl '
case "$*" in
  *" get nodes "*) cat "$ROOT/nodes" ;;
  *" drain "*) exit 1 ;;
esac
exit 0'
    run members_reconcile
    assert_failure
    assert_output --partial 'cannot drain master demo-master-2 (10.0.0.13) in 300s'
    refute_called 'kubectl .* member remove .*'
    refute_called 'api_vip_setup .*'
}

@test "celtic-members.timer: rendered, enabled; a rerun rewrites nothing" {
    run members_timer
    assert_success
    run cat "$MEMBERS_UNIT_DIR/celtic-members.service"
    assert_line "ExecStart=/bin/bash $FRAGMENTS/master.sh members"
    run cat "$MEMBERS_UNIT_DIR/celtic-members.timer"
    assert_line 'OnUnitActiveSec=30'
    assert_called 'systemctl daemon-reload'
    assert_called 'systemctl enable --now celtic-members.timer'
    : >"$CALLS"
    run members_timer
    refute_called 'systemctl daemon-reload'
}
