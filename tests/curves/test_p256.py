"""curves.p256 and curves.p256_h2c: P-256 arithmetic against python-ecdsa, strict decoding, the
constant-time-minded ladder's shape, RFC 9380 hash-to-curve vectors, both field backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ecdsa import NIST256p
from hypothesis import given, settings
from hypothesis import strategies as st

import curves.p256 as p256_module
from curves import CurveError, InvalidEncoding
from curves.base import Point
from curves import _p256_field
from curves.hash_to_field import expand_message_xmd, hash_to_field
from curves.p256 import GX, GY, B, N, P, p256, scalar_inverse
from curves.p256_h2c import SUITE_ID, hash_to_curve, hash_to_field_p256, map_to_curve

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "hash_to_curve"
BACKENDS = _p256_field.available_backends()
scalars = st.integers(min_value=1, max_value=N - 1)


def load(name: str) -> dict:
    with (VECTORS / name).open(encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on each field backend (gmpy2 when installed, and always pure Python)."""
    with p256_module.using_backend(request.param):
        yield request.param


def reference(k: int) -> tuple[int, int]:
    """k·G by python-ecdsa, an independent implementation."""
    point = NIST256p.generator * k
    return point.x(), point.y()


def encode(x: int, prefix: int) -> bytes:
    return bytes([prefix]) + x.to_bytes(32, "big")


def is_abscissa(x: int) -> bool:
    """Whether x^3 - 3x + b is a square mod p (Euler's criterion), i.e. some point has this x."""
    return pow((x**3 - 3 * x + B) % P, (P - 1) // 2, P) in (0, 1)


def non_abscissa() -> int:
    """The smallest x that is the abscissa of no point."""
    x = 0
    while is_abscissa(x):
        x += 1
    return x


def aliased_abscissa() -> int:
    """The smallest x >= p whose residue x - p is a valid abscissa (so only the range check can
    refuse its encoding)."""
    x = 0
    while not is_abscissa(x):
        x += 1
    return P + x


# --- parameters and arithmetic ----------------------------------------------------------------
def test_parameters_match_python_ecdsa() -> None:
    curve = NIST256p.curve
    assert (curve.p(), curve.a() % P, curve.b(), NIST256p.order) == (P, P - 3, B, N)
    assert (NIST256p.generator.x(), NIST256p.generator.y()) == (GX, GY)
    assert p256.affine(p256.generator()) == (GX, GY)


def ladder(point: Point, k: int) -> Point:
    """k·P straight from the ladder (``Point.__mul__`` reduces k mod n first)."""
    return Point(p256, p256_module._ladder(p256_module._window_table(point._raw), k))


def test_order_annihilates_the_generator(backend: str) -> None:
    g = p256.generator()
    assert ladder(g, N).is_identity
    assert ladder(g, N - 1) == -g
    assert ladder(g, N + 1) == g


@pytest.mark.parametrize("k", [1, 2, 3, 15, 16, 17, 255, 2**128, 2**255, N - 2, N - 1])
def test_edge_scalars_match_python_ecdsa(backend: str, k: int) -> None:
    assert p256.affine(p256.base_mul(k)) == reference(k)
    assert p256.affine(p256.generator() * k) == reference(k)


@settings(max_examples=15, deadline=None)
@given(a=scalars, b=scalars)
def test_multiplication_and_addition_match_python_ecdsa(a: int, b: int) -> None:
    point = p256.base_mul(a)
    assert p256.affine(point) == reference(a)
    assert p256.affine(point * b) == reference(a * b % N)
    if (a + b) % N:
        assert p256.affine(point + p256.base_mul(b)) == reference((a + b) % N)


def test_complete_formulas_have_no_exceptional_case(backend: str) -> None:
    g = p256.generator()
    two_g = p256.base_mul(2)
    identity = p256.identity()
    assert g + g == two_g  # the addition formula on equal inputs (a doubling)
    assert Point(p256, p256_module._double(g._raw)) == two_g
    assert (g + (-g)).is_identity
    assert g + identity == g and identity + g == g
    assert (identity + identity).is_identity
    assert Point(p256, p256_module._double(p256_module._IDENTITY)).is_identity
    assert (g - g).is_identity and (two_g - g) == g


def test_group_laws_against_the_interface(backend: str) -> None:
    a, b = p256.random_scalar(), p256.random_scalar()
    pa, pb = p256.base_mul(a), p256.base_mul(b)
    assert pa + pb == pb + pa == p256.base_mul(a + b)
    assert -pa == p256.base_mul(-a)
    assert b * pa == pa * b == p256.base_mul(a * b)
    assert p256.base_mul(0).is_identity and (pa * 0).is_identity


def test_scalar_inverse(backend: str) -> None:
    for k in (1, 2, N - 1, p256.random_scalar()):
        assert k * scalar_inverse(k) % N == 1
    for bad in (0, N, -1):
        with pytest.raises(CurveError):
            scalar_inverse(bad)


# --- the ladder's shape: no secret-dependent early exit or skipped step -----------------------
def test_select_reads_every_entry_and_returns_the_indexed_one(backend: str) -> None:
    table = p256_module._window_table(p256.generator()._raw)
    for index in range(16):
        assert p256_module._select(table, index) == tuple(table[index])


def test_ladder_does_the_same_work_for_every_scalar(monkeypatch: pytest.MonkeyPatch) -> None:
    counts: dict[str, int] = {"add": 0, "double": 0, "select": 0}

    def counting(name: str, fn):  # type: ignore[no-untyped-def]
        def wrapper(*args):  # type: ignore[no-untyped-def]
            counts[name] += 1
            return fn(*args)
        return wrapper

    monkeypatch.setattr(p256_module, "_add", counting("add", p256_module._add))
    monkeypatch.setattr(p256_module, "_double", counting("double", p256_module._double))
    monkeypatch.setattr(p256_module, "_select", counting("select", p256_module._select))
    table = p256_module._window_table(p256.generator()._raw)
    seen = set()
    for k in (1, 2, 16, 2**255, N - 1):
        for key in counts:
            counts[key] = 0
        p256_module._ladder(table, k)
        seen.add(tuple(counts.values()))
    assert seen == {(64, 256, 64)}


# --- encodings ----------------------------------------------------------------------------------
@settings(max_examples=10, deadline=None)
@given(k=scalars)
def test_compressed_encoding_round_trip(k: int) -> None:
    point = p256.base_mul(k)
    x, y = reference(k)
    assert point.to_bytes() == encode(x, 2 | (y & 1))
    assert p256.decode_point(point.to_bytes()) == point
    negated = encode(x, 3 - (y & 1))
    assert p256.decode_point(negated) == -point


def test_identity_has_no_encoding() -> None:
    with pytest.raises(CurveError):
        p256.identity().to_bytes()
    assert p256.identity_encoding() == b""
    for data in (b"\x00", b"\x00" * 33, b""):
        with pytest.raises(InvalidEncoding):
            p256.decode_point(data, allow_identity=True)


def hostile_encodings() -> dict[str, object]:
    good = p256.generator().to_bytes()
    return {
        "short": good[:-1],
        "long": good + b"\x00",
        "empty": b"",
        "x only": good[1:],
        "uncompressed": b"\x04" + GX.to_bytes(32, "big") + GY.to_bytes(32, "big"),
        "prefix 04 at 33 bytes": b"\x04" + good[1:],
        "prefix 00": b"\x00" + good[1:],
        "prefix 01": b"\x01" + good[1:],
        "prefix 05": b"\x05" + good[1:],
        "prefix 06 (hybrid)": b"\x06" + good[1:],
        "x = p": encode(P, 2),
        "x >= p aliasing a point": encode(aliased_abscissa(), 2),
        "x = 2^256 - 1": b"\x03" + b"\xff" * 32,
        "off the curve": encode(non_abscissa(), 2),
        "identity byte": b"\x00",
        "all zero": b"\x00" * 33,
        "not bytes": good.hex(),
    }


@pytest.mark.parametrize("name", list(hostile_encodings()))
def test_decoding_rejects_hostile_encodings(name: str) -> None:
    with pytest.raises(InvalidEncoding):
        p256.decode_point(hostile_encodings()[name])  # type: ignore[arg-type]


def test_the_alias_below_p_is_a_point() -> None:
    """The "x >= p aliasing a point" case above is refused by the range check alone."""
    x = aliased_abscissa()
    assert x < 1 << 256
    p256.decode_point(encode(x - P, 2))


def test_point_from_affine_checks_the_curve() -> None:
    assert p256.point_from_affine(GX, GY) == p256.generator()
    for x, y in ((GX, GY + 1), (P, GY), (GX, P)):
        with pytest.raises(InvalidEncoding):
            p256.point_from_affine(x, y)


def test_scalar_decoding_edges() -> None:
    assert p256.decode_scalar((N - 1).to_bytes(32, "big")) == N - 1
    assert p256.decode_scalar(bytes(32)) == 0
    for bad in (N.to_bytes(32, "big"), b"\xff" * 32, bytes(31), bytes(33)):
        with pytest.raises(InvalidEncoding):
            p256.decode_scalar(bad)
    with pytest.raises(InvalidEncoding):
        p256.decode_scalar(bytes(32), nonzero=True)


# --- backends -------------------------------------------------------------------------------------
def test_backends_agree() -> None:
    k = p256.random_scalar()
    results = set()
    for name in BACKENDS:
        with p256_module.using_backend(name):
            results.add((p256.base_mul(k).to_bytes(), hash_to_curve(b"x", b"dst").to_bytes()))
    assert len(results) == 1


def test_pure_python_fallback_when_gmpy2_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = _p256_field.backend()
    monkeypatch.setattr(_p256_field, "_gmpy2", None)
    assert _p256_field.available_backends() == ("python",)
    with pytest.raises(CurveError):
        _p256_field.use_backend("gmpy2")
    try:
        _p256_field.use_backend("python")
        assert type(_p256_field.P) is int
        assert p256.affine(p256.base_mul(12345)) == reference(12345)
    finally:
        monkeypatch.undo()
        _p256_field.use_backend(previous)


def test_environment_variable_forces_pure_python() -> None:
    code = "from curves import p256; print(p256.backend())"
    env = dict(os.environ, PORTAL_MPC_NO_GMPY2="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(CurveError):
        p256_module.use_backend("openssl")


# --- RFC 9380 vectors -----------------------------------------------------------------------------
def test_expand_message_xmd_vectors() -> None:
    data = load("expand_message_xmd_sha256.json")
    count = 0
    for group in (data, data["long_dst"]):
        for test in group["tests"]:
            out = expand_message_xmd(test["msg"].encode(), group["DST"].encode(), int(test["len_in_bytes"], 16))
            assert out.hex() == test["uniform_bytes"]
            count += 1
    assert count == 12


def test_expand_message_xmd_limits() -> None:
    with pytest.raises(ValueError):
        expand_message_xmd(b"", b"dst", 255 * 32 + 1)
    with pytest.raises(ValueError):
        expand_message_xmd(b"", b"dst", 0)
    with pytest.raises(TypeError):
        expand_message_xmd("text", b"dst", 32)  # type: ignore[arg-type]
    assert len(expand_message_xmd(b"", b"dst", 255 * 32)) == 255 * 32
    with pytest.raises(ValueError):
        hash_to_field(b"", 0, b"dst", P, 48)


def test_hash_to_curve_vectors(backend: str) -> None:
    data = load("p256_xmd_sha-256_sswu_ro.json")
    assert data["ciphersuite"] == SUITE_ID
    dst = data["dst"].encode()
    for vector in data["vectors"]:
        msg = vector["msg"].encode()
        u0, u1 = hash_to_field_p256(msg, 2, dst)
        assert (u0, u1) == (int(vector["u[0]"], 16), int(vector["u[1]"], 16))
        for u, q in ((u0, "Q0"), (u1, "Q1")):
            assert p256.affine(map_to_curve(u)) == (int(vector[f"{q}.x"], 16), int(vector[f"{q}.y"], 16))
        assert p256.affine(hash_to_curve(msg, dst)) == (int(vector["P.x"], 16), int(vector["P.y"], 16))
    assert len(data["vectors"]) == 5


def reference_sswu(u: int) -> tuple[int, int]:
    """The branching simplified SWU of RFC 9380, section 6.6.2 (a test oracle for the
    straight-line map, which must agree with it everywhere, exceptional case included)."""
    a, z = P - 3, P - 10
    tv1 = pow((z * z * pow(u, 4, P) + z * u * u) % P, P - 2, P)
    x1 = (-B * pow(a, P - 2, P)) * (1 + tv1) % P
    if tv1 == 0:
        x1 = B * pow(z * a, P - 2, P) % P
    gx1 = (x1**3 + a * x1 + B) % P
    x2 = z * u * u * x1 % P
    gx2 = (x2**3 + a * x2 + B) % P
    if pow(gx1, (P - 1) // 2, P) in (0, 1):
        x, y = x1, pow(gx1, (P + 1) // 4, P)
    else:
        x, y = x2, pow(gx2, (P + 1) // 4, P)
    if u % 2 != y % 2:
        y = P - y
    return x, y


@settings(max_examples=20, deadline=None)
@given(u=st.one_of(st.sampled_from([0, 1, 2, P - 1, P - 2]), st.integers(min_value=0, max_value=P - 1)))
def test_straight_line_map_matches_the_reference_map(u: int) -> None:
    assert p256.affine(map_to_curve(u)) == reference_sswu(u)


def test_map_to_curve_refuses_out_of_range_elements() -> None:
    for bad in (-1, P):
        with pytest.raises(ValueError):
            map_to_curve(bad)


def test_sswu_constants() -> None:
    """Z = -10 is a non-square, g(B / (Z·A)) is a square, and c2 = sqrt(-Z) (RFC 9380 6.6.2, F.2.1.2)."""
    from curves import p256_h2c

    z, a = p256_h2c._Z, p256_h2c._A
    assert pow(z, (P - 1) // 2, P) == P - 1
    x = B * pow(z * a, P - 2, P) % P
    assert is_abscissa(x)
    assert p256_h2c._C2 * p256_h2c._C2 % P == 10
    assert p256_h2c._C1 == (P - 3) // 4
