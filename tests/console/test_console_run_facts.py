"""The run page's per-step facts, rendered in Python (gateway/console/pages/runs_view.py):
every value escaped, the same wording the template had."""

from __future__ import annotations

from gateway.console.pages.runs_view import shape

X = "<script>alert(1)</script>"


def test_every_fact_is_escaped_and_worded_as_before() -> None:
    step = {
        "id": "ev_1",
        "kind": "call",
        "model": {"requested": X, "used": "gpt-4o", "routed": X, "deployment": X},
        "usage": {"input_tokens": 400, "output_tokens": 60},
        "cost": {"settled_usd": 0.016065, "reserved_usd": None, "basis": X},
        "latency_ms": {"total": 120.0, "stages": {X: 0.5, "forward": 110.0}},
        "upstream": {
            "attempts": 2,
            "retries": 1,
            "tried": [{"deployment": X, "status": 500, "error": X}, {"deployment": "b", "status": 200}],
        },
        "error": {"type": X, "code": "c", "status": 502},
        "redaction": {"entities": {"EMAIL_ADDRESS": 2, X: 1}},
    }
    html = str(shape(step)["facts"])
    assert "<script>" not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 9
    assert "requested <code>&lt;script&gt;" in html and "used <code>gpt-4o</code>" in html
    assert "<dt>Tokens</dt><dd>400 in / 60 out</dd>" in html
    assert "settled 0.016065, reserved —" in html
    assert "120.0 ms: &lt;script&gt;alert(1)&lt;/script&gt; 0.50 ms, forward 110.00 ms" in html
    assert "2 attempt(s), 1 retry, fell back to another deployment" in html
    assert "<dt>Redacted</dt><dd>1 &lt;script&gt;alert(1)&lt;/script&gt;, 2 EMAIL_ADDRESS</dd>" in html
    assert "facts" not in shape({"kind": "admin", "data": {"x": 1}})
