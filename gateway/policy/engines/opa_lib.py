"""``opa-lib``: the real OPA Go engine in process (opa-golib-python-bindings, ctypes).

One ``OpaEngine`` per snapshot, shared by all threads (the binding serialises evaluations
with its own lock; ctypes releases the GIL during the Go call). OPA compiles lazily, on the
first evaluation, so ``build_opa`` forces a compile with a trivial query: a set that OPA
rejects fails here, with OPA's ``file:line`` message, instead of on the first call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

from gateway.policy.engines.base import PolicyEngine, encode_input, off_loop, to_path
from gateway.policy.errors import PolicyCompileError, PolicyEvalError, short_error


class JsonOpaEngine(OpaEngine):
    """``OpaEngine`` that takes the input as JSON bytes already encoded (with orjson).

    The binding's own ``eval_document`` re-encodes the input with the stdlib ``json``
    module; the gateway has the bytes already. Same lock and envelope handling as the
    binding's method (pinned: opa-golib-python-bindings 0.4.4); falls back to the public
    API if the binding's internals ever change.
    """

    def eval_document_json(self, path: str, payload: bytes) -> Any:
        call = getattr(self, "_call", None)
        lib = getattr(self, "_lib", None)
        if call is None or lib is None or not hasattr(self, "_eval_lock"):
            return self.eval_document(path, orjson.loads(payload))
        with self._eval_lock:
            self._eval_reset()
            rs = self._eval_result(call(lib.OpaEvalDocument, path.encode(), payload, 0, 0))
        if not rs or not rs[0].get("expressions"):
            raise OpaUndefinedError(f"data.{path}")
        return rs[0]["expressions"][0]["value"]


def build_opa(
    modules: Mapping[str, str], data: Mapping[str, Any], warm: tuple[str, ...] = ()
) -> JsonOpaEngine:
    """An OPA engine with these modules and data, compiled (and ``warm`` queries prepared)."""
    engine = JsonOpaEngine()
    try:
        if data:
            engine.add_data(dict(data))
        for name in sorted(modules):
            engine.add_policy(name, modules[name])
        engine.eval_query("true")
    except OpaError as exc:
        engine.close()
        raise PolicyCompileError(exc.message or short_error(exc), engine="opa-lib") from exc
    for path in warm:
        try:
            engine.eval_document(path, {})
        except OpaError:
            continue  # warming only; a path that is undefined for {} is still prepared
    return engine


class OpaLibSnapshot:
    __slots__ = ("_engine", "_executor", "_inline_max", "_timeout_s", "revision")

    def __init__(
        self,
        engine: JsonOpaEngine,
        revision: str,
        executor: ThreadPoolExecutor,
        inline_max: int,
        timeout_s: float,
    ) -> None:
        self.revision = revision
        self._engine = engine
        self._executor = executor
        self._inline_max = inline_max
        self._timeout_s = timeout_s

    def evaluate_sync(self, path: str, payload: bytes) -> Any:
        try:
            return self._engine.eval_document_json(path, payload)
        except OpaUndefinedError as exc:
            raise PolicyEvalError(f"data.{path} is undefined", kind="undefined") from exc
        except OpaError as exc:
            raise PolicyEvalError(f"opa-lib: {exc.code}: {exc.message}") from exc

    async def evaluate(self, path: str, input: Any) -> Any:
        dotted = to_path(path).replace("/", ".")
        payload = encode_input(input)
        if len(payload) <= self._inline_max:
            return self.evaluate_sync(dotted, payload)
        return await off_loop(
            self._executor, self.evaluate_sync, dotted, payload, timeout_s=self._timeout_s, engine="opa-lib"
        )

    def close(self) -> None:
        self._engine.close()


class OpaLibEngine(PolicyEngine):
    name = "opa-lib"

    def __init__(
        self,
        *,
        warm_paths: tuple[str, ...] = ("wardgate.request.decision", "wardgate.response.decision"),
        inline_max_bytes: int = 64 * 1024,
        timeout_s: float = 1.0,
        workers: int = 2,
    ) -> None:
        super().__init__()
        self._warm = warm_paths
        self._inline_max = inline_max_bytes
        self._timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wardgate-opa-lib")

    async def _prepare(self, modules: dict[str, str], data: dict[str, Any], revision: str) -> OpaLibSnapshot:
        engine = await asyncio.to_thread(build_opa, modules, data, self._warm)
        return OpaLibSnapshot(engine, revision, self._executor, self._inline_max, self._timeout_s)

    async def close(self) -> None:
        await super().close()
        self._executor.shutdown(wait=False, cancel_futures=True)
