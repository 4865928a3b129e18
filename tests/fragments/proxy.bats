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

# proxy.sh: HAProxy with celtic-lb's first config, the proxy cluster and VIP through
# node/ha.sh, celtic-lb as a service; idempotent; failures name the node and the step.

load helpers

setup() {
    celtic_test_setup
    write_params '{"cluster_name": "demo", "api_vip": "10.0.0.100", "api_port": 6443,
                   "proxy_vip": "10.0.0.200", "proxy_vip_fip": "203.0.113.7",
                   "proxy_addresses": ["10.0.0.11", "10.0.0.12"], "lb_reserved_ports": [22, 2224]}'
    printf 'CA\n' >"$CELTIC_ETC/pki/ca.crt"
    printf 'CERT\n' >"$CELTIC_ETC/pki/celtic-lb.crt"
    printf 'lb-key-never-logged\n' >"$CELTIC_ETC/secrets/celtic-lb.key"
    printf '%064d\n' 7 >"$CELTIC_ETC/secrets/ha-secret"
    export PROXY_HAPROXY_CFG="$ROOT/etc/haproxy/haproxy.cfg"
    export PROXY_UNIT_DIR="$ROOT/etc/systemd/system"
    stub haproxy 0 'Configuration file is valid'
    # systemd with memory: enabled / active units are files under $ROOT/systemd
    stub_script systemctl 'mkdir -p "$ROOT/systemd"; cmd=$1; shift
for unit in "$@"; do
    [[ $unit == -* ]] && continue
    case $cmd in
        enable) touch "$ROOT/systemd/enabled-$unit" ;;
        disable) rm -f "$ROOT/systemd/enabled-$unit" ;;
        start | restart) touch "$ROOT/systemd/active-$unit" ;;
        is-enabled) [[ -e "$ROOT/systemd/enabled-$unit" ]] || exit 1 ;;
        is-active) [[ -e "$ROOT/systemd/active-$unit" ]] || exit 1 ;;
    esac
done
exit 0'
    stub_heat_signal
    # The common set-up and node/ha.sh have their own tests: here they only record how
    # proxy.sh calls them (the last test runs the real ha.sh).
    cat >"$BATS_TEST_TMPDIR/run.sh" <<'SH'
source "$CELTIC_LIB_DIR/proxy.sh"
common_setup() { echo "common_setup" >>"$CALLS"; celtic_step params celtic_load_params; }
if [[ -z "${REAL_HA:-}" ]]; then
    ha_install_packages() { echo "ha_install_packages $*" >>"$CALLS"; }
    ha_cluster_setup() { echo "ha_cluster_setup $*" >>"$CALLS"; }
    ha_vip_setup() { echo "ha_vip_setup $*" >>"$CALLS"; }
fi
set -euo pipefail
CELTIC_ROLE=proxy
celtic_run proxy_main
SH
}

run_proxy() {
    run bash "$BATS_TEST_TMPDIR/run.sh"
}

@test "proxy.sh installs HAProxy with a checked config, joins the proxy cluster, sets the VIP, starts celtic-lb" {
    run_proxy
    assert_success
    run grep -nE '^(common_setup|ha_install_packages|haproxy -c|ha_cluster_setup|ha_vip_setup|systemctl (daemon-reload|restart))' "$CALLS"
    assert_output --regexp '^1:common_setup
2:ha_install_packages haproxy
3:haproxy -c -f .*/etc/haproxy/\.celtic-lb-check\..*\.cfg
4:ha_cluster_setup demo-proxies 10\.0\.0\.11 10\.0\.0\.12
5:ha_vip_setup proxy 10\.0\.0\.200 haproxy
[0-9]+:systemctl daemon-reload
[0-9]+:systemctl restart celtic-lb$'
    assert_called 'systemctl enable celtic-lb'
    [ "$(signal_field 1 status)" = SUCCESS ]
    [ "$(signal_field 1 reason)" = "testnode-0: proxy ready" ]
}

@test "the first haproxy.cfg is celtic-lb's template without Services" {
    run_proxy
    assert_success
    run head -n 1 "$PROXY_HAPROXY_CFG"
    assert_output '# managed-by: celtic-lb'
    run grep -E '^listen |stats socket|option redispatch' "$PROXY_HAPROXY_CFG"
    assert_output --partial 'stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners'
    assert_output --partial 'option redispatch'
    refute_output --partial 'listen '
    cmp "$PROXY_UNIT_DIR/celtic-lb.service" "$FRAGMENTS/celtic-lb/celtic-lb.service"
}

@test "a second run changes nothing" {
    run_proxy
    assert_success
    cp "$PROXY_HAPROXY_CFG" "$BATS_TEST_TMPDIR/cfg.1"
    : >"$CALLS"
    : >"$CELTIC_LOG_FILE"
    run_proxy
    assert_success
    cmp "$PROXY_HAPROXY_CFG" "$BATS_TEST_TMPDIR/cfg.1"
    refute_called 'systemctl (daemon-reload|enable|restart|start|reload).*'
    refute_called 'haproxy .*'
    run grep -c 'wrote ' "$CELTIC_LOG_FILE"
    assert_output 0
    [ "$(signal_field 2 status)" = SUCCESS ]
}

@test "a re-run keeps the haproxy.cfg that celtic-lb manages" {
    run_proxy
    assert_success
    printf 'listen svc_default_web_80\n    bind 10.0.0.200:80\n' >>"$PROXY_HAPROXY_CFG"
    cp "$PROXY_HAPROXY_CFG" "$BATS_TEST_TMPDIR/cfg.managed"
    run_proxy
    assert_success
    cmp "$PROXY_HAPROXY_CFG" "$BATS_TEST_TMPDIR/cfg.managed"
}

@test "an updated celtic-lb is restarted on a re-run" {
    run_proxy
    assert_success
    printf 'changed\n' >"$CELTIC_STATE_DIR/celtic-lb.sha256"
    : >"$CALLS"
    run_proxy
    assert_success
    assert_called 'systemctl restart celtic-lb'
    refute_called 'systemctl daemon-reload'
}

@test "a config that haproxy -c refuses fails the step, names the node and keeps no file" {
    stub haproxy 1 "[ALERT] (1) : config : parsing [x.cfg:3] : unknown keyword 'bogus'"
    run_proxy
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    run signal_field 1 reason
    assert_output --partial 'testnode-0: step proxy-haproxy-config failed: celtic-lb could not write a valid'
    [ ! -e "$PROXY_HAPROXY_CFG" ]
    refute_called 'ha_cluster_setup.*'
}

@test "a proxy without a proxy VIP or without celtic-lb's key fails early and clearly" {
    write_params '{"api_vip": "10.0.0.100", "proxy_vip": "", "proxy_addresses": ["10.0.0.11"]}'
    run_proxy
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step proxy-identity failed: params.json has no proxy_vip" ]

    write_params '{"api_vip": "10.0.0.100", "proxy_vip": "10.0.0.200", "proxy_addresses": ["10.0.0.11"]}'
    rm "$CELTIC_ETC/secrets/celtic-lb.key"
    run_proxy
    assert_failure
    [ "$(signal_field 2 reason)" = "testnode-0: step proxy-identity failed: secret celtic-lb.key was not delivered to this node" ]
}

@test "no secret reaches the log, the calls or Heat" {
    run_proxy
    assert_success
    run grep -rl -e lb-key-never-logged -e "$RELAY_KEY" -e "$(cat "$CELTIC_ETC/secrets/ha-secret")" \
        "$CELTIC_LOG_FILE" "$CALLS" "$SIGNALS"
    assert_failure
}

@test "with the real ha.sh the proxy binds the VIP non-locally and pcsd only on its own address" {
    export REAL_HA=1
    export HA_COROSYNC_DIR="$ROOT/etc/corosync" HA_PCSD_DEFAULTS="$ROOT/etc/default/pcsd"
    export HA_SYSCTL_FILE="$ROOT/etc/sysctl.d/90-celtic-ha.conf" HA_POLICY_RC="$ROOT/policy-rc.d"
    export HA_WORK_DIR="$ROOT/var/lib/celtic/ha"
    printf 'PCSD_DEBUG=false\n#PCSD_BIND_ADDR=::\n' >"$BATS_TEST_TMPDIR/pcsd"
    mkdir -p "$ROOT/etc/default" && cp "$BATS_TEST_TMPDIR/pcsd" "$HA_PCSD_DEFAULTS"
    stub dpkg-query 0 'install ok installed'
    stub sysctl
    stub_script chpasswd 'cat >/dev/null'
    stub corosync-quorumtool 0 'Quorate:          Yes'
    stub crm_mon 0 '<current_dc present="true" name="demo-proxies-0"/>'
    stub crm_verify
    stub crm_node 0 'demo-proxies-0'
    stub crm_resource
    stub ip 0 '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0'
    stub_script pcs 'if [[ "$1 $2" == "cluster cib" ]]; then
        printf "<cib><configuration><crm_config/><nodes/><resources/><constraints/></configuration><status/></cib>\n" >"$3"
    fi'
    run_proxy
    assert_success
    run cat "$HA_SYSCTL_FILE"
    assert_output --partial 'net.ipv4.ip_nonlocal_bind = 1'
    run grep '^PCSD_BIND_ADDR=' "$HA_PCSD_DEFAULTS"
    assert_output "PCSD_BIND_ADDR='10.0.0.11'"
    run grep -E 'ring0_addr|cluster_name' "$HA_COROSYNC_DIR/corosync.conf"
    assert_output --partial 'cluster_name: demo-proxies'
    assert_output --partial 'ring0_addr: 10.0.0.12'
    assert_called 'pcs -f .* resource create proxy-vip ocf:heartbeat:IPaddr2 ip=10.0.0.200 cidr_netmask=24 nic=eth0 .*'
    assert_called 'pcs -f .* constraint colocation add proxy-vip with proxy-haproxy-clone INFINITY'
    assert_called 'systemctl disable haproxy'
}
