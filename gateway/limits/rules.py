"""policies/limits.yaml: which limits apply to a call, merged from defaults, team and key.

Precedence for one scope, field by field (a later layer wins):

    scopes.<kind> → models.<model> (model scope) → combinations.<combo>
      → teams.<team>.(scopes|models|combinations) → the key's own limits/budgets (keys.yaml)
      → runtime overrides set through the admin API (applied inside the store, atomically)

Every call is counted in its ``key``, ``team``, ``agent`` and ``run`` scopes (when it has an
agent/run), so spend is tracked and runtime budgets can be set for any of them. ``user``,
``model`` and combination scopes (e.g. ``agent+model``) only exist where limits.yaml
configures the kind, which keeps the per-call store work proportional to what is in use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.call import Call, Principal
from gateway.limits.bounds import MAX_BUDGET_USD, MAX_COUNT, check_count, check_usd
from gateway.limits.store import ScopeSpec, scope_ident, usd_to_nano
from gateway.yamlfile import load_yaml, refuse_unknown

Kind = Literal["key", "team", "user", "agent", "run", "model"]
KINDS: tuple[str, ...] = ("key", "team", "user", "agent", "run", "model")
ALWAYS = ("key", "team", "agent", "run")
Window = Literal["day", "month", "total"]


class LimitsFileError(ValueError):
    """limits.yaml is not YAML or has a key no rule reads; the message names the file and the key."""


class ScopeLimits(BaseModel):
    """The limits of one scope; every number within its documented range (``bounds.py``)."""

    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(default=None, ge=0, le=MAX_COUNT, strict=True)
    tokens_per_minute: int | None = Field(default=None, ge=0, le=MAX_COUNT, strict=True)
    #: Calls of this scope in flight at once (meant for keys and teams); the next one is 429
    #: ``concurrency_limit_exceeded`` until one finishes.
    max_concurrent_requests: int | None = Field(default=None, ge=0, le=MAX_COUNT, strict=True)
    budget_usd: dict[Window, float] = Field(default_factory=dict)

    @field_validator("budget_usd")
    @classmethod
    def _in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for window, usd in v.items():
            check_usd(usd, f"budget_usd.{window}")
        return v

    def is_empty(self) -> bool:
        return (
            self.requests_per_minute is None
            and self.tokens_per_minute is None
            and self.max_concurrent_requests is None
            and not self.budget_usd
        )


class RunGuards(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Calls per run; the next one is refused (429 run_call_limit).
    max_calls: int | None = Field(default=None, ge=0, le=MAX_COUNT, strict=True)
    #: Cost per run in USD (a ``total`` budget on the run scope; 429 budget_exceeded).
    max_cost_usd: float | None = Field(default=None, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False)
    #: Identical requests (same fingerprint) per run; the next one is 429 loop_detected.
    max_identical_requests: int | None = Field(default=None, ge=1, le=MAX_COUNT, strict=True)


def _check_combo(name: str) -> str:
    parts = name.split("+")
    if len(parts) < 2 or len(set(parts)) != len(parts) or any(p not in KINDS for p in parts):
        raise ValueError(f"combination '{name}' must join two or more distinct kinds of {KINDS} with '+'")
    return name


class TeamLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scopes: dict[Kind, ScopeLimits] = Field(default_factory=dict)
    models: dict[str, ScopeLimits] = Field(default_factory=dict)
    combinations: dict[str, ScopeLimits] = Field(default_factory=dict)
    run_guards: RunGuards | None = None

    @field_validator("combinations")
    @classmethod
    def _combos(cls, v: dict[str, ScopeLimits]) -> dict[str, ScopeLimits]:
        for name in v:
            _check_combo(name)
        return v


class LimitsFile(TeamLimits):
    run_guards: RunGuards | None = Field(default_factory=RunGuards)
    teams: dict[str, TeamLimits] = Field(default_factory=dict)


def _merge(layers: list[ScopeLimits | None]) -> ScopeLimits:
    rpm = tpm = concurrent = None
    budgets: dict[Window, float] = {}
    for layer in layers:
        if layer is None:
            continue
        if layer.requests_per_minute is not None:
            rpm = layer.requests_per_minute
        if layer.tokens_per_minute is not None:
            tpm = layer.tokens_per_minute
        if layer.max_concurrent_requests is not None:
            concurrent = layer.max_concurrent_requests
        budgets.update(layer.budget_usd)
    return ScopeLimits(
        requests_per_minute=rpm, tokens_per_minute=tpm, max_concurrent_requests=concurrent, budget_usd=budgets
    )


def key_layer(principal: Principal) -> ScopeLimits | None:
    """A key's own limits and budgets from keys.yaml (``limits:`` and ``budgets:``)."""
    lim, bud = principal.limits or {}, principal.budgets or {}
    if not lim and not bud:
        return None
    budgets = bud.get("usd", bud) if isinstance(bud, dict) else {}
    # keys.yaml was held to the ranges when it was loaded (``gateway.keys.store``); checked again here
    # so a key built another way cannot turn into a 500 on its first call.
    return ScopeLimits(
        requests_per_minute=check_count(
            lim.get("requests_per_minute", lim.get("rpm")), "requests_per_minute"
        ),
        tokens_per_minute=check_count(lim.get("tokens_per_minute", lim.get("tpm")), "tokens_per_minute"),
        max_concurrent_requests=check_count(
            lim.get("max_concurrent_requests", lim.get("concurrent")), "max_concurrent_requests"
        ),
        budget_usd={
            w: check_usd(v, w) for w, v in budgets.items() if w in ("day", "month", "total") and v is not None
        },
    )


class LimitRules:
    """Resolves the scopes of a call from limits.yaml and the caller's key."""

    def __init__(self, doc: LimitsFile, *, run_ttl_s: float, agent_ttl_s: float) -> None:
        self.doc = doc
        self._run_ms = int(run_ttl_s * 1000)
        self._agent_ms = int(agent_ttl_s * 1000)
        self._optional = set(doc.scopes) | ({"model"} if doc.models else set())
        for team in doc.teams.values():
            self._optional |= set(team.scopes) | ({"model"} if team.models else set())
        self._combos = sorted(set(doc.combinations).union(*(t.combinations for t in doc.teams.values())))
        self._cache: dict[tuple[Any, ...], ScopeLimits] = {}
        self._templates: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        #: Per call shape (key, team, user, agent, run, model): its scopes, resolved once.
        self._shapes: dict[tuple[str | None, ...], tuple[tuple[ScopeSpec, ...], int, int]] = {}
        self._guards: dict[str, tuple[int | None, int | None, int | None]] = {}

    @classmethod
    def load(cls, path: Path, *, run_ttl_s: float = 7 * 86400, agent_ttl_s: float = 90 * 86400) -> LimitRules:
        raw = load_yaml(path, LimitsFileError) if path.exists() else None
        refuse_unknown(raw, LimitsFile, path, LimitsFileError)
        return cls(LimitsFile.model_validate(raw or {}), run_ttl_s=run_ttl_s, agent_ttl_s=agent_ttl_s)

    def limits_for(
        self, kind: str, team: str, *, model: str | None = None, principal: Principal | None = None
    ) -> ScopeLimits:
        """The configured limits of one scope (without runtime overrides)."""
        key = (kind, team, model, principal.key_id if principal and kind == "key" else None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        t = self.doc.teams.get(team)
        if "+" in kind:
            layers = [self.doc.combinations.get(kind), t.combinations.get(kind) if t else None]
        else:
            layers = [self.doc.scopes.get(kind)]  # type: ignore[call-overload]  # kind is a scope name the rules validated
            if kind == "model" and model is not None:
                layers.append(self.doc.models.get(model))
            if t is not None:
                layers.append(t.scopes.get(kind))  # type: ignore[call-overload]  # kind is a scope name the rules validated
                if kind == "model" and model is not None:
                    layers.append(t.models.get(model))
            if kind == "key" and principal is not None:
                layers.append(key_layer(principal))
        merged = _merge(layers)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = merged
        return merged

    def run_guards(self, team: str) -> RunGuards:
        base = self.doc.run_guards or RunGuards()
        t = self.doc.teams.get(team)
        if t is None or t.run_guards is None:
            return base
        return base.model_copy(update=t.run_guards.model_dump(exclude_none=True))

    def run_guard_limits(self, team: str) -> tuple[int | None, int | None, int | None]:
        """(max calls, max identical requests, max cost in nano-USD) per run of ``team``; cached."""
        hit = self._guards.get(team)
        if hit is None:
            g = self.run_guards(team)
            cost = None if g.max_cost_usd is None else usd_to_nano(g.max_cost_usd)
            if len(self._guards) > 10_000:
                self._guards.clear()
            hit = self._guards[team] = (g.max_calls, g.max_identical_requests, cost)
        return hit

    def _retention(self, kinds: tuple[str, ...]) -> int:
        if "run" in kinds:
            return self._run_ms
        if "agent" in kinds:
            return self._agent_ms
        return 0

    def _spec(self, kind: str, ident: str, team: str, model: str, principal: Principal) -> ScopeSpec:
        key = (
            kind,
            team,
            model if kind == "model" or "+" in kind else None,
            principal.key_id if kind == "key" else None,
        )
        tpl = self._templates.get(key)
        if tpl is None:
            lim = self.limits_for(kind, team, model=model, principal=principal)
            b = lim.budget_usd
            budgets = tuple(usd_to_nano(b[w]) if w in b else None for w in ("day", "month", "total"))
            tpl = (
                lim.requests_per_minute,
                lim.tokens_per_minute,
                budgets,
                self._retention(tuple(kind.split("+"))),
                lim.max_concurrent_requests,
            )
            if len(self._templates) > 10_000:
                self._templates.clear()
            self._templates[key] = tpl
        return ScopeSpec(kind, ident, *tpl)

    def scopes_for(self, call: Call, principal: Principal) -> tuple[tuple[ScopeSpec, ...], int, int]:
        """The call's scopes, and the indexes of its team and run scopes (-1: none).

        Resolved once per call shape: an agent's or a run's calls share one answer.
        """
        return self.scopes_of(principal, call.agent_id, call.run_id, call.model)

    def scopes_of(
        self, principal: Principal, agent_id: str | None, run_id: str | None, model: str = ""
    ) -> tuple[tuple[ScopeSpec, ...], int, int]:
        """``scopes_for`` by its parts: also for a priced action that is not a model call (an MCP
        tool call: no model, so only the key, team, user, agent and run scopes and their combinations)."""
        shape = (principal.key_id, principal.team, principal.user, agent_id, run_id, model)
        hit = self._shapes.get(shape)
        if hit is None:
            if len(self._shapes) > 10_000:
                self._shapes.clear()
            hit = self._shapes[shape] = self._resolve_scopes(principal, agent_id, run_id, model)
        return hit

    def _resolve_scopes(
        self, principal: Principal, agent_id: str | None, run_id: str | None, model: str
    ) -> tuple[tuple[ScopeSpec, ...], int, int]:
        team = principal.team
        idents: dict[str, str] = {"key": principal.key_id, "team": team}
        if principal.user:
            idents["user"] = principal.user
        if agent_id:
            idents["agent"] = agent_id
        if run_id:
            idents["run"] = run_id
        if model:
            idents["model"] = model
        specs = [
            self._spec(kind, idents[kind], team, model, principal)
            for kind in KINDS
            if kind in idents and (kind in ALWAYS or kind in self._optional)
        ]
        for combo in self._combos:
            parts = combo.split("+")
            if all(p in idents for p in parts):
                specs.append(
                    self._spec(combo, scope_ident(*(idents[p] for p in parts)), team, model, principal)
                )
        run_index = next((i for i, s in enumerate(specs) if s.kind == "run"), -1)
        return tuple(specs), 1, run_index
