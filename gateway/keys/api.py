"""Admin API of virtual keys (the operator's ``wardgate keys create``, over HTTP).

    POST   /admin/keys          (admin)            create; the ``wg-…`` key is in the answer, once
    GET    /admin/keys?team=&user=  (admin, auditor)  records, never secrets or hashes
    GET    /admin/keys/{id}     (admin, auditor)
    DELETE /admin/keys/{id}     (admin)            revoke (the entry stays, ``disabled: true``)

Writes go to the configured keys backend (``keys.backend``: keys.yaml through
``gateway.keys.keyfile``, locked and atomic; or Redis, shared by every replica), then this worker
reloads at once and the others within ``gateway.keys.reload.RELOAD_INTERVAL_S`` (file) or
``keys.version_check_s`` (Redis; pub/sub makes it milliseconds). A backend that cannot be
written (read-only file, Redis down) answers 503 ``keys_store_unavailable``. Reads answer from this worker's loaded keys. Admin keys
are not managed here: they are added and removed by hand in the file. Every creation and
revocation is an admin action in the audit log; one whose audit record cannot be stored is
rolled back (503 ``audit_unavailable``): nobody has seen a new key yet, and a revoked key is
refused only for the moment the audit write takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.admin.body import read_admin_body
from gateway.admin.record import record_or_undo
from gateway.errors import Conflict, InvalidJSON, NotFound, PermissionDenied, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.keys.backend import KeyBackend, adding
from gateway.keys.keyfile import KeyIdTaken
from gateway.keys.request import parse_create
from gateway.keys.store import (
    AdminPrincipal,
    KeyFileError,
    KeyRecord,
    KeyStore,
    default_key_id,
    hash_key,
    new_key,
    utc_now,
)
from gateway.recorder import RecorderProvider
from gateway.registry import Provider

log = logging.getLogger("wardgate.keys")
_NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True, slots=True)
class Deps:
    """What the writing handlers use, handed over by the keys component."""

    #: This worker's keys backend (keys.yaml or Redis; reloaded here at once after a write).
    backend: Provider[KeyBackend]
    #: The audit log every creation and revocation is recorded in (``None``: off).
    audit: RecorderProvider


def _backend(deps: Deps) -> KeyBackend:
    backend = deps.backend()
    if backend is None:
        raise ServiceUnavailable("Key management is not available on this gateway.")
    return backend


def _store(request: Request) -> KeyStore:
    return request.app.state.ctx.keys


async def _json(request: Request) -> Any:
    raw = await read_admin_body(request)
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"Request body is not valid JSON: {exc}") from exc


def _file_refused(exc: KeyFileError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"keys.yaml or a stored key is malformed, fix it by hand first: {exc}", code="keys_file_invalid"
    )


async def create(request: Request, deps: Deps, who: AdminPrincipal, doc: Any) -> tuple[str, dict[str, Any]]:
    """Create a virtual key from ``doc`` (the POST body's fields) for ``who``: the key (shown
    once, never stored) and its public record. Shared by the admin API and the console."""
    fields = parse_create(doc)
    backend, store = _backend(deps), _store(request)
    key = new_key()
    key_id = fields.pop("id", None) or default_key_id(fields["team"], fields.get("user"))
    entry = {
        "id": key_id,
        "sha256": hash_key(key),
        **fields,
        "created_at": utc_now(),
        "created_by": who.user,
        "source": "api",
    }
    try:
        await backend.edit(adding(entry))
    except KeyIdTaken as exc:
        raise Conflict(
            f"A key with id '{key_id}' exists already (revoked ids are not reused).",
            param="id",
            code="key_exists",
        ) from exc
    except KeyFileError as exc:
        raise _file_refused(exc) from exc

    async def undo() -> None:  # nobody has seen the key yet
        await backend.edit(lambda doc: _remove(doc, key_id))

    await record_or_undo(deps.audit(), request, who, "keys.create", _audit_detail(entry), undo)
    log.info("key %s created for team %s by %s", key_id, fields["team"], who.user)
    record = store.record(key_id)
    return key, (record.public() if record else {"id": key_id})


async def create_key(request: Request, deps: Deps) -> Response:
    """Create a virtual key; the answer holds the key itself, shown this once."""
    who = require_admin(request, "admin")
    key, public = await create(request, deps, who, await _json(request))
    body = {**public, "key": key}
    return json_response(body, status=201, headers=_NO_STORE)


def _remove(doc: dict[str, Any], key_id: str) -> None:
    doc["keys"] = [
        e for e in doc.get("keys") or [] if not (isinstance(e, dict) and str(e.get("id")) == key_id)
    ]


def _audit_detail(entry: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a key: never its hash."""
    return {k: entry[k] for k in ("id", "team", "user", "roles", "models", "limits", "budgets") if k in entry}


def _record(request: Request, key_id: str | None = None) -> KeyRecord:
    key_id = request.path_params["key_id"] if key_id is None else key_id
    record = _store(request).record(key_id)
    if record is None:
        if _store(request).is_admin_id(key_id):
            raise PermissionDenied(
                f"'{key_id}' is an admin key: admin keys are managed by hand in "
                "policies/keys.yaml, not through this API.",
                code="admin_key_not_allowed",
            )
        raise NotFound(f"No virtual key with id '{key_id}'.", code="key_not_found")
    return record


async def list_keys(request: Request) -> Response:
    """Virtual keys of this gateway (filters: team, user); never the keys or their hashes."""
    require_admin(request, "auditor")
    team, user = request.query_params.get("team"), request.query_params.get("user")
    data = [
        r.public()
        for r in _store(request).records()
        if (team is None or r.principal.team == team) and (user is None or r.principal.user == user)
    ]
    return json_response({"object": "list", "data": data})


async def get_key(request: Request) -> Response:
    """One virtual key's record (never the key or its hash)."""
    require_admin(request, "auditor")
    return json_response(_record(request).public())


async def revoke_key(request: Request, deps: Deps) -> Response:
    """Revoke a virtual key: refused on this worker at once, on every worker within ~1 s."""
    who = require_admin(request, "admin")
    key_id = request.path_params["key_id"]
    return json_response(await revoke(request, deps, who, key_id))


async def revoke(request: Request, deps: Deps, who: AdminPrincipal, key_id: str) -> dict[str, Any]:
    """Revoke ``key_id`` for ``who``; its public record after. Shared with the console."""
    _record(request, key_id)  # 404 / admin-key refusal from this worker's view
    backend = _backend(deps)

    def change(doc: dict[str, Any]) -> bool:
        for entry in doc.get("keys") or []:
            if isinstance(entry, dict) and str(entry.get("id")) == key_id:
                if entry.get("disabled"):
                    return False
                entry.update(disabled=True, revoked_at=utc_now(), revoked_by=who.user)
                return True
        raise NotFound(f"No virtual key with id '{key_id}'.", code="key_not_found")

    try:
        revoked = await backend.edit(change)
    except KeyFileError as exc:
        raise _file_refused(exc) from exc
    if revoked:

        async def undo() -> None:  # the audit log refused the revocation: the key is as it was
            await backend.edit(lambda doc: _unrevoke(doc, key_id))

        await record_or_undo(deps.audit(), request, who, "keys.revoke", {"id": key_id}, undo)
        log.info("key %s revoked by %s", key_id, who.user)
    return _record(request, key_id).public()


def _unrevoke(doc: dict[str, Any], key_id: str) -> None:
    for entry in doc.get("keys") or []:
        if isinstance(entry, dict) and str(entry.get("id")) == key_id:
            for k in ("disabled", "revoked_at", "revoked_by"):
                entry.pop(k, None)


_KEY: dict[str, Any] = {
    "type": "object",
    "description": "A virtual key's record (never the key or its hash).",
    "properties": {
        "object": {"const": "key"},
        "id": {"type": "string"},
        "team": {"type": "string"},
        "user": {"type": ["string", "null"]},
        "roles": {"type": "array", "items": {"type": "string"}},
        "models": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "object"},
        "limits": {"type": "object"},
        "budgets": {"type": "object"},
        "created_at": {"type": ["string", "null"]},
        "created_by": {"type": ["string", "null"]},
        "source": {"enum": ["file", "cli", "api"]},
        "disabled": {"type": "boolean"},
        "revoked_at": {"type": ["string", "null"]},
        "revoked_by": {"type": ["string", "null"]},
    },
    "required": ["id", "team", "disabled"],
}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"}
_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["team"],
    "properties": {
        "team": _NAME,
        "id": _NAME,
        "user": {"type": "string", "minLength": 1, "maxLength": 256},
        "models": {
            "type": "array",
            "maxItems": 100,
            "items": {"type": "string", "minLength": 1, "maxLength": 256},
        },
        "roles": {"type": "array", "maxItems": 100, "items": _NAME},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "requests_per_minute": {"type": "integer", "minimum": 0},
                "tokens_per_minute": {"type": "integer", "minimum": 0},
            },
        },
        "budgets": {
            "type": "object",
            "description": "USD per window",
            "properties": {w: {"type": "number", "minimum": 0} for w in ("day", "month", "total")},
        },
    },
}
_ID = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TEXT = {
    "400": "Invalid field (param names it), or an admin role",
    "401": "Missing or invalid admin key",
    "403": "Role refusal, or an admin key",
    "404": "Unknown key",
    "409": "The id exists already",
    "503": "keys.yaml is malformed, or the keys backend cannot be written (read-only file, Redis down)",
}


def _responses(status: str, ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    return {
        status: {"description": "OK", "content": {"application/json": {"schema": ok}}},
        **{c: {"description": _TEXT[c]} for c in codes},
    }


def openapi_paths() -> dict[str, dict[str, Any]]:
    """OpenAPI operations of these routes, for the app's ``/openapi.json`` to merge in."""
    created = {**_KEY, "properties": {**_KEY["properties"], "key": {"type": "string", "pattern": "^wg-"}}}
    page = {
        "type": "object",
        "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _KEY}},
    }
    query = [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in ("team", "user")
    ]
    return {
        "/admin/keys": {
            "post": {
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _CREATE}}},
                "responses": _responses("201", created, "400", "401", "403", "409", "503"),
            },
            "get": {
                "security": [{"bearer": []}],
                "parameters": query,
                "responses": _responses("200", page, "401", "403"),
            },
        },
        "/admin/keys/{key_id}": {
            "get": {
                "security": [{"bearer": []}],
                "parameters": [_ID],
                "responses": _responses("200", _KEY, "401", "403", "404"),
            },
            "delete": {
                "security": [{"bearer": []}],
                "parameters": [_ID],
                "responses": _responses("200", _KEY, "401", "403", "404", "503"),
            },
        },
    }


def routes(deps: Deps) -> list[BaseRoute]:
    return [
        Route("/admin/keys", bind(create_key, deps), methods=["POST"]),
        Route("/admin/keys", list_keys, methods=["GET"]),
        Route("/admin/keys/{key_id}", get_key, methods=["GET"]),
        Route("/admin/keys/{key_id}", bind(revoke_key, deps), methods=["DELETE"]),
    ]
