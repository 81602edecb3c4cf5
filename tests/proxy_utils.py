"""A real HTTP proxy on 127.0.0.1 for tests: forwards to an upstream, optionally hides the
harness API (a black box, as FC is) and optionally holds every response for a known delay. Toward
a harness it signs each request with the harness's key, as a gateway in front of FC holding its
own credentials would (its callers need none)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from fcbench.signing import harness_key, sign

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authorization", "proxy-authenticate", "content-length", "host"}


class Proxy:
    """`with Proxy(upstream, black_box=True, delay_s=0.2) as p: p.url`"""

    def __init__(self, upstream: str, *, black_box: bool = False, delay_s: float = 0.0) -> None:
        parts = urlsplit(upstream)
        host, port = parts.hostname, parts.port
        key = harness_key(parts.netloc)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if black_box and self.path.startswith("/fcbench/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP
                           and k.lower() != "authorization" and not k.lower().startswith("x-acs-")}
                if key is not None:
                    headers.update(sign(key, self.command, self.path, parts.netloc, body))
                conn = http.client.HTTPConnection(host, port, timeout=600)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                if delay_s:
                    threading.Event().wait(delay_s)
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                outer.relayed += 1

            do_GET = do_POST = do_PUT = do_DELETE = _relay

        self.relayed = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
