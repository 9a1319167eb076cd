"""The FROST(Ed25519, SHA-512) ciphersuite (RFC 9591 §6.1) as one object.

contextString = "FROST-ED25519-SHA512-v1"
- H1(m) = SHA-512(contextString ‖ "rho"   ‖ m), read little-endian, reduced mod L (binding factors)
- H2(m) = SHA-512(m), little-endian mod L, with *no* context string, so that any RFC 8032
  verifier accepts the aggregate signature (the challenge)
- H3(m) = SHA-512(contextString ‖ "nonce" ‖ m) mod L (nonce generation, §4.1)
- H4(m) = SHA-512(contextString ‖ "msg"   ‖ m), the raw 64-byte digest (message hash)
- H5(m) = SHA-512(contextString ‖ "com"   ‖ m), the raw 64-byte digest (commitment list hash)
- HDKG(m) = SHA-512(contextString ‖ "dkg" ‖ m) mod L: not in the RFC; ZcashFoundation/frost's
  challenge for the DKG proof of knowledge, kept so that its DKG vectors can be checked.

Elements are 32-byte compressed Edwards points; DeserializeElement rejects non-canonical bytes,
points off the curve, the identity and anything outside the prime-order subgroup (this is
``curves.ed25519.decode_point``). Scalars are 32 bytes little-endian below L. Identifiers are
serialised as scalars. Signature verification here is libsodium's RFC 8032 verification, which
agrees with the cofactored check [8]z·B = [8]R + [8]c·PK for the prime-order points FROST
produces.
"""

from __future__ import annotations

import hashlib

from nacl import bindings as _sodium
from nacl.exceptions import BadSignatureError

from curves import Group, Point, ed25519
from protocols.errors import ProofError, UsageError

__all__ = ["Ciphersuite", "FROST_ED25519_SHA512", "SIGNATURE_LENGTH"]

SIGNATURE_LENGTH = 64


class Ciphersuite:
    """A FROST ciphersuite: the group, the context string and the hash functions H1..H5."""

    def __init__(self, name: str, context_string: bytes, group: Group) -> None:
        self.name = name
        self.context_string = context_string
        self.group = group
        self.order = group.order

    # --- hash functions (§6.1) ---------------------------------------------------------------
    def _digest(self, *parts: bytes) -> bytes:
        h = hashlib.sha512()
        for part in parts:
            h.update(part)
        return h.digest()

    def _to_scalar(self, digest: bytes) -> int:
        return int.from_bytes(digest, "little") % self.order

    def H1(self, m: bytes) -> int:  # noqa: N802 - the RFC's name
        """Binding-factor hash."""
        return self._to_scalar(self._digest(self.context_string, b"rho", m))

    def H2(self, m: bytes) -> int:  # noqa: N802
        """Challenge hash (no context string: RFC 8032 compatible)."""
        return self._to_scalar(self._digest(m))

    def H3(self, m: bytes) -> int:  # noqa: N802
        """Nonce hash."""
        return self._to_scalar(self._digest(self.context_string, b"nonce", m))

    def H4(self, m: bytes) -> bytes:  # noqa: N802
        """Message hash (64 bytes, not reduced)."""
        return self._digest(self.context_string, b"msg", m)

    def H5(self, m: bytes) -> bytes:  # noqa: N802
        """Commitment-list hash (64 bytes, not reduced)."""
        return self._digest(self.context_string, b"com", m)

    def HDKG(self, m: bytes) -> int:  # noqa: N802
        """DKG proof-of-knowledge challenge hash (ZcashFoundation/frost's choice)."""
        return self._to_scalar(self._digest(self.context_string, b"dkg", m))

    # --- serialisation (§6.1, §3.1) ----------------------------------------------------------
    def serialize_scalar(self, k: int) -> bytes:
        return self.group.encode_scalar(k % self.order)

    def deserialize_scalar(self, data: bytes) -> int:
        """Strict: 32 bytes, little-endian, below L (raises ``InvalidEncoding``)."""
        return self.group.decode_scalar(data)

    def serialize_element(self, point: Point) -> bytes:
        if point.is_identity:
            raise UsageError("the identity element cannot be serialised")
        return point.to_bytes()

    def deserialize_element(self, data: bytes) -> Point:
        """Strict: canonical, on the curve, in the prime-order subgroup, not the identity."""
        return self.group.decode_point(data)

    def serialize_identifier(self, identifier: int) -> bytes:
        if not 0 < identifier < self.order:
            raise UsageError("identifier must be in [1, L)")
        return self.serialize_scalar(identifier)

    # --- verification --------------------------------------------------------------------------
    def verify_signature(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        """Raise ``ProofError`` unless ``signature`` is a valid RFC 8032 signature."""
        if len(signature) != SIGNATURE_LENGTH or len(public_key) != 32:
            raise ProofError("signature or public key has the wrong length")
        try:
            _sodium.crypto_sign_open(signature + message, public_key)
        except (BadSignatureError, ValueError, TypeError):
            raise ProofError("signature does not verify") from None

    def __repr__(self) -> str:
        return f"<ciphersuite {self.name}>"


FROST_ED25519_SHA512 = Ciphersuite("FROST(Ed25519, SHA-512)", b"FROST-ED25519-SHA512-v1", ed25519)
"""The only ciphersuite this package implements."""
