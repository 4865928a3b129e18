#!/usr/bin/env bats
#
# Static checks of the devstack plugin, with devstack's own rules.

load helpers

PLUGIN_FILES=(devstack/plugin.sh devstack/settings devstack/lib/magnum_celtic)

setup() {
    cd "$REPO_ROOT" || return 1
}

@test "bash -n: the plugin files parse" {
    local file
    for file in "${PLUGIN_FILES[@]}"; do
        run bash -n "$file"
        assert_success
    done
}

@test "bashate with devstack's flags (-iE006 -eE005,E042) is clean" {
    command -v bashate || fail "bashate is not installed (pip install bashate)"
    run bashate -v -iE006 -eE005,E042 devstack/plugin.sh devstack/settings devstack/lib/*
    assert_success
    refute_output --partial "E0"
}

@test "shellcheck: the plugin files are clean" {
    run shellcheck -x "${PLUGIN_FILES[@]}"
    assert_success
}

@test "shellcheck: the test harness is clean" {
    run shellcheck -x tests/devstack/run_devstack.sh tests/devstack/stubs.bash tests/devstack/clients.sh \
        tests/devstack/fakebin.bash tests/devstack/helpers.bash
    assert_success
    # Each @test is a subshell by design: exports in one never reach another.
    run shellcheck -x -e SC2030,SC2031 tests/devstack/plugin.bats tests/devstack/static.bats
    assert_success
}

@test "settings: define_plugin and plugin_requires are literal lines Zuul can read" {
    # The regexes of devstack's write-devstack-local-conf role.
    run grep -cE '^define_plugin\s+magnum-celtic$' devstack/settings
    assert_output 1
    run grep -E '^plugin_requires\s+' devstack/settings
    assert_output "plugin_requires magnum-celtic heat"
}

@test "plugin functions are prefixed, so Magnum's own plugin cannot clash with them" {
    run grep -E '^function ' devstack/lib/magnum_celtic
    assert_success
    run grep -vE '^function _?magnum_celtic_' <<<"$output"
    assert_output ""
}

# The variables an operator can set: those settings gives a default to.
settable_variables() {
    grep -oE '\$\{MAGNUM[A-Z_]*:-' devstack/settings | sed -E 's/^..(.*):-$/\1/' | sort -u
}

@test "local.conf.sample and doc/devstack.md only set variables that devstack/settings reads" {
    local known used
    known=$( (settable_variables; grep -oE '^MAGNUM[A-Z_]*' devstack/settings) | sort -u)
    used=$(grep -ohE '\bMAGNUM[A-Z_]*=' devstack/local.conf.sample doc/devstack.md | tr -d = | sort -u)
    assert [ -n "$used" ]
    run comm -13 <(echo "$known") <(echo "$used")
    assert_output ""
}

@test "doc/devstack.md documents every variable of devstack/settings" {
    local variable missing=""
    for variable in $(settable_variables); do
        grep -q "\`$variable\`" doc/devstack.md || missing+=" $variable"
    done
    assert_equal "$missing" ""
    assert [ "$(settable_variables | wc -l)" -gt 20 ]
}
