"""Two-party ECDSA presigning: the message-independent part of a Lindell 2017 signature, ahead.

Presign (``ecdsa2p/presign``), the nonce exchange of signing rounds 1-3, with no digest:

Round 1  P1 -> P2  Q1 and a commitment to (R1 = k1·G, Schnorr proof of k1)
Round 2  P2 -> P1  R2 = k2·G with its Schnorr proof
Round 3  P1 -> P2  opening of round 1
Output   P1: ``P1Presignature`` (k1, R, r).  P2: ``P2Presignature`` (k2⁻¹, R, r and
         c_pre = Enc(ρ·q + k2⁻¹·r·x2 mod q; fresh r^N) ⊕ (k2⁻¹·r mod q) ⊙ c_key)

Both compute R = k1·R2 = k2·R1 and r = R.x mod q (r = 0 refused). The presignature id is the
presign run's session id; both sides bind their presignature to Q1 and Q, so a presignature of an
older share pair (after a refresh or recover) is refused instead of producing a bad signature.

Online sign (``ecdsa2p/online-sign``), one short round trip:

Round 1  P1 -> P2  presignature id, digest, Q1
Round 2  P2 -> P1  c3 = c_pre ⊕ (1 + N)^(k2⁻¹·m mod q)     (a plaintext add: no exponentiation)
Round 3  P1 -> P2  the signature (r, s, recid), after P1 verified it
Output   both parties: the same low-s ``Signature``

P1 decrypts s' (signed), s = k1⁻¹·s' mod q, normalises to low-s and verifies before releasing;
a failure locks its share for good (``KeyLocked``, CVE-2023-33242), exactly as ``SignP1``; the
lock is checked again right before decrypting. P2 verifies the signature and its recovery id.

**Why adding a known plaintext keeps the mask.** c3 decrypts to s' = ρ·q + a + b·x1 + c with
a = k2⁻¹·r·x2 mod q, b = k2⁻¹·r mod q and c = k2⁻¹·m mod q, where ρ < 2^MASK_BITS was drawn
fresh for this presignature and is used once. P1 must learn nothing beyond s' mod q. Write
s' = ρ·q + X with 0 ≤ X < q·(2 + 2^(ℓ+ε)) (Π_log* bounds |x1| ≤ 2^(ℓ+ε)). X is fixed before ρ is
chosen — c is a function of the digest, which does not depend on ρ, and the term is added to
the plaintext, not mixed into the mask — so ρ·q + X is within statistical distance
(X/q)/2^MASK_BITS < 2^(ℓ+ε+2−MASK_BITS) = 2^-126 of ρ'·q + (X mod q) for a uniform ρ', which a
simulator knowing only s' mod q = s·k1 can produce. Adding c moves X by less than q, so the bound
loses at most one bit against the plain signing protocol's. The Paillier randomness of c_pre is
fresh per presignature as well; the plaintext add reuses it, which is harmless since c_pre is
never revealed in any other form and P1 (the key owner) learns r^N from either anyway.

**Single use.** A presignature's secrets leave it once, through ``take()``: the online sessions
take them in their constructors, so one presignature object can start at most one signature.
Two signatures from one presignature (same R, two digests) would give away k, then x, to either
party; the engine therefore deletes the stored presignature before it builds the session (see
``mpc.presign``).

**Known caveat.** R is known before the message is. That is fine for plain ECDSA with the shared
key itself, as here (no BIP32 or other additive tweaks of the key at signing time). If key
derivation is ever added, presignatures must be re-randomised at signing time as in
Groth–Shoup, "On the security of ECDSA with additive key derivation and presignatures"
(EUROCRYPT 2022, ePrint 2021/1330), or the reuse of R across derived keys breaks security.
"""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

from curves import InvalidEncoding, Point, SecretScalar
from protocols import paillier
from protocols.commitments import COMMITMENT_LENGTH, NONCE_LENGTH
from protocols.ecdsa2p.common import CLIENT, CUSTODIAN, GROUP, TwoPartySession, point_and_proof_bytes
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare, _dump, _load
from protocols.ecdsa2p.sign import MASK_BITS, check_client_signature, decode_signature, nonce_point, signature_payload
from protocols.ecdsa2p.signature import Signature, digest_to_int, verify_signature
from protocols.encoding import encode_nat, get_bytes, get_nat, get_point, require_keys
from protocols.errors import InvalidMessage, KeyLocked, ProtocolAbort, UsageError
from protocols.paillier import MAX_MODULUS_BITS
from protocols.rounds import Message
from protocols.zk import schnorr

__all__ = [
    "PresignP1",
    "PresignP2",
    "OnlineSignP1",
    "OnlineSignP2",
    "P1Presignature",
    "P2Presignature",
    "PRESIGN_PROTOCOL",
    "ONLINE_PROTOCOL",
]

PRESIGN_PROTOCOL = "ecdsa2p/presign"
ONLINE_PROTOCOL = "ecdsa2p/online-sign"
ID_LENGTH = 32
Q = GROUP.order
_P1_KIND = "ecdsa2p/p1-presignature"
_P2_KIND = "ecdsa2p/p2-presignature"
_PUBLIC_KEYS = ("id", "R", "Q1", "Q")


class _Presignature:
    """What both sides' presignatures share: id, R, r, the share binding and single use."""

    __slots__ = ("id", "r_point", "r", "q1", "public_point", "_secret")

    def __init__(self, presignature_id: bytes, r_point: Point, q1: Point, public_point: Point, secret: Any) -> None:
        if not isinstance(presignature_id, bytes) or len(presignature_id) != ID_LENGTH:
            raise UsageError("a presignature id is 32 bytes")
        r = GROUP.affine(r_point)[0] % Q if not r_point.is_identity else 0  # type: ignore[attr-defined]
        if r == 0:
            raise UsageError("a presignature needs r != 0")
        self.id = presignature_id
        self.r_point = r_point
        self.r = r
        self.q1 = q1
        self.public_point = public_point
        self._secret = secret

    @property
    def used(self) -> bool:
        return self._secret is None

    def _take(self) -> Any:
        if self._secret is None:
            raise UsageError("this presignature was already used; presign again")
        secret, self._secret = self._secret, None
        return secret

    def check_binding(self, q1: Point, public_point: Point) -> None:
        """Raise ``UsageError`` unless the presignature was made for this share pair."""
        if self.q1 != q1 or self.public_point != public_point:
            raise UsageError("the presignature belongs to another share pair (refreshed or recovered since)")

    def _public_fields(self) -> dict[str, Any]:
        if self._secret is None:
            raise UsageError("a used presignature cannot be serialised")
        return {"id": self.id.hex(), "R": self.r_point.to_bytes().hex(), "Q1": self.q1.to_bytes().hex(),
                "Q": self.public_point.to_bytes().hex()}

    @staticmethod
    def _parse(data: bytes, kind: str, keys: tuple[str, ...]) -> tuple[dict[str, Any], bytes, Point, Point, Point]:
        obj = _load(data, kind, _PUBLIC_KEYS + keys)
        points = [get_point(obj, key, GROUP) for key in ("R", "Q1", "Q")]
        return obj, get_bytes(obj, "id", ID_LENGTH), points[0], points[1], points[2]

    def __reduce__(self) -> Any:
        raise TypeError("presignatures are serialised only through to_bytes()")

    def __repr__(self) -> str:
        state = "used" if self._secret is None else "unused"
        return f"{type(self).__name__}(id={self.id.hex()[:16]}…, {state}, <redacted>)"


def _secret_scalar(obj: dict[str, Any], key: str) -> SecretScalar:
    try:
        return SecretScalar(GROUP, GROUP.decode_scalar(get_bytes(obj, key, 32), nonzero=True))
    except InvalidEncoding:
        raise InvalidMessage(f"{key} is not a valid non-zero scalar") from None


class P1Presignature(_Presignature):
    """The client's presignature: the nonce k1 and R (single use: ``take()`` once)."""

    __slots__ = ()

    def __init__(self, presignature_id: bytes, k1: SecretScalar, r_point: Point, q1: Point, public_point: Point) -> None:
        super().__init__(presignature_id, r_point, q1, public_point, k1)

    def take(self) -> SecretScalar:
        """k1, once; a second call raises ``UsageError``."""
        k1: SecretScalar = self._take()
        return k1

    def to_bytes(self) -> bytes:
        """Canonical JSON (contains the secret nonce: store it like a key share)."""
        return _dump({"kind": _P1_KIND, "v": 1, **self._public_fields(), "k1": self._secret.to_bytes().hex()})

    @classmethod
    def from_bytes(cls, data: bytes) -> P1Presignature:
        obj, pid, r_point, q1, public = cls._parse(data, _P1_KIND, ("k1",))
        k1 = _secret_scalar(obj, "k1")
        try:
            return cls(pid, k1, r_point, q1, public)
        except UsageError:
            raise InvalidMessage("presignature has r = 0") from None


class P2Secret(NamedTuple):
    k2_inv: SecretScalar
    c_pre: int


class P2Presignature(_Presignature):
    """The custodian's presignature: k2⁻¹ and c_pre (single use: ``take()`` once)."""

    __slots__ = ()

    def __init__(self, presignature_id: bytes, k2_inv: SecretScalar, c_pre: int, r_point: Point, q1: Point,
                 public_point: Point) -> None:
        super().__init__(presignature_id, r_point, q1, public_point, P2Secret(k2_inv, c_pre))

    def take(self) -> P2Secret:
        """(k2⁻¹, c_pre), once; a second call raises ``UsageError``."""
        secret: P2Secret = self._take()
        return secret

    def to_bytes(self) -> bytes:
        fields = self._public_fields()
        secret: P2Secret = self._secret
        return _dump({"kind": _P2_KIND, "v": 1, **fields, "k2_inv": secret.k2_inv.to_bytes().hex(),
                      "c_pre": encode_nat(secret.c_pre)})

    @classmethod
    def from_bytes(cls, data: bytes) -> P2Presignature:
        obj, pid, r_point, q1, public = cls._parse(data, _P2_KIND, ("k2_inv", "c_pre"))
        k2_inv = _secret_scalar(obj, "k2_inv")
        c_pre = get_nat(obj, "c_pre", 2 * MAX_MODULUS_BITS)  # checked against N at use
        try:
            return cls(pid, k2_inv, c_pre, r_point, q1, public)
        except UsageError:
            raise InvalidMessage("presignature has r = 0") from None


def _blame(exc: ProtocolAbort, culprit: int) -> ProtocolAbort:
    return ProtocolAbort(exc.reason, culprit)


# --- presign ---------------------------------------------------------------------------------
class PresignP1(TwoPartySession):
    """The client's side of presigning; ``result()`` is a ``P1Presignature``."""

    protocol = PRESIGN_PROTOCOL

    def __init__(self, session_id: bytes, share: P1KeyShare) -> None:
        share.check_usable()
        if share.paillier is None:
            raise UsageError("a backup share cannot presign")
        super().__init__(session_id, CLIENT)
        self._share = share
        self._k1 = SecretScalar.random(GROUP)

    def _begin(self) -> list[Message]:
        r1 = self._k1.public_point()
        proof = schnorr.prove(self._k1, self._transcript("dlog", 1, CLIENT))
        commitment, nonce = self._commit(point_and_proof_bytes(r1, proof))
        self._opening = {"R1": r1.to_bytes().hex(), "proof": proof.to_payload(), "nonce": nonce.hex()}
        self._expect(2)
        return [self._message(1, {"Q1": self._share.q1.to_bytes().hex(), "commitment": commitment.hex()}, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> Point:
        require_keys(msg.payload, ("R2", "proof"))
        r2 = get_point(msg.payload, "R2", GROUP)
        schnorr.verify(r2, schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP),
                       self._transcript("dlog", 2, CUSTODIAN))
        return r2

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        try:
            r_point, _ = nonce_point(self._k1.value, inputs[CUSTODIAN])
        except ProtocolAbort as exc:
            raise _blame(exc, CUSTODIAN) from None
        self._finish(P1Presignature(self.session_id, self._k1, r_point, self._share.q1, self._share.public_point))
        return [self._message(3, self._opening, CUSTODIAN)]


class PresignP2(TwoPartySession):
    """The custodian's side of presigning; ``result()`` is a ``P2Presignature``."""

    protocol = PRESIGN_PROTOCOL

    def __init__(self, session_id: bytes, share: P2KeyShare) -> None:
        if share.paillier is None or share.c_key is None:
            raise UsageError("a backup share cannot presign")
        super().__init__(session_id, CUSTODIAN)
        self._share = share
        self._k2 = SecretScalar.random(GROUP)

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> bytes:
        require_keys(msg.payload, ("Q1", "commitment"))
        if get_point(msg.payload, "Q1", GROUP) != self._share.q1:
            raise InvalidMessage("the client's share does not belong to this custodian share")
        return get_bytes(msg.payload, "commitment", COMMITMENT_LENGTH)

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        self._commitment = inputs[CLIENT]
        proof = schnorr.prove(self._k2, self._transcript("dlog", 2, CUSTODIAN))
        self._expect(3)
        return [self._message(2, {"R2": self._k2.public_point().to_bytes().hex(), "proof": proof.to_payload()}, CLIENT)]

    def _decode_round3(self, msg: Message) -> Point:
        require_keys(msg.payload, ("R1", "proof", "nonce"))
        r1 = get_point(msg.payload, "R1", GROUP)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP)
        nonce = get_bytes(msg.payload, "nonce", NONCE_LENGTH)
        self._verify_opening(self._commitment, point_and_proof_bytes(r1, proof), nonce)
        schnorr.verify(r1, proof, self._transcript("dlog", 1, CLIENT))
        return r1

    def _on_round3(self, inputs: dict[int, Any]) -> list[Message]:
        try:
            r_point, r = nonce_point(self._k2.value, inputs[CLIENT])
        except ProtocolAbort as exc:
            raise _blame(exc, CLIENT) from None
        k2_inv = pow(self._k2.value, -1, Q)
        c_pre = presign_ciphertext(self._share, k2_inv, r)
        self._finish(P2Presignature(self.session_id, SecretScalar(GROUP, k2_inv), c_pre, r_point,
                                    self._share.q1, self._share.public_point))
        return []


def presign_ciphertext(share: P2KeyShare, k2_inv: int, r: int) -> int:
    """c_pre = Enc(ρ·q + k2⁻¹·r·x2 mod q) ⊕ (k2⁻¹·r mod q) ⊙ c_key: Lindell's step 4 without m."""
    pk = share.paillier
    rho = secrets.randbits(MASK_BITS)
    masked, _ = paillier.encrypt(pk, rho * Q + k2_inv * r * share.x2.value % Q)  # type: ignore[arg-type]
    scaled = paillier.mul(pk, share.c_key, k2_inv * r % Q)  # type: ignore[arg-type]
    return paillier.add(pk, masked, scaled)  # type: ignore[arg-type]


# --- online sign -----------------------------------------------------------------------------
class OnlineSignP1(TwoPartySession):
    """The client's side of signing from a presignature (consumed by the constructor)."""

    protocol = ONLINE_PROTOCOL

    def __init__(self, session_id: bytes, share: P1KeyShare, presignature: P1Presignature, digest: bytes) -> None:
        share.check_usable()
        if share.paillier is None:
            raise UsageError("a backup share cannot sign")
        if not isinstance(presignature, P1Presignature):
            raise UsageError("need a P1Presignature")
        presignature.check_binding(share.q1, share.public_point)
        self._m = digest_to_int(digest)  # validates the digest (UsageError) before consuming
        super().__init__(session_id, CLIENT)
        self._k1 = presignature.take()
        self._presignature = presignature
        self._share = share
        self._digest = bytes(digest)

    def _begin(self) -> list[Message]:
        self._share.check_usable()
        self._expect(2)
        payload = {"presignature": self._presignature.id.hex(), "digest": self._digest.hex(),
                   "Q1": self._share.q1.to_bytes().hex()}
        return [self._message(1, payload, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> int:
        require_keys(msg.payload, ("c3",))
        return paillier.decode_ciphertext(msg.payload, "c3", self._share.paillier.public_key)  # type: ignore[union-attr]

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        # Another session on this share object may have locked it meanwhile (CVE-2023-33242).
        self._share.check_usable()
        s_prime = paillier.decrypt_signed(self._share.paillier, inputs[CUSTODIAN])  # type: ignore[arg-type]
        s = pow(self._k1.value, -1, Q) * s_prime % Q
        if s != 0:
            signature = Signature.from_nonce_point(self._presignature.r_point, s)
            if verify_signature(self._share.public_point, self._digest, signature):
                self._finish(signature)
                return [self._message(3, signature_payload(signature), CUSTODIAN)]
        self._share.lock()
        raise KeyLocked("the computed signature did not verify: the key share is now locked (custodian at fault)")


class OnlineSignP2(TwoPartySession):
    """The custodian's side of signing from a presignature (consumed by the constructor)."""

    protocol = ONLINE_PROTOCOL

    def __init__(self, session_id: bytes, share: P2KeyShare, presignature: P2Presignature, digest: bytes) -> None:
        if share.paillier is None or share.c_key is None:
            raise UsageError("a backup share cannot sign")
        if not isinstance(presignature, P2Presignature):
            raise UsageError("need a P2Presignature")
        presignature.check_binding(share.q1, share.public_point)
        self._m = digest_to_int(digest)
        super().__init__(session_id, CUSTODIAN)
        self._k2_inv, c_pre = presignature.take()
        self._presignature = presignature
        self._share = share
        self._digest = bytes(digest)
        try:
            self._c_pre = paillier.validate_ciphertext(share.paillier, c_pre)
        except InvalidMessage:
            raise UsageError("the presignature's ciphertext is not valid under this share's Paillier key") from None

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> None:
        require_keys(msg.payload, ("presignature", "digest", "Q1"))
        if get_bytes(msg.payload, "presignature", ID_LENGTH) != self._presignature.id:
            raise InvalidMessage("the client names another presignature")
        if get_bytes(msg.payload, "digest", 32) != self._digest:
            raise InvalidMessage("the client asks to sign a different digest")
        if get_point(msg.payload, "Q1", GROUP) != self._share.q1:
            raise InvalidMessage("the client's share does not belong to this custodian share")

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        c3 = paillier.add_plain(self._share.paillier, self._c_pre, self._k2_inv.value * self._m % Q)  # type: ignore[arg-type]
        self._expect(3)
        return [self._message(2, {"c3": paillier.encode_ciphertext(c3)}, CLIENT)]

    def _decode_round3(self, msg: Message) -> Signature:
        return decode_signature(msg.payload)

    def _on_round3(self, inputs: dict[int, Any]) -> list[Message]:
        check_client_signature(self._share.public_point, self._digest, self._presignature.r, inputs[CLIENT])
        self._finish(inputs[CLIENT])
        return []
