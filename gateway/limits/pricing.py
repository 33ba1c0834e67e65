"""Prices: ``genai-prices`` (offline snapshot) with overrides and custom models from pricing.yaml.

``genai-prices`` ships its price data inside the package (``genai_prices.data``) and reads it
from there; it only touches the network through ``UpdatePrices`` (a background thread that
fetches a newer snapshot from GitHub) or its CLI's ``--update-prices``, neither of which the
gateway ever starts. ``tests/limits/test_limits_pricing.py`` proves a lookup with every socket
connect refused.

Prices are kept as integer pico-USD per token (1 $/MTok = 1,000,000 pico-USD/token), so a
cost is an exact integer product; it is rounded *up* to the stores' nano-USD. Tiered prices
follow genai-prices' cliff model: crossing a tier (by input tokens) prices all tokens at it.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import PermissionDenied
from gateway.yamlfile import load_yaml, refuse_unknown

_CACHE_TTL_S = 3600.0  # genai-prices has dated prices; re-resolve hourly
_CACHE_MAX = 4096

Rate = tuple[int, tuple[tuple[int, int], ...]]  # base pico/token, ((tier start, pico/token), ...)


def _pico(per_mtok: Decimal | float | int) -> int:
    return int((Decimal(str(per_mtok)) * 1_000_000).to_integral_value(rounding=ROUND_CEILING))


def _rate_at(rate: Rate, input_tokens: int) -> int:
    base, tiers = rate
    for start, pico in reversed(tiers):
        if input_tokens > start:
            return pico
    return base


class PricingFileError(ValueError):
    """pricing.yaml is not YAML or has a key no rule reads; the message names the file and the key."""


@dataclass(slots=True, frozen=True)
class Price:
    input: Rate
    output: Rate
    cached: Rate | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None
    source: str = "pricing.yaml"

    def cost_nano(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> int:
        """Cost in nano-USD, rounded up; ``cached_tokens`` are part of ``input_tokens``."""
        cached = min(max(cached_tokens, 0), input_tokens)
        rate_in = _rate_at(self.input, input_tokens)
        rate_cached = _rate_at(self.cached, input_tokens) if self.cached is not None else rate_in
        pico = (
            (input_tokens - cached) * rate_in
            + cached * rate_cached
            + output_tokens * _rate_at(self.output, input_tokens)
        )
        return -(-pico // 1000)


FREE = Price((0, ()), (0, ()), source="free")


class UnknownPrice(PermissionDenied):
    """403 ``model_price_unknown``: budgets cannot hold for a model whose cost is unknown."""

    code = "model_price_unknown"


class _Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    above: int = Field(ge=0)
    per_mtok: float = Field(ge=0)


class ModelPricing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    input_tiers: list[_Tier] = Field(default_factory=list)
    output_tiers: list[_Tier] = Field(default_factory=list)
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)

    def to_price(self) -> Price:
        def tiers(ts: list[_Tier]) -> tuple[tuple[int, int], ...]:
            return tuple(sorted((t.above, _pico(t.per_mtok)) for t in ts))

        cached = None
        if self.cached_input_per_mtok is not None:
            cached = (_pico(self.cached_input_per_mtok), ())
        return Price(
            (_pico(self.input_per_mtok), tiers(self.input_tiers)),
            (_pico(self.output_per_mtok), tiers(self.output_tiers)),
            cached,
            self.context_window,
            self.max_output_tokens,
        )


class PricingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: USD per million tokens for models genai-prices lacks, or to override it.
    models: dict[str, ModelPricing] = Field(default_factory=dict)
    #: Price a gateway model name as another model (e.g. ``fast: gpt-4o-mini``).
    aliases: dict[str, str] = Field(default_factory=dict)
    #: Glob patterns of models that cost nothing (self-hosted).
    free: list[str] = Field(default_factory=list)
    #: USD per call of an MCP tool (gateway/mcp), by ``server/tool`` glob (``payments/*``);
    #: the first matching pattern, in file order, prices the call.
    mcp_tools: dict[str, float] = Field(default_factory=dict)


def _genai_rate(value: Any) -> Rate | None:
    if value is None:
        return None
    base = getattr(value, "base", None)
    if base is not None:  # TieredPrices
        return _pico(base), tuple(sorted((int(t.start), _pico(t.price)) for t in value.tiers))
    return _pico(value), ()


def _from_genai(name: str) -> Price | None:
    """Look ``name`` up in genai-prices' bundled snapshot (never the network; see module doc)."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    try:
        _provider, model = snapshot.find_provider_model(name, None, None, None)
    except LookupError:
        # Some providers' names do not match their models' (text-embedding-3-small is not
        # "recognisably OpenAI"): ask each provider, OpenAI first, as its catalog says.
        providers = sorted(snapshot.providers, key=lambda p: p.id != "openai")
        found = next(
            (m for p in providers if (m := p.find_model(name.lower(), all_providers=providers))), None
        )
        if found is None:
            return None
        model = found
    prices = model.get_prices(datetime.now(tz=UTC))
    rate_in = _genai_rate(getattr(prices, "input_mtok", None))
    rate_out = _genai_rate(getattr(prices, "output_mtok", None))
    if rate_in is None and rate_out is None:
        return None
    return Price(
        rate_in or (0, ()),
        rate_out or (0, ()),
        _genai_rate(getattr(prices, "cache_read_mtok", None)),
        getattr(model, "context_window", None),
        source="genai-prices",
    )


class PriceBook:
    """Resolves a model name to a ``Price``: pricing.yaml, then aliases, then genai-prices."""

    def __init__(self, pricing: PricingFile | None = None, *, unknown: str = "deny") -> None:
        self._file = pricing or PricingFile()
        self._overrides = {name: m.to_price() for name, m in self._file.models.items()}
        self._unknown_free = unknown == "free"
        self._cache: dict[str, tuple[Price | None, float]] = {}

    @classmethod
    def load(cls, path: Path, *, unknown: str = "deny") -> PriceBook:
        doc = load_yaml(path, PricingFileError) if path.exists() else None
        refuse_unknown(doc, PricingFile, path, PricingFileError)
        return cls(PricingFile.model_validate(doc or {}), unknown=unknown)

    def tool_call_usd(self, server: str, tool: str) -> float | None:
        """What one call of an MCP tool costs (``mcp_tools``), or None when it is not priced."""
        name = f"{server}/{tool}"
        for pattern, usd in self._file.mcp_tools.items():
            if fnmatch.fnmatchcase(name, pattern):
                return usd
        return None

    def lookup(self, model: str) -> Price | None:
        """The price of one model name, or None when nobody knows it."""
        hit = self._cache.get(model)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        price = self._resolve(model)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[model] = (price, now + _CACHE_TTL_S)
        return price

    def _resolve(self, model: str) -> Price | None:
        if model in self._overrides:
            return self._overrides[model]
        if any(fnmatch.fnmatchcase(model, p) for p in self._file.free):
            return FREE
        alias = self._file.aliases.get(model)
        if alias is not None and alias != model:
            return self.lookup(alias)
        return _from_genai(model)

    def for_request(self, model: str, upstream_models: tuple[str, ...] = ()) -> list[Price]:
        """Every price the call might be billed at (the model and each deployment's model).

        The estimate takes the most expensive one, since the router may fall back to any
        deployment. Raises ``UnknownPrice`` when none is known, unless unknown models are free.
        """
        prices: list[Price] = []
        own = self.lookup(model)
        if own is not None and (model in self._overrides or model in self._file.aliases):
            return [own]  # priced explicitly under the gateway's own name
        for name in (model, *upstream_models):
            p = own if name == model else self.lookup(name)
            if p is not None and p not in prices:
                prices.append(p)
        if prices:
            return prices
        if self._unknown_free:
            return [FREE]
        raise UnknownPrice(
            f"No price is known for model '{model}', so its cost cannot be held to a budget. "
            "Add it to policies/pricing.yaml (or set limits.unknown_price: free).",
            param="model",
        )

    def for_usage(self, model: str, upstream_model: str | None) -> Price | None:
        """The price the call was actually billed at: the gateway name if priced there, else upstream."""
        if model in self._overrides or model in self._file.aliases:
            return self.lookup(model)
        if upstream_model:
            p = self.lookup(upstream_model)
            if p is not None:
                return p
        p = self.lookup(model)
        if p is None and self._unknown_free:
            return FREE
        return p
