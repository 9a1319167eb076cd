"""Oblivious pseudorandom function, RFC 9497, ciphersuite ``P256-SHA256``: OPRF mode (0x00), VOPRF mode (0x01).

The client learns ``F(skS, input)`` for the server's key without showing it ``input``; the server
learns nothing about ``input`` or the output. Password backups use it so that every guess at a
password needs one online, rate-limited evaluation by the custodian:

.. code-block:: text

    client                                         server (custodian)
    blind, blinded = oprf.blind(password)
                         ---- blinded ---->
                                                   evaluated = oprf.blind_evaluate(sk, blinded)
                         <--- evaluated ----
    output = oprf.finalize(password, blind, evaluated)      # == oprf.evaluate(sk, password)

Why P256-SHA256 and not ristretto255-SHA512
-------------------------------------------
Either would be new pure-Python group code: :mod:`curves.ed25519` only holds encodings for
libsodium's ``crypto_core_ed25519_*``, and PyNaCl's libsodium has no ristretto255, so that suite
would re-implement Edwards arithmetic, the ristretto encoding and its map, sharing nothing with
the existing module. Given that, P-256 (:mod:`curves.p256`) is the better fit:

- its conventions are the ones :mod:`curves.secp256k1` already has (33-byte compressed SEC1
  elements, 32-byte big-endian scalars, the same strict decoding checks);
- python-ecdsa, already a dependency, implements P-256, so the tests check the new arithmetic
  against an independent implementation; nothing installed implements ristretto255;
- RFC 9380 publishes its hash-to-curve vectors with every intermediate value (u, Q0, Q1), so the
  map is checked step by step, not only through the OPRF outputs;
- P-256 is the curve hardware security modules and cloud KMSs support, which keeps open moving
  the custodian's key into hardware later.

Both suites have the same 128-bit level, which an attacker who makes Q ``BlindEvaluate`` queries
lowers by log2(Q)/2 bits (static Diffie-Hellman attack, RFC 9497 section 7.2.3): the custodian's
rate limit is also what keeps Q small. RFC 9497 section 7.4 asks for constant-time operations on
secrets; pure Python cannot promise that, see :mod:`curves.p256` for what is done instead.

Scope
-----
The OPRF mode (section 3.3.1), ``DeriveKeyPair`` (section 3.2.1) and ``GenerateKeyPair``
(section 3.2), the context string (section 3.1), the group's serialisation with the strict
checks of section 4.3 and the explicit errors of section 5.3. The VOPRF mode (section 3.3.2,
``voprf_*``) adds the batched DLEQ proof of section 2.2, with which the client checks that the
server evaluated with the key whose public half it holds, the same key every time. The POPRF
mode is not implemented.

Messages cross the API as bytes: the functions deserialise what the peer sent (raising
:class:`DeserializeError`, an ``InvalidMessage``) and serialise what they return. Secrets
(:class:`ServerKey`, :class:`Blind`) never show in ``repr`` and leave their type only through
``to_bytes()``. Randomness comes only from :mod:`secrets` (through
:meth:`curves.base.Group.random_scalar`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from curves import InvalidEncoding, SecretScalar
from curves.base import Point
from curves.errors import CurveError
from curves.hash_to_field import hash_to_field
from curves.p256 import N, p256, scalar_inverse
from curves.p256_h2c import SECURITY_LENGTH, hash_to_curve
from protocols.errors import InvalidMessage, MPCError, ProofError, UsageError

__all__ = [
    "IDENTIFIER",
    "MODE_OPRF",
    "MODE_VOPRF",
    "NE",
    "NS",
    "NH",
    "MAX_INPUT_LENGTH",
    "DeserializeError",
    "InvalidInputError",
    "DeriveKeyPairError",
    "VerifyError",
    "ServerKey",
    "Blind",
    "context_string",
    "serialize_element",
    "deserialize_element",
    "serialize_scalar",
    "deserialize_scalar",
    "hash_to_group",
    "hash_to_scalar",
    "generate_key_pair",
    "derive_key_pair",
    "blind",
    "blind_with",
    "blind_evaluate",
    "finalize",
    "evaluate",
    "generate_proof",
    "verify_proof",
    "voprf_blind_evaluate",
    "voprf_blind_evaluate_batch",
    "voprf_finalize",
    "voprf_finalize_batch",
]

IDENTIFIER = b"P256-SHA256"
"""The ciphersuite identifier (RFC 9497, section 4.3)."""
MODE_OPRF = 0x00
"""modeOPRF (RFC 9497, section 3.1)."""
MODE_VOPRF = 0x01
"""modeVOPRF (RFC 9497, section 3.1)."""
NE = 33
"""Ne: bytes of a serialised element (compressed SEC1)."""
NS = 32
"""Ns: bytes of a serialised scalar."""
NH = 32
"""Nh: bytes of the output (SHA-256)."""
MAX_INPUT_LENGTH = 2**16 - 1
"""Inputs are length-prefixed with two bytes, so at most 2^16 - 1 of them (RFC 9497, section 5.1)."""

_MODES = (MODE_OPRF, MODE_VOPRF)
_PROOF_LENGTH = 2 * NS
_GROUP = p256


# --- errors (RFC 9497, section 5.3) ---------------------------------------------------------
class DeserializeError(InvalidMessage):
    """Bytes that are not a valid serialised element or scalar (DeserializeError and
    InputValidationError of RFC 9497, sections 4.3 and 5.3): wrong length, bad prefix,
    non-canonical, off the curve, the identity, a scalar not below the order (or zero where a
    non-zero one is required)."""


class InvalidInputError(MPCError):
    """The input hashes to the identity element (RFC 9497, sections 3.3.1 and 5.3; probability
    about 2^-256, so seeing it means a broken hash or an attack, not bad luck)."""


class DeriveKeyPairError(MPCError):
    """``DeriveKeyPair`` found no non-zero scalar in 256 attempts (RFC 9497, section 3.2.1)."""


class VerifyError(ProofError):
    """The server's DLEQ proof did not verify (VerifyError of RFC 9497, sections 3.3.2 and 5.3):
    it did not evaluate with the key of the public key the client holds."""


# --- secrets --------------------------------------------------------------------------------
class _Secret:
    """A non-zero secret scalar of P-256: redacted ``repr``, constant-time ``==``, no pickling."""

    __slots__ = ("_scalar",)

    def __init__(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < N:
            raise UsageError(f"{type(self).__name__} must be a non-zero scalar below the order")
        self._scalar = SecretScalar(_GROUP, value)

    @property
    def _value(self) -> int:
        return self._scalar.value

    def to_bytes(self) -> bytes:
        """SerializeScalar of the secret (RFC 9497, section 4.3): the only way out of this type."""
        return self._scalar.to_bytes()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._scalar == other._scalar

    def __hash__(self) -> int:
        raise TypeError(f"{type(self).__name__} is not hashable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(P256-SHA256, <redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(f"{type(self).__name__} is serialised only through to_bytes()")


class ServerKey(_Secret):
    """The server's private key skS (RFC 9497, section 3.2)."""

    __slots__ = ("_public",)

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self._public: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerKey:
        """DeserializeScalar of a stored key; zero is refused (RFC 9497, sections 3.2 and 4.3)."""
        return cls(deserialize_scalar(data, nonzero=True))

    def public_key(self) -> bytes:
        """pkS = SerializeElement(ScalarMultGen(skS)) (computed once; it is public)."""
        if self._public is None:
            self._public = serialize_element(_GROUP.base_mul(self._value))
        return self._public


class Blind(_Secret):
    """The client's blinding scalar, kept between ``blind`` and ``finalize``, with its mode."""

    __slots__ = ("_mode",)

    def __init__(self, value: int, mode: int = MODE_OPRF) -> None:
        super().__init__(value)
        self._mode = _check_mode(mode)

    @property
    def mode(self) -> int:
        """The mode whose ``finalize`` this blind is for (MODE_OPRF or MODE_VOPRF)."""
        return self._mode

    @classmethod
    def random(cls, mode: int = MODE_OPRF) -> Blind:
        """RandomScalar() (RFC 9497, section 4.7): uniform in [1, n) from :mod:`secrets`."""
        return cls(_GROUP.random_scalar(), mode)

    @classmethod
    def from_bytes(cls, data: bytes, mode: int = MODE_OPRF) -> Blind:
        """DeserializeScalar of a stored blind (non-zero)."""
        return cls(deserialize_scalar(data, nonzero=True), mode)


# --- context and group helpers (RFC 9497, sections 3.1 and 4.3) -----------------------------
def _check_mode(mode: int) -> int:
    if mode not in _MODES:
        raise UsageError(f"unsupported OPRF mode {mode!r}")
    return mode


def _check_input(name: str, value: bytes) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise UsageError(f"{name} must be bytes")
    if len(value) > MAX_INPUT_LENGTH:
        raise UsageError(f"{name} is longer than {MAX_INPUT_LENGTH} bytes")
    return bytes(value)


def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def _length_prefixed(value: bytes) -> bytes:
    return _i2osp(len(value), 2) + value


def context_string(mode: int = MODE_OPRF) -> bytes:
    """CreateContextString(mode, identifier) = "OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ identifier
    (RFC 9497, section 3.1)."""
    return b"OPRFV1-" + _i2osp(_check_mode(mode), 1) + b"-" + IDENTIFIER


def serialize_element(element: Point) -> bytes:
    """SerializeElement (RFC 9497, section 4.3): compressed SEC1, Ne = 33 bytes."""
    if not isinstance(element, Point) or element.group is not _GROUP:
        raise UsageError("not a P-256 element")
    if element.is_identity:
        raise UsageError("the identity element has no serialisation")
    return element.to_bytes()


def deserialize_element(data: bytes) -> Point:
    """DeserializeElement (RFC 9497, section 4.3): exactly 33 bytes, 02/03 prefix, x < p, on the
    curve, not the identity (the partial public-key validation of SP 800-56A 5.6.2.3.4)."""
    try:
        return _GROUP.decode_point(data)
    except InvalidEncoding as exc:
        raise DeserializeError(f"invalid P256-SHA256 element: {exc}") from None


def serialize_scalar(scalar: int) -> bytes:
    """SerializeScalar (RFC 9497, section 4.3): 32 bytes big-endian, value in [0, n)."""
    try:
        return _GROUP.encode_scalar(scalar)
    except (CurveError, TypeError):
        raise UsageError("scalar out of range") from None


def deserialize_scalar(data: bytes, *, nonzero: bool = False) -> int:
    """DeserializeScalar (RFC 9497, section 4.3): exactly 32 bytes, value below n (no reduction);
    with ``nonzero``, zero is refused as well."""
    try:
        return _GROUP.decode_scalar(data, nonzero=nonzero)
    except InvalidEncoding as exc:
        raise DeserializeError(f"invalid P256-SHA256 scalar: {exc}") from None


def hash_to_group(data: bytes, mode: int = MODE_OPRF) -> Point:
    """HashToGroup (RFC 9497, section 4.3): hash_to_curve with ``P256_XMD:SHA-256_SSWU_RO_`` and
    DST = "HashToGroup-" ‖ contextString. May return the identity; callers check."""
    return hash_to_curve(data, b"HashToGroup-" + context_string(mode))


def hash_to_scalar(data: bytes, mode: int = MODE_OPRF, dst: bytes | None = None) -> int:
    """HashToScalar (RFC 9497, section 4.3): hash_to_field into GF(n) with L = 48,
    expand_message_xmd with SHA-256 and DST = "HashToScalar-" ‖ contextString unless given."""
    if dst is None:
        dst = b"HashToScalar-" + context_string(mode)
    return hash_to_field(data, 1, dst, N, SECURITY_LENGTH, hashlib.sha256)[0]


def _input_element(private_input: bytes, mode: int) -> Point:
    """HashToGroup(input), refusing the identity with InvalidInputError (section 3.3.1)."""
    element = hash_to_group(_check_input("input", private_input), mode)
    if element.is_identity:
        raise InvalidInputError("the input maps to the identity element")
    return element


def _check_blind(blind_scalar: Blind, mode: int) -> None:
    """The blind must come from ``blind(..., mode)``: a VOPRF blind finalised without its proof
    (or the reverse) is a caller error, not something to compute around."""
    if not isinstance(blind_scalar, Blind):
        raise UsageError("finalize needs the Blind returned by blind()")
    if blind_scalar.mode != mode:
        raise UsageError("this Blind was made for another mode")


def _unblind(private_input: bytes, blind_scalar: Blind, evaluated: Point) -> bytes:
    """N = ScalarInverse(blind) · evaluatedElement, then the output hash (section 3.3.1)."""
    return _output(private_input, evaluated * scalar_inverse(blind_scalar._value))


def _output(private_input: bytes, unblinded: Point) -> bytes:
    """Hash(I2OSP(len(input), 2) ‖ input ‖ I2OSP(len(N), 2) ‖ N ‖ "Finalize") (section 3.3.1)."""
    transcript = (
        _length_prefixed(private_input) + _length_prefixed(serialize_element(unblinded)) + b"Finalize"
    )
    return hashlib.sha256(transcript).digest()


# --- key generation (RFC 9497, section 3.2) -------------------------------------------------
def generate_key_pair() -> tuple[ServerKey, bytes]:
    """GenerateKeyPair() (section 3.2): a random skS and pkS = SerializeElement(skS·G)."""
    key = ServerKey(_GROUP.random_scalar())
    return key, key.public_key()


def derive_key_pair(seed: bytes, info: bytes, mode: int = MODE_OPRF) -> tuple[ServerKey, bytes]:
    """DeriveKeyPair(seed, info) (RFC 9497, section 3.2.1): (skS, SerializeElement(pkS)).

    ``seed`` must be Ns = 32 bytes from a CSPRNG (the key is only as secret as the seed) and
    ``info`` a public string of at most 65535 bytes. Raises :class:`DeriveKeyPairError` if 256
    counters all hash to zero.
    """
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != NS:
        raise UsageError(f"the seed must be {NS} bytes")
    derive_input = bytes(seed) + _length_prefixed(_check_input("info", info))
    dst = b"DeriveKeyPair" + context_string(mode)
    for counter in range(256):
        secret = hash_to_scalar(derive_input + _i2osp(counter, 1), mode, dst)
        if secret != 0:
            key = ServerKey(secret)
            return key, key.public_key()
    raise DeriveKeyPairError("no non-zero key in 256 attempts")


# --- the OPRF protocol (RFC 9497, section 3.3.1) --------------------------------------------
def blind_with(private_input: bytes, blind_scalar: Blind) -> bytes:
    """The blinded element of ``input`` under a given blind: SerializeElement(blind ·
    HashToGroup(input)), the second half of ``Blind`` (section 3.3.1).

    Only for a blind from :meth:`Blind.random` (or a test vector's): reusing a blind links
    evaluations. :func:`blind` is the normal entry point.
    """
    if not isinstance(blind_scalar, Blind):
        raise UsageError("blind_with needs a Blind")
    element = _input_element(private_input, blind_scalar.mode)
    return serialize_element(element * blind_scalar._value)


def blind(private_input: bytes, mode: int = MODE_OPRF) -> tuple[Blind, bytes]:
    """Blind(input) (RFC 9497, section 3.3.1): (blind, SerializeElement(blindedElement)).

    Keep ``blind`` for :func:`finalize`; send the blinded element to the server. Raises
    :class:`InvalidInputError` if the input maps to the identity.
    """
    blind_scalar = Blind.random(mode)
    return blind_scalar, blind_with(private_input, blind_scalar)


def blind_evaluate(key: ServerKey, blinded_element: bytes) -> bytes:
    """BlindEvaluate(skS, blindedElement) (RFC 9497, section 3.3.1), server side.

    ``blinded_element`` is the client's message: it is deserialised strictly and a bad one
    raises :class:`DeserializeError` (an ``InvalidMessage``). Returns the serialised
    evaluatedElement = skS · blindedElement.
    """
    if not isinstance(key, ServerKey):
        raise UsageError("blind_evaluate needs a ServerKey")
    element = deserialize_element(blinded_element)
    return serialize_element(element * key._value)


def finalize(private_input: bytes, blind_scalar: Blind, evaluated_element: bytes) -> bytes:
    """Finalize(input, blind, evaluatedElement) (RFC 9497, section 3.3.1), client side.

    ``evaluated_element`` is the server's message, deserialised strictly (a bad one raises
    :class:`DeserializeError`). Returns the Nh = 32-byte PRF output.
    """
    _check_blind(blind_scalar, MODE_OPRF)
    private_input = _check_input("input", private_input)
    return _unblind(private_input, blind_scalar, deserialize_element(evaluated_element))


def evaluate(key: ServerKey, private_input: bytes, mode: int = MODE_OPRF) -> bytes:
    """Evaluate(skS, input) (RFC 9497, section 3.3.1): the PRF output computed with the key,
    equal to what :func:`finalize` gives the client for the same input."""
    if not isinstance(key, ServerKey):
        raise UsageError("evaluate needs a ServerKey")
    private_input = _check_input("input", private_input)
    return _output(private_input, _input_element(private_input, mode) * key._value)


# --- DLEQ proofs (RFC 9497, section 2.2) ----------------------------------------------------
def _composites(b: Point, c: Sequence[Point], d: Sequence[Point], mode: int,
                key: int | None = None) -> tuple[Point, Point]:
    """ComputeComposites (section 2.2.2), or ComputeCompositesFast (section 2.2.1) given ``key``.

    M = Σ d_i·C[i] and Z = Σ d_i·D[i] (= key·M for the server), with each d_i hashed from a
    seed bound to B and the context, the index and the pair (C[i], D[i]).
    """
    if not c or len(c) != len(d) or len(c) > 0xFFFF:
        raise UsageError("DLEQ needs two non-empty lists of the same length")
    seed_dst = b"Seed-" + context_string(mode)
    seed = hashlib.sha256(_length_prefixed(serialize_element(b)) + _length_prefixed(seed_dst)).digest()
    m = z = _GROUP.identity()
    for i, (ci, di) in enumerate(zip(c, d)):
        transcript = (_length_prefixed(seed) + _i2osp(i, 2) + _length_prefixed(serialize_element(ci))
                      + _length_prefixed(serialize_element(di)) + b"Composite")
        weight = hash_to_scalar(transcript, mode)
        m = m + ci * weight
        if key is None:
            z = z + di * weight
    return m, (m * key if key is not None else z)


def _challenge(b: Point, m: Point, z: Point, t2: Point, t3: Point, mode: int) -> int:
    """The Fiat-Shamir challenge c = HashToScalar(challengeTranscript) of section 2.2."""
    transcript = b"".join(_length_prefixed(serialize_element(e)) for e in (b, m, z, t2, t3))
    return hash_to_scalar(transcript + b"Challenge", mode)


def generate_proof(key: ServerKey, a: Point, b: Point, c: Sequence[Point], d: Sequence[Point],
                   mode: int = MODE_VOPRF, *, r: int | None = None) -> bytes:
    """GenerateProof(k, A, B, C, D) (RFC 9497, section 2.2.1): a proof that k·A = B and
    k·C[i] = D[i] for every i, serialised as SerializeScalar(c) ‖ SerializeScalar(s).

    ``r`` is the proof's random scalar; leave it out (it is drawn from :mod:`secrets`) except to
    reproduce a test vector: a repeated ``r`` reveals the key.
    """
    if not isinstance(key, ServerKey):
        raise UsageError("generate_proof needs a ServerKey")
    nonce = _GROUP.random_scalar() if r is None else r
    if not 0 < nonce < N:
        raise UsageError("the proof scalar must be non-zero and below the order")
    m, z = _composites(b, c, d, mode, key._value)
    challenge = _challenge(b, m, z, a * nonce, m * nonce, mode)
    response = (nonce - challenge * key._value) % N
    return serialize_scalar(challenge) + serialize_scalar(response)


def verify_proof(a: Point, b: Point, c: Sequence[Point], d: Sequence[Point], proof: bytes,
                 mode: int = MODE_VOPRF) -> None:
    """VerifyProof(A, B, C, D, proof) (RFC 9497, section 2.2.2); raises :class:`VerifyError`
    when it fails and :class:`DeserializeError` for a malformed proof (64 bytes, two scalars
    below the order)."""
    if not isinstance(proof, (bytes, bytearray)) or len(proof) != _PROOF_LENGTH:
        raise DeserializeError(f"a proof must be {_PROOF_LENGTH} bytes")
    challenge = deserialize_scalar(proof[:NS])
    response = deserialize_scalar(proof[NS:])
    m, z = _composites(b, c, d, mode)
    t2, t3 = a * response + b * challenge, m * response + z * challenge
    if any(e.is_identity for e in (m, z, t2, t3)):
        raise VerifyError("DLEQ proof does not verify")
    expected = serialize_scalar(_challenge(b, m, z, t2, t3, mode))
    if not hmac.compare_digest(expected, bytes(proof[:NS])):
        raise VerifyError("DLEQ proof does not verify")


# --- the VOPRF protocol (RFC 9497, section 3.3.2) -------------------------------------------
def voprf_blind_evaluate_batch(key: ServerKey, blinded_elements: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """BlindEvaluate(skS, pkS, blindedElement) of the VOPRF mode (section 3.3.2) for a batch:
    the serialised evaluated elements and one DLEQ proof for all of them.

    Each blinded element is the client's message, deserialised strictly (DeserializeError).
    Clients make their blinds with ``blind(input, MODE_VOPRF)``.
    """
    if not isinstance(key, ServerKey):
        raise UsageError("voprf_blind_evaluate needs a ServerKey")
    blinded = [deserialize_element(e) for e in blinded_elements]
    evaluated = [e * key._value for e in blinded]
    public = deserialize_element(key.public_key())
    proof = generate_proof(key, _GROUP.generator(), public, blinded, evaluated, MODE_VOPRF)
    return [serialize_element(e) for e in evaluated], proof


def voprf_blind_evaluate(key: ServerKey, blinded_element: bytes) -> tuple[bytes, bytes]:
    """BlindEvaluate of the VOPRF mode (section 3.3.2): (evaluatedElement, proof)."""
    evaluated, proof = voprf_blind_evaluate_batch(key, [blinded_element])
    return evaluated[0], proof


def voprf_finalize_batch(inputs: Sequence[bytes], blinds: Sequence[Blind],
                         evaluated_elements: Sequence[bytes], blinded_elements: Sequence[bytes],
                         public_key: bytes, proof: bytes) -> list[bytes]:
    """Finalize of the VOPRF mode (section 3.3.2) for a batch: verify the server's proof against
    ``public_key`` (raising :class:`VerifyError`), then unblind every output.

    Every element from outside (the evaluated elements, the public key, the proof) is
    deserialised strictly (DeserializeError).
    """
    if not len(inputs) == len(blinds) == len(evaluated_elements) == len(blinded_elements) > 0:
        raise UsageError("inputs, blinds and elements must be non-empty lists of the same length")
    for blind_scalar in blinds:
        _check_blind(blind_scalar, MODE_VOPRF)
    checked = [_check_input("input", i) for i in inputs]
    evaluated = [deserialize_element(e) for e in evaluated_elements]
    blinded = [deserialize_element(e) for e in blinded_elements]
    verify_proof(_GROUP.generator(), deserialize_element(public_key), blinded, evaluated, proof,
                 MODE_VOPRF)
    return [_unblind(i, b, e) for i, b, e in zip(checked, blinds, evaluated)]


def voprf_finalize(private_input: bytes, blind_scalar: Blind, evaluated_element: bytes,
                   blinded_element: bytes, public_key: bytes, proof: bytes) -> bytes:
    """Finalize of the VOPRF mode (section 3.3.2): the output, once the proof verifies."""
    return voprf_finalize_batch([private_input], [blind_scalar], [evaluated_element],
                                [blinded_element], public_key, proof)[0]
