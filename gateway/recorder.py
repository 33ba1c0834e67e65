"""What other areas need of the audit log: ``await record(kind, payload)``, and nothing else.

Approvals, policy reloads, the keys and limits admin APIs record their changes through this
protocol; the audit component's ``AuditService`` implements it. The composition root
(``gateway/components.py``) hands it over, so no area imports the audit package, and a test
can pass a list-backed stand-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class AuditRecorder(Protocol):
    async def record(self, kind: str, payload: dict[str, Any]) -> Any:
        """Return once the event is durable; raise ``AuditUnavailable`` when it cannot be made so."""
        ...


#: The recorder while the audit log is on, ``None`` while it is off (looked up per use: the
#: audit component builds its service when the app starts, after routes and services exist).
RecorderProvider = Callable[[], AuditRecorder | None]
