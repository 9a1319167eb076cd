"""Π_c3's prover arithmetic (issue 30): every table and every value made ahead equals the
straightforward formula, proofs made with masks made ahead verify and fail when tampered with,
the masks follow the derived stream, the precomputation's bytes are strict, and the custodian's
Paillier nonces stay uniform units (a fixed-base "short exponent" nonce would let the public
Jacobi symbol of c3, or the key owner's Legendre symbols, give away the parity of r·w1)."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import secp256k1
from protocols import bigint, paillier, randomness
from protocols.ecdsa2p import C3Precomputation
from protocols.errors import ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk import c3
from tests.fixtures import paillier_keys, ring_pedersen_sets

powmod = bigint.powmod  # the straightforward formula: one plain exponentiation (GMP), no table

SK = paillier_keys()[0]
PK, (PARAMS, RP_SECRET) = SK.public_key, ring_pedersen_sets()[1]
Q, G, BOUNDS, N_HAT = secp256k1.order, secp256k1.generator(), c3.DEFAULT_BOUNDS, PARAMS.n_hat


def transcript() -> Transcript:
    t = Transcript("test/c3-prover")
    t.append_bytes("session", b"prover")
    return t


def straight_form_c3(c_key: int, r: int, m: int, w: tuple[int, int, int], nonce: int) -> int:
    """(r·w1) ⊙ c_key' ⊕ Enc(w1·m + w2·r + w3·q; ρ) with plain ``pow``, no table."""
    n, n2 = PK.n, PK.n_squared
    shifted = c_key * powmod(1 + n, BOUNDS.shift, n2) % n2
    plain = w[0] * m + w[1] * r + w[2] * Q
    return powmod(shifted, r * w[0], n2) * powmod(1 + n, plain, n2) * powmod(nonce, n, n2) % n2


T_TABLE = bigint.FixedBase(PARAMS.t, N_HAT, N_HAT.bit_length() + 384, c3.T_WINDOW)  # the prover's t table


@settings(max_examples=10, deadline=None)
@given(exponent=st.integers(0, 2 ** (N_HAT.bit_length() + 400)))
def test_the_t_and_s_tables_equal_pow(exponent: int) -> None:
    assert T_TABLE.pow(exponent) == powmod(PARAMS.t, exponent, N_HAT)
    assert c3.t_table(PARAMS).pow(exponent) == powmod(PARAMS.t, exponent, N_HAT)  # plain, then the table
    assert c3.s_table(PARAMS).pow(exponent) == powmod(PARAMS.s, exponent, N_HAT)


def test_masks_and_commitments_made_ahead_equal_the_formulas() -> None:
    masks = c3.PedersenMasks.fresh(PARAMS, ahead=True)
    ahead = masks.ahead
    assert ahead is not None
    assert masks.t_mu == tuple(powmod(PARAMS.t, x, N_HAT) for x in masks.mu)
    assert masks.t_gamma == tuple(powmod(PARAMS.t, x, N_HAT) for x in masks.gamma)
    assert ahead.A == tuple(powmod(PARAMS.s, a, N_HAT) * powmod(PARAMS.t, g, N_HAT) % N_HAT
                            for a, g in zip(ahead.alpha, masks.gamma))
    assert ahead.W3 == powmod(PARAMS.s, ahead.w3, N_HAT) * powmod(PARAMS.t, masks.mu[2], N_HAT) % N_HAT
    assert all(0 <= a < 1 << bits for a, bits in zip(ahead.alpha, BOUNDS.alpha_bits))
    assert 0 <= ahead.w3 < 1 << BOUNDS.mask_bits
    assert all(0 <= x < N_HAT << BOUNDS.statistical_bits for x in masks.mu)
    for value in (masks, ahead):
        assert "<secret>" in repr(value) and str(masks.mu[0]) not in repr(value) and str(ahead.w3) not in repr(value)


@settings(max_examples=4, deadline=None)
@given(x1=st.integers(1, Q - 1), k2=st.integers(1, Q - 1), x2=st.integers(1, Q - 1),
       m=st.integers(0, 2**256 - 1))
def test_form_c3_equals_the_straightforward_formula(x1: int, k2: int, x2: int, m: int) -> None:
    c_key, _ = paillier.encrypt(PK, x1)
    r = secp256k1.affine(G * k2 * 7)[0] % Q
    w1 = powmod(k2, -1, Q)
    w = (w1, w1 * x2 % Q, bigint.random_bits(BOUNDS.mask_bits))
    nonce = c3.C3Randomness.fresh(PK)
    assert nonce.power == powmod(nonce.nonce, PK.n, PK.n_squared)
    ciphertext = c3.form_c3(PK, c_key, r, m, w, nonce)
    assert ciphertext == straight_form_c3(c_key, r, m, w, nonce.nonce)
    assert paillier.decrypt_signed(SK, ciphertext) == r * w1 * (x1 + BOUNDS.shift) + w1 * m + w[1] * r + w[2] * Q


def make_instance(w3: int | None = None) -> tuple[c3.C3Statement, tuple[int, int, int], c3.C3Randomness]:
    k2, x2, m = secp256k1.random_scalar(), secp256k1.random_scalar(), secrets.randbits(256)
    c_key, _ = paillier.encrypt(PK, secp256k1.random_scalar())
    r2 = G * k2
    r = secp256k1.affine(r2 * 11)[0] % Q
    w1 = powmod(k2, -1, Q)
    w = (w1, w1 * x2 % Q, bigint.random_bits(BOUNDS.mask_bits) if w3 is None else w3)
    nonce = c3.C3Randomness.fresh(PK)
    statement = c3.C3Statement(PK, PARAMS, c_key, c3.form_c3(PK, c_key, r, m, w, nonce), r, m, r2, G * x2)
    return statement, w, nonce


@pytest.fixture(scope="module")
def made_ahead() -> tuple[c3.C3Statement, c3.C3Proof, c3.PedersenMasks]:
    masks = c3.PedersenMasks.fresh(PARAMS, ahead=True)
    assert masks.ahead is not None
    statement, w, nonce = make_instance(masks.ahead.w3)
    proof = c3.prove(statement, w, nonce, transcript(), mask_randomness=c3.C3Randomness.fresh(PK), pedersen=masks)
    return statement, proof, masks


def test_a_proof_with_masks_made_ahead_verifies_and_uses_them(
    made_ahead: tuple[c3.C3Statement, c3.C3Proof, c3.PedersenMasks],
) -> None:
    statement, proof, masks = made_ahead
    c3.verify(statement, proof, transcript())
    c3.verify(statement, proof, transcript(), paillier_secret=SK, ring_pedersen_secret=RP_SECRET)
    assert masks.ahead is not None
    assert proof.A == masks.ahead.A and proof.W[2] == masks.ahead.W3
    assert proof.Y1 == statement.r2 * masks.ahead.alpha[0]


def test_masks_made_ahead_refuse_another_w3() -> None:
    masks = c3.PedersenMasks.fresh(PARAMS, ahead=True)
    statement, w, nonce = make_instance()
    with pytest.raises(UsageError, match="w3"):
        c3.prove(statement, w, nonce, transcript(), pedersen=masks)


@pytest.mark.parametrize("field", ["W", "A", "z", "zeta", "C", "z_enc"])
def test_a_tampered_proof_with_masks_made_ahead_fails(
    made_ahead: tuple[c3.C3Statement, c3.C3Proof, c3.PedersenMasks], field: str,
) -> None:
    statement, proof, _ = made_ahead
    value = getattr(proof, field)
    if isinstance(value, tuple):
        changed: object = (value[0], value[1], value[2] + 1)
    else:
        changed = value * 2 % (PK.n_squared if field == "C" else PK.n)
    with pytest.raises(ProofError):
        c3.verify(statement, dataclasses.replace(proof, **{field: changed}), transcript())
    with pytest.raises(ProofError):
        c3.verify(statement, dataclasses.replace(proof, **{field: changed}), transcript(),
                  paillier_secret=SK, ring_pedersen_secret=RP_SECRET)


def _values(item: C3Precomputation) -> tuple[object, ...]:
    """Every value a precomputation holds (nonces, masks, what was made ahead), for comparing."""
    masks = item.pedersen
    assert masks is not None and masks.ahead is not None
    return (item.c3_nonce.nonce, item.c3_nonce.power, item.proof_nonce.nonce, item.proof_nonce.power,
            masks.mu, masks.t_mu, masks.gamma, masks.t_gamma, dataclasses.astuple(masks.ahead))


def test_masks_made_ahead_follow_the_derived_stream() -> None:
    """Drawn through ``protocols.randomness``: the same scope gives the same masks (issue 24)."""
    key = bytes(32)
    with randomness.derived(key, b"test/c3-prover"):
        first = C3Precomputation.fresh(PK, PARAMS)
    with randomness.derived(key, b"test/c3-prover"):
        again = C3Precomputation.fresh(PK, PARAMS)
    with randomness.derived(key, b"test/c3-prover/other"):
        other = C3Precomputation.fresh(PK, PARAMS)
    assert _values(first) == _values(again) != _values(other)


def test_a_precomputation_has_no_serialisation() -> None:
    """α and the signing mask ρ beside one proof give x2: a precomputation never leaves memory."""
    item = C3Precomputation.fresh(PK, PARAMS)
    assert item.pedersen is not None and item.pedersen.ahead is not None
    for name in ("to_bytes", "from_bytes"):
        assert not hasattr(C3Precomputation, name)
    assert "<secret>" in repr(item) and str(item.pedersen.ahead.w3) not in repr(item.pedersen)


def test_the_custodians_nonces_hide_the_parity_of_r_w1() -> None:
    """A nonce in the subgroup of one public base (DJN's x^a with x = −y²) has Jacobi symbol +1,
    so (c3 | N) = (c_key | N)^(r·w1) would tell anyone the parity of r·w1 for half of all keys;
    a base of symbol −1 still leaves it to the key owner's Legendre symbols. The custodian's nonces
    are uniform units: neither symbol predicts the parity (a false failure needs 32 lucky guesses)."""
    p, q = int(SK.p), int(SK.q)
    c_key = next(c for c in (paillier.encrypt(PK, 5)[0] for _ in range(64)) if bigint.jacobi(c % PK.n, PK.n) == -1)
    prime = p if bigint.jacobi(c_key % p, p) == -1 else q  # (c_key | N) = −1: one Legendre symbol is −1
    hits = {PK.n: 0, prime: 0}
    items = [C3Precomputation.fresh(PK) for _ in range(16)]
    nonces = [nonce for item in items for nonce in (item.c3_nonce, item.proof_nonce)]  # 32 in all
    for nonce in nonces:
        r, w = secp256k1.random_scalar(), (secp256k1.random_scalar(), 1, 1)
        ciphertext = c3.form_c3(PK, c_key, r, 5, w, nonce)
        for modulus in hits:  # (c3 | ·) = (c_key | ·)^(r·w1)·(ρ | ·) = (−1)^(r·w1)·(ρ | ·)
            hits[modulus] += bigint.jacobi(ciphertext % modulus, modulus) == (-1) ** (r * w[0] % 2)
    assert all(0 < count < 32 for count in hits.values()), hits
