"""A request's long redaction steps hand the event loop back (issue 17: a normal client's
latency beside attackers), and the budget's pre-check refuses without building what only an
analysis would use.

Replacing 2,000 values in one text was one ~1 ms stretch of the loop; it is now done in
chunks (``anonymize_steps``) that a ``LoopSlice`` pauses between. The result must be the
same text and the same vault, whatever the chunk: placeholders are numbered in reading order
across chunks, and JSON pieces keep their lexer state.
"""

from __future__ import annotations

import asyncio
import copy
import json as stdjson
import random
import socket
from collections.abc import Generator
from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.redaction import budget as budget_mod
from gateway.redaction import scan as scan_mod
from gateway.redaction.anonymize import anonymize_steps, finish
from gateway.redaction.budget import LoopSlice, WorkBudget
from gateway.redaction.component import build
from gateway.redaction.config import Action, RedactionSettings
from gateway.redaction.engine import RedactionEngine
from gateway.redaction.redactor import Redactor
from gateway.redaction.scan import ChainScanner, digit_chain, find_chains
from gateway.redaction.vault import Vault, VaultOperator
from tests.redaction.conftest import chat_call
from tests.redaction.dense import contacts_csv, hostile_messages, ids_json

_ACTIONS = [Action.REDACT, Action.RESTORE, Action.MASK, Action.HASH]


class _Wrapped(VaultOperator):
    """Any other operator: the generic path (one operator call per value)."""


def _replace(
    text: str, spans: list[tuple[int, int, str]], actions: dict[str, Action], *, json: bool, chunk: int, **kw
) -> tuple[str, Vault]:
    vault = Vault(b"salt", keep_last={"P": 4})
    steps = anonymize_steps(text, spans, actions, vault, json=json, restorable=True, chunk=chunk, **kw)
    return finish(steps), vault


def _same(a: tuple[str, Vault], b: tuple[str, Vault]) -> None:
    assert a[0] == b[0]
    assert a[1].restorable == b[1].restorable
    assert a[1].restore(a[0], json=False) == b[1].restore(b[0], json=False)


@pytest.mark.parametrize("json", [False, True])
def test_chunked_replacement_equals_one_pass_on_the_dense_corpus(redactor: Redactor, json: bool) -> None:
    text = ids_json()[0].replace('"id":', '"phone":') if json else contacts_csv()[0]
    spans = [(s.start, s.end, s.entity) for s in redactor.analyze_or_refuse(text, json=json)]
    assert len(spans) >= 2000, "dense: thousands of values"
    for actions in ({"PHONE_NUMBER": Action.RESTORE}, {"PHONE_NUMBER": Action.MASK}):
        whole = _replace(text, spans, actions, json=json, chunk=len(spans) + 1)
        assert whole[0] != text
        for chunk in (1, 7, 500):
            _same(_replace(text, spans, actions, json=json, chunk=chunk), whole)


def _random_case(rng: random.Random, json: bool) -> tuple[str, list[tuple[int, int, str]], dict[str, Action]]:
    """Random text (or a random JSON document: JSON source is what ``json`` is used on) and
    random disjoint spans over it."""
    alphabet = 'ab 0123456789@."{}[],:\\\n'
    if json:
        items = [
            rng.choice([rng.randint(-(10**12), 10**12), "".join(rng.choice(alphabet) for _ in range(20))])
            for _ in range(rng.randint(0, 30))
        ]
        text = stdjson.dumps({"a": items, "b": {"c": rng.random()}})
    else:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, 2 * rng.randint(0, 40))))
    spans = [(a, b, rng.choice("EPK")) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b]
    return text, spans, {e: rng.choice(_ACTIONS) for e in "EPK"}


def test_chunked_replacement_equals_one_pass_on_random_inputs() -> None:
    rng = random.Random(17)
    for _ in range(400):
        for json in (False, True):
            text, spans, actions = _random_case(rng, json)
            for operator in (None, _Wrapped()):
                whole = _replace(text, spans, actions, json=json, chunk=10**6, operator=operator)
                for chunk in (1, 2, 3, 500):
                    _same(_replace(text, spans, actions, json=json, chunk=chunk, operator=operator), whole)


def test_a_long_replacement_hands_the_loop_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every pause due, other callbacks run between the chunks of one text."""
    monkeypatch.setattr(budget_mod, "SLICE_S", 0.0)
    text = " ".join(f"v{i:04d}" for i in range(2000))
    spans = [(i * 6, i * 6 + 5, "E") for i in range(2000)]
    ticks: list[int] = []

    async def main() -> tuple[str, int]:
        done = asyncio.Event()

        async def other() -> None:
            while not done.is_set():
                ticks.append(1)
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)
        before = len(ticks)
        steps = anonymize_steps(text, spans, {"E": Action.REDACT}, Vault(b"s"), json=False, restorable=True)
        out = await LoopSlice().run(steps)
        done.set()
        await task
        return out, len(ticks) - before

    out, ran = asyncio.run(main())
    assert out.split(" ")[:2] == ["<E_1>", "<E_2>"] and out.count("<E_") == 2000
    assert ran >= 3, "2,000 values in chunks of 500: the loop ran other work between them"


# -- the pre-check ------------------------------------------------------------------------


@pytest.mark.parametrize("ascii_text", [True, False])
def test_the_pre_check_count_is_a_bound_within_the_allowance_and_exact_past_it(ascii_text: bool) -> None:
    regex = digit_chain(6)
    texts = [m["content"] for m in hostile_messages(3, 300)] + [contacts_csv(300)[0], "no digits", ""]
    for text in texts:
        text = text if ascii_text else text + " \u00e9"
        n = len(find_chains(text, regex))
        for allowance in (-1, 0, n - 1, n, n + 1, 10 * n + 10):
            counted, exact = ChainScanner(regex).count(text, allowance)
            if exact:
                assert counted == n
            else:
                assert n <= counted <= allowance, "a bound, and only while it fits"
            if n > allowance:
                assert exact and counted > allowance, "a refusal is decided on the exact count"


def _precheck(texts: list[str], max_candidates: int) -> str | None:
    budget = WorkBudget(max_chars=10**8, max_candidates=max_candidates, max_matcher=2000)
    try:
        budget.precheck(texts, ChainScanner(digit_chain(6)))
    except GatewayError as exc:
        return exc.code
    return None


def test_the_pre_check_refuses_exactly_when_the_counted_chains_are_over() -> None:
    """Bounds charged for early texts never cause a refusal the exact counts would not."""
    rng = random.Random(4)
    regex = digit_chain(6)
    for _ in range(60):
        texts = [
            m["content"] for m in hostile_messages(rng.randint(1, 5), rng.randint(1, 400), rng.randint(0, 99))
        ]
        texts += [contacts_csv(rng.randint(1, 200), rng.randint(0, 99))[0]] * rng.randint(0, 2)
        exact = sum(len(find_chains(t, regex)) + t.count("@") for t in texts)
        for limit in (exact - 1, exact, exact + 1):
            assert _precheck(texts, limit) == ("content_too_complex" if exact > limit else None), limit


def test_ten_messages_of_1999_numbers_are_refused_without_a_chain_list() -> None:
    """The pre-check counts (C ``findall``); the per-match chain list is never built for a
    request it refuses."""
    built = []
    original = scan_mod._chains_of_classes

    def spy(*args: object) -> object:
        built.append(1)
        return original(*args)  # type: ignore[arg-type]

    scan_mod._chains_of_classes = spy  # type: ignore[assignment]
    try:
        assert _precheck([m["content"] for m in hostile_messages(10, 1999)], 6000) == "content_too_complex"
    finally:
        scan_mod._chains_of_classes = original
    assert not built


def test_a_refused_dense_request_hands_the_loop_back_while_it_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hashing and counting ten texts of 1,999 numbers before the refusal: paused between."""
    monkeypatch.setattr(budget_mod, "SLICE_S", 0.0)
    engine = RedactionEngine(RedactionSettings())
    texts = [m["content"] for m in hostile_messages(10, 1999)]
    ticks: list[int] = []

    async def main() -> str | None:
        done = asyncio.Event()

        async def other() -> None:
            while not done.is_set():
                ticks.append(1)
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        try:
            await engine.analyze_many(texts, loop_slice=LoopSlice())
        except GatewayError as exc:
            return exc.code
        finally:
            done.set()
            await task
        return None

    assert asyncio.run(main()) == "content_too_complex"
    assert len(ticks) >= 10, "other work ran between the texts"


def test_io_that_became_ready_during_a_slice_runs_before_the_next_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A normal call's socket that became readable while a heavy request ran its slice is
    served before that request's next slice (a ``sleep(0)`` pause resumed ahead of it)."""
    monkeypatch.setattr(budget_mod, "SLICE_S", 0.0)
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        r, w = socket.socketpair()
        r.setblocking(False)

        def readable() -> None:
            order.append("io")
            loop.remove_reader(r.fileno())

        loop.add_reader(r.fileno(), readable)

        def heavy() -> Generator[None, None, str]:
            for k in range(3):
                order.append(f"slice{k}")
                if k == 0:
                    w.send(b"x")  # a normal client's request arrives meanwhile
                yield
            return "done"

        try:
            assert await LoopSlice().run(heavy()) == "done"
        finally:
            r.close()
            w.close()

    asyncio.run(main())
    assert order[:3] == ["slice0", "io", "slice1"], order


def test_replacing_a_conversation_pauses_between_texts_not_after_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With every pause due, the loop is handed back between the texts of a request, and not
    after the last one (nothing of the request's redaction is left to wait behind it): the
    text comes out the same as with no pause at all."""
    monkeypatch.setattr(budget_mod, "SLICE_S", 0.0)
    redactor = build(RedactionSettings(hash_salt="test-salt-0123456789"))
    messages = [
        {"role": "user", "content": f"mail user{i}@example.com"}
        if i % 3
        else {"role": "user", "content": "hi"}
        for i in range(7)
    ]  # the last text has no value: the last replaced is messages[5]
    pauses: list[int] = []
    real_sleep = asyncio.sleep

    async def counted(delay: float) -> None:
        pauses.append(1)
        await real_sleep(delay)

    async def main() -> list[Any]:
        await redactor.redact_request(chat_call(copy.deepcopy(messages)))  # analyses cached
        monkeypatch.setattr(budget_mod.asyncio, "sleep", counted)
        call = chat_call(copy.deepcopy(messages))
        await redactor.redact_request(call)
        return call.body["messages"]

    try:
        out = asyncio.run(main())
    finally:
        redactor.engine.close()
    replaced = [m["content"] for m in out]
    assert replaced[1] == "mail <EMAIL_ADDRESS_1>" and replaced[5] == "mail <EMAIL_ADDRESS_4>"
    assert replaced[0] == replaced[6] == "hi"
    # Every text a cache hit: one pass over them (resent.replace_seen), a pause between two
    # texts (6), none after the last; nothing is left for analyze_many.
    assert len(pauses) == 7 - 1
