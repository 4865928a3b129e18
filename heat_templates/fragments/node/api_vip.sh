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

# api_vip.sh: the masters' API VIP. HAProxy on every master balances TCP 6443 across the
# apiservers that answer /readyz, and the pacemaker VIP (node/ha.sh) sits on a master
# whose HAProxy runs.
#
# The apiservers bind their master's own address and HAProxy binds only the VIP
# (net.ipv4.ip_nonlocal_bind=1, set by ha_cluster_setup), so the HAProxy clone runs on
# every master and never fights the local apiserver for *:6443.
#
# Needs celtic_load_params (api_vip, api_port, master_addresses) and node/ha.sh.

API_HAPROXY_CFG=${API_HAPROXY_CFG:-/etc/haproxy/haproxy.cfg}

# api_vip_setup: every master, before kubeadm: HAProxy installed and configured, the
# master cluster formed with quorum, the VIP resources in place. It returns on master 0
# as soon as a second master has joined, so master 0 can run `kubeadm init` against the
# VIP; the other masters then wait for the API behind the VIP before they join.
api_vip_setup() {
    local vip=${CELTIC_API_VIP:-} port=${CELTIC_API_PORT:-6443} masters=()
    read -ra masters <<<"${CELTIC_MASTER_ADDRESSES:-}"
    [[ -n "$vip" ]] || celtic_die "params.json has no api_vip"
    [[ ${#masters[@]} -ge 1 ]] || celtic_die "params.json has no master_addresses"
    celtic_step api-haproxy-package ha_install_packages haproxy
    celtic_step api-haproxy-config api_haproxy_config "$vip" "$port" "${masters[@]}"
    ha_cluster_setup master "${masters[@]}"
    ha_vip_setup api "$vip" haproxy
}

# api_haproxy_config VIP PORT MASTER_ADDRESS...: haproxy.cfg from the template, checked
# with `haproxy -c` before it replaces the current one; a running HAProxy reloads.
api_haproxy_config() {
    local vip=$1 port=$2 i=0 address servers='' candidate
    shift 2
    for address in "$@"; do
        servers+=$(printf '    server master-%d %s:%s' "$i" "$address" "$port")
        if [[ $((i + 1)) -lt $# ]]; then
            servers+=$'\n'
        fi
        i=$((i + 1))
    done
    candidate="$API_HAPROXY_CFG.celtic-new"
    local before=$CELTIC_CHANGED
    API_VIP=$vip API_PORT=$port API_HAPROXY_SERVERS=$servers \
        API_HAPROXY_CHECK_CA="$CELTIC_ETC/pki/ca.crt" \
        celtic_render "$CELTIC_LIB_DIR/templates/haproxy-api.cfg.tmpl" "$candidate" 0644
    haproxy -c -q -f "$candidate" >/dev/null ||
        celtic_die "the rendered $API_HAPROXY_CFG does not pass haproxy -c (kept $candidate)"
    CELTIC_CHANGED=0
    celtic_write_file "$API_HAPROXY_CFG" 0644 <"$candidate"
    rm -f "$candidate"
    if [[ $CELTIC_CHANGED -eq 1 ]] && systemctl is-active --quiet haproxy; then
        systemctl reload haproxy || celtic_die "HAProxy did not reload its new configuration"
    fi
    if [[ $before -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}
