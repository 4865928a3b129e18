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

# minion.sh: what a minion node runs at first boot (and again, harmlessly, on a re-run).
# Common set-up, kernel, containerd, then it waits for the API VIP, installs the kubelet
# of exactly the apiserver's version (never newer), mounts the GlusterFS volume when the
# cluster has storage nodes, joins with the never-expiring bootstrap token and waits
# until Ready. doc/nodes.md explains each step.

CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
# shellcheck source=lib/celtic.sh
source "$CELTIC_LIB_DIR/lib/celtic.sh"
# shellcheck source=node/common.sh
source "$CELTIC_LIB_DIR/node/common.sh"
# shellcheck source=node/kubernetes.sh
source "$CELTIC_LIB_DIR/node/kubernetes.sh"
# shellcheck source=node/gluster_client.sh disable=SC1091
source "$CELTIC_LIB_DIR/node/gluster_client.sh"

minion_main() {
    common_setup
    celtic_step identity kube_defaults
    kube_host_setup
    celtic_step wait-api kube_wait_api
    celtic_step kube-packages kube_packages_from_api
    kube_runtime_setup
    # Before the join: no pod may land here while the shared volume is not mounted.
    if [[ -n "${CELTIC_STORAGE_ADDRESSES:-}" ]]; then
        celtic_step gluster-mount gluster_client_mount
    fi
    celtic_step kubeadm-config kube_render_join worker
    celtic_step kubeadm-join kube_join
    celtic_step node-ready kube_wait_ready "$KUBE_ETC/kubelet.conf"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    CELTIC_ROLE=minion
    celtic_run minion_main "$@"
fi
