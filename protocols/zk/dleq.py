"""DLEQ (Chaum–Pedersen): two points share one discrete log, made non-interactive with Fiat-Shamir.

Statement: points X = x·G and V = x·P for the base point G and a second base P.
Witness: x.
Proof: A = a·G and B = a·P for a fresh random a; challenge e from the transcript (which already
binds the session, protocol, round and parties) over (G, P, X, V, A, B); response z = a + e·x mod q.
Verification: z·G == A + e·X and z·P == B + e·V, with every point a canonical non-identity point
of the same group (Chaum & Pedersen, CRYPTO '92, "Wallet databases with observers", section 3.2;
the same proof as RFC 9497 section 2.2, here over any ``curves.Group``). Soundness error 1/q.
The proof is sent as (A, B, z) rather than (e, z) so that its check is two equations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from curves import Group, Point, SecretScalar
from protocols.encoding import get_point, get_scalar, require_keys
from protocols.errors import ProofError
from protocols.state import register_dataclass
from protocols.transcript import Transcript

__all__ = ["DLEQProof", "prove", "verify"]

_LABEL = "zk/dleq/v1"


@dataclass(frozen=True)
class DLEQProof:
    """A DLEQ proof: commitments A = a·G, B = a·P and the response z = a + e·x mod q."""

    commitment_g: Point  # A = a·G
    commitment_p: Point  # B = a·P
    response: int  # z

    def to_payload(self) -> dict[str, str]:
        """``{"A": point hex, "B": point hex, "z": scalar hex}``."""
        group = self.commitment_g.group
        return {"A": self.commitment_g.to_bytes().hex(), "B": self.commitment_p.to_bytes().hex(),
                "z": group.encode_scalar(self.response).hex()}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], group: Group) -> DLEQProof:
        """Strict decoding (raises ``InvalidMessage``)."""
        require_keys(payload, ("A", "B", "z"))
        return cls(get_point(payload, "A", group), get_point(payload, "B", group), get_scalar(payload, "z", group))


def _challenge(transcript: Transcript, base: Point, public: Point, value: Point, a: Point, b: Point) -> int:
    group = base.group
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_bytes("group", group.name.encode())
    for label, point in (("G", group.generator()), ("P", base), ("X", public), ("V", value), ("A", a), ("B", b)):
        t.append_bytes(label, point.to_bytes())
    return t.challenge_int("e", group.order)


def prove(secret: SecretScalar, base: Point, transcript: Transcript, value: Point | None = None) -> DLEQProof:
    """Prove that ``secret·G`` and ``secret·base`` have the same discrete log ``secret``.

    ``value`` is ``secret·base`` when the caller has computed it already (it sends it beside the
    proof); it is computed here otherwise. A wrong ``value`` only makes a proof that fails.
    """
    group = secret.group
    a = group.random_scalar()
    commitment_g, commitment_p = group.base_mul(a), base * a
    value = base * secret.value if value is None else value
    e = _challenge(transcript, base, secret.public_point(), value, commitment_g, commitment_p)
    return DLEQProof(commitment_g, commitment_p, (a + e * secret.value) % group.order)


def verify(public: Point, base: Point, value: Point, proof: DLEQProof, transcript: Transcript) -> None:
    """Raise ``ProofError`` unless ``proof`` shows log_G(public) == log_base(value)."""
    group = public.group
    points = (base, value, proof.commitment_g, proof.commitment_p)
    if any(p.group is not group for p in points):
        raise ProofError("dleq proof over points of different groups")
    if any(p.is_identity for p in (public, *points)):
        raise ProofError("dleq proof over the identity")
    e = _challenge(transcript, base, public, value, proof.commitment_g, proof.commitment_p)
    if group.base_mul(proof.response) != proof.commitment_g + public * e:
        raise ProofError("dleq proof does not verify (base G)")
    if base * proof.response != proof.commitment_p + value * e:
        raise ProofError("dleq proof does not verify (base P)")


# Parkable state (``protocols.state``).
register_dataclass(DLEQProof)
