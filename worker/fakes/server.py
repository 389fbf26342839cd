"""A tiny threaded HTTP server on loopback with JSON routing, shared by the fakes.

A fake subclasses :class:`FakeServer`, registers routes with :meth:`route` and keeps its state
behind ``self.lock``. Every request is recorded in ``self.requests`` (without its Authorization
header) so tests can assert on what a client asked for.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of ``body`` (for malformed-JSON injection)
    #: A protocol switch (status 101, a WebSocket): after the status and ``headers`` the
    #: connection is handed to ``takeover(reader, socket)`` until it returns, then closed.
    takeover: Callable[[io.BufferedIOBase, socket.socket], None] | None = None


Handler = Callable[[Request], Response]


class FakeServer:
    """Base of the loopback fakes: start/stop, routing, request log."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routing -------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` and a path pattern like ``/crm/v3/{object}``."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def dispatch(self, request: Request) -> Response:
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match:
                allowed = True
                if method == request.method:
                    request.params = match.groupdict()
                    return handler(request)
        if allowed:
            return Response(405, {"status": "error", "message": "Method not allowed"})
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response(404, {"status": "error", "message": f"No route for {request.path}"})

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake server is not started")
        port = self._httpd.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0 picks a free one) and return the base URL."""
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written separately; with Nagle's algorithm a small last
            # segment waits for the client's delayed ACK (40 ms on Linux) on every response.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers=headers,
                    body=body,
                )
                recorded = Request(
                    request.method,
                    request.path,
                    request.query,
                    {k: v for k, v in headers.items() if k != "authorization"},
                    body,
                )
                with fake.lock:
                    fake.requests.append(recorded)
                response = fake.dispatch(request)
                if response.takeover is not None:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.close_connection = True
                    response.takeover(self.rfile, self.connection)
                    return
                payload = (
                    response.raw
                    if response.raw is not None
                    else json.dumps(response.body).encode("utf-8")
                )
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (or was killed)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests and the demo print what matters themselves

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        httpd = self._httpd
        # A short poll interval lets stop() return in milliseconds (shutdown() is only noticed
        # when the serve loop wakes up).
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.02), daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def serve_forever(self, port: int = 0) -> None:
        """Run in the foreground until interrupted (for ``sla-worker fake-…``)."""
        if self._httpd is None:
            self.start(port)
        assert self._thread is not None
        try:
            self._thread.join()
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
