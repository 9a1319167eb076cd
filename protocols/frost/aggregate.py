"""RFC 9591 §5.3 ``aggregate`` and ``verify_signature_share``, with identifiable abort (§5.4).

    aggregate:  z = Σ z_i;  signature = SerializeElement(R) ‖ SerializeScalar(z)
    verify_signature_share:  z_i·B == D_i + ρ_i·E_i + (c·λ_i)·Y_i

``aggregate_verified`` checks the aggregate signature first (one RFC 8032 verification); only
when it fails does it check each share, to name the signer whose share is wrong (§5.4). The two
are equivalent: the aggregate verifies iff every share does, up to shares whose errors cancel,
which a single party cannot produce and which still yield a valid signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from curves import Point
from protocols.errors import ProofError, ProtocolAbort, UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    SigningContext,
    compute_signing_context,
    derive_interpolating_value,
)

__all__ = ["aggregate", "verify_signature_share", "aggregate_verified"]


def _context(
    context: SigningContext | None, group_public_key: Point, commitment_list: Sequence[SigningCommitments], msg: bytes
) -> SigningContext:
    return context if context is not None else compute_signing_context(group_public_key, commitment_list, msg)


def aggregate(
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    group_public_key: Point,
    sig_shares: Mapping[int, int],
    context: SigningContext | None = None,
) -> bytes:
    """§5.3: the 64-byte signature R ‖ z from one share per signer (no verification)."""
    if set(sig_shares) != {c.identifier for c in commitment_list}:
        raise UsageError("need exactly one signature share per signer")
    context = _context(context, group_public_key, commitment_list, msg)
    z = sum(sig_shares.values()) % SUITE.order
    return context.group_commitment.to_bytes() + SUITE.serialize_scalar(z)


def verify_signature_share(
    identifier: int,
    verifying_share: Point,
    sig_share: int,
    commitment_list: Sequence[SigningCommitments],
    group_public_key: Point,
    msg: bytes,
    context: SigningContext | None = None,
) -> None:
    """§5.3: raise ``ProofError`` unless z_i·B = D_i + ρ_i·E_i + (c·λ_i)·Y_i."""
    context = _context(context, group_public_key, commitment_list, msg)
    commitment = next((c for c in commitment_list if c.identifier == identifier), None)
    if commitment is None:
        raise UsageError("identifier not among the signers")
    lambda_i = derive_interpolating_value(context.identifiers, identifier)
    expected = (
        commitment.hiding
        + commitment.binding * context.binding_factors[identifier]
        + verifying_share * (context.challenge * lambda_i % SUITE.order)
    )
    if SUITE.group.base_mul(sig_share) != expected:
        raise ProofError("signature share does not verify")


def aggregate_verified(
    commitment_list: Sequence[SigningCommitments],
    msg: bytes,
    group_public_key: Point,
    verifying_shares: Mapping[int, Point],
    sig_shares: Mapping[int, int],
    context: SigningContext | None = None,
) -> bytes:
    """Aggregate and verify; a bad share raises ``ProtocolAbort`` naming its signer (§5.4)."""
    context = _context(context, group_public_key, commitment_list, msg)
    signature = aggregate(commitment_list, msg, group_public_key, sig_shares, context)
    try:
        SUITE.verify_signature(group_public_key.to_bytes(), msg, signature)
        return signature
    except ProofError:
        pass
    for identifier in context.identifiers:
        try:
            verify_signature_share(
                identifier, verifying_shares[identifier], sig_shares[identifier],
                commitment_list, group_public_key, msg, context,
            )
        except ProofError:
            raise ProtocolAbort("signature share does not verify", culprit=identifier) from None
    raise ProtocolAbort("aggregate signature does not verify although every share does")
