"""``POST /admin/audit/verify``: run ``verify`` from the admin API, off the event loop, one at a time.

Query parameters (recorded as the read's filter): ``chain`` (one chain; default every chain),
``anchors`` (``true`` = hold the chains to the signed anchors at ``audit.anchor_to``; the
default when it is set), ``public_key`` (the Ed25519 key the auditor trusts, hex or PEM;
default the gateway's own signing key's public half). The anchors are only ever read from the
configured destination: an API caller cannot make the gateway read a path or URL of its choice.

Verifying a large store is seconds of CPU. It runs in a worker thread with its own event loop
and its own store connection (``make_store``: the gateway's pool and writer are untouched), so
the gateway's loop keeps serving while it runs; a second request while one runs is answered
429 at once (one verification per process). The answer is ``VerifyReport.to_dict()``; the run
is an ``audit_read`` event (who, the parameters, how many events were checked), recorded
before the answer like every other read of audit data.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.auth import require_admin
from gateway.admin.record import record_read
from gateway.audit import query
from gateway.audit.anchors import AnchorError, read_anchors
from gateway.audit.signing import SigningKeyError, load_public_key, public_hex
from gateway.errors import BadRequest, NotFound, RateLimited, ServiceUnavailable
from gateway.http.routes import json_response
from gateway.recorder import RecorderProvider

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.audit.service import AuditService
    from gateway.audit.store.base import AuditStore
    from gateway.registry import Provider

_PARAMS = frozenset({"chain", "anchors", "public_key"})


class OneChain:
    """A store seen as one chain: ``verify`` walks it alone and skips claims about the others
    (like a single-chain export)."""

    def __init__(self, store: AuditStore, chain: str) -> None:
        self._store = store
        self.covers = {chain}

    async def shards(self) -> list[str]:
        return [s for s in await self._store.shards() if s in self.covers]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class Verifier:
    """What the endpoint needs from the running audit component, and the one-at-a-time gate."""

    def __init__(self, service: Provider[AuditService], data_dir: Provider[Path]) -> None:
        self.service = service
        self.data_dir = data_dir
        self.busy = False

    async def run(self, chain: str | None, use_anchors: bool, key_text: str | None) -> dict[str, Any]:
        service = self.service()
        data_dir = self.data_dir()
        if service is None or data_dir is None or not service.store.queryable:
            raise ServiceUnavailable("The audit log is disabled or not queryable on this gateway.")
        settings = service.settings
        key = _public_key(key_text, service)
        if use_anchors and settings.anchor_to is None:
            raise BadRequest("No anchor destination is configured (audit.anchor_to).", param="anchors")
        if use_anchors and key is None:
            raise BadRequest(
                "Verifying against anchors needs a public key: pass 'public_key' (the gateway has no signing key).",
                param="public_key",
            )
        if self.busy:
            raise RateLimited("A verification is already running on this gateway; retry when it ends.")
        self.busy = True
        try:
            started = time.perf_counter()
            report = await asyncio.to_thread(_verify_in_thread, service, data_dir, chain, use_anchors, key)
            elapsed = time.perf_counter() - started
        finally:
            self.busy = False
        if chain is not None and not report["shards"]:
            raise NotFound(f"No audit chain {chain!r}.", param="chain")
        return {
            "object": "audit.verification",
            **report,
            "chain": chain,
            "anchors": use_anchors,
            "public_key": public_hex(key) if key is not None else None,
            "elapsed_s": round(elapsed, 3),
        }


def _public_key(text: str | None, service: AuditService) -> Ed25519PublicKey | None:
    if text is not None:
        try:
            return load_public_key(text)
        except SigningKeyError as exc:
            raise BadRequest(f"'public_key': {exc}", param="public_key") from None
    return service.signing_key.public_key() if service.signing_key is not None else None


def _verify_in_thread(
    service: AuditService, data_dir: Path, chain: str | None, use_anchors: bool, key: Ed25519PublicKey | None
) -> dict[str, Any]:
    """A fresh store (own connection, own loop) in this worker thread: the gateway's loop,
    pool and writer are not touched."""
    from gateway.audit.store import make_store
    from gateway.audit.verify import verify

    settings = service.settings
    records = None
    if use_anchors and settings.anchor_to is not None:
        try:
            records = read_anchors(settings.anchor_to, settings.anchor_s3)
        except AnchorError as exc:
            raise ServiceUnavailable(str(exc)) from None

    async def run() -> dict[str, Any]:
        store = make_store(settings, data_dir)
        await store.open()
        try:
            source: Any = store if chain is None else OneChain(store, chain)
            report = await verify(source, anchors=records, public_key=key, inline=True)
            return report.to_dict()
        finally:
            await store.close()

    return asyncio.run(run())


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise BadRequest(f"'{name}' must be 'true' or 'false'.", param=name)
    return raw == "true"


async def verify_chains(request: Request, deps: tuple[Verifier, RecorderProvider]) -> Response:
    """Verify every chain (or ``chain``), with the signed anchors and a public key."""
    verifier, recorder = deps
    who = require_admin(request, "auditor")
    query.check_params(request.query_params, _PARAMS)
    chain = query.text(request.query_params["chain"], "chain") if "chain" in request.query_params else None
    service = verifier.service()
    configured = service is not None and service.settings.anchor_to is not None
    use_anchors = _flag(request, "anchors", configured)
    result = await verifier.run(chain, use_anchors, request.query_params.get("public_key"))
    await record_read(recorder(), request, who, result["events"])
    return json_response(result)
