"""Two-party FROST in one round trip: signatures verify, every tampered field is refused with the
right culprit, no nonce is ever stored, and signers given different messages blame nobody."""

from __future__ import annotations

import dataclasses
import importlib
import secrets
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.frost as frost
from protocols.errors import InvalidMessage, MPCError, ProtocolAbort, UsageError
from protocols.frost.round_trip import InitiatorSession, ResponderSession
from protocols.frost.sign import SignSession
from protocols.local import run
from protocols.rounds import Message, Session

SHARES_2_OF_2 = frost.dkg(2, 2)
SHARES_2_OF_3 = frost.trusted_dealer_keygen(2, 3)


def pair(shares: Any, message: bytes, initiator: int = 0, responder: int = 1) -> list[Session]:
    sid = secrets.token_bytes(32)
    a, b = shares[initiator], shares[responder]
    return [InitiatorSession(sid, a, b.identifier, message), ResponderSession(sid, b, a.identifier, message)]


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=300), which=st.sampled_from([(0, 1), (1, 0), (0, 2), (2, 1)]))
def test_any_message_any_pair_signs(message: bytes, which: tuple[int, int]) -> None:
    shares = SHARES_2_OF_3 if max(which) == 2 else SHARES_2_OF_2
    first, second = run(pair(shares, message, *which))
    assert first == second
    nacl.signing.VerifyKey(shares[0].public_key).verify(message, first)


def test_fresh_nonces_every_run() -> None:
    signatures = {run(pair(SHARES_2_OF_2, b"same message"))[0] for _ in range(5)}
    assert len({sig[:32] for sig in signatures}) == 5


def test_misuse_is_refused() -> None:
    sid = secrets.token_bytes(32)
    with pytest.raises(UsageError):
        InitiatorSession(sid, SHARES_2_OF_2[0], SHARES_2_OF_2[0].identifier, b"m")  # itself as peer
    with pytest.raises(UsageError):
        InitiatorSession(sid, frost.trusted_dealer_keygen(3, 3)[0], 2, b"m")  # threshold 3
    with pytest.raises(UsageError):
        ResponderSession(sid, SHARES_2_OF_2[1], 7, b"m")  # not a participant
    with pytest.raises(UsageError):
        ResponderSession(sid, SHARES_2_OF_2[1], 1, "text")  # type: ignore[arg-type]


def test_no_nonce_is_ever_serialised() -> None:
    """The initiator holds its nonces between rounds: it cannot be parked. The responder uses
    its nonces in the step that draws them: parked after round 2 it holds none."""
    initiator, responder = pair(SHARES_2_OF_2, b"m")
    first = initiator.start()
    responder.start()
    with pytest.raises((UsageError, TypeError)):
        initiator.to_bytes()
    reply = responder.receive(first[0])
    parked = responder.to_bytes()
    resumed = Session.from_bytes(parked)
    assert not any("nonce" in name.lower() for name in vars(resumed))
    final = initiator.receive(reply[0])
    assert resumed.receive(final[0]) == [] and resumed.result() == initiator.result()


def _tampered_outcome(round_no: int, change: Any) -> MPCError:
    def tamper(msg: Message) -> Message:
        return change(msg) if msg.round == round_no else msg

    with pytest.raises(MPCError) as info:
        run(pair(SHARES_2_OF_2, b"tamper me"), tamper=tamper)
    return info.value


def _field(name: str, value: Any) -> Any:
    return lambda msg: dataclasses.replace(msg, payload={**msg.payload, name: value})


IDENTITY = "01" + "00" * 31
LOW_ORDER = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"


@pytest.mark.parametrize("name, value", [
    ("hiding", IDENTITY), ("binding", LOW_ORDER), ("hiding", "zz"), ("binding", "00" * 31),
    ("message_hash", "00" * 64),
])
def test_bad_round1_is_invalid(name: str, value: str) -> None:
    assert isinstance(_tampered_outcome(1, _field(name, value)), InvalidMessage)


@pytest.mark.parametrize("name, value", [("hiding", IDENTITY), ("binding", LOW_ORDER), ("sig_share", "ff" * 32)])
def test_bad_round2_is_invalid(name: str, value: str) -> None:
    assert isinstance(_tampered_outcome(2, _field(name, value)), InvalidMessage)


def test_wrong_signature_share_names_the_responder() -> None:
    outcome = _tampered_outcome(2, _field("sig_share", "01" + "00" * 31))
    assert isinstance(outcome, ProtocolAbort) and outcome.culprit == SHARES_2_OF_2[1].identifier


def test_swapped_responder_commitments_name_the_responder() -> None:
    def swap(msg: Message) -> Message:
        return dataclasses.replace(msg, payload={**msg.payload, "hiding": msg.payload["binding"],
                                                 "binding": msg.payload["hiding"]})

    outcome = _tampered_outcome(2, swap)
    assert isinstance(outcome, ProtocolAbort) and outcome.culprit == SHARES_2_OF_2[1].identifier


@pytest.mark.parametrize("signature", ["00" * 64, None])
def test_bad_final_signature_names_the_initiator(signature: str | None) -> None:
    other = run(pair(SHARES_2_OF_2, b"tamper me"))[0].hex()  # valid, but of another run
    outcome = _tampered_outcome(3, _field("signature", signature or other))
    assert isinstance(outcome, ProtocolAbort) and outcome.culprit == SHARES_2_OF_2[0].identifier


def test_different_messages_are_refused_before_any_nonce() -> None:
    sid = secrets.token_bytes(32)
    a, b = SHARES_2_OF_2
    initiator = InitiatorSession(sid, a, b.identifier, b"pay alice")
    responder = ResponderSession(sid, b, a.identifier, b"pay mallory")
    responder.start()
    with pytest.raises(InvalidMessage):
        responder.receive(initiator.start()[0])
    assert not responder.done and responder.aborted is None


def test_signers_given_different_messages_blame_nobody() -> None:
    """The general FROST session: honest signers with different inputs abort naming no one."""
    sid = secrets.token_bytes(32)
    sessions = [SignSession(sid, share, (1, 2), message)
                for share, message in zip(SHARES_2_OF_2, (b"pay alice", b"pay mallory"))]
    with pytest.raises(InvalidMessage):  # refused before any share is made: no abort, no culprit
        run(sessions)
    assert all(s.aborted is None and not s.done for s in sessions)


def test_finished_refresh_and_reshare_sessions_forget_the_old_share() -> None:
    """After a refresh or resharing, neither the session nor its parked bytes hold the old share."""
    shares = frost.dkg(2, 2)
    sid = secrets.token_bytes(32)
    sessions = [frost.RefreshSession(sid, share, (1, 2)) for share in shares]
    run(sessions)
    for session, old in zip(sessions, shares):
        assert session.key_share is None
        assert old.signing_share.to_bytes().hex() not in session.to_bytes().decode()
    sid = secrets.token_bytes(32)
    resharing = [frost.ReshareSession(sid, share.identifier, dealers=(1, 2), receivers=(1, 2), new_threshold=2,
                                      key_share=share) for share in shares]
    run(resharing)
    assert all(session.key_share is None for session in resharing)


class _CountingSodium:
    """Counts the libsodium calls made through a module's handle, then makes them."""

    def __init__(self, real: Any, counts: dict[str, int]) -> None:
        self._real, self._counts = real, counts

    def __getattr__(self, name: str) -> Any:
        function = getattr(self._real, name)

        def call(*args: Any) -> Any:
            self._counts[name] = self._counts.get(name, 0) + 1
            return function(*args)

        return call


def _two_round_pair(shares: Any, message: bytes) -> list[Session]:
    sid = secrets.token_bytes(32)
    return [SignSession(sid, share, [s.identifier for s in shares], message) for share in shares]


_TWO_ROUNDS_CALLS = {
    "crypto_scalarmult_ed25519_base_noclamp": 6,
    "crypto_core_ed25519_is_valid_point": 2,
    "crypto_scalarmult_ed25519_noclamp": 2,
    "crypto_core_ed25519_add": 4,
    "crypto_sign_open": 2,
}
# The initiator checks D_R's subgroup only when the aggregate fails (round_trip's docstring).
_ROUND_TRIP_CALLS = {**_TWO_ROUNDS_CALLS, "crypto_core_ed25519_is_valid_point": 1}


@pytest.mark.parametrize("sessions, calls", [(pair, _ROUND_TRIP_CALLS), (_two_round_pair, _TWO_ROUNDS_CALLS)],
                         ids=["one round trip", "two rounds"])
def test_a_2_of_2_sign_makes_the_fewest_curve_operations(monkeypatch: pytest.MonkeyPatch, sessions: Any,
                                                         calls: dict[str, int]) -> None:
    """The libsodium calls of one run (benchmarks/README.md "FROST sign"): per side, the two
    commitments and the own term (d + ρe)·B (fixed base), the peer's E decoded by the
    multiplication ρ·E, two additions for R and one verification; the peer's D decoded by each
    side of the two-round session and by the responder of the round trip (its initiator checks
    D_R only when the aggregate fails). A change that adds a curve operation, or drops a check,
    fails here."""
    counts: dict[str, int] = {}
    ed25519_module = importlib.import_module("curves.ed25519")
    suite_module = importlib.import_module("protocols.frost.ciphersuite")
    monkeypatch.setattr(ed25519_module, "_lib", _CountingSodium(ed25519_module._lib, counts))
    monkeypatch.setattr(suite_module, "lib", _CountingSodium(suite_module.lib, counts))
    first, second = run(sessions(SHARES_2_OF_2, b"counted"))
    assert first == second
    assert counts == calls
