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

# The gate's checks before the functional tests, in two lanes that run side by side (the
# CI machine has two cores and each lane keeps one busy):
#   unit    Magnum's test base with line coverage (>= 90%)
#   static  lint (shellcheck, bashate, yamllint, Heat's validator), then the bats tests
#           of the fragments and of the devstack plugin
# `gate_lanes.sh all` runs both at once: the static lane prints as it goes, the unit
# lane's output follows when both are done; the exit status is non-zero if either lane
# failed, and the last lines say which and how long each took. `gate_lanes.sh LANE
# [ARGS...]` runs one of unit, lint, fragments, devstack alone (tox -e unit, ...), with
# ARGS passed to pytest or bats.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

lane_unit() {
    coverage erase &&
        coverage run -m pytest -q tests/unit "$@" &&
        coverage report --show-missing --fail-under=90
}
lane_lint() { bash tests/lint.sh "$@"; }
lane_fragments() { bats --tap tests/fragments "$@"; }
lane_devstack() { bats --tap tests/devstack "$@"; }
lane_static() { lane_lint && lane_fragments && lane_devstack; }

if [[ $# -eq 0 ]]; then
    echo "usage: $0 all | unit | lint | fragments | devstack [ARGS...]" >&2
    exit 2
fi
lane=$1
shift
case $lane in
    all) ;;
    unit) lane_unit "$@"; exit ;;
    lint) lane_lint "$@"; exit ;;
    fragments) lane_fragments "$@"; exit ;;
    devstack) lane_devstack "$@"; exit ;;
    *) echo "$0: no lane $lane (all, unit, lint, fragments, devstack)" >&2; exit 2 ;;
esac

log=$(mktemp "${TMPDIR:-/tmp}/celtic-unit-lane.XXXXXX")
trap 'rm -f "$log"' EXIT
started=$SECONDS
lane_unit >"$log" 2>&1 &
unit_pid=$!
# a gate stopped half way stops the background lane too
trap 'kill "$unit_pid" 2>/dev/null; rm -f "$log"' EXIT INT TERM
static_rc=0
lane_static || static_rc=$?
static_seconds=$((SECONDS - started))
unit_rc=0
wait "$unit_pid" || unit_rc=$?
unit_seconds=$((SECONDS - started))
echo "== unit lane output"
cat "$log"
echo "== gate lanes: static (lint, fragments, devstack) exit $static_rc in ${static_seconds}s;" \
    "unit exit $unit_rc, done after ${unit_seconds}s"
[[ $static_rc -eq 0 && $unit_rc -eq 0 ]]
