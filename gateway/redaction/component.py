"""The redaction component: ``redact_in`` and ``redact_out``, over one Presidio engine.

Builds the Presidio engine once per process (offline, warmed up: the first analysis would
otherwise cost ~0.2 s on a caller's request) and registers ``redact_in`` and ``redact_out``.
The ``Redactor`` it builds is ``Redaction.redactor``; the policy component is given this
component and calls ``redactor.reapply(call)`` after a decision that sets
``call.policy_redact``. Presidio and spaCy are imported only at start.

``policies/redaction.yaml`` (optional) holds data that belongs with the policies, such as
deny-lists of internal code names; values set in the settings (wardgate.yaml, env) win, and
deny-lists are merged by name.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.redaction.config import PII_TYPES, SECRET_TYPES, RedactionSettings
from gateway.registry import BaseComponent, section
from gateway.yamlfile import read_mapping

if TYPE_CHECKING:
    from gateway.context import AppContext
    from gateway.redaction.redactor import Redactor

log = logging.getLogger("wardgate.redaction")

POLICY_FILE = "redaction.yaml"


class RedactionFileError(ValueError):
    """redaction.yaml is malformed; the message names the problem."""


def load_settings(base: RedactionSettings, policies_dir: Path) -> RedactionSettings:
    path = policies_dir / POLICY_FILE
    doc = read_mapping(path, RedactionSettings, RedactionFileError)
    if doc is None:
        return base
    data: dict[str, Any] = {**base.model_dump(), **doc}
    data.update(base.model_dump(include=base.model_fields_set - {"deny_lists"}))
    data["deny_lists"] = {**(doc.get("deny_lists") or {}), **base.deny_lists}
    if base.hash_salt is not None:
        data["hash_salt"] = base.hash_salt
    try:
        return RedactionSettings.model_validate(data)
    except ValueError as exc:
        raise RedactionFileError(f"{path}: {exc}") from exc


def build(settings: RedactionSettings) -> Redactor:
    """Engine + redactor, warmed up. Blocking (~0.1 s): call it off the event loop."""
    from gateway.redaction.engine import RedactionEngine
    from gateway.redaction.locations import warm_tables
    from gateway.redaction.redactor import Redactor

    engine = RedactionEngine(settings)
    seconds = engine.warm_up()
    warm_tables()  # the field tables' regexes, not on a caller's request
    log.info(
        "redaction ready: %d entity types, nlp=%s, phone regions %s, warm-up %.0f ms",
        len(engine.entities),
        settings.nlp.engine,
        ",".join(settings.phone_regions),
        seconds * 1000,
    )
    unlisted = [t for t in (*PII_TYPES, *SECRET_TYPES) if t not in settings.actions]
    if unlisted:
        # ``actions`` replaces the default list: an operator who copies a two-line example
        # (one type per direction) stops detecting every other type, secrets included.
        log.warning(
            "redaction.actions does not list %s: these are not detected at all. List each with "
            "an action (allow detects and counts without changing the text).",
            ", ".join(unlisted),
        )
    return Redactor(settings, engine)


class Redaction(BaseComponent):
    name = "redaction"
    settings_model = RedactionSettings

    def __init__(self) -> None:
        #: Set at start; ``None`` while redaction is off.
        self.redactor: Redactor | None = None

    async def start(self, ctx: AppContext) -> None:
        self.redactor = None
        settings = load_settings(
            section(ctx.settings, self.name, RedactionSettings), ctx.settings.policies_dir
        )
        if not settings.enabled:
            return
        # Imported only now: the stages import Presidio and spaCy (~2 s of CPU per process),
        # which a gateway with redaction off (MCP-only, audit-only, most test gateways) never uses.
        from gateway.observability.multiproc import follow
        from gateway.redaction.metrics import RedactionMetrics
        from gateway.redaction.stage import RedactInStage, RedactOutStage

        ctx.start_files.add(ctx.settings.policies_dir / POLICY_FILE)
        redactor = await asyncio.to_thread(build, settings)
        metrics = RedactionMetrics(ctx.registry, redactor.engine)
        if metrics.engine_series is not None:
            follow(ctx, metrics.engine_series.sync, "redaction")
        ctx.stages.append(RedactInStage(redactor, metrics))
        ctx.stages.append(RedactOutStage(redactor, metrics))
        self.redactor = redactor

        async def close() -> None:
            redactor.engine.close()

        ctx.closers.append(close)
