"""Two-party composition: several child sessions side by side over one message channel.

A wallet operation runs, for example, two-party ECDSA keygen on secp256k1 and a FROST DKG on
ed25519 at the same time, plus a few steps of its own (a confirmation, an encrypted backup).
``Composite`` carries all of that as one session between the same two parties:

- every outer message carries exactly one inner item, either a child's message
  (``{"child": name, "message": <the child's wire object>}``) or a step of the composite itself
  (``{"step": name, "data": {...}}``), so a rejected message never half-applies;
- outer rounds are per-sender sequence numbers 1, 2, 3, …: a message ahead of the next expected
  number is a ``FutureMessage`` (keep it, deliver it later), one behind it a duplicate;
- a child's session id is derived from the composite's (``child_session_id``), so a child
  message can never be replayed into another run or another child;
- children may be added while the composite runs (e.g. after a step delivered their inputs);
  a message for a child that does not exist yet is a ``FutureMessage``;
- a responder may be created without a session id (``session_id=None``): it then takes the id
  of the first message it accepts from its peer (which must be that peer's message number 1),
  so a caller that only knows "the next operation" can still be driven.

Subclasses define ``_begin`` (usually ``self._add_children(...)``), ``_decode_step(name, data,
sender)`` (pure: raise ``InvalidMessage``/``ProofError``), ``_on_step(name, value, sender)`` and
``_on_children_done()``; each returns the messages to send.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from collections.abc import Mapping
from typing import Any

from protocols.errors import FutureMessage, InvalidMessage, MPCError
from protocols.rounds import Message, Session

__all__ = ["Composite", "child_session_id"]

_CHILD_NAME_MAX = 32


@lru_cache(maxsize=256)
def child_session_id(session_id: bytes, name: str) -> bytes:
    """The session id of child ``name``: SHA-256 over a tag, the parent id and the name (public
    values: a composite derives each child's id twice, to make the child and to check it)."""
    h = hashlib.sha256()
    for item in (b"portal-mpc/compose/child/v1", session_id, name.encode()):
        h.update(len(item).to_bytes(8, "big") + item)
    return h.digest()


def _inner_message(obj: Any) -> Message:
    """The child message an outer message carries, checked as ``Message.from_bytes`` checks it.

    Its object is part of the outer message, whose payload is frozen JSON (and whose bytes were
    canonical, if it came from the wire): it is read as it is, never encoded and parsed again."""
    if not isinstance(obj, Mapping):
        raise InvalidMessage("child message must be an object")
    return Message.from_wire_object(obj)


class Composite(Session):
    """Child sessions and composite steps between two parties, one item per message."""

    def __init__(self, session_id: bytes | None, party_id: int, parties: tuple[int, int]) -> None:
        self._unbound = session_id is None
        super().__init__(bytes(32) if session_id is None else session_id, party_id, parties)
        if len(self.parties) != 2:
            raise InvalidMessage("a composite runs between exactly two parties")
        first, second = self.parties
        self.peer = second if first == party_id else first  # ``self.peers[0]``, without building the tuple
        self._children: dict[str, Session] = {}
        self._sent = 0
        self._next_from_peer = 1
        self._children_done = False

    # --- for subclasses -------------------------------------------------------------------------
    def _add_children(self, children: Mapping[str, Session]) -> list[Message]:
        """Start new children (their ids must come from ``child_session_id``)."""
        out: list[Message] = []
        for name, child in children.items():
            if name in self._children or len(name) > _CHILD_NAME_MAX:
                raise InvalidMessage(f"bad child name {name!r}")
            if child.session_id != child_session_id(self.session_id, name):
                raise InvalidMessage("child session id must be derived with child_session_id")
            self._children[name] = child
        for name, child in children.items():
            out += self._wrap_children(name, child.start())
        return out + self._check_children_done()

    def child(self, name: str) -> Session:
        """The child session registered as ``name`` (``KeyError`` if there is none)."""
        return self._children[name]

    def _step(self, name: str, data: Mapping[str, Any]) -> Message:
        """An outer message carrying one step of the composite itself."""
        return self._outer({"step": name, "data": dict(data)})

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_children_done(self) -> list[Message]:
        return []

    # --- the channel --------------------------------------------------------------------------
    def _begin(self) -> list[Message]:
        raise NotImplementedError

    def start(self) -> list[Message]:
        messages = super().start()
        self._round = self._next_from_peer  # the base class's notion of "round": next sequence number
        return messages

    def _outer(self, payload: Mapping[str, Any]) -> Message:
        self._sent += 1
        return Message(self.protocol, self.session_id, self._sent, self.party_id, self.peer, payload)

    def _wrap_children(self, name: str, messages: list[Message]) -> list[Message]:
        return [self._outer({"child": name, "message": m.wire_object()}) for m in messages]

    def _check_children_done(self) -> list[Message]:
        if self._children_done or not self._children or not all(c.done for c in self._children.values()):
            return []
        self._children_done = True
        return self._on_children_done()

    def receive(self, msg: Message) -> list[Message]:
        self._raise_if_aborted()
        if self._unbound and isinstance(msg, Message) and msg.round == 1:
            return self._receive_binding(msg)
        self._check_outer_envelope(msg)
        return self._dispatch(msg)

    def _dispatch(self, msg: Message) -> list[Message]:
        """A message that passed the envelope check, to the child or step it carries."""
        payload = msg.payload
        if set(payload) == {"child", "message"}:
            return self._receive_child(msg)
        if set(payload) == {"step", "data"}:
            return self._receive_step(msg)
        raise InvalidMessage("outer message must carry one child message or one step")

    def _receive_binding(self, msg: Message) -> list[Message]:
        """Take the session id of the peer's first message, unless that message is rejected."""
        if self._sent:
            raise InvalidMessage("a responder without a session id must not speak first")
        self.session_id = msg.session_id
        self._unbound = False
        try:
            # ``Composite.receive``, not ``self.receive``: a subclass's own ``receive`` (the custodian's
            # derived-randomness scope, its lock) is running for this message already and called us.
            return Composite.receive(self, msg)
        except Exception:  # rejected (or the session ended on it): the responder stays unbound
            if self._next_from_peer == 1:
                self.session_id, self._unbound = bytes(32), True
            raise

    def _check_outer_envelope(self, msg: Message) -> None:
        if not isinstance(msg, Message):
            raise InvalidMessage("not a Message")
        if msg.protocol != self.protocol:
            raise InvalidMessage(f"message for protocol {msg.protocol!r}, expected {self.protocol!r}")
        if self._unbound:
            raise FutureMessage("waiting for the peer's first message")
        if msg.session_id != self.session_id:
            raise InvalidMessage("message for another session")
        if msg.sender != self.peer or msg.recipient != self.party_id:
            raise InvalidMessage("message between the wrong parties")
        if self._done:
            raise InvalidMessage("session already finished")
        if not self._started or msg.round > self._next_from_peer:
            raise FutureMessage("message ahead of the expected sequence number")
        if msg.round < self._next_from_peer:
            raise InvalidMessage("duplicate or past message")

    def _accepted(self) -> None:
        self._next_from_peer += 1
        self._round = self._next_from_peer

    def _receive_child(self, msg: Message) -> list[Message]:
        name = msg.payload["child"]
        if not isinstance(name, str):
            raise InvalidMessage("child name must be a string")
        if name not in self._children:
            raise FutureMessage(f"no child {name!r} yet")
        inner = _inner_message(msg.payload["message"])
        if inner.sender != msg.sender or inner.recipient not in (None, self.party_id):
            raise InvalidMessage("child message between the wrong parties")
        child = self._children[name]
        produced = self._guard(lambda: child.receive(inner), culprit=msg.sender)
        self._accepted()
        out = self._wrap_children(name, produced)
        return out + self._guard(self._check_children_done)

    def _receive_step(self, msg: Message) -> list[Message]:
        name, data = msg.payload["step"], msg.payload["data"]
        if not isinstance(name, str) or not isinstance(data, Mapping):
            raise InvalidMessage("malformed step")
        value = self._guard(lambda: self._decode_pure(name, data, msg.sender), culprit=msg.sender)
        self._accepted()
        return self._guard(lambda: self._on_step(name, value, msg.sender))

    def _decode_pure(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        try:
            return self._decode_step(name, data, sender)
        except MPCError:
            raise
        except Exception as exc:  # a hostile payload must only ever surface as InvalidMessage
            raise InvalidMessage(f"malformed step {name!r}") from exc
