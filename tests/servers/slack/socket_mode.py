"""Socket Mode: Slack's WebSocket end, on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from typing import Any

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class SocketModeLink:
    """The WebSocket end of Socket Mode on 127.0.0.1 (RFC 6455, text frames, ping/pong).

    Like Slack: says `hello` on connect, pushes envelopes, collects the app's acks.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._conn: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self.received: list[dict[str, Any]] = []
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=loopback"

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        if self._conn is not None:
            self._conn.close()

    def wait_connected(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._conn is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the app never opened its Socket Mode connection")
                self._cond.wait(left)

    def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send one envelope (e.g. `slash_commands`); returns its envelope_id."""
        envelope_id = f"env-{time.monotonic_ns()}"
        self._send(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind == "slash_commands",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no ack for {envelope_id}; got {self.received}")
                self._cond.wait(left)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        with self._cond:
            self._conn = conn
            self.connections += 1
            self._cond.notify_all()
        self._send({"type": "hello", "num_connections": 1, "debug_info": {"host": "loopback"}})
        try:
            while not self._closed:
                opcode, payload = self._read_frame(conn)
                if opcode == 0x1:
                    with self._cond:
                        self.received.append(json.loads(payload.decode()))
                        self._cond.notify_all()
                elif opcode == 0x9:
                    self._frame(0xA, payload)
                elif opcode == 0x8:
                    return
        except (OSError, ConnectionError, ValueError):
            return

    @staticmethod
    def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
        def exactly(n: int) -> bytes:
            out = b""
            while len(out) < n:
                chunk = conn.recv(n - len(out))
                if not chunk:
                    raise ConnectionError("closed")
                out += chunk
            return out

        first, second = exactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(exactly(2), "big")
        elif length == 127:
            length = int.from_bytes(exactly(8), "big")
        mask = exactly(4) if second & 0x80 else b"\0\0\0\0"
        body = exactly(length)
        return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))

    def _send(self, message: dict[str, Any]) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self._conn is None:
            raise AssertionError("no Socket Mode connection")
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
        with self._send_lock:
            self._conn.sendall(header + payload)
