"""Π_c3: completeness over random inputs, soundness against every altered field, binding to the
transcript, strict decoding, and the same verdicts by CRT and without, on both bigint backends."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import secp256k1
from protocols import paillier
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk import c3
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
