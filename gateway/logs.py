"""Logging: one line per record on stderr, as text or as JSON lines (``server.log_format``).

Configured once in the app's lifespan (never at import), and only if the operator has not
configured the ``wardgate`` logger already (e.g. with a dictConfig of their own).

JSON lines carry what a log pipeline joins on: the request id, and when the record is logged
inside a call, its key id, team, agent and run (``CURRENT_CALL``, set by the proxy endpoint
for the call's task). Only those names and a short allow-list of ``extra`` fields are copied:
never the call's body, headers or the key itself.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

#: The call the current task serves (``gateway.call.Call``), for the JSON lines' ids.
CURRENT_CALL: ContextVar[Any] = ContextVar("wardgate_current_call", default=None)

#: ``extra`` fields copied into a JSON line (ids and decisions, never content or secrets).
_EXTRA = ("request_id", "approval_id", "approval_status", "policy_revision", "entity_types", "status")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, ids of the call when known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = CURRENT_CALL.get()
        if call is not None:
            line["request_id"] = call.request_id
            principal = call.principal
            if principal is not None:
                line["key_id"] = principal.key_id
                line["team"] = principal.team
            if call.agent_id:
                line["agent"] = call.agent_id
            if call.run_id:
                line["run"] = call.run_id
        for name in _EXTRA:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")


def configure(level: str, log_format: str = "text") -> None:
    logger = logging.getLogger("wardgate")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """uvicorn's own lines (start, stop, access) in the same format; None: uvicorn's default."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "gateway.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
