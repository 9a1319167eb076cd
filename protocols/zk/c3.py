"""Π_c3: the custodian's c3 in two-party ECDSA signing was formed as the protocol says.

The statement and the shape of the proof are those of coinbase/cb-mpc's default two-party
signing (``zk_ecdsa_sign_2pc_integer_commit_t`` in ``ecdsa_2p.cpp``); the analysis follows
CGGMP's Π_aff-g (ePrint 2021/060, older revisions §6.2 Fig. 15, revision 2024-10-21 Fig. 25):
a Σ-protocol over the integers, made sound by ring-Pedersen commitments under parameters the
*verifier* owns, with Fiat-Shamir.

**Statement.** Public: P1's Paillier key N and c_key (an encryption of x1), c3, the digest m,
r, R2, Q2 on a curve of prime order q with base G, and the verifier's ring-Pedersen parameters
(N̂, s, t). With c_key' = c_key ⊕ SHIFT, SHIFT = q·2^(ℓ+ε+1−|q|) (a multiple of q, so it
vanishes mod q, and big enough that the plaintext x1' = x1 + SHIFT of c_key' is non-negative for
every |x1| ≤ 2^(ℓ+ε) that Π_log* admits; cb-mpc shifts by q·2^SEC_P_STAT for the same reason),
the prover knows integers w1, w2, w3 and a unit ρ_enc with

    c3 = (r·w1) ⊙ c_key' ⊕ Enc(w1·m + w2·r + w3·q; ρ_enc),   w1·R2 = G,   w2·R2 = Q2,

and 0 ≤ w1, w2 < 2^|q|, 0 ≤ w3 < 2^``MASK_BITS`` (honest: w1 = k2⁻¹, w2 = k2⁻¹·x2 mod q, w3 = ρ).

**Proof.** W_i = s^w_i·t^μ_i (μ_i < 2^κ·N̂); masks α1, α2 < 2^(|q|+c+κ), α3 < 2^(MASK_BITS+c+κ),
γ_i < 2^(c+2κ)·N̂, β ∈ Z*_N; A_i = s^α_i·t^γ_i, Y1 = α1·R2, Y2 = α2·R2,
C' = (r·α1) ⊙ c_key' ⊕ Enc(α1·m + α2·r + α3·q; β). Challenge e < 2^c from a transcript bound
to the session (id, protocol, round, parties, prover, digest) and to N, (N̂, s, t), c_key, c3,
r, m, R2, Q2 and every commitment. Responses z_i = α_i + e·w_i, ζ_i = γ_i + e·μ_i (integers),
z_enc = β·ρ_enc^e mod N.

**Verification.** W_i, A_i ∈ Z*_N̂; C' a valid ciphertext; z_enc ∈ Z*_N; Y1, Y2 not the
identity; 0 ≤ z1, z2 < 2^(|q|+c+κ+1), 0 ≤ z3 < 2^(MASK_BITS+c+κ+1); and
z1·R2 = Y1 + e·G, z2·R2 = Y2 + e·Q2, s^z_i·t^ζ_i = A_i·W_i^e (mod N̂),
(r·z1) ⊙ c_key' ⊕ Enc(z1·m + z2·r + z3·q; z_enc) = C' ⊕ e·c3. Everything the verifier checks is
public, so the prover can predict the verdict: an accept or a reject tells it nothing about x1
(this is why the check is on ciphertexts and not on decrypted values, although P1 could
decrypt). A verifier that knows the factorisations (P1 knows both N and N̂) reaches the same
verdict by CRT, with its own t and c_key from fixed-base tables and the Paillier equation split
into a half modulo N and a plaintext half (``_check_paillier_crt``), several times faster.

**Completeness.** Honest responses are below 2^(|q|+c+κ) + 2^(c+|q|) < 2^(|q|+c+κ+1) (likewise
for z3), so the range checks never fail an honest proof.

**Zero knowledge** (statistical, 2^-κ per value; the verifier's parameters pass Π_prm, so s
lies in ⟨t⟩ and t^μ_i, t^γ_i hide). z_i = α_i + e·w_i with e·w_i < 2^(c+|q|) (resp.
2^(c+MASK_BITS)) is within 2^-κ of α_i alone; ζ_i likewise with e·μ_i < 2^(c+κ)·N̂ against
γ_i < 2^(c+2κ)·N̂; μ_i < 2^κ·N̂ is within 2^-κ of uniform modulo ord(t) < N̂. A simulator picks
z, ζ, z_enc and e, then solves for A_i, Y_i and C'.

**Soundness** (special soundness under strong RSA on N̂, which the prover did not make). Two
accepting transcripts with e ≠ e' give Δe·w_i = Δz_i over the integers (else the prover breaks
the ring-Pedersen binding: Δe ∤ Δz_i would give a non-trivial root of s), so the extracted
|w1|, |w2| < 2^(|q|+c+κ+1), |w3| < 2^(MASK_BITS+c+κ+1); w1·R2 = G and w2·R2 = Q2 make w1 ≡ k2⁻¹
and w2 ≡ k2⁻¹·x2 (mod q); the Paillier equation gives the plaintext of c3 as
r·w1·x1' + w1·m + w2·r + w3·q modulo N. Error 2^-c per proof.

**Why the plaintext never wraps modulo N** (default level, ℓ = 256, ε = 512, c = κ = 128,
|q| = 256). The verifier's own x1' < 2^(ℓ+ε+2) = 2^770. Extracted witnesses bound the plaintext
by r·|w1|·x1' + |w1|·m + |w2|·r + |w3|·q < 2^(256+513+770) + 2^770 + 2^(1412+256) < 2^1669, far
below N/2 ≥ 2^2046 (``no_wrap_bits`` is checked against |N| before any proof is made or
verified). So P1's signed decryption returns that integer exactly, s' ≡ k2⁻¹·(m + r·x1 + r·x2)
(mod q), and s = k1⁻¹·s' is a valid signature: once the proof verifies, the signature's validity
no longer depends on x1 and the Lindell bit leak (CVE-2023-33242) is gone.

**The mask** (``MASK_BITS``). P1 may be malicious too, with |x1| ≤ 2^(ℓ+ε). The plaintext is
w3·q + X with X = r·w1·x1' + w1·m + w2·r < q²·2^(ℓ+ε+3); w3 uniform below 2^MASK_BITS with
MASK_BITS = |q| + (ℓ+ε+2) + 1 + κ makes w3·q + X within 2^-κ of w3'·q + (X mod q), which a
simulator knowing only s·k1 = X mod q produces.

**The Paillier nonces stay uniform units** (ρ_enc and β: ``C3Randomness.fresh``, one ρ^N mod N²
each). They hide more than the plaintext: P1 decrypts c3 and, knowing the factorisation, takes
the N-th root of its randomness, u = ρ_key^(r·w1)·ρ_enc mod N, where ρ_key is c_key's nonce
(P1's own). Only a ρ_enc uniform in Z*_N makes u independent of w1 = k2⁻¹; likewise β for
z_enc = β·ρ_enc^e and C'. A nonce from one public base, ρ_enc = x^a (the "short exponent"
variant of Damgård–Jurik–Nielsen, which makes ρ^N = (x^N)^a a fixed-base power), stays in the
cyclic subgroup ⟨x⟩ while Z*_N is not cyclic: any character χ of Z*_N with χ(x) = 1 gives
χ(u) = χ(ρ_key)^(r·w1). With x = −y² (Jacobi symbol +1) the Jacobi symbol of c3 mod N, which
anyone can compute, is (c_key | N)^(r·w1): the parity of r·w1 for half of all keys; with a base
of symbol −1 the key owner's Legendre symbols still give it; and a client whose p − 1 and q − 1
share a large smooth factor M reads r·w1 mod M, i.e. k2⁻¹ and then the key, from one signature.
DJN's short-exponent assumption protects against parties who do *not* know the factorisation;
here the key owner is the adversary (tests/protocols/zk/test_c3_prover.py checks the symbols).
So the two N-th powers are the prover's floor unless they are made ahead (``mpc.presign``).

**The prover's arithmetic** (same values as the formulas above, property-tested against plain
``pow``): every base it raises repeatedly has a fixed-base table, made once the base's plain
powers in the process have cost as much (``prover_table``, ``bigint.FixedBaseCache``, public
values only): the verifier's s (``s_table``) and t (``t_table``,
so the six t-halves t^μ_i, t^γ_i are table powers) per client, and c_key' (``c_key_table``)
per share, for both scalings (r·w1 in c3, r·α1 in C'). Enc(plain; ρ) = (1 + plain·N)·ρ^N needs
no exponentiation beyond ρ^N. A precomputation (``PedersenMasks.fresh(..., ahead=True)``) also
makes α_i with A_i and the third witness w3 with W3 ahead (:class:`MadeAhead`): they depend on
neither the digest nor k2, so the online proof is W1, W2, c3, C', z_enc and the curve work.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
import threading
import weakref
from functools import partial
from typing import Any

from curves import Point, secp256k1
from protocols import bigint, paillier
from protocols.encoding import get_list, get_nat, get_point, require_keys
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.paillier import PaillierPublicKey, PaillierSecretKey
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret
from protocols.transcript import Transcript
from protocols.zk.fields import encode_nats, get_unit, get_units, require_units
from protocols.zk.params import ELL, EPSILON

__all__ = [
    "C3Bounds",
    "C3Statement",
    "C3Proof",
    "C3Randomness",
    "PedersenMasks",
    "MadeAhead",
    "draw_alpha",
    "prover_table",
    "PROVER_TABLES",
    "PROVER_TABLE_BYTES",
    "FIRST_WINDOW",
    "c_key_table",
    "s_table",
    "t_table",
    "DEFAULT_BOUNDS",
    "form_c3",
    "prove",
    "verify",
]

_LABEL = "zk/c3/v1"


@dataclass(frozen=True)
class C3Bounds:
    """The proof's size parameters for one curve order ``q`` (see the module docstring)."""

    q: int
    ell: int = ELL
    epsilon: int = EPSILON
    challenge_bits: int = 128  # c: soundness error 2^-c per proof
    statistical_bits: int = 128  # κ: statistical distance of every masked value

    @property
    def q_bits(self) -> int:
        """The bit length of the curve order q."""
        return self.q.bit_length()

    @property
    def shift(self) -> int:
        """SHIFT = q·2^(ℓ+ε+1−|q|) ≥ 2^(ℓ+ε): makes the plaintext of c_key' non-negative."""
        return self.q << (self.ell + self.epsilon + 1 - self.q_bits)

    @property
    def x1_bits(self) -> int:
        """x1' = x1 + SHIFT < 2^(ℓ+ε+2) for every |x1| ≤ 2^(ℓ+ε)."""
        return self.ell + self.epsilon + 2

    @property
    def mask_bits(self) -> int:
        """The signing mask w3 = ρ is uniform below 2^mask_bits."""
        return self.q_bits + self.x1_bits + 1 + self.statistical_bits

    @property
    def alpha_bits(self) -> tuple[int, int, int]:
        """The masks α1, α2, α3 are uniform below 2^alpha_bits[i]."""
        slack = self.challenge_bits + self.statistical_bits
        return (self.q_bits + slack, self.q_bits + slack, self.mask_bits + slack)

    @property
    def response_bits(self) -> tuple[int, int, int]:
        """The verifier accepts 0 ≤ z_i < 2^response_bits[i]."""
        return tuple(bits + 1 for bits in self.alpha_bits)  # type: ignore[return-value]

    @property
    def no_wrap_bits(self) -> int:
        """A bound on the bit length of |plaintext of c3| for every witness the proof admits."""
        z1, _, z3 = self.response_bits
        return max(self.q_bits + z1 + self.x1_bits, z3 + self.q_bits) + 2

    def check_modulus(self, n: int) -> None:
        """Refuse a Paillier modulus too short for the no-wrap argument (|N| > no_wrap_bits + 1)."""
        if n.bit_length() < self.no_wrap_bits + 2:
            raise UsageError("Paillier modulus too short for the c3 proof's ranges")


DEFAULT_BOUNDS = C3Bounds(secp256k1.order)


@dataclass(frozen=True)
class C3Statement:
    """What the proof is about; P1 builds it from its own share and the session, P2 likewise."""

    pk: PaillierPublicKey
    params: RingPedersenParams  # the verifier's (P1's) ring-Pedersen parameters
    c_key: int
    c3: int
    r: int
    m: int
    r2: Point
    q2: Point


@dataclass(frozen=True, repr=False)
class C3Randomness:
    """A Paillier nonce ρ with ρ^N mod N² computed ahead (custodian-side precomputation)."""

    nonce: int
    power: int  # nonce^N mod N²
    modulus: int  # N

    @classmethod
    def fresh(cls, pk: PaillierPublicKey) -> C3Randomness:
        """A fresh Paillier nonce for ``pk`` with its N-th power (the costly part)."""
        nonce = bigint.random_unit(pk.n)
        return cls(nonce, bigint.powmod(nonce, pk.n, pk.n_squared), pk.n)

    def __repr__(self) -> str:
        return "C3Randomness(<secret>)"


@dataclass(frozen=True)
class C3Proof:
    """A Π_c3 proof: commitments W, A, Y1, Y2, C and responses z, ζ, z_enc (statement above;
    analysis after CGGMP's Π_aff-g, rev. 2024-10-21 Fig. 25).
    """

    W: tuple[int, int, int]  # s^w_i·t^μ_i mod N̂
    A: tuple[int, int, int]  # s^α_i·t^γ_i mod N̂
    Y1: Point  # α1·R2
    Y2: Point  # α2·R2
    C: int  # C' = (r·α1) ⊙ c_key' ⊕ Enc(α1·m + α2·r + α3·q; β)
    z: tuple[int, int, int]  # α_i + e·w_i
    zeta: tuple[int, int, int]  # γ_i + e·μ_i
    z_enc: int  # β·ρ_enc^e mod N

    def to_payload(self) -> dict[str, Any]:
        """Integers as minimal hex (lists for the three-element fields), points encoded."""
        return {
            "W": encode_nats(self.W),
            "A": encode_nats(self.A),
            "Y1": self.Y1.to_bytes().hex(),
            "Y2": self.Y2.to_bytes().hex(),
            "C": paillier.encode_ciphertext(self.C),
            "z": encode_nats(self.z),
            "zeta": encode_nats(self.zeta),
            "z_enc": paillier.encode_ciphertext(self.z_enc),
        }

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], statement: C3Statement, bounds: C3Bounds = DEFAULT_BOUNDS
    ) -> C3Proof:
        """Strict decoding against the statement: units, ranges, points (``InvalidMessage``)."""
        require_keys(payload, ("W", "A", "Y1", "Y2", "C", "z", "zeta", "z_enc"))
        n_hat, group = statement.params.n_hat, statement.r2.group
        z = _get_nats(payload, "z", bounds.response_bits)
        zeta_bits = n_hat.bit_length() + bounds.challenge_bits + 2 * bounds.statistical_bits + 1
        zeta = _get_nats(payload, "zeta", (zeta_bits,) * 3)
        return cls(
            W=get_units(payload, "W", n_hat, 3),  # type: ignore[arg-type]
            A=get_units(payload, "A", n_hat, 3),  # type: ignore[arg-type]
            Y1=get_point(payload, "Y1", group),
            Y2=get_point(payload, "Y2", group),
            C=paillier.decode_ciphertext(payload, "C", statement.pk),
            z=z,  # type: ignore[arg-type]
            zeta=zeta,  # type: ignore[arg-type]
            z_enc=get_unit(payload, "z_enc", statement.pk.n),
        )


def _get_nats(payload: Mapping[str, Any], key: str, bits: tuple[int, ...]) -> tuple[int, ...]:
    items = get_list(payload, key, len(bits))
    values = []
    for i, (item, limit) in enumerate(zip(items, bits)):
        value = get_nat({key: item}, key, limit)
        if value >= 1 << limit:
            raise InvalidMessage(f"{key}[{i}] out of range")
        values.append(value)
    return tuple(values)


def form_c3(
    statement_pk: PaillierPublicKey,
    c_key: int,
    r: int,
    m: int,
    w: tuple[int, int, int],
    randomness: C3Randomness,
    bounds: C3Bounds = DEFAULT_BOUNDS,
) -> int:
    """(r·w1) ⊙ c_key' ⊕ Enc(w1·m + w2·r + w3·q; ρ): both c3 and the proof's C' are of this form."""
    pk = statement_pk
    n2 = pk.n_squared
    w1, w2, w3 = w
    plain = 1 + ((w1 * m + w2 * r + w3 * bounds.q) % pk.n) * pk.n
    scaled = c_key_table(pk, c_key, bounds).pow(r * w1)
    return bigint.mulmod(bigint.mulmod(scaled, plain, n2), randomness.power, n2)


def c_key_table(
    pk: PaillierPublicKey, c_key: int, bounds: C3Bounds = DEFAULT_BOUNDS
) -> bigint.FixedBase | bigint.PlainBase | bigint.RentedBase:
    """The table of c_key' = c_key ⊕ SHIFT modulo N² for the exponents r·w1 and r·α1 (online work
    in a precomputed sign: the wider window of ``C_KEY_WINDOW``)."""
    shifted = paillier.add_plain(pk, c_key, bounds.shift)
    return prover_table(shifted, pk.n_squared, bounds.q_bits + bounds.alpha_bits[0], C_KEY_WINDOW)


# The prover's tables' windows (w-bit digits, 2^w residues per digit; sizes at the default level,
# 2048-bit N and N̂). A table walk is one modular multiplication per digit, so a wider window
# trades memory for fewer multiplications; w = 8 also takes the digits from the exponent's bytes
# (no shifts, ``bigint.FixedBase``). Per sign, against the windows of round one (t 5, s 4, c_key'
# 6): about 2.5 ms less for ~29 MB more per client (benchmarks/README, round two, 2026-12-07).
C_KEY_WINDOW = 8  # c_key' modulo N², two powers per sign (r·w1, r·α1) of 769 bits: 8.4 MB per share
T_WINDOW = 8  # t modulo N̂, six powers per sign of 2176-2432 bits (μ_i, γ_i): 19.9 MB per client
S_WINDOW = 8  # s modulo N̂, six powers per sign of 256-1411 bits (w_i, α_i): 11.6 MB per client
FIRST_WINDOW = 5  # each base's first table, made at a fifth of the 8-bit table's rent (t's after two
# signs, not six) and used until the 8-bit one is made (``bigint.FixedBaseCache(first_window=)``):
# a client that signs a few times in a process gets a table early, a frequent signer the wide one


PROVER_TABLE_BYTES = 256 << 20
"""The memory the prover's tables may take in one process (``PROVER_TABLES``), 256 MiB: about six
clients' tables at the default level, three at the 128-bit level. A process serving more frequent
signers than that keeps the most recently used; the others sign by plain powers until their
tables pay again. Set ``c3.PROVER_TABLES`` to a cache of another size to change it."""

PROVER_TABLES = bigint.FixedBaseCache(48, max_bytes=PROVER_TABLE_BYTES)
"""The prover's tables (public values only), three per client (about 11.6 MB for s, 19.9 MB for
t, 8.4 MB for c_key' at the default level: ~40 MB per client; ~72 MB per client at the 128-bit
level), at most ``PROVER_TABLE_BYTES`` together; each made once the plain powers of its base
have cost as much as the table (``bigint.FixedBaseCache``: t's after six signs, s's after
eleven, c_key''s after nineteen), and a ``FIRST_WINDOW`` table of each until then, made once its
smaller rent is paid."""


def prover_table(base: int, modulus: int, max_bits: int, window: int = 4) -> bigint.FixedBase | bigint.PlainBase | bigint.RentedBase:
    """The prover's fixed-base table for a base it raises again and again: c_key' (per share),
    P1's s and t (per client); plain ``powmod`` until the table pays (``bigint.FixedBaseCache``)."""
    return PROVER_TABLES.get(base, modulus, max_bits, window, first_window=FIRST_WINDOW)


def t_table(params: RingPedersenParams, bounds: C3Bounds = DEFAULT_BOUNDS) -> bigint.FixedBase | bigint.PlainBase | bigint.RentedBase:
    """The table of the verifier's t for the masks μ_i < 2^κ·N̂ and γ_i < 2^(c+2κ)·N̂."""
    bits = params.n_hat.bit_length() + bounds.challenge_bits + 2 * bounds.statistical_bits
    return prover_table(params.t, params.n_hat, bits, T_WINDOW)


def s_table(params: RingPedersenParams, bounds: C3Bounds = DEFAULT_BOUNDS) -> bigint.FixedBase | bigint.PlainBase | bigint.RentedBase:
    """The table of the verifier's s for the witnesses w_i and the masks α_i."""
    return prover_table(params.s, params.n_hat, max(bounds.alpha_bits), S_WINDOW)


def _challenge(statement: C3Statement, commitments: tuple[Any, ...], bounds: C3Bounds, transcript: Transcript) -> int:
    st = statement
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_int("N", st.pk.n)
    t.append_ints("ring_pedersen", (st.params.n_hat, st.params.s, st.params.t))
    t.append_ints("c_key,c3,r,m", (st.c_key, st.c3, st.r, st.m))
    t.append_bytes("group", st.r2.group.name.encode())
    t.append_bytes("R2", st.r2.to_bytes())
    t.append_bytes("Q2", st.q2.to_bytes())
    W, A, Y1, Y2, C = commitments
    t.append_ints("W", W)
    t.append_ints("A", A)
    t.append_bytes("Y1", Y1.to_bytes())
    t.append_bytes("Y2", Y2.to_bytes())
    t.append_int("C", C)
    return t.challenge_int("e", 1 << bounds.challenge_bits)


@dataclass(frozen=True, repr=False)
class MadeAhead:
    """The rest of Π_c3's message-independent work, made ahead for a precomputation: the masks
    α_i with A_i = s^α_i·t^γ_i mod N̂, and the third witness w3 (the signing mask ρ, uniform
    below 2^mask_bits) with W3 = s^w3·t^μ3 mod N̂. Single use, like everything in the masks, and
    never serialised: α_i or w3 beside one proof give w_i = (z_i − α_i)/e, so k2 and x2."""

    alpha: tuple[int, int, int]
    A: tuple[int, int, int]
    w3: int
    W3: int

    def __repr__(self) -> str:
        return "MadeAhead(<secret>)"


@dataclass(frozen=True, repr=False)
class PedersenMasks:
    """The message-independent halves of the six ring-Pedersen commitments for one verifier's
    parameters: μ_i, γ_i and t^μ_i, t^γ_i mod N̂ (the costly part of the prover's work), and, in
    a precomputation, what else of the proof is message-independent (``ahead``, :class:`MadeAhead`).

    Proof randomness: single use, like the Paillier nonces (two proofs sharing μ_i and γ_i
    would reveal them, and s^w_i with them; two sharing α_i would reveal w_i = Δz_i/Δe)."""

    n_hat: int
    mu: tuple[int, int, int]
    t_mu: tuple[int, int, int]
    gamma: tuple[int, int, int]
    t_gamma: tuple[int, int, int]
    ahead: MadeAhead | None = None

    @classmethod
    def fresh(
        cls, params: RingPedersenParams, bounds: C3Bounds = DEFAULT_BOUNDS, *, ahead: bool = False
    ) -> PedersenMasks:
        """Fresh masks μ_i, γ_i with their t-powers under the verifier's ``params`` (by the
        prover's table of t: the same values as ``pow(t, x, N̂)``, several times faster once the
        table is built); ``ahead`` also draws α_i and w3 with their commitments (a precomputation)."""
        kappa, c, n_hat = bounds.statistical_bits, bounds.challenge_bits, params.n_hat
        mu = tuple(bigint.random_below(n_hat << kappa) for _ in range(3))
        gamma = tuple(bigint.random_below(n_hat << (c + 2 * kappa)) for _ in range(3))
        table = t_table(params, bounds)
        masks = cls(n_hat, mu, tuple(map(table.pow, mu)), gamma, tuple(map(table.pow, gamma)))  # type: ignore[arg-type]
        return masks.made_ahead(params, bounds) if ahead else masks

    def made_ahead(self, params: RingPedersenParams, bounds: C3Bounds = DEFAULT_BOUNDS) -> PedersenMasks:
        """These masks with fresh α_i and w3 and their commitments A_i and W3 (by the s table)."""
        alpha, w3 = draw_alpha(bounds), bigint.random_bits(bounds.mask_bits)
        w3_commitment = bigint.mulmod(s_table(params, bounds).pow(w3), self.t_mu[2], self.n_hat)
        return replace(self, ahead=MadeAhead(alpha, _commit_alpha(params, alpha, self.t_gamma, bounds), w3,
                                             w3_commitment))

    def __repr__(self) -> str:
        return "PedersenMasks(<secret>)"


def _commit_alpha(
    params: RingPedersenParams, alpha: tuple[int, int, int], t_gamma: tuple[int, int, int], bounds: C3Bounds
) -> tuple[int, int, int]:
    """A_i = s^α_i·t^γ_i mod N̂, the s-halves by the prover's s table."""
    table, n_hat = s_table(params, bounds), params.n_hat
    return tuple(bigint.mulmod(table.pow(a_i), t_i, n_hat) for a_i, t_i in zip(alpha, t_gamma))  # type: ignore[return-value]


def draw_alpha(bounds: C3Bounds = DEFAULT_BOUNDS) -> tuple[int, int, int]:
    """Π_c3's masks α_i, uniform below 2^alpha_bits[i] (``protocols.randomness``)."""
    return tuple(bigint.random_below(1 << bits) for bits in bounds.alpha_bits)  # type: ignore[return-value]


def prove(
    statement: C3Statement,
    w: tuple[int, int, int],
    randomness: C3Randomness,
    transcript: Transcript,
    bounds: C3Bounds = DEFAULT_BOUNDS,
    mask_randomness: C3Randomness | None = None,
    pedersen: PedersenMasks | None = None,
) -> C3Proof:
    """Prove that ``statement.c3`` = ``form_c3(..., w, randomness)`` with w1·R2 = G, w2·R2 = Q2.

    ``mask_randomness`` (β of C') and ``pedersen`` (the commitments' t-halves) may be made
    ahead by the custodian (single use); they are drawn fresh when omitted.
    """
    st = statement
    bounds.check_modulus(st.pk.n)
    _check_witness(st, w, bounds)
    if randomness.modulus != st.pk.n or (mask_randomness is not None and mask_randomness.modulus != st.pk.n):
        raise UsageError("c3 randomness was made for another Paillier key")
    params = st.params
    masks = pedersen or PedersenMasks.fresh(params, bounds)
    if masks.n_hat != params.n_hat:
        raise UsageError("ring-Pedersen masks were made for other parameters")
    alpha, A, W = _commitments(params, w, masks, bounds)
    beta = mask_randomness or C3Randomness.fresh(st.pk)
    mu, gamma = masks.mu, masks.gamma
    Y1, Y2, C = st.r2 * alpha[0], st.r2 * alpha[1], form_c3(st.pk, st.c_key, st.r, st.m, alpha, beta, bounds)
    e = _challenge(st, (W, A, Y1, Y2, C), bounds, transcript)
    n = st.pk.n
    return C3Proof(
        W, A, Y1, Y2, C,
        z=tuple(a_i + e * w_i for a_i, w_i in zip(alpha, w)),  # type: ignore[arg-type]
        zeta=tuple(g_i + e * mu_i for g_i, mu_i in zip(gamma, mu)),  # type: ignore[arg-type]
        z_enc=bigint.mulmod(beta.nonce, bigint.powmod(randomness.nonce, e, n), n),
    )


def _commitments(
    params: RingPedersenParams, w: tuple[int, int, int], masks: PedersenMasks, bounds: C3Bounds
) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """α, A_i = s^α_i·t^γ_i and W_i = s^w_i·t^μ_i: from ``masks.ahead`` where made ahead (its w3
    must be the witness's), else α drawn here, after μ and γ and before β, as always."""
    table, n_hat = s_table(params, bounds), params.n_hat
    w1_w2 = [bigint.mulmod(table.pow(w_i), t_i, n_hat) for w_i, t_i in zip(w[:2], masks.t_mu[:2])]
    ahead = masks.ahead
    if ahead is None:
        alpha = draw_alpha(bounds)
        commitments = (*w1_w2, bigint.mulmod(table.pow(w[2]), masks.t_mu[2], n_hat))
        return alpha, _commit_alpha(params, alpha, masks.t_gamma, bounds), commitments  # type: ignore[return-value]
    if ahead.w3 != w[2]:
        raise UsageError("the witness's w3 is not the one made ahead with the masks")
    return ahead.alpha, ahead.A, (*w1_w2, ahead.W3)  # type: ignore[return-value]


def _check_witness(st: C3Statement, w: tuple[int, int, int], bounds: C3Bounds) -> None:
    w1, w2, w3 = w
    if not (0 <= w1 < bounds.q and 0 <= w2 < bounds.q and 0 <= w3 < 1 << bounds.mask_bits):
        raise UsageError("c3 witness out of range")
    generator = st.r2.group.generator()
    if st.r2 * w1 != generator or st.r2 * w2 != st.q2:
        raise UsageError("c3 witness does not match R2 and Q2")


def verify(
    statement: C3Statement,
    proof: C3Proof,
    transcript: Transcript,
    bounds: C3Bounds = DEFAULT_BOUNDS,
    *,
    paillier_secret: PaillierSecretKey | None = None,
    ring_pedersen_secret: RingPedersenSecret | None = None,
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``statement.c3`` was formed correctly.

    The optional secrets (P1 knows both factorisations) only speed the same checks up by CRT.
    """
    st = statement
    _check_shapes(st, proof, bounds)
    commitments = (proof.W, proof.A, proof.Y1, proof.Y2, proof.C)
    e = _challenge(st, commitments, bounds, transcript)
    generator = st.r2.group.generator()
    if st.r2 * proof.z[0] != proof.Y1 + generator * e:
        raise ProofError("c3 proof: z1·R2 != Y1 + e·G")
    if st.r2 * proof.z[1] != proof.Y2 + st.q2 * e:
        raise ProofError("c3 proof: z2·R2 != Y2 + e·Q2")
    _check_commitments(st.params, proof, e, ring_pedersen_secret)
    _check_paillier(st, proof, e, bounds, paillier_secret)


def _check_commitments(
    params: RingPedersenParams, proof: C3Proof, e: int, secret: RingPedersenSecret | None
) -> None:
    """s^z_i·t^ζ_i = A_i·W_i^e (mod N̂) for i = 1, 2, 3 (CGGMP Π_aff-g's range commitments).

    With the owner's trapdoor, s = t^λ makes the left side t^(λ·z_i + ζ_i): one exponentiation
    of the fixed base t, by CRT (a table modulo each prime of N̂ once it pays: ``_owner_power``)."""
    n_hat = params.n_hat
    power: Callable[[int, int], int]
    if secret is not None:
        if secret.params != params:
            raise UsageError("the ring-Pedersen secret does not match the statement")
        t_power, power = _owner_power(secret, params.t, secret.crt), secret.crt.powmod
        lhs = [t_power(secret.lam * z + zeta) for z, zeta in zip(proof.z, proof.zeta)]
    else:
        power = lambda base, exponent: bigint.powmod(base, exponent, n_hat)  # noqa: E731 - bigint's backend now
        lhs = [power(params.s, z) * power(params.t, zeta) % n_hat for z, zeta in zip(proof.z, proof.zeta)]
    for i in range(3):
        if lhs[i] != bigint.mulmod(proof.A[i], power(proof.W[i], e), n_hat):
            raise ProofError(f"c3 proof: s^z{i + 1}·t^ζ{i + 1} != A{i + 1}·W{i + 1}^e")


_PAILLIER_FAILS = "c3 proof: (r·z1) ⊙ c_key' ⊕ Enc(z1·m + z2·r + z3·q; z_enc) != C' ⊕ e·c3"


def _check_paillier(
    st: C3Statement, proof: C3Proof, e: int, bounds: C3Bounds, secret: PaillierSecretKey | None
) -> None:
    """(r·z1) ⊙ c_key' ⊕ Enc(z1·m + z2·r + z3·q; z_enc) = C' ⊕ e·c3 modulo N²: the straightforward
    formula, or with P1's secret key the same verdict by :func:`_check_paillier_crt`."""
    pk, n2 = st.pk, st.pk.n_squared
    if secret is not None:
        if secret.n != pk.n:
            raise UsageError("the Paillier secret key does not match the statement")
        _check_paillier_crt(st, proof, e, bounds, secret)
        return
    shifted = paillier.add_plain(pk, st.c_key, bounds.shift)
    z1, z2, z3 = proof.z
    plain = 1 + ((z1 * st.m + z2 * st.r + z3 * bounds.q) % pk.n) * pk.n
    lhs = bigint.powmod(shifted, st.r * z1, n2) * plain % n2 * bigint.powmod(proof.z_enc, pk.n, n2) % n2
    if lhs != proof.C * bigint.powmod(st.c3, e, n2) % n2:
        raise ProofError(_PAILLIER_FAILS)


def _check_paillier_crt(st: C3Statement, proof: C3Proof, e: int, bounds: C3Bounds, secret: PaillierSecretKey) -> None:
    """The Paillier equation L = R (mod N²) of :func:`_check_paillier` as two halves that P1, who
    knows p and q, evaluates cheaply; exactly the same verdict.

    With X = L·R⁻¹ (mod N²): X ≡ 1 (mod N²) ⇔ (i) X ≡ 1 (mod N) and (ii) Dec(X) = 0. Proof: modulo
    p², Dec_p (``PaillierSecretKey.plaintext``) is a homomorphism whose kernel is the elements of
    order dividing p - 1, and those ≡ 1 (mod p) are only 1 (orders prime to p); likewise modulo q².

    (i) Modulo N, (1 + N)^P ≡ 1 and c_key' ≡ c_key: c_key^(r·z1)·z_enc^N ≡ C'·c3^e (mod N), by CRT
    (c_key by CRT or its table, z_enc^N as z_enc^(q mod p-1) mod p). (ii) Dec is additive, Dec(z_enc^N) = 0
    and Dec(c_key') = x1' (cached per key): r·z1·x1' + z1·m + z2·r + z3·q ≡ Dec(C'·c3^e) (mod N).
    So one long exponentiation modulo p² and one modulo q² (the decryption of C'·c3^e; c3^e is
    short), where L alone needs z_enc^N and c_key'^(r·z1) modulo N².

    The verdict stays a function of public values (the prover learns nothing from it): (i) is
    decided first and on its own is public (N is); once (i) holds, X = 1 + k·N and Dec(X) = k, so
    (ii) holds exactly when X = 1, again public. Both primes are combined before any comparison,
    and c3 itself is not decrypted here (``finish_signature`` does that after the verdict).
    """
    n = st.pk.n
    c_key_power = _owner_power(secret, st.c_key, secret.crt_n, bounds.q_bits + bounds.response_bits[0])
    x1_shifted = _owner_value(secret, ("x1'", st.c_key, bounds.shift),
                              lambda: (secret.plaintext(st.c_key) + bounds.shift) % n)  # Dec(c_key'), P1's share
    z1, z2, z3 = proof.z
    rhs = bigint.mulmod(proof.C, secret.crt_n_squared.powmod(st.c3, e), st.pk.n_squared)  # C'·c3^e
    if bigint.mulmod(c_key_power(st.r * z1), secret.crt_n.powmod(proof.z_enc, n), n) != bigint.mpz(rhs) % n:
        raise ProofError(_PAILLIER_FAILS)
    if secret.plaintext(rhs) != (bigint.mpz(st.r * z1) * x1_shifted + z1 * st.m + z2 * st.r + z3 * bounds.q) % n:
        raise ProofError(_PAILLIER_FAILS)


# The key owner's per-key values (tables modulo its secret primes, Dec(c_key')): held beside the
# secret key object they belong to, weakly, so they go when the key goes. Tables in two stages,
# each made once it pays (CPU time per verification at the default level, benchmarks/README
# round two): plain CRT exponentiations (~4.1 ms) for a key's first ``OWNER_TABLES_AFTER - 1``
# verifications; then ``OWNER_WINDOWS[0]``-bit tables (2.9 MB, built in ~15 ms, ~1.0 ms per
# verification: they pay after about five); from the ``OWNER_WIDE_TABLES_AFTER``-th on
# ``OWNER_WINDOWS[1]``-bit tables (14.7 MB, ~83 ms, ~0.6 ms: alone they pay after about 24),
# which replace the narrow ones. A one-shot signer builds none, an occasional one the small ones.
OWNER_TABLES_AFTER = 8
OWNER_WIDE_TABLES_AFTER = 24
OWNER_WINDOWS = (5, 8)
_OWNER: weakref.WeakKeyDictionary[Any, dict[Hashable, Any]] = weakref.WeakKeyDictionary()
_OWNER_LOCK = threading.Lock()


def _owner_value(secret: Any, name: Hashable, make: Callable[[], Any]) -> Any:
    """The value ``name`` of the key ``secret`` (made by ``make`` once, kept while it lives)."""
    with _OWNER_LOCK:
        values = _OWNER.setdefault(secret, {})
        if name in values:
            return values[name]
    value = make()
    with _OWNER_LOCK:
        return values.setdefault(name, value)


def _owner_power(secret: Any, base: int, crt: bigint.CrtModulus, max_bits: int | None = None) -> Callable[[int], int]:
    """``e ↦ base^e`` modulo ``crt``'s modulus for the owner of ``secret``: by CRT exponentiation,
    by a :class:`bigint.CrtFixedBase` table once this key has asked ``OWNER_TABLES_AFTER`` times,
    by a wider one from the ``OWNER_WIDE_TABLES_AFTER``-th time on (the narrow one is dropped)."""
    uses = _owner_value(secret, ("uses", base, max_bits), lambda: [0])
    with _OWNER_LOCK:
        uses[0] += 1
        count = uses[0]
    if count < OWNER_TABLES_AFTER:
        return partial(crt.powmod, base)
    narrow, wide = OWNER_WINDOWS
    window = wide if count >= OWNER_WIDE_TABLES_AFTER else narrow
    table: bigint.CrtFixedBase = _owner_value(secret, ("table", base, max_bits, window),
                                              lambda: bigint.CrtFixedBase(base, crt, max_bits, window))
    if window != narrow:
        with _OWNER_LOCK:
            _OWNER.get(secret, {}).pop(("table", base, max_bits, narrow), None)
    return table.pow


def forget_owner_tables() -> None:
    """Drop every key owner's cached tables and values (benchmarks of a first sign; tests)."""
    with _OWNER_LOCK:
        _OWNER.clear()


def _check_shapes(st: C3Statement, proof: C3Proof, bounds: C3Bounds) -> None:
    try:
        bounds.check_modulus(st.pk.n)
    except UsageError as exc:
        raise ProofError(str(exc)) from None
    n_hat = st.params.n_hat
    require_units(proof.W, n_hat, "c3 W", 3)
    require_units(proof.A, n_hat, "c3 A", 3)
    _require_paillier_units(st, proof)
    for point in (proof.Y1, proof.Y2):
        if not isinstance(point, Point) or point.group is not st.r2.group or point.is_identity:
            raise ProofError("c3 proof: Y1 and Y2 must be non-identity points of the group")
    for i, (value, bits) in enumerate(zip(proof.z, bounds.response_bits)):
        if not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise ProofError(f"c3 proof: z{i + 1} out of range")
    if any(not isinstance(v, int) or v < 0 for v in proof.zeta):
        raise ProofError("c3 proof: ζ must be non-negative integers")


def _require_paillier_units(st: C3Statement, proof: C3Proof) -> None:
    """c3, C', c_key valid ciphertexts and z_enc ∈ Z*_N (``paillier.validate_ciphertexts``: one
    gcd for the four); a failure names the first bad value."""
    try:
        paillier.validate_ciphertexts(st.pk, {"c3": st.c3, "C'": proof.C, "c_key": st.c_key}, {"z_enc": proof.z_enc})
    except InvalidMessage as exc:
        raise ProofError(f"c3 proof: {exc}") from None


# Not parkable (``protocols.state``): single-use randomness never leaves the custodian's memory.
