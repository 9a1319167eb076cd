"""ed25519 on libsodium called directly (cffi) agrees with the ``nacl.bindings`` wrappers.

``curves.ed25519`` skips PyNaCl's Python wrappers; these tests pin that every operation gives
the wrapper's result, that decoding rejects the same inputs, and that ``decode_point_mul`` (one
libsodium multiplication that also validates its input) accepts and rejects exactly what
``decode_point`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium
from nacl.exceptions import TypeError as SodiumTypeError

from curves import InvalidEncoding, Point, ed25519
from curves.ed25519 import L

P_FIELD = 2**255 - 19
scalars = st.integers(min_value=1, max_value=L - 1)


def _le(value: int) -> bytes:
    return value.to_bytes(32, "little")


def _with_torsion(point: Point) -> bytes:
    """point + (0, -1): on the curve, outside the prime-order subgroup."""
    encoded = bytearray(point.to_bytes())
    sign = encoded[31] & 0x80
    y = int.from_bytes(bytes(encoded[:31]) + bytes([encoded[31] & 0x7F]), "little")
    out = bytearray(_le(P_FIELD - y))
    out[31] |= sign ^ 0x80
    return bytes(out)


BAD = [
    b"\x01" + bytes(31),  # identity
    bytes.fromhex("ec" + "ff" * 30 + "7f"),  # order 2
    bytes(32),  # order 4
    bytes(31) + b"\x80",
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),  # order 8
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    _le(P_FIELD),  # non-canonical
    _le(P_FIELD + 1),
    _le(2),  # off the curve
    b"\xff" * 32,
    _with_torsion(ed25519.base_mul(5)),
    _with_torsion(ed25519.base_mul(L - 1)),
]


def _accepts(check: Callable[..., object], *args: object) -> bool:
    """Whether ``check(*args)`` returns rather than raising ``InvalidEncoding``."""
    try:
        check(*args)
    except InvalidEncoding:
        return False
    return True


def _decodes(data: bytes) -> bool:
    return _accepts(ed25519.decode_point, data)


def _decodes_by_mul(data: bytes, k: int) -> bool:
    return _accepts(ed25519.decode_point_mul, data, k)


@settings(max_examples=40, deadline=None)
@given(a=scalars, b=scalars, k=scalars)
def test_operations_match_the_pynacl_wrappers(a: int, b: int, k: int) -> None:
    pa, pb = ed25519.base_mul(a), ed25519.base_mul(b)
    assert pa.to_bytes() == sodium.crypto_scalarmult_ed25519_base_noclamp(_le(a))
    assert (pa + pb).to_bytes() == sodium.crypto_core_ed25519_add(pa.to_bytes(), pb.to_bytes())
    if a != b:
        assert (pa - pb).to_bytes() == sodium.crypto_core_ed25519_sub(pa.to_bytes(), pb.to_bytes())
    assert (pa * k).to_bytes() == sodium.crypto_scalarmult_ed25519_noclamp(_le(k), pa.to_bytes())
    assert ed25519.decode_point(pa.to_bytes()) == pa


@settings(max_examples=40, deadline=None)
@given(a=scalars, k=st.integers(min_value=0, max_value=2**256))
def test_decode_point_mul_is_decode_then_mul(a: int, k: int) -> None:
    data = ed25519.base_mul(a).to_bytes()
    point, product = ed25519.decode_point_mul(data, k)
    assert point == ed25519.decode_point(data)
    assert product == point * k == ed25519.base_mul(a * k)
    assert product.is_identity == (k % L == 0)


@pytest.mark.parametrize("data", BAD, ids=lambda d: d.hex()[:12])
@pytest.mark.parametrize("k", [1, 2, 7, L - 1, 0, L])
def test_decode_point_mul_rejects_what_decoding_rejects(data: bytes, k: int) -> None:
    assert not sodium.crypto_core_ed25519_is_valid_point(data)
    with pytest.raises(InvalidEncoding):
        ed25519.decode_point(data)
    with pytest.raises(InvalidEncoding):
        ed25519.decode_point_mul(data, k)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=32, max_size=32), k=scalars)
def test_decode_point_mul_accepts_exactly_the_valid_points(data: bytes, k: int) -> None:
    valid = sodium.crypto_core_ed25519_is_valid_point(data)
    assert _decodes(data) == valid
    assert _decodes_by_mul(data, k) == valid


@settings(max_examples=100, deadline=None)
@given(y=st.integers(min_value=0, max_value=2**255 - 1), sign=st.booleans(), torsion=st.booleans())
def test_points_on_the_curve_with_and_without_torsion(y: int, sign: bool, torsion: bool) -> None:
    """Random y (mostly off the curve) and, via a·B + T, points with a torsion component."""
    data = bytearray(_le(y))
    data[31] |= 0x80 if sign else 0
    candidates = [bytes(data)]
    if torsion:
        candidates.append(_with_torsion(ed25519.base_mul(y % (L - 1) + 1)))
    for candidate in candidates:
        valid = sodium.crypto_core_ed25519_is_valid_point(candidate)
        assert _decodes(candidate) == valid
        assert _decodes_by_mul(candidate, 3) == valid


@pytest.mark.parametrize("data", [b"", bytes(31), bytes(33), "00" * 32, None, 5])
def test_decode_point_mul_checks_type_and_length(data: object) -> None:
    with pytest.raises(InvalidEncoding):
        ed25519.decode_point_mul(data, 1)  # type: ignore[arg-type]


def test_decode_point_mul_takes_a_bytearray() -> None:
    data = ed25519.base_mul(9).to_bytes()
    point, product = ed25519.decode_point_mul(bytearray(data), 2)
    assert point.to_bytes() == data and product == ed25519.base_mul(18)


def test_raw_values_of_the_wrong_length_never_reach_libsodium() -> None:
    """libsodium reads 32 bytes from whatever it is given: a short raw value must raise."""
    good = ed25519.base_mul(3)
    short = Point(ed25519, b"\x05" * 31)
    with pytest.raises(SodiumTypeError):
        _ = good + short
    with pytest.raises(SodiumTypeError):
        _ = short * 5
    with pytest.raises(InvalidEncoding):
        ed25519._raw_decode(b"\x05" * 31)


def test_identity_handling_stays_in_python() -> None:
    p = ed25519.base_mul(11)
    assert p + ed25519.identity() == p == ed25519.identity() + p
    assert (p - p).is_identity
    assert (p * L).is_identity and (p * 0).is_identity
    assert ed25519.base_mul(L).is_identity


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=32, max_size=32))
def test_check_encoding_and_the_subgroup_check_are_decoding(data: bytes) -> None:
    """``check_encoding`` (canonical, not the identity) together with libsodium's subgroup check
    accept exactly what ``decode_point`` accepts, and ``check_encoding`` alone accepts every
    decodable point (what the round trip's initiator defers rests on this)."""
    valid = sodium.crypto_core_ed25519_is_valid_point(data)
    assert _decodes(data) == valid == (_accepts(ed25519.check_encoding, data) and valid)


@pytest.mark.parametrize("data", [b"\x01" + bytes(31), b"\x01" + bytes(30) + b"\x80", _le(P_FIELD), _le(P_FIELD + 1),
                                  _le(2**255 - 1), b"\xff" * 32, bytes(31), b"", "00" * 32])
def test_check_encoding_refuses_the_identity_non_canonical_bytes_and_wrong_types(data: object) -> None:
    with pytest.raises(InvalidEncoding):
        ed25519.check_encoding(data)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(a=scalars, b=scalars)
def test_add_encoded_is_libsodiums_addition(a: int, b: int) -> None:
    pa, pb = ed25519.base_mul(a).to_bytes(), ed25519.base_mul(b).to_bytes()
    assert ed25519.add_encoded(pa, pb) == sodium.crypto_core_ed25519_add(pa, pb) == ed25519.base_mul(a + b).to_bytes()
    torsioned = _with_torsion(ed25519.base_mul(a))
    assert ed25519.add_encoded(torsioned, pb) == sodium.crypto_core_ed25519_add(torsioned, pb)


@pytest.mark.parametrize("data", [_le(2), bytes(31), "00" * 32])
def test_add_encoded_refuses_what_is_not_a_point_of_the_curve(data: object) -> None:
    with pytest.raises(InvalidEncoding):
        ed25519.add_encoded(ed25519.base_mul(3).to_bytes(), data)  # type: ignore[arg-type]
