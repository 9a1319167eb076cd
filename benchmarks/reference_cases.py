"""Reference cases: single-key signing with python-ecdsa and PyNaCl, raw point operations."""

from __future__ import annotations

import hashlib
import secrets

import ecdsa
import nacl.signing

from benchmarks.timing import Case
from curves import ed25519, secp256k1

REF_ECDSA = "ref/python-ecdsa sign secp256k1"
REF_NACL = "ref/pynacl sign ed25519"


def cases(quick: bool) -> list[Case]:
    ecdsa_key = ecdsa.SigningKey.generate(curve=ecdsa.SECP256k1, hashfunc=hashlib.sha256)
    nacl_key = nacl.signing.SigningKey.generate()
    digest = secrets.token_bytes(32)
    out = [
        Case(REF_ECDSA, lambda: ecdsa_key.sign_digest(digest), runs=200),
        Case(REF_NACL, lambda: nacl_key.sign(digest), runs=2000),
    ]
    for group, ref in ((secp256k1, REF_ECDSA), (ed25519, REF_NACL)):
        point = group.base_mul(group.random_scalar())
        other = group.base_mul(group.random_scalar())
        k = group.random_scalar()
        encoded = point.to_bytes()
        out += [
            Case(f"curves/{group.name} base_mul", lambda g=group: g.base_mul(k), references=(ref,), runs=200),
            Case(f"curves/{group.name} mul", lambda p=point: p * k, references=(ref,), runs=200),
            Case(f"curves/{group.name} add+encode", lambda p=point, o=other: (p + o).to_bytes(),
                 references=(ref,), runs=500),
            Case(f"curves/{group.name} decode", lambda g=group, e=encoded: g.decode_point(e),
                 references=(ref,), runs=500),
        ]
    return out
