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

# members.sh: a master count change on the running masters (doc/master-resize.md).
#
# Heat cannot run anything on a server it does not create, so the running masters learn
# the new member list from their own Nova server metadata (celtic_members: the masters'
# addresses in index order), which Heat updates in place at a master resize, and
# celtic-members.timer runs `master.sh members` every MEMBERS_INTERVAL seconds:
#   a leaving master: pacemaker and corosync stopped and disabled (members_leave)
#   master 0 only, when masters leave: etcd healthy on the masters that stay, then for
#     each leaving master (highest index first): drain, etcd member remove, Node deleted
#   every remaining master: HAProxy backends, corosync nodelist (reloaded), VIP (api_vip.sh)
#   master 0 only: crm_node --remove of the leaving ones; while the celtic_removal
#     metadata names them, a report to the masters' members_handle (members_run), for
#     which the driver waits before it deletes their servers
# A new master needs nothing from here: its first boot joins with the new list
# (kubeadm join --control-plane adds its etcd member). A run with nothing to change
# changes nothing.
#
# Needs lib/celtic.sh, node/ha.sh, node/api_vip.sh and kube_defaults (KUBE_ETC).

MEMBERS_DRAIN_TIMEOUT=${MEMBERS_DRAIN_TIMEOUT:-300}
MEMBERS_UNIT_DIR=${MEMBERS_UNIT_DIR:-${CELTIC_ROOT:-}/etc/systemd/system}
MEMBERS_INTERVAL=${MEMBERS_INTERVAL:-30}

# members_meta KEY: a key of this server's metadata (Nova's metadata service, what Heat
# set), or nothing when the metadata cannot be read or has no such key.
members_meta() {
    local url=${CELTIC_METADATA_URL:-http://169.254.169.254}/openstack/latest/meta_data.json
    celtic_python - "$url" "$1" <<'PY' || true
import json, sys
url, key = sys.argv[1], sys.argv[2]
try:
    if url.startswith('file://'):
        with open(url[len('file://'):], 'rb') as f:
            data = f.read()
    else:
        import http.client
        host, _, path = url[len('http://'):].partition('/')
        conn = http.client.HTTPConnection(host, timeout=30)
        conn.request('GET', '/' + path)
        answer = conn.getresponse()
        if answer.status != 200:
            sys.exit(0)
        data = answer.read()
    print(json.loads(data).get('meta', {}).get(key, ''))
except (OSError, ValueError, AttributeError):
    sys.exit(0)
PY
}

# members_desired: the masters' addresses this cluster should have now, one a line in
# index order: the celtic_members metadata of this server (Heat updates it in place at
# a resize). Nothing when the metadata cannot be read: then nothing changes (never the
# boot-time list of params.json, which a later resize made stale: a master 0 that
# booted alone would take every other master for a leaving one).
members_desired() {
    local words=()
    read -ra words <<<"$(members_meta celtic_members)"
    if [[ ${#words[@]} -gt 0 ]]; then
        printf '%s\n' "${words[@]}"
    fi
}

# members_current: the addresses of this node's corosync nodelist, in nodeid order.
members_current() {
    local conf=$HA_COROSYNC_DIR/corosync.conf
    [[ -r "$conf" ]] || return 0
    awk '$1 == "ring0_addr:" {print $2}' "$conf"
}

# members_kubectl ARGS...: kubectl as cluster admin on this master.
members_kubectl() {
    kubectl --kubeconfig "$KUBE_ETC/admin.conf" "$@"
}

# members_node_of ADDRESS: the Kubernetes Node whose InternalIP is ADDRESS (or nothing).
members_node_of() {
    members_kubectl get nodes -o \
        'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
        awk -v ip="$1" '$2 == ip {print $1; exit}'
}

# members_etcdctl ARGS...: etcdctl in this master's etcd static pod, with kubeadm's
# health-check client certificate.
members_etcdctl() {
    local pki=/etc/kubernetes/pki/etcd
    members_kubectl -n kube-system exec "etcd-$(celtic_node_name)" -- etcdctl \
        --endpoints=https://127.0.0.1:2379 --cacert="$pki/ca.crt" \
        --cert="$pki/healthcheck-client.crt" --key="$pki/healthcheck-client.key" "$@"
}

# members_etcd_check ADDRESS...: etcd answers on every master that stays, before any
# member is removed (a removal with an unhealthy member left could lose etcd's quorum).
members_etcd_check() {
    local endpoints=() address pki=/etc/kubernetes/pki/etcd
    for address in "$@"; do
        endpoints+=("https://$address:2379")
    done
    members_kubectl -n kube-system exec "etcd-$(celtic_node_name)" -- etcdctl \
        --endpoints="$(IFS=,; echo "${endpoints[*]}")" --cacert="$pki/ca.crt" \
        --cert="$pki/healthcheck-client.crt" --key="$pki/healthcheck-client.key" \
        endpoint health >/dev/null ||
        celtic_die "etcd is not healthy on every master that stays ($*): no master was" \
            "removed"
}

# members_etcd_remove ADDRESS: remove the etcd member whose peer URL is ADDRESS:2380;
# already gone is fine.
members_etcd_remove() {
    local address=$1 list id
    list=$(members_etcdctl member list -w simple) ||
        celtic_die "cannot list the etcd members (is etcd on this master healthy?)"
    id=$(awk -F', ' -v peer="https://$address:2380" '$4 == peer {print $1; exit}' <<<"$list")
    if [[ -z "$id" ]]; then
        celtic_info "$address is not an etcd member (already removed)"
        return 0
    fi
    members_etcdctl member remove "$id" >/dev/null ||
        celtic_die "etcd refused to remove member $id ($address)"
}

# members_remove ADDRESS: take a leaving master out of Kubernetes and etcd, in that
# order: its Node drained (workloads moved, bounded), its etcd member removed, the Node
# deleted. Its corosync membership ends with the nodelist reload that follows.
members_remove() {
    local address=$1 node
    node=$(members_node_of "$address") || node=''
    if [[ -n "$node" ]]; then
        members_kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data \
            --timeout="${MEMBERS_DRAIN_TIMEOUT}s" >/dev/null ||
            celtic_die "cannot drain master $node ($address) in ${MEMBERS_DRAIN_TIMEOUT}s:" \
                "a PodDisruptionBudget may block it"
    fi
    members_etcd_remove "$address"
    if [[ -n "$node" ]]; then
        members_kubectl delete node "$node" --ignore-not-found >/dev/null ||
            celtic_die "cannot delete Node $node"
    fi
}

# members_leave: on a master that is leaving: pacemaker (the VIP moves if it was here,
# HAProxy stops) and corosync stopped and disabled, before the masters that stay shrink
# their nodelist: they are a majority of the old one (the driver refuses a shrink where
# they are not), so they keep quorum and the leaving masters never form a quorate
# partition of their own. Its etcd member and Node are master 0's to remove.
members_leave() {
    local unit
    for unit in pacemaker corosync; do
        if systemctl is-active --quiet "$unit"; then
            systemctl stop "$unit" || celtic_die "cannot stop $unit on this leaving master"
        fi
        if systemctl is-enabled --quiet "$unit"; then
            systemctl disable "$unit" >/dev/null 2>&1 ||
                celtic_die "cannot disable $unit on this leaving master"
        fi
    done
}

# members_run: what celtic-members.timer runs (`master.sh members`): members_reconcile,
# then, on master 0 while a removal is pending (the celtic_removal metadata names the
# leaving masters), its report to the masters' members_handle through the relay:
# SUCCESS once they are out, FAILURE naming the step and why. The report is sent at
# every run until the driver's second update clears celtic_removal (a report replaces
# the previous one: same id), so a failure fixed by hand is reported as a success at
# the next run, and running the same resize again completes.
members_run() {
    local rc=0 fail step
    fail=$(mktemp "${TMPDIR:-/tmp}/celtic-members.XXXXXX")
    step=$(mktemp "${TMPDIR:-/tmp}/celtic-members-step.XXXXXX")
    (
        # shellcheck disable=SC2034  # read by celtic_die (lib/celtic.sh)
        CELTIC_FAIL_FILE=$fail
        CELTIC_STEP=members
        trap 'printf "%s\n" "$CELTIC_STEP" >"$step"' EXIT
        members_reconcile
    ) || rc=$?
    members_report "$rc" "$(<"$step")" "$(<"$fail")"
    rm -f "$fail" "$step"
    return "$rc"
}

# members_report RC STEP MESSAGE: master 0's report of a pending removal (members_run).
members_report() {
    local rc=$1 step=$2 message=$3 removal desired=() node
    removal=$(members_meta celtic_removal)
    [[ -n "$removal" ]] || return 0
    mapfile -t desired < <(members_desired)
    [[ ${#desired[@]} -gt 0 && "${desired[0]}" == "$(celtic_node_ip)" ]] || return 0
    node=$(celtic_node_name)
    if [[ $rc -eq 0 ]]; then
        CELTIC_SIGNAL_HANDLE=members CELTIC_SIGNAL_ID=members celtic_signal SUCCESS \
            "$node: masters $removal left Kubernetes, etcd, corosync and HAProxy" || true
    else
        CELTIC_SIGNAL_HANDLE=members CELTIC_SIGNAL_ID=members celtic_signal FAILURE \
            "$node: removing masters $removal: step $step failed: ${message:-exit $rc}" || true
    fi
}

# members_reconcile: bring this master in line with the member list (see the top).
members_reconcile() {
    local desired=() current=() leaving=() address index i
    mapfile -t desired < <(members_desired)
    mapfile -t current < <(members_current)
    if [[ ${#desired[@]} -eq 0 ]]; then
        celtic_info "no member list in this server's metadata (celtic_members): nothing changed"
        return 0
    fi
    if ! index=$(celtic_index_of "$(celtic_node_ip)" "${desired[@]}"); then
        celtic_info "this master is not in the member list (${desired[*]}): it is leaving," \
            "master 0 removes it"
        celtic_step members-leave members_leave
        return 0
    fi
    if [[ "${current[*]}" == "${desired[*]}" ]]; then
        return 0
    fi
    # the leaving members, highest index first
    for ((i = ${#current[@]} - 1; i >= 0; i--)); do
        if ! celtic_index_of "${current[$i]}" "${desired[@]}" >/dev/null; then
            leaving+=("$i:${current[$i]}")
        fi
    done
    celtic_info "masters: ${current[*]} -> ${desired[*]}"
    if [[ "$index" == 0 && ${#leaving[@]} -gt 0 ]]; then
        celtic_step members-health members_etcd_check "${desired[@]}"
        for address in "${leaving[@]}"; do
            celtic_step "leave-master-${address%%:*}" members_remove "${address#*:}"
        done
    fi
    CELTIC_MASTER_ADDRESSES="${desired[*]}"
    export CELTIC_MASTER_ADDRESSES
    celtic_step members-vip api_vip_setup
    if [[ "$index" == 0 ]]; then
        for address in "${leaving[@]}"; do
            crm_node --force --remove "master-${address%%:*}" >/dev/null 2>&1 || true
        done
    fi
}

# members_timer: celtic-members.timer, which runs `master.sh members` on this master.
members_timer() {
    MEMBERS_SCRIPT=${CELTIC_LIB_DIR#"${CELTIC_ROOT:-}"}/master.sh \
        MEMBERS_INTERVAL=$MEMBERS_INTERVAL celtic_timer celtic-members "$MEMBERS_UNIT_DIR"
}
