"""A raw-socket HTTP/1.1 client for the abuse tests: slow, partial and oversized requests that
no HTTP library will send, and the exact moment the server answers or closes."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, headers: dict[str, str] | None = None, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, timeout: float = 5.0) -> RawResponse:
    """One response (Content-Length framed, as every gateway error is); raises on a close first."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n\r\n"):  # byte by byte: never read into the next response
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {data[:200]!r}")
        data += chunk
    raw_head, rest = data[:-4], b""
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(length - len(rest))
        if not chunk:
            break
        rest += chunk
    return RawResponse(status, headers, rest)


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed the connection (EOF or reset), or None if it did not
    within ``timeout``. Anything the server sends first is read and dropped."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start


def send_until_closed(sock: socket.socket, data: bytes, chunk: int = 65536) -> int:
    """Send ``data``; return how many bytes went out before the server stopped taking them."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + chunk])
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass
    return sent
