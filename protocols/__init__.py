"""MPC building blocks and protocols; knows nothing of wallets, storage or transports.

- ``rounds``, ``local``, ``compose``: the sans-I/O round-message framework
- ``errors``: the error hierarchy (``MPCError``, ``InvalidMessage``, ``ProtocolAbort``, ...)
- ``transcript``, ``commitments``, ``encoding``, ``sharing``: shared primitives
- ``bigint``, ``primes``, ``paillier``, ``ring_pedersen``: Paillier and its setup
- ``zk``: one module per zero-knowledge proof (Schnorr, Π_mod, Π_fac, Π_prm, Π_log*)
- ``ecdsa2p``: two-party ECDSA on secp256k1 (Lindell 2017 with CGGMP proofs)
- ``frost``: FROST(Ed25519, SHA-512) per RFC 9591 with DKG and resharing
"""

__all__ = [
    "rounds",
    "local",
    "compose",
    "errors",
    "transcript",
    "commitments",
    "encoding",
    "sharing",
    "bigint",
    "primes",
    "paillier",
    "ring_pedersen",
    "zk",
    "ecdsa2p",
    "frost",
]
