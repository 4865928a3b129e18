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

#
# The devstack plugin, phase by phase, with devstack and every external
# command replaced by recording stubs (see run_devstack.sh). Nothing here
# reaches the network or the host outside the test's scratch directory.

load helpers

setup_file() {
    devstack_setup_file
}

teardown_file() {
    devstack_teardown_file
}

setup() {
    devstack_setup
}

# --- stack.sh ------------------------------------------------------------

@test "stack.sh: every phase runs under errexit and nounset, and only install, post-config and extra act" {
    devstack stack
    assert_success
    assert_equal "$(phase_calls pre-install)" ""
    assert_equal "$(phase_calls test-config)" ""
    refute_call_matching all "die "
    refute_call_matching all "warn "
}

@test "install: Magnum from git, then python-magnumclient, then the driver (editable)" {
    devstack stack
    assert_success
    assert_phase_calls install \
        "$(call_line git_clone https://opendev.org/openstack/magnum.git "$DEST/magnum" master)" \
        "$(call_line setup_develop "$DEST/magnum")" \
        "$(call_line pip_install_gr python-magnumclient)" \
        "$(call_line setup_develop "$REPO_ROOT")"
}

@test "install: MAGNUM_RELEASE installs that Magnum release and its api-paste.ini" {
    export MAGNUM_RELEASE=23.0.0
    devstack stack
    assert_success
    assert_phase_calls install \
        "$(call_line pip_install magnum==23.0.0)" \
        "$(call_line pip_install_gr python-magnumclient)" \
        "$(call_line setup_develop "$REPO_ROOT")"
    assert_equal "$(cat "$MAGNUM_CONF_DIR/api-paste.ini")" "# api-paste.ini from the release"
}

@test "install: python-magnumclient from git when it is in LIBS_FROM_GIT" {
    export LIBS_FROM_GIT=python-magnumclient
    devstack stack
    assert_success
    assert_call install git_clone_by_name python-magnumclient
    assert_call install setup_dev_lib python-magnumclient
    refute_call_matching install "pip_install_gr"
}

@test "install: MAGNUM_CELTIC_DEVELOP=False installs the driver with a plain pip install" {
    export MAGNUM_CELTIC_DEVELOP=False
    devstack stack
    assert_success
    assert_call install setup_install "$REPO_ROOT"
    refute_call_matching install "$(call_line setup_develop "$REPO_ROOT")"
}

@test "install: an os_distro other than ubuntu or debian stops stack.sh before installing anything" {
    export MAGNUM_CELTIC_OS_DISTRO=fedora-coreos
    devstack stack
    assert_failure
    assert_output --partial "MAGNUM_CELTIC_OS_DISTRO must be ubuntu or debian, got 'fedora-coreos'"
    assert_equal "$(every_call)" \
        "$(call_line die "MAGNUM_CELTIC_OS_DISTRO must be ubuntu or debian, got 'fedora-coreos'")"
}

@test "install: an image URL without a known disk extension stops stack.sh, unless MAGNUM_CELTIC_IMAGE_NAME is set" {
    export MAGNUM_CELTIC_IMAGE_URL=https://images.example.test/debian-13-genericcloud-amd64.iso
    devstack stack
    assert_failure
    assert_output --partial "MAGNUM_CELTIC_IMAGE_URL must end in .img, .qcow2, .raw"
    refute_call_matching all "git_clone"
    refute_call_matching all "setup_"
}

@test "install: a malformed label list stops stack.sh with the variable's name" {
    export MAGNUM_CELTIC_LABEL_DEFAULTS="proxy_count=0,storage count"
    devstack stack
    assert_failure
    assert_output --partial "MAGNUM_CELTIC_LABEL_DEFAULTS: 'storage count' is not name=value"
}

@test "install: without Heat, stack.sh stops before installing anything and says how to add it" {
    export ENABLED_SERVICES=key,mysql,rabbit,g-api,n-api,q-svc
    devstack stack
    assert_failure
    assert_output --partial "h-eng is not enabled, and celtic clusters are Heat stacks: add 'enable_plugin heat https://opendev.org/openstack/heat' before magnum-celtic in local.conf"
    refute_call_matching all "git_clone"
    refute_call_matching all "setup_"
}

@test "install: Magnum and python-magnumclient follow devstack's TARGET_BRANCH" {
    export TARGET_BRANCH=stable/2026.1 LIBS_FROM_GIT=python-magnumclient
    devstack stack
    assert_success
    assert_call install git_clone https://opendev.org/openstack/magnum.git "$DEST/magnum" stable/2026.1
    assert_call install git_clone https://opendev.org/openstack/python-magnumclient.git \
        "$DEST/python-magnumclient" stable/2026.1
}

@test "install: MAGNUM_BRANCH and MAGNUMCLIENT_BRANCH override TARGET_BRANCH" {
    export TARGET_BRANCH=stable/2026.1 LIBS_FROM_GIT=python-magnumclient MAGNUM_BRANCH=master \
        MAGNUMCLIENT_BRANCH=5.0.0
    devstack stack
    assert_success
    assert_call install git_clone https://opendev.org/openstack/magnum.git "$DEST/magnum" master
    assert_call install git_clone https://opendev.org/openstack/python-magnumclient.git \
        "$DEST/python-magnumclient" 5.0.0
}

# --- post-config -----------------------------------------------------------

@test "post-config: the complete magnum.conf, with a dedicated database user and no [trust]" {
    devstack stack
    assert_success
    local data=$DATA_DIR
    assert_equal "$(conf_dump "$MAGNUM_CONF")" "$(cat <<EOF
[DEFAULT] debug = True
[DEFAULT] state_path = $data/magnum
[DEFAULT] transport_url = rabbit://stackrabbit:Rabbit-Secret-6093@192.0.2.10:5672/
[api] host = 0.0.0.0
[api] port = 9511
[api] api_paste_config = $MAGNUM_CONF_DIR/api-paste.ini
[oslo_concurrency] lock_path = $data/magnum/lock
[cluster] temp_cache_dir = $data/magnum/certificate-cache
[cinder_client] region_name = RegionOne
[certificates] cert_manager_type = x509keypair
[drivers] default_driver = celtic
[drivers] verify_ca = True
[heat_client] region_name = RegionOne
[heat_client] endpoint_type = publicURL
[celtic] node_insecure = False
[celtic_vendordata] bind_host = 0.0.0.0
[celtic_vendordata] bind_port = 9518
[celtic_vendordata] public_url = http://192.0.2.10:9518
[database] connection = mysql+pymysql://magnum:Database-Secret-7297@127.0.0.1/magnum?charset=utf8
[keystone_authtoken] auth_type = password
[keystone_authtoken] auth_url = http://192.0.2.10/identity
[keystone_authtoken] username = magnum
[keystone_authtoken] password = Service-Secret-5071
[keystone_authtoken] user_domain_name = Default
[keystone_authtoken] project_name = service
[keystone_authtoken] project_domain_name = Default
[keystone_authtoken] www_authenticate_uri = http://192.0.2.10/identity
[keystone_authtoken] cafile = $data/ca-bundle.pem
[keystone_authtoken] memcached_servers = localhost:11211
[keystone_auth] auth_type = password
[keystone_auth] auth_url = http://192.0.2.10/identity
[keystone_auth] username = magnum
[keystone_auth] password = Service-Secret-5071
[keystone_auth] user_domain_name = Default
[keystone_auth] project_name = service
[keystone_auth] project_domain_name = Default
EOF
)"
    assert_call post-config setup_logging "$MAGNUM_CONF"
    assert_call post-config iniset_rpc_backend magnum "$MAGNUM_CONF"
    assert_call post-config configure_keystone_authtoken_middleware "$MAGNUM_CONF" magnum
}

@test "post-config: the magnum user gets admin in the service project; service container-infra on port 9511" {
    devstack stack
    assert_success
    local url=http://192.0.2.10:9511/v1
    assert_in_order post-config \
        "$(call_line create_service_user magnum admin)" \
        "$(call_line get_or_add_user_project_role admin magnum service Default Default)" \
        "$(call_line get_or_create_service magnum container-infra "Container Infrastructure Management Service")" \
        "$(call_line get_or_create_endpoint service-magnum-id RegionOne "$url" "$url" "$url")"
}

@test "post-config: Nova's metadata service asks celtic-vendordata (DynamicJSON target celtic) as nova" {
    devstack stack
    assert_success
    assert_equal "$(conf_dump "$NOVA_CONF")" "$(cat <<EOF
[api] vendordata_providers = StaticJSON,DynamicJSON
[api] vendordata_dynamic_targets = celtic@http://192.0.2.10:9518/v1/vendordata
[api] vendordata_dynamic_read_timeout = 30
[vendordata_dynamic_auth] auth_type = password
[vendordata_dynamic_auth] auth_url = http://192.0.2.10/identity
[vendordata_dynamic_auth] username = nova
[vendordata_dynamic_auth] password = Service-Secret-5071
[vendordata_dynamic_auth] user_domain_name = Default
[vendordata_dynamic_auth] project_name = service
[vendordata_dynamic_auth] project_domain_name = Default
EOF
)"
}

@test "post-config: CELTIC_VENDORDATA_PUBLIC_URL and the port reach magnum.conf and nova.conf" {
    export CELTIC_VENDORDATA_PORT=19518
    export CELTIC_VENDORDATA_PUBLIC_URL=https://vendordata.example.test:19518
    export CELTIC_VENDORDATA_NOVA_TIMEOUT=60
    devstack stack
    assert_success
    assert_equal "$(conf_dump "$MAGNUM_CONF" | grep celtic_vendordata)" "$(cat <<EOF
[celtic_vendordata] bind_host = 0.0.0.0
[celtic_vendordata] bind_port = 19518
[celtic_vendordata] public_url = https://vendordata.example.test:19518
EOF
)"
    assert_equal "$(conf_dump "$NOVA_CONF" | grep -F '[api]')" "$(cat <<EOF
[api] vendordata_providers = StaticJSON,DynamicJSON
[api] vendordata_dynamic_targets = celtic@https://vendordata.example.test:19518/v1/vendordata
[api] vendordata_dynamic_read_timeout = 60
EOF
)"
}

@test "post-config: with celtic-vendordata disabled, or without Nova, nova.conf is not touched" {
    export DISABLE=celtic-vendordata
    devstack stack
    assert_success
    [[ ! -e "$NOVA_CONF" ]]
    refute_call_matching all "celtic-vendordata"
}

@test "post-config: without Nova, nova.conf is not touched but celtic-vendordata runs" {
    export ENABLED_SERVICES=key,mysql,rabbit,h-eng,h-api
    devstack stack
    assert_success
    [[ ! -e "$NOVA_CONF" ]]
    assert_call extra run_process celtic-vendordata \
        "$FAKE_PREFIX_BIN/celtic-vendordata --config-file $MAGNUM_CONF"
}

@test "post-config: no Keystone, no accounts" {
    export ENABLED_SERVICES=mysql,rabbit,h-eng
    devstack stack
    assert_success
    refute_call_matching post-config "create_service_user"
    refute_call_matching post-config "get_or_create_"
}

@test "post-config: uwsgi serves magnum.wsgi.api directly on 9511 with the plugin's magnum.conf" {
    devstack stack
    assert_success
    assert_call post-config write_uwsgi_config "$MAGNUM_UWSGI_CONF" magnum.wsgi.api:application "" \
        0.0.0.0:9511 magnum-api
    assert_equal "$(conf "$MAGNUM_UWSGI_CONF" uwsgi http)" "0.0.0.0:9511"
    assert_equal "$(conf "$MAGNUM_UWSGI_CONF" uwsgi pyargv)" "--config-file $MAGNUM_CONF"
    assert_equal "$(cat "$MAGNUM_CONF_DIR/api-paste.ini")" "# api-paste.ini from the git checkout"
}

@test "post-config: barbican enabled -> cert_manager_type barbican; disabled -> x509keypair" {
    export ENABLED_SERVICES=key,mysql,rabbit,h-eng,barbican-svc,barbican-retry,barbican-keystone-listener
    devstack stack
    assert_success
    assert_magnum_conf certificates cert_manager_type barbican

    export ENABLED_SERVICES=key,mysql,rabbit,h-eng
    devstack stack
    assert_success
    assert_magnum_conf certificates cert_manager_type x509keypair
}

@test "post-config: with tls-proxy, Magnum, its Heat client and the nodes trust devstack's CA" {
    export ENABLED_SERVICES=key,mysql,rabbit,h-eng,tls-proxy
    devstack stack
    assert_success
    local bundle="$DATA_DIR/ca-bundle.pem"
    assert_magnum_conf drivers openstack_ca_file "$bundle"
    assert_magnum_conf heat_client ca_file "$bundle"
    assert_magnum_conf keystone_auth cafile "$bundle"
    assert_magnum_conf celtic node_openstack_ca_file "$bundle"
}

@test "post-config: operator label defaults go to [celtic_cluster_labels]" {
    export MAGNUM_CELTIC_LABEL_DEFAULTS="proxy_count=0,storage_count=0,kube_tag=v1.33.2"
    devstack stack
    assert_success
    assert_magnum_conf celtic_cluster_labels proxy_count 0
    assert_magnum_conf celtic_cluster_labels storage_count 0
    assert_magnum_conf celtic_cluster_labels kube_tag v1.33.2
}

@test "post-config: a database password with URL and SQL metacharacters is encoded and escaped" {
    export MAGNUM_DB_PASSWORD="p@ss:w/rd'x"
    devstack stack
    assert_success
    assert_magnum_conf database connection \
        "mysql+pymysql://magnum:p%40ss%3Aw%2Frd%27x@127.0.0.1/magnum?charset=utf8"
    run grep -c "IDENTIFIED BY 'p@ss:w/rd\\\\'x';" "$TEST_ROOT/mysql.sql"
    assert_output 4
}

@test "post-config: with PostgreSQL, devstack's connection URL and no MySQL user" {
    export DATABASE_TYPE=postgresql
    devstack stack
    assert_success
    assert_magnum_conf database connection \
        "postgresql://root:Database-Secret-7297@127.0.0.1/magnum?client_encoding=utf8"
    refute_call_matching extra "mysql"
    assert_call extra recreate_database magnum
}

# --- extra ---------------------------------------------------------------

@test "extra: database, schema, API, conductor, image, keypair, template, in this order" {
    devstack stack
    assert_success
    assert_in_order extra \
        "$(call_line recreate_database magnum)" \
        "mysql --defaults-extra-file=" \
        "$(call_line magnum-db-manage --config-file "$MAGNUM_CONF" upgrade)" \
        "$(call_line run_process magnum-api "$FAKE_BIN/uwsgi --procname-prefix magnum-api --ini $MAGNUM_UWSGI_CONF")" \
        "$(call_line wait_for_service 60 http://192.0.2.10:9511)" \
        "$(call_line run_process magnum-cond "$FAKE_PREFIX_BIN/magnum-conductor --config-file $MAGNUM_CONF")" \
        "$(call_line run_process celtic-vendordata "$FAKE_PREFIX_BIN/celtic-vendordata --config-file $MAGNUM_CONF")" \
        "$(call_line "${OS[@]}" image show noble-server-cloudimg-amd64)" \
        "$(call_line upload_image https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img)" \
        "$(call_line "${OS[@]}" image set --property os_distro=ubuntu --property magnum_driver=celtic noble-server-cloudimg-amd64)" \
        "$(call_line ssh-keygen -q -t ed25519 -N "" -C magnum-celtic -f "$SSH_KEY")" \
        "$(call_line "${OS[@]}" keypair show celtic)" \
        "$(call_line "${OS[@]}" keypair create --public-key "$SSH_KEY.pub" celtic)" \
        "$(call_line "${OS[@]}" coe cluster template show celtic-k8s)" \
        "$(call_line "${OS[@]}" coe cluster template create)"
}

@test "extra: the database user is created if missing, its password reset, its grants on magnum only" {
    devstack stack
    assert_success
    assert_equal "$(cat "$TEST_ROOT/mysql.sql")" "$(cat <<'EOF'
CREATE USER IF NOT EXISTS 'magnum'@'%' IDENTIFIED BY 'Database-Secret-7297';
ALTER USER 'magnum'@'%' IDENTIFIED BY 'Database-Secret-7297';
GRANT ALL PRIVILEGES ON `magnum`.* TO 'magnum'@'%';
CREATE USER IF NOT EXISTS 'magnum'@'localhost' IDENTIFIED BY 'Database-Secret-7297';
ALTER USER 'magnum'@'localhost' IDENTIFIED BY 'Database-Secret-7297';
GRANT ALL PRIVILEGES ON `magnum`.* TO 'magnum'@'localhost';
EOF
)"
}

@test "extra: the public template celtic-k8s uses the image (which selects the driver), the keypair and the flavors" {
    devstack stack
    assert_success
    assert_call extra "${OS[@]}" coe cluster template create --coe kubernetes \
        --image noble-server-cloudimg-amd64 --keypair celtic --external-network public \
        --master-flavor ds2G --flavor ds2G --master-lb-enabled --network-driver flannel --public \
        celtic-k8s
}

@test "extra: template flavors, DNS server and labels come from settings" {
    export MAGNUM_CELTIC_MASTER_FLAVOR=ds4G MAGNUM_CELTIC_FLAVOR=m1.medium PUBLIC_NETWORK_NAME=ext-net \
        MAGNUM_CELTIC_DNS_NAMESERVER=192.0.2.53 MAGNUM_CELTIC_TEMPLATE_LABELS="proxy_count=0,storage_count=0" \
        MAGNUM_CELTIC_TEMPLATE=small-celtic MAGNUM_CELTIC_KEYPAIR=ops
    devstack stack
    assert_success
    assert_call extra "${OS[@]}" coe cluster template create --coe kubernetes \
        --image noble-server-cloudimg-amd64 --keypair ops --external-network ext-net \
        --master-flavor ds4G --flavor m1.medium --master-lb-enabled --network-driver flannel --public \
        --dns-nameserver 192.0.2.53 --labels proxy_count=0,storage_count=0 small-celtic
}

@test "extra: MAGNUM_CELTIC_IMAGE_NAME names an image already in Glance: tagged, nothing uploaded" {
    export MAGNUM_CELTIC_IMAGE_NAME=debian-13 MAGNUM_CELTIC_OS_DISTRO=debian
    mkdir -p "$TEST_ROOT/cloud/image"
    : >"$TEST_ROOT/cloud/image/debian-13"
    devstack stack
    assert_success
    refute_call_matching extra "upload_image"
    assert_call extra "${OS[@]}" image set --property os_distro=debian --property magnum_driver=celtic debian-13
    assert_call extra "${OS[@]}" coe cluster template create --coe kubernetes \
        --image debian-13 --keypair celtic --external-network public \
        --master-flavor ds2G --flavor ds2G --master-lb-enabled --network-driver flannel --public \
        celtic-k8s
}

@test "extra: MAGNUM_CELTIC_IMAGE_NAME not in Glance stops stack.sh and says so" {
    export MAGNUM_CELTIC_IMAGE_NAME=debian-13 MAGNUM_CELTIC_OS_DISTRO=debian
    devstack stack
    assert_failure
    assert_output --partial "MAGNUM_CELTIC_IMAGE_NAME: no image debian-13 in Glance"
    refute_call_matching extra "upload_image"
}

@test "extra: a Debian qcow2 URL is uploaded and tagged os_distro=debian" {
    export MAGNUM_CELTIC_IMAGE_URL=https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2
    export MAGNUM_CELTIC_OS_DISTRO=debian
    devstack stack
    assert_success
    assert_call extra upload_image "$MAGNUM_CELTIC_IMAGE_URL"
    assert_call extra "${OS[@]}" image set --property os_distro=debian --property magnum_driver=celtic \
        debian-13-genericcloud-amd64
}

@test "extra: nothing is downloaded outside upload_image, nothing is cloned, nothing pip-installed directly" {
    devstack stack
    assert_success
    local command
    for command in git curl wget pip pip3 systemctl; do
        refute_call_matching all "$command "
    done
    run grep -c '^upload_image ' "$CALLS"
    assert_output 1
}

@test "extra: without Glance, Nova or Neutron, Magnum starts but no image, keypair or template is made" {
    export ENABLED_SERVICES=key,mysql,rabbit,h-eng,h-api
    devstack stack
    assert_success
    assert_call extra run_process magnum-cond "$FAKE_PREFIX_BIN/magnum-conductor --config-file $MAGNUM_CONF"
    refute_call_matching extra "upload_image"
    refute_call_matching extra "openstack"
    refute_call_matching extra "ssh-keygen"
}

@test "extra: a conductor-only node (magnum-api disabled) runs no database setup, API or template" {
    export DISABLE=magnum-api
    devstack stack
    assert_success
    assert_phase_calls extra \
        "$(call_line run_process magnum-cond "$FAKE_PREFIX_BIN/magnum-conductor --config-file $MAGNUM_CONF")" \
        "$(call_line run_process celtic-vendordata "$FAKE_PREFIX_BIN/celtic-vendordata --config-file $MAGNUM_CONF")"
}

# --- re-stacking -----------------------------------------------------------

@test "re-stack: a second stack.sh creates nothing again and writes the same files" {
    devstack stack
    assert_success
    local first_conf first_uwsgi first_key
    first_conf=$(cat "$MAGNUM_CONF")
    first_uwsgi=$(cat "$MAGNUM_UWSGI_CONF")
    first_key=$(cat "$SSH_KEY.pub")
    local first_install first_post_config
    first_install=$(phase_calls install)
    first_post_config=$(phase_calls post-config)

    export CALLS="$TEST_ROOT/calls.second"
    : >"$CALLS"
    devstack stack
    assert_success
    assert_equal "$(cat "$MAGNUM_CONF")" "$first_conf"
    assert_equal "$(cat "$MAGNUM_UWSGI_CONF")" "$first_uwsgi"
    assert_equal "$(cat "$SSH_KEY.pub")" "$first_key"
    assert_equal "$(phase_calls install)" "$first_install"
    assert_equal "$(phase_calls post-config)" "$first_post_config"
    refute_call_matching extra "upload_image"
    refute_call_matching extra "ssh-keygen"
    refute_call_matching extra "$(call_line "${OS[@]}" keypair create)"
    refute_call_matching extra "$(call_line "${OS[@]}" coe cluster template create)"
    # The properties are set again (harmless), the services started again.
    assert_call extra "${OS[@]}" image set --property os_distro=ubuntu --property magnum_driver=celtic \
        noble-server-cloudimg-amd64
    assert_in_order extra "run_process magnum-api" "run_process magnum-cond"
}

@test "re-stack: an image already in Glance is not uploaded again, only tagged" {
    mkdir -p "$TEST_ROOT/cloud/image"
    : >"$TEST_ROOT/cloud/image/noble-server-cloudimg-amd64"
    devstack stack
    assert_success
    refute_call_matching extra "upload_image"
    assert_call extra "${OS[@]}" image set --property os_distro=ubuntu --property magnum_driver=celtic \
        noble-server-cloudimg-amd64
}

# --- disabled, or Magnum's own plugin --------------------------------------

@test "magnum-api and magnum-cond disabled: nothing at all, in any phase" {
    export DISABLE="magnum-api magnum-cond"
    devstack stack unstack clean
    assert_success
    assert_equal "$(every_call)" ""
    refute_output --partial "summary:"
    assert [ ! -e "$TEST_ROOT/etc" ]
    assert [ ! -e "$DATA_DIR/magnum" ]
    assert [ ! -e "$TEST_ROOT/cloud" ]
}

@test "Magnum's own plugin enabled: only the driver is installed, in every phase" {
    export DEVSTACK_PLUGINS=heat,magnum,magnum-celtic
    devstack stack unstack clean
    assert_success
    assert_equal "$(every_call)" "$(call_line setup_develop "$REPO_ROOT")"
    assert_equal "$(phase_calls install)" "$(call_line setup_develop "$REPO_ROOT")"
    assert [ ! -e "$TEST_ROOT/etc" ]
}

@test "Magnum's own plugin enabled after magnum-celtic: stack.sh stops and says why" {
    export DEVSTACK_PLUGINS=heat,magnum-celtic,magnum
    devstack stack
    assert_failure
    assert_output --partial "enable_plugin magnum must come before enable_plugin magnum-celtic"
    refute_call_matching all "setup_"
}

# --- unstack.sh, clean.sh --------------------------------------------------

@test "unstack: stops magnum-api, magnum-cond and celtic-vendordata, nothing else" {
    devstack stack
    devstack unstack
    assert_success
    assert_phase_calls unstack \
        "$(call_line stop_process magnum-api)" \
        "$(call_line stop_process magnum-cond)" \
        "$(call_line stop_process celtic-vendordata)"
}

@test "clean: removes the configuration, the state and the generated key" {
    devstack stack
    assert_success
    assert [ -f "$MAGNUM_CONF" ]
    assert [ -f "$SSH_KEY" ]
    devstack unstack
    devstack clean
    assert_success
    assert_phase_calls clean "$(call_line sudo rm -rf "$MAGNUM_CONF_DIR")"
    assert [ ! -e "$MAGNUM_CONF_DIR" ]
    assert [ ! -e "$STATE_PATH" ]
    assert [ ! -e "$(dirname "$SSH_KEY")" ]
    assert [ -d "$DATA_DIR" ]
}

@test "clean: a key the operator named in MAGNUM_CELTIC_SSH_KEY is used and never removed" {
    mkdir -p "$TEST_ROOT/home/.ssh"
    echo "ssh-ed25519 AAAAmine me" >"$TEST_ROOT/home/.ssh/id_ed25519.pub"
    echo "MINE" >"$TEST_ROOT/home/.ssh/id_ed25519"
    export MAGNUM_CELTIC_SSH_KEY="$TEST_ROOT/home/.ssh/id_ed25519"
    devstack stack clean
    assert_success
    refute_call_matching extra "ssh-keygen"
    assert_call extra "${OS[@]}" keypair create --public-key "$TEST_ROOT/home/.ssh/id_ed25519.pub" celtic
    assert_equal "$(cat "$TEST_ROOT/home/.ssh/id_ed25519")" "MINE"
}

# --- the stack.sh log ---------------------------------------------------------

@test "xtrace: traced like stack.sh, no password reaches the trace, and xtrace is restored after each phase" {
    export RUN_XTRACE=1
    devstack stack unstack clean
    assert_success
    run grep -c 'magnum_celtic_configure' "$TEST_ROOT/xtrace.log"
    refute_output 0
    local secret
    for secret in "${SECRETS[@]}"; do
        run grep -c -- "$secret" "$TEST_ROOT/xtrace.log"
        assert_output 0
    done
}

@test "xtrace: off before a phase, off after it (run_devstack.sh fails with status 3 otherwise)" {
    export RUN_XTRACE=0
    devstack stack unstack clean
    assert_success
    refute_output --partial "changed xtrace"
}

@test "stdout: no variable dump and no secret in what stack.sh prints" {
    devstack stack unstack clean
    assert_success
    local secret
    for secret in "${SECRETS[@]}"; do
        refute_output --partial "$secret"
    done
    refute_output --partial "MAGNUM_DB_PASSWORD="
}

# --- the real clients and option types ---------------------------------------
# run_devstack.sh fails (status 5) on an `openstack` command line a real client
# rejects, and (status 4) on an iniset value its oslo option rejects; every
# test above runs under both checks. These show that the checks can fail.

@test "openstack command lines: checked with python-magnumclient 4.11.0 (upper-constraints) and the newest" {
    run cut -d' ' -f1,3,4 <<<"$OPENSTACK_CLIENTS"
    assert_line --index 0 --regexp '^upper-constraints python-magnumclient==4\.11\.0 python-openstackclient==[0-9.]+$'
    assert_line --index 1 --regexp '^newest python-magnumclient==[5-9]\.[0-9.]+ python-openstackclient==[0-9.]+$'
    devstack stack
    assert_success
    assert [ ! -e "$TEST_ROOT/cli-errors" ]
}

@test "openstack command lines: --driver is rejected by python-magnumclient 4.11.0, accepted by the newest" {
    export DEVSTACK_TESTS FAKE_CLOUD=$TEST_ROOT/cloud
    run bash "$DEVSTACK_TESTS/fakebin.bash" openstack --os-cloud devstack-admin coe cluster template \
        create --coe kubernetes --image img --external-network public --driver celtic celtic-k8s
    assert_failure 2
    assert_output --partial "rejected by upper-constraints (python-magnumclient==4.11.0"
    assert_output --partial "error: unrecognized arguments: --driver celtic"
    refute_output --partial "rejected by newest"
}

@test "openstack command lines: an unknown option, command or cloud is rejected by every client" {
    export DEVSTACK_TESTS FAKE_CLOUD=$TEST_ROOT/cloud
    run bash "$DEVSTACK_TESTS/fakebin.bash" openstack --os-cloud devstack-admin image set \
        --propery os_distro=ubuntu img
    assert_failure 2
    assert_output --partial "rejected by upper-constraints"
    assert_output --partial "rejected by newest"
    run bash "$DEVSTACK_TESTS/fakebin.bash" openstack --os-cloud devstack-admin coe template show x
    assert_failure 2
    # Parsed fine; then the fake cloud has no such image.
    run bash "$DEVSTACK_TESTS/fakebin.bash" openstack --os-cloud devstack image show x
    assert_failure 1
    assert_output "No image found for x"
    run bash "$DEVSTACK_TESTS/fakebin.bash" openstack --os-cloud no-such-cloud image show x
    assert_failure 2
}

@test "iniset values: checked against the real oslo options, [api] host '[::]' and unknown options rejected" {
    local log="$BATS_TEST_TMPDIR/iniset.log"
    printf '%s\0' /etc/magnum/magnum.conf api host '[::]' \
        /etc/magnum/magnum.conf api host '::' \
        /etc/magnum/magnum.conf api port 70000 \
        /etc/magnum/magnum.conf trust trustee_domain_name magnum \
        /etc/magnum/magnum.conf keystone_auth auth_type password \
        /etc/magnum/magnum.conf keystone_auth username magnum \
        /etc/magnum/magnum.conf keystone_auth cafile /ca.pem \
        /etc/magnum/magnum.conf oslo_middleware enable_proxy_headers_parsing yes-please \
        /etc/magnum/magnum-api-uwsgi.ini uwsgi http '[::]:9511' >"$log"
    run "$TEST_PYTHON" -I "$DEVSTACK_TESTS/conf_check.py" check "$CONF_TABLE" "$log"
    assert_failure 1
    assert_output "$(cat <<'EOF2'
iniset: magnum.conf [api] host = '[::]': rejected by its type IPAddress: [::] is not IPv4 or IPv6 address
iniset: magnum.conf [api] port = '70000': rejected by its type Port(min=0, max=65535): Should be less than or equal to 65535
iniset: magnum.conf [trust] trustee_domain_name = 'magnum': no such option in [trust] (nothing registers it)
iniset: magnum.conf [oslo_middleware] enable_proxy_headers_parsing = 'yes-please': rejected by its type Boolean: Unexpected boolean value 'yes-please'
EOF2
)"
}

# --- IPv6 and tls-proxy -------------------------------------------------------

@test "IPv6 (SERVICE_IP_VERSION=6): [api] host is the bare '::', uwsgi binds [::], URLs use brackets" {
    export SERVICE_IP_VERSION=6
    devstack stack
    assert_success
    assert_magnum_conf api host "::"
    assert_magnum_conf api port 9511
    assert_equal "$(conf "$MAGNUM_UWSGI_CONF" uwsgi http)" "[::]:9511"
    assert_magnum_conf database connection \
        "mysql+pymysql://magnum:Database-Secret-7297@[::1]/magnum?charset=utf8"
    assert_magnum_conf keystone_auth auth_url "http://[2001:db8::10]/identity"
    local url="http://[2001:db8::10]:9511/v1"
    assert_call post-config get_or_create_endpoint service-magnum-id RegionOne "$url" "$url" "$url"
    assert_call extra wait_for_service 60 "http://[2001:db8::10]:9511"
    run grep -x 'host="::1"' "$TEST_ROOT/mysql.cnf"
    assert_success
    devstack unstack clean
    assert_success
}

@test "tls-proxy: the endpoint is https on 9511, devstack's TLS proxy forwards to uwsgi on 19511" {
    export ENABLED_SERVICES=key,mysql,rabbit,g-api,n-api,q-svc,h-eng,h-api,tls-proxy
    devstack stack
    assert_success
    local url=https://192.0.2.10:9511/v1
    assert_call post-config get_or_create_endpoint service-magnum-id RegionOne "$url" "$url" "$url"
    assert_magnum_conf api port 19511
    assert_equal "$(conf "$MAGNUM_UWSGI_CONF" uwsgi http)" "0.0.0.0:19511"
    assert_magnum_conf oslo_middleware enable_proxy_headers_parsing True
    assert_magnum_conf keystone_auth auth_url https://192.0.2.10/identity
    assert_in_order extra \
        "$(call_line start_tls_proxy magnum-api '*' 9511 192.0.2.10 19511)" \
        "run_process magnum-api " \
        "$(call_line wait_for_service 60 https://192.0.2.10:9511)"
    devstack unstack clean
    assert_success
}

@test "tls-proxy on IPv6: the proxy forwards to the bracketed service host, uwsgi binds [::]:19511" {
    export SERVICE_IP_VERSION=6
    export ENABLED_SERVICES=key,mysql,rabbit,g-api,n-api,q-svc,h-eng,h-api,tls-proxy
    devstack stack
    assert_success
    assert_magnum_conf api host "::"
    assert_equal "$(conf "$MAGNUM_UWSGI_CONF" uwsgi http)" "[::]:19511"
    assert_call extra start_tls_proxy magnum-api '*' 9511 "[2001:db8::10]" 19511
    local url="https://[2001:db8::10]:9511/v1"
    assert_call post-config get_or_create_endpoint service-magnum-id RegionOne "$url" "$url" "$url"
}

@test "without tls-proxy, no TLS proxy and plain http" {
    devstack stack
    assert_success
    refute_call_matching all "start_tls_proxy"
    refute_call_matching all "iniset $MAGNUM_CONF oslo_middleware"
}

# --- the database password ----------------------------------------------------

@test "extra: devstack's database password reaches mysql in a 0600 option file, never on a command line" {
    devstack stack
    assert_success
    run grep '^mysql' "$CALLS"
    assert_output --regexp '^mysql --defaults-extra-file=[^ ]+$'
    local defaults=${output#*=}
    assert [ ! -e "$defaults" ]
    assert_equal "$(cat "$TEST_ROOT/mysql.cnf.mode")" 600
    assert_equal "$(cat "$TEST_ROOT/mysql.cnf")" "$(printf '[client]\nuser="root"\npassword="Database-Secret-7297"\nhost="127.0.0.1"')"
}

@test "extra: a database password with quotes and backslashes is escaped for the option file" {
    export DATABASE_PASSWORD='a"b\c'
    devstack stack
    assert_success
    run grep '^password=' "$TEST_ROOT/mysql.cnf"
    assert_output 'password="a\"b\\c"'
}

# --- Magnum's own start-up ----------------------------------------------------

@test "magnum.conf of the IPv4, IPv6 and tls-proxy runs: Magnum's prepare_service and log_opt_values accept it" {
    local scenario
    for scenario in 4 6 6-tls; do
        export SERVICE_IP_VERSION=${scenario%%-*}
        export ENABLED_SERVICES=key,mysql,rabbit,g-api,n-api,q-svc,h-eng,h-api
        [[ $scenario == *-tls ]] && ENABLED_SERVICES+=,tls-proxy
        devstack stack
        assert_success
        run "$TEST_PYTHON" "$DEVSTACK_TESTS/magnum_start.py" "$MAGNUM_CONF"
        assert_success
    done
}

@test "magnum_start.py fails where magnum-api and magnum-conductor fail: [api] host = [::]" {
    devstack stack
    assert_success
    sed -i 's/^host = 0\.0\.0\.0$/host = [::]/' "$MAGNUM_CONF"
    run "$TEST_PYTHON" "$DEVSTACK_TESTS/magnum_start.py" "$MAGNUM_CONF"
    assert_failure 1
    assert_output --partial "magnum would not start with $MAGNUM_CONF"
    assert_output --partial "[::] is not IPv4 or IPv6 address"
}
