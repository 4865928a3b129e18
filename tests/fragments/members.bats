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

# node/members.sh: a master count change on the running masters. Master 0 checks etcd on
# the masters that stay, drains each leaving master, removes its etcd member and its
# Node before the corosync nodelist shrinks; every remaining master re-renders HAProxy
# + corosync through api_vip_setup; a leaving master stops pacemaker and corosync; while
# a removal is pending master 0 reports to the members handle; a rerun with nothing to
# change changes nothing.

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
    # the report, recorded (lib.bats covers the real celtic_signal): handle, id, status,
    # reason
    celtic_signal() {
        echo "celtic_signal ${CELTIC_SIGNAL_HANDLE:-} ${CELTIC_SIGNAL_ID:-} $*" >>"$CALLS"
    }
    stub crm_node
    # systemctl: units active and enabled until stopped / disabled ($ROOT/units)
    : >"$ROOT/units"
    stub_script systemctl '
unit=${*: -1}
case "$1" in
  is-active) ! grep -qx "stopped $unit" "$ROOT/units" ;;
  is-enabled) ! grep -qx "disabled $unit" "$ROOT/units" ;;
  stop) echo "stopped $unit" >>"$ROOT/units" ;;
  disable) echo "disabled $unit" >>"$ROOT/units" ;;
esac'
    # kubectl: the masters' Nodes and an etcd member list, as the cluster has them
    # (state in $ROOT/etcd: one "id address name" a line; $ROOT/nodes: "name address")
    stub_script kubectl '
case "$*" in
  *" get nodes "*) cat "$ROOT/nodes" 2>/dev/null ;;
  *" endpoint health"*) exit 0 ;;
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

# wanted ADDRESS...: the server metadata Heat set (celtic_members); REMOVAL: celtic_removal
wanted() {
    printf '{"uuid": "x", "meta": {"celtic_role": "master", "celtic_members": "%s", "celtic_removal": "%s"}}\n' \
        "$*" "${REMOVAL:-}" >"$ROOT/metadata/openstack/latest/meta_data.json"
}

line_of() {
    grep -nE "^$1" "$CALLS" | head -n 1 | cut -d: -f1
}

@test "5 -> 3 on master 0: master 4 then 3 drained, out of etcd, Node deleted, then corosync, then crm_node" {
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_called 'kubectl --kubeconfig .*/admin.conf -n kube-system exec etcd-testnode-0 -- etcdctl --endpoints=https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health'
    assert_called 'kubectl --kubeconfig .*/admin.conf drain demo-master-4 --ignore-daemonsets --delete-emptydir-data --timeout=300s'
    assert_called 'kubectl --kubeconfig .*/admin.conf -n kube-system exec etcd-testnode-0 -- etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key member remove id4'
    assert_called 'kubectl .* member remove id3'
    assert_called 'kubectl .* delete node demo-master-4 --ignore-not-found'
    assert_called 'api_vip_setup 10.0.0.11 10.0.0.12 10.0.0.13'
    assert_called 'crm_node --force --remove master-4'
    assert_called 'crm_node --force --remove master-3'
    # the order: etcd health; the highest index first; drain, etcd, Node; then corosync;
    # then pacemaker
    [ "$(line_of 'kubectl .* endpoint health')" -lt "$(line_of 'kubectl .* drain demo-master-4')" ]
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

@test "a leaving master stops and disables pacemaker, then corosync; nothing else; a rerun changes nothing" {
    export CELTIC_NODE_IP=10.0.0.15 CELTIC_NODE_NAME=demo-master-4
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_reconcile
    assert_success
    assert_output --partial 'it is leaving'
    assert_called 'systemctl stop pacemaker'
    assert_called 'systemctl disable pacemaker'
    assert_called 'systemctl stop corosync'
    assert_called 'systemctl disable corosync'
    [ "$(line_of 'systemctl stop pacemaker')" -lt "$(line_of 'systemctl stop corosync')" ]
    refute_called 'kubectl .*'
    refute_called 'crm_node .*'
    refute_called 'api_vip_setup .*'
    run members_reconcile
    assert_success
    [ "$(grep -c -E '^systemctl (stop|disable)' "$CALLS")" -eq 4 ]
}

@test "etcd unhealthy on a master that stays: nothing is removed, the step names them" {
    cluster 5
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    stub_script kubectl '
case "$*" in
  *" endpoint health"*) exit 1 ;;
  *" get nodes "*) cat "$ROOT/nodes" ;;
esac
exit 0'
    run members_reconcile
    assert_failure
    assert_output --partial 'etcd is not healthy on every master that stays (10.0.0.11 10.0.0.12 10.0.0.13): no master was removed'
    refute_called 'kubectl .* drain .*'
    refute_called 'kubectl .* member remove .*'
    refute_called 'api_vip_setup .*'
}

@test "removal pending: master 0 reports SUCCESS to the members handle once they are out, at every run" {
    cluster 5
    REMOVAL="10.0.0.14 10.0.0.15" wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_run
    assert_success
    assert_called 'celtic_signal members members SUCCESS testnode-0: masters 10.0.0.14 10.0.0.15 left Kubernetes, etcd, corosync and HAProxy'
    [ "$(line_of 'crm_node --force --remove master-3')" -lt "$(line_of 'celtic_signal')" ]
    : >"$CALLS"
    run members_run
    assert_success
    run cat "$CALLS"
    assert_output 'celtic_signal members members SUCCESS testnode-0: masters 10.0.0.14 10.0.0.15 left Kubernetes, etcd, corosync and HAProxy'
}

@test "removal pending, a drain blocked: master 0 reports FAILURE naming the step and the master; fixed, the next run reports SUCCESS" {
    cluster 3
    REMOVAL="10.0.0.13" wanted 10.0.0.11 10.0.0.12
    cp "$STUBS/kubectl" "$ROOT/kubectl.good"
    stub_script kubectl '
case "$*" in
  *" get nodes "*) cat "$ROOT/nodes" ;;
  *" drain "*) exit 1 ;;
esac
exit 0'
    run members_run
    assert_failure
    assert_called 'celtic_signal members members FAILURE testnode-0: removing masters 10.0.0.13: step leave-master-2 failed: cannot drain master demo-master-2 \(10.0.0.13\) in 300s: a PodDisruptionBudget may block it'
    refute_called 'kubectl .* member remove .*'
    cp "$ROOT/kubectl.good" "$STUBS/kubectl"
    : >"$CALLS"
    run members_run
    assert_success
    assert_called 'kubectl .* member remove id2'
    assert_called 'celtic_signal members members SUCCESS .*'
}

@test "removal pending: the other masters that stay do not report" {
    export CELTIC_NODE_IP=10.0.0.12 CELTIC_NODE_NAME=demo-master-1
    cluster 5
    REMOVAL="10.0.0.14 10.0.0.15" wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_run
    assert_success
    assert_called 'api_vip_setup 10.0.0.11 10.0.0.12 10.0.0.13'
    refute_called 'celtic_signal .*'
}

@test "no removal pending: master 0 reports nothing" {
    cluster 3
    wanted 10.0.0.11 10.0.0.12 10.0.0.13
    run members_run
    assert_success
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

@test "metadata unreadable: nothing changes (never params.json's boot-time list)" {
    cluster 3
    rm -f "$ROOT/metadata/openstack/latest/meta_data.json"
    # master 0 booted alone: its params.json names only itself
    CELTIC_MASTER_ADDRESSES="10.0.0.11" run members_reconcile
    assert_success
    assert_output --partial 'no member list'
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
