"""``anonymize`` writes placeholders through ``Vault.placeholder`` directly when the operator
is ours; the result (text, numbering, what is restorable) must be what the operator writes."""

from __future__ import annotations

from gateway.redaction.anonymize import anonymize
from gateway.redaction.config import Action
from gateway.redaction.vault import Vault, VaultOperator


class _Wrapped(VaultOperator):
    """Any other operator takes the generic path."""


def test_direct_placeholders_equal_the_operator_path() -> None:
    text = "a@x.io, b@x.io, a@x.io; 4155552671 and 4111111111111111; tok AKIA1; b@x.io"
    spans = [
        (0, 6, "E"),
        (8, 14, "E"),
        (16, 22, "E"),
        (24, 34, "P"),
        (39, 55, "C"),
        (61, 66, "K"),
        (68, 74, "E"),
    ]
    actions = {"E": Action.RESTORE, "P": Action.MASK, "C": Action.HASH, "K": Action.REDACT}
    for restorable in (True, False):
        for blocked in (False, True):
            acts = {**actions, "K": Action.BLOCK} if blocked else actions
            fast, slow = Vault(b"s", keep_last={"P": 4}), Vault(b"s", keep_last={"P": 4})
            out_fast = anonymize(text, spans, acts, fast, json=False, restorable=restorable)
            out_slow = anonymize(
                text, spans, acts, slow, json=False, restorable=restorable, operator=_Wrapped()
            )
            assert out_fast == out_slow
            assert "<E_1>" in out_fast and "<E_2>" in out_fast and "a@x.io" not in out_fast
            assert fast.restorable == slow.restorable == (2 if restorable else 0)
            assert fast.restore(out_fast) == slow.restore(out_slow)


def test_runs_of_one_type_equal_the_operator_path() -> None:
    """``Vault.write_placeholders`` looks a type's dictionary up once per run of that type:
    runs, alternations and repeated values number and restore as the operator does."""
    values = {"E": ["a@x.io", "b@x.io", "c@x.io"], "F": ["4155552671", "2127365000"]}
    kinds = ["E", "E", "F", "E", "F", "F", "E", "E", "F", "E"]
    parts, spans, pos = [], [], 0
    for i, kind in enumerate(kinds):
        value = values[kind][i % len(values[kind])]
        parts.append(f"x{i} ")
        pos += len(parts[-1])
        spans.append((pos, pos + len(value), kind))
        parts.append(value)
        pos += len(value)
    text = "".join(parts) + " end"
    for actions in ({"E": Action.RESTORE, "F": Action.REDACT}, {"E": Action.REDACT, "F": Action.RESTORE}):
        fast, slow = Vault(b"s"), Vault(b"s")
        out_fast = anonymize(text, spans, actions, fast, json=False, restorable=True)
        out_slow = anonymize(text, spans, actions, slow, json=False, restorable=True, operator=_Wrapped())
        assert out_fast == out_slow
        assert fast.restorable == slow.restorable
        assert fast.restore(out_fast) == slow.restore(out_slow)
        assert repr(fast) == repr(slow)


def test_write_few_equals_write_placeholders() -> None:
    """``Vault.write_few`` (a resent message's few values) writes what ``write_placeholders``
    writes: the same texts, numbering carried across texts, the same values to restore."""
    import random

    from gateway.redaction.spans import Span

    rng = random.Random(5)
    values = {
        "E": ["a@x.io", "b@x.io", "c@x.io"],
        "P": ["4155552671", "2127365000"],
        "C": ["4111111111111111"],
    }
    keep = {"E": True, "P": True, "C": False}
    for _ in range(200):
        few, many = Vault(b"s"), Vault(b"s")
        for _ in range(rng.randint(1, 6)):  # the texts of one request, in order
            parts, spans, pos = [], [], 0
            for _ in range(rng.randint(0, 8)):
                filler = rng.choice(["", " ", "see ", "and then "])
                entity = rng.choice(sorted(values))
                value = rng.choice(values[entity])
                parts += [filler, value]
                pos += len(filler)
                spans.append(Span(pos, pos + len(value), entity, 1.0))
                pos += len(value)
            text = "".join(parts) + rng.choice(["", ".", " end"])
            out: list[str] = []
            end = many.write_placeholders(text, [(s.start, s.end, s.entity) for s in spans], keep, out, 0)
            out.append(text[end:])
            assert few.write_few(text, tuple(spans), keep) == "".join(out)
        assert few.restore("".join(f"<E_{i}><P_{i}><C_{i}>" for i in range(1, 4))) == many.restore(
            "".join(f"<E_{i}><P_{i}><C_{i}>" for i in range(1, 4))
        )
        assert repr(few) == repr(many)
