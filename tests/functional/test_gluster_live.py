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

"""Live GlusterFS lab: the storage fragment's own functions build a real volume.

Three storage "nodes" are network namespaces (10.213.8.0/24, no default route) with
their own mount namespaces: private /run, /var/lib/glusterd, /var/log/glusterfs and
/etc/glusterfs. Each one gets a loop device as its "Cinder volume", linked under its
own /dev/disk/by-id as virtio-<first 20 characters of a volume id>, and runs
node/gluster.sh's storage steps (gluster_storage_node, the same code storage.sh runs
after the common set-up) with real blkid, wipefs, mkfs.xfs, mount, glusterd and gluster.
PID 1 here is not systemd, so two small stand-ins take over what systemd and udev do on
a node: `systemctl` mounts a .mount unit from its What/Where/Type/Options and starts
`glusterd -N`; `udevadm settle` creates the by-uuid link of a new filesystem. Recording
wrappers around gluster and mkfs.xfs let the test see which changes a run made.

A fourth namespace mounts the volume with gluster_client.sh (FUSE, the minion side).
The test writes a file, kills one brick process, reads and writes again, and re-runs
every node's steps to show that nothing changes. A second test grows the pool from
three to six nodes with `storage.sh grow` (add-brick of a replica set, rebalance); a
third builds the two-node layout (replica 2 + arbiter on storage 0).

The bricks are real XFS filesystems on loop devices rather than directories, so the
device steps (probe, format once, mount by UUID) run for real too; the fragment's
directory-brick mode (GLUSTER_BRICK_DEVICE=none) is covered by tests/fragments/storage.bats.

The nodes run from a clean Debian root (rootfs.py): each namespace's holder chroots
into it, so blkid, wipefs, mkfs.xfs, glusterd, gluster and the FUSE client are the ones
the storage and minion install steps put there. A fourth test proves the volume's access
control for a /22 fixed network: a client in another /24 of it mounts, one just outside
it is refused by the servers (gluster/glusterfs#4109 is the reason it needs care).

Needs root, iproute2, util-linux (unshare, nsenter, losetup), debootstrap and Debian's
archive. Every process is stopped by PID, every loop is bounded.
Run:  sudo /work/dev-venv/bin/pytest -s tests/functional/test_gluster_live.py
"""

import ctypes
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from magnum_celtic.lab import plumbing

try:
    from tests.functional import rootfs
except ImportError:
    import rootfs

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FRAGMENTS = os.path.join(REPO, 'heat_templates', 'fragments')
SUBNET = '10.213.8'
CIDR = SUBNET + '.0/24'
ALLOW = SUBNET + '.*'  # what gluster_auth_patterns makes of CIDR
VOLUME = 'celtic'
# The host runs the lab's plumbing only; glusterd, gluster, mkfs.xfs and the FUSE client
# run from the nodes' clean Debian root, installed there by the storage and minion
# fragments' own install steps (rootfs.py).
SUITE = 'bookworm'
# The storage and minion install steps of what the lab runs (GlusterFS, not Kubernetes).
ROOT_STEPS = ('base-packages', 'brick-tools', 'glusterd', 'gluster-mount')
TOOLS = ('ip', 'unshare', 'nsenter', 'losetup', 'blkid', 'chattr', 'lsattr',
         'systemd-escape')
MISSING = [t for t in TOOLS if not shutil.which(t, path='/usr/sbin:/usr/bin:/sbin:/bin')]
MISSING += rootfs.missing_requirements()
if not os.path.exists('/dev/loop-control'):
    MISSING.append('/dev/loop-control')

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='the gluster lab needs root'),
    pytest.mark.skipif(bool(MISSING), reason='missing tools: %s' % ' '.join(MISSING)),
]

# systemd stand-in: only what gluster.sh and gluster_client.sh ask of systemctl.
SYSTEMCTL = r'''#!/bin/bash
set -euo pipefail
echo "systemctl $*" >>"$LAB_NODE/commands"
units=$CELTIC_ROOT/etc/systemd/system
cmd=$1
shift
if [[ "${1:-}" == --quiet ]]; then shift; fi
unit=${1:-}
field() { sed -n "s/^$1=//p" "$units/$unit"; }
glusterd_alive() {
    [[ -s "$LAB_NODE/glusterd.pid" ]] && kill -0 "$(cat "$LAB_NODE/glusterd.pid")" 2>/dev/null
}
glusterd_start() {
    glusterd -N </dev/null >>"$LAB_NODE/glusterd.out" 2>&1 &
    echo $! >"$LAB_NODE/glusterd.pid"
}
case "$cmd:$unit" in
    daemon-reload:* | enable:*) ;;
    start:*.mount)
        where=$(field Where)
        if ! mountpoint -q "$where"; then
            mount -t "$(field Type)" -o "$(field Options)" "$(field What)" "$where"
        fi
        ;;
    is-active:*.mount) mountpoint -q "$(field Where)" ;;
    start:glusterd) glusterd_alive || glusterd_start ;;
    restart:glusterd)
        if glusterd_alive; then
            pid=$(cat "$LAB_NODE/glusterd.pid")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        glusterd_start
        ;;
    is-active:glusterd) glusterd_alive ;;
    *) echo "lab systemctl: unsupported: $cmd $unit" >&2; exit 1 ;;
esac
'''

# udev stand-in: after mkfs, the by-uuid link of every by-id disk.
UDEVADM = r'''#!/bin/bash
echo "udevadm $*" >>"$LAB_NODE/commands"
mkdir -p "$GLUSTER_DEV_DIR/by-uuid"
for link in "$GLUSTER_DEV_DIR"/by-id/*; do
    dev=$(readlink -f "$link")
    uuid=$(blkid -p -o value -s UUID "$dev") || continue
    ln -sfn "$dev" "$GLUSTER_DEV_DIR/by-uuid/$uuid"
done
'''

# Recording pass-through wrapper for a real tool (the root's, found without this shim).
RECORD = '''#!/bin/bash
echo "%(name)s $*" >>"$LAB_NODE/commands"
PATH=/usr/sbin:/usr/bin:/sbin:/bin exec %(name)s "$@"
'''

# The storage steps, as storage.sh runs them after common_setup (which edits /etc/hosts
# and runs apt: not for a lab).
STORAGE_RUN = r'''
source "$CELTIC_LIB_DIR/lib/celtic.sh"
source "$CELTIC_LIB_DIR/node/gluster.sh"
set -euo pipefail
CELTIC_ROLE=storage
lab_main() {
    celtic_step params celtic_load_params
    gluster_storage_node
}
celtic_run lab_main
'''

CLIENT_RUN = r'''
source "$CELTIC_LIB_DIR/lib/celtic.sh"
source "$CELTIC_LIB_DIR/node/gluster_client.sh"
set -euo pipefail
CELTIC_ROLE=minion
lab_main() {
    celtic_step params celtic_load_params
    celtic_step gluster-mount gluster_client_mount
}
celtic_run lab_main
'''

MUTATIONS = re.compile(r'^(mkfs\.xfs|gluster --mode=script (peer probe|volume '
                       r'(create|start|stop|set|add-brick|remove-brick|rebalance|heal))'
                       r'|systemctl (start|restart|daemon-reload))\b', re.M)


def run(cmd, timeout=60, check=True, **kw):
    return subprocess.run(cmd, timeout=timeout, check=check, capture_output=True,
                          text=True, **kw)


proc_state = plumbing.proc_state
alive = plumbing.alive


def reap(keep=()):
    """Collect the zombies this process adopted as subreaper (daemonised bricks,
    self-heal daemons, glusterd), never the Popen children in keep (their Popen must
    see their real exit status)."""
    me = str(os.getpid())
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) in keep or proc_state(int(entry)) != 'Z':
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                ppid = f.read().rsplit(') ', 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid == me:
            try:
                os.waitpid(int(entry), os.WNOHANG)
            except ChildProcessError:
                pass


class Lab:
    """Namespaces, loop devices and processes of one lab; everything torn down by PID."""

    def __init__(self, report=print):
        self.report = report
        # Daemonised brick and self-heal processes become our children: we reap them.
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        self.dir = tempfile.mkdtemp(prefix='cglab-', dir='/tmp')
        self.tag = 'cg%d' % (os.getpid() % 100000)
        self.bridge_ns = self.tag + 'br'
        self.namespaces = []
        self.holders = {}
        self.loops = []
        self.nodes = []
        self.timings = []
        self.started = set()
        self.bin = os.path.join(self.dir, 'bin')
        self.brick_mount = os.path.join(self.dir, 'brick')
        self.client_mount = os.path.join(self.dir, 'mnt')
        os.makedirs(self.bin)
        os.makedirs(self.brick_mount)
        self._shim('systemctl', SYSTEMCTL)
        self._shim('udevadm', UDEVADM)
        for name in ('gluster', 'mkfs.xfs'):
            self._shim(name, RECORD % {'name': name})
        # The nodes' system: a clean root with the storage and minion install steps.
        self.root = rootfs.lab_root(('storage', 'minion'), SUITE, ROOT_STEPS)

    def add_bridge(self):
        """The lab network: one bridge in its own namespace, nothing in the host's."""
        self._ns(self.bridge_ns)
        run(['ip', '-n', self.bridge_ns, 'link', 'add', 'br0', 'type', 'bridge'])
        run(['ip', '-n', self.bridge_ns, 'link', 'set', 'br0', 'up'])

    def timed(self, label, started):
        seconds = time.monotonic() - started
        self.timings.append((label, seconds))
        self.report('  %-60s %6.2f s' % (label, seconds))
        return seconds

    def _shim(self, name, text):
        path = os.path.join(self.bin, name)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o755)

    def _ns(self, name):
        run(['ip', 'netns', 'add', name])
        self.namespaces.append(name)
        run(['ip', '-n', name, 'link', 'set', 'lo', 'up'])

    def _holder(self, name, ns, binds):
        """A process that owns the node's network and mount namespaces."""
        # First the root's /proc, /sys, /dev and the lab's directory (same path inside)
        # and this repository (read-only), then chroot: the node runs from the root.
        boot = ['set -e'] + self.root.boot_lines(same_path=(self.dir,), read_only=(REPO,))
        boot.append('exec chroot %s /bin/sh -c "$1"' % self.root.path)
        script = ['set -e', 'mount -t tmpfs tmpfs /run', 'mkdir -p /run/gluster']
        script += ['mount --bind %s %s' % (src, dst) for src, dst in binds]
        script += ['echo ready', 'exec sleep infinity']
        proc = subprocess.Popen(['ip', 'netns', 'exec', ns, 'unshare', '-m',
                                 '--propagation', 'private', 'sh', '-c', '\n'.join(boot),
                                 'node', '\n'.join(script)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.holders[name] = proc
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ''
        assert line.strip() == 'ready', 'namespace %s did not come up' % ns
        return proc.pid

    def add_host(self, name, address, prefix=24):
        """A namespace pair (net + mount) on the lab bridge, with its own gluster dirs."""
        ns = '%s%s' % (self.tag, name)
        self._ns(ns)
        veth = 'v' + name
        run(['ip', '-n', self.bridge_ns, 'link', 'add', veth, 'type', 'veth',
             'peer', 'name', 'eth0', 'netns', ns])
        run(['ip', '-n', self.bridge_ns, 'link', 'set', veth, 'master', 'br0', 'up'])
        run(['ip', '-n', ns, 'addr', 'add', '%s/%d' % (address, prefix), 'dev', 'eth0'])
        run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
        home = os.path.join(self.dir, name)
        dirs = {k: os.path.join(home, k) for k in
                ('lib', 'log', 'etc-glusterfs', 'root', 'etc-celtic', 'state', 'dev-disk')}
        for d in dirs.values():
            os.makedirs(d)
        packaged = os.path.join(str(self.root.path), 'etc', 'glusterfs')
        for f in os.listdir(packaged):
            shutil.copy(os.path.join(packaged, f), dirs['etc-glusterfs'])
        pid = self._holder(name, ns, [(dirs['lib'], '/var/lib/glusterd'),
                                      (dirs['log'], '/var/log/glusterfs'),
                                      (dirs['etc-glusterfs'], '/etc/glusterfs')])
        host = {'name': name, 'ns': ns, 'address': address, 'home': home,
                'holder': pid, **dirs}
        return host

    def add_storage(self, index, volume_id, prefix=24):
        """Storage node <index> with a loop device as its Cinder brick volume."""
        node = self.add_host('s%d' % index, '%s.%d' % (SUBNET, 11 + index), prefix)
        image = os.path.join(node['home'], 'brick.img')
        with open(image, 'wb') as f:
            f.truncate(320 * 1024 * 1024)  # sparse; XFS wants at least 300 MiB
        loop = run(['losetup', '-f', '--show', image]).stdout.strip()
        self.loops.append(loop)
        os.makedirs(os.path.join(node['dev-disk'], 'by-id'))
        os.symlink(loop, os.path.join(node['dev-disk'], 'by-id', 'virtio-' + volume_id[:20]))
        node.update(index=index, loop=loop, volume_id=volume_id)
        self.nodes.append(node)
        return node

    def write_params(self, host, addresses, **extra):
        params = {'storage_addresses': addresses, 'storage_volume_name': VOLUME,
                  'storage_mount_path': self.client_mount, 'fixed_network_cidr': CIDR}
        params.update(extra)
        with open(os.path.join(host['etc-celtic'], 'params.json'), 'w') as f:
            json.dump(params, f)

    def env(self, host, role):
        env = {
            'PATH': self.bin + ':/usr/sbin:/usr/bin:/sbin:/bin',
            'LAB_NODE': host['home'],
            'CELTIC_LIB_DIR': FRAGMENTS,
            'CELTIC_ETC': host['etc-celtic'],
            'CELTIC_STATE_DIR': host['state'],
            'CELTIC_LOG_FILE': os.path.join(host['home'], 'celtic.log'),
            'CELTIC_ROOT': host['root'],
            'CELTIC_NODE_NAME': 'lab-%s-%s' % (role, host['name']),
            'CELTIC_NODE_IP': host['address'],
            'GLUSTERD_VOL': '/etc/glusterfs/glusterd.vol',
            'GLUSTER_BRICK_MOUNT': self.brick_mount,
            'GLUSTER_DEV_DIR': host['dev-disk'],
            'GLUSTER_STORAGE_SH': os.path.join(FRAGMENTS, 'storage.sh'),
            'GLUSTER_DISK_TIMEOUT': '30',
            'GLUSTER_PEER_TIMEOUT': '240',
            'GLUSTER_JOIN_TIMEOUT': '300',
            'GLUSTER_CLIENT_TIMEOUT': '120',
        }
        if 'volume_id' in host:
            env['GLUSTER_BRICK_VOLUME_ID'] = host['volume_id']
        return env

    def start(self, host, script, role, args=(), env=None):
        """Run a fragment inside the host's namespaces; output goes to a log file."""
        log = open(os.path.join(host['home'], 'run.log'), 'a')
        log.write('\n===== %s %s\n' % (role, ' '.join(args)))
        log.flush()
        cmd = ['nsenter', '-t', str(host['holder']), '-m', '-n', '-r', '-w', '--', 'bash']
        cmd += ['-c', script, 'lab'] if script else []
        cmd += list(args)
        proc = subprocess.Popen(cmd, env={**self.env(host, role), **(env or {})}, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.started.add(proc.pid)
        return proc

    def wait(self, procs, hosts, timeout):
        deadline = time.monotonic() + timeout
        codes = []
        for proc, host in zip(procs, hosts):
            try:
                codes.append(proc.wait(timeout=max(1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                codes.append('timeout')
        for code, host in zip(codes, hosts):
            assert code == 0, '%s: exit %s\n%s' % (host['name'], code, self.log(host))
        return codes

    def log(self, host):
        with open(os.path.join(host['home'], 'run.log')) as f:
            return f.read()[-6000:]

    def commands(self, host):
        try:
            with open(os.path.join(host['home'], 'commands')) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def clear_commands(self, host):
        open(os.path.join(host['home'], 'commands'), 'w').close()

    def in_ns(self, host, cmd, timeout=30, check=True):
        return run(['nsenter', '-t', str(host['holder']), '-m', '-n', '-r', '-w', '--'] + cmd,
                   timeout=timeout, check=check)

    def gluster(self, host, *args):
        return self.in_ns(host, ['gluster', '--mode=script'] + list(args)).stdout

    def volume_status(self, host):
        root = ET.fromstring(self.gluster(host, 'volume', 'status', VOLUME, '--xml'))
        return [{'host': n.findtext('hostname'), 'path': n.findtext('path'),
                 'online': n.findtext('status') == '1', 'port': n.findtext('port'),
                 'pid': int(n.findtext('pid'))}
                for n in root.iter('node') if n.findtext('path', '').startswith('/')]

    # -- teardown ------------------------------------------------------------------

    def _ns_pids(self, holder):
        """Every process that shares the holder's mount or network namespace."""
        try:
            mnt = os.readlink('/proc/%d/ns/mnt' % holder)
            net = os.readlink('/proc/%d/ns/net' % holder)
        except OSError:
            return []
        pids = []
        for entry in os.listdir('/proc'):
            if not entry.isdigit() or int(entry) in (holder, os.getpid()):
                continue
            try:
                if (os.readlink('/proc/%s/ns/mnt' % entry) == mnt or
                        os.readlink('/proc/%s/ns/net' % entry) == net):
                    pids.append(int(entry))
            except OSError:
                pass
        return pids

    def popen_pids(self):
        return {p.pid for p in self.holders.values()} | self.started

    def _stop(self, pids):
        plumbing.kill_pids(pids, grace=5, kill_wait=5,
                           poll=lambda: reap(self.popen_pids()))

    def keep_logs(self, dest):
        """Copy every host's logs to dest (set CGLAB_LOGS=<dir> to look at a run)."""
        for name in os.listdir(self.dir):
            home = os.path.join(self.dir, name)
            for item in ('run.log', 'celtic.log', 'commands', 'glusterd.out', 'log'):
                src = os.path.join(home, item)
                if os.path.isfile(src):
                    os.makedirs(os.path.join(dest, name), exist_ok=True)
                    shutil.copy(src, os.path.join(dest, name, item))
                elif os.path.isdir(src):
                    shutil.copytree(src, os.path.join(dest, name, item), dirs_exist_ok=True)

    def teardown(self):
        started = time.monotonic()
        if os.environ.get('CGLAB_LOGS'):
            self.keep_logs(os.environ['CGLAB_LOGS'])
        client = self.holders.get('c')
        if client and client.poll() is None:
            self.in_ns({'holder': client.pid}, ['umount', '-l', self.client_mount],
                       check=False)
        for name, proc in self.holders.items():
            if proc.poll() is None:
                self._stop(self._ns_pids(proc.pid))
                proc.kill()
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        reap(self.popen_pids())
        for loop in self.loops:
            for _ in range(20):
                if run(['losetup', '-d', loop], check=False).returncode == 0:
                    break
                time.sleep(0.25)
        for ns in reversed(self.namespaces):
            run(['ip', 'netns', 'del', ns], check=False)
        if os.path.isdir(self.client_mount):
            run(['chattr', '-i', self.client_mount], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.timed('teardown (processes, loops, namespaces)', started)
        leftovers = [ns for ns in run(['ip', 'netns', 'list']).stdout.split()
                     if ns.startswith(self.tag)]
        assert not leftovers, leftovers


@pytest.fixture
def lab(capsys):
    def report(line):
        with capsys.disabled():  # the timings are shown without -s too
            print(line)

    started = time.monotonic()
    lab = Lab(report)
    try:
        lab.add_bridge()
        yield lab
    finally:
        lab.teardown()
        report('  %-60s %6.2f s' % ('whole test', time.monotonic() - started))


def volume_id(index):
    return '%08x-1234-4abc-8def-%012x' % (0xc0ffee00 + index, index)


def build_storage(lab, count, cidr=CIDR, prefix=24):
    """count storage nodes, their steps run concurrently as at first boot."""
    started = time.monotonic()
    nodes = [lab.add_storage(i, volume_id(i), prefix) for i in range(count)]
    addresses = [n['address'] for n in nodes]
    for node in nodes:
        lab.write_params(node, addresses, fixed_network_cidr=cidr)
    lab.timed('%d storage namespaces + loop devices' % count, started)
    started = time.monotonic()
    procs = [lab.start(node, STORAGE_RUN, 'storage') for node in nodes]
    lab.wait(procs, nodes, timeout=420)
    lab.timed('first run on %d nodes (format, glusterd, probe, volume)' % count, started)
    return nodes


def snapshot(lab, node):
    """What a re-run must leave untouched on a storage node."""
    state = {}
    for rel in ('lib/vols/%s/info' % VOLUME, 'etc-glusterfs/glusterd.vol'):
        path = os.path.join(node['home'], rel)
        if os.path.exists(path):
            with open(path) as f:
                state[rel] = f.read()
    units = os.path.join(node['root'], 'etc', 'systemd', 'system')
    for dirpath, _, files in os.walk(units):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            state[path] = (st.st_mtime_ns, open(path).read())
    state['uuid'] = run(['blkid', '-p', '-o', 'value', '-s', 'UUID', node['loop']]).stdout
    with open(os.path.join(node['home'], 'glusterd.pid')) as f:
        state['glusterd'] = f.read()
    return state


def test_replica3_volume_survives_a_brick_and_reruns_change_nothing(lab):
    lab.report('')
    nodes = build_storage(lab, 3)
    s0 = nodes[0]

    info = lab.gluster(s0, 'volume', 'info', VOLUME)
    assert 'Type: Replicate' in info
    assert 'Number of Bricks: 1 x 3 = 3' in info
    assert 'Status: Started' in info
    # glusterd gets wildcard patterns, never the CIDR it mis-masks (gluster/glusterfs#4109)
    assert 'auth.allow: %s' % ALLOW in info
    bricks = lab.volume_status(s0)
    assert sorted(b['host'] for b in bricks) == [n['address'] for n in nodes]
    assert all(b['online'] for b in bricks)
    # The security group opens 49152-49251 only: glusterd must stay inside it.
    assert all(49152 <= int(b['port']) <= 49251 for b in bricks), bricks
    for node in nodes:
        assert 'xfs' in run(['blkid', '-p', '-o', 'value', '-s', 'TYPE', node['loop']]).stdout
        assert node['loop'] in lab.in_ns(node, ['findmnt', '-n', '-o', 'SOURCE',
                                                '--mountpoint', lab.brick_mount]).stdout
        assert 'mkfs.xfs' in lab.commands(node)
        unit = os.path.join(node['root'], 'etc/systemd/system',
                            run(['systemd-escape', '--path', '--suffix=mount',
                                 lab.brick_mount]).stdout.strip())
        with open(unit) as f:
            assert 'What=%s/by-uuid/' % node['dev-disk'] in f.read()

    # The minion side, in a fourth namespace.
    started = time.monotonic()
    client = lab.add_host('c', SUBNET + '.100')
    client_log = os.path.join(client['home'], 'log')
    lab.write_params(client, [n['address'] for n in nodes])
    lab.wait([lab.start(client, CLIENT_RUN, 'minion')], [client], timeout=180)
    lab.timed('client: gluster_client_mount (FUSE)', started)
    mounted = lab.in_ns(client, ['findmnt', '-n', '-o', 'FSTYPE,SOURCE,OPTIONS',
                                 '--mountpoint', lab.client_mount]).stdout
    assert mounted.startswith('fuse.glusterfs %s.11:/%s' % (SUBNET, VOLUME)), mounted
    # Under the mount (the host sees the bare directory: the mount lives in the
    # client's namespace) the mount point is immutable: nothing lands on the root disk.
    assert 'cannot make' not in lab.log(client), lab.log(client)
    assert 'i' in run(['lsattr', '-d', lab.client_mount]).stdout.split()[0]
    unit = os.path.join(client['root'], 'etc/systemd/system',
                        run(['systemd-escape', '--path', '--suffix=mount',
                             lab.client_mount]).stdout.strip())
    with open(unit) as f:
        assert 'Options=_netdev,backup-volfile-servers=%s.12:%s.13\n' % (SUBNET, SUBNET) \
            in f.read()
    assert os.path.isdir(client_log)

    started = time.monotonic()
    hello = os.path.join(lab.client_mount, 'hello.txt')
    lab.in_ns(client, ['sh', '-c', 'echo written-by-the-client > %s && sync' % hello])
    lab.timed('client: write a file', started)
    for node in nodes:
        brick_file = os.path.join(lab.brick_mount, VOLUME, 'hello.txt')
        assert lab.in_ns(node, ['cat', brick_file]).stdout == 'written-by-the-client\n'

    # Kill storage 1's brick process: the replica set keeps quorum with two of three.
    victim = next(b for b in lab.volume_status(s0) if b['host'] == nodes[1]['address'])
    started = time.monotonic()
    os.kill(victim['pid'], signal.SIGKILL)
    for _ in range(50):
        reap(lab.popen_pids())
        if not alive(victim['pid']):
            break
        time.sleep(0.1)
    assert not alive(victim['pid'])
    assert lab.in_ns(client, ['cat', hello]).stdout == 'written-by-the-client\n'
    lab.in_ns(client, ['sh', '-c', 'echo appended >> %s && echo new > %s/after-kill.txt'
                       % (hello, lab.client_mount)])
    assert lab.in_ns(client, ['cat', hello]).stdout == 'written-by-the-client\nappended\n'
    lab.timed('brick killed: read + append + new file through the client', started)
    status = {b['host']: b['online'] for b in lab.volume_status(s0)}
    assert status[nodes[1]['address']] is False

    # Re-run every node's steps: no mkfs, no gluster change, no restart, same files.
    before = [snapshot(lab, node) for node in nodes]
    for node in nodes:
        lab.clear_commands(node)
    started = time.monotonic()
    procs = [lab.start(node, STORAGE_RUN, 'storage') for node in nodes]
    lab.wait(procs, nodes, timeout=180)
    lab.timed('re-run on 3 nodes', started)
    for node, old in zip(nodes, before):
        assert snapshot(lab, node) == old, node['name']
        assert not MUTATIONS.findall(lab.commands(node)), lab.commands(node)
        assert 'kept, never reformatted' in lab.log(node)
    assert lab.in_ns(client, ['cat', os.path.join(lab.client_mount, 'after-kill.txt')]
                     ).stdout == 'new\n'

    # The client side re-run changes nothing either.
    lab.clear_commands(client)
    lab.wait([lab.start(client, CLIENT_RUN, 'minion')], [client], timeout=60)
    assert not MUTATIONS.findall(lab.commands(client)), lab.commands(client)


def test_grow_three_to_six_adds_a_replica_set_without_losing_data(lab):
    lab.report('')
    nodes = build_storage(lab, 3)
    s0 = nodes[0]
    client = lab.add_host('c', SUBNET + '.100')
    lab.write_params(client, [n['address'] for n in nodes])
    lab.wait([lab.start(client, CLIENT_RUN, 'minion')], [client], timeout=180)
    lab.in_ns(client, ['sh', '-c', 'for i in $(seq 1 30); do echo "file $i" > %s/f$i; done'
                       % lab.client_mount])

    # Heat boots storage 3..5 with the longer storage_addresses; storage 0 still has the
    # old list and is told by `storage.sh grow` (what the new nodes' log asks for).
    started = time.monotonic()
    new = [lab.add_storage(i, volume_id(i)) for i in range(3, 6)]
    addresses = [n['address'] for n in nodes + new]
    for node in new:
        lab.write_params(node, addresses)
    joining = [lab.start(node, STORAGE_RUN, 'storage') for node in new]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
            'storage.sh grow' in lab.log(node) for node in new):
        time.sleep(0.5)
    hint = [line for line in lab.log(new[0]).splitlines() if 'storage.sh grow' in line]
    assert hint and ' '.join(addresses) in hint[0], lab.log(new[0])
    grow = lab.start(s0, None, 'storage', [os.path.join(FRAGMENTS, 'storage.sh'), 'grow']
                     + addresses)
    lab.wait([grow] + joining, [s0] + new, timeout=240)
    lab.timed('grow 3 -> 6 (new nodes + storage.sh grow on storage 0)', started)

    info = lab.gluster(s0, 'volume', 'info', VOLUME)
    assert 'Type: Distributed-Replicate' in info
    assert 'Number of Bricks: 2 x 3 = 6' in info
    # Every file reads back while the rebalance moves files to the new set. (A directory
    # listing may show a file twice while it moves: seen here; names are read one by one.)
    started = time.monotonic()
    out = lab.in_ns(client, ['sh', '-c', 'for i in $(seq 1 30); do cat %s/f$i; done'
                             % lab.client_mount]).stdout
    assert out.splitlines() == ['file %d' % i for i in range(1, 31)]
    state, status = '', ''
    for _ in range(120):
        # glusterd answers a status query with exit 1 while it is busy with another
        # transaction (seen in the gate on a loaded machine): ask again
        answer = lab.in_ns(s0, ['gluster', '--mode=script', 'volume', 'rebalance', VOLUME,
                                'status', '--xml'], check=False)
        status = answer.stdout or answer.stderr
        if answer.returncode == 0:
            state = ET.fromstring(answer.stdout).findtext('.//aggregate/statusStr')
            if state == 'completed':
                break
        time.sleep(0.5)
    assert state == 'completed', status
    lab.timed('rebalance onto the new replica set completed', started)
    listing = lab.in_ns(client, ['ls', lab.client_mount]).stdout.split()
    assert sorted(listing) == sorted('f%d' % i for i in range(1, 31))
    lab.in_ns(client, ['sh', '-c', 'for i in $(seq 31 60); do echo "file $i" > %s/f$i; done'
                       % lab.client_mount])
    assert len(lab.in_ns(client, ['ls', lab.client_mount]).stdout.split()) == 60
    # the new set holds files too: the data is spread, not only kept
    new_brick = lab.in_ns(new[0], ['ls', os.path.join(lab.brick_mount, VOLUME)]).stdout.split()
    assert [f for f in new_brick if f.startswith('f')], new_brick

    # storage 0 re-run with its original params (grow saved the longer list).
    lab.clear_commands(s0)
    lab.wait([lab.start(s0, STORAGE_RUN, 'storage')], [s0], timeout=120)
    assert not MUTATIONS.findall(lab.commands(s0)), lab.commands(s0)


def test_two_nodes_get_replica_2_plus_arbiter_on_storage_0(lab):
    lab.report('')
    nodes = build_storage(lab, 2)
    info = lab.gluster(nodes[0], 'volume', 'info', VOLUME)
    assert 'Number of Bricks: 1 x (2 + 1) = 3' in info, info
    brick = os.path.join(lab.brick_mount, VOLUME)
    assert 'Brick1: %s:%s\n' % (nodes[0]['address'], brick) in info
    assert 'Brick2: %s:%s\n' % (nodes[1]['address'], brick) in info
    assert 'Brick3: %s:%s-arbiter (arbiter)' % (nodes[0]['address'], brick) in info
    assert all(b['online'] for b in lab.volume_status(nodes[0]))


def test_access_control_of_a_22_subnet_spans_its_24s_and_stops_at_its_edge(lab):
    # glusterfs 10.x/11.x build a CIDR's mask in host byte order, so auth.allow with a
    # prefix other than /8, /16 or /24 admits the wrong clients (gluster/glusterfs#4109).
    # The fixed network here is a /22; every namespace has a /16 on its link so that the
    # outside client reaches the servers and only GlusterFS's access control refuses it.
    lab.report('')
    cidr = SUBNET + '.0/22'
    nodes = build_storage(lab, 3, cidr=cidr, prefix=16)
    addresses = [n['address'] for n in nodes]

    # A minion in the /22 but not in the storage nodes' /24 mounts, writes and reads.
    inside = lab.add_host('c', '10.213.10.57', prefix=16)
    lab.write_params(inside, addresses, fixed_network_cidr=cidr)
    assert lab.in_ns(inside, ['bash', '-c', 'exec 3<>/dev/tcp/%s/24007' % addresses[0]],
                     check=False).returncode == 0, 'the inside client must reach glusterd'
    started = time.monotonic()
    lab.wait([lab.start(inside, CLIENT_RUN, 'minion')], [inside], timeout=180)
    lab.timed('client 10.213.10.57 (inside the /22): mount', started)
    note = os.path.join(lab.client_mount, 'across-the-24.txt')
    lab.in_ns(inside, ['sh', '-c', 'echo from-10.213.10.57 > %s && sync' % note])
    brick_file = os.path.join(lab.brick_mount, VOLUME, 'across-the-24.txt')
    assert lab.in_ns(nodes[0], ['cat', brick_file]).stdout == 'from-10.213.10.57\n'

    # An address just outside the /22 is refused by the servers, not by the network.
    outside = lab.add_host('x', '10.213.12.57', prefix=16)
    lab.write_params(outside, addresses, fixed_network_cidr=cidr)
    assert lab.in_ns(outside, ['bash', '-c', 'exec 3<>/dev/tcp/%s/24007' % addresses[0]],
                     check=False).returncode == 0, 'the outside client must reach glusterd'
    started = time.monotonic()
    proc = lab.start(outside, CLIENT_RUN, 'minion', env={'GLUSTER_CLIENT_TIMEOUT': '20'})
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        code = 'timeout'
    lab.timed('client 10.213.12.57 (outside the /22): refused', started)
    assert code not in (0, 'timeout'), lab.log(outside)
    assert lab.in_ns(outside, ['findmnt', '-n', '--mountpoint', lab.client_mount],
                     check=False).stdout == ''
