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
# devstack/plugin.sh: devstack runs `source plugin.sh <mode> [phase]` at each
# step of stack.sh, unstack.sh and clean.sh. Enable it in local.conf with
#
#   enable_plugin magnum-celtic <git url of this repository> [branch]
#
# It installs Magnum (unless Magnum's own plugin does) and the celtic driver,
# configures and starts Magnum, and creates a ready-to-use cluster template.
# Nothing happens when magnum-api and magnum-cond are both disabled.

# Traced like devstack's own steps; secrets are written with xtrace off.
_XTRACE_MAGNUM_CELTIC_PLUGIN=$(set +o | grep xtrace)
set -o xtrace

if is_service_enabled magnum-api magnum-cond; then
    # shellcheck source=SCRIPTDIR/lib/magnum_celtic
    source "$(dirname "${BASH_SOURCE[0]}")/lib/magnum_celtic"

    # With Magnum's own plugin, that plugin owns Magnum: only the driver
    # is added, next to the Magnum it installed.
    if is_plugin_enabled magnum; then
        if [[ "$1" == "stack" && "${2:-}" == "install" ]]; then
            magnum_celtic_check_plugin_order
            echo_summary "Installing the celtic Magnum driver"
            magnum_celtic_install_driver
        fi
    elif [[ "$1" == "stack" && "${2:-}" == "install" ]]; then
        magnum_celtic_check_settings
        echo_summary "Installing Magnum and the celtic driver"
        magnum_celtic_install
    elif [[ "$1" == "stack" && "${2:-}" == "post-config" ]]; then
        echo_summary "Configuring Magnum for the celtic driver"
        magnum_celtic_configure
    elif [[ "$1" == "stack" && "${2:-}" == "extra" ]]; then
        echo_summary "Starting Magnum"
        magnum_celtic_init
        magnum_celtic_start
        echo_summary "Creating the celtic image, keypair and cluster template"
        magnum_celtic_create_resources
    elif [[ "$1" == "unstack" ]]; then
        magnum_celtic_stop
    elif [[ "$1" == "clean" ]]; then
        magnum_celtic_cleanup
    fi
fi

$_XTRACE_MAGNUM_CELTIC_PLUGIN
