"""Long-lived ring-Pedersen setups (N̂, s, t) with Π_prm and Π_mod: the custodian's and the client's.

Each party owns one, for the proofs it *verifies*. The custodian's: in Lindell-style two-party ECDSA with CGGMP proofs, P2 (the custodian) verifies P1's proofs
about P1's Paillier key and encrypted share (Π_fac, Π_log*), and those proofs need the
*verifier's* ring-Pedersen parameters (CGGMP, ePrint 2021/060: ZenGo's prover-made N̂ is the
pitfall). The custodian generates them once (two safe primes: seconds to minutes), proves them
well formed with Π_prm (s ∈ ⟨t⟩, so its commitments hide the client's witnesses) and N̂ a
Paillier-Blum modulus with Π_mod (safe primes > 7 are ≡ 3 mod 4), as Lindell-style keygen
step 2 and CGGMP's auxiliary information do; it stores and reuses them. A client checks both
proofs once per setup and caches the verdict (``verify_setup`` keeps a process-wide cache keyed
by the setup's hash). Only setups whose proofs this process *verified* enter that cache: it is
what a party offers as "verified before" and what lets a peer send a fingerprint instead of
Π_prm and Π_mod. Setups this process *made* are kept apart (``made_here``) and only spare
proving our own stored setup again when it is loaded back; a peer naming one of them by
fingerprint is refused like any setup never verified here.

The client's (``ClientSetup``, the same type): the custodian proves every c3 it sends in signing
(``protocols.zk.c3``), and that proof's range part needs parameters whose factorisation the
custodian does not know. The client makes them once per device, sends them with Π_prm and Π_mod
at keygen and at every resharing into a signing pair, and the custodian verifies them (cached by
fingerprint) before it proves anything against them: Π_prm is what makes its commitments hide.

Both proofs are bound to the parameters only (they are statements about a long-lived object,
not about a session); the proofs that use the parameters bind the session themselves.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from protocols.encoding import get_bytes, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret, generate_ring_pedersen
from protocols.rounds import parse_strict_json
from protocols.transcript import Transcript
from protocols.zk import mod, prm
from protocols.zk.params import DEFAULT_LEVEL, SecurityLevel, level_by_name
from protocols.state import register_custom, register_dataclass

__all__ = [
    "CustodianSetup",
    "CustodianSetupPublic",
    "ClientSetup",
    "ClientSetupPublic",
    "generate_setup",
    "setup_from_ring_pedersen",
    "verify_setup",
    "receive_setup",
    "setup_payload",
    "known_setups",
    "made_here",
    "get_fingerprints",
    "offer",
    "public_and_trapdoor",
    "decode_offer",
    "peer_verified",
    "receive_client_setup",
    "default_client_setup",
    "set_default_client_setup",
]

_PRM_DOMAIN = "ecdsa2p/custodian-setup/prm"
_MOD_DOMAIN = "ecdsa2p/custodian-setup/mod"


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _prm_transcript() -> Transcript:
    return Transcript(_PRM_DOMAIN)


def _mod_transcript(params: RingPedersenParams) -> Transcript:
    transcript = Transcript(_MOD_DOMAIN)
    transcript.append_ints("ring-pedersen", (params.n_hat, params.s, params.t))
    return transcript


def _proofs_payload(public: CustodianSetupPublic) -> dict[str, Any]:
    return {"prm": public.proof.to_payload(), "mod": public.mod_proof.to_payload(), "level": public.level.name}


def _with_proofs(params: RingPedersenParams, payload: Mapping[str, Any]) -> CustodianSetupPublic:
    """Strict decoding of the level and both proofs for ``params`` (not verified here): N̂ must
    have the level's size and each proof exactly the level's m repetitions."""
    try:
        level = level_by_name(payload["level"])
    except KeyError:
        raise InvalidMessage("setup of an unknown security level") from None
    if params.n_hat.bit_length() < level.modulus_bits:
        raise InvalidMessage(f"setup modulus too short for security level {level.name}")
    m = level.m_iterations
    return CustodianSetupPublic(params, prm.PrmProof.from_payload(payload["prm"], params, m),
                                mod.ModProof.from_payload(payload["mod"], params.n_hat, m), level)


@dataclass(frozen=True)
class CustodianSetupPublic:
    """What the setup's owner publishes: (N̂, s, t), Π_prm and Π_mod for N̂."""

    params: RingPedersenParams
    proof: prm.PrmProof
    mod_proof: mod.ModProof
    level: SecurityLevel = DEFAULT_LEVEL

    def to_payload(self) -> dict[str, Any]:
        """(N̂, s, t) with the Π_prm and Π_mod proofs and the level, as sent in keygen round 2."""
        return {"params": self.params.to_payload(), **_proofs_payload(self)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CustodianSetupPublic:
        """Strict decoding (raises ``InvalidMessage``); the proof is *not* verified here."""
        if not isinstance(payload, Mapping):
            raise InvalidMessage("setup must be an object")
        require_keys(payload, ("params", "prm", "mod", "level"))
        params = RingPedersenParams.from_payload(payload["params"])
        return _with_proofs(params, payload)

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 over the canonical parameters and proof: the cache key and a stable setup id."""
        return hashlib.sha256(_canonical(self.to_payload())).digest()


@dataclass(frozen=True, repr=False, eq=False)
class CustodianSetup:
    """A party's setup with its trapdoor (the safe primes and λ); ``repr`` shows no secret."""

    public: CustodianSetupPublic
    secret: RingPedersenSecret

    def __repr__(self) -> str:
        return f"CustodianSetup(<secret>, id={self.public.fingerprint.hex()[:16]})"

    def to_bytes(self) -> bytes:
        """The secret (it determines the parameters) followed by the proofs, for storage."""
        body = _canonical(_proofs_payload(self.public))
        secret = self.secret.to_bytes()
        return len(secret).to_bytes(4, "big") + secret + body

    @classmethod
    def from_bytes(cls, data: bytes) -> CustodianSetup:
        """Parse ``to_bytes`` output and verify its proofs (``verify_setup``; not for a setup this
        process made itself, ``made_here``); raises ``InvalidMessage`` or ``ProofError``."""
        if len(data) < 4:
            raise InvalidMessage("custodian setup truncated")
        size = int.from_bytes(data[:4], "big")
        secret = RingPedersenSecret.from_bytes(data[4 : 4 + size])
        proofs = parse_strict_json(data[4 + size :])
        require_keys(proofs, ("prm", "mod", "level"))
        setup = cls(_with_proofs(secret.params, proofs), secret)
        if not made_here(setup.public):  # byte for byte the proofs this process made: sound as they are
            verify_setup(setup.public)
        return setup


def generate_setup(bits: int | None = None, progress: Callable[[str], None] | None = None,
                   level: SecurityLevel = DEFAULT_LEVEL) -> CustodianSetup:
    """Fresh ring-Pedersen parameters (two safe primes: seconds with gmpy2) with Π_prm and Π_mod
    at ``level`` (|N̂| = ``bits``, by default the level's size).

    ``progress`` is called with a short note after each stage (each prime, the proofs).
    """
    params, secret = generate_ring_pedersen(bits or level.modulus_bits, progress=progress)
    setup = setup_from_ring_pedersen(params, secret, level)
    if progress is not None:
        progress("Π_prm and Π_mod proven")
    return setup


def setup_from_ring_pedersen(
    params: RingPedersenParams, secret: RingPedersenSecret, level: SecurityLevel = DEFAULT_LEVEL
) -> CustodianSetup:
    """A setup over existing ring-Pedersen parameters (proves Π_prm and Π_mod for them at ``level``)."""
    if params.n_hat.bit_length() < level.modulus_bits:
        raise UsageError(f"security level {level.name} needs a modulus of at least {level.modulus_bits} bits")
    m = level.m_iterations
    proof = prm.prove(params, secret, _prm_transcript(), m)
    mod_proof = mod.prove(params.n_hat, secret.p, secret.q, _mod_transcript(params), m)
    setup = CustodianSetup(CustodianSetupPublic(params, proof, mod_proof, level), secret)
    _remember_made(setup.public)
    return setup


ClientSetup = CustodianSetup
ClientSetupPublic = CustodianSetupPublic

# Setups whose Π_prm and Π_mod this process verified (``verify_setup``, and nothing else), by
# fingerprint, most recent last (bounded): a setup verified once is not checked again, and a
# peer that knows this process verified it sends only its fingerprint (``setup_payload``),
# saving Π_prm and Π_mod on the wire (about 160 KB).
_VERIFIED: OrderedDict[bytes, CustodianSetupPublic] = OrderedDict()
_VERIFIED_MAX = 64
# Setups this process made (``setup_from_ring_pedersen``), by fingerprint (bounded): never
# offered as verified, never accepted from a peer by fingerprint (``made_here``).
_MADE_HERE: OrderedDict[bytes, None] = OrderedDict()
MAX_KNOWN_SETUPS = 8  # fingerprints a party offers in round 1
_LOCK = threading.Lock()


def _remember(public: CustodianSetupPublic) -> None:
    """Only ``verify_setup`` calls this, after both proofs held."""
    _bounded_put(_VERIFIED, public.fingerprint, public)


def _remember_made(public: CustodianSetupPublic) -> None:
    _bounded_put(_MADE_HERE, public.fingerprint, None)


def _bounded_put(cache: OrderedDict[bytes, Any], key: bytes, value: Any) -> None:
    with _LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _VERIFIED_MAX:
            cache.popitem(last=False)


def made_here(public: CustodianSetupPublic) -> bool:
    """Whether this process made ``public`` (with its proofs): true only for our own setups,
    and never a reason to accept a peer's setup (the fingerprint covers the proofs, so a setup
    loaded back byte for byte carries the proofs we made)."""
    with _LOCK:
        return public.fingerprint in _MADE_HERE


def verify_setup(public: CustodianSetupPublic) -> None:
    """Raise ``ProofError`` unless Π_prm and Π_mod verify; a setup verified once is not checked again."""
    key = public.fingerprint
    with _LOCK:
        if key in _VERIFIED:
            _VERIFIED.move_to_end(key)  # most recently met: offered first in round 1
            return
    m = public.level.m_iterations
    prm.verify(public.params, public.proof, _prm_transcript(), m)
    mod.verify(public.params.n_hat, public.mod_proof, _mod_transcript(public.params), m)
    _remember(public)


def known_setups() -> list[bytes]:
    """Fingerprints of the setups this process verified, most recent first (at most ``MAX_KNOWN_SETUPS``)."""
    with _LOCK:
        return list(reversed(_VERIFIED))[:MAX_KNOWN_SETUPS]



def setup_payload(public: CustodianSetupPublic, peer_knows: bool) -> dict[str, Any]:
    """The setup for the wire: only its fingerprint if the peer said it verified it before."""
    return {"fingerprint": public.fingerprint.hex()} if peer_knows else public.to_payload()


def receive_setup(
    payload: Any, references: Collection[bytes] = (), level: SecurityLevel | None = None
) -> CustodianSetupPublic:
    """Strictly decode a peer's setup and verify Π_prm and Π_mod (``InvalidMessage``/``ProofError``).

    A payload of just a fingerprint is accepted only if it is among ``references`` (what this
    party said it knows) and was verified in this process. With ``level``, a setup of another
    security level is refused (``InvalidMessage`` naming both levels).
    """
    setup = _receive_setup(payload, references)
    if level is not None:
        _require_level(setup, level)
    return setup


def _require_level(setup: CustodianSetupPublic, level: SecurityLevel) -> None:
    if setup.level != level:
        raise InvalidMessage(f"the peer runs security level {setup.level.name}, this party {level.name}")


def _receive_setup(payload: Any, references: Collection[bytes]) -> CustodianSetupPublic:
    if isinstance(payload, Mapping) and set(payload) == {"fingerprint"}:
        fingerprint = get_bytes(payload, "fingerprint", 32)
        with _LOCK:
            known = _VERIFIED.get(fingerprint)
            if known is not None:
                _VERIFIED.move_to_end(fingerprint)
        if fingerprint not in references or known is None:
            raise InvalidMessage("a setup named by a fingerprint this party did not offer")
        return known
    setup = CustodianSetupPublic.from_payload(payload)
    verify_setup(setup)
    return setup


def public_and_trapdoor(
    setup: CustodianSetup | CustodianSetupPublic,
) -> tuple[CustodianSetupPublic, RingPedersenSecret | RingPedersenParams]:
    """A client setup's public part and what P1's share keeps of it: the trapdoor of its own
    setup, or, for *published* parameters (a ``CustodianSetupPublic``, no trapdoor: a
    deployment option, see docs/threat-model.md), the parameters alone."""
    if isinstance(setup, CustodianSetup):
        return setup.public, setup.secret
    if isinstance(setup, CustodianSetupPublic):
        verify_setup(setup)
        return setup, setup.params
    raise UsageError("client_setup must be a ClientSetup or published ClientSetupPublic parameters")


# --- the exchange of setups in keygen and resharing (the same three steps in both) -----------
def offer(known: Collection[bytes], client: CustodianSetupPublic) -> dict[str, Any]:
    """P1's round-1 fields: the custodian setups it verified before, and its own setup's id."""
    return {"known_setups": [f.hex() for f in known], "client_setup_id": client.fingerprint.hex()}


def decode_offer(payload: Any) -> tuple[tuple[bytes, ...], bytes]:
    """P2's strict decoding of :func:`offer` (``InvalidMessage``)."""
    return tuple(get_fingerprints(payload, "known_setups")), get_bytes(payload, "client_setup_id", 32)


def peer_verified(client_setup_id: bytes, known: Collection[bytes] | None) -> CustodianSetupPublic | None:
    """P2: P1's setup if P2 verified it before (``known``: the fingerprints it accepts; None: all
    this process verified). The session keeps the object itself, so round 3 does not depend on
    the cache of whichever process resumes it."""
    if known is not None and client_setup_id not in known:
        return None
    with _LOCK:
        return _VERIFIED.get(client_setup_id)


def receive_client_setup(
    payload: Any, client_setup_id: bytes, verified_before: CustodianSetupPublic | None, level: SecurityLevel
) -> CustodianSetupPublic:
    """P2: P1's setup (whole and verified, or by fingerprint if P2 said in round 2 that it had
    verified it before: ``verified_before``), which must be the one P1 announced in round 1 and
    of P2's security level."""
    if isinstance(payload, Mapping) and set(payload) == {"fingerprint"}:
        if verified_before is None or get_bytes(payload, "fingerprint", 32) != client_setup_id:
            raise InvalidMessage("a setup named by a fingerprint this party did not offer")
        _require_level(verified_before, level)
        return verified_before
    setup = receive_setup(payload, (), level)
    if setup.fingerprint != client_setup_id:
        raise InvalidMessage("the client sent another setup than it announced")
    return setup


def get_fingerprints(payload: Any, key: str) -> list[bytes]:
    """Round 1's list of known setup fingerprints (at most ``MAX_KNOWN_SETUPS``, 32 bytes each)."""
    items = payload.get(key) if isinstance(payload, Mapping) else None
    if not isinstance(items, (list, tuple)) or len(items) > MAX_KNOWN_SETUPS:
        raise InvalidMessage(f"{key} must be a list of at most {MAX_KNOWN_SETUPS} fingerprints")
    return [get_bytes({key: item}, key, 32) for item in items]


class ProcessDefault:
    """A process-wide setup, made on first use (two safe primes: seconds) or installed.

    Its own lock, not ``_LOCK``: making a setup takes ``_LOCK`` to remember it."""

    def __init__(self) -> None:
        self._setups: dict[str, CustodianSetup] = {}  # one per security level
        self._lock = threading.Lock()

    def get(self, level: SecurityLevel = DEFAULT_LEVEL) -> CustodianSetup:
        with self._lock:
            if level.name not in self._setups:
                self._setups[level.name] = generate_setup(level=level)
            return self._setups[level.name]

    def set(self, setup: CustodianSetup) -> None:
        with self._lock:
            self._setups[setup.public.level.name] = setup


_CLIENT_DEFAULT = ProcessDefault()


def default_client_setup(level: SecurityLevel = DEFAULT_LEVEL) -> ClientSetup:
    """This process's client (device) setup, generated on first use (two safe primes: seconds).

    A device keeps one setup for all its wallets: ``mpc.Client`` stores it in the keychain and
    installs it here, and tests install pre-generated parameters with
    :func:`set_default_client_setup`.
    """
    return _CLIENT_DEFAULT.get(level)


def set_default_client_setup(setup: ClientSetup) -> None:
    """Install this process's client setup (one loaded from the device's keychain, or test parameters)."""
    _CLIENT_DEFAULT.set(setup)


# Parkable state (``protocols.state``): a custodian setup *by reference* (its fingerprint; the
# object comes back from the ``setup`` context), so the long-lived trapdoor never enters a blob.
def _encode_setup(setup: CustodianSetup, enc: Any) -> Any:
    return setup.public.fingerprint.hex()


def _decode_setup(body: Any, dec: Any) -> CustodianSetup:
    setup = dec.context.get("setup")
    if not isinstance(setup, CustodianSetup):
        raise UsageError("this session uses the custodian setup: pass setup=... to from_bytes")
    if not isinstance(body, str) or setup.public.fingerprint.hex() != body:
        raise InvalidMessage("the parked session refers to another custodian setup")
    return setup


register_dataclass(CustodianSetupPublic)
register_custom(CustodianSetup, "protocols.ecdsa2p.setup.CustodianSetup", _encode_setup, _decode_setup)
