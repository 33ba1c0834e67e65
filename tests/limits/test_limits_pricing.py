"""Prices: genai-prices offline, pricing.yaml overrides, tiers, unknown models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from gateway.limits.pricing import FREE, ModelPricing, PriceBook, PricingFile, UnknownPrice

REPO = Path(__file__).resolve().parents[2]


def test_genai_prices_lookups_never_touch_the_network() -> None:
    """Every socket connect and DNS lookup raises in this interpreter; prices still resolve."""
    script = textwrap.dedent(
        """
        import socket, threading
        def refuse(*a, **k):
            raise RuntimeError("network access attempted")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from pathlib import Path
        from gateway.limits.pricing import PriceBook
        book = PriceBook.load(Path("policies/pricing.yaml"))
        for name in ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "text-embedding-3-small", "mock-chat"):
            assert book.lookup(name) is not None, name
        assert book.lookup("no-such-model-anywhere") is None
        names = [t.name for t in threading.enumerate()]
        assert not any("genai_prices" in n for n in names), names
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o3"])
@pytest.mark.parametrize("usage", [(1000, 500, 0), (250_000, 1000, 0), (12_345, 678, 2000)])
def test_costs_match_genai_prices_own_calculation(model: str, usage: tuple[int, int, int]) -> None:
    inp, out, cached = usage
    ours = PriceBook().lookup(model)
    assert ours is not None
    theirs = calc_price(
        Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached), model
    ).total_price
    assert abs(Decimal(ours.cost_nano(inp, out, cached)) / Decimal(10**9) - theirs) < Decimal("1e-9")


def test_pricing_yaml_overrides_genai_prices_and_adds_models() -> None:
    book = PriceBook(
        PricingFile(
            models={
                "gpt-4o": ModelPricing(input_per_mtok=1, output_per_mtok=2),
                "house-model": ModelPricing(input_per_mtok=0.5),
            }
        )
    )
    assert book.lookup("gpt-4o").cost_nano(1_000_000, 1_000_000) == 3 * 10**9
    assert book.lookup("house-model").cost_nano(2_000_000, 0) == 10**9


def test_aliases_and_free_globs() -> None:
    book = PriceBook(PricingFile(aliases={"fast": "gpt-4o-mini"}, free=["ollama/*"]))
    assert book.lookup("fast") == book.lookup("gpt-4o-mini")
    assert book.for_request("ollama/llama3") == [FREE]


def test_tiered_price_applies_the_tier_to_all_tokens_above_the_threshold() -> None:
    p = ModelPricing(
        input_per_mtok=1,
        output_per_mtok=2,
        input_tiers=[{"above": 1000, "per_mtok": 10}],
        output_tiers=[{"above": 1000, "per_mtok": 20}],
    ).to_price()
    assert p.cost_nano(1000, 100) == 1000 * 1000 + 100 * 2000
    assert p.cost_nano(1001, 100) == 1001 * 10_000 + 100 * 20_000


def test_costs_round_up_to_the_nano_dollar() -> None:
    p = ModelPricing(input_per_mtok=0.0001).to_price()  # 0.1 nano-USD per token
    assert p.cost_nano(1, 0) == 1
    assert p.cost_nano(20, 0) == 2
    assert p.cost_nano(25, 0) == 3


def test_unknown_model_is_refused_with_a_clear_403() -> None:
    with pytest.raises(UnknownPrice) as err:
        PriceBook().for_request("my-private-model", ("my-private-model-v2",))
    assert err.value.status == 403 and err.value.code == "model_price_unknown"
    assert "pricing.yaml" in err.value.message


def test_unknown_model_is_free_when_configured() -> None:
    book = PriceBook(unknown="free")
    assert book.for_request("my-private-model") == [FREE]
    assert book.for_usage("my-private-model", None) == FREE


def test_estimate_takes_every_deployment_price_into_account() -> None:
    prices = PriceBook().for_request("my-alias", ("gpt-4o-mini", "gpt-4o"))
    assert {p.input[0] for p in prices} == {150_000, 2_500_000}


def test_shipped_pricing_file_prices_the_mock_models() -> None:
    book = PriceBook.load(REPO / "policies" / "pricing.yaml")
    assert book.lookup("mock-chat").cost_nano(1000, 1000) > 0
    assert book.lookup("mock-embedding").cost_nano(1000, 0) > 0
