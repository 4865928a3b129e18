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

# common.sh: set-up every node needs before its role's work, whatever the role.
#   - read the node parameters
#   - fetch this node's secrets and signal credentials (celtic-vendordata, through
#     Nova's metadata service): before any step that needs one, and before anything
#     whose failure must be reported
#   - make the hostname resolve locally (kubelet, corosync and glusterd need it)
#   - route apt through the cluster template's HTTP proxy when it has one
#   - refresh the package index and install the base tools the fragments use
#
# System paths are prefixed with $CELTIC_ROOT (lib/celtic.sh): empty on a node, a
# scratch directory in tests.

# common_hostname: the Nova name is the node name; make sure it resolves to the node.
common_hostname() {
    local name ip hosts=$CELTIC_ROOT/etc/hosts
    name=$(celtic_node_name)
    ip=$(celtic_node_ip)
    [[ -n "$ip" ]] || celtic_die "cannot find this node's address (no default route?)"
    touch "$hosts"
    if ! grep -qE "^${ip//./\\.}[[:space:]].*\\b${name}\\b" "$hosts"; then
        sed -i "/[[:space:]]${name}\$/d" "$hosts"
        printf '%s %s\n' "$ip" "$name" >>"$hosts"
        celtic_info "added $name ($ip) to /etc/hosts"
    fi
}

# common_apt_proxy: apt goes through the template's proxy (nothing when there is none).
common_apt_proxy() {
    local conf=$CELTIC_ROOT/etc/apt/apt.conf.d/90celtic-proxy text=""
    if [[ -z "${CELTIC_HTTP_PROXY:-}" && -z "${CELTIC_HTTPS_PROXY:-}" ]]; then
        rm -f "$conf"
        return 0
    fi
    if [[ -n "${CELTIC_HTTP_PROXY:-}" ]]; then
        text+="Acquire::http::Proxy \"$CELTIC_HTTP_PROXY\";"$'\n'
    fi
    if [[ -n "${CELTIC_HTTPS_PROXY:-}" ]]; then
        text+="Acquire::https::Proxy \"$CELTIC_HTTPS_PROXY\";"$'\n'
    fi
    # 0600: a proxy URL may carry a password (apt reads its configuration as root).
    # A redirection, not a pipe: celtic_write_file must run in this shell.
    celtic_write_file "$conf" 0600 <<<"${text%$'\n'}"
}

# common_proxy_env: the proxy settings for child processes of this script.
common_proxy_env() {
    if [[ -n "${CELTIC_HTTP_PROXY:-}" ]]; then
        export http_proxy=$CELTIC_HTTP_PROXY HTTP_PROXY=$CELTIC_HTTP_PROXY
    fi
    if [[ -n "${CELTIC_HTTPS_PROXY:-}" ]]; then
        export https_proxy=$CELTIC_HTTPS_PROXY HTTPS_PROXY=$CELTIC_HTTPS_PROXY
    fi
    if [[ -n "${CELTIC_NO_PROXY:-}" ]]; then
        export no_proxy=$CELTIC_NO_PROXY NO_PROXY=$CELTIC_NO_PROXY
    fi
}

# common_base_packages: tools every fragment relies on (gpg for apt keys, openssl for
# the PKI, procps for sysctl).
common_base_packages() {
    celtic_apt_update
    celtic_install ca-certificates curl gpg python3 iproute2 openssl procps
}

# common_setup: the common steps, in order.
common_setup() {
    celtic_step params celtic_load_params
    celtic_step vendordata celtic_fetch_vendordata
    common_proxy_env
    celtic_step hostname common_hostname
    celtic_step apt-proxy common_apt_proxy
    celtic_step base-packages common_base_packages
}
