"""``verify --anchors --public-key``: hold the chains to the heads signed outside the database.

Each valid anchor lists every chain's head (seq and hash) at its time. The head's event must
still be there with that hash: a truncated chain, a deleted chain or one rewritten with
recomputed hashes (the rewrite changes every hash after the edit, so the anchored one too)
fails that. A chain that began well before an anchor and is missing from it was not in the
database then: forged. Everything after the last anchor is only as good as the database
(see docs/audit.md); ``unwitnessed_from`` then starts after the anchored head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.anchors import ANCHOR_KIND
from gateway.audit.signing import valid

if TYPE_CHECKING:
    from gateway.audit.store.base import Anchor

#: A chain opened this shortly before an anchor may have had no head row yet when it was taken.
ANCHOR_SLACK_S = 60.0


@dataclass(slots=True)
class AnchorPlan:
    records: list[dict[str, Any]] = field(default_factory=list)  # the validly signed ones
    forged: list[dict[str, Any]] = field(default_factory=list)
    #: shard -> anchored seq -> (hash, time of the first anchor that signed it)
    wanted: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)

    @property
    def last_ts(self) -> float:
        return max((float(r["ts"]) for r in self.records), default=0.0)


def plan(records: list[dict[str, Any]], key: Ed25519PublicKey) -> AnchorPlan:
    out = AnchorPlan()
    for r in records:
        payload = {k: v for k, v in r.items() if k != "sig"}
        heads = r.get("heads")
        if (
            r.get("kind") != ANCHOR_KIND
            or not isinstance(r.get("ts"), int | float)
            or not isinstance(heads, dict)
            or not valid(key, payload, r.get("sig"))
        ):
            out.forged.append(r)
            continue
        out.records.append(r)
        for shard, h in heads.items():
            if isinstance(h, dict) and isinstance(h.get("seq"), int):
                out.wanted.setdefault(shard, {}).setdefault(
                    h["seq"], (str(h.get("hash")), str(r.get("time")))
                )
    return out


def conclude(
    p: AnchorPlan,
    report: Any,  # verify.VerifyReport (not imported: verify imports this module)
    seen: dict[tuple[str, int], str],
    prune: dict[str, Anchor],
    first_ts: dict[str, float],
    make_break: Any,  # verify.Break
) -> None:
    """Add the anchor breaks to ``report`` (``seen``: the hashes the walk found at wanted seqs)."""
    for r in p.forged:
        report.breaks.append(
            make_break(
                "-", None, None, f"anchor {r.get('time', '?')}: not validly signed by this key (forged)"
            )
        )
    if not p.records:
        report.breaks.append(
            make_break("-", None, None, "no validly signed anchor: nothing to prove against")
        )
        return
    anchored: dict[str, int] = {}
    for shard, positions in p.wanted.items():
        start = prune.get(shard)
        for seq, (hash_, when) in sorted(positions.items()):
            if start is not None and seq < start.seq:
                continue  # pruned by retention (its own attested anchor)
            found = seen.get((shard, seq))
            if found is None:
                report.breaks.append(
                    make_break(
                        shard,
                        seq,
                        None,
                        f"deleted: seq {seq} was signed in the anchor of {when}; it is gone "
                        "(truncated, or the chain deleted)",
                    )
                )
            elif found != hash_:
                report.breaks.append(
                    make_break(
                        shard,
                        seq,
                        None,
                        f"rewritten: seq {seq} differs from the one signed in the anchor of {when}",
                    )
                )
            else:
                anchored[shard] = max(anchored.get(shard, 0), seq)
    cutoff = p.last_ts - ANCHOR_SLACK_S
    for res in report.shards:
        top = anchored.get(res.shard)
        if top is not None:
            res.anchored_to = top
            if res.unwitnessed_from is not None and res.unwitnessed_from <= top:
                res.unwitnessed_from = top + 1 if (res.last_seq or 0) > top else None
        elif (
            res.shard not in p.wanted and res.shard not in prune and first_ts.get(res.shard, cutoff) < cutoff
        ):
            report.breaks.append(
                make_break(
                    res.shard,
                    res.first_seq,
                    None,
                    "unanchored chain: it began before a signed anchor that does not list it (forged)",
                )
            )
