#!/bin/bash
#
# clients.sh: the `openstack` clients the devstack plugin can meet, each in
# its own cached virtualenv built from PyPI, for osc_parse.py.
#
#   clients.sh ensure   build the missing ones; print one line per client:
#                       NAME PYTHON python-magnumclient==V python-openstackclient==V
#   clients.sh list     print the names
#
# The clients (one table):
#   upper-constraints  python-magnumclient 4.11.0 and everything else at
#                      OpenStack's upper-constraints of 2026-08 (this repo's
#                      upper-constraints.txt with its 5.0.0 pin put back to
#                      the upstream 4.11.0): what devstack installs
#   newest             the newest python-openstackclient and
#                      python-magnumclient on PyPI (rebuilt every ISO week)
#
# Cache: $CELTIC_DEVSTACK_CLIENTS, default ~/.cache/magnum-celtic/devstack-
# clients; each virtualenv is named after what it was built from and built
# under a lock, so concurrent runs share it. Build logs: <cache>/<name>.log.

set -o errexit -o nounset -o pipefail

DEVSTACK_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$DEVSTACK_TESTS/../.." && pwd)
CACHE=${CELTIC_DEVSTACK_CLIENTS:-${XDG_CACHE_HOME:-$HOME/.cache}/magnum-celtic/devstack-clients}
VENV_PYTHON=${CLIENTS_PYTHON:-python3}
PACKAGES=(python-openstackclient python-magnumclient)
UPSTREAM_MAGNUMCLIENT=4.11.0

CLIENTS=(upper-constraints newest)

# The constraints file of a client, on stdout (empty: none).
function constraints_of {
    case "$1" in
        upper-constraints)
            sed -E "s/^python-magnumclient===.*/python-magnumclient===$UPSTREAM_MAGNUMCLIENT/" \
                "$REPO_ROOT/upper-constraints.txt"
            ;;
        newest) ;;
        *) echo "clients.sh: unknown client '$1' (known: ${CLIENTS[*]})" >&2; return 1 ;;
    esac
}

# The cache key: what the virtualenv is built from.
function key_of {
    local name=$1 stamp
    case "$name" in
        upper-constraints) stamp=$(constraints_of "$name" | sha256sum | cut -c1-12) ;;
        newest) stamp=$(date -u +%G-w%V) ;;
    esac
    echo "$name-$("$VENV_PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')-$stamp"
}

# Built in place (venv writes absolute paths into bin/); .complete marks a
# finished build, anything else is rebuilt.
function build {
    local name=$1 key=$2
    local venv=$CACHE/$key
    local -a constrain=()
    constraints_of "$name" >"$venv.constraints"
    [[ -s "$venv.constraints" ]] && constrain=(-c "$venv.constraints")
    echo "clients.sh: building $name (${PACKAGES[*]}) in $venv" >&2
    # Without pip of its own (so without ensurepip, which Debian's python3
    # lacks unless python3-venv is installed): the installing pip is that of
    # CLIENTS_PYTHON, pointed at the new environment (pip >= 22.3).
    if ! { "$VENV_PYTHON" -m venv --without-pip "$venv" &&
        "$VENV_PYTHON" -m pip --python "$venv/bin/python" install --disable-pip-version-check \
            -q "${constrain[@]}" "${PACKAGES[@]}" &&
        "$venv/bin/python" -c 'import openstackclient.shell, magnumclient.osc.plugin'
    } >"$CACHE/$name.log" 2>&1; then
        rm -rf "$venv"
        echo "clients.sh: building $name failed, see $CACHE/$name.log" >&2
        return 1
    fi
    "$venv/bin/python" -c 'from importlib.metadata import version as v
print(" ".join("%s==%s" % (p, v(p)) for p in ("python-magnumclient", "python-openstackclient")))' \
        >"$venv/.complete"
}

function ensure {
    local name key
    mkdir -p "$CACHE"
    for name in "${CLIENTS[@]}"; do
        key=$(key_of "$name")
        if [[ ! -e "$CACHE/$key/.complete" ]]; then
            (
                flock 9
                if [[ ! -e "$CACHE/$key/.complete" ]]; then
                    rm -rf "${CACHE:?}/$key"
                    build "$name" "$key"
                fi
            ) 9>"$CACHE/$name.lock"
        fi
        echo "$name $CACHE/$key/bin/python $(cat "$CACHE/$key/.complete")"
    done
}

case "${1:-}" in
    ensure) ensure ;;
    list) printf '%s\n' "${CLIENTS[@]}" ;;
    *) echo "usage: clients.sh ensure|list" >&2; exit 2 ;;
esac
