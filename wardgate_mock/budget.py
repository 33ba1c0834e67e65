"""What one mock answer may spend on filling arguments, however hostile the request.

A tool schema is the client's: ``$ref`` cycles fan out exponentially, ``minLength`` and
``minItems`` can ask for gigabytes, a ``pattern`` can backtrack for ever, and a long message
can be copied into thousands of properties. Every fill of one answer (all its tool calls, or
its structured output) draws on one ``Budget``, so the mock's time and output stay bounded,
and deterministic: it counts work, it never reads a clock. A normal schema and message use a
tiny fraction of it; past it, values fall back to the neutral one of their type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    #: Schema nodes filled (and list entries scanned: ``anyOf``, ``allOf``, ``enum``).
    nodes: int = 20_000
    #: Regex simulation steps and text scans (about a microsecond each at most).
    steps: int = 60_000
    #: Characters of the strings and keys put into arguments.
    chars: int = 1_000_000

    def take_nodes(self, n: int = 1) -> bool:
        """Spend ``n`` nodes; False (and nothing spent) when fewer are left."""
        if self.nodes < n:
            return False
        self.nodes -= n
        return True

    def take_steps(self, n: int) -> bool:
        if self.steps < n:
            self.steps = 0  # a search that ran out stops every later one too
            return False
        self.steps -= n
        return True

    def take_chars(self, n: int) -> bool:
        if self.chars < n:
            return False
        self.chars -= n
        return True
