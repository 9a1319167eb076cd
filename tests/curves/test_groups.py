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
from curves.secp256k1 import P

GROUPS = [secp256k1, ed25519]
scalars = st.integers(min_value=1, max_value=L - 1)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
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
        other = ed25519 if group is secp256k1 else secp256k1
        with pytest.raises(CurveError):
            group.generator() + other.generator()


class TestSecp256k1:
    def test_matches_python_ecdsa_public_key(self):
        key = SigningKey.generate(curve=SECP256k1, hashfunc=hashlib.sha256)
        d = key.privkey.secret_multiplier
        assert secp256k1.base_mul(d).to_bytes() == key.get_verifying_key().to_string("compressed")

    def test_rejects_bad_prefix(self):
        encoded = bytearray(secp256k1.generator().to_bytes())
        for prefix in (0x00, 0x01, 0x04, 0x05):
            encoded[0] = prefix
            with pytest.raises(InvalidEncoding):
                secp256k1.decode_point(bytes(encoded))

    def test_rejects_x_not_on_curve(self):
        x = 5  # 5^3 + 7 = 132 is not a square mod p
        with pytest.raises(InvalidEncoding, match="not on the curve"):
            secp256k1.decode_point(b"\x02" + x.to_bytes(32, "big"))

    def test_rejects_non_canonical_x(self):
        # x + p has the same residue as x but is not a canonical field element.
        x = secp256k1.affine(secp256k1.generator())[0]
        if x + P < 2**256:
            with pytest.raises(InvalidEncoding):
                secp256k1.decode_point(b"\x02" + (x + P).to_bytes(32, "big"))
        with pytest.raises(InvalidEncoding):
            secp256k1.decode_point(b"\x02" + P.to_bytes(32, "big"))

    def test_identity_has_no_encoding(self):
        with pytest.raises(CurveError):
            secp256k1.identity().to_bytes()

    def test_affine_round_trip(self):
        point = secp256k1.base_mul(secp256k1.random_scalar())
        assert secp256k1.point_from_affine(*secp256k1.affine(point)) == point
        with pytest.raises(InvalidEncoding):
            secp256k1.point_from_affine(1, 1)


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
