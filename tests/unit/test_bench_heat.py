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


"""How the heat benchmark tells the driver's status polls from the nodes' traffic."""

from __future__ import annotations

from tests.bench import heat as bench

SID = '7d1c0f2e-0000-4000-8000-000000000001'
NAME = 'celtic-k1-5d12f6fd'


def test_polls_are_bursts_of_gets_without_the_nodes_traffic():
    requests = [
        # the create: a POST makes its burst not a poll
        (100.0, 'POST /v1/p/stacks HTTP/1.1 201 %s' % SID),
        # a poll, and celtic-vendordata serving a master its secrets, its add-ons and
        # its signal in the same second
        (110.0, 'GET /v1/p/stacks/%s/%s?resolve_outputs=False HTTP/1.1 200' % (NAME, SID)),
        (110.1, 'GET /v1/p/stacks/%s/%s/resources?nested_depth=2 HTTP/1.1 200' % (NAME, SID)),
        (110.2, 'GET /v1/p/stacks/%s/%s/files HTTP/1.1 200' % (NAME, SID)),
        (110.3, 'POST /v1/p/stacks/%s/%s/resources/wait_handle/signal HTTP/1.1 200'
         % (NAME, SID)),
        # the poll after Heat finished: the stack with its outputs, then the pool's
        (120.0, 'GET /v1/p/stacks/%s/%s?resolve_outputs=False HTTP/1.1 200' % (NAME, SID)),
        (120.1, 'GET /v1/p/stacks/%s/%s HTTP/1.1 200' % (NAME, SID)),
        (120.2, 'GET /v1/p/stacks/%s-nodes-x/1 HTTP/1.1 200' % NAME),
        # another stack's poll
        (130.0, 'GET /v1/p/stacks/other/8 HTTP/1.1 200'),
    ]
    found = bench.polls(requests, SID, 0, 200, NAME)
    assert [len(p) for p in found] == [1, 3]
    assert all('/files' not in line for poll in found for line in poll)
