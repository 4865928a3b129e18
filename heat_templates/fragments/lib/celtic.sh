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

# celtic.sh: the shared library every node fragment sources.
#
# It gives fragments one way to log, retry, read the node parameters, render config
# templates, write files idempotently, run named steps and tell Heat how the node ended.
# It sets no shell options itself: each fragment sets `set -euo pipefail` inside its
# main guard, so bats can source the fragment and this library without side effects.
#
# Node contract (doc/node-contract.md):
#   $CELTIC_ETC/params.json   non-secret settings of the cluster and of this role (JSON),
#                             written by cloud-init from the Heat templates
#   $CELTIC_ETC/secrets/*     secrets this role needs, one file each (0600), and
#   $CELTIC_ETC/signal.json   where and with which key to report (0600), both written by
#                             celtic_fetch_vendordata from celtic-vendordata's answer in
#                             Nova's metadata service: no secret ever passes through Heat
# Nothing in this file ever prints the content of signal.json or of a secret.

# CELTIC_ROOT prefixes the system paths fragments write (/etc/hosts, /etc/systemd/...):
# empty on a node, a scratch directory in tests, so that a test never edits this machine.
CELTIC_ROOT=${CELTIC_ROOT:-}
CELTIC_ETC=${CELTIC_ETC:-/etc/celtic}
CELTIC_LIB_DIR=${CELTIC_LIB_DIR:-/usr/local/lib/celtic}
CELTIC_STATE_DIR=${CELTIC_STATE_DIR:-/var/lib/celtic}
CELTIC_LOG_FILE=${CELTIC_LOG_FILE:-/var/log/celtic.log}
CELTIC_SLEEP=${CELTIC_SLEEP:-sleep}
CELTIC_STEP=${CELTIC_STEP:-start}
CELTIC_FAIL_MESSAGE=${CELTIC_FAIL_MESSAGE:-}
CELTIC_CHANGED=${CELTIC_CHANGED:-0}

# ---------------------------------------------------------------------------------------
# logging

# celtic_log LEVEL MESSAGE...: one line to stderr (console), the journal and the log file.
celtic_log() {
    local level=$1
    shift
    local line
    # bash's own clock (no date process per line: a node logs two lines per step)
    TZ=UTC0 printf -v line '%(%Y-%m-%dT%H:%M:%SZ)T celtic[%s] %s: %s' -1 \
        "${CELTIC_ROLE:-node}" "$level" "$*"
    printf '%s\n' "$line" >&2
    if command -v logger >/dev/null 2>&1; then
        logger -t celtic -- "${level}: $*" 2>/dev/null || true
    fi
    if [[ -n "$CELTIC_LOG_FILE" ]]; then
        { printf '%s\n' "$line" >>"$CELTIC_LOG_FILE"; } 2>/dev/null || true
    fi
}

celtic_info() { celtic_log INFO "$@"; }
celtic_warn() { celtic_log WARN "$@"; }

# celtic_die MESSAGE...: fail the current step with a message that reaches Heat (from a
# subshell through CELTIC_FAIL_FILE).
celtic_die() {
    CELTIC_FAIL_MESSAGE="$*"
    celtic_log ERROR "$*"
    if [[ ${BASH_SUBSHELL:-0} -gt 0 && -n "${CELTIC_FAIL_FILE:-}" ]]; then
        { printf '%s\n' "$*" >"$CELTIC_FAIL_FILE"; } 2>/dev/null || true
    fi
    exit 1
}

# ---------------------------------------------------------------------------------------
# retries

# celtic_retry [-n ATTEMPTS] [-d DELAY] [-m MAX_DELAY] [--] COMMAND...
# Runs COMMAND until it succeeds, doubling the pause after each failure (bounded by
# MAX_DELAY). Returns the last exit status when every attempt failed.
celtic_retry() {
    local attempts=6 delay=2 max_delay=60
    while [[ $# -gt 0 ]]; do
        case "$1" in
            -n) attempts=$2; shift 2 ;;
            -d) delay=$2; shift 2 ;;
            -m) max_delay=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    local try=1 rc=0
    while true; do
        rc=0
        "$@" || rc=$?
        if [[ $rc -eq 0 ]]; then
            return 0
        fi
        if [[ $try -ge $attempts ]]; then
            celtic_warn "'$1' failed $try times (exit $rc), giving up"
            return "$rc"
        fi
        celtic_warn "'$1' failed (exit $rc), attempt $try of $attempts, retrying in ${delay}s"
        "$CELTIC_SLEEP" "$delay"
        try=$((try + 1))
        delay=$((delay * 2))
        if [[ $delay -gt $max_delay ]]; then
            delay=$max_delay
        fi
    done
}

# celtic_wait_for TIMEOUT_SECONDS INTERVAL DESCRIPTION COMMAND...: poll until COMMAND succeeds.
celtic_wait_for() {
    local timeout=$1 interval=$2 what=$3
    shift 3
    local waited=0
    until "$@"; do
        if [[ $waited -ge $timeout ]]; then
            celtic_log ERROR "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        "$CELTIC_SLEEP" "$interval"
        waited=$((waited + interval))
    done
}

# celtic_tcp_open HOST PORT: true when a TCP connection to HOST:PORT succeeds within 3 s.
celtic_tcp_open() {
    # shellcheck disable=SC2016  # $1 and $2 expand in the inner bash, on purpose
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# ---------------------------------------------------------------------------------------
# python

# celtic_python ARGS...: the node's python3, isolated (-I: no PYTHON* variable, no user
# site, not the current directory on sys.path) and without site-packages (-S). Every
# snippet in the fragments uses the standard library only, so what a pip install or an
# environment variable put on the node can neither change nor slow them: site alone
# costs a node about 15 ms of CPU per call, and a node makes several.
celtic_python() {
    python3 -I -S "$@"
}

# ---------------------------------------------------------------------------------------
# parameters

# celtic_json FILE KEY [KEY...]: print one value of a JSON document. Strings print raw,
# lists of scalars one item per line, anything else as compact JSON. Missing keys print
# nothing and return 1.
celtic_json() {
    celtic_python - "$@" <<'PY'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
with open(path) as f:
    value = json.load(f)
for key in keys:
    try:
        value = value[int(key)] if isinstance(value, list) else value[key]
    except (KeyError, IndexError, ValueError, TypeError):
        sys.exit(1)
if isinstance(value, bool):
    print('true' if value else 'false')
elif isinstance(value, (str, int, float)):
    print(value)
elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
    for v in value:
        print(v)
elif value is not None:
    print(json.dumps(value, sort_keys=True, separators=(',', ':')))
PY
}

# celtic_load_params [FILE]: export CELTIC_<KEY> for every top-level key of params.json
# (exported so that celtic_render templates can use {{CELTIC_<KEY>}}). Scalars keep their value, lists of scalars become space-separated words, maps and
# other lists stay compact JSON (read them with celtic_json).
celtic_load_params() {
    local file=${1:-$CELTIC_ETC/params.json}
    [[ -r "$file" ]] || celtic_die "node parameters $file are missing"
    local assignments
    assignments=$(celtic_python - "$file" <<'PY'
import json, re, shlex, sys
with open(sys.argv[1]) as f:
    params = json.load(f)
for key, value in sorted(params.items()):
    name = 'CELTIC_' + re.sub(r'[^A-Za-z0-9]', '_', key).upper()
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif value is None:
        text = ''
    elif isinstance(value, (str, int, float)):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        text = ' '.join(str(v) for v in value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(',', ':'))
    print('export %s=%s' % (name, shlex.quote(text)))
PY
) || celtic_die "node parameters $file are not valid JSON"
    eval "$assignments"
    export CELTIC_PARAMS_FILE=$file
}

# ---------------------------------------------------------------------------------------
# secrets (doc/security.md)

# Nova's metadata service; the lab points it at a directory (file://...).
CELTIC_METADATA_URL=${CELTIC_METADATA_URL:-http://169.254.169.254}
# Nova asks celtic-vendordata when the node first reads its metadata, and the metadata
# service may not answer at all in the first seconds of a boot: retry, bounded.
CELTIC_METADATA_ATTEMPTS=${CELTIC_METADATA_ATTEMPTS:-8}
CELTIC_VENDORDATA_HELP="Nova's metadata service served no celtic vendordata: nova.conf \
must have [api] vendordata_providers = StaticJSON,DynamicJSON and \
vendordata_dynamic_targets = celtic@<celtic-vendordata URL>/v1/vendordata, and \
celtic-vendordata must be running (its log says why it refused an instance); see \
doc/security.md in magnum-celtic"

# celtic_fetch_vendordata: this node's secrets (secrets/<file>, 0600) and its signal
# credentials (signal.json, 0600) from celtic-vendordata's part of vendor_data2.json.
# Without one, the node can neither work nor report: the console says what is missing.
celtic_fetch_vendordata() {
    local url=$CELTIC_METADATA_URL/openstack/latest/vendor_data2.json rc=0
    celtic_retry -n "$CELTIC_METADATA_ATTEMPTS" -d 2 -m 30 -- \
        _celtic_vendordata_once "$url" || rc=$?
    case $rc in
        0) ;;
        3)
            celtic_log ERROR "$CELTIC_VENDORDATA_HELP"
            celtic_die "no celtic vendordata for this node (nova.conf vendordata, see doc/security.md)"
            ;;
        4) celtic_die "celtic vendordata is not for a ${CELTIC_ROLE:-node}: see the line above" ;;
        5) celtic_die "celtic vendordata is malformed: see the line above" ;;
        6) celtic_die "the fragment files from celtic-vendordata are not the ones this" \
            "node's bundle names: see the line above" ;;
        *) celtic_die "cannot read $url (Nova's metadata service)" ;;
    esac
}

# _celtic_vendordata_once URL: one try. 0 done, 1 unreachable, 3 no celtic part,
# 4 another role's, 5 malformed, 6 fragment files that are not the ones this node's
# bundle names by their SHA-256 (vendordata.sha256: a role whose optional steps travel
# in vendordata, fragments/bundles.yaml); those are unpacked beside the bundle's. Python reads the URL: http:// (Nova's metadata service)
# with http.client, which never goes through an HTTP proxy (the metadata service is
# link-local, a cluster template's proxy must not see it), or file:// (the lab's nodes).
_celtic_vendordata_once() {
    local url=$1
    # its exit status is the function's (celtic_retry runs it outside errexit)
    celtic_python - "$url" "$CELTIC_ETC" "${CELTIC_ROLE:-}" "$CELTIC_LIB_DIR" <<'PY'
import json, os, re, sys
url, etc, role, lib = sys.argv[1:5]
def fail(code, message):
    sys.stderr.write('celtic vendordata: %s\n' % message)
    sys.exit(code)
def read(url):
    if url.startswith('file://'):
        with open(url[len('file://'):], 'rb') as f:
            return f.read()
    if not url.startswith('http://'):
        raise ValueError('not an http:// or file:// URL')
    import http.client
    host, _, path = url[len('http://'):].partition('/')
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.request('GET', '/' + path)
        answer = conn.getresponse()
        raw = answer.read()
    except http.client.HTTPException as exc:  # a broken answer: retried like no answer
        raise OSError('%s: %s' % (type(exc).__name__, exc))
    finally:
        conn.close()
    if answer.status != 200:
        raise OSError('HTTP %d' % answer.status)
    return raw
try:
    raw = read(url)
except (OSError, ValueError) as exc:
    fail(1, 'cannot read %s: %s' % (url, exc))
try:
    data = json.loads(raw)
except ValueError:
    fail(5, 'vendor_data2.json is not JSON')
celtic = data.get('celtic') if isinstance(data, dict) else None
if not celtic:
    sys.exit(3)
if not isinstance(celtic, dict) or not isinstance(celtic.get('secrets'), dict) \
        or not isinstance(celtic.get('signal'), dict):
    fail(5, 'the celtic part has no secrets or no signal map')
if role and celtic.get('role') != role:
    fail(4, 'celtic-vendordata says this node is a %r, it runs the %s script' % (
        celtic.get('role'), role))
def write(dest, text):
    os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
    tmp = dest + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)
secrets = sorted(celtic['secrets'].items())
bad = [n for n, c in secrets
        if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]*', n) or not isinstance(c, str)]
if bad:
    fail(5, 'secret name %r is not a plain file name, or its content not text' % (
        bad[0][:40]))
signal = celtic['signal']
missing = [k for k in ('url', 'cluster_uuid', 'instance_id', 'key')
        if not isinstance(signal.get(k), str) or not signal[k]]
if missing:
    fail(5, 'the signal map has no %s' % missing[0])
digest_file = os.path.join(lib, 'vendordata.sha256')
if os.path.exists(digest_file):
    import base64, hashlib, io, tarfile
    with open(digest_file) as f:
        want = f.read().strip()
    files = celtic.get('files')
    if not isinstance(files, str) or not files:
        fail(6, 'this node expects fragment files (SHA-256 %s) and celtic-vendordata '
            'served none: it runs an older magnum-celtic than magnum-conductor'
            % want[:12])
    got = hashlib.sha256(files.encode('ascii', 'replace')).hexdigest()
    if got != want:
        fail(6, 'celtic-vendordata served fragment files with SHA-256 %s, the bundle '
            'of this node names %s: the cluster stack holds other files than the ones '
            'this node was rendered with' % (got[:12], want[:12]))
    try:
        tar = tarfile.open(fileobj=io.BytesIO(base64.b64decode(files)), mode='r:xz')
        members = tar.getmembers()
    except (ValueError, tarfile.TarError, EOFError) as exc:
        fail(5, 'the fragment files are not an xz tar: %s' % exc)
    bad = [m.name for m in members if not m.isfile() or not re.fullmatch(
        r'[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*', m.name) or '..' in m.name.split('/')]
    if bad:
        fail(5, 'fragment file %r is not a plain relative path' % bad[0][:60])
    def unpack(member):
        dest = os.path.join(lib, member.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest + '.tmp', 'wb') as f:
            f.write(tar.extractfile(member).read())
        os.chmod(dest + '.tmp', member.mode & 0o755)
        os.replace(dest + '.tmp', dest)
    [unpack(m) for m in members]
    print('celtic vendordata: %d fragment file(s) unpacked in %s' % (len(members), lib))
[write(os.path.join(etc, 'secrets', n), c) for n, c in secrets]
write(os.path.join(etc, 'signal.json'), json.dumps(signal, sort_keys=True))
print('celtic vendordata: %d secret file(s) for this %s: %s'
    % (len(celtic['secrets']), celtic.get('role'), ' '.join(sorted(celtic['secrets']))))
PY
}

# celtic_secret NAME: path of a secret file, failing when the role did not receive it.
celtic_secret() {
    local path="$CELTIC_ETC/secrets/$1"
    [[ -s "$path" ]] || celtic_die "secret $1 was not delivered to this node"
    printf '%s\n' "$path"
}

# ---------------------------------------------------------------------------------------
# node identity

celtic_node_name() {
    if [[ -n "${CELTIC_NODE_NAME:-}" ]]; then
        printf '%s\n' "$CELTIC_NODE_NAME"
    else
        hostname -s 2>/dev/null || hostname
    fi
}

# celtic_node_id: a stable id for this node's Heat signal (the Nova instance id).
celtic_node_id() {
    if [[ -n "${CELTIC_NODE_ID:-}" ]]; then
        printf '%s\n' "$CELTIC_NODE_ID"
    elif [[ -r /var/lib/cloud/data/instance-id ]]; then
        cat /var/lib/cloud/data/instance-id
    else
        celtic_node_name
    fi
}

# celtic_node_ip: the address of the interface that holds the default route, or the
# address given in CELTIC_NODE_IP.
celtic_node_ip() {
    if [[ -n "${CELTIC_NODE_IP:-}" ]]; then
        printf '%s\n' "$CELTIC_NODE_IP"
        return 0
    fi
    ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1
}

# celtic_node_nic: the interface that holds the node address (IPaddr2 needs nic=).
celtic_node_nic() {
    if [[ -n "${CELTIC_NODE_NIC:-}" ]]; then
        printf '%s\n' "$CELTIC_NODE_NIC"
        return 0
    fi
    local ip
    ip=$(celtic_node_ip)
    ip -4 -o addr show 2>/dev/null | awk -v ip="$ip" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}'
}

# celtic_index_of VALUE WORD...: zero-based position of VALUE among WORDs, or fail.
celtic_index_of() {
    local value=$1 i=0 word
    shift
    for word in "$@"; do
        if [[ "$word" == "$value" ]]; then
            printf '%s\n' "$i"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# files and templates

# celtic_write_file DEST MODE: write stdin to DEST atomically, only when it differs.
# Sets CELTIC_CHANGED=1 when the file was written; the mode is always enforced. Feed it
# with a redirection (<<<, < file), not a pipe: a pipe runs it in a subshell and the
# caller would not see CELTIC_CHANGED.
celtic_write_file() {
    local dest=$1 mode=$2 tmp
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "${dest}.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        chmod "$mode" "$dest"
        return 0
    fi
    mv -f "$tmp" "$dest"
    CELTIC_CHANGED=1
    celtic_info "wrote $dest"
}

# celtic_render TEMPLATE DEST MODE: replace every {{NAME}} in TEMPLATE with the value of
# the environment variable NAME and write the result with celtic_write_file. A
# placeholder without a value fails the step and names it.
celtic_render() {
    local template=$1 dest=$2 mode=$3 rendered
    [[ -r "$template" ]] || celtic_die "template $template is missing"
    rendered=$(celtic_python - "$template" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
missing = sorted({m for m in re.findall(r'{{\s*([A-Z][A-Z0-9_]*)\s*}}', text)
                  if m not in os.environ})
if missing:
    sys.stderr.write('unset template variables: %s\n' % ', '.join(missing))
    sys.exit(3)
sys.stdout.write(re.sub(r'{{\s*([A-Z][A-Z0-9_]*)\s*}}', lambda m: os.environ[m.group(1)], text))
sys.stdout.write('\n' if not text.endswith('\n') else '')
PY
) || celtic_die "cannot render $(basename "$template")"
    celtic_write_file "$dest" "$mode" <<<"$rendered"
}

# celtic_timer NAME UNIT_DIR: the systemd units NAME.service and NAME.timer, rendered
# from templates/NAME.{service,timer}.tmpl (the caller sets what they name), then the
# timer enabled and started. systemd reloads only when a unit changed; CELTIC_CHANGED
# stays as it was, or becomes 1 when a unit changed.
celtic_timer() {
    local name=$1 dir=$2 before=$CELTIC_CHANGED kind
    CELTIC_CHANGED=0
    for kind in service timer; do
        celtic_render "$CELTIC_LIB_DIR/templates/$name.$kind.tmpl" "$dir/$name.$kind" 0644
    done
    if [[ $CELTIC_CHANGED -eq 1 ]]; then
        systemctl daemon-reload
    fi
    systemctl enable --now "$name.timer" >/dev/null || celtic_die "cannot start $name.timer"
    if [[ $before -eq 1 ]]; then
        CELTIC_CHANGED=1
    fi
}

# celtic_done_marker NAME / celtic_mark_done NAME: remember one-shot actions across runs.
celtic_done_marker() {
    [[ -e "$CELTIC_STATE_DIR/done/$1" ]]
}

celtic_mark_done() {
    mkdir -p "$CELTIC_STATE_DIR/done"
    : >"$CELTIC_STATE_DIR/done/$1"
}

# ---------------------------------------------------------------------------------------
# packages

# cloud-init and unattended-upgrades hold the dpkg lock at first boot: apt waits for it.
CELTIC_APT_LOCK_TIMEOUT=${CELTIC_APT_LOCK_TIMEOUT:-600}
CELTIC_OS_RELEASE=${CELTIC_OS_RELEASE:-/etc/os-release}
CELTIC_PACKAGES_TABLE=${CELTIC_PACKAGES_TABLE:-$CELTIC_LIB_DIR/lib/packages.txt}

celtic_apt_get() {
    env DEBIAN_FRONTEND=noninteractive apt-get -o "DPkg::Lock::Timeout=$CELTIC_APT_LOCK_TIMEOUT" "$@"
}

# celtic_distro: ID-VERSION_ID of os-release (debian-12, debian-13, ubuntu-24.04).
celtic_distro() {
    local id version
    [[ -r "$CELTIC_OS_RELEASE" ]] || celtic_die "$CELTIC_OS_RELEASE is missing: cannot tell the distribution"
    # shellcheck source=/dev/null
    id=$(. "$CELTIC_OS_RELEASE" && printf '%s' "${ID:-}")
    # shellcheck source=/dev/null
    version=$(. "$CELTIC_OS_RELEASE" && printf '%s' "${VERSION_ID:-}")
    printf '%s-%s\n' "$id" "$version"
}

# celtic_package_names NAME[=VERSION]...: CELTIC_PACKAGE_NAMES, this distribution's
# packages for NAMEs (lib/packages.txt), or fail naming the first without a row.
celtic_package_names() {
    local distro arg name version package
    distro=$(celtic_distro)
    [[ -r "$CELTIC_PACKAGES_TABLE" ]] || celtic_die "the package table $CELTIC_PACKAGES_TABLE is missing"
    CELTIC_PACKAGE_NAMES=()
    for arg in "$@"; do
        name=${arg%%=*}
        version=""
        if [[ "$arg" == *=* ]]; then
            version="=${arg#*=}"
        fi
        package=$(awk -v n="$name" -v d="$distro" '$1 == n && $2 == d {print $3; exit}' \
            "$CELTIC_PACKAGES_TABLE")
        if [[ -z "$package" ]]; then
            local known
            known=$(awk '!/^#/ && NF {print $2}' "$CELTIC_PACKAGES_TABLE" | sort -u | tr '\n' ' ')
            celtic_die "no package for '$name' on $distro in lib/packages.txt (supported: ${known% })"
        fi
        CELTIC_PACKAGE_NAMES+=("$package$version")
    done
}

# celtic_install NAME...: their packages, without Recommends: name what you use.
celtic_install() {
    celtic_package_names "$@"
    celtic_apt_install "${CELTIC_PACKAGE_NAMES[@]}"
}

# celtic_apt_install PACKAGE...: install what is missing, with retries.
celtic_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    celtic_info "installing ${missing[*]}"
    celtic_retry -n 5 -d 5 -- celtic_apt_get install -y -q --no-install-recommends "${missing[@]}"
}

celtic_apt_mark_hold() {
    apt-mark -o "DPkg::Lock::Timeout=$CELTIC_APT_LOCK_TIMEOUT" hold "$@" >/dev/null ||
        celtic_die "cannot hold $*"
}

celtic_apt_update() {
    celtic_retry -n 5 -d 5 -- celtic_apt_get update -q
}

# ---------------------------------------------------------------------------------------
# steps and signalling

# celtic_step NAME COMMAND...: run one named step; a failure ends the fragment and the
# EXIT trap tells Heat which step failed on which node.
celtic_step() {
    local name=$1 started
    shift
    CELTIC_STEP=$name
    started=$EPOCHSECONDS
    celtic_info "step $name: start"
    "$@"
    celtic_info "step $name: done in $((EPOCHSECONDS - started))s"
}

# celtic_signal STATUS REASON: tell the wait condition how this node ended, through
# celtic-vendordata's signal relay (doc/security.md): POST the report to signal.url with
# X-Celtic-Signature: sha256=<HMAC-SHA256 of the exact body, keyed with signal.key>.
# STATUS is SUCCESS or FAILURE. The key comes from signal.json and never reaches the
# command line, the environment of child processes or a log. CELTIC_SIGNAL_ID (default:
# the node name) is the report's id in the wait condition (a later report under the
# same id replaces it); CELTIC_SIGNAL_HANDLE=members reports to the group's
# members_handle instead of its boot wait (node/members.sh).
celtic_signal() {
    local status=$1 reason=$2 signal_file=${CELTIC_SIGNAL_FILE:-$CELTIC_ETC/signal.json}
    if [[ ! -r "$signal_file" ]]; then
        celtic_warn "no $signal_file: cannot report $status (no celtic vendordata?)"
        return 0
    fi
    local work rc=0 id=${CELTIC_SIGNAL_ID:-} handle=${CELTIC_SIGNAL_HANDLE:-}
    [[ -n "$id" ]] || id=$(celtic_node_name)
    work=$(mktemp -d "${TMPDIR:-/tmp}/celtic-signal.XXXXXX")
    chmod 700 "$work"
    celtic_python - "$signal_file" "$work" "$status" "$reason" "$id" "$handle" <<'PY' || rc=$?
import hashlib, hmac, json, os, sys
signal_file, work, status, reason, node, handle = sys.argv[1:7]
with open(signal_file) as f:
    sig = json.load(f)
def write(name, data):
    fd = os.open(os.path.join(work, name), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
report = {'cluster_uuid': sig['cluster_uuid'], 'instance_id': sig['instance_id'],
          'status': status, 'reason': reason[:1000], 'id': node, 'data': reason[:255]}
if handle:
    report['handle'] = handle
body = json.dumps(report, sort_keys=True).encode()
digest = hmac.new(sig['key'].encode(), body, hashlib.sha256).hexdigest()
write('body.json', body)
write('headers', ('X-Celtic-Signature: sha256=%s\n' % digest).encode())
write('url', sig['url'].encode())
PY
    if [[ $rc -ne 0 ]]; then
        rm -rf "$work"
        celtic_warn "signal credentials in $signal_file are unusable"
        return 1
    fi
    celtic_retry -n "${CELTIC_SIGNAL_ATTEMPTS:-8}" -d 2 -m 30 -- _celtic_post_once "$work" || rc=$?
    if [[ -e "$work/refused" ]]; then
        rc=1
    fi
    rm -rf "$work"
    if [[ $rc -eq 0 ]]; then
        celtic_info "reported $status"
    else
        celtic_warn "could not report $status"
    fi
    return "$rc"
}

_celtic_curl_tls_args() {
    if [[ "${CELTIC_OPENSTACK_INSECURE:-false}" == "true" ]]; then
        printf '%s\n' --insecure
    elif [[ -s "$CELTIC_ETC/openstack-ca.pem" ]]; then
        printf '%s\n' --cacert "$CELTIC_ETC/openstack-ca.pem"
    fi
}

# _celtic_post_once WORK: one POST to the relay. A 4xx answer (a refused signature, a
# malformed report) is final: retrying sends the same bytes. 5xx and connection errors
# are retried by the caller.
_celtic_post_once() {
    local work=$1 tls code
    mapfile -t tls < <(_celtic_curl_tls_args)
    # A slow answer is not a lost one: the relay keeps handling a report whose sender
    # gave up, and a retry is one more signal for a busy Heat. Wait long, retry rarely.
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 120 "${tls[@]}" \
        -H "@$work/headers" -H 'Content-Type: application/json' \
        --data-binary "@$work/body.json" "$(cat "$work/url")") || return 1
    case "$code" in
        2??) return 0 ;;
        4??)
            celtic_warn "the signal relay refused the report (HTTP $code)"
            : >"$work/refused"
            return 0
            ;;
        *) return 1 ;;
    esac
}

# celtic_run FUNCTION [ARGS...]: run a fragment's main function under the EXIT trap that
# signals SUCCESS, or FAILURE naming the node and the step that failed.
celtic_run() {
    CELTIC_STEP=start
    trap '_celtic_finish $?' EXIT
    CELTIC_FAIL_FILE=$(mktemp "${TMPDIR:-/tmp}/celtic-failure.XXXXXX")
    "$@"
}

_celtic_finish() {
    local rc=$1 node
    trap - EXIT
    if [[ -z "$CELTIC_FAIL_MESSAGE" && -s "${CELTIC_FAIL_FILE:-}" ]]; then
        CELTIC_FAIL_MESSAGE=$(<"$CELTIC_FAIL_FILE")
    fi
    rm -f "${CELTIC_FAIL_FILE:-}"
    node=$(celtic_node_name)
    if [[ $rc -eq 0 ]]; then
        celtic_info "node $node (${CELTIC_ROLE:-node}) is ready"
        celtic_signal SUCCESS "$node: ${CELTIC_ROLE:-node} ready" || true
    else
        local reason="$node: step $CELTIC_STEP failed"
        if [[ -n "$CELTIC_FAIL_MESSAGE" ]]; then
            reason="$reason: $CELTIC_FAIL_MESSAGE"
        else
            reason="$reason (exit $rc)"
        fi
        celtic_log ERROR "$reason"
        celtic_signal FAILURE "$reason" || true
    fi
    exit "$rc"
}
