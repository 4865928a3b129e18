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

# heal.sh: auto-healing of the workers (label auto_healing_enabled; doc/autoscaling.md,
# "Auto-healing").
#
# celtic-heal.timer runs `master.sh heal` every HEAL_INTERVAL seconds on every master;
# one pass:
#   1. the Nodes (kubectl, admin.conf); the master that heals is the first in index
#      order whose Node is Ready (node/heal_plan.py leader): the others stop here
#   2. a token from Keystone with the cluster's application credential
#      (/etc/celtic/secrets/application-credential.json, 0600, masters only)
#   3. Magnum: the cluster (nothing happens unless its status is *_COMPLETE: a change
#      under way or a failed one is left alone) and its worker nodegroups; Heat: each
#      pool's members (name, server id) from celtic's stack outputs; Nova: the project's
#      servers in ERROR
#   4. the plan (node/heal_plan.py plan): the workers to replace in one nodegroup
#   5. Magnum's resize of that nodegroup with its node_count unchanged and the workers
#      as nodes_to_remove, which celtic's driver carries out as a replacement (new
#      members take fresh indices); the Nodes are cordoned, and deleted from Kubernetes
#      once their servers have left the pool
# Masters are never replaced: only worker nodegroups are read, and a control-plane Node
# is skipped even if a pool named it.
#
# Needs lib/celtic.sh, node/members.sh (members_desired) and kube_defaults (KUBE_ETC).

HEAL_INTERVAL=${HEAL_INTERVAL:-60}
HEAL_UNIT_DIR=${HEAL_UNIT_DIR:-${CELTIC_ROOT:-}/etc/systemd/system}
# Magnum's API microversion: nodegroups and resize with a nodegroup need >= 1.10 (from
# 1.13 on, a cluster's stack_id is called cluster_id)
HEAL_MAGNUM_VERSION='container-infra 1.10'
# a compute endpoint instead of the catalog's (a cloud whose catalog has none for the
# credential's region; the lab)
CELTIC_HEAL_COMPUTE_URL=${CELTIC_HEAL_COMPUTE_URL:-}
HEAL_WORK=
# the Magnum and Heat endpoints of this run (the catalog's, heal_run)
HEAL_MAGNUM=
HEAL_HEAT=
# the clock of the plan, epoch seconds (tests pin it)
HEAL_NOW=${HEAL_NOW:-}

# heal_kubectl ARGS...: kubectl as cluster admin on this master.
heal_kubectl() {
    kubectl --kubeconfig "$KUBE_ETC/admin.conf" "$@"
}

# heal_plan ARGS...: node/heal_plan.py.
heal_plan() {
    celtic_python "$CELTIC_LIB_DIR/node/heal_plan.py" "$@"
}

# heal_credential: the path of the cluster's application credential, refused when it is
# missing or readable by anyone but root.
heal_credential() {
    local path=$CELTIC_ETC/secrets/application-credential.json mode
    [[ -s "$path" ]] || celtic_die "no application credential on this master" \
        "($path): celtic-vendordata gives one to clusters with auto_healing_enabled=true"
    mode=$(stat -c '%a' "$path") || celtic_die "cannot stat $path"
    if [[ "$mode" != 600 && "$mode" != 400 ]]; then
        celtic_die "$path has mode $mode: it must be 0600 (it holds a secret)"
    fi
    printf '%s\n' "$path"
}

# heal_curl ARGS...: curl with the node's OpenStack TLS settings; prints the HTTP code
# (or what HEAL_WRITE_OUT asks for).
heal_curl() {
    local tls write_out='%{http_code}'
    if [[ -n "${HEAL_WRITE_OUT:-}" ]]; then
        write_out=$HEAL_WRITE_OUT
    fi
    mapfile -t tls < <(_celtic_curl_tls_args)
    curl -sS --max-time 60 -w "$write_out" "${tls[@]}" "$@"
}

# heal_token: a Keystone token for the credential in $HEAL_WORK/token.header ("X-Auth-
# Token: ...", a header file: the token is never on a command line) and the catalog's
# public endpoints in $HEAL_WORK/endpoints.json ({service type: URL}).
heal_token() {
    local credential code
    credential=$(heal_credential) || exit 1
    celtic_python - "$credential" "$HEAL_WORK" <<'PY' || celtic_die "$credential is not a credential document"
import json, os, sys
credential, work = sys.argv[1:3]
with open(credential) as f:
    doc = json.load(f)
body = {'auth': {'identity': {'methods': ['application_credential'],
                              'application_credential': {
                                  'id': doc['application_credential_id'],
                                  'secret': doc['application_credential_secret']}}}}
url = doc['auth_url'].rstrip('/')
url = url if url.endswith('/v3') else url + '/v3'
fd = os.open(os.path.join(work, 'auth.json'), os.O_WRONLY | os.O_CREAT, 0o600)
with os.fdopen(fd, 'w') as f:
    json.dump(body, f)
with open(os.path.join(work, 'auth.url'), 'w') as f:
    f.write(url + '/auth/tokens')
with open(os.path.join(work, 'region'), 'w') as f:
    f.write(doc.get('region_name') or '')
PY
    code=$(heal_curl -o "$HEAL_WORK/token.json" -D "$HEAL_WORK/token.headers" \
        -H 'Content-Type: application/json' --data-binary "@$HEAL_WORK/auth.json" \
        "$(cat "$HEAL_WORK/auth.url")") || code=000
    rm -f "$HEAL_WORK/auth.json"
    [[ "$code" == 201 ]] || celtic_die "Keystone did not accept the cluster's application" \
        "credential (HTTP $code at $(cat "$HEAL_WORK/auth.url")): deleted or rotated?" \
        "(openstack coe credential rotate; doc/autoscaling.md)"
    celtic_python - "$HEAL_WORK" <<'PY' || celtic_die "Keystone's answer has no token or catalog"
import json, os, sys
work = sys.argv[1]
token = ''
with open(os.path.join(work, 'token.headers')) as f:
    for line in f:
        key, _, value = line.partition(':')
        if key.strip().lower() == 'x-subject-token':
            token = value.strip()
if not token:
    sys.exit(1)
fd = os.open(os.path.join(work, 'token.header'), os.O_WRONLY | os.O_CREAT, 0o600)
with os.fdopen(fd, 'w') as f:
    f.write('X-Auth-Token: %s\n' % token)
os.remove(os.path.join(work, 'token.headers'))
with open(os.path.join(work, 'region')) as f:
    region = f.read().strip()
with open(os.path.join(work, 'token.json')) as f:
    catalog = json.load(f)['token'].get('catalog') or []
found = {}
for service in catalog:
    for endpoint in service.get('endpoints') or ():
        if endpoint.get('interface') != 'public':
            continue
        if region and endpoint.get('region_id', endpoint.get('region')) != region:
            continue
        found.setdefault(service.get('type'), endpoint['url'].rstrip('/'))
with open(os.path.join(work, 'endpoints.json'), 'w') as f:
    json.dump(found, f)
PY
}

# heal_endpoint TYPE: the catalog's public URL of a service type.
heal_endpoint() {
    local url
    if [[ "$1" == compute && -n "$CELTIC_HEAL_COMPUTE_URL" ]]; then
        printf '%s\n' "${CELTIC_HEAL_COMPUTE_URL%/}"
        return 0
    fi
    url=$(celtic_json "$HEAL_WORK/endpoints.json" "$1") ||
        celtic_die "the catalog has no public $1 endpoint for the credential's region"
    printf '%s\n' "$url"
}

# heal_get URL OUT WHAT [CURL_ARGS...]: GET URL into OUT, or fail the run naming WHAT.
heal_get() {
    local url=$1 out=$2 what=$3 code
    shift 3
    code=$(heal_curl -o "$out" -H "@$HEAL_WORK/token.header" -H 'Accept: application/json' \
        "$@" "$url") || code=000
    [[ "$code" == 200 ]] || celtic_die "cannot read $what (HTTP $code from $url)"
}

# heal_magnum PATH OUT WHAT: GET from Magnum at HEAL_MAGNUM_VERSION.
heal_magnum() {
    heal_get "$HEAL_MAGNUM/$1" "$2" "$3" \
        -H "OpenStack-API-Version: $HEAL_MAGNUM_VERSION"
}

# heal_stack_path ID: <name>/<id> of a Heat stack (Heat's lookup answers a bare id with
# a redirect to it; only its path is kept, whatever host Heat wrote into it).
heal_stack_path() {
    local heat location code
    heat=$HEAL_HEAT
    code=$(HEAL_WRITE_OUT='%{http_code} %{redirect_url}' heal_curl -o /dev/null \
        -H "@$HEAL_WORK/token.header" "$heat/stacks/$1") || code=000
    location=${code#* }
    code=${code%% *}
    [[ "$code" == 302 && "$location" == */stacks/*/* ]] ||
        celtic_die "cannot find Heat stack $1 (HTTP $code)"
    printf '%s\n' "${location##*/stacks/}"
}

# heal_output STACK_PATH KEY OUT: one output of a stack (Heat's output-show: the other
# outputs are not resolved).
heal_output() {
    heal_get "$HEAL_HEAT/stacks/$1/outputs/$2" "$3" \
        "output $2 of stack ${1%%/*}"
}

# heal_members STACK_ID OUTPUT OUT: the [name, server id] pairs of the pool whose
# servers stack the output OUTPUT of stack STACK_ID names (minion_nodes_stack in the
# cluster's stack, nodes_stack in a nodegroup's own).
heal_members() {
    local stack=$1 output=$2 out=$3 path servers
    path=$(heal_stack_path "$stack") || exit 1
    heal_output "$path" "$output" "$HEAL_WORK/ref.json"
    servers=$(celtic_python - "$HEAL_WORK/ref.json" <<'PY'
import json, sys, urllib.parse
with open(sys.argv[1]) as f:
    ref = json.load(f)['output']['output_value'] or ''
_, marker, path = ref.partition(':stacks/')
print(urllib.parse.unquote(path.strip('/') if marker else ref))
PY
) || celtic_die "stack ${path%%/*} names no servers stack in output $output"
    [[ -n "$servers" ]] || celtic_die "stack ${path%%/*} names no servers stack in output $output"
    heal_output "$servers" names "$HEAL_WORK/names.json"
    heal_output "$servers" server_ids "$HEAL_WORK/ids.json"
    celtic_python - "$HEAL_WORK/names.json" "$HEAL_WORK/ids.json" >"$out" <<'PY' ||
import json, sys
names, ids = ([str(v) for v in json.load(open(p))['output']['output_value'] or ()]
              for p in sys.argv[1:3])
if len(names) != len(ids):
    sys.exit(1)
print(json.dumps([list(pair) for pair in zip(names, ids)]))
PY
        celtic_die "the servers stack ${servers%%/*} lists names and server_ids that differ"
}

# heal_pools: $HEAL_WORK/pools.json, the worker nodegroups with their members.
heal_pools() {
    local stack name count status default cluster_stack i=0
    cluster_stack=$(celtic_json "$HEAL_WORK/cluster.json" stack_id) ||
        celtic_die "Magnum shows no stack for this cluster"
    : >"$HEAL_WORK/pools.lines"
    # the default nodegroup is in the cluster's stack, every other one in its own
    # (adapters.has_own_stack); one whose stack was never created has no servers
    while IFS=$'\t' read -r name count status default stack; do
        if [[ "$default" == default || "$stack" == "$cluster_stack" ]]; then
            heal_members "$cluster_stack" minion_nodes_stack "$HEAL_WORK/members.$i.json"
        elif [[ -n "$stack" ]]; then
            heal_members "$stack" nodes_stack "$HEAL_WORK/members.$i.json"
        else
            celtic_info "heal: nodegroup $name has no stack: nothing to heal in it"
            continue
        fi
        printf '%s\t%s\t%s\t%s\n' "$name" "$count" "$status" "$HEAL_WORK/members.$i.json" \
            >>"$HEAL_WORK/pools.lines"
        i=$((i + 1))
    done < <(celtic_python - "$HEAL_WORK/nodegroups.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    groups = json.load(f).get('nodegroups') or []
for group in groups:
    if group.get('role') == 'master':
        continue
    # no empty field but the last: read splits on runs of tabs
    print('\t'.join([group.get('name') or '-', str(group.get('node_count') or 0),
                     group.get('status') or '-',
                     'default' if group.get('is_default') else 'own',
                     group.get('stack_id') or '']))
PY
)
    celtic_python - "$HEAL_WORK/pools.lines" >"$HEAL_WORK/pools.json" <<'PY' ||
import json, sys
pools = []
for line in open(sys.argv[1]):
    name, count, status, members = line.rstrip('\n').split('\t')
    pools.append({'name': name, 'node_count': int(count or 0), 'status': status,
                  'members': json.load(open(members))})
print(json.dumps(pools))
PY
        celtic_die "cannot gather the nodegroups' members"
}

# heal_forget: the Nodes of workers replaced earlier whose servers have left every pool
# are deleted from Kubernetes (their kubelets are gone with them).
heal_forget() {
    local file=$CELTIC_STATE_DIR/heal/replaced name kept=()
    [[ -s "$file" ]] || return 0
    while read -r name; do
        [[ -n "$name" ]] || continue
        if celtic_python - "$HEAL_WORK/pools.json" "$name" <<'PY'; then
import json, sys
pools = json.load(open(sys.argv[1]))
sys.exit(0 if any(m[0] == sys.argv[2] for p in pools for m in p['members']) else 1)
PY
            kept+=("$name")
            continue
        fi
        if heal_kubectl delete node "$name" --ignore-not-found </dev/null >/dev/null; then
            celtic_info "heal: deleted Node $name (its server left the pool)"
        else
            kept+=("$name")
        fi
    done <"$file"
    if [[ ${#kept[@]} -gt 0 ]]; then
        printf '%s\n' "${kept[@]}" >"$file"
    else
        rm -f "$file"
    fi
}

# heal_replace: ask Magnum to replace what $HEAL_WORK/plan.json names.
heal_replace() {
    local url code group names name
    celtic_python - "$HEAL_WORK/plan.json" >"$HEAL_WORK/resize.json" <<'PY'
import json, sys
replace = json.load(open(sys.argv[1]))['replace']
print(json.dumps({'node_count': replace['node_count'], 'nodegroup': replace['nodegroup'],
                  'nodes_to_remove': replace['ids']}))
PY
    group=$(celtic_json "$HEAL_WORK/plan.json" replace nodegroup)
    names=$(celtic_json "$HEAL_WORK/plan.json" replace names | tr '\n' ' ')
    url="$HEAL_MAGNUM/clusters/$CELTIC_CLUSTER_UUID/actions/resize"
    code=$(heal_curl -o "$HEAL_WORK/resize.answer" -X POST -H "@$HEAL_WORK/token.header" \
        -H 'Content-Type: application/json' -H 'Accept: application/json' \
        -H "OpenStack-API-Version: $HEAL_MAGNUM_VERSION" \
        --data-binary "@$HEAL_WORK/resize.json" "$url") || code=000
    if [[ "$code" != 202 ]]; then
        celtic_die "Magnum refused to replace ${names% } of nodegroup $group (HTTP $code):" \
            "$(head -c 500 "$HEAL_WORK/resize.answer" 2>/dev/null)"
    fi
    celtic_info "heal: Magnum replaces ${names% } of nodegroup $group (resize, node_count" \
        "$(celtic_json "$HEAL_WORK/plan.json" replace node_count) kept)"
    mkdir -p "$CELTIC_STATE_DIR/heal"
    for name in $names; do
        printf '%s\n' "$name" >>"$CELTIC_STATE_DIR/heal/replaced"
        heal_kubectl cordon "$name" >/dev/null 2>&1 ||
            celtic_warn "heal: cannot cordon Node $name"
    done
}

# heal_run: one pass (see the top). Nothing to do ends quietly.
heal_run() {
    local addresses=() leader me status nova
    me=$(celtic_node_ip)
    heal_kubectl get nodes -o json >"$HEAL_WORK/nodes.json" ||
        celtic_die "cannot list the Nodes (is the API server on this master up?)"
    mapfile -t addresses < <(members_desired)
    # the server metadata lists the masters once Heat set it; before that, params do
    if [[ ${#addresses[@]} -eq 0 ]]; then
        read -ra addresses <<<"${CELTIC_MASTER_ADDRESSES:-}"
    fi
    leader=$(heal_plan leader "$HEAL_WORK/nodes.json" "${addresses[@]}") ||
        celtic_die "cannot read the Node list"
    if [[ "$leader" != "$me" ]]; then
        return 0
    fi
    heal_token
    HEAL_MAGNUM=$(heal_endpoint container-infra) || exit 1
    HEAL_HEAT=$(heal_endpoint orchestration) || exit 1
    heal_magnum "clusters/$CELTIC_CLUSTER_UUID" "$HEAL_WORK/cluster.json" "the cluster"
    status=$(celtic_json "$HEAL_WORK/cluster.json" status) || status=''
    if [[ "$status" != *_COMPLETE ]]; then
        celtic_info "heal: the cluster is ${status:-in no known status}: not healing now" \
            "(a failed change needs a person: openstack coe cluster show)"
        return 0
    fi
    heal_magnum "clusters/$CELTIC_CLUSTER_UUID/nodegroups" "$HEAL_WORK/nodegroups.json" \
        "the cluster's nodegroups"
    heal_pools
    heal_forget
    nova=$(heal_endpoint compute) || exit 1
    heal_get "$nova/servers/detail?status=ERROR" \
        "$HEAL_WORK/servers.json" "the servers in ERROR"
    local now=${HEAL_NOW:-$EPOCHSECONDS} bound=${CELTIC_AUTO_HEALING_UNHEALTHY_SECONDS:-300}
    local percent=${CELTIC_AUTO_HEALING_MAX_UNHEALTHY_PERCENT:-40} input=$HEAL_WORK/input.json
    if ! celtic_python - "$HEAL_WORK" "$now" "$bound" "$percent" <<'PY' >"$input"; then
import json, os, sys
work, now, bound, percent = sys.argv[1:5]
def load(name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)
errors = [s['id'] for s in load('servers.json').get('servers') or ()
          if s.get('status') == 'ERROR']
print(json.dumps({'now': int(now), 'unhealthy_seconds': int(bound),
                  'max_unhealthy_percent': int(percent), 'nodes': load('nodes.json'),
                  'error_servers': errors, 'pools': load('pools.json')}))
PY
        celtic_die "Nova's server list or the Node list is not what the healer expects"
    fi
    heal_plan plan "$HEAL_WORK/input.json" >"$HEAL_WORK/plan.json" ||
        celtic_die "cannot plan the healing"
    local level line
    while IFS=$'\t' read -r level line; do
        celtic_log "$level" "heal: $line"
    done < <(celtic_python - "$HEAL_WORK/plan.json" <<'PY'
import json, sys
for level, line in json.load(open(sys.argv[1]))['log']:
    print('%s\t%s' % (level, line))
PY
)
    if [[ "$(celtic_json "$HEAL_WORK/plan.json" replace)" != "" ]]; then
        heal_replace
    fi
}

# heal_main: what celtic-heal.timer runs (`master.sh heal`), in a private work
# directory that holds the token and goes with the run.
heal_main() {
    umask 077
    HEAL_WORK=$(mktemp -d "${TMPDIR:-/tmp}/celtic-heal.XXXXXX")
    # shellcheck disable=SC2064  # the directory is known now
    trap "rm -rf '$HEAL_WORK'" EXIT
    heal_run
}

# heal_timer: celtic-heal.timer, which runs `master.sh heal` on this master.
heal_timer() {
    HEAL_SCRIPT=${CELTIC_LIB_DIR#"${CELTIC_ROOT:-}"}/master.sh \
        HEAL_INTERVAL=$HEAL_INTERVAL celtic_timer celtic-heal "$HEAL_UNIT_DIR"
}
