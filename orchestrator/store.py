"""Run checkpoints in SQLite: runs, steps (with their conversations), the tool ledger, events.

Everything needed to continue a run after a crash is written before the next thing happens:
a step's conversation after every model answer and tool result, a tool call as ``started``
before it runs and ``done`` (with its result) after. ``orchestrator resume RUN_ID`` reads it
back. SQLite in WAL mode with ``synchronous=NORMAL`` survives a process crash, which is the
failure this protects against; each statement commits on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL,
    parent_run_id TEXT, trace_id TEXT NOT NULL, plan TEXT, review TEXT, outcome TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, agent TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, messages TEXT NOT NULL, result TEXT, error TEXT,
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS tool_calls (
    run_id TEXT NOT NULL, tool_call_id TEXT NOT NULL, step_id TEXT NOT NULL, name TEXT NOT NULL,
    arguments TEXT NOT NULL, status TEXT NOT NULL, executions INTEGER NOT NULL DEFAULT 0,
    result TEXT, started_at REAL, finished_at REAL, PRIMARY KEY (run_id, tool_call_id)
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
    kind TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
"""


@dataclass(slots=True)
class RunRecord:
    run_id: str
    scenario: str
    task: str
    status: str  # running | completed | stopped | failed
    trace_id: str
    parent_run_id: str | None = None
    plan: str | None = None  # Plan JSON
    review: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None  # why it stopped/failed
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class StepRecord:
    run_id: str
    step_id: str
    agent: str
    status: str  # pending | running | done | failed | denied | cancelled | skipped | stopped
    messages: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    result: str | None = None
    error: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolCallRecord:
    run_id: str
    tool_call_id: str
    step_id: str
    name: str
    arguments: str
    status: str  # started | done | failed | unknown
    executions: int
    result: str | None


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


class CheckpointStore:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: str | Path) -> CheckpointStore:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(_SCHEMA)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # -- runs ------------------------------------------------------------------------
    async def create_run(self, run: RunRecord) -> None:
        await self._db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                run.run_id,
                run.scenario,
                run.task,
                run.status,
                run.parent_run_id,
                run.trace_id,
                run.plan,
                _dumps(run.review),
                _dumps(run.outcome),
                run.created_at,
                run.updated_at,
            ),
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._db.execute(
            "SELECT run_id, scenario, task, status, trace_id, parent_run_id, plan, review, outcome, created_at,"
            " updated_at FROM runs WHERE run_id = ?",
            (run_id,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return RunRecord(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            _loads(row[7]),
            _loads(row[8]),
            row[9],
            row[10],
        )

    async def update_run(self, run_id: str, **fields: Any) -> None:
        allowed = {"status", "plan", "review", "outcome"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_run takes {sorted(allowed)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        values = [(_dumps(v) if k in ("review", "outcome") else v) for k, v in fields.items()]
        await self._db.execute(
            f"UPDATE runs SET {cols}, updated_at = ? WHERE run_id = ?", (*values, time.time(), run_id)
        )

    async def list_runs(self, limit: int = 20) -> list[RunRecord]:
        async with self._db.execute(
            "SELECT run_id FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)
        ) as cur:
            ids = [r[0] for r in await cur.fetchall()]
        return [r for r in [await self.get_run(i) for i in ids] if r is not None]

    # -- steps -----------------------------------------------------------------------
    async def save_step(self, step: StepRecord) -> None:
        await self._db.execute(
            "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, step_id) DO UPDATE SET"
            " status = excluded.status, attempts = excluded.attempts, messages = excluded.messages,"
            " result = excluded.result, error = excluded.error, updated_at = excluded.updated_at",
            (
                step.run_id,
                step.step_id,
                step.agent,
                step.status,
                step.attempts,
                _dumps(step.messages),
                step.result,
                _dumps(step.error),
                time.time(),
            ),
        )

    async def steps(self, run_id: str) -> dict[str, StepRecord]:
        async with self._db.execute(
            "SELECT run_id, step_id, agent, status, messages, attempts, result, error FROM steps WHERE run_id = ?",
            (run_id,),
        ) as cur:
            rows = await cur.fetchall()
        return {
            r[1]: StepRecord(r[0], r[1], r[2], r[3], _loads(r[4]), r[5], r[6], _loads(r[7])) for r in rows
        }

    # -- tool ledger -----------------------------------------------------------------
    async def tool_call(self, run_id: str, tool_call_id: str) -> ToolCallRecord | None:
        async with self._db.execute(
            "SELECT run_id, tool_call_id, step_id, name, arguments, status, executions, result FROM tool_calls"
            " WHERE run_id = ? AND tool_call_id = ?",
            (run_id, tool_call_id),
        ) as cur:
            row = await cur.fetchone()
        return ToolCallRecord(*row) if row else None

    async def tool_started(
        self, run_id: str, tool_call_id: str, step_id: str, name: str, arguments: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO tool_calls VALUES (?,?,?,?,?,'started',1,NULL,?,NULL)"
            " ON CONFLICT (run_id, tool_call_id) DO UPDATE SET status = 'started', executions = executions + 1,"
            " started_at = excluded.started_at",
            (run_id, tool_call_id, step_id, name, arguments, time.time()),
        )

    async def tool_finished(self, run_id: str, tool_call_id: str, status: str, result: str) -> None:
        await self._db.execute(
            "UPDATE tool_calls SET status = ?, result = ?, finished_at = ? WHERE run_id = ? AND tool_call_id = ?",
            (status, result, time.time(), run_id, tool_call_id),
        )

    async def tool_unknown(
        self, run_id: str, tool_call_id: str, step_id: str, name: str, arguments: str, result: str
    ) -> None:
        """Record a call whose outcome is unknown without running it (at-most-once)."""
        await self._db.execute(
            "INSERT INTO tool_calls VALUES (?,?,?,?,?,'unknown',0,?,NULL,?) ON CONFLICT (run_id, tool_call_id)"
            " DO UPDATE SET status = 'unknown', result = excluded.result, finished_at = excluded.finished_at",
            (run_id, tool_call_id, step_id, name, arguments, result, time.time()),
        )

    async def tool_calls(self, run_id: str) -> list[ToolCallRecord]:
        async with self._db.execute(
            "SELECT run_id, tool_call_id, step_id, name, arguments, status, executions, result FROM tool_calls"
            " WHERE run_id = ? ORDER BY started_at",
            (run_id,),
        ) as cur:
            return [ToolCallRecord(*r) for r in await cur.fetchall()]

    # -- events ----------------------------------------------------------------------
    async def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO events (run_id, ts, kind, data) VALUES (?,?,?,?)",
            (run_id, time.time(), kind, _dumps(data)),
        )

    async def events(self, run_id: str) -> list[dict[str, Any]]:
        async with self._db.execute(
            "SELECT ts, kind, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ) as cur:
            return [{"ts": r[0], "kind": r[1], **_loads(r[2])} for r in await cur.fetchall()]
