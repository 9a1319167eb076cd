"""DLEQ (Chaum–Pedersen) on both curves: completeness, and every way a forged proof is refused."""

from __future__ import annotations

import pytest

from curves import SecretScalar, ed25519, secp256k1
from protocols.errors import InvalidMessage, ProofError
from protocols.transcript import Transcript
from protocols.zk import dleq

GROUPS = [secp256k1, ed25519]


def _transcript(protocol: str = "test") -> Transcript:
    return Transcript.for_context("test/dleq", protocol=protocol, session_id=bytes(32), round=1, parties=(1, 2))


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_valid_proof_verifies_and_round_trips(group) -> None:  # type: ignore[no-untyped-def]
    x = SecretScalar.random(group)
    base = group.base_mul(group.random_scalar())
    proof = dleq.prove(x, base, _transcript())
    dleq.verify(x.public_point(), base, base * x.value, proof, _transcript())
    again = dleq.DLEQProof.from_payload(proof.to_payload(), group)
    dleq.verify(x.public_point(), base, base * x.value, again, _transcript())


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_forgeries_are_refused(group) -> None:  # type: ignore[no-untyped-def]
    x, other = SecretScalar.random(group), SecretScalar.random(group)
    base = group.base_mul(group.random_scalar())
    proof = dleq.prove(x, base, _transcript())
    public, value = x.public_point(), base * x.value
    g = group.generator()
    cases = [
        (public, base, base * other.value, proof),  # a value with another discrete log
        (other.public_point(), base, value, proof),  # another public share
        (public, base + g, value, proof),  # another base
        (public, base, value, dleq.DLEQProof(proof.commitment_g + g, proof.commitment_p, proof.response)),
        (public, base, value, dleq.DLEQProof(proof.commitment_g, proof.commitment_p + g, proof.response)),
        (public, base, value, dleq.DLEQProof(proof.commitment_g, proof.commitment_p, (proof.response + 1) % group.order)),
        (public, base, group.identity(), proof),  # the identity
    ]
    for args in cases:
        with pytest.raises(ProofError):
            dleq.verify(*args, _transcript())
    with pytest.raises(ProofError):  # the same proof in another context (a replay)
        dleq.verify(public, base, value, proof, _transcript("other"))
    # a proof for x with a value made with other's key cannot pass either: the forger's best try
    forged = dleq.prove(other, base, _transcript())
    with pytest.raises(ProofError):
        dleq.verify(public, base, base * other.value, forged, _transcript())


def test_points_of_another_group_are_refused() -> None:
    x = SecretScalar.random(secp256k1)
    base = secp256k1.base_mul(5)
    proof = dleq.prove(x, base, _transcript())
    with pytest.raises(ProofError):
        dleq.verify(x.public_point(), ed25519.base_mul(5), base * x.value, proof, _transcript())


def test_malformed_payloads_are_invalid_messages() -> None:
    proof = dleq.prove(SecretScalar.random(ed25519), ed25519.base_mul(3), _transcript()).to_payload()
    for bad in ({**proof, "A": "00" * 32}, {**proof, "z": "ff" * 32}, {"A": proof["A"], "B": proof["B"]},
                {**proof, "B": proof["B"][:-2]}):
        with pytest.raises(InvalidMessage):
            dleq.DLEQProof.from_payload(bad, ed25519)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_a_value_passed_in_is_the_one_proven(group) -> None:  # type: ignore[no-untyped-def]
    x, other = SecretScalar.random(group), SecretScalar.random(group)
    base = group.base_mul(group.random_scalar())
    value = base * x.value
    dleq.verify(x.public_point(), base, value, dleq.prove(x, base, _transcript(), value), _transcript())
    wrong = dleq.prove(x, base, _transcript(), base * other.value)  # a caller's wrong value proves nothing
    with pytest.raises(ProofError):
        dleq.verify(x.public_point(), base, base * other.value, wrong, _transcript())
