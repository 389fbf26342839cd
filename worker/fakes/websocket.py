"""The server side of a WebSocket (RFC 6455) with the standard library, for the fake Slack's
Socket Mode: the opening handshake's checks and answer, and text, ping/pong and close frames.

It is as strict as a server must be with what a client sends (frames from a client are masked,
control frames are short and whole) so that a client the fake accepts is one Slack accepts. It
must never be used beyond loopback: no TLS, no extensions, no subprotocols, no size limits
worth a public server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import socket
import struct
import threading
from collections.abc import Mapping
from typing import NoReturn

#: RFC 6455 §1.3: the GUID appended to the client's key for ``Sec-WebSocket-Accept``.
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Close codes (RFC 6455 §7.4.1).
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_problem(method: str, headers: Mapping[str, str]) -> str | None:
    """Why an opening handshake (headers in lower case) is not one (RFC 6455 §4.2.1), or None."""
    if method != "GET":
        return "not a GET"
    if headers.get("upgrade", "").strip().lower() != "websocket":
        return "no Upgrade: websocket"
    if "upgrade" not in {part.strip().lower() for part in headers.get("connection", "").split(",")}:
        return "no Connection: Upgrade"
    if headers.get("sec-websocket-version", "").strip() != "13":
        return "Sec-WebSocket-Version is not 13"
    try:
        nonce = base64.b64decode(headers.get("sec-websocket-key", "").strip(), validate=True)
    except (binascii.Error, ValueError):
        return "Sec-WebSocket-Key is not base64"
    if len(nonce) != 16:
        return "Sec-WebSocket-Key is not 16 bytes"
    return None


class ConnectionClosed(Exception):
    """The peer went away, or broke the protocol (the connection is closed then)."""


class WebSocket:
    """One open connection, server side: :meth:`receive` from one thread, :meth:`send_text`
    and :meth:`close` from any."""

    def __init__(self, reader: io.BufferedIOBase, sock: socket.socket) -> None:
        # The reader: bytes the client sent right behind its handshake may be buffered there.
        self._reader = reader
        self._sock = sock
        self._send_lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode("utf-8"))

    def receive(self) -> str:
        """The next text message; pings are answered on the way and a close is answered and
        raises :class:`ConnectionClosed`, as does a broken frame or a gone peer."""
        fragments: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == PING:
                self._send(PONG, payload)
            elif opcode == PONG:
                continue  # an answer to a ping of ours, or unsolicited (allowed: §5.5.3)
            elif opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.close(NORMAL_CLOSURE if code is None else code)
                raise ConnectionClosed(f"closed by the client ({code})")
            elif opcode in (TEXT, CONTINUATION) and (opcode == TEXT) == (not fragments):
                fragments.append(payload)
                if fin:
                    try:
                        return b"".join(fragments).decode("utf-8")
                    except UnicodeDecodeError:
                        self._fail("a text message that is not UTF-8")
            else:
                self._fail(f"an unexpected frame (opcode {opcode:#x})")

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Send a close frame (once) and end the connection."""
        if self._closed:
            return
        with contextlib.suppress(OSError):  # the peer may be gone already
            self._send(CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in receive()

    def _fail(self, what: str) -> NoReturn:
        self.close(PROTOCOL_ERROR, what)
        raise ConnectionClosed(what)

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            self._fail("reserved bits set (no extension was agreed)")
        if not second & 0x80:
            self._fail("an unmasked frame from the client")  # §5.1: the server must close
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if opcode >= CLOSE and (length > 125 or not fin):
            self._fail("a control frame longer than 125 bytes or fragmented")  # §5.5
        mask = self._read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(length)))
        return fin, opcode, data

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = self._reader.read(n - len(data))
            except OSError as e:
                self._closed = True
                raise ConnectionClosed(str(e)) from None
            if not chunk:
                self._closed = True
                raise ConnectionClosed("the client went away")
            data += chunk
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        # Frames from the server are never masked (§5.1).
        length = len(payload)
        if length <= 125:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._send_lock:
            if self._closed:
                raise ConnectionClosed("the connection is closed")
            self._sock.sendall(header + payload)
