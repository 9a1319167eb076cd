"""Π_fac: completeness, tampering, strict decoding, and the small-factor moduli of BitForge."""

from __future__ import annotations

import pytest

from protocols.errors import InvalidMessage, ProofError
from protocols.transcript import Transcript
from protocols.zk import fac
from tests.fixtures import malformed_moduli, paillier_keys, ring_pedersen_sets

SK = paillier_keys()[0]
N0 = SK.n
PARAMS, _ = ring_pedersen_sets()[0]
OTHER_PARAMS, _ = ring_pedersen_sets()[1]
FIELDS = ("P", "Q", "A", "B", "T", "sigma", "z1", "z2", "w1", "w2", "v")


def _transcript(session: bytes = b"\x01" * 32) -> Transcript:
    return Transcript.for_context("test", protocol="ecdsa2p/keygen", session_id=session, round=3, parties=[1, 2])


@pytest.fixture(scope="module")
def proof() -> fac.FacProof:
    return fac.prove(N0, SK.p, SK.q, PARAMS, _transcript())


def _replace(proof: fac.FacProof, **changes: object) -> fac.FacProof:
    return fac.FacProof(**{**proof.__dict__, **changes})


def test_completeness_and_payload_round_trip(proof: fac.FacProof) -> None:
    decoded = fac.FacProof.from_payload(proof.to_payload(), N0, PARAMS)
    assert decoded == proof
    fac.verify(N0, PARAMS, decoded, _transcript())


def test_rejects_other_session_verifier_or_modulus(proof: fac.FacProof) -> None:
    with pytest.raises(ProofError):
        fac.verify(N0, PARAMS, proof, _transcript(b"\x02" * 32))
    with pytest.raises(ProofError):
        fac.verify(N0, OTHER_PARAMS, proof, _transcript())
    with pytest.raises(ProofError):
        fac.verify(paillier_keys()[1].n, PARAMS, proof, _transcript())


@pytest.mark.parametrize("field", FIELDS)
def test_rejects_tampered_field(proof: fac.FacProof, field: str) -> None:
    value = getattr(proof, field)
    tampered = value * PARAMS.s % PARAMS.n_hat if field in FIELDS[:5] else value + 1
    with pytest.raises(ProofError):
        fac.verify(N0, PARAMS, _replace(proof, **{field: tampered}), _transcript())


def test_rejects_non_unit_commitment(proof: fac.FacProof) -> None:
    for bad in (0, PARAMS.n_hat, ring_pedersen_sets()[0][1].p):
        with pytest.raises(ProofError):
            fac.verify(N0, PARAMS, _replace(proof, T=bad), _transcript())


def test_decoding_is_strict(proof: fac.FacProof) -> None:
    payload = proof.to_payload()
    bad = [
        {**payload, "extra": "00"},
        {k: v for k, v in payload.items() if k != "v"},
        {**payload, "P": "00"},
        {**payload, "Q": format(PARAMS.n_hat, "x")},
        {**payload, "z1": "-00"},
        {**payload, "z1": "0" + payload["z1"]},
        {**payload, "v": "01" + "00" * 2000},
        {**payload, "w1": 5},
    ]
    for item in bad:
        with pytest.raises(InvalidMessage):
            fac.FacProof.from_payload(item, N0, PARAMS)


def test_rejects_modulus_with_small_factor() -> None:
    """BitForge "6ix1een" (CVE-2023-33241): a 16-bit factor; z2 = β + e·q leaves the range."""
    n, (p, q) = malformed_moduli()["small_factor"]
    with pytest.raises(ProofError, match="range"):
        fac.verify(n, PARAMS, fac.prove(n, p, q, PARAMS, _transcript()), _transcript())
    with pytest.raises(ProofError, match="range"):  # in either order
        fac.verify(n, PARAMS, fac.prove(n, q, p, PARAMS, _transcript()), _transcript())


def test_rejects_prime_modulus() -> None:
    n, _ = malformed_moduli()["prime"]
    with pytest.raises(ProofError, match="prime"):
        fac.verify(n, PARAMS, fac.prove(n, n, 1, PARAMS, _transcript()), _transcript())


def test_rejects_1024_bit_modulus() -> None:
    n, (p, q) = malformed_moduli()["short"]
    with pytest.raises(ProofError, match="bits"):
        fac.verify(n, PARAMS, fac.prove(n, p, q, PARAMS, _transcript()), _transcript())


def test_rejects_even_modulus(proof: fac.FacProof) -> None:
    n, _ = malformed_moduli()["even"]
    with pytest.raises(ProofError, match="odd"):
        fac.verify(n, PARAMS, proof, _transcript())


@pytest.mark.parametrize("name", ["square", "three_primes"])
def test_square_and_three_primes_are_left_to_mod(name: str) -> None:
    """Π_fac only bounds the factors' size: p² and balanced p·q·r pass it; Π_mod refuses them."""
    n, factors = malformed_moduli()[name]
    p, q = factors[0], n // factors[0]
    fac.verify(n, PARAMS, fac.prove(n, p, q, PARAMS, _transcript()), _transcript())
