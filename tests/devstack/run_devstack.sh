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
# run_devstack.sh PHASE...: drive devstack/settings and devstack/plugin.sh
# the way stack.sh, unstack.sh and clean.sh do, with recording stubs in
# place of devstack and of every external command.
#
# PHASE: pre-install install post-config extra test-config (stack.sh phases),
# unstack, clean, or `stack` for the five stack.sh phases in order.
#
# Input (environment): TEST_ROOT (scratch directory), CALLS (call log),
# and any devstack or plugin variable a scenario sets, as local.conf would.
# DISABLE="svc ..." runs disable_service like a localrc line;
# RUN_XTRACE=1 traces from the start, like stack.sh (into $TEST_ROOT/xtrace.log).
#
# Output: "== PHASE" then one line per call in $CALLS; the plugin's files
# under $TEST_ROOT; exit status 3 if a phase left xtrace changed, 4 if it
# wrote an option value the real oslo option rejects, 5 if it ran an
# `openstack` command line the real clients reject.

set -o errexit -o nounset

: "${TEST_ROOT:?}" "${CALLS:?}"
DEVSTACK_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$DEVSTACK_TESTS/../.." && pwd)
FAKE_PREFIX=$TEST_ROOT/venv
FAKE_CLOUD=$TEST_ROOT/cloud
INISET_LOG=$TEST_ROOT/iniset.log
export TEST_ROOT CALLS DEVSTACK_TESTS FAKE_CLOUD INISET_LOG

# What the values and command lines are checked with (the bats files build
# both once per file, see helpers.bash): the oslo option table of
# conf_check.py, and the real `openstack` clients of clients.sh.
if [[ -z "${CONF_TABLE:-}" ]]; then
    CONF_TABLE=$TEST_ROOT/conf-table.pickle
    "${TEST_PYTHON:-python3}" "$DEVSTACK_TESTS/conf_check.py" table "$CONF_TABLE"
fi
if [[ -z "${OPENSTACK_CLIENTS:-}" ]]; then
    OPENSTACK_CLIENTS=$(bash "$DEVSTACK_TESTS/clients.sh" ensure)
fi
export OPENSTACK_CLIENTS
: >"$INISET_LOG"

# External commands: wrappers around fakebin.bash. magnum-* only exist in
# the Python prefix, so the plugin must call them by absolute path.
function make_fake_commands {
    local command
    mkdir -p "$TEST_ROOT/bin" "$FAKE_PREFIX/bin"
    for command in openstack sudo mysql ssh-keygen uwsgi git curl wget pip pip3 systemctl \
        "venv/bin/magnum-db-manage" "venv/bin/magnum-conductor" "venv/bin/celtic-vendordata"; do
        local path=$TEST_ROOT/bin/$command
        [[ $command == venv/* ]] && path=$TEST_ROOT/$command
        printf '#!/bin/bash\nexec bash %q %q "$@"\n' "$DEVSTACK_TESTS/fakebin.bash" \
            "${command##*/}" >"$path"
        chmod +x "$path"
    done
}
make_fake_commands
PATH=$TEST_ROOT/bin:$PATH

# shellcheck source=SCRIPTDIR/stubs.bash
source "$DEVSTACK_TESTS/stubs.bash"

# devstack's globals (stackrc, lib/*), unless the scenario set them; the
# addresses derived from SERVICE_IP_VERSION as stackrc and lib/database
# derive them (IPv6: SERVICE_HOST and DATABASE_HOST in brackets, the
# listen address "[::]", MYSQL_HOST bare).
: "${TARGET_BRANCH:=master}"
: "${SERVICE_IP_VERSION:=4}"
: "${HOST_IP:=192.0.2.10}"
: "${HOST_IPV6:=2001:db8::10}"
if [[ $SERVICE_IP_VERSION == 6 ]]; then
    : "${SERVICE_HOST:=[$HOST_IPV6]}"
    : "${SERVICE_LOCAL_HOST:=::1}"
    : "${SERVICE_LISTEN_ADDRESS:=[::]}"
    : "${MYSQL_HOST:=$SERVICE_LOCAL_HOST}"
    : "${DATABASE_HOST:=[$MYSQL_HOST]}"
else
    : "${SERVICE_HOST:=$HOST_IP}"
    : "${SERVICE_LOCAL_HOST:=127.0.0.1}"
    : "${SERVICE_LISTEN_ADDRESS:=0.0.0.0}"
    : "${MYSQL_HOST:=$SERVICE_LOCAL_HOST}"
    : "${DATABASE_HOST:=$MYSQL_HOST}"
fi
: "${DEST:=$TEST_ROOT/opt/stack}"
: "${DATA_DIR:=$DEST/data}"
: "${FILES:=$TEST_ROOT/devstack/files}"
: "${GIT_BASE:=https://opendev.org}"
: "${STACK_USER:=$(id -un)}"
: "${REGION_NAME:=RegionOne}"
: "${SERVICE_PROTOCOL:=http}"
: "${SERVICE_TIMEOUT:=60}"
: "${SERVICE_PASSWORD:=Service-Secret-5071}"
: "${SERVICE_PROJECT_NAME:=service}"
: "${SERVICE_DOMAIN_NAME:=Default}"
: "${MEMCACHE_SERVERS:=localhost:11211}"
: "${SSL_BUNDLE_FILE:=$DATA_DIR/ca-bundle.pem}"
: "${RABBIT_PASSWORD:=Rabbit-Secret-6093}"
: "${DATABASE_TYPE:=mysql}"
: "${DATABASE_BACKENDS:=mysql postgresql}"
: "${DATABASE_USER:=root}"
: "${DATABASE_PASSWORD:=Database-Secret-7297}"
: "${ENABLE_DEBUG_LOG_LEVEL:=True}"
: "${PUBLIC_NETWORK_NAME:=public}"
: "${LIBS_FROM_GIT:=}"
: "${DEVSTACK_PLUGINS:=heat,magnum-celtic}"
: "${ENABLED_SERVICES:=key,mysql,rabbit,g-api,n-api,n-cpu,n-cond,n-sch,placement-api,q-svc,q-agt,q-dhcp,q-l3,q-meta,c-api,c-vol,h-eng,h-api,h-api-cfn}"
: "${DISABLED_SERVICES:=}"
# lib/keystone: with tls-proxy, Keystone is behind the TLS proxy (the
# protocol of each service changes, SERVICE_PROTOCOL stays http).
if [[ ,$ENABLED_SERVICES, == *,tls-proxy,* ]]; then
    : "${KEYSTONE_SERVICE_URI:=https://$SERVICE_HOST/identity}"
else
    : "${KEYSTONE_SERVICE_URI:=http://$SERVICE_HOST/identity}"
fi
# lib/nova
: "${NOVA_CONF:=$TEST_ROOT/nova/nova.conf}"
declare -A GITREPO GITBRANCH GITDIR

mkdir -p "$DEST" "$DATA_DIR" "$FILES" "$(dirname "$NOVA_CONF")"
# What `git clone` of Magnum, or pip install of a Magnum release, provides.
mkdir -p "$DEST/magnum/etc/magnum" "$FAKE_PREFIX/etc/magnum"
echo "# api-paste.ini from the git checkout" >"$DEST/magnum/etc/magnum/api-paste.ini"
echo "# api-paste.ini from the release" >"$FAKE_PREFIX/etc/magnum/api-paste.ini"

# local.conf's localrc is read before the plugins' settings.
if [[ -n "${DISABLE:-}" ]]; then
    # shellcheck disable=SC2086
    disable_service $DISABLE
fi

# The trace (the plugin turns it on, as devstack plugins do) goes to a file
# of its own, as stack.sh's goes to its log; stderr keeps the errors.
exec 7>>"$TEST_ROOT/xtrace.log"
BASH_XTRACEFD=7
if [[ "${RUN_XTRACE:-0}" == 1 ]]; then
    set -o xtrace
fi

# devstack sources both from inside functions (load_plugin_settings and
# run_plugins): a `declare` in them would be local and lost.
function load_plugin_settings {
    # shellcheck source=SCRIPTDIR/../../devstack/settings
    source "$REPO_ROOT/devstack/settings"
}

function run_plugins {
    # shellcheck source=SCRIPTDIR/../../devstack/plugin.sh
    source "$REPO_ROOT/devstack/plugin.sh" "$@"
}

load_plugin_settings

# After each phase: every iniset value of the phase against its oslo option
# (exit 4), and no `openstack` command line a real client rejected (exit 5),
# including those the plugin ran under `if` or with `|| true`.
function check_phase {
    if [[ -s "$INISET_LOG" ]]; then
        if ! "${TEST_PYTHON:-python3}" -I "$DEVSTACK_TESTS/conf_check.py" check "$CONF_TABLE" \
            "$INISET_LOG"; then
            echo "phase $1: a value the real option types reject" >&2
            exit 4
        fi
        : >"$INISET_LOG"
    fi
    if [[ -s "$TEST_ROOT/cli-errors" ]]; then
        echo "phase $1: an openstack command line a real client rejects:" >&2
        cat "$TEST_ROOT/cli-errors" >&2
        exit 5
    fi
}

phases=()
for phase in "$@"; do
    if [[ $phase == stack ]]; then
        phases+=(pre-install install post-config extra test-config)
    else
        phases+=("$phase")
    fi
done

for phase in "${phases[@]}"; do
    echo "== $phase" >>"$CALLS"
    before=$(set +o | grep xtrace)
    case "$phase" in
        unstack|clean) run_plugins "$phase" ;;
        *) run_plugins stack "$phase" ;;
    esac
    after=$(set +o | grep xtrace)
    if [[ "$before" != "$after" ]]; then
        echo "phase $phase changed xtrace: '$before' -> '$after'" >&2
        exit 3
    fi
    check_phase "$phase"
done
