"""Audit anchors benchmark (section 4 of ``bench/audit.py``): signing, anchoring, verifying.

- Ed25519 signature of one checkpoint head, and one anchor (read every chain's head, sign,
  append + fsync to a file), in wall and CPU time;
- their cost per event at the default interval (a checkpoint every 10,000 events or 60 s,
  an anchor every 60 s) at several sustained rates: the issue's bound is <= 5 us per event;
- ``verify`` of a filled SQLite store, without and with a signed anchor and the public key
  (the issue's bound: >= 50,000 events/s with anchors).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.anchors import read_anchors
from gateway.audit.config import AuditSettings
from gateway.audit.service import AuditService
from gateway.audit.signing import private_pem, sign
from gateway.audit.store import make_store
from gateway.audit.verify import verify


async def _fill(service: AuditService, build: Callable[[int], dict], n: int, conc: int = 256) -> None:
    async def producer(w: int) -> None:
        for i in range(w, n, conc):
            await service.record_event(build(i))

    await asyncio.gather(*(producer(w) for w in range(conc)))


async def anchor_bench(build: Callable[[int], dict], n: int = 50_000) -> None:
    key = Ed25519PrivateKey.generate()
    payload = {"shard": "bench.0", "seq": 123456, "hash": "ab" * 32}
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        sign(key, payload)
    sign_us = (time.perf_counter() - t0) / reps * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        keyfile = Path(tmp) / "k.pem"
        keyfile.write_bytes(private_pem(key))
        dest = Path(tmp) / "anchors.jsonl"
        settings = AuditSettings(
            backend="sqlite", sqlite_path=Path(tmp) / "a.db", signing_key_file=keyfile, anchor_to=str(dest)
        )
        service = AuditService(settings, make_store(settings, Path(tmp)))
        await service.start()
        await _fill(service, build, n)
        anchors = 20
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(anchors):
            await service.anchor()
        anchor_ms = (time.perf_counter() - w0) / anchors * 1000
        anchor_cpu_us = (time.process_time() - c0) / anchors * 1e6
        await service.checkpoint()
        await service.anchor()
        print(
            f"anchors  sign one checkpoint head: {sign_us:.1f} us; one anchor: {anchor_ms:.2f} ms wall, "
            f"{anchor_cpu_us:.0f} us CPU (fsync included in wall)"
        )
        for rate in (100, 1_000, 5_000, 20_000):
            per_cp = max(1 / 10_000, 1 / (60 * rate))
            per_event = sign_us * per_cp + anchor_cpu_us / (60 * rate)
            print(f"anchors  at {rate:>6,} events/s, default intervals: {per_event:.3f} us CPU per event")
        records = read_anchors(str(dest))
        for label, kw in (
            ("without anchors", {}),
            ("with anchors + key", {"anchors": records, "public_key": key.public_key()}),
        ):
            v0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
            report = await verify(service.store, inline=True, **kw)  # type: ignore[arg-type]
            wall, cpu, main = time.perf_counter() - v0, time.process_time() - c0, time.thread_time() - t0
            # inline (as the CLI and the admin API's worker thread run it): SQLite is read in
            # this thread, so process CPU ~ the checking thread's (no reader thread).
            print(
                f"anchors  verify {label}: {report.events} events, ok={report.ok}, "
                f"{report.events / wall:,.0f} events/s wall, {report.events / cpu:,.0f}/s of process CPU, "
                f"{report.events / main:,.0f}/s of the checking thread's CPU"
            )
        await service.close()
