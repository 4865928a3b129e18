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

# node/kubernetes.sh and node/addons.sh: the host, containerd, the packages, the API
# through the VIP, kubeadm join and the manifests the first master applies.

load helpers
load kube_stubs

setup() {
    kube_test_setup
    kube_params minion
    # shellcheck source=../../heat_templates/fragments/lib/celtic.sh
    source "$CELTIC_LIB_DIR/lib/celtic.sh"
    # shellcheck source=../../heat_templates/fragments/node/common.sh
    source "$CELTIC_LIB_DIR/node/common.sh"
    # shellcheck source=../../heat_templates/fragments/node/kubernetes.sh
    source "$CELTIC_LIB_DIR/node/kubernetes.sh"
    # shellcheck source=../../heat_templates/fragments/node/addons.sh
    source "$CELTIC_LIB_DIR/node/addons.sh"
    celtic_load_params
    kube_defaults
}

@test "kernel: modules and sysctls persist, sysctl runs only when they change" {
    kube_kernel
    assert_called 'modprobe overlay'
    assert_called 'modprobe br_netfilter'
    assert_called 'sysctl --system'
    run cat "$ROOT/etc/sysctl.d/90-celtic-kubernetes.conf"
    assert_line 'net.ipv4.ip_forward = 1'
    assert_line 'net.bridge.bridge-nf-call-iptables = 1'
    run cat "$ROOT/etc/modules-load.d/celtic-kubernetes.conf"
    assert_output $'overlay\nbr_netfilter'
    : >"$CALLS"
    kube_kernel
    refute_called 'sysctl.*'
}

@test "swap goes off now and stays off after a reboot" {
    kube_swap_off
    assert_called 'swapoff -a'
    run cat "$ROOT/etc/fstab"
    assert_line 'UUID=1 / ext4 defaults 0 1'
    assert_line '# celtic: kubelet needs swap off: /swapfile none swap sw 0 0'
    before=$(stat -c %Y%s "$ROOT/etc/fstab")
    kube_swap_off
    [ "$(stat -c %Y%s "$ROOT/etc/fstab")" = "$before" ]
}

@test "pods cannot reach the metadata service, persistently (own nft table, boot unit)" {
    kube_metadata_block
    run cat "$CELTIC_ETC/metadata-block.nft"
    assert_line --partial 'type filter hook forward priority -200'
    assert_line --partial 'ip daddr 169.254.169.254 counter drop'
    assert_line --partial 'type filter hook output priority -200'
    assert_line --partial 'ip daddr 169.254.169.254 meta skuid != 0 counter drop'
    run cat "$ROOT/etc/systemd/system/celtic-metadata-block.service"
    assert_line 'ExecStart=/usr/sbin/nft -f /etc/celtic/metadata-block.nft'
    assert_line 'WantedBy=multi-user.target'
    assert_line --partial 'Before=containerd.service kubelet.service'
    assert_called 'systemctl enable celtic-metadata-block.service'
    assert_called 'systemctl restart celtic-metadata-block.service'
    : >"$CALLS"
    kube_metadata_block
    assert_called 'nft list table inet celtic_metadata'
    refute_called 'systemctl.*'
}

@test "the metadata table is reloaded when it went missing" {
    kube_metadata_block
    stub nft 1
    : >"$CALLS"
    kube_metadata_block
    assert_called 'systemctl start celtic-metadata-block.service'
}

@test "containerd 2 comes from Docker's repository on a distribution with containerd 1.x" {
    kube_containerd_package
    assert_called 'curl -fsSL --max-time 120 -o .*/etc/apt/keyrings/celtic-docker.gpg.asc https://download.docker.com/linux/debian/gpg'
    run cat "$ROOT/etc/apt/sources.list.d/celtic-docker.list"
    assert_output 'deb [arch=amd64 signed-by=/etc/apt/keyrings/celtic-docker.gpg] https://download.docker.com/linux/debian bookworm stable'
    # the newest 2.x, not the newest (1.7 would be older anyway, but 3.x must not come in)
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends --allow-change-held-packages containerd.io=2.1.4-1'
    assert_called 'apt-mark -o DPkg::Lock::Timeout=600 hold containerd.io'
    : >"$CALLS"
    kube_containerd_package
    refute_called 'curl.*'
    refute_called 'apt-get.*'
}

@test "containerd.io is pinned to its series: a repository without a 2.x fails and says so" {
    stub_script apt-cache 'echo "   containerd.io | 1.7.27-1 | https://download.docker.com/linux/debian bookworm/stable amd64 Packages"'
    run kube_containerd_package
    assert_failure
    assert_output --partial 'download.docker.com has no containerd.io 2.x for debian bookworm'
    refute_called 'apt-get .* install .*'
}

@test "Ubuntu 24.04 gets Docker's noble repository; an unsupported distribution is refused" {
    os_release ubuntu 24.04 noble
    kube_containerd_package
    run cat "$ROOT/etc/apt/sources.list.d/celtic-docker.list"
    assert_output 'deb [arch=amd64 signed-by=/etc/apt/keyrings/celtic-docker.gpg] https://download.docker.com/linux/ubuntu noble stable'
    os_release debian 11 bullseye
    run kube_containerd_package
    assert_failure
    assert_output --partial "unsupported distribution 'debian-11'"
}

@test "a minor repository without cri-tools and kubernetes-cni gets them from the previous minor's" {
    export FAKE_NO_TOOLS=1
    kube_packages v1.36
    run cat "$ROOT/etc/apt/sources.list.d/celtic-kubernetes-tools.list"
    assert_output 'deb [signed-by=/etc/apt/keyrings/celtic-kubernetes-tools.gpg] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /'
    assert_called 'curl -fsSL --max-time 120 -o .* https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key'
    [ "$(grep -c 'update -q' "$CALLS")" = 2 ]
    # the versions stay those of the wanted minor
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubelet=1.36.10-1.1 kubeadm=1.36.10-1.1 kubectl=1.36.10-1.1'
}

@test "a minor repository that has cri-tools and kubernetes-cni adds no other source" {
    kube_packages v1.36
    assert [ ! -e "$ROOT/etc/apt/sources.list.d/celtic-kubernetes-tools.list" ]
    refute_called 'curl .*v1.35.*'
}

@test "cri-tools missing from both repositories fails and names both" {
    export FAKE_NO_TOOLS=1
    stub_script apt-cache 'pkg=${!#}; [[ $pkg == kubeadm ]] && echo "   kubeadm | 1.36.2-1.1 | x Packages"; exit 0'
    run kube_packages v1.36
    assert_failure
    assert_output --partial 'cri-tools is neither in the v1.36 nor in the v1.35 repository of pkgs.k8s.io'
}

@test "an image that ships containerd 2 keeps it" {
    export FAKE_CONTAINERD=v2.2.1
    kube_containerd_package
    refute_called 'apt-get.*'
    assert [ ! -e "$ROOT/etc/apt/sources.list.d/celtic-docker.list" ]
}

@test "kube_tag v1.36 installs the newest patch of pkgs.k8s.io v1.36, held" {
    kube_packages v1.36
    run cat "$ROOT/etc/apt/sources.list.d/celtic-kubernetes.list"
    assert_output 'deb [signed-by=/etc/apt/keyrings/celtic-kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /'
    assert_called 'curl -fsSL --max-time 120 -o .* https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key'
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 update -q'
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubelet=1.36.10-1.1 kubeadm=1.36.10-1.1 kubectl=1.36.10-1.1'
    assert_called 'apt-mark -o DPkg::Lock::Timeout=600 hold kubelet kubeadm kubectl'
}

@test "an exact kube_tag installs exactly that patch; a missing one names the repository" {
    kube_packages v1.36.2
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubelet=1.36.2-1.1 kubeadm=1.36.2-1.1 kubectl=1.36.2-1.1'
    run kube_packages v1.36.7
    assert_failure
    assert_output --partial 'Kubernetes v1.36.7 is not in https://pkgs.k8s.io/core:/stable:/v1.36/deb/'
    run kube_packages 1.36
    assert_failure
    assert_output --partial "must look like v1.36 or v1.36.3, got '1.36'"
}

@test "a node already in the cluster keeps its packages" {
    kube_packages v1.36
    mkdir -p "$ROOT/etc/kubernetes"
    touch "$ROOT/etc/kubernetes/kubelet.conf"
    : >"$CALLS"
    kube_packages v1.37
    refute_called 'apt-get.*'
    refute_called 'curl.*'

}

@test "the kubelet version follows the apiserver's, never the newest patch" {
    export FAKE_API_VERSION=v1.36.2
    kube_packages_from_api
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install .* kubelet=1.36.2-1.1 kubeadm=1.36.2-1.1 kubectl=1.36.2-1.1'
    assert_called 'curl -fsS --max-time 5 --cacert .*/etc/celtic/pki/ca.crt https://10.0.0.100:6443/version'
}

@test "waiting for the API is bounded and says what it waited for" {
    export FAKE_API_VERSION=""
    run kube_wait_api
    assert_failure
    assert_output --partial 'the API at 10.0.0.100:6443 did not answer within 30s'
}

@test "containerd: systemd cgroups, kubeadm's pause image, restarted only on change" {
    kube_packages v1.36
    kube_containerd
    run cat "$ROOT/etc/containerd/config.toml"
    assert_line 'version = 3'
    assert_line '  SystemdCgroup = true'
    assert_line "  sandbox = 'registry.k8s.io/pause:3.10.1'"
    assert_called 'kubeadm config images list --kubernetes-version v1.36.10 --image-repository registry.k8s.io'
    assert_called 'systemctl restart containerd'
    assert [ ! -e "$ROOT/etc/systemd/system/containerd.service.d/http-proxy.conf" ]
    run cat "$ROOT/etc/crictl.yaml"
    assert_output 'runtime-endpoint: unix:///run/containerd/containerd.sock'
    : >"$CALLS"
    kube_containerd
    refute_called 'systemctl (restart|daemon-reload).*'
    assert_called 'systemctl is-active --quiet containerd'
}

@test "the registry prefix reaches the pause image and kubeadm's image repository" {
    CELTIC_CONTAINER_INFRA_PREFIX=registry.example.com/mirror/
    [ "$(kube_image_repository)" = registry.example.com/mirror ]
    kube_containerd
    run cat "$ROOT/etc/containerd/config.toml"
    assert_line "  sandbox = 'registry.example.com/mirror/pause:3.10.1'"
}

@test "proxy drop-ins for containerd and kubelet only when the template has a proxy" {
    kube_kubelet
    assert [ ! -e "$ROOT/etc/systemd/system/kubelet.service.d/http-proxy.conf" ]
    refute_called 'systemctl daemon-reload'
    CELTIC_HTTP_PROXY=http://user:p%40ss@proxy.example:3128
    CELTIC_HTTPS_PROXY=http://proxy.example:3128 CELTIC_NO_PROXY=10.0.0.100,.svc
    kube_kubelet
    kube_containerd
    for unit in kubelet containerd; do
        run cat "$ROOT/etc/systemd/system/$unit.service.d/http-proxy.conf"
        assert_line 'Environment="HTTP_PROXY=http://user:p%%40ss@proxy.example:3128"'
        assert_line 'Environment="HTTPS_PROXY=http://proxy.example:3128"'
        assert_line 'Environment="NO_PROXY=10.0.0.100,.svc"'
    done
    assert_called 'systemctl daemon-reload'
    CELTIC_HTTP_PROXY="" CELTIC_HTTPS_PROXY=""
    : >"$CALLS"
    kube_kubelet
    assert [ ! -e "$ROOT/etc/systemd/system/kubelet.service.d/http-proxy.conf" ]
    assert_called 'systemctl daemon-reload'
}

@test "a worker's join configuration carries the pool's labels and taints, 0600" {
    kube_params minion '{"node_labels": {"pool": "gpu", "node.kubernetes.io/tier": "a",
        "node-role.kubernetes.io/worker": ""}, "node_taints": [{"key": "gpu",
        "value": "yes", "effect": "NoSchedule"}]}'
    celtic_load_params
    run kube_render_join worker
    assert_success
    assert_output --partial 'node label node-role.kubernetes.io/worker skipped'
    kube_render_join worker
    run cat "$CELTIC_ETC/kubeadm/join.yaml"
    assert_line '  kubeletExtraArgs: [{"name": "node-ip", "value": "10.0.0.11"}, {"name": "provider-id", "value": "openstack:///11111111-2222-3333-4444-555555555555"}, {"name": "node-labels", "value": "node.kubernetes.io/tier=a,pool=gpu"}]'
    assert_line '  taints: [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]'
    assert_line "    token: \"$TOKEN\""
    refute_line --partial controlPlane
    [ "$(stat -c %a "$CELTIC_ETC/kubeadm/join.yaml")" = 600 ]
}

@test "a taint with a bad effect fails the step with the field named" {
    kube_params minion '{"node_taints": [{"key": "a", "effect": "Sometimes"}]}'
    celtic_load_params
    run kube_render_join worker
    assert_failure
    assert_output --partial 'node taint a: effect must be NoSchedule, PreferNoSchedule or NoExecute'
}

@test "kubeadm join runs once, reads the token from its file, and is retried after a reset" {
    kube_render_join worker
    export FAKE_JOIN_RC=1
    run kube_join
    assert_failure
    [ "$(grep -c '^kubeadm join' "$CALLS")" = 3 ]
    assert_called 'kubeadm reset --force'
    export FAKE_JOIN_RC=0
    : >"$CALLS"
    kube_join
    assert_called "kubeadm join --config $CELTIC_ETC/kubeadm/join.yaml"
    : >"$CALLS"
    kube_join
    refute_called 'kubeadm.*'
    run grep -rF "$TOKEN" "$CALLS" "$CELTIC_LOG_FILE"
    assert_failure
}

@test "kubeadm's output reaches the console without the token" {
    run kube_kubeadm init --config "$BATS_TEST_TMPDIR/none"
    assert_output --partial 'kubeadm join 10.0.0.100:6443 --token <token>'
    refute_output --partial "$TOKEN"
}

@test "flannel: pinned release fetched once, pod CIDR set, images prefixed, applied once" {
    CELTIC_CONTAINER_INFRA_PREFIX=registry.example.com/mirror/
    kube_cni
    assert_called 'curl -fsSL --max-time 120 -o .* https://github.com/flannel-io/flannel/releases/download/v0.28.9/kube-flannel.yml'
    run cat "$BATS_TEST_TMPDIR/applied/cni-flannel.yaml"
    assert_line '      "Network": "10.100.0.0/16",'
    assert_line '          image: registry.example.com/mirror/flannel-cni-plugin:v1.9.1-flannel1'
    assert_line '          image: registry.example.com/mirror/flannel:v0.28.9'
    assert_called "kubectl --kubeconfig $ROOT/etc/kubernetes/admin.conf apply --server-side --force-conflicts --field-manager=celtic -f $CELTIC_ETC/manifests/cni-flannel.yaml"
    : >"$CALLS"
    kube_cni
    [ ! -s "$CALLS" ]
}

@test "calico: the pool CIDR is uncommented and set, quoted images prefixed" {
    CELTIC_NETWORK_DRIVER=calico CELTIC_CONTAINER_INFRA_PREFIX=mirror.example
    kube_cni
    assert_called 'curl .* https://raw.githubusercontent.com/projectcalico/calico/v3.32.4/manifests/calico.yaml'
    run cat "$CELTIC_ETC/manifests/cni-calico.yaml"
    assert_line '            - name: CALICO_IPV4POOL_CIDR'
    assert_line '              value: "10.100.0.0/16"'
    assert_line '          image: "mirror.example/node:v3.32.4"'
    assert_line '          image: mirror.example/cni:v3.32.4'
}

@test "an unknown network driver or a changed upstream manifest fails clearly" {
    CELTIC_NETWORK_DRIVER=weave
    run kube_cni
    assert_failure
    assert_output --partial "network_driver must be flannel or calico, got 'weave'"
    CELTIC_NETWORK_DRIVER=flannel
    mkdir -p "$CELTIC_ETC/manifests/upstream"
    printf 'kind: ConfigMap\n' >"$CELTIC_ETC/manifests/upstream/flannel-v0.28.9.yaml"
    run kube_cni
    assert_failure
    assert_output --partial 'cannot adapt flannel v0.28.9'
}

@test "kube_apply_manifest fills CELTIC placeholders, prefixes images, applies once" {
    CELTIC_CONTAINER_INFRA_PREFIX=registry.example.com/mirror
    kube_apply_manifest "$CELTIC_LIB_DIR/manifests/storage.yaml"
    run cat "$BATS_TEST_TMPDIR/applied/storage.yaml"
    assert_line "  config.json: '{\"sharedFileSystemPath\": \"/var/lib/celtic-gluster\"}'"
    assert_line '          image: registry.example.com/mirror/local-path-provisioner:v0.0.32'
    assert_line '          image: registry.example.com/mirror/busybox:1.37'
    : >"$CALLS"
    kube_apply_manifest "$CELTIC_LIB_DIR/manifests/storage.yaml"
    [ ! -s "$CALLS" ]
    # a changed manifest is applied again
    sed -i 's/busybox:1.37/busybox:1.38/' "$CELTIC_LIB_DIR/manifests/storage.yaml"
    kube_apply_manifest "$CELTIC_LIB_DIR/manifests/storage.yaml"
    assert_called 'kubectl .* apply .*storage.yaml'
}

@test "an apply that keeps failing is retried, then fails the step" {
    stub kubectl 1
    run kube_apply_manifest "$CELTIC_LIB_DIR/manifests/celtic-lb-rbac.yaml"
    assert_failure
    [ "$(grep -c '^kubectl .* apply' "$CALLS")" = 8 ]
    assert [ ! -e "$CELTIC_STATE_DIR/applied/celtic-lb-rbac.yaml.sha256" ]
}

@test "a node waits until it is Ready, bounded" {
    kube_wait_ready "$ROOT/etc/kubernetes/kubelet.conf"
    assert_called "kubectl --kubeconfig $ROOT/etc/kubernetes/kubelet.conf get node testnode-0 -o jsonpath=.*"
    export FAKE_READY=False
    run kube_wait_ready "$ROOT/etc/kubernetes/kubelet.conf"
    assert_failure
    assert_output --partial 'node testnode-0 is not Ready after 30s'
}

@test "every shipped manifest, rendered with a registry prefix, passes kubernetes-validate" {
    local validate=${KUBERNETES_VALIDATE:-/work/dev-venv/bin/kubernetes-validate}
    [[ -x "$validate" ]] || validate=$(command -v kubernetes-validate) ||
        skip "kubernetes-validate is not installed"
    shopt -s nullglob
    manifests=("$FRAGMENTS"/manifests/*.yaml)
    [[ ${#manifests[@]} -gt 0 ]] || skip "no manifests shipped yet"
    CELTIC_CONTAINER_INFRA_PREFIX=registry.example.com/mirror/
    # what the add-ons' own steps set before they apply their manifest (node/dashboard.sh,
    # node/keystone_auth.sh; the label values as a cluster with them on has them)
    export CELTIC_DASHBOARD_TAG=v0.45.0 CELTIC_DASHBOARD_SERVICE_TYPE=ClusterIP
    DASHBOARD_TLS_CRT=$(printf 'certificate' | base64 -w 0)
    DASHBOARD_TLS_KEY=$(printf 'key' | base64 -w 0)
    export DASHBOARD_TLS_CRT DASHBOARD_TLS_KEY
    export CELTIC_K8S_KEYSTONE_AUTH_TAG=v1.36.0 CELTIC_KEYSTONE_AUTH_URL=https://keystone.example.com/v3
    export KEYSTONE_AUTH_POLICY_JSON='[]' KEYSTONE_AUTH_DIR=/etc/kubernetes/keystone-auth \
        KEYSTONE_AUTH_PORT=8443
    for manifest in "${manifests[@]}"; do
        kube_apply_manifest "$manifest"
        rendered=$BATS_TEST_TMPDIR/applied/$(basename "$manifest")
        run grep -c '{{' "$rendered"
        assert_output 0
        run "$validate" --strict -k 1.36.0 "$rendered"
        assert_success
        refute_output --partial ERROR
    done
}

@test "real nft: the metadata block drops every uid but root on the node itself (hostNetwork pods)" {
    [[ $(id -u) == 0 && -x /usr/sbin/nft ]] || skip "needs root and nft (nftables)"
    command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
    # A network namespace of its own: the metadata address on lo, a listener behind it.
    run unshare -n bash -c '
        ip link set lo up && ip addr add 169.254.169.254/32 dev lo || exit 99
        python3 -c "
import socket, time
s = socket.socket(); s.bind((\"169.254.169.254\", 80)); s.listen(8); time.sleep(30)" &
        sleep 0.5
        probe() { timeout 2 bash -c "exec 3<>/dev/tcp/169.254.169.254/80"; }
        probe || exit 10
        /usr/sbin/nft -f "$1" || exit 11
        probe || exit 12
        if setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "$(declare -f probe); probe"; then
            exit 13
        fi
        /usr/sbin/nft list chain inet celtic_metadata output | grep -q "skuid != 0" || exit 14
        kill %1
        exit 0' _ "$FRAGMENTS/templates/metadata-block.nft.tmpl"
    [ "$status" -ne 99 ] || skip "cannot add an address in a new network namespace"
    assert_success
}
