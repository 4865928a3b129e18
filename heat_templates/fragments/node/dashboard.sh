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

# dashboard.sh: Headlamp (label dashboard_enabled), applied by master 0 with the addons
# (manifests/dashboard.yaml). Headlamp holds no credential of its own: its service
# account has no role, and every request it makes carries the token the user logged in
# with (a Keystone token with keystone_auth_enabled), so nobody gets in anonymously.
# It serves HTTPS only, with a certificate of the cluster CA for the names it is reached
# at: localhost (kubectl port-forward), its Service, and with dashboard_service_type
# LoadBalancer the proxy VIP and its floating IP (celtic-lb publishes it there).
# Sourced after lib/celtic.sh, node/kubernetes.sh and node/addons.sh.

DASHBOARD_NAMESPACE=celtic-dashboard

# dashboard_sans: the names the dashboard's certificate covers (IP:... DNS:...).
dashboard_sans() {
    local name sans=(IP:127.0.0.1 DNS:localhost "DNS:headlamp.$DASHBOARD_NAMESPACE.svc"
        "DNS:headlamp.$DASHBOARD_NAMESPACE.svc.${CELTIC_CLUSTER_DOMAIN:-cluster.local}")
    if [[ "${CELTIC_DASHBOARD_SERVICE_TYPE:-ClusterIP}" == LoadBalancer ]]; then
        for name in "${CELTIC_PROXY_VIP:-}" "${CELTIC_PROXY_VIP_FIP:-}"; do
            if [[ -n "$name" ]]; then
                sans+=("IP:$name")
            fi
        done
    fi
    printf '%s\n' "${sans[@]}"
}

# dashboard_addon: master 0: the certificate (kept across runs), then the manifest with
# it as the Secret headlamp-tls (the rendered file is 0600).
dashboard_addon() {
    local dir=$CELTIC_STATE_DIR/dashboard sans
    mapfile -t sans < <(dashboard_sans)
    kube_serving_cert "$dir" headlamp "${sans[@]}"
    DASHBOARD_TLS_CRT=$(base64 -w 0 "$dir/tls.crt") ||
        celtic_die "cannot read the dashboard's certificate in $dir"
    DASHBOARD_TLS_KEY=$(base64 -w 0 "$dir/tls.key") ||
        celtic_die "cannot read the dashboard's key in $dir"
    export DASHBOARD_TLS_CRT DASHBOARD_TLS_KEY
    kube_apply_manifest "$CELTIC_LIB_DIR/manifests/dashboard.yaml"
    unset DASHBOARD_TLS_KEY
}
