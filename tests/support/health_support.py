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


class ServedApp:
    """An ASGI app served by a real uvicorn on a loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("uvicorn did not start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, Any]:
        """GET ``path``; the client gives up after ``timeout`` seconds (raises TimeoutError)."""
        import http.client
        import json

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body.decode()
