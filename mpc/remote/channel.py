"""What the blocking and the asyncio device-side clients share, with no I/O of its own.

``mpc.remote.blocking.RemoteCustodian`` (``websockets.sync``) and ``mpc.remote.aio.AsyncRemoteCustodian``
(``websockets.asyncio``) differ only in how they connect, wait and sleep. Everything else lives
here and is used by both:

- ``mpc.remote.retries``: ``RetryPolicy`` and ``Backoff``, exponential backoff with jitter (from
  ``secrets``) inside a total retry budget, honouring a ``retry after N s`` hint;
- ``mpc.remote.failures``: ``transport_failure``, the typed error of a failed connection
  (``TLS_FAILED``, ``SERVICE_UNAVAILABLE``) and whether the request it carried can have been
  processed; the TLS probe after a cut handshake;
- ``mpc.remote.specs``: ``RequestSpec`` and ``OperationSpec``, what is sent and how the answers
  are typed;
- ``mpc.remote.kept``: the kept connection of the last request that succeeded (issue 30), and
  :func:`presigned_frame` here, a request signed over the challenge its result carried;
- :func:`parse_control`, :func:`answer_challenge`: the service's control frames and challenges;
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

import json
import math
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from mpc import errors
from mpc.backup import possession
from mpc.client import Client
from mpc.errors import (
    AuthFailed,
    ConfigInvalid,
    EngineError,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    from_protocol_error,
)
from mpc.remote.failures import (
    _PROBE_TIMEOUT,
    handshake_cut,
    probe_tls,
    transport_errors,
    transport_failure,
)
from mpc.remote.retries import (
    DEFAULT_RETRY_BUDGET,
    DEFAULT_STEP_WAIT,
    Backoff,
    RetryPolicy,
)
from mpc.remote.specs import (
    RequestSpec,
    _as_view,
    _client_and_token,
    _token_of,
)
from mpc.storage.device_key import DeviceKey
from mpc.wallet import ClientView, client_view
from mpc.remote.kept import KeptConnection
from mpc.wire import ABORT_FRAME, CHALLENGE_BYTES, FIRST_MESSAGE_OPERATIONS, KEEP_ALIVE_SUBPROTOCOL, \
    MAX_ANSWER_DEPTH, MAX_FRAME_BYTES, MAX_REQUEST_BYTES, check_service_url, client_tls_context, device_auth_message, \
    hex_bytes, nested_deeper_than
from protocols.errors import InvalidMessage, MPCError
from protocols.rounds import Message, Session

__all__ = [
    "next_challenge",
    "presigned_frame",
    "OperationChannel",
    "RemoteBase",
    "RequestAttempts",
    "answer_challenge",
    "device_signer",
    "parse_control",
]

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
_REQUEST_MARGIN = 512  # room in a request frame for its JSON quoting and the device's signature
_OLD_CUSTODIAN_REFUSAL = "unknown request fields: message"  # a custodian before issue 30, round five


def parse_control(frame: Any) -> dict[str, Any]:
    """A control frame (``ready`` / ``result``) as an object; an error frame raises its engine
    error (``errors.from_json``)."""
    if not isinstance(frame, str) or nested_deeper_than(frame, MAX_ANSWER_DEPTH):
        raise EngineError("malformed frame from the custodian service")
    try:
        obj = json.loads(frame)
    except ValueError:
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


def presigned_frame(request: Mapping[str, Any], signer: DeviceKey | None, challenge: bytes | None) -> str:
    """The request frame; with a kept connection's ``challenge`` (the one its last result
    carried) and a device key, it brings the key's signature over that challenge and the request
    (``"device_sig"``, added after signing: ``mpc.wire.device_auth_message`` of the request
    without it), and the service sends no challenge frame (issue 30)."""
    if challenge is None or signer is None:
        return json.dumps(request)
    return json.dumps({**request, "device_sig": signer.sign(device_auth_message(challenge, request)).hex()})


def next_challenge(reply: Mapping[str, Any]) -> bytes | None:
    """The challenge a result frame carries for the connection's next request, if any."""
    return hex_bytes(reply.get("next_challenge"), CHALLENGE_BYTES)


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
        self.next_challenge: bytes | None = None  # what the result carried for the connection's next request

    def connecting(self) -> None:
        """A new connection starts: nothing sent on it yet."""
        self._sent = False

    def frame(self, challenge: bytes | None = None) -> str:
        """The request frame (counted as sent), signed over ``challenge`` (a kept connection's
        next challenge) if the device key answers it (``presigned_frame``)."""
        self._sent = True
        return presigned_frame(self.spec.request, None if self.spec.prover else self.spec.signer, challenge)

    def answer(self, frame: Any) -> str | None:
        """The device's answer if ``frame`` is the service's challenge, else None."""
        return answer_challenge(frame, self.spec.request, self.spec.signer, self.spec.prover)

    def reply(self, frame: Any) -> T:
        """The method's return value from the answer ``frame`` (an error frame raises its error)."""
        reply = parse_control(frame)
        if "result" not in reply:
            raise EngineError("unexpected reply from the custodian service")
        self.next_challenge = next_challenge(reply)
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
      the device's first messages again, in its request or after ``ready``.
    - **The first message in the request** (issue 30, round five): a ``FIRST_MESSAGE_OPERATIONS``
      request carries the device's first message; ``ready`` then says (``expect``) that the
      custodian processed it and nothing is sent after it but the replies.
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
        self.next_challenge: bytes | None = None  # what the result carried for the connection's next request

    # --- the driver's calls ------------------------------------------------------------------------
    def start(self) -> None:
        """Run the device session's first step (CPU-bound: Paillier keys, proofs); an operation of
        ``FIRST_MESSAGE_OPERATIONS`` carries its one first message in the request (``_carry``)."""
        if not self._started:
            self.produced.extend(self.session.start())
            self._started = True
            self._carry()

    def _carry(self) -> None:
        """Issue 30, round five: the open request of a ``FIRST_MESSAGE_OPERATIONS`` operation holds
        the device's first message (``"message"``, signed with the request by the device key), so
        the service opens and steps the session in one commit; only when it is the one message
        the start produced and the request stays within ``MAX_REQUEST_BYTES`` (else it is sent
        after ``ready``, as by an older device)."""
        if self.open_request["op"] not in FIRST_MESSAGE_OPERATIONS or len(self.produced) != 1:
            return
        text = self.produced[0].to_bytes().decode("ascii")
        if len(json.dumps(self.open_request)) + len(json.dumps(text)) + _REQUEST_MARGIN <= MAX_REQUEST_BYTES:
            self.open_request["message"] = text

    @property
    def next_request(self) -> str:
        """``"open"`` (the operation itself) or ``"resume"``: what the next connection sends."""
        return self._next

    def connecting(self) -> None:
        """A new connection starts: nothing sent on it, no ``ready`` yet."""
        self._sent = self._ready = self._resent = False

    def request(self, challenge: bytes | None = None) -> str:
        """The first frame of this connection (counted as sent), signed over ``challenge`` (a
        kept connection's next challenge), if any (``presigned_frame``)."""
        self._sent = True
        self._request = self.open_request if self._next == "open" else self.resume_request
        return presigned_frame(self._request, self.signer, challenge)

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
        if self._next == "open" and "message" not in self._request:
            pending = list(self.produced)  # only the first messages exist before any ready
        else:  # resumed, or opened with the first message: what the custodian still expects
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
        if not isinstance(frame, str):
            raise InvalidMessage("a message arrives as a text frame")
        try:
            data = frame.encode("ascii")
        except UnicodeEncodeError:  # every message is ASCII (its canonical encoding)
            raise InvalidMessage("message must be ASCII") from None
        message = Message.from_bytes(data)
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
        self.next_challenge = next_challenge(reply)
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
        - ``INPUT_INVALID`` "unknown request fields: message" to an open carrying the first message:
          an older custodian; opened again at once without it (the message is sent after ``ready``);
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
        if answered_request and self._next == "open" and _refused_first_message(exc, self._request):
            del self.open_request["message"]  # an older custodian: the first message goes after ready
            return 0.0
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


def _refused_first_message(exc: EngineError, request: Mapping[str, Any]) -> bool:
    """Whether ``exc`` is an older custodian's refusal of the first message in ``request`` (it
    checks the request's fields before it opens anything, after the device key and the
    client's request allowance: the fallback costs one request of that allowance)."""
    return "message" in request and exc.code == "INPUT_INVALID" and exc.message == _OLD_CUSTODIAN_REFUSAL


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
    ``step_wait`` make the :class:`~mpc.remote.retries.RetryPolicy` (``retry_policy`` gives one directly instead).
    ``keep_alive`` (default on): offer the service the keep-alive subprotocol and send the next
    request on the connection of the last one that succeeded (``mpc.remote.kept.KeptConnection``); off: one
    connection per request or operation (always, for the asyncio client: a connection belongs
    to the event loop that opened it).
    """

    _reuses_connections = True  # the client keeps connections (``keep_alive``)

    def __init__(self, url: str, *, cafile: str | Path | None = None, ssl_context: ssl.SSLContext | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 operator_key: str | None = None, allow_plaintext: bool = False, timeout: float = 60.0,
                 connect_timeout: float = 10.0, ready_timeout: float = 30.0,
                 retry_budget: float = DEFAULT_RETRY_BUDGET, retries: int | None = None, retry_delay: float = 0.1,
                 max_retry_delay: float = 5.0, step_wait: float = DEFAULT_STEP_WAIT,
                 retry_policy: RetryPolicy | None = None, keep_alive: bool = True) -> None:
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
        self.keep_alive = keep_alive and self._reuses_connections
        self._kept = KeptConnection()
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
        (:func:`~mpc.remote.failures.probe_tls`; blocking, a couple of seconds at most), else return (retried)."""
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
        if self.keep_alive:
            options["subprotocols"] = [KEEP_ALIVE_SUBPROTOCOL]
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
