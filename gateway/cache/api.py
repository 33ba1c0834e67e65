"""Admin HTTP API of the response cache.

    GET  /admin/cache                   the store's size, this process's hits/misses/saved (auditor or admin)
    POST /admin/cache/purge             {"scope": "team:acme" | "key:k1" | "global" | null,
                                         "model": "gpt-4o" | null, "all": true?} (admin)

A purge names a scope, a model or both; everything at once needs ``"all": true``. It is
recorded in the audit log *before* it runs (a purge cannot be undone), so a refused record
purges nothing (503 ``audit_unavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.admin.body import read_admin_body
from gateway.admin.record import record_admin_action
from gateway.errors import BadRequest, InvalidJSON, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.recorder import RecorderProvider
from gateway.registry import Provider

if TYPE_CHECKING:  # the service imports the stage, the semantic index and numpy
    from gateway.cache.service import CacheService


@dataclass(frozen=True, slots=True)
class Deps:
    cache: Provider[CacheService]
    audit: RecorderProvider


def _service(deps: Deps) -> CacheService:
    service = deps.cache()
    if service is None:
        raise ServiceUnavailable("The response cache is disabled on this gateway (cache.enabled: false).")
    return service


async def get_cache(request: Request, deps: Deps) -> Response:
    """The cache store's size and this process's lookups, hit ratio and savings."""
    require_admin(request, "admin", "auditor")
    return json_response(await _service(deps).stats())


def _purge_args(raw: bytes) -> tuple[str | None, str | None]:
    try:
        doc: Any = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON("The body is not JSON.") from exc
    if not isinstance(doc, dict) or set(doc) - {"scope", "model", "all"}:
        raise BadRequest("The body takes 'scope', 'model' and 'all' only.")
    scope, model = doc.get("scope"), doc.get("model")
    for name, value in (("scope", scope), ("model", model)):
        if value is not None and (not isinstance(value, str) or not value):
            raise BadRequest(f"'{name}' must be a non-empty string.", param=name)
    if scope is not None and not (scope == "global" or scope.startswith(("team:", "key:"))):
        raise BadRequest("'scope' is 'team:<team>', 'key:<key id>' or 'global'.", param="scope")
    if scope is None and model is None and doc.get("all") is not True:
        raise BadRequest("Name a 'scope' or a 'model', or purge everything with \"all\": true.")
    return scope, model


async def purge_cache(request: Request, deps: Deps) -> Response:
    """Delete stored answers of a scope and/or a model (audited before it runs)."""
    who = require_admin(request, "admin")
    service = _service(deps)
    scope, model = _purge_args(await read_admin_body(request))
    await record_admin_action(deps.audit(), request, who, "cache_purge", {"scope": scope, "model": model})
    deleted = await service.purge(scope, model)
    return json_response({"object": "cache.purge", "scope": scope, "model": model, "deleted": deleted})


def routes(deps: Deps) -> list[BaseRoute]:
    return [
        Route("/admin/cache", bind(get_cache, deps), methods=["GET"]),
        Route("/admin/cache/purge", bind(purge_cache, deps), methods=["POST"]),
    ]
