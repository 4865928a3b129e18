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

# The storage node: brick found, formatted once and mounted by UUID, glusterd held to the
# security group's ports, and storage 0 laying out, starting and growing the volume.
# The disk is a block special file no driver backs (major 254), every tool that touches
# it is a recording stub, and gluster is fake_gluster.py: a small model of glusterd.

load helpers

VOLUME_ID=0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d
UUID=5b0e7f41-3c2d-4e8f-9a10-112233445566

setup() {
    celtic_test_setup
    export CELTIC_ROOT=$ROOT
    export DISK=$BATS_TEST_TMPDIR/disk
    export DEV=$ROOT/dev/vdb
    export GLUSTER_DEV_DIR=$ROOT/dev/disk
    export GLUSTER_BRICK_MOUNT=$ROOT/srv/gluster/brick
    export GLUSTER_BRICK_VOLUME_ID=$VOLUME_ID
    export GLUSTER_FAKE_STATE=$BATS_TEST_TMPDIR/glusterd.json
    export GLUSTER_DISK_TIMEOUT=10 GLUSTER_PEER_TIMEOUT=20 GLUSTER_JOIN_TIMEOUT=20 GLUSTER_POOL_TIMEOUT=9
    export BRICK=$GLUSTER_BRICK_MOUNT/celtic
    mkdir -p "$DISK" "$GLUSTER_DEV_DIR/by-id" "$ROOT/etc/glusterfs"
    mknod "$DEV" b 254 200
    ln -s "$DEV" "$GLUSTER_DEV_DIR/by-id/virtio-${VOLUME_ID:0:20}"
    cat >"$ROOT/etc/glusterfs/glusterd.vol" <<'EOF'
volume management
    type mgmt/glusterd
    option working-directory /var/lib/glusterd
    option transport.socket.listen-port 24007
#   option base-port 49152
    option max-port  60999
end-volume
EOF
    # The device: $DISK/fs holds what blkid -p would report, $DISK/mounted says whether
    # the brick is mounted, $DISK/reachable lists the peers whose glusterd answers.
    stub_script blkid '
dev=${!#}
[[ -e "$DISK/blkid-rc" ]] && exit "$(cat "$DISK/blkid-rc")"
[[ -s "$DISK/fs" ]] || exit 2
if [[ "$*" == *"-s UUID"* ]]; then sed -n "s/^UUID=//p" "$DISK/fs"; else cat "$DISK/fs"; fi'
    stub_script wipefs 'cat "$DISK/signatures" 2>/dev/null; exit 0'
    stub_script mkfs.xfs '
[[ -s "$DISK/fs" ]] && { echo "mkfs.xfs: ${!#} appears to contain an existing filesystem" >&2; exit 1; }
printf "UUID=%s\nTYPE=xfs\nUSAGE=filesystem\n" "'"$UUID"'" >"$DISK/fs"'
    stub_script udevadm '
uuid=$(sed -n "s/^UUID=//p" "$DISK/fs")
mkdir -p "$GLUSTER_DEV_DIR/by-uuid" && ln -sfn "$DEV" "$GLUSTER_DEV_DIR/by-uuid/$uuid"'
    stub_script systemctl '
case "$1" in
    start|restart)
        case "$2" in *.mount) touch "$DISK/mounted" ;; *) touch "$DISK/active-$2" ;; esac ;;
    is-active) [[ -e "$DISK/active-${!#}" ]] ;;
esac'
    stub_script mountpoint '[[ -e "$DISK/mounted" ]]'
    stub_script findmnt '
[[ -e "$DISK/mounted" ]] || exit 1
case "$*" in
    *--source*) echo "$GLUSTER_BRICK_MOUNT" ;;
    *"-o SOURCE"*) echo "$DEV" ;;
esac'
    stub_script dpkg-query 'echo "install ok installed"'
    stub apt-get
    # celtic_tcp_open's `timeout 3 bash -c ... _ HOST PORT`: open for reachable hosts.
    stub_script timeout 'host=${@: -2:1}; grep -qx "$host" "$DISK/reachable" 2>/dev/null'
    stub_script gluster "exec python3 '$BATS_TEST_DIRNAME/fake_gluster.py' \"\$@\""
    # shellcheck source=../../heat_templates/fragments/storage.sh
    source "$FRAGMENTS/storage.sh"
}

# storage_params COUNT [JSON]: params.json of a cluster with COUNT storage nodes
# 10.0.0.11, .12, ... (this node is 10.0.0.11 unless CELTIC_NODE_IP says otherwise).
storage_params() {
    local addresses
    addresses=$(python3 -c 'import json,sys; print(json.dumps(["10.0.0.%d" % (11 + i) for i in range(int(sys.argv[1]))]))' "$1")
    write_params "{\"storage_addresses\": $addresses, \"storage_volume_name\": \"celtic\",
                   \"fixed_network_cidr\": \"10.0.0.0/24\", \"role\": \"storage\"}"
    seq -f '10.0.0.%g' 12 $((10 + $1)) >"$DISK/reachable"
}

# existing_volume REPLICA ARBITER "BRICK..." [BRICK...]: glusterd already has the volume, started,
# and knows every peer named in the bricks.
existing_volume() {
    python3 - "$@" <<'PY'
import json, os, sys
replica, arbiter = int(sys.argv[1]), int(sys.argv[2])
bricks = ' '.join(sys.argv[3:]).split()
peers = {b.split(':')[0]: 'Peer in Cluster' for b in bricks if not b.startswith('10.0.0.11:')}
json.dump({'peers': peers, 'remote_volume': None,
           'volume': {'name': 'celtic', 'status': 'Started', 'replica': replica,
                      'arbiter': arbiter, 'bricks': bricks,
                      'options': {'auth.allow': '10.0.0.*'}}},
          open(os.environ['GLUSTER_FAKE_STATE'], 'w'))
PY
}

bricks() {
    local i
    for i in "$@"; do printf '10.0.0.%s:%s ' "$((10 + i))" "$BRICK"; done | sed 's/ $//'
}

# a storage node's steps after the common set-up (what storage.sh runs on first boot)
storage_steps() {
    set -euo pipefail
    celtic_load_params
    gluster_storage_node
}

called() {
    grep -Fxq -- "$1" "$CALLS" || { echo "no call: $1" >&2; sed 's/^/  /' "$CALLS" >&2; return 1; }
}

not_called() {
    ! grep -Eq -- "$1" "$CALLS" || { echo "unexpected: $1" >&2; grep -E -- "$1" "$CALLS" >&2; return 1; }
}

MUTATIONS='^(mkfs\.xfs|systemctl (start|restart|daemon-reload)|gluster --mode=script (peer probe|volume (create|start|set|add-brick|rebalance|heal)))'

@test "first boot of storage 0 (3 nodes): formats, mounts by UUID, starts glusterd, builds replica 3" {
    storage_params 3
    run storage_steps
    assert_success
    called "mkfs.xfs -q -i size=512 -L celtic-brick $DEV"
    local unit
    unit=$(systemd-escape --path --suffix=mount "$GLUSTER_BRICK_MOUNT")
    run cat "$ROOT/etc/systemd/system/$unit"
    assert_line "What=$GLUSTER_DEV_DIR/by-uuid/$UUID"
    assert_line "Where=$GLUSTER_BRICK_MOUNT"
    assert_line "Type=xfs"
    run cat "$ROOT/etc/systemd/system/glusterd.service.d/celtic-brick.conf"
    assert_line "RequiresMountsFor=$GLUSTER_BRICK_MOUNT"
    run cat "$ROOT/etc/glusterfs/glusterd.vol"
    assert_line '    option base-port 49152'
    assert_line '    option max-port 49251'
    refute_line --partial 60999
    assert_line --index 6 'end-volume'
    called "systemctl start $unit"
    called "systemctl start glusterd"
    called "gluster --mode=script peer probe 10.0.0.12"
    called "gluster --mode=script peer probe 10.0.0.13"
    called "gluster --mode=script volume create celtic replica 3 $(bricks 1 2 3)"
    called "gluster --mode=script volume start celtic"
    called "gluster --mode=script volume set celtic auth.allow 10.0.0.*"
    [ -d "$BRICK" ]
    # the mount comes before glusterd, glusterd before the first gluster call
    run grep -n -E '^(systemctl start|gluster --mode=script peer probe)' "$CALLS"
    assert_line --index 0 --partial "systemctl start $unit"
    assert_line --index 1 --partial 'systemctl start glusterd'
}

@test "a second run changes nothing: no mkfs, no mount, no restart, no gluster change" {
    storage_params 3
    run storage_steps
    assert_success
    local before
    before=$(find "$ROOT/etc" -type f -exec md5sum {} + | sort)
    : >"$CALLS"
    run storage_steps
    assert_success
    assert_output --partial "already holds the XFS brick $UUID: kept, never reformatted"
    not_called "$MUTATIONS"
    [ "$(find "$ROOT/etc" -type f -exec md5sum {} + | sort)" = "$before" ]
}

@test "a changed glusterd.vol restarts a running glusterd, once" {
    storage_params 1
    touch "$DISK/active-glusterd"
    run storage_steps
    assert_success
    called "systemctl restart glusterd"
    : >"$CALLS"
    run storage_steps
    assert_success
    not_called 'systemctl (start|restart) glusterd'
}

@test "an XFS brick that already exists is mounted as it is, never formatted" {
    storage_params 3
    printf 'UUID=%s\nTYPE=xfs\nUSAGE=filesystem\n' "$UUID" >"$DISK/fs"
    run storage_steps
    assert_success
    not_called '^mkfs'
    assert_output --partial "kept, never reformatted"
}

@test "mkfs never runs on a device that holds another filesystem, a partition table or a signature" {
    storage_params 3
    printf 'UUID=x\nTYPE=ext4\n' >"$DISK/fs"
    run storage_steps
    assert_failure
    assert_output --partial "brick device $DEV already holds data (ext4 filesystem): refusing to format it"
    printf 'PTTYPE=gpt\n' >"$DISK/fs"
    run storage_steps
    assert_failure
    assert_output --partial "already holds data (gpt partition table)"
    rm "$DISK/fs"
    printf 'LVM2_member 0x218\n' >"$DISK/signatures"
    run storage_steps
    assert_failure
    assert_output --partial "carries signatures (LVM2_member 0x218"
    rm "$DISK/signatures"
    echo 8 >"$DISK/blkid-rc"
    run storage_steps
    assert_failure
    assert_output --partial "cannot tell what $DEV holds (blkid exit 8)"
    not_called '^mkfs'
}

@test "the failure reaches Heat with the node and the step" {
    stub_heat_signal
    write_vendordata storage
    storage_params 3
    printf 'TYPE=ext4\n' >"$DISK/fs"
    run bash "$FRAGMENTS/storage.sh"
    assert_failure
    [ "$(signal_field 1 status)" = FAILURE ]
    [ "$(signal_field 1 reason)" = "testnode-0: step brick-format failed: brick device $DEV already holds data (ext4 filesystem): refusing to format it (wipe it yourself if the data is not needed)" ]
    not_called '^mkfs'
}

@test "storage.sh end to end: common set-up, storage steps, SUCCESS to Heat" {
    stub_heat_signal
    write_vendordata storage
    storage_params 3
    run bash "$FRAGMENTS/storage.sh"
    assert_success
    [ "$(signal_field 1 status)" = SUCCESS ]
    [ "$(signal_field 1 reason)" = "testnode-0: storage ready" ]
    called "apt-get -o DPkg::Lock::Timeout=600 update -q"
    called "gluster --mode=script volume start celtic"
    run grep -r "$RELAY_KEY" "$CELTIC_LOG_FILE" "$CALLS"
    assert_failure
}

@test "the brick volume id comes from the server metadata, the disk from /dev/disk/by-id" {
    unset GLUSTER_BRICK_VOLUME_ID
    stub_script curl "echo '{\"uuid\": \"i\", \"meta\": {\"celtic_role\": \"storage\", \"celtic_volume\": \"$VOLUME_ID\"}}'"
    storage_params 3
    GLUSTER_BRICK_VOLUME_ID="" run storage_steps
    assert_success
    assert_output --partial "brick device: $DEV"
    called "curl -sS -f --noproxy * --max-time 10 http://169.254.169.254/openstack/latest/meta_data.json"
}

@test "no brick volume in the metadata, or a volume that never appears: clear failures" {
    stub_script curl "echo '{\"meta\": {\"celtic_volume\": \"\"}}'"
    storage_params 3
    GLUSTER_BRICK_VOLUME_ID="" run storage_steps
    assert_failure
    assert_output --partial "this server has no brick volume (server metadata celtic_volume is empty)"
    rm "$GLUSTER_DEV_DIR/by-id/virtio-${VOLUME_ID:0:20}"
    run storage_steps
    assert_failure
    assert_output --partial "brick volume $VOLUME_ID did not appear as $GLUSTER_DEV_DIR/by-id/virtio-0a1b2c3d-4e5f-4a6b-8 within 10s"
    not_called '^mkfs'
}

@test "GLUSTER_BRICK_DEVICE=none: a brick directory on a filesystem mounted by someone else" {
    storage_params 3
    export GLUSTER_BRICK_DEVICE=none
    run storage_steps
    assert_failure
    assert_output --partial "nothing is mounted at $GLUSTER_BRICK_MOUNT: a brick on the root disk is refused"
    touch "$DISK/mounted"
    run storage_steps
    assert_success
    not_called '^(blkid|wipefs|mkfs|udevadm)'
    called "gluster --mode=script volume create celtic replica 3 $(bricks 1 2 3)"
}

@test "layout per storage count: 1 distribute, 2 arbiter, 3..5 one replica set, 6..8 two, 9 three" {
    local n
    for n in 1 2 3 4 5 6 7 8 9; do
        CELTIC_STORAGE_VOLUME_NAME=celtic
        read -r -a GLUSTER_ADDRESSES <<<"$(seq -s ' ' -f '10.0.0.%g' 11 $((10 + n)))"
        gluster_layout
        echo "$n: $GLUSTER_LAYOUT ${#GLUSTER_LAYOUT_BRICKS[@]} bricks, idle ${GLUSTER_LAYOUT_IDLE[*]:-none}"
    done >"$BATS_TEST_TMPDIR/layouts"
    run cat "$BATS_TEST_TMPDIR/layouts"
    assert_output "1: distribute 1 bricks, idle none
2: arbiter 3 bricks, idle none
3: replica 3 bricks, idle none
4: replica 3 bricks, idle 10.0.0.14
5: replica 3 bricks, idle 10.0.0.14 10.0.0.15
6: replica 6 bricks, idle none
7: replica 6 bricks, idle 10.0.0.17
8: replica 6 bricks, idle 10.0.0.17 10.0.0.18
9: replica 9 bricks, idle none"
}

@test "1 node: a plain distribute volume on one brick, no peer probed" {
    storage_params 1
    run storage_steps
    assert_success
    called "gluster --mode=script volume create celtic $(bricks 1)"
    not_called 'peer probe'
}

@test "2 nodes: replica 2 + arbiter, the arbiter brick on storage 0 (force: two bricks there)" {
    storage_params 2
    run storage_steps
    assert_success
    called "gluster --mode=script volume create celtic replica 3 arbiter 1 $(bricks 1 2) 10.0.0.11:$BRICK-arbiter force"
    [ -d "$BRICK-arbiter" ]
}

@test "4 nodes: one replica set, storage 3 probed into the pool without a brick" {
    storage_params 4
    run storage_steps
    assert_success
    called "gluster --mode=script peer probe 10.0.0.14"
    called "gluster --mode=script volume create celtic replica 3 $(bricks 1 2 3)"
    assert_output --partial "storage node(s) 10.0.0.14 joined the pool without a brick: replica 3 takes whole sets of three, they serve once storage_count reaches 6"
}

@test "6 nodes: two replica sets of consecutive nodes" {
    storage_params 6
    run storage_steps
    assert_success
    called "gluster --mode=script volume create celtic replica 3 $(bricks 1 2 3 4 5 6)"
}

@test "storage 0 waits (bounded) for a peer's glusterd and names it when it never comes" {
    storage_params 3
    echo 10.0.0.12 >"$DISK/reachable"
    run storage_steps
    assert_failure
    assert_output --partial "storage 2 (10.0.0.13): glusterd not reachable on port 24007 within 20s"
    not_called 'volume create'
}

@test "storage 0 does not touch the volume while a peer is disconnected" {
    storage_params 3
    existing_volume 3 0 "$(bricks 1 2 3)"
    python3 - <<'PY'
import json, os
path = os.environ['GLUSTER_FAKE_STATE']
state = json.load(open(path))
state['disconnected'] = ['10.0.0.13']
json.dump(state, open(path, 'w'))
PY
    run storage_steps
    assert_failure
    assert_output --partial "not every storage node is connected to the pool"
    not_called 'gluster --mode=script (peer probe|volume (create|start|set|add-brick))'
}

@test "growing 3 -> 6 adds one replica set and rebalances; the data bricks stay" {
    storage_params 6
    existing_volume 3 0 "$(bricks 1 2 3)"
    run storage_steps
    assert_success
    called "gluster --mode=script volume add-brick celtic $(bricks 4 5 6)"
    called "gluster --mode=script volume rebalance celtic start"
    not_called 'volume (create|start)'
    : >"$CALLS"
    run storage_steps
    assert_success
    not_called "$MUTATIONS"
}

@test "growing 1 -> 3 turns the single brick into replica 3 and heals the copies" {
    storage_params 3
    existing_volume 1 0 "$(bricks 1)"
    run storage_steps
    assert_success
    called "gluster --mode=script volume add-brick celtic replica 3 $(bricks 2 3)"
    called "gluster --mode=script volume heal celtic full"
    not_called 'rebalance'
}

@test "growing 3 -> 4 or 5 only adds pool members" {
    storage_params 5
    existing_volume 3 0 "$(bricks 1 2 3)"
    run storage_steps
    assert_success
    called "gluster --mode=script peer probe 10.0.0.14"
    called "gluster --mode=script peer probe 10.0.0.15"
    not_called 'add-brick'
}

@test "shrinking is refused and names the bricks that would go" {
    storage_params 3
    existing_volume 3 0 "$(bricks 1 2 3 4 5 6)"
    run storage_steps
    assert_failure
    assert_output --partial "storage_count shrank to 3 but volume celtic has bricks $(bricks 4 5 6) beyond that: celtic never removes bricks"
    not_called 'remove-brick|add-brick'
}

@test "the two-node layout does not grow, a single brick does not become an arbiter" {
    storage_params 3
    existing_volume 3 1 "$(bricks 1 2)" "10.0.0.11:$BRICK-arbiter"
    run storage_steps
    assert_failure
    assert_output --partial "volume celtic is the two-node layout (replica 2 + arbiter on storage 0); turning it into replica 3 for storage_count 3 is not automated"
    storage_params 2
    existing_volume 1 0 "$(bricks 1)"
    run storage_steps
    assert_failure
    assert_output --partial "volume celtic has a single brick; storage_count 2 would need an arbiter layout"
    not_called 'add-brick'
}

@test "a volume celtic did not lay out is left alone" {
    storage_params 3
    existing_volume 2 0 "$(bricks 1 2)"
    run storage_steps
    assert_failure
    assert_output --partial "volume celtic is a replica-2-arbiter-0 volume with bricks $(bricks 1 2): celtic only grows the layouts it creates"
}

@test "storage 1 waits until storage 0 has added it, and then is ready" {
    storage_params 3
    export CELTIC_NODE_IP=10.0.0.12
    existing_volume 3 0 "$(bricks 1 2 3)"
    python3 - <<'PY'
import json, os
path = os.environ['GLUSTER_FAKE_STATE']
state = json.load(open(path))
state['peers'] = {'10.0.0.11': 'Peer in Cluster', '10.0.0.13': 'Peer in Cluster'}
json.dump(state, open(path, 'w'))
PY
    run storage_steps
    assert_success
    assert_output --partial "storage 1 is in the pool of storage 0 (10.0.0.11)"
    not_called 'peer probe|volume create'
}

@test "a node storage 0 never adds fails, and after growth says what to run on storage 0" {
    storage_params 6
    export CELTIC_NODE_IP=10.0.0.14
    python3 - <<'PY'
import json, os
json.dump({'peers': {}, 'volume': None,
           'remote_volume': {'name': 'celtic', 'status': 'Started', 'replica': 3,
                             'arbiter': 0, 'bricks': ['10.0.0.11:/b'], 'options': {}}},
          open(os.environ['GLUSTER_FAKE_STATE'], 'w'))
PY
    run storage_steps
    assert_failure
    assert_output --partial "storage 0 (10.0.0.11) did not add storage 3 (10.0.0.14) to volume celtic within 20s: storage_count grew and storage 0 does not re-run by itself: on storage 0 (10.0.0.11) run 'sudo bash /usr/local/lib/celtic/storage.sh grow 10.0.0.11 10.0.0.12 10.0.0.13 10.0.0.14 10.0.0.15 10.0.0.16'"
}

@test "storage.sh grow on storage 0: appends addresses, adds the set, and remembers the list" {
    storage_params 3
    run storage_steps
    assert_success
    : >"$CALLS"
    seq -f '10.0.0.%g' 12 16 >"$DISK/reachable"
    run bash "$FRAGMENTS/storage.sh" grow 10.0.0.11 10.0.0.12 10.0.0.13 10.0.0.14 10.0.0.15 10.0.0.16
    assert_success
    called "gluster --mode=script volume add-brick celtic $(bricks 4 5 6)"
    not_called '^apt-get'
    # a later plain re-run (params.json still lists 3 nodes) keeps the grown layout
    : >"$CALLS"
    run storage_steps
    assert_success
    not_called "$MUTATIONS"
}

@test "storage.sh grow refuses a list that reorders or drops nodes, and runs on storage 0 only" {
    storage_params 3
    run bash "$FRAGMENTS/storage.sh" grow 10.0.0.12 10.0.0.11 10.0.0.13 10.0.0.14
    assert_failure
    assert_output --partial "must start with the current ones (10.0.0.11 10.0.0.12 10.0.0.13) in the same order"
    run bash "$FRAGMENTS/storage.sh" grow
    assert_failure
    assert_output --partial "usage: storage.sh grow ADDRESS..."
    CELTIC_NODE_IP=10.0.0.12 run bash "$FRAGMENTS/storage.sh" grow 10.0.0.11 10.0.0.12 10.0.0.13 10.0.0.14
    assert_failure
    assert_output --partial "grow runs on storage 0 (10.0.0.11), not on storage 1"
    run bash "$FRAGMENTS/storage.sh" shrink
    assert_failure
    assert_output --partial "usage: storage.sh [grow ADDRESS...], got 'shrink'"
}

@test "this node must be one of storage_addresses; the volume name is checked" {
    storage_params 3
    CELTIC_NODE_IP=10.0.0.99 run storage_steps
    assert_failure
    assert_output --partial "this node's address '10.0.0.99' is not one of storage_addresses (10.0.0.11 10.0.0.12 10.0.0.13)"
    write_params '{"storage_addresses": ["10.0.0.11"], "storage_volume_name": "bad name"}'
    run storage_steps
    assert_failure
    assert_output --partial "storage_volume_name must be 1-64 letters, digits, '-' or '_', got 'bad name'"
}

# gluster_allows ALLOW ADDRESS: true when glusterd's addr auth would accept a client at
# ADDRESS with auth.allow ALLOW: entries split on spaces and commas, each matched with
# fnmatch(3) without flags (the wildcard path of xlators/protocol/auth/addr).
gluster_allows() {
    python3 - "$1" "$2" <<'PY'
import fnmatch, re, sys
allow, address = sys.argv[1], sys.argv[2]
entries = [e for e in re.split('[ ,]', allow) if e]
assert all('/' not in e for e in entries), 'a CIDR entry takes the broken mask path'
sys.exit(0 if any(fnmatch.fnmatchcase(address, e) for e in entries) else 1)
PY
}

@test "auth.allow for a /22: every client of the four /24s, across the boundary, and no other" {
    run gluster_auth_patterns 10.0.0.0/22
    assert_output '10.0.0.*,10.0.1.*,10.0.2.*,10.0.3.*'
    allow=$output
    for address in 10.0.0.11 10.0.1.200 10.0.2.57 10.0.3.255; do
        gluster_allows "$allow" "$address"
    done
    for address in 10.0.64.1 10.0.4.1 10.0.20.3 100.0.0.1 110.0.2.57 9.255.255.255; do
        run gluster_allows "$allow" "$address"
        assert_failure
    done
}

@test "auth.allow below a /24 lists the exact addresses; whole octets stay one wildcard" {
    run gluster_auth_patterns 192.168.7.16/28
    assert_output "$(printf '192.168.7.%s,' $(seq 16 31) | sed 's/,$//')"
    run gluster_allows "$output" 192.168.7.160
    assert_failure
    run gluster_auth_patterns 10.0.0.0/24
    assert_output '10.0.0.*'
    run gluster_auth_patterns 172.16.0.0/16
    assert_output '172.16.*'
    run gluster_auth_patterns 10.0.0.0/8
    assert_output '10.*'
}

@test "auth.allow matches exactly the fixed network for every prefix the labels accept (/0../28)" {
    python3 - "$FRAGMENTS/node/gluster.sh" "$FRAGMENTS/lib/celtic.sh" <<'PY'
import fnmatch, ipaddress, random, re, subprocess, sys
script, lib = sys.argv[1:3]
rng = random.Random(25)
for prefix in range(0, 29):
    base = rng.getrandbits(32) & ~((1 << (32 - prefix)) - 1) if prefix else 0
    net = ipaddress.IPv4Network((base, prefix))
    allow = subprocess.run(['bash', '-c', 'source "$2"; source "$0"; gluster_auth_patterns "$1"',
                            script, str(net), lib],
                           capture_output=True, text=True, check=True).stdout.strip()
    entries = allow.split(',')
    assert len(entries) <= 128 and all('/' not in e for e in entries), (net, len(entries))
    first, last = int(net.network_address), int(net.broadcast_address)
    samples = {first, last, first - 1, last + 1, (first + last) // 2}
    samples |= {rng.randrange(first, last + 1) for _ in range(20)}
    samples |= {rng.getrandbits(32) for _ in range(20)}
    for value in samples:
        if not 0 <= value < 2 ** 32:
            continue
        address = ipaddress.IPv4Address(value)
        allowed = any(fnmatch.fnmatchcase(str(address), e) for e in entries)
        assert allowed == (address in net), (net, str(address), allowed)
PY
}

@test "storage 0 on a /22 fixed network allows the four /24s, never the CIDR glusterd mis-masks" {
    storage_params 3
    sed -i 's|10.0.0.0/24|10.0.0.0/22|' "$CELTIC_ETC/params.json"
    run storage_steps
    assert_success
    called "gluster --mode=script volume set celtic auth.allow 10.0.0.*,10.0.1.*,10.0.2.*,10.0.3.*"
    not_called 'auth.allow 10.0.0.0/22'
}
