"""``tweaked(t)`` on the share types: the pair signs under Q + t·G (ECDSA, Π_c3 over Q2 + t·G) and
A + t·B (FROST), verified by ordinary single-key verifiers; a tweak on one side only is caught."""

from __future__ import annotations

import hashlib
import secrets

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import VerifyKey

from curves import ed25519, secp256k1
from protocols import ecdsa2p, frost
from protocols.errors import ProtocolAbort, UsageError


@pytest.fixture(scope="module")
def ecdsa_pair(custodian_setup: ecdsa2p.CustodianSetup) -> tuple[ecdsa2p.P1KeyShare, ecdsa2p.P2KeyShare]:
    return ecdsa2p.keygen(custodian_setup)


@pytest.fixture(scope="module")
def frost_pair() -> list[frost.KeyShare]:
    return frost.dkg(2, 2)


def test_tweaked_ecdsa_pair_signs_under_the_child_key(ecdsa_pair) -> None:  # type: ignore[no-untyped-def]
    p1, p2 = ecdsa_pair
    for tweak in (1, secp256k1.random_scalar()):
        c1, c2 = p1.tweaked(tweak), p2.tweaked(tweak)
        child = secp256k1.decode_point(p1.public_key) + secp256k1.base_mul(tweak)
        assert c1.public_key == c2.public_key == child.to_bytes() and c1.q1 == p1.q1
        assert c2.x2.public_point() == c1.q2 and c1.c_key == p1.c_key
        digest = hashlib.sha256(secrets.token_bytes(8)).digest()
        signature = ecdsa2p.sign(c1, c2, digest)
        assert coincurve.PublicKey(c1.public_key).verify(signature.to_der(), digest, hasher=None)
        assert ecdsa2p.P2KeyShare.from_bytes(c2.to_bytes()).public_key == c2.public_key
    assert p1.tweaked(0).public_key == p1.public_key


def test_a_one_sided_ecdsa_tweak_is_refused_by_the_c3_proof(ecdsa_pair) -> None:  # type: ignore[no-untyped-def]
    p1, p2 = ecdsa_pair
    with pytest.raises(ProtocolAbort) as info:
        ecdsa2p.sign(p1.copy().tweaked(5), p2.tweaked(6), bytes(32))
    assert info.value.culprit == 2  # the client checks Π_c3 against its own Q2 + t·G: no decryption, no lock


def test_tweaked_frost_shares_sign_under_the_child_key() -> None:
    shares = frost.dkg(2, 2)
    tweak = ed25519.random_scalar()
    tweaked = [share.tweaked(tweak) for share in shares]
    child = shares[0].group_public_key + ed25519.base_mul(tweak)
    assert all(share.group_public_key == child for share in tweaked)
    for share in tweaked:
        share.validate()
        assert frost.KeyShare.from_bytes(share.to_bytes()).public_key == child.to_bytes()
    message = b"child key message"
    signature = frost.sign(tweaked, message)
    VerifyKey(child.to_bytes()).verify(message, signature)


def test_tweaks_must_be_scalars(ecdsa_pair) -> None:  # type: ignore[no-untyped-def]
    p1, p2 = ecdsa_pair
    share = frost.dkg(2, 2)[0]
    for bad in (-1, secp256k1.order, 1.5, True):
        with pytest.raises(UsageError):
            p1.tweaked(bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            p2.tweaked(bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        share.tweaked(ed25519.order)


@settings(max_examples=10, deadline=None)
@given(a=st.integers(0, secp256k1.order - 1), b=st.integers(0, secp256k1.order - 1))
def test_ecdsa_tweaks_compose_and_keep_the_pair_consistent(ecdsa_pair, a: int, b: int) -> None:  # type: ignore[no-untyped-def]
    p1, p2 = ecdsa_pair
    both = (a + b) % secp256k1.order
    c1, c2 = p1.tweaked(a).tweaked(b), p2.tweaked(a).tweaked(b)
    assert c1.public_key == c2.public_key == p1.tweaked(both).public_key
    assert c2.x2.value == p2.tweaked(both).x2.value and c2.x2.public_point() == c1.q2
    assert secp256k1.decode_point(c1.public_key) == c1.q1 + c1.q2  # Q' = Q1 + Q2' (x1 unchanged)


@settings(max_examples=10, deadline=None)
@given(a=st.integers(0, ed25519.order - 1), b=st.integers(0, ed25519.order - 1))
def test_frost_tweaks_compose_and_stay_a_valid_sharing(frost_pair, a: int, b: int) -> None:  # type: ignore[no-untyped-def]
    both = (a + b) % ed25519.order
    for share in frost_pair:
        twice, once = share.tweaked(a).tweaked(b), share.tweaked(both)
        twice.validate()
        assert twice.group_public_key == once.group_public_key == share.group_public_key + ed25519.base_mul(both)
        assert twice.signing_share == once.signing_share


@pytest.fixture(scope="module")
def other_frost_pair() -> list[frost.KeyShare]:
    return frost.dkg(2, 2)


@settings(max_examples=10, deadline=None)
@given(tweak=st.integers(0, ed25519.order - 1))
def test_frost_tweaked_equals_the_formula_on_every_call(frost_pair, other_frost_pair, tweak: int) -> None:  # type: ignore[no-untyped-def]
    """The public half of ``tweaked`` is cached: a repeated call, the other party's share of the
    same key and a share of another key with the same tweak all match s + t, Y_k + t·B, PK + t·B."""
    shift = ed25519.base_mul(tweak)
    for share in [*frost_pair, *other_frost_pair]:
        for tweaked in (share.tweaked(tweak), share.tweaked(tweak)):
            assert tweaked.signing_share.value == (share.signing_share.value + tweak) % ed25519.order
            assert dict(tweaked.verifying_shares) == {i: y + shift for i, y in share.verifying_shares.items()}
            assert tweaked.group_public_key == share.group_public_key + shift
            assert (tweaked.identifier, tweaked.participants) == (share.identifier, share.participants)
