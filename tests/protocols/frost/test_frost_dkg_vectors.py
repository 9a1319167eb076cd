"""ZcashFoundation/frost vectors_dkg.json: proofs of knowledge, shares, verifying shares, group key."""

from __future__ import annotations

import pytest

from curves import SecretScalar
from protocols.errors import ProofError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.dkg import ProofOfKnowledge, prove_knowledge, verify_knowledge
from protocols.sharing import evaluate_polynomial, feldman_commit, feldman_verify


def point(hex_value: str):
    return SUITE.deserialize_element(bytes.fromhex(hex_value))


def scalar(hex_value: str) -> int:
    return SUITE.deserialize_scalar(bytes.fromhex(hex_value))


@pytest.fixture
def dkg_vector(load_vector):
    inputs = load_vector("vectors_dkg.json")["inputs"]
    return inputs, {int(k): v for k, v in inputs.items() if k.isdigit()}


def test_commitments_and_proofs_of_knowledge(dkg_vector) -> None:
    _, participants = dkg_vector
    for i, p in participants.items():
        coefficients = [scalar(p["signing_key"]), scalar(p["coefficient"])]
        commitment = feldman_commit(SUITE.group, coefficients)
        assert [c.to_bytes().hex() for c in commitment] == p["vss_commitments"]
        proof = ProofOfKnowledge.from_bytes(bytes.fromhex(p["proof_of_knowledge"]))
        verify_knowledge(i, commitment[0], proof)  # ZF's challenge: empty context
        with pytest.raises(ProofError):
            verify_knowledge(i % 3 + 1, commitment[0], proof)  # bound to the identifier
        with pytest.raises(ProofError):
            verify_knowledge(i, commitment[0], proof, context=b"\x00" * 32)


def test_received_shares_signing_shares_and_group_key(dkg_vector) -> None:
    inputs, participants = dkg_vector
    commitments = {i: [point(c) for c in p["vss_commitments"]] for i, p in participants.items()}
    polynomials = {i: [scalar(p["signing_key"]), scalar(p["coefficient"])] for i, p in participants.items()}
    for i, p in participants.items():
        received = {int(j): scalar(s) for j, s in p["signing_shares"].items()}
        for j, share in received.items():
            feldman_verify(commitments[j], i, share)
            assert share == evaluate_polynomial(SUITE.group, polynomials[j], i)
        own = evaluate_polynomial(SUITE.group, polynomials[i], i)
        signing_share = (own + sum(received.values())) % SUITE.order
        assert SUITE.serialize_scalar(signing_share).hex() == p["signing_share"]
        assert SUITE.group.base_mul(signing_share).to_bytes().hex() == p["verifying_share"]
    group_key = SUITE.group.identity()
    for commitment in commitments.values():
        group_key = group_key + commitment[0]
    assert group_key.to_bytes().hex() == inputs["verifying_key"]


def test_own_proof_round_trips() -> None:
    secret = SecretScalar.random(SUITE.group)
    proof = prove_knowledge(7, secret, b"ctx")
    verify_knowledge(7, secret.public_point(), ProofOfKnowledge.from_bytes(proof.to_bytes()), b"ctx")
