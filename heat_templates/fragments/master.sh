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

# master.sh: what a master node runs at first boot (and again, harmlessly, on a re-run).
#   every master: common set-up, corosync/pacemaker membership (master 0 needs quorum
#                 for the VIP), kernel, containerd, HAProxy + VIP (node/api_vip.sh),
#                 Magnum's PKI in /etc/kubernetes/pki
#   master 0:     packages at kube_tag, kubeadm init, CNI, addons (with Keystone
#                 login: node/keystone_auth.sh; the dashboard: node/dashboard.sh)
#   the others:   wait for the VIP, packages at the apiserver's version, join
#                 --control-plane (the shared certificates came from Heat)
#   every master: wait until Ready, then the autoscaler's provider when
#                 auto_scaling_enabled (node/autoscaler.sh), then celtic-members.timer,
#                 which applies a later master count change (`master.sh members`,
#                 node/members.sh, doc/master-resize.md), and with auto_healing_enabled=true
#                 celtic-heal.timer, which replaces unhealthy workers (`master.sh heal`,
#                 node/heal.sh, doc/autoscaling.md). doc/nodes.md explains each step.

CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
# shellcheck source=lib/celtic.sh
source "$CELTIC_LIB_DIR/lib/celtic.sh"
# shellcheck source=node/common.sh
source "$CELTIC_LIB_DIR/node/common.sh"
# shellcheck source=node/kubernetes.sh
source "$CELTIC_LIB_DIR/node/kubernetes.sh"
# shellcheck source=node/addons.sh
source "$CELTIC_LIB_DIR/node/addons.sh"
# shellcheck source=node/ha.sh disable=SC1091
source "$CELTIC_LIB_DIR/node/ha.sh"
# shellcheck source=node/api_vip.sh disable=SC1091
source "$CELTIC_LIB_DIR/node/api_vip.sh"
# shellcheck source=node/members.sh disable=SC1091
source "$CELTIC_LIB_DIR/node/members.sh"

# master_source_addons: the optional add-ons' steps. They come from celtic-vendordata
# (fragments/bundles.yaml's vendordata section: they do not fit in the user_data), so
# they are sourced after the vendordata step, or, on a running master, from where that
# step unpacked them.
master_source_addons() {
    local module
    for module in keystone_auth dashboard cloud heal autoscaler; do
        [[ -r "$CELTIC_LIB_DIR/node/$module.sh" ]] ||
            celtic_die "node/$module.sh is missing: celtic-vendordata did not deliver" \
                "the add-on files (the vendordata step's lines above)"
    done
    # shellcheck source=node/keystone_auth.sh
    source "$CELTIC_LIB_DIR/node/keystone_auth.sh"
    # shellcheck source=node/dashboard.sh
    source "$CELTIC_LIB_DIR/node/dashboard.sh"
    # shellcheck source=node/cloud.sh disable=SC1091
    source "$CELTIC_LIB_DIR/node/cloud.sh"
    # shellcheck source=node/heal.sh disable=SC1091
    source "$CELTIC_LIB_DIR/node/heal.sh"
    # shellcheck source=node/autoscaler.sh disable=SC1091
    source "$CELTIC_LIB_DIR/node/autoscaler.sh"
}

MASTER_INDEX=
MASTERS=()

# master_identity: this master's address, name and index among master_addresses.
master_identity() {
    kube_defaults
    read -r -a MASTERS <<<"${CELTIC_MASTER_ADDRESSES:-}"
    MASTER_INDEX=$(celtic_index_of "$KUBE_NODE_IP" "${MASTERS[@]}") ||
        celtic_die "this node's address $KUBE_NODE_IP is not in master_addresses" \
            "(${MASTERS[*]})"
}

# master_pki: Magnum's CAs and the cluster's service-account key where kubeadm expects
# them, identical on every master: kubeadm init signs with them, and join --control-plane
# finds the shared certificates on disk (no --upload-certs / --certificate-key).
master_pki() {
    local pki=$KUBE_ETC/pki pair src dest mode text
    for pair in pki/ca.crt:ca.crt:0644 secrets/ca.key:ca.key:0600 \
        pki/etcd-ca.crt:etcd/ca.crt:0644 secrets/etcd-ca.key:etcd/ca.key:0600 \
        pki/front-proxy-ca.crt:front-proxy-ca.crt:0644 \
        secrets/front-proxy-ca.key:front-proxy-ca.key:0600 secrets/sa.key:sa.key:0600; do
        IFS=: read -r src dest mode <<<"$pair"
        [[ -s "$CELTIC_ETC/$src" ]] || celtic_die "/etc/celtic/$src was not delivered"
        celtic_write_file "$pki/$dest" "$mode" <"$CELTIC_ETC/$src"
    done
    text=$(openssl pkey -in "$pki/sa.key" -pubout) ||
        celtic_die "/etc/celtic/secrets/sa.key is not a private key"
    celtic_write_file "$pki/sa.pub" 0644 <<<"$text"
}

# master_render_init: the kubeadm init configuration (InitConfiguration,
# ClusterConfiguration, KubeletConfiguration) from templates/kubeadm-init.yaml.tmpl.
master_render_init() {
    local names
    KUBE_VERSION=$(kubeadm version -o short) || celtic_die "kubeadm is not installed"
    KUBE_IMAGE_REPOSITORY=$(kube_image_repository)
    KUBE_CLUSTER_NAME=$(celtic_python -c 'import json, sys; print(json.dumps(sys.argv[1]))' \
        "${CELTIC_CLUSTER_NAME:-kubernetes}")
    names=("$CELTIC_API_VIP" "${CELTIC_API_VIP_FIP:-}" "${MASTERS[@]}")
    KUBE_CERT_SANS=$(celtic_python - "$CELTIC_CLUSTER_DOMAIN" "${names[@]}" <<'PY'
import json, sys
domain, names = sys.argv[1], [n for n in sys.argv[2:] if n]
names += ['127.0.0.1', 'localhost', 'kubernetes', 'kubernetes.default',
          'kubernetes.default.svc', 'kubernetes.default.svc.' + domain]
print(json.dumps(list(dict.fromkeys(names))))
PY
)
    export KUBE_VERSION KUBE_IMAGE_REPOSITORY KUBE_CLUSTER_NAME KUBE_CERT_SANS
    keystone_auth_apiserver
    master_patches
    kube_render "$CELTIC_LIB_DIR/templates/kubeadm-init.yaml.tmpl" \
        "$KUBE_CONFIG_DIR/init.yaml" control-plane
}

# master_render_join: the JoinConfiguration of a master after the first.
master_render_join() {
    master_patches
    kube_render_join control-plane
}

# master_patches: this master's kubeadm patches (its apiserver's bind address).
master_patches() {
    celtic_render "$CELTIC_LIB_DIR/templates/kubeadm-apiserver-patch.yaml.tmpl" \
        "$KUBE_PATCHES_DIR/kube-apiserver+json.yaml" 0644
}

# master_init: kubeadm init, once; a failed attempt is reset and retried. Each attempt
# places Magnum's CAs again (reset empties pki; kubeadm would mint its own CA).
master_init() {
    if [[ -e "$KUBE_ETC/admin.conf" ]]; then
        celtic_info "already initialised ($KUBE_ETC/admin.conf exists)"
        return 0
    fi
    celtic_retry -n 2 -d 30 -- master_init_once ||
        celtic_die "kubeadm init failed (console log above; journalctl -u kubelet;" \
            "crictl ps -a)"
}

master_init_once() {
    master_pki
    kube_kubeadm init --config "$KUBE_CONFIG_DIR/init.yaml" && return 0
    kube_kubeadm reset --force >/dev/null 2>&1 || true
    return 1
}

# master_addons: celtic's manifests, each only when its feature is on (metrics-server
# always). The cloud add-ons first: with the cloud provider, no pod but the CNI's
# lands on a node until its controller initialised it (node/cloud.sh).
master_addons() {
    local manifests=$CELTIC_LIB_DIR/manifests
    cloud_addons
    celtic_step addon-metrics-server kube_apply_manifest "$manifests/metrics-server.yaml"
    if keystone_auth_enabled; then
        celtic_step addon-keystone-auth keystone_auth_addon
    fi
    if [[ "${CELTIC_DASHBOARD_ENABLED:-false}" == true ]]; then
        celtic_step addon-dashboard dashboard_addon
    fi
    if autoscaler_enabled; then
        celtic_step addon-autoscaler kube_apply_manifest "$manifests/cluster-autoscaler.yaml"
    fi
    if [[ -n "${CELTIC_PROXY_ADDRESSES:-}" ]]; then
        celtic_step addon-lb-rbac kube_apply_manifest "$manifests/celtic-lb-rbac.yaml"
    fi
    if [[ -n "${CELTIC_STORAGE_ADDRESSES:-}" ]]; then
        celtic_step addon-storage kube_apply_manifest "$manifests/storage.yaml"
    fi
    if [[ "${CELTIC_INGRESS_CONTROLLER:-none}" == traefik && -n "${CELTIC_PROXY_ADDRESSES:-}" ]]; then
        celtic_step addon-ingress kube_apply_manifest "$manifests/ingress-traefik.yaml"
    fi
}

# master_keystone_auth: with Keystone login, the files this master's apiserver starts
# with (node/keystone_auth.sh); they need Magnum's CA in /etc/kubernetes/pki.
master_keystone_auth() {
    if keystone_auth_enabled; then
        celtic_step keystone-auth keystone_auth_files
    fi
}

master_main() {
    common_setup
    master_source_addons
    celtic_step identity master_identity
    # Early on every master: master 0's VIP needs a quorate cluster.
    celtic_step ha-cluster ha_cluster_setup master "${MASTERS[@]}"
    kube_host_setup
    if [[ "$MASTER_INDEX" == 0 ]]; then
        celtic_step kube-packages kube_packages "$CELTIC_KUBE_TAG"
        kube_runtime_setup
        celtic_step pki master_pki
        master_keystone_auth
        celtic_step kubeadm-config master_render_init
        celtic_step api-vip api_vip_setup
        celtic_step kubeadm-init master_init
        celtic_step cni kube_cni
        master_addons
    else
        # HAProxy runs on every master (a pacemaker clone), so every master sets it up.
        celtic_step api-vip api_vip_setup
        celtic_step wait-api kube_wait_api
        celtic_step kube-packages kube_packages_from_api
        kube_runtime_setup
        celtic_step pki master_pki
        master_keystone_auth
        celtic_step kubeadm-config master_render_join
        celtic_step kubeadm-join kube_join master_pki
    fi
    celtic_step node-ready kube_wait_ready "$KUBE_ETC/admin.conf"
    # every master: the autoscaler's provider, when the labels ask for it
    autoscaler_setup
    celtic_step members-timer members_timer
    if [[ "${CELTIC_AUTO_HEALING_ENABLED:-false}" == true ]]; then
        celtic_step heal-timer heal_timer
    fi
}

# master_members_main: what celtic-members.timer runs. It reports to Heat only while a
# master removal waits for master 0 (members_run); otherwise a failure is in the log
# and the journal.
master_members_main() {
    celtic_load_params "$CELTIC_ETC/params.json"
    master_source_addons
    kube_defaults
    members_run
}

# master_cloud_config_main: what an operator runs on master 0 after `openstack coe
# credential rotate` (`master.sh cloud-config`, doc/cloud-provider.md): the masters'
# secrets fetched again, the Secret celtic-cloud-config re-rendered and re-applied.
master_cloud_config_main() {
    celtic_load_params "$CELTIC_ETC/params.json"
    kube_defaults
    celtic_fetch_vendordata
    master_source_addons
    cloud_wanted || celtic_die "neither cloud_provider_enabled nor cinder_csi_enabled" \
        "is set on this cluster: there is no cloud.conf to refresh"
    cloud_config_secret
}

# master_heal_main: what celtic-heal.timer runs (no report to Heat either; each pass
# logs what it saw and did to the journal, tag celtic, and /var/log/celtic.log).
master_heal_main() {
    celtic_load_params "$CELTIC_ETC/params.json"
    master_source_addons
    kube_defaults
    common_proxy_env
    if [[ "${CELTIC_AUTO_HEALING_ENABLED:-false}" != true ]]; then
        celtic_info "heal: auto_healing_enabled is not true: nothing to do"
        return 0
    fi
    heal_main
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    CELTIC_ROLE=master
    if [[ "${1:-}" == members ]]; then
        master_members_main
    elif [[ "${1:-}" == cloud-config ]]; then
        master_cloud_config_main
    elif [[ "${1:-}" == heal ]]; then
        master_heal_main
    else
        # A master's boot report has an id of its own server: a master that replaces a
        # removed one of the same name must not find that one's report already there
        # (doc/master-resize.md, node_group.yaml's departed).
        CELTIC_SIGNAL_ID="$(celtic_node_name) $(celtic_node_id)"
        celtic_run master_main "$@"
    fi
fi
