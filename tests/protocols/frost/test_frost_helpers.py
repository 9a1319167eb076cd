"""The shortcuts of the signing helpers (issue 30) against RFC 9591's straightforward formulas.

- ``compute_group_commitment`` with a signer's own term (d + ρ·e)·B and products ρ_i·E_i made
  while decoding, summed from the first term: equals §4.5's R = Σ D_i + ρ_i·E_i from the identity.
- ``derive_interpolating_value`` (cached for plain int identifiers): equals §4.2's λ_i computed
  afresh, and input that the uncached path refuses is still refused after a cached call.
- ``binding_factors_from_encoding`` with H4(msg) passed in: equals §4.4 over the decoded list.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import Point, SecretScalar
from curves.ed25519 import L
from protocols.errors import UsageError
from protocols.frost import round1
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    binding_factors_from_encoding,
    compute_binding_factors,
    compute_group_commitment,
    compute_signing_context,
    derive_interpolating_value,
    encode_group_commitment_list,
)
from protocols.sharing import lagrange_coefficient

G = SUITE.group
scalars = st.integers(min_value=1, max_value=L - 1)
identifier_sets = st.lists(st.integers(min_value=1, max_value=2**32 - 1), min_size=1, max_size=5, unique=True)


def _straightforward_commitment(commitment_list: list[SigningCommitments], factors: dict[int, int]) -> Point:
    """§4.5 as written: R = identity, then R += D_i + ρ_i·E_i for each signer."""
    group_commitment = G.identity()
    for c in commitment_list:
        group_commitment = group_commitment + c.hiding + c.binding * factors[c.identifier]
    return group_commitment


def _signers(seeds: list[tuple[int, int]]) -> tuple[list[round1.SigningNonces], list[SigningCommitments]]:
    nonces = [
        round1.SigningNonces(SecretScalar(G, d), SecretScalar(G, e),
                             SigningCommitments(i, G.base_mul(d), G.base_mul(e)))
        for i, (d, e) in enumerate(seeds, start=1)
    ]
    return nonces, [n.commitments for n in nonces]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(scalars, scalars), min_size=1, max_size=3), st.lists(scalars, min_size=3, max_size=3),
       st.data())
def test_group_commitment_shortcuts_equal_the_rfc_sum(
    seeds: list[tuple[int, int]], rhos: list[int], data: st.DataObject
) -> None:
    nonces, commitment_list = _signers(seeds)
    factors = {c.identifier: rho for c, rho in zip(commitment_list, rhos)}
    expected = _straightforward_commitment(commitment_list, factors)
    assert compute_group_commitment(commitment_list, factors) == expected
    own = data.draw(st.sampled_from(commitment_list)).identifier
    others = [c for c in commitment_list if c.identifier != own]
    precomputed = data.draw(st.lists(st.sampled_from(others), unique=True)) if others else []
    terms = {c.identifier: c.binding * factors[c.identifier] for c in precomputed}
    shortcut = compute_group_commitment(commitment_list, factors, nonces[own - 1].commitment_share, own, terms)
    assert shortcut == expected
    assert shortcut.to_bytes() == expected.to_bytes()


def test_group_commitment_of_an_empty_list_is_the_identity() -> None:
    assert compute_group_commitment([], {}).is_identity


def test_group_commitment_whose_terms_cancel_is_the_identity() -> None:
    """D_2 = -(D_1 + ρ_1·E_1) - ρ_2·E_2: the sum passes through non-trivial points to the identity."""
    d1, e1, e2, rho1, rho2 = 11, 22, 33, 44, 55
    first = SigningCommitments(1, G.base_mul(d1), G.base_mul(e1))
    second = SigningCommitments(2, G.base_mul(-(d1 + rho1 * e1 + rho2 * e2)), G.base_mul(e2))
    factors = {1: rho1, 2: rho2}
    assert compute_group_commitment([first, second], factors).is_identity
    assert _straightforward_commitment([first, second], factors).is_identity


@settings(max_examples=60, deadline=None)
@given(identifier_sets, st.data())
def test_cached_interpolating_value_equals_a_fresh_computation(identifiers: list[int], data: st.DataObject) -> None:
    x_i = data.draw(st.sampled_from(identifiers))
    fresh = lagrange_coefficient(G, identifiers, x_i)
    assert derive_interpolating_value(identifiers, x_i) == fresh
    assert derive_interpolating_value(tuple(identifiers), x_i) == fresh  # a cache hit


def test_interpolating_values_interpolate_a_secret() -> None:
    """Σ λ_i·f(i) = f(0) for f(x) = 7 + 5x + 3x² over three signers, through the cache twice."""
    ids = [2, 5, 9]
    shares = {i: (7 + 5 * i + 3 * i * i) % L for i in ids}
    for _ in range(2):
        assert sum(derive_interpolating_value(ids, i) * s for i, s in shares.items()) % L == 7


def _outcome(compute: object, identifiers: list[object], x_i: object) -> object:
    try:
        return compute(identifiers, x_i)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the exception's type is what is compared
        return type(exc)


@pytest.mark.parametrize(
    ("identifiers", "x_i"),
    [([1, 2], 3), ([1, 1, 2], 1), ([1, 2.0], 1), ([True, 2], 2), ([1, 2], 1.0), ([0, 1], 1), ([1, L], 1),
     ([1, 2], True)],
)
def test_odd_input_gets_what_the_uncached_computation_gives(identifiers: list[object], x_i: object) -> None:
    """After (1, 2) is cached, input equal to it but not of plain ints (1.0, True) and input the
    checks refuse give what ``lagrange_coefficient`` gives: the same value or the same error."""
    assert derive_interpolating_value([1, 2], 1) == lagrange_coefficient(G, [1, 2], 1)  # (1, 2) is cached
    expected = _outcome(lambda ids, x: lagrange_coefficient(G, ids, x), identifiers, x_i)
    assert _outcome(derive_interpolating_value, identifiers, x_i) == expected
    if all(type(i) is int for i in identifiers) and type(x_i) is int and not (identifiers == [1, 2] and x_i == 1):
        assert expected is UsageError  # absent, duplicate, zero, or not below L


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(scalars, scalars), min_size=1, max_size=3), st.binary(max_size=64))
def test_binding_factors_with_the_message_hash_passed_in(seeds: list[tuple[int, int]], msg: bytes) -> None:
    _, commitment_list = _signers(seeds)
    public_key = G.base_mul(seeds[0][0])  # never the identity (a seed + 1 could be L)
    encoded = encode_group_commitment_list(commitment_list)
    ids = [c.identifier for c in commitment_list]
    expected = compute_binding_factors(public_key, commitment_list, msg)
    assert binding_factors_from_encoding(public_key, ids, msg, encoded) == expected
    assert binding_factors_from_encoding(public_key, ids, msg, encoded, message_hash=SUITE.H4(msg)) == expected


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(1, 2**32 - 1), max_size=4, unique=True))
def test_binding_factors_absorb_the_prefix_once_with_the_same_result(prefix: bytes, ids: list[int]) -> None:
    """``Ciphersuite.binding_factors`` is H1(prefix ‖ SerializeScalar(i)) for each i, written out."""
    assert SUITE.binding_factors(prefix, ids) == {i: SUITE.H1(prefix + SUITE.serialize_identifier(i)) for i in ids}


def test_serialized_identifiers_are_kept_and_checked() -> None:
    assert SUITE.serialize_identifier(3) == (3).to_bytes(32, "little") == SUITE.serialize_identifier(3)
    for bad in (0, L, -1):
        with pytest.raises(UsageError):
            SUITE.serialize_identifier(bad)


def test_a_signing_context_from_a_given_message_hash_hashes_the_message_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compute_signing_context`` with ``message_hash`` (the two-round session's fallback) gives
    the same context and never computes H4(msg) itself."""
    _, commitment_list = _signers([(3, 4), (5, 6)])
    public_key, msg = G.base_mul(9), b"pay carol"
    expected = compute_signing_context(public_key, commitment_list, msg)
    message_hash = SUITE.H4(msg)
    monkeypatch.setattr(SUITE, "H4", lambda m: pytest.fail("H4(msg) computed again"))
    encoded = encode_group_commitment_list(commitment_list)
    assert compute_signing_context(public_key, commitment_list, msg, encoded_list=encoded,
                                   message_hash=message_hash) == expected


@settings(max_examples=20, deadline=None)
@given(scalars, scalars, scalars, st.integers(min_value=0, max_value=2**512))
def test_signature_share_is_the_rfc_formula_and_leaves_the_nonces_unused(d: int, e: int, rho: int, key_term: int) -> None:
    """``SigningNonces._signature_share`` is §5.2's z_i = d + e·ρ_i + λ_i·s_i·c, written out, and
    uses nothing up; once the nonces are taken it refuses."""
    (nonces,), _ = _signers([(d, e)])
    assert nonces._signature_share(rho, key_term) == (d + e * rho + key_term) % L
    assert not nonces.used
    nonces.take()
    with pytest.raises(UsageError):
        nonces._signature_share(rho, key_term)
