"""Test harness for two-party ECDSA: scenarios, checkpoints on the wire, field-by-field tampering.

A *scenario* builds a fresh pair of sessions (client P1 = party 1, custodian P2 = party 2) and
checks any result an honest party outputs. ``checkpoint`` runs the pair with ``local.run`` and
its tamper hook until the message of one round is on the wire, holds that message back and
returns it: the receiving session then waits for it, and tests deliver altered copies.

``tamper_round`` alters one field of one round's message at a time (drop it, add an unknown
field, wrong type, wrong length, out of range, another run's valid value) and checks the rule of
docs/architecture.md section 2: the receiver refuses it with ``InvalidMessage`` and keeps its state (the
same session later accepts the honest message and finishes correctly), or aborts naming the
sender, or (client receiving the final ciphertext) locks; if the altered message is accepted,
the run goes on and every honest output must still be correct. The sender of an altered message
is treated as malicious: its own verdict is ignored.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ecdsa
import pytest
from ecdsa.util import sigdecode_der

from protocols.ecdsa2p import CLIENT, CUSTODIAN, P1KeyShare, Signature
from protocols.errors import InvalidMessage, KeyLocked, MPCError, ProtocolAbort
from protocols.local import Stalled, run
from protocols.rounds import Message, Session

Sessions = Mapping[int, Session]


def copy_p1(share: P1KeyShare) -> P1KeyShare:
    """An independent P1 share object (locking it leaves ``share`` alone)."""
    return share.copy()


def new_sid() -> bytes:
    return secrets.token_bytes(32)


def wire(msg: Message) -> Message:
    return Message.from_bytes(msg.to_bytes())


def check_signature(public_key: bytes, digest: bytes, sig: Signature) -> None:
    """python-ecdsa accepts it, it is low-s, and its recid recovers the key (coincurve too)."""
    vk = ecdsa.VerifyingKey.from_string(public_key, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(sig.to_der(), digest, sigdecode=sigdecode_der)
    assert sig.s <= ecdsa.SECP256k1.order // 2
    coincurve = pytest.importorskip("coincurve")
    recovered = coincurve.PublicKey.from_signature_and_message(
        sig.to_bytes() + bytes([sig.recid]), digest, hasher=None
    )
    assert recovered.format(compressed=True) == public_key


def checkpoint(sessions: Sessions, round_no: int) -> Message:
    """Run ``sessions`` until round ``round_no``'s message is sent; hold it back and return it."""
    held: list[Message] = []

    def hold(msg: Message) -> Message | None:
        if msg.round == round_no and not held:
            held.append(msg)
            return None
        return msg

    with pytest.raises(Stalled):
        run([sessions[CLIENT], sessions[CUSTODIAN]], tamper=hold)
    assert held, f"no message of round {round_no}"
    return held[0]


def deliver(sessions: Sessions, messages: Iterable[Message]) -> tuple[int, MPCError] | None:
    """Deliver messages in lockstep; the first error stops it and is returned with its party."""
    queue = deque(messages)
    while queue:
        msg = queue.popleft()
        assert msg.recipient is not None
        try:
            queue.extend(sessions[msg.recipient].receive(wire(msg)))
        except MPCError as exc:
            return msg.recipient, exc
    return None


@dataclass
class Scenario:
    """``make()`` builds fresh sessions; ``check(sessions)`` validates every honest result."""

    make: Callable[[], Sessions]
    check: Callable[[Sessions, int | None], None]
    _other: dict[int, Mapping[str, Any]] | None = None

    def other_payloads(self) -> dict[int, Mapping[str, Any]]:
        """Round number -> payload of one honest run (the "another run's value" source), cached."""
        if self._other is not None:
            return self._other
        seen: dict[int, Mapping[str, Any]] = {}

        def record(msg: Message) -> Message:
            seen[msg.round] = msg.payload
            return msg

        sessions = self.make()
        run([sessions[CLIENT], sessions[CUSTODIAN]], tamper=record)
        self._other = seen
        return seen


# --- mutations ----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def value_mutations(value: Any, other: Any) -> Iterator[tuple[str, Any]]:
    """Wrong type, wrong length, out of range, and another run's value for one payload field."""
    yield "wrong type (int)", 7
    yield "wrong type (list)", [_plain(value)]
    yield "null", None
    if isinstance(value, bool):
        yield "flipped", not value
        yield "as int", int(value)
    elif isinstance(value, int):
        yield "low bit flipped", value ^ 1
        yield "negative", -1
        yield "out of range", 4
        yield "as bool", bool(value)
        yield "huge", 2**70
        yield "as string", str(value)
    elif isinstance(value, str):
        n = len(value) // 2
        yield "truncated", value[:-2]
        yield "extended", value + "00"
        yield "leading zero byte", "00" + value
        yield "odd length", value[:-1]
        yield "non-hex", "zz" + value[2:]
        yield "all ff", "ff" * n
        yield "all zero", "00" * n
        yield "empty", ""
        if value.upper() != value:
            yield "uppercase", value.upper()
    elif isinstance(value, Mapping):
        first = sorted(value)[0]
        yield "nested field dropped", {k: _plain(v) for k, v in value.items() if k != first}
        yield "nested unknown field", {**_plain(value), "zz": "00"}
        yield "empty object", {}
    if other is not None and _plain(other) != _plain(value):
        yield "another run's value", _plain(other)


def payload_mutations(payload: Mapping[str, Any], other: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    base = _plain(payload)
    yield "unknown field added", {**base, "extra": "00"}
    for key in sorted(base):
        yield f"{key}: dropped", {k: v for k, v in base.items() if k != key}
        for label, value in value_mutations(payload[key], other.get(key)):
            yield f"{key}: {label}", {**base, key: value}


# --- the tampering rule ----------------------------------------------------------------------------
def _check_error(party: int, exc: MPCError, sender: int, what: str) -> None:
    if party == sender:
        return  # the tampering party's own verdict does not count
    if isinstance(exc, ProtocolAbort):
        assert exc.culprit == sender, f"{what}: abort names party {exc.culprit}, not {sender}"
    elif isinstance(exc, KeyLocked):
        assert party == CLIENT and sender == CUSTODIAN, f"{what}: unexpected KeyLocked"
    else:
        assert isinstance(exc, InvalidMessage), f"{what}: {type(exc).__name__}"


def tamper_round(scenario: Scenario, round_no: int, only: Callable[[str], bool] = lambda label: True) -> dict[str, str]:
    """Apply every mutation to round ``round_no``'s message; returns label -> outcome."""
    other = scenario.other_payloads()[round_no]
    pending = [label for label, _ in payload_mutations(other, {}) if only(label)]
    pending += [f"{key}: another run's value" for key in sorted(other) if only(f"{key}: another run's value")]
    outcomes: dict[str, str] = {}
    sessions: Sessions | None = None
    honest: Message | None = None
    for label in pending:
        if sessions is None:
            sessions = scenario.make()
            honest = checkpoint(sessions, round_no)
        assert honest is not None
        payload = dict(payload_mutations(honest.payload, other)).get(label)
        if payload is None:
            continue  # e.g. "another run's value" equal to this run's (a long-lived setup)
        outcomes[label], sessions = _attempt(scenario, sessions, honest, payload, label)
    if sessions is not None and honest is not None:
        # The receiver refused every altered copy and kept its state: the honest message works.
        assert deliver(sessions, [honest]) is None
        scenario.check(sessions, None)
    return outcomes


def _attempt(scenario: Scenario, sessions: Sessions, honest: Message, payload: dict[str, Any],
             label: str) -> tuple[str, Sessions | None]:
    """Deliver one altered copy; returns the outcome and the sessions if still usable."""
    assert honest.recipient is not None
    receiver = sessions[honest.recipient]
    waiting = receiver.awaiting_round
    try:
        replies = receiver.receive(wire(dataclasses.replace(honest, payload=payload)))
    except InvalidMessage as exc:
        assert not isinstance(exc, ProtocolAbort)
        assert receiver.awaiting_round == waiting and receiver.aborted is None, label
        return "invalid", sessions
    except (ProtocolAbort, KeyLocked) as exc:
        _check_error(honest.recipient, exc, honest.sender, label)
        return type(exc).__name__, None
    failure = deliver(sessions, replies)
    if failure is not None:
        _check_error(*failure, honest.sender, label)
    scenario.check(sessions, honest.sender)
    return ("later " + type(failure[1]).__name__) if failure else "accepted", None


def results_if_done(sessions: Sessions) -> dict[int, Any]:
    return {p: s.result() for p, s in sessions.items() if s.done}
