#!/bin/bash
# minion.sh: what a minion node runs at first boot (and again, harmlessly, on a re-run).

CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
# shellcheck source=lib/celtic.sh
source "$CELTIC_LIB_DIR/lib/celtic.sh"
# shellcheck source=node/common.sh
source "$CELTIC_LIB_DIR/node/common.sh"

minion_main() {
    common_setup
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    CELTIC_ROLE=minion
    celtic_run minion_main "$@"
fi
