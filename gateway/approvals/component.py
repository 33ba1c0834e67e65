"""The approvals component: the human approval queue, its two stages, API and CLI.

Builds the store (Redis or memory) from the ``approvals`` section merged with
``policies/approvals.yaml``, starts the service (pub/sub listener, webhook workers, expiry
sweep), and registers the two stages, a closer, a readiness check and a drain hook (holds
are handed back at SIGTERM). Every approval change is recorded in the audit log of the
``Audit`` component it is given. The policy component asks ``enabled`` to know whether a
``require_approval`` has a stage to act on it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.approvals.config import ApprovalSettings
from gateway.registry import BaseComponent, section
from gateway.yamlfile import read_mapping

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.approvals.service import ApprovalService
    from gateway.approvals.spec import ApprovalSpec
    from gateway.approvals.store import ApprovalStore
    from gateway.audit.component import Audit
    from gateway.callstate import ApprovalAsk
    from gateway.context import AppContext
    from gateway.recorder import RecorderProvider

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
    doc = read_mapping(path, ApprovalSettings, ApprovalsFileError)
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
    from gateway.approvals.memory import MemoryApprovalStore

    if settings.backend == "redis":
        from gateway.approvals.redis_store import RedisApprovalStore  # redis-py: not for memory

        return RedisApprovalStore.from_url(
            settings.redis_url,
            settings.key_prefix,
            settings.retention_s,
            settings.redis_max_connections,
            mode=settings.redis_mode,
        )
    return MemoryApprovalStore()


def build_service(
    settings: ApprovalSettings, ctx: AppContext, audit: RecorderProvider | None = None
) -> ApprovalService:
    from gateway.approvals.crypto import AnswerSealer
    from gateway.approvals.metrics import ApprovalMetrics
    from gateway.approvals.service import ApprovalService
    from gateway.approvals.webhooks import WebhookSender

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
        audit,
    )


class Approvals(BaseComponent):
    name = "approvals"
    settings_model = ApprovalSettings
    commands = (("approvals", "gateway.approvals.cli"),)

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        #: Set at start; ``None`` while the approval queue is off.
        self.service: ApprovalService | None = None

    @property
    def enabled(self) -> bool:
        """Whether an approval stage acts on ``call.approval_ask`` (known once started)."""
        return self.service is not None

    def spec(self, ask: ApprovalAsk, tool_calls: list[dict[str, Any]]) -> ApprovalSpec | None:
        """One approval's parameters for ``ask`` (the policy's items over approvals.yaml and the
        defaults), for a caller outside the pipeline (the MCP gateway); None while off."""
        from gateway.approvals.spec import resolve

        if self.service is None:
            return None
        return resolve(self.service.settings, ask, tool_calls)

    def routes(self) -> list[BaseRoute]:
        from gateway.approvals import api

        return api.routes(lambda: self.service)

    def openapi_paths(self) -> dict[str, dict[str, Any]]:
        from gateway.approvals import api

        return api.openapi_paths()

    async def start(self, ctx: AppContext) -> None:
        from gateway.approvals.stage import ApprovalRequestStage, ApprovalResponseStage

        self.service = None
        settings = load_settings(
            section(ctx.settings, self.name, ApprovalSettings), ctx.settings.policies_dir
        )
        if not settings.enabled:
            return
        ctx.start_files.add(ctx.settings.policies_dir / settings.policy_file)
        service = build_service(settings, ctx, self.audit.recorder)
        await service.start()
        ctx.closers.append(service.close)
        ctx.ready_checks["approvals"] = service.ready
        self.service = service
        ctx.drain.on_begin(service.release_holds)
        ctx.stages.append(ApprovalRequestStage(service))
        ctx.stages.append(ApprovalResponseStage(service))
