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

"""A stand-in for the gluster command line, for the storage fragment's bats tests.

It keeps a small model of one glusterd in a JSON file ($GLUSTER_FAKE_STATE): the peers
this node sees, the volume, and what a remote glusterd (--remote-host) would answer.
It answers the read commands with the same XML shapes as glusterfs 10 and applies the
changes (peer probe, volume create/start/set/add-brick) with glusterd's own refusals
where the fragment relies on them (bricks on one server without force).
"""

import json
import os
import sys

STATE = os.environ['GLUSTER_FAKE_STATE']


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {'peers': {}, 'volume': None, 'remote_volume': None}


def save(state):
    with open(STATE, 'w') as f:
        json.dump(state, f)


def xml(body, ret=0, err=''):
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<cliOutput>'
            '<opRet>%d</opRet><opErrno>0</opErrno><opErrstr>%s</opErrstr>%s</cliOutput>'
            % (ret, err, body))


def volume_xml(vol):
    if vol is None:
        return xml('<volInfo><volumes><count>0</count></volumes></volInfo>', -1,
                   'Volume celtic does not exist')
    bricks = ''.join('<brick uuid="u">%s<name>%s</name><isArbiter>%d</isArbiter></brick>'
                     % (b, b, int(vol['arbiter'] and i % 3 == 2))
                     for i, b in enumerate(vol['bricks']))
    options = ''.join('<option><name>%s</name><value>%s</value></option>' % kv
                      for kv in sorted(vol['options'].items()))
    return xml('<volInfo><volumes><volume><name>%s</name><statusStr>%s</statusStr>'
               '<brickCount>%d</brickCount><replicaCount>%d</replicaCount>'
               '<arbiterCount>%d</arbiterCount><bricks>%s</bricks><options>%s</options>'
               '</volume><count>1</count></volumes></volInfo>'
               % (vol['name'], vol['status'], len(vol['bricks']), vol['replica'],
                  vol['arbiter'], bricks, options))


def fail(message):
    sys.stderr.write(message + '\n')
    sys.exit(1)


def main(args):
    remote = None
    while args and args[0].startswith('--'):
        if args[0].startswith('--remote-host='):
            remote = args[0].split('=', 1)[1]
        args = args[1:]
    state = load()
    if state.get('down'):
        fail('Connection failed. Please check if gluster daemon is operational.')
    words = [a for a in args if a != '--xml']
    if remote:
        if words[:2] != ['volume', 'info']:
            sys.exit(1)  # glusterd serves remote hosts read-only
        print(volume_xml(state.get('remote_volume')))
        return
    if words[:2] == ['pool', 'list']:
        print('UUID\tHostname\tState')
        return
    if words[:2] == ['peer', 'status']:
        down = state.get('disconnected', [])
        peers = ''.join('<peer><hostname>%s</hostname><hostnames><hostname>%s</hostname>'
                        '</hostnames><connected>%d</connected><stateStr>%s</stateStr></peer>'
                        % (addr, addr, addr not in down, s)
                        for addr, s in sorted(state['peers'].items()))
        print(xml('<peerStatus>%s</peerStatus>' % peers))
        return
    if words[:2] == ['peer', 'probe']:
        addr = words[2]
        if addr in state.get('foreign', []):
            fail('peer probe: failed: %s is either already part of another cluster' % addr)
        state['peers'][addr] = 'Peer in Cluster'
        save(state)
        print('peer probe: success')
        return
    if words[:1] != ['volume']:
        fail('fake gluster: unsupported command %s' % ' '.join(args))
    verb, name, rest = words[1], words[2], words[3:]
    vol = state['volume']
    if verb == 'info':
        print(volume_xml(vol))
        return
    if verb == 'create':
        if vol is not None:
            fail('volume create: %s: failed: Volume %s already exists' % (name, name))
        force = rest[-1:] == ['force']
        rest = rest[:-1] if force else rest
        replica = arbiter = 0
        if rest[:1] == ['replica']:
            replica, rest = int(rest[1]), rest[2:]
        if rest[:1] == ['arbiter']:
            arbiter, rest = int(rest[1]), rest[2:]
        hosts = [b.split(':')[0] for b in rest]
        if replica and len(set(hosts)) < len(hosts) and not force:
            fail('volume create: %s: failed: Multiple bricks of a replicate volume are '
                 "present on the same server. Use 'force'" % name)
        state['volume'] = {'name': name, 'status': 'Created', 'replica': replica or 1,
                           'arbiter': arbiter, 'bricks': rest,
                           'options': {'nfs.disable': 'on'}}
    elif vol is None:
        fail('volume %s: failed: Volume %s does not exist' % (verb, name))
    elif verb == 'start':
        if vol['status'] == 'Started':
            fail('volume start: %s: failed: Volume %s already started' % (name, name))
        vol['status'] = 'Started'
    elif verb == 'set':
        vol['options'][rest[0]] = rest[1]
    elif verb == 'add-brick':
        count = vol['replica']
        if rest[:1] == ['replica']:
            new, rest = int(rest[1]), rest[2:]
            count = (new - vol['replica']) * (len(vol['bricks']) // vol['replica'])
            vol['replica'] = new
        if not rest or len(rest) % count:
            fail('volume add-brick: failed: Incorrect number of bricks supplied %d with '
                 'count %d' % (len(rest), count))
        vol['bricks'] += rest
    elif verb in ('rebalance', 'heal'):
        pass
    else:
        fail('fake gluster: unsupported volume command %s' % verb)
    save(state)
    print('volume %s: %s: success' % (verb, name))


if __name__ == '__main__':
    main(sys.argv[1:])
