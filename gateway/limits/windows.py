"""Budget windows (UTC day, UTC month, total) as integer ids, the same arithmetic as the Lua.

A day id is days since the Unix epoch; a month id is ``year * 12 + month - 1``. Both stores
derive them from the one clock of the operation (Redis ``TIME``, or the injected clock), so a
budget window rolls over at the same instant for every replica.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

DAY_MS = 86_400_000
WINDOWS = ("day", "month", "total")


def day_id(now_ms: int) -> int:
    return now_ms // DAY_MS


def month_id(day: int) -> int:
    """Month id of a day id (Howard Hinnant's civil-from-days, integer-only, as in the Lua)."""
    z = day + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y * 12 + (m - 1)


def window_bounds(window: str, now_ms: int) -> tuple[datetime | None, datetime | None]:
    """Start and end (exclusive) of the window containing ``now_ms``; ``total`` has neither."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, datetime.fromtimestamp(start.timestamp() + 86400, tz=UTC)
    if window == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        days = calendar.monthrange(start.year, start.month)[1]
        return start, datetime.fromtimestamp(start.timestamp() + days * 86400, tz=UTC)
    return None, None


def format_reset(ms: int) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``1s``, ``6m0s``, ``20ms``."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"
