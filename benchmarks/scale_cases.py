"""Scale: signing throughput with 1 and 2 worker processes, and memory per session.

Throughput: a pool of worker processes (``multiprocessing``, started once, untimed), each given
the key pair as bytes at start; one timed run signs a fixed batch of digests split evenly over
the workers (2P-ECDSA: both parties of each signature in the same worker; FROST 2-of-2 alike).
The figure is signatures (or jobs) per second over the batch (``extra.per_s``); the ratio of
the 2-worker case to the 1-worker case shows how far signing scales on this 2-core machine.

A calibration pair (a pure-Python loop in 1 and 2 workers) runs beside them: when it does not
scale either, the machine had no second core free during the run (other processes), and the
signing figures say nothing about the library.

Memory: ``tracemalloc`` peak of one whole in-memory keygen or sign (both parties), in KiB
(``extra.peak_kib``): Python-heap allocations only, so gmpy2's own limbs are not counted.
"""

from __future__ import annotations

import multiprocessing
import secrets
import tracemalloc
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from benchmarks.ecdsa2p_cases import DIGEST, custodian_setup, key_pair
from benchmarks.timing import Case, Result
from protocols import ecdsa2p, frost
from protocols.ecdsa2p import P1KeyShare, P2KeyShare

__all__ = ["cases"]

BATCH = 16
_worker_keys: dict[str, Any] = {}


def _init_worker(p1: bytes, p2: bytes, frost_shares: list[bytes]) -> None:
    _worker_keys["ecdsa"] = (P1KeyShare.from_bytes(p1), P2KeyShare.from_bytes(p2))
    _worker_keys["frost"] = [frost.KeyShare.from_bytes(s) for s in frost_shares]


def _sign_many(job: tuple[str, int]) -> int:
    kind, count = job
    if kind == "burn":  # calibration: plain CPU work, no library code
        return sum(i * i for i in range(count * 20_000)) * 0 + count
    for _ in range(count):
        digest = secrets.token_bytes(32)
        if kind == "ecdsa":
            p1, p2 = _worker_keys["ecdsa"]
            ecdsa2p.sign(p1, p2, digest)
        else:
            frost.sign(_worker_keys["frost"], digest)
    return count


@lru_cache(maxsize=1)
def _frost_shares() -> tuple[frost.KeyShare, ...]:
    return tuple(frost.dkg(2, 2))


@lru_cache(maxsize=2)
def _pool(workers: int) -> Any:
    p1, p2 = key_pair()
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return context.Pool(workers, _init_worker, (p1.to_bytes(), p2.to_bytes(), [s.to_bytes() for s in _frost_shares()]))


def _throughput(kind: str, workers: int, batch: int) -> Callable[[], int]:
    def run() -> int:
        return sum(_pool(workers).map(_sign_many, [(kind, batch // workers)] * workers))

    return run


def _per_second(result: Result, returned: list[Any]) -> dict[str, float]:
    return {"per_s": returned[0] / (result.median_ms / 1000.0)}


def _peak(fn: Callable[[], Any]) -> Callable[[], int]:
    def run() -> int:
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    return run


def _peak_kib(result: Result, returned: list[Any]) -> dict[str, float]:
    return {"peak_kib": max(returned) / 1024.0}


def cases(quick: bool) -> list[Case]:
    custodian_setup()
    batch = 4 if quick else BATCH
    out = []
    # The calibration pair shows how much parallelism the machine gives right now (another
    # process on a core makes 2 workers no faster, whatever the library does).
    for kind, label in (("burn", "calibration (pure-Python loop)"), ("ecdsa", "ecdsa2p sign"),
                        ("frost", "frost sign 2-of-2")):
        scale = 1 if kind == "ecdsa" else 8
        unit = "jobs" if kind == "burn" else "signatures"
        one = f"throughput {label}, 1 worker ({batch * scale} {unit})"
        for workers in (1, 2):
            name = one if workers == 1 else f"throughput {label}, 2 workers ({batch * scale} {unit})"
            out.append(Case(name, _throughput(kind, workers, batch * scale), references=() if workers == 1 else (one,),
                            runs=5, warmup=1, extra=_per_second))
    frost_shares = list(_frost_shares())
    out += [
        Case("memory ecdsa2p keygen (tracemalloc peak)", _peak(lambda: ecdsa2p.keygen(custodian_setup())),
             runs=3, warmup=0, extra=_peak_kib),
        Case("memory ecdsa2p sign (tracemalloc peak)", _peak(lambda: ecdsa2p.sign(*key_pair(), DIGEST)),
             runs=5, warmup=1, extra=_peak_kib),
        Case("memory frost dkg 2-of-2 (tracemalloc peak)", _peak(lambda: frost.dkg(2, 2)), runs=5, warmup=1,
             extra=_peak_kib),
        Case("memory frost sign 2-of-2 (tracemalloc peak)", _peak(lambda: frost.sign(frost_shares, DIGEST)),
             runs=5, warmup=1, extra=_peak_kib),
    ]
    return out
