"""Security parameters of the CGGMP proofs (ePrint 2021/060), in one place.

The values are the paper's for κ ≈ 112-bit computational security with |N| = 2048 (taurus
``internal/params``: ℓ = 256, ε = 512, m = 80; REFERENCES.md section 3):

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
  √N0 / 2^(ℓ+ε) = 2^256 (REFERENCES.md section 3, our own arithmetic); small factors such as
  the 16-bit primes of BitForge's "6ix1een" are far below that bound.
"""

from __future__ import annotations

__all__ = ["ELL", "EPSILON", "CHALLENGE_BITS", "M_ITERATIONS"]

ELL = 256
EPSILON = 512
CHALLENGE_BITS = 256
M_ITERATIONS = 80
