"""The request head the MCP relay's HTTP/1.1 client writes, and how a request upstream fails.

Split out of ``h1.py`` (module size). The head is written by hand, so it is where request
smuggling would get in: a header name or value holding CR, LF or NUL (a configured
credential, a relayed header) is refused before anything is written, as is one that is not
Latin-1.
"""

from __future__ import annotations

from collections.abc import Mapping

import yarl

_BAD_HEADER = frozenset("\r\n\x00")


class UpstreamFailure(Exception):
    """How a request to an upstream server failed, by kind (see ``upstream.py``)."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


def _head(method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes | None) -> bytes:
    # yarl's host[:port] as a Host header wants it: IPv6 in brackets, a default port left out.
    host = url.host_port_subcomponent or ""
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1", f"host: {host}", "accept-encoding: identity"]
    for name, value in headers.items():
        if _BAD_HEADER.intersection(name) or _BAD_HEADER.intersection(value):
            raise UpstreamFailure("unreachable", f"header {name[:40]!r} holds CR, LF or NUL: not sent")
        lines.append(f"{name}: {value}")
    if body is not None or method == "POST":
        lines.append(f"content-length: {len(body or b'')}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamFailure("unreachable", "a header is not Latin-1: not sent") from None
