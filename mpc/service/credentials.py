"""Device-bound credentials of the custodian service (``docs/operations.md``, Device keys).

The token is a first factor only: every request of a client that acts on its wallet or on its
credentials is authorised by the device's key (``mpc.storage.device_key``). After the token
check the service answers the request with ``{"challenge": hex}`` (32 fresh bytes from
``secrets``, this connection's only) and the device answers ``{"device_sig": hex}``, its Ed25519
signature of ``mpc.wire.device_auth_message(challenge, request)``: the challenge, client id, op,
session id and every parameter, length-prefixed after a domain tag (proof of possession bound
to the connection, as DPoP, RFC 9449, binds a request to a key). Which key must sign:

- the client's **registered** device key, for every request, except:
- ``recover`` brings the key of the device it runs on (``device_public``), which signs it: the
  key is bound to the recover's session, authorises that session only (its resume and steps),
  and becomes the client's device key when the recover completes; the recover itself proves
  possession of the backup share, which a token thief does not have;
- ``enrol_device`` (a client created before device keys, or whose key the operator revoked)
  brings its key and proves possession of the client's *signing* shares over the challenge
  (``mpc.backup.possession``, Schnorr proofs of x1 and of the FROST share);
- ``generate`` of a client with no wallet and no key yet brings its key, registered at once
  (before a wallet exists the token is the only credential: there is nothing to take);
- ``get_client`` of a client with no registered key needs the token only (a read), and so does
  ``resume`` of a session no key opened (there is none: the answer is ``NOT_FOUND``; a
  session's steps check its key anyway, ``ServiceStore.check_step``).

A wrong, missing or malformed signature is ``AUTH_FAILED``; the check is one Ed25519
verification (libsodium) and a few primary-key reads, done before any other work. Everything
goes through :func:`authorise`, and every step of an operation through
``ServiceStore.check_step``: both decide with the same function (``check_device``'s), so a
revocation ledger hooks in there.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpc.backup import possession
from mpc.custodian import Custodian
from mpc.errors import AuthFailed, InputInvalid, StateInvalid
from mpc.service.store import ServiceStore
from mpc.status import SigningShareStatus
from mpc.storage.device_key import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verify_signature
from mpc.wallet import CURVES
from mpc.wire import CHALLENGE_BYTES, DEVICE_OPS, MAX_REQUEST_DEPTH, NEW_DEVICE_OPS, device_auth_message, hex_bytes, \
    nested_deeper_than
from protocols.errors import InvalidMessage, ProofError

__all__ = ["Claim", "claim", "authorise", "new_challenge", "parse_answer", "take_presigned"]

_MAX_ANSWER_CHARS = 8 * 1024


@dataclass(frozen=True)
class Claim:
    """The key that must sign a request: ``public``; ``pending`` when it is a key the request
    brings (recover, enrol_device, a first generate) rather than the registered one;
    ``register`` when it becomes the client's key as soon as the request is authorised."""

    public: bytes
    pending: bool = False
    register: bool = False

    @property
    def allowance(self) -> str:
        """The per-client rate-limit allowance the request draws on: the registered device's
        own, or the one for keys a request brings (a token thief can only drain the latter)."""
        return "new-device" if self.pending else "device"


def new_challenge() -> bytes:
    """A fresh challenge for one connection."""
    return secrets.token_bytes(CHALLENGE_BYTES)


def take_presigned(request: dict[str, Any], issued: bytes | None) -> tuple[bytes, tuple[bytes, None]] | None:
    """The request's own ``"device_sig"`` (removed from it: the device signed the request
    without it) with ``issued``, the challenge its connection's last result carried (issue 30,
    kept connections: the device signs its next request over it instead of waiting for a
    challenge frame), as ``(challenge, answer)`` for :func:`authorise`; None without one. The
    caller spends the issued challenge on the request that follows it, signed or not.
    ``AUTH_FAILED``: a ``device_sig`` with no challenge issued on this connection, or malformed."""
    if "device_sig" not in request:
        return None
    signature = hex_bytes(request.pop("device_sig"), SIGNATURE_BYTES)
    if issued is None or signature is None:
        raise AuthFailed()
    return issued, (signature, None)


def _request_key(request: Mapping[str, Any]) -> bytes:
    key = hex_bytes(request.get("device_public"), PUBLIC_KEY_BYTES)
    if key is None:
        raise InputInvalid("device_public must be the device's Ed25519 public key (64 hex digits)")
    return key


def claim(service: ServiceStore, custodian: Custodian, request: Mapping[str, Any]) -> Claim | None:
    """Which key must sign ``request`` (of a client whose token was checked), or None when the
    token suffices (``get_client`` of a client with no device key). ``AUTH_FAILED`` when no key
    can authorise it (a client with a wallet and no device key must enrol first)."""
    op, client_id = request["op"], request["client_id"]
    if op not in DEVICE_OPS:
        raise InputInvalid(f"unknown op {op!r}")
    if op in NEW_DEVICE_OPS:
        return Claim(_request_key(request), pending=True, register=op == "enrol_device")
    if op == "resume":  # under the key that opened the session; none bound: nothing to resume (NOT_FOUND)
        bound = service.session_device(str(request.get("session_id")), client_id)
        return None if bound is None else Claim(bound[0], pending=bound[1])
    registered = service.device(client_id)
    if registered is not None:
        return Claim(registered[0])
    if op == "get_client":
        return None
    if op == "generate" and custodian.store.client(client_id).signing_share_status == SigningShareStatus.NOT_CREATED.value:
        return Claim(_request_key(request), register=True)
    raise AuthFailed("no device key is registered for this client: enrol the device (enrol_device, with its "
                     "signing shares) or recover onto it")


def parse_answer(frame: Any) -> tuple[bytes, Mapping[str, Any] | None]:
    """The device's answer to a challenge: ``{"device_sig": 128 hex digits}``, plus
    ``"possession"`` for ``enrol_device``. Anything else is ``AUTH_FAILED``."""
    try:
        answer = json.loads(frame) if isinstance(frame, str) and len(frame) <= _MAX_ANSWER_CHARS \
            and not nested_deeper_than(frame, MAX_REQUEST_DEPTH) else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or set(answer) - {"device_sig", "possession"}:
        raise AuthFailed()
    signature = hex_bytes(answer.get("device_sig"), SIGNATURE_BYTES)
    proof = answer.get("possession")
    if signature is None or not (proof is None or isinstance(proof, dict)):
        raise AuthFailed()
    return signature, proof


def authorise(service: ServiceStore, custodian: Custodian, request: Mapping[str, Any], wanted: Claim,
              challenge: bytes, answer: tuple[bytes, Mapping[str, Any] | None]) -> Claim:
    """The one authorisation of a device request: the signature of ``wanted.public`` over the
    challenge and the request, then ``ServiceStore.check_device`` for the registered key (or
    the session's pending key), or the enrolment (possession of the signing shares, then the
    key is registered if the client has none). ``AUTH_FAILED`` otherwise; nothing changes."""
    signature, proof = answer
    verify_signature(wanted.public, device_auth_message(challenge, request), signature)
    client_id = request["client_id"]
    if request["op"] == "enrol_device":
        _check_enrolment(custodian, client_id, wanted.public, challenge, proof)
    elif proof is not None:
        raise AuthFailed()
    if wanted.register:
        if not service.enrol_device(client_id, wanted.public):
            service.check_device(client_id, wanted.public)  # a retried first generate: the same key
    elif not wanted.pending or request["op"] == "resume":
        service.check_device(client_id, wanted.public, request.get("session_id"))
    return wanted


def _check_enrolment(custodian: Custodian, client_id: str, public: bytes, challenge: bytes,
                     proof: Mapping[str, Any] | None) -> None:
    """``enrol_device``: the device proves it holds the client's signing shares (``AUTH_FAILED``
    otherwise; ``STATE_INVALID`` for a client without a wallet: generate enrols it)."""
    if not custodian.store.client(client_id).has_wallet:
        raise StateInvalid("this client has no wallet yet: generate registers the device key")
    shares = {curve: custodian._load_share(client_id, "signing", "", curve) for curve in CURVES}
    if proof is None:
        raise AuthFailed()
    try:
        possession.verify_enrolment(shares, proof, client_id=client_id, challenge=challenge, device_public=public)
    except (InvalidMessage, ProofError):
        raise AuthFailed() from None
