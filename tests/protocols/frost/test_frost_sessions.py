"""FROST sessions end to end: any message, any t-of-n, any signer subset; misuse is refused."""

from __future__ import annotations

import secrets

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.frost as frost
from curves import SecretScalar
from protocols.errors import FutureMessage, InvalidMessage, ProtocolAbort, UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.sign import SignSession
from protocols.rounds import Message
from protocols.sharing import interpolate_at_zero

FAST = settings(max_examples=40, deadline=None)


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    nacl.signing.VerifyKey(public_key).verify(message, signature)


@st.composite
def threshold_setup(draw, max_n: int = 5):
    n = draw(st.integers(2, max_n))
    t = draw(st.integers(2, n))  # RFC 9591: 2 ≤ t ≤ n
    signers = draw(st.sets(st.integers(1, n), min_size=t, max_size=n))
    return t, n, sorted(signers)


@FAST
@given(setup=threshold_setup(), message=st.binary(max_size=200))
def test_any_signer_subset_signs_any_message(setup, message) -> None:
    t, n, signers = setup
    shares = frost.trusted_dealer_keygen(t, n)
    signature = frost.sign([shares[i - 1] for i in signers], message)
    assert len(signature) == 64
    verify(shares[0].public_key, message, signature)


@settings(max_examples=20, deadline=None)
@given(setup=threshold_setup(max_n=4), message=st.binary(max_size=64))
def test_dkg_keys_sign(setup, message) -> None:
    t, n, signers = setup
    shares = frost.dkg(t, n)
    assert len({s.public_key for s in shares}) == 1
    for share in shares:
        share.validate()
        assert share.threshold == t and share.participants == tuple(range(1, n + 1))
    verify(shares[0].public_key, message, frost.sign([shares[i - 1] for i in signers], message))


def test_split_existing_ed25519_key_signs_for_it() -> None:
    seed = secrets.token_bytes(32)
    shares = frost.split_secret(frost.secret_scalar_from_seed(seed), 2, [1, 2, 3])
    assert shares[0].public_key == bytes(nacl.signing.SigningKey(seed).verify_key)
    verify(shares[0].public_key, b"imported", frost.sign(shares[1:], b"imported"))


def test_too_few_signers_refused() -> None:
    shares = frost.trusted_dealer_keygen(3, 5)
    with pytest.raises(UsageError):
        frost.sign(shares[:2], b"m")
    with pytest.raises(UsageError):
        SignSession(secrets.token_bytes(32), shares[0], [1, 2], b"m")
    with pytest.raises(UsageError):
        SignSession(secrets.token_bytes(32), shares[0], [1, 2, 6], b"m")  # 6 is no participant


@pytest.mark.parametrize("shares", [None, 5, b"shares", "shares", object()])
def test_signing_with_something_that_is_not_a_list_of_shares_is_a_usage_error(shares) -> None:
    with pytest.raises(UsageError, match="list of KeyShare"):
        frost.sign(shares, b"m")


def test_any_iterable_of_shares_signs() -> None:
    shares = frost.trusted_dealer_keygen(2, 2)
    for given in (tuple(shares), iter(shares), (share for share in shares)):
        verify(shares[0].public_key, b"m", frost.sign(given, b"m"))  # type: ignore[arg-type]


def test_shares_of_different_keys_refused() -> None:
    a, b = frost.trusted_dealer_keygen(2, 2), frost.trusted_dealer_keygen(2, 2)
    with pytest.raises(UsageError):
        frost.sign([a[0], b[1]], b"m")


def test_duplicate_future_and_foreign_messages_leave_state_unchanged() -> None:
    shares = frost.trusted_dealer_keygen(2, 2)
    session_id = secrets.token_bytes(32)
    a, b = (SignSession(session_id, s, [1, 2], b"msg") for s in shares)
    (a1,), (b1,) = a.start(), b.start()
    foreign = Message(a1.protocol, secrets.token_bytes(32), 1, 1, None, a1.payload)
    wrong_protocol = Message("frost/dkg", session_id, 1, 1, None, a1.payload)
    unknown_sender = Message(a1.protocol, session_id, 1, 3, None, a1.payload)
    for bad in (foreign, wrong_protocol, unknown_sender):
        with pytest.raises(InvalidMessage):
            b.receive(bad)
    (a2,) = a.receive(b1)
    with pytest.raises(FutureMessage):
        b.receive(a2)
    (b2,) = b.receive(a1)
    with pytest.raises(InvalidMessage):
        b.receive(a1)  # a round-1 message again: past round
    assert b.receive(a2) == [] and b.done
    with pytest.raises(InvalidMessage):
        b.receive(a2)  # duplicate after the end
    a.receive(b2)
    assert a.result() == b.result()
    verify(shares[0].public_key, b"msg", a.result())


def test_session_nonces_are_single_use() -> None:
    shares = frost.trusted_dealer_keygen(2, 2)
    session = SignSession(secrets.token_bytes(32), shares[0], [1, 2], b"m")
    session.start()
    with pytest.raises(UsageError):
        session.start()
    assert "redacted" in repr(session._nonces)


def test_refresh_keeps_key_and_old_shares_do_not_mix() -> None:
    secret = SecretScalar.random(SUITE.group)
    old = frost.split_secret(secret, 2, [1, 2, 3])
    new = frost.refresh(old)
    assert all(s.public_key == old[0].public_key for s in new)
    verify(new[0].public_key, b"r", frost.sign(new[:2], b"r"))
    shares = {1: old[0].signing_share.value, 2: new[1].signing_share.value}
    assert interpolate_at_zero(SUITE.group, shares) != secret.value
    assert interpolate_at_zero(SUITE.group, {1: new[0].signing_share.value, 2: shares[2]}) == secret.value
    with pytest.raises(ProtocolAbort):
        frost.sign([old[0], new[1]], b"mixed")


@settings(max_examples=20, deadline=None)
@given(
    old=threshold_setup(max_n=4),
    new_n=st.integers(2, 4),
    data=st.data(),
)
def test_reshare_to_any_new_threshold_and_party_set(old, new_n, data) -> None:
    t, n, dealers = old
    new_t = data.draw(st.integers(2, new_n))
    receivers = sorted(data.draw(st.sets(st.integers(1, 9), min_size=new_n, max_size=new_n)))
    secret = SecretScalar.random(SUITE.group)
    shares = frost.split_secret(secret, t, range(1, n + 1))
    new = frost.reshare([shares[i - 1] for i in dealers], new_t, receivers)
    assert [s.identifier for s in new] == receivers
    for share in new:
        share.validate()
        assert share.public_key == shares[0].public_key and share.threshold == new_t
    recovered = interpolate_at_zero(SUITE.group, {s.identifier: s.signing_share.value for s in new[:new_t]})
    assert recovered == secret.value
    verify(new[0].public_key, b"reshared", frost.sign(new[:new_t], b"reshared"))


def test_reshare_old_and_new_shares_do_not_mix() -> None:
    secret = SecretScalar.random(SUITE.group)
    old = frost.split_secret(secret, 2, [1, 2])
    new = frost.reshare(old, 2, [1, 2])
    assert interpolate_at_zero(SUITE.group, {1: old[0].signing_share.value, 2: new[1].signing_share.value}) != secret.value
    with pytest.raises(ProtocolAbort):
        frost.sign([old[0], new[1]], b"mixed")


def test_reshare_needs_t_old_holders() -> None:
    shares = frost.trusted_dealer_keygen(2, 3)
    with pytest.raises(UsageError):
        frost.reshare(shares[:1], 2, [1, 2])
