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

# gluster.sh: the GlusterFS server side of a storage node (sourced by storage.sh).
#
#   brick    the Cinder volume Heat attached (server metadata celtic_volume) is found
#            under /dev/disk/by-id, formatted XFS once and never again, and mounted by
#            filesystem UUID with a systemd mount unit that glusterd requires
#   glusterd installed, held to the brick ports the storage security group opens,
#            started once the brick is mounted
#   volume   storage 0 (the first of storage_addresses) probes its peers and creates,
#            starts or grows the volume; every other node waits until storage 0 has
#            taken it in, so "ready" means "serving its brick"
#
# Layout by number of storage nodes (doc/storage.md gives the trade-offs):
#   1      distribute, one brick: no redundancy beyond the Cinder volume itself
#   2      replica 3 arbiter 1: data on storage 0 and 1, the arbiter on storage 0
#   3+     replica 3 in sets of three consecutive nodes; the one or two nodes after the
#          last full set join the pool without a brick until the count reaches the
#          next multiple of three
# Growing appends replica sets (add-brick, then rebalance) or turns a one-brick volume
# into replica 3; anything else (shrinking, leaving the arbiter layout) is refused with
# a message that says why.

GLUSTER_BRICK_MOUNT=${GLUSTER_BRICK_MOUNT:-/srv/gluster/brick}
# Where udev keeps its by-id / by-uuid links.
GLUSTER_DEV_DIR=${GLUSTER_DEV_DIR:-/dev/disk}
# Empty: find the Cinder volume named by the server metadata. A device path: use that
# device. "none": the brick filesystem is mounted at GLUSTER_BRICK_MOUNT by someone else
# (no device is found, formatted or mounted here; it must still be a mount point).
GLUSTER_BRICK_DEVICE=${GLUSTER_BRICK_DEVICE:-}
# The brick's Cinder volume id; empty: read celtic_volume from the server metadata.
GLUSTER_BRICK_VOLUME_ID=${GLUSTER_BRICK_VOLUME_ID:-}
GLUSTER_METADATA_URL=${GLUSTER_METADATA_URL:-http://169.254.169.254/openstack/latest/meta_data.json}
GLUSTER_SYSTEMD=${GLUSTER_SYSTEMD:-${CELTIC_ROOT:-}/etc/systemd/system}
GLUSTERD_VOL=${GLUSTERD_VOL:-${CELTIC_ROOT:-}/etc/glusterfs/glusterd.vol}
# Brick processes listen on a random port in this range: it must match the storage
# security group in security.yaml.
GLUSTER_BASE_PORT=${GLUSTER_BASE_PORT:-49152}
GLUSTER_MAX_PORT=${GLUSTER_MAX_PORT:-49251}
GLUSTER_DISK_TIMEOUT=${GLUSTER_DISK_TIMEOUT:-300}
GLUSTER_PEER_TIMEOUT=${GLUSTER_PEER_TIMEOUT:-1800}
GLUSTER_JOIN_TIMEOUT=${GLUSTER_JOIN_TIMEOUT:-2400}
GLUSTER_POOL_TIMEOUT=${GLUSTER_POOL_TIMEOUT:-120}
GLUSTER_STORAGE_SH=${GLUSTER_STORAGE_SH:-/usr/local/lib/celtic/storage.sh}

# ---------------------------------------------------------------------------------------
# the gluster command line

gluster_cli() {
    gluster --mode=script "$@"
}

# _gluster_try ARGS...: one gluster call; its output is kept in GLUSTER_OUTPUT.
_gluster_try() {
    local rc=0
    GLUSTER_OUTPUT=$(gluster_cli "$@" 2>&1) || rc=$?
    return "$rc"
}

# gluster_change ARGS...: a gluster call that changes the pool or the volume, retried
# (glusterd refuses while another transaction holds its lock); fails the step with
# gluster's own message.
gluster_change() {
    celtic_info "gluster $*"
    if ! celtic_retry -n 4 -d 5 -- _gluster_try "$@"; then
        celtic_die "gluster $* failed: $(tr '\n' ' ' <<<"$GLUSTER_OUTPUT")"
    fi
}

# _gluster_xml KIND XML: gluster's --xml output as one fact per line.
#   volume: "absent", or "status S", "replica N", "arbiter N", "brick HOST:PATH",
#           "option NAME VALUE"
#   peers:  "peer HOSTNAME STATE CONNECTED" for every name of every peer (STATE without
#           spaces, CONNECTED 1 or 0)
_gluster_xml() {
    celtic_python - "$1" "$2" <<'PY'
import sys
import xml.etree.ElementTree as ET
kind = sys.argv[1]
root = ET.fromstring(sys.argv[2])
if root.findtext("opRet", "0").strip() != "0":
    err = (root.findtext("opErrstr") or "").strip()
    if kind == "volume" and "does not exist" in err:
        print("absent")
        sys.exit(0)
    sys.exit("gluster: " + (err or "unknown error"))
if kind == "volume":
    vol = root.find("volInfo/volumes/volume")
    if vol is None:
        print("absent")
        sys.exit(0)
    print("status", vol.findtext("statusStr"))
    print("replica", vol.findtext("replicaCount"))
    print("arbiter", vol.findtext("arbiterCount", "0"))
    for brick in vol.findall("bricks/brick"):
        print("brick", brick.findtext("name"))
    for opt in vol.findall("options/option"):
        print("option", opt.findtext("name"), opt.findtext("value"))
elif kind == "peers":
    for peer in root.findall("peerStatus/peer"):
        state = (peer.findtext("stateStr") or "").replace(" ", "_")
        connected = (peer.findtext("connected") or "0").strip()
        names = {peer.findtext("hostname")}
        names.update(h.text for h in peer.findall("hostnames/hostname"))
        for name in sorted(n for n in names if n):
            print("peer", name, state, connected)
PY
}

# gluster_read_volume [GLUSTER OPTIONS...]: what glusterd knows of the volume, in
# GLUSTER_VOL_STATE (absent|present), GLUSTER_VOL_STATUS, GLUSTER_VOL_REPLICA,
# GLUSTER_VOL_ARBITER, GLUSTER_VOL_BRICKS and GLUSTER_VOL_OPTIONS.
gluster_read_volume() {
    local xml facts key rest
    xml=$(gluster_cli "$@" volume info "$CELTIC_STORAGE_VOLUME_NAME" --xml 2>&1) || return 1
    facts=$(_gluster_xml volume "$xml") || return 1
    GLUSTER_VOL_STATE=present GLUSTER_VOL_STATUS="" GLUSTER_VOL_REPLICA=0 GLUSTER_VOL_ARBITER=0
    GLUSTER_VOL_BRICKS=()
    declare -g -A GLUSTER_VOL_OPTIONS=()
    while read -r key rest; do
        case "$key" in
            absent) GLUSTER_VOL_STATE=absent ;;
            status) GLUSTER_VOL_STATUS=$rest ;;
            replica) GLUSTER_VOL_REPLICA=$rest ;;
            arbiter) GLUSTER_VOL_ARBITER=$rest ;;
            brick) GLUSTER_VOL_BRICKS+=("$rest") ;;
            option) GLUSTER_VOL_OPTIONS[${rest%% *}]=${rest#* } ;;
        esac
    done <<<"$facts"
}

# gluster_peer_state ADDRESS: the peer's state as this glusterd sees it (empty: unknown).
gluster_peer_state() {
    local xml
    xml=$(gluster_cli peer status --xml 2>/dev/null) || return 0
    _gluster_xml peers "$xml" | awk -v a="$1" '$2 == a {print $3; exit}'
}

# _gluster_answers: true once the local glusterd answers the command line.
_gluster_answers() {
    gluster_cli pool list >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------
# who is who

# _gluster_is_prefix SHORT LONG: true when array SHORT starts array LONG (names).
_gluster_is_prefix() {
    local -n _short=$1 _long=$2
    local i
    [[ ${#_short[@]} -le ${#_long[@]} ]] || return 1
    for i in "${!_short[@]}"; do
        [[ "${_short[$i]}" == "${_long[$i]}" ]] || return 1
    done
}

# gluster_load_addresses: GLUSTER_ADDRESSES (storage_addresses, or the longer list a
# `storage.sh grow` saved), this node's GLUSTER_MY_IP and GLUSTER_INDEX.
gluster_load_addresses() {
    local saved_file=$CELTIC_STATE_DIR/gluster/storage-addresses index
    local -a saved=()
    read -r -a GLUSTER_ADDRESSES <<<"${CELTIC_STORAGE_ADDRESSES:-}"
    [[ ${#GLUSTER_ADDRESSES[@]} -gt 0 ]] ||
        celtic_die "storage_addresses is empty: this cluster has no storage nodes"
    if [[ -s "$saved_file" ]]; then
        read -r -a saved <"$saved_file"
        if _gluster_is_prefix GLUSTER_ADDRESSES saved; then
            GLUSTER_ADDRESSES=("${saved[@]}")
        fi
    fi
    [[ "${CELTIC_STORAGE_VOLUME_NAME:-}" =~ ^[A-Za-z0-9_-]{1,64}$ ]] ||
        celtic_die "storage_volume_name must be 1-64 letters, digits, '-' or '_', got '${CELTIC_STORAGE_VOLUME_NAME:-}'"
    GLUSTER_MY_IP=$(celtic_node_ip)
    index=$(celtic_index_of "$GLUSTER_MY_IP" "${GLUSTER_ADDRESSES[@]}") ||
        celtic_die "this node's address '$GLUSTER_MY_IP' is not one of storage_addresses (${GLUSTER_ADDRESSES[*]})"
    GLUSTER_INDEX=$index
    gluster_layout
}

# gluster_grow_addresses ADDRESS...: storage 0 learns a longer storage_addresses (Heat
# does not re-run a booted node); the current list must start the new one.
gluster_grow_addresses() {
    local -a wanted=("$@")
    [[ ${#wanted[@]} -gt 0 ]] ||
        celtic_die "usage: storage.sh grow ADDRESS... (every storage address in index order: the stack output storage_addresses)"
    gluster_load_addresses
    [[ $GLUSTER_INDEX -eq 0 ]] ||
        celtic_die "grow runs on storage 0 (${GLUSTER_ADDRESSES[0]}), not on storage $GLUSTER_INDEX"
    if ! _gluster_is_prefix GLUSTER_ADDRESSES wanted; then
        celtic_die "the new storage addresses (${wanted[*]}) must start with the current ones (${GLUSTER_ADDRESSES[*]}) in the same order: storage nodes are only ever appended"
    fi
    mkdir -p "$CELTIC_STATE_DIR/gluster"
    printf '%s\n' "${wanted[*]}" >"$CELTIC_STATE_DIR/gluster/storage-addresses"
    celtic_info "storage addresses are now: ${wanted[*]}"
}

# gluster_layout: the bricks the volume should have for GLUSTER_ADDRESSES:
# GLUSTER_LAYOUT (distribute|arbiter|replica), GLUSTER_LAYOUT_BRICKS (in replica-set
# order) and GLUSTER_LAYOUT_IDLE (pool members without a brick).
gluster_layout() {
    local -a a=("${GLUSTER_ADDRESSES[@]}")
    local n=${#a[@]} i full
    local brick=$GLUSTER_BRICK_MOUNT/$CELTIC_STORAGE_VOLUME_NAME
    GLUSTER_LAYOUT_BRICKS=()
    GLUSTER_LAYOUT_IDLE=()
    case "$n" in
        1)
            GLUSTER_LAYOUT=distribute
            GLUSTER_LAYOUT_BRICKS=("${a[0]}:$brick")
            ;;
        2)
            GLUSTER_LAYOUT=arbiter
            GLUSTER_LAYOUT_BRICKS=("${a[0]}:$brick" "${a[1]}:$brick" "${a[0]}:$brick-arbiter")
            ;;
        *)
            GLUSTER_LAYOUT=replica
            full=$((n / 3 * 3))
            for ((i = 0; i < n; i++)); do
                if [[ $i -lt $full ]]; then
                    GLUSTER_LAYOUT_BRICKS+=("${a[$i]}:$brick")
                else
                    GLUSTER_LAYOUT_IDLE+=("${a[$i]}")
                fi
            done
            ;;
    esac
}

# ---------------------------------------------------------------------------------------
# the brick

# gluster_brick_volume_id: GLUSTER_VOLUME_ID, the Cinder volume Heat made for this node.
gluster_brick_volume_id() {
    local meta
    if [[ -n "$GLUSTER_BRICK_VOLUME_ID" ]]; then
        GLUSTER_VOLUME_ID=$GLUSTER_BRICK_VOLUME_ID
        return 0
    fi
    meta=$(celtic_retry -n 6 -d 2 -- curl -sS -f --noproxy '*' --max-time 10 "$GLUSTER_METADATA_URL") ||
        celtic_die "cannot read the server metadata at $GLUSTER_METADATA_URL (it names the brick volume)"
    GLUSTER_VOLUME_ID=$(celtic_python -c '
import json, sys
print(json.load(sys.stdin).get("meta", {}).get("celtic_volume", ""))' <<<"$meta") ||
        celtic_die "the server metadata at $GLUSTER_METADATA_URL is not JSON"
    [[ -n "$GLUSTER_VOLUME_ID" ]] ||
        celtic_die "this server has no brick volume (server metadata celtic_volume is empty): storage nodes need storage_volume_size > 0"
}

# _gluster_disk_link: GLUSTER_DISK_LINK, the udev link of the brick volume: virtio disks
# carry the first 20 characters of the Cinder volume id as their serial.
_gluster_disk_link() {
    local serial=${GLUSTER_VOLUME_ID:0:20} link
    for link in "$GLUSTER_DEV_DIR/by-id/virtio-$serial" "$GLUSTER_DEV_DIR/by-id/"*"$serial"*; do
        if [[ -e "$link" && ! "$link" =~ -part[0-9]+$ ]]; then
            GLUSTER_DISK_LINK=$link
            return 0
        fi
    done
    return 1
}

# gluster_find_brick_device: GLUSTER_DEVICE, waiting (bounded) for the volume to appear.
gluster_find_brick_device() {
    local where
    if [[ "$GLUSTER_BRICK_DEVICE" == none ]]; then
        GLUSTER_DEVICE=none
        celtic_info "brick filesystem provided at $GLUSTER_BRICK_MOUNT (GLUSTER_BRICK_DEVICE=none)"
        return 0
    fi
    if [[ -n "$GLUSTER_BRICK_DEVICE" ]]; then
        GLUSTER_DEVICE=$GLUSTER_BRICK_DEVICE
    else
        gluster_brick_volume_id
        if ! celtic_wait_for "$GLUSTER_DISK_TIMEOUT" 5 "brick volume $GLUSTER_VOLUME_ID" _gluster_disk_link; then
            celtic_die "brick volume $GLUSTER_VOLUME_ID did not appear as $GLUSTER_DEV_DIR/by-id/virtio-${GLUSTER_VOLUME_ID:0:20} within ${GLUSTER_DISK_TIMEOUT}s: is it attached to this server?"
        fi
        GLUSTER_DEVICE=$(readlink -f "$GLUSTER_DISK_LINK")
    fi
    [[ -b "$GLUSTER_DEVICE" ]] || celtic_die "brick device $GLUSTER_DEVICE is not a block device"
    where=$(findmnt -n -o TARGET --source "$GLUSTER_DEVICE" 2>/dev/null | head -n 1) || true
    if [[ -n "$where" && "$where" != "$GLUSTER_BRICK_MOUNT" ]]; then
        celtic_die "brick device $GLUSTER_DEVICE is already mounted at $where: it is not a brick volume"
    fi
    celtic_info "brick device: $GLUSTER_DEVICE"
}

# gluster_format_brick: XFS on a blank device, once. A device with any filesystem,
# partition table or other signature is never formatted; an XFS one is kept as it is
# (the second run, or a brick that already holds data).
gluster_format_brick() {
    local dev=$GLUSTER_DEVICE probe rc=0 type pttype signatures what
    [[ "$dev" != none ]] || return 0
    probe=$(blkid -p -o export "$dev") || rc=$?
    case "$rc" in
        0) ;;
        2) probe="" ;;
        *) celtic_die "cannot tell what $dev holds (blkid exit $rc): refusing to format it" ;;
    esac
    type=$(sed -n 's/^TYPE=//p' <<<"$probe")
    pttype=$(sed -n 's/^PTTYPE=//p' <<<"$probe")
    if [[ "$type" == xfs ]]; then
        GLUSTER_BRICK_UUID=$(sed -n 's/^UUID=//p' <<<"$probe")
        celtic_info "$dev already holds the XFS brick $GLUSTER_BRICK_UUID: kept, never reformatted"
        return 0
    fi
    if [[ -n "$type" || -n "$pttype" ]]; then
        what=${type:+$type filesystem}
        what+=${pttype:+${what:+, }$pttype partition table}
        celtic_die "brick device $dev already holds data ($what): refusing to format it (wipe it yourself if the data is not needed)"
    fi
    signatures=$(wipefs --no-act --noheadings --output TYPE,OFFSET "$dev") ||
        celtic_die "wipefs cannot read $dev"
    if [[ -n "${signatures//[[:space:]]/}" ]]; then
        celtic_die "brick device $dev carries signatures ($(tr -s '\n ' ' ' <<<"$signatures")): refusing to format it"
    fi
    celtic_info "formatting the blank device $dev as XFS for the brick"
    mkfs.xfs -q -i size=512 -L celtic-brick "$dev"
    GLUSTER_BRICK_UUID=$(blkid -p -o value -s UUID "$dev") ||
        celtic_die "no filesystem UUID on $dev after mkfs.xfs"
}

# _gluster_mounted_source PATH: the device mounted at PATH (empty: nothing mounted).
_gluster_mounted_source() {
    findmnt -n -o SOURCE --mountpoint "$1" 2>/dev/null || true
}

# gluster_mount_brick: the brick filesystem at GLUSTER_BRICK_MOUNT through a systemd
# mount unit (by UUID), glusterd tied to it, and this node's brick directories.
gluster_mount_brick() {
    local unit what source dir
    [[ "$GLUSTER_BRICK_MOUNT" == /?* ]] ||
        celtic_die "the brick mount point must be an absolute path other than /, got '$GLUSTER_BRICK_MOUNT'"
    if [[ "$GLUSTER_DEVICE" == none ]]; then
        mountpoint -q "$GLUSTER_BRICK_MOUNT" ||
            celtic_die "nothing is mounted at $GLUSTER_BRICK_MOUNT: a brick on the root disk is refused"
    else
        unit=$(systemd-escape --path --suffix=mount "$GLUSTER_BRICK_MOUNT")
        what=$GLUSTER_DEV_DIR/by-uuid/$GLUSTER_BRICK_UUID
        CELTIC_CHANGED=0
        GLUSTER_BRICK_WHAT=$what GLUSTER_BRICK_WHERE=$GLUSTER_BRICK_MOUNT celtic_render \
            "$CELTIC_LIB_DIR/templates/gluster-brick.mount.tmpl" "$GLUSTER_SYSTEMD/$unit" 0644
        GLUSTER_BRICK_WHERE=$GLUSTER_BRICK_MOUNT celtic_render \
            "$CELTIC_LIB_DIR/templates/glusterd-brick.conf.tmpl" \
            "$GLUSTER_SYSTEMD/glusterd.service.d/celtic-brick.conf" 0644
        if [[ $CELTIC_CHANGED == 1 ]]; then
            systemctl daemon-reload
        fi
        systemctl enable "$unit"
        if ! mountpoint -q "$GLUSTER_BRICK_MOUNT"; then
            if command -v udevadm >/dev/null 2>&1; then
                udevadm settle --timeout=30 || true
            fi
            celtic_wait_for 60 2 "$what" test -e "$what" ||
                celtic_die "udev did not create $what for the new brick filesystem"
            mkdir -p "$GLUSTER_BRICK_MOUNT"
            systemctl start "$unit" ||
                celtic_die "cannot mount the brick ($unit): see journalctl -u $unit"
        fi
        source=$(_gluster_mounted_source "$GLUSTER_BRICK_MOUNT")
        if [[ -z "$source" || "$(readlink -f "$source")" != "$(readlink -f "$GLUSTER_DEVICE")" ]]; then
            celtic_die "$GLUSTER_BRICK_MOUNT holds '${source:-nothing}' instead of the brick $GLUSTER_DEVICE"
        fi
    fi
    for dir in "${GLUSTER_LAYOUT_BRICKS[@]}"; do
        if [[ "${dir%%:*}" == "$GLUSTER_MY_IP" ]]; then
            mkdir -p "${dir#*:}"
        fi
    done
    mkdir -p "$GLUSTER_BRICK_MOUNT/$CELTIC_STORAGE_VOLUME_NAME"
}

# ---------------------------------------------------------------------------------------
# glusterd

# gluster_glusterd_ports: brick ports limited to the range the security group opens
# (glusterd 10 picks a random port anywhere up to 60999 by default).
gluster_glusterd_ports() {
    [[ -r "$GLUSTERD_VOL" ]] || celtic_die "$GLUSTERD_VOL is missing: is glusterfs-server installed?"
    celtic_write_file "$GLUSTERD_VOL" 0644 < <(awk -v base="$GLUSTER_BASE_PORT" -v max="$GLUSTER_MAX_PORT" '
        /^[[:space:]]*#?[[:space:]]*option[[:space:]]+base-port([[:space:]]|$)/ {
            if (!b) print "    option base-port " base; b = 1; next }
        /^[[:space:]]*#?[[:space:]]*option[[:space:]]+max-port([[:space:]]|$)/ {
            if (!m) print "    option max-port " max; m = 1; next }
        /^[[:space:]]*end-volume/ {
            if (!b) print "    option base-port " base
            if (!m) print "    option max-port " max
            b = 1; m = 1 }
        { print }' "$GLUSTERD_VOL")
}

# gluster_start_glusterd: glusterd installed, configured, running and answering.
gluster_start_glusterd() {
    celtic_install glusterfs-server
    CELTIC_CHANGED=0
    gluster_glusterd_ports
    systemctl enable glusterd
    if [[ $CELTIC_CHANGED == 1 ]] && systemctl is-active --quiet glusterd; then
        systemctl restart glusterd
    elif ! systemctl is-active --quiet glusterd; then
        systemctl start glusterd
    fi
    celtic_wait_for 120 2 "glusterd to answer" _gluster_answers ||
        celtic_die "glusterd does not answer: see /var/log/glusterfs/glusterd.log"
}

# ---------------------------------------------------------------------------------------
# storage 0: the pool and the volume

# _gluster_peers_connected: every other storage node is in the pool and connected.
_gluster_peers_connected() {
    local xml facts addr
    xml=$(gluster_cli peer status --xml 2>/dev/null) || return 1
    facts=$(_gluster_xml peers "$xml") || return 1
    for addr in "${GLUSTER_ADDRESSES[@]:1}"; do
        grep -qx "peer $addr Peer_in_Cluster 1" <<<"$facts" || return 1
    done
}

# gluster_probe_peers: storage 0 takes every other storage node into its pool (waiting,
# bounded, for nodes that boot later); peers already in the pool are left alone.
gluster_probe_peers() {
    local i addr xml facts=""
    if xml=$(gluster_cli peer status --xml 2>/dev/null); then
        facts=$(_gluster_xml peers "$xml") || facts=""
    fi
    for ((i = 1; i < ${#GLUSTER_ADDRESSES[@]}; i++)); do
        addr=${GLUSTER_ADDRESSES[$i]}
        if grep -q "^peer $addr Peer_in_Cluster " <<<"$facts"; then
            continue
        fi
        celtic_wait_for "$GLUSTER_PEER_TIMEOUT" 10 "glusterd on storage $i ($addr)" \
            celtic_tcp_open "$addr" 24007 ||
            celtic_die "storage $i ($addr): glusterd not reachable on port 24007 within ${GLUSTER_PEER_TIMEOUT}s (see that node's status, and the storage security group)"
        gluster_change peer probe "$addr"
    done
    celtic_wait_for "$GLUSTER_POOL_TIMEOUT" 3 "every storage node in the pool" _gluster_peers_connected ||
        celtic_die "not every storage node is connected to the pool: $(gluster_cli pool list 2>&1 | tr '\n' ' ')"
}

# _gluster_kind REPLICA ARBITER BRICKS: the layout name of an existing volume.
_gluster_kind() {
    if [[ $1 -eq 1 && $2 -eq 0 && $3 -eq 1 ]]; then
        echo distribute
    elif [[ $1 -eq 3 && $2 -eq 1 && $3 -eq 3 ]]; then
        echo arbiter
    elif [[ $1 -eq 3 && $2 -eq 0 ]]; then
        echo replica
    else
        echo "replica-$1-arbiter-$2"
    fi
}

# gluster_create_volume: the volume of GLUSTER_LAYOUT. Only the two-node layout needs
# `force` (its arbiter shares storage 0 with a data brick); every brick sits on its own
# mounted filesystem, checked by each node before its glusterd started.
gluster_create_volume() {
    local -a args=()
    case "$GLUSTER_LAYOUT" in
        distribute) args=("${GLUSTER_LAYOUT_BRICKS[@]}") ;;
        arbiter) args=(replica 3 arbiter 1 "${GLUSTER_LAYOUT_BRICKS[@]}" force) ;;
        replica) args=(replica 3 "${GLUSTER_LAYOUT_BRICKS[@]}") ;;
    esac
    gluster_change volume create "$CELTIC_STORAGE_VOLUME_NAME" "${args[@]}"
}

# _gluster_rebalance: spread the existing directories and files over new replica sets.
# A marker makes a run that died between add-brick and rebalance finish the job.
_gluster_rebalance() {
    local marker=$CELTIC_STATE_DIR/gluster/rebalance-pending
    [[ -e "$marker" ]] || return 0
    gluster_change volume rebalance "$CELTIC_STORAGE_VOLUME_NAME" start
    rm -f "$marker"
}

# gluster_grow_volume: add what GLUSTER_LAYOUT has and the volume lacks, or refuse.
gluster_grow_volume() {
    local vol=$CELTIC_STORAGE_VOLUME_NAME have_kind n=${#GLUSTER_ADDRESSES[@]} brick
    local -a have=("${GLUSTER_VOL_BRICKS[@]}") want=("${GLUSTER_LAYOUT_BRICKS[@]}") gone=()
    if [[ "${have[*]}" == "${want[*]}" ]]; then
        _gluster_rebalance
        return 0
    fi
    for brick in "${have[@]}"; do
        if [[ " ${GLUSTER_ADDRESSES[*]} " != *" ${brick%%:*} "* ]]; then
            gone+=("$brick")
        fi
    done
    if [[ ${#gone[@]} -gt 0 ]] || _gluster_is_prefix want have; then
        celtic_die "storage_count shrank to $n but volume $vol has bricks ${gone[*]:-${have[*]:${#want[@]}}} beyond that: celtic never removes bricks (each holds a replica of data); set storage_count back"
    fi
    have_kind=$(_gluster_kind "$GLUSTER_VOL_REPLICA" "$GLUSTER_VOL_ARBITER" "${#have[@]}")
    case "$have_kind>$GLUSTER_LAYOUT" in
        replica\>replica | distribute\>replica) ;;
        arbiter\>*)
            celtic_die "volume $vol is the two-node layout (replica 2 + arbiter on storage 0); turning it into replica 3 for storage_count $n is not automated (it means removing the arbiter brick and healing a full copy onto a new node): keep storage_count at 2, or move the data to a new cluster"
            ;;
        distribute\>arbiter)
            celtic_die "volume $vol has a single brick; storage_count 2 would need an arbiter layout that cannot be added to it: grow to 3 (replica 3) instead"
            ;;
        *)
            celtic_die "volume $vol is a $have_kind volume with bricks ${have[*]}: celtic only grows the layouts it creates and will not reshape it into $GLUSTER_LAYOUT"
            ;;
    esac
    if ! _gluster_is_prefix have want; then
        celtic_die "volume $vol has bricks ${have[*]}, which do not start the expected ${want[*]}: celtic does not reshape a volume it did not lay out"
    fi
    if [[ "$have_kind" == distribute ]]; then
        celtic_info "turning the single-brick volume $vol into replica 3"
        gluster_change volume add-brick "$vol" replica 3 "${want[1]}" "${want[2]}"
        have=("${want[@]:0:3}")
        # Copy the existing files onto the two new bricks now rather than on access.
        if ! _gluster_try volume heal "$vol" full; then
            celtic_warn "volume heal $vol full: $GLUSTER_OUTPUT (the self-heal daemon copies the files anyway)"
        fi
    fi
    if [[ ${#want[@]} -gt ${#have[@]} ]]; then
        celtic_info "adding $(((${#want[@]} - ${#have[@]}) / 3)) replica set(s) to $vol"
        mkdir -p "$CELTIC_STATE_DIR/gluster"
        : >"$CELTIC_STATE_DIR/gluster/rebalance-pending"
        gluster_change volume add-brick "$vol" "${want[@]:${#have[@]}}"
        _gluster_rebalance
    fi
}

# gluster_auth_patterns CIDR: the addresses of CIDR as auth.allow entries that glusterd
# matches with fnmatch: "a.*", "a.b.*" or "a.b.c.*" per whole octet block, exact
# addresses below a /24. A CIDR entry itself is only right for /8, /16 and /24:
# glusterfs 10.3 and 11.1 build its mask in host byte order (gluster/glusterfs#4109), so
# for 10.0.0.0/22 they refuse 10.0.2.57 and let 10.0.64.1 in. The list is bounded:
# fixed_network_cidr is /28 or larger, and the most entries (128) come from a /1, /9,
# /17 or /25.
gluster_auth_patterns() {
    celtic_python - "$1" <<'PY'
import ipaddress, sys
try:
    net = ipaddress.IPv4Network(sys.argv[1], strict=False)
except ValueError as exc:
    sys.exit('fixed_network_cidr %r is not an IPv4 network: %s' % (sys.argv[1], exc))
if net.prefixlen == 0:
    print('*')
    sys.exit(0)
block = next(b for b in (8, 16, 24, 32) if b >= net.prefixlen)
entries = []
for sub in net.subnets(new_prefix=block):
    octets = str(sub.network_address).split('.')
    entries.append(str(sub.network_address) if block == 32
                   else '.'.join(octets[:block // 8] + ['*']))
print(','.join(entries))
PY
}

# gluster_volume_options: only clients from the cluster network may mount the volume.
gluster_volume_options() {
    local cidr=${CELTIC_FIXED_NETWORK_CIDR:-} allow
    [[ -n "$cidr" ]] || return 0
    allow=$(gluster_auth_patterns "$cidr") || celtic_die "cannot turn $cidr into auth.allow patterns"
    if [[ "${GLUSTER_VOL_OPTIONS[auth.allow]:-}" != "$allow" ]]; then
        gluster_change volume set "$CELTIC_STORAGE_VOLUME_NAME" auth.allow "$allow"
    fi
}

# gluster_reconcile_volume: storage 0 makes the volume match GLUSTER_LAYOUT: created,
# grown, started, configured; when it already does, nothing is changed.
gluster_reconcile_volume() {
    local vol=$CELTIC_STORAGE_VOLUME_NAME
    gluster_read_volume || celtic_die "cannot read volume $vol from glusterd"
    if [[ "$GLUSTER_VOL_STATE" == absent ]]; then
        gluster_create_volume
    else
        gluster_grow_volume
    fi
    gluster_read_volume || celtic_die "cannot read volume $vol from glusterd"
    if [[ "$GLUSTER_VOL_STATUS" != Started ]]; then
        gluster_change volume start "$vol"
    fi
    gluster_volume_options
    if [[ ${#GLUSTER_LAYOUT_IDLE[@]} -gt 0 ]]; then
        celtic_warn "storage node(s) ${GLUSTER_LAYOUT_IDLE[*]} joined the pool without a brick: replica 3 takes whole sets of three, they serve once storage_count reaches $(((${#GLUSTER_ADDRESSES[@]} / 3 + 1) * 3))"
    fi
    celtic_info "volume $vol: $GLUSTER_LAYOUT on ${#GLUSTER_LAYOUT_BRICKS[@]} brick(s), started"
}

# ---------------------------------------------------------------------------------------
# the other storage nodes

# _gluster_joined: this node is in storage 0's pool and the volume lists its bricks.
_gluster_joined() {
    local brick
    [[ "$(gluster_peer_state "${GLUSTER_ADDRESSES[0]}")" == Peer_in_Cluster ]] || return 1
    for brick in "${GLUSTER_LAYOUT_BRICKS[@]}"; do
        if [[ "${brick%%:*}" == "$GLUSTER_MY_IP" ]]; then
            gluster_read_volume 2>/dev/null || return 1
            [[ " ${GLUSTER_VOL_BRICKS[*]} " == *" $brick "* ]] || return 1
        fi
    done
}

# _gluster_growth_hint: when the volume exists on storage 0 without this node, the
# cluster grew: storage 0 does not run again by itself, so say what to run there.
_gluster_growth_hint() {
    local remote=() hint=""
    if gluster_read_volume --remote-host="${GLUSTER_ADDRESSES[0]}" --timeout=20 2>/dev/null &&
        [[ "$GLUSTER_VOL_STATE" == present && "$(gluster_peer_state "${GLUSTER_ADDRESSES[0]}")" != Peer_in_Cluster ]]; then
        remote=("${GLUSTER_ADDRESSES[@]}")
        hint="storage_count grew and storage 0 does not re-run by itself: on storage 0 (${GLUSTER_ADDRESSES[0]}) run 'sudo bash $GLUSTER_STORAGE_SH grow ${remote[*]}'"
    fi
    GLUSTER_HINT=$hint
}

# gluster_wait_for_pool: bounded wait until storage 0 has taken this node in.
gluster_wait_for_pool() {
    local first=${GLUSTER_ADDRESSES[0]}
    _gluster_growth_hint
    if [[ -n "$GLUSTER_HINT" ]]; then
        celtic_warn "$GLUSTER_HINT"
    fi
    if ! celtic_wait_for "$GLUSTER_JOIN_TIMEOUT" 5 "storage 0 ($first) to add storage $GLUSTER_INDEX" _gluster_joined; then
        celtic_die "storage 0 ($first) did not add storage $GLUSTER_INDEX ($GLUSTER_MY_IP) to volume $CELTIC_STORAGE_VOLUME_NAME within ${GLUSTER_JOIN_TIMEOUT}s${GLUSTER_HINT:+: $GLUSTER_HINT}"
    fi
    celtic_info "storage $GLUSTER_INDEX is in the pool of storage 0 ($first)"
}

# ---------------------------------------------------------------------------------------

# gluster_storage_node: every GlusterFS step of a storage node, in order.
gluster_storage_node() {
    celtic_step storage-addresses gluster_load_addresses
    celtic_step brick-tools celtic_install xfsprogs
    celtic_step brick-disk gluster_find_brick_device
    celtic_step brick-format gluster_format_brick
    celtic_step brick-mount gluster_mount_brick
    celtic_step glusterd gluster_start_glusterd
    if [[ $GLUSTER_INDEX -eq 0 ]]; then
        celtic_step peers gluster_probe_peers
        celtic_step volume gluster_reconcile_volume
    else
        celtic_step join gluster_wait_for_pool
    fi
}
