"""Wiring the approval queue into the app: ``setup(ctx)``.

Builds the store (Redis or memory) from ``ctx.settings.approvals`` merged with
``policies/approvals.yaml``, starts the service (pub/sub listener, webhook workers, expiry
sweep), and registers the two stages, a closer, a readiness check and
``ctx.services["approvals"]``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from gateway.approvals.config import ApprovalSettings
from gateway.approvals.crypto import AnswerSealer
from gateway.approvals.memory import MemoryApprovalStore
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.redis_store import RedisApprovalStore
from gateway.approvals.service import ApprovalService
from gateway.approvals.stage import ApprovalRequestStage, ApprovalResponseStage
from gateway.approvals.store import ApprovalStore
from gateway.approvals.webhooks import WebhookSender
from gateway.context import AppContext
from gateway.yamlfile import read_mapping

log = logging.getLogger("wardgate.approvals")

_MERGED = ("groups", "tools")


class ApprovalsFileError(ValueError):
    """approvals.yaml is malformed; the message names the problem."""


def load_settings(base: ApprovalSettings, policies_dir: Path) -> ApprovalSettings:
    """``base`` with ``approvals.yaml`` merged in.

    Values set explicitly in the settings (wardgate.yaml, env) win over the file; groups and
    tools are merged by name, the settings' entries winning.
    """
    path = policies_dir / base.policy_file
    doc = read_mapping(path, ApprovalSettings.model_fields, ApprovalsFileError)
    if doc is None:
        return base
    defaults = base.model_dump()
    data: dict[str, Any] = {**defaults, **{k: v for k, v in doc.items() if k not in _MERGED}}
    data.update(base.model_dump(include=base.model_fields_set - set(_MERGED)))
    for name in _MERGED:
        data[name] = {**(doc.get(name) or {}), **defaults[name]}
    try:
        return ApprovalSettings.model_validate(data)
    except ValueError as exc:
        raise ApprovalsFileError(f"{path}: {exc}") from exc


def build_store(settings: ApprovalSettings) -> ApprovalStore:
    if settings.backend == "redis":
        return RedisApprovalStore.from_url(
            settings.redis_url, settings.key_prefix, settings.retention_s, settings.redis_max_connections
        )
    return MemoryApprovalStore()


def build_service(settings: ApprovalSettings, ctx: AppContext) -> ApprovalService:
    if settings.backend == "redis" and not os.environ.get(settings.answer_key_env):
        log.warning(
            "approvals on Redis without %s: held answers are sealed with a key in %s, which other "
            "replicas do not have; set the same key on every replica",
            settings.answer_key_env,
            ctx.settings.data_dir,
        )
    metrics = ApprovalMetrics(ctx.registry)
    hooks = {name: group.webhook for name, group in settings.groups.items() if group.webhook is not None}
    return ApprovalService(
        settings,
        build_store(settings),
        AnswerSealer.from_env_or_dir(settings.answer_key_env, ctx.settings.data_dir),
        metrics,
        WebhookSender(hooks, metrics, settings.webhook_queue_size),
        ctx.services,
    )


async def setup(ctx: AppContext) -> None:
    settings = load_settings(ctx.settings.approvals, ctx.settings.policies_dir)
    if not settings.enabled:
        return
    service = build_service(settings, ctx)
    await service.start()
    ctx.closers.append(service.close)
    ctx.ready_checks["approvals"] = service.store.ping
    ctx.services["approvals"] = service
    ctx.drain.on_begin(service.release_holds)
    ctx.stages.append(ApprovalRequestStage(service))
    ctx.stages.append(ApprovalResponseStage(service))
