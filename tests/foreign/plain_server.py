"""A foreign FC custom-container server that knows nothing of fcbench: Python's own
`http.server`, listening on ``$FC_SERVER_PORT`` as FC's contract says, answering ``POST /invoke``
with the request body reversed and ``GET /healthz`` with 200.

Environment: ``FC_SERVER_PORT`` (FC's), ``PLAIN_START_DELAY_S`` (sleep before listening, so a
readiness probe has something to wait for), ``PLAIN_HOST`` (default 127.0.0.1; ``0.0.0.0`` in a
container), ``PLAIN_LOG`` (a file each request's method and path is appended to, in order)."""

from __future__ import annotations

import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        if os.environ.get("PLAIN_LOG"):
            with open(os.environ["PLAIN_LOG"], "a") as log:
                log.write(f"{self.command} {self.path}\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-plain-pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._answer(200, b"ok" if self.path.startswith("/healthz") else self.path.encode())

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._answer(200, body[::-1])

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: the log is the harness's
        pass


def main() -> None:
    time.sleep(float(os.environ.get("PLAIN_START_DELAY_S", "0")))
    port = int(os.environ["FC_SERVER_PORT"])
    server = ThreadingHTTPServer((os.environ.get("PLAIN_HOST", "127.0.0.1"), port), Handler)
    print(f"plain server listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
