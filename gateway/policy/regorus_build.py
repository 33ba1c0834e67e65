"""regorus engines built on the calling thread, with the modules and data of one set.

Shared by the embedded engine (``embedded.py``), the derived-data materializer
(``gateway/policy/derived.py``, which every engine's load runs) and ``wardgate policy test``.
regorus objects are bound to the thread that built them: build, use and drop one on the same
thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import regorus

from gateway.policy.errors import PolicyCompileError, short_error


def build_regorus(modules: Mapping[str, str], data: Mapping[str, Any] | str) -> regorus.Engine:
    """A regorus engine with these modules and data; usable (and droppable) only on this thread."""
    engine = regorus.Engine()
    error = _load(engine, modules, data)
    if error is not None:
        del engine  # never let a traceback carry the engine to another thread
        raise PolicyCompileError(error, engine="regorus")
    return engine


def check_regorus(modules: Mapping[str, str], data: Mapping[str, Any]) -> None:
    """Compile in the calling thread and drop the engine there (for worker threads)."""
    build_regorus(modules, data)


def _load(engine: regorus.Engine, modules: Mapping[str, str], data: Mapping[str, Any] | str) -> str | None:
    try:
        engine.add_data_json(data if isinstance(data, str) else orjson.dumps(data).decode())
    except RuntimeError as exc:
        return f"data rejected: {short_error(exc)}"
    for name in sorted(modules):
        try:
            engine.add_policy(name, modules[name])
        except RuntimeError as exc:
            return short_error(exc)
    return None
