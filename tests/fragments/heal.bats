#!/usr/bin/env bats
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

# node/heal.sh + node/heal_plan.py: one pass of celtic-heal.timer against a recording
# curl that plays Keystone, Magnum, Heat and Nova from files under $ROOT/api, and a
# kubectl that lists $ROOT/nodes.json. A worker NotReady past the bound, or whose server
# is in ERROR, is replaced through Magnum's resize with node_count unchanged; within
# the bound nothing happens; more unhealthy workers than the share allows: none
# replaced; a master never.

load helpers

CLUSTER=5d12f6fd-0000-4000-8000-000000000001
SECRET=s3cr3t-of-the-application-credential
TOKEN=gAAAAA-the-keystone-token

setup() {
    celtic_test_setup
    export CELTIC_NODE_IP=10.0.0.11
    export CELTIC_CLUSTER_UUID=$CLUSTER CELTIC_MASTER_ADDRESSES="10.0.0.11 10.0.0.12 10.0.0.13"
    export CELTIC_AUTO_HEALING_UNHEALTHY_SECONDS=300 CELTIC_AUTO_HEALING_MAX_UNHEALTHY_PERCENT=40
    export API=$ROOT/api NOW=$EPOCHSECONDS
    export HEAL_NOW=$NOW
    mkdir -p "$API"
    # shellcheck source=/dev/null
    source "$FRAGMENTS/lib/celtic.sh"
    # shellcheck source=/dev/null
    source "$FRAGMENTS/node/members.sh"
    # shellcheck source=/dev/null
    source "$FRAGMENTS/node/heal.sh"
    KUBE_ETC="$ROOT/etc/kubernetes"
    printf '{"auth_url": "http://keystone.test:5000", "region_name": "RegionOne", "application_credential_id": "ac-id", "application_credential_secret": "%s", "project_id": "p1"}\n' \
        "$SECRET" >"$CELTIC_ETC/secrets/application-credential.json"
    chmod 600 "$CELTIC_ETC/secrets/application-credential.json"
    HEAL_WORK=$BATS_TEST_TMPDIR/work
    mkdir -m 700 "$HEAL_WORK"
    stub_script kubectl '
case "$*" in
  *" get nodes -o json") cat "$ROOT/nodes.json" ;;
esac
exit 0'
    # curl: -o/-D/-w/--data-binary honoured, the answer chosen by method and URL
    stub_script curl '
out=/dev/null dump="" data="" method=GET url=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -o) out=$2; shift 2 ;; -D) dump=$2; shift 2 ;;
    --data-binary) data=${2#@}; method=POST; shift 2 ;; -X) method=$2; shift 2 ;;
    -H|-w|--max-time|--cacert) shift 2 ;; -*) shift ;; *) url=$1; shift ;;
  esac
done
answer() { cp "$1" "$out"; printf "%s" "$2"; exit 0; }
case "$method $url" in
  "POST http://keystone.test:5000/v3/auth/tokens")
    cp "$data" "$BATS_TEST_TMPDIR/auth.body"
    printf "HTTP/1.1 201 Created\r\nX-Subject-Token: '"$TOKEN"'\r\n\r\n" >"$dump"
    answer "$API/token.json" 201 ;;
  "GET http://magnum.test/v1/clusters/'"$CLUSTER"'") answer "$API/cluster.json" 200 ;;
  "GET http://magnum.test/v1/clusters/'"$CLUSTER"'/nodegroups") answer "$API/nodegroups.json" 200 ;;
  "POST http://magnum.test/v1/clusters/'"$CLUSTER"'/actions/resize")
    cp "$data" "$ROOT/resize.json"; printf "{}" >"$out"; printf "%s" "${RESIZE_CODE:-202}" ;;
  "GET http://nova.test/v2.1/servers/detail?status=ERROR") answer "$API/servers.json" 200 ;;
  "GET http://heat.test/v1/p1/stacks/"*/outputs/*)
    key=${url##*/outputs/}; rest=${url#http://heat.test/v1/p1/stacks/}; name=${rest%%/*}
    answer "$API/heat/$name.$key.json" 200 ;;
  "GET http://heat.test/v1/p1/stacks/"*)
    id=${url##*/}; name=$(cat "$API/heat/$id.name")
    printf "302 http://heat.internal:8004/v1/p1/stacks/%s/%s" "$name" "$id" ;;
  *) printf "000"; exit 7 ;;
esac'
    catalog
}

# catalog: Keystone's answer (public endpoints of RegionOne, an internal one and another
# region's to be ignored).
catalog() {
    python3 - "$API/token.json" <<'PY'
import json, sys
def service(kind, url):
    return {'type': kind, 'endpoints': [
        {'interface': 'internal', 'region_id': 'RegionOne', 'url': 'http://internal/' + kind},
        {'interface': 'public', 'region_id': 'RegionTwo', 'url': 'http://other/' + kind},
        {'interface': 'public', 'region_id': 'RegionOne', 'url': url}]}
json.dump({'token': {'catalog': [
    service('container-infra', 'http://magnum.test/v1'),
    service('orchestration', 'http://heat.test/v1/p1'),
    service('compute', 'http://nova.test/v2.1/')]}}, open(sys.argv[1], 'w'))
PY
}

# cloud STATUS POOL=SIZE[:NODE_COUNT]...: Magnum's cluster (STATUS) and nodegroups (the
# masters and each pool: the first is the default, in the cluster's stack; the others
# have stacks of their own), and Heat's outputs listing each pool's members
# demo-POOL-<i> with server ids POOL-id-<i>. NODE_COUNT: what Magnum says (default SIZE).
cloud() {
    python3 - "$API" "$@" <<'PY'
import json, os, sys
api, status, pools = sys.argv[1], sys.argv[2], sys.argv[3:]
heat = os.path.join(api, 'heat')
os.makedirs(heat, exist_ok=True)
def out(path, value):
    json.dump(value, open(os.path.join(heat, path), 'w'))
json.dump({'uuid': 'c', 'status': status, 'stack_id': 'cluster-id'},
          open(os.path.join(api, 'cluster.json'), 'w'))
open(os.path.join(heat, 'cluster-id.name'), 'w').write('celtic-demo-5d12f6fd')
# the masters' nodegroup, given a stack that lists them as a pool's would: only a
# healer that read it could ever name a master
groups = [{'name': 'default-master', 'role': 'master', 'node_count': 3,
           'is_default': True, 'status': status, 'stack_id': 'masters-stack-id'}]
open(os.path.join(heat, 'masters-stack-id.name'), 'w').write('celtic-demo-masters')
for key in ('nodes_stack', 'minion_nodes_stack'):
    out('celtic-demo-masters.%s.json' % key, {'output': {
        'output_value': 'arn:openstack:heat::p1:stacks/celtic-demo-masters-nodes/x'}})
out('celtic-demo-masters-nodes.names.json', {'output': {'output_value': [
    'demo-master-%d' % i for i in range(3)]}})
out('celtic-demo-masters-nodes.server_ids.json', {'output': {'output_value': [
    'master-id-%d' % i for i in range(3)]}})
for position, spec in enumerate(pools):
    name, _, sizes = spec.partition('=')
    size, _, count = sizes.partition(':')
    size, count = int(size), int(count or size)
    own = position > 0
    stack, key = (name + '-stack-id', 'nodes_stack') if own else ('cluster-id', 'minion_nodes_stack')
    stack_name = 'celtic-demo-5d12f6fd-' + name if own else 'celtic-demo-5d12f6fd'
    open(os.path.join(heat, stack + '.name'), 'w').write(stack_name)
    servers = stack_name + '-nodes'
    out('%s.%s.json' % (stack_name, key), {'output': {
        'output_key': key,
        'output_value': 'arn:openstack:heat::p1:stacks/%s/%s-servers-id' % (servers, name)}})
    pool = 'minion' if not own else name
    out('%s.names.json' % servers, {'output': {'output_value': [
        'demo-%s-%d' % (pool, i) for i in range(size)]}})
    out('%s.server_ids.json' % servers, {'output': {'output_value': [
        '%s-id-%d' % (pool, i) for i in range(size)]}})
    groups.append({'name': name, 'role': 'worker', 'node_count': count, 'status': status,
                   'is_default': not own, 'stack_id': stack if own else 'cluster-id'})
# a nodegroup whose stack was never created (its create failed)
groups.append({'name': 'broken', 'role': 'worker', 'node_count': 1, 'status': 'CREATE_FAILED',
               'is_default': False, 'stack_id': None})
json.dump({'nodegroups': groups}, open(os.path.join(api, 'nodegroups.json'), 'w'))
json.dump({'servers': []}, open(os.path.join(api, 'servers.json'), 'w'))
PY
}

# nodes NAME=READY[:SECONDS_SINCE_CHANGE][@ADDRESS][+cp]...: the Node list (kubectl get
# nodes -o json). READY is True, False or Unknown; +cp labels a control-plane node.
nodes() {
    python3 - "$ROOT/nodes.json" "$NOW" "$@" <<'PY'
import json, sys, time
path, now, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
items = []
for spec in specs:
    cp = spec.endswith('+cp')
    spec = spec[:-3] if cp else spec
    spec, _, address = spec.partition('@')
    name, _, state = spec.partition('=')
    ready, _, age = state.partition(':')
    since = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now - int(age or 3600)))
    labels = {'node-role.kubernetes.io/control-plane': ''} if cp else {}
    items.append({'metadata': {'name': name, 'labels': labels,
                               'creationTimestamp': '2026-01-01T00:00:00Z'},
                  'status': {'addresses': [{'type': 'InternalIP', 'address': address}],
                             'conditions': [{'type': 'Ready', 'status': ready,
                                             'lastTransitionTime': since}]}})
json.dump({'items': items}, open(path, 'w'))
PY
}

# masters_ready [READY0 READY1 READY2]: the three masters' Nodes
masters() {
    printf 'demo-master-0=%s@10.0.0.11+cp demo-master-1=%s@10.0.0.12+cp demo-master-2=%s@10.0.0.13+cp' \
        "${1:-True}" "${2:-True}" "${3:-True}"
}

# in_error ID...: Nova's servers in ERROR
in_error() {
    python3 - "$API/servers.json" "$@" <<'PY'
import json, sys
json.dump({'servers': [{'id': i, 'status': 'ERROR'} for i in sys.argv[2:]]},
          open(sys.argv[1], 'w'))
PY
}

# resized FIELD: a field of the resize request Magnum received
resized() {
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))[sys.argv[2]]; print(" ".join(v) if isinstance(v, list) else v)' \
        "$ROOT/resize.json" "$1"
}

run_heal() {
    run heal_run
}

@test "a worker NotReady past the bound is replaced: resize with node_count unchanged, its server named" {
    cloud UPDATE_COMPLETE default-worker=3
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=True@10.0.0.51 demo-minion-1=False:301@10.0.0.52 \
        demo-minion-2=True@10.0.0.53
    run_heal
    assert_success
    [ "$(resized node_count)" = 3 ]
    [ "$(resized nodegroup)" = default-worker ]
    [ "$(resized nodes_to_remove)" = minion-id-1 ]
    assert_output --partial 'heal: nodegroup default-worker: replacing demo-minion-1 (Ready is NotReady since 301s (bound 300s))'
    assert_output --partial 'heal: Magnum replaces demo-minion-1 of nodegroup default-worker (resize, node_count 3 kept)'
    assert_called 'kubectl --kubeconfig .*/admin.conf cordon demo-minion-1'
    [ "$(cat "$CELTIC_STATE_DIR/heal/replaced")" = demo-minion-1 ]
    # the public endpoints of the credential's region, Magnum at its microversion
    assert_called 'curl .* -H OpenStack-API-Version: container-infra 1.10 .*http://magnum.test/v1/clusters/'"$CLUSTER"'/actions/resize'
}

@test "a worker NotReady within the bound, or Unknown for less: nothing is replaced yet" {
    cloud UPDATE_COMPLETE default-worker=3
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:299@10.0.0.51 demo-minion-1=Unknown:10@10.0.0.52 \
        demo-minion-2=True@10.0.0.53
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    refute_called 'curl .*/actions/resize'
    refute_called 'kubectl .* cordon .*'
    assert_output --partial 'demo-minion-0 of nodegroup default-worker: Ready is NotReady since 299s; replaced after 300s'
    assert_output --partial 'demo-minion-1 of nodegroup default-worker: Ready is Unknown since 10s; replaced after 300s'
}

@test "a server in ERROR is replaced at once, with or without its Node" {
    cloud CREATE_COMPLETE default-worker=3
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=True@10.0.0.51 demo-minion-1=True@10.0.0.52
    in_error minion-id-2 unrelated-server
    run_heal
    assert_success
    [ "$(resized nodes_to_remove)" = minion-id-2 ]
    [ "$(resized node_count)" = 3 ]
    assert_output --partial 'replacing demo-minion-2 (its server minion-id-2 is in ERROR)'
}

@test "share cap: 3 of 5 unhealthy is above 40%: none replaced, a warning names the label" {
    cloud UPDATE_COMPLETE default-worker=5
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=False:900 demo-minion-2=Unknown:900 \
        demo-minion-3=True demo-minion-4=True
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    assert_output --partial 'WARN: heal: nodegroup default-worker: 3 of its 5 workers are unhealthy'
    assert_output --partial 'more than auto_healing_max_unhealthy_percent=40% allows (2): replacing none'
}

@test "share cap: 2 of 5 unhealthy is within 40%: both replaced in one request" {
    cloud UPDATE_COMPLETE default-worker=5
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True demo-minion-2=True \
        demo-minion-3=True
    in_error minion-id-4
    run_heal
    assert_success
    [ "$(resized nodes_to_remove)" = "minion-id-0 minion-id-4" ]
    [ "$(resized node_count)" = 5 ]
}

@test "a pool of one worker always gets its worker back; the label's share is read from params" {
    export CELTIC_AUTO_HEALING_MAX_UNHEALTHY_PERCENT=10
    cloud UPDATE_COMPLETE default-worker=1
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900
    run_heal
    assert_success
    [ "$(resized nodes_to_remove)" = minion-id-0 ]
    [ "$(resized node_count)" = 1 ]
}

@test "masters are never replaced: NotReady past the bound, server in ERROR, or named by a pool" {
    cloud UPDATE_COMPLETE default-worker=2
    # master 2 NotReady for an hour and its server in ERROR
    # shellcheck disable=SC2046
    nodes $(masters True True False) demo-minion-0=True demo-minion-1=True
    in_error master-id-2
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    # the masters' nodegroup is not even read for members
    refute_called 'curl .*celtic-demo-masters.*'
    # and a control-plane Node that a pool lists (it cannot: belt and braces) is skipped
    # shellcheck disable=SC2046
    nodes $(masters True True False) demo-minion-0=False:900+cp demo-minion-1=True
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    assert_output --partial 'node demo-minion-0 of nodegroup default-worker is a control-plane node: never replaced'
}

@test "only the first Ready master heals: the others read the Node list and stop" {
    cloud UPDATE_COMPLETE default-worker=2
    export CELTIC_NODE_IP=10.0.0.12
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    refute_called 'curl .*'
    # master 0 NotReady: master 1 is the one that heals
    # shellcheck disable=SC2046
    nodes $(masters False) demo-minion-0=False:900 demo-minion-1=True
    run_heal
    assert_success
    [ "$(resized nodes_to_remove)" = minion-id-0 ]
}

@test "a cluster with a change under way or failed is left alone" {
    local wanted
    for wanted in UPDATE_IN_PROGRESS UPDATE_FAILED; do
        cloud "$wanted" default-worker=2
        # shellcheck disable=SC2046
        nodes $(masters) demo-minion-0=False:900 demo-minion-1=True
        : >"$CALLS"
        run_heal
        assert_success
        [ ! -e "$ROOT/resize.json" ]
        assert_output --partial "heal: the cluster is $wanted: not healing now"
        refute_called 'curl .*/nodegroups'
    done
}

@test "a nodegroup whose stack and Magnum disagree on the count is left alone" {
    cloud UPDATE_COMPLETE default-worker=3:4
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True demo-minion-2=True
    run_heal
    assert_success
    [ ! -e "$ROOT/resize.json" ]
    assert_output --partial 'nodegroup default-worker: Magnum says 4 workers, its stack has 3'
}

@test "a nodegroup with its own stack: its members from nodes_stack; one nodegroup per run" {
    cloud UPDATE_COMPLETE default-worker=2 gpu=2
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True demo-gpu-0=True \
        demo-gpu-1=False:900
    run_heal
    assert_success
    [ "$(resized nodegroup)" = default-worker ]
    [ "$(resized nodes_to_remove)" = minion-id-0 ]
    assert_output --partial 'nodegroup gpu: demo-gpu-1 (Ready is NotReady since 900s (bound 300s)) wait for the replacement in nodegroup default-worker'
    assert_called 'curl .*http://heat.test/v1/p1/stacks/celtic-demo-5d12f6fd-gpu/gpu-stack-id/outputs/nodes_stack'
    assert_output --partial 'heal: nodegroup broken has no stack: nothing to heal in it'
    rm "$ROOT/resize.json"
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=True demo-minion-1=True demo-gpu-0=True demo-gpu-1=False:900
    run_heal
    assert_success
    [ "$(resized nodegroup)" = gpu ]
    [ "$(resized nodes_to_remove)" = gpu-id-1 ]
    [ "$(resized node_count)" = 2 ]
}

@test "a replaced worker's Node is deleted once its server has left the pool" {
    mkdir -p "$CELTIC_STATE_DIR/heal"
    printf 'demo-minion-1\ndemo-minion-7\n' >"$CELTIC_STATE_DIR/heal/replaced"
    cloud UPDATE_COMPLETE default-worker=2
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=True demo-minion-1=True
    run_heal
    assert_success
    assert_called 'kubectl --kubeconfig .*/admin.conf delete node demo-minion-7 --ignore-not-found'
    refute_called 'kubectl .* delete node demo-minion-1 .*'
    [ "$(cat "$CELTIC_STATE_DIR/heal/replaced")" = demo-minion-1 ]
}

@test "the credential must be there and 0600; its secret and the token are never on a command line or in the log" {
    cloud UPDATE_COMPLETE default-worker=2
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True
    run_heal
    assert_success
    # Keystone got the credential in the body of its request
    grep -q "\"secret\": \"$SECRET\"" "$BATS_TEST_TMPDIR/auth.body"
    grep -q '"methods": \["application_credential"\]' "$BATS_TEST_TMPDIR/auth.body"
    [[ "$output" != *"$SECRET"* && "$output" != *"$TOKEN"* ]]
    [ -s "$CELTIC_LOG_FILE" ]
    run grep -l -e "$SECRET" -e "$TOKEN" "$CALLS" "$CELTIC_LOG_FILE"
    [ "$status" -eq 1 ]
    rm -f "$ROOT/resize.json"
    chmod 644 "$CELTIC_ETC/secrets/application-credential.json"
    run_heal
    assert_failure
    assert_output --partial 'application-credential.json has mode 644: it must be 0600'
    [ ! -e "$ROOT/resize.json" ]
    rm "$CELTIC_ETC/secrets/application-credential.json"
    run_heal
    assert_failure
    assert_output --partial 'no application credential on this master'
}

@test "Keystone refusing the credential fails the run naming the cause, nothing else is called" {
    cloud UPDATE_COMPLETE default-worker=2
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True
    printf '{"auth_url": "http://gone.test:5000/v3", "application_credential_id": "x", "application_credential_secret": "y"}\n' \
        >"$CELTIC_ETC/secrets/application-credential.json"
    run_heal
    assert_failure
    assert_output --partial "Keystone did not accept the cluster's application credential (HTTP 000 at http://gone.test:5000/v3/auth/tokens)"
    refute_called 'curl .*magnum.*'
}

@test "Magnum refusing the replacement fails the run with its answer" {
    export RESIZE_CODE=400
    cloud UPDATE_COMPLETE default-worker=2
    # shellcheck disable=SC2046
    nodes $(masters) demo-minion-0=False:900 demo-minion-1=True
    run_heal
    assert_failure
    assert_output --partial 'Magnum refused to replace demo-minion-0 of nodegroup default-worker (HTTP 400)'
    [ ! -e "$CELTIC_STATE_DIR/heal/replaced" ]
}
