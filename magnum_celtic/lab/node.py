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

"""The node simulator: what a booted server does with its cloud-init payload.

When a stand-in server becomes ACTIVE the Nova stand-in writes what Nova's metadata
service would serve it (``<node dir>/metadata/openstack/latest/vendor_data2.json``,
celtic-vendordata's answer: lab/metadata.py) and hands its RAW ``#cloud-config``
user_data to ``run()``. The simulator does what cloud-init and the role fragment would
do, minus the real work:

1. writes every ``write_files`` entry under a per-node root directory, with its mode
   (content must be text, as cloud-init requires);
2. unpacks the archives ``runcmd`` unpacks (the role's fragment bundle), finds the role
   script ``runcmd`` starts and checks it and every file it sources were delivered;
3. checks the payload against the node contract (doc/node-contract.md): params.json is
   a JSON object for this role with the keys the stack provides, the public
   certificates are there, and the payload carries NO secret at all (no secrets/ file,
   no signal.json, no private key block, no value celtic-vendordata hands this node);
4. runs the REAL shell library with ``CELTIC_*`` paths pointed at that root and
   ``CELTIC_METADATA_URL=file://<node dir>/metadata``: ``celtic_run`` with a ``params``
   step, the ``vendordata`` step (``celtic_fetch_vendordata``, which writes secrets/
   and signal.json from vendor_data2.json), a ``node-contract`` step that checks what
   the node ended up with (each role exactly its secrets, ``pki.role_secrets``, all
   0600; no CA key off the masters), then either the step the behaviour file says
   fails (``celtic_die``) or a ``ready`` step. The library's EXIT trap reports exactly
   as a node does: a signed POST to celtic-vendordata's signal relay over loopback.

A node whose payload carries the previous release's library (no vendordata step: its
secrets and Heat credentials came in the payload) is simulated as that release's node
was, so a stack the previous release created can be built on the lab and migrated
(tests/functional/test_secrets_exposure.py).

A contract violation is reported as a failure of step ``node-contract``. Everything a
node writes stays in ``<cloud>/nodes/<name>-<id>/`` (``console.log`` is what the serial
console would show).
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from typing import Any
from typing import Callable

import yaml

from magnum_celtic.lab import node_contract

ROOT_PREFIXES = {
    # node path -> environment variable the library reads it from
    '/etc/celtic': 'CELTIC_ETC',
    '/usr/local/lib/celtic': 'CELTIC_LIB_DIR',
    '/var/lib/celtic': 'CELTIC_STATE_DIR',
}

#: params.json keys the stack itself provides to every role (node-contract.md §2)
STACK_KEYS = ('cluster_name', 'cluster_uuid', 'api_vip', 'api_vip_fip', 'master_addresses',
              'proxy_vip', 'proxy_vip_fip', 'proxy_addresses', 'storage_addresses',
              'fixed_network_cidr', 'role')
ROLE_KEYS = {'minion': ('pool', 'node_labels', 'node_taints')}
#: CA/SA keys only masters may hold (§3)
MASTER_ONLY_SECRETS = node_contract.MASTER_ONLY_SECRETS
ROLE_PUBLIC = {'master': ('pki/ca.crt', 'pki/etcd-ca.crt', 'pki/front-proxy-ca.crt'),
               'minion': ('pki/ca.crt',), 'proxy': ('pki/ca.crt',), 'storage': ()}
#: what marks a private key in any text
PRIVATE_KEY_MARK = 'PRIVATE KEY-----'
#: the library function a payload of this release runs first (its absence marks a
#: payload of the previous release, which carried its secrets itself)
VENDORDATA_STEP = 'celtic_fetch_vendordata'


@functools.lru_cache(maxsize=1)
def role_secrets() -> dict[str, tuple[str, ...]]:
    """role -> the secret files its nodes receive: pki.role_secrets, the one home of
    that mapping (the proxies' with celtic-lb's key: a proxy exists only with it)."""
    from magnum_celtic import pki
    blank = pki.CertPair('', '')
    shape = pki.ClusterPKI(blank, blank, blank, '', '', '', '', '', blank)
    return {role: tuple(sorted(files))
            for role, files in pki.role_secrets(shape, proxies=True).items()}


NODE_SCRIPT = r'''
# The lab's stand-in for a role fragment: the real library, simulated work.
source "$CELTIC_LIB_DIR/lib/celtic.sh"

lab_ready() {
    celtic_info "lab node: $CELTIC_ROLE work simulated"
}

# what the node ended up with, against doc/node-contract.md §3
lab_contract() {
    local problems
    problems=$("$LAB_PYTHON" -S "$LAB_CONTRACT" "$CELTIC_ROOT" "$CELTIC_ROLE" "$LAB_LEGACY" \
        "$LAB_EXPECTED_SECRETS") || celtic_die "cannot check the node contract"
    [[ -z "$problems" ]] || celtic_die "$problems"
}

lab_node_main() {
    celtic_step params celtic_load_params
    if [[ "$LAB_LEGACY" != 1 ]]; then
        celtic_step vendordata celtic_fetch_vendordata
    fi
    if [[ -n "${LAB_PAYLOAD_PROBLEMS:-}" ]]; then
        celtic_step node-contract celtic_die "$LAB_PAYLOAD_PROBLEMS"
    fi
    celtic_step node-contract lab_contract
    if [[ -n "${LAB_FAIL_STEP:-}" ]]; then
        celtic_step "$LAB_FAIL_STEP" celtic_die "$LAB_FAIL_MESSAGE"
    fi
    celtic_step ready lab_ready
}

set -euo pipefail
CELTIC_ROLE=$LAB_ROLE
if [[ "$CELTIC_ROLE" == master ]]; then
    CELTIC_SIGNAL_ID="$CELTIC_NODE_NAME $CELTIC_NODE_ID"    # as master.sh does
fi
celtic_run lab_node_main
'''

MEMBERS_SCRIPT = r'''
# The lab's stand-in for celtic-members.timer (`master.sh members`): the real member
# list and report (node/members.sh members_run), simulated work.
source "$CELTIC_LIB_DIR/lib/celtic.sh"
source "$CELTIC_LIB_DIR/node/members.sh"

members_reconcile() {
    if [[ -n "${LAB_FAIL_STEP:-}" ]]; then
        celtic_step "$LAB_FAIL_STEP" celtic_die "$LAB_FAIL_MESSAGE"
    fi
    celtic_info "lab node: members $(members_desired | tr '\n' ' ')work simulated"
}

set -euo pipefail
CELTIC_ROLE=master
members_run
'''

#: A node's work happens on its own machine; here it shares the control plane's cores,
#: so it runs at low priority and takes what Keystone, Heat and the database leave.
NODE_NICENESS = 10

_running: dict[str, subprocess.Popen] = {}
_running_lock = threading.Lock()
_slots = threading.BoundedSemaphore(int(os.environ.get('CELTIC_LAB_NODE_CONCURRENCY', '8')))


class PayloadError(Exception):
    """The payload could not be applied the way cloud-init would."""


def parse_cloud_config(user_data: str) -> dict[str, Any]:
    """The cloud-config document of a RAW user_data payload."""
    if not isinstance(user_data, str) or not user_data.startswith('#cloud-config'):
        raise PayloadError('user_data is not a #cloud-config document')
    # libyaml when PyYAML has it: the pure-Python loader spends about 17 ms on a 45 KB
    # payload, in the engine process that runs the stand-ins, not on the node's machine
    doc = yaml.load(user_data, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))
    if not isinstance(doc, dict):
        raise PayloadError('the cloud-config document is not a mapping')
    return doc


def _decode(entry: dict[str, Any]) -> bytes:
    content = entry.get('content', '')
    encoding = (entry.get('encoding') or '').lower()
    if not isinstance(content, str):
        raise PayloadError('write_files: content of %s is a %s, not text; cloud-init '
                           'would stop here' % (entry.get('path'), type(content).__name__))
    if encoding in ('b64', 'base64'):
        return base64.b64decode(content)
    if encoding in ('gz+b64', 'gzip+base64', 'gz+base64', 'gzip+b64'):
        return gzip.decompress(base64.b64decode(content))
    return content.encode()


def write_files(doc: dict[str, Any], root: str) -> list[str]:
    """Write the write_files entries under root; return the node paths written."""
    written = []
    for entry in doc.get('write_files') or []:
        path = entry.get('path')
        if not path or not path.startswith('/'):
            raise PayloadError('write_files: entry without an absolute path: %r' % path)
        data = _decode(entry)
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'wb') as f:
            f.write(data)
        os.chmod(target, int(str(entry.get('permissions') or '0644'), 8))
        written.append(path)
    return written


def _runcmd_text(doc: dict[str, Any]) -> list[str]:
    commands = []
    for command in doc.get('runcmd') or []:
        if isinstance(command, str):
            commands.append(command)
        else:
            commands.append(' '.join(str(w) for w in command))
    return commands


def role_script(doc: dict[str, Any]) -> str:
    """The node path of the role script runcmd starts."""
    for text in _runcmd_text(doc):
        m = re.search(r'(/usr/local/lib/celtic/[a-z]+\.sh)\b', text)
        if m:
            return m.group(1)
    raise PayloadError('runcmd starts no /usr/local/lib/celtic/<role>.sh script')


def unpack_archives(doc: dict[str, Any], root: str) -> list[str]:
    """Unpack what runcmd unpacks before the role script: every delivered tar archive
    that a runcmd command names, into the directory named right after it (else its
    own directory). Returns the archives unpacked."""
    unpacked = []
    archives = [e['path'] for e in doc.get('write_files') or []
                if re.search(r'\.(tar|txz|tgz|tar\.xz|tar\.gz)$', e.get('path', ''))]
    for text in _runcmd_text(doc):
        words = shlex.split(text)
        for archive in archives:
            if archive not in words:
                continue
            following = words[words.index(archive) + 1:]
            dest = next((w for w in following[:1] if w.startswith('/')),
                        os.path.dirname(archive))
            try:
                with tarfile.open(root + archive) as tar:
                    tar.extractall(root + dest, filter='data')
            except (tarfile.TarError, OSError) as exc:
                raise PayloadError('runcmd cannot unpack %s: %s' % (archive, exc))
            unpacked.append(archive)
    return unpacked


def check_delivery(root: str, script: str) -> list[str]:
    """Problems with the role script and the files it sources (delivered by the payload
    or, for the files the vendordata step unpacks, by celtic-vendordata's answer)."""
    target = root + script
    if not os.path.exists(target):
        return ['runcmd runs %s but write_files does not deliver it' % script]
    served = _vendordata_file_names(root)
    problems = []
    with open(target) as f:
        for line in f:
            m = re.match(r'\s*(?:source|\.)\s+"?\$(?:\{)?CELTIC_LIB_DIR(?:[^}"/]*\})?/([^"\s]+)',
                         line)
            if m and m.group(1) not in served and not os.path.exists(
                    os.path.join(root + '/usr/local/lib/celtic', m.group(1))):
                problems.append('%s sources %s, which is not delivered'
                                % (os.path.basename(script), m.group(1)))
    return problems


def is_legacy(root: str) -> bool:
    """Whether the delivered library is the previous release's (no vendordata step)."""
    try:
        with open(root + '/usr/local/lib/celtic/lib/celtic.sh') as f:
            return VENDORDATA_STEP not in f.read()
    except OSError:
        return False


def check_contract(root: str, role: str, user_data: str = '',
                   legacy: bool = False) -> list[str]:
    """Problems with the payload this node received, against doc/node-contract.md."""
    etc = root + '/etc/celtic'
    problems = []
    try:
        with open(os.path.join(etc, 'params.json')) as f:
            params = json.load(f)
    except FileNotFoundError:
        return ['params.json is not delivered']
    except ValueError as exc:
        return ['params.json is not JSON: %s' % exc]
    if not isinstance(params, dict):
        return ['params.json is not a JSON object']
    if params.get('role') != role:
        problems.append('params.json says role %r, runcmd runs the %s script'
                        % (params.get('role'), role))
    missing = [k for k in STACK_KEYS + ROLE_KEYS.get(role, ()) if k not in params]
    if missing:
        problems.append('params.json lacks %s' % ', '.join(missing))
    for name in ROLE_PUBLIC.get(role, ()):
        if not os.path.exists(os.path.join(etc, name)):
            problems.append('%s is not delivered' % name)
    if not legacy:
        problems += payload_secrets(root, user_data)
    return problems


def payload_secrets(root: str, user_data: str) -> list[str]:
    """Secrets the payload itself carries: every one is a contract failure (they come
    from celtic-vendordata only; Heat shows a payload to project readers)."""
    etc = root + '/etc/celtic'
    found = []
    secrets_dir = os.path.join(etc, 'secrets')
    if os.path.isdir(secrets_dir) and os.listdir(secrets_dir):
        found.append('the payload carries secret files (%s)'
                     % ', '.join(sorted(os.listdir(secrets_dir))))
    if os.path.exists(os.path.join(etc, 'signal.json')):
        found.append('the payload carries signal.json')
    if PRIVATE_KEY_MARK in (user_data or ''):
        found.append('the payload carries a private key block')
    given = _vendordata(root)
    # an EC private key's last base64 line can be public-key bytes only, which the
    # matching certificate (delivered in the payload, public) spells the same way
    public = ''
    pki_dir = os.path.join(etc, 'pki')
    for name in sorted(os.listdir(pki_dir)) if os.path.isdir(pki_dir) else ():
        with open(os.path.join(pki_dir, name), errors='replace') as f:
            public += f.read().replace('\n', '')
    for name, value in sorted((given.get('secrets') or {}).items()):
        needles = [line for line in str(value).splitlines()
                   if len(line) >= 12 and '-----' not in line and line not in public]
        if any(n in (user_data or '') for n in needles):
            found.append('the payload carries secret %s' % name)
    key = (given.get('signal') or {}).get('key')
    if key and key in (user_data or ''):
        found.append('the payload carries the signal key')
    return found


def _vendordata(root: str) -> dict[str, Any]:
    try:
        with open(os.path.join(root, 'metadata', 'openstack', 'latest',
                               'vendor_data2.json')) as f:
            return (json.load(f) or {}).get('celtic') or {}
    except (OSError, ValueError, AttributeError):
        return {}


def _vendordata_file_names(root: str) -> set[str]:
    """The names of the fragment files celtic-vendordata's answer carries (none when
    it carries none, or not a readable archive: the vendordata step then says so)."""
    files = _vendordata(root).get('files')
    if not isinstance(files, str) or not files:
        return set()
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(files)), mode='r:xz') as tar:
            return set(tar.getnames())
    except (ValueError, tarfile.TarError, EOFError):
        return set()


def check_secrets(root: str, role: str, legacy: bool = False) -> list[str]:
    """Problems with the secrets and signal credentials this node ended up with
    (``node_contract.check_secrets`` with the role's files from pki.role_secrets)."""
    return node_contract.check_secrets(root, role, role_secrets().get(role, ()), legacy)


def lab_bin_dir(root: str) -> str:
    """Commands a lab node must not take from the host (logger would fill its journal)."""
    path = os.path.join(root, 'lab-bin')
    os.makedirs(path, exist_ok=True)
    logger = os.path.join(path, 'logger')
    if os.path.lexists(logger):
        os.unlink(logger)
    # the library passes every message as arguments: `true` takes them, one process
    # per line instead of a shell and a cat (the nodes share the lab's two cores)
    os.symlink(shutil.which('true') or '/bin/true', logger)
    return path


def prepare(user_data: str, root: str) -> tuple[str, list[str]]:
    """Apply the payload under root. Returns (role, problems with the payload)."""
    doc = parse_cloud_config(user_data)
    write_files(doc, root)
    unpack_archives(doc, root)
    script = role_script(doc)
    role = os.path.basename(script)[:-len('.sh')]
    problems = check_delivery(root, script)
    problems += check_contract(root, role, user_data, legacy=is_legacy(root))
    return role, problems


def node_environment(root: str, name: str, server_id: str, address: str, role: str,
                     fail: dict | None, signal_attempts: int | None,
                     payload_problems: list[str] | None = None) -> dict[str, str]:
    """The environment the simulated role script runs with."""
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith('_proxy') and not k.startswith('CELTIC_')}
    tmp = os.path.join(root, 'tmp')
    os.makedirs(tmp, exist_ok=True)
    env.update({
        'PATH': os.pathsep.join([lab_bin_dir(root), os.path.dirname(sys.executable),
                                 env.get('PATH', '/usr/bin:/bin')]),
        'CELTIC_ETC': root + '/etc/celtic',
        'CELTIC_LIB_DIR': root + '/usr/local/lib/celtic',
        'CELTIC_STATE_DIR': root + '/var/lib/celtic',
        'CELTIC_LOG_FILE': root + '/var/log/celtic.log',
        'CELTIC_ROOT': root,
        'CELTIC_NODE_NAME': name,
        'CELTIC_NODE_ID': server_id,
        'CELTIC_NODE_IP': address or '',
        'TMPDIR': tmp,
        'no_proxy': '127.0.0.1,localhost',
        'CELTIC_METADATA_URL': 'file://' + os.path.join(root, 'metadata'),
        # the metadata service answers at once here: a short, bounded wait
        'CELTIC_METADATA_ATTEMPTS': '3',
        'LAB_PYTHON': sys.executable,
        'LAB_LEGACY': '1' if is_legacy(root) else '0',
        'LAB_CONTRACT': node_contract.__file__,
        'LAB_EXPECTED_SECRETS': ' '.join(role_secrets().get(role, ())),
        'LAB_PAYLOAD_PROBLEMS': '; '.join(payload_problems or ()),
        'LAB_ROLE': role,
        'LAB_FAIL_STEP': (fail or {}).get('step', ''),
        'LAB_FAIL_MESSAGE': (fail or {}).get('message', ''),
    })
    if signal_attempts:
        env['CELTIC_SIGNAL_ATTEMPTS'] = str(signal_attempts)
    os.makedirs(root + '/var/log', exist_ok=True)
    return env


def run(root: str, name: str, server_id: str, address: str, user_data: str,
        behaviour: dict, signal_attempts: int | None = None) -> int:
    """Boot the node synchronously: apply the payload, run the library, signal Heat.

    Returns the shell's exit status (0 when the node reported SUCCESS)."""
    os.makedirs(root, exist_ok=True)
    console_path = os.path.join(root, 'console.log')
    with open(console_path, 'a') as console:
        try:
            role, problems = prepare(user_data, root)
        except (PayloadError, yaml.YAMLError, OSError) as exc:
            console.write('cloud-init: %s\n' % exc)
            console.flush()
            role, problems = 'node', ['cloud-init: %s' % exc]
        env = node_environment(root, name, server_id, address, role,
                               behaviour.get('fail'), signal_attempts, problems)
        script = os.path.join(root, 'lab-node.sh')
        with open(script, 'w') as f:
            f.write(NODE_SCRIPT)
        if not os.path.exists(env['CELTIC_LIB_DIR'] + '/lib/celtic.sh'):
            console.write('lab node: lib/celtic.sh is not delivered; cannot signal Heat\n')
            return 127
        return run_shell(server_id, script, root, env, console)


def run_shell(key: str, script: str, cwd: str, env: dict[str, str], console) -> int:
    """Run a node-side bash script at the nodes' priority; stop(key) kills it.

    Returns its exit status."""
    proc = subprocess.Popen(['nice', '-n', str(NODE_NICENESS), 'bash', script], cwd=cwd,
                            env=env, stdin=subprocess.DEVNULL,
                            stdout=console, stderr=subprocess.STDOUT)
    with _running_lock:
        _running[key] = proc
    try:
        return proc.wait()
    finally:
        with _running_lock:
            _running.pop(key, None)


def members_run(root: str, name: str, server_id: str, address: str, meta: dict,
                behaviour: dict, signal_attempts: int | None = None) -> int:
    """A running master's celtic-members.timer after Heat changed its server metadata
    (``meta``): Nova's meta_data.json rewritten, then MEMBERS_SCRIPT. The behaviour's
    ``members_fail`` ({"step", "message"}) makes its work fail that step.

    Returns the shell's exit status."""
    path = os.path.join(root, 'metadata', 'openstack', 'latest', 'meta_data.json')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump({'uuid': server_id, 'name': name, 'meta': meta}, f)
    env = node_environment(root, name, server_id, address, 'master',
                           behaviour.get('members_fail'), signal_attempts)
    script = os.path.join(root, 'lab-members.sh')
    with open(script, 'w') as f:
        f.write(MEMBERS_SCRIPT)
    with open(os.path.join(root, 'console.log'), 'a') as console:
        return run_shell(server_id + '-members', script, root, env, console)


def in_background(name: str, delay: float, work: Callable[[], Any]) -> threading.Thread:
    """Run work after delay seconds in a thread, holding one of the node slots
    (CELTIC_LAB_NODE_CONCURRENCY) while it runs."""
    def body():
        if delay:
            time.sleep(delay)
        with _slots:
            work()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread


def start(root: str, name: str, server_id: str, address: str, user_data: str,
          behaviour: dict, signal_attempts: int | None = None) -> threading.Thread:
    """Boot the node in the background (what happens after Nova reports ACTIVE)."""
    return in_background(
        'lab-node-%s' % name, float(behaviour.get('configure_seconds') or 0),
        lambda: run(root, name, server_id, address, user_data, behaviour, signal_attempts))


def stop(key: str) -> None:
    """Power the node off (its server is being deleted), or stop what run_shell(key)
    runs."""
    with _running_lock:
        proc = _running.pop(key, None)
    if proc is not None and proc.poll() is None:
        proc.kill()


def remove(root: str) -> None:
    """Forget a deleted node's files."""
    shutil.rmtree(root, ignore_errors=True)
