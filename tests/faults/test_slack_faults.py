"""Slack misbehaving: a redirect never carries the bot token elsewhere (issue 14, row 10)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.errors import TransientError
from worker.slack.client import SlackClient

TOKEN = "xoxb-secret-token"


class _Server:
    """A loopback HTTP server that records every request's headers and answers with
    ``respond(handler)``."""

    def __init__(self, respond: object) -> None:
        self.seen: list[dict[str, str]] = []
        seen, answer = self.seen, respond

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append(dict(self.headers.items()))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer(self)  # type: ignore[operator]

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    """Another host, which answers like Slack would: a message accepted."""

    def accept(handler: BaseHTTPRequestHandler) -> None:
        body = b'{"ok": true, "channel": "C1", "ts": "1.1"}'
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = _Server(accept)
    yield server
    server.close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_the_token_never_reaches_the_other_host(
    elsewhere: _Server, status: int
) -> None:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", elsewhere.url + "api/chat.postMessage")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    slack = _Server(redirect)
    try:
        client = SlackClient(TOKEN, slack.url + "api/")
        with pytest.raises(TransientError, match="redirect, refused") as raised:
            client.post_message("C1", "hello")
        assert TOKEN not in str(raised.value)
        assert slack.seen and slack.seen[0].get("Authorization") == f"Bearer {TOKEN}"
        assert elsewhere.seen == []  # not followed at all, so no token and no fake success
    finally:
        slack.close()
