"""Fast-signing cases: 2P-ECDSA with the custodian's precomputation, and FROST 2-of-2 in one
round trip; plus the costs made ahead (the precomputation, a device's setup).

ECDSA: the ``C3Precomputation`` (the Paillier nonces of c3 and of Π_c3 with their N-th powers,
Π_c3's t-halves, masks α and commitments A_i) is made untimed in ``setup``; the timed part is the
whole signing protocol with both parties in memory, wire encoding included (reference: one `phe`
2048-bit encryption plus one decryption; at the 128-bit level also the same at 3072 bits).
FROST: the one-round-trip protocol with fresh nonces on both sides (reference: PyNaCl
single-key signing, and the two-round session).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any

from benchmarks.ecdsa2p_cases import DIGEST, REF_ENC_DEC, WARM_SIGNS, _on, custodian_setup, key_pair
from benchmarks.frost_cases import MESSAGE
from benchmarks.paillier_cases import REF_ENC_DEC_3072
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from tests.fixtures import keys_3072
from protocols import bigint, frost
from protocols.ecdsa2p import (
    LEVEL_128,
    C3Precomputation,
    KeygenP1,
    KeygenP2,
    P1KeyShare,
    P2KeyShare,
    SignP1,
    SignP2,
    generate_setup,
)
from protocols.ecdsa2p.setup import setup_from_ring_pedersen
from protocols.frost.round_trip import InitiatorSession, ResponderSession
from protocols.local import run

__all__ = ["cases", "ecdsa_sign_precomputed", "ecdsa_sign_128", "frost_round_trip"]


def _precomputation() -> C3Precomputation:
    return C3Precomputation.for_share(key_pair()[1])


def ecdsa_sign_precomputed(precomputed: C3Precomputation) -> Any:
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return run([SignP1(sid, p1, DIGEST), SignP2(sid, p2, DIGEST, precomputed=precomputed)])


@lru_cache(maxsize=1)
def key_pair_128() -> tuple[P1KeyShare, P2KeyShare]:
    """A pair at the 128-bit level over the 3072-bit test setups (keygen makes a 3072-bit Paillier
    key: seconds, once)."""
    _, sets = keys_3072()
    custodian, client = (setup_from_ring_pedersen(*sets[i], LEVEL_128) for i in (0, 1))
    sid = secrets.token_bytes(32)
    return run([KeygenP1(sid, client), KeygenP2(sid, custodian)])  # type: ignore[return-value]


def ecdsa_sign_128(precomputed: C3Precomputation | None = None) -> Any:
    p1, p2 = key_pair_128()
    sid = secrets.token_bytes(32)
    return run([SignP1(sid, p1, DIGEST), SignP2(sid, p2, DIGEST, precomputed=precomputed)])


_FROST_SHARES: list[Any] = []


def frost_round_trip() -> Any:
    if not _FROST_SHARES:
        _FROST_SHARES.extend(frost.dkg(2, 2))
    client, custodian = _FROST_SHARES
    sid = secrets.token_bytes(32)
    return run([InitiatorSession(sid, client, custodian.identifier, MESSAGE),
                ResponderSession(sid, custodian, client.identifier, MESSAGE)])


def cases(quick: bool) -> list[Case]:
    custodian_setup()
    out: list[Case] = []
    for backend in bigint.available_backends():
        slow = backend == "python"
        out.append(Case(f"ecdsa2p sign end to end, precomputed [{backend}]", _on(backend, ecdsa_sign_precomputed),
                        setup=_on(backend, _precomputation), references=(REF_ENC_DEC, f"ecdsa2p sign end to end [{backend}]"),
                        runs=10 if slow else 60, warmup=2 if slow else WARM_SIGNS))
        out.append(Case(f"ecdsa2p c3 precomputation [{backend}]", _on(backend, _precomputation),
                        references=(REF_ENC_DEC,), runs=10 if slow else 60))
    out.append(Case("frost sign 2-of-2 one round trip", frost_round_trip,
                    references=(REF_NACL, "frost sign 2-of-2 end to end"), runs=500))
    if "gmpy2" in bigint.available_backends():
        out.append(Case("ecdsa2p sign end to end, 128-bit level [gmpy2]", _on("gmpy2", lambda: ecdsa_sign_128()),
                        references=(REF_ENC_DEC, REF_ENC_DEC_3072, "ecdsa2p sign end to end [gmpy2]"), runs=30,
                        warmup=WARM_SIGNS))
        out.append(Case("ecdsa2p sign end to end, precomputed, 128-bit level [gmpy2]", _on("gmpy2", ecdsa_sign_128),
                        setup=_on("gmpy2", lambda: C3Precomputation.for_share(key_pair_128()[1])),
                        references=(REF_ENC_DEC, REF_ENC_DEC_3072, "ecdsa2p sign end to end, precomputed [gmpy2]"),
                        runs=30, warmup=WARM_SIGNS))
    if not quick and "gmpy2" in bigint.available_backends():
        out.append(Case("ecdsa2p client setup generation [gmpy2]", _on("gmpy2", generate_setup),
                        references=(REF_ENC_DEC,), runs=12, warmup=0))
    return out
