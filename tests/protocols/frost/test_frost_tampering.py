"""Tampering with any field of any round's message is refused, naming the right culprit.

One message is altered on the wire (the same altered message reaches every recipient of a
broadcast), which models a malicious sender: its own verdict is ignored. Every recipient of the
altered message must refuse it (``InvalidMessage``, then wait) or abort; an honest party's
abort names the sender, or nobody where the fault cannot be attributed (views that differ among
three or more parties, see ``protocols.frost.broadcast``). No honest party ever outputs a wrong
signature or a key that the others do not share.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import nacl.signing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.frost as frost
from protocols.errors import FutureMessage, InvalidMessage, ProtocolAbort
from protocols.frost.dkg import DKGSession
from protocols.frost.reshare import RefreshSession, ReshareSession
from protocols.frost.sign import SignSession
from protocols.local import run
from protocols.rounds import Message, Session

HEX = "0123456789abcdef"


def sign_sessions(t: int, n: int) -> Callable[[], list[Session]]:
    shares = frost.trusted_dealer_keygen(t, n)[:t]
    sid = secrets.token_bytes(32)
    return lambda: [SignSession(sid, s, [x.identifier for x in shares], b"tampered?") for s in shares]


def dkg_sessions(t: int, n: int) -> Callable[[], list[Session]]:
    sid = secrets.token_bytes(32)
    return lambda: [DKGSession(sid, i, range(1, n + 1), t) for i in range(1, n + 1)]


def refresh_sessions(t: int, n: int) -> Callable[[], list[Session]]:
    shares = frost.trusted_dealer_keygen(t, n)
    sid = secrets.token_bytes(32)
    return lambda: [RefreshSession(sid, s, range(1, n + 1)) for s in shares]


def reshare_sessions(t: int, n: int) -> Callable[[], list[Session]]:
    shares = frost.trusted_dealer_keygen(t, n)
    sid = secrets.token_bytes(32)
    receivers = [1, n + 1, n + 2]

    def make() -> list[Session]:
        return [
            ReshareSession(
                sid, p, dealers=range(1, n + 1), receivers=receivers, new_threshold=2,
                key_share=shares[p - 1] if p <= n else None,
                group_public_key=shares[0].group_public_key, old_verifying_shares=shares[0].verifying_shares,
            )
            for p in sorted(set(range(1, n + 1)) | set(receivers))
        ]

    return make


PROTOCOLS = {
    "sign 2-of-2": sign_sessions(2, 2),
    "sign 3-of-4": sign_sessions(3, 4),
    "dkg 2-of-2": dkg_sessions(2, 2),
    "dkg 2-of-3": dkg_sessions(2, 3),
    "refresh 2-of-2": refresh_sessions(2, 2),
    "reshare 2-of-2 to 2-of-3": reshare_sessions(2, 2),
}


def count_messages(make: Callable[[], list[Session]]) -> int:
    seen = []
    run(make(), tamper=lambda m: seen.append(m) or m)
    return len(seen)


COUNTS = {name: count_messages(make) for name, make in PROTOCOLS.items()}


def flip_hex(value: str, position: int, replacement: int) -> str:
    position %= len(value)
    choices = HEX.replace(value[position], "")
    return value[:position] + choices[replacement % len(choices)] + value[position + 1 :]


def mutate(payload: dict, data: st.DataObject) -> dict:
    """One change to one field: a changed hex digit, a changed list, a wrong type, a missing or extra key."""
    payload = dict(payload)
    key = data.draw(st.sampled_from(sorted(payload)))
    value = payload[key]
    kind = data.draw(st.sampled_from(["flip", "type", "drop", "extra", "list"]))
    if kind == "drop":
        del payload[key]
    elif kind == "extra":
        payload["extra"] = "00"
    elif kind == "type":
        payload[key] = data.draw(st.sampled_from([0, None, True, "", "zz", {"a": "00"}]))
    elif kind == "list" and isinstance(value, Sequence) and not isinstance(value, str):
        payload[key] = list(value[:-1]) if data.draw(st.booleans()) else list(value) + [value[0]]
    elif isinstance(value, str):
        payload[key] = flip_hex(value, data.draw(st.integers(0, 10**6)), data.draw(st.integers(0, 15)))
    else:  # a list of hex strings: flip one digit of one element
        items = list(value)
        i = data.draw(st.integers(0, len(items) - 1))
        items[i] = flip_hex(items[i], data.draw(st.integers(0, 10**6)), data.draw(st.integers(0, 15)))
        payload[key] = items
    return payload


def run_all(sessions: list[Session], tamper: Callable[[Message], Message]) -> dict[int, Any]:
    """Like ``local.run`` but goes on after a party fails: {party: result or exception}."""
    by_party = {s.party_id: s for s in sessions}
    queue: deque[tuple[int, Message]] = deque()
    outcome: dict[int, Any] = {}

    def post(messages: list[Message]) -> None:
        for msg in messages:
            wire = Message.from_bytes(tamper(msg).to_bytes())
            targets = [p for p in by_party if p != msg.sender] if msg.recipient is None else [msg.recipient]
            queue.extend((p, wire) for p in targets)

    for session in sessions:
        post(session.start())
    deferred = 0
    while queue and deferred <= len(queue):
        party, msg = queue.popleft()
        if isinstance(outcome.get(party), ProtocolAbort):
            continue
        try:
            post(by_party[party].receive(msg))
            deferred = 0
        except FutureMessage:
            queue.append((party, msg))
            deferred += 1
        except (InvalidMessage, ProtocolAbort) as exc:
            outcome[party] = exc
            deferred = 0
    for s in sessions:
        if s.done:
            outcome[s.party_id] = s.result()
    return outcome


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(PROTOCOLS)), data=st.data())
def test_any_tampered_field_is_refused(name: str, data: st.DataObject) -> None:
    target = data.draw(st.integers(0, COUNTS[name] - 1))
    state: dict[str, Any] = {"count": 0, "msg": None}

    def tamper(msg: Message) -> Message:
        state["count"] += 1
        if state["count"] - 1 != target:
            return msg
        state["msg"] = msg
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, mutate(msg.payload, data))

    sessions = PROTOCOLS[name]()
    outcome = run_all(sessions, tamper)
    bad: Message = state["msg"]
    honest = [s.party_id for s in sessions if s.party_id != bad.sender]
    recipients = honest if bad.recipient is None else [bad.recipient]
    for party in recipients:
        assert party not in outcome or isinstance(outcome[party], Exception), "tampered message accepted"
    results = {outcome[p] for p in honest if p in outcome and not isinstance(outcome[p], Exception)}
    for party in honest:
        verdict = outcome.get(party)
        if isinstance(verdict, ProtocolAbort):
            allowed = (bad.sender,) if len(sessions) == 2 else (bad.sender, None)
            assert verdict.culprit in allowed, verdict
    if name.startswith("sign"):
        public_key = sessions[0].key_share.public_key
        for signature in results:
            nacl.signing.VerifyKey(public_key).verify(b"tampered?", signature)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_tampered_dealt_share_names_the_dealer(name: str) -> None:
    """A share that does not match the dealer's commitment (or a bad signature share)."""
    victim_round = 2

    def tamper(msg: Message) -> Message:
        key = "sig_share" if "sig_share" in msg.payload else "share"
        if msg.round != victim_round or key not in msg.payload or msg.sender != 1:
            return msg
        payload = dict(msg.payload)
        payload[key] = (1).to_bytes(32, "little").hex()
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, payload)

    sessions = PROTOCOLS[name]()
    if not any(s.party_id == 1 for s in sessions):
        pytest.skip("party 1 takes no part")
    with pytest.raises(ProtocolAbort) as caught:
        run(sessions, tamper=tamper)
    assert caught.value.culprit == 1
