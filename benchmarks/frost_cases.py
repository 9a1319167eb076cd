"""FROST benchmark cases: DKG and signing, end to end (all parties in memory) and per party.

"Per party" is one party's own work in every round (its ``start`` plus the ``receive`` calls
that complete a round), with the other parties' messages prepared untimed in ``setup``;
message decoding from the wire is included, as a real transport would need it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import protocols.frost as frost
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from protocols.frost.dkg import DKGSession
from protocols.frost.sign import SignSession
from protocols.rounds import Message, Session

MESSAGE = b"benchmark message: 32 bytes long"


def _prepare(make: Callable[[bytes], list[Session]], stage: int) -> Callable[[], Any]:
    """Setup for party ``make(...)[0]``'s work at ``stage`` (0 = start, k = receiving round k).

    Runs every party in lockstep up to that stage (untimed) and returns the session with the
    wire bytes it is about to receive.
    """

    def setup() -> tuple[Session, list[bytes]]:
        sessions = make(secrets.token_bytes(32))
        me = sessions[0]
        if stage == 0:
            return me, []
        outgoing = [m for s in sessions for m in s.start()]
        for round_no in range(1, stage + 1):
            inbox = {
                s.party_id: [m.to_bytes() for m in outgoing if m.sender != s.party_id and m.recipient in (None, s.party_id)]
                for s in sessions
            }
            if round_no == stage:
                return me, inbox[me.party_id]
            outgoing = [x for s in sessions for data in inbox[s.party_id] for x in s.receive(Message.from_bytes(data))]
        raise RuntimeError("stage beyond the protocol")

    return setup


def _party_work(arg: tuple[Session, list[bytes]]) -> None:
    session, wire = arg
    if not wire:
        session.start()
    for data in wire:
        session.receive(Message.from_bytes(data))


def _per_party(name: str, make: Callable[[bytes], list[Session]], stages: list[str], runs: int) -> list[Case]:
    return [
        Case(f"{name} party 1 {label}", _party_work, setup=_prepare(make, k), references=(REF_NACL,), runs=runs)
        for k, label in enumerate(stages)
    ]


def cases(quick: bool) -> list[Case]:
    out: list[Case] = []
    for t, n in ((2, 2), (3, 5)):
        out.append(Case(f"frost dkg {t}-of-{n} end to end", lambda t=t, n=n: frost.dkg(t, n),
                        references=(REF_NACL,), runs=20))
        shares = frost.dkg(t, n)[:t]
        signers = [s.identifier for s in shares]
        out.append(Case(f"frost sign {t}-of-{n} end to end", lambda s=shares: frost.sign(s, MESSAGE),
                        references=(REF_NACL,), runs=200))
        out += _per_party(
            f"frost sign {t}-of-{n}",
            lambda sid, s=shares, ids=signers: [SignSession(sid, k, ids, MESSAGE) for k in s],
            ["round 1 (commit)", "round 2 (sign)", "output (aggregate+verify)"], runs=200,
        )
        out += _per_party(
            f"frost dkg {t}-of-{n}",
            lambda sid, t=t, n=n: [DKGSession(sid, i, range(1, n + 1), t) for i in range(1, n + 1)],
            ["round 1 (commit+proof)", "round 2 (verify proofs, deal)", "round 3 (verify shares)", "output"],
            runs=20,
        )
    return out
