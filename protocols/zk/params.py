"""Security parameters of the CGGMP proofs (ePrint 2021/060), in one place.

The values are the paper's for κ ≈ 112-bit computational security with |N| = 2048 (taurus
``internal/params``: ℓ = 256, ε = 512, m = 80):

- ``ELL`` (ℓ = 256): the bit bound of the secret proven in range by Π_log* (|x| ≤ 2^ℓ; a
  secp256k1 or ed25519 scalar fits) and the size unit of Π_fac's masks.
- ``EPSILON`` (ε = 512): the slack of the range proofs. A response z = α + e·x with α drawn from
  ±2^(ℓ+ε) hides e·x (|e·x| < 2^(CHALLENGE_BITS+ℓ) = 2^512) up to statistical distance 2^-256.
  The price is a soundness gap: Π_log* only guarantees |x| ≤ 2^(ℓ+ε) = 2^768, so the two-party
  ECDSA signing mask must swamp x1·q for x1 up to 2^768, and N must exceed the whole plaintext.
- ``CHALLENGE_BITS`` (256): Π_fac and Π_log* challenges are uniform in (-2^256, 2^256) (the
  paper's ±q); soundness error about 2^-256 per proof.
- ``M_ITERATIONS`` (m = 80): repetitions of the binary-challenge proofs Π_mod and Π_prm,
  soundness error 2^-80 each (TSSHOCK c-guess: never fewer).
- Π_fac with ℓ + ε = 768 and |N0| = 2048 excludes prime factors below about
  √N0 / 2^(ℓ+ε) = 2^256 (our own arithmetic); small factors such as
  the 16-bit primes of BitForge's "6ix1een" are far below that bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import InvalidMessage
from protocols.state import register_dataclass

__all__ = ["ELL", "EPSILON", "CHALLENGE_BITS", "M_ITERATIONS", "SecurityLevel", "LEVEL_112", "LEVEL_128",
           "DEFAULT_LEVEL", "level_by_name"]

ELL = 256
EPSILON = 512
CHALLENGE_BITS = 256
M_ITERATIONS = 80


@dataclass(frozen=True)
class SecurityLevel:
    """A deployment's security level, recorded in every two-party ECDSA share and setup.

    ``modulus_bits``: the least |N| (P1's Paillier keys, made at exactly this size) and |N̂|
    (both parties' ring-Pedersen setups); ``m_iterations``: the repetitions of Π_mod and Π_prm.

    - ``LEVEL_112`` (the default): |N|, |N̂| ≥ 2048, m = 80: about 112-bit computational and
      80-bit statistical security (the CGGMP paper's values).
    - ``LEVEL_128``: |N|, |N̂| ≥ 3072, m = 128, as LFDT-Lockness cggmp21's ``SecurityLevel128``
      (κ = 384, m = 128). Its ε = 230 and challenge 2^128 for Π_log*/Π_fac are *not* copied:
      both levels keep ε = 512 and 256-bit challenges, which give more statistical slack and a
      smaller soundness error than that level asks for (ε ≥ 2 + s + log Q holds with room), at
      the cost of longer responses; the c3 proof's bounds follow from ε (``zk.c3.C3Bounds``).
    """

    name: str
    modulus_bits: int
    m_iterations: int

    def __post_init__(self) -> None:
        known = globals().get("_LEVELS")
        if known is not None and known.get(self.name) != self:  # rebuilt from a parked state
            raise InvalidMessage(f"unknown security level {self.name!r:.12}")


LEVEL_112 = SecurityLevel("112", 2048, M_ITERATIONS)
LEVEL_128 = SecurityLevel("128", 3072, 128)
DEFAULT_LEVEL = LEVEL_112
_LEVELS = {level.name: level for level in (LEVEL_112, LEVEL_128)}


def level_by_name(name: object) -> SecurityLevel:
    """The level called ``name`` (``"112"`` or ``"128"``); ``KeyError`` for anything else."""
    if not isinstance(name, str) or name not in _LEVELS:
        raise KeyError(name)
    return _LEVELS[name]


# Parkable state (``protocols.state``): sessions hold their level.
register_dataclass(SecurityLevel)
