"""The composition root: the gateway's components, written once, each given what it uses.

``compose()`` is the one list. Each component receives in its constructor the components it
works with, so who uses whom is read here and nowhere else (no lookup by name at run time);
the list is also the order they start in, which the constructors already force: a component
can only be given one built before it. Why this order:

- ``observability`` first: the audit stage feeds its metrics and tracer;
- ``audit`` before everything that records into it (keys and limits admin changes, approval
  decisions, policy revisions);
- ``keys``, ``limits``, ``redaction``, ``approvals``, ``policy``: the guards; policy is given
  redaction (a decision's ``redact`` re-redacts the request) and approvals (whether a
  ``require_approval`` has a stage to act on it);
- ``mcp``: the gateway in front of MCP servers, after the guards it applies to tool calls
  (limits, redaction, approvals, policy) and the audit log it records into;
- ``console``: the web UI over approvals, audit, limits and policy (no stage of its own);
- ``cache``: the response cache (records purges in the audit log);
- ``providers`` last: it adds ``stream_trust`` when a stage registered before it reads streams.

The order a call goes through the stages is not this one: it is ``STAGE_ORDER`` in
``gateway/registry.py``. The settings sections (``gateway/settings.py``), the routes and
``/openapi.json`` (``gateway/app.py``) and the ``wardgate`` sub-commands (``gateway/cli.py``)
are all read from this list. Building it imports no heavy module: each component imports
what it builds when it starts.
"""

from __future__ import annotations

from gateway.approvals.component import Approvals
from gateway.audit.component import Audit
from gateway.cache.component import Cache
from gateway.console.component import Console
from gateway.keys.component import Keys
from gateway.limits.component import Limits
from gateway.mcp.component import Mcp
from gateway.observability.component import Observability
from gateway.policy.component import Policy
from gateway.providers.component import Providers
from gateway.redaction.component import Redaction
from gateway.registry import Component


def compose() -> list[Component]:
    """Fresh components of one app, in the order they start."""
    observability = Observability()
    audit = Audit(observability)
    keys = Keys(audit)
    limits = Limits(audit)
    redaction = Redaction()
    approvals = Approvals(audit)
    policy = Policy(audit, redaction, approvals)
    mcp = Mcp(observability, audit, limits, redaction, approvals, policy)
    console = Console(audit, approvals, limits, policy, keys)
    cache = Cache(audit)
    providers = Providers()
    return [observability, audit, keys, limits, redaction, approvals, policy, mcp, console, cache, providers]
