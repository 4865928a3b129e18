#!/usr/bin/env bats
# The shared node library: retries, parameters, rendering, idempotent writes and the
# signal that tells Heat which node failed at which step.

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

@test "a failing step signals FAILURE with the node and the step, never the password" {
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
    [ "$(signal_field 1 id)" = "$CELTIC_NODE_ID" ]
    run grep -r p4ssw0rd-never-logged "$CELTIC_LOG_FILE" "$CALLS"
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
