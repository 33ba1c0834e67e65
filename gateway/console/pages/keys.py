"""``/console/keys`` (admin): list, create and revoke virtual keys.

The list is this worker's loaded keys (``GET /admin/keys``: records, never a key or its hash).
Creation and revocation are the admin API's own functions (``gateway.keys.api.create`` /
``revoke``: the same validation, backend write, audit record and rollback when the audit log
refuses), behind the console's CSRF check. A new key is shown once, on the answer to the
creation (``Cache-Control: no-store``, like every console page), and never again.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from gateway.console.web import Page, PageRequest, PageRoute
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.keys import api as keys_api

_LIST_FIELDS = ("team", "user")


def _deps(page: PageRequest) -> keys_api.Deps:
    if page.deps.keys is None:
        raise ServiceUnavailable("Key management is not available on this gateway.")
    return page.deps.keys


def _records(page: PageRequest) -> list[dict[str, Any]]:
    store = page.request.app.state.ctx.keys
    return sorted((r.public() for r in store.records()), key=lambda r: str(r.get("id")))


def _render(page: PageRequest, status: int = 200, **extra: Any) -> Response:
    context: dict[str, Any] = {"keys": _records(page), "created": None, "error": None, "form": {}, **extra}
    return page.render("keys.html", status, **context)


async def keys(page: PageRequest) -> Response:
    """The virtual keys."""
    return _render(page)


async def create_key(page: PageRequest) -> Response:
    """Create a key from the form; the answer shows it once."""
    form = page.form
    doc: dict[str, Any] = {"team": form.get("team", "").strip()}
    for name in ("id", "user"):
        if form.get(name, "").strip():
            doc[name] = form[name].strip()
    models = [m.strip() for m in form.get("models", "").split(",") if m.strip()]
    if models:
        doc["models"] = models
    try:
        key, public = await keys_api.create(page.request, _deps(page), page.user, doc)
    except GatewayError as exc:
        return _render(page, exc.status, **{"error": exc.message, "form": form})
    return page.render(
        "keys.html", 201, keys=_records(page), created={"key": key, **public}, error=None, form={}
    )


async def revoke_key(page: PageRequest) -> Response:
    """Revoke one key (the admin API's revocation)."""
    key_id = page.request.path_params["key_id"]
    await keys_api.revoke(page.request, _deps(page), page.user, key_id)
    return _render(page)


PAGE = Page(
    name="keys",
    title="Keys",
    roles=("admin",),
    routes=(
        PageRoute("/keys", keys, roles=("admin",)),
        PageRoute("/keys/create", create_key, roles=("admin",), methods=("POST",)),
        PageRoute("/keys/{key_id}/revoke", revoke_key, roles=("admin",), methods=("POST",)),
    ),
)
