"""A small admin-API client for the CLI (stdlib only: the CLI must not need the dev extras).

``--url`` / ``--admin-key`` or ``WARDGATE_URL`` / ``WARDGATE_ADMIN_KEY``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The gateway refused or could not be reached; the message is the one to show."""


class AdminClient:
    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("WARDGATE_URL") or DEFAULT_URL).rstrip("/")
        self.key = key or os.environ.get("WARDGATE_ADMIN_KEY")
        if not self.key:
            raise ClientError("An admin key is needed: --admin-key or WARDGATE_ADMIN_KEY.")
        self.timeout = timeout

    def _open(self, path: str, params: Mapping[str, Any] | None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.key}"})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise ClientError(_error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClientError(f"Cannot reach the gateway at {self.url}: {exc}") from None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        with self._open(path, params) as resp:
            return orjson.loads(resp.read())

    def stream(
        self, path: str, params: Mapping[str, Any] | None = None, chunk: int = 1 << 16
    ) -> Iterator[bytes]:
        with self._open(path, params) as resp:
            while data := resp.read(chunk):
                yield data


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        doc = orjson.loads(exc.read())
        return f"HTTP {exc.code}: {doc['error']['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {exc.code}: {exc.reason}"
