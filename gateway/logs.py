"""Logging: one line per record on stderr; audit lines are already JSON.

Configured once in the app's lifespan (never at import), and only if the operator has not
configured the ``wardgate`` logger already (e.g. with a dictConfig of their own).
"""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    logger = logging.getLogger("wardgate")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
