"""Signed anchors: the heads of every chain, signed, written somewhere the database is not.

An anchor record is ``{"v", "kind": "audit_anchor", "ts", "time", "by", "heads": {shard:
{"seq", "hash"}}, "key"}`` plus ``"sig"``, an Ed25519 signature over the rest (canonical
JSON). ``wardgate audit anchor`` writes one; ``audit.anchor_to`` makes every gateway process
write one each ``audit.anchor_interval_s``. Destinations are append-only by construction:

- a file path: one JSON line appended per anchor (``O_APPEND``, fsynced);
- a directory (an existing one, or a path ending in ``/``, e.g. another volume): one new
  file per anchor, created exclusively (``O_EXCL``), never rewritten;
- an ``http(s)://`` URL (webhook): the record is POSTed as JSON; any 2xx is success. To
  verify against it, the same URL must answer GET with the records (JSONL or a JSON array).

- ``s3://bucket/prefix``: one new write-once object per anchor in S3-compatible storage,
  object-locked where configured (``audit.anchor_s3``; see anchor_s3.py).

See docs/audit.md.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.anchor_s3 import AnchorS3Settings, S3AnchorError, S3Anchors, credentials, split_spec
from gateway.audit.chain import Head
from gateway.audit.schema import SCHEMA_VERSION, iso_time
from gateway.audit.signing import public_hex, sign

ANCHOR_KIND = "audit_anchor"
_HTTP_TIMEOUT_S = 10.0


class AnchorError(RuntimeError):
    """An anchor could not be written or read (the message names the destination, never a key)."""


def anchor_record(
    key: Ed25519PrivateKey, heads: Mapping[str, Head], by: str, now: float | None = None
) -> dict[str, Any]:
    ts = time.time() if now is None else now
    record: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": ANCHOR_KIND,
        "ts": ts,
        "time": iso_time(ts),
        "by": by,
        "heads": {s: {"seq": h.seq, "hash": h.hash} for s, h in sorted(heads.items())},
        "key": public_hex(key),
    }
    record["sig"] = sign(key, record)
    return record


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def _is_s3(spec: str) -> bool:
    return spec.startswith("s3://")


def check_destination(spec: str, s3: AnchorS3Settings | None = None) -> None:
    """Refuse, at configuration time, a destination that cannot be written as configured
    (an ``s3://`` one without its bucket or credentials; reachability is the write's business)."""
    if _is_s3(spec):
        try:
            split_spec(spec)
            credentials(s3 or AnchorS3Settings())
        except S3AnchorError as exc:
            raise AnchorError(str(exc)) from None


def _s3(spec: str, s3: AnchorS3Settings | None) -> S3Anchors:
    try:
        return S3Anchors(spec, s3 or AnchorS3Settings())
    except S3AnchorError as exc:
        raise AnchorError(str(exc)) from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
    os.fsync(fd)


def _write_local(spec: str, line: bytes) -> None:
    path = Path(spec)
    if spec.endswith("/") or path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        name = path / f"anchor-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            _write_all(fd, line)
        finally:
            os.close(fd)
        _fsync_dir(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        _write_all(fd, line)
    finally:
        os.close(fd)


def _post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT_S) as resp:
            if not 200 <= resp.status < 300:
                raise AnchorError(f"anchor webhook {url} answered {resp.status}")
    except OSError as exc:
        raise AnchorError(f"anchor webhook {url} failed: {exc}") from None


async def write_anchor(spec: str, record: dict[str, Any], s3: AnchorS3Settings | None = None) -> None:
    """Append one record to the destination (in a thread: fsync and HTTP must not block the loop)."""
    check_destination(spec, s3)
    line = orjson.dumps(record) + b"\n"
    try:
        if _is_s3(spec):
            await asyncio.to_thread(_s3(spec, s3).put, line)
        elif _is_url(spec):
            await asyncio.to_thread(_post, spec, line)
        else:
            await asyncio.to_thread(_write_local, spec, line)
    except S3AnchorError as exc:
        raise AnchorError(str(exc)) from None
    except OSError as exc:
        raise AnchorError(f"anchor destination {spec} failed: {exc}") from None


def _parse(data: bytes) -> list[dict[str, Any]]:
    data = data.strip()
    if data.startswith(b"["):
        return [r for r in orjson.loads(data) if isinstance(r, dict)]
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as resp:
            return bytes(resp.read())
    except OSError as exc:
        raise AnchorError(f"anchors at {url} could not be read: {exc}") from None


def _read_s3(spec: str, s3: AnchorS3Settings | None) -> list[dict[str, Any]]:
    client = _s3(spec, s3)
    return [r for key in client.keys() for r in _parse(client.get(key))]


def read_anchors(spec: str, s3: AnchorS3Settings | None = None) -> list[dict[str, Any]]:
    """Every record at the destination, oldest first (unsigned or foreign ones included:
    ``verify`` judges them)."""
    check_destination(spec, s3)
    try:
        if _is_s3(spec):
            records = _read_s3(spec, s3)
        elif _is_url(spec):
            records = _parse(_get(spec))
        elif Path(spec).is_dir():
            records = [r for p in sorted(Path(spec).glob("anchor-*.json")) for r in _parse(p.read_bytes())]
        else:
            records = _parse(Path(spec).read_bytes())
    except S3AnchorError as exc:
        raise AnchorError(str(exc)) from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise AnchorError(f"anchors at {spec} could not be read: {exc}") from None
    return sorted(records, key=_ts)


def _ts(record: dict[str, Any]) -> float:
    ts = record.get("ts")
    return float(ts) if isinstance(ts, int | float) else 0.0
