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

# autoscaler.sh: autoscaling on a master when auto_scaling_enabled is true
# (doc/autoscaling.md).
#   every master: celtic-autoscaler-provider, the external gRPC cloud provider of
#                 cluster-autoscaler, as a systemd service on 127.0.0.1:8086 with mutual
#                 TLS (a CA made here, used once and deleted: it signs this master's
#                 server certificate and the autoscaler's client certificate), run by
#                 the node's python3 with python3-grpcio and python3-protobuf, with the
#                 cluster's application credential (secrets/, 0600)
#   master 0:     manifests/cluster-autoscaler.yaml, the Deployment (hostNetwork, on
#                 the masters) that reaches the provider of the master it runs on

AUTOSCALER_DIR=${AUTOSCALER_DIR:-$CELTIC_ETC/autoscaler}
AUTOSCALER_UNIT_DIR=${AUTOSCALER_UNIT_DIR:-${CELTIC_ROOT:-}/etc/systemd/system}
AUTOSCALER_LISTEN=${AUTOSCALER_LISTEN:-127.0.0.1:8086}
# distroless's nonroot user, which cluster-autoscaler's image runs as: it reads the
# client key through the hostPath
AUTOSCALER_CLIENT_UID=${AUTOSCALER_CLIENT_UID:-65532}
AUTOSCALER_CREDENTIAL=application-credential.json

# autoscaler_enabled: whether the labels ask for the autoscaler.
autoscaler_enabled() {
    [[ "${CELTIC_AUTO_SCALING_ENABLED:-false}" == true ]]
}

# autoscaler_tls: the provider's server certificate (127.0.0.1) and the autoscaler's
# client certificate, signed by a CA whose key is deleted once they are; kept across
# re-runs.
autoscaler_tls() {
    local dir=$AUTOSCALER_DIR work who ext missing=0
    for who in ca.crt server.crt server.key client.crt client.key; do
        [[ -s "$dir/$who" ]] || missing=1
    done
    if [[ $missing -eq 0 ]]; then
        celtic_info "the autoscaler's certificates exist"
        return 0
    fi
    work=$(mktemp -d)
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$work/ca.key" -out "$work/ca.crt" -days 36500 \
        -subj "/CN=celtic-autoscaler-provider CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 ||
        { rm -rf "$work"; celtic_die "openssl cannot make the autoscaler's CA"; }
    for who in server client; do
        if [[ "$who" == server ]]; then
            ext='subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'
        else
            ext='extendedKeyUsage=clientAuth'
        fi
        # shellcheck disable=SC2059
        printf "$ext\n" >"$work/$who.ext"
        { openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$work/$who.key" -out "$work/$who.csr" \
            -subj "/CN=celtic-autoscaler-$who" &&
            openssl x509 -req -in "$work/$who.csr" -CA "$work/ca.crt" \
                -CAkey "$work/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
                -days 36500 -extfile "$work/$who.ext" -out "$work/$who.crt"; } \
            >/dev/null 2>&1 ||
            { rm -rf "$work"; celtic_die "openssl cannot sign the autoscaler's $who certificate"; }
    done
    mkdir -p "$dir"
    chmod 0755 "$dir"
    celtic_write_file "$dir/ca.crt" 0644 <"$work/ca.crt"
    celtic_write_file "$dir/server.crt" 0644 <"$work/server.crt"
    celtic_write_file "$dir/server.key" 0600 <"$work/server.key"
    celtic_write_file "$dir/client.crt" 0644 <"$work/client.crt"
    celtic_write_file "$dir/client.key" 0400 <"$work/client.key"
    rm -rf "$work"
    chown "$AUTOSCALER_CLIENT_UID:$AUTOSCALER_CLIENT_UID" "$dir/client.key" ||
        celtic_die "cannot give the autoscaler's client key to uid $AUTOSCALER_CLIENT_UID"
}

# autoscaler_cloud_config: what --cloud-config points cluster-autoscaler at (the pod
# mounts $AUTOSCALER_DIR at the same path).
autoscaler_cloud_config() {
    export AUTOSCALER_DIR AUTOSCALER_LISTEN
    celtic_render "$CELTIC_LIB_DIR/templates/autoscaler-cloud-config.yaml.tmpl" \
        "$AUTOSCALER_DIR/cloud-config.yaml" 0644
}

# autoscaler_provider: celtic-autoscaler-provider installed, enabled and running;
# restarted when its unit or program changed.
autoscaler_provider() {
    local before=$CELTIC_CHANGED unit_changed program_changed
    [[ -s "$CELTIC_ETC/secrets/$AUTOSCALER_CREDENTIAL" ]] ||
        celtic_die "the cluster's application credential was not delivered to this" \
            "master (celtic-vendordata serves it when auto_scaling_enabled is true)"
    celtic_install python3-grpcio python3-protobuf
    AUTOSCALER_PROGRAM=$CELTIC_LIB_DIR/autoscaler/celtic_autoscaler.py
    AUTOSCALER_CREDENTIAL_FILE=$(celtic_secret "$AUTOSCALER_CREDENTIAL")
    AUTOSCALER_OS_TLS=
    if [[ "${CELTIC_OPENSTACK_INSECURE:-false}" == true ]]; then
        AUTOSCALER_OS_TLS=--insecure
    elif [[ -s "$CELTIC_ETC/openstack-ca.pem" ]]; then
        AUTOSCALER_OS_TLS="--os-cacert $CELTIC_ETC/openstack-ca.pem"
    fi
    export AUTOSCALER_PROGRAM AUTOSCALER_CREDENTIAL_FILE AUTOSCALER_OS_TLS AUTOSCALER_DIR \
        AUTOSCALER_LISTEN
    CELTIC_CHANGED=0
    celtic_render "$CELTIC_LIB_DIR/templates/celtic-autoscaler-provider.service.tmpl" \
        "$AUTOSCALER_UNIT_DIR/celtic-autoscaler-provider.service" 0644
    unit_changed=$CELTIC_CHANGED
    CELTIC_CHANGED=0
    celtic_write_file "$CELTIC_STATE_DIR/celtic-autoscaler-provider.sha256" 0644 \
        < <(sha256sum "$AUTOSCALER_PROGRAM")
    program_changed=$CELTIC_CHANGED
    if [[ $unit_changed -eq 1 ]]; then
        systemctl daemon-reload || celtic_die "systemd did not load celtic-autoscaler-provider.service"
    fi
    if ! systemctl is-enabled --quiet celtic-autoscaler-provider; then
        systemctl enable celtic-autoscaler-provider >/dev/null 2>&1 ||
            celtic_die "cannot enable celtic-autoscaler-provider"
    fi
    local active=1
    systemctl is-active --quiet celtic-autoscaler-provider || active=0
    if [[ $unit_changed -eq 1 || $program_changed -eq 1 || $active -eq 0 ]]; then
        systemctl restart celtic-autoscaler-provider ||
            celtic_die "celtic-autoscaler-provider does not start: see" \
                "journalctl -u celtic-autoscaler-provider"
    fi
    if [[ $before -eq 1 || $unit_changed -eq 1 || $program_changed -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}

# autoscaler_setup: every master, when the labels ask for it.
autoscaler_setup() {
    autoscaler_enabled || return 0
    celtic_step autoscaler-tls autoscaler_tls
    celtic_step autoscaler-config autoscaler_cloud_config
    celtic_step autoscaler-provider autoscaler_provider
}
