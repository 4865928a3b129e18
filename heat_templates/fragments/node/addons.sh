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

# addons.sh: what the first master applies to the new cluster: the CNI (flannel or
# calico, the pinned upstream release manifest fetched at boot) and celtic's own
# manifests. Every image honours container_infra_prefix; every apply is server-side,
# retried, and skipped when the same content was applied before.

KUBE_MANIFEST_DIR=$CELTIC_ETC/manifests

# kube_manifest_filter MODE FILE: FILE to stdout; MODE flannel or calico sets the pod CIDR
# in that CNI's manifest, any MODE points image: lines at the registry prefix (the
# prefix replaces registry and path, name:tag stays: a flat mirror, as kubeadm expects).
kube_manifest_filter() {
    celtic_python - "$1" "$2" "${CELTIC_POD_NETWORK_CIDR:-}" "${CELTIC_CONTAINER_INFRA_PREFIX:-}" <<'PY'
import re, sys
mode, path, cidr, prefix = sys.argv[1:5]
with open(path) as f:
    text = f.read()
if mode == 'flannel':
    old = '"Network": "10.244.0.0/16"'
    if old not in text:
        sys.exit('kube-flannel.yml has no %s to replace' % old)
    text = text.replace(old, '"Network": "%s"' % cidr)
elif mode == 'calico':
    pattern = r'^([ \t]*)# (- name: CALICO_IPV4POOL_CIDR)\n[ \t]*#   value: "[^"]*"'
    text, n = re.subn(pattern, lambda m: '%s%s\n%s  value: "%s"' % (
        m[1], m[2], m[1], cidr), text, flags=re.M)
    if n != 1:
        sys.exit('calico.yaml has no commented CALICO_IPV4POOL_CIDR to set')
if prefix:
    prefix = prefix.rstrip('/') + '/'
    text = re.sub(r'^(\s*(?:-\s+)?image:\s*)(["\']?)([^"\'\s]+)\2',
                  lambda m: m[1] + m[2] + prefix + m[3].rsplit('/', 1)[-1] + m[2],
                  text, flags=re.M)
sys.stdout.write(text)
PY
}

# kube_apply_once FILE: server-side apply with admin.conf, unless this very content was
# applied before (its sha256 is kept under $CELTIC_STATE_DIR/applied).
kube_apply_once() {
    local file=$1 stamp sum
    stamp=$CELTIC_STATE_DIR/applied/$(basename "$file").sha256
    sum=$(sha256sum "$file" | cut -d ' ' -f 1)
    if [[ -f "$stamp" && "$(<"$stamp")" == "$sum" ]]; then
        celtic_info "$(basename "$file") already applied"
        return 0
    fi
    celtic_retry -n 8 -d 5 -m 60 -- kubectl --kubeconfig "$KUBE_ETC/admin.conf" apply \
        --server-side --force-conflicts --field-manager=celtic -f "$file" ||
        celtic_die "kubectl apply of $(basename "$file") failed (see the log above)"
    mkdir -p "$(dirname "$stamp")"
    printf '%s\n' "$sum" >"$stamp"
}

# kube_apply_manifest TEMPLATE: fill {{CELTIC_<PARAM>}} placeholders (celtic_render), point
# images at the registry prefix, apply.
kube_apply_manifest() {
    local name text
    name=$(basename "$1")
    celtic_render "$1" "$KUBE_MANIFEST_DIR/rendered/$name" 0600
    text=$(kube_manifest_filter plain "$KUBE_MANIFEST_DIR/rendered/$name") ||
        celtic_die "cannot rewrite the images of $name"
    celtic_write_file "$KUBE_MANIFEST_DIR/$name" 0600 <<<"$text"
    kube_apply_once "$KUBE_MANIFEST_DIR/$name"
}

# kube_cni_url DRIVER TAG: the upstream release manifest of that CNI version.
kube_cni_url() {
    case "$1" in
        flannel) echo "https://github.com/flannel-io/flannel/releases/download/$2/kube-flannel.yml" ;;
        calico) echo "https://raw.githubusercontent.com/projectcalico/calico/$2/manifests/calico.yaml" ;;
        *) return 1 ;;
    esac
}

# kube_cni: fetch the pinned manifest once, set the pod CIDR and the image prefix, apply.
kube_cni() {
    local driver=${CELTIC_NETWORK_DRIVER:-flannel} tag url upstream text
    case "$driver" in
        flannel) tag=${CELTIC_FLANNEL_TAG:-} ;;
        calico) tag=${CELTIC_CALICO_TAG:-} ;;
        *) celtic_die "network_driver must be flannel or calico, got '$driver'" ;;
    esac
    [[ -n "$tag" ]] || celtic_die "no ${driver}_tag in the node parameters"
    url=$(kube_cni_url "$driver" "$tag")
    upstream=$KUBE_MANIFEST_DIR/upstream/$driver-$tag.yaml
    if [[ ! -s "$upstream" ]]; then
        mkdir -p "$(dirname "$upstream")"
        celtic_retry -n 6 -d 5 -- kube_fetch "$url" "$upstream.part" ||
            celtic_die "cannot download $url (proxy? registry mirror?)"
        mv -f "$upstream.part" "$upstream"
    fi
    text=$(kube_manifest_filter "$driver" "$upstream") ||
        celtic_die "cannot adapt $driver $tag's manifest ($url)"
    celtic_write_file "$KUBE_MANIFEST_DIR/cni-$driver.yaml" 0644 <<<"$text"
    kube_apply_once "$KUBE_MANIFEST_DIR/cni-$driver.yaml"
}

# kube_serving_cert DIR CN SAN...: DIR/tls.key (0600) and DIR/tls.crt, a TLS server
# certificate (serverAuth only: the apiserver never takes it as a client certificate)
# for the SANs (IP:a.b.c.d, DNS:name) signed by the cluster CA in /etc/kubernetes/pki.
# Kept as it is while it verifies against that CA, names the same SANs and is valid for
# 30 more days; otherwise issued again (a rotated CA, a new floating IP).
kube_serving_cert() {
    local dir=$1 cn=$2 pki=$KUBE_ETC/pki sans serial
    shift 2
    sans=$(IFS=,; printf '%s' "$*")
    if kube_serving_cert_current "$dir" "$sans"; then
        return 0
    fi
    mkdir -p "$dir"
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
        "$sans" >"$dir/tls.ext"
    serial=$(openssl rand -hex 16) || celtic_die "openssl cannot make a serial number"
    if ! (umask 077 && openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$cn" \
        -keyout "$dir/tls.key.new" -out "$dir/tls.csr" 2>/dev/null) ||
        ! openssl x509 -req -in "$dir/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
            -set_serial "0x${serial:0:32}" -days 3650 -sha256 -extfile "$dir/tls.ext" \
            -out "$dir/tls.crt.new" 2>/dev/null ||
        [[ ! -s "$dir/tls.key.new" || ! -s "$dir/tls.crt.new" ]]; then
        celtic_die "cannot issue the $cn certificate with the cluster CA"
    fi
    chmod 0600 "$dir/tls.key.new"
    chmod 0644 "$dir/tls.crt.new"
    mv -f "$dir/tls.key.new" "$dir/tls.key"
    mv -f "$dir/tls.crt.new" "$dir/tls.crt"
    rm -f "$dir/tls.csr" "$dir/tls.ext"
    printf '%s\n' "$sans" >"$dir/tls.sans"
    celtic_info "issued the $cn certificate for $sans"
}

# kube_serving_cert_current DIR SANS: DIR's certificate verifies against the cluster CA,
# names SANS and is valid for 30 more days.
kube_serving_cert_current() {
    local dir=$1 sans=$2
    [[ -s "$dir/tls.crt" && -s "$dir/tls.key" && -f "$dir/tls.sans" ]] || return 1
    [[ "$(<"$dir/tls.sans")" == "$sans" ]] || return 1
    openssl verify -CAfile "$KUBE_ETC/pki/ca.crt" "$dir/tls.crt" >/dev/null 2>&1 &&
        openssl x509 -checkend 2592000 -noout -in "$dir/tls.crt" >/dev/null 2>&1
}
