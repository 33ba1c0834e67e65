"""Query-string parsing for the audit API: strict types, opaque cursors, time windows.

Every parameter is checked; a wrong type or an unknown name is a 400 naming the parameter
(an auditor who typed ``tema=`` should not silently get every team's events).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from gateway.audit.store.base import SPEND_GROUPS, Filters
from gateway.errors import BadRequest

FILTER_PARAMS = frozenset(
    {"from", "to", "team", "key", "agent", "run", "decision", "model", "kind", "request_id"}
)
DECISIONS = frozenset({"allow", "deny", "pending", "error"})
_WINDOW = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MAX_TEXT = 256


def check_params(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(
            f"Unknown query parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}.",
            param=unknown[0],
        )


def parse_time(value: str, name: str) -> float:
    """Epoch seconds or ISO 8601 (``2025-01-31T12:00:00Z``; a naive time is taken as UTC)."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise BadRequest(f"{name!r} must be a finite time, got {value!r}.", param=name)
        return number
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name!r} must be epoch seconds or an ISO 8601 time, got {value!r}.", param=name
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name!r} must be an integer, got {raw!r}.", param=name) from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name!r} must be between {lo} and {hi}.", param=name)
    return value


def text(value: str, name: str) -> str:
    """A plain identifier-ish value: 1..256 characters, no NUL (PostgreSQL rejects it in text)."""
    if not value or len(value) > _MAX_TEXT or "\x00" in value:
        raise BadRequest(f"{name!r} must be 1..{_MAX_TEXT} characters without NUL.", param=name)
    return value


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return None if value is None else text(value, name)


def parse_filters(params: Mapping[str, str]) -> Filters:
    decision = _text(params, "decision")
    if decision is not None and decision not in DECISIONS:
        raise BadRequest(f"'decision' must be one of {', '.join(sorted(DECISIONS))}.", param="decision")
    f = Filters(
        since=parse_time(params["from"], "from") if "from" in params else None,
        until=parse_time(params["to"], "to") if "to" in params else None,
        team=_text(params, "team"),
        key_id=_text(params, "key"),
        agent_id=_text(params, "agent"),
        run_id=_text(params, "run"),
        decision=decision,
        model=_text(params, "model"),
        kind=_text(params, "kind"),
        request_id=_text(params, "request_id"),
    )
    if f.since is not None and f.until is not None and f.until < f.since:
        raise BadRequest("'to' is before 'from'.", param="to")
    return f


def parse_order(params: Mapping[str, str], default: str = "desc") -> bool:
    order = params.get("order", default)
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be 'asc' or 'desc'.", param="order")
    return order == "desc"


def encode_cursor(ts: float, event_id: str, desc: bool) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts, event_id, desc])).decode().rstrip("=")


def decode_cursor(cursor: str | None, desc: bool) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, event_id, was_desc = orjson.loads(raw)
        ok = isinstance(ts, int | float) and isinstance(event_id, str) and was_desc == desc
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        ok = False
    if not ok:
        raise BadRequest("'cursor' is not a cursor from this listing (or the order changed).", param="cursor")
    return float(ts), event_id


def parse_window(params: Mapping[str, str], now: float | None = None) -> tuple[float | None, float | None]:
    """``window=30m|24h|7d|4w|all|today|month`` or explicit ``from``/``to``; default 30 days."""
    now = time.time() if now is None else now
    window = params.get("window")
    if window is not None and ("from" in params or "to" in params):
        raise BadRequest("Give either 'window' or 'from'/'to', not both.", param="window")
    if window is None:
        if "from" in params or "to" in params:
            since = parse_time(params["from"], "from") if "from" in params else None
            until = parse_time(params["to"], "to") if "to" in params else None
            return since, until
        window = "30d"
    if window == "all":
        return None, None
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "today":
        return today.timestamp(), None
    if window == "month":
        return today.replace(day=1).timestamp(), None
    m = _WINDOW.match(window)
    if m is None:
        raise BadRequest("'window' must look like 30m, 24h, 7d, 4w, or be all|today|month.", param="window")
    return now - float(m.group(1)) * _UNIT_S[m.group(2)], None


def parse_group_by(params: Mapping[str, str]) -> str:
    group_by = params.get("group_by", "team")
    if group_by not in SPEND_GROUPS:
        raise BadRequest(f"'group_by' must be one of {', '.join(SPEND_GROUPS)}.", param="group_by")
    return group_by
