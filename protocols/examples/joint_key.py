"""A joint public key with DLog proofs: the smallest full example of the round framework.

Each party i picks x_i and publishes X_i = x_i·G; the output is X = Σ X_i. Commit-then-open
stops the last party from choosing its X_i as a function of the others' (a rogue-key attack).

Message flow::

    Round 1  i -> all   commitment to (X_i, Schnorr proof of x_i)      (broadcast)
    Round 2  i -> j     opening: X_i, the proof and the nonce           (one p2p message per peer)
    Output   X = Σ X_i, after every opening and every proof checked; a bad one aborts naming its sender.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


from curves import Group, Point, SecretScalar, group_by_name
from protocols import commitments
from protocols.encoding import get_bytes, get_point, require_keys
from protocols.rounds import Message, Session
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["JointKey", "JointKeyResult"]


@dataclass(frozen=True)
class JointKeyResult:
    """A party's output: its secret share x_i, every party's X_i and the joint key X = Σ X_i."""

    secret_share: SecretScalar
    public_shares: dict[int, Point]
    public_key: Point


@dataclass(frozen=True)
class _Opening:
    public: Point
    proof: schnorr.SchnorrProof
    nonce: bytes


class JointKey(Session):
    """One party of the joint-key example; its result is a :class:`JointKeyResult` (rounds above)."""

    protocol = "example/joint-key"

    def __init__(self, session_id: bytes, party_id: int, parties: Iterable[int], group: Group) -> None:
        super().__init__(session_id, party_id, parties)
        self.group = group
        self._secret = SecretScalar.random(group)
        self._commitments: dict[int, bytes] = {}

    def _transcript(self, prover: int) -> Transcript:
        t = Transcript.for_context(
            "example/joint-key/dlog", protocol=self.protocol, session_id=self.session_id,
            round=1, parties=self.parties,
        )
        t.append_int("prover", prover)
        return t

    def _committed_value(self, public: Point, proof: schnorr.SchnorrProof) -> bytes:
        return self.group.name.encode() + public.to_bytes() + proof.commitment.to_bytes() + \
            self.group.encode_scalar(proof.response)

    # Round 1: commit to (X_i, proof).
    def _begin(self) -> list[Message]:
        public = self._secret.public_point()
        proof = schnorr.prove(self._secret, self._transcript(self.party_id))
        commitment, nonce = commitments.commit(
            self.protocol, self.session_id, self.party_id, self._committed_value(public, proof)
        )
        self._opening = _Opening(public, proof, nonce)
        self._expect(1)
        return self._broadcast(1, {"commitment": commitment.hex()})

    def _decode_round1(self, msg: Message) -> bytes:
        require_keys(msg.payload, ("commitment",))
        return get_bytes(msg.payload, "commitment", commitments.COMMITMENT_LENGTH)

    def _on_round1(self, inputs: dict[int, bytes]) -> list[Message]:
        self._commitments = inputs
        self._expect(2)
        opening = {
            "X": self._opening.public.to_bytes().hex(),
            "proof": self._opening.proof.to_payload(),
            "nonce": self._opening.nonce.hex(),
        }
        return [self._message(2, opening, recipient=peer) for peer in self.peers]

    # Round 2: check every opening and proof.
    def _decode_round2(self, msg: Message) -> Point:
        require_keys(msg.payload, ("X", "proof", "nonce"))
        public = get_point(msg.payload, "X", self.group)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], self.group)
        nonce = get_bytes(msg.payload, "nonce", commitments.NONCE_LENGTH)
        commitments.verify_opening(
            self.protocol, self.session_id, msg.sender, self._commitments[msg.sender],
            self._committed_value(public, proof), nonce,
        )
        schnorr.verify(public, proof, self._transcript(msg.sender))
        return public

    def _on_round2(self, inputs: dict[int, Point]) -> list[Message]:
        public_shares = dict(inputs)
        public_shares[self.party_id] = self._opening.public
        total = self.group.identity()
        for point in public_shares.values():
            total = total + point
        self._finish(JointKeyResult(self._secret, public_shares, total))
        return []


def joint_key_sessions(session_id: bytes, parties: Iterable[int], group_name: str) -> list[JointKey]:
    """One session per party (for tests and demos)."""
    parties = list(parties)
    group = group_by_name(group_name)
    return [JointKey(session_id, p, parties, group) for p in parties]


