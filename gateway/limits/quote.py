"""A call's bounds before it is sent: input tokens, output tokens and cost, per model.

``reserve`` and ``reprice`` both need the call's cost bound for a model (the asked one, then
the routed one). The model's prices, context window and output maximum come from the price
book and the catalog; they are cached for a minute per model (prices can be dated, so a
reload is picked up without a restart), at most 1,024 models.
"""

from __future__ import annotations

import time

from gateway.call import Call
from gateway.limits.config import LimitsSettings
from gateway.limits.estimate import output_upper_bound, prompt_upper_bound
from gateway.limits.pricing import Price, PriceBook
from gateway.models import ModelCatalog

ModelInfo = tuple[list[Price], int | None, int | None]


class Quotes:
    def __init__(self, prices: PriceBook, models: ModelCatalog, settings: LimitsSettings) -> None:
        self.prices = prices
        self.models = models
        self.settings = settings
        self._cache: dict[str, tuple[float, ModelInfo]] = {}

    def model_info(self, model: str) -> ModelInfo:
        """(prices, context window, max output) of a model; cached for a minute (prices can be dated)."""
        now = time.monotonic()
        hit = self._cache.get(model)
        if hit is not None and hit[0] > now:
            return hit[1]
        entry = self.models.get(model)
        upstream = tuple(d.model for d in entry.deployments) if entry else ()
        prices: list[Price] = self.prices.for_request(model, upstream)
        windows = [p.context_window for p in prices]
        context = max(windows) if windows and all(windows) else None  # type: ignore[type-var]  # all() above excluded None
        model_max = entry.max_output_tokens if entry and entry.max_output_tokens else None
        if model_max is None:
            maxima = [p.max_output_tokens for p in prices]
            model_max = max(maxima) if maxima and all(maxima) else None  # type: ignore[type-var]  # all() above excluded None
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[model] = (now + 60.0, (prices, context, model_max))
        return prices, context, model_max

    def estimate(self, call: Call, model: str) -> tuple[int, int, int]:
        """(input token bound, output token bound, cost bound in nano-USD) of ``call`` sent to
        ``model``; may edit call.body (an enforced output bound). Raises ``UnknownPrice``."""
        prices, context, model_max = self.model_info(model)
        cfg = self.settings.estimate
        prompt = prompt_upper_bound(call, cfg, context)
        output = output_upper_bound(call, cfg, model_max)
        return prompt, output, max(p.cost_nano(prompt, output) for p in prices)
