"""RFC 9591 §4.1 ``nonce_generate`` and §5.1 ``commit`` (signing round one).

Each signer draws two nonces, hiding d and binding e, as nonce_generate(s_i) = H3(random_bytes(32)
‖ SerializeScalar(s_i)): mixing in the secret share protects against a weak RNG (§4.1). It
publishes D = d·B and E = e·B. The nonces are secret and usable for exactly one ``sign`` call
(§7.3: reusing them with two different binding factors reveals s_i); :class:`SigningNonces`
enforces that by handing its values out once. ``SigningNonces._signature_share`` computes a share
without handing them out, for the one signer that releases its share only inside a signature it
verified first and takes the nonces then (``protocols.frost.round_trip``'s initiator).
"""

from __future__ import annotations

from protocols import randomness
from typing import NoReturn

from curves import Point, SecretScalar
from protocols.errors import UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import SigningCommitments

__all__ = ["SigningNonces", "SigningCommitments", "nonce_generate", "commit"]


def nonce_generate(secret: SecretScalar, random_bytes: bytes | None = None) -> SecretScalar:
    """§4.1: H3(random_bytes ‖ SerializeScalar(secret)); ``random_bytes`` only for test vectors."""
    return _nonce_generate(secret.to_bytes(), random_bytes)


def _nonce_generate(secret: bytes, random_bytes: bytes | None) -> SecretScalar:
    """``nonce_generate`` over SerializeScalar(secret), which ``commit`` serialises once for
    both nonces."""
    if random_bytes is None:
        random_bytes = randomness.token_bytes(32)
    if len(random_bytes) != 32:
        raise UsageError("nonce randomness must be 32 bytes")
    return SecretScalar(SUITE.group, SUITE.H3(random_bytes + secret))


class SigningNonces:
    """A signer's secret nonce pair (d, e): single use, never shown by ``repr``."""

    __slots__ = ("_nonces", "commitments")

    def __init__(self, hiding: SecretScalar, binding: SecretScalar, commitments: SigningCommitments) -> None:
        self._nonces: tuple[SecretScalar, SecretScalar] | None = (hiding, binding)
        self.commitments = commitments

    @property
    def used(self) -> bool:
        """Whether ``round2.sign`` consumed the nonces: each pair signs once (RFC 9591 §5.2)."""
        return self._nonces is None

    def commitment_share(self, binding_factor: int) -> Point:
        """D + ρ·E computed as (d + ρ·e)·B: one fixed-base multiplication instead of a
        multiplication and an addition (the result is public: it is this signer's term of R)."""
        if self._nonces is None:
            raise UsageError("signing nonces were already used")
        hiding, binding = self._nonces
        return SUITE.group.base_mul(hiding.value + binding_factor * binding.value)

    def _signature_share(self, binding_factor: int, key_term: int) -> int:
        """§5.2's z_i = d + e·ρ_i + key_term mod L (key_term = λ_i·s_i·c), leaving the nonces unused.

        For a signer whose z_i leaves only inside an aggregate signature that it verified first
        (``protocols.frost.round_trip``'s initiator): it computes z_i, checks the signature and
        calls ``take()`` before the signature leaves, so a peer message it refuses leaves its
        nonces as they were for the retry, and a z_i that never left is only a local value.
        Every other signer calls ``round2.sign``, which takes the nonces at once.
        """
        if self._nonces is None:
            raise UsageError("signing nonces were already used")
        hiding, binding = self._nonces
        return (hiding.value + binding.value * binding_factor + key_term) % SUITE.order

    def take(self) -> tuple[SecretScalar, SecretScalar]:
        """Hand out (d, e) and forget them; a second call raises ``UsageError`` (§5.2, §7.3)."""
        if self._nonces is None:
            raise UsageError("signing nonces were already used; run round one again")
        nonces, self._nonces = self._nonces, None
        return nonces

    def __repr__(self) -> str:
        state = "used" if self._nonces is None else "unused"
        return f"SigningNonces(identifier={self.commitments.identifier}, {state}, <redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("signing nonces must never be serialised")


def commit(
    identifier: int,
    signing_share: SecretScalar,
    *,
    hiding_randomness: bytes | None = None,
    binding_randomness: bytes | None = None,
) -> SigningNonces:
    """§5.1: fresh nonces (d, e) and their commitments (D, E); read them from ``.commitments``."""
    share = signing_share.to_bytes()
    hiding = _nonce_generate(share, hiding_randomness)
    binding = _nonce_generate(share, binding_randomness)
    commitments = SigningCommitments(identifier, hiding.public_point(), binding.public_point())
    return SigningNonces(hiding, binding, commitments)


# Not parkable (``protocols.state``): nonces never reach storage (docs/threat-model.md,
# "Rollback"); ``__reduce__`` refuses pickling too.
