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

# Shared set-up for the fragment bats tests: a private root for every path a fragment
# writes, recording stubs for external commands, the node's vendordata and a captured
# signal.
#
#   load helpers
#   setup() { celtic_test_setup; stub systemctl; source "$FRAGMENTS/master.sh"; }
#
# Every stub appends one line "<command> <args...>" to $CALLS. `calls` prints them,
# `assert_called` / `refute_called` look for a line (extended regex, anchored).

REPO_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
FRAGMENTS="$REPO_ROOT/heat_templates/fragments"

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

celtic_test_setup() {
    export STUBS="$BATS_TEST_TMPDIR/bin"
    export CALLS="$BATS_TEST_TMPDIR/calls"
    export SIGNALS="$BATS_TEST_TMPDIR/signals"
    export ROOT="$BATS_TEST_TMPDIR/root"
    mkdir -p "$STUBS" "$ROOT"
    : >"$CALLS"
    : >"$SIGNALS"
    export PATH="$STUBS:$PATH"
    export CELTIC_LIB_DIR="$FRAGMENTS"
    export CELTIC_ETC="$ROOT/etc/celtic"
    export CELTIC_STATE_DIR="$ROOT/var/lib/celtic"
    export CELTIC_LOG_FILE="$ROOT/var/log/celtic.log"
    export CELTIC_SLEEP=true
    export CELTIC_NODE_NAME=${CELTIC_NODE_NAME:-testnode-0}
    export CELTIC_NODE_ID=${CELTIC_NODE_ID:-11111111-2222-3333-4444-555555555555}
    export CELTIC_NODE_IP=${CELTIC_NODE_IP:-10.0.0.11}
    export CELTIC_NODE_NIC=${CELTIC_NODE_NIC:-eth0}
    mkdir -p "$CELTIC_ETC/secrets" "$CELTIC_ETC/pki" "$CELTIC_STATE_DIR" "$ROOT/var/log"
    # Nova's metadata service: a directory (write_vendordata fills it)
    export CELTIC_METADATA_URL="file://$ROOT/metadata"
    # The package table's distribution, whatever this machine runs (os_release to change).
    export CELTIC_OS_RELEASE="$ROOT/os-release"
    os_release debian 12 bookworm
}

# os_release ID VERSION_ID CODENAME: the node's /etc/os-release.
os_release() {
    printf 'ID=%s\nVERSION_ID="%s"\nVERSION_CODENAME=%s\n' "$1" "$2" "$3" >"$CELTIC_OS_RELEASE"
}

# stub NAME [EXIT_CODE [STDOUT]]: a command that records its arguments.
stub() {
    local name=$1 rc=${2:-0} out=${3:-}
    {
        printf '#!/bin/bash\n'
        printf 'echo "%s $*" >>"$CALLS"\n' "$name"
        if [[ -n "$out" ]]; then
            printf 'cat <<'"'"'CELTIC_STUB_EOF'"'"'\n%s\nCELTIC_STUB_EOF\n' "$out"
        fi
        printf 'exit %s\n' "$rc"
    } >"$STUBS/$name"
    chmod +x "$STUBS/$name"
}

# stub_script NAME BODY: a recording stub that then runs BODY (bash).
stub_script() {
    local name=$1 body=$2
    {
        printf '#!/bin/bash\n'
        printf 'echo "%s $*" >>"$CALLS"\n' "$name"
        printf '%s\n' "$body"
    } >"$STUBS/$name"
    chmod +x "$STUBS/$name"
}

calls() {
    cat "$CALLS"
}

assert_called() {
    if ! grep -qE "^$1\$" "$CALLS"; then
        echo "expected a call matching: $1" >&2
        echo "calls were:" >&2
        sed 's/^/  /' "$CALLS" >&2
        return 1
    fi
}

refute_called() {
    if grep -qE "^$1\$" "$CALLS"; then
        echo "unexpected call matching: $1" >&2
        grep -E "^$1\$" "$CALLS" | sed 's/^/  /' >&2
        return 1
    fi
}

# The signal credentials celtic-vendordata gives a node (signal.json), in every test.
RELAY_URL=http://relay.test:9520/v1/signal
RELAY_KEY=5e1ec7ed0d15ea5e5e1ec7ed0d15ea5e5e1ec7ed0d15ea5e5e1ec7ed0d15ea5e
RELAY_CLUSTER=5d12f6fd-0000-4000-8000-000000000001

relay_signal_json() {
    printf '{"url": "%s", "cluster_uuid": "%s", "instance_id": "%s", "key": "%s"}\n' \
        "$RELAY_URL" "$RELAY_CLUSTER" "$CELTIC_NODE_ID" "$RELAY_KEY"
}

# write_vendordata ROLE [SECRETS_DIR]: the node's vendor_data2.json (file://, as the lab
# serves it) with celtic-vendordata's answer for ROLE: the files in SECRETS_DIR
# (default: what the test put in $CELTIC_ETC/secrets) and the relay credentials.
write_vendordata() {
    local role=$1 dir=${2:-$CELTIC_ETC/secrets}
    mkdir -p "$ROOT/metadata/openstack/latest"
    python3 - "$role" "$dir" "$(relay_signal_json)" \
        >"$ROOT/metadata/openstack/latest/vendor_data2.json" <<'PY'
import json, os, sys
role, folder, signal = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
secrets = {}
for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
    with open(os.path.join(folder, name)) as f:
        secrets[name] = f.read()
print(json.dumps({'celtic': {'version': 1, 'cluster_uuid': signal['cluster_uuid'],
                             'role': role, 'node': 'testnode-0', 'secrets': secrets,
                             'signal': signal}}))
PY
}

# stub_heat_signal: give the node a signal.json and a curl that plays celtic-vendordata's
# signal relay, so the library's real signalling code runs. Attempt N answers the Nth
# code of $RELAY_CODES (default 202; 000 is a refused connection). Every attempt's body
# and signature header are kept ($BATS_TEST_TMPDIR/relay/N.body, N.sig); each accepted
# body lands in $SIGNALS as one JSON line ({"status", "reason", "id", "data", ...}).
stub_heat_signal() {
    relay_signal_json >"$CELTIC_ETC/signal.json"
    chmod 600 "$CELTIC_ETC/signal.json"
    stub_script curl '
headers="" body="" url=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -H) [[ "$2" == @* ]] && headers=${2#@}; shift 2 ;;
        --data-binary) body=${2#@}; shift 2 ;;
        -o|-w|--max-time|--cacert) shift 2 ;;
        -*) shift ;;
        *) url=$1; shift ;;
    esac
done
case "$url" in
    */v1/signal)
        mkdir -p "$BATS_TEST_TMPDIR/relay"
        n=$(($(find "$BATS_TEST_TMPDIR/relay" -name "*.body" | wc -l) + 1))
        cp "$body" "$BATS_TEST_TMPDIR/relay/$n.body"
        cp "$headers" "$BATS_TEST_TMPDIR/relay/$n.sig"
        read -r -a codes <<<"${RELAY_CODES:-}"
        code=${codes[$((n - 1))]:-202}
        [[ "$code" == 000 ]] && exit 7
        if [[ "$code" == 2?? ]]; then
            cat "$body" >>"$SIGNALS"
            echo >>"$SIGNALS"
        fi
        printf "%s" "$code" ;;
esac
exit 0'
}

# signal_field N FIELD: FIELD of the Nth (1-based) signal sent to Heat.
signal_field() {
    sed -n "${1}p" "$SIGNALS" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# write_params JSON: the node's params.json.
write_params() {
    printf '%s\n' "$1" >"$CELTIC_ETC/params.json"
}
