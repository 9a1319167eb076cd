"""Π_prm: completeness, strict decoding, and rejection of every tampered field."""

from __future__ import annotations

import pytest

from protocols.errors import InvalidMessage, ProofError
from protocols.ring_pedersen import RingPedersenParams
from protocols.transcript import Transcript
from protocols.zk import prm
from tests.fixtures import ring_pedersen_sets

PARAMS, SECRET = ring_pedersen_sets()[0]
OTHER_PARAMS, _ = ring_pedersen_sets()[1]


def _transcript(session: bytes = b"\x01" * 32) -> Transcript:
    return Transcript.for_context("test", protocol="ecdsa2p/keygen", session_id=session, round=2, parties=[1, 2])


@pytest.fixture(scope="module")
def proof() -> prm.PrmProof:
    return prm.prove(PARAMS, SECRET, _transcript())


def test_completeness_and_payload_round_trip(proof: prm.PrmProof) -> None:
    decoded = prm.PrmProof.from_payload(proof.to_payload(), PARAMS)
    assert decoded == proof
    prm.verify(PARAMS, decoded, _transcript())


def test_rejects_other_session(proof: prm.PrmProof) -> None:
    with pytest.raises(ProofError):
        prm.verify(PARAMS, proof, _transcript(b"\x02" * 32))


def test_rejects_other_parameters(proof: prm.PrmProof) -> None:
    with pytest.raises(ProofError):
        prm.verify(OTHER_PARAMS, proof, _transcript())
    swapped = RingPedersenParams(PARAMS.n_hat, PARAMS.t, PARAMS.s)
    with pytest.raises(ProofError):
        prm.verify(swapped, proof, _transcript())


@pytest.mark.parametrize("field", ["commitments", "responses"])
@pytest.mark.parametrize("index", [0, 79])
def test_rejects_tampered_item(proof: prm.PrmProof, field: str, index: int) -> None:
    values = list(getattr(proof, field))
    values[index] = values[index] * 4 % PARAMS.n_hat
    tampered = prm.PrmProof(**{**proof.__dict__, field: tuple(values)})
    with pytest.raises(ProofError):
        prm.verify(PARAMS, tampered, _transcript())


def test_rejects_wrong_lengths_and_non_units(proof: prm.PrmProof) -> None:
    for tampered in (
        prm.PrmProof(proof.commitments[:-1], proof.responses[:-1]),
        prm.PrmProof((0,) + proof.commitments[1:], proof.responses),
        prm.PrmProof(proof.commitments, (PARAMS.n_hat,) + proof.responses[1:]),
    ):
        with pytest.raises(ProofError):
            prm.verify(PARAMS, tampered, _transcript())


def test_rejects_s_outside_the_group_of_t() -> None:
    """A prover who does not know λ (here: s unrelated to t) cannot make the proof verify."""
    forged_params = RingPedersenParams(PARAMS.n_hat, PARAMS.s * 4 % PARAMS.n_hat, PARAMS.t)
    proof = prm.prove(forged_params, SECRET, _transcript())
    with pytest.raises(ProofError):
        prm.verify(forged_params, proof, _transcript())


def test_decoding_is_strict(proof: prm.PrmProof) -> None:
    payload = proof.to_payload()
    bad = [
        {**payload, "extra": []},
        {"A": payload["A"][:-1], "z": payload["z"]},
        {"A": payload["A"], "z": payload["z"] + ["01"]},
        {"A": ["00"] + payload["A"][1:], "z": payload["z"]},
        {"A": payload["A"], "z": ["00" + payload["z"][0]] + payload["z"][1:]},
        {"A": payload["A"], "z": [format(PARAMS.n_hat, "x")] + payload["z"][1:]},
        {"A": payload["A"], "z": "00"},
    ]
    for item in bad:
        with pytest.raises(InvalidMessage):
            prm.PrmProof.from_payload(item, PARAMS)


def test_parameters_are_validated() -> None:
    n = PARAMS.n_hat
    for s, t in ((0, PARAMS.t), (1, PARAMS.t), (n - 1, PARAMS.t), (PARAMS.s, n), (SECRET.p, PARAMS.t), (PARAMS.t, PARAMS.t)):
        with pytest.raises(InvalidMessage):
            RingPedersenParams(n, s, t)
    with pytest.raises(InvalidMessage):
        RingPedersenParams(SECRET.p, 4, 9)
    with pytest.raises(InvalidMessage):
        RingPedersenParams.from_payload({**PARAMS.to_payload(), "n": format(n + 1, "x")})
    assert RingPedersenParams.from_payload(PARAMS.to_payload()) == PARAMS


def test_secret_never_shown() -> None:
    assert format(SECRET.p, "x") not in repr(SECRET) and str(SECRET.lam) not in repr(SECRET)
