"""RFC 9380 hash-to-curve suites for secp256k1 and edwards25519 against the RFC's vectors."""

from __future__ import annotations

import pytest

from curves import CurveError, ed25519, secp256k1
from curves import ed25519_h2c, secp256k1_h2c
from tests.fixtures.vectors import load_vector


def _sec1(x_hex: str, y_hex: str) -> bytes:
    return bytes([2 + (int(y_hex, 16) & 1)]) + bytes.fromhex(x_hex)


def _ed(x_hex: str, y_hex: str) -> bytes:
    return (int(y_hex, 16) | (int(x_hex, 16) & 1) << 255).to_bytes(32, "little")


def test_secp256k1_suite_matches_rfc9380_vectors() -> None:
    data = load_vector("hash_to_curve", "secp256k1_xmd_sha-256_sswu_ro.json")
    assert data["ciphersuite"] == secp256k1_h2c.SUITE_ID
    dst = data["dst"].encode()
    for vector in data["vectors"]:
        msg = vector["msg"].encode()
        u0, u1 = secp256k1_h2c.hash_to_field_secp256k1(msg, 2, dst)
        assert (u0, u1) == (int(vector["u[0]"], 16), int(vector["u[1]"], 16))
        assert secp256k1_h2c.map_to_curve(u0).to_bytes() == _sec1(vector["Q0.x"], vector["Q0.y"])
        assert secp256k1_h2c.map_to_curve(u1).to_bytes() == _sec1(vector["Q1.x"], vector["Q1.y"])
        assert secp256k1_h2c.hash_to_curve(msg, dst).to_bytes() == _sec1(vector["P.x"], vector["P.y"])


def test_edwards25519_suite_matches_rfc9380_vectors() -> None:
    data = load_vector("hash_to_curve", "edwards25519_xmd_sha-512_ell2_ro.json")
    assert data["ciphersuite"] == ed25519_h2c.SUITE_ID
    dst = data["dst"].encode()
    for vector in data["vectors"]:
        point = ed25519_h2c.hash_to_curve(vector["msg"].encode(), dst)
        assert point.to_bytes() == _ed(vector["P.x"], vector["P.y"])
    assert len(data["vectors"]) == 5


def test_outputs_are_in_the_prime_order_group() -> None:
    for i in range(8):
        point = ed25519_h2c.hash_to_curve(bytes([i]), b"test")
        assert (point * ed25519.order).is_identity and not point.is_identity
        assert ed25519_h2c.map_to_curve(i) * ed25519.order == ed25519.identity()
        assert not secp256k1_h2c.hash_to_curve(bytes([i]), b"test").is_identity
    assert ed25519_h2c.hash_to_curve(b"a", b"one") != ed25519_h2c.hash_to_curve(b"a", b"two")


def test_field_elements_out_of_range_are_refused() -> None:
    with pytest.raises(CurveError):
        secp256k1_h2c.map_to_curve(secp256k1_h2c.P)
    with pytest.raises(CurveError):
        ed25519_h2c.map_to_curve(-1)
    assert secp256k1_h2c.map_to_curve(0).group is secp256k1  # the exceptional case tv1 = 0
