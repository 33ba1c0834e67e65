"""Attacker processes for the abuse tests: standard library only, so a spawned child starts fast.

An attacker sends one pre-encoded request over and over on a keep-alive ``http.client``
connection (reopened when the gateway closes it) while told to, at a lowered priority:
the test measures what the attack does to the gateway, not what the attackers' own CPU does
to the well-behaved client on the same machine.
"""

from __future__ import annotations

import contextlib
import http.client
import os
from typing import Any


def attack(
    host: str, port: int, path: str, body: bytes, headers: dict[str, str], stop: Any, sent: Any, active: Any
) -> None:
    """Send ``body`` to ``path`` while ``active`` is set, until ``stop`` is (both Events);
    count the answers in ``sent``."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    conn: http.client.HTTPConnection | None = None
    while not stop.is_set():
        if not active.wait(0.05):
            continue
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            if conn is not None:
                conn.close()
            conn = None
            continue
        with sent.get_lock():
            sent.value += 1
    if conn is not None:
        conn.close()
