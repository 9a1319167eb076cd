"""Π_mod: completeness, tampering, strict decoding, and the malformed moduli of BitForge."""

from __future__ import annotations

import pytest
from sympy.ntheory.modular import crt

from protocols import bigint
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk import mod
from tests.fixtures import malformed_moduli, paillier_keys

SK = paillier_keys()[0]
N = SK.n


def _transcript(session: bytes = b"\x01" * 32) -> Transcript:
    return Transcript.for_context("test", protocol="ecdsa2p/keygen", session_id=session, round=3, parties=[1, 2])


@pytest.fixture(scope="module")
def proof() -> mod.ModProof:
    return mod.prove(N, SK.p, SK.q, _transcript())


def _replace(proof: mod.ModProof, **changes: object) -> mod.ModProof:
    return mod.ModProof(**{**proof.__dict__, **changes})


def _cheating_proof(n: int, factors: tuple[int, ...], transcript: Transcript) -> mod.ModProof:
    """Π_mod's prover run with every prime factor of N, answering at random where it has no root."""
    w = next((w for w in range(2, 2000) if bigint.jacobi(w, n) == -1), 3)
    carmichael = 1
    for f in set(factors):
        carmichael = bigint.lcm(carmichael, f - 1)
    try:
        n_inverse = bigint.invert(n, carmichael)
    except UsageError:
        n_inverse = 1
    xs, as_, bs, zs = [], [], [], []
    for y in mod._challenges(n, w, transcript, mod.M_ITERATIONS):
        zs.append(bigint.powmod(y, n_inverse, n))
        x, a, b = bigint.random_unit(n), 0, 0
        for a_try, b_try in ((0, 0), (0, 1), (1, 0), (1, 1)):
            u = mod._sign_twist(n, w, y, a_try, b_try)
            if all(bigint.jacobi(u, f) == 1 for f in factors):
                roots = [bigint.powmod(u, ((f + 1) // 4) ** 2 % (f - 1), f) for f in factors]
                x, a, b = int(crt(list(factors), roots)[0]), a_try, b_try
                break
        xs.append(x)
        as_.append(a)
        bs.append(b)
        zs[-1] = zs[-1] or 1
    return mod.ModProof(w, tuple(xs), tuple(as_), tuple(bs), tuple(zs))


def test_completeness_and_payload_round_trip(proof: mod.ModProof) -> None:
    decoded = mod.ModProof.from_payload(proof.to_payload(), N)
    assert decoded == proof
    mod.verify(N, decoded, _transcript())


def test_cheating_prover_helper_is_complete_on_a_good_modulus() -> None:
    mod.verify(N, _cheating_proof(N, (SK.p, SK.q), _transcript()), _transcript())


def test_rejects_other_session_and_other_modulus(proof: mod.ModProof) -> None:
    with pytest.raises(ProofError):
        mod.verify(N, proof, _transcript(b"\x02" * 32))
    with pytest.raises(ProofError):
        mod.verify(paillier_keys()[1].n, proof, _transcript())


@pytest.mark.parametrize("field", ["x", "z", "a", "b"])
def test_rejects_tampered_list_field(proof: mod.ModProof, field: str) -> None:
    values = list(getattr(proof, field))
    values[5] = 1 - values[5] if field in ("a", "b") else values[5] * 2 % N
    with pytest.raises(ProofError):
        mod.verify(N, _replace(proof, **{field: tuple(values)}), _transcript())


def test_rejects_tampered_w(proof: mod.ModProof) -> None:
    with pytest.raises(ProofError):
        mod.verify(N, _replace(proof, w=N - proof.w), _transcript())


def test_rejects_w_with_jacobi_plus_one_or_sharing_a_factor(proof: mod.ModProof) -> None:
    with pytest.raises(ProofError):
        mod.verify(N, _replace(proof, w=proof.w * proof.w % N), _transcript())
    with pytest.raises(ProofError):
        mod.verify(N, _replace(proof, w=SK.p), _transcript())


def test_rejects_out_of_range_values_and_lengths(proof: mod.ModProof) -> None:
    for tampered in (
        _replace(proof, x=(proof.x[0] + N,) + proof.x[1:]),
        _replace(proof, z=(0,) + proof.z[1:]),
        _replace(proof, a=(2,) + proof.a[1:]),
        _replace(proof, b=proof.b[:-1]),
        _replace(proof, x=proof.x + (1,)),
    ):
        with pytest.raises(ProofError):
            mod.verify(N, tampered, _transcript())


def test_decoding_is_strict(proof: mod.ModProof) -> None:
    payload = proof.to_payload()
    bad = [
        {**payload, "extra": 1},
        {**payload, "a": payload["a"][:-1]},
        {**payload, "a": [True] + payload["a"][1:]},
        {**payload, "b": [2] + payload["b"][1:]},
        {**payload, "x": ["00"] + payload["x"][1:]},
        {**payload, "z": [format(N, "x")] + payload["z"][1:]},
        {**payload, "w": format(SK.p, "x")},
        {**payload, "w": "00" + payload["w"]},
    ]
    for item in bad:
        with pytest.raises(InvalidMessage):
            mod.ModProof.from_payload(item, N)


def test_rejects_even_modulus(proof: mod.ModProof) -> None:
    n, _ = malformed_moduli()["even"]
    with pytest.raises(ProofError, match="odd"):
        mod.verify(n, proof, _transcript())


def test_rejects_prime_modulus(proof: mod.ModProof) -> None:
    n, _ = malformed_moduli()["prime"]
    with pytest.raises(ProofError, match="prime"):
        mod.verify(n, proof, _transcript())


def test_rejects_1024_bit_modulus() -> None:
    n, (p, q) = malformed_moduli()["short"]
    proof = mod.prove(n, p, q, _transcript())  # a sound proof of a Paillier-Blum modulus ...
    with pytest.raises(ProofError, match="bits"):  # ... refused for its size
        mod.verify(n, proof, _transcript())


def test_rejects_square_modulus() -> None:
    n, factors = malformed_moduli()["square"]
    with pytest.raises(UsageError):
        mod.prove(n, factors[0], factors[1], _transcript())
    assert all(bigint.jacobi(w, n) != -1 for w in range(2, 500))  # no valid w exists
    with pytest.raises(ProofError):
        mod.verify(n, _cheating_proof(n, factors, _transcript()), _transcript())


def test_rejects_product_of_three_primes() -> None:
    n, factors = malformed_moduli()["three_primes"]
    with pytest.raises(ProofError, match="x_i"):
        mod.verify(n, _cheating_proof(n, factors, _transcript()), _transcript())


def test_small_blum_factor_is_left_to_fac() -> None:
    """65519·q is a genuine Paillier-Blum modulus: Π_mod accepts it, Π_fac must refuse it.

    (Unless one of the 80 challenges is a multiple of 65519, chance ~2^-9.7: then the honest
    prover cannot answer; a fresh w gives fresh challenges.)
    """
    n, (p, q) = malformed_moduli()["small_factor"]
    for attempt in range(5):
        try:
            proof = mod.prove(n, p, q, _transcript())
            break
        except UsageError:
            continue
    mod.verify(n, proof, _transcript())
