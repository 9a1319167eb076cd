"""What every two-party ECDSA session shares: the party ids, transcripts, commit-then-open."""

from __future__ import annotations

from curves import Point, secp256k1
from protocols import commitments
from protocols.rounds import Session
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["TwoPartySession", "CLIENT", "CUSTODIAN"]

CLIENT = 1
CUSTODIAN = 2
GROUP = secp256k1


class TwoPartySession(Session):
    """A session between the client (P1, party 1) and the custodian (P2, party 2)."""

    def __init__(self, session_id: bytes, party_id: int) -> None:
        super().__init__(session_id, party_id, (CLIENT, CUSTODIAN))

    @property
    def peer(self) -> int:
        """The other party's id: ``CUSTODIAN`` for the client (P1), ``CLIENT`` for the custodian (P2)."""
        return CUSTODIAN if self.party_id == CLIENT else CLIENT

    def _transcript(self, label: str, round: int, prover: int, context: bytes = b"") -> Transcript:
        """A transcript bound to this run, a round, the prover, and an optional context."""
        t = Transcript.for_context(
            f"{self.protocol}/{label}", protocol=self.protocol, session_id=self.session_id,
            round=round, parties=self.parties,
        )
        t.append_int("prover", prover)
        t.append_bytes("context", context)
        return t

    def _commit(self, value: bytes) -> tuple[bytes, bytes]:
        return commitments.commit(self.protocol, self.session_id, self.party_id, value)

    def _verify_opening(self, commitment: bytes, value: bytes, nonce: bytes) -> None:
        commitments.verify_opening(self.protocol, self.session_id, self.peer, commitment, value, nonce)


def point_and_proof_bytes(point: Point, proof: schnorr.SchnorrProof) -> bytes:
    """The committed value of a (point, Schnorr proof) pair: fixed-length fields, concatenated."""
    return point.to_bytes() + proof.commitment.to_bytes() + GROUP.encode_scalar(proof.response)
