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

"""A small threaded WSGI server on loopback for the lab's API processes.

At most ``CELTIC_LAB_WSGI_CONCURRENCY`` requests (default 32) run the application at
once; the others wait, as behind a real WSGI container with a bounded worker pool (an
unbounded one lets 300 signalling nodes exhaust a service's database pool).

Each request is written to an access log (``CELTIC_LAB_ACCESS_LOG``): time, method,
path, status, duration and the caller's user agent, one line each. The lab reads it to
show what reached a service (the benchmarks count Heat requests per status poll).
"""

from __future__ import annotations

import os
import signal
import socketserver
import sys
import threading
import time
from wsgiref import simple_server


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # the services log requests themselves
        pass


class _AccessLog:
    """WSGI middleware writing one line per request."""

    def __init__(self, app, path: str):
        self.app = app
        self.lock = threading.Lock()
        self.file = open(path, 'a', buffering=1)

    def __call__(self, environ, start_response):
        started = time.time()
        seen = {}

        def recording_start_response(status, headers, exc_info=None):
            seen['status'] = status.split(' ', 1)[0]
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            line = '%.3f %s %s %s %.3f %s\n' % (
                started, environ.get('REQUEST_METHOD'), environ.get('PATH_INFO'),
                seen.get('status', '-'), time.time() - started,
                (environ.get('HTTP_USER_AGENT') or '-').replace(' ', '_'))
            with self.lock:
                self.file.write(line)


class _Bounded:
    """WSGI middleware: at most `limit` requests inside the application at once."""

    def __init__(self, app, limit: int):
        self.app = app
        self.slots = threading.BoundedSemaphore(limit)

    def __call__(self, environ, start_response):
        with self.slots:
            # the body is produced inside the slot too (wsgiref iterates after return)
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                if hasattr(result, 'close'):
                    result.close()


def serve(app, port: int, name: str, on_stop=None) -> None:
    """Serve app on 127.0.0.1:port until SIGTERM or SIGINT; print one ready line."""
    app = _Bounded(app, int(os.environ.get('CELTIC_LAB_WSGI_CONCURRENCY') or 32))
    if os.environ.get('CELTIC_LAB_ACCESS_LOG'):
        app = _AccessLog(app, os.environ['CELTIC_LAB_ACCESS_LOG'])
    httpd = simple_server.make_server('127.0.0.1', port, app, _Server, _Handler)

    def _stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print('%s ready on http://127.0.0.1:%d' % (name, port), flush=True)
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        if on_stop is not None:
            on_stop()
    sys.exit(0)
