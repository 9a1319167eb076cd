"""The signature type and verification: Wycheproof secp256k1 vectors, encodings, recovery ids.

``verify_signature`` takes a 32-byte digest, so each vector's message is hashed with SHA-256
first. ``Signature`` holds low-s signatures only (Bitcoin and Ethereum rules): a high-s vector is
checked through its low-s twin (r, q - s), which is valid exactly when (r, s) is, and through a
raw (r, s) pair given straight to ``verify_signature`` (it reads only ``r`` and ``s``).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import ecdsa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ecdsa.util import sigdecode_der, sigencode_der

from curves import InvalidEncoding, secp256k1
from curves.secp256k1 import P as FIELD_P
from protocols.ecdsa2p import Signature, recover_public_key, verify_signature
from protocols.ecdsa2p.signature import verified_nonce_point
from protocols.errors import InvalidMessage, UsageError
from tests.fixtures.vectors import load_vector
from tests.protocols.ecdsa2p.harness import check_signature

Q = secp256k1.order


def _vectors(name: str) -> list[tuple[Any, dict[str, Any]]]:
    """The (public key, test) pairs of a vendored Wycheproof file (``tests/vectors/wycheproof``);
    a missing file fails the test."""
    data = load_vector("wycheproof", name)
    out = []
    for group in data["testGroups"]:
        key = group["publicKey"]
        point = secp256k1.point_from_affine(int(key["wx"], 16), int(key["wy"], 16))
        out += [(point, test) for test in group["tests"]]
    return out


def _raw_verify(point: Any, digest: bytes, r: int, s: int) -> bool:
    return verify_signature(point, digest, SimpleNamespace(r=r, s=s))  # type: ignore[arg-type]


def _check(point: Any, test: dict[str, Any], r: int, s: int, *, low_s_only: bool = False) -> None:
    digest = hashlib.sha256(bytes.fromhex(test["msg"])).digest()
    expected = test["result"] == "valid"
    in_range = 0 < r < Q and 0 < s < Q
    if not low_s_only:
        assert _raw_verify(point, digest, r, s) is expected, test["tcId"]
    if not in_range:
        assert not expected or test["result"] == "acceptable"
        with pytest.raises(InvalidMessage):
            Signature(r, s, 0)
        return
    if s > Q // 2:
        with pytest.raises(InvalidMessage):  # the type refuses high-s ...
            Signature(r, s, 0)
        if low_s_only:  # ... as Bitcoin does: there, a high-s signature is invalid
            assert not expected, test["tcId"]
            return
        s = Q - s  # ... and its low-s twin verifies exactly when (r, s) does
    assert verify_signature(point, digest, Signature(r, s, 0)) is expected, test["tcId"]


def test_wycheproof_p1363() -> None:
    count = 0
    for point, test in _vectors("ecdsa_secp256k1_sha256_p1363_test.json"):
        sig = bytes.fromhex(test["sig"])
        if len(sig) != 64:
            assert test["result"] == "invalid"
            with pytest.raises(InvalidMessage):
                Signature.from_bytes(sig)
            continue
        _check(point, test, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        count += 1
    assert count > 100


def _strict_der(sig_hex: str) -> tuple[int, int] | None:
    raw = bytes.fromhex(sig_hex)
    try:
        r, s = sigdecode_der(raw, Q)
    except Exception:  # python-ecdsa's DER errors: the vector is an encoding test
        return None
    return (r, s) if r > 0 and s > 0 and sigencode_der(r, s, Q) == raw else None


@pytest.mark.parametrize("name, low_s_only", [("ecdsa_secp256k1_sha256_test.json", False),
                                              ("ecdsa_secp256k1_sha256_bitcoin_test.json", True)])
def test_wycheproof_der(name: str, low_s_only: bool) -> None:
    count = 0
    for point, test in _vectors(name):
        decoded = _strict_der(test["sig"])
        if decoded is None:
            assert test["result"] != "valid", test["tcId"]
            continue
        _check(point, test, *decoded, low_s_only=low_s_only)
        if test["result"] == "valid" and decoded[1] <= Q // 2:
            assert Signature(*decoded, 0).to_der() == bytes.fromhex(test["sig"])
        count += 1
    assert count > 100


def _signature_with_large_x() -> tuple[Any, bytes, Signature]:
    """A valid signature whose R has x ≥ q (recid bit 1): pick R and s, solve for the key."""
    x = _large_x()
    r_point = secp256k1.decode_point(b"\x02" + x.to_bytes(32, "big"))
    digest, s = b"\x33" * 32, 7
    sig = Signature.from_nonce_point(r_point, s)
    r = x - Q
    public = (r_point * s - secp256k1.base_mul(int.from_bytes(digest, "big"))) * pow(r, -1, Q)
    return public, digest, sig


def _is_x_coordinate(x: int) -> bool:
    try:
        secp256k1.decode_point(b"\x02" + x.to_bytes(32, "big"))
    except InvalidEncoding:
        return False
    return True


def _large_x() -> int:
    return next(x for x in range(Q + 1, FIELD_P) if _is_x_coordinate(x))


def test_recid_marks_r_point_x_above_the_order() -> None:
    public, digest, sig = _signature_with_large_x()
    assert sig.recid & 2
    assert verify_signature(public, digest, sig)
    assert recover_public_key(digest, sig) == public
    check_signature(public.to_bytes(), digest, sig)


def test_recovery_refuses_impossible_values() -> None:
    with pytest.raises(InvalidMessage):  # x = r + q beyond the field
        recover_public_key(b"\x01" * 32, Signature(FIELD_P - Q + 5, 1, 2))
    with pytest.raises(InvalidMessage):  # an r that is no curve point's x-coordinate
        recover_public_key(b"\x01" * 32, Signature(_no_point_x(), 1, 0))


def _no_point_x() -> int:
    return next(x for x in range(1, 100) if not _is_x_coordinate(x))


def test_encodings() -> None:
    sig = Signature(1, 2, 1)
    assert sig.to_bytes() == (1).to_bytes(32, "big") + (2).to_bytes(32, "big")
    assert sig.to_der() == bytes.fromhex("3006020101020102")
    assert Signature(Q - 1, Q // 2, 0).to_der() == sigencode_der(Q - 1, Q // 2, Q)
    assert Signature(0x80, 0x7F, 0).to_der() == bytes.fromhex("30070202008002017f")
    with pytest.raises(InvalidMessage):
        Signature.from_bytes(b"\x00" * 63)
    for bad in ((0, 1, 0), (1, 0, 0), (Q, 1, 0), (1, Q // 2 + 1, 0), (1, 1, 4), (1, 1, -1)):
        with pytest.raises(InvalidMessage):
            Signature(*bad)
    assert (Signature(1, 1, 0).v, Signature(1, 1, 1).v) == (27, 28)


def test_verify_rejects_bad_digest_lengths() -> None:
    with pytest.raises(UsageError):
        verify_signature(secp256k1.base_mul(3), b"\x00" * 31, Signature(1, 1, 0))


def test_python_ecdsa_signatures_verify_after_low_s_normalisation() -> None:
    key = ecdsa.SigningKey.generate(curve=ecdsa.SECP256k1)
    public = secp256k1.decode_point(key.get_verifying_key().to_string("compressed"))
    for i in range(8):
        digest = hashlib.sha256(bytes([i])).digest()
        r, s = sigdecode_der(key.sign_digest(digest, sigencode=sigencode_der), Q)
        assert verify_signature(public, digest, Signature(r, min(s, Q - s), 0))


def _recovers(public: Any, digest: bytes, sig: Signature) -> bool:
    try:
        return recover_public_key(digest, sig) == public
    except InvalidMessage:
        return False


@settings(max_examples=25, deadline=None)
@given(secret=st.integers(1, Q - 1), nonce=st.integers(1, Q - 1), digest=st.binary(min_size=32, max_size=32))
def test_the_verified_nonce_point_names_the_recid_that_recovers(secret: int, nonce: int, digest: bytes) -> None:
    """The custodian's one-verification recid check (``sign.check_client_signature``) accepts
    exactly the recovery id that recovers the key (SEC1 4.1.6), of the four."""
    public = secp256k1.base_mul(secret)
    r_point = secp256k1.base_mul(nonce)
    r = secp256k1.affine(r_point)[0] % Q
    s = pow(nonce, -1, Q) * (int.from_bytes(digest, "big") % Q + r * secret) % Q
    signed = Signature.from_nonce_point(r_point, s)
    for recid in range(4):
        sig = Signature(signed.r, signed.s, recid)
        x, y = verified_nonce_point(public, digest, sig)  # type: ignore[misc]
        assert (recid == (y & 1) | (2 if x >= Q else 0)) == _recovers(public, digest, sig)
    other_s = signed.s - 1 if signed.s > 1 else 2  # still low-s; no longer the signature
    assert verified_nonce_point(public, digest, Signature(signed.r, other_s, signed.recid)) is None


def test_the_verified_nonce_point_of_a_large_x() -> None:
    public, digest, sig = _signature_with_large_x()
    x, y = verified_nonce_point(public, digest, sig)  # type: ignore[misc]
    assert x >= Q and sig.recid == (y & 1) | 2
