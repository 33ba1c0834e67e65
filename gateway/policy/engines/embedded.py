"""The embedded default engine: regorus (Rust) in process.

regorus engine objects are bound to the thread that created them (pyo3 ``unsendable``: using
one from another thread panics, dropping one on another thread leaks it with a warning), so a
snapshot keeps its modules and data as text and builds its engine on the thread that loads it
(the event loop's). ``close`` drops every snapshot's engine on that thread, even a snapshot
something still holds: a gateway stopped and collected later (by another thread, after its
loop has closed) leaves no engine to leak. Small inputs are evaluated inline on the event loop
thread (a thread hop would cost more than the evaluation); inputs above ``inline_max_bytes``
go to a small worker pool with a timeout, so a pathological request cannot stall the loop.
Results come out in OPA's JSON shapes (sets → sorted arrays).

Optionally (``use_vm``, off by default) the decision paths run on regorus' compiled VM
(``Program`` + ``Rvm``): measured here it decides the shipped request policy in ~100 µs
where the tree-walking interpreter takes ~300 µs, but in regorus 0.13 it does not fail a
rule body when an assignment's value is undefined, which gives wrong decisions (see
``PolicySettings.regorus_vm``). The program is compiled in a worker thread and moved to the
loop thread as bytes (``serialize_binary``; deserialising takes ~40 µs). A set the VM
compiler does not support (e.g. partial object rules with constant keys) falls back to the
interpreter, as does any path that is not a decision entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import regorus

from gateway.policy.engines.base import PolicyEngine, encode_input, off_loop, to_path
from gateway.policy.errors import PolicyEvalError, short_error
from gateway.policy.regorus_build import build_regorus, check_regorus
from gateway.policy.source import packages

log = logging.getLogger("wardgate.policy")

_UNDEFINED = '"<undefined>"'  # what eval_rule_as_json returns for an undefined rule


class ThreadBound:
    """Holds a regorus object so that it is dropped on the thread that created it.

    Snapshots are normally released on the event loop thread, but the cyclic garbage
    collector may free one on any thread (a worker running ``asyncio.to_thread``); dropping a
    pyo3 ``unsendable`` object there leaks it with an error. If that happens, the object is
    handed back to its loop, which drops it on the right thread. Once that loop has closed
    nothing can drop it safely: ``RegorusEngine.close`` releases every one before that.
    """

    __slots__ = ("__weakref__", "_loop", "_owner", "obj")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self._owner = threading.get_ident()
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        _HELD.add(self)

    def release(self) -> None:
        """Drop the object now; only on the thread that created it (else it stays held)."""
        if threading.get_ident() == self._owner:
            self.obj = None

    def __del__(self) -> None:
        loop = self._loop
        if threading.get_ident() == self._owner or loop is None or loop.is_closed():
            return
        # The box is the only holder of the object, and only the loop thread empties it: the
        # object goes on the owner thread however the two threads interleave.
        box = [self.obj]
        self.obj = None
        with contextlib.suppress(RuntimeError):  # loop closed meanwhile: nothing left to protect
            loop.call_soon_threadsafe(box.clear)


_HELD: weakref.WeakSet[ThreadBound] = weakref.WeakSet()


def native_objects_held() -> int:
    """regorus objects held by snapshots in this process and not yet dropped (a leak check)."""
    return sum(1 for bound in list(_HELD) if bound.obj is not None)


def compile_program(
    modules: Mapping[str, str], data_json: str, entry_points: tuple[str, ...]
) -> tuple[bytes | None, str | None]:
    """The VM program for ``entry_points`` as bytes, or (None, why the VM cannot run this set)."""
    try:
        program = regorus.Program.compile_from_modules(data_json, sorted(modules.items()), list(entry_points))
        blob = program.serialize_binary()
    except RuntimeError as exc:
        return None, short_error(exc, 300)
    del program
    return bytes(blob), None


def _load_vm(program: bytes, data_json: str) -> regorus.Rvm:
    loaded = regorus.Program.deserialize_binary(program)
    vm = regorus.Rvm()
    vm.load_program(loaded[0] if isinstance(loaded, tuple) else loaded)
    vm.set_data_json(data_json)
    return vm


def _run_vm(vm: regorus.Rvm, rule: str, input_json: str) -> tuple[str | None, str | None]:
    try:
        vm.set_input_json(input_json)
        return vm.execute_entry_point(rule), None
    except RuntimeError as exc:
        return None, short_error(exc)


def _eval(engine: regorus.Engine, rule: str, input_json: str) -> tuple[str | None, str | None]:
    """(JSON result, error); never raises, so no traceback holds the engine.

    ``eval_rule`` (the fast path) takes only complete rules and partial sets; a partial
    object (``decision["allow"] := …``) or a missing rule goes through ``eval_query``.
    """
    try:
        engine.set_input_json(input_json)
        return engine.eval_rule_as_json(rule), None
    except RuntimeError as exc:
        error = short_error(exc)
    if not error.startswith("not a valid rule path"):
        return None, error
    try:
        found = orjson.loads(engine.eval_query_as_json(rule)).get("result") or []
    except (RuntimeError, orjson.JSONDecodeError) as exc:
        return None, short_error(exc)
    if not found:
        return _UNDEFINED, None
    return orjson.dumps(found[0]["expressions"][0]["value"]).decode(), None


class RegorusSnapshot:
    """One revision. The thread that loaded it (the event loop's) keeps one VM (and, when
    needed, one interpreter); any other thread (the worker pool for large inputs) builds its
    own per evaluation and drops it on the same thread. After ``release`` (at close) every
    evaluation does that, so nothing native outlives the loop."""

    __slots__ = (
        "__weakref__",
        "_data_json",
        "_engine",
        "_entry_points",
        "_executor",
        "_inline_max",
        "_modules",
        "_owner",
        "_program",
        "_released",
        "_timeout_s",
        "_vm",
        "revision",
    )

    def __init__(
        self,
        modules: Mapping[str, str],
        data: Mapping[str, Any],
        revision: str,
        executor: ThreadPoolExecutor,
        inline_max_bytes: int,
        timeout_s: float,
        program: bytes | None = None,
        entry_points: tuple[str, ...] = (),
    ) -> None:
        self.revision = revision
        self._modules = dict(modules)
        self._data_json = orjson.dumps(data).decode()
        self._executor = executor
        self._inline_max = inline_max_bytes
        self._timeout_s = timeout_s
        self._owner = threading.get_ident()
        self._program = program
        self._entry_points = frozenset(entry_points) if program is not None else frozenset()
        self._vm = ThreadBound(_load_vm(program, self._data_json)) if program is not None else None
        self._engine: ThreadBound | None = None
        self._released = False
        if program is None:
            self._engine = ThreadBound(build_regorus(self._modules, self._data_json))

    @property
    def uses_vm(self) -> bool:
        return self._program is not None

    @property
    def holds_native(self) -> bool:
        """Whether this snapshot still keeps a regorus VM or interpreter of its own."""
        return self._vm is not None or self._engine is not None

    def release(self) -> None:
        """Drop the VM and the interpreter now, on the thread that built them (the loop's)."""
        if threading.get_ident() != self._owner:
            return
        self._released = True
        for bound in (self._vm, self._engine):
            if bound is not None:
                bound.release()
        self._vm = self._engine = None

    def evaluate_sync(self, rule: str, input_json: str) -> Any:
        owner = threading.get_ident() == self._owner
        if rule in self._entry_points and self._program is not None:
            vm = self._vm.obj if owner and self._vm is not None else _load_vm(self._program, self._data_json)
            raw, error = _run_vm(vm, rule, input_json)
            del vm
        elif owner and self._engine is not None:
            raw, error = _eval(self._engine.obj, rule, input_json)
        elif owner and not self._released:  # a VM snapshot's first path outside its entry points
            self._engine = ThreadBound(build_regorus(self._modules, self._data_json))
            raw, error = _eval(self._engine.obj, rule, input_json)
        else:  # another thread, or released: an engine for this call, dropped on this thread
            engine = build_regorus(self._modules, self._data_json)
            raw, error = _eval(engine, rule, input_json)
            del engine
        if error is not None:
            raise PolicyEvalError(f"regorus: {error}")
        if raw is None or raw == _UNDEFINED:
            raise PolicyEvalError(f"{rule} is undefined", kind="undefined")
        return orjson.loads(raw)

    async def evaluate(self, path: str, input: Any) -> Any:
        rule = "data." + to_path(path).replace("/", ".")
        payload = encode_input(input).decode()
        if len(payload) <= self._inline_max and threading.get_ident() == self._owner:
            return self.evaluate_sync(rule, payload)
        return await off_loop(
            self._executor, self.evaluate_sync, rule, payload, timeout_s=self._timeout_s, engine="regorus"
        )


class RegorusEngine(PolicyEngine):
    name = "regorus"

    def __init__(
        self,
        *,
        entry_points: tuple[str, ...] = ("wardgate/request/decision", "wardgate/response/decision"),
        use_vm: bool = False,
        inline_max_bytes: int = 64 * 1024,
        timeout_s: float = 1.0,
        workers: int = 2,
    ) -> None:
        super().__init__()
        self._entry_points = tuple("data." + to_path(p).replace("/", ".") for p in entry_points)
        self._use_vm = use_vm
        self.vm_error: str | None = None
        self._inline_max = inline_max_bytes
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wardgate-regorus")
        #: Every snapshot built and not yet freed, the active one and any a call still holds.
        self._snapshots: weakref.WeakSet[RegorusSnapshot] = weakref.WeakSet()

    async def _prepare(self, modules: dict[str, str], data: dict[str, Any], revision: str) -> RegorusSnapshot:
        # Compile off the loop (errors surface here), then build this thread's VM or engine now
        # so the first call on the new revision does not pay for it.
        program = await asyncio.to_thread(self._compile, modules, data)
        snapshot = RegorusSnapshot(
            modules,
            data,
            revision,
            self._executor,
            self._inline_max,
            self._timeout_s,
            program,
            self._entry_points,
        )
        self._snapshots.add(snapshot)
        return snapshot

    def _compile(self, modules: dict[str, str], data: dict[str, Any]) -> bytes | None:
        check_regorus(modules, data)
        if not self._use_vm:
            return None
        present = set(packages(modules).values())
        entry_points = tuple(e for e in self._entry_points if e[len("data.") :].rpartition(".")[0] in present)
        if not entry_points:
            return None
        program, self.vm_error = compile_program(modules, orjson.dumps(data).decode(), entry_points)
        if program is None:
            log.info("regorus VM cannot run this policy set, using the interpreter: %s", self.vm_error)
        return program

    async def close(self) -> None:
        """Drop the native engines now, on the loop thread that owns them (at shutdown).

        Every snapshot is released, not only the active one: one a call or a reference cycle
        still holds would otherwise be freed later by whichever thread collects it, after this
        loop has closed (pyo3 then leaks its engine with a warning)."""
        await super().close()
        self._active = self._mcp_fast = None
        for snapshot in list(self._snapshots):
            snapshot.release()
        self._executor.shutdown(wait=False, cancel_futures=True)
