"""Redis unavailable: fail closed by default, or fall back to local limits / allow, and recover.

These tests run a private ``redis-server`` on a free port so they can kill it and start it
again (the shared Redis is never touched).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from limits_helpers import forwarded, make_call, make_service, settle

from gateway.audit.component import Audit
from gateway.call import Usage
from gateway.context import AppContext
from gateway.errors import LimitsUnavailable
from gateway.keys.store import KeyStore
from gateway.limits.component import Limits
from gateway.limits.memory import MemoryStore
from gateway.limits.redis_store import RedisStore
from gateway.limits.stage import LimitStage
from gateway.limits.store import RESERVATION, StoreError
from gateway.models import ModelCatalog
from gateway.observability.component import Observability
from gateway.settings import Settings
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


class PrivateRedis:
    """A redis-server this test starts and stops (by its own pid)."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server binary not found (Debian package redis-server): needed to simulate an outage"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(answers, within=10, interval=0.02, message="private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _redis_store(url: str) -> RedisStore:
    store = RedisStore(url, prefix="wgtest:down", timeout_s=0.3)
    await store.start()
    return store


async def test_redis_down_fails_closed_by_default_and_recovers(private_redis: PrivateRedis) -> None:
    store = await _redis_store(private_redis.url)
    service = make_service(store)
    try:
        await LimitStage(service).on_request(make_call())
        private_redis.stop()
        call = make_call()
        t0 = time.perf_counter()
        with pytest.raises(LimitsUnavailable) as err:
            await LimitStage(service).on_request(call)
        assert time.perf_counter() - t0 < 1.0  # fails fast, within the socket timeout
        assert err.value.status == 503 and err.value.code == "limits_unavailable"
        assert call.decisions[-1].outcome == "error"
        private_redis.start()  # empty: the scripts are gone too (NOSCRIPT path)
        ok = make_call()
        await LimitStage(service).on_request(ok)
        assert ok.limits.store == "redis"
    finally:
        await store.close()


async def test_local_mode_falls_back_to_in_process_limits_and_says_so(private_redis: PrivateRedis) -> None:
    store = await _redis_store(private_redis.url)
    local = MemoryStore()
    service = make_service(
        store,
        {"scopes": {"key": {"requests_per_minute": 2}}},
        local=local,
        on_store_error="local",
        store_retry_s=0.2,
    )
    fallback = service.metrics.fallback.labels("local")
    try:
        private_redis.stop()
        calls = [make_call() for _ in range(3)]
        await LimitStage(service).on_request(calls[0])
        assert calls[0].limits.store == "local"
        assert service.degraded and service.status().startswith("degraded (local)")
        assert service.metrics.degraded._value.get() == 1
        await settle(service, forwarded(calls[0], Usage(10, 10)))
        assert (await local.scope_state("acme", "key", "k1")).spent_nano["total"] > 0
        await LimitStage(service).on_request(calls[1])
        with pytest.raises(Exception, match="Rate limit"):  # local limits still hold
            await LimitStage(service).on_request(calls[2])
        assert fallback._value.get() == 3
        private_redis.start()
        await asyncio.sleep(0.25)
        back = make_call(body={"model": "mock-chat", "messages": []})
        await LimitStage(service).on_request(back)
        assert back.limits.store == "redis" and not service.degraded
        assert service.metrics.degraded._value.get() == 0
    finally:
        await store.close()


async def test_allow_mode_lets_calls_through_unlimited_and_still_prices_them(
    private_redis: PrivateRedis,
) -> None:
    store = await _redis_store(private_redis.url)
    service = make_service(store, {"scopes": {"key": {"requests_per_minute": 1}}}, on_store_error="allow")
    try:
        private_redis.stop()
        for _ in range(3):
            call = make_call()
            await LimitStage(service).on_request(call)
            assert RESERVATION.get(call) is None and call.limits.store == "none"
        await settle(service, forwarded(call, Usage(1000, 0)))
        assert call.cost_usd == pytest.approx(0.0025)
    finally:
        await store.close()


async def test_readiness_fails_in_deny_mode_and_reports_degraded_in_local_mode(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    results = {}
    for mode in ("deny", "local"):
        settings = Settings(
            policies_dir=REPO / "policies",
            data_dir=tmp_path,
            limits={
                "backend": "redis",
                "redis_url": private_redis.url,
                "key_prefix": "wgtest:ready",
                "on_store_error": mode,
                "redis_timeout_s": 0.3,
            },
        )
        ctx = AppContext(settings=settings, keys=KeyStore({}, {}), models=ModelCatalog({}))
        limits = Limits(Audit(Observability()))
        await limits.start(ctx)
        assert [s.name for s in ctx.stages] == [
            "limit",
            "limit_reprice",
            "settle",
        ] and limits.service is not None
        try:
            assert await ctx.ready_checks["limits"]() == "ok"
            private_redis.stop()
            try:
                results[mode] = await ctx.ready_checks["limits"]()
            except StoreError as exc:
                results[mode] = exc
            private_redis.start()
        finally:
            await ctx.close()
    assert isinstance(results["deny"], StoreError)
    assert str(results["local"]).startswith("degraded")


async def test_a_flushed_script_cache_is_reloaded_transparently(private_redis: PrivateRedis) -> None:
    store = await _redis_store(private_redis.url)
    service = make_service(store)
    try:
        await LimitStage(service).on_request(make_call())
        before = store.round_trips
        await store._redis.script_flush()  # only this private server's cache
        await LimitStage(service).on_request(make_call())
        assert store.round_trips - before == 3  # EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA
    finally:
        await store.close()
