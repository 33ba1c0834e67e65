"""The gateway's admin API, as the demo and load mode use it: approvals, audit, spend.

Every method degrades instead of failing: when the gateway does not offer a feature (404),
has it disabled (503), or the key may not use it (401/403), the answer is ``Unavailable``
with the gateway's message, and the caller prints that instead of the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger("orchestrator.admin")


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str

    def __bool__(self) -> bool:
        return False


class AdminClient:
    def __init__(self, gateway_url: str, admin_key: str | None) -> None:
        self.url = gateway_url.rstrip("/").removesuffix("/v1")
        self.key = admin_key
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        if not self.key:
            return Unavailable("no admin key configured (set WARDGATE_ADMIN_KEY)")
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            async with self._http().request(
                method, self.url + path, params=params, json=body, headers=headers
            ) as resp:
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
                if resp.status >= 400:
                    err = doc.get("error", {}) if isinstance(doc, dict) else {}
                    return Unavailable(f"HTTP {resp.status}: {err.get('message') or resp.reason}")
                return doc
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Unavailable(f"gateway unreachable: {exc}")

    # -- approvals -------------------------------------------------------------------
    async def pending_approvals(
        self, run_id: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]] | Unavailable:
        params = {"status": "pending", "limit": str(limit)}
        if run_id:
            params["run"] = run_id
        doc = await self._call("GET", "/admin/approvals", params=params)
        if isinstance(doc, Unavailable):
            return doc
        return list(doc.get("data") or []) if isinstance(doc, dict) else []

    async def decide(self, approval_id: str, approve: bool, comment: str) -> dict[str, Any] | Unavailable:
        verb = "approve" if approve else "deny"
        return await self._call("POST", f"/admin/approvals/{approval_id}/{verb}", body={"comment": comment})

    # -- audit -----------------------------------------------------------------------
    async def run_timeline(self, run_id: str) -> dict[str, Any] | Unavailable:
        return await self._call("GET", f"/admin/runs/{run_id}")

    async def spend(self, group_by: str, **filters: str) -> dict[str, Any] | Unavailable:
        return await self._call("GET", "/admin/spend/report", params={"group_by": group_by, **filters})
