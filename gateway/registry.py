"""The component contract, and the one place the order of the stages is written and explained.

A component is one area of the gateway (keys, limits, redaction, policy, approvals, audit,
observability, providers). It contributes, through the ``Component`` protocol below:

- its **settings section** (``name``: the key in ``wardgate.yaml`` and ``WARDGATE_<NAME>__…``;
  ``settings_model``: the section's pydantic model), assembled by ``gateway/settings.py``;
- its **routes** (``routes()``: built with the app, before the lifespan; a handler finds what
  the component built at start through the component itself, never through a lookup by name);
- its **CLI commands** (``commands``: ``wardgate`` sub-command groups, as module paths imported
  only when the CLI runs, so ``wardgate --help`` does not load Presidio);
- at start (``start(ctx)``, in the app's lifespan): its **stages** (``ctx.stages``), its
  **readiness checks** (``ctx.ready_checks[name]``, ``/readyz``), its **closers**
  (``ctx.closers``, run in reverse order at shutdown) and drain hooks (``ctx.drain.on_begin``).

Which components the gateway has, and who uses whom, is written once, in the composition root
``gateway/components.py``: each component receives the components it uses in its constructor.

``STAGE_ORDER`` is the order every call goes through the stages, whoever registered them:

    authenticate → [audit_ready] → limit(reserve) → redact(in) → policy(request) → [approval hold]
      → limit_reprice → [cache] → forward → stream_trust → redact(out) → policy(response)
      → [approval hold] → capture → settle → [cache_store] → audit

Why this order:

- **identity first** (``authenticate``): nothing runs for an unknown caller (like Envoy's
  ``ext_authz``, first and fail-closed);
- ``audit_ready`` (registered only while the audit store has been down since start): a call
  that could not be audited is refused before it reserves or forwards anything;
- **limits reserve before any expensive work** (``limit``): a flood of over-budget calls costs
  one Redis round trip each;
- **redaction before policy** (``redact_in``): policies decide on what would actually leave the
  gateway, and on the ``pii`` summary of what was found;
- **approval last on each side** (``approval_request``, ``approval_response``): a reviewer sees
  exactly what the policy saw;
- **re-price after policy** (``limit_reprice``): a policy may re-route the model, so the
  reservation is re-priced before forwarding;
- **the response cache last before forwarding** (``cache``): it keys on the request as the
  provider would see it (redacted, routed, capped), and a hit, which ends the request phase
  there, has been through every request guard; its answer still goes through every response
  stage (restore, policy, approval) of the current caller;
- ``forward`` ends the request phase (a stage that replays a stored answer may end it earlier);
- **stream trust before any guard reads a stream** (``stream_trust``, only when a stage that
  reads streams is registered): the upstream's events must add up, so every guard and every
  client judge one answer;
- ``capture`` (audit) only assembles a streamed answer for calls whose policy asked for
  content capture, after every stage that rewrites events, so it keeps what the client got;
- **the cache stores after settle, before audit** (``cache_store``): the entry records what
  the call was booked at (what a later hit saves), and the audit event says it was stored;
- **settle and audit always run** (like Kong's ``log`` phase), also on denials and failures;
  audit last, so its event records what every other stage decided and what the call cost.

Adding a guard: see ``docs/adding-a-guard.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.context import AppContext

#: The canonical order; ``Pipeline`` sorts whatever stages are registered by it.
STAGE_ORDER: tuple[str, ...] = (
    "authenticate",
    "audit_ready",
    "limit",
    "redact_in",
    "policy_request",
    "approval_request",
    "limit_reprice",
    "cache",
    "forward",
    "stream_trust",
    "redact_out",
    "policy_response",
    "approval_response",
    "capture",
    "settle",
    "cache_store",
    "audit",
)

S = TypeVar("S", bound=BaseModel)
T = TypeVar("T")

#: What a route handler gets to reach what a component built at start: ``None`` while the
#: component is disabled (each API answers that in its own words).
Provider = Callable[[], T | None]


@runtime_checkable
class Component(Protocol):
    """One area of the gateway, as the app and the CLI see it."""

    @property
    def name(self) -> str:
        """Its settings section (``wardgate.yaml`` key) and its ``/readyz`` check's name."""
        ...

    @property
    def settings_model(self) -> type[BaseModel] | None:
        """The section's model; ``None``: the component reads no section of its own."""
        ...

    @property
    def commands(self) -> Sequence[tuple[str, str]]:
        """``wardgate`` sub-command groups: (command, module holding a Typer ``app``)."""
        ...

    def routes(self) -> list[BaseRoute]:
        """Its HTTP routes (admin API, ...), mounted whether or not it is enabled."""
        ...

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        """Hand-written OpenAPI operations for its routes (the rest come from docstrings)."""
        ...

    async def start(self, ctx: AppContext) -> None:
        """Read its section, build what it needs, register stages, checks and closers on ``ctx``.

        Does nothing when its section says it is disabled."""
        ...


class BaseComponent:
    """Defaults for the optional parts of ``Component``: no section, routes or commands."""

    name: str = "component"
    settings_model: type[BaseModel] | None = None
    commands: Sequence[tuple[str, str]] = ()

    def routes(self) -> list[BaseRoute]:
        return []

    def hot_routes(self) -> dict[str, Callable[..., Any]]:
        """POST endpoints served as raw ASGI apps ahead of Starlette (``gateway/http/hotpath.py``),
        by path prefix: for a route whose traffic is a proxy's (``/mcp/``), where Starlette's
        routing and middleware would cost more than the endpoint. The endpoint renders its own
        errors; a path under the prefix it does not serve it answers itself (404)."""
        return {}

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        return {}

    async def start(self, ctx: AppContext) -> None:
        """Nothing to build."""


def section(settings: BaseModel, name: str, model: type[S]) -> S:
    """The settings section ``name`` of ``settings``, typed as the component's model."""
    value = getattr(settings, name)
    if not isinstance(value, model):
        raise TypeError(f"settings section {name!r} is {type(value).__name__}, not {model.__name__}")
    return value
