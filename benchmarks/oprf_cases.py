"""OPRF (RFC 9497, P256-SHA256) cases: each step of the base mode and the VOPRF proof, and the
raw P-256 point operations, on every P-256 field backend (gmpy2 and pure Python).

Reference: python-ecdsa's secp256k1 signature (one fixed-base multiplication in pure Python),
the same reference as the other curve cases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.reference_cases import REF_ECDSA, point_cases
from benchmarks.timing import Case
from curves import p256 as p256_module
from curves.p256 import p256
from protocols import oprf

PASSWORD = b"correct horse battery staple"


def _on(backend: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with the P-256 field on ``backend`` (switched per call: cases are interleaved)."""

    def run() -> Any:
        with p256_module.using_backend(backend):
            return fn()

    return run


def _oprf_cases(backend: str) -> list[Case]:
    key, public = oprf.generate_key_pair()
    blind_scalar, blinded = oprf.blind(PASSWORD)
    evaluated = oprf.blind_evaluate(key, blinded)
    v_blind, v_blinded = oprf.blind(PASSWORD, oprf.MODE_VOPRF)
    v_evaluated, proof = oprf.voprf_blind_evaluate(key, v_blinded)
    refs = (REF_ECDSA,)
    steps: list[tuple[str, Callable[[], Any], int]] = [
        ("blind (client)", lambda: oprf.blind(PASSWORD), 100),
        ("blind_evaluate (server)", lambda: oprf.blind_evaluate(key, blinded), 100),
        ("finalize (client)", lambda: oprf.finalize(PASSWORD, blind_scalar, evaluated), 100),
        ("evaluate (server, full)", lambda: oprf.evaluate(key, PASSWORD), 100),
        ("voprf blind_evaluate + proof", lambda: oprf.voprf_blind_evaluate(key, v_blinded), 40),
        ("voprf finalize + verify",
         lambda: oprf.voprf_finalize(PASSWORD, v_blind, v_evaluated, v_blinded, public, proof), 40),
    ]
    return [Case(f"oprf P256-SHA256 {label} [{backend}]", _on(backend, fn), references=refs, runs=runs)
            for label, fn, runs in steps]


def cases(quick: bool) -> list[Case]:
    out: list[Case] = []
    for backend in p256_module.available_backends():
        with p256_module.using_backend(backend):
            out += [Case(f"{c.name} [{backend}]", _on(backend, c.fn), references=c.references, runs=c.runs)
                    for c in point_cases(p256, REF_ECDSA)]
            out += _oprf_cases(backend)
    return out
