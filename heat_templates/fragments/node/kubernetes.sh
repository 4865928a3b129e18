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

# kubernetes.sh: what masters and minions share: kernel settings, no swap, the metadata
# block, containerd, kubelet/kubeadm/kubectl from pkgs.k8s.io, the API seen through the
# VIP, kubeadm join and the wait for Ready. Sourced after lib/celtic.sh and common.sh.

KUBE_ETC=${CELTIC_ROOT:-}/etc/kubernetes
KUBE_SYSTEMD=${CELTIC_ROOT:-}/etc/systemd/system
KUBE_CONFIG_DIR=$CELTIC_ETC/kubeadm
KUBE_PATCHES_DIR=$KUBE_CONFIG_DIR/patches
KUBE_CRI_SOCKET=unix:///run/containerd/containerd.sock
KUBE_API_WAIT=${KUBE_API_WAIT:-2700}
KUBE_READY_WAIT=${KUBE_READY_WAIT:-1200}

# kube_defaults: parameters the templates read, with defaults for optional ones.
kube_defaults() {
    export CELTIC_API_PORT=${CELTIC_API_PORT:-6443}
    export CELTIC_HTTP_PROXY=${CELTIC_HTTP_PROXY:-} CELTIC_HTTPS_PROXY=${CELTIC_HTTPS_PROXY:-}
    export CELTIC_NO_PROXY=${CELTIC_NO_PROXY:-} KUBE_CRI_SOCKET
    export CELTIC_CONTAINER_INFRA_PREFIX=${CELTIC_CONTAINER_INFRA_PREFIX:-}
    KUBE_NODE_IP=$(celtic_node_ip)
    KUBE_NODE_NAME=$(celtic_node_name)
    export KUBE_NODE_IP KUBE_NODE_NAME=${KUBE_NODE_NAME,,}
}

# kube_image_repository: where kubeadm pulls the control plane images from.
kube_image_repository() {
    local prefix=${CELTIC_CONTAINER_INFRA_PREFIX:-}
    if [[ -n "$prefix" ]]; then
        printf '%s\n' "${prefix%/}"
    else
        printf '%s\n' registry.k8s.io
    fi
}

# ---------------------------------------------------------------------------------------
# the host

# kube_kernel: the modules and sysctls Kubernetes networking needs, now and at boot.
kube_kernel() {
    local mod
    celtic_install kmod || celtic_die "cannot install kmod (modprobe)"
    CELTIC_CHANGED=0
    celtic_write_file "$CELTIC_ROOT/etc/modules-load.d/celtic-kubernetes.conf" 0644 \
        <<<$'overlay\nbr_netfilter'
    for mod in overlay br_netfilter; do
        modprobe "$mod"
    done
    celtic_write_file "$CELTIC_ROOT/etc/sysctl.d/90-celtic-kubernetes.conf" 0644 <<'EOF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
EOF
    if [[ $CELTIC_CHANGED == 1 ]]; then
        sysctl --system >/dev/null
    fi
}

# kube_swap_off: no swap now, none after a reboot (the kubelet refuses to run with it).
kube_swap_off() {
    local fstab=$CELTIC_ROOT/etc/fstab text
    swapoff -a
    if [[ -f "$fstab" ]] && grep -qE '^[^#]\S*\s+\S+\s+swap\s' "$fstab"; then
        text=$(sed -E 's/^([^#]\S*\s+\S+\s+swap\s.*)$/# celtic: kubelet needs swap off: \1/' "$fstab")
        celtic_write_file "$fstab" 0644 <<<"$text"
    fi
}

# kube_metadata_block: pods cannot reach 169.254.169.254, now and after a reboot.
kube_metadata_block() {
    local unit=celtic-metadata-block.service
    celtic_install nftables || celtic_die "cannot install nftables"
    CELTIC_CHANGED=0
    celtic_render "$CELTIC_LIB_DIR/templates/metadata-block.nft.tmpl" \
        "$CELTIC_ETC/metadata-block.nft" 0644
    KUBE_NFT_FILE=${CELTIC_ETC#"${CELTIC_ROOT:-}"}/metadata-block.nft celtic_render \
        "$CELTIC_LIB_DIR/templates/celtic-metadata-block.service.tmpl" "$KUBE_SYSTEMD/$unit" 0644
    if [[ $CELTIC_CHANGED == 1 ]]; then
        systemctl daemon-reload
        systemctl enable "$unit"
        systemctl restart "$unit"
    elif ! nft list table inet celtic_metadata >/dev/null 2>&1; then
        systemctl start "$unit"
    fi
}

# ---------------------------------------------------------------------------------------
# packages

kube_fetch() {
    curl -fsSL --max-time 120 -o "$2" "$1"
}

# kube_apt_source NAME KEY_URL LINE: an apt source with its own keyring (@KEYRING@ in
# LINE). Sets CELTIC_CHANGED=1 when the source is new or different.
kube_apt_source() {
    local name=$1 key_url=$2 line=$3
    local keyring=/etc/apt/keyrings/celtic-$name.gpg
    if [[ ! -s "$CELTIC_ROOT$keyring" ]]; then
        mkdir -p "$CELTIC_ROOT/etc/apt/keyrings"
        celtic_retry -n 5 -d 5 -- kube_fetch "$key_url" "$CELTIC_ROOT$keyring.asc" ||
            celtic_die "cannot download $key_url (network or http_proxy?)"
        gpg --batch --yes --dearmor -o "$CELTIC_ROOT$keyring" "$CELTIC_ROOT$keyring.asc"
        rm -f "$CELTIC_ROOT$keyring.asc"
        chmod 0644 "$CELTIC_ROOT$keyring"
    fi
    celtic_write_file "$CELTIC_ROOT/etc/apt/sources.list.d/celtic-$name.list" 0644 \
        <<<"${line//@KEYRING@/$keyring}"
}

# kube_pkg_version PACKAGE: the installed version, or nothing.
kube_pkg_version() {
    local status
    status=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null) || return 0
    sed -n 's/^install ok installed //p' <<<"$status"
}

# containerd.io series, held (no upgrade restarts the runtime under running pods).
KUBE_CONTAINERD_SERIES=${KUBE_CONTAINERD_SERIES:-2}

# kube_containerd_package: the newest containerd.io of the series from Docker's apt
# repository, unless the image ships a containerd >= 2 (Kubernetes >= 1.36 needs it).
kube_containerd_package() {
    local distro id codename arch pkgver
    if command -v containerd >/dev/null 2>&1 &&
        [[ $(containerd --version 2>/dev/null) =~ \ v?([0-9]+)\. ]] &&
        [[ ${BASH_REMATCH[1]} -ge 2 ]]; then
        return 0
    fi
    distro=$(celtic_distro)
    case "$distro" in
        debian-12|debian-13|ubuntu-24.04) ;;
        *) celtic_die "unsupported distribution '$distro' (Ubuntu 24.04, Debian 12 and 13 are)" ;;
    esac
    # shellcheck source=/dev/null
    id=$(. "$CELTIC_OS_RELEASE" && printf '%s' "$ID")
    # shellcheck source=/dev/null
    codename=$(. "$CELTIC_OS_RELEASE" && printf '%s' "$VERSION_CODENAME")
    arch=$(dpkg --print-architecture)
    CELTIC_CHANGED=0
    kube_apt_source docker "https://download.docker.com/linux/$id/gpg" \
        "deb [arch=$arch signed-by=@KEYRING@] https://download.docker.com/linux/$id $codename stable"
    if [[ $CELTIC_CHANGED == 1 || -z "$(kube_pkg_version containerd.io)" ]]; then
        celtic_apt_update || celtic_die "apt-get update failed (is download.docker.com reachable?)"
    fi
    pkgver=$(kube_madison containerd.io "$KUBE_CONTAINERD_SERIES.")
    [[ -n "$pkgver" ]] ||
        celtic_die "download.docker.com has no containerd.io $KUBE_CONTAINERD_SERIES.x for $id $codename"
    if [[ "$(kube_pkg_version containerd.io)" != "$pkgver" ]]; then
        celtic_package_names "containerd.io=$pkgver"
        celtic_retry -n 5 -d 5 -- celtic_apt_get install -y -q --no-install-recommends \
            --allow-change-held-packages "${CELTIC_PACKAGE_NAMES[@]}" ||
            celtic_die "cannot install containerd.io $pkgver from download.docker.com (proxy?)"
    fi
    celtic_apt_mark_hold containerd.io
}

# kube_packages VERSION: kubelet, kubeadm and kubectl at VERSION (v1.36: the newest patch
# of that minor; v1.36.3: exactly that patch), held so that apt never moves them.
kube_packages() {
    local want=$1 minor installed pkgver repo
    [[ "$want" =~ ^v([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]] ||
        celtic_die "Kubernetes version must look like v1.36 or v1.36.3, got '$want'"
    minor="v${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
    installed=$(kube_pkg_version kubeadm)
    if [[ -n "$installed" && -e "$KUBE_ETC/kubelet.conf" ]]; then
        celtic_info "kubeadm $installed is installed and this node is in the cluster"
        return 0
    fi
    repo="https://pkgs.k8s.io/core:/stable:/$minor/deb/"
    CELTIC_CHANGED=0
    kube_apt_source kubernetes "${repo}Release.key" "deb [signed-by=@KEYRING@] $repo /"
    pkgver=""
    if [[ $CELTIC_CHANGED == 0 ]]; then
        pkgver=$(kube_pkg_candidate "$want")
    fi
    if [[ -z "$pkgver" ]]; then
        celtic_apt_update || celtic_die "apt-get update failed (is $repo reachable?)"
        pkgver=$(kube_pkg_candidate "$want")
    fi
    [[ -n "$pkgver" ]] || celtic_die "Kubernetes $want is not in $repo (check kube_tag)"
    kube_tools_source "$minor"
    if [[ "$installed" != "$pkgver" ]]; then
        celtic_info "installing kubelet, kubeadm and kubectl $pkgver"
        celtic_package_names "kubelet=$pkgver" "kubeadm=$pkgver" "kubectl=$pkgver"
        celtic_retry -n 5 -d 5 -- celtic_apt_get install -y -q --no-install-recommends \
            --allow-change-held-packages --allow-downgrades "${CELTIC_PACKAGE_NAMES[@]}" ||
            celtic_die "cannot install kubelet, kubeadm and kubectl $pkgver from $repo"
    fi
    celtic_apt_mark_hold kubelet kubeadm kubectl
}

# kube_tools_source MINOR: cri-tools and kubernetes-cni from the previous minor's
# repository when MINOR's lacks them (kubernetes/kubernetes#138534); kubelet, kubeadm
# and kubectl keep MINOR's exact version.
kube_tools_source() {
    local minor=$1 previous repo pkg missing=()
    for pkg in cri-tools kubernetes-cni; do
        if [[ -z "$(kube_madison "$pkg" "")" ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    [[ "$minor" =~ ^v([0-9]+)\.([0-9]+)$ && ${BASH_REMATCH[2]} -gt 0 ]] ||
        celtic_die "${missing[*]} missing from the $minor repository and no previous minor to take them from"
    previous="v${BASH_REMATCH[1]}.$((BASH_REMATCH[2] - 1))"
    repo="https://pkgs.k8s.io/core:/stable:/$previous/deb/"
    celtic_warn "the $minor repository has no ${missing[*]}: taking them from $repo"
    CELTIC_CHANGED=0
    kube_apt_source kubernetes-tools "${repo}Release.key" "deb [signed-by=@KEYRING@] $repo /"
    if [[ $CELTIC_CHANGED == 1 ]]; then
        celtic_apt_update || celtic_die "apt-get update failed (is $repo reachable?)"
    fi
    for pkg in "${missing[@]}"; do
        [[ -n "$(kube_madison "$pkg" "")" ]] ||
            celtic_die "$pkg is neither in the $minor nor in the $previous repository of pkgs.k8s.io"
    done
}

# kube_madison PACKAGE PREFIX: the newest version of PACKAGE apt knows that starts with
# PREFIX (empty: any), or nothing.
kube_madison() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' -v p="$2" \
        '{v = $2; gsub(/[[:space:]]/, "", v); if (v != "" && (p == "" || index(v, p) == 1)) print v}' |
        sort -rV | sed -n 1p
}

# kube_pkg_candidate VERSION: the newest package version of kubeadm matching VERSION.
kube_pkg_candidate() {
    local want=${1#v}
    if [[ "$want" =~ ^[0-9]+\.[0-9]+$ ]]; then
        kube_madison kubeadm "$want."
    else
        kube_madison kubeadm "$want-"
    fi
}

# ---------------------------------------------------------------------------------------
# containerd and kubelet

# kube_unit_proxy UNIT: UNIT gets the template's HTTP proxy in a drop-in (none without).
kube_unit_proxy() {
    local dropin=$KUBE_SYSTEMD/$1.service.d/http-proxy.conf
    if [[ -z "$CELTIC_HTTP_PROXY$CELTIC_HTTPS_PROXY" ]]; then
        if [[ -e "$dropin" ]]; then
            rm -f "$dropin"
            CELTIC_CHANGED=1
        fi
        return 0
    fi
    # systemd expands % specifiers: a percent-encoded password must reach it as %%.
    KUBE_UNIT_HTTP_PROXY=${CELTIC_HTTP_PROXY//%/%%} \
        KUBE_UNIT_HTTPS_PROXY=${CELTIC_HTTPS_PROXY//%/%%} \
        KUBE_UNIT_NO_PROXY=${CELTIC_NO_PROXY//%/%%} \
        celtic_render "$CELTIC_LIB_DIR/templates/http-proxy.conf.tmpl" "$dropin" 0640
}

# kube_containerd: systemd cgroups, the pause image kubeadm expects (with the registry
# prefix), the proxy; restarted only when something changed.
kube_containerd() {
    local version images sandbox
    version=$(kubeadm version -o short) || celtic_die "kubeadm is not installed"
    images=$(kubeadm config images list --kubernetes-version "$version" \
        --image-repository "$(kube_image_repository)") ||
        celtic_die "kubeadm $version cannot list its images"
    sandbox=$(grep -m 1 '/pause:' <<<"$images") ||
        celtic_die "kubeadm $version did not name its pause image"
    CELTIC_CHANGED=0
    KUBE_SANDBOX_IMAGE=$sandbox celtic_render "$CELTIC_LIB_DIR/templates/containerd-config.toml.tmpl" \
        "$CELTIC_ROOT/etc/containerd/config.toml" 0644
    celtic_write_file "$CELTIC_ROOT/etc/crictl.yaml" 0644 <<<"runtime-endpoint: $KUBE_CRI_SOCKET"
    kube_unit_proxy containerd
    if [[ $CELTIC_CHANGED == 1 ]]; then
        systemctl daemon-reload
        systemctl enable containerd
        systemctl restart containerd
    elif ! systemctl is-active --quiet containerd; then
        systemctl start containerd
    fi
}

# kube_kubelet: kubelet enabled (kubeadm starts it) with the proxy drop-in.
kube_kubelet() {
    CELTIC_CHANGED=0
    kube_unit_proxy kubelet
    if [[ $CELTIC_CHANGED == 1 ]]; then
        systemctl daemon-reload
    fi
    systemctl enable kubelet
}

# kube_host_setup: the steps every Kubernetes node runs before its packages.
kube_host_setup() {
    celtic_step kernel kube_kernel
    celtic_step swap kube_swap_off
    celtic_step metadata-block kube_metadata_block
    celtic_step containerd-package kube_containerd_package
}

# kube_runtime_setup: the steps after the packages (containerd needs kubeadm's pause).
kube_runtime_setup() {
    celtic_step containerd kube_containerd
    celtic_step kubelet kube_kubelet
}

# ---------------------------------------------------------------------------------------
# the API through the VIP

# kube_api_version: the apiserver's version through the VIP (anonymous /version).
kube_api_version() {
    local body
    body=$(curl -fsS --max-time 5 --cacert "$CELTIC_ETC/pki/ca.crt" \
        "https://$CELTIC_API_VIP:$CELTIC_API_PORT/version" 2>/dev/null) || return 1
    celtic_python -c 'import json, sys; print(json.loads(sys.argv[1])["gitVersion"])' "$body" \
        2>/dev/null
}

kube_api_answers() {
    [[ -n "$(kube_api_version)" ]]
}

kube_wait_api() {
    celtic_wait_for "$KUBE_API_WAIT" 10 "the API at $CELTIC_API_VIP:$CELTIC_API_PORT" \
        kube_api_answers ||
        celtic_die "the API at $CELTIC_API_VIP:$CELTIC_API_PORT did not answer within" \
            "${KUBE_API_WAIT}s (is the first master up? see its /var/log/celtic.log)"
}

# kube_packages_from_api: the apiserver's exact version, never newer than it.
kube_packages_from_api() {
    local version
    version=$(kube_api_version) || celtic_die "cannot read the apiserver's /version"
    kube_packages "${version%%[-+]*}"
}

# ---------------------------------------------------------------------------------------
# kubeadm

# kube_kubeadm ARGS...: kubeadm with its output on the console, minus any token
# (kubeadm init prints a ready-made join command).
kube_kubeadm() {
    local -
    set -o pipefail
    kubeadm "$@" 2>&1 | sed -E 's/[a-z0-9]{6}\.[a-z0-9]{16}/<token>/g' >&2
}

# kube_server_uuid: this node's Nova server UUID (cloud-init's instance id), or nothing
# when it is not known.
kube_server_uuid() {
    local id
    id=$(celtic_node_id 2>/dev/null) || return 0
    if [[ "$id" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; then
        printf '%s\n' "$id"
    fi
}

# kube_registration ROLE: exports KUBE_TAINTS and KUBE_KUBELET_ARGS (JSON) for ROLE
# worker (the pool's node_labels and node_taints) or control-plane. With
# cloud_provider_enabled the kubelet defers to the cloud-controller-manager
# (--cloud-provider=external) and names its server (--provider-id, so the controller
# finds it by id, not by name).
kube_registration() {
    local out
    out=$(celtic_python - "$1" "$KUBE_NODE_IP" "${CELTIC_PARAMS_FILE:-}" "$(kube_server_uuid)" <<'PY'
import json, sys
role, ip, params_file, server = sys.argv[1:5]
params = {}
if params_file:
    with open(params_file) as f:
        params = json.load(f)
args = [{'name': 'node-ip', 'value': ip}]
if server:
    # the node's providerID, as OpenStack's cloud provider spells it: the
    # cloud-controller-manager and the autoscaler's provider find the server by it
    # (doc/cloud-provider.md, doc/autoscaling.md)
    args.append({'name': 'provider-id', 'value': 'openstack:///' + server})
if params.get('cloud_provider_enabled') is True:
    args.append({'name': 'cloud-provider', 'value': 'external'})
if role == 'control-plane':
    taints = [{'key': 'node-role.kubernetes.io/control-plane', 'effect': 'NoSchedule'}]
else:
    # The kubelet refuses to start with labels of these domains it may not set itself.
    allowed = ('kubelet.kubernetes.io/', 'node.kubernetes.io/')
    labels = []
    for key, value in sorted((params.get('node_labels') or {}).items()):
        domain = key.split('/')[0] if '/' in key else ''
        restricted = domain.endswith(('kubernetes.io', 'k8s.io'))
        if restricted and not key.startswith(allowed):
            sys.stderr.write('node label %s skipped: the kubelet may not set it\n' % key)
            continue
        labels.append('%s=%s' % (key, value))
    if labels:
        args.append({'name': 'node-labels', 'value': ','.join(labels)})
    taints = []
    for taint in params.get('node_taints') or []:
        if taint.get('effect') not in ('NoSchedule', 'PreferNoSchedule', 'NoExecute'):
            sys.exit('node taint %s: effect must be NoSchedule, PreferNoSchedule or '
                     'NoExecute' % taint.get('key'))
        taints.append({k: taint[k] for k in ('key', 'value', 'effect') if taint.get(k)})
print(json.dumps(taints))
print(json.dumps(args))
PY
) || celtic_die "invalid node_labels or node_taints for this pool"
    export KUBE_TAINTS=${out%%$'\n'*} KUBE_KUBELET_ARGS=${out#*$'\n'}
    if [[ "$1" == control-plane ]]; then
        export KUBE_IGNORE_PREFLIGHT="[Port-$CELTIC_API_PORT]"
    else
        export KUBE_IGNORE_PREFLIGHT="[]"
    fi
}

# kube_render TEMPLATE DEST ROLE: a kubeadm configuration for ROLE (worker or
# control-plane) into DEST, 0600: the token only ever travels through that file.
kube_render() {
    local template=$1 dest=$2 role=$3 token_file token
    token_file=$(celtic_secret bootstrap-token) ||
        celtic_die "secret bootstrap-token was not delivered to this node"
    token=$(<"$token_file")
    kube_registration "$role"
    export KUBE_PATCHES_DIR KUBE_JOIN_CONTROL_PLANE=""
    if [[ "$role" == control-plane ]]; then
        printf -v KUBE_JOIN_CONTROL_PLANE '%s\n' "controlPlane:" \
            "  localAPIEndpoint: {advertiseAddress: \"$KUBE_NODE_IP\", bindPort: $CELTIC_API_PORT}" \
            "patches:" "  directory: $KUBE_PATCHES_DIR"
    fi
    KUBE_TOKEN=${token//[[:space:]]/} celtic_render "$template" "$dest" 0600
}

# kube_render_join ROLE: the JoinConfiguration of a minion or of a master after the first.
kube_render_join() {
    kube_render "$CELTIC_LIB_DIR/templates/kubeadm-join.yaml.tmpl" \
        "$KUBE_CONFIG_DIR/join.yaml" "$1"
}

# kube_join [PREPARE...]: kubeadm join through the VIP, once; a failed attempt is reset
# and retried, PREPARE before each attempt (reset empties /etc/kubernetes/pki).
kube_join() {
    if [[ -e "$KUBE_ETC/kubelet.conf" ]]; then
        celtic_info "already joined ($KUBE_ETC/kubelet.conf exists)"
        return 0
    fi
    celtic_retry -n 3 -d 30 -- kube_join_once "$@"
}

kube_join_once() {
    if [[ $# -gt 0 ]]; then
        "$@"
    fi
    kube_kubeadm join --config "$KUBE_CONFIG_DIR/join.yaml" && return 0
    kube_kubeadm reset --force >/dev/null 2>&1 || true
    return 1
}

# kube_wait_ready KUBECONFIG: until this node is Ready (its CNI pod runs).
kube_wait_ready() {
    celtic_wait_for "$KUBE_READY_WAIT" 10 "node $KUBE_NODE_NAME to be Ready" \
        kube_node_ready "$1" ||
        celtic_die "node $KUBE_NODE_NAME is not Ready after ${KUBE_READY_WAIT}s" \
            "(check the CNI pods and journalctl -u kubelet)"
}

kube_node_ready() {
    [[ "$(kubectl --kubeconfig "$1" get node "$KUBE_NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
