"""The frames both sides of the network share: what the service (``mpc.service``) accepts and the
device's client (``mpc.remote``) sends, in one small module that both import, so a device app that
uses ``mpc.remote`` never loads the service.

- Frame limits: ``MAX_FRAME_BYTES`` (the largest protocol message, keygen round 5, is about
  100 kB), ``MAX_REQUEST_BYTES`` and ``MAX_REQUEST_DEPTH`` for the first (request) frame.
- Request shapes: ``OPERATIONS`` a client may start, ``OPERATOR_OPS`` that need the operator
  credential, ``TOKEN_ROTATING_OPERATIONS`` whose completion replaces the client's token,
  ``FIRST_MESSAGE_OPERATIONS`` whose request may carry the device's first message.
- Device authorisation (``docs/operations.md``, Device keys): ``DEVICE_OPS`` that the device's
  key must authorise, ``NEW_DEVICE_OPS`` authorised by a key the request brings, the
  ``challenge`` the service answers with, and ``device_auth_message``, what the device signs.
  ``ABORT_FRAME``: the device gave up an operation (its session is freed at once).
- Close codes: ``CLOSE_BUSY`` (1013, over the connection cap: try again later),
  ``CLOSE_RESTARTING`` (1001, the service drains: resume the session), ``CLOSE_POLICY`` (1008, too
  many invalid frames).
- ``KEEP_ALIVE_SUBPROTOCOL``: the WebSocket subprotocol with which one connection carries several
  requests, one after the other (a connection without it carries one); ``IDLE_CLOSE_REASON``: the
  close reason of a kept connection the service closed idle (no request of it was read).
- The client's TLS context and the URL check (``wss://`` everywhere, ``ws://`` on loopback only).
"""

from __future__ import annotations

import ipaddress
import re
import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mpc.errors import ConfigInvalid, TransportInsecure

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_DEPTH",
    "MAX_ANSWER_DEPTH",
    "OPERATIONS",
    "OPERATOR_OPS",
    "TOKEN_ROTATING_OPERATIONS",
    "FIRST_MESSAGE_OPERATIONS",
    "DEVICE_OPS",
    "NEW_DEVICE_OPS",
    "CHALLENGE_BYTES",
    "ABORT_FRAME",
    "device_auth_message",
    "hex_bytes",
    "CLOSE_BUSY",
    "CLOSE_RESTARTING",
    "CLOSE_POLICY",
    "KEEP_ALIVE_SUBPROTOCOL",
    "IDLE_CLOSE_REASON",
    "client_tls_context",
    "check_service_url",
    "is_loopback_literal",
    "nesting_depth",
    "nested_deeper_than",
]

MAX_FRAME_BYTES = 1 << 20  # the largest protocol message (keygen round 5) is about 100 kB
MAX_REQUEST_BYTES = 64 * 1024
MAX_REQUEST_DEPTH = 8  # requests are flat objects; deeper nesting is refused before decoding
MAX_ANSWER_DEPTH = 16  # the service's control frames (ready, results, errors): refused deeper, before decoding
_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')
OPERATIONS = ("generate", "backup", "recover", "eject", "sign", "presign", "sign_presigned", "derive")
OPERATOR_OPS = ("revoke_token", "issue_token", "unlock_client", "revoke_device")
TOKEN_ROTATING_OPERATIONS = ("recover", "eject")  # a completed one replaces the client's token
# Operations whose request may carry the device's first protocol message ("message": its text
# exactly as a frame carries it): the custodian's start sends nothing and its steps write nothing
# while the protocol runs, so the open and the first step commit together (issue 30, round five;
# docs/operations.md, The first message in the request). Not presign: it completes on its first
# message (its result would have to be kept in that commit); not the others: their custodian
# speaks first or their steps write (locks, shares, statuses).
FIRST_MESSAGE_OPERATIONS = ("sign", "sign_presigned")
# Requests the device's key authorises (over a fresh challenge of the service): every request of
# a client but create_client; NEW_DEVICE_OPS bring the key that signs them ("device_public"):
# recover (a new device, registered when the recover completes) and enrol_device (a device of a
# client that has no key yet; with a proof of possession of its signing shares).
DEVICE_OPS = ("get_client", "rotate_token", "stored_client_backup_share", "resume", "enrol_device", *OPERATIONS)
NEW_DEVICE_OPS = ("recover", "enrol_device")
CHALLENGE_BYTES = 32
ABORT_FRAME = '{"abort":true}'  # the device's step failed (a wrong passphrase): free the session now
_DEVICE_AUTH_DOMAIN = b"portal-mpc/device-auth/v1"
_UNSIGNED_FIELDS = ("token", "operator_key")  # credentials of their own, never signed over
CLOSE_BUSY = 1013
CLOSE_RESTARTING = 1001
CLOSE_POLICY = 1008
KEEP_ALIVE_SUBPROTOCOL = "portal-mpc.keep-alive.1"  # several requests per connection (issue 30)
IDLE_CLOSE_REASON = "idle"  # a kept connection closed with no request read from it
_LOWER_HEX = re.compile(r"[0-9a-f]*")


def client_tls_context(cafile: str | Path | None = None, client_cert: str | Path | None = None,
                       client_key: str | Path | None = None) -> ssl.SSLContext:
    """TLS 1.2+ client context verifying the server's certificate and host name against the
    system CAs, or only ``cafile``; ``client_cert`` (and ``client_key``) for mTLS."""
    try:
        context = ssl.create_default_context(cafile=None if cafile is None else str(cafile))
    except (OSError, ssl.SSLError):
        raise ConfigInvalid(f"cannot load the CA file {cafile}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        try:
            context.load_cert_chain(str(client_cert), None if client_key is None else str(client_key))
        except (OSError, ssl.SSLError):
            raise ConfigInvalid(f"cannot load the client certificate {client_cert}") from None
    elif client_key is not None:
        raise ConfigInvalid("client_key needs client_cert")
    return context


def is_loopback_literal(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP literal (127.0.0.0/8, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def check_service_url(url: str, allow_plaintext: bool) -> str:
    """The scheme (``ws`` or ``wss``) of a custodian service URL; ``ws://`` to a host that is
    not a loopback literal (``localhost``, 127.0.0.0/8, ``::1``) is refused unless
    ``allow_plaintext`` (``TRANSPORT_INSECURE``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except (TypeError, ValueError, AttributeError):
        raise ConfigInvalid("the service URL must be ws://host:port or wss://host:port") from None
    if parts.scheme not in ("ws", "wss") or not host:
        raise ConfigInvalid("the service URL must be ws://host:port or wss://host:port")
    if parts.scheme == "ws" and not allow_plaintext and not is_loopback_literal(host):
        raise TransportInsecure("plaintext ws:// is for loopback only: use wss:// (or allow_plaintext=True)")
    return parts.scheme


def device_auth_message(challenge: bytes, request: Mapping[str, object]) -> bytes:
    """What the device key signs to authorise ``request`` on the connection that got
    ``challenge``: length-prefixed (4 bytes, big-endian) fields after a domain tag: the
    challenge, the client id, the op, the session id ("" if none) and the request's other
    fields as canonical JSON (sorted keys, no spaces; the token and operator key left out).
    A signature therefore holds for this one request on this one connection only."""
    fields = {key: value for key, value in request.items() if key not in _UNSIGNED_FIELDS}
    parts = [_DEVICE_AUTH_DOMAIN, bytes(challenge)]
    for name in ("client_id", "op", "session_id"):
        value = fields.get(name, "")
        parts.append(str(value).encode("utf-8"))
    parts.append(json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def hex_bytes(value: object, length: int) -> bytes | None:
    """``value`` decoded from hex if it is a hex string of exactly ``length`` bytes, else None
    (the challenge, device keys and signatures of the device authorisation)."""
    if not isinstance(value, str) or len(value) != 2 * length or not _LOWER_HEX.fullmatch(value):
        return None  # canonical only: lowercase, no white space (bytes.fromhex accepts both)
    return bytes.fromhex(value)


def nesting_depth(frame: str) -> int:
    """The deepest nesting of arrays and objects in JSON text ``frame`` (brackets inside strings
    do not count); linear in the frame, visiting only brackets, quotes and backslashes."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # the position of a character escaped by a backslash
    for match in _JSON_STRUCTURE.finditer(frame):
        char, at = match.group(), match.start()
        if at == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def nested_deeper_than(frame: str, limit: int) -> bool:
    """Whether JSON text ``frame`` nests deeper than ``limit``: asked before decoding a peer's
    frame, since a deep enough one exhausts the C parser's stack (a crash, not an exception,
    where the recursion limit was raised). Every level opens with a ``[`` or ``{``, so a frame
    with at most ``limit`` of them (counted in C, inside strings too) needs no scan: a sign
    request carries its first message, whose escaped quotes ``nesting_depth`` visits one by one
    (issue 30)."""
    return frame.count("[") + frame.count("{") > limit and nesting_depth(frame) > limit
