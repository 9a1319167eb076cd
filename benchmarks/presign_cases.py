"""Presigning cases: 2P-ECDSA presign and online sign from a presignature (both bigint backends),
FROST 2-of-2 online sign from precommitted nonces.

The presignature (or precommitted slot) is made untimed in ``setup``; the timed part is exactly
the online protocol with both parties in memory, wire encoding included. References: one `phe`
2048-bit encryption plus one decryption for ECDSA (target ≤ 0.3×), PyNaCl single-key signing
for FROST (target ≤ 20×).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from benchmarks.ecdsa2p_cases import DIGEST, REF_ENC_DEC, _on, custodian_setup, key_pair
from benchmarks.frost_cases import MESSAGE
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from protocols import bigint, frost
from protocols.ecdsa2p.presign import OnlineSignP1, OnlineSignP2, PresignP1, PresignP2
from protocols.frost.precommit import OnlineSignSession, PrecommitSession
from protocols.local import run

__all__ = ["cases", "ecdsa_presign", "ecdsa_online", "frost_online"]


def ecdsa_presign() -> Any:
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return run([PresignP1(sid, p1), PresignP2(sid, p2)])


def ecdsa_online(presignatures: Any) -> Any:
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return run([OnlineSignP1(sid, p1, presignatures[0], DIGEST), OnlineSignP2(sid, p2, presignatures[1], DIGEST)])


class _FrostPool:
    """Precommitted slots made in batches, untimed; each setup call hands out one slot pair."""

    def __init__(self) -> None:
        self.shares = frost.dkg(2, 2)
        self.slots: list[tuple[Any, Any]] = []

    def next(self) -> tuple[Any, Any]:
        if not self.slots:
            sid = secrets.token_bytes(32)
            pools = run([PrecommitSession(sid, s, [1, 2], 256) for s in self.shares])
            self.slots = list(zip(*pools))
        return self.slots.pop()


def _precommit(shares: Any, count: int) -> Any:
    sid = secrets.token_bytes(32)
    return run([PrecommitSession(sid, s, [1, 2], count) for s in shares])


def frost_online(shares: Any, slots: tuple[Any, Any]) -> Any:
    sid = secrets.token_bytes(32)
    return run([OnlineSignSession(sid, s, c, MESSAGE) for s, c in zip(shares, slots)])


def _with_backend(backend: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: _on(backend, fn)()


def cases(quick: bool) -> list[Case]:
    custodian_setup()
    out: list[Case] = []
    for backend in bigint.available_backends():
        slow = backend == "python"
        out.append(Case(f"ecdsa2p presign end to end [{backend}]", _on(backend, ecdsa_presign),
                        references=(REF_ENC_DEC,), runs=10 if slow else 100))
        out.append(Case(f"ecdsa2p online sign from presignature [{backend}]", _on(backend, ecdsa_online),
                        setup=_with_backend(backend, ecdsa_presign), references=(REF_ENC_DEC,),
                        runs=10 if slow else 100))
    pool = _FrostPool()
    out.append(Case("frost sign 2-of-2 online from precommitment", lambda slots: frost_online(pool.shares, slots),
                    setup=pool.next, references=(REF_NACL, "frost sign 2-of-2 end to end"), runs=500))
    out.append(Case("frost precommit 2-of-2, 16 slots", lambda: _precommit(pool.shares, 16), references=(REF_NACL,),
                    runs=20))
    return out
