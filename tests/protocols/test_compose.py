"""``protocols.compose``: a composite carries its children's messages inside its own, decodes them
as strictly as ``Message.from_bytes`` does, and a rejected message changes nothing."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from typing import Any

import pytest

from protocols.compose import Composite, child_session_id
from protocols.errors import InvalidMessage
from protocols.local import run
from protocols.rounds import Message, Session


class Ping(Session):
    protocol = "test/ping"

    def _begin(self) -> list[Message]:
        self._expect(2)
        return [self._message(1, {"ping": "00"}, 2)]

    def _decode_round2(self, msg: Message) -> str:
        return str(msg.payload["pong"])

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        self._finish(inputs[2])
        return []


class Pong(Session):
    protocol = "test/ping"

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> str:
        return str(msg.payload["ping"])

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        self._finish(inputs[1])
        return [self._message(2, {"pong": "01"}, 1)]


class Pair(Composite):
    """The initiator says hello and starts its child; the responder starts its own at the hello."""

    protocol = "test/pair"

    def __init__(self, session_id: bytes | None, party_id: int) -> None:
        super().__init__(session_id, party_id, (1, 2))
        self.receives = 0

    def receive(self, msg: Message) -> list[Message]:
        self.receives += 1
        return super().receive(msg)

    def _child(self) -> Session:
        kind = Ping if self.party_id == 1 else Pong
        return kind(child_session_id(self.session_id, "c"), self.party_id, (1, 2))

    def _begin(self) -> list[Message]:
        if self.party_id == 2:
            return []
        return [self._step("hello", {})] + self._add_children({"c": self._child()})

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        if name != "hello" or self.party_id != 2 or self._children:
            raise InvalidMessage("unexpected step")
        return None

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        return self._add_children({"c": self._child()})

    def _on_children_done(self) -> list[Message]:
        self._finish(self.child("c").result())
        return []


def test_children_run_inside_the_composite() -> None:
    sid = secrets.token_bytes(32)
    initiator, responder = Pair(sid, 1), Pair(None, 2)
    assert run([initiator, responder]) == ["01", "00"]
    # The responder took the session id from the first message and ran it through its own
    # receive once (a subclass's receive wraps every message exactly once).
    assert responder.session_id == sid and responder.receives == 2


def _inner_tampered(msg: Message, change: Any) -> Message:
    inner = dict(msg.payload["message"])
    change(inner)
    return dataclasses.replace(msg, payload={"child": msg.payload["child"], "message": inner})


@pytest.mark.parametrize("change", [
    lambda o: o.update(session_id=" ".join(o["session_id"][i:i + 2] for i in range(0, 64, 2))),
    lambda o: o.update(session_id=o["session_id"].upper()),
    lambda o: o.update(session_id=secrets.token_hex(32)),  # another child's or run's id
    lambda o: o.update(v=True),
    lambda o: o.update(extra=1),
    lambda o: o.pop("recipient"),
    lambda o: o.update(sender=2),  # not the outer message's sender
    lambda o: o.update(payload={}),  # the child's own decoder refuses it
    lambda o: o.update(protocol="test/other"),
])
def test_a_tampered_child_message_is_refused_and_changes_nothing(change: Any) -> None:
    initiator, responder = Pair(secrets.token_bytes(32), 1), Pair(None, 2)
    hello, child_message = initiator.start()
    responder.start()
    responder.receive(Message.from_bytes(hello.to_bytes()))
    with pytest.raises(InvalidMessage):
        responder.receive(Message.from_bytes(_inner_tampered(child_message, change).to_bytes()))
    # The genuine message is still accepted, and the run completes.
    (reply,) = responder.receive(Message.from_bytes(child_message.to_bytes()))
    assert initiator.receive(Message.from_bytes(reply.to_bytes())) == []
    assert initiator.result() == "01" and responder.result() == "00"


def test_a_refused_first_message_leaves_the_responder_unbound() -> None:
    sid = secrets.token_bytes(32)
    initiator, responder = Pair(sid, 1), Pair(None, 2)
    hello, _ = initiator.start()
    responder.start()
    bad = dataclasses.replace(hello, payload={"step": "goodbye", "data": {}})
    with pytest.raises(InvalidMessage):
        responder.receive(bad)
    assert responder.session_id == bytes(32)
    responder.receive(hello)
    assert responder.session_id == sid
