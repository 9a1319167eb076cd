"""Paillier primitives and the CGGMP proofs, on the gmpy2 and pure-Python paths, next to `phe`.

`phe` (python-paillier, GPLv3) is imported here only, as a reference; library code never uses it.
Keys are generated once, lazily (the first, untimed warm-up run of a case pays for it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from benchmarks.timing import Case
from curves import secp256k1
from protocols import bigint, paillier
from protocols.ring_pedersen import generate_ring_pedersen
from protocols.transcript import Transcript
from protocols.zk import fac, logstar, mod, prm

REF_KEYGEN = "ref/phe keygen 2048"
REF_ENCRYPT = "ref/phe encrypt 2048"
REF_DECRYPT = "ref/phe decrypt 2048"
REF_ADD = "ref/phe add 2048"
REF_MUL = "ref/phe scalar mul 2048"
REF_ENC_DEC_3072 = "ref/phe encrypt+decrypt 3072"  # the 128-bit level's reference (3072-bit N)


@lru_cache(maxsize=1)
def _material() -> dict[str, Any]:
    pk, sk = paillier.keygen()
    params, secret = generate_ring_pedersen()
    x = secp256k1.random_scalar()
    c, rho = paillier.encrypt(pk, x)
    return {"pk": pk, "sk": sk, "params": params, "secret": secret, "x": x, "X": secp256k1.base_mul(x),
            "c": c, "rho": rho, "c2": paillier.encrypt(pk, 12345)[0], "k": secp256k1.random_scalar()}


def _transcript() -> Transcript:
    return Transcript.for_context("bench", protocol="ecdsa2p/keygen", session_id=bytes(32), round=3, parties=[1, 2])


def _on(backend: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        previous = bigint.BACKEND
        bigint.use_backend(backend)
        try:
            return fn()
        finally:
            bigint.use_backend(previous)

    return run


def _primitive_ops() -> dict[str, tuple[Callable[[], Any], tuple[str, ...], int]]:
    m = _material
    return {
        "keygen 2048": (lambda: paillier.keygen(), (REF_KEYGEN,), 10),
        "encrypt 2048": (lambda: paillier.encrypt(m()["pk"], m()["x"]), (REF_ENCRYPT,), 60),
        "encrypt by key owner (CRT) 2048": (lambda: m()["sk"].encrypt(m()["x"]), (REF_ENCRYPT,), 60),
        "decrypt 2048": (lambda: paillier.decrypt(m()["sk"], m()["c"]), (REF_DECRYPT,), 60),
        "add 2048": (lambda: paillier.add(m()["pk"], m()["c"], m()["c2"]), (REF_ADD,), 300),
        "scalar mul 2048": (lambda: paillier.mul(m()["pk"], m()["c"], m()["k"]), (REF_MUL,), 60),
    }


def _proof_ops() -> dict[str, Callable[[], Any]]:
    m = _material
    proofs: dict[str, Any] = {}

    def proof(name: str, make: Callable[[], Any]) -> Any:
        if name not in proofs:
            proofs[name] = make()
        return proofs[name]

    def mod_prove() -> Any:
        return mod.prove(m()["pk"].n, m()["sk"].p, m()["sk"].q, _transcript())

    def fac_prove() -> Any:
        return fac.prove(m()["pk"].n, m()["sk"].p, m()["sk"].q, m()["params"], _transcript())

    def prm_prove() -> Any:
        return prm.prove(m()["params"], m()["secret"], _transcript())

    def logstar_prove() -> Any:
        return logstar.prove(m()["pk"], m()["params"], m()["c"], m()["X"], m()["x"], m()["rho"], _transcript())

    return {
        "zk/mod prove": mod_prove,
        "zk/mod verify": lambda: mod.verify(m()["pk"].n, proof("mod", mod_prove), _transcript()),
        "zk/fac prove": fac_prove,
        "zk/fac verify": lambda: fac.verify(m()["pk"].n, m()["params"], proof("fac", fac_prove), _transcript()),
        "zk/prm prove": prm_prove,
        "zk/prm verify": lambda: prm.verify(m()["params"], proof("prm", prm_prove), _transcript()),
        "zk/logstar prove": logstar_prove,
        "zk/logstar verify": lambda: logstar.verify(
            m()["pk"], m()["params"], m()["c"], m()["X"], proof("logstar", logstar_prove), _transcript()
        ),
    }


@lru_cache(maxsize=1)
def _phe_3072() -> tuple[Any, Any]:
    """A `phe` key pair over the 3072-bit test primes (``tests.fixtures.keys_3072``: no keygen)."""
    from phe import paillier as phe_paillier

    from tests.fixtures import keys_3072

    key = keys_3072()[0][0]
    pub = phe_paillier.PaillierPublicKey(int(key.p) * int(key.q))
    return pub, phe_paillier.PaillierPrivateKey(pub, int(key.p), int(key.q))


def phe_enc_dec_3072() -> Any:
    """One `phe` 3072-bit encryption of a 256-bit value and its decryption."""
    pub, priv = _phe_3072()
    return priv.decrypt(pub.encrypt(secp256k1.random_scalar()))


def _reference_cases() -> list[Case]:
    try:
        from phe import paillier as phe_paillier
    except ImportError:
        return []
    pub, priv = phe_paillier.generate_paillier_keypair(n_length=2048)
    x = secp256k1.random_scalar()
    enc, enc2 = pub.encrypt(x), pub.encrypt(12345)
    return [
        Case(REF_KEYGEN, lambda: phe_paillier.generate_paillier_keypair(n_length=2048), runs=10, warmup=1),
        Case(REF_ENCRYPT, lambda: pub.encrypt(x), runs=60),
        Case(REF_DECRYPT, lambda: priv.decrypt(enc), runs=60),
        Case(REF_ADD, lambda: enc + enc2, runs=300),
        Case(REF_MUL, lambda: enc * x, runs=60),
        Case(REF_ENC_DEC_3072, phe_enc_dec_3072, runs=30),
    ]


def cases(quick: bool) -> list[Case]:
    out = _reference_cases()
    references = tuple(c.name for c in out)
    for backend in bigint.available_backends():
        slow = backend == "python"
        for name, (fn, refs, runs) in _primitive_ops().items():
            runs = max(5, runs // 6) if slow else runs
            out.append(Case(f"paillier {name} [{backend}]", _on(backend, fn),
                            references=tuple(r for r in refs if r in references), runs=runs))
        for name, fn in _proof_ops().items():
            out.append(Case(f"{name} 2048 [{backend}]", _on(backend, fn), runs=5 if slow else 20, warmup=1))
    return out
