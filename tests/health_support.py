"""Test support for the health tests: a local HTTP dependency that can be made slow, failing or hanging."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Dependency:
    """A real HTTP server on a loopback port; set ``mode`` to ok, slow, fail or hang."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.slow_seconds = 0.3
        self.release = threading.Event()  # ends every hang
        dependency = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                mode = dependency.mode
                if mode == "slow":
                    time.sleep(dependency.slow_seconds)
                elif mode == "hang":
                    dependency.release.wait(30)
                code = 500 if mode == "fail" else 200
                body = b'{"ok": true}' if code == 200 else b"boom"
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timed out): expected in hang tests
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/health"

    def __enter__(self) -> Dependency:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
