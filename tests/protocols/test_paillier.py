"""protocols.paillier: correctness on both backends, ciphertext validation, key policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import bigint, paillier
from protocols.errors import InvalidMessage, UsageError
from protocols.paillier import PaillierPublicKey, PaillierSecretKey
from tests.fixtures import bigint_backend, paillier_keys

SK = paillier_keys()[0]
PK = SK.public_key
PLAINTEXTS = st.integers(min_value=-(2**1000), max_value=2**1000)


@pytest.fixture(params=bigint.available_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with bigint_backend(request.param):
        yield request.param


@settings(max_examples=25, deadline=None)
@given(PLAINTEXTS)
def test_encrypt_decrypt_round_trip(m: int) -> None:
    c, _ = paillier.encrypt(PK, m)
    assert paillier.decrypt_signed(SK, c) == m
    assert paillier.decrypt(SK, c) == m % PK.n


@settings(max_examples=20, deadline=None)
@given(PLAINTEXTS, PLAINTEXTS, st.integers(min_value=-(2**256), max_value=2**256))
def test_homomorphic_add_and_scalar_mul(a: int, b: int, k: int) -> None:
    ca, _ = paillier.encrypt(PK, a)
    cb, _ = SK.encrypt(b)
    assert paillier.decrypt_signed(SK, paillier.add(PK, ca, cb)) == a + b
    assert paillier.decrypt_signed(SK, paillier.add_plain(PK, ca, b)) == a + b
    assert paillier.decrypt(SK, paillier.mul(PK, ca, k)) == (k * a) % PK.n


def test_backends_give_identical_ciphertexts_and_plaintexts(backend: str) -> None:
    nonce = 0x1234567 * 2**900 + 1
    c, r = paillier.encrypt(PK, 42, nonce)
    with bigint_backend("python"):
        reference, _ = paillier.encrypt(PK, 42, nonce)
    assert r == nonce and c == reference
    assert SK.encrypt(42, nonce)[0] == c
    assert paillier.decrypt(SK, paillier.mul(PK, c, -3)) == PK.n - 126


def test_caller_supplied_nonce_must_be_a_unit() -> None:
    for bad in (0, PK.n, SK.p, -1, 1.5):
        with pytest.raises(UsageError):
            paillier.encrypt(PK, 1, bad)  # type: ignore[arg-type]


def test_decrypt_signed_range_edges() -> None:
    half = PK.n // 2
    assert paillier.decrypt_signed(SK, paillier.encrypt(PK, half)[0]) == half
    assert paillier.decrypt_signed(SK, paillier.encrypt(PK, half + 1)[0]) == half + 1 - PK.n


@pytest.mark.parametrize("bad", [0, -5, "bad", True])
def test_validate_ciphertext_rejects_out_of_range(bad: object) -> None:
    with pytest.raises(InvalidMessage):
        paillier.validate_ciphertext(PK, bad)  # type: ignore[arg-type]


_CANDIDATES = st.sampled_from(["ok", "zero", "n_squared", "p_multiple", "q_multiple", "bool", "str"])


_GOOD = paillier.encrypt(PK, 7)[0]  # a valid ciphertext; modulo N, a unit


def _candidate(kind: str, bound: int) -> object:
    """A value of the given kind for a field whose valid values are the units below ``bound``."""
    good = _GOOD % bound
    return {"ok": good, "zero": 0, "n_squared": bound, "p_multiple": int(SK.p) * 3, "q_multiple": int(SK.q),
            "bool": True, "str": "1"}[kind]


def _one_by_one(ciphertexts: dict[str, object], units: dict[str, object]) -> str | None:
    """The first bad name by one check per value: ranges in order, then units in order."""
    fields = [(k, v, PK.n_squared) for k, v in ciphertexts.items()] + [(k, v, PK.n) for k, v in units.items()]
    for name, value, bound in fields:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < bound:
            return f"{name} out of range"
    for name, value, _ in fields:
        if bigint.gcd(value, PK.n) != 1:  # type: ignore[arg-type]
            return f"{name} not invertible modulo N"
    return None


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(_CANDIDATES, min_size=1, max_size=4), unit_kinds=st.lists(_CANDIDATES, max_size=2))
def test_validate_ciphertexts_is_one_check_per_value(kinds: list[str], unit_kinds: list[str]) -> None:
    """The batched check (one gcd) gives the verdict and the bad field's name of ``validate_ciphertext``
    applied to each value in turn, and a single ciphertext the same as ``validate_ciphertext``."""
    ciphertexts = {f"c{i}": _candidate(kind, PK.n_squared) for i, kind in enumerate(kinds)}
    units = {f"u{i}": _candidate(kind, PK.n) for i, kind in enumerate(unit_kinds)}
    expected = _one_by_one(ciphertexts, units)
    if expected is None:
        paillier.validate_ciphertexts(PK, ciphertexts, units)
    else:
        with pytest.raises(InvalidMessage, match=f"^{expected}$"):
            paillier.validate_ciphertexts(PK, ciphertexts, units)
    single = ciphertexts["c0"]
    if _one_by_one({"c0": single}, {}) is None:
        assert paillier.validate_ciphertext(PK, single) == single  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidMessage):
            paillier.validate_ciphertext(PK, single)  # type: ignore[arg-type]


def test_validate_ciphertext_rejects_n_squared_and_non_units() -> None:
    for bad in (PK.n_squared, PK.n_squared + 1, PK.n, SK.p, SK.q * 7):
        with pytest.raises(InvalidMessage):
            paillier.validate_ciphertext(PK, bad)
        with pytest.raises(InvalidMessage):
            paillier.decrypt(SK, bad)


def test_decode_ciphertext_is_strict() -> None:
    c, _ = paillier.encrypt(PK, 7)
    assert paillier.decode_ciphertext({"c": paillier.encode_ciphertext(c)}, "c", PK) == c
    for bad in ("00" + format(c, "x"), format(c, "X"), 7, paillier.encode_ciphertext(PK.n)):
        with pytest.raises(InvalidMessage):
            paillier.decode_ciphertext({"c": bad}, "c", PK)


def test_modulus_size_policy() -> None:
    for bad in (SK.p, PK.n - 1, (1 << 4097) + 1, 2**2047 + 2):
        with pytest.raises(InvalidMessage):
            paillier.check_modulus_size(bad)
    paillier.check_modulus_size(PK.n)
    with pytest.raises(UsageError):
        paillier.keygen(1024)


def test_public_key_payload_round_trip_and_strictness() -> None:
    assert PaillierPublicKey.from_payload(PK.to_payload()) == PK
    bad_payloads = [
        {"n": "00" + PK.to_payload()["n"]},
        {"n": PK.to_payload()["n"], "extra": "00"},
        {"n": paillier.encode_ciphertext(SK.p)},
        {"n": paillier.encode_ciphertext((1 << 4096) + 1)},
        {"n": paillier.encode_ciphertext(PK.n + 1)},
        {},
    ]
    for payload in bad_payloads:
        with pytest.raises(InvalidMessage):
            PaillierPublicKey.from_payload(payload)


def test_secret_key_serialisation_and_secrecy() -> None:
    restored = PaillierSecretKey.from_bytes(SK.to_bytes())
    assert restored.n == SK.n
    for text in (repr(SK), str(SK)):
        assert format(SK.p, "x") not in text and str(SK.p) not in text and "<secret>" in text
    data = SK.to_bytes()
    for bad in (b"", b"\x02" + data[1:], data + b"\x00", data[:-1], bigint.pack_nats(1, [SK.p, SK.n])):
        with pytest.raises(InvalidMessage):
            PaillierSecretKey.from_bytes(bad)


def test_secret_key_refuses_non_blum_or_equal_primes() -> None:
    with pytest.raises(UsageError):
        PaillierSecretKey(SK.p, SK.p)
    with pytest.raises(UsageError):
        PaillierSecretKey(SK.p, 13)


def test_keygen_gives_exact_size_blum_modulus(backend: str) -> None:
    pk, sk = paillier.keygen()
    assert pk.n.bit_length() == 2048 and sk.p % 4 == 3 and sk.q % 4 == 3
    assert paillier.decrypt(sk, paillier.encrypt(pk, 5)[0]) == 5


@settings(max_examples=5, deadline=None)
@given(a=st.integers(0, 2**2100), b=st.integers(-(2**300), 2**300))
def test_plaintext_is_a_homomorphism_on_units(a: int, b: int) -> None:
    """Dec(x·y) = Dec(x) + Dec(y) for any units modulo N², not only honest ciphertexts (the c3
    check by CRT relies on it), and Dec(y^N) = 0; ``plaintext`` agrees with ``decrypt``."""
    sk = paillier_keys()[0]
    n, n2 = sk.n, sk.n * sk.n
    x = bigint.powmod(3, a, n2) * (1 + 5 * n) % n2  # arbitrary units, not built by Enc
    y = bigint.powmod(7, b, n2)
    assert sk.plaintext(x * y % n2) == (sk.plaintext(x) + sk.plaintext(y)) % n
    assert sk.plaintext(bigint.powmod(y, n, n2)) == 0
    assert sk.plaintext(x) == paillier.decrypt(sk, x)
    assert sk.plaintext(paillier.encrypt(sk.public_key, b)[0]) == b % n
    assert sk.crt_n_squared.powmod(x, b) == bigint.powmod(x, b, n2)
