"""Schnorr proof of knowledge of a discrete log on both curves."""

from __future__ import annotations

import pytest

from curves import SecretScalar, ed25519, secp256k1
from protocols.errors import InvalidMessage, ProofError
from protocols.transcript import Transcript
from protocols.zk import schnorr

GROUPS = [secp256k1, ed25519]


def transcript(sid=b"\x00" * 32, prover=1) -> Transcript:
    t = Transcript.for_context("test/schnorr", protocol="test", session_id=sid, round=1, parties=[1, 2])
    t.append_int("prover", prover)
    return t


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
class TestSchnorr:
    def test_completeness_and_payload_round_trip(self, group):
        secret = SecretScalar.random(group)
        proof = schnorr.prove(secret, transcript())
        again = schnorr.SchnorrProof.from_payload(proof.to_payload(), group)
        schnorr.verify(secret.public_point(), again, transcript())

    def test_rejects_other_statement(self, group):
        secret = SecretScalar.random(group)
        proof = schnorr.prove(secret, transcript())
        with pytest.raises(ProofError):
            schnorr.verify(group.base_mul(group.random_scalar()), proof, transcript())

    def test_rejects_replay_into_other_session_or_prover(self, group):
        secret = SecretScalar.random(group)
        proof = schnorr.prove(secret, transcript())
        with pytest.raises(ProofError):
            schnorr.verify(secret.public_point(), proof, transcript(sid=b"\x01" * 32))
        with pytest.raises(ProofError):
            schnorr.verify(secret.public_point(), proof, transcript(prover=2))

    def test_rejects_tampered_fields(self, group):
        secret = SecretScalar.random(group)
        proof = schnorr.prove(secret, transcript())
        bad_z = schnorr.SchnorrProof(proof.commitment, (proof.response + 1) % group.order)
        bad_a = schnorr.SchnorrProof(proof.commitment + group.generator(), proof.response)
        for bad in (bad_z, bad_a):
            with pytest.raises(ProofError):
                schnorr.verify(secret.public_point(), bad, transcript())

    def test_rejects_identity_statement(self, group):
        proof = schnorr.prove(SecretScalar.random(group), transcript())
        with pytest.raises(ProofError):
            schnorr.verify(group.identity(), proof, transcript())

    def test_strict_payload(self, group):
        payload = schnorr.prove(SecretScalar.random(group), transcript()).to_payload()
        for bad in ({**payload, "x": "00"}, {"A": payload["A"]}, {**payload, "z": "ff" * 32},
                    {**payload, "A": "00" * group.point_length}):
            with pytest.raises(InvalidMessage):
                schnorr.SchnorrProof.from_payload(bad, group)
