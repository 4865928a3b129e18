#!/bin/bash
#
# The external commands the plugin may run, as one recording fake:
#   fakebin.bash NAME ARGS...
# run_devstack.sh puts a wrapper per NAME on PATH (and in the fake Python
# prefix). Each call is appended to $CALLS like the function stubs do.
#
# `openstack` is a tiny stateful cloud under $FAKE_CLOUD, so that "skip what
# already exists" can be tested: show fails until create (or upload_image)
# made the resource.

set -o errexit -o nounset

name=$1
shift
line=$(printf '%q ' "$name" "$@")
echo "${line% }" >>"$CALLS"

# Paths outside the test root must never be touched for real.
only_test_paths() {
    local arg
    for arg in "$@"; do
        if [[ $arg == /* && $arg != "$TEST_ROOT"/* ]]; then
            echo "fake sudo: refusing $arg (outside $TEST_ROOT)" >&2
            exit 97
        fi
    done
}

# The command line, parsed by the real clients (osc_parse.py) of every
# virtualenv in $OPENSTACK_CLIENTS (lines "NAME PYTHON VERSIONS...", from
# clients.sh ensure), side by side. A line a client rejects is written to
# $TEST_ROOT/cli-errors (run_devstack.sh fails on it, even when the plugin
# hid the failure) and the call fails with status 2, as `openstack` does.
# A client's virtualenv never changes once built (clients.sh), so results
# are cached next to it, per version of osc_parse.py and command line (the
# test's scratch path replaced by a constant: a path's value does not change
# how it parses).
# parse_line NAME PYTHON ERRFILE ARGS...: osc_parse.py's exit status for
# ARGS with client NAME, its message in ERRFILE. Through that client's
# osc_parse.py server when the bats file started one ($OSC_PARSE_SERVERS:
# lines "NAME DIR"), else in a process of its own.
parse_line() {
    local name=$1 python=$2 err=$3 server
    shift 3
    server=$(awk -v name="$name" '$1 == name {print $2}' <<<"${OSC_PARSE_SERVERS:-}")
    if [[ -z "$server" || ! -d "$server/req" ]]; then
        "$python" "$DEVSTACK_TESTS/osc_parse.py" "$@" 2>"$err" >/dev/null
        return
    fi
    local id="$$-$RANDOM-$name" tries=0 status
    printf '%s\0' "$@" >"$server/req/.$id"
    mv "$server/req/.$id" "$server/req/$id"
    while [[ ! -e "$server/resp/$id" ]]; do
        if ((++tries > 6000)); then
            echo "the osc_parse.py server in $server did not answer in 2 minutes" >"$err"
            return 1
        fi
        sleep 0.02
    done
    status=$(head -n 1 "$server/resp/$id")
    tail -n +2 "$server/resp/$id" >"$err"
    rm -f "$server/resp/$id"
    return "$status"
}

check_openstack_cli() {
    local shim_sum
    shim_sum=$(sha256sum <"$DEVSTACK_TESTS/osc_parse.py")
    local -a names=() results=()
    local name python versions key result cache
    while read -r name python versions; do
        [[ -n "$name" ]] || continue
        cache=$(dirname "$(dirname "$python")")/parse-cache
        mkdir -p "$cache"
        key=$(printf '%s\0' "$shim_sum" "${@//"$TEST_ROOT"//test-root}" | sha256sum)
        result=$cache/${key%% *}
        if [[ ! -e "$result" ]]; then
            # 0: accepted, 2: rejected (osc_parse.py); anything else is a
            # broken check, reported and not cached.
            {
                local parsed=0
                parse_line "$name" "$python" "$result.$$.err" "$@" || parsed=$?
                case $parsed in
                    0) echo ok >"$result.$$.tmp" ;;
                    2) echo "rejected by $name ($versions): $(grep -v '^ ' "$result.$$.err" | tail -n 1)" \
                        >"$result.$$.tmp" ;;
                esac
                if [[ -e "$result.$$.tmp" ]]; then
                    mv "$result.$$.tmp" "$result"
                else
                    echo "osc_parse.py failed ($parsed) with $name:" >&2
                    cat "$result.$$.err" >&2
                fi
                rm -f "$result.$$.err"
            } &
        fi
        names+=("$name")
        results+=("$result")
    done <<<"${OPENSTACK_CLIENTS:-}"
    wait
    if ((${#names[@]} == 0)); then
        echo "fake openstack: OPENSTACK_CLIENTS is empty, nothing to check the command line with" >&2
        exit 98
    fi
    local status=0 file
    for file in "${results[@]}"; do
        if [[ ! -e "$file" ]]; then
            echo "openstack $*: could not be checked" | tee -a "$TEST_ROOT/cli-errors" >&2
            status=2
        elif [[ "$(cat "$file")" != ok ]]; then
            echo "openstack $*: $(cat "$file")" | tee -a "$TEST_ROOT/cli-errors" >&2
            status=2
        fi
    done
    return $status
}

fake_openstack() {
    local -a args=()
    while (($#)); do
        case "$1" in
            --os-cloud|--os-region-name) shift 2 ;;
            --os-cloud=*|--os-region-name=*) shift ;;
            *) args+=("$1"); shift ;;
        esac
    done
    set -- "${args[@]}"
    local last=${!#}
    case "$1 $2" in
        "image show"|"keypair show")
            [[ -e "$FAKE_CLOUD/$1/$last" ]] || { echo "No $1 found for $last" >&2; return 1; }
            ;;
        "image set")
            [[ -e "$FAKE_CLOUD/image/$last" ]] || { echo "No image found for $last" >&2; return 1; }
            ;;
        "keypair create")
            [[ $3 == --public-key && -s $4 ]] || { echo "public key $4 missing" >&2; return 1; }
            mkdir -p "$FAKE_CLOUD/keypair"
            : >"$FAKE_CLOUD/keypair/$last"
            ;;
        "coe cluster")
            case "$3" in
                template)
                    case "$4" in
                        show) [[ -e "$FAKE_CLOUD/template/$last" ]] || return 1 ;;
                        create) mkdir -p "$FAKE_CLOUD/template"; : >"$FAKE_CLOUD/template/$last" ;;
                    esac
                    ;;
            esac
            ;;
    esac
}

case "$name" in
    openstack)
        check_openstack_cli "$@" || exit 2
        fake_openstack "$@"
        ;;
    sudo)
        only_test_paths "$@"
        "$@"
        ;;
    mysql)
        # --defaults-extra-file must come first (the client ignores it
        # elsewhere); its content and mode are kept for the tests.
        if [[ ${1:-} == --defaults-extra-file=* ]]; then
            defaults=${1#*=}
            cp "$defaults" "$TEST_ROOT/mysql.cnf"
            stat -c %a "$defaults" >"$TEST_ROOT/mysql.cnf.mode"
        fi
        cat >>"$TEST_ROOT/mysql.sql"
        ;;
    ssh-keygen)
        # ssh-keygen -q -t TYPE -N "" -C COMMENT -f FILE
        key=${!#}
        echo "FAKE PRIVATE KEY" >"$key"
        echo "ssh-ed25519 AAAAfake magnum-celtic" >"$key.pub"
        ;;
    *)
        # magnum-db-manage, magnum-conductor, uwsgi; and git, curl, wget,
        # pip, systemctl, which the tests assert are never called.
        ;;
esac
