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

# storage.sh: what a storage node runs at first boot (and again, harmlessly, on a re-run):
# the common set-up, then its GlusterFS brick and glusterd; storage 0 also builds the
# volume (node/gluster.sh, doc/storage.md).
#
#   storage.sh                 first boot, or a re-run: changes nothing that is in place
#   storage.sh grow ADDRESS... on storage 0 only, after storage_count grew: every storage
#                              address in index order (the stack output storage_addresses);
#                              probes the new nodes and adds their bricks

CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
# shellcheck source=lib/celtic.sh
source "$CELTIC_LIB_DIR/lib/celtic.sh"
# shellcheck source=node/common.sh
source "$CELTIC_LIB_DIR/node/common.sh"
# shellcheck source=node/gluster.sh
source "$CELTIC_LIB_DIR/node/gluster.sh"

storage_main() {
    case "${1:-}" in
        "")
            common_setup
            gluster_storage_node
            ;;
        grow)
            shift
            celtic_step params celtic_load_params
            celtic_step grow-addresses gluster_grow_addresses "$@"
            gluster_storage_node
            ;;
        *)
            celtic_die "usage: storage.sh [grow ADDRESS...], got '$1'"
            ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    CELTIC_ROLE=storage
    if [[ "${1:-}" == grow ]]; then
        # An operator's command on a running node: no Heat wait condition waits for it.
        CELTIC_SIGNAL_FILE=${CELTIC_SIGNAL_FILE:-$CELTIC_STATE_DIR/grow-sends-no-signal}
    fi
    celtic_run storage_main "$@"
fi
