"""Zero-knowledge proofs, one module per proof; each ``verify`` raises ``ProofError``.

- ``schnorr``: knowledge of a discrete log (both curves)
- ``mod``: Π_mod, N is a Paillier-Blum modulus (CGGMP)
- ``fac``: Π_fac, N has no small factor (CGGMP)
- ``prm``: Π_prm, ring-Pedersen parameters are well formed (CGGMP)
- ``logstar``: Π_log*, a Paillier ciphertext encrypts the discrete log of a point, in range
- ``dleq``: two points share one discrete log (Chaum–Pedersen; both curves)
- ``params``: the security parameters shared by the CGGMP proofs
"""

__all__ = ["schnorr", "dleq", "mod", "fac", "prm", "logstar", "params"]
