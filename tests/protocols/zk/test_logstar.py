"""Π_log*: completeness on both curves, tampering, wrong statements, ranges, strict decoding."""

from __future__ import annotations

import pytest

from curves import Group, ed25519, secp256k1
from protocols import bigint, paillier
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk import logstar
from protocols.zk.params import ELL, EPSILON
from tests.fixtures import bigint_backend, paillier_keys, ring_pedersen_sets

SK = paillier_keys()[0]
PK = SK.public_key
PARAMS, _ = ring_pedersen_sets()[0]
OTHER_PARAMS, _ = ring_pedersen_sets()[1]
FIELDS = ("S", "A", "Y", "D", "z1", "z2", "z3")


def _transcript(session: bytes = b"\x01" * 32) -> Transcript:
    return Transcript.for_context("test", protocol="ecdsa2p/keygen", session_id=session, round=3, parties=[1, 2])


def _statement(group: Group = secp256k1, x: int | None = None):  # type: ignore[no-untyped-def]
    x = group.random_scalar() if x is None else x
    c, rho = paillier.encrypt(PK, x)
    return x, rho, c, group.base_mul(x)


@pytest.fixture(scope="module")
def case():  # type: ignore[no-untyped-def]
    x, rho, c, x_point = _statement()
    return c, x_point, logstar.prove(PK, PARAMS, c, x_point, x, rho, _transcript())


def _replace(proof: logstar.LogStarProof, **changes: object) -> logstar.LogStarProof:
    return logstar.LogStarProof(**{**proof.__dict__, **changes})


@pytest.mark.parametrize("group", [secp256k1, ed25519], ids=lambda g: g.name)
def test_completeness_and_payload_round_trip(group: Group) -> None:
    x, rho, c, x_point = _statement(group)
    proof = logstar.prove(PK, PARAMS, c, x_point, x, rho, _transcript())
    decoded = logstar.LogStarProof.from_payload(proof.to_payload(), PK, PARAMS, group)
    assert decoded == proof
    logstar.verify(PK, PARAMS, c, x_point, decoded, _transcript())


def test_completeness_with_other_base_and_python_backend() -> None:
    base = secp256k1.base_mul(12345)
    x = secp256k1.random_scalar()
    c, rho = paillier.encrypt(PK, x)
    with bigint_backend("python"):
        proof = logstar.prove(PK, PARAMS, c, base * x, x, rho, _transcript(), base=base)
    logstar.verify(PK, PARAMS, c, base * x, proof, _transcript(), base=base)
    with pytest.raises(ProofError):
        logstar.verify(PK, PARAMS, c, base * x, proof, _transcript())


def test_rejects_wrong_statement(case) -> None:  # type: ignore[no-untyped-def]
    c, x_point, proof = case
    other_c, _ = paillier.encrypt(PK, 7)
    for args in (
        (PK, PARAMS, other_c, x_point),
        (PK, PARAMS, c, x_point + secp256k1.generator()),
        (PK, OTHER_PARAMS, c, x_point),
        (paillier_keys()[1].public_key, PARAMS, c, x_point),
    ):
        with pytest.raises(ProofError):
            logstar.verify(*args, proof, _transcript())
    with pytest.raises(ProofError):
        logstar.verify(PK, PARAMS, c, x_point, proof, _transcript(b"\x02" * 32))


@pytest.mark.parametrize("field", FIELDS)
def test_rejects_tampered_field(case, field: str) -> None:  # type: ignore[no-untyped-def]
    c, x_point, proof = case
    value = getattr(proof, field)
    if field == "Y":
        tampered = value + secp256k1.generator()
    elif field == "A":
        tampered = paillier.add_plain(PK, value, 1)
    elif field in ("S", "D"):
        tampered = value * PARAMS.s % PARAMS.n_hat
    elif field == "z2":
        tampered = value * 2 % PK.n
    else:
        tampered = value + 1
    with pytest.raises(ProofError):
        logstar.verify(PK, PARAMS, c, x_point, _replace(proof, **{field: tampered}), _transcript())


def test_rejects_invalid_ciphertexts(case) -> None:  # type: ignore[no-untyped-def]
    c, x_point, proof = case
    for bad_c in (0, PK.n_squared, SK.p, PK.n):
        with pytest.raises(ProofError):
            logstar.verify(PK, PARAMS, bad_c, x_point, proof, _transcript())
    with pytest.raises(ProofError):
        logstar.verify(PK, PARAMS, c, x_point, _replace(proof, A=SK.q), _transcript())


def test_rejects_identity_y_and_non_unit_responses(case) -> None:  # type: ignore[no-untyped-def]
    c, x_point, proof = case
    for tampered in (
        _replace(proof, Y=secp256k1.identity()),
        _replace(proof, z2=SK.p),
        _replace(proof, S=0),
        _replace(proof, D=PARAMS.n_hat),
    ):
        with pytest.raises(ProofError):
            logstar.verify(PK, PARAMS, c, x_point, tampered, _transcript())


def test_prover_refuses_witness_out_of_range() -> None:
    x, rho, c, x_point = _statement()
    with pytest.raises(UsageError):
        logstar.prove(PK, PARAMS, c, x_point, (1 << ELL) + 1, rho, _transcript())


def test_rejects_plaintext_far_out_of_range() -> None:
    """A ciphertext of x ≈ 2^(ℓ+ε+8) (same point mod q) gives |z1| beyond 2^(ℓ+ε)."""
    big_x = (1 << (ELL + EPSILON + 8)) + 5
    c, rho = paillier.encrypt(PK, big_x)
    x_point = secp256k1.base_mul(big_x)
    cheat = _cheating_proof(c, x_point, big_x, rho)
    with pytest.raises(ProofError, match="range"):
        logstar.verify(PK, PARAMS, c, x_point, cheat, _transcript())


def _cheating_proof(c: int, x_point, x: int, rho: int) -> logstar.LogStarProof:  # type: ignore[no-untyped-def]
    """The honest prover's steps without its range check on x."""
    alpha = bigint.random_signed(1 << (ELL + EPSILON))
    mu = bigint.random_signed(PARAMS.n_hat << ELL)
    gamma = bigint.random_signed(PARAMS.n_hat << (ELL + EPSILON))
    a_ct, r = paillier.encrypt(PK, alpha)
    head = (PARAMS.commit(x, mu), a_ct, secp256k1.base_mul(alpha), PARAMS.commit(alpha, gamma))
    e = logstar._challenge(PK, PARAMS, c, x_point, secp256k1.generator(), head, _transcript())
    z2 = r * bigint.powmod(rho, e, PK.n) % PK.n
    return logstar.LogStarProof(*head, z1=alpha + e * x, z2=z2, z3=gamma + e * mu)


def test_decoding_is_strict(case) -> None:  # type: ignore[no-untyped-def]
    _, _, proof = case
    payload = proof.to_payload()
    bad = [
        {**payload, "extra": "00"},
        {k: v for k, v in payload.items() if k != "z3"},
        {**payload, "A": "00"},
        {**payload, "A": format(PK.n, "x")},
        {**payload, "S": format(PARAMS.n_hat + 1, "x")},
        {**payload, "Y": secp256k1.identity_encoding().hex()},
        {**payload, "Y": "02" + "ff" * 32},
        {**payload, "z1": logstar.encode_int((1 << (ELL + EPSILON)) + 1)},
        {**payload, "z2": format(SK.p, "x")},
        {**payload, "z3": "-0"},
    ]
    for item in bad:
        with pytest.raises(InvalidMessage):
            logstar.LogStarProof.from_payload(item, PK, PARAMS, secp256k1)
    with pytest.raises(InvalidMessage):
        logstar.LogStarProof.from_payload(payload, PK, PARAMS, ed25519)
