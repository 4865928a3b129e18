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

"""The plumbing of the check's stand-in APIs (kube_standin, check_openstack_api): a
threaded HTTP server on a free loopback port that serves while in a ``with`` block, and
a request handler that answers JSON (or plain text)."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class LoopbackServer:
    """Subclasses call ``_listen(handler class)`` in ``__init__``; ``port`` is then set."""

    def _listen(self, handler: type) -> None:
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class JSONHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _send(self, code: int, body: Any = None, text: bool = False) -> None:
        """``body`` as JSON (None: no body), or as plain text when ``text``."""
        data = b'' if body is None else (body if text else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header('Content-Type', 'text/plain' if text else 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
