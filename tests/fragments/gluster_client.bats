#!/usr/bin/env bats
# The minion side of the storage: the GlusterFS volume mounted at storage_mount_path by a
# systemd mount unit with the other storage nodes as backup volfile servers, an
# immutable mount point while nothing is mounted, a bounded wait, and no change on a
# second run.

load helpers

setup() {
    celtic_test_setup
    export CELTIC_ROOT=$ROOT
    export STATE=$BATS_TEST_TMPDIR/state
    export MOUNT_PATH=$ROOT/var/lib/celtic-gluster
    export GLUSTER_CLIENT_TIMEOUT=30
    mkdir -p "$STATE"
    # $STATE/mounted: the volume is mounted; $STATE/fail-mounts: mounts that fail first.
    stub_script systemctl '
if [[ "$1" == start ]]; then
    if [[ -s "$STATE/fail-mounts" ]]; then
        n=$(cat "$STATE/fail-mounts"); echo $((n - 1)) >"$STATE/fail-mounts"
        [[ $n -le 0 ]] || exit 1
    fi
    touch "$STATE/mounted"
fi'
    stub_script findmnt '[[ -e "$STATE/mounted" ]] && echo fuse.glusterfs'
    stub chattr
    stub_script dpkg-query 'echo "install ok installed"'
    stub apt-get
    # shellcheck source=../../heat_templates/fragments/lib/celtic.sh
    source "$FRAGMENTS/lib/celtic.sh"
    # shellcheck source=../../heat_templates/fragments/node/gluster_client.sh
    source "$FRAGMENTS/node/gluster_client.sh"
}

client_params() {
    write_params "{\"storage_addresses\": $1, \"storage_volume_name\": \"celtic\",
                   \"storage_mount_path\": \"$MOUNT_PATH\", \"role\": \"minion\"}"
}

mount_steps() {
    set -euo pipefail
    celtic_load_params
    gluster_client_mount
}

unit_file() {
    echo "$ROOT/etc/systemd/system/$(systemd-escape --path --suffix=mount "$MOUNT_PATH")"
}

called() {
    grep -Fxq -- "$1" "$CALLS" || { echo "no call: $1" >&2; sed 's/^/  /' "$CALLS" >&2; return 1; }
}

@test "mounts storage 0's volume with the other storage nodes as backup volfile servers" {
    client_params '["10.0.0.21", "10.0.0.22", "10.0.0.23"]'
    run mount_steps
    assert_success
    run cat "$(unit_file)"
    assert_line "What=10.0.0.21:/celtic"
    assert_line "Where=$MOUNT_PATH"
    assert_line "Type=glusterfs"
    assert_line "Options=_netdev,backup-volfile-servers=10.0.0.22:10.0.0.23"
    assert_line "WantedBy=remote-fs.target"
    run cat "$ROOT/etc/systemd/system/kubelet.service.d/celtic-gluster.conf"
    assert_line "After=remote-fs.target"
    local unit
    unit=$(basename "$(unit_file)")
    called "systemctl daemon-reload"
    called "systemctl enable $unit"
    called "systemctl start $unit"
    # the empty mount point is made immutable before the first mount
    called "chattr +i $MOUNT_PATH"
    run grep -n -E '^(chattr|systemctl start)' "$CALLS"
    assert_line --index 0 --partial chattr
}

@test "one storage node: no backup volfile servers" {
    client_params '["10.0.0.21"]'
    run mount_steps
    assert_success
    run cat "$(unit_file)"
    assert_line "Options=_netdev"
}

@test "a second run changes nothing and does not touch the mounted volume" {
    client_params '["10.0.0.21", "10.0.0.22", "10.0.0.23"]'
    run mount_steps
    assert_success
    local before
    before=$(find "$ROOT/etc" -type f -exec md5sum {} + | sort)
    : >"$CALLS"
    run mount_steps
    assert_success
    [ "$(find "$ROOT/etc" -type f -exec md5sum {} + | sort)" = "$before" ]
    run grep -E '^(systemctl (start|restart|daemon-reload)|chattr)' "$CALLS"
    assert_failure
}

@test "a volume that is not there yet is retried until it mounts" {
    client_params '["10.0.0.21", "10.0.0.22", "10.0.0.23"]'
    echo 2 >"$STATE/fail-mounts"
    run mount_steps
    assert_success
    [ "$(grep -c '^systemctl start' "$CALLS")" -eq 3 ]
}

@test "a volume that never mounts fails the step with a bounded wait and a clear message" {
    stub_heat_signal
    client_params '["10.0.0.21", "10.0.0.22"]'
    echo 1000 >"$STATE/fail-mounts"
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; source "$CELTIC_LIB_DIR/node/gluster_client.sh"
        set -euo pipefail; CELTIC_ROLE=minion
        main() { celtic_step params celtic_load_params; celtic_step gluster-mount gluster_client_mount; }
        celtic_run main'
    assert_failure
    [ "$(grep -c '^systemctl start' "$CALLS")" -eq 4 ]
    [ "$(signal_field 1 reason)" = "testnode-0: step gluster-mount failed: GlusterFS volume 10.0.0.21:/celtic not mounted at $MOUNT_PATH within 30s: see the storage nodes' status and journalctl -u $(basename "$(unit_file)")" ]
}

@test "no storage nodes: nothing is installed or written" {
    client_params 'null'
    run mount_steps
    assert_success
    assert_output --partial "no storage nodes"
    [ ! -e "$ROOT/etc/systemd" ]
    [ ! -s "$CALLS" ]
}

@test "glusterfs-client is installed when missing" {
    stub_script dpkg-query 'exit 1'
    client_params '["10.0.0.21"]'
    run mount_steps
    assert_success
    called "apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends glusterfs-client e2fsprogs"
}

@test "a bad mount path or volume name is refused" {
    write_params '{"storage_addresses": ["10.0.0.21"], "storage_volume_name": "celtic", "storage_mount_path": "relative/dir"}'
    run mount_steps
    assert_failure
    assert_output --partial "storage_mount_path must be an absolute path other than /, got 'relative/dir'"
    write_params '{"storage_addresses": ["10.0.0.21"], "storage_volume_name": "a/b", "storage_mount_path": "/mnt/x"}'
    run mount_steps
    assert_failure
    assert_output --partial "storage_volume_name must be 1-64 letters"
}
