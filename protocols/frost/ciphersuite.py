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
from collections.abc import Iterable
from typing import Any

from nacl._sodium import ffi, lib

from curves import Group, Point, ed25519
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.state import register_custom

__all__ = ["Ciphersuite", "FROST_ED25519_SHA512", "SIGNATURE_LENGTH"]

SIGNATURE_LENGTH = 64
_IDENTIFIERS_KEPT = 4096


class Ciphersuite:
    """A FROST ciphersuite: the group, the context string and the hash functions H1..H5."""

    def __init__(self, name: str, context_string: bytes, group: Group) -> None:
        self.name = name
        self.context_string = context_string
        self.group = group
        self.order = group.order
        # SHA-512 states with each hash's prefix absorbed, copied per call (cheaper than
        # hashing the prefix again).
        self._prefixed = {tag: hashlib.sha512(context_string + tag) for tag in (b"rho", b"nonce", b"msg", b"com")}
        self._identifiers: dict[int, bytes] = {}  # SerializeScalar(id) of the identifiers seen (public)

    # --- hash functions (§6.1) ---------------------------------------------------------------
    def _digest(self, *parts: bytes) -> bytes:
        h = hashlib.sha512()
        for part in parts:
            h.update(part)
        return h.digest()

    def _prefixed_digest(self, tag: bytes, m: bytes) -> bytes:
        h = self._prefixed[tag].copy()
        h.update(m)
        return h.digest()

    def _to_scalar(self, digest: bytes) -> int:
        return int.from_bytes(digest, "little") % self.order

    def H1(self, m: bytes) -> int:  # noqa: N802 - the RFC's name
        """Binding-factor hash."""
        return int.from_bytes(self._prefixed_digest(b"rho", m), "little") % self.order

    def binding_factors(self, prefix: bytes, identifiers: Iterable[int]) -> dict[int, int]:
        """H1(prefix ‖ SerializeScalar(i)) for each identifier i (§4.4, ``prefix`` = PK ‖ H4(msg) ‖
        H5(list)): the context string and the prefix are absorbed once, not once per signer."""
        prefixed = self._prefixed[b"rho"].copy()
        prefixed.update(prefix)
        factors = {}
        for identifier in identifiers:
            h = prefixed.copy()
            h.update(self.serialize_identifier(identifier))
            factors[identifier] = int.from_bytes(h.digest(), "little") % self.order
        return factors

    def H2(self, m: bytes) -> int:  # noqa: N802
        """Challenge hash (no context string: RFC 8032 compatible)."""
        return int.from_bytes(hashlib.sha512(m).digest(), "little") % self.order

    def H3(self, m: bytes) -> int:  # noqa: N802
        """Nonce hash."""
        return int.from_bytes(self._prefixed_digest(b"nonce", m), "little") % self.order

    def H4(self, m: bytes) -> bytes:  # noqa: N802
        """Message hash (64 bytes, not reduced)."""
        return self._prefixed_digest(b"msg", m)

    def H5(self, m: bytes) -> bytes:  # noqa: N802
        """Commitment-list hash (64 bytes, not reduced)."""
        return self._prefixed_digest(b"com", m)

    def HDKG(self, m: bytes) -> int:  # noqa: N802
        """DKG proof-of-knowledge challenge hash (ZcashFoundation/frost's choice)."""
        return self._to_scalar(self._digest(self.context_string, b"dkg", m))

    # --- serialisation (§6.1, §3.1) ----------------------------------------------------------
    def serialize_scalar(self, k: int) -> bytes:
        """SerializeScalar (RFC 9591 §6.1): ``k mod L`` as 32 bytes little-endian."""
        return self.group.encode_scalar(k % self.order)

    def deserialize_scalar(self, data: bytes) -> int:
        """Strict: 32 bytes, little-endian, below L (raises ``InvalidEncoding``)."""
        return self.group.decode_scalar(data)

    def serialize_element(self, point: Point) -> bytes:
        """SerializeElement (RFC 9591 §6.1): the 32-byte encoding; the identity is refused."""
        if point.is_identity:
            raise UsageError("the identity element cannot be serialised")
        return point.to_bytes()

    def deserialize_element(self, data: bytes) -> Point:
        """Strict: canonical, on the curve, in the prime-order subgroup, not the identity."""
        return self.group.decode_point(data)

    def deserialize_element_mul(self, data: bytes, k: int) -> tuple[Point, Point]:
        """``(P, k·P)`` for ``P = deserialize_element(data)``, with the same checks.

        On ed25519 one libsodium multiplication both checks and multiplies
        (``Ed25519.decode_point_mul``), instead of a subgroup check for the decoding and another
        inside the multiplication.
        """
        decode_mul = getattr(self.group, "decode_point_mul", None)
        if decode_mul is not None:
            return decode_mul(data, k)  # type: ignore[no-any-return]
        point = self.deserialize_element(data)
        return point, point * k

    def serialize_identifier(self, identifier: int) -> bytes:
        """An identifier in [1, L) serialised as a scalar (RFC 9591 §6.1); kept per identifier
        (a public value every signature hashes a few times), up to a bound."""
        encoded = self._identifiers.get(identifier) if type(identifier) is int else None
        if encoded is None:
            if not 0 < identifier < self.order:
                raise UsageError("identifier must be in [1, L)")
            encoded = self.group.encode_scalar(identifier)
            if type(identifier) is int and len(self._identifiers) < _IDENTIFIERS_KEPT:
                self._identifiers[identifier] = encoded
        return encoded

    # --- verification --------------------------------------------------------------------------
    def verify_signature(self, public_key: bytes, message: bytes, signature: bytes) -> None:
        """Raise ``ProofError`` unless ``signature`` is a valid RFC 8032 signature.

        libsodium's ``crypto_sign_open`` called directly (what ``nacl.bindings`` does after its
        argument checks, which are made here: bytes of the right lengths).
        """
        try:
            signed = bytes(signature) + bytes(message)
            public_key = bytes(public_key)
        except TypeError:
            raise ProofError("signature, public key and message must be bytes") from None
        if len(signature) != SIGNATURE_LENGTH or len(public_key) != 32:
            raise ProofError("signature or public key has the wrong length")
        opened = ffi.new("unsigned char[]", len(signed))
        opened_length = ffi.new("unsigned long long *")
        if lib.crypto_sign_open(opened, opened_length, signed, len(signed), public_key) != 0:
            raise ProofError("signature does not verify")

    def __repr__(self) -> str:
        return f"<ciphersuite {self.name}>"


FROST_ED25519_SHA512 = Ciphersuite("FROST(Ed25519, SHA-512)", b"FROST-ED25519-SHA512-v1", ed25519)
"""The only ciphersuite this package implements."""


# Parkable state (``protocols.state``): the ciphersuite singleton, by name.
def _decode_suite(body: Any, dec: Any) -> Ciphersuite:
    if body != FROST_ED25519_SHA512.name:
        raise InvalidMessage("unknown ciphersuite in session state")
    return FROST_ED25519_SHA512


register_custom(Ciphersuite, "protocols.frost.ciphersuite.Ciphersuite", lambda suite, enc: suite.name, _decode_suite)
