"""The service's first frames: strict parsing of a request (size, nesting depth, strings), the
client's credentials and session id, each operation's parameters, and the frames of an
operation's messages (``mpc.service.server``: Wire protocol). Every malformed first frame is
``INPUT_INVALID``; a frame that is not a canonical message of the session is ``MESSAGE_INVALID``.

Wire protocol (text frames, JSON)
---------------------------------
The client's first frame is a request object (at most 64 KiB, nested at most
``MAX_REQUEST_DEPTH`` deep)::

    {"op": "create_client", "operator_key"?}                  -> {"result": {"client_id", "token"}}
    {"op": "get_client", "client_id", "token"}                -> {"result": <custodian view>}
    {"op": "rotate_token", "client_id", "token"}              -> {"result": {"client_id", "token"}}
    {"op": "stored_client_backup_share", "client_id", "token", "method"?, "confirmation"}
                                                              -> {"result": <custodian view>}
    {"op": "generate" | "backup" | "recover" | "eject" | "sign" | "presign" | "sign_presigned" | "derive",
     "client_id", "token", "session_id": 64 hex digits, ...parameters}
                                                              -> {"ready": {"session_id", "expect"}}
    {"op": "resume", "client_id", "token", "session_id"}      -> {"ready": {...}} + replayed frames
    {"op": "enrol_device", "client_id", "token", "device_public"} -> {"result": <custodian view>}

Device authorisation (``mpc.service.credentials``; ``docs/operations.md``, Device keys): after
the token check the service answers every request of a client with ``{"challenge": hex}``
(32 bytes) and the device answers ``{"device_sig": hex}`` (Ed25519, 64 bytes) over
``mpc.wire.device_auth_message(challenge, request)`` (``enrol_device`` adds ``"possession"``:
proofs of the signing shares); only then does the answer above come. ``generate`` and
``recover`` carry ``device_public``, the device's key (registered by a first generate, by a
completed recover). Not asked: ``get_client`` of a client with no device key, ``resume`` of a
session no key opened (``NOT_FOUND``). During an operation the device may send
``{"abort":true}``: its own step failed, the session ends now (``mpc.wire.ABORT_FRAME``).

Operator ops (``operator_key``, or the operator's client certificate)::

    {"op": "get_client", "client_id", "operator_key"}         -> {"result": <custodian view>}
    {"op": "revoke_token", "client_id", "operator_key"}       -> {"result": {"client_id", "revoked": true}}
    {"op": "issue_token", "client_id", "operator_key"}        -> {"result": {"client_id", "token"}}
    {"op": "unlock_client", "client_id", "operator_key"}      -> {"result": <custodian view>}
    {"op": "revoke_device", "client_id", "operator_key"}      -> {"result": <custodian view>}

``create_client`` needs the operator too unless the service runs with open registration.
Tokens: ``rotate_token`` replaces the client's token (the old one is dead at once);
``revoke_token`` kills it (every later request, and the next message of an operation in flight,
gets ``AUTH_FAILED``) and ``issue_token`` gives the operator a fresh one to hand over;
``unlock_client`` clears the client's lockout (``Custodian.unlock``; ``INPUT_INVALID`` "not
supported" on an engine without it); ``revoke_device`` forgets the client's device key (the
device must enrol again, or the owner recovers onto a new device). A completed ``recover`` or ``eject`` also replaces the
token: its result frame carries the new one as ``result["token"]`` and the caller must keep it.
If that frame is lost, ``resume`` of that session with the old token answers, once and within
``session_ttl``, ready, the last step's messages and the result with a fresh token
(``mpc.service.results``; issue 18, client retries).

Operation parameters: backup ``method`` (default ``CLOUD``) and ``client_stores_backup``
(bool); recover and eject ``method``; sign and sign_presigned ``chain`` and ``data`` (hex: the
32-byte digest for secp256k1 chains, the message for ed25519 chains) and optionally ``path`` (an
HD path, docs/hd.md); derive ``paths`` (a list of 1 to 16 HD paths); presign ``count`` (an
integer from 1 to ``mpc.presign.MAX_PRESIGN_COUNT``: ECDSA precomputations the custodian makes
and keeps; the device stores nothing). sign_presigned is the same operation as sign (every
ECDSA sign takes a precomputation from the pool when there is one). After ``ready``
both sides exchange protocol messages, each one frame holding ``Message.to_bytes()`` exactly
(the client speaks first, with its "hello"). A ``sign`` or ``sign_presigned``
request may carry that first message itself (``"message"``: the frame's text exactly; issue 30,
round five): the custodian steps it with the open, commits both at once and answers ``ready``
(``expect``: the round after it) followed by its replies. A message that is not a canonical
message of this session fails the request with ``MESSAGE_INVALID``, one the protocol refuses
with the error a first frame would get, and nothing is opened; the same request again once its open committed
answers ``ready`` and the committed replies (as ``resume``). When the custodian's session completes the server
sends ``{"result": <custodian result>}`` (the view of ``get_client`` (plus ``token`` after recover
and eject), the signature's ``SignResult.to_json()``, or presign's counts per curve) and closes
the connection normally. Every message of an operation re-checks the client's token and the
device key its session was opened under.
Every control frame (``result``, ``ready``, ``error``) also carries ``"request_id"``: the
connection's request id, which every log and audit line of it carries too (``mpc.service.observability``).
On the same port, plain HTTP ``GET /healthz``, ``/readyz`` and ``/metrics`` answer without a
WebSocket (``docs/operations.md``, Monitor).

Errors are ``{"error": {"id": CODE, "message": text}}`` with the stable codes of ``mpc.errors``
(``docs/errors.md``): ``AUTH_FAILED`` for a missing or wrong token (or an unknown client: the
answer is the same; also a missing or wrong operator key), ``INPUT_INVALID`` for a malformed request
(any first frame that is not a JSON object of bounded size and depth with an ``op``),
``RATE_LIMITED`` for a request over a limit, ``MESSAGE_INVALID`` for a frame
that is not a canonical message of this session (the session is unchanged and the connection
stays open, up to ``MAX_INVALID_FRAMES``), ``NOT_FOUND`` for an unknown, finished, expired or
busy session; an abort (``PROTOCOL_ABORTED``, ``DKG_FAILED``, ``KEY_LOCKED``, …) ends the
session and closes the connection. A frame above ``MAX_FRAME_BYTES`` closes the connection
(1009); a binary frame is ``MESSAGE_INVALID``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from mpc.errors import (
    AuthFailed,
    InputInvalid,
    MessageInvalid,
)
from mpc.presign import MAX_PRESIGN_COUNT
from protocols.hd import MAX_PATHS
from mpc.wire import (
    FIRST_MESSAGE_OPERATIONS,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_DEPTH,
    nested_deeper_than,
)
from protocols.errors import InvalidMessage
from protocols.rounds import Message

_MAX_CLIENT_ID_CHARS = 256
_MAX_PATH_CHARS = 200  # a path of 10 levels is at most 123 characters
SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{64}")


def parse_request(frame: Any) -> dict[str, Any]:
    """The request object of a first frame; anything else is ``INPUT_INVALID`` (never another
    error: size and nesting are bounded before decoding, strings must be valid Unicode)."""
    if not isinstance(frame, str) or len(frame) > MAX_REQUEST_BYTES:
        raise InputInvalid("the first frame must be a JSON request object (text, at most 64 KiB)")
    if nested_deeper_than(frame, MAX_REQUEST_DEPTH):
        raise InputInvalid(f"the request is nested deeper than {MAX_REQUEST_DEPTH}")
    try:
        request = json.loads(frame, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InputInvalid("the request is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise InputInvalid("the request must be an object with an 'op'")
    if not frame.isascii() or "\\u" in frame:
        _check_strings(request)
    return request


def _check_strings(value: Any) -> None:
    """Refuse strings that are not valid Unicode (lone surrogates from ``\\ud800`` escapes).
    ``parse_request`` skips it for an ASCII frame without ``\\u``: no escape, no raw character
    outside ASCII, so no surrogate can be in what it decodes to."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputInvalid("the request holds an invalid Unicode string") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def client_credentials(request: dict[str, Any]) -> tuple[str, str]:
    """The request's client id and token (``AUTH_FAILED`` unless both are strings)."""
    client_id, token = request.get("client_id"), request.get("token")
    if not isinstance(client_id, str) or not isinstance(token, str):
        raise AuthFailed()
    return client_id, token


def parse_client_id(request: dict[str, Any]) -> str:
    client_id = request.get("client_id")
    if not isinstance(client_id, str) or not 0 < len(client_id) <= _MAX_CLIENT_ID_CHARS:
        raise InputInvalid("client_id must be a non-empty string")
    return client_id


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def operation_params(op: str, request: dict[str, Any]) -> dict[str, Any]:
    allowed = {"generate": (), "backup": ("method", "client_stores_backup"), "recover": ("method",),
               "eject": ("method",), "sign": ("chain", "data", "path"), "sign_presigned": ("chain", "data", "path"),
               "presign": ("count",), "derive": ("paths",)}[op]
    carried = ("message",) if op in FIRST_MESSAGE_OPERATIONS else ()  # first_message() reads it
    extra = set(request) - {"op", "client_id", "token", "session_id", "device_public", *allowed, *carried}
    if extra:
        raise InputInvalid(f"unknown request fields: {', '.join(sorted(extra))}")
    params = {name: request[name] for name in allowed if name in request}
    if "method" in params and not isinstance(params["method"], str):
        raise InputInvalid("method must be a string")
    if "client_stores_backup" in params and not isinstance(params["client_stores_backup"], bool):
        raise InputInvalid("client_stores_backup must be a boolean")
    if op == "presign":
        count = params.get("count")
        if type(count) is not int or not 1 <= count <= MAX_PRESIGN_COUNT:
            raise InputInvalid(f"presign needs 'count', an integer from 1 to {MAX_PRESIGN_COUNT}")
    if op == "derive":
        paths = params.get("paths")
        if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_PATHS or \
                not all(isinstance(p, str) and len(p) <= _MAX_PATH_CHARS for p in paths):
            raise InputInvalid(f"derive needs 'paths', a list of 1 to {MAX_PATHS} path strings")
    if "path" in params and not (isinstance(params["path"], str) and len(params["path"]) <= _MAX_PATH_CHARS):
        raise InputInvalid("path must be a string such as m/44'/60'/0'/0/5")
    if op in ("sign", "sign_presigned"):
        if not isinstance(params.get("chain"), str) or not isinstance(params.get("data"), str):
            raise InputInvalid(f"{op} needs 'chain' and 'data' (hex)")
        try:
            params["data"] = bytes.fromhex(params["data"])
        except ValueError:
            raise InputInvalid("data must be hex") from None
    return params


def parse_session_id(request: dict[str, Any]) -> str:
    session_id = request.get("session_id")
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.fullmatch(session_id):
        raise InputInvalid("session_id must be 64 lowercase hex digits")
    return session_id


if sys.version_info >= (3, 11):
    async def receive(ws: Any, seconds: float) -> Any:
        """The connection's next frame, within ``seconds`` (``asyncio.TimeoutError`` otherwise).
        ``asyncio.timeout`` runs the read in the calling task, where ``asyncio.wait_for`` wraps
        it in a task of its own (issue 30: three reads a signature, each a task, a timer's
        callbacks and a turn of the event loop more)."""
        async with asyncio.timeout(seconds):
            return await ws.recv()
else:  # Python 3.10: no asyncio.timeout
    async def receive(ws: Any, seconds: float) -> Any:
        """The connection's next frame, within ``seconds`` (``asyncio.TimeoutError`` otherwise)."""
        return await asyncio.wait_for(ws.recv(), seconds)


def frame_text(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))



def message_frame(frame: Any) -> bytes:
    """A protocol message frame as bytes (``MESSAGE_INVALID`` unless a text frame of ASCII); the
    worker decodes it, once, before the session is taken (``parse_message``)."""
    if not isinstance(frame, str):
        raise MessageInvalid("protocol messages are text frames")
    try:
        return frame.encode("ascii")
    except UnicodeEncodeError:
        raise MessageInvalid("message must be ASCII") from None


def first_message(op: str, request: dict[str, Any]) -> bytes | None:
    """The device's first protocol message carried by an operation's request (``"message"``,
    ``mpc.wire.FIRST_MESSAGE_OPERATIONS`` only: ``operation_params`` refuses it elsewhere), as
    bytes, or None; ``MESSAGE_INVALID`` unless it is what a message frame may hold
    (``message_frame``; the worker decodes it strictly for this session: ``parse_message``)."""
    if op not in FIRST_MESSAGE_OPERATIONS or "message" not in request:
        return None
    return message_frame(request["message"])


def parse_message(data: bytes, session_id: str) -> Message:
    """The protocol message of this session in ``data`` (strict: ``Message.from_bytes``, canonical
    encoding only); ``MESSAGE_INVALID`` otherwise."""
    try:
        message = Message.from_bytes(data)
    except InvalidMessage as exc:
        raise MessageInvalid(str(exc)) from None
    if message.session_id.hex() != session_id:
        raise MessageInvalid("message for another session")
    return message
