"""``/openapi.json``: the proxy endpoints described by hand, every other route from its docstring.

The request schemas list what the gateway checks itself; ``additionalProperties`` stays open
because unknown fields pass through to the provider.

Security: ``/v1/*`` takes an agent key (scheme ``bearer``), ``/admin/*`` an admin key (scheme
``admin``, and only that one, whatever a component's own description says: a client generated
from the document must never send an agent key there), ``/metrics`` and ``/openapi.json`` the
operator token (scheme ``ops``) when ``server.metrics_token`` is set.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.http.ops_auth import require_ops_token
from gateway.http.routes import json_response

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
            "required": ["message", "type", "code", "param"],
        }
    },
    "required": ["error"],
}
_MESSAGE = {
    "type": "object",
    "properties": {"role": {"type": "string"}, "content": {"type": ["string", "array", "null"]}},
    "required": ["role"],
}
_MODEL = {"type": "string", "minLength": 1, "maxLength": 256}
_COMMON = {
    "model": _MODEL,
    "stream": {"type": "boolean"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "tools": {"type": "array", "items": {"type": "object"}},
    "tool_choice": {"type": ["string", "object"]},
    "metadata": {"type": "object"},
}
_BODIES = {
    "/v1/chat/completions": {
        "type": "object",
        "properties": {
            **_COMMON,
            "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
            "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        },
        "required": ["model", "messages"],
    },
    "/v1/responses": {
        "type": "object",
        "properties": {
            **_COMMON,
            "input": {"type": ["string", "array"]},
            "instructions": {"type": "string"},
            "max_output_tokens": {"type": "integer", "minimum": 1},
        },
        "required": ["model", "input"],
    },
    "/v1/embeddings": {
        "type": "object",
        "properties": {
            "model": _MODEL,
            "input": {"type": ["string", "array"]},
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
        },
        "required": ["model", "input"],
    },
}
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_STATUSES = {
    "400": "Bad request",
    "401": "Invalid API key",
    "403": "Denied",
    "404": "Unknown model",
    "409": "Approval pending",
    "413": "Body too large",
    "429": "Rate limited or budget exceeded",
    "4XX": "The provider refused the request (its status is passed on)",
    "502": "Upstream error",
    "503": "A guard cannot decide, or the worker is overloaded or shutting down (retry-after)",
    "504": "Upstream timeout",
}
#: Errors of the routes that take a key (the fuzzer checks every status it gets is documented).
_ROUTE_ERRORS = {
    **{path: tuple(_STATUSES) for path in _BODIES},
    "/v1/models": ("401",),
    "/v1/models/{model}": ("401", "404"),
}


def _error_responses(codes: tuple[str, ...]) -> dict[str, Any]:
    return {
        code: {"description": _STATUSES[code], "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def build_spec(
    routes: list[BaseRoute], detailed: dict[str, dict[str, Any]] | None = None, ops_protected: bool = False
) -> dict[str, Any]:
    """The document: ``detailed`` operations (from components that describe their own API)
    replace the generic ones derived from a route's docstring. ``ops_protected``: the
    operator endpoints need the operator token."""
    paths: dict[str, Any] = {}
    for route in routes:
        if (
            not isinstance(route, Route)
            or not route.include_in_schema  # the console's pages (HTML, not the API)
            or route.path in ("/{path:path}", "/openapi.json")
        ):
            continue
        path = _CONVERTOR.sub(r"{\1}", route.path)  # OpenAPI templates carry no Starlette convertors
        for method in sorted((route.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {"summary": _summary(route), "responses": {"200": {"description": "OK"}}}
            params = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in route.param_convertors
            ]
            if params:
                op["parameters"] = params
            if path in _BODIES:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _BODIES[path]}},
                }
            if path in _ROUTE_ERRORS:
                op["responses"].update(_error_responses(_ROUTE_ERRORS[path]))
                op["security"] = [{"bearer": []}]
            if path == "/readyz":
                op["responses"]["503"] = {
                    "description": "A dependency is not ready, or the worker is draining"
                }
            paths.setdefault(path, {})[method.lower()] = op
    for path, ops in (detailed or {}).items():
        for method, op in ops.items():
            merged = {"summary": paths.get(path, {}).get(method, {}).get("summary", path), **op}
            paths.setdefault(path, {})[method] = merged
    schemes: dict[str, Any] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An agent's virtual key (wg-...)."},
        "admin": {
            "type": "http",
            "scheme": "bearer",
            "description": "An admin key (admin_keys in keys.yaml).",
        },
    }
    ops_paths = ("/metrics", "/openapi.json")
    paths["/openapi.json"] = {
        "get": {
            "summary": "The OpenAPI document of this gateway",
            "responses": {"200": {"description": "OK"}},
        }
    }
    if ops_protected:
        schemes["ops"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The operator token (server.metrics_token).",
        }
    for path, ops in paths.items():
        for op in ops.values():
            op["responses"] = dict(op.get("responses") or {})  # never edit a component's own dict
            if path.startswith("/admin/"):
                op["security"] = [{"admin": []}]
                for code, text in (
                    ("401", "Missing or invalid admin key"),
                    ("403", "The admin key lacks the role"),
                ):
                    op["responses"].setdefault(
                        code, {"description": text, "content": {"application/json": {"schema": _ERROR}}}
                    )
            elif path.startswith("/v1/"):
                op["security"] = [{"bearer": []}]
            elif path in ops_paths and ops_protected:
                op["security"] = [{"ops": []}]
                op["responses"]["401"] = _error_responses(("401",))["401"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Wardgate",
            "version": "0.1.0",
            "description": "OpenAI-compatible policy and guardrail gateway for LLM agents.",
        },
        "components": {"securitySchemes": schemes},
        "paths": paths,
    }


def _summary(route: Route) -> str:
    doc = inspect.getdoc(route.endpoint) or ""
    return doc.splitlines()[0] if doc else route.path


def openapi_route(routes: list[BaseRoute], detailed: dict[str, dict[str, Any]] | None = None) -> Route:
    spec: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        """The OpenAPI document of this gateway."""
        require_ops_token(request)
        if not spec:
            protected = request.app.state.ctx.settings.server.metrics_token is not None
            spec.update(build_spec(routes, detailed, protected))
        return json_response(spec)

    return Route("/openapi.json", openapi, methods=["GET"])
