"""RFC 9591 §5.2 ``sign`` (signing round two): one signer's signature share.

    ρ = binding factors over the commitment list (§4.4); R = group commitment (§4.5)
    λ_i = derive_interpolating_value(signer ids, i); c = H2(R ‖ PK ‖ msg)
    z_i = d_i + e_i·ρ_i + λ_i·s_i·c

The signer must find its own identifier *and its own commitments* in the list (otherwise a
coordinator could make it sign under commitments it never made), and the nonces are consumed:
a second call with the same :class:`SigningNonces` raises.
"""

from __future__ import annotations

from collections.abc import Sequence

from protocols.errors import UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    SigningContext,
    compute_signing_context,
    derive_interpolating_value,
)
from protocols.frost.keys import KeyShare
from protocols.frost.round1 import SigningNonces

__all__ = ["sign"]


def sign(
    key_share: KeyShare,
    nonces: SigningNonces,
    msg: bytes,
    commitment_list: Sequence[SigningCommitments],
    context: SigningContext | None = None,
) -> int:
    """§5.2: this signer's share z_i (a scalar); consumes ``nonces``.

    ``context`` may carry the values already computed from the same (PK, list, msg).
    """
    identifiers = [c.identifier for c in commitment_list]
    own = [c for c in commitment_list if c.identifier == key_share.identifier]
    if len(own) != 1 or own[0] != nonces.commitments:
        raise UsageError("own commitments are not in the commitment list")
    if len(identifiers) < key_share.threshold or not set(identifiers) <= set(key_share.participants):
        raise UsageError("signers must be at least t participants of this key")
    if context is None:
        context = compute_signing_context(key_share.group_public_key, commitment_list, msg)
    elif context.identifiers != tuple(identifiers):
        raise UsageError("signing context computed for another commitment list")
    lambda_i = derive_interpolating_value(identifiers, key_share.identifier)
    key_term = lambda_i * key_share.signing_share.value * context.challenge
    share = nonces._signature_share(context.binding_factors[key_share.identifier], key_term)
    nonces.take()  # used up as the share is made (§5.2, §7.3)
    return share
