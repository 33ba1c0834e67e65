"""What the run page shows of each step, computed once in Python (the template only prints).

``shape`` gives every field the template reads (``None`` when absent, so the template
subscripts instead of calling ``.get``); ``facts`` renders the step's facts list (model,
tokens, cost, latency per stage, upstream attempts and deployments tried, error, redaction)
straight to escaped HTML: printed by Jinja it was ~60 lookups, tests and escapes per step, most
of a 200-call run page's CPU. Every value goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape


def _stages(step: dict[str, Any]) -> list[tuple[str, float]]:
    stages = (step.get("latency_ms") or {}).get("stages") or {}
    return [(str(k), float(v)) for k, v in stages.items() if isinstance(v, int | float)]


def _tools(step: dict[str, Any]) -> list[dict[str, Any]]:
    """Tool calls requested, with their (redacted) arguments when a capture holds them."""
    captured: dict[str, Any] = {}
    content = (step.get("capture") or {}).get("content") or {}
    for tc in (content.get("answer") or {}).get("tool_calls") or ():
        if isinstance(tc, dict):
            captured[str(tc.get("id", ""))] = tc.get("arguments")
    return [
        {"id": tc.get("id"), "name": tc.get("name"), "arguments": captured.get(str(tc.get("id", "")))}
        for tc in step.get("tool_calls") or ()
        if isinstance(tc, dict)
    ]


_STEP = (
    "id",
    "time",
    "kind",
    "agent_id",
    "endpoint",
    "stream",
    "decision",
    "status",
    "usage",
    "redaction",
    "data",
)
NESTED = {
    "model": ("requested", "used", "routed", "deployment"),
    "cost": ("settled_usd", "reserved_usd", "basis"),
    "latency_ms": ("total",),
    "upstream": ("attempts", "retries"),
    "error": ("type", "code", "status"),
    "approval": ("id", "phase", "status", "reviewer", "reasons", "comment"),
    "capture": ("refused", "pruned", "intact", "hash", "content"),
}
_DECISION = ("stage", "phase", "outcome", "revision", "reasons")
_WHY = ("engine", "effects", "input", "error")


def with_keys(value: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """``value`` with every key the template reads (None when absent): the template then
    subscripts instead of calling ``.get`` (a Jinja call per field was most of a 200-call
    page's render time)."""
    if not isinstance(value, dict):
        return None
    return {**{k: None for k in keys}, **value}


def decision_view(d: dict[str, Any], index: int) -> dict[str, Any]:
    out = with_keys(d, _DECISION) or {}
    out["why"] = with_keys(d.get("why"), _WHY)
    out["index"] = index  # its place in the event's decisions: the why panel's address
    return out


def shape(step: dict[str, Any]) -> dict[str, Any]:
    """What the template needs of one step, computed once (the template only prints)."""
    upstream = step.get("upstream") or {}
    tried = [t for t in upstream.get("tried") or () if isinstance(t, dict)]
    out: dict[str, Any] = {k: step.get(k) for k in _STEP}
    out.update({k: with_keys(step.get(k), keys) for k, keys in NESTED.items()})
    if out["decision"] is None:
        out["decision"] = "none"
    out["decisions"] = [
        decision_view(d, i) for i, d in enumerate(step.get("decisions") or ()) if isinstance(d, dict)
    ]
    out["stage_ms"] = _stages(step)
    out["tools"] = _tools(step)
    out["tried"] = [
        {"deployment": t.get("deployment"), "status": t.get("status"), "error": t.get("error")} for t in tried
    ]
    out["fallback"] = len({t.get("deployment") for t in tried}) > 1
    if out["kind"] == "call":
        out["facts"] = facts(out)
    return out


def _or_dash(value: Any) -> Any:
    return "—" if value is None or value == "" else value


_NUMBERS = (int, float)


def _escaped(value: Any) -> str:
    """``value`` as HTML text: numbers as they print (nothing to escape), the rest escaped."""
    return str(value) if type(value) in _NUMBERS else escape(value)


def facts(out: dict[str, Any]) -> Markup:
    """The ``<dt>``/``<dd>`` pairs of one call step (``out``: ``shape``'s fields)."""
    e = _escaped
    model = out["model"] or {"requested": None, "used": None, "routed": None, "deployment": None}
    html = [
        f"<dt>Model</dt><dd>requested <code>{e(_or_dash(model['requested']))}</code>, "
        f"used <code>{e(_or_dash(model['used']))}</code>"
    ]
    if model["routed"]:
        html.append(f", routed by policy to <code>{e(model['routed'])}</code>")
    if model["deployment"]:
        html.append(f" on <code>{e(model['deployment'])}</code>")
    html.append("</dd>")
    usage = out["usage"]
    if usage:
        html.append(
            f"<dt>Tokens</dt><dd>{e(usage.get('input_tokens'))} in / {e(usage.get('output_tokens'))} out</dd>"
        )
    cost = out["cost"]
    if cost:
        settled = "—" if cost["settled_usd"] is None else cost["settled_usd"]
        reserved = "—" if cost["reserved_usd"] is None else cost["reserved_usd"]
        basis = f" ({e(cost['basis'])})" if cost["basis"] else ""
        html.append(f"<dt>Cost (USD)</dt><dd>settled {e(settled)}, reserved {e(reserved)}{basis}</dd>")
    latency = out["latency_ms"]
    html.append(f"<dt>Latency</dt><dd>{e(latency['total']) if latency else '—'} ms")
    if out["stage_ms"]:
        html.append(": " + ", ".join(f"{e(name)} {ms:.2f} ms" for name, ms in out["stage_ms"]))
    html.append("</dd>")
    upstream = out["upstream"]
    if upstream:
        retries = upstream["retries"]
        html.append(
            f"<dt>Upstream</dt><dd>{e(upstream['attempts'])} attempt(s), {e(retries)} "
            f"retr{'y' if retries == 1 else 'ies'}{', fell back to another deployment' if out['fallback'] else ''}"
        )
        if out["tried"]:
            items = "".join(
                f"<li><code>{e(t['deployment'])}</code>: {e(_or_dash(t['status']))}"
                + (f" ({e(t['error'])})" if t["error"] else "")
                + "</li>"
                for t in out["tried"]
            )
            html.append(f"<ul>{items}</ul>")
        html.append("</dd>")
    error = out["error"]
    if error:
        html.append(f"<dt>Error</dt><dd>{e(error['type'])} / {e(error['code'])} ({e(error['status'])})</dd>")
    redaction = out["redaction"]
    entities = redaction.get("entities") if isinstance(redaction, dict) else None
    if isinstance(entities, dict) and entities:
        listed = ", ".join(
            f"{e(n)} {e(k)}" for k, n in sorted(entities.items(), key=lambda kv: str(kv[0]).lower())
        )
        html.append(f"<dt>Redacted</dt><dd>{listed}</dd>")
    return Markup("".join(html))
