"""Two-party ECDSA benchmark cases: keygen and signing end to end and per party round, on the
gmpy2 and the pure-Python big-integer paths, beside python-ecdsa and `phe`.

The custodian setup is the tests' pre-generated one (``tests.fixtures``), so no safe prime is
generated here. "Per party round" is one party's work on one incoming message (or its
``start``), wire decoding included, with both parties driven in lockstep up to that point in the
untimed ``setup``: a party's total is the sum of its rounds. The references are python-ecdsa
single-key signing, one `phe` 2048-bit encryption plus one decryption (the issue's target for
signing: ≤ 1.3×) and one `phe` 2048-bit keygen (target for keygen: < 25×).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from benchmarks.paillier_cases import REF_DECRYPT, REF_ENCRYPT, REF_KEYGEN
from benchmarks.reference_cases import REF_ECDSA
from benchmarks.timing import Case
from protocols import bigint, ecdsa2p
from protocols.ecdsa2p import CLIENT, CUSTODIAN, KeygenP1, KeygenP2, SignP1, SignP2
from protocols.ecdsa2p.setup import CustodianSetup, setup_from_ring_pedersen
from protocols.rounds import Message, Session
from tests.fixtures import bigint_backend, ring_pedersen_sets

REF_ENC_DEC = "ref/phe encrypt+decrypt 2048"
DIGEST = bytes(range(32))

# (party, incoming round or 0 for start, label): the order in which the rounds run.
SIGN_STAGES = [(CLIENT, 0, "round 1 (commit R1)"), (CUSTODIAN, 1, "round 2 (R2 + proof)"),
               (CLIENT, 2, "round 3 (verify R2, open)"), (CUSTODIAN, 3, "round 4 (verify R1, c3)"),
               (CLIENT, 4, "round 5 (decrypt, verify)"), (CUSTODIAN, 5, "output (verify)")]
KEYGEN_STAGES = [(CLIENT, 2, "round 3 (Paillier key, Π_mod, Π_fac, Π_log*)"),
                 (CUSTODIAN, 3, "round 4 (verify proofs)")]


@lru_cache(maxsize=1)
def custodian_setup() -> CustodianSetup:
    return setup_from_ring_pedersen(*ring_pedersen_sets()[0])


@lru_cache(maxsize=1)
def key_pair() -> tuple[ecdsa2p.P1KeyShare, ecdsa2p.P2KeyShare]:
    return ecdsa2p.keygen(custodian_setup())


def _on(backend: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any) -> Any:
        with bigint_backend(backend):
            return fn(*args)

    return timed


def sign_sessions() -> dict[int, Session]:
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return {CLIENT: SignP1(sid, p1, DIGEST), CUSTODIAN: SignP2(sid, p2, DIGEST)}


def keygen_sessions() -> dict[int, Session]:
    sid = secrets.token_bytes(32)
    return {CLIENT: KeygenP1(sid), CUSTODIAN: KeygenP2(sid, custodian_setup())}


def _prepare(make: Callable[[], dict[int, Session]], party: int, incoming: int) -> Callable[[], Any]:
    """Untimed: drive both parties until ``party`` is about to take round ``incoming``'s message."""

    def setup() -> tuple[Session, bytes | None]:
        sessions = make()
        if incoming == 0:
            return sessions[party], None
        sessions[CUSTODIAN].start()
        pending = sessions[CLIENT].start()
        while pending:
            msg = pending[0]
            if msg.round == incoming:
                return sessions[party], msg.to_bytes()
            pending = sessions[msg.recipient].receive(Message.from_bytes(msg.to_bytes()))  # type: ignore[index]
        raise RuntimeError(f"round {incoming} never came")

    return setup


def _party_work(arg: tuple[Session, bytes | None]) -> None:
    session, wire = arg
    if wire is None:
        session.start()
    else:
        session.receive(Message.from_bytes(wire))


def _reference_cases() -> list[Case]:
    try:
        from phe import paillier as phe_paillier
    except ImportError:
        return []
    pub, priv = phe_paillier.generate_paillier_keypair(n_length=2048)
    x = secrets.randbelow(2**256)
    return [Case(REF_ENC_DEC, lambda: priv.decrypt(pub.encrypt(x)), runs=60)]


def cases(quick: bool) -> list[Case]:
    out = _reference_cases()
    sign_refs = (REF_ENC_DEC, REF_ENCRYPT, REF_DECRYPT, REF_ECDSA)
    for backend in bigint.available_backends():
        slow = backend == "python"
        out.append(Case(f"ecdsa2p keygen end to end [{backend}]", _on(backend, lambda: ecdsa2p.keygen(custodian_setup())),
                        references=(REF_KEYGEN,), runs=5 if slow else 15, warmup=1))
        # The pure-Python path is also compared with the gmpy2 one (issue 9 target: ≤ 10×).
        refs = sign_refs + (("ecdsa2p sign end to end [gmpy2]",) if slow and "gmpy2" in bigint.available_backends() else ())
        out.append(Case(f"ecdsa2p sign end to end [{backend}]", _on(backend, lambda: ecdsa2p.sign(*key_pair(), DIGEST)),
                        references=refs, runs=10 if slow else 100))
        for party, incoming, label in SIGN_STAGES:
            who = "P1 (client)" if party == CLIENT else "P2 (custodian)"
            out.append(Case(f"ecdsa2p sign {who} {label} [{backend}]", _on(backend, _party_work),
                            setup=_prepare(sign_sessions, party, incoming), references=(REF_ENC_DEC,),
                            runs=10 if slow else 100))
        if not slow:
            for party, incoming, label in KEYGEN_STAGES:
                who = "P1 (client)" if party == CLIENT else "P2 (custodian)"
                out.append(Case(f"ecdsa2p keygen {who} {label} [{backend}]", _on(backend, _party_work),
                                setup=_prepare(keygen_sessions, party, incoming), references=(REF_KEYGEN,),
                                runs=10, warmup=1))
    return out
