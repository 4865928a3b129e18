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

# ha.sh: corosync + pacemaker for a group of peers that share a virtual IP (the masters
# for the Kubernetes API, the proxies for LoadBalancer Services), and that VIP, built
# with pcs. Masters and proxies run this same code with their own names.
#
#   ha_cluster_setup NAME ADDRESS...            every member, early: packages, keys,
#                                               corosync.conf, daemons, wait for quorum
#   ha_vip_setup PREFIX VIP SERVICE [CIDR]      every member, once its SERVICE (haproxy)
#                                               is installed and configured: the pcs
#                                               resources (the first member to get there
#                                               pushes them, the others change nothing)
#
# Settings live in two places only: the totem timings in templates/corosync.conf.tmpl,
# the pacemaker ones below. doc/vip-ha.md gives the reason for each value and the
# failover times measured with them (tests/bench/vip.py).

# Where things go. Tests and the live lab point the host-wide ones at their own files.
HA_COROSYNC_DIR=${HA_COROSYNC_DIR:-/etc/corosync}
HA_PCSD_DEFAULTS=${HA_PCSD_DEFAULTS:-/etc/default/pcsd}
HA_SYSCTL_FILE=${HA_SYSCTL_FILE:-/etc/sysctl.d/90-celtic-ha.conf}
HA_POLICY_RC=${HA_POLICY_RC:-/usr/sbin/policy-rc.d}
HA_TEMPLATES=${HA_TEMPLATES:-${CELTIC_LIB_DIR:-/usr/local/lib/celtic}/templates}
HA_WORK_DIR=${HA_WORK_DIR:-/var/lib/celtic/ha}
# How pacemaker runs the HAProxy service. Nodes have systemd; the live lab has no
# systemd and runs the same package's LSB init script instead (doc/vip-ha.md).
HA_SERVICE_CLASS=${HA_SERVICE_CLASS:-systemd}
# Bounded waits: the other members boot in parallel but may install packages slowly.
HA_QUORUM_TIMEOUT=${HA_QUORUM_TIMEOUT:-900}
HA_DC_TIMEOUT=${HA_DC_TIMEOUT:-300}
# seconds pacemaker gets to settle after a member goes to standby or comes back
HA_SETTLE_TIMEOUT=${HA_SETTLE_TIMEOUT:-120}

# Pacemaker settings. Plain assignments on purpose: the environment cannot override
# them, so the live lab and the benchmark run exactly what the nodes run.
HA_CLUSTER_PROPERTIES=(
    stonith-enabled=false
    no-quorum-policy=stop
    cluster-recheck-interval=1min
    dc-deadtime=5s
)
# Sub-second, which pacemaker accepts and pcs's own value check does not (it knows no
# "ms"): set apart with --force for this one property; crm_verify checks the result.
HA_TRANSITION_DELAY=200ms
HA_VIP_STICKINESS=200
HA_VIP_DC_AVOIDANCE=-100
HA_VIP_ARP=(arp_count=5 arp_interval=200 arp_count_refresh=1)
HA_VIP_MONITOR=(interval=5s timeout=20s)
HA_SERVICE_MONITOR=(interval=1s timeout=20s)
HA_SERVICE_START=(timeout=30s)
HA_SERVICE_META=(migration-threshold=2 failure-timeout=60s)

# ---------------------------------------------------------------------------------------
# cluster

# ha_cluster_setup NAME ADDRESS...: make this node a member of the corosync + pacemaker
# cluster NAME whose members have these addresses (index order, the same list on every
# member). Node names are NAME-<index>. Returns once the cluster has quorum.
ha_cluster_setup() {
    local name=${1:-}
    shift || true
    celtic_step ha-members ha_check_member "$name" "$@"
    # pacemaker-cli-utils (crm_mon, crm_verify...) is only a Recommends of pacemaker.
    celtic_step ha-packages ha_install_packages corosync pacemaker pacemaker-cli-utils pcs \
        resource-agents
    celtic_step ha-nonlocal-bind ha_nonlocal_bind
    celtic_step ha-keys ha_write_keys
    celtic_step ha-corosync-conf ha_write_corosync_conf "$name" "$@"
    celtic_step ha-pcsd-conf ha_write_pcsd_defaults "$(celtic_node_ip)"
    celtic_step ha-start ha_start_daemons
    celtic_step ha-quorum ha_wait_quorum "$name" "$@"
}

# ha_check_member NAME ADDRESS...: this node is one of the members.
ha_check_member() {
    local name=$1 self
    shift
    [[ -n "$name" && $# -ge 1 ]] ||
        celtic_die "ha_cluster_setup needs a cluster name and the member addresses"
    self=$(celtic_node_ip)
    celtic_index_of "$self" "$@" >/dev/null ||
        celtic_die "this node's address '$self' is not among the $name members ($*)"
}

# ha_install_packages NAME...: install without letting the packages start their
# daemons: corosync and pacemaker would come up as a one-node cluster with the package's
# default corosync.conf, and that cluster's CIB would later join ours.
ha_install_packages() {
    local rc=0 created=0
    if [[ ! -e "$HA_POLICY_RC" ]]; then
        mkdir -p "$(dirname "$HA_POLICY_RC")"
        printf '#!/bin/sh\n# celtic ha.sh: no daemon starts while HA packages install\nexit 101\n' \
            >"$HA_POLICY_RC"
        chmod 0755 "$HA_POLICY_RC"
        created=1
    fi
    celtic_install "$@" || rc=$?
    if [[ $created -eq 1 ]]; then
        rm -f "$HA_POLICY_RC"
    fi
    return "$rc"
}

# ha_nonlocal_bind: HAProxy binds the VIP on every member, also where the VIP is not
# configured, so its clone is ready everywhere before the VIP moves.
ha_nonlocal_bind() {
    celtic_write_file "$HA_SYSCTL_FILE" 0644 <<'EOF'
# celtic ha.sh: HAProxy listens on the VIP on every member of the HA group.
net.ipv4.ip_nonlocal_bind = 1
EOF
    sysctl -q -w net.ipv4.ip_nonlocal_bind=1 >/dev/null
}

# ha_write_keys: the corosync authkey and the hacluster password (pcsd logins), both
# derived from the group's ha-secret so every member computes the same ones. Neither
# is ever printed or passed on a command line.
ha_write_keys() {
    local secret tmp rc=0
    secret=$(celtic_secret ha-secret)
    mkdir -p "$HA_COROSYNC_DIR"
    tmp=$(mktemp "$HA_COROSYNC_DIR/.authkey.XXXXXX")
    ha_derive authkey "$secret" >"$tmp" || rc=$?
    if [[ $rc -eq 0 ]]; then
        celtic_write_file "$HA_COROSYNC_DIR/authkey" 0400 <"$tmp"
    fi
    rm -f "$tmp"
    [[ $rc -eq 0 ]] || celtic_die "cannot derive the corosync key from the ha-secret"
    if ! celtic_done_marker hacluster-password; then
        ha_derive hacluster-password "$secret" | chpasswd ||
            celtic_die "cannot set the hacluster password"
        celtic_mark_done hacluster-password
    fi
}

# ha_derive WHAT SECRET_FILE: authkey (256 bytes, binary) or hacluster-password (a
# chpasswd line), from sha512/sha256 of a purpose label and the secret.
ha_derive() {
    celtic_python - "$1" "$2" <<'PY'
import hashlib, sys
what, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    secret = f.read().strip()
if not secret:
    sys.exit(1)
if what == 'authkey':
    key = b''.join(hashlib.sha512(('corosync-authkey:%d:%s' % (i, secret)).encode()).digest()
                   for i in range(4))
    sys.stdout.buffer.write(key)
else:
    word = hashlib.sha256(('hacluster:' + secret).encode()).hexdigest()
    sys.stdout.write('hacluster:%s\n' % word)
PY
}

# ha_write_corosync_conf NAME ADDRESS...: corosync.conf from the template: knet unicast
# between the members' fixed addresses. Two members get votequorum's two_node (the
# survivor of a pair keeps quorum; both must have been seen once at start-up).
ha_write_corosync_conf() {
    local name=$1 i=0 address nodelist='' quorum_options=''
    shift
    if [[ $# -eq 2 ]]; then
        quorum_options='    two_node: 1'
    fi
    for address in "$@"; do
        nodelist+=$(printf '    node {\n        name: %s-%d\n        nodeid: %d\n        ring0_addr: %s\n    }' \
            "$name" "$i" "$((i + 1))" "$address")
        if [[ $((i + 1)) -lt $# ]]; then
            nodelist+=$'\n'
        fi
        i=$((i + 1))
    done
    local before=$CELTIC_CHANGED
    CELTIC_CHANGED=0
    HA_CLUSTER_NAME=$name HA_AUTHKEY="$HA_COROSYNC_DIR/authkey" HA_NODELIST=$nodelist \
        HA_QUORUM_OPTIONS=$quorum_options \
        celtic_render "$HA_TEMPLATES/corosync.conf.tmpl" "$HA_COROSYNC_DIR/corosync.conf" 0644
    HA_COROSYNC_CHANGED=$CELTIC_CHANGED
    if [[ $before -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}

# ha_write_pcsd_defaults ADDRESS: pcsd (port 2224, open between members only) listens
# on the node's own address, not on every interface.
ha_write_pcsd_defaults() {
    local address=$1 content=''
    if [[ -r "$HA_PCSD_DEFAULTS" ]]; then
        content=$(grep -v '^PCSD_BIND_ADDR=' "$HA_PCSD_DEFAULTS" || true)
    fi
    if [[ -n "$content" ]]; then
        content+=$'\n'
    fi
    local before=$CELTIC_CHANGED
    CELTIC_CHANGED=0
    celtic_write_file "$HA_PCSD_DEFAULTS" 0644 <<<"${content}PCSD_BIND_ADDR='$address'"
    HA_PCSD_CHANGED=$CELTIC_CHANGED
    if [[ $before -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}

# ha_start_daemons: corosync, pacemaker and pcsd enabled and running with the files
# just written. A changed corosync.conf on a running member is reloaded, not restarted.
ha_start_daemons() {
    systemctl enable corosync pacemaker pcsd >/dev/null 2>&1 ||
        celtic_die "cannot enable corosync, pacemaker and pcsd"
    if systemctl is-active --quiet corosync; then
        if [[ "${HA_COROSYNC_CHANGED:-0}" -eq 1 ]]; then
            corosync-cfgtool -R >/dev/null || celtic_die "corosync did not reload corosync.conf"
        fi
    else
        systemctl start corosync || celtic_die "corosync does not start: see /var/log/corosync/corosync.log"
    fi
    systemctl start pacemaker || celtic_die "pacemaker does not start: see /var/log/pacemaker/pacemaker.log"
    if [[ "${HA_PCSD_CHANGED:-0}" -eq 1 ]] && systemctl is-active --quiet pcsd; then
        systemctl restart pcsd || celtic_die "pcsd does not start"
    else
        systemctl start pcsd || celtic_die "pcsd does not start"
    fi
}

# ha_quorate: true when corosync says this partition has quorum.
ha_quorate() {
    corosync-quorumtool -s 2>/dev/null | grep -Eq '^Quorate:[[:space:]]+Yes'
}

ha_wait_quorum() {
    local name=$1
    shift
    celtic_wait_for "$HA_QUORUM_TIMEOUT" 5 "quorum of the $name cluster" ha_quorate ||
        celtic_die "the $name cluster has no quorum after ${HA_QUORUM_TIMEOUT}s: more than half of" \
            "its members ($*) must run corosync and reach each other on UDP 5405"
}

# ---------------------------------------------------------------------------------------
# VIP

# ha_vip_setup PREFIX VIP SERVICE [CIDR]: the pacemaker resources of the group's VIP:
#   PREFIX-haproxy-clone  SERVICE on every member
#   PREFIX-vip            IPaddr2 VIP/CIDR on the node's interface (nic= always: without
#                         it an isolated node keeps the address), only where SERVICE runs,
#                         started after it, sticky, and kept off the DC when possible
# CIDR defaults to the prefix length of the node's own address. The configuration is
# built offline with `pcs -f` on a copy of the live CIB, checked with crm_verify and
# pushed only when it differs from what the cluster already has.
ha_vip_setup() {
    local prefix=${1:-} vip=${2:-} service=${3:-} cidr=${4:-} nic
    [[ -n "$prefix" && -n "$vip" && -n "$service" ]] ||
        celtic_die "ha_vip_setup needs a prefix, the VIP and the service name"
    nic=$(celtic_node_nic)
    [[ -n "$nic" ]] || celtic_die "cannot find the interface that holds this node's address"
    if [[ -z "$cidr" ]]; then
        cidr=$(ha_prefix_length "$nic")
    fi
    celtic_step "$prefix-vip-service" ha_service_handover "$service"
    celtic_step "$prefix-vip-dc" ha_wait_dc
    celtic_step "$prefix-vip-resources" ha_push_vip_config "$prefix" "$vip" "$service" "$cidr" "$nic"
    celtic_step "$prefix-vip-cleanup" ha_clear_service_failures "$prefix-haproxy"
}

# ha_member_standby NODE: before NODE's server is replaced (an upgrade) or removed,
# pacemaker moves what runs there elsewhere: the VIP, if NODE holds it, moves once, while
# NODE still answers, instead of after a failure detection; NODE's service instance
# stops. Returns when the cluster has settled (HA_SETTLE_TIMEOUT seconds at most). The
# standby flag is kept in the CIB, so a replacement server with NODE's name joins
# without taking anything until ha_member_active.
ha_member_standby() {
    local node=${1:-} vip
    [[ -n "$node" ]] || celtic_die "ha_member_standby needs a node name"
    # A VIP on NODE moves first, while NODE's HAProxy still answers on it: in one
    # standby pacemaker may stop that HAProxy before the VIP leaves, and a client then
    # meets a VIP with nothing listening (connection refused, seen in the rollout lab).
    for vip in $(ha_vips_on "$node"); do
        pcs resource ban "$vip" "$node" --wait="$HA_SETTLE_TIMEOUT" >/dev/null ||
            celtic_die "pacemaker did not move $vip off $node within ${HA_SETTLE_TIMEOUT}s"
    done
    pcs node standby "$node" --wait="$HA_SETTLE_TIMEOUT" >/dev/null ||
        celtic_die "pacemaker did not move the resources off $node within ${HA_SETTLE_TIMEOUT}s"
}

# ha_member_active NODE: NODE (its replacement ready: service installed, configured and
# answering) takes resources again, the bans ha_member_standby set lifted. Returns when
# the cluster has settled.
ha_member_active() {
    local node=${1:-} vip
    [[ -n "$node" ]] || celtic_die "ha_member_active needs a node name"
    pcs node unstandby "$node" --wait="$HA_SETTLE_TIMEOUT" >/dev/null ||
        celtic_die "pacemaker did not settle with $node active within ${HA_SETTLE_TIMEOUT}s"
    for vip in $(ha_vips); do
        pcs resource clear "$vip" "$node" >/dev/null 2>&1 || true
    done
}

# ha_vips: the VIP resources of this cluster (ids ending in -vip, ha_vip_setup's).
ha_vips() {
    crm_resource --list-raw 2>/dev/null | grep -- '-vip$' || true
}

# ha_vips_on NODE: the VIP resources running on NODE.
ha_vips_on() {
    local vip
    for vip in $(ha_vips); do
        if crm_resource --locate --resource "$vip" 2>/dev/null |
            grep -q -- "running on: $1\$"; then
            printf '%s\n' "$vip"
        fi
    done
}

# ha_clear_service_failures RESOURCE: forget this node's failed operations of RESOURCE.
# Pacemaker may have tried to start the service here before the caller installed and
# configured it (another member pushed the resources first); the failure would keep the
# service off this node until failure-timeout. Now that it is ready, try again at once.
ha_clear_service_failures() {
    local node
    node=$(crm_node -n 2>/dev/null) || celtic_die "pacemaker does not know this node's name"
    crm_resource --cleanup --resource "$1" --node "$node" >/dev/null 2>&1 ||
        celtic_die "cannot clear the failures of $1 on $node"
}

# ha_prefix_length NIC: the prefix length of the node's address on NIC.
ha_prefix_length() {
    local nic=$1 self length
    self=$(celtic_node_ip)
    length=$(ip -4 -o addr show dev "$nic" 2>/dev/null |
        awk -v ip="$self" '{split($4, a, "/"); if (a[1] == ip) {print a[2]; exit}}')
    [[ -n "$length" ]] || celtic_die "cannot find the prefix length of $self on $nic"
    printf '%s\n' "$length"
}

# ha_service_handover SERVICE: pacemaker starts and stops SERVICE from now on, not the
# init system at boot.
ha_service_handover() {
    if [[ "$HA_SERVICE_CLASS" == systemd ]]; then
        systemctl disable "$1" >/dev/null 2>&1 || celtic_die "cannot disable $1 in systemd"
    fi
}

ha_have_dc() {
    crm_mon -1 --output-as=xml 2>/dev/null | grep -q '<current_dc present="true"'
}

ha_wait_dc() {
    celtic_wait_for "$HA_DC_TIMEOUT" 2 "a pacemaker DC" ha_have_dc ||
        celtic_die "pacemaker elected no DC within ${HA_DC_TIMEOUT}s: see /var/log/pacemaker/pacemaker.log"
}

ha_push_vip_config() {
    local prefix=$1 vip=$2 service=$3 cidr=$4 nic=$5 work rc=0
    mkdir -p "$HA_WORK_DIR"
    work=$(mktemp -d "$HA_WORK_DIR/$prefix.XXXXXX")
    ha_push_vip_config_in "$work" "$@" || rc=$?
    rm -rf "$work"
    return "$rc"
}

ha_push_vip_config_in() {
    local work=$1 prefix=$2
    shift
    celtic_retry -n 5 -d 2 -- pcs cluster cib "$work/live.xml" ||
        celtic_die "cannot read the live CIB"
    cp "$work/live.xml" "$work/new.xml"
    ha_build_vip_cib "$work/new.xml" "$@" >"$work/pcs.log" 2>&1 || {
        celtic_warn "$(tail -n 3 "$work/pcs.log")"
        celtic_die "pcs rejected the $prefix VIP configuration"
    }
    crm_verify -x "$work/new.xml" >"$work/verify.log" 2>&1 || {
        celtic_warn "$(tail -n 3 "$work/verify.log")"
        celtic_die "the $prefix VIP configuration does not pass crm_verify"
    }
    if ha_same_configuration "$work/live.xml" "$work/new.xml"; then
        celtic_info "the $prefix VIP resources are already configured"
        return 0
    fi
    pcs cluster cib-push "$work/new.xml" --config >/dev/null ||
        celtic_die "cannot push the $prefix VIP configuration to the cluster"
    CELTIC_CHANGED=1
    celtic_info "pushed the $prefix VIP resources ($prefix-vip, $prefix-haproxy-clone)"
}

# ha_build_vip_cib CIB PREFIX VIP SERVICE CIDR NIC: the pcs commands, on a CIB file.
# Earlier versions of the resources are removed first, so the result is the same
# whatever the file held (identical ids: an unchanged configuration stays unchanged).
ha_build_vip_cib() {
    local cib=$1 prefix=$2 vip=$3 service=$4 cidr=$5 nic=$6
    local vip_id="$prefix-vip" service_id="$prefix-haproxy"
    if grep -q "id=\"$vip_id\"" "$cib"; then
        pcs -f "$cib" resource delete "$vip_id"
    fi
    if grep -q "id=\"$service_id\"" "$cib"; then
        pcs -f "$cib" resource delete "$service_id"
    fi
    pcs -f "$cib" property set "${HA_CLUSTER_PROPERTIES[@]}" &&
        pcs -f "$cib" property set transition-delay="$HA_TRANSITION_DELAY" --force &&
        pcs -f "$cib" resource create "$service_id" "$HA_SERVICE_CLASS:$service" \
            op monitor "${HA_SERVICE_MONITOR[@]}" start "${HA_SERVICE_START[@]}" \
            meta "${HA_SERVICE_META[@]}" clone interleave=true &&
        pcs -f "$cib" resource create "$vip_id" ocf:heartbeat:IPaddr2 \
            ip="$vip" cidr_netmask="$cidr" nic="$nic" "${HA_VIP_ARP[@]}" \
            op monitor "${HA_VIP_MONITOR[@]}" \
            meta resource-stickiness="$HA_VIP_STICKINESS" &&
        pcs -f "$cib" constraint colocation add "$vip_id" with "$service_id-clone" INFINITY &&
        pcs -f "$cib" constraint order start "$service_id-clone" 'then' start "$vip_id" \
            symmetrical=false &&
        pcs -f "$cib" constraint location "$vip_id" rule score="$HA_VIP_DC_AVOIDANCE" \
            '#is_dc' eq true
}

# ha_same_configuration LIVE NEW: true when both CIB files hold the same configuration.
ha_same_configuration() {
    celtic_python - "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET

def configuration(path):
    element = ET.parse(path).getroot().find('configuration')
    return ET.canonicalize(ET.tostring(element), strip_text=True)

sys.exit(0 if configuration(sys.argv[1]) == configuration(sys.argv[2]) else 1)
PY
}
