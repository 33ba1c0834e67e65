"""``anonymize`` writes placeholders through ``Vault.placeholder`` directly when the operator
is ours; the result (text, numbering, what is restorable) must be what the operator writes."""

from __future__ import annotations

from gateway.redaction.config import Action
from gateway.redaction.vault import Vault, VaultOperator, anonymize


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
