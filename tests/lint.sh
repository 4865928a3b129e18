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

# The static checks of the gate: shellcheck and bashate on every shell file (devstack's
# own bashate flags on the plugin), yamllint on the templates and Heat's validator on
# every stack the driver can render. flake8 runs in tox -e pep8.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t fragments < <(find heat_templates/fragments -name '*.sh' | sort)
mapfile -t devstack < <(find devstack -type f \( -name '*.sh' -o -name settings -o -path 'devstack/lib/*' \) | sort)
mapfile -t test_shell < <(find tests -name '*.bash' -o -name '*.sh' | sort)
mapfile -t bats_files < <(find tests -name '*.bats' | sort)

echo "shellcheck: ${#fragments[@]} fragments, ${#devstack[@]} devstack files, ${#test_shell[@]} test scripts"
shellcheck -x -P heat_templates/fragments "${fragments[@]}"
shellcheck -x -s bash "${devstack[@]}"
# Tests set variables for the functions they source (SC2034, SC2154 do not apply).
shellcheck -x -S warning -e SC2034,SC2154 "${test_shell[@]}"
shellcheck -x -S warning -e SC2034,SC2154 -s bash "${bats_files[@]}"

echo "bashate: fragments (-i E006), devstack (-iE006 -eE005,E042)"
bashate -i E006 "${fragments[@]}"
bashate -iE006 -eE005,E042 "${devstack[@]}"

echo "yamllint"
yamllint -d '{extends: relaxed, rules: {line-length: {max: 120}}}' heat_templates

echo "Heat validator"
magnum-celtic validate
