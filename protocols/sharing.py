"""Secret sharing over a group's scalar field: additive, Shamir and Feldman VSS, Lagrange.

- Additive: x = x_1 + … + x_n mod q.
- Shamir (RFC 9591 App. C.1): f(z) = a_0 + a_1·z + … + a_{t-1}·z^{t-1}, share_i = f(i) for
  non-zero identifiers i; any t shares give a_0 = Σ λ_i·f(i) with the Lagrange coefficients at 0.
- Feldman (RFC 9591 App. C.2, ``vss_commit`` / ``vss_verify``): the commitment is the list
  [a_0·G, …, a_{t-1}·G]; share s_i is valid iff s_i·G = Σ_k i^k·C_k.

Identifiers are integers in [1, q). ``lagrange_coefficient`` refuses a set with duplicates or
an identifier not in it (RFC 9591 §4.2).
"""

from __future__ import annotations

from protocols import randomness
from collections.abc import Iterable, Sequence

from curves import Group, Point
from protocols.errors import ProofError, UsageError

__all__ = [
    "additive_split",
    "random_polynomial",
    "evaluate_polynomial",
    "shamir_split",
    "lagrange_coefficient",
    "interpolate_at_zero",
    "feldman_commit",
    "feldman_evaluate",
    "feldman_verify",
]


def additive_split(group: Group, secret: int, n: int) -> list[int]:
    """n uniformly random scalars summing to ``secret`` mod q."""
    if n < 1:
        raise UsageError("need at least one share")
    shares = [randomness.randbelow(group.order) for _ in range(n - 1)]
    shares.append((secret - sum(shares)) % group.order)
    return shares


def random_polynomial(group: Group, constant: int, degree: int) -> list[int]:
    """Coefficients [constant, a_1, …, a_degree] with fresh random a_k."""
    if degree < 0:
        raise UsageError("polynomial degree must be non-negative")
    return [constant % group.order] + [group.random_scalar() for _ in range(degree)]


def evaluate_polynomial(group: Group, coefficients: Sequence[int], x: int) -> int:
    """f(x) mod q by Horner's rule."""
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % group.order
    return result


def _check_identifiers(group: Group, identifiers: Sequence[int]) -> None:
    if len(set(identifiers)) != len(identifiers):
        raise UsageError("duplicate identifiers")
    if any(not isinstance(i, int) or not 0 < i < group.order for i in identifiers):
        raise UsageError("identifiers must be integers in [1, q)")


def shamir_split(
    group: Group, secret: int, threshold: int, identifiers: Sequence[int]
) -> tuple[dict[int, int], list[int]]:
    """Shares f(i) for each identifier and the polynomial's coefficients (for Feldman)."""
    _check_identifiers(group, identifiers)
    if not 1 <= threshold <= len(identifiers):
        raise UsageError("threshold must be between 1 and the number of shares")
    coefficients = random_polynomial(group, secret, threshold - 1)
    return {i: evaluate_polynomial(group, coefficients, i) for i in identifiers}, coefficients


def lagrange_coefficient(group: Group, identifiers: Sequence[int], i: int) -> int:
    """λ_i = Π_{j≠i} j / (j − i) mod q: the Lagrange coefficient at 0 (RFC 9591 §4.2)."""
    _check_identifiers(group, identifiers)
    if i not in identifiers:
        raise UsageError("identifier not in the set")
    q = group.order
    numerator = denominator = 1
    for j in identifiers:
        if j != i:
            numerator = numerator * j % q
            denominator = denominator * (j - i) % q
    return numerator * pow(denominator, -1, q) % q


def interpolate_at_zero(group: Group, shares: dict[int, int]) -> int:
    """f(0) from t shares {i: f(i)}."""
    ids = list(shares)
    return sum(lagrange_coefficient(group, ids, i) * s for i, s in shares.items()) % group.order


def feldman_commit(group: Group, coefficients: Iterable[int]) -> list[Point]:
    """[a_k·G] for each coefficient (vss_commit)."""
    return [group.base_mul(a) for a in coefficients]


def feldman_evaluate(commitment: Sequence[Point], x: int) -> Point:
    """Σ_k x^k·C_k: the public image f(x)·G of the committed polynomial."""
    if not commitment:
        raise UsageError("empty commitment")
    group = commitment[0].group
    result = group.identity()
    for c in reversed(commitment):
        result = result * x + c
    return result


def feldman_verify(commitment: Sequence[Point], identifier: int, share: int) -> None:
    """Raise ``ProofError`` unless share·G = Σ_k identifier^k·C_k (vss_verify)."""
    group = commitment[0].group
    if group.base_mul(share) != feldman_evaluate(commitment, identifier):
        raise ProofError("share does not match the Feldman commitment")
