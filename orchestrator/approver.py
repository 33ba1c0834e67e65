"""The human in the loop, for the demo and load mode: watch pending approvals and decide them.

``AutoApprover`` plays the support lead: it approves (or, with ``deny=True``, denies) every
pending approval of the runs it watches, through the admin API, as a reviewer would.
``interactive=True`` asks on the terminal instead (and a reviewer elsewhere may decide first
with ``wardgate approvals approve ID`` or the admin API). Works the same whether the gateway
holds the agent's request open (``hold``) or answered 409 (``defer``): the approval is
pending in the queue either way.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.admin_client import AdminClient, Unavailable

log = logging.getLogger("orchestrator.approver")

Notify = Callable[[str, dict[str, Any]], None]


def _ask(prompt: str) -> Awaitable[str]:
    """Read one line from the terminal without blocking the event loop (or a thread at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    sys.stdout.write(prompt)
    sys.stdout.flush()

    def readable() -> None:
        loop.remove_reader(sys.stdin.fileno())
        if not future.done():
            future.set_result(sys.stdin.readline())

    loop.add_reader(sys.stdin.fileno(), readable)
    future.add_done_callback(lambda _: loop.remove_reader(sys.stdin.fileno()))
    return future


class AutoApprover:
    def __init__(
        self,
        admin: AdminClient,
        *,
        run_id: str | None = None,
        run_prefix: str | None = None,
        interactive: bool = False,
        deny: bool = False,
        poll_s: float = 0.2,
        notify: Notify | None = None,
    ) -> None:
        self.admin = admin
        self.run_id = run_id
        self.run_prefix = run_prefix
        self.interactive = interactive
        self.deny = deny
        self.poll_s = poll_s
        self.notify = notify or (lambda event, info: None)
        self.decided: list[dict[str, Any]] = []
        self.unavailable: str | None = None
        self._seen: set[str] = set()

    def _mine(self, approval: dict[str, Any]) -> bool:
        run = str(approval.get("run_id") or "")
        if self.run_id:
            return run == self.run_id
        return not self.run_prefix or run.startswith(self.run_prefix)

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: decide what is pending. Gives up quietly if the API is missing."""
        while not stop.is_set():
            pending = await self.admin.pending_approvals(self.run_id)
            if isinstance(pending, Unavailable):
                self.unavailable = pending.reason
                self.notify("approvals_unavailable", {"reason": pending.reason})
                return
            for approval in pending:
                if approval["id"] in self._seen or not self._mine(approval):
                    continue
                self._seen.add(approval["id"])
                await self._decide(approval)
            try:
                await asyncio.wait_for(stop.wait(), self.poll_s)
            except TimeoutError:
                continue

    async def _decide(self, approval: dict[str, Any]) -> None:
        self.notify("approval_requested", approval)
        approve = not self.deny
        comment = (
            "denied by the demo reviewer" if self.deny else "approved by the demo reviewer (support lead)"
        )
        if self.interactive:
            answer = (await _ask(f"Approve {approval['id']}? [y/N] ")).strip().lower()
            approve = answer in ("y", "yes")
            comment = "approved on the terminal" if approve else "denied on the terminal"
        result = await self.admin.decide(approval["id"], approve, comment)
        if isinstance(result, Unavailable):
            # Decided elsewhere meanwhile (409), or the key lacks the approver group (403).
            self.notify("approval_not_decided", {"id": approval["id"], "reason": result.reason})
            return
        self.decided.append(result)
        self.notify("approval_decided", result)
