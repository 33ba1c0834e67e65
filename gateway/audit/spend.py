"""Settled spend from the audit log, grouped by team, key, agent, model or run.

``GET /admin/spend/report`` (served by the limits API, next to ``/admin/spend``) answers
what calls cost once settled, as the audit log recorded them, and what the response cache
saved (``cache``: hits, lookups, hit ratio, saved USD, from each event's ``cache`` section);
``cost_usd`` includes the priced MCP tool calls (``mcp``: how many and what they cost): unlike ``/admin/spend`` (the
live counters of the limit store) it covers any time window the log still holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.audit import query
from gateway.audit.schema import NANO
from gateway.audit.store.base import AuditStore

_SPEND_PARAMS = frozenset({"group_by", "window", "from", "to", "team", "key", "agent", "run", "model"})


async def spend_report(store: AuditStore, params: Mapping[str, str]) -> dict[str, Any]:
    """The report of ``GET /admin/spend/report`` for these query parameters (``BadRequest`` on a bad one)."""
    query.check_params(params, _SPEND_PARAMS)
    group_by = query.parse_group_by(params)
    since, until = query.parse_window(params)
    scoped = {k: v for k, v in params.items() if k in ("team", "key", "agent", "run", "model")}
    filters = query.parse_filters(scoped)
    filters.since, filters.until = since, until
    rows = await store.spend(group_by, filters)
    out = [
        {
            "group": r["group"],
            "calls": r["calls"],
            "input_tokens": r["input_tokens"],
            "output_tokens": r["output_tokens"],
            "cost_usd": r["cost_nusd"] / NANO,
            "cache": _cache(r.get("cache_hits", 0), r.get("cache_lookups", 0), r.get("saved_nusd", 0)),
            "mcp": _mcp(r.get("tool_calls", 0), r.get("tool_cost_nusd", 0)),
        }
        for r in rows
    ]
    total_nusd = sum(r["cost_nusd"] for r in rows)
    hits = sum(r.get("cache_hits", 0) for r in rows)
    lookups = sum(r.get("cache_lookups", 0) for r in rows)
    saved = sum(r.get("saved_nusd", 0) for r in rows)
    return {
        "object": "spend_report",
        "group_by": group_by,
        "from": since,
        "to": until,
        "data": out,
        "total": {
            "calls": sum(r["calls"] for r in rows),
            "input_tokens": sum(r["input_tokens"] for r in rows),
            "output_tokens": sum(r["output_tokens"] for r in rows),
            "cost_usd": total_nusd / NANO,
            "cache": _cache(hits, lookups, saved),
            "mcp": _mcp(
                sum(r.get("tool_calls", 0) for r in rows), sum(r.get("tool_cost_nusd", 0) for r in rows)
            ),
        },
    }


def _mcp(calls: int, cost_nusd: int) -> dict[str, Any]:
    """The priced MCP tool calls of a group (docs/mcp.md "Limits and cost"): how many were
    charged and what they cost (already part of ``cost_usd``)."""
    return {"tool_calls": calls, "cost_usd": cost_nusd / NANO}


def _cache(hits: int, lookups: int, saved_nusd: int) -> dict[str, Any]:
    """The response cache's share of a group: hits, lookups (hits and misses), hit ratio and
    what the hits saved (what their answers cost when they were stored)."""
    return {
        "hits": hits,
        "lookups": lookups,
        "hit_ratio": hits / lookups if lookups else None,
        "saved_usd": saved_nusd / NANO,
    }
