"""P1's Paillier key and encrypted share, with the proofs that let P2 trust them.

Used by keygen (round 3) and by resharing with a fresh Paillier key (round 3). P1 sends:

    N        its fresh Paillier-Blum modulus (|N| = 2048)
    c_key    Enc_N(x1; r)
    Π_mod    N is a Paillier-Blum modulus                          (CGGMP Fig. 12 / 16)
    Π_fac    N has no small factor, against P2's (N̂, s, t)         (CGGMP Fig. 26 / 28)
    Π_log*   c_key encrypts the discrete log of Q1, |x1| ≤ 2^ℓ      (CGGMP Fig. 25, old rev.)

These replace Lindell's range proof and interactive PDL proof (Lindell 2017, ePrint 2017/552) and
refuse BitForge's malformed moduli (CVE-2023-33241) and ciphertexts of zero or not invertible
mod N. Each proof runs on its own fork of the caller's transcript, which binds the session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar
from protocols import paillier
from protocols.errors import InvalidMessage
from protocols.encoding import require_keys
from protocols.paillier import PaillierPublicKey, PaillierSecretKey
from protocols.ring_pedersen import RingPedersenParams
from protocols.transcript import Transcript
from protocols.zk import fac, logstar, mod
from protocols.zk.params import DEFAULT_LEVEL, SecurityLevel
from protocols.state import register_dataclass

__all__ = ["EncryptedShare", "prove_encrypted_share", "verify_encrypted_share"]

PAYLOAD_KEYS = ("paillier", "c_key", "mod", "fac", "logstar")


@dataclass(frozen=True)
class EncryptedShare:
    """P1's share x1 under a fresh Paillier key, as sent in keygen and reshare round 3.

    N and c_key = Enc(x1) with the proofs that bind them (CGGMP, ePrint 2021/060): Π_mod (N is a
    Paillier-Blum modulus, rev. 2024-10-21 Fig. 12), Π_fac (no small factor, Fig. 26) and Π_log*
    (c_key encrypts the discrete log of Q1, in range; older revisions Fig. 25).
    """

    paillier: PaillierPublicKey
    c_key: int
    mod_proof: mod.ModProof
    fac_proof: fac.FacProof
    logstar_proof: logstar.LogStarProof

    @staticmethod
    def payload_keys() -> tuple[str, ...]:
        """The keys this share occupies in a round-3 payload."""
        return PAYLOAD_KEYS

    def to_payload(self) -> dict[str, Any]:
        """The payload fields: the Paillier key, c_key as hex and each proof's payload."""
        return {
            "paillier": self.paillier.to_payload(),
            "c_key": paillier.encode_ciphertext(self.c_key),
            "mod": self.mod_proof.to_payload(),
            "fac": self.fac_proof.to_payload(),
            "logstar": self.logstar_proof.to_payload(),
        }

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], params: RingPedersenParams, q1: Point, level: SecurityLevel = DEFAULT_LEVEL
    ) -> EncryptedShare:
        """Strict decoding: modulus size bounds (at least the level's), 0 < c_key < N²,
        gcd(c_key, N) = 1, proof shapes (Π_mod with the level's m)."""
        require_keys(payload, PAYLOAD_KEYS)
        pk = PaillierPublicKey.from_payload(payload["paillier"])
        if pk.n.bit_length() < level.modulus_bits:
            raise InvalidMessage(f"Paillier modulus too short for security level {level.name}")
        c_key = paillier.decode_ciphertext(payload, "c_key", pk)
        return cls(
            pk,
            c_key,
            mod.ModProof.from_payload(payload["mod"], pk.n, level.m_iterations),
            fac.FacProof.from_payload(payload["fac"], pk.n, params),
            logstar.LogStarProof.from_payload(payload["logstar"], pk, params, q1.group),
        )


def _fork(transcript: Transcript, proof: str) -> Transcript:
    fork = transcript.copy()
    fork.append_bytes("encrypted-share/proof", proof.encode())
    return fork


def prove_encrypted_share(
    x1: SecretScalar, params: RingPedersenParams, transcript: Transcript, level: SecurityLevel = DEFAULT_LEVEL
) -> tuple[PaillierSecretKey, EncryptedShare]:
    """A fresh Paillier key of the level's size, c_key = Enc(x1) and the three proofs, against P2's parameters."""
    pk, sk = paillier.keygen(level.modulus_bits)
    c_key, nonce = sk.encrypt(x1.value)
    share = EncryptedShare(
        pk,
        c_key,
        mod.prove(pk.n, sk.p, sk.q, _fork(transcript, "mod"), level.m_iterations),
        fac.prove(pk.n, sk.p, sk.q, params, _fork(transcript, "fac")),
        logstar.prove(pk, params, c_key, x1.public_point(), x1.value, nonce, _fork(transcript, "logstar")),
    )
    return sk, share


def verify_encrypted_share(
    share: EncryptedShare, q1: Point, params: RingPedersenParams, transcript: Transcript,
    level: SecurityLevel = DEFAULT_LEVEL,
) -> None:
    """Raise ``ProofError`` unless every proof verifies for (N, c_key, Q1)."""
    mod.verify(share.paillier.n, share.mod_proof, _fork(transcript, "mod"), level.m_iterations)
    fac.verify(share.paillier.n, params, share.fac_proof, _fork(transcript, "fac"))
    logstar.verify(share.paillier, params, share.c_key, q1, share.logstar_proof, _fork(transcript, "logstar"))


# Parkable state (``protocols.state``).
register_dataclass(EncryptedShare)
