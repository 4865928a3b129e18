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

# node/ha.sh and node/api_vip.sh: the HA group (corosync + pacemaker) and its VIP.
# Recording stubs for the system commands; the pcs commands also run for real against
# an offline CIB, which crm_verify and crm_simulate then check (VIP placement, failover,
# quorum loss) for the masters' and the proxies' configuration.

load helpers

MASTERS=(10.0.0.11 10.0.0.12 10.0.0.13)
SECRET=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

setup_file() {
    export TEST_CA="$BATS_FILE_TMPDIR/ca.crt"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$BATS_FILE_TMPDIR/ca.key" -out "$TEST_CA" -days 2 -subj /CN=test-ca 2>/dev/null
}

setup() {
    celtic_test_setup
    export HA_COROSYNC_DIR="$ROOT/etc/corosync"
    export HA_PCSD_DEFAULTS="$ROOT/etc/default/pcsd"
    export HA_SYSCTL_FILE="$ROOT/etc/sysctl.d/90-celtic-ha.conf"
    export HA_POLICY_RC="$ROOT/usr/sbin/policy-rc.d"
    export HA_WORK_DIR="$ROOT/var/lib/celtic/ha"
    export API_HAPROXY_CFG="$ROOT/etc/haproxy/haproxy.cfg"
    export HA_QUORUM_TIMEOUT=10 HA_DC_TIMEOUT=10
    printf '%s\n' "$SECRET" >"$CELTIC_ETC/secrets/ha-secret"
    cp "$TEST_CA" "$CELTIC_ETC/pki/ca.crt"
    mkdir -p "$ROOT/etc/default"
    printf '# pcsd defaults\nPCSD_DEBUG=false\n' >"$HA_PCSD_DEFAULTS"
    export CHPASSWD_INPUT="$BATS_TEST_TMPDIR/chpasswd.in"
    stub_script dpkg-query 'echo "install ok installed"'
    stub apt-get
    stub sysctl
    # systemctl is-active says "inactive" unless a test sets SYSTEMCTL_ACTIVE_RC=0
    stub_script systemctl '[[ "$1" == is-active ]] && exit "${SYSTEMCTL_ACTIVE_RC:-3}"; exit 0'
    stub corosync-cfgtool
    stub_script chpasswd 'cat >"$CHPASSWD_INPUT"'
    stub corosync-quorumtool 0 $'Quorum information\nQuorate:          Yes'
    stub crm_mon 0 '<current_dc present="true" name="master-0"/>'
    stub ip 0 '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0'
    stub crm_verify
    stub crm_node 0 master-0
    # crm_resource: --cleanup is recorded; the tests' own queries run the real one
    stub_script crm_resource '[[ " $* " == *" --cleanup "* ]] && exit 0; exec /usr/sbin/crm_resource "$@"'
    stub_script pcs '[[ "$1 $2" == "cluster cib" ]] && cibadmin --empty >"$3"; exit 0'
    # shellcheck source=../../heat_templates/fragments/lib/celtic.sh
    source "$FRAGMENTS/lib/celtic.sh"
    # shellcheck source=../../heat_templates/fragments/node/ha.sh
    source "$FRAGMENTS/node/ha.sh"
    # shellcheck source=../../heat_templates/fragments/node/api_vip.sh
    source "$FRAGMENTS/node/api_vip.sh"
}

# pcs for real, on CIB files: the "live" CIB is $LIVE_CIB, a push replaces it. This
# machine has no systemd, so pcs cannot read the metadata of systemd:haproxy: that one
# create gets --force, every other command runs exactly as the fragment wrote it.
stub_real_pcs() {
    export LIVE_CIB="$BATS_TEST_TMPDIR/live.xml" PUSHED="$BATS_TEST_TMPDIR/pushes"
    [[ -e "$LIVE_CIB" ]] || cibadmin --empty >"$LIVE_CIB"
    rm -f "$STUBS/crm_verify"
    stub_script pcs '
case "$1 $2" in
    "cluster cib") cp "$LIVE_CIB" "$3"; exit 0 ;;
    "cluster cib-push") cp "$3" "$LIVE_CIB"; echo push >>"$PUSHED"; exit 0 ;;
esac
force=()
if [[ " $* " == *" systemd:"* ]]; then force=(--force); fi
exec /usr/sbin/pcs "$@" "${force[@]}"'
}

# simulate CIB OUT ARGS...: crm_simulate from CIB, saving the result in OUT.
simulate() {
    local cib=$1 out=$2
    shift 2
    crm_simulate -x "$cib" -S "$@" -O "$out" >"$out.log" 2>&1
}

locate() {
    CIB_file=$1 crm_resource --locate -r "$2" 2>/dev/null
}

@test "ha_cluster_setup writes corosync.conf for knet unicast between the members" {
    run ha_cluster_setup master "${MASTERS[@]}"
    assert_success
    conf="$HA_COROSYNC_DIR/corosync.conf"
    grep -q '^    transport: knet$' "$conf"
    grep -q '^    cluster_name: master$' "$conf"
    grep -q '^    crypto_cipher: aes256$' "$conf"
    grep -q "^    keyfile: $HA_COROSYNC_DIR/authkey\$" "$conf"
    grep -Eq '^    token: [0-9]+$' "$conf"
    grep -q '^    token_coefficient: 0$' "$conf"
    run grep -A3 'node {' "$conf"
    assert_line --index 1 '        name: master-0'
    assert_line --index 2 '        nodeid: 1'
    assert_line --index 3 '        ring0_addr: 10.0.0.11'
    [ "$(grep -c 'ring0_addr' "$conf")" -eq 3 ]
    grep -q '        ring0_addr: 10.0.0.13' "$conf"
    refute grep -q two_node "$conf"
    refute grep -q '{{' "$conf"
}

@test "corosync.conf: a paused member's knet link outlives the token and consensus" {
    # knet drops every packet to a peer whose link it holds down and needs answered pings
    # to bring it up again: a link that went down during a pause the cluster would have
    # tolerated costs that tolerance (doc/vip-ha.md, section 4).
    ha_write_corosync_conf master "${MASTERS[@]}"
    conf="$HA_COROSYNC_DIR/corosync.conf"
    value() { sed -n "s/^ *$1: \([0-9]*\)$/\1/p" "$conf"; }
    token=$(value token) consensus=$(value consensus)
    ping_timeout=$(value knet_ping_timeout) ping_interval=$(value knet_ping_interval)
    [ -n "$token" ] && [ -n "$consensus" ] && [ -n "$ping_timeout" ] && [ -n "$ping_interval" ]
    [ "$ping_timeout" -gt $((token + consensus)) ]
    [ "$ping_interval" -lt "$token" ]
    # corosync's minimum consensus, and the token resent several times before it is lost
    [ $((consensus * 10)) -ge $((token * 12)) ]
    [ "$(value token_retransmits_before_loss_const)" -ge 4 ]
    run grep -A4 '^    interface {' "$conf"
    assert_line --index 1 '        linknumber: 0'
}

@test "two members keep quorum when one fails (two_node), one or three do not need it" {
    ha_write_corosync_conf proxy 10.0.1.5 10.0.1.6
    grep -q '^    two_node: 1$' "$HA_COROSYNC_DIR/corosync.conf"
    ha_write_corosync_conf proxy 10.0.1.5
    run grep two_node "$HA_COROSYNC_DIR/corosync.conf"
    assert_failure
}

@test "ha_cluster_setup derives the key and the hacluster password and never logs them" {
    run ha_cluster_setup master "${MASTERS[@]}"
    assert_success
    key="$HA_COROSYNC_DIR/authkey"
    [ "$(stat -c %s "$key")" -eq 256 ]
    [ "$(stat -c %a "$key")" = 400 ]
    run cat "$CHPASSWD_INPUT"
    assert_output --regexp '^hacluster:[0-9a-f]{64}$'
    password=${output#hacluster:}
    expected=$(printf 'hacluster:%s' "$SECRET" | sha256sum | cut -d' ' -f1)
    [ "$password" = "$expected" ]
    keyhex=$(od -An -tx1 "$key" | tr -d ' \n' | cut -c1-32)
    for needle in "$SECRET" "$password" "$keyhex"; do
        run grep -rF -- "$needle" "$CELTIC_LOG_FILE" "$CALLS"
        assert_failure
    done
    refute_called 'chpasswd .*hacluster.*'
}

@test "every member derives the same key from the same secret" {
    ha_write_keys
    cp "$HA_COROSYNC_DIR/authkey" "$BATS_TEST_TMPDIR/first"
    rm -rf "$HA_COROSYNC_DIR" "$CELTIC_STATE_DIR"
    ha_write_keys
    cmp "$HA_COROSYNC_DIR/authkey" "$BATS_TEST_TMPDIR/first"
}

@test "ha_cluster_setup starts the daemons, binds pcsd to the node and allows VIP binds" {
    run ha_cluster_setup master "${MASTERS[@]}"
    assert_success
    assert_called 'systemctl enable corosync pacemaker pcsd'
    assert_called 'systemctl start corosync'
    assert_called 'systemctl start pacemaker'
    assert_called 'systemctl start pcsd'
    assert_called 'sysctl -q -w net.ipv4.ip_nonlocal_bind=1'
    grep -q '^net.ipv4.ip_nonlocal_bind = 1$' "$HA_SYSCTL_FILE"
    run cat "$HA_PCSD_DEFAULTS"
    assert_line 'PCSD_DEBUG=false'
    assert_line "PCSD_BIND_ADDR='10.0.0.11'"
    assert_called 'corosync-quorumtool -s'
}

@test "packages install with their daemons kept from starting" {
    stub dpkg-query 1
    stub_script apt-get '[[ -x "$HA_POLICY_RC" ]] && echo "policy-rc.d in place" >>"$CALLS"; exit 0'
    run ha_install_packages corosync pacemaker
    assert_success
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends corosync pacemaker'
    assert_called 'policy-rc.d in place'
    [ ! -e "$HA_POLICY_RC" ]
}

@test "ha_cluster_setup installs the pacemaker command line tools it waits with (crm_mon, crm_verify)" {
    stub dpkg-query 1
    ha_cluster_setup master "${MASTERS[@]}"
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends corosync pacemaker pacemaker-cli-utils pcs resource-agents'
}

@test "on Ubuntu 24.04 the IPaddr2 agent comes from resource-agents-base" {
    stub dpkg-query 1
    os_release ubuntu 24.04 noble
    ha_cluster_setup master "${MASTERS[@]}"
    assert_called 'apt-get .* install -y -q --no-install-recommends corosync pacemaker pacemaker-cli-utils pcs resource-agents-base'
}

@test "a second ha_cluster_setup changes nothing and restarts nothing" {
    ha_cluster_setup master "${MASTERS[@]}"
    written=$(grep -c 'wrote ' "$CELTIC_LOG_FILE")
    [ "$written" -eq 4 ]
    export SYSTEMCTL_ACTIVE_RC=0
    : >"$CALLS"
    CELTIC_CHANGED=0
    ha_cluster_setup master "${MASTERS[@]}"
    [ "$CELTIC_CHANGED" = 0 ]
    refute_called 'systemctl (restart|stop).*'
    refute_called 'systemctl start corosync'
    refute_called 'corosync-cfgtool.*'
    refute_called 'chpasswd.*'
    [ "$(grep -c 'wrote ' "$CELTIC_LOG_FILE")" -eq "$written" ]
}

@test "a running member reloads a changed corosync.conf instead of restarting" {
    ha_cluster_setup master "${MASTERS[@]}"
    export SYSTEMCTL_ACTIVE_RC=0
    : >"$CALLS"
    ha_cluster_setup master 10.0.0.11 10.0.0.12
    assert_called 'corosync-cfgtool -R'
    refute_called 'systemctl (re)?start corosync'
}

@test "a node that is not a member fails the ha-members step, named with the node" {
    stub_heat_signal
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"
        set -euo pipefail; main() { ha_cluster_setup master 10.0.0.21 10.0.0.22; }
        celtic_run main'
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    [ "$(signal_field 1 reason)" = "testnode-0: step ha-members failed: this node's address '10.0.0.11' is not among the master members (10.0.0.21 10.0.0.22)" ]
}

@test "no quorum within the bound fails the ha-quorum step and names the check" {
    stub_heat_signal
    stub corosync-quorumtool 2 'Quorate:          No'
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"
        set -euo pipefail; main() { ha_cluster_setup master 10.0.0.11 10.0.0.12 10.0.0.13; }
        celtic_run main'
    assert_failure
    run signal_field 1 reason
    assert_output --partial 'testnode-0: step ha-quorum failed: the master cluster has no quorum after 10s'
    assert_output --partial 'UDP 5405'
    run grep -rF "$SECRET" "$ROOT" "$SIGNALS" --exclude-dir=secrets
    assert_failure
}

@test "ha_vip_setup builds the VIP with pcs -f: IPaddr2 with nic=, HAProxy clone, constraints" {
    run ha_vip_setup api 10.0.0.100 haproxy
    assert_success
    run grep '^pcs -f' "$CALLS"
    assert_line --index 0 --regexp '^pcs -f \S+/new.xml property set stonith-enabled=false no-quorum-policy=stop '
    assert_line --index 1 --regexp '^pcs -f \S+ property set transition-delay=200ms --force$'
    assert_line --index 2 --regexp '^pcs -f \S+ resource create api-haproxy systemd:haproxy op monitor interval=\S+ timeout=\S+ start timeout=\S+ meta migration-threshold=\S+ failure-timeout=\S+ clone interleave=true$'
    assert_line --index 3 --regexp '^pcs -f \S+ resource create api-vip ocf:heartbeat:IPaddr2 ip=10.0.0.100 cidr_netmask=24 nic=eth0 arp_count=\S+ .*op monitor interval=\S+ timeout=\S+ meta resource-stickiness=[0-9]+$'
    assert_line --index 4 --regexp '^pcs -f \S+ constraint colocation add api-vip with api-haproxy-clone INFINITY$'
    assert_line --index 5 --regexp '^pcs -f \S+ constraint order start api-haproxy-clone then start api-vip symmetrical=false$'
    assert_line --index 6 --regexp '^pcs -f \S+ constraint location api-vip rule score=-[0-9]+ #is_dc eq true$'
    assert_called 'systemctl disable haproxy'
    assert_called 'crm_verify -x .*/new.xml'
    assert_called 'crm_resource --cleanup --resource api-haproxy --node master-0'
}

@test "nic= is on every IPaddr2 resource, also with an explicit CIDR and for the proxies" {
    export CELTIC_NODE_NIC=ens3
    ha_vip_setup api 10.0.0.100 haproxy 32
    ha_vip_setup proxy 10.0.0.200 haproxy
    run grep 'ocf:heartbeat:IPaddr2' "$CALLS"
    [ "${#lines[@]}" -eq 2 ]
    for line in "${lines[@]}"; do
        [[ " $line " == *" nic=ens3 "* ]]
    done
    assert_line --partial 'ip=10.0.0.100 cidr_netmask=32 nic=ens3'
    assert_line --partial 'ip=10.0.0.200 cidr_netmask=24 nic=ens3'
}

@test "without an interface for the node address ha_vip_setup fails before any pcs call" {
    stub_heat_signal
    export CELTIC_NODE_NIC=''
    stub ip 0 ''
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"
        set -euo pipefail; main() { celtic_step vip ha_vip_setup api 10.0.0.100 haproxy; }
        celtic_run main'
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step vip failed: cannot find the interface that holds this node's address" ]
    refute_called 'pcs.*'
}

@test "pcs rejecting the configuration fails the VIP step with the node and the step" {
    stub_heat_signal
    stub_script pcs '[[ "$1 $2" == "cluster cib" ]] && { cibadmin --empty >"$3"; exit 0; }
echo "Error: invalid resource option" >&2; exit 1'
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"
        set -euo pipefail; main() { ha_vip_setup api 10.0.0.100 haproxy; }; celtic_run main'
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step api-vip-resources failed: pcs rejected the api VIP configuration" ]
    refute_called 'pcs cluster cib-push.*'
}

@test "real pcs: the masters' CIB verifies, places the VIP with HAProxy, fails over, stops without quorum" {
    stub_real_pcs
    run ha_vip_setup api 10.0.0.100 haproxy
    assert_success
    cib="$LIVE_CIB"
    run crm_verify -V -x "$cib"
    assert_success
    grep -q 'name="nic" value="eth0"' "$cib"
    s="$BATS_TEST_TMPDIR/sim"
    simulate "$cib" "$s-up.xml" -q 1 -u master-0 -u master-1 -u master-2
    run locate "$s-up.xml" api-vip
    assert_output --regexp '^resource api-vip is running on: master-[012]$'
    holder=${output##* }
    run locate "$s-up.xml" api-haproxy-clone
    [ "$(grep -c 'is running on' <<<"$output")" -eq 3 ]
    # the holder's node fails: the VIP moves to a master whose HAProxy runs
    simulate "$s-up.xml" "$s-failed.xml" -f "$holder"
    run locate "$s-failed.xml" api-vip
    assert_output --regexp '^resource api-vip is running on: master-[012]$'
    second=${output##* }
    [ "$second" != "$holder" ]
    run locate "$s-failed.xml" api-haproxy-clone
    assert_output --partial "running on: $second"
    # the failed master comes back (without its old history): the VIP stays put
    CIB_file="$s-failed.xml" cibadmin --delete --xpath "//node_state[@uname='$holder']/lrm"
    simulate "$s-failed.xml" "$s-back.xml" -u "$holder"
    run locate "$s-back.xml" api-vip
    assert_output "resource api-vip is running on: $second"
    # a second master fails: the last one has no quorum and no-quorum-policy=stop
    # stops the VIP (an isolated master gives the address up the same way)
    third=$(printf '%s\n' master-0 master-1 master-2 | grep -v -e "$holder" -e "$second")
    simulate "$s-failed.xml" "$s-noquorum.xml" -f "$third" -q 0
    grep -Eq "Stop +api-vip +\( $second \) +due to no quorum" "$s-noquorum.xml.log"
    run locate "$s-noquorum.xml" api-vip
    refute_output --partial 'running on'
}

@test "real pcs: an HAProxy failure on the VIP holder restarts it in place and leaves the VIP alone" {
    stub_real_pcs
    ha_vip_setup api 10.0.0.100 haproxy
    s="$BATS_TEST_TMPDIR/sim"
    simulate "$LIVE_CIB" "$s-up.xml" -q 1 -u master-0 -u master-1 -u master-2
    run locate "$s-up.xml" api-vip
    holder=${output##* }
    interval=${HA_SERVICE_MONITOR[0]#interval=}
    simulate "$s-up.xml" "$s-fail1.xml" -i "api-haproxy_monitor_$((${interval%s} * 1000))@$holder=7"
    grep -q "Recover *api-haproxy:[0-9] *( *$holder *)" "$s-fail1.xml.log"
    refute grep -q 'Move *api-vip\|Restart *api-vip' "$s-fail1.xml.log"
}

@test "real pcs: the proxies' CIB from the same function fails over between two proxies" {
    stub_real_pcs
    run ha_vip_setup proxy 10.0.1.100 haproxy
    assert_success
    run crm_verify -x "$LIVE_CIB"
    assert_success
    s="$BATS_TEST_TMPDIR/proxy"
    simulate "$LIVE_CIB" "$s-up.xml" -q 1 -u proxy-0 -u proxy-1
    run locate "$s-up.xml" proxy-vip
    assert_output --regexp '^resource proxy-vip is running on: proxy-[01]$'
    holder=${output##* }
    simulate "$s-up.xml" "$s-failed.xml" -f "$holder"
    run locate "$s-failed.xml" proxy-vip
    assert_output --regexp '^resource proxy-vip is running on: proxy-[01]$'
    [ "${output##* }" != "$holder" ]
}

@test "real pcs: a second ha_vip_setup finds the configuration in place and pushes nothing" {
    stub_real_pcs
    ha_vip_setup api 10.0.0.100 haproxy
    [ "$(wc -l <"$PUSHED")" -eq 1 ]
    CELTIC_CHANGED=0
    ha_vip_setup api 10.0.0.100 haproxy
    [ "$(wc -l <"$PUSHED")" -eq 1 ]
    [ "$CELTIC_CHANGED" = 0 ]
    # a changed VIP converges: the resources are rebuilt and pushed once more
    ha_vip_setup api 10.0.0.101 haproxy
    [ "$(wc -l <"$PUSHED")" -eq 2 ]
    grep -q 'name="ip" value="10.0.0.101"' "$LIVE_CIB"
    [ "$(grep -c '<primitive id="api-vip"' "$LIVE_CIB")" -eq 1 ]
}

@test "api_haproxy_config renders a config haproxy -c accepts: VIP frontend, every master checked on /readyz" {
    run api_haproxy_config 10.0.0.100 6443 "${MASTERS[@]}"
    assert_success
    cfg="$API_HAPROXY_CFG"
    run haproxy -c -f "$cfg"
    assert_success
    grep -q '^    bind 10.0.0.100:6443$' "$cfg"
    refute grep -q 'bind \*:6443\|bind :6443\|bind 0.0.0.0' "$cfg"
    grep -q '^    mode tcp$' "$cfg"
    grep -q 'http-check send meth GET uri /readyz' "$cfg"
    grep -q "ca-file $CELTIC_ETC/pki/ca.crt" "$cfg"
    run grep '^    server ' "$cfg"
    assert_line --index 0 '    server master-0 10.0.0.11:6443'
    assert_line --index 1 '    server master-1 10.0.0.12:6443'
    assert_line --index 2 '    server master-2 10.0.0.13:6443'
    [ ! -e "$cfg.celtic-new" ]
}

@test "api_haproxy_config is idempotent and reloads a running HAProxy only on change" {
    api_haproxy_config 10.0.0.100 6443 "${MASTERS[@]}"
    export SYSTEMCTL_ACTIVE_RC=0
    : >"$CALLS"
    CELTIC_CHANGED=0
    api_haproxy_config 10.0.0.100 6443 "${MASTERS[@]}"
    [ "$CELTIC_CHANGED" = 0 ]
    refute_called 'systemctl reload haproxy'
    api_haproxy_config 10.0.0.100 6443 10.0.0.11 10.0.0.12
    assert_called 'systemctl reload haproxy'
}

@test "api_vip_setup runs HAProxy first, then the cluster, then the VIP resources" {
    write_params '{"api_vip": "10.0.0.100", "api_port": 6443,
                   "master_addresses": ["10.0.0.11", "10.0.0.12", "10.0.0.13"]}'
    celtic_load_params
    stub_script haproxy 'exec /usr/sbin/haproxy "$@"'
    run api_vip_setup
    assert_success
    run grep -n -E '^(haproxy|systemctl start corosync|pcs -f .* resource create api-vip)' "$CALLS"
    assert_line --index 0 --regexp 'haproxy -c -q -f .*haproxy.cfg.celtic-new$'
    assert_line --index 1 --partial 'systemctl start corosync'
    assert_line --index 2 --partial 'resource create api-vip ocf:heartbeat:IPaddr2 ip=10.0.0.100'
    grep -q 'cluster_name: master' "$HA_COROSYNC_DIR/corosync.conf"
}

@test "a master shrink (5 -> 3) on a running master: HAProxy and corosync drop the leaving ones and reload, nothing restarts" {
    write_params '{"api_vip": "10.0.0.100", "api_port": 6443,
                   "master_addresses": ["10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "10.0.0.15"]}'
    celtic_load_params
    stub_script haproxy 'exec /usr/sbin/haproxy "$@"'
    api_vip_setup
    export SYSTEMCTL_ACTIVE_RC=0
    : >"$CALLS"
    # what members.sh does with the member list from the server metadata
    CELTIC_MASTER_ADDRESSES="10.0.0.11 10.0.0.12 10.0.0.13" run api_vip_setup
    assert_success
    run grep '^    server ' "$API_HAPROXY_CFG"
    assert_output $'    server master-0 10.0.0.11:6443\n    server master-1 10.0.0.12:6443\n    server master-2 10.0.0.13:6443'
    run awk '$1 == "ring0_addr:" {print $2}' "$HA_COROSYNC_DIR/corosync.conf"
    assert_output $'10.0.0.11\n10.0.0.12\n10.0.0.13'
    assert_called 'haproxy -c -q -f .*haproxy.cfg.celtic-new'
    assert_called 'systemctl reload haproxy'
    assert_called 'corosync-cfgtool -R'
    refute_called 'systemctl start corosync'
    refute_called 'systemctl restart (corosync|pacemaker|haproxy)'
    refute_called 'systemctl stop .*'
    # the HAProxy reload comes before the corosync reload
    reload_haproxy=$(grep -n '^systemctl reload haproxy' "$CALLS" | head -n 1 | cut -d: -f1)
    reload_corosync=$(grep -n '^corosync-cfgtool -R' "$CALLS" | head -n 1 | cut -d: -f1)
    [ "$reload_haproxy" -lt "$reload_corosync" ]
}

@test "api_vip_setup without an api_vip fails with a clear message" {
    stub_heat_signal
    write_params '{"master_addresses": ["10.0.0.11"]}'
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/ha.sh"
        source "$CELTIC_LIB_DIR/node/api_vip.sh"; set -euo pipefail
        main() { celtic_load_params; celtic_step api-vip api_vip_setup; }; celtic_run main'
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step api-vip failed: params.json has no api_vip" ]
}

@test "ha_member_standby and ha_member_active wait for pacemaker to settle, and name the node when it does not" {
    HA_SETTLE_TIMEOUT=45
    stub_script crm_resource '
case "$*" in
  "--list-raw") printf "%s\n" api-haproxy:0 api-haproxy:1 api-vip ;;
  "--locate --resource api-vip") echo "resource api-vip is running on: master-0" ;;
esac'
    run ha_member_standby master-1
    assert_success
    assert_called 'pcs node standby master-1 --wait=45'
    refute_called 'pcs resource ban.*'
    # the VIP holder: its VIP moves first, while its HAProxy still answers
    run ha_member_standby master-0
    assert_success
    assert_called 'pcs resource ban api-vip master-0 --wait=45'
    run ha_member_active master-0
    assert_success
    assert_called 'pcs node unstandby master-0 --wait=45'
    assert_called 'pcs resource clear api-vip master-0'
    run ha_member_active master-1
    assert_success
    assert_called 'pcs node unstandby master-1 --wait=45'
    stub pcs 1
    run ha_member_standby master-2
    assert_failure
    assert_output --partial 'did not move the resources off master-2 within 45s'
    run ha_member_active master-2
    assert_failure
    assert_output --partial 'did not settle with master-2 active within 45s'
    run ha_member_standby
    assert_failure
    assert_output --partial 'needs a node name'
}
