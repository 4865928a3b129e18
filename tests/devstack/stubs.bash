#!/bin/bash
#
# Recording stubs of the devstack functions the plugin calls. Sourced by
# run_devstack.sh in place of devstack's functions-common, inc/* and lib/*.
#
# Every stub appends one line to $CALLS: its name and arguments, each quoted
# with printf %q (a file, not an array: calls made inside $(...) run in a
# subshell). Helpers that answer something answer what devstack would;
# service and plugin lists have devstack's real semantics.

# shellcheck disable=SC2034
# (variables set here are devstack's globals, read by the plugin)

function _record {
    local line
    printf -v line '%q ' "$@"
    echo "${line% }" >>"$CALLS"
}

# --- services and plugins (functions-common) -------------------------------

function is_service_enabled {
    local enabled=1 service
    # Like devstack: the arguments are joined and split again.
    local services="$*"
    for service in ${services}; do
        [[ ,${ENABLED_SERVICES}, =~ ,${service}, ]] && enabled=0
        if type "is_${service}_enabled" >/dev/null 2>&1; then
            "is_${service}_enabled" && enabled=0
        fi
        [[ ${service} == "nova" && ,${ENABLED_SERVICES} =~ ,"n-" ]] && enabled=0
        [[ ${service} == "glance" && ,${ENABLED_SERVICES} =~ ,"g-" ]] && enabled=0
        [[ ${service} == "neutron" && ,${ENABLED_SERVICES} =~ ,"q-" ]] && enabled=0
    done
    return $enabled
}

function _cleanup_service_list {
    local list=$1
    while [[ $list == *,,* ]]; do
        list=${list//,,/,}
    done
    list=${list#,}
    echo "${list%,}"
}

function enable_service {
    local service services=$ENABLED_SERVICES
    for service in "$@"; do
        if [[ ,${DISABLED_SERVICES}, =~ ,${service}, ]]; then
            echo "[WARNING] Attempt to enable_service ${service} when it has been disabled"
            continue
        fi
        if ! is_service_enabled "$service"; then
            services+=",$service"
        fi
    done
    ENABLED_SERVICES=$(_cleanup_service_list "$services")
}

function disable_service {
    local service disabled=$DISABLED_SERVICES enabled=",$ENABLED_SERVICES,"
    for service in "$@"; do
        disabled+=",$service"
        enabled=${enabled//,$service,/,}
    done
    DISABLED_SERVICES=$(_cleanup_service_list "$disabled")
    ENABLED_SERVICES=$(_cleanup_service_list "$enabled")
}

function is_plugin_enabled {
    [[ ",${DEVSTACK_PLUGINS}," =~ ,${1}, ]]
}

# No-ops in devstack too (only Zuul reads them).
function define_plugin { :; }
function plugin_requires { :; }

function use_library_from_git {
    [[ ${LIBS_FROM_GIT} = 'ALL' ]] || [[ ,${LIBS_FROM_GIT}, =~ ,${1}, ]]
}

# functions-common: "[::]" -> "::".
function ipv6_unquote {
    echo "$1" | tr -d '[]'
}

function trueorfalse {
    local default=$1
    local value=${!2:-}
    case "$value" in
        1|[yY]es|YES|[tT]rue|TRUE) echo True ;;
        0|[nN]o|NO|[fF]alse|FALSE) echo False ;;
        *) echo "$default" ;;
    esac
}

# --- messages ----------------------------------------------------------------

function echo_summary {
    echo "summary: $*"
}

# devstack's warn returns the exit status of the command before it: under
# errexit, `cmd || warn ...` still stops stack.sh. Reproduced on purpose.
function warn {
    local status=$?
    _record warn "$2"
    return $status
}

function die {
    local status=$?
    [[ $status == 0 ]] && status=1
    set +o xtrace
    echo "die: line $1: $2" >&2
    _record die "$2"
    exit $status
}

# --- installation (functions-common, inc/python) --------------------------

function git_clone { _record git_clone "$@"; }
# Like devstack's: git_clone with the repository's GITREPO, GITDIR and
# GITBRANCH entries.
function git_clone_by_name {
    _record git_clone_by_name "$@"
    git_clone "${GITREPO[$1]}" "${GITDIR[$1]}" "${GITBRANCH[$1]}"
}
function setup_develop { _record setup_develop "$@"; }
function setup_install { _record setup_install "$@"; }
function setup_dev_lib { _record setup_dev_lib "$@"; }
function pip_install { _record pip_install "$@"; }
function pip_install_gr { _record pip_install_gr "$@"; }

function get_python_exec_prefix {
    echo "$FAKE_PREFIX/bin"
}

# --- configuration (inc/ini-config, lib/rpc_backend, lib/keystone, lib/apache)

# A real INI file, as devstack's iniset writes it: the option replaced in
# place, or added at the end of its section, or a new section appended. The
# tests read it back with Python's configparser (ini.py). Like devstack, the
# file is created but not its directory. Each call is also logged to
# $INISET_LOG, whose values run_devstack.sh checks against the real oslo
# option types (conf_check.py).
function iniset {
    local sudo=""
    if [[ $1 == "-sudo" ]]; then
        sudo="-sudo"
        shift
    fi
    _record iniset ${sudo:+"$sudo"} "$@"
    local file=$1 section=$2 option=$3 value=$4
    # For run_devstack.sh's check of the value against its oslo option.
    printf '%s\0' "$file" "$section" "$option" "$value" >>"$INISET_LOG"
    if [[ ! -d "$(dirname "$file")" ]]; then
        echo "iniset: directory of $file does not exist" >&2
        return 1
    fi
    [[ -f "$file" ]] || : >"$file"
    INI_SECTION="[$section]" INI_OPTION=$option INI_VALUE=$value awk '
        function put() { print ENVIRON["INI_OPTION"] " = " ENVIRON["INI_VALUE"]; done = 1 }
        function flush() { for (; blanks > 0; blanks--) print "" }
        function option_of(line) { sub(/[ \t]*=.*/, "", line); return line }
        /^[ \t]*$/ { blanks++; next }
        $0 == ENVIRON["INI_SECTION"] { flush(); inside = 1; seen = 1; print; next }
        /^\[/ { if (inside && !done) put(); inside = 0; flush(); print; next }
        inside && !done && option_of($0) == ENVIRON["INI_OPTION"] { flush(); put(); next }
        { flush(); print }
        END {
            if (inside && !done) put()
            else if (!seen) { if (NR) print ""; print ENVIRON["INI_SECTION"]; put() }
        }
    ' "$file" >"$file.iniset" && mv "$file.iniset" "$file"
}

function setup_logging { _record setup_logging "$@"; }

function iniset_rpc_backend {
    _record iniset_rpc_backend "$@"
    iniset "$2" DEFAULT transport_url "rabbit://stackrabbit:$RABBIT_PASSWORD@$SERVICE_HOST:5672/"
}

function configure_keystone_authtoken_middleware {
    _record configure_keystone_authtoken_middleware "$@"
    local conf=$1 user=$2 section=${3:-keystone_authtoken}
    iniset "$conf" "$section" auth_type password
    iniset "$conf" "$section" auth_url "$KEYSTONE_SERVICE_URI"
    iniset "$conf" "$section" username "$user"
    iniset "$conf" "$section" password "$SERVICE_PASSWORD"
    iniset "$conf" "$section" user_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$conf" "$section" project_name "$SERVICE_PROJECT_NAME"
    iniset "$conf" "$section" project_domain_name "$SERVICE_DOMAIN_NAME"
    iniset "$conf" "$section" www_authenticate_uri "$KEYSTONE_SERVICE_URI"
    iniset "$conf" "$section" cafile "$SSL_BUNDLE_FILE"
    iniset "$conf" "$section" memcached_servers "$MEMCACHE_SERVERS"
}

function write_uwsgi_config {
    _record write_uwsgi_config "$@"
    local conf=$1 wsgi=$2 http=$4
    rm -f "$conf"
    iniset "$conf" uwsgi module "$wsgi"
    iniset "$conf" uwsgi master true
    if [[ -n "$http" ]]; then
        iniset "$conf" uwsgi http "$http"
    else
        iniset "$conf" uwsgi socket "/var/run/uwsgi/$5.socket"
    fi
}

function remove_uwsgi_config { _record remove_uwsgi_config "$@"; }

# --- keystone (functions-common, lib/keystone) --------------------------

function get_or_create_user {
    _record get_or_create_user "$@"
    echo "user-$1-id"
}

function get_or_add_user_project_role {
    _record get_or_add_user_project_role "$@"
    echo "role-$1-id"
}

# Same calls as devstack's create_service_user.
function create_service_user {
    _record create_service_user "$@"
    get_or_create_user "$1" "$SERVICE_PASSWORD" "$SERVICE_DOMAIN_NAME" >/dev/null
    get_or_add_user_project_role service "$1" "$SERVICE_PROJECT_NAME" \
        "$SERVICE_DOMAIN_NAME" "$SERVICE_DOMAIN_NAME" >/dev/null
    if [[ -n "${2:-}" ]]; then
        get_or_add_user_project_role "$2" "$1" "$SERVICE_PROJECT_NAME" \
            "$SERVICE_DOMAIN_NAME" "$SERVICE_DOMAIN_NAME" >/dev/null
    fi
}

function get_or_create_service {
    _record get_or_create_service "$@"
    echo "service-$1-id"
}

function get_or_create_endpoint {
    _record get_or_create_endpoint "$@"
    echo "endpoint-public-id"
}

# --- database (lib/database, lib/databases/*) ----------------------------

function recreate_database { _record recreate_database "$@"; }

function database_connection_url {
    echo "postgresql://$DATABASE_USER:$DATABASE_PASSWORD@$DATABASE_HOST/$1?client_encoding=utf8"
}

function get_database_type_mysql {
    echo "mysql+pymysql"
}

# --- processes and images (functions-common, functions) -----------------

function run_process { _record run_process "$@"; }
function start_tls_proxy { _record start_tls_proxy "$@"; }
function stop_process { _record stop_process "$@"; }
function wait_for_service { _record wait_for_service "$@"; }

# Downloads nothing: records, and makes the image exist in the fake cloud
# under the name devstack gives it (file name without its disk extension).
function upload_image {
    _record upload_image "$@"
    local name=${1##*/}
    local suffix
    for suffix in .qcow2.xz .qcow2 .img.gz .img.bz2 .img .raw; do
        if [[ $name == *"$suffix" ]]; then
            name=${name%"$suffix"}
            break
        fi
    done
    mkdir -p "$FAKE_CLOUD/image"
    : >"$FAKE_CLOUD/image/$name"
}
