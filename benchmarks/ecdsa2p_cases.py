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
from curves import secp256k1
from protocols import bigint, ecdsa2p, paillier
from protocols.ecdsa2p import CLIENT, CUSTODIAN, C3Precomputation, KeygenP1, KeygenP2, SignP1, SignP2
from protocols.ecdsa2p.setup import CustodianSetup, setup_from_ring_pedersen
from protocols.rounds import Message, Session
from protocols.zk import c3
from tests.fixtures import bigint_backend, ring_pedersen_sets

REF_ENC_DEC = "ref/phe encrypt+decrypt 2048"
DIGEST = bytes(range(32))
# Warm-up signs: the prover's tables are made once they pay (``c3.PROVER_TABLES``: t's after six
# signs, s's after eleven, c_key''s after nineteen) and the client's from its 8th verification,
# widened from its 24th (``c3.OWNER_WIDE_TABLES_AFTER``), so the steady state of a client that
# signs often starts after 24.
WARM_SIGNS = 24

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


def _gmp_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` on the gmpy2 path with every exponentiation by GMP (``bigint.use_accelerator(None)``):
    the sign as before libcrypto took the long exponentiations (issue 30, round three)."""
    def timed(*args: Any) -> Any:
        before = bigint.ACCELERATOR
        with bigint_backend("gmpy2"):
            bigint.use_accelerator(None)
            try:
                return fn(*args)
            finally:
                bigint.use_accelerator(before)

    return timed


def sign_sessions() -> dict[int, Session]:
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return {CLIENT: SignP1(sid, p1, DIGEST), CUSTODIAN: SignP2(sid, p2, DIGEST)}


def precomputed_sign_sessions() -> dict[int, Session]:
    """A signing pair whose custodian holds a precomputation (made here, untimed)."""
    p1, p2 = key_pair()
    sid = secrets.token_bytes(32)
    return {CLIENT: SignP1(sid, p1, DIGEST),
            CUSTODIAN: SignP2(sid, p2, DIGEST, precomputed=C3Precomputation.for_share(p2))}


ROUND4_STEPS = (
    "Paillier nonce ρ and ρ^N mod N² (one of two)",
    "t-halves t^μ_i, t^γ_i by the t table (six)",
    "t-halves by plain powmod (six, before issue 30)",
    "α_i, A_i = s^α_i·t^γ_i and W3 = s^ρ·t^μ3 (four s-table pows)",
    "W1, W2 s-halves s^w_i (two s-table pows)",
    "c3 = (r·w1) ⊙ c_key' ⊕ Enc(…; ρ) (c_key' table)",
    "C' (c_key' table, r·α1)",
    "z_enc = β·ρ^e mod N",
    "Y1, Y2 and the witness check (four secp256k1 multiplications)",
)


@lru_cache(maxsize=1)
def _round4_material() -> dict[str, Callable[[], Any]]:
    """The custodian's round-4 work (``ecdsa2p.sign.prove_c3``) step by step, on the benchmark
    share, keyed by ``ROUND4_STEPS``: what each costs against the `phe` floor (issue 30 profile)."""
    share = key_pair()[1]
    pk, params, c_key = share.paillier, share.client_params, share.c_key
    if pk is None or params is None or c_key is None:
        raise RuntimeError("the benchmark share cannot sign")
    r, m = secp256k1.random_scalar(), int.from_bytes(DIGEST, "big")
    w = (secp256k1.random_scalar(), secp256k1.random_scalar(), bigint.random_bits(c3.DEFAULT_BOUNDS.mask_bits))
    masks, nonce, alpha = c3.PedersenMasks.fresh(params), c3.C3Randomness.fresh(pk), c3.draw_alpha()
    r2, e = secp256k1.generator() * r, bigint.random_bits(128)
    steps: list[Callable[[], Any]] = [
        lambda: c3.C3Randomness.fresh(pk),
        lambda: c3.PedersenMasks.fresh(params),
        lambda: [bigint.powmod(params.t, x, params.n_hat) for x in (*masks.mu, *masks.gamma)],
        lambda: masks.made_ahead(params),
        lambda: [c3.s_table(params).pow(w_i) * t_i % params.n_hat for w_i, t_i in zip(w[:2], masks.t_mu)],
        lambda: c3.form_c3(pk, c_key, r, m, w, nonce),
        lambda: c3.form_c3(pk, c_key, r, m, alpha, nonce),
        lambda: nonce.nonce * bigint.powmod(nonce.nonce, e, pk.n) % pk.n,
        lambda: [r2 * k for k in (alpha[0], alpha[1], w[0], w[1])],
    ]
    return dict(zip(ROUND4_STEPS, steps))


def _round4_step(name: str) -> Callable[[], Any]:
    return lambda: _round4_material()[name]()


_WARM_TABLES = c3.PROVER_TABLES


def _first_sign() -> None:
    """Untimed: empty prover tables (a new cache) and the client's verifier tables forgotten, as
    for a client's first sign in a process on both sides."""
    c3.PROVER_TABLES = bigint.FixedBaseCache(48, max_bytes=c3.PROVER_TABLE_BYTES)
    c3.forget_owner_tables()


def _build_tables() -> Any:
    """The three tables a client's signs make once they pay (``c3.PROVER_TABLES``): s, t, c_key'."""
    share = key_pair()[1]
    if share.paillier is None or share.client_params is None or share.c_key is None:
        raise RuntimeError("the benchmark share cannot sign")
    params, bounds = share.client_params, c3.DEFAULT_BOUNDS
    shifted = paillier.add_plain(share.paillier, share.c_key, bounds.shift)
    t_bits = params.n_hat.bit_length() + bounds.challenge_bits + 2 * bounds.statistical_bits
    return (bigint.FixedBase(params.s, params.n_hat, max(bounds.alpha_bits), c3.S_WINDOW),
            bigint.FixedBase(params.t, params.n_hat, t_bits, c3.T_WINDOW),
            bigint.FixedBase(shifted, share.paillier.n_squared, bounds.q_bits + bounds.alpha_bits[0], c3.C_KEY_WINDOW))


def _sign_then_rewarm(_: None) -> Any:
    """The timed sign, then the process's warm tables back (an assignment) for the other cases."""
    try:
        return ecdsa2p.sign(*key_pair(), DIGEST)
    finally:
        c3.PROVER_TABLES = _WARM_TABLES


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
                        references=refs, runs=10 if slow else 100, warmup=2 if slow else WARM_SIGNS))
        for party, incoming, label in SIGN_STAGES:
            who = "P1 (client)" if party == CLIENT else "P2 (custodian)"
            out.append(Case(f"ecdsa2p sign {who} {label} [{backend}]", _on(backend, _party_work),
                            setup=_prepare(sign_sessions, party, incoming), references=(REF_ENC_DEC,),
                            runs=10 if slow else 100))
        if not slow:
            out.append(Case(f"ecdsa2p sign P2 (custodian) round 4 (verify R1, c3), precomputed [{backend}]",
                            _on(backend, _party_work), setup=_prepare(precomputed_sign_sessions, CUSTODIAN, 3),
                            references=(REF_ENC_DEC,), runs=60))
            for step in ROUND4_STEPS:
                out.append(Case(f"ecdsa2p round-4 step: {step} [{backend}]", _on(backend, _round4_step(step)),
                                references=(REF_ENC_DEC,), runs=40))
            if bigint.ACCELERATOR is not None:
                out.append(Case(f"ecdsa2p sign end to end, GMP only (no libcrypto) [{backend}]",
                                _gmp_only(lambda: ecdsa2p.sign(*key_pair(), DIGEST)),
                                references=(REF_ENC_DEC, f"ecdsa2p sign end to end [{backend}]"), runs=60,
                                warmup=WARM_SIGNS))
            sign = _on(backend, _sign_then_rewarm)
            warm = (REF_ENC_DEC, f"ecdsa2p sign end to end [{backend}]")
            out.append(Case(f"ecdsa2p sign end to end, a client's first in the process (no table) [{backend}]", sign,
                            setup=_first_sign, references=warm, runs=10, warmup=1))
            out.append(Case(f"ecdsa2p prover tables built (s, t, c_key'), once per client and process [{backend}]",
                            _on(backend, _build_tables), references=(REF_ENC_DEC,), runs=6, warmup=0))
            for party, incoming, label in KEYGEN_STAGES:
                who = "P1 (client)" if party == CLIENT else "P2 (custodian)"
                out.append(Case(f"ecdsa2p keygen {who} {label} [{backend}]", _on(backend, _party_work),
                                setup=_prepare(keygen_sessions, party, incoming), references=(REF_KEYGEN,),
                                runs=10, warmup=1))
    return out
