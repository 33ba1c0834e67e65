"""Small endpoints around the proxy: models list, health, readiness, OpenAPI, fallbacks."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from gateway.call import Principal
from gateway.context import AppContext
from gateway.errors import AuthenticationError, GatewayError, InternalError, NotFound
from gateway.keys.bearer import bearer_token
from gateway.models import model_allowed

_STARTED = int(time.time())

D = TypeVar("D")


def bind(
    handler: Callable[[Request, D], Awaitable[Response]], dependency: D
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint calling ``handler(request, dependency)``: how a component hands its
    routes what they use (a provider of its service), instead of a lookup by name at request
    time. Keeps the handler's name and docstring (the OpenAPI summary)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, dependency)

    return endpoint


def json_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def _ctx(request: Request) -> AppContext:
    return request.app.state.ctx


async def list_models(request: Request) -> Response:
    """Only the models the calling key may use (OpenAI's ``GET /v1/models`` shape)."""
    ctx = _ctx(request)
    principal = _principal(request)
    data = [
        {"id": e.name, "object": "model", "created": _STARTED, "owned_by": e.owned_by}
        for e in ctx.models.entries()
        if model_allowed(principal.models, e.name)
    ]
    return json_response({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    ctx = _ctx(request)
    principal = _principal(request)
    name = request.path_params["model"]
    entry = ctx.models.get(name)
    if entry is None or not model_allowed(principal.models, name):
        raise NotFound(
            f"The model '{name}' does not exist or you do not have access to it.", code="model_not_found"
        )
    return json_response(
        {"id": entry.name, "object": "model", "created": _STARTED, "owned_by": entry.owned_by}
    )


def _principal(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    principal = _ctx(request).keys.authenticate(token) if token else None
    if principal is None:
        raise AuthenticationError("Invalid or missing API key.")
    return principal


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: every dependency the configured guards need answers (Redis, policy, audit)."""
    ctx = _ctx(request)
    if ctx.drain.draining:  # SIGTERM: a load balancer must stop sending here first
        return json_response({"status": "draining", "checks": {}}, status=503)
    checks: dict[str, str] = {}
    ok = True
    for name, check in ctx.ready_checks.items():
        try:
            # A check may answer a status string (e.g. "degraded: local limits") while ready.
            status = await asyncio.wait_for(check(), timeout=2.0)
            checks[name] = status or "ok"
        except Exception as exc:  # a readiness probe reports, it never raises
            ok = False
            checks[name] = f"error: {exc}" if str(exc) else f"error: {type(exc).__name__}"
    return json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )


async def gateway_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, GatewayError):
        exc = InternalError("Internal error.")
    return json_response(exc.to_dict(), status=exc.status, headers=exc.response_headers())


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: OpenAI-shaped too; an unknown path is never passed through.

    A 405 carries ``Allow`` with every method the path serves (RFC 9110). Starlette names only
    the methods of the first route matching the path, and a path here may be served by
    several routes (``GET`` and ``POST /admin/keys`` are two endpoints).
    """
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    message = (
        f"Unknown path: {request.method} {request.url.path}"
        if status == 404
        else (exc.detail if isinstance(exc, HTTPException) else "Internal error.")
    )
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    if status == 405:
        allowed = allowed_methods(request)
        headers["allow"] = ", ".join(allowed)
        headers.pop("Allow", None)
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}."
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
    return json_response(body, status=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method of every route whose path matches the request's (in a stable order)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "type": "http"})
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    return await gateway_error_handler(request, InternalError("Internal error."))
