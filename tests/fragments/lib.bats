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

# The shared node library: retries, parameters, rendering, idempotent writes, the
# secrets from celtic-vendordata, and the signal that tells Heat (through the relay)
# which node failed at which step.

load helpers

setup() {
    celtic_test_setup
    # shellcheck source=../../heat_templates/fragments/lib/celtic.sh
    source "$FRAGMENTS/lib/celtic.sh"
}

@test "celtic_retry retries a failing command and gives up after the attempts" {
    stub flaky 1
    run celtic_retry -n 3 -d 1 -- flaky once
    assert_failure 1
    [ "$(grep -c '^flaky once$' "$CALLS")" -eq 3 ]
}

@test "celtic_retry stops at the first success" {
    stub_script flaky '[[ -e "$BATS_TEST_TMPDIR/ok" ]] && exit 0; touch "$BATS_TEST_TMPDIR/ok"; exit 7'
    run celtic_retry -n 5 -- flaky
    assert_success
    [ "$(grep -c '^flaky' "$CALLS")" -eq 2 ]
}

@test "celtic_load_params exposes scalars, lists and maps" {
    write_params '{"kube_tag": "v1.36", "master_addresses": ["10.0.0.5", "10.0.0.6"],
                   "node_labels": {"a": "b"}, "with_x": true, "empty": null}'
    celtic_load_params
    [ "$CELTIC_KUBE_TAG" = "v1.36" ]
    [ "$CELTIC_MASTER_ADDRESSES" = "10.0.0.5 10.0.0.6" ]
    [ "$CELTIC_NODE_LABELS" = '{"a":"b"}' ]
    [ "$CELTIC_WITH_X" = "true" ]
    [ "$CELTIC_EMPTY" = "" ]
    run celtic_json "$CELTIC_PARAMS_FILE" node_labels a
    assert_output b
}

@test "celtic_render fills placeholders and names the missing ones" {
    printf 'bind {{ADDR}}:{{PORT}}\n' >"$BATS_TEST_TMPDIR/t.tmpl"
    ADDR=10.0.0.1 PORT=6443 celtic_render "$BATS_TEST_TMPDIR/t.tmpl" "$ROOT/out.cfg" 0644
    run cat "$ROOT/out.cfg"
    assert_output 'bind 10.0.0.1:6443'
    CELTIC_CHANGED=0
    ADDR=10.0.0.1 PORT=6443 celtic_render "$BATS_TEST_TMPDIR/t.tmpl" "$ROOT/out.cfg" 0644
    [ "$CELTIC_CHANGED" = 0 ]
    run env ADDR=1 bash -c "source '$FRAGMENTS/lib/celtic.sh'; celtic_render '$BATS_TEST_TMPDIR/t.tmpl' '$ROOT/o2' 0644"
    assert_failure
    assert_output --partial 'unset template variables: PORT'
}

@test "celtic_write_file writes only when the content changes" {
    CELTIC_CHANGED=0
    celtic_write_file "$ROOT/f" 0600 <<<hello
    [ "$CELTIC_CHANGED" = 1 ]
    CELTIC_CHANGED=0
    celtic_write_file "$ROOT/f" 0600 <<<hello
    [ "$CELTIC_CHANGED" = 0 ]
    [ "$(stat -c %a "$ROOT/f")" = 600 ]
}

@test "a failing step signals FAILURE with the node and the step, never the key" {
    stub_heat_signal
    cat >"$BATS_TEST_TMPDIR/frag.sh" <<'SH'
source "$CELTIC_LIB_DIR/lib/celtic.sh"
main() {
    celtic_step download-cni false
}
set -euo pipefail
celtic_run main
SH
    run bash "$BATS_TEST_TMPDIR/frag.sh"
    assert_failure 1
    [ "$(signal_field 1 status)" = FAILURE ]
    [ "$(signal_field 1 reason)" = "testnode-0: step download-cni failed (exit 1)" ]
    [ "$(signal_field 1 id)" = testnode-0 ]
    [ "$(signal_field 1 instance_id)" = "$CELTIC_NODE_ID" ]
    [ "$(signal_field 1 cluster_uuid)" = "$RELAY_CLUSTER" ]
    run grep -r "$RELAY_KEY" "$CELTIC_LOG_FILE" "$CALLS"
    assert_failure
}

@test "celtic_die's message reaches Heat and a clean run signals SUCCESS" {
    stub_heat_signal
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; set -euo pipefail
        f() { celtic_die "no route to 10.0.0.5:6443"; }
        main() { celtic_step join f; }; celtic_run main'
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step join failed: no route to 10.0.0.5:6443" ]
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; set -euo pipefail
        main() { celtic_step nothing true; }; CELTIC_ROLE=minion; celtic_run main'
    assert_success
    [ "$(signal_field 2 status)" = SUCCESS ]
    [ "$(signal_field 2 reason)" = "testnode-0: minion ready" ]
}

@test "a celtic_die inside a command substitution still reaches Heat with its message" {
    stub_heat_signal
    export TMPDIR=$BATS_TEST_TMPDIR/tmp
    mkdir -p "$TMPDIR"
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; set -euo pipefail
        f() { local x; x=$(celtic_die "no package for curl on centos-9"); echo "$x"; }
        main() { celtic_step base-packages f; }; celtic_run main'
    assert_failure
    [ "$(signal_field 1 reason)" = "testnode-0: step base-packages failed: no package for curl on centos-9" ]
    run ls "$TMPDIR"
    refute_output
}

@test "celtic_index_of finds this node among its peers" {
    run celtic_index_of 10.0.0.6 10.0.0.5 10.0.0.6 10.0.0.7
    assert_output 1
    run celtic_index_of 10.0.0.9 10.0.0.5
    assert_failure
}

@test "celtic_install maps names through the package table for this node's distribution" {
    stub_script dpkg-query 'exit 1'
    stub apt-get
    os_release debian 12 bookworm
    celtic_install resource-agents pacemaker-cli-utils
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends resource-agents pacemaker-cli-utils'
    : >"$CALLS"
    os_release ubuntu 24.04 noble
    celtic_install resource-agents pacemaker-cli-utils
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends resource-agents-base pacemaker-cli-utils'
}

@test "celtic_install keeps a pinned version and refuses a name or a distribution the table lacks" {
    stub_script dpkg-query 'exit 1'
    stub apt-get
    celtic_install kubeadm=1.36.2-1.1
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends kubeadm=1.36.2-1.1'
    run celtic_install no-such-tool
    assert_failure
    assert_output --partial "no package for 'no-such-tool' on debian-12 in lib/packages.txt (supported: debian-12 debian-13 ubuntu-24.04)"
    os_release centos 9 ""
    run celtic_install curl
    assert_failure
    assert_output --partial "no package for 'curl' on centos-9"
}

@test "every apt step waits for the dpkg lock instead of failing at first boot" {
    stub apt-get
    celtic_apt_update
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 update -q'
}

# ---- secrets from celtic-vendordata (vendor_data2.json) ---------------------------------

# master_vendordata: a master's answer, with secrets the tests look for.
master_vendordata() {
    local dir=$BATS_TEST_TMPDIR/given
    mkdir -p "$dir"
    printf -- '-----BEGIN PRIVATE KEY-----\nca-key-body-never-logged\n-----END PRIVATE KEY-----\n' >"$dir/ca.key"
    printf 'abcdef.0123456789abcdef' >"$dir/bootstrap-token"
    printf 'ha-secret-never-logged' >"$dir/ha-secret"
    write_vendordata master "$dir"
}

@test "the vendordata step writes the role's secrets and signal.json, 0600, and logs no secret" {
    master_vendordata
    rm -rf "$CELTIC_ETC/secrets"
    CELTIC_ROLE=master
    run celtic_fetch_vendordata
    assert_success
    assert_output --partial 'celtic vendordata: 3 secret file(s) for this master: bootstrap-token ca.key ha-secret'
    for f in ca.key bootstrap-token ha-secret; do
        cmp "$BATS_TEST_TMPDIR/given/$f" "$CELTIC_ETC/secrets/$f"
        [ "$(stat -c %a "$CELTIC_ETC/secrets/$f")" = 600 ]
    done
    [ "$(stat -c %a "$CELTIC_ETC/signal.json")" = 600 ]
    run python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$CELTIC_ETC/signal.json"
    assert_output "$RELAY_KEY"
    run grep -rE "never-logged|abcdef.0123|$RELAY_KEY" "$CELTIC_LOG_FILE"
    assert_failure
    run ls "$CELTIC_ETC/secrets"
    refute_output --partial .tmp
}

@test "without celtic vendordata the console names what the operator must configure" {
    mkdir -p "$ROOT/metadata/openstack/latest"
    printf '{"other": {"x": 1}}\n' >"$ROOT/metadata/openstack/latest/vendor_data2.json"
    export CELTIC_METADATA_ATTEMPTS=3
    run bash -c 'source "$CELTIC_LIB_DIR/lib/celtic.sh"; set -euo pipefail
        main() { celtic_step vendordata celtic_fetch_vendordata; }; CELTIC_ROLE=minion; celtic_run main'
    assert_failure
    assert_output --partial "ERROR: Nova's metadata service served no celtic vendordata: nova.conf must have [api] vendordata_providers = StaticJSON,DynamicJSON and vendordata_dynamic_targets = celtic@<celtic-vendordata URL>/v1/vendordata"
    assert_output --partial 'see doc/security.md'
    assert_output --partial 'step vendordata failed: no celtic vendordata for this node'
    # bounded: it asked three times, then gave up
    [ "$(grep -c "attempt [0-9] of 3" "$CELTIC_LOG_FILE")" -eq 2 ]
    # and it cannot report: no signal credentials
    assert_output --partial 'cannot report FAILURE (no celtic vendordata?)'
    [ ! -e "$CELTIC_ETC/signal.json" ]
}

@test "a metadata service that answers late is retried until it does" {
    master_vendordata
    mv "$ROOT/metadata" "$BATS_TEST_TMPDIR/late"
    # the second pause brings the metadata service up
    stub_script pause '[[ $(grep -c "^pause" "$CALLS") -ge 2 ]] && mv "$BATS_TEST_TMPDIR/late" "$ROOT/metadata"; exit 0'
    CELTIC_SLEEP=pause CELTIC_ROLE=master
    run celtic_fetch_vendordata
    assert_success
    [ "$(grep -c '^pause' "$CALLS")" -eq 2 ]
    [ -s "$CELTIC_ETC/secrets/ca.key" ]
}

# serve_metadata: Nova's metadata service over real HTTP on loopback (the directory the
# other tests read as file://), stopped by its PID in the test's teardown
serve_metadata() {
    local i
    # -u: the line with the port reaches the log at once, not when a buffer fills
    python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$ROOT/metadata" \
        >"$BATS_TEST_TMPDIR/http.log" 2>&1 &
    HTTP_PID=$!
    for i in $(seq 1 100); do
        METADATA_PORT=$(sed -n 's/.* port \([0-9][0-9]*\) .*/\1/p' "$BATS_TEST_TMPDIR/http.log")
        [[ -n "$METADATA_PORT" ]] && return 0
        sleep 0.1
    done
    return 1
}

teardown() {
    if [[ -n "${HTTP_PID:-}" ]]; then
        kill "$HTTP_PID" 2>/dev/null || true
        wait "$HTTP_PID" 2>/dev/null || true
    fi
}

@test "over HTTP the metadata service is read directly, never through the template's proxy" {
    master_vendordata
    rm -rf "$CELTIC_ETC/secrets"
    serve_metadata
    # a proxy that does not exist: going through it would fail every attempt
    export http_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9
    CELTIC_METADATA_URL=http://127.0.0.1:$METADATA_PORT CELTIC_ROLE=master
    CELTIC_METADATA_ATTEMPTS=1
    run celtic_fetch_vendordata
    assert_success
    assert_output --partial 'celtic vendordata: 3 secret file(s) for this master'
    cmp "$BATS_TEST_TMPDIR/given/ca.key" "$CELTIC_ETC/secrets/ca.key"
    grep -q 'GET /openstack/latest/vendor_data2.json' "$BATS_TEST_TMPDIR/http.log"
}

@test "an HTTP error from the metadata service is retried, then fails the step" {
    master_vendordata
    serve_metadata
    CELTIC_METADATA_URL=http://127.0.0.1:$METADATA_PORT/nothing-here CELTIC_METADATA_ATTEMPTS=2
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "celtic vendordata: cannot read http://127.0.0.1:$METADATA_PORT/nothing-here/openstack/latest/vendor_data2.json: HTTP 404"
    assert_output --partial "failed 2 times"
}

@test "an unreachable metadata service fails the step after the bounded attempts" {
    CELTIC_METADATA_URL=http://127.0.0.1:9/none CELTIC_METADATA_ATTEMPTS=2
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "cannot read http://127.0.0.1:9/none/openstack/latest/vendor_data2.json (Nova's metadata service)"
    assert_output --partial "failed 2 times"
}

@test "vendordata for another role, or with a path for a file name, is refused" {
    master_vendordata
    CELTIC_ROLE=minion
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "celtic-vendordata says this node is a 'master', it runs the minion script"
    [ ! -e "$CELTIC_ETC/secrets/ca.key" ]
    python3 - "$ROOT/metadata/openstack/latest/vendor_data2.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
doc['celtic']['secrets'] = {'../../escape': 'x'}
json.dump(doc, open(sys.argv[1], 'w'))
PY
    CELTIC_ROLE=master
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "secret name '../../escape' is not a plain file name"
    [ ! -e "$CELTIC_ETC/escape" ] && [ ! -e "$ROOT/escape" ]
}

# add_vendordata_files: a tar of node/addon.sh and manifests/addon.yaml as the masters'
# files from celtic-vendordata, in the answer; its SHA-256 printed
add_vendordata_files() {
    python3 - "$ROOT/metadata/openstack/latest/vendor_data2.json" "${1:-node/addon.sh}" <<'PY'
import base64, hashlib, io, json, sys, tarfile
path, script = sys.argv[1:3]
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode='w:xz') as tar:
    for name, text, mode in ((script, 'addon_step() { :; }\n', 0o755),
                             ('manifests/addon.yaml', 'kind: ConfigMap\n', 0o644)):
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(text), mode
        tar.addfile(info, io.BytesIO(text.encode()))
files = base64.b64encode(raw.getvalue()).decode()
doc = json.load(open(path))
doc['celtic']['files'] = files
json.dump(doc, open(path, 'w'))
print(hashlib.sha256(files.encode()).hexdigest())
PY
}

@test "a master unpacks the add-on files its bundle names by SHA-256, and no others" {
    master_vendordata
    CELTIC_ROLE=master CELTIC_LIB_DIR=$BATS_TEST_TMPDIR/lib
    mkdir -p "$CELTIC_LIB_DIR"
    add_vendordata_files >"$CELTIC_LIB_DIR/vendordata.sha256"
    run celtic_fetch_vendordata
    assert_success
    assert_output --partial "celtic vendordata: 2 fragment file(s) unpacked in $CELTIC_LIB_DIR"
    [ "$(stat -c %a "$CELTIC_LIB_DIR/node/addon.sh")" = 755 ]
    [ "$(cat "$CELTIC_LIB_DIR/manifests/addon.yaml")" = 'kind: ConfigMap' ]
    # files of another release: refused before anything is unpacked
    rm -r "$CELTIC_LIB_DIR/node" "$CELTIC_LIB_DIR/manifests"
    echo 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef \
        >"$CELTIC_LIB_DIR/vendordata.sha256"
    CELTIC_METADATA_ATTEMPTS=1
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "the bundle of this node names 0123456789ab: the cluster stack holds other files"
    assert_output --partial "the fragment files from celtic-vendordata are not the ones this node's bundle names"
    refute_output --partial 'secret file(s)'
    [ ! -e "$CELTIC_LIB_DIR/node" ]
    # none at all (a celtic-vendordata older than magnum-conductor)
    master_vendordata
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial 'this node expects fragment files (SHA-256 0123456789ab) and celtic-vendordata served none'
}

@test "an add-on file with a path out of the library is refused" {
    master_vendordata
    CELTIC_ROLE=master CELTIC_LIB_DIR=$BATS_TEST_TMPDIR/lib CELTIC_METADATA_ATTEMPTS=1
    mkdir -p "$CELTIC_LIB_DIR"
    add_vendordata_files ../escape.sh >"$CELTIC_LIB_DIR/vendordata.sha256"
    run celtic_fetch_vendordata
    assert_failure
    assert_output --partial "fragment file '../escape.sh' is not a plain relative path"
    [ ! -e "$BATS_TEST_TMPDIR/escape.sh" ]
}

# ---- the signal relay ---------------------------------------------------------------

@test "the report is signed: HMAC-SHA256 of the exact body with the node's key" {
    stub_heat_signal
    celtic_signal SUCCESS "testnode-0: minion ready"
    run cat "$BATS_TEST_TMPDIR/relay/1.sig"
    assert_output --regexp '^X-Celtic-Signature: sha256=[0-9a-f]{64}$'
    expected=$(python3 -c 'import hashlib, hmac, sys
print("X-Celtic-Signature: sha256=" + hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' \
        "$RELAY_KEY" "$BATS_TEST_TMPDIR/relay/1.body")
    [ "$(cat "$BATS_TEST_TMPDIR/relay/1.sig")" = "$expected" ]
    # another key would not verify: the test can fail
    other=$(python3 -c 'import hashlib, hmac, sys
print("X-Celtic-Signature: sha256=" + hmac.new(b"0" * 64, open(sys.argv[1], "rb").read(), hashlib.sha256).hexdigest())' \
        "$BATS_TEST_TMPDIR/relay/1.body")
    [ "$(cat "$BATS_TEST_TMPDIR/relay/1.sig")" != "$other" ]
    [ "$(signal_field 1 status)" = SUCCESS ]
    [ "$(signal_field 1 data)" = "testnode-0: minion ready" ]
    assert_called "curl .* -H @.* -H Content-Type: application/json --data-binary @.*/body.json $RELAY_URL"
    run grep -r "$RELAY_KEY" "$CALLS" "$CELTIC_LOG_FILE"
    assert_failure
}

@test "a report to the members handle names it and its own id; a boot report has no handle" {
    stub_heat_signal
    celtic_signal SUCCESS "testnode-0: minion ready"
    CELTIC_SIGNAL_HANDLE=members CELTIC_SIGNAL_ID=members celtic_signal SUCCESS "testnode-0: out"
    [ "$(signal_field 1 id)" = testnode-0 ]
    run signal_field 1 handle
    assert_failure
    [ "$(signal_field 2 id)" = members ]
    [ "$(signal_field 2 handle)" = members ]
}

@test "the relay's 5xx and refused connections are retried, its 4xx is final" {
    stub_heat_signal
    RELAY_CODES="503 000 202" celtic_signal FAILURE "testnode-0: step x failed"
    [ "$(find "$BATS_TEST_TMPDIR/relay" -name '*.body' | wc -l)" -eq 3 ]
    [ "$(signal_field 1 status)" = FAILURE ]
    rm -rf "$BATS_TEST_TMPDIR/relay"
    : >"$SIGNALS"
    RELAY_CODES="401 202" run celtic_signal SUCCESS "testnode-0: ready"
    assert_failure
    assert_output --partial 'the signal relay refused the report (HTTP 401)'
    [ "$(find "$BATS_TEST_TMPDIR/relay" -name '*.body' | wc -l)" -eq 1 ]
    rm -rf "$BATS_TEST_TMPDIR/relay"
    RELAY_CODES="503 503 503" CELTIC_SIGNAL_ATTEMPTS=3 run celtic_signal SUCCESS "testnode-0: ready"
    assert_failure
    [ "$(find "$BATS_TEST_TMPDIR/relay" -name '*.body' | wc -l)" -eq 3 ]
}
