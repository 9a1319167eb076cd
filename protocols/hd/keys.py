"""The joint derivation key of a wallet (one per curve): k = k1 + k2, each party one share.

Message flow (both parties at once; in the wallet the client's message goes first, so it is one
round trip)::

    Round 1  i -> j   K_i = k_i·G with a Schnorr proof of k_i (``protocols.zk.schnorr``)
    Output   DerivationKeyShare: k_i, both public shares K_1, K_2

No commitment round is needed: the key is never used as a public key, only through
``protocols.hd.vrf``, and a party that answers after seeing K_i must still know the discrete log
of its own K_j (the proof), so it cannot cancel or fix k = k_i + k_j without k_i.
The derivation key is not a signing key: it is never reshared; each party keeps its share
(docs/hd.md explains what backups and ejects do with it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from curves import CurveError, Group, Point, SecretScalar, group_by_name
from protocols.encoding import get_point, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.hd.account import CURVE_NAMES
from protocols.rounds import Message, Session, parse_strict_json
from protocols.state import register_attrs, register_bytes
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["DerivationKeyShare", "DerivationKeygen", "derivation_keygen"]


class DerivationKeyShare:
    """One party's share k_i of a derivation key and both public shares (``repr`` hides k_i)."""

    __slots__ = ("curve", "party", "secret", "public_shares")

    def __init__(self, curve: str, party: int, secret: SecretScalar, public_shares: Mapping[int, Point]) -> None:
        if curve not in CURVE_NAMES or secret.group is not group_by_name(curve):
            raise UsageError("a derivation key share is on secp256k1 or ed25519")
        if len(public_shares) != 2 or party not in public_shares or secret.public_point() != public_shares[party]:
            raise UsageError("a derivation key share needs its own and the peer's public share")
        if any(point.is_identity or point.group is not secret.group for point in public_shares.values()):
            raise UsageError("public shares must be non-identity points of the share's group")
        self.curve = curve
        self.party = party
        self.secret = secret
        self.public_shares = dict(sorted(public_shares.items()))

    @property
    def group(self) -> Group:
        """The share's group."""
        return self.secret.group

    @property
    def public_share(self) -> Point:
        """K_i = k_i·G."""
        return self.public_shares[self.party]

    @property
    def peer(self) -> int:
        """The other party's id."""
        return next(p for p in self.public_shares if p != self.party)

    def to_bytes(self) -> bytes:
        """Canonical JSON (contains k_i: keep it with the signing shares)."""
        obj = {"kind": "hd/derivation-key-share", "v": 1, "curve": self.curve, "party": self.party,
               "k": self.secret.to_bytes().hex(),
               "K": {str(p): point.to_bytes().hex() for p, point in self.public_shares.items()}}
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> DerivationKeyShare:
        """Strictly decode ``to_bytes`` output (``InvalidMessage``)."""
        obj = parse_strict_json(data)
        require_keys(obj, ("kind", "v", "curve", "party", "k", "K"))
        if obj["kind"] != "hd/derivation-key-share" or obj["v"] != 1 or obj["curve"] not in CURVE_NAMES:
            raise InvalidMessage("not a version-1 derivation key share")
        group = group_by_name(obj["curve"])
        publics = obj["K"]
        if not isinstance(publics, Mapping) or len(publics) != 2 or not all(k in ("1", "2") for k in publics):
            raise InvalidMessage("a derivation key share has the public shares of parties 1 and 2")
        if type(obj["party"]) is not int:
            raise InvalidMessage("party must be an integer")
        try:
            secret = SecretScalar.from_bytes(group, bytes.fromhex(obj["k"]))
            return cls(obj["curve"], obj["party"], secret,
                       {int(p): get_point(publics, p, group) for p in publics})
        except (ValueError, TypeError, UsageError, CurveError) as exc:
            raise InvalidMessage("invalid derivation key share") from exc

    def __repr__(self) -> str:
        return f"DerivationKeyShare({self.curve}, party={self.party}, K={self.public_share.to_bytes().hex()})"


class DerivationKeygen(Session):
    """One party of the derivation key generation on one curve (flow in the module docstring)."""

    protocol = "hd/keygen"

    def __init__(self, session_id: bytes, party_id: int, parties: Iterable[int], curve: str) -> None:
        super().__init__(session_id, party_id, parties)
        if len(self.parties) != 2 or curve not in CURVE_NAMES:
            raise UsageError("the derivation key is made by two parties on secp256k1 or ed25519")
        self.curve = curve
        self._secret = SecretScalar.random(group_by_name(curve))

    def _transcript(self, prover: int) -> Transcript:
        t = Transcript.for_context("hd/keygen/dlog", protocol=self.protocol, session_id=self.session_id,
                                   round=1, parties=self.parties)
        t.append_bytes("curve", self.curve.encode())
        t.append_int("prover", prover)
        return t

    def _begin(self) -> list[Message]:
        proof = schnorr.prove(self._secret, self._transcript(self.party_id))
        self._expect(1)
        return self._broadcast(1, {"K": self._secret.public_point().to_bytes().hex(), "proof": proof.to_payload()})

    def _decode_round1(self, msg: Message) -> Point:
        require_keys(msg.payload, ("K", "proof"))
        group = group_by_name(self.curve)
        public = get_point(msg.payload, "K", group)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], group)
        schnorr.verify(public, proof, self._transcript(msg.sender))
        return public

    def _on_round1(self, inputs: dict[int, Point]) -> list[Message]:
        publics = {self.party_id: self._secret.public_point(), **inputs}
        if len({p.to_bytes() for p in publics.values()}) != 2:
            raise InvalidMessage("the peer echoed this party's public share")
        self._finish(DerivationKeyShare(self.curve, self.party_id, self._secret, publics))
        return []


def derivation_keygen(curve: str, parties: tuple[int, int] = (1, 2)) -> tuple[DerivationKeyShare, DerivationKeyShare]:
    """Both parties' shares, run in memory (tests and benchmarks)."""
    import secrets

    from protocols.local import run

    sid = secrets.token_bytes(32)
    first, second = run([DerivationKeygen(sid, p, parties, curve) for p in parties])
    return first, second


register_bytes(DerivationKeyShare)
register_attrs(DerivationKeygen)
