"""RFC 9591 App. E.1 and ZcashFoundation/frost signing vectors: every intermediate value."""

from __future__ import annotations

import nacl.signing
import pytest

from curves import SecretScalar
from protocols.frost import KeyShare, round1, round2
from protocols.frost.aggregate import aggregate, verify_signature_share
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.errors import UsageError
from protocols.frost.helpers import binding_factor_inputs, compute_binding_factors
from protocols.sharing import evaluate_polynomial

SIGNING_VECTORS = ["rfc9591_frost_ed25519_sha512.json", "vectors.json", "vectors-big-identifier.json"]


def scalar(hex_value: str) -> int:
    return SUITE.deserialize_scalar(bytes.fromhex(hex_value))


def key_shares(vector: dict) -> dict[int, KeyShare]:
    inputs = vector["inputs"]
    public_key = bytes.fromhex(inputs.get("group_public_key") or inputs["verifying_key_key"])
    shares = {p["identifier"]: scalar(p["participant_share"]) for p in inputs["participant_shares"]}
    verifying = {i: SUITE.group.base_mul(s) for i, s in shares.items()}
    threshold = int(vector["config"]["MIN_PARTICIPANTS"])
    return {
        i: KeyShare(i, threshold, tuple(shares), SecretScalar(SUITE.group, s), verifying,
                    SUITE.deserialize_element(public_key))
        for i, s in shares.items()
    }


@pytest.mark.parametrize("name", SIGNING_VECTORS)
def test_dealer_shares_match_polynomial(name: str, load_vector) -> None:
    inputs = load_vector(name)["inputs"]
    coefficients = [scalar(inputs["group_secret_key"])] + [scalar(a) for a in inputs["share_polynomial_coefficients"]]
    for participant in inputs["participant_shares"]:
        expected = evaluate_polynomial(SUITE.group, coefficients, participant["identifier"])
        assert scalar(participant["participant_share"]) == expected
    public_key = inputs.get("group_public_key") or inputs["verifying_key_key"]
    assert SUITE.group.base_mul(coefficients[0]).to_bytes().hex() == public_key


@pytest.mark.parametrize("name", SIGNING_VECTORS)
def test_signing_reproduces_every_intermediate_value(name: str, load_vector) -> None:
    vector = load_vector(name)
    shares = key_shares(vector)
    msg = bytes.fromhex(vector["inputs"]["message"])
    outputs = vector["round_one_outputs"]["outputs"]
    assert [o["identifier"] for o in outputs] == vector["inputs"]["participant_list"]

    nonces = {}
    for out in outputs:
        i = out["identifier"]
        nonces[i] = round1.commit(
            i, shares[i].signing_share,
            hiding_randomness=bytes.fromhex(out["hiding_nonce_randomness"]),
            binding_randomness=bytes.fromhex(out["binding_nonce_randomness"]),
        )
        hiding, binding = nonces[i]._nonces  # peek without consuming, to check the vector
        assert SUITE.serialize_scalar(hiding.value).hex() == out["hiding_nonce"]
        assert SUITE.serialize_scalar(binding.value).hex() == out["binding_nonce"]
        assert nonces[i].commitments.hiding.to_bytes().hex() == out["hiding_nonce_commitment"]
        assert nonces[i].commitments.binding.to_bytes().hex() == out["binding_nonce_commitment"]

    commitment_list = [nonces[o["identifier"]].commitments for o in outputs]
    group_public_key = shares[outputs[0]["identifier"]].group_public_key
    inputs = binding_factor_inputs(group_public_key, commitment_list, msg)
    factors = compute_binding_factors(group_public_key, commitment_list, msg)
    for out in outputs:
        assert inputs[out["identifier"]].hex() == out["binding_factor_input"]
        assert SUITE.serialize_scalar(factors[out["identifier"]]).hex() == out["binding_factor"]

    sig_shares = {}
    for out in vector["round_two_outputs"]["outputs"]:
        i = out["identifier"]
        sig_shares[i] = round2.sign(shares[i], nonces[i], msg, commitment_list)
        assert SUITE.serialize_scalar(sig_shares[i]).hex() == out["sig_share"]
        verify_signature_share(i, shares[i].verifying_share, sig_shares[i], commitment_list, group_public_key, msg)

    signature = aggregate(commitment_list, msg, group_public_key, sig_shares)
    assert signature.hex() == vector["final_output"]["sig"]
    nacl.signing.VerifyKey(group_public_key.to_bytes()).verify(msg, signature)


def test_nonces_are_single_use(load_vector) -> None:
    vector = load_vector("rfc9591_frost_ed25519_sha512.json")
    shares = key_shares(vector)
    nonces = {i: round1.commit(i, shares[i].signing_share) for i in (1, 3)}
    commitment_list = [nonces[1].commitments, nonces[3].commitments]
    round2.sign(shares[1], nonces[1], b"m", commitment_list)
    with pytest.raises(UsageError):
        round2.sign(shares[1], nonces[1], b"m", commitment_list)


def test_signer_must_find_own_commitments(load_vector) -> None:
    vector = load_vector("rfc9591_frost_ed25519_sha512.json")
    shares = key_shares(vector)
    mine, other, stranger = (round1.commit(i, shares[i].signing_share) for i in (1, 3, 1))
    with pytest.raises(UsageError):
        round2.sign(shares[1], mine, b"m", [stranger.commitments, other.commitments])
    with pytest.raises(UsageError):
        round2.sign(shares[1], mine, b"m", [other.commitments])
    assert not mine.used


def test_repair_share_vector_sums(load_vector) -> None:
    vector = load_vector("repair-share.json")
    for section, prefix, total in (("scalar_generation", "random_scalar_", "random_scalar_sum"),
                                   ("sigma_generation", "sigma_", "sigma_sum")):
        values = vector[section]
        parts = [scalar(v) for k, v in values.items() if k.startswith(prefix) and k != total]
        assert SUITE.serialize_scalar(sum(parts) % SUITE.order).hex() == values[total]
