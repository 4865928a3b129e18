#!/bin/bash
# gluster_client.sh: a minion mounts the cluster's GlusterFS volume (sourced by minion.sh,
# which calls gluster_client_mount when storage_addresses is not empty).
#
# The volume is mounted at storage_mount_path by a systemd mount unit: storage 0 serves
# the volume layout, the other storage nodes are backup volfile servers, _netdev orders
# it after the network. local-path-provisioner (manifests/storage.yaml) makes one
# directory per PersistentVolume in it. While nothing is mounted the mount point is
# immutable, so a pod can never write into the minion's root disk by mistake.

GLUSTER_SYSTEMD=${GLUSTER_SYSTEMD:-${CELTIC_ROOT:-}/etc/systemd/system}
# The volume may not exist yet when a minion boots before the storage nodes are done.
GLUSTER_CLIENT_TIMEOUT=${GLUSTER_CLIENT_TIMEOUT:-2400}

# gluster_client_mounted PATH: true when the GlusterFS volume is mounted at PATH.
gluster_client_mounted() {
    [[ "$(findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null)" == fuse.glusterfs ]]
}

# _gluster_client_try UNIT PATH: one mount attempt (the volume may not exist yet).
_gluster_client_try() {
    if gluster_client_mounted "$2"; then
        return 0
    fi
    systemctl start "$1" >/dev/null 2>&1 || true
    gluster_client_mounted "$2"
}

# _gluster_client_guard PATH: an empty, unmounted mount point is made immutable.
_gluster_client_guard() {
    mkdir -p "$1"
    if ! chattr +i "$1" 2>/dev/null; then
        celtic_warn "cannot make $1 immutable: writes there are not blocked while the volume is not mounted"
    fi
}

# gluster_client_mount: the volume mounted at storage_mount_path, now and at every boot.
gluster_client_mount() {
    local -a servers=()
    local path=${CELTIC_STORAGE_MOUNT_PATH:-} volume=${CELTIC_STORAGE_VOLUME_NAME:-}
    local unit backups options
    read -r -a servers <<<"${CELTIC_STORAGE_ADDRESSES:-}"
    if [[ ${#servers[@]} -eq 0 ]]; then
        celtic_info "no storage nodes: no GlusterFS volume to mount"
        return 0
    fi
    [[ "$path" == /?* ]] ||
        celtic_die "storage_mount_path must be an absolute path other than /, got '$path'"
    [[ "$volume" =~ ^[A-Za-z0-9_-]{1,64}$ ]] ||
        celtic_die "storage_volume_name must be 1-64 letters, digits, '-' or '_', got '$volume'"
    # e2fsprogs: chattr guards the empty mount point (not in a minimal root).
    celtic_install glusterfs-client e2fsprogs
    unit=$(systemd-escape --path --suffix=mount "$path")
    options=_netdev
    if [[ ${#servers[@]} -gt 1 ]]; then
        backups=$(IFS=:; echo "${servers[*]:1}")
        options+=",backup-volfile-servers=$backups"
    fi
    CELTIC_CHANGED=0
    GLUSTER_CLIENT_VOLUME=$volume GLUSTER_CLIENT_WHAT="${servers[0]}:/$volume" \
        GLUSTER_CLIENT_WHERE=$path GLUSTER_CLIENT_OPTIONS=$options celtic_render \
        "$CELTIC_LIB_DIR/templates/gluster-client.mount.tmpl" "$GLUSTER_SYSTEMD/$unit" 0644
    celtic_render "$CELTIC_LIB_DIR/templates/kubelet-gluster.conf.tmpl" \
        "$GLUSTER_SYSTEMD/kubelet.service.d/celtic-gluster.conf" 0644
    if [[ $CELTIC_CHANGED == 1 ]]; then
        systemctl daemon-reload
        if gluster_client_mounted "$path"; then
            celtic_warn "$unit changed while mounted: the new options apply at the next mount"
        fi
    fi
    systemctl enable "$unit"
    if ! gluster_client_mounted "$path"; then
        _gluster_client_guard "$path"
    fi
    if ! celtic_wait_for "$GLUSTER_CLIENT_TIMEOUT" 10 "GlusterFS volume $volume at $path" \
        _gluster_client_try "$unit" "$path"; then
        celtic_die "GlusterFS volume ${servers[0]}:/$volume not mounted at $path within ${GLUSTER_CLIENT_TIMEOUT}s: see the storage nodes' status and journalctl -u $unit"
    fi
    celtic_info "GlusterFS volume $volume mounted at $path"
}
