"""Π_c3: completeness over random inputs, soundness against every altered field, binding to the
transcript, strict decoding, and the same verdicts by CRT and without, on both bigint backends."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import secp256k1
from protocols import bigint, paillier
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk import c3
from protocols.zk.fields import encode_nats
from tests.fixtures import bigint_backend, paillier_keys, ring_pedersen_sets

SK = paillier_keys()[0]
PK = SK.public_key
PARAMS, RP_SECRET = ring_pedersen_sets()[1]
Q = secp256k1.order
G = secp256k1.generator()
BOUNDS = c3.DEFAULT_BOUNDS


def transcript(label: bytes = b"session") -> Transcript:
    t = Transcript("test/c3")
    t.append_bytes("session", label)
    return t


def instance(x1: int, x2: int, k2: int, m: int, k1: int = 7) -> tuple[c3.C3Statement, tuple[int, int, int], c3.C3Randomness]:
    c_key, _ = paillier.encrypt(PK, x1)
    r2 = G * k2
    r = secp256k1.affine(r2 * k1)[0] % Q
    w1 = pow(k2, -1, Q)
    w = (w1, w1 * x2 % Q, secrets.randbits(BOUNDS.mask_bits))
    randomness = c3.C3Randomness.fresh(PK)
    ciphertext = c3.form_c3(PK, c_key, r, m, w, randomness)
    return c3.C3Statement(PK, PARAMS, c_key, ciphertext, r, m, r2, G * x2), w, randomness


scalars = st.integers(1, Q - 1)


@settings(max_examples=8, deadline=None)
@given(x1=scalars, x2=scalars, k2=scalars, m=st.integers(0, 2**256 - 1))
def test_complete_and_the_plaintext_gives_the_signature(x1: int, x2: int, k2: int, m: int) -> None:
    statement, w, randomness = instance(x1, x2, k2, m)
    proof = c3.prove(statement, w, randomness, transcript())
    c3.verify(statement, proof, transcript())
    c3.verify(statement, proof, transcript(), paillier_secret=SK, ring_pedersen_secret=RP_SECRET)
    assert c3.C3Proof.from_payload(proof.to_payload(), statement) == proof
    plain = paillier.decrypt_signed(SK, statement.c3)
    assert 0 < plain < PK.n // 2  # no wrap: the integer itself
    assert plain % Q == pow(k2, -1, Q) * (m + statement.r * (x1 + x2)) % Q


@pytest.fixture(scope="module")
def honest() -> tuple[c3.C3Statement, c3.C3Proof]:
    statement, w, randomness = instance(12345, 67890, 424242, 99)
    return statement, c3.prove(statement, w, randomness, transcript())


def test_bound_to_the_transcript(honest: tuple[c3.C3Statement, c3.C3Proof]) -> None:
    statement, proof = honest
    with pytest.raises(ProofError):
        c3.verify(statement, proof, transcript(b"another session"))


@pytest.mark.parametrize("field", ["c3", "c_key", "r", "m", "r2", "q2", "params"])
def test_another_statement_fails(honest: tuple[c3.C3Statement, c3.C3Proof], field: str) -> None:
    statement, proof = honest
    other_params = ring_pedersen_sets()[0][0]
    changed = {
        "c3": paillier.add(PK, statement.c3, paillier.encrypt(PK, Q)[0]),
        "c_key": paillier.encrypt(PK, 1)[0],
        "r": statement.r + 1,
        "m": statement.m + 1,
        "r2": statement.r2 + G,
        "q2": statement.q2 + G,
        "params": other_params,
    }[field]
    with pytest.raises(ProofError):
        c3.verify(dataclasses.replace(statement, **{field: changed}), proof, transcript())


@pytest.mark.parametrize("field", ["W", "A", "Y1", "Y2", "C", "z", "zeta", "z_enc"])
def test_every_altered_proof_field_fails(honest: tuple[c3.C3Statement, c3.C3Proof], field: str) -> None:
    statement, proof = honest
    value = getattr(proof, field)
    if isinstance(value, tuple):
        changed: object = (value[0] + 1, *value[1:]) if field != "z" else (value[0], value[1], value[2] + 1)
    elif field in ("Y1", "Y2"):
        changed = value + G
    else:
        changed = value * 2 % (PK.n_squared if field == "C" else PK.n)
    with pytest.raises(ProofError):
        c3.verify(statement, dataclasses.replace(proof, **{field: changed}), transcript())


def test_out_of_range_responses_are_refused(honest: tuple[c3.C3Statement, c3.C3Proof]) -> None:
    statement, proof = honest
    for index, bits in enumerate(BOUNDS.response_bits):
        z = list(proof.z)
        z[index] = 1 << bits
        with pytest.raises(ProofError, match="out of range"):
            c3.verify(statement, dataclasses.replace(proof, z=tuple(z)), transcript())
        payload = proof.to_payload()
        payload["z"] = [*payload["z"][:index], hex(1 << bits)[2:], *payload["z"][index + 1:]]
        with pytest.raises(InvalidMessage):
            c3.C3Proof.from_payload(payload, statement)


def test_strict_decoding(honest: tuple[c3.C3Statement, c3.C3Proof]) -> None:
    statement, proof = honest
    good = proof.to_payload()
    bad = [
        {**good, "extra": "00"},
        {k: v for k, v in good.items() if k != "z_enc"},
        {**good, "W": good["W"][:2]},
        {**good, "A": [*good["A"][:2], "0"]},
        {**good, "Y1": secp256k1.identity_encoding().hex()},
        {**good, "C": "00"},
        {**good, "z_enc": hex(PK.n)[2:]},
        {**good, "z": [*good["z"][:2], "-1"]},
        {**good, "W": [*good["W"][:2], "0" + good["W"][2]]},
    ]
    for payload in bad:
        with pytest.raises(InvalidMessage):
            c3.C3Proof.from_payload(payload, statement)


def test_prover_refuses_a_wrong_witness() -> None:
    statement, w, randomness = instance(5, 6, 7, 8)
    for witness in ((w[0] + 1, w[1], w[2]), (w[0], w[1] + 1, w[2]), (w[0], w[1], 1 << BOUNDS.mask_bits),
                    (w[0] + Q, w[1], w[2])):
        with pytest.raises(UsageError):
            c3.prove(statement, witness, randomness, transcript())
    with pytest.raises(UsageError):
        c3.prove(statement, w, c3.C3Randomness.fresh(paillier_keys()[1].public_key), transcript())


def test_no_wrap_bound_fits_the_minimum_modulus() -> None:
    assert BOUNDS.no_wrap_bits + 2 <= paillier.MIN_MODULUS_BITS
    with pytest.raises(UsageError):
        dataclasses.replace(BOUNDS, statistical_bits=600).check_modulus(PK.n)


def test_pure_python_backend_gives_the_same_verdicts() -> None:
    with bigint_backend("python"):
        statement, w, randomness = instance(11, 22, 33, 44)
        proof = c3.prove(statement, w, randomness, transcript())
        c3.verify(statement, proof, transcript(), paillier_secret=SK, ring_pedersen_secret=RP_SECRET)
        with pytest.raises(ProofError):
            c3.verify(statement, dataclasses.replace(proof, z_enc=proof.z_enc * 2 % PK.n), transcript())


# --- P1's verification by CRT against the straightforward formula (issue 30) -------------------
PAILLIER_MESSAGE = r"\(r·z1\) ⊙ c_key' ⊕ Enc"


@contextlib.contextmanager
def owner_tables(after: int) -> Iterator[None]:
    """The key owner's tables made from the ``after``-th use on (1: at once), none cached before."""
    before = c3.OWNER_TABLES_AFTER
    c3.forget_owner_tables()
    c3.OWNER_TABLES_AFTER = after
    try:
        yield
    finally:
        c3.OWNER_TABLES_AFTER = before
        c3.forget_owner_tables()


def verdicts(check: object, *args: object, secrets_: tuple[object, object]) -> tuple[bool, bool]:
    """(reference verdict, CRT verdict) of one check: True for accept. The CRT verdict is the same
    with the owner's plain CRT exponentiations and with its tables (asserted here)."""
    def verdict(secret: object) -> bool:
        try:
            check(*args, secret)  # type: ignore[operator]
            return True
        except ProofError:
            return False

    reference = verdict(secrets_[0])
    with owner_tables(10**9):
        by_crt = verdict(secrets_[1])
    with owner_tables(1):
        assert verdict(secrets_[1]) == by_crt
    return reference, by_crt


def crt_unit(mod_p: int, mod_q: int) -> int:
    """The unit modulo N² that is ``mod_p`` modulo p² and ``mod_q`` modulo q²."""
    return SK.crt_n_squared.combine(mod_p, mod_q)


@functools.lru_cache(maxsize=1)
def simulated_statement() -> c3.C3Statement:
    return instance(31337, 4242, 777, 2**255 + 19)[0]


@pytest.mark.parametrize("tampering", ["none", "plaintext", "plaintext mod p only", "residue", "residue mod q only",
                                       "minus one", "z_enc", "c3"])
@settings(max_examples=2, deadline=None)
@given(e=st.integers(0, 2**128 - 1), k=st.integers(1, 2**64),
       zs=st.tuples(*(st.integers(0, 2**bits - 1) for bits in BOUNDS.response_bits)))
def test_paillier_check_by_crt_gives_the_reference_verdict(tampering: str, e: int, k: int,
                                                           zs: tuple[int, int, int]) -> None:
    """Simulated transcripts (C' solved from arbitrary z, z_enc, e) on which the equation holds,
    then broken in one half only (the plaintext, the N-th-residue part, one prime at a time):
    the CRT split accepts and refuses exactly as the formula modulo N² does."""
    n, n2, power = PK.n, PK.n_squared, SK.crt_n_squared.powmod  # CRT only to build the inputs
    statement = simulated_statement()
    z_enc = bigint.random_unit(n)
    shifted = paillier.add_plain(PK, statement.c_key, BOUNDS.shift)
    plain = zs[0] * statement.m + zs[1] * statement.r + zs[2] * Q
    lhs = power(shifted, statement.r * zs[0]) * (1 + plain % n * n) * SK.nth_power(z_enc) % n2
    c_prime = lhs * power(statement.c3, -e) % n2
    y = bigint.random_unit(n)
    c_prime = c_prime * {
        "plaintext": 1 + k * n,
        "plaintext mod p only": 1 + k * SK.q * n,  # Dec changes by k·q: 0 modulo q, not modulo p
        "residue": SK.nth_power(y),
        "residue mod q only": SK.nth_power(crt_unit(1, y)),  # 1 modulo p²
        "minus one": n2 - 1,  # (-1)^N: an N-th residue, ≢ 1 (mod N)
    }.get(tampering, 1) % n2
    if tampering == "z_enc":
        z_enc = z_enc * 2 % n
    if tampering == "c3":
        statement = dataclasses.replace(statement, c3=statement.c3 * (1 + n) % n2)
    proof = c3.C3Proof((1, 1, 1), (1, 1, 1), G, G, c_prime, zs, (0, 0, 0), z_enc)
    reference, by_crt = verdicts(c3._check_paillier, statement, proof, e, BOUNDS, secrets_=(None, SK))
    assert reference == by_crt == (tampering == "none" or (tampering == "c3" and e == 0))


@pytest.mark.parametrize("tampering", ["none", "minus one", "t", "s", "swap"])
@settings(max_examples=2, deadline=None)
@given(e=st.integers(0, 2**128 - 1), exponents=st.lists(st.integers(0, 2**2400), min_size=6, max_size=6))
def test_commitment_check_by_crt_gives_the_reference_verdict(tampering: str, e: int, exponents: list[int]) -> None:
    """s^z·t^ζ = A·W^e against t^(λ·z + ζ) from the owner's table: the same verdicts on simulated
    commitments (A solved from arbitrary W, z, ζ, e), honest or multiplied by -1 (order 2), t or s."""
    n_hat = PARAMS.n_hat
    z, zeta = tuple(exponents[:3]), tuple(exponents[3:])
    w = tuple(bigint.random_unit(n_hat) for _ in range(3))
    a = [PARAMS.commit(z_i, zeta_i) * bigint.powmod(w_i, -e, n_hat) % n_hat for z_i, zeta_i, w_i in zip(z, zeta, w)]
    factor = {"minus one": n_hat - 1, "t": PARAMS.t, "s": PARAMS.s}.get(tampering, 1)
    a[2] = a[2] * factor % n_hat
    if tampering == "swap":
        a[0], a[1] = a[1], a[0]
    proof = c3.C3Proof(w, tuple(a), G, G, 1, z, zeta, 1)  # type: ignore[arg-type]
    reference, by_crt = verdicts(c3._check_commitments, PARAMS, proof, e, secrets_=(None, RP_SECRET))
    assert reference == by_crt == (tampering == "none" or (tampering == "swap" and a[0] == a[1]))


@pytest.mark.parametrize("defect", ["plaintext", "nonce"])
def test_a_c3_wrong_in_one_half_is_refused_by_crt(defect: str) -> None:
    """End to end: a c3 whose plaintext alone (w3 + 1, same nonce) or whose nonce alone (same
    plaintext) differs from what the proof was made for fails both verifications."""
    statement, w, randomness = instance(99, 98, 97, 96)
    witness = (w[0], w[1], w[2] + 1) if defect == "plaintext" else w
    other = randomness if defect == "plaintext" else c3.C3Randomness.fresh(PK)
    forged = dataclasses.replace(statement, c3=c3.form_c3(PK, statement.c_key, statement.r, statement.m, witness, other))
    proof = c3.prove(forged, w, randomness, transcript())  # proves statement.c3's formula against forged.c3
    for secrets_ in ({}, {"paillier_secret": SK, "ring_pedersen_secret": RP_SECRET}):
        with pytest.raises(ProofError, match=PAILLIER_MESSAGE):
            c3.verify(forged, proof, transcript(), **secrets_)  # type: ignore[arg-type]
    with owner_tables(1), pytest.raises(ProofError, match=PAILLIER_MESSAGE):  # the same with the owner's tables
        c3.verify(forged, proof, transcript(), paillier_secret=SK, ring_pedersen_secret=RP_SECRET)


def test_crt_verification_refuses_a_mismatched_secret(honest: tuple[c3.C3Statement, c3.C3Proof]) -> None:
    statement, proof = honest
    with pytest.raises(UsageError):
        c3.verify(statement, proof, transcript(), ring_pedersen_secret=ring_pedersen_sets()[0][1])
    with pytest.raises(UsageError):
        c3.verify(statement, proof, transcript(), paillier_secret=paillier_keys()[1])


def test_the_owners_tables_are_made_once_they_pay_and_go_with_the_key() -> None:
    """Plain CRT exponentiations for the first verifications of a key, its tables from the
    ``OWNER_TABLES_AFTER``-th on, held only while the secret key object lives."""
    import gc

    secret = paillier.PaillierSecretKey(SK.p, SK.q)
    with owner_tables(3):
        powers = [c3._owner_power(secret, 5, secret.crt_n, 64) for _ in range(4)]
        assert [isinstance(getattr(p, "__self__", None), bigint.CrtFixedBase) for p in powers] == \
            [False, False, True, True]
        assert {p(2**63 + 1) for p in powers} == {bigint.powmod(5, 2**63 + 1, SK.n)}
        assert secret in c3._OWNER
        del secret, powers
        gc.collect()
        assert len(c3._OWNER) == 0


def test_the_owners_wide_tables_replace_the_narrow_ones() -> None:
    """From the ``OWNER_WIDE_TABLES_AFTER``-th use on the key owner's powers come from a table of
    ``OWNER_WINDOWS[1]``-bit windows, the narrow table is dropped, and every stage gives the same
    values as plain exponentiation."""
    secret = paillier.PaillierSecretKey(SK.p, SK.q)
    before = c3.OWNER_WIDE_TABLES_AFTER
    c3.OWNER_WIDE_TABLES_AFTER = 3
    try:
        with owner_tables(2):
            powers = [c3._owner_power(secret, 7, secret.crt_n, 200) for _ in range(4)]
            windows = [getattr(p, "__self__", None) and p.__self__._tables[0].window for p in powers]  # type: ignore[attr-defined]
            assert windows == [None, c3.OWNER_WINDOWS[0], c3.OWNER_WINDOWS[1], c3.OWNER_WINDOWS[1]]
            tables = {key[3] for key in c3._OWNER[secret] if key[0] == "table"}
            assert tables == {c3.OWNER_WINDOWS[1]}  # the narrow one went
            for exponent in (0, 1, 2**200 - 1, -5, 2**2100 + 3, secrets.randbits(200)):
                assert {p(exponent) for p in powers} == {pow(7, exponent, SK.n)}
    finally:
        c3.OWNER_WIDE_TABLES_AFTER = before


@pytest.mark.parametrize("field, index", [("W", 0), ("W", 2), ("A", 1)])
def test_a_commitment_sharing_a_factor_with_n_hat_is_named(
    honest: tuple[c3.C3Statement, c3.C3Proof], field: str, index: int
) -> None:
    """One gcd checks all of W and A (their product); a failure still names the bad value, in
    decoding (``InvalidMessage``) and in ``verify`` (``ProofError``)."""
    statement, proof = honest
    values = list(getattr(proof, field))
    values[index] = int(RP_SECRET.p) * 3  # in range, not a unit
    payload = {**proof.to_payload(), field: encode_nats(values)}
    with pytest.raises(InvalidMessage, match=rf"{field}\[{index}\] must be a unit"):
        c3.C3Proof.from_payload(payload, statement)
    with pytest.raises(ProofError, match=f"c3 {field} is not a unit"):
        c3.verify(statement, dataclasses.replace(proof, **{field: tuple(values)}), transcript())


@pytest.mark.parametrize("name", ["z_enc", "c3", "C'", "c_key"])
def test_a_paillier_value_sharing_a_factor_with_n_is_named(honest: tuple[c3.C3Statement, c3.C3Proof], name: str) -> None:
    """z_enc, c3, C' and c_key are checked with one gcd modulo N; the one that is not a unit is named."""
    statement, proof = honest
    bad = int(SK.p) * 5
    if name == "z_enc":
        proof = dataclasses.replace(proof, z_enc=bad)
    elif name == "C'":
        proof = dataclasses.replace(proof, C=bad)
    else:
        statement = dataclasses.replace(statement, **{name: bad})
    with pytest.raises(ProofError, match=f"c3 proof: {name} not invertible modulo N"):
        c3.verify(statement, proof, transcript())
