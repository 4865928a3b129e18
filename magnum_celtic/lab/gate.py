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

"""The network path to heat-api, which a test can cut and restore.

The service catalog's orchestration endpoint points at this TCP hop, so users and
Magnum reach heat-api through it. ``cut()`` makes every new connection fail (it is
accepted and reset at once, and counted); ``restore()`` lets traffic through again.
Nodes are not affected: Heat gives them signal URLs on heat-api's own port
(``[clients_heat] url``), as a cloud whose API network is down for one tenant network
but not for the instances' metadata path would.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
import time


class Gate:
    """A loopback TCP forwarder in front of one port."""

    def __init__(self, listen_port: int, target_port: int):
        self.listen_port = listen_port
        self.target_port = target_port
        self.open = threading.Event()
        self.open.set()
        self.refused = 0
        self.forwarded = 0
        #: (time, request line) of the latest requests that went through
        self.requests: collections.deque = collections.deque(maxlen=100000)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Listen and forward in background threads."""
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', self.listen_port))
        self._sock.listen(128)
        self._sock.settimeout(0.5)
        threading.Thread(target=self._accept, name='heat-gate', daemon=True).start()

    def stop(self) -> None:
        """Stop listening (connections in flight finish on their own)."""
        self._stopped.set()
        if self._sock is not None:
            self._sock.close()

    def cut(self) -> None:
        """Make heat-api unreachable through the gate."""
        self.open.clear()

    def restore(self) -> None:
        """Let traffic through again."""
        self.open.set()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.open.is_set():
                with self._lock:
                    self.refused += 1
                # RST instead of FIN: the caller sees "connection reset", as when a
                # route or a firewall drops the API
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack('ii', 1, 0))
                client.close()
                continue
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(('127.0.0.1', self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        try:
            first = client.recv(65536)
            upstream.sendall(first)
        except OSError:
            client.close()
            upstream.close()
            return
        line = first.split(b'\r\n', 1)[0].decode('latin-1', errors='replace')
        with self._lock:
            self.forwarded += 1
            self.requests.append((time.time(), line))
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
