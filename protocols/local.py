"""In-memory driver: runs a set of sessions to completion.

Every message goes through its wire encoding (``to_bytes`` then ``Message.from_bytes``), exactly
as a real transport would move it, so in-memory runs exercise the same decoding paths. The
optional ``tamper`` hook sees each message on the wire and may return it unchanged, return an
altered message (or raw bytes), or return ``None`` to drop it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from protocols.errors import FutureMessage, UsageError
from protocols.rounds import Message, Session

__all__ = ["run", "Tamper"]

Tamper = Callable[[Message], "Message | bytes | None"]


class Stalled(UsageError):
    """No session can make progress: a message was dropped or a session waits forever."""


def _wire(msg: Message | bytes) -> Message:
    data = msg if isinstance(msg, bytes) else msg.to_bytes()
    return Message.from_bytes(data)


def run(sessions: Sequence[Session], tamper: Tamper | None = None) -> list[Any]:
    """Deliver messages among ``sessions`` until all are done; return their results in order.

    Errors raised by a session (``InvalidMessage`` for a tampered message, ``ProtocolAbort``,
    ``KeyLocked``) propagate to the caller; ``FutureMessage`` only defers the delivery.
    """
    by_party = {s.party_id: s for s in sessions}
    if len(by_party) != len(sessions):
        raise UsageError("two sessions with the same party id")
    queue: deque[tuple[int, Message]] = deque()

    def post(messages: list[Message]) -> None:
        for msg in messages:
            wire: Message | bytes = msg
            if tamper is not None:
                tampered = tamper(msg)
                if tampered is None:
                    continue
                wire = tampered
            delivered = _wire(wire)
            targets = [p for p in by_party if p != msg.sender] if msg.recipient is None else [msg.recipient]
            queue.extend((party, delivered) for party in targets if party in by_party)

    for session in sessions:
        post(session.start())
    deferred = 0
    while queue:
        party, msg = queue.popleft()
        try:
            post(by_party[party].receive(msg))
            deferred = 0
        except FutureMessage:
            queue.append((party, msg))
            deferred += 1
            if deferred > len(queue):
                raise Stalled("no session can accept any queued message") from None
    waiting = [s.party_id for s in sessions if not s.done]
    if waiting:
        raise Stalled(f"parties {waiting} did not finish (a message was dropped?)")
    return [s.result() for s in sessions]
