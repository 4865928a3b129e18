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
# The external commands the plugin may run, as one recording fake:
#   fakebin.bash NAME ARGS...
# run_devstack.sh puts a wrapper per NAME on PATH (and in the fake Python
# prefix). Each call is appended to $CALLS like the function stubs do.
#
# `openstack` is a tiny stateful cloud under $FAKE_CLOUD, so that "skip what
# already exists" can be tested: show fails until create (or upload_image)
# made the resource.

set -o errexit -o nounset

name=$1
shift
line=$(printf '%q ' "$name" "$@")
echo "${line% }" >>"$CALLS"

# Paths outside the test root must never be touched for real.
only_test_paths() {
    local arg
    for arg in "$@"; do
        if [[ $arg == /* && $arg != "$TEST_ROOT"/* ]]; then
            echo "fake sudo: refusing $arg (outside $TEST_ROOT)" >&2
            exit 97
        fi
    done
}

fake_openstack() {
    local -a args=()
    while (($#)); do
        case "$1" in
            --os-cloud|--os-region-name) shift 2 ;;
            --os-cloud=*|--os-region-name=*) shift ;;
            *) args+=("$1"); shift ;;
        esac
    done
    set -- "${args[@]}"
    local last=${!#}
    case "$1 $2" in
        "image show"|"keypair show")
            [[ -e "$FAKE_CLOUD/$1/$last" ]] || { echo "No $1 found for $last" >&2; return 1; }
            ;;
        "image set")
            [[ -e "$FAKE_CLOUD/image/$last" ]] || { echo "No image found for $last" >&2; return 1; }
            ;;
        "keypair create")
            [[ $3 == --public-key && -s $4 ]] || { echo "public key $4 missing" >&2; return 1; }
            mkdir -p "$FAKE_CLOUD/keypair"
            : >"$FAKE_CLOUD/keypair/$last"
            ;;
        "coe cluster")
            case "$3" in
                template)
                    case "$4" in
                        show) [[ -e "$FAKE_CLOUD/template/$last" ]] || return 1 ;;
                        create) mkdir -p "$FAKE_CLOUD/template"; : >"$FAKE_CLOUD/template/$last" ;;
                    esac
                    ;;
            esac
            ;;
    esac
}

case "$name" in
    openstack)
        fake_openstack "$@"
        ;;
    sudo)
        only_test_paths "$@"
        "$@"
        ;;
    mysql)
        cat >>"$TEST_ROOT/mysql.sql"
        ;;
    ssh-keygen)
        # ssh-keygen -q -t TYPE -N "" -C COMMENT -f FILE
        key=${!#}
        echo "FAKE PRIVATE KEY" >"$key"
        echo "ssh-ed25519 AAAAfake magnum-celtic" >"$key.pub"
        ;;
    *)
        # magnum-db-manage, magnum-conductor, uwsgi; and git, curl, wget,
        # pip, systemctl, which the tests assert are never called.
        ;;
esac
