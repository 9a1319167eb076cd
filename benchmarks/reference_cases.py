"""Reference cases: single-key signing with python-ecdsa and PyNaCl, raw point operations.

secp256k1 point operations are measured on every available backend (coincurve and
python-ecdsa); the one the library uses (``curves.secp256k1.BACKEND``) is marked "active".
"""

from __future__ import annotations

import hashlib
import secrets

import ecdsa
import nacl.signing

from benchmarks.timing import Case
from curves import Group, ed25519
from curves.secp256k1 import BACKEND, backend_groups

REF_ECDSA = "ref/python-ecdsa sign secp256k1"
REF_NACL = "ref/pynacl sign ed25519"


def _label(group: Group) -> str:
    backend = getattr(group, "backend", None)
    if backend is None:
        return group.name
    return f"{group.name} ({backend}{', active' if backend == BACKEND else ''})"


def point_cases(group: Group, ref: str) -> list[Case]:
    """Base and variable-base multiplication, addition with encoding, strict decoding."""
    point = group.base_mul(group.random_scalar())
    other = group.base_mul(group.random_scalar())
    k = group.random_scalar()
    encoded = point.to_bytes()
    label = _label(group)
    refs = (ref,)
    return [
        Case(f"curves/{label} base_mul", lambda: group.base_mul(k), references=refs, runs=200),
        Case(f"curves/{label} mul", lambda: point * k, references=refs, runs=200),
        Case(f"curves/{label} add+encode", lambda: (point + other).to_bytes(), references=refs, runs=500),
        Case(f"curves/{label} decode", lambda: group.decode_point(encoded), references=refs, runs=500),
    ]


def cases(quick: bool) -> list[Case]:
    ecdsa_key = ecdsa.SigningKey.generate(curve=ecdsa.SECP256k1, hashfunc=hashlib.sha256)
    nacl_key = nacl.signing.SigningKey.generate()
    digest = secrets.token_bytes(32)
    out = [
        Case(REF_ECDSA, lambda: ecdsa_key.sign_digest(digest), runs=200),
        Case(REF_NACL, lambda: nacl_key.sign(digest), runs=2000),
    ]
    secp_groups = sorted(backend_groups().values(), key=lambda g: g.backend != BACKEND)
    for group in secp_groups:
        out += point_cases(group, REF_ECDSA)
    out += point_cases(ed25519, REF_NACL)
    return out
