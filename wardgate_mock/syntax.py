"""The stdlib's regex parse tree: the one private API the mock uses, imported only here.

Two parts of the mock need a client's ``pattern`` as a tree, not as a compiled ``re``
object: ``wardgate_mock.regex`` builds a linear-time NFA from it (running a client's
pattern with ``re`` can backtrack for minutes), and ``wardgate_mock.pattern`` builds an
example string that matches it. Python offers no public parse tree, and a parser of our own
would have to copy ``re``'s syntax (escapes, flags, classes, repeats, Unicode rules) exactly,
or the mock would judge a pattern differently from the ``re`` a client's validator runs. So
the stdlib's parser (``re._parser``; ``sre_parse`` before 3.11) is used, from this module
only, and only by the mock: the product (``gateway/``) never touches it.

When an interpreter no longer has it, ``parse`` raises ``Unsupported`` and both users
degrade the way they already do for a pattern beyond them: no example is built and no
pattern is checked (the arguments may then not match the pattern; the mock still answers).
``tests/providers/test_providers_mock_seam.py`` keeps every other module off ``re._parser``.
"""

from __future__ import annotations

from typing import Any

try:  # Python 3.11+
    import re._constants as _constants
    import re._parser as _parser
except ImportError:  # pragma: no cover - an interpreter that moved or dropped it
    _parser = None
    _constants = None

#: ``{m,}`` and ``*`` carry this as their upper bound (None when the parser is missing).
MAXREPEAT: Any = _constants.MAXREPEAT if _constants is not None else None


class Unsupported(ValueError):
    """The interpreter has no regex parse tree to offer."""


def parse(pattern: str) -> Any:
    """``pattern``'s parse tree (a ``SubPattern``: a list of ``(op, arg)`` with ``.state.flags``).

    Raises ``re.error`` for an invalid pattern, like ``re.compile``, and ``Unsupported`` when
    the interpreter has no parser to offer.
    """
    if _parser is None:
        raise Unsupported("this Python has no re._parser")
    return _parser.parse(pattern)
