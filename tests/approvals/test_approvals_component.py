"""The approvals component: settings merged with approvals.yaml, stages, closer, readiness, service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.approvals.component import Approvals, ApprovalsFileError, load_settings
from gateway.approvals.config import ApprovalSettings
from gateway.approvals.redis_store import RedisApprovalStore
from gateway.audit.component import Audit
from gateway.context import AppContext
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog
from gateway.observability.component import Observability
from gateway.pipeline import Pipeline
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _ctx(tmp_path: Path, **approvals: object) -> AppContext:
    settings = Settings(policies_dir=tmp_path, data_dir=tmp_path / "data", approvals=approvals)
    return AppContext(settings=settings, keys=KeyStore({}, {}), models=ModelCatalog({}))


async def setup(ctx: AppContext) -> Approvals:
    """Start the component as the app does (its audit log off here)."""
    approvals = Approvals(Audit(Observability()))
    await approvals.start(ctx)
    return approvals


def test_the_shipped_approvals_file_loads() -> None:
    settings = load_settings(ApprovalSettings(), REPO / "policies")
    assert settings.default_mode == "hold" and "finance" in settings.groups


def test_file_values_merge_under_explicit_settings(tmp_path: Path) -> None:
    (tmp_path / "approvals.yaml").write_text(
        yaml.safe_dump(
            {
                "default_mode": "defer",
                "hold_s": 30,
                "groups": {"finance": {"approvals_required": 2}, "ops": {}},
                "tools": {"transfer_funds": {"approvers": "finance", "mode": "hold"}},
            }
        )
    )
    base = ApprovalSettings(hold_s=60, groups={"ops": {"approvals_required": 3}})
    merged = load_settings(base, tmp_path)
    assert merged.default_mode == "defer"  # from the file
    assert merged.hold_s == 60  # set explicitly: wins over the file
    assert merged.groups["finance"].approvals_required == 2
    assert merged.groups["ops"].approvals_required == 3
    assert merged.tools["transfer_funds"].mode == "hold"


@pytest.mark.parametrize("doc", [{"nonsense": 1}, {"hold_s": 9999}, ["not", "a", "mapping"]])
def test_a_malformed_approvals_file_is_refused_with_its_name(tmp_path: Path, doc: object) -> None:
    (tmp_path / "approvals.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ApprovalsFileError, match=r"approvals\.yaml"):
        load_settings(ApprovalSettings(), tmp_path)


async def test_setup_registers_stages_closer_readiness_and_the_service(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    approvals = await setup(ctx)
    try:
        assert [s.name for s in ctx.stages] == ["approval_request", "approval_response"]
        Pipeline(ctx.stages)  # names are valid STAGE_ORDER entries
        assert approvals.enabled and approvals.service.store is not None
        await ctx.ready_checks["approvals"]()
        assert (tmp_path / "data" / "approvals.key").stat().st_mode & 0o777 == 0o600
    finally:
        await ctx.close()


async def test_setup_on_redis_is_ready_and_closes_cleanly(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    ctx = _ctx(tmp_path, backend="redis", redis_url=redis_url, key_prefix=key_prefix)
    approvals = await setup(ctx)
    assert isinstance(approvals.service.store, RedisApprovalStore)
    await ctx.ready_checks["approvals"]()
    await ctx.close()


async def test_disabled_approvals_register_nothing(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, enabled=False)
    approvals = await setup(ctx)
    assert ctx.stages == [] and not approvals.enabled and not ctx.closers
