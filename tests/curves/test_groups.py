"""The group interface on both curves: arithmetic, encodings, strict decoding."""

from __future__ import annotations

import hashlib

import pytest
from ecdsa import SECP256k1, SigningKey
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import bindings as sodium

from curves import CurveError, InvalidEncoding, SecretScalar, ed25519, group_by_name, secp256k1
from curves.ed25519 import L
from curves.secp256k1 import BACKEND, P, backend_groups
from curves._secp256k1_base import lift_x

# Every available secp256k1 backend (the active one is ``secp256k1`` itself), then ed25519.
SECP_GROUPS = list(backend_groups().values())
GROUPS = [*SECP_GROUPS, ed25519]


def group_id(group) -> str:
    return f"{group.name}-{group.backend}" if group.name == "secp256k1" else group.name

scalars = st.integers(min_value=1, max_value=L - 1)


@pytest.mark.parametrize("group", GROUPS, ids=group_id)
class TestArithmetic:
    def test_base_mul_matches_generator_mul(self, group):
        k = group.random_scalar()
        assert group.base_mul(k) == group.generator() * k

    def test_group_laws(self, group):
        a, b = group.random_scalar(), group.random_scalar()
        pa, pb = group.base_mul(a), group.base_mul(b)
        assert pa + pb == group.base_mul(a + b)
        assert pa - pb == group.base_mul(a - b)
        assert -pa == group.base_mul(-a)
        assert (pa - pa).is_identity
        assert pa + group.identity() == pa
        assert pa * group.order == group.identity()
        assert group.base_mul(0).is_identity
        assert b * pa == pa * b == group.base_mul(a * b)

    @settings(max_examples=25, deadline=None)
    @given(k=scalars)
    def test_point_round_trip(self, group, k):
        point = group.base_mul(k)
        encoded = point.to_bytes()
        assert len(encoded) == group.point_length
        assert group.decode_point(encoded) == point

    @settings(max_examples=50, deadline=None)
    @given(k=scalars)
    def test_scalar_round_trip(self, group, k):
        k %= group.order
        assert group.decode_scalar(group.encode_scalar(k)) == k

    def test_rejects_out_of_range_scalars(self, group):
        with pytest.raises(InvalidEncoding):
            group.decode_scalar(group.order.to_bytes(32, group.scalar_byteorder))
        with pytest.raises(InvalidEncoding):
            group.decode_scalar(b"\xff" * 32)
        with pytest.raises(InvalidEncoding):
            group.decode_scalar(b"\x00" * 31)
        with pytest.raises(InvalidEncoding):
            group.decode_scalar(b"\x00" * 32, nonzero=True)
        with pytest.raises(CurveError):
            group.encode_scalar(group.order)

    def test_rejects_wrong_lengths(self, group):
        encoded = group.generator().to_bytes()
        for bad in (encoded[:-1], encoded + b"\x00", b"", "not bytes"):
            with pytest.raises(InvalidEncoding):
                group.decode_point(bad)  # type: ignore[arg-type]

    def test_rejects_identity_unless_allowed(self, group):
        identity = group.identity_encoding()
        if not identity:
            pytest.skip("the secp256k1 identity has no encoding")
        with pytest.raises(InvalidEncoding):
            group.decode_point(identity)
        assert group.decode_point(identity, allow_identity=True).is_identity

    def test_random_scalars_are_nonzero_and_distinct(self, group):
        values = {group.random_scalar() for _ in range(64)}
        assert len(values) == 64 and all(0 < v < group.order for v in values)

    def test_hash_to_scalar_is_domain_separated(self, group):
        a = group.hash_to_scalar(b"tag", b"ab", b"c")
        assert a == group.hash_to_scalar(b"tag", b"ab", b"c")
        assert a != group.hash_to_scalar(b"tag", b"a", b"bc")
        assert a != group.hash_to_scalar(b"other", b"ab", b"c")
        assert 0 <= a < group.order

    def test_points_of_other_group_refused(self, group):
        other = ed25519 if group.name == "secp256k1" else secp256k1
        with pytest.raises(CurveError):
            group.generator() + other.generator()


@pytest.fixture(params=SECP_GROUPS, ids=group_id)
def secp(request):
    """Each available secp256k1 backend's group instance in turn."""
    return request.param


def _small_x_on_curve() -> int:
    """The smallest x on the curve: x + p still fits in 32 bytes (a non-canonical x)."""
    return next(x for x in range(1, 100) if lift_x(x, False) is not None)


class TestSecp256k1:
    def test_active_backend_is_the_library_group(self):
        assert secp256k1.backend == BACKEND
        assert backend_groups()[BACKEND] is secp256k1
        assert group_by_name("secp256k1") is secp256k1

    def test_matches_python_ecdsa_public_key(self, secp):
        key = SigningKey.generate(curve=SECP256k1, hashfunc=hashlib.sha256)
        d = key.privkey.secret_multiplier
        assert secp.base_mul(d).to_bytes() == key.get_verifying_key().to_string("compressed")

    def test_rejects_bad_prefix(self, secp):
        encoded = bytearray(secp.generator().to_bytes())
        for prefix in (0x00, 0x01, 0x04, 0x05, 0x06, 0x07):
            encoded[0] = prefix
            with pytest.raises(InvalidEncoding):
                secp.decode_point(bytes(encoded))

    def test_rejects_uncompressed_and_hybrid_encodings(self, secp):
        x, y = secp.affine(secp.generator())
        body = x.to_bytes(32, "big") + y.to_bytes(32, "big")
        for prefix in (b"\x04", b"\x06", b"\x07"):
            with pytest.raises(InvalidEncoding):
                secp.decode_point(prefix + body)

    def test_rejects_x_not_on_curve(self, secp):
        x = 5  # 5^3 + 7 = 132 is not a square mod p
        for prefix in (b"\x02", b"\x03"):
            with pytest.raises(InvalidEncoding, match="not on the curve"):
                secp.decode_point(prefix + x.to_bytes(32, "big"))

    def test_rejects_non_canonical_x(self, secp):
        # x + p has the same residue as x but is not a canonical field element.
        x = _small_x_on_curve()
        assert secp.decode_point(b"\x02" + x.to_bytes(32, "big"))
        with pytest.raises(InvalidEncoding, match="not below p"):
            secp.decode_point(b"\x02" + (x + P).to_bytes(32, "big"))
        for bad_x in (P, 2**256 - 1):
            with pytest.raises(InvalidEncoding):
                secp.decode_point(b"\x02" + bad_x.to_bytes(32, "big"))

    def test_identity_has_no_encoding(self, secp):
        with pytest.raises(CurveError):
            secp.identity().to_bytes()
        assert secp.identity_encoding() == b""
        with pytest.raises(InvalidEncoding):
            secp.decode_point(b"\x00" * 33, allow_identity=True)

    def test_identity_arithmetic(self, secp):
        point = secp.base_mul(secp.random_scalar())
        identity = secp.identity()
        assert (point + (-point)).is_identity
        assert (point - point).is_identity
        assert (point * 0).is_identity and (point * secp.order).is_identity
        assert (point * (2 * secp.order)).is_identity
        assert (identity + identity).is_identity and (-identity).is_identity
        assert (identity * 5).is_identity and (identity - point) == -point
        assert identity == secp.identity() and identity != point and point != identity
        assert (point + point) - point == point
        assert point + point == point * 2
        with pytest.raises(CurveError):
            secp.affine(identity)

    def test_negation_of_affine_points_is_reduced(self, secp):
        # Regression: python-ecdsa negates a z = 1 point to a negative y, which once leaked
        # into the encoding (-G encoded with prefix 02) and into affine().
        for point in (secp.generator(), secp.decode_point(secp.base_mul(7).to_bytes())):
            x, y = secp.affine(point)
            assert secp.affine(-point) == (x, P - y)
            assert (-point).to_bytes() == bytes([2 | ((P - y) & 1)]) + x.to_bytes(32, "big")
            assert secp.decode_point((-point).to_bytes()) == -point

    def test_affine_round_trip(self, secp):
        point = secp.base_mul(secp.random_scalar())
        x, y = secp.affine(point)
        assert secp.point_from_affine(x, y) == point
        assert secp.point_from_affine(x, P - y) == -point
        for bad in ((1, 1), (x, y + 1), (x + P, y), (-1, y)):
            with pytest.raises(InvalidEncoding):
                secp.point_from_affine(*bad)


@pytest.mark.skipif(len(SECP_GROUPS) < 2, reason="coincurve is not installed")
class TestSecp256k1Backends:
    """The coincurve and python-ecdsa backends agree byte for byte."""

    nonzero = st.integers(min_value=1, max_value=secp256k1.order - 1)

    @staticmethod
    def _both() -> tuple:
        groups = backend_groups()
        return groups["coincurve"], groups["python-ecdsa"]

    @settings(max_examples=30, deadline=None)
    @given(a=nonzero, b=st.integers(min_value=0, max_value=2**256))
    def test_same_encodings(self, a, b):
        results = []
        for group in self._both():
            pa, pb = group.base_mul(a), group.base_mul(b)
            sums = [pa + pb, pa - pb, -pa, pa * b, pb * a, pa + pa]
            results.append([p.to_bytes() if not p.is_identity else None for p in (pa, *sums)])
            results[-1].append(group.affine(pa))
        assert results[0] == results[1]

    @settings(max_examples=100, deadline=None)
    @given(prefix=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 255]), x=st.integers(0, 2**256 - 1))
    def test_same_decoding_verdict(self, prefix, x):
        data = bytes([prefix]) + x.to_bytes(32, "big")
        verdicts = []
        for group in self._both():
            try:
                verdicts.append(group.decode_point(data).to_bytes())
            except InvalidEncoding as exc:
                verdicts.append(str(exc))
        assert verdicts[0] == verdicts[1]

    @settings(max_examples=20, deadline=None)
    @given(k=nonzero)
    def test_decode_from_other_backend(self, k):
        coincurve_group, ecdsa_group = self._both()
        encoded = ecdsa_group.base_mul(k).to_bytes()
        assert coincurve_group.decode_point(encoded).to_bytes() == encoded
        assert coincurve_group.affine(coincurve_group.decode_point(encoded)) == ecdsa_group.affine(
            ecdsa_group.decode_point(encoded)
        )

    def test_points_of_other_backend_refused(self):
        coincurve_group, ecdsa_group = self._both()
        a, b = coincurve_group.generator(), ecdsa_group.generator()
        assert a.to_bytes() == b.to_bytes() and a != b
        with pytest.raises(CurveError):
            a + b
        with pytest.raises(CurveError):
            ecdsa_group.affine(a)


class TestEd25519:
    # Small-order points (order 1, 2, 4, 8) in canonical encoding: all must be rejected.
    SMALL_ORDER = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    ]

    @pytest.mark.parametrize("hexpoint", SMALL_ORDER)
    def test_rejects_small_order_points(self, hexpoint):
        with pytest.raises(InvalidEncoding):
            ed25519.decode_point(bytes.fromhex(hexpoint))

    def test_rejects_torsion_component(self):
        # P + T with T of order 8: on the curve but outside the prime-order subgroup.
        p = ed25519.base_mul(ed25519.random_scalar()).to_bytes()
        torsion = bytes.fromhex(self.SMALL_ORDER[4])
        mixed = sodium.crypto_core_ed25519_add(p, torsion)
        with pytest.raises(InvalidEncoding):
            ed25519.decode_point(mixed)

    def test_rejects_non_canonical_y(self):
        # y = p + 1 (non-canonical encoding of y = 1).
        y = 2**255 - 19 + 1
        with pytest.raises(InvalidEncoding):
            ed25519.decode_point(y.to_bytes(32, "little"))

    def test_rejects_off_curve(self):
        # Many y values have no x; find one deterministically.
        for y in range(2, 100):
            data = y.to_bytes(32, "little")
            if not sodium.crypto_core_ed25519_is_valid_point(data):
                with pytest.raises(InvalidEncoding):
                    ed25519.decode_point(data)
                return
        pytest.fail("no invalid y found")

    def test_matches_libsodium_base_point(self):
        seed = b"\x07" * 32
        public, _ = sodium.crypto_sign_seed_keypair(seed)
        h = bytearray(hashlib.sha512(seed).digest()[:32])
        h[0] &= 248
        h[31] &= 127
        h[31] |= 64
        assert ed25519.base_mul(int.from_bytes(h, "little")).to_bytes() == public


class TestSecretScalar:
    @pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
    def test_hides_value(self, group):
        secret = SecretScalar(group, 123456789123456789)
        for text in (repr(secret), str(secret), f"{secret}"):
            assert "123456789123456789" not in text and "redacted" in text

    def test_round_trip_and_constant_time_equality(self):
        secret = SecretScalar.random(secp256k1)
        again = SecretScalar.from_bytes(secp256k1, secret.to_bytes())
        assert again == secret and again != SecretScalar.random(secp256k1)
        assert secret.public_point() == secp256k1.base_mul(secret.value)

    def test_immutable_and_not_picklable(self):
        import pickle

        secret = SecretScalar.random(ed25519)
        with pytest.raises(AttributeError):
            secret._value = 1  # type: ignore[misc]
        with pytest.raises(TypeError):
            pickle.dumps(secret)

    def test_rejects_out_of_range(self):
        with pytest.raises(CurveError):
            SecretScalar(ed25519, L)
        with pytest.raises(InvalidEncoding):
            SecretScalar.from_bytes(ed25519, b"\xff" * 32)


def test_group_by_name():
    assert group_by_name("secp256k1") is secp256k1
    assert group_by_name("ed25519") is ed25519
    with pytest.raises(CurveError):
        group_by_name("p256")
