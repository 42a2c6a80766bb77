"""A prediction API that runs and waits for its first model, as the real one answers then: /health 200,
/ready 503 `{"ready": false, "detail": …}`, /model 503, /metrics with its request counters — served on a
free loopback port for console tests (the real API: tests/api, tests/integration)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METRICS = """\
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/ready",method="GET",status="503"} 7.0
http_requests_total{handler="/predict",method="POST",status="200"} 3.0
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, "application/json", json.dumps({"status": "ok"}))
        elif self.path == "/ready":
            body = {"ready": False, "model_version": None, "detail": "the registry has no champion yet"}
            self._send(503, "application/json", json.dumps(body))
        elif self.path == "/metrics":
            self._send(200, "text/plain; version=0.0.4", METRICS)
        else:
            self._send(503, "application/json", json.dumps({"detail": "No champion model is loaded"}))

    def _send(self, status: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet in test output
        pass


@contextmanager
def api_waiting_for_a_model() -> Iterator[str]:
    """The fake API's base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
