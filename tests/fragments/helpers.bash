# Shared set-up for the fragment bats tests: a private root for every path a fragment
# writes, recording stubs for external commands, and a captured Heat signal.
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

# stub_heat_signal: give the node a signal.json and a curl that plays Keystone and Heat,
# so the library's real signalling code runs. Each signal body lands in $SIGNALS as one
# JSON line ({"status": ..., "reason": ..., "id": ..., "data": ...}).
stub_heat_signal() {
    cat >"$CELTIC_ETC/signal.json" <<'JSON'
{"auth_url": "http://keystone.test:5000/v3", "user_id": "u1", "password": "p4ssw0rd-never-logged",
 "project_id": "p1", "alarm_url": "http://heat.test:8004/v1/p1/stacks/s/1/resources/wait_handle/signal"}
JSON
    chmod 600 "$CELTIC_ETC/signal.json"
    stub_script curl '
headers="" body="" url=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        -D) headers=$2; shift 2 ;;
        --data-binary) body=${2#@}; shift 2 ;;
        -H|-o|--max-time|--cacert) shift 2 ;;
        -*) shift ;;
        *) url=$1; shift ;;
    esac
done
case "$url" in
    */auth/tokens) printf "HTTP/1.1 201 Created
X-Subject-Token: tok123

" >"$headers" ;;
    */signal) cat "$body" >>"$SIGNALS"; echo >>"$SIGNALS" ;;
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
