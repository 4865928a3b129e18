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

# proxy.sh: what a proxy node runs at first boot (and again, harmlessly, on a re-run).
#   - the common set-up (node/common.sh)
#   - HAProxy, installed without starting, with celtic-lb's first haproxy.cfg (checked)
#   - corosync + pacemaker between the proxies, the proxy VIP on the HAProxy clone
#     (node/ha.sh: it also sets net.ipv4.ip_nonlocal_bind=1, so HAProxy binds the VIP on
#     every proxy, and binds pcsd to the node's own address, never to the VIP)
#   - celtic-lb, the systemd service that turns LoadBalancer Services into frontends
#     on the proxy VIP (doc/celtic-lb.md)

CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
# shellcheck source=lib/celtic.sh
source "$CELTIC_LIB_DIR/lib/celtic.sh"
# shellcheck source=node/common.sh
source "$CELTIC_LIB_DIR/node/common.sh"
# shellcheck source=node/ha.sh
source "$CELTIC_LIB_DIR/node/ha.sh"

# Where things go. The bats tests point the host-wide ones at their own files.
PROXY_LB_DIR=${PROXY_LB_DIR:-$CELTIC_LIB_DIR/celtic-lb}
PROXY_HAPROXY_CFG=${PROXY_HAPROXY_CFG:-/etc/haproxy/haproxy.cfg}
PROXY_UNIT_DIR=${PROXY_UNIT_DIR:-/etc/systemd/system}

PROXIES=()

# proxy_identity: the proxy VIP and the proxies' addresses from params.json, and
# celtic-lb's credentials (its key is only checked, never read here).
proxy_identity() {
    [[ -n "${CELTIC_PROXY_VIP:-}" ]] || celtic_die "params.json has no proxy_vip"
    read -r -a PROXIES <<<"${CELTIC_PROXY_ADDRESSES:-}"
    [[ ${#PROXIES[@]} -ge 1 ]] || celtic_die "params.json has no proxy_addresses"
    [[ -s "$CELTIC_ETC/pki/ca.crt" && -s "$CELTIC_ETC/pki/celtic-lb.crt" ]] ||
        celtic_die "celtic-lb's certificates were not delivered to $CELTIC_ETC/pki"
    celtic_secret celtic-lb.key >/dev/null
}

# proxy_haproxy_config: a first haproxy.cfg without Services (celtic-lb's own template,
# accepted by `haproxy -c`) so the HAProxy clone can start before celtic-lb has talked
# to the API. Once celtic-lb manages the file, a re-run leaves it alone.
proxy_haproxy_config() {
    mkdir -p "$(dirname "$PROXY_HAPROXY_CFG")"
    python3 "$PROXY_LB_DIR/celtic_lb.py" --write-initial-config \
        --params-file "$CELTIC_PARAMS_FILE" --haproxy-config "$PROXY_HAPROXY_CFG" \
        --template "$PROXY_LB_DIR/haproxy.cfg.tmpl" \
        --service-template "$PROXY_LB_DIR/haproxy-service.cfg.tmpl" ||
        celtic_die "celtic-lb could not write a valid $PROXY_HAPROXY_CFG (haproxy -c output above)"
}

# proxy_celtic_lb: celtic-lb's unit installed, enabled and running; restarted when the
# unit or the program changed (a re-run after the fragments were updated).
proxy_celtic_lb() {
    local before=$CELTIC_CHANGED unit_changed program_changed
    CELTIC_CHANGED=0
    celtic_write_file "$PROXY_UNIT_DIR/celtic-lb.service" 0644 <"$PROXY_LB_DIR/celtic-lb.service"
    unit_changed=$CELTIC_CHANGED
    CELTIC_CHANGED=0
    celtic_write_file "$CELTIC_STATE_DIR/celtic-lb.sha256" 0644 < <(cd "$PROXY_LB_DIR" &&
        sha256sum celtic_lb.py haproxy.cfg.tmpl haproxy-service.cfg.tmpl celtic-lb.service)
    program_changed=$CELTIC_CHANGED
    if [[ $unit_changed -eq 1 ]]; then
        systemctl daemon-reload || celtic_die "systemd did not load celtic-lb.service"
    fi
    if ! systemctl is-enabled --quiet celtic-lb; then
        systemctl enable celtic-lb >/dev/null 2>&1 || celtic_die "cannot enable celtic-lb"
    fi
    if [[ $unit_changed -eq 1 || $program_changed -eq 1 ]] || ! systemctl is-active --quiet celtic-lb; then
        systemctl restart celtic-lb || celtic_die "celtic-lb does not start: see journalctl -u celtic-lb"
    fi
    if [[ $before -eq 1 || $unit_changed -eq 1 || $program_changed -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}

proxy_main() {
    common_setup
    celtic_step proxy-identity proxy_identity
    celtic_step proxy-haproxy-package ha_install_packages haproxy
    celtic_step proxy-haproxy-config proxy_haproxy_config
    celtic_step ha-cluster ha_cluster_setup "${CELTIC_CLUSTER_NAME:-celtic}-proxies" "${PROXIES[@]}"
    celtic_step proxy-vip ha_vip_setup proxy "$CELTIC_PROXY_VIP" haproxy
    celtic_step celtic-lb proxy_celtic_lb
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    CELTIC_ROLE=proxy
    celtic_run proxy_main "$@"
fi
