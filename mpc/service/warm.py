"""Warm sessions (issue 30; ``mpc.service.worker``, Warm sessions): the sessions this worker
process parked, kept decoded with the version of that park until it expires, so the session's
next step on this process skips decoding its stored state. The store stays the truth: a warm
copy is used only for the very park it was made from, and serves one step at most."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from protocols.rounds import Session

__all__ = ["WARM_SESSIONS", "forget_warm", "warm_sessions"]


class _Warm:
    """A session this process parked, kept decoded with the version of that park until the park
    expires (then it is dropped: no decoded secret state outlives its parked row)."""

    __slots__ = ("version", "session", "expires")

    def __init__(self, version: bytes, session: Session, expires: float) -> None:
        self.version, self.session, self.expires = version, session, expires

    def __repr__(self) -> str:
        return "_Warm(<session>)"  # the session holds secrets


WARM_SESSIONS = 64  # decoded sessions kept per process (the least recently parked go first)
_WARM: OrderedDict[tuple[str, str], _Warm] = OrderedDict()
_WARM_LOCK = threading.Lock()


def _keep_warm(db: str, session_id: str, version: bytes, session: Session, ttl: float) -> None:
    """Keep ``session``, just parked as ``version`` for ``ttl`` seconds, for this process's next
    step of it (the least recently parked and the expired ones go)."""
    now = time.time()
    with _WARM_LOCK:
        _WARM[(db, session_id)] = _Warm(version, session, now + ttl)
        _WARM.move_to_end((db, session_id))
        for key in [key for key, warm in _WARM.items() if warm.expires < now]:
            del _WARM[key]
        while len(_WARM) > WARM_SESSIONS:
            _WARM.popitem(last=False)


def _take_warm(db: str, session_id: str) -> _Warm | None:
    """The warm session of ``session_id`` (removed: a warm session serves one step at most)."""
    with _WARM_LOCK:
        warm = _WARM.pop((db, session_id), None)
    return warm if warm is not None and warm.expires >= time.time() else None


def forget_warm(session_id: str) -> None:
    """Drop this process's warm copies of ``session_id``: its steps moved to another lane
    (``pool.LanePool``), so the copy here is of an older park and would only keep its secrets
    in memory until the park expires."""
    with _WARM_LOCK:
        for key in [key for key in _WARM if key[1] == session_id]:
            del _WARM[key]


def warm_sessions(db: str) -> int:
    """How many sessions of ``db`` this process keeps warm (tests, metrics)."""
    with _WARM_LOCK:
        return sum(1 for key in _WARM if key[0] == db)
