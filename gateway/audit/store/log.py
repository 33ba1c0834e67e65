"""The ``log`` backend: one structured JSON line per event, nothing to query.

Events are still sealed into a hash chain, so a shipped log (one ``audit`` logger, one line
per event, ``hash`` and ``prev_hash`` included) can be verified offline with
``wardgate audit verify --file``.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.audit.chain import Head
from gateway.audit.store.base import AuditStore

log = logging.getLogger("wardgate.audit")


class LogStore(AuditStore):
    name = "log"
    queryable = False

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    async def ping(self) -> None:
        return None

    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        if not self.log.isEnabledFor(logging.INFO):
            return
        for row in rows:
            body, hash_ = row[-1], row[-2]
            self.log.info('%s,"hash":"%s"}', body[:-1], hash_)
