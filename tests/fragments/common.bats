#!/usr/bin/env bats
# node/common.sh: what every role does first (hostname, apt proxy, base packages).

load helpers
load kube_stubs

setup() {
    kube_test_setup
    kube_params proxy
    # shellcheck source=../../heat_templates/fragments/lib/celtic.sh
    source "$FRAGMENTS/lib/celtic.sh"
    # shellcheck source=../../heat_templates/fragments/node/common.sh
    source "$FRAGMENTS/node/common.sh"
}

@test "the hostname resolves to the node address, once" {
    printf '127.0.0.1 localhost\n10.9.9.9 testnode-0\n' >"$ROOT/etc/hosts"
    common_hostname
    common_hostname
    run cat "$ROOT/etc/hosts"
    assert_output $'127.0.0.1 localhost\n10.0.0.11 testnode-0'
}

@test "apt goes through the proxy only when the template has one" {
    celtic_load_params
    common_apt_proxy
    assert [ ! -e "$ROOT/etc/apt/apt.conf.d/90celtic-proxy" ]
    CELTIC_HTTP_PROXY=http://proxy.example:3128 CELTIC_HTTPS_PROXY=http://proxy.example:3129
    CELTIC_CHANGED=0
    common_apt_proxy
    # written in this shell, so the caller sees the change
    [ "$CELTIC_CHANGED" = 1 ]
    run cat "$ROOT/etc/apt/apt.conf.d/90celtic-proxy"
    assert_output $'Acquire::http::Proxy "http://proxy.example:3128";\nAcquire::https::Proxy "http://proxy.example:3129";'
    # a proxy URL may carry a password: only root reads the file
    [ "$(stat -c %a "$ROOT/etc/apt/apt.conf.d/90celtic-proxy")" = 600 ]
    CELTIC_CHANGED=0
    common_apt_proxy
    [ "$CELTIC_CHANGED" = 0 ]
    CELTIC_HTTP_PROXY="" CELTIC_HTTPS_PROXY=""
    common_apt_proxy
    assert [ ! -e "$ROOT/etc/apt/apt.conf.d/90celtic-proxy" ]
}

@test "common_setup loads the parameters, exports the proxy and installs the base tools" {
    kube_params proxy '{"http_proxy": "http://p:3128", "no_proxy": "localhost,.svc"}'
    common_setup
    [ "$CELTIC_API_VIP" = 10.0.0.100 ]
    [ "$http_proxy" = http://p:3128 ]
    [ "$NO_PROXY" = localhost,.svc ]
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 update -q'
    assert_called 'apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends ca-certificates curl gpg python3 iproute2 openssl procps'
    : >"$CALLS"
    common_setup
    refute_called 'apt-get -o DPkg::Lock::Timeout=600 install.*'
}
