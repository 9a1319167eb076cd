"""Signing: python-ecdsa accepts every signature, low-s, recovery id, encodings, tampering."""

from __future__ import annotations

import hashlib

import ecdsa
import pytest
from ecdsa.util import sigdecode_der, sigdecode_string
from hypothesis import example, given, settings
from hypothesis import strategies as st

from curves import secp256k1
from protocols import ecdsa2p
from protocols.ecdsa2p import CLIENT, CUSTODIAN, P1KeyShare, P2KeyShare, Signature, SignP1, SignP2
from protocols.ecdsa2p import recover_public_key
from protocols.errors import InvalidMessage, UsageError
from tests.protocols.ecdsa2p.harness import (
    Scenario, Sessions, check_signature, copy_p1, new_sid, results_if_done, tamper_round,
)

Q = secp256k1.order
DIGESTS = st.binary(min_size=32, max_size=32)


@settings(max_examples=25, deadline=None)
@given(digest=DIGESTS)
@example(digest=bytes(32))
@example(digest=b"\xff" * 32)  # above the group order: reduced only inside the arithmetic
@example(digest=Q.to_bytes(32, "big"))  # ≡ 0 mod q
def test_every_signature_verifies_is_low_s_and_recovers(pair: tuple[P1KeyShare, P2KeyShare], digest: bytes) -> None:
    p1, p2 = pair
    sig = ecdsa2p.sign(p1, p2, digest)
    check_signature(p1.public_key, digest, sig)
    assert 0 < sig.r < Q and 0 < sig.s <= Q // 2
    assert recover_public_key(digest, sig) == p1.public_point
    assert Signature.from_bytes(sig.to_bytes(), sig.recid) == sig
    assert len(sig.to_bytes()) == 64
    r, s = sigdecode_der(sig.to_der(), Q)
    assert (r, s) == (sig.r, sig.s)
    assert ecdsa.util.sigencode_der(sig.r, sig.s, Q) == sig.to_der()
    assert sigdecode_string(sig.to_bytes(), Q) == (sig.r, sig.s)


@settings(max_examples=6, deadline=None)
@given(digest=DIGESTS)
def test_recid_and_ethereum_v(pair: tuple[P1KeyShare, P2KeyShare], digest: bytes) -> None:
    p1, p2 = pair
    sig = ecdsa2p.sign(p1, p2, digest)
    assert sig.recid in (0, 1)  # R.x ≥ q has probability ~2^-128
    assert sig.v == 27 + sig.recid
    other = Signature(sig.r, sig.s, sig.recid ^ 1)
    assert recover_public_key(digest, other) != p1.public_point


def test_a_few_fresh_keys_sign(custodian_setup: ecdsa2p.CustodianSetup) -> None:
    for _ in range(2):
        p1, p2 = ecdsa2p.keygen(custodian_setup)
        for digest in (hashlib.sha256(b"a").digest(), b"\x01" * 32):
            check_signature(p1.public_key, digest, ecdsa2p.sign(p1, p2, digest))


def test_both_parties_output_the_same_signature(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    sid, digest = new_sid(), b"\x42" * 32
    s1, s2 = _run(SignP1(sid, p1, digest), SignP2(sid, p2, digest))
    assert s1 == s2


def _run(*sessions: object) -> list[object]:
    from protocols.local import run

    return run(list(sessions))  # type: ignore[arg-type]


def test_signatures_are_randomised(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    assert ecdsa2p.sign(p1, p2, bytes(32)).r != ecdsa2p.sign(p1, p2, bytes(32)).r


def test_digest_must_be_32_bytes(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    for bad in (b"", b"\x00" * 31, b"\x00" * 33, "00" * 32):
        with pytest.raises(UsageError):
            SignP1(new_sid(), p1, bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            SignP2(new_sid(), p2, bad)  # type: ignore[arg-type]


def test_parties_must_agree_on_the_digest(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    sid = new_sid()
    with pytest.raises(InvalidMessage):
        _run(SignP1(sid, copy_p1(p1), b"\x01" * 32), SignP2(sid, p2, b"\x02" * 32))


def test_session_cannot_be_started_twice(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    """A session is one nonce: restarting it (and reusing k1 or k2) is impossible."""
    p1, p2 = pair
    s1, s2 = SignP1(new_sid(), p1, bytes(32)), SignP2(new_sid(), p2, bytes(32))
    s1.start()
    s2.start()
    with pytest.raises(UsageError):
        s1.start()
    with pytest.raises(UsageError):
        s2.start()


def test_nonces_are_fresh_per_session(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, _ = pair
    first = SignP1(new_sid(), p1, bytes(32)).start()[0].payload["commitment"]
    second = SignP1(new_sid(), p1, bytes(32)).start()[0].payload["commitment"]
    assert first != second


# --- tampering -----------------------------------------------------------------------------------
def sign_scenario(p1: P1KeyShare, p2: P2KeyShare) -> Scenario:
    digest = hashlib.sha256(b"tamper me").digest()

    def make() -> Sessions:
        sid = new_sid()
        return {CLIENT: SignP1(sid, copy_p1(p1), digest), CUSTODIAN: SignP2(sid, p2, digest)}

    def check(sessions: Sessions, tampered_by: int | None) -> None:
        for sig in results_if_done(sessions).values():
            check_signature(p1.public_key, digest, sig)
        if tampered_by is None:
            assert sessions[CLIENT].result() == sessions[CUSTODIAN].result()

    return Scenario(make, check)


@pytest.fixture(scope="module")
def scenario(pair: tuple[P1KeyShare, P2KeyShare]) -> Scenario:
    return sign_scenario(*pair)


@pytest.mark.parametrize("round_no", [1, 2, 3, 4, 5])
def test_tampering_any_field_is_refused(scenario: Scenario, round_no: int) -> None:
    outcomes = tamper_round(scenario, round_no)
    assert outcomes
    assert "accepted" not in outcomes.values() or round_no == 1, outcomes


def test_tampered_recid_is_caught_by_the_custodian(scenario: Scenario) -> None:
    outcomes = tamper_round(scenario, 5, only=lambda label: label.startswith("recid: low bit"))
    assert outcomes == {"recid: low bit flipped": "ProtocolAbort"}


def test_crafted_final_ciphertext_aborts_instead_of_locking(scenario: Scenario) -> None:
    """A c3 the proof does not cover is refused before decryption: an abort, never a lock."""
    outcomes = tamper_round(scenario, 4, only=lambda label: label.startswith("c3:"))
    assert outcomes and set(outcomes.values()) <= {"ProtocolAbort", "invalid"}, outcomes
