"""The console component: the web UI under ``/console`` for reviewers, auditors and admins.

It is given the components whose data its pages show (``compose()``); at start it builds the
session manager (memory or Redis, like the approvals and limits stores) and the templates.
Its routes exist before the start (Starlette builds them with the app) and reach what it
built through providers, as every component's routes do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.console.config import ConsoleSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.approvals.component import Approvals
    from gateway.audit.component import Audit
    from gateway.console.pending import PendingView
    from gateway.console.sessions import SessionManager
    from gateway.console.throttle import SignInThrottle
    from gateway.context import AppContext
    from gateway.keys.component import Keys
    from gateway.limits.component import Limits
    from gateway.policy.component import Policy


class Console(BaseComponent):
    name = "console"
    settings_model = ConsoleSettings

    def __init__(
        self, audit: Audit, approvals: Approvals, limits: Limits, policy: Policy, keys: Keys | None = None
    ) -> None:
        self.audit = audit
        self.keys = keys
        self.approvals = approvals
        self.limits = limits
        self.policy = policy
        #: Set at start; ``None`` while the console is off.
        self.sessions: SessionManager | None = None
        #: The inbox's pending approvals (set at start while both the console and approvals are on).
        self.pending: PendingView | None = None
        #: Failed sign-ins per address and key prefix (set at start while the console is on).
        self.throttle: SignInThrottle | None = None
        self.settings = ConsoleSettings()

    def routes(self) -> list[BaseRoute]:
        from gateway.console.deps import Deps
        from gateway.console.mount import load_pages, routes
        from gateway.console.templates import Templates
        from gateway.console.web import PREFIX

        deps = Deps(
            settings=lambda: self.settings,
            sessions=lambda: self.sessions,
            templates=Templates(PREFIX),
            approvals=lambda: self.approvals.service,
            audit_store=self.audit.store,
            audit=self.audit.recorder,
            limits=self.limits.admin,
            policy=lambda: self.policy.service,
            pending=lambda: self.pending,
            throttle=lambda: self.throttle,
            keys=self.keys.api_deps() if self.keys is not None else None,
        )
        return routes(deps, load_pages())

    async def start(self, ctx: AppContext) -> None:
        from gateway.console.config import session_store_of, throttle_store_of
        from gateway.console.sessions import MemorySessionStore, SessionManager, SessionStore
        from gateway.console.throttle import (
            MemoryThrottleStore,
            RedisThrottleStore,
            SignInThrottle,
            ThrottleStore,
        )

        self.sessions = None
        self.pending = None
        self.throttle = None
        settings = self.settings = section(ctx.settings, self.name, ConsoleSettings)
        if not settings.enabled:
            return
        store: SessionStore
        sessions_at = session_store_of(settings, getattr(ctx.settings, "approvals", None))
        backend, redis_url, key_prefix = sessions_at
        t_backend, t_url, t_mode, t_prefix = throttle_store_of(
            settings, getattr(ctx.settings, "limits", None), sessions_at
        )
        counts: ThrottleStore = (
            RedisThrottleStore.from_url(t_url, t_mode, t_prefix)
            if t_backend == "redis"
            else MemoryThrottleStore()
        )
        throttle = self.throttle = SignInThrottle(
            counts,
            settings.signin_max_failures_per_ip,
            settings.signin_max_failures_per_key_prefix,
            settings.signin_window_s,
        )
        ctx.closers.append(throttle.close)
        if backend == "redis":
            from gateway.console.redis_sessions import RedisSessionStore

            store = RedisSessionStore.from_url(redis_url, key_prefix)
            ctx.ready_checks[self.name] = store.ping
        else:
            store = MemorySessionStore()
        await store.start()
        ctx.closers.append(store.close)
        self.sessions = SessionManager(store, settings.idle_timeout_s, settings.absolute_timeout_s)
        service = self.approvals.service  # approvals start before the console (compose())
        if service is not None:
            from gateway.console.pending import PendingView

            view = self.pending = PendingView(service)

            async def close_view() -> None:
                view.close()

            ctx.closers.append(close_view)
