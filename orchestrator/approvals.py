"""Deferred approvals from the agent's side: poll your own approval, withdraw it when giving up.

``GET /v1/approvals/{id}`` answers only the key that caused the approval, so an agent can
follow its own requests without an admin key. The gateway's answer is the source of truth;
a poll that fails (network, 5xx) is simply tried again until the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from orchestrator.config import OrchestratorConfig
from orchestrator.errors import ApprovalUnresolved
from orchestrator.events import Listener

log = logging.getLogger("orchestrator.approvals")

DECIDED = frozenset({"approved", "denied", "expired", "cancelled"})


class ApprovalPoller:
    def __init__(self, config: OrchestratorConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def _url(self, approval_id: str) -> str:
        return f"{self.config.base_url.rstrip('/')}/approvals/{approval_id}"

    async def fetch(self, key: str, approval_id: str) -> dict[str, Any] | None:
        """The caller's view of the approval (status, reasons, tools, comment), or None when unknown."""
        try:
            async with self._http().get(
                self._url(approval_id), headers={"Authorization": f"Bearer {key}"}
            ) as resp:
                if resp.status != 200:
                    log.warning("reading approval %s: HTTP %s", approval_id, resp.status)
                    return None
                doc = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("reading approval %s failed: %s", approval_id, exc)
            return None
        return doc if isinstance(doc, dict) else None

    async def status(self, key: str, approval_id: str) -> str | None:
        """The approval's status, or None when the gateway could not say."""
        doc = await self.fetch(key, approval_id)
        status = doc.get("status") if doc else None
        return str(status) if status else None

    async def wait(self, key: str, approval_id: str, deadline: float) -> str:
        """Poll until decided or the monotonic ``deadline``; returns the last status seen."""
        last = "pending"
        while True:
            status = await self.status(key, approval_id)
            if status is not None:
                last = status
                if status in DECIDED:
                    return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return last
            await asyncio.sleep(min(self.config.approval_poll_s, remaining))

    async def await_decision(
        self, listener: Listener, key: str, agent: str, run_id: str, approval_id: str, deadline: float
    ) -> str:
        """Follow a deferred approval until decided (reported to ``listener``); a model call and
        an MCP tool call wait alike. Raises ``ApprovalUnresolved`` (after withdrawing it) when
        it is not decided by ``deadline`` or was withdrawn."""
        await listener.approval_pending(run_id, agent, approval_id, "defer")
        status = await self.wait(key, approval_id, deadline)
        await listener.approval_decided(run_id, agent, approval_id, status)
        if status in ("pending", "cancelled"):
            await self.withdraw(key, approval_id)
            raise ApprovalUnresolved(
                f"approval {approval_id} was not decided within {self.config.approval_wait_s:.0f}s"
                if status == "pending"
                else f"approval {approval_id} was withdrawn",
                status=409,
                code="approval_pending",
                body={"approval_id": approval_id},
            )
        return status

    async def withdraw(self, key: str, approval_id: str) -> None:
        """Cancel a pending approval we no longer wait for, so no reviewer acts on it later."""
        try:
            async with self._http().delete(
                self._url(approval_id), headers={"Authorization": f"Bearer {key}"}
            ):
                pass
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("withdrawing approval %s failed: %s", approval_id, exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
