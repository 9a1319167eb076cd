"""RFC 9591 §4 helper functions over the FROST(Ed25519, SHA-512) ciphersuite.

- §4.2 ``derive_interpolating_value``: the Lagrange coefficient at 0 of identifier x_i in L.
- §4.3 ``encode_group_commitment_list``: id ‖ D ‖ E per signer, sorted by identifier.
- §4.4 ``compute_binding_factors``: ρ_i = H1(PK ‖ H4(msg) ‖ H5(encoded list) ‖ id_i).
- §4.5 ``compute_group_commitment``: R = Σ (D_i + ρ_i·E_i).
- §4.6 ``compute_challenge``: c = H2(R ‖ PK ‖ msg).

(§4.1 ``nonce_generate`` lives in ``round1``, where it is used.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from curves import Point
from protocols.errors import UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.sharing import lagrange_coefficient
from protocols.state import register_dataclass

__all__ = [
    "SigningCommitments",
    "derive_interpolating_value",
    "encode_group_commitment_list",
    "binding_factor_inputs",
    "compute_binding_factors",
    "binding_factors_from_encoding",
    "compute_group_commitment",
    "compute_challenge",
    "SigningContext",
    "compute_signing_context",
]


@dataclass(frozen=True)
class SigningCommitments:
    """A signer's public nonce commitments (§5.1): D = d·B (hiding), E = e·B (binding)."""

    identifier: int
    hiding: Point
    binding: Point


def derive_interpolating_value(identifiers: Sequence[int], x_i: int) -> int:
    """λ_i for x_i over ``identifiers`` (raises ``UsageError`` on duplicates or absence).

    Cached for plain ``int`` identifiers: λ_i is a pure function of public values that every
    signature needs (a modular inversion each time); anything else takes the uncached path,
    whose checks decide.
    """
    ids = tuple(identifiers)
    if type(x_i) is int and all(type(i) is int for i in ids):
        return _interpolating_value(ids, x_i)
    return lagrange_coefficient(SUITE.group, ids, x_i)


@lru_cache(maxsize=1024)
def _interpolating_value(identifiers: tuple[int, ...], x_i: int) -> int:
    return lagrange_coefficient(SUITE.group, identifiers, x_i)


def _sorted_list(commitment_list: Sequence[SigningCommitments]) -> Sequence[SigningCommitments]:
    ids = [c.identifier for c in commitment_list]
    if any(a >= b for a, b in zip(ids, ids[1:])):
        raise UsageError("commitment list must be sorted by identifier without duplicates")
    return commitment_list


def encode_group_commitment_list(commitment_list: Sequence[SigningCommitments]) -> bytes:
    """§4.3: concatenation of SerializeScalar(id) ‖ D ‖ E, in identifier order."""
    return b"".join(
        SUITE.serialize_identifier(c.identifier)
        + SUITE.serialize_element(c.hiding)
        + SUITE.serialize_element(c.binding)
        for c in _sorted_list(commitment_list)
    )


def binding_factor_inputs(
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    encoded_list: bytes | None = None,
) -> dict[int, bytes]:
    """PK ‖ H4(msg) ‖ H5(encoded list) ‖ id_i for each signer (the input to H1).

    ``encoded_list`` may pass ``encode_group_commitment_list(commitment_list)`` when the caller
    has it already (a signer hashes it into its view hash too).
    """
    if encoded_list is None:
        encoded_list = encode_group_commitment_list(commitment_list)
    return _binding_factor_inputs(group_public_key, [c.identifier for c in commitment_list], msg, encoded_list)


def _binding_factor_inputs(
    group_public_key: Point,
    identifiers: Sequence[int],
    msg: bytes,
    encoded_list: bytes,
    message_hash: bytes | None = None,
) -> dict[int, bytes]:
    prefix = _binding_factor_prefix(group_public_key, msg, encoded_list, message_hash)
    return {i: prefix + SUITE.serialize_identifier(i) for i in identifiers}


def _binding_factor_prefix(group_public_key: Point, msg: bytes, encoded_list: bytes, message_hash: bytes | None) -> bytes:
    """PK ‖ H4(msg) ‖ H5(encoded list): H1's input before the identifier (§4.4)."""
    if message_hash is None:
        message_hash = SUITE.H4(msg)
    return SUITE.serialize_element(group_public_key) + message_hash + SUITE.H5(encoded_list)


def compute_binding_factors(
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    encoded_list: bytes | None = None,
) -> dict[int, int]:
    """§4.4: the binding factor ρ_i of every signer (``encoded_list`` as for ``binding_factor_inputs``)."""
    if encoded_list is None:
        encoded_list = encode_group_commitment_list(commitment_list)
    prefix = _binding_factor_prefix(group_public_key, msg, encoded_list, None)
    return SUITE.binding_factors(prefix, [c.identifier for c in commitment_list])


def binding_factors_from_encoding(
    group_public_key: Point,
    identifiers: Sequence[int],
    msg: bytes,
    encoded_list: bytes,
    *,
    message_hash: bytes | None = None,
) -> dict[int, int]:
    """§4.4 from the encoded commitment list alone (its points need not be decoded yet).

    ``message_hash`` may pass ``H4(msg)`` when the caller has it already (a signing session
    hashes its message once, for its round-1 payload and the check of its peers')."""
    return SUITE.binding_factors(_binding_factor_prefix(group_public_key, msg, encoded_list, message_hash), identifiers)


def compute_group_commitment(
    commitment_list: Sequence[SigningCommitments],
    binding_factors: Mapping[int, int],
    own_term: Callable[[int], Point] | None = None,
    own_identifier: int | None = None,
    binding_terms: Mapping[int, Point] | None = None,
) -> Point:
    """§4.5: R = Σ D_i + ρ_i·E_i.

    A signer may pass ``own_term`` (ρ ↦ D + ρ·E for its own commitments, computed from its
    nonces as one fixed-base multiplication) for its own term, and ``binding_terms`` with
    products ρ_i·E_i it has computed already (while decoding E_i); the result is the same point.
    """
    terms: list[Point] = []
    for c in commitment_list:
        rho = binding_factors[c.identifier]
        if own_term is not None and c.identifier == own_identifier:
            terms.append(own_term(rho))
        elif binding_terms is not None and c.identifier in binding_terms:
            terms += (c.hiding, binding_terms[c.identifier])
        else:
            terms += (c.hiding, c.binding * rho)
    if not terms:
        return SUITE.group.identity()
    group_commitment = terms[0]  # the sum starts at the first term, not at the identity
    for term in terms[1:]:
        group_commitment = group_commitment + term
    return group_commitment


def compute_challenge(group_commitment: Point, group_public_key: Point, msg: bytes) -> int:
    """§4.6: c = H2(R ‖ PK ‖ msg), the RFC 8032 challenge."""
    return SUITE.H2(group_commitment.to_bytes() + SUITE.serialize_element(group_public_key) + msg)


@dataclass(frozen=True)
class SigningContext:
    """Everything §5.2 and §5.3 derive from (PK, commitment list, msg), computed once."""

    identifiers: tuple[int, ...]
    binding_factors: dict[int, int]
    group_commitment: Point
    challenge: int


def compute_signing_context(
    group_public_key: Point,
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    own_term: Callable[[int], Point] | None = None,
    own_identifier: int | None = None,
    *,
    encoded_list: bytes | None = None,
    message_hash: bytes | None = None,
    binding_factors: dict[int, int] | None = None,
    binding_terms: Mapping[int, Point] | None = None,
) -> SigningContext:
    """Binding factors (§4.4), group commitment R (§4.5) and challenge c (§4.6).

    The keyword arguments pass what the caller computed already from the same inputs: the
    encoded list, H4(msg), the binding factors, products ρ_i·E_i (see ``compute_group_commitment``).
    """
    if binding_factors is None:
        if encoded_list is None:
            encoded_list = encode_group_commitment_list(commitment_list)
        binding_factors = binding_factors_from_encoding(
            group_public_key, [c.identifier for c in commitment_list], msg, encoded_list, message_hash=message_hash
        )
    group_commitment = compute_group_commitment(
        commitment_list, binding_factors, own_term, own_identifier, binding_terms
    )
    challenge = compute_challenge(group_commitment, group_public_key, msg)
    identifiers = tuple(c.identifier for c in commitment_list)
    return SigningContext(identifiers, binding_factors, group_commitment, challenge)


# Parkable state (``protocols.state``).
register_dataclass(SigningCommitments)
register_dataclass(SigningContext)
