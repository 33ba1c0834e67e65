"""``wardgate audit verify``: walk every chain and report the first broken link of each.

Per event, in ``seq`` order: the hash must match the stored canonical body (else the event was
*edited*); the queryable columns must match the body (else a column was edited, or rows were
*reordered* when ``seq`` differs); ``seq`` must follow on (else events were *deleted*); and
``prev_hash`` must be the previous event's hash (else *deleted or reordered*). A chain starts
at genesis or at a retention anchor that a retention event attests. Across chains, every
witnessed head (``chain_open``/``checkpoint``) must still be there with the same hash, and each
chain must reach its recorded head: that is what catches a truncated tail or a deleted chain.

The chain registry adds the ends: a chain starts with ``chain_open`` (at seq 1), has a head
row (on a store), and has nothing after its ``chain_close``, past its head row, or past the
head a ``chain_abandoned`` event named when it died. What no other chain (or retention anchor)
witnessed is reported per chain as ``unwitnessed_from``: up to there, another chain vouches for
the events; from there on only this chain's own rows do (see ``--strict``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import anchor_check
from gateway.audit.chain import Head
from gateway.audit.columns import column_problem
from gateway.audit.ends import head_problem, prefetched, recheck_head
from gateway.audit.schema import (
    GENESIS_HASH,
    KIND_CHAIN_ABANDONED,
    KIND_CHAIN_CLOSE,
    KIND_CHAIN_OPEN,
    KIND_CHECKPOINT,
    KIND_RETENTION,
    index_columns,
)
from gateway.audit.signing import valid
from gateway.audit.store.base import Anchor, stored_row

MAX_BREAKS_PER_SHARD = 20


class ChainSource(Protocol):
    async def shards(self) -> list[str]: ...
    async def anchors(self) -> dict[str, Anchor]: ...
    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]: ...
    async def hash_at(self, shard: str, seq: int) -> str | None: ...
    def iter_pages(self, shard: str) -> Any: ...


@dataclass(slots=True)
class Break:
    shard: str
    seq: int | None
    id: str | None
    problem: str


@dataclass(slots=True)
class ShardResult:
    shard: str
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    anchored_at: int | None = None
    closed: bool = False
    #: The shard that named this chain abandoned (it died without ``chain_close``).
    abandoned_by: str | None = None
    #: First seq no other chain or anchor vouches for (None: every event is witnessed).
    unwitnessed_from: int | None = None
    #: Highest seq held to a signed anchor (``verify --anchors``).
    anchored_to: int | None = None
    first_ts: float | None = None
    breaks: list[Break] = field(default_factory=list)


@dataclass(slots=True)
class VerifyReport:
    shards: list[ShardResult] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)  # cross-chain problems (witnesses, anchors)
    #: An export's chain segments (``verify --file``): where each starts and ends.
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.breaks and not any(s.breaks for s in self.shards)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.shards)

    @property
    def unwitnessed(self) -> list[ShardResult]:
        """Chains whose tail only vouches for itself (``--strict`` fails on these)."""
        return [s for s in self.shards if s.unwitnessed_from is not None]

    def all_breaks(self) -> list[Break]:
        return [b for s in self.shards for b in s.breaks] + self.breaks

    def first_break(self) -> Break | None:
        found = self.all_breaks()
        return found[0] if found else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "shards": [asdict(s) for s in self.shards],
            "unwitnessed": {s.shard: s.unwitnessed_from for s in self.unwitnessed},
            "breaks": [asdict(b) for b in self.all_breaks()],
            "segments": self.segments,
        }


@dataclass(slots=True)
class _Claim:
    by: str  # event id of the witness
    shard: str
    seq: int
    hash: str
    from_shard: str = ""  # the chain that made the claim (a chain never witnesses itself)
    end: bool = False  # a ``chain_abandoned`` mark: nothing may follow this seq
    sig: str | None = None  # a signed checkpoint's signature over its own chain's head


def _data_claims(
    row_id: str,
    shard: str,
    kind: Any,
    data: dict[str, Any],
    claims: list[_Claim],
    attested: dict[str, set[tuple[object, object]]],
) -> None:
    """What an event with ``data`` says about chains: witnessed heads, its own signed head
    (a checkpoint), a dead chain's last head (``chain_abandoned``), retention anchors."""
    witness = data.get("witness")
    if isinstance(witness, dict):
        for s, h in witness.items():
            if isinstance(h, dict) and isinstance(h.get("seq"), int):
                claims.append(_Claim(row_id, s, h["seq"], str(h.get("hash")), shard))
    own = data.get("head") if kind == KIND_CHECKPOINT else None
    if isinstance(own, dict) and isinstance(own.get("seq"), int) and own["seq"] > 0:
        sig = data.get("sig")
        claims.append(
            _Claim(row_id, shard, own["seq"], str(own.get("hash")), shard, sig=str(sig) if sig else None)
        )
    if kind == KIND_CHAIN_ABANDONED and isinstance(data.get("seq"), int):
        claims.append(_Claim(row_id, str(data.get("shard")), data["seq"], str(data.get("hash")), shard, True))
    anchors = data.get("anchors") if kind == KIND_RETENTION else None
    if isinstance(anchors, dict):
        for s, a in anchors.items():
            if isinstance(a, dict):
                attested.setdefault(s, set()).add((a.get("seq"), a.get("prev_hash")))


def _checker(
    res: ShardResult,
    anchor: Anchor | None,
    claims: list[_Claim],
    attested: dict[str, set[tuple[object, object]]],
    want: dict[int, Any] | None,
    seen: dict[tuple[str, int], str] | None,
) -> Generator[None, list[tuple[Any, ...]] | None, Head | None]:
    """One chain's rows, a page at a time (``send(page)``; ``send(None)`` ends it and returns
    the last head). The hot loop: per row one ``orjson.loads`` of the stored bytes, one SHA-256
    over them, ONE tuple comparison of every stored column against the sealed event (the
    detailed message only for a row that differs), and claims only from events that carry
    ``data``. A generator so the loop's state stays in fast locals between pages."""
    shard = res.shard
    expected = anchor.seq if anchor else 1
    prev = anchor.prev_hash if anchor else GENESIS_HASH
    last: Head | None = Head(expected - 1, prev) if anchor else None
    breaks = res.breaks
    loads, sha256, decode_error = orjson.loads, hashlib.sha256, orjson.JSONDecodeError

    def problem(seq: int, row_id: str, text: str) -> None:
        if len(breaks) < MAX_BREAKS_PER_SHARD:
            breaks.append(Break(shard, seq, row_id, text))

    while (page := (yield)) is not None:
        if not page:
            continue
        if res.first_seq is None:
            res.first_seq, res.first_ts = page[0][2], page[0][3]
        res.events += len(page)
        res.last_seq = page[-1][2]
        for r in page:
            seq, hash_, body = r[2], r[-2], r[-1]
            if type(body) is not bytes:
                body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            if want is not None and seen is not None and seq in want:
                seen[(shard, seq)] = hash_
            try:
                ev = loads(body)
            except decode_error:
                ev = None
            if type(ev) is not dict:
                problem(seq, r[0], "edited: the stored body is not a JSON object")
                prev, expected = hash_, seq + 1
                continue
            get = ev.get
            sealed_prev = get("prev_hash", "")
            if sha256(body + str(sealed_prev).encode("utf-8")).hexdigest() != hash_:
                problem(seq, r[0], "edited: the event's content does not match its hash")
            elif (get("id"), get("shard"), get("seq"), get("ts"), *index_columns(ev), get("prev_hash")) != r[
                :-2
            ] and (msg := column_problem(stored_row(r), ev)) is not None:
                problem(seq, r[0], msg)
            elif seq > expected:
                problem(seq, r[0], f"deleted: events seq {expected}..{seq - 1} are missing before this one")
            elif seq < expected:
                problem(seq, r[0], f"reordered: seq {seq} appears after seq {expected - 1}")
            elif sealed_prev != prev:
                problem(
                    seq,
                    r[0],
                    "broken link: prev_hash is not the previous event's hash (deleted or reordered)",
                )
            kind = get("kind")
            if res.closed:
                problem(seq, r[0], "appended after close: this event follows the chain's chain_close")
            elif seq == 1 and kind != KIND_CHAIN_OPEN and not breaks:
                problem(seq, r[0], "no chain_open: the chain does not start with chain_open")
            data = get("data")
            if data and isinstance(data, dict):
                _data_claims(r[0], shard, kind, data, claims, attested)
            if kind == KIND_CHAIN_CLOSE:
                res.closed = True
            prev, expected = hash_, seq + 1
    if res.last_seq is not None:
        last = Head(res.last_seq, prev)
    return last


async def _walk(
    source: ChainSource,
    shard: str,
    anchor: Anchor | None,
    claims: list[_Claim],
    attested: dict[str, set[tuple[object, object]]],
    want: dict[int, Any] | None = None,
    seen: dict[tuple[str, int], str] | None = None,
    inline: bool = False,
) -> tuple[ShardResult, Head | None]:
    """One chain, in seq order. ``inline`` (a CLI, or a worker thread of its own): a source
    with ``pages_here`` (SQLite) is read right here, in this thread, with no reader thread
    taking turns with this one on the GIL; otherwise pages come from ``iter_pages`` with the next one read while this one is checked
    (on the store's thread or socket: an event loop that serves calls is never blocked)."""
    res = ShardResult(shard, anchored_at=anchor.seq if anchor else None)
    here = getattr(source, "pages_here", None) if inline else None
    check = _checker(res, anchor, claims, attested, want, seen)
    next(check)
    if here is not None:
        for page in here(shard):
            check.send(page)
    else:
        async for page in prefetched(source.iter_pages(shard)):
            check.send(page)
    try:
        check.send(None)
    except StopIteration as done:
        return res, done.value
    raise AssertionError("the checker did not end")


def _break_after_end(res: ShardResult, last: Head | None, end: _Claim) -> None:
    res.abandoned_by = end.from_shard
    if last is not None and last.seq > end.seq:
        res.breaks.append(
            Break(
                res.shard,
                end.seq + 1,
                None,
                f"appended after abandonment: events seq {end.seq + 1}..{last.seq} follow the head "
                f"seq {end.seq} that {end.by} recorded when this chain was found dead",
            )
        )


async def verify(
    source: ChainSource,
    *,
    anchors: list[dict[str, Any]] | None = None,
    public_key: Ed25519PublicKey | None = None,
    inline: bool = False,
) -> VerifyReport:
    """Walk every chain; with ``public_key``, also check signed checkpoints, and with
    ``anchors`` (records from ``anchors.read_anchors``) hold the chains to the signed heads.
    ``inline``: this thread may block on reads (the CLI, a worker thread; never a gateway's
    event loop): SQLite is then read here, without a reader thread (see ``_walk``)."""
    report = VerifyReport(segments=dict(getattr(source, "segments", {})))
    plan = anchor_check.plan(anchors, public_key) if anchors is not None and public_key is not None else None
    seen: dict[tuple[str, int], str] = {}
    prune = await source.anchors()
    heads = await source.heads(0.0)
    has_heads = bool(getattr(source, "has_heads", True))
    claims: list[_Claim] = []
    attested: dict[str, set[tuple[object, object]]] = {}
    for shard, seq, prev_hash in getattr(source, "segment_starts", ()):
        attested.setdefault(shard, set()).add((seq, prev_hash))
    covers: set[str] | None = getattr(source, "covers", None)
    lasts: dict[str, Head | None] = {}
    results: dict[str, ShardResult] = {}
    for shard in await source.shards():
        want = plan.wanted.get(shard) if plan is not None else None
        res, last = await _walk(source, shard, prune.get(shard), claims, attested, want, seen, inline)
        report.shards.append(res)
        results[shard], lasts[shard] = res, last
        at_end = head_problem(last, heads.get(shard), has_heads) if not res.breaks else None
        if at_end is not None and has_heads:
            at_end = await recheck_head(source, shard, last)
        if at_end is not None:
            res.breaks.append(Break(shard, at_end[0], None, at_end[1]))
    for shard, anchor in prune.items():
        if (anchor.seq, anchor.prev_hash) not in attested.get(shard, set()):
            report.breaks.append(
                Break(
                    shard,
                    anchor.seq,
                    None,
                    "unattested anchor: no retention event vouches for where this chain starts",
                )
            )
    witnessed: dict[str, int] = {s: a.seq - 1 for s, a in prune.items()}
    for c in claims:
        if c.from_shard != c.shard:
            witnessed[c.shard] = max(witnessed.get(c.shard, 0), c.seq)
        if (
            c.sig is not None
            and public_key is not None
            and not valid(public_key, {"shard": c.shard, "seq": c.seq, "hash": c.hash}, c.sig)
        ):
            report.breaks.append(
                Break(c.shard, c.seq, c.by, "forged checkpoint: its signature is not valid for this key")
            )
        if c.end and c.shard in results:
            _break_after_end(results[c.shard], lasts[c.shard], c)
        if covers is not None and c.shard not in covers:
            continue  # a single-chain export holds nothing of the chain this claim is about
        start = prune.get(c.shard)
        if start is not None and c.seq < start.seq:
            if c.seq == start.seq - 1 and c.hash != start.prev_hash:
                report.breaks.append(
                    Break(c.shard, c.seq, None, f"witness mismatch: {c.by} saw another hash")
                )
            continue
        found = await source.hash_at(c.shard, c.seq)
        if found is None:
            report.breaks.append(
                Break(
                    c.shard,
                    c.seq,
                    None,
                    f"deleted: event {c.by} witnessed seq {c.seq} of this chain; it is gone",
                )
            )
        elif found != c.hash:
            report.breaks.append(
                Break(c.shard, c.seq, None, f"edited: event {c.by} witnessed another hash at seq {c.seq}")
            )
    for shard, res in results.items():
        last = lasts[shard]
        if last is not None and last.seq > witnessed.get(shard, 0):
            res.unwitnessed_from = witnessed.get(shard, 0) + 1
    if plan is not None:
        first_ts = {s.shard: s.first_ts for s in report.shards if s.first_ts is not None}
        anchor_check.conclude(plan, report, seen, prune, first_ts, Break)
    return report
