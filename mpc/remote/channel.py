"""What the blocking and the asyncio device-side clients share, with no I/O of its own.

``mpc.remote.blocking.RemoteCustodian`` (``websockets.sync``) and ``mpc.remote.aio.AsyncRemoteCustodian``
(``websockets.asyncio``) differ only in how they connect, wait and sleep. Everything else lives
here and is used by both:

- :class:`RetryPolicy` and :class:`Backoff`: exponential backoff with jitter (from ``secrets``)
  inside a total retry budget, honouring a ``retry after N s`` hint;
- :func:`transport_failure`: the typed error of a failed connection (``TLS_FAILED``,
  ``SERVICE_UNAVAILABLE``) and whether the request it carried can have been processed;
- :class:`RequestAttempts`: retrying a one-frame request (``get_client``, ``create_client``, the
  operator ops), only when that is safe for the request;
- :class:`OperationChannel`: the device side of one wallet operation across reconnects: which
  request starts the next connection (the operation, or ``resume``), which of the device's
  messages to send again after ``ready``, which replayed custodian messages to drop, and what
  each failure means (retry after a delay, or surface the error);
- :class:`RemoteBase`: the configuration both clients take (URL, TLS, operator key, timeouts,
  retries) and the request and operation builders their methods call.

The retry rules are documented in ``mpc.remote.blocking`` (module docstring) and ``docs/operations.md``
(Client retries).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

from mpc import errors
from mpc.backup import possession
from mpc.backup.methods import BackupMethod
from mpc.client import Client, EjectedKeys
from mpc.errors import (
    AuthFailed,
    ConfigInvalid,
    EngineError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    TlsFailed,
    TransportInsecure,
    from_protocol_error,
)
from mpc.storage.device_key import DeviceKey
from mpc.wallet import ClientView, RecoverResult, SignResult, client_view, recover_result
from mpc.wire import ABORT_FRAME, CHALLENGE_BYTES, MAX_FRAME_BYTES, check_service_url, client_tls_context, \
    device_auth_message, hex_bytes
from protocols.errors import MPCError
from protocols.rounds import Message, Session

__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_STEP_WAIT",
    "RESTARTABLE_OPERATIONS",
    "restart_delay",
    "Backoff",
    "Failure",
    "OperationChannel",
    "OperationSpec",
    "RemoteBase",
    "RequestAttempts",
    "RequestSpec",
    "RetryPolicy",
    "answer_challenge",
    "backup_spec",
    "device_signer",
    "generate_spec",
    "parse_control",
    "presign_spec",
    "recover_spec",
    "eject_spec",
    "sign_spec",
    "derive_spec",
    "transport_errors",
    "transport_failure",
    "handshake_cut",
    "probe_tls",
]

DEFAULT_RETRY_BUDGET = 30.0
"""Seconds an operation or request may keep retrying after its first failure (a restart of the
service takes a few seconds)."""
DEFAULT_STEP_WAIT = 15.0
"""Seconds ``NOT_FOUND`` on ``resume`` is retried once the operation was accepted (its session is
out of the database while a worker steps it, and comes back when the step parks it again)."""

log = logging.getLogger("mpc.remote")  # each retry at INFO with its reason (issue 26)

# Operations a client starts again by itself after OPERATION_LOST (issue 26): a fresh device session
# (fresh nonces) of the same request, harmless twice: a lost sign signs again, a lost presign makes
# more precomputations. The others change the wallet and are left to the caller.
RESTARTABLE_OPERATIONS = frozenset({"sign", "sign_presigned", "presign"})
_MAX_RESTARTS = 2  # a node lost with the step is one loss; more in a row is a service to report

# Close codes that say the same connection attempt would fail again: never retried.
_FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1009, 1010})
_BUSY_CLOSE_CODE = 1013
# A TLS connection cut (mid-handshake too, as when the service restarts) is a lost connection,
# not a certificate problem: retried like any other.
_TLS_CONNECTION_LOST = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
# Answers that say the service did not act on the request (or rolled it back): retried after a
# delay. STORE_UNAVAILABLE: the database was unreachable and what was not committed rolled back.
_REFUSAL_CODES = frozenset({RateLimited.code, ServiceUnavailable.code, "STORE_UNAVAILABLE"})
# Answers to a re-opened operation that may come from our own first open (still running, or
# parked): "session id in use" (INPUT_INVALID), or the operation lock it took.
_AMBIGUOUS_REOPEN_CODES = frozenset({"INPUT_INVALID", "OPERATION_IN_PROGRESS"})
_MESSAGE_PREFIX = '{"payload":'  # canonical messages sort their keys: "payload" comes first
# MESSAGE_INVALID for a message resent after resume: the old connection's frames, buffered by the
# service before the cut, may have been processed meanwhile (the duplicate changes nothing): a
# new resume resynchronises. At most this many times per operation.
_MAX_RESYNCS = 3


# --- backoff ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries (``mpc.remote.blocking``, Retries).

    ``budget``: seconds after the first failure during which retries may start (0: none).
    ``first_delay`` doubles after each retry up to ``max_delay``; each delay is drawn uniformly
    from its upper half (jitter, from ``secrets``) and is at least a ``retry after`` hint.
    ``max_retries`` caps the number of retries (None: only the budget). ``step_wait``: how long
    ``NOT_FOUND`` on resume of an accepted operation is retried (never beyond the budget).
    """

    budget: float = DEFAULT_RETRY_BUDGET
    first_delay: float = 0.1
    max_delay: float = 5.0
    max_retries: int | None = None
    step_wait: float = DEFAULT_STEP_WAIT

    def __post_init__(self) -> None:
        for name in ("budget", "first_delay", "max_delay", "step_wait"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise ConfigInvalid(f"{name} must be a finite number of seconds, at least 0")
        if self.max_delay < self.first_delay:
            raise ConfigInvalid("max_delay must be at least first_delay")
        if self.max_retries is not None and (type(self.max_retries) is not int or self.max_retries < 0):
            raise ConfigInvalid("max_retries must be None or an integer at least 0")


def restart_delay(op: str, restarts: Backoff, lost: EngineError) -> float:
    """After ``lost`` (``OPERATION_LOST``) of ``op``: the seconds before starting it again with a
    new device session (``RESTARTABLE_OPERATIONS``, at most twice, within the retry budget), or
    raise ``lost``."""
    if op not in RESTARTABLE_OPERATIONS or lost.code != "OPERATION_LOST" or restarts.retries >= _MAX_RESTARTS:
        raise lost
    return restarts.delay(lost)


def _jitter() -> float:
    """A uniform fraction in [0, 1) from the operating system's CSPRNG (``secrets``)."""
    return secrets.randbelow(1 << 30) / (1 << 30)


class Backoff:
    """The delays of one operation's (or request's) retries under a :class:`RetryPolicy`.

    :meth:`delay` is called after each failure with the error the caller would see; it returns
    the seconds to wait before the next attempt, or raises that error when the policy allows no
    more (budget spent, retry count reached, or a ``retry after`` hint beyond the budget).
    """

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.retries = 0
        self.first_failure: float | None = None

    def elapsed(self) -> float:
        """Seconds since the first failure (0 before any)."""
        return 0.0 if self.first_failure is None else self.clock() - self.first_failure

    def delay(self, failure: EngineError, hint: float | None = None) -> float:
        """The seconds to wait after ``failure`` (exponential with jitter, at least ``hint``), or raise
        the error the caller sees once the policy allows no more attempts."""
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        policy = self.policy
        if policy.max_retries is not None and self.retries >= policy.max_retries:
            raise self._gave_up(failure, now)
        ceiling = min(policy.max_delay, policy.first_delay * 2.0 ** min(self.retries, 60))
        wait: float = ceiling / 2 + _jitter() * ceiling / 2
        if hint is not None:
            wait = max(wait, hint)
        if now + wait - self.first_failure > policy.budget:
            raise self._gave_up(failure, now)
        self.retries += 1
        log.info("retry %d in %.2f s (%.1f s of the %.0f s budget spent) after %s: %s", self.retries, wait,
                 now - self.first_failure, policy.budget, failure.code, failure.message)
        return wait

    def _gave_up(self, failure: EngineError, now: float) -> EngineError:
        """``failure``, saying how long the client retried when it is ``SERVICE_UNAVAILABLE``
        (the same class either way, so callers can still tell a refusal from an outage)."""
        if self.retries == 0 or not isinstance(failure, ServiceUnavailable):
            return failure
        waited = now - (self.first_failure or now)
        return ServiceUnavailable(f"{failure.message} (gave up after {self.retries} retries in {waited:.1f} s)")


# --- transport failures --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """A failed connection attempt: the typed ``error``; ``retryable`` unless the same attempt
    would fail again (TLS, a protocol-violation close); ``unprocessed`` when the request it
    carried cannot have been processed (never sent, or closed with 1013 before being read)."""

    error: EngineError
    retryable: bool
    unprocessed: bool


def transport_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of a failed, closed or timed-out connection (both ``websockets`` APIs)."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    return (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, asyncio.TimeoutError)


def transport_failure(exc: BaseException, request_sent: bool) -> Failure:
    """The :class:`Failure` of a connection that raised ``exc`` (``request_sent``: whether the
    request frame had been handed to the connection). ``TLS_FAILED`` when a TLS error is in the
    chain of causes (an untrusted certificate, a refused client certificate), else
    ``SERVICE_UNAVAILABLE`` naming the close code or the exception."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError) and not isinstance(cause, _TLS_CONNECTION_LOST):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or "handshake failed"
            return Failure(TlsFailed(f"TLS with the custodian service failed: {reason}"), False, True)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, InvalidStatus):  # the HTTP upgrade refused: 5xx (a proxy, a restart) may pass
        status = exc.response.status_code
        return Failure(ServiceUnavailable(f"the custodian service refused the WebSocket upgrade (HTTP {status})"),
                       status >= 500 or status == 429, True)
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        code = exc.rcvd.code
        if code == _BUSY_CLOSE_CODE:
            return Failure(ServiceUnavailable("the custodian service is busy (1013); retry later"), True, True)
        return Failure(ServiceUnavailable(f"the custodian service closed the connection ({code})"),
                       code not in _FATAL_CLOSE_CODES, not request_sent)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        detail = "timed out"
    else:
        detail = f"{type(exc).__name__}: {exc}"[:200]
    return Failure(ServiceUnavailable(f"cannot reach the custodian service ({detail})"), True, not request_sent)


# --- handshake failures that retrying cannot fix (issue 26) -----------------------------------------------
_PROBE_TIMEOUT = 2.0


def handshake_cut(exc: BaseException) -> bool:
    """Whether a connection failed the way a misconfigured client fails, and a restart too: the
    server accepted the TCP connection and closed it before any HTTP answer (``ws://`` to a TLS
    port; a client certificate missing or refused under mTLS, whose TLS 1.3 alert arrives as a
    plain close)."""
    from websockets.exceptions import ConnectionClosed, InvalidMessage

    return isinstance(exc, (InvalidMessage, ConnectionClosed)) or isinstance(exc, _TLS_CONNECTION_LOST)


def probe_tls(host: str, port: int, scheme: str, context: ssl.SSLContext | None,
              timeout: float = _PROBE_TIMEOUT) -> EngineError | None:
    """One bare TLS handshake to ``host:port`` after :func:`handshake_cut`: the error retrying
    cannot fix, or None (the port is closed now, or TLS behaves: a transient fault).

    - ``ws://`` and the port completes a TLS handshake: the service speaks TLS: use ``wss://``
      (``TRANSPORT_INSECURE``, with that hint);
    - ``wss://`` and the server's first record after the handshake is a certificate alert: the
      service wants a client certificate this client does not present or it does not trust
      (``TLS_FAILED``: configure ``client_cert`` / ``client_key``)."""
    import socket

    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None  # not listening (restarting): transient
    try:
        if scheme == "ws":
            bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            bare.check_hostname, bare.verify_mode = False, ssl.CERT_NONE
            try:
                bare.wrap_socket(raw, server_hostname=host).close()
            except (OSError, ssl.SSLError):
                return None
            return TransportInsecure("the custodian service speaks TLS on this port: use a wss:// URL, not ws://")
        if context is None:
            return None
        return _client_certificate_refused(raw, host, context)
    finally:
        raw.close()


def _client_certificate_refused(raw: Any, host: str, context: ssl.SSLContext) -> EngineError | None:
    """``TLS_FAILED`` if the server completes the TLS handshake but then closes without answering
    ``GET /healthz`` (or with a certificate alert): what an mTLS service does to a client whose
    certificate is missing or not trusted (a TLS 1.3 server checks it after the handshake)."""
    refused = TlsFailed("the custodian service closed the TLS connection without answering: it requires a client "
                        "certificate it trusts (configure client_cert and client_key)")
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError):
        return None  # the handshake itself failed: the connection's own error says why
    try:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        answered = tls.recv(1)
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", "") or "").upper()
        return refused if "CERTIFICATE" in reason or isinstance(exc, ssl.SSLEOFError) else None
    except OSError:
        return None
    finally:
        tls.close()
    return None if answered else refused


def parse_control(frame: Any) -> dict[str, Any]:
    """A control frame (``ready`` / ``result``) as an object; an error frame raises its engine
    error (``errors.from_json``)."""
    try:
        obj = json.loads(frame)
    except (TypeError, ValueError):
        raise EngineError("malformed frame from the custodian service") from None
    if not isinstance(obj, dict):
        raise EngineError("malformed frame from the custodian service")
    if "error" in obj:
        raise errors.from_json(obj)
    return obj


def answer_challenge(frame: Any, request: Mapping[str, Any], signer: DeviceKey | None,
                     prover: Callable[[bytes], dict[str, Any]] | None = None) -> str | None:
    """The device's answer when ``frame`` is the service's challenge (``{"challenge": hex}``):
    ``{"device_sig": hex}``, the device key's signature of ``mpc.wire.device_auth_message``
    (plus ``"possession"`` from ``prover`` for ``enrol_device``); None for any other frame (an
    error frame raises its error). ``AUTH_FAILED`` when the service asks and there is no key."""
    reply = parse_control(frame)
    if "challenge" not in reply:
        return None
    challenge = hex_bytes(reply["challenge"], CHALLENGE_BYTES)
    if challenge is None:
        raise EngineError("malformed challenge from the custodian service")
    if signer is None:
        raise AuthFailed("the custodian service asks for the device key: pass the device (an mpc.Client)")
    answer: dict[str, Any] = {"device_sig": signer.sign(device_auth_message(challenge, request)).hex()}
    if prover is not None:
        answer["possession"] = prover(challenge)
    return json.dumps(answer)


def device_signer(op: str, session: Session) -> DeviceKey | None:
    """The key that authorises ``op`` for the device whose ``session`` it is: the recover's new
    (pending) key for ``recover``, else the device's key (made if the keychain has none)."""
    client = getattr(session, "client", None)
    if not isinstance(client, Client):
        return None
    return client.device_key(pending=op == "recover")


def _refusal_hint(error: EngineError) -> float | None:
    hint = getattr(error, "retry_after", None)
    return float(hint) if isinstance(hint, (int, float)) and not isinstance(hint, bool) else None


# --- one-frame requests ---------------------------------------------------------------------------------
T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class RequestSpec(Generic[T]):
    """A one-frame request: its first frame, whether sending it twice is harmless
    (``idempotent``), and how its ``result`` becomes the method's return value."""

    request: dict[str, Any]
    idempotent: bool
    extract: Callable[[Any], T]
    signer: DeviceKey | None = None  # the device key that answers the service's challenge
    prover: Callable[[bytes], dict[str, Any]] | None = None  # enrol_device: its possession proofs


def _as_view(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise EngineError("unexpected reply from the custodian service")
    return result


def _token_of(result: Any) -> str:
    token = _as_view(result).get("token")
    if not isinstance(token, str):
        raise EngineError("unexpected reply from the custodian service")
    return token


def _client_and_token(result: Any) -> tuple[str, str]:
    client_id = _as_view(result).get("client_id")
    if not isinstance(client_id, str):
        raise EngineError("unexpected reply from the custodian service")
    return client_id, _token_of(result)


class RequestAttempts(Generic[T]):
    """Attempts of one request. A driver loops: :meth:`connecting` before it connects,
    :meth:`frame` to get (and count as sent) the request frame, :meth:`reply` on the answer;
    on any exception it calls :meth:`retry`, which returns the seconds to wait or raises.

    Retried: a refused or failed connection, a 1013 "busy" close, ``RATE_LIMITED`` and
    ``SERVICE_UNAVAILABLE`` answers (after their ``retry after`` hint), and, for an idempotent
    request only, a connection lost after the request was sent. A request that is not
    idempotent (``create_client``, ``rotate_token``) whose outcome is unknown fails with
    ``SERVICE_UNAVAILABLE`` saying so. Any other answer is raised at once.
    """

    def __init__(self, spec: RequestSpec[T], policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.backoff = Backoff(policy, clock)
        self._sent = False

    def connecting(self) -> None:
        """A new connection starts: nothing sent on it yet."""
        self._sent = False

    def frame(self) -> str:
        """The request frame (counted as sent)."""
        self._sent = True
        return json.dumps(self.spec.request)

    def answer(self, frame: Any) -> str | None:
        """The device's answer if ``frame`` is the service's challenge, else None."""
        return answer_challenge(frame, self.spec.request, self.spec.signer, self.spec.prover)

    def reply(self, frame: Any) -> T:
        """The method's return value from the answer ``frame`` (an error frame raises its error)."""
        reply = parse_control(frame)
        if "result" not in reply:
            raise EngineError("unexpected reply from the custodian service")
        return self.spec.extract(reply["result"])

    def retry(self, exc: BaseException) -> float:
        """The seconds to wait before the next attempt after ``exc``, or raise the error the caller
        sees (the rules are in the class docstring)."""
        if isinstance(exc, EngineError):  # the service answered
            if exc.code in _REFUSAL_CODES:
                return self.backoff.delay(exc, _refusal_hint(exc))
            raise exc
        if not isinstance(exc, transport_errors()):
            raise exc
        failure = transport_failure(exc, self._sent)
        if not failure.retryable:
            raise failure.error from exc
        if not failure.unprocessed and not self.spec.idempotent:
            raise ServiceUnavailable(f"{failure.error.message}; the request may or may not have been processed "
                                     "and is not retried") from exc
        return self.backoff.delay(failure.error)


# --- operations -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OperationSpec(Generic[A, B]):
    """A wallet operation to run: ``make()`` builds the device's session and the request's
    parameters (CPU-bound for some: the asyncio client calls it in a thread); ``typed`` turns
    (the device session's result, the custodian's JSON result) into the method's typed pair, the
    same types as ``mpc.run_local`` gives (a malformed custodian result raises)."""

    op: str
    client_id: str
    make: Callable[[], tuple[Session, dict[str, Any]]]
    typed: Callable[[Any, Any], tuple[A, B]]


def _with_view(device: Any, custodian: Any) -> tuple[Any, ClientView]:
    return device, client_view(custodian)


def _with_new_token(device: Any, custodian: Any) -> tuple[Any, RecoverResult]:
    return device, recover_result(custodian)


def _signed(device: Any, custodian: Any) -> tuple[SignResult, SignResult]:
    """The device's ``SignResult`` twice, once the custodian's JSON result is checked to be the
    same signature (``SignResult.to_json``)."""
    if not isinstance(device, SignResult) or custodian != device.to_json():
        raise EngineError("the custodian service's signature differs from the device's")
    return device, device


def _counts(device: Any, custodian: Any) -> tuple[dict[str, int], dict[str, int]]:
    if not isinstance(custodian, dict) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                  for n in custodian.values()):
        raise EngineError("unexpected presign result from the custodian service")
    return cast("dict[str, int]", device), cast("dict[str, int]", custodian)


def generate_spec(client: Client) -> OperationSpec[dict[str, str], ClientView]:
    """``generate`` for ``client``: (the wallet's addresses, the custodian's view)."""
    return OperationSpec("generate", client.client_id, lambda: (client.generate(), {}), _with_view)


def backup_spec(client: Client, method: BackupMethod | None,
                client_stores_backup: bool) -> OperationSpec[dict[str, Any], ClientView]:
    """``backup`` for ``client`` with ``method`` (the device's default if None)."""
    def make() -> tuple[Session, dict[str, Any]]:
        session = client.backup(method, client_stores_backup=client_stores_backup)
        return session, {"method": session.method.name, "client_stores_backup": client_stores_backup}

    return OperationSpec("backup", client.client_id, make, _with_view)


def _from_backup_spec(client: Client, op: str, method: BackupMethod | None,
                      encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[Any, RecoverResult]:
    def make() -> tuple[Session, dict[str, Any]]:
        factory = client.recover if op == "recover" else client.eject
        session = factory(method, encrypted_backup=encrypted_backup)
        return session, {"method": session.method.name}

    return OperationSpec(op, client.client_id, make, _with_new_token)


def recover_spec(client: Client, method: BackupMethod | None,
                 encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[dict[str, str], RecoverResult]:
    """``recover``: (the wallet's addresses, the custodian's view with the client's new token)."""
    return _from_backup_spec(client, "recover", method, encrypted_backup)


def eject_spec(client: Client, method: BackupMethod | None,
               encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[EjectedKeys, RecoverResult]:
    """``eject``: (the whole private keys, the custodian's view with the client's new token)."""
    return _from_backup_spec(client, "eject", method, encrypted_backup)


def sign_spec(client: Client, op: str, chain: str, data: bytes,
              path: str | None = None) -> OperationSpec[SignResult, SignResult]:
    """``sign`` or ``sign_presigned`` (same parameters), at the HD ``path`` if given."""
    def make() -> tuple[Session, dict[str, Any]]:
        factory = client.sign if op == "sign" else client.sign_presigned
        params: dict[str, Any] = {"chain": chain, "data": bytes(data).hex()}
        if path is not None:
            params["path"] = path
        return factory(chain, data, path=path), params

    return OperationSpec(op, client.client_id, make, _signed)


def derive_spec(client: Client, paths: Sequence[str]) -> OperationSpec[dict[str, dict[str, str]], ClientView]:
    """``derive`` of the accounts of ``paths`` (docs/hd.md): (account path -> {curve: extended
    public key}, the custodian's view with its accounts)."""
    return OperationSpec("derive", client.client_id, lambda: (client.derive(paths), {"paths": list(paths)}),
                         _with_view)


def presign_spec(client: Client, count: int) -> OperationSpec[dict[str, int], dict[str, int]]:
    """``presign`` of ``count`` precomputations for ``client``: the pool's size per curve, both sides."""
    return OperationSpec("presign", client.client_id, lambda: (client.presign(count), {"count": count}), _counts)


_UNSET = object()


class OperationChannel:
    """The device side of one operation across connections, as a state machine without I/O.

    A driver (blocking or asyncio) does, until :meth:`outcome` can be returned::

        channel.start()                               # the device's first messages (CPU)
        loop:
            channel.connecting(); connect
            send channel.request()                    # the operation, or resume
            send each of channel.ready(first frame)   # the device's messages the custodian lacks
            for each frame:
                if channel.is_message(frame): send each of channel.deliver(frame)  (CPU)
                elif channel.control(frame): return channel.outcome()
            on an exception: sleep channel.retry(exc)  (raises when it must not retry)

    What it decides:

    - **Resent on resume.** The device keeps every message it produced; ``ready`` carries
      ``expect``, the round the custodian waits for, and every produced message of that round
      or later is sent again (the custodian never processed them). A re-opened operation sends
      the device's first messages again.
    - **Dropped replays.** A resumed custodian replays every message it sent; those of a round
      the device has passed (or all, once it is done) are dropped.
    - **Failures.** See :meth:`retry`.
    """

    def __init__(self, spec_op: str, session: Session, client_id: str, token: str, params: Mapping[str, Any],
                 policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        sid = session.session_id.hex()
        self.session = session
        self.signer = device_signer(spec_op, session)
        self.open_request = {"op": spec_op, "client_id": client_id, "token": token, "session_id": sid, **params}
        if self.signer is not None and spec_op in ("generate", "recover"):  # the key to register
            self.open_request["device_public"] = self.signer.public.hex()
        self.resume_request = {"op": "resume", "client_id": client_id, "token": token, "session_id": sid}
        self.backoff = Backoff(policy, clock)
        self.clock = clock
        self.produced: list[Message] = []  # every message the device produced, in order
        self.received = 0  # custodian messages processed
        self.accepted = False  # a ready arrived on some connection: the custodian holds the session
        self.custodian_result: Any = _UNSET
        self._next = "open"  # the request of the next connection
        self._reopening = False  # the next "open" is a re-open after resume said NOT_FOUND
        self._ambiguous: EngineError | None = None  # a re-open's answer that may be our own first open
        self._missing_since: float | None = None  # first NOT_FOUND of the current streak (accepted)
        self._sent = False  # the request frame of this connection was handed over
        self._ready = False  # ready arrived on this connection
        self._resent = False  # this connection resumed and sent device messages again
        self._resyncs = 0
        self._started = False
        self._request: dict[str, Any] = self.open_request
        self._refused: EngineError | None = None  # a refusal answered after ready (issue 26)

    # --- the driver's calls ------------------------------------------------------------------------
    def start(self) -> None:
        """Run the device session's first step (CPU-bound: Paillier keys, proofs)."""
        if not self._started:
            self.produced.extend(self.session.start())
            self._started = True

    @property
    def next_request(self) -> str:
        """``"open"`` (the operation itself) or ``"resume"``: what the next connection sends."""
        return self._next

    def connecting(self) -> None:
        """A new connection starts: nothing sent on it, no ``ready`` yet."""
        self._sent = self._ready = self._resent = False

    def request(self) -> str:
        """The first frame of this connection (counted as sent)."""
        self._sent = True
        self._request = self.open_request if self._next == "open" else self.resume_request
        return json.dumps(self._request)

    def answer(self, frame: Any) -> str | None:
        """The device's answer if ``frame`` is the service's challenge to this connection's
        request, else None (``answer_challenge``)."""
        return answer_challenge(frame, self._request, self.signer)

    abort_frame = ABORT_FRAME  # sent when the device's own step fails: the service frees the session

    def ready(self, frame: Any) -> list[Message]:
        """The answer to the request: the device's messages to send now (an error frame raises)."""
        reply = parse_control(frame)
        ready = reply.get("ready")
        if not isinstance(ready, dict):
            raise EngineError("the custodian service did not accept the operation")
        self._ready = self.accepted = True
        self._ambiguous, self._missing_since, self._reopening = None, None, False
        if self._next == "open":
            pending = list(self.produced)  # only the first messages exist before any ready
        else:
            expect = ready.get("expect")
            pending = [m for m in self.produced if isinstance(expect, int) and m.round >= expect]
            self._resent = bool(pending)
        self._next = "resume"  # from now on a lost connection resumes
        return pending

    @staticmethod
    def is_message(frame: Any) -> bool:
        """Whether ``frame`` is a protocol message (else a control frame: a result or an error)."""
        return isinstance(frame, str) and frame.startswith(_MESSAGE_PREFIX)

    def deliver(self, frame: str) -> list[Message] | None:
        """Process one custodian message (CPU-bound); the device's replies, or None for a replay
        it already processed (dropped)."""
        message = Message.from_bytes(frame.encode("ascii"))
        waiting = self.session.awaiting_round
        if self.session.done or (waiting is not None and message.round < waiting):
            return None
        produced = self.session.receive(message)
        self.produced.extend(produced)
        self.received += 1
        return produced

    def control(self, frame: Any) -> bool:
        """A control frame after ready: True once the custodian's result arrived (an error frame
        raises its error)."""
        reply = parse_control(frame)
        if "result" not in reply:
            raise EngineError("unexpected frame from the custodian service")
        self.custodian_result = reply["result"]
        return True

    def pending(self, frames: list[Any]) -> bool:
        """The frames still buffered on a connection whose send failed (issue 26: the service
        answered, then closed, while the device was sending): an error frame among them raises
        its error (the answer the service decided, not a lost connection); True if the result
        is among them. Protocol messages are left for the resume to replay."""
        for frame in frames:
            if not self.is_message(frame) and self.control(frame):
                return True
        return False

    def outcome(self) -> tuple[Any, Any]:
        """(the device's result, the custodian's result)."""
        if self.custodian_result is _UNSET:
            raise EngineError("the operation has no result yet")
        return self.session.result(), self.custodian_result

    # --- failures ------------------------------------------------------------------------------------
    def retry(self, exc: BaseException) -> float:
        """The seconds to wait before the next connection after ``exc``, or raise the error the
        caller must see. The rules (``mpc.remote.blocking``, Retries):

        - a refused or lost connection, a 1013 close, a ``RATE_LIMITED`` or ``SERVICE_UNAVAILABLE``
          answer: retried (the request again if it cannot have been processed, else ``resume``);
        - ``NOT_FOUND`` on resume before any ready: the operation was never opened (its answer
          was lost on the way); it is opened again with the same session id. If that answer is
          ``INPUT_INVALID`` (the session id is in use) or ``OPERATION_IN_PROGRESS``, it may be our
          own first open: one more resume decides, and if it is ``NOT_FOUND`` that answer is raised;
        - ``NOT_FOUND`` once the operation was accepted (on resume, or as the answer to a message):
          a worker holds the session; retried for ``step_wait`` seconds, then ``NOT_FOUND``; but
          right after a refusal (``STORE_UNAVAILABLE``, ``SERVICE_UNAVAILABLE``) of a step, that
          refusal is raised at once (the session did not survive it: start again);
        - ``MESSAGE_INVALID`` on a resumed connection that sent messages again: the old
          connection's buffered frames were processed meanwhile, so a resent one was a duplicate
          (refused, nothing changed); resumed again, at most ``_MAX_RESYNCS`` times;
        - anything else (an abort, ``AUTH_FAILED``, ``INPUT_INVALID``, ``KEY_LOCKED``, a TLS failure,
          a device-side protocol error) is raised at once.
        """
        if isinstance(exc, EngineError):
            return self._answered(exc)
        if isinstance(exc, MPCError):  # the device session refused a custodian message
            raise from_protocol_error(exc) from exc
        if not isinstance(exc, transport_errors()):
            raise exc
        failure = transport_failure(exc, self._sent)
        if not failure.retryable:
            raise failure.error from exc
        if not failure.unprocessed or self._ready:
            # The request may have been processed: if it was the operation, resume finds out.
            self._next = "resume"
        return self.backoff.delay(failure.error)

    def _answered(self, exc: EngineError) -> float:
        """An answer of the service (an error frame), before or after ready."""
        answered_request = self._sent and not self._ready
        if exc.code in _REFUSAL_CODES:
            if self._ready:
                self._next, self._refused = "resume", exc
            return self.backoff.delay(exc, _refusal_hint(exc))
        if exc.code == NotFound.code and (self._ready or (answered_request and self._next == "resume")):
            return self._not_found(exc)
        if exc.code == "MESSAGE_INVALID" and self._resent and self._resyncs < _MAX_RESYNCS:
            self._resyncs += 1  # a resent message the custodian had processed meanwhile: resume again
            return self.backoff.delay(exc)
        if answered_request and self._next == "open" and self._reopening and exc.code in _AMBIGUOUS_REOPEN_CODES:
            self._ambiguous, self._next = exc, "resume"
            return self.backoff.delay(exc)
        raise exc

    def _not_found(self, exc: EngineError) -> float:
        if self._refused is not None and self.accepted:
            # The service refused a step (the store unreachable, the pool failing) and the session
            # did not survive it: that refusal is the answer, now, not NOT_FOUND after step_wait.
            raise type(self._refused)(f"{self._refused.message} (the operation's session did not survive it: "
                                      "start the operation again)") from exc
        if not self.accepted:
            if self._ambiguous is not None:  # our re-open was refused for its own reasons
                raise self._ambiguous
            self._next, self._reopening = "open", True
            return self.backoff.delay(exc)
        now = self.clock()
        if self._missing_since is None:
            self._missing_since = now
        self._next = "resume"
        waited = now - self._missing_since
        if waited >= self.backoff.policy.step_wait:
            raise NotFound(self._lost_message(waited)) from exc
        try:
            return self.backoff.delay(exc)
        except EngineError:
            raise NotFound(self._lost_message(waited)) from exc

    def _lost_message(self, waited: float) -> str:
        what = ("the device finished, but the custodian's result was lost" if self.session.done
                else "the operation cannot be resumed")
        return (f"{what}: its session is gone from the custodian service (finished, aborted or expired; "
                f"not back after {waited:.1f} s)")


def _key_of(device: Client | None) -> DeviceKey | None:
    return None if device is None else device.device_key()


# --- configuration shared by both clients ------------------------------------------------------------
class RemoteBase:
    """URL, TLS, operator key, timeouts and retry policy of a device-side client, and the
    requests its methods send (``mpc.remote.blocking.RemoteCustodian``, ``mpc.remote.aio.AsyncRemoteCustodian``).

    ``timeout``: seconds for each protocol frame once an operation runs; ``connect_timeout``:
    the TCP, TLS and WebSocket handshakes; ``ready_timeout``: the answer to the request
    (``ready``, or a one-frame request's result). ``retry_budget``, ``retry_delay`` (the first
    backoff), ``max_retry_delay``, ``retries`` (a cap on the count; None: the budget only) and
    ``step_wait`` make the :class:`RetryPolicy` (``retry_policy`` gives one directly instead).
    """

    def __init__(self, url: str, *, cafile: str | Path | None = None, ssl_context: ssl.SSLContext | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 operator_key: str | None = None, allow_plaintext: bool = False, timeout: float = 60.0,
                 connect_timeout: float = 10.0, ready_timeout: float = 30.0,
                 retry_budget: float = DEFAULT_RETRY_BUDGET, retries: int | None = None, retry_delay: float = 0.1,
                 max_retry_delay: float = 5.0, step_wait: float = DEFAULT_STEP_WAIT,
                 retry_policy: RetryPolicy | None = None) -> None:
        if ssl_context is not None and (cafile is not None or client_cert is not None or client_key is not None):
            raise ConfigInvalid("give either ssl_context or cafile / client_cert / client_key")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout),
                            ("ready_timeout", ready_timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
                raise ConfigInvalid(f"{name} must be a positive number of seconds")
        self.allow_plaintext = allow_plaintext
        self.url = url
        self._tls_files = (cafile, client_cert, client_key)
        self._ssl_context = ssl_context
        self._operator_key = operator_key
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.ready_timeout = float(ready_timeout)
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy(
            budget=retry_budget, first_delay=retry_delay, max_delay=max(max_retry_delay, retry_delay),
            max_retries=retries, step_wait=step_wait)

    @property
    def url(self) -> str:
        """The service's URL (``wss://``, or ``ws://`` on loopback); setting it checks the scheme."""
        return self._url

    @url.setter
    def url(self, url: str) -> None:
        self._scheme = check_service_url(url, self.allow_plaintext)
        self._url = url

    @property
    def retry_budget(self) -> float:
        """Seconds a request or operation may spend retrying (``RetryPolicy.budget``)."""
        return self.retry_policy.budget

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = client_tls_context(*self._tls_files)
        return self._ssl_context

    def _diagnose(self, exc: BaseException) -> None:
        """After a failed handshake: raise the error retrying cannot fix, if a probe finds one
        (:func:`probe_tls`; blocking, a couple of seconds at most), else return (retried)."""
        if not handshake_cut(exc):
            return
        parts = urlsplit(self._url)
        port = parts.port or (443 if self._scheme == "wss" else 80)
        found = probe_tls(parts.hostname or "", port, self._scheme, self._tls() if self._scheme == "wss" else None,
                          min(self.connect_timeout, _PROBE_TIMEOUT))
        if found is not None:
            raise found from exc

    def _connect_options(self) -> dict[str, Any]:
        """Options of ``websockets`` ``connect`` (both APIs take the same)."""
        options: dict[str, Any] = {"ssl": self._tls()} if self._scheme == "wss" else {}
        return {"max_size": MAX_FRAME_BYTES, "open_timeout": self.connect_timeout, "close_timeout": 1.0, **options}

    def _as_operator(self, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` with the operator key, if this client has one (without it the service
        accepts only the operator's client certificate, or open registration)."""
        if self._operator_key is None:
            return request
        return {**request, "operator_key": self._operator_key}

    # --- the one-frame requests (sent by RemoteCustodian and AsyncRemoteCustodian alike) ------------
    def _create_client_spec(self) -> RequestSpec[tuple[str, str]]:
        # Not idempotent: sent twice it creates two clients (the first one's token lost).
        return RequestSpec(self._as_operator({"op": "create_client"}), False, _client_and_token)

    def _get_client_spec(self, client_id: str, token: str | None,
                         device: Client | None) -> RequestSpec[ClientView]:
        if token is None:
            return RequestSpec(self._as_operator({"op": "get_client", "client_id": client_id}), True, client_view)
        return RequestSpec({"op": "get_client", "client_id": client_id, "token": token}, True, client_view,
                           _key_of(device))

    def _rotate_token_spec(self, client_id: str, token: str, device: Client | None) -> RequestSpec[str]:
        # Not idempotent: once processed, ``token`` is dead and the new one only in the lost reply.
        return RequestSpec({"op": "rotate_token", "client_id": client_id, "token": token}, False, _token_of,
                           _key_of(device))

    def _enrol_device_spec(self, device: Client, token: str) -> RequestSpec[ClientView]:
        key = device.device_key()

        def prove(challenge: bytes) -> dict[str, Any]:
            shares = {curve: device.signing_share(curve) for curve in ("secp256k1", "ed25519")}
            return possession.prove_enrolment(shares, client_id=device.client_id, challenge=challenge,
                                              device_public=key.public)

        request = {"op": "enrol_device", "client_id": device.client_id, "token": token,
                   "device_public": key.public.hex()}
        return RequestSpec(request, True, client_view, key, prove)

    def _revoke_device_spec(self, client_id: str) -> RequestSpec[ClientView]:
        return RequestSpec(self._as_operator({"op": "revoke_device", "client_id": client_id}), True, client_view)

    def _revoke_token_spec(self, client_id: str) -> RequestSpec[dict[str, Any]]:
        return RequestSpec(self._as_operator({"op": "revoke_token", "client_id": client_id}), True, _as_view)

    def _issue_token_spec(self, client_id: str) -> RequestSpec[str]:
        # Idempotent in effect: a second issue replaces the first token, whose reply was lost.
        return RequestSpec(self._as_operator({"op": "issue_token", "client_id": client_id}), True, _token_of)

    def _unlock_client_spec(self, client_id: str) -> RequestSpec[ClientView]:
        return RequestSpec(self._as_operator({"op": "unlock_client", "client_id": client_id}), True, client_view)

    def _stored_client_backup_share_spec(self, client_id: str, token: str, method: str,
                                         confirmation: Mapping[str, Any] | None,
                                         device: Client | None) -> RequestSpec[ClientView]:
        return RequestSpec({"op": "stored_client_backup_share", "client_id": client_id, "token": token,
                            "method": method, "confirmation": confirmation}, True, client_view, _key_of(device))

    def _channel(self, op: str, session: Session, client_id: str, token: str,
                 params: Mapping[str, Any] | None) -> OperationChannel:
        return OperationChannel(op, session, client_id, token, params or {}, self.retry_policy)
