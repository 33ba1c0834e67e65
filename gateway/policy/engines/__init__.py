"""Policy engines behind one interface; ``create_engine`` picks one from the settings.

The interface is ``base.py`` (``PolicyEngine``, ``Snapshot``); the engines are
``embedded.py`` (regorus, in process), ``opa_lib.py`` (OPA's Go library, in process) and
``opa_http.py`` (an OPA server; its lean hot-path HTTP client is ``opa_wire.py``). Their errors (``gateway/policy/errors.py``) and the regorus
build (``gateway/policy/regorus_build.py``) live outside this package: ``base.py`` imports
``policy/derived.py``, which needs both, and importing anything in this package runs this
file first. This module imports no engine at run time (only ``create_engine`` does, the one
asked for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.policy.config import PolicySettings
    from gateway.policy.engines.base import PolicyEngine

__all__ = ["create_engine"]


def create_engine(settings: PolicySettings) -> PolicyEngine:
    """The engine ``settings.engine`` names (imports only that engine's native library)."""
    embedded_timeout_s = settings.embedded_timeout_ms / 1000
    paths = (settings.request_path, settings.response_path)
    if settings.engine == "regorus":
        from gateway.policy.engines.embedded import RegorusEngine

        return RegorusEngine(
            entry_points=paths,
            use_vm=settings.regorus_vm,
            inline_max_bytes=settings.inline_max_bytes,
            timeout_s=embedded_timeout_s,
        )
    if settings.engine == "opa-lib":
        from gateway.policy.engines.opa_lib import OpaLibEngine

        return OpaLibEngine(
            warm_paths=tuple(p.replace("/", ".") for p in paths),
            inline_max_bytes=settings.inline_max_bytes,
            timeout_s=embedded_timeout_s,
        )
    if settings.engine == "opa":
        from gateway.policy.engines.opa_http import OpaHttpEngine

        return OpaHttpEngine(
            settings.opa_url,
            timeout_s=settings.timeout_ms / 1000,
            push=settings.opa_push,
            pool_size=settings.opa_pool_size,
            client=settings.opa_client,
        )
    raise ValueError(f"unknown policy engine {settings.engine!r}")
