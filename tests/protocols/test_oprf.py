"""protocols.oprf: RFC 9497 P256-SHA256 vectors (OPRF and VOPRF modes) byte for byte, the round
trip for any input, strict deserialisation of everything a peer sends, and secret hygiene."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curves.base
from curves import p256 as p256_module
from curves.p256 import GX, B, N, P, p256
from protocols import oprf
from protocols.errors import InvalidMessage, MPCError, ProofError, UsageError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "oprf"


def load(name: str) -> dict:
    with (VECTORS / name).open(encoding="utf-8") as fh:
        return json.load(fh)


OPRF_VECTORS = load("p256-sha256-oprf.json")
VOPRF_VECTORS = load("p256-sha256-voprf.json")


def hexlist(vector: dict, field: str) -> list[bytes]:
    """A vector field as bytes; batch vectors list their items comma-separated."""
    return [bytes.fromhex(item) for item in vector[field].split(",")]


@pytest.fixture(params=p256_module.available_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on each P-256 field backend (gmpy2 when installed, always pure Python)."""
    with p256_module.using_backend(request.param):
        yield request.param


@pytest.fixture(scope="module")
def key_pair() -> tuple[oprf.ServerKey, bytes]:
    return oprf.generate_key_pair()


def derived(vectors: dict, mode: int) -> tuple[oprf.ServerKey, bytes]:
    return oprf.derive_key_pair(bytes.fromhex(vectors["Seed"]), bytes.fromhex(vectors["KeyInfo"]), mode)


# --- RFC 9497 Appendix A.3 vectors ---------------------------------------------------------------
def test_context_string() -> None:
    assert oprf.context_string() == b"OPRFV1-\x00-P256-SHA256"
    assert oprf.context_string(oprf.MODE_VOPRF) == b"OPRFV1-\x01-P256-SHA256"
    with pytest.raises(UsageError):
        oprf.context_string(0x02)


def test_oprf_derive_key_pair_vector(backend: str) -> None:
    assert OPRF_VECTORS["identifier"] == oprf.IDENTIFIER.decode() and OPRF_VECTORS["mode"] == oprf.MODE_OPRF
    key, public = derived(OPRF_VECTORS, oprf.MODE_OPRF)
    assert key.to_bytes().hex() == OPRF_VECTORS["skSm"]
    assert public == p256.base_mul(int(OPRF_VECTORS["skSm"], 16)).to_bytes()


@pytest.mark.parametrize("index", range(len(OPRF_VECTORS["vectors"])))
def test_oprf_vectors(backend: str, index: int) -> None:
    vector = OPRF_VECTORS["vectors"][index]
    key, _ = derived(OPRF_VECTORS, oprf.MODE_OPRF)
    (private_input,) = hexlist(vector, "Input")
    blind_scalar = oprf.Blind.from_bytes(bytes.fromhex(vector["Blind"]))
    blinded = oprf.blind_with(private_input, blind_scalar)
    assert blinded.hex() == vector["BlindedElement"]
    evaluated = oprf.blind_evaluate(key, blinded)
    assert evaluated.hex() == vector["EvaluationElement"]
    assert oprf.finalize(private_input, blind_scalar, evaluated).hex() == vector["Output"]
    assert oprf.evaluate(key, private_input).hex() == vector["Output"]


def test_voprf_derive_key_pair_vector(backend: str) -> None:
    key, public = derived(VOPRF_VECTORS, oprf.MODE_VOPRF)
    assert key.to_bytes().hex() == VOPRF_VECTORS["skSm"]
    assert public.hex() == VOPRF_VECTORS["pkSm"] == key.public_key().hex()


@pytest.mark.parametrize("index", range(len(VOPRF_VECTORS["vectors"])))
def test_voprf_vectors(backend: str, index: int) -> None:
    vector = VOPRF_VECTORS["vectors"][index]
    key, public = derived(VOPRF_VECTORS, oprf.MODE_VOPRF)
    inputs = hexlist(vector, "Input")
    blinds = [oprf.Blind.from_bytes(b, oprf.MODE_VOPRF) for b in hexlist(vector, "Blind")]
    blinded = [oprf.blind_with(i, b) for i, b in zip(inputs, blinds)]
    assert blinded == hexlist(vector, "BlindedElement")
    evaluated, fresh_proof = oprf.voprf_blind_evaluate_batch(key, blinded)
    assert evaluated == hexlist(vector, "EvaluationElement")
    # The proof is randomised; with the vector's ProofRandomScalar it is the vector's proof.
    proof = oprf.generate_proof(
        key, p256.generator(), oprf.deserialize_element(public),
        [oprf.deserialize_element(e) for e in blinded], [oprf.deserialize_element(e) for e in evaluated],
        oprf.MODE_VOPRF, r=int(vector["ProofRandomScalar"], 16),
    )
    assert proof.hex() == vector["Proof"]
    outputs = hexlist(vector, "Output")
    for candidate in (proof, fresh_proof):
        assert oprf.voprf_finalize_batch(inputs, blinds, evaluated, blinded, public, candidate) == outputs
    assert [oprf.evaluate(key, i, oprf.MODE_VOPRF) for i in inputs] == outputs
    if len(inputs) == 1:
        assert oprf.voprf_finalize(inputs[0], blinds[0], evaluated[0], blinded[0], public, proof) == outputs[0]


def test_vector_counts() -> None:
    assert len(OPRF_VECTORS["vectors"]) == 2 and len(VOPRF_VECTORS["vectors"]) == 3


# --- the protocol for any input ------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(private_input=st.binary(max_size=200))
def test_round_trip_equals_evaluate(key_pair: tuple[oprf.ServerKey, bytes], private_input: bytes) -> None:
    key, _ = key_pair
    blind_scalar, blinded = oprf.blind(private_input)
    output = oprf.finalize(private_input, blind_scalar, oprf.blind_evaluate(key, blinded))
    assert output == oprf.evaluate(key, private_input)
    assert len(output) == oprf.NH


@settings(max_examples=8, deadline=None)
@given(private_input=st.binary(max_size=64))
def test_voprf_round_trip_equals_evaluate(key_pair: tuple[oprf.ServerKey, bytes], private_input: bytes) -> None:
    key, public = key_pair
    blind_scalar, blinded = oprf.blind(private_input, oprf.MODE_VOPRF)
    evaluated, proof = oprf.voprf_blind_evaluate(key, blinded)
    output = oprf.voprf_finalize(private_input, blind_scalar, evaluated, blinded, public, proof)
    assert output == oprf.evaluate(key, private_input, oprf.MODE_VOPRF)


def test_round_trip_on_the_pure_python_backend(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    with p256_module.using_backend("python"):
        blind_scalar, blinded = oprf.blind(b"correct horse")
        evaluated = oprf.blind_evaluate(key, blinded)
        assert oprf.finalize(b"correct horse", blind_scalar, evaluated) == oprf.evaluate(key, b"correct horse")


def test_blinding_is_fresh_and_hides_the_input(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    (b1, e1), (b2, e2) = oprf.blind(b"pin"), oprf.blind(b"pin")
    assert b1 != b2 and e1 != e2
    assert oprf.finalize(b"pin", b1, oprf.blind_evaluate(key, e1)) == oprf.finalize(
        b"pin", b2, oprf.blind_evaluate(key, e2))


def test_modes_and_keys_separate_outputs(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    other, _ = oprf.generate_key_pair()
    assert oprf.evaluate(key, b"pin") != oprf.evaluate(other, b"pin")
    assert oprf.evaluate(key, b"pin") != oprf.evaluate(key, b"pin", oprf.MODE_VOPRF)
    assert oprf.evaluate(key, b"pin") != oprf.evaluate(key, b"pin2")


def test_blind_comes_from_the_secrets_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """RandomScalar draws from ``secrets`` (through ``curves.randomness``): pinning it reproduces
    the vector's blinded element."""
    vector = OPRF_VECTORS["vectors"][0]
    fixed = int(vector["Blind"], 16)
    monkeypatch.setattr(curves.randomness.secrets, "randbelow", lambda bound: fixed - 1)
    blind_scalar, blinded = oprf.blind(bytes.fromhex(vector["Input"]))
    assert blinded.hex() == vector["BlindedElement"]
    assert blind_scalar.to_bytes().hex() == vector["Blind"]


# --- hostile messages ------------------------------------------------------------------------------
def _encode(x: int, prefix: int = 2) -> bytes:
    return bytes([prefix]) + x.to_bytes(32, "big")


def _off_curve() -> bytes:
    x = 0
    while pow((x**3 - 3 * x + B) % P, (P - 1) // 2, P) in (0, 1):
        x += 1
    return _encode(x)


HOSTILE_ELEMENTS: dict[str, object] = {
    "identity (SEC1 zero byte)": b"\x00",
    "identity (33 zero bytes)": bytes(33),
    "off the curve": _off_curve(),
    "too short": p256.generator().to_bytes()[:-1],
    "too long": p256.generator().to_bytes() + b"\x00",
    "empty": b"",
    "uncompressed": b"\x04" + GX.to_bytes(32, "big") + (p256.affine(p256.generator())[1]).to_bytes(32, "big"),
    "prefix 04": b"\x04" + GX.to_bytes(32, "big"),
    "prefix 01": b"\x01" + GX.to_bytes(32, "big"),
    "prefix ff": b"\xff" + GX.to_bytes(32, "big"),
    "x = p": _encode(P),
    "x = 2^256 - 1": b"\x02" + b"\xff" * 32,
    "not bytes": p256.generator().to_bytes().hex(),
}


@pytest.mark.parametrize("name", list(HOSTILE_ELEMENTS))
def test_server_rejects_hostile_blinded_elements(key_pair: tuple[oprf.ServerKey, bytes], name: str) -> None:
    key, _ = key_pair
    with pytest.raises(oprf.DeserializeError) as info:
        oprf.blind_evaluate(key, HOSTILE_ELEMENTS[name])  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidMessage)
    with pytest.raises(oprf.DeserializeError):
        oprf.voprf_blind_evaluate(key, HOSTILE_ELEMENTS[name])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(HOSTILE_ELEMENTS))
def test_client_rejects_hostile_evaluated_elements(name: str) -> None:
    blind_scalar, _ = oprf.blind(b"pin")
    with pytest.raises(oprf.DeserializeError):
        oprf.finalize(b"pin", blind_scalar, HOSTILE_ELEMENTS[name])  # type: ignore[arg-type]


def test_deserialize_element_accepts_exactly_the_canonical_encoding() -> None:
    point = p256.base_mul(p256.random_scalar())
    assert oprf.deserialize_element(oprf.serialize_element(point)) == point
    with pytest.raises(UsageError):
        oprf.serialize_element(p256.identity())
    with pytest.raises(UsageError):
        oprf.serialize_element("point")  # type: ignore[arg-type]


def test_scalar_serialisation_edges() -> None:
    assert oprf.deserialize_scalar((N - 1).to_bytes(32, "big")) == N - 1
    assert oprf.deserialize_scalar(bytes(32)) == 0
    assert oprf.serialize_scalar(N - 1) == (N - 1).to_bytes(32, "big")
    bad_scalars = [N.to_bytes(32, "big"), (N + 1).to_bytes(32, "big"), b"\xff" * 32, bytes(31), bytes(33), b"", "00" * 32]
    for bad in bad_scalars:
        with pytest.raises(oprf.DeserializeError):
            oprf.deserialize_scalar(bad)  # type: ignore[arg-type]
    with pytest.raises(oprf.DeserializeError):
        oprf.deserialize_scalar(bytes(32), nonzero=True)
    for value in (N, -1, 2**256):
        with pytest.raises(UsageError):
            oprf.serialize_scalar(value)
    for cls in (oprf.ServerKey, oprf.Blind):
        with pytest.raises(oprf.DeserializeError):
            cls.from_bytes(bytes(32))
        with pytest.raises(oprf.DeserializeError):
            cls.from_bytes(N.to_bytes(32, "big"))
        bad_values: tuple[object, ...] = (0, N, -5, True, 1.0)
        for bad_value in bad_values:
            with pytest.raises(UsageError):
                cls(bad_value)  # type: ignore[arg-type]


# --- VOPRF: a dishonest server is caught --------------------------------------------------------------
@pytest.fixture
def voprf_exchange(key_pair: tuple[oprf.ServerKey, bytes]) -> dict:
    key, public = key_pair
    blind_scalar, blinded = oprf.blind(b"pin", oprf.MODE_VOPRF)
    evaluated, proof = oprf.voprf_blind_evaluate(key, blinded)
    return {"input": b"pin", "blind": blind_scalar, "evaluated": evaluated, "blinded": blinded,
            "public": public, "proof": proof}


def finalize_with(exchange: dict, **changes: object) -> bytes:
    args = dict(exchange, **changes)
    return oprf.voprf_finalize(args["input"], args["blind"], args["evaluated"], args["blinded"],
                               args["public"], args["proof"])


def test_voprf_rejects_a_tampered_proof(voprf_exchange: dict) -> None:
    proof = voprf_exchange["proof"]
    for position in (0, 31, 32, 63):
        tampered = bytearray(proof)
        tampered[position] ^= 1
        with pytest.raises((oprf.VerifyError, oprf.DeserializeError)):
            finalize_with(voprf_exchange, proof=bytes(tampered))
    with pytest.raises(oprf.VerifyError) as info:
        finalize_with(voprf_exchange, proof=proof[:32] + bytes(32))
    assert isinstance(info.value, ProofError)


def test_voprf_rejects_another_key(voprf_exchange: dict) -> None:
    other, other_public = oprf.generate_key_pair()
    with pytest.raises(oprf.VerifyError):
        finalize_with(voprf_exchange, public=other_public)
    evaluated, proof = oprf.voprf_blind_evaluate(other, voprf_exchange["blinded"])
    with pytest.raises(oprf.VerifyError):
        finalize_with(voprf_exchange, evaluated=evaluated, proof=proof)  # the client's pk is not other's


def test_voprf_rejects_an_element_that_does_not_match_the_proof(voprf_exchange: dict) -> None:
    forged = oprf.serialize_element(oprf.deserialize_element(voprf_exchange["evaluated"]) * 2)
    with pytest.raises(oprf.VerifyError):
        finalize_with(voprf_exchange, evaluated=forged)


def test_voprf_rejects_malformed_proofs_and_keys(voprf_exchange: dict) -> None:
    proof = voprf_exchange["proof"]
    for bad in (proof[:-1], proof + b"\x00", b"", N.to_bytes(32, "big") + proof[32:], proof[:32] + b"\xff" * 32):
        with pytest.raises(oprf.DeserializeError):
            finalize_with(voprf_exchange, proof=bad)
    for name, bad in HOSTILE_ELEMENTS.items():
        with pytest.raises(oprf.DeserializeError):
            finalize_with(voprf_exchange, public=bad)


def test_verify_error_when_a_proof_point_is_the_identity(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    """A proof built so that t2 = s·G + c·pk is the identity fails as a proof, not as a crash."""
    key, public = key_pair
    _, blinded = oprf.blind(b"pin", oprf.MODE_VOPRF)
    evaluated, _ = oprf.voprf_blind_evaluate(key, blinded)
    challenge = 5
    proof = oprf.serialize_scalar(challenge) + oprf.serialize_scalar(-challenge * key._value % N)
    with pytest.raises(oprf.VerifyError):
        oprf.verify_proof(p256.generator(), oprf.deserialize_element(public), [oprf.deserialize_element(blinded)],
                          [oprf.deserialize_element(evaluated)], proof)


def test_modes_must_match(key_pair: tuple[oprf.ServerKey, bytes], voprf_exchange: dict) -> None:
    key, _ = key_pair
    with pytest.raises(UsageError):
        oprf.finalize(b"pin", voprf_exchange["blind"], voprf_exchange["evaluated"])
    blind_scalar, blinded = oprf.blind(b"pin")
    with pytest.raises(UsageError):
        finalize_with(voprf_exchange, blind=blind_scalar)
    with pytest.raises(UsageError):
        oprf.Blind.random(0x02)
    with pytest.raises(UsageError):
        oprf.voprf_finalize_batch([], [], [], [], voprf_exchange["public"], voprf_exchange["proof"])
    with pytest.raises(UsageError):
        oprf.generate_proof(key, p256.generator(), p256.generator(), [], [])
    with pytest.raises(UsageError):
        oprf.generate_proof(key, p256.generator(), p256.generator(), [p256.generator()], [p256.generator()], r=0)


# --- keys and errors ------------------------------------------------------------------------------------
def test_derive_key_pair_checks_its_arguments() -> None:
    for seed in (bytes(31), bytes(33), "a3" * 32):
        with pytest.raises(UsageError):
            oprf.derive_key_pair(seed, b"")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        oprf.derive_key_pair(bytes(32), bytes(oprf.MAX_INPUT_LENGTH + 1))
    key, public = oprf.derive_key_pair(bytes(32), bytes(oprf.MAX_INPUT_LENGTH))
    assert key.public_key() == public


def test_derive_key_pair_retries_with_the_next_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    real = oprf.hash_to_scalar
    counters: list[int] = []

    def zero_twice(data: bytes, mode: int = 0, dst: bytes | None = None) -> int:
        counters.append(data[-1])
        return 0 if len(counters) <= 2 else real(data, mode, dst)

    monkeypatch.setattr(oprf, "hash_to_scalar", zero_twice)
    key, _ = oprf.derive_key_pair(bytes(32), b"info")
    assert counters == [0, 1, 2]
    expected = real(bytes(32) + b"\x00\x04info\x02", 0, b"DeriveKeyPair" + oprf.context_string())
    assert key.to_bytes() == oprf.serialize_scalar(expected)


def test_derive_key_pair_error_after_256_zero_scalars(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def always_zero(data: bytes, mode: int = 0, dst: bytes | None = None) -> int:
        calls.append(data[-1])
        return 0

    monkeypatch.setattr(oprf, "hash_to_scalar", always_zero)
    with pytest.raises(oprf.DeriveKeyPairError) as info:
        oprf.derive_key_pair(bytes(32), b"")
    assert isinstance(info.value, MPCError)
    assert calls == list(range(256))


def test_input_mapping_to_the_identity_is_invalid_input(monkeypatch: pytest.MonkeyPatch,
                                                        key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    monkeypatch.setattr(oprf, "hash_to_group", lambda data, mode=0: p256.identity())
    with pytest.raises(oprf.InvalidInputError):
        oprf.blind(b"pin")
    with pytest.raises(oprf.InvalidInputError):
        oprf.evaluate(key, b"pin")


def test_input_length_limit(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    longest = bytes(oprf.MAX_INPUT_LENGTH)
    blind_scalar, blinded = oprf.blind(longest)
    assert oprf.finalize(longest, blind_scalar, oprf.blind_evaluate(key, blinded)) == oprf.evaluate(key, longest)
    too_long = longest + b"\x00"
    for call in (lambda: oprf.blind(too_long), lambda: oprf.evaluate(key, too_long),
                 lambda: oprf.finalize(too_long, blind_scalar, blinded),
                 lambda: oprf.blind("text")):  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            call()  # type: ignore[no-untyped-call]


def test_wrong_secret_types_are_usage_errors(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    blind_scalar, blinded = oprf.blind(b"pin")
    with pytest.raises(UsageError):
        oprf.blind_evaluate(blind_scalar, blinded)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        oprf.finalize(b"pin", key, blinded)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        oprf.evaluate(1, b"pin")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        oprf.blind_with(b"pin", 1)  # type: ignore[arg-type]


def test_secrets_never_show(key_pair: tuple[oprf.ServerKey, bytes]) -> None:
    key, _ = key_pair
    blind_scalar, _ = oprf.blind(b"pin")
    for secret in (key, blind_scalar):
        value = int.from_bytes(secret.to_bytes(), "big")
        for shown in (repr(secret), str(secret), f"{secret}", repr([secret])):
            assert "redacted" in shown
            assert secret.to_bytes().hex() not in shown and str(value) not in shown and hex(value)[2:] not in shown
        with pytest.raises(TypeError):
            pickle.dumps(secret)
        with pytest.raises(TypeError):
            hash(secret)
        assert type(secret).from_bytes(secret.to_bytes()) == secret
    assert oprf.ServerKey(1) != oprf.ServerKey(2) and oprf.Blind(7) == oprf.Blind(7)
    assert (key == blind_scalar) is False  # a key never equals a blind, whatever the values
