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

#
# Shared set-up for the devstack plugin tests.
#
#   load helpers
#   setup() { devstack_setup; }
#   @test "..." { devstack stack; assert_success; assert_call install setup_install "$REPO_ROOT"; }
#
# `devstack PHASE...` runs tests/devstack/run_devstack.sh in a fresh shell
# (bats `run`: $status, $output) with the scenario's variables exported
# beforehand. Calls are recorded one per line, arguments quoted with
# printf %q; `call_line ARGS...` builds such a line for comparisons.

# shellcheck disable=SC2034
# (the paths and names below are read by the .bats files)

DEVSTACK_TESTS="$(cd "$BATS_TEST_DIRNAME" && pwd)"
REPO_ROOT="$(cd "$DEVSTACK_TESTS/../.." && pwd)"

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# The secrets of the scenario, as run_devstack.sh sets them.
SECRETS=(Service-Secret-5071 Rabbit-Secret-6093 Database-Secret-7297)

# Python with Magnum, keystonemiddleware and oslo.* (the tox env's).
export TEST_PYTHON=${TEST_PYTHON:-python3}

# Once per bats file (setup_file): what run_devstack.sh checks the plugin's
# iniset values and `openstack` command lines with. The oslo option table
# (conf_check.py), and the real clients (clients.sh: built from PyPI into a
# cache on first use, a few minutes).
devstack_setup_file() {
    export CONF_TABLE="$BATS_FILE_TMPDIR/conf-table.pickle"
    "$TEST_PYTHON" "$DEVSTACK_TESTS/conf_check.py" table "$CONF_TABLE" ||
        fail "conf_check.py could not load the option definitions"
    OPENSTACK_CLIENTS=$(CLIENTS_PYTHON=$TEST_PYTHON bash "$DEVSTACK_TESTS/clients.sh" ensure) ||
        fail "clients.sh could not build the openstack clients"
    export OPENSTACK_CLIENTS
    # One osc_parse.py server per client for the file's tests: the clients
    # are imported once, not once per command line (fakebin.bash).
    local name python dir
    OSC_PARSE_SERVERS=""
    while read -r name python _; do
        dir="$BATS_FILE_TMPDIR/osc-parse-$name"
        mkdir -p "$dir/req" "$dir/resp"
        "$python" "$DEVSTACK_TESTS/osc_parse.py" --serve "$dir" </dev/null >"$dir.log" 2>&1 3>&- &
        echo $! >"$dir.pid"
        OSC_PARSE_SERVERS+="$name $dir"$'\n'
    done <<<"$OPENSTACK_CLIENTS"
    export OSC_PARSE_SERVERS
}

devstack_teardown_file() {
    local name dir
    while read -r name dir; do
        [[ -n "$name" ]] || continue
        kill "$(cat "$dir.pid")" 2>/dev/null || true
        rm -rf "$dir"
    done <<<"${OSC_PARSE_SERVERS:-}"
}

devstack_setup() {
    export TEST_ROOT="$BATS_TEST_TMPDIR/root"
    export CALLS="$TEST_ROOT/calls"
    export MAGNUM_CONF_DIR="$TEST_ROOT/etc/magnum"
    mkdir -p "$TEST_ROOT"
    : >"$CALLS"
    # Paths as run_devstack.sh and devstack/settings derive them.
    DEST="$TEST_ROOT/opt/stack"
    DATA_DIR="$DEST/data"
    MAGNUM_CONF="$MAGNUM_CONF_DIR/magnum.conf"
    NOVA_CONF="$TEST_ROOT/nova/nova.conf"
    MAGNUM_UWSGI_CONF="$MAGNUM_CONF_DIR/magnum-api-uwsgi.ini"
    STATE_PATH="$DATA_DIR/magnum"
    SSH_KEY="$DATA_DIR/magnum-celtic/id_ed25519"
    FAKE_BIN="$TEST_ROOT/bin"
    FAKE_PREFIX_BIN="$TEST_ROOT/venv/bin"
    OS=(openstack --os-cloud devstack-admin --os-region-name RegionOne)
}

devstack() {
    run bash "$DEVSTACK_TESTS/run_devstack.sh" "$@"
}

call_line() {
    local line
    line=$(printf '%q ' "$@")
    echo "${line% }"
}

# phase_calls PHASE: the calls recorded during PHASE.
phase_calls() {
    awk -v phase="== $1" '$0 == phase {inside = 1; next} /^== / {inside = 0} inside' "$CALLS"
}

# every_call: all calls, without the phase markers.
every_call() {
    grep -v '^== ' "$CALLS" || true
}

_show_calls() {
    echo "-- calls of phase $1:" >&2
    phase_calls "$1" | sed 's/^/  /' >&2
}

# assert_call PHASE ARGS...: PHASE made exactly this call.
assert_call() {
    local phase=$1 expected
    shift
    expected=$(call_line "$@")
    if ! phase_calls "$phase" | grep -qxF -- "$expected"; then
        echo "expected in $phase: $expected" >&2
        _show_calls "$phase"
        return 1
    fi
}

# refute_call_matching PHASE PREFIX: no call of PHASE starts with PREFIX
# (PHASE "all": no call at all).
refute_call_matching() {
    local phase=$1 prefix=$2 calls
    if [[ $phase == all ]]; then
        calls=$(every_call)
    else
        calls=$(phase_calls "$phase")
    fi
    if awk -v p="$prefix" 'index($0, p) == 1 {found = 1} END {exit !found}' <<<"$calls"; then
        echo "unexpected in $phase: $prefix..." >&2
        printf '  %s\n' "$calls" >&2
        return 1
    fi
}

# assert_phase_calls PHASE LINE...: PHASE made exactly these calls, in order.
assert_phase_calls() {
    local phase=$1
    shift
    local expected actual
    expected=$(printf '%s\n' "$@")
    actual=$(phase_calls "$phase")
    if [[ "$actual" != "$expected" ]]; then
        echo "calls of $phase differ" >&2
        diff <(echo "$expected") <(echo "$actual") | sed 's/^/  /' >&2
        return 1
    fi
}

# assert_in_order PHASE PREFIX...: calls starting with each PREFIX happen in
# this order in PHASE (other calls may come between them).
assert_in_order() {
    local phase=$1
    shift
    local prefix line found
    local -a calls
    mapfile -t calls < <(phase_calls "$phase")
    local index=0
    for prefix in "$@"; do
        found=0
        while ((index < ${#calls[@]})); do
            line=${calls[index]}
            index=$((index + 1))
            if [[ $line == "$prefix"* ]]; then
                found=1
                break
            fi
        done
        if ((!found)); then
            echo "no call starting with '$prefix' after the previous ones in $phase" >&2
            _show_calls "$phase"
            return 1
        fi
    done
}

# conf FILE SECTION OPTION: a value of a file written by the stubbed iniset.
conf() {
    "$TEST_PYTHON" -I -S "$DEVSTACK_TESTS/ini.py" get "$@"
}

conf_dump() {
    "$TEST_PYTHON" -I -S "$DEVSTACK_TESTS/ini.py" dump "$1"
}

assert_magnum_conf() {
    local actual
    actual=$(conf "$MAGNUM_CONF" "$1" "$2") || {
        echo "[$1] $2 missing from magnum.conf" >&2
        return 1
    }
    assert_equal "$actual" "$3"
}
