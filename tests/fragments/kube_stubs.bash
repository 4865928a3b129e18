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

# A fake Kubernetes node for the master/minion/kubernetes/common bats tests: every path
# under $ROOT (CELTIC_ROOT), a lib dir whose HA and GlusterFS modules are recording stubs,
# and stateful recording stubs for apt, dpkg, kubeadm, kubectl, curl, systemctl, ...
#
#   load helpers
#   load kube_stubs
#   setup() { kube_test_setup; kube_params master; }

FIXTURES="$BATS_TEST_DIRNAME/fixtures/kube"
TOKEN=abcdef.0123456789abcdef

kube_test_setup() {
    celtic_test_setup
    export CELTIC_ROOT=$ROOT FIXTURES BATS_TEST_TMPDIR
    export KUBE_API_WAIT=30 KUBE_READY_WAIT=30
    export FAKE_API_VERSION=${FAKE_API_VERSION:-v1.36.2}
    mkdir -p "$ROOT/dpkg" "$ROOT/etc" "$CELTIC_ETC/pki" "$CELTIC_ETC/secrets"
    printf 'UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n' >"$ROOT/etc/fstab"
    kube_fake_libdir
    kube_secrets
    kube_stubs
}

# The real fragments, except the modules other engineers own (HA, API VIP, GlusterFS
# client) and the addon manifests, which are recording stubs and fixtures here.
kube_fake_libdir() {
    export CELTIC_LIB_DIR=$BATS_TEST_TMPDIR/lib
    mkdir -p "$CELTIC_LIB_DIR/node" "$CELTIC_LIB_DIR/manifests"
    ln -s "$FRAGMENTS/lib" "$CELTIC_LIB_DIR/lib"
    ln -s "$FRAGMENTS/templates" "$CELTIC_LIB_DIR/templates"
    local f
    for f in common kubernetes addons members keystone_auth dashboard cloud heal autoscaler; do
        ln -s "$FRAGMENTS/node/$f.sh" "$CELTIC_LIB_DIR/node/$f.sh"
    done
    ln -s "$FRAGMENTS/node/heal_plan.py" "$CELTIC_LIB_DIR/node/heal_plan.py"
    ln -s "$FRAGMENTS/autoscaler" "$CELTIC_LIB_DIR/autoscaler"
    for f in ha_cluster_setup:ha api_vip_setup:api_vip gluster_client_mount:gluster_client; do
        printf '%s() { echo "%s $*" >>"$CALLS"; }\n' "${f%%:*}" "${f%%:*}" \
            >"$CELTIC_LIB_DIR/node/${f#*:}.sh"
    done
    cp "$FIXTURES"/manifests/*.yaml "$CELTIC_LIB_DIR/manifests/"
    # the cloud add-ons: the real manifests (their placeholders are node settings)
    for f in openstack-cloud-controller-manager cinder-csi; do
        ln -s "$FRAGMENTS/manifests/$f.yaml" "$CELTIC_LIB_DIR/manifests/$f.yaml"
    done
}

kube_secrets() {
    local f
    for f in ca etcd-ca front-proxy-ca; do
        printf -- '-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n' "$f" \
            >"$CELTIC_ETC/pki/$f.crt"
        printf -- '-----BEGIN PRIVATE KEY-----\n%s-key\n-----END PRIVATE KEY-----\n' "$f" \
            >"$CELTIC_ETC/secrets/$f.key"
    done
    printf -- '-----BEGIN PRIVATE KEY-----\nsa-key\n-----END PRIVATE KEY-----\n' \
        >"$CELTIC_ETC/secrets/sa.key"
    printf '%s\n' "$TOKEN" >"$CELTIC_ETC/secrets/bootstrap-token"
    chmod 600 "$CELTIC_ETC/secrets/"*
}

# kube_params ROLE [JSON-OVERRIDES]: a params.json as celtic.yaml builds it.
kube_params() {
    write_vendordata "$1"
    python3 - "$CELTIC_ETC/params.json" "$1" "${2:-{\}}" <<'PY'
import json, sys
path, role, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
params = {
    'kube_tag': 'v1.36', 'kube_minor': 'v1.36', 'network_driver': 'flannel',
    'flannel_tag': 'v0.28.9', 'calico_tag': 'v3.32.4',
    'pod_network_cidr': '10.100.0.0/16', 'service_network_cidr': '10.254.0.0/16',
    'dns_service_ip': '10.254.0.10', 'cluster_domain': 'cluster.local',
    'container_infra_prefix': '', 'http_proxy': '', 'https_proxy': '', 'no_proxy': '',
    'ingress_controller': 'traefik', 'ingress_tag': 'v3.5.0',
    'local_path_provisioner_tag': 'v0.0.32', 'storage_volume_name': 'celtic',
    'metrics_server_tag': 'v0.8.0', 'auto_scaling_enabled': False,
    'cluster_autoscaler_tag': 'v1.36.1',
    'auto_healing_enabled': False, 'auto_healing_unhealthy_seconds': 300,
    'auto_healing_max_unhealthy_percent': 40, 'cloud_provider_enabled': False,
    'cinder_csi_enabled': False, 'cloud_provider_tag': 'v1.36.0',
    'cinder_csi_plugin_tag': 'v1.36.0', 'csi_attacher_tag': 'v4.10.0',
    'csi_provisioner_tag': 'v5.3.0', 'csi_resizer_tag': 'v1.14.0',
    'csi_livenessprobe_tag': 'v2.17.0', 'csi_node_driver_registrar_tag': 'v2.15.0',
    'storage_mount_path': '/var/lib/celtic-gluster', 'api_port': 6443,
    'lb_reserved_ports': [22, 2224],
    'discovery_hash': 'sha256:' + 'ab' * 32,
    'cluster_name': 'demo', 'cluster_uuid': '5d12f6fd-0000-4000-8000-000000000001',
    'api_vip': '10.0.0.100', 'api_vip_fip': '172.24.4.50',
    'master_addresses': ['10.0.0.11', '10.0.0.12', '10.0.0.13'],
    'proxy_vip': '10.0.0.200', 'proxy_vip_fip': '172.24.4.51',
    'proxy_addresses': ['10.0.0.21', '10.0.0.22'],
    'storage_addresses': ['10.0.0.31', '10.0.0.32', '10.0.0.33'],
    'fixed_network_cidr': '10.0.0.0/24', 'role': role,
}
if role == 'minion':
    params.update({'pool': 'default-worker', 'node_labels': {}, 'node_taints': []})
params.update(overrides)
with open(path, 'w') as f:
    json.dump(params, f)
PY
}

kube_stubs() {
    printf '#!/bin/sh\nexit 0\n' >"$STUBS/logger"
    chmod +x "$STUBS/logger"
    stub modprobe
    stub sysctl
    stub swapoff
    stub apt-mark
    stub nft
    stub_script systemctl '[[ "$1" == is-active ]] && exit "${FAKE_INACTIVE:-0}"; exit 0'
    stub_script dpkg 'echo amd64'
    stub_script containerd 'echo "containerd github.com/containerd/containerd ${FAKE_CONTAINERD:-1.6.20~ds1} x"'
    stub_script openssl 'printf -- "-----BEGIN PUBLIC KEY-----\nsa-pub\n-----END PUBLIC KEY-----\n"'
    stub_script gpg 'while [[ $# -gt 1 ]]; do [[ $1 == -o ]] && out=$2; shift; done; cp "$1" "$out"'
    stub_script dpkg-query '
pkg=${!#}
[[ -f "$ROOT/dpkg/$pkg" ]] || exit 1
if [[ "$*" == *Version* ]]; then
    printf "install ok installed %s" "$(cat "$ROOT/dpkg/$pkg")"
else
    printf "install ok installed"
fi'
    stub_script apt-get '
[[ "$*" == *" install "* || "$1" == install ]] || exit "${FAKE_APT_UPDATE_RC:-0}"
skip=0
for arg in "$@"; do
    if [[ $skip == 1 ]]; then skip=0; continue; fi
    case "$arg" in
        -o) skip=1 ;;
        -*|install) ;;
        *=*) printf "%s" "${arg#*=}" >"$ROOT/dpkg/${arg%%=*}" ;;
        *) printf "1.0" >"$ROOT/dpkg/$arg" ;;
    esac
done'
    # apt-cache madison PACKAGE: what the sources know. FAKE_NO_TOOLS=1: the minor's
    # repository lacks cri-tools and kubernetes-cni until the previous minor's is added.
    stub_script apt-cache '
pkg=${!#}
case "$pkg" in
    kubeadm) versions="1.36.2-1.1 1.36.10-1.1 1.36.9-1.1 1.35.4-1.1" ;;
    containerd.io) versions="1.7.27-1 2.1.4-1 2.0.6-1" ;;
    cri-tools|kubernetes-cni)
        versions="1.36.0-1.1"
        if [[ "${FAKE_NO_TOOLS:-0}" == 1 ]]; then
            versions=""
            [[ -e "$ROOT/etc/apt/sources.list.d/celtic-kubernetes-tools.list" ]] && versions="1.35.0-1.1"
        fi ;;
    *) versions="" ;;
esac
for v in $versions; do
    echo "   $pkg | $v | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages"
done'
    stub_script curl '
args=("$@") out="" url=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -o) out=$2; shift 2 ;;
        --max-time|--cacert|-H|-D|--data-binary) shift 2 ;;
        -*) shift ;;
        *) url=$1; shift ;;
    esac
done
case "$url" in
    */version) [[ -n "$FAKE_API_VERSION" ]] || exit 7
               printf "{\"major\": \"1\", \"gitVersion\": \"%s\"}\n" "$FAKE_API_VERSION" ;;
    *kube-flannel.yml) cp "$FIXTURES/kube-flannel.yml" "$out" ;;
    *calico.yaml) cp "$FIXTURES/calico.yaml" "$out" ;;
    *Release.key|*/gpg) echo "-----BEGIN PGP PUBLIC KEY BLOCK-----" >"$out" ;;
    *) exec curl-heat "${args[@]}" ;;
esac'
    # kubeadm init/join log, per attempt, which CA key they found in /etc/kubernetes/pki
    # ($BATS_TEST_TMPDIR/pki-seen), and the first FAKE_*_FAILS attempts fail after that.
    stub_script kubeadm '
kube_stub_pki_seen() {
    local key="$ROOT/etc/kubernetes/pki/ca.key"
    if [[ -s "$key" ]] && cmp -s "$key" "$CELTIC_ETC/secrets/ca.key" &&
        [[ -s "$ROOT/etc/kubernetes/pki/sa.key" && -s "$ROOT/etc/kubernetes/pki/etcd/ca.key" ]]; then
        echo "$1 magnum-ca" >>"$BATS_TEST_TMPDIR/pki-seen"
    else
        echo "$1 no-magnum-ca" >>"$BATS_TEST_TMPDIR/pki-seen"
    fi
}
kube_stub_fail_first() {
    local n
    n=$(grep -c "^$1 " "$BATS_TEST_TMPDIR/pki-seen")
    [[ $n -gt $2 ]] || exit 1
}
case "$1" in
    version) v=$(cat "$ROOT/dpkg/kubeadm" 2>/dev/null || echo 1.36.10); echo "v${v%%-*}" ;;
    config) repo=registry.k8s.io ver=v0
            while [[ $# -gt 0 ]]; do
                case "$1" in
                    --image-repository) repo=$2; shift ;;
                    --kubernetes-version) ver=$2 ;;
                esac
                shift
            done
            for i in kube-apiserver:$ver kube-proxy:$ver coredns:v1.12.1 pause:3.10.1 etcd:3.6.5-0; do
                echo "$repo/$i"
            done ;;
    init) cp "$3" "$BATS_TEST_TMPDIR/kubeadm-init-seen.yaml"
          kube_stub_pki_seen init
          echo "You can now join any number of machines by running:"
          echo "kubeadm join 10.0.0.100:6443 --token abcdef.0123456789abcdef \\"
          [[ "${FAKE_INIT_RC:-0}" == 0 ]] || exit "$FAKE_INIT_RC"
          kube_stub_fail_first init "${FAKE_INIT_FAILS:-0}"
          mkdir -p "$ROOT/etc/kubernetes"
          touch "$ROOT/etc/kubernetes/admin.conf" "$ROOT/etc/kubernetes/kubelet.conf" ;;
    join) cp "$3" "$BATS_TEST_TMPDIR/kubeadm-join-seen.yaml"
          kube_stub_pki_seen join
          [[ "${FAKE_JOIN_RC:-0}" == 0 ]] || exit "$FAKE_JOIN_RC"
          kube_stub_fail_first join "${FAKE_JOIN_FAILS:-0}"
          mkdir -p "$ROOT/etc/kubernetes"
          touch "$ROOT/etc/kubernetes/kubelet.conf"
          if grep -q "^controlPlane:" "$3"; then touch "$ROOT/etc/kubernetes/admin.conf"; fi ;;
    # what kubeadm reset --force does to the files: pki emptied, kubeconfigs gone
    reset) rm -rf "$ROOT/etc/kubernetes/pki" "$ROOT/etc/kubernetes/"*.conf ;;
esac'
    stub_script kubectl '
case "$*" in
    *" get node "*) echo "${FAKE_READY:-True}" ;;
    *" apply "*) file=${!#}; mkdir -p "$BATS_TEST_TMPDIR/applied"; cp "$file" "$BATS_TEST_TMPDIR/applied/" ;;
esac'
    stub curl-heat 0 202
}

# kube_with_heat: the real signalling code against the helpers' fake Keystone and Heat,
# behind the Kubernetes curl stub.
kube_with_heat() {
    cp "$STUBS/curl" "$BATS_TEST_TMPDIR/curl-kube"
    stub_heat_signal
    mv "$STUBS/curl" "$STUBS/curl-heat"
    mv "$BATS_TEST_TMPDIR/curl-kube" "$STUBS/curl"
}

# log_since N: the log lines after line N.
log_since() {
    tail -n +"$(($1 + 1))" "$CELTIC_LOG_FILE"
}

calls_since() {
    tail -n +"$(($1 + 1))" "$CALLS"
}
