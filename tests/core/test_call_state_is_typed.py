"""Stages talk through typed fields of ``Call``, each with one documented writer; nothing in
the product reaches another area's data through a string-keyed dict on the call."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from gateway.call import Call

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
#: The fields one area publishes for others (``gateway.callstate``).
SHARED = (
    "limits",
    "budget",
    "run",
    "pii",
    "vault",
    "policy_redact",
    "routed_model",
    "approval_ask",
    "approval",
    "streamed",
    "replayed",
)
_STRING_KEYED = re.compile(r"""\bcall\.state\b|\.state\[["']|\bstate\.(?:get|setdefault|pop)\(["']""")


def test_the_call_has_no_string_keyed_blackboard() -> None:
    names = {f.name for f in dataclasses.fields(Call)}
    assert "state" not in names
    assert set(SHARED) <= names
    assert "slots" in names  # stage-private values, keyed by objects their modules own


def test_no_module_reads_or_writes_call_data_by_string_key() -> None:
    found = [
        f"{path.relative_to(GATEWAY)}:{n}: {line.strip()}"
        for path in GATEWAY.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _STRING_KEYED.search(line)
    ]
    assert found == []


def test_every_shared_field_names_its_one_writer() -> None:
    text = (GATEWAY / "call.py").read_text()
    source = text[text.index("class Call:") :].splitlines()
    for name in SHARED:
        [at] = [i for i, line in enumerate(source) if re.match(rf"\s+{name}: ", line)]
        comment = []
        i = at - 1
        while source[i].strip().startswith("#:"):
            comment.insert(0, source[i])
            i -= 1
        doc = " ".join(comment)
        assert doc.count("Writer:") == 1, f"{name}: {doc!r}"
