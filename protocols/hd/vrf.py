"""The hardened part of an HD path, jointly: a two-party VRF with DLEQ proofs (docs/hd.md).

For each requested account path a (hardened levels only) on one curve, P = hash_to_curve(a)
(``protocols.hd.account.account_point``); with the derivation key k = k1 + k2
(``protocols.hd.keys``)::

    Round 1  i -> j   for each path: V_i = k_i·P and a DLEQ proof that log_G K_i = log_P V_i
                      (``protocols.zk.dleq``), in the order of the paths both parties were given
    Output   for each path: Z = V_1 + V_2 = k·P and the account's (δ, c) (``account_tweak``)

Both parties send at once; in the wallet the client's message goes first (one round trip). The
proofs are bound to the session, the protocol, the parties, the prover, the curve and the path,
so a V_i cannot be replayed into another run, another path or another party's place. Without
k neither party alone, nor anyone holding one account's extended public key, can compute
another account's δ or c: the accounts stay apart (Z is a VRF output: the DLEQ proofs make it
unique, the unknown k makes it pseudorandom).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from curves import Point
from protocols.encoding import get_list, get_point, require_keys
from protocols.errors import UsageError
from protocols.hd.account import account_point, account_tweak, canonical_account
from protocols.hd.keys import DerivationKeyShare
from protocols.rounds import Message, Session
from protocols.state import register_attrs, register_dataclass
from protocols.transcript import Transcript
from protocols.zk import dleq

__all__ = ["MAX_PATHS", "AccountTweak", "AccountVRF"]

MAX_PATHS = 16
"""Account paths per run (a bound on the work a peer's message can ask for)."""


@dataclass(frozen=True)
class AccountTweak:
    """The VRF's output for one account path: δ and the chain code c."""

    account_path: str
    tweak: int = field(repr=False)  # known to both parties, never published
    chain_code: bytes = field(repr=False)


class AccountVRF(Session):
    """One party of the account VRF on one curve (flow in the module docstring); its result is
    a list of ``AccountTweak`` in the order of ``account_paths``."""

    protocol = "hd/vrf"

    def __init__(self, session_id: bytes, share: DerivationKeyShare, parties: Iterable[int],
                 account_paths: Sequence[str]) -> None:
        super().__init__(session_id, share.party, parties)
        if set(self.parties) != set(share.public_shares):
            raise UsageError("the VRF runs between the two parties of the derivation key")
        self.share = share
        self.curve = share.curve
        self.account_paths = [self._account(path) for path in account_paths]
        if not 1 <= len(self.account_paths) <= MAX_PATHS or len(set(self.account_paths)) != len(self.account_paths):
            raise UsageError(f"the VRF takes 1 to {MAX_PATHS} distinct account paths")
        self._bases = [account_point(self.curve, path) for path in self.account_paths]

    @staticmethod
    def _account(path: str) -> str:
        return canonical_account(path)

    def _transcript(self, prover: int, path: str) -> Transcript:
        t = Transcript.for_context("hd/vrf/dleq", protocol=self.protocol, session_id=self.session_id,
                                   round=1, parties=self.parties)
        t.append_int("prover", prover)
        t.append_bytes("curve", self.curve.encode())
        t.append_bytes("account_path", path.encode())
        return t

    def _begin(self) -> list[Message]:
        secret = self.share.secret
        self._own = [base * secret.value for base in self._bases]
        proofs = [dleq.prove(secret, base, self._transcript(self.party_id, path), value).to_payload()
                  for base, value, path in zip(self._bases, self._own, self.account_paths)]
        self._expect(1)
        return self._broadcast(1, {"V": [v.to_bytes().hex() for v in self._own], "proofs": proofs})

    def _decode_round1(self, msg: Message) -> list[Point]:
        require_keys(msg.payload, ("V", "proofs"))
        n = len(self.account_paths)
        values, proofs = get_list(msg.payload, "V", n), get_list(msg.payload, "proofs", n)
        group, public = self.share.group, self.share.public_shares[msg.sender]
        decoded = [get_point({"V": v}, "V", group) for v in values]
        parsed = [dleq.DLEQProof.from_payload(p, group) for p in proofs]
        for value, proof, base, path in zip(decoded, parsed, self._bases, self.account_paths):
            dleq.verify(public, base, value, proof, self._transcript(msg.sender, path))
        return decoded

    def _on_round1(self, inputs: dict[int, list[Point]]) -> list[Message]:
        (peer_values,) = inputs.values()
        out = []
        for path, own, peer in zip(self.account_paths, self._own, peer_values):
            tweak, chain_code = account_tweak(self.curve, path, own + peer)
            out.append(AccountTweak(path, tweak, chain_code))
        self._own = []
        self._finish(out)
        return []


register_dataclass(AccountTweak)
register_attrs(AccountVRF)
