"""Kept connections of the device-side clients (issue 30; ``docs/operations.md``, Kept connections).

A client that offers ``mpc.wire.KEEP_ALIVE_SUBPROTOCOL`` may send its next request on the
connection of its last successful one; :class:`KeptConnection` holds that connection with the
challenge its last result carried (``next_challenge``), :class:`Lease` is one request's use of a
connection, and :func:`closed_idle` tells a kept connection the service closed unread. No I/O
here: ``mpc.remote.blocking`` opens and closes the connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mpc.wire import IDLE_CLOSE_REASON, KEEP_ALIVE_SUBPROTOCOL

__all__ = ["KEEP_IDLE", "KeptConnection", "Lease", "closed_idle"]

KEEP_IDLE = 5.0  # seconds a kept connection is reused after its last request (the service waits 10 s by default)


class KeptConnection:
    """The connection of the last request that succeeded, kept for the next one (issue 30: a
    connection and its handshakes per signature cost the service ~1 ms of CPU). Kept only when
    the service accepted ``KEEP_ALIVE_SUBPROTOCOL`` (an older service closes it after one request),
    for ``KEEP_IDLE`` seconds; each request takes it out, so concurrent requests of one client
    object use connections of their own. The service checks every request in full, so reusing a
    connection changes no authorisation (``docs/operations.md``, Kept connections)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[Any, float, bytes | None] | None = None

    def __repr__(self) -> str:
        return "KeptConnection()"

    def take(self) -> tuple[Any | None, bytes | None, Any | None]:
        """(the kept connection, if it is recent, or None; the challenge its last result carried
        for the next request, or None; a stale connection to close now, or None)."""
        with self._lock:
            kept, self._kept = self._kept, None
        if kept is None:
            return None, None, None
        if self._clock() - kept[1] > KEEP_IDLE:
            return None, None, kept[0]
        return kept[0], kept[2], None

    def put(self, ws: Any, challenge: bytes | None) -> Any | None:
        """Keep ``ws`` (its request succeeded; ``challenge``: what its result carried) if the
        service kept it too; the connection to close now, if any (``ws``, or the one it replaces)."""
        if getattr(ws, "subprotocol", None) != KEEP_ALIVE_SUBPROTOCOL:
            return ws
        with self._lock:
            older, self._kept = self._kept, (ws, self._clock(), challenge)
        return None if older is None else older[0]

    def drop(self) -> Any | None:
        """Forget the kept connection; it is returned to be closed."""
        with self._lock:
            kept, self._kept = self._kept, None
        return None if kept is None else kept[0]


class Lease:
    """One request's connection (``ws``): the challenge it may sign its request over
    (``challenge``, from the kept connection's last result) and the one its own result carried
    (``next``, kept with the connection)."""

    __slots__ = ("ws", "challenge", "next")

    def __init__(self, ws: Any, challenge: bytes | None) -> None:
        self.ws = ws
        self.challenge = challenge
        self.next: bytes | None = None

    def __repr__(self) -> str:
        return "Lease()"


def closed_idle(exc: BaseException) -> bool:
    """Whether ``exc`` is a kept connection the service closed idle (``IDLE_CLOSE_REASON``): it
    read nothing of that connection since its last request, so the request sent on it was not
    processed and goes on a new connection at once (not a retry)."""
    rcvd = getattr(exc, "rcvd", None)
    return getattr(rcvd, "reason", None) == IDLE_CLOSE_REASON
