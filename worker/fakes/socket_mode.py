"""Slack's side of Socket Mode for the fake Slack: the WebSocket URLs ``apps.connections.open``
hands out, the connections an app opens to them, and the envelopes sent over them.

The protocol (docs.slack.dev/apis/events-api/using-socket-mode; the envelopes as in
python-slack-sdk's tests/slack_sdk/socket_mode/mock_socket_mode_server.py): once the WebSocket
is open Slack sends ``hello``; each request then comes as an envelope ``{"envelope_id", "type":
"slash_commands" | "interactive" | "events_api", "payload", "accepts_response_payload"}`` whose
``payload`` is what an HTTP post would carry (a slash command's form fields as a JSON object,
an interaction's ``payload`` field parsed), and the app acknowledges it by sending back
``{"envelope_id": …}`` (with a ``payload`` where accepted) within three seconds, or the person
sees an error. Slack asks an app to reconnect with ``{"type": "disconnect", "reason": …}``. The
fake sends to the newest open connection (Slack picks one of an app's connections). It never
records an app token; its tickets are made up.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from worker.fakes.server import Request, Response
from worker.fakes.websocket import (
    ConnectionClosed,
    WebSocket,
    accept_key,
    handshake_problem,
)

#: Where the fake's WebSocket URLs point (Slack's are ``wss://wss-….slack.com/link/?ticket=…``).
LINK_PATH = "/link/"
#: "Your app must acknowledge … within 3 seconds" (docs.slack.dev/apis/events-api/
#: using-socket-mode); Slack shows the person an error after that.
ACK_WITHIN_S = 3.0
#: Close code for the fake going away (RFC 6455 §7.4.1).
_GOING_AWAY = 1001


@dataclass(frozen=True)
class SocketAnswer:
    """What an app answered an envelope the fake sent it over Socket Mode."""

    #: The app sent back the envelope's id within the time given (Slack's three seconds).
    acknowledged: bool
    envelope_id: str
    #: Where the app's later answers go (served by the fake, as for HTTP requests).
    response_url: str
    #: What the acknowledgement carried besides the id (an immediate answer), if anything.
    payload: dict[str, Any] | None


class SocketModeLink:
    """The app connections of one fake Slack; its state is guarded by the fake's lock."""

    def __init__(self, lock: threading.RLock, app_id: str) -> None:
        self._changed = threading.Condition(lock)
        self._app_id = app_id
        self._tickets: set[str] = set()
        self._sockets: list[WebSocket] = []  # open, oldest first
        self._greeted = 0  # connections that got their hello, in all
        self._acks: dict[str, dict[str, Any]] = {}

    def new_url(self, base_url: str) -> str:
        """A WebSocket URL for ``apps.connections.open`` to answer, on the fake's host and port."""
        ticket = uuid.uuid4().hex
        with self._changed:
            self._tickets.add(ticket)
        where = urlsplit(base_url).netloc
        return f"ws://{where}{LINK_PATH}?ticket={ticket}&app_id={self._app_id}"

    def accept(self, request: Request) -> Response:
        """``GET /link/?ticket=…``: the opening handshake; then the connection is served."""
        problem = handshake_problem(request.method, request.headers)
        if problem is not None:
            return Response(400, raw=f"not a WebSocket handshake: {problem}".encode())
        with self._changed:
            known = request.arg("ticket") in self._tickets
        if not known:
            # UNCONFIRMED: Slack's answer to a URL it never handed out; a refusal is what counts.
            return Response(401, raw=b"invalid ticket")
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": accept_key(request.headers["sec-websocket-key"].strip()),
        }
        return Response(101, headers=headers, takeover=self._serve)

    def send(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool,
        timeout: float,
    ) -> tuple[bool, str, dict[str, Any] | None]:
        """Send an envelope to the newest connection; (acknowledged within ``timeout`` s, its
        id, the acknowledgement's payload)."""
        with self._changed:
            if not self._sockets:
                raise AssertionError("no app is connected to the fake Slack over Socket Mode")
            ws = self._sockets[-1]
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": accepts_response_payload,
        }
        ws.send_text(json.dumps(envelope))
        with self._changed:
            acknowledged = self._changed.wait_for(lambda: envelope_id in self._acks, timeout)
            ack = self._acks.get(envelope_id)
        answer = ack.get("payload") if ack else None
        return acknowledged, envelope_id, answer if isinstance(answer, dict) else None

    def disconnect(self, reason: str) -> None:
        """Ask every connected app to reconnect, as Slack does before it recycles a connection
        (``refresh_requested``) or when it is about to drop one (``warning``)."""
        with self._changed:
            sockets = list(self._sockets)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        for ws in sockets:
            ws.send_text(json.dumps(message))

    def await_connections(self, count: int, timeout: float) -> None:
        """Wait until ``count`` connections in all have been greeted and one is open."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._greeted >= count and bool(self._sockets), timeout
            ):
                raise AssertionError(f"no Socket Mode connection #{count} within {timeout} s")

    def open_connections(self) -> int:
        with self._changed:
            return len(self._sockets)

    def close_all(self) -> None:
        with self._changed:
            sockets = list(self._sockets)
        for ws in sockets:
            ws.close(_GOING_AWAY)

    def _serve(self, reader: io.BufferedIOBase, connection: socket.socket) -> None:
        ws = WebSocket(reader, connection)
        try:
            with self._changed:
                self._sockets.append(ws)
                hello = {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {
                        "host": "applink-fake",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self._app_id},
                }
            ws.send_text(json.dumps(hello))
            with self._changed:
                self._greeted += 1
                self._changed.notify_all()
            while True:
                message = _json_object(ws.receive())
                if isinstance(message.get("envelope_id"), str):
                    with self._changed:
                        self._acks[message["envelope_id"]] = message
                        self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                self._changed.notify_all()


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
