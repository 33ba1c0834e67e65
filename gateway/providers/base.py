"""The provider seam: one method, ``send``.

Like httpx's transport seam, everything behind ``send`` is the provider's business (aiohttp
pools, a plugin such as the scripted mock, a test double); everything in front of it (retries, fallback,
circuit breaking) is the router's. A provider raises the ``UpstreamError`` family for
transport failures and provider errors, and returns a ``ModelResponse`` otherwise: a parsed
JSON body, or ``events`` (an async iterator of SSE events) for a stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.call import Endpoint, ModelResponse


@dataclass(slots=True)
class UpstreamRequest:
    endpoint: Endpoint
    body: dict[str, Any]
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 60.0
    #: The call's id, for the log lines a provider writes about this request.
    request_id: str = ""
    #: One entry per attempt the router made (filled in by the router, read by the audit).
    attempts: list[Attempt] = field(default_factory=list)
    #: A stream's reads may come as ``sse.RawRead`` (``Call.raw_reads``).
    raw_reads: bool = False


@dataclass(slots=True)
class Attempt:
    """One try of one deployment: what it answered (None: no answer) and how it ended."""

    deployment: str
    status: int | None = None
    error: str | None = None  # the error code, None when the attempt succeeded


class Provider(Protocol):
    name: str

    async def send(self, request: UpstreamRequest) -> ModelResponse:
        """Send one prepared request; return the answer or raise an ``UpstreamError``."""
        ...

    async def close(self) -> None:
        """Release pooled connections (called once, in the app's lifespan shutdown)."""
        ...
