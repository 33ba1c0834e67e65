"""One connection whose timeout cannot be acted on must not end the worker's sweep.

Seen on CI: a peer that had already gone made ``write_eof`` raise ENOTCONN inside the
sweep, the sweep task died, and from then on no header, body or idle timeout fired in that
worker (slow clients were held for ever). The refusal now treats a gone peer as closed, and
the sweep closes a connection whose expiry fails instead of dying with it.
"""

from __future__ import annotations

from gateway.http.intake import IntakeGuard
from gateway.settings import ServerSettings


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Conn:
    """What the guard sees of a connection, past its deadline."""

    def __init__(self, fails: bool) -> None:
        self.phase = 0
        self.deadline = 0.0
        self.answering = False
        self.transport = _Transport()
        self.fails = fails
        self.expired = False

    def expire(self, now: float) -> None:
        if self.fails:
            raise OSError(107, "Transport endpoint is not connected")
        self.expired = True


def test_a_failing_expiry_is_closed_and_the_others_still_expire() -> None:
    guard = IntakeGuard(ServerSettings())
    bad, good = _Conn(fails=True), _Conn(fails=False)
    guard.connections.update({bad, good})  # type: ignore[arg-type]
    guard.sweep(now=1.0)
    assert good.expired
    assert bad.transport.closed and bad not in guard.connections
