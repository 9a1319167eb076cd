"""Additive, Shamir and Feldman sharing; Lagrange coefficients."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import ed25519, secp256k1
from protocols.errors import ProofError, UsageError
from protocols.sharing import (
    additive_split,
    evaluate_polynomial,
    feldman_commit,
    feldman_evaluate,
    feldman_verify,
    interpolate_at_zero,
    lagrange_coefficient,
    shamir_split,
)

GROUPS = [secp256k1, ed25519]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_t_subset_reconstructs(group, data):
    n = data.draw(st.integers(1, 6))
    t = data.draw(st.integers(1, n))
    secret = data.draw(st.integers(0, group.order - 1))
    ids = data.draw(st.lists(st.integers(1, 2**16), min_size=n, max_size=n, unique=True))
    shares, coefficients = shamir_split(group, secret, t, ids)
    subset = data.draw(st.lists(st.sampled_from(ids), min_size=t, max_size=n, unique=True))
    assert interpolate_at_zero(group, {i: shares[i] for i in subset}) == secret
    commitment = feldman_commit(group, coefficients)
    assert len(commitment) == t
    for i in ids:
        feldman_verify(commitment, i, shares[i])


def test_fewer_than_t_shares_do_not_reconstruct():
    shares, _ = shamir_split(ed25519, 42, 3, [1, 2, 3])
    assert all(interpolate_at_zero(ed25519, {i: shares[i] for i in pair}) != 42
               for pair in itertools.combinations([1, 2, 3], 2))


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_additive(group):
    parts = additive_split(group, 7, 4)
    assert len(parts) == 4 and sum(parts) % group.order == 7


def test_feldman_rejects_wrong_share():
    shares, coefficients = shamir_split(secp256k1, 5, 2, [1, 2, 3])
    commitment = feldman_commit(secp256k1, coefficients)
    with pytest.raises(ProofError):
        feldman_verify(commitment, 1, shares[1] + 1)
    with pytest.raises(ProofError):
        feldman_verify(commitment, 2, shares[1])
    assert feldman_evaluate(commitment, 0) == secp256k1.base_mul(5)


def test_lagrange_refuses_bad_sets():
    with pytest.raises(UsageError):
        lagrange_coefficient(ed25519, [1, 1, 2], 1)
    with pytest.raises(UsageError):
        lagrange_coefficient(ed25519, [1, 2], 3)
    with pytest.raises(UsageError):
        lagrange_coefficient(ed25519, [0, 2], 2)
    with pytest.raises(UsageError):
        shamir_split(ed25519, 1, 4, [1, 2, 3])


def test_horner():
    assert evaluate_polynomial(secp256k1, [1, 2, 3], 2) == 1 + 4 + 12
