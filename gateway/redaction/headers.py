"""The client's headers the gateway passes to the provider, as texts the request side reads.

``providers/stage.py`` forwards ``traceparent``, ``tracestate`` and ``openai-beta`` from the
client; a value in one leaves the gateway as the body does (``tracestate: k=jane@example.com``
reached the provider as written), so each is scanned like a body text and a value found in it
is replaced in the header (``block`` refuses the call). A W3C ``traceparent`` (hex ids only,
new on every call) is not analysed: it cannot hold a value, and a new text costs a fresh
analysis (~50 us); anything else in that header is scanned.
"""

from __future__ import annotations

import re

from gateway.redaction.locations import Slot

#: The client headers ``providers.stage.ForwardStage`` passes upstream (a test keeps them equal).
FORWARDED = ("traceparent", "tracestate", "openai-beta")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def header_slots(headers: dict[str, str]) -> list[Slot]:
    """The forwarded headers a request carries, as slots (path ``headers.<name>``)."""
    slots = []
    for name in FORWARDED:
        value = headers.get(name)
        if value and not (name == "traceparent" and _TRACEPARENT.fullmatch(value)):
            slots.append(Slot(f"headers.{name}", headers, name))
    return slots
