"""The ``PolicyEngine`` interface and what every engine shares.

An engine turns ``(path, input)`` into the document at ``data.<path>``. ``load`` compiles a
new set of modules and data *beside* the active one and swaps it in with one assignment, so
a call that took a ``snapshot()`` keeps deciding on the revision it started with while a
reload happens (each call phase is decided by exactly one revision). The errors are in
``gateway/policy/errors.py``.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, ClassVar, Protocol

import orjson

from gateway.policy.derived import derived_modules, materialize
from gateway.policy.errors import PolicyEvalError
from gateway.policy.mcpfast import McpFastPath
from gateway.policy.mcpfast import build as build_mcp_fast
from gateway.policy.source import revision_of

_SURROGATES = re.compile("[\ud800-\udfff]")


async def off_loop(
    executor: Executor, fn: Callable[..., Any], *args: Any, timeout_s: float, engine: str
) -> Any:
    """Run an in-process evaluation on a worker thread, failing as ``timeout`` past the deadline.

    Large inputs go here so one huge prompt never stalls the event loop for other calls.
    """
    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    try:
        return await asyncio.wait_for(future, timeout_s)
    except TimeoutError as exc:
        raise PolicyEvalError(f"{engine}: no decision within {timeout_s * 1000:.0f} ms", "timeout") from exc


def to_path(path: str) -> str:
    """``wardgate/request/decision`` or ``wardgate.request.decision`` → the slash form."""
    return path.strip("/").replace(".", "/")


def encode_input(doc: Any) -> bytes:
    """The input as JSON bytes; odd strings (lone surrogates) are replaced, never fatal."""
    try:
        return orjson.dumps(doc)
    except TypeError:
        return orjson.dumps(sanitize(doc), default=str)


def sanitize(value: Any) -> Any:
    """A JSON-safe copy: lone surrogates → U+FFFD (as Go's JSON decoder, i.e. OPA, does), keys
    made strings, unknown types as str."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {sanitize(str(k)): sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [sanitize(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return sanitize(str(value))


class Snapshot(Protocol):
    """One compiled revision; evaluation never sees a half-loaded set."""

    revision: str

    async def evaluate(self, path: str, input: Any) -> Any:
        """The document at ``data.<path>``; raises ``PolicyEvalError`` when there is none."""
        ...


class PolicyEngine(ABC):
    """Common shape of the three engines (``regorus``, ``opa``, ``opa-lib``)."""

    name: ClassVar[str] = "engine"

    def __init__(self) -> None:
        self._active: Snapshot | None = None
        #: The active snapshot with its ``wardgate.mcp`` fast path (``mcpfast.py``), or None.
        self._mcp_fast: tuple[Snapshot, McpFastPath | None] | None = None
        self.closed = False

    @property
    def revision(self) -> str | None:
        return self._active.revision if self._active is not None else None

    def snapshot(self) -> Snapshot:
        """The active revision; take it once per call phase and evaluate on it."""
        active = self._active
        if active is None:
            raise PolicyEvalError("no policy is loaded", kind="not_loaded")
        return active

    async def load(
        self, modules: Mapping[str, str], data: Mapping[str, Any], *, revision: str | None = None
    ) -> str:
        """Compile ``modules`` with ``data`` and make them active; returns the revision.

        On any error the previous revision stays active (the swap is the last step). A
        ``wardgate.derived`` package is served as data (``gateway/policy/derived.py``), the
        same for every engine; the revision names the set as written.
        """
        revision = revision or revision_of(modules, data)
        if derived_modules(modules):
            modules, data = await asyncio.to_thread(materialize, modules, data)
        snapshot = await self._prepare(dict(modules), dict(data), revision)
        fast = build_mcp_fast(modules, data)
        self._active = snapshot
        self._mcp_fast = (snapshot, fast)
        return revision

    def mcp_fast(self, snapshot: Snapshot) -> McpFastPath | None:
        """The ``wardgate.mcp`` fast path of ``snapshot``'s revision, if it has one."""
        pair = self._mcp_fast
        return pair[1] if pair is not None and pair[0] is snapshot else None

    async def evaluate(self, path: str, input: Any) -> Any:
        return await self.snapshot().evaluate(path, input)

    @abstractmethod
    async def _prepare(self, modules: dict[str, str], data: dict[str, Any], revision: str) -> Snapshot:
        """Build a snapshot for these modules; raise ``PolicyCompileError`` if they fail."""

    async def health(self) -> None:
        """Raise when the engine cannot decide (used by ``/readyz``)."""
        self.snapshot()

    async def close(self) -> None:
        """Release sessions, threads and native engines (at shutdown)."""
        self.closed = True
