"""Key shares of two-party ECDSA: the client's (P1) and the custodian's (P2).

The key is shared additively (as cb-mpc and BitForge §3.1 restate Lindell 2017): Q = Q1 + Q2 with Q1 = x1·G and
Q2 = x2·G. P1 owns a Paillier key pair and x1; P2 holds x2, P1's Paillier public key and
c_key = Enc(x1) (checked at keygen with Π_mod, Π_fac and Π_log*).

A signing share also carries what the custodian's proof of every c3 needs (``protocols.zk.c3``):
P1 keeps c_key (the statement names it) and its own ring-Pedersen trapdoor (to verify by CRT);
P2 keeps P1's ring-Pedersen parameters (N̂, s, t), checked with Π_prm and Π_mod when received.

A share made for backup only carries no Paillier material (``paillier is None`` on P1's side,
``paillier``, ``c_key`` and the parameters None on P2's): it cannot sign, but a resharing turns
it back into a signing share with a fresh Paillier key.

P1's share has a ``locked`` flag that is part of its serialised state: once a signature P1
computed fails to verify, the share must never be used again (CVE-2023-33242).

Serialisation is canonical JSON with a version and a kind, through ``to_bytes``/``from_bytes``
only; ``repr`` shows the public key, never a secret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from curves import InvalidEncoding, Point, SecretScalar, secp256k1
from protocols.encoding import encode_nat, get_bytes, get_nat, get_point, require_keys
from protocols.errors import InvalidMessage, KeyLocked, UsageError
from protocols.rounds import parse_strict_json
from protocols.paillier import MAX_MODULUS_BITS, PaillierPublicKey, PaillierSecretKey, validate_ciphertext
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret
from protocols.zk.params import DEFAULT_LEVEL, SecurityLevel, level_by_name
from protocols.state import register_bytes

__all__ = ["P1KeyShare", "P2KeyShare", "CLIENT", "CUSTODIAN"]

CLIENT = 1  # P1: owns the Paillier key, decrypts, receives the signature first
CUSTODIAN = 2  # P2: verifier, homomorphic step
_VERSION = 2


def _dump(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes, kind: str, keys: tuple[str, ...]) -> dict[str, Any]:
    obj = parse_strict_json(data)
    if not isinstance(obj, dict) or obj.get("kind") != kind or type(obj.get("v")) is not int \
            or obj["v"] != _VERSION:
        raise InvalidMessage(f"not a version-{_VERSION} {kind}")
    require_keys(obj, ("kind", "v", *keys))
    if _dump(obj) != bytes(data):
        raise InvalidMessage(f"{kind} encoding is not canonical")
    return obj


def _secret(obj: Mapping[str, Any], key: str) -> SecretScalar:
    try:
        return SecretScalar.from_bytes(secp256k1, get_bytes(obj, key, 32))
    except InvalidEncoding:
        raise InvalidMessage(f"{key} is not a valid scalar") from None


def _encode_ring_pedersen(rp: RingPedersenSecret | RingPedersenParams | None) -> Any:
    """The device's trapdoor as hex, or published parameters (no trapdoor) as their payload."""
    if rp is None:
        return None
    return rp.to_bytes().hex() if isinstance(rp, RingPedersenSecret) else rp.to_payload()


def _decode_ring_pedersen(obj: Mapping[str, Any]) -> RingPedersenSecret | RingPedersenParams:
    if isinstance(obj["ring_pedersen"], Mapping):
        return RingPedersenParams.from_payload(obj["ring_pedersen"])
    return RingPedersenSecret.from_bytes(get_bytes(obj, "ring_pedersen"))


def _level(obj: Mapping[str, Any]) -> SecurityLevel:
    try:
        return level_by_name(obj["level"])
    except KeyError:
        raise InvalidMessage("share of an unknown security level") from None


def _tweak_value(tweak: int) -> int:
    """A public HD tweak: an integer in [0, q) (``UsageError`` otherwise)."""
    if type(tweak) is not int or not 0 <= tweak < secp256k1.order:
        raise UsageError("a tweak is an integer in [0, q)")
    return tweak


def _check_public(secret: SecretScalar, public: Point, what: str) -> None:
    if secret.public_point() != public:
        raise InvalidMessage(f"{what} does not match its public share")


class P1KeyShare:
    """The client's share: x1, the joint public key, P2's public share and the Paillier key.

    A signing share also holds c_key = Enc(x1) as sent to P2 and ``ring_pedersen``: the client's
    ring-Pedersen trapdoor (P2 proves each c3 against its parameters; the trapdoor lets P1
    verify by CRT), or, in a deployment that uses published parameters, those parameters alone.
    """

    __slots__ = ("x1", "public_point", "q2", "paillier", "c_key", "ring_pedersen", "locked", "level")

    def __init__(
        self,
        x1: SecretScalar,
        public_point: Point,
        q2: Point,
        paillier: PaillierSecretKey | None,
        locked: bool = False,
        *,
        c_key: int | None = None,
        ring_pedersen: RingPedersenSecret | RingPedersenParams | None = None,
        level: SecurityLevel = DEFAULT_LEVEL,
    ) -> None:
        if paillier is not None and (c_key is None or ring_pedersen is None):
            raise UsageError("a signing share needs c_key and the client's ring-Pedersen parameters")
        self.level = level
        self.x1 = x1
        self.public_point = public_point
        self.q2 = q2
        self.paillier = paillier
        self.c_key = c_key
        self.ring_pedersen = ring_pedersen
        self.locked = locked

    @property
    def public_key(self) -> bytes:
        """The joint public key Q, 33-byte compressed SEC1."""
        return self.public_point.to_bytes()

    @property
    def q1(self) -> Point:
        """Q1 = x1·G, the client's public share."""
        return self.x1.public_point()

    @property
    def client_params(self) -> RingPedersenParams | None:
        """The ring-Pedersen parameters P2 proves each c3 against (the device's, or published ones)."""
        rp = self.ring_pedersen
        return rp.params if isinstance(rp, RingPedersenSecret) else rp

    @property
    def can_sign(self) -> bool:
        """Whether this share can sign: it carries Paillier material (a backup pair does not) and is not locked."""
        return self.paillier is not None and not self.locked

    def copy(self) -> P1KeyShare:
        """An independent share object (locking the copy leaves this one alone)."""
        return P1KeyShare(self.x1, self.public_point, self.q2, self.paillier, self.locked, c_key=self.c_key,
                          ring_pedersen=self.ring_pedersen, level=self.level)

    def tweaked(self, tweak: int) -> P1KeyShare:
        """The share of the key Q + t·G for a public tweak t (HD derivation, docs/hd.md): the
        custodian adds t to x2, so P1 keeps x1, c_key = Enc(x1) and its Paillier key and only
        moves Q and Q2 by t·G. Locking the result does not lock this share."""
        shift = secp256k1.base_mul(_tweak_value(tweak))
        return P1KeyShare(self.x1, self.public_point + shift, self.q2 + shift, self.paillier, self.locked,
                          c_key=self.c_key, ring_pedersen=self.ring_pedersen, level=self.level)

    def lock(self) -> None:
        """Lock the share for good (persist it afterwards)."""
        self.locked = True

    def check_usable(self) -> None:
        """Raise ``KeyLocked`` if the share is locked."""
        if self.locked:
            raise KeyLocked("this ECDSA key share is locked after a failed signature; recover the wallet")

    def to_bytes(self) -> bytes:
        """The versioned canonical JSON encoding; secret: it belongs in the device's keychain only."""
        return _dump(
            {
                "kind": "ecdsa2p/p1-share",
                "v": _VERSION,
                "x1": self.x1.to_bytes().hex(),
                "Q": self.public_key.hex(),
                "Q2": self.q2.to_bytes().hex(),
                "paillier": None if self.paillier is None else self.paillier.to_bytes().hex(),
                "c_key": None if self.c_key is None else encode_nat(self.c_key),
                "ring_pedersen": _encode_ring_pedersen(self.ring_pedersen),
                "locked": self.locked,
                "level": self.level.name,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> P1KeyShare:
        """Strictly decode ``to_bytes`` output, checking x1·G = Q − Q2; raises ``InvalidMessage``."""
        obj = _load(data, "ecdsa2p/p1-share", ("x1", "Q", "Q2", "paillier", "c_key", "ring_pedersen", "locked", "level"))
        level = _level(obj)
        x1 = _secret(obj, "x1")
        public = get_point(obj, "Q", secp256k1)
        q2 = get_point(obj, "Q2", secp256k1)
        _check_public(x1, public - q2, "x1")
        if not (obj["paillier"] is None) == (obj["c_key"] is None) == (obj["ring_pedersen"] is None):
            raise InvalidMessage("paillier, c_key and ring_pedersen go together")
        paillier = c_key = ring_pedersen = None
        if obj["paillier"] is not None:
            paillier = PaillierSecretKey.from_bytes(get_bytes(obj, "paillier"))
            c_key = validate_ciphertext(paillier.public_key, get_nat(obj, "c_key", 2 * MAX_MODULUS_BITS))
            ring_pedersen = _decode_ring_pedersen(obj)
        if not isinstance(obj["locked"], bool):
            raise InvalidMessage("locked must be a boolean")
        return cls(x1, public, q2, paillier, obj["locked"], c_key=c_key, ring_pedersen=ring_pedersen, level=level)

    def __repr__(self) -> str:
        state = "locked" if self.locked else "signing" if self.paillier else "backup"
        return f"P1KeyShare(Q={self.public_key.hex()}, {state})"


class P2KeyShare:
    """The custodian's share: x2, the joint public key, Q1, P1's Paillier key and c_key.

    A signing share also holds ``client_params``: P1's ring-Pedersen parameters, verified with
    Π_prm and Π_mod when received, against which P2 proves every c3.
    """

    __slots__ = ("x2", "public_point", "q1", "paillier", "c_key", "client_params", "level")

    def __init__(
        self,
        x2: SecretScalar,
        public_point: Point,
        q1: Point,
        paillier: PaillierPublicKey | None,
        c_key: int | None,
        client_params: RingPedersenParams | None = None,
        level: SecurityLevel = DEFAULT_LEVEL,
    ) -> None:
        if (paillier is None) != (c_key is None) or (paillier is None) != (client_params is None):
            raise UsageError("paillier, c_key and client_params go together")
        self.level = level
        self.x2 = x2
        self.public_point = public_point
        self.q1 = q1
        self.paillier = paillier
        self.c_key = c_key
        self.client_params = client_params

    @property
    def public_key(self) -> bytes:
        """The joint public key Q, 33-byte compressed SEC1."""
        return self.public_point.to_bytes()

    @property
    def can_sign(self) -> bool:
        """Whether this share can sign: a backup pair carries no Paillier material."""
        return self.paillier is not None

    def copy(self) -> P2KeyShare:
        """An independent share object."""
        return P2KeyShare(self.x2, self.public_point, self.q1, self.paillier, self.c_key, self.client_params, self.level)

    def tweaked(self, tweak: int) -> P2KeyShare:
        """The share of the key Q + t·G for a public tweak t (HD derivation, docs/hd.md):
        x2 + t with Q2 + t·G, so every c3 and its proof (Π_c3 over Q2 = x2·G) use the tweaked
        share; Q1, c_key and P1's parameters stay as they are."""
        t = _tweak_value(tweak)
        x2 = SecretScalar(secp256k1, (self.x2.value + t) % secp256k1.order)
        if x2.value == 0:
            raise UsageError("the tweaked custodian share is zero")
        return P2KeyShare(x2, self.public_point + secp256k1.base_mul(t), self.q1, self.paillier, self.c_key,
                          self.client_params, self.level)

    def to_bytes(self) -> bytes:
        """The versioned canonical JSON encoding; secret: the custodian's store seals it at rest."""
        return _dump(
            {
                "kind": "ecdsa2p/p2-share",
                "v": _VERSION,
                "x2": self.x2.to_bytes().hex(),
                "Q": self.public_key.hex(),
                "Q1": self.q1.to_bytes().hex(),
                "paillier_n": None if self.paillier is None else encode_nat(self.paillier.n),
                "c_key": None if self.c_key is None else encode_nat(self.c_key),
                "client_ring_pedersen": None if self.client_params is None else self.client_params.to_payload(),
                "level": self.level.name,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> P2KeyShare:
        """Strictly decode ``to_bytes`` output, checking x2·G = Q − Q1; raises ``InvalidMessage``."""
        obj = _load(data, "ecdsa2p/p2-share", ("x2", "Q", "Q1", "paillier_n", "c_key", "client_ring_pedersen", "level"))
        level = _level(obj)
        x2 = _secret(obj, "x2")
        public = get_point(obj, "Q", secp256k1)
        q1 = get_point(obj, "Q1", secp256k1)
        _check_public(x2, public - q1, "x2")
        if not (obj["paillier_n"] is None) == (obj["c_key"] is None) == (obj["client_ring_pedersen"] is None):
            raise InvalidMessage("paillier_n, c_key and client_ring_pedersen go together")
        paillier = c_key = client_params = None
        if obj["paillier_n"] is not None:
            paillier = PaillierPublicKey(get_nat(obj, "paillier_n", MAX_MODULUS_BITS))
            c_key = validate_ciphertext(paillier, get_nat(obj, "c_key", 2 * MAX_MODULUS_BITS))
            client_params = RingPedersenParams.from_payload(obj["client_ring_pedersen"])
        return cls(x2, public, q1, paillier, c_key, client_params, level)

    def __repr__(self) -> str:
        state = "signing" if self.paillier else "backup"
        return f"P2KeyShare(Q={self.public_key.hex()}, {state})"


# Parkable state (``protocols.state``).
register_bytes(P1KeyShare)
register_bytes(P2KeyShare)
