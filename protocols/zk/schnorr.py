"""Schnorr proof of knowledge of a discrete log, made non-interactive with Fiat-Shamir.

Statement: a point X (and the base point G of the group).  Witness: x with X = x·G.
Proof: A = a·G for a fresh random a; challenge e from the transcript (which already binds the
session, protocol, round and parties) over (G, X, A); response z = a + e·x mod q.
Verification: z·G == A + e·X, with A and X canonical non-identity points.
Works on any ``curves.Group`` (secp256k1 and ed25519). Soundness error 1/q.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from curves import Group, Point, SecretScalar
from protocols.encoding import get_point, get_scalar, require_keys
from protocols.errors import ProofError
from protocols.transcript import Transcript
from protocols.state import register_dataclass

__all__ = ["SchnorrProof", "prove", "verify"]

_LABEL = "zk/schnorr/v1"


@dataclass(frozen=True)
class SchnorrProof:
    """A Schnorr proof: commitment A = a·G and response z = a + e·x mod q."""

    commitment: Point  # A = a·G
    response: int  # z = a + e·x mod q

    def to_payload(self) -> dict[str, str]:
        """``{"A": point hex, "z": scalar hex}``."""
        group = self.commitment.group
        return {"A": self.commitment.to_bytes().hex(), "z": group.encode_scalar(self.response).hex()}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], group: Group) -> SchnorrProof:
        """Strict decoding (raises ``InvalidMessage``)."""
        require_keys(payload, ("A", "z"))
        return cls(get_point(payload, "A", group), get_scalar(payload, "z", group))


def _challenge(transcript: Transcript, public: Point, commitment: Point) -> int:
    group = public.group
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_bytes("group", group.name.encode())
    t.append_bytes("G", group.generator().to_bytes())
    t.append_bytes("X", public.to_bytes())
    t.append_bytes("A", commitment.to_bytes())
    return t.challenge_int("e", group.order)


def prove(secret: SecretScalar, transcript: Transcript) -> SchnorrProof:
    """Prove knowledge of ``secret`` for the point ``secret·G``."""
    group = secret.group
    a = group.random_scalar()
    commitment = group.base_mul(a)
    e = _challenge(transcript, secret.public_point(), commitment)
    return SchnorrProof(commitment, (a + e * secret.value) % group.order)


def verify(public: Point, proof: SchnorrProof, transcript: Transcript) -> None:
    """Raise ``ProofError`` unless ``proof`` shows knowledge of the discrete log of ``public``."""
    group = public.group
    if public.is_identity or proof.commitment.is_identity or proof.commitment.group is not group:
        raise ProofError("schnorr proof over the identity")
    e = _challenge(transcript, public, proof.commitment)
    if group.base_mul(proof.response) != proof.commitment + public * e:
        raise ProofError("schnorr proof does not verify")


# Parkable state (``protocols.state``).
register_dataclass(SchnorrProof)
