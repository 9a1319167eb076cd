"""The device side against a networked custodian: ``RemoteCustodian(url)``.

Runs ``mpc.Client`` operations over the WebSocket protocol of ``mpc.service.server`` (see that module
for the frames): a connection per request or operation, or the kept connection of the last one
that succeeded (``keep_alive``, ``mpc.remote.kept``; ``close()`` or ``with`` closes it)::

    remote = RemoteCustodian("wss://custodian.example:8765", cafile="ca.pem", operator_key=key)
    client_id, token = remote.create_client()             # the operator (or open registration)
    device = mpc.Client(client_id, keychain)
    remote.generate(device, token)                        # registers the device's key
    result, _ = remote.sign(device, token, "ethereum", digest32)
    remote.presign(device, token, 8)                      # 8 ECDSA precomputations, custodian side
    result, _ = remote.sign(device, token, "ethereum", digest32)   # takes one from the pool

``mpc.remote.aio.AsyncRemoteCustodian`` has the same methods as coroutines (asyncio); both
share their retry logic and the operation's state machine (``mpc.remote.channel``).

Transport: a ``wss://`` URL verifies the service's certificate against the system CAs, or only
``cafile`` (or an ``ssl_context`` of your own); ``client_cert`` / ``client_key`` for mTLS. A
plain ``ws://`` URL is refused unless its host is loopback (``localhost``, 127.0.0.0/8, ``::1``)
or ``allow_plaintext=True`` (``TRANSPORT_INSECURE``). Failures are typed: ``TLS_FAILED`` (an
untrusted certificate), ``SERVICE_UNAVAILABLE`` (unreachable, busy, the connection lost, after
the retries below).

Tokens: ``rotate_token`` replaces the client's token; a completed ``recover`` or ``eject``
replaces it too and returns the new one in the custodian's result (a ``mpc.RecoverResult``:
``result["token"]``, typed): keep it, the old one is dead (presented again it gets
``AUTH_TOKEN_REPLACED``, saying so). The operator (``operator_key``) creates clients, reads any client's record
(``get_client(client_id)`` without a token), and revokes, issues and unlocks.

Device key: the token alone authorises nothing. Every request of a client is signed by the
device's key (``mpc.storage.device_key``, in the ``mpc.Client``'s keychain) over the service's
challenge (``mpc.remote.channel.answer_challenge``): the operations use the ``Client`` they are
given (a recover the new key it made, which the completed recover registers); the one-frame
requests take it as ``device=`` (``get_client(client_id, token, device=phone)``). A client
created before device keys enrols its device once with ``enrol_device(phone, token)``. When the
device's own step fails (a wrong passphrase), the client tells the service (``{"abort":true}``),
which frees the session at once (``docs/operations.md``, Device keys).

Each operation returns (the device's result, the custodian's result), typed as ``mpc.run_local``
gives them: ``generate`` (addresses, ``ClientView``), ``backup`` (its outcome, ``ClientView``),
``recover`` (addresses, ``RecoverResult``), ``eject`` (``EjectedKeys``, ``RecoverResult``),
``sign`` (``SignResult``, ``SignResult``), ``presign`` (counts per curve, both sides).
Engine errors come back as the same ``mpc.errors`` classes (``errors.from_json``).

Timeouts
--------
``connect_timeout`` (10 s) bounds the TCP, TLS and WebSocket handshakes, ``ready_timeout``
(30 s) the service's answer to a request (``ready`` for an operation), ``timeout`` (60 s) each
later frame of an operation (a custodian step). A connection that goes silent is therefore
given up after at most one of these, and retried like a lost one.

Retries
-------
Every request and operation retries with exponential backoff (``retry_delay``, 0.1 s, doubling
up to ``max_retry_delay``, 5 s; each delay drawn from the upper half of its range with
``secrets``) for at most ``retry_budget`` seconds (30 s) after its first failure (``retries``
caps the count as well; ``retry_budget=0`` turns retries off). A kept connection the service
closed as idle (close reason ``idle``) is not a failure: nothing sent on it was read, and the
request goes on a new connection at once, not counted. Retried:

- a connection that cannot be opened (refused: the service restarting; a failed handshake),
  a 1013 "busy" or 1001 "going away" close (a node draining), a connection lost or silent;
- the answers ``RATE_LIMITED``, ``SERVICE_UNAVAILABLE`` and ``STORE_UNAVAILABLE`` (nothing was
  done, or it was rolled back), not before their ``retry after N s`` hint; when the hint lies
  beyond the budget the answer is raised at once.

Failing fast (issue 26): a handshake closed before any HTTP answer is probed once with a bare
TLS handshake; ``ws://`` to a TLS port raises ``TRANSPORT_INSECURE`` ("use a wss:// URL") and an
mTLS service that closes right after the handshake ``TLS_FAILED`` (a client certificate it
trusts is needed), at once. Each retry is logged at INFO on the logger ``mpc.remote`` with its
reason. When a send fails, the frames already received are read first: the service's error
frame (``OPERATION_LOST``, ``STORE_UNAVAILABLE``, ...) is raised, not taken for a lost
connection. A sign, ``sign_presigned`` or presign answered ``OPERATION_LOST`` is started again
with a new device session within the budget (``RESTARTABLE_OPERATIONS``).

Never retried: an answer saying the request or the operation failed (``AUTH_FAILED``,
``INPUT_INVALID``, ``MESSAGE_INVALID``, ``OPERATION_IN_PROGRESS``, ``WALLET_ALREADY_EXISTS``, an
abort such as ``PROTOCOL_ABORTED``, ``KEY_LOCKED``, ``POSSESSION_PROOF_FAILED``, ...,
``OPERATION_LOST``: a server failure lost the session, start the operation again, which builds
a new device session), a TLS failure, a close for a protocol violation (1002, 1003, 1007-1010),
a device-side protocol error.
When the budget runs out the last failure is raised (``SERVICE_UNAVAILABLE`` says how long it
tried).

One-frame requests: a connection lost after the request was sent is retried only for those
that are harmless twice (``get_client``, ``stored_client_backup_share`` and the operator's
``issue_token``, ``revoke_token``, ``unlock_client``). ``create_client`` and ``rotate_token``
are not: their outcome is unknown, reported as ``SERVICE_UNAVAILABLE`` ("may or may not have
been processed"): after a lost ``rotate_token`` ask the operator for a token (``issue_token``);
a lost ``create_client`` may have left an unused client behind.

Operations survive lost connections. Which cases are safe:

- **Before ``ready``** (the answer to the operation was lost: the service may or may not have
  opened it): the client sends ``resume`` for the same session id. If the service answers
  ``ready``, it had opened the operation and the device goes on. If it answers ``NOT_FOUND``,
  the operation was never opened (or opening it failed and that answer was lost) and the client
  opens it again with the same session id. This is safe because no custodian message of the
  first attempt can have reached the device (messages follow ``ready`` on the same connection)
  and no device message was processed by the custodian: nothing of a first custodian session
  can be combined with the second. If the re-open is answered ``INPUT_INVALID`` (the session
  id is in use: the first open was still running) or ``OPERATION_IN_PROGRESS`` (possibly the
  lock of that same first open), one more ``resume`` decides: ``ready`` goes on, ``NOT_FOUND``
  raises that answer.
- **After ``ready``**: the client reconnects with ``resume``, sends again the messages the
  custodian has not processed (``expect``) and drops the replayed ones it already has, so an
  operation survives a server restart between two rounds. It never produces a message twice:
  the very same bytes are resent.
- **A resent message refused** (``MESSAGE_INVALID`` on a resumed connection that sent messages
  again): frames the old connection carried before the cut may be processed by the service
  after the resume told the client otherwise, so the resent copy is a duplicate; the custodian
  refuses it without changing anything, and the client resumes again to resynchronise (at most
  three times).
- **``NOT_FOUND`` after ``ready``** (on resume, or as the answer to a message): while a worker
  steps the session it is out of the database (taken), so a cut during a step finds no session
  for a moment; it comes back when the step parks it again. The client retries for
  ``step_wait`` seconds (15 s, within the budget) and then gives up with ``NOT_FOUND`` ("the
  operation cannot be resumed": it finished, aborted or expired meanwhile). A fresh attempt may
  then meet ``OPERATION_IN_PROGRESS`` until the abandoned session expires (the service's
  ``session_ttl``).
- **The result frame lost** after the custodian finished: for ``recover`` and ``eject``, which
  replace the client's token, the service keeps the finished session's result for its session
  TTL and hands it out once, to a ``resume`` of that session id presenting the *old* token
  (the one that ran the operation): the client does this by itself and returns the result with
  the new token. Nobody else can fetch it: it takes the old token and the 256-bit session id
  chosen by the device. A service without this (or a resume after the TTL) answers
  ``AUTH_TOKEN_REPLACED`` (an ``AUTH_FAILED``: the old token is dead): the operator then issues a
  token (``issue_token``).
  For the other operations a lost result frame ends, after ``step_wait``, in ``NOT_FOUND``
  ("the device finished, but the custodian's result was lost"): the wallet changed as the
  operation says (``get_client`` shows the custodian's view); a lost sign is signed again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from mpc.backup.methods import BackupMethod
from mpc.client import Client, EjectedKeys
from mpc.errors import EngineError, OperationLost, from_protocol_error
from mpc.remote.channel import OperationChannel, RemoteBase, RequestAttempts
from mpc.remote.kept import Lease, closed_idle
from mpc.remote.failures import transport_errors
from mpc.remote.retries import Backoff, RetryPolicy, restart_delay
from mpc.remote.specs import (
    OperationSpec,
    RequestSpec,
    backup_spec,
    derive_spec,
    eject_spec,
    generate_spec,
    presign_spec,
    recover_spec,
    sign_spec,
)
from mpc.wallet import ClientView, RecoverResult, SignResult
from protocols.errors import MPCError
from protocols.rounds import Message, Session

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

__all__ = ["RemoteCustodian", "RetryPolicy"]


class RemoteCustodian(RemoteBase):
    """A custodian service at ``url`` (``wss://host:port``, or ``ws://`` on loopback), driven
    from the device (or, with ``operator_key``, by the operator). Blocking; see the module
    docstring for the timeouts and the retries, and ``mpc.remote.channel.RemoteBase`` for
    every option.

    Example (a service started with ``python -m mpc serve``)::

        remote = RemoteCustodian("wss://custodian.example:8765", cafile="ca.crt", operator_key=operator_key)
        client_id, token = remote.create_client()           # keep the token: the service has only its hash
        device = mpc.Client(client_id, mpc.FileKeychain("keychain/"))
        remote.generate(device, token)
        result, _ = remote.sign(device, token, "ethereum", digest32)
        result.signature                                    # 64 bytes r || s; result.v, result.recid
    """

    # --- requests without a protocol --------------------------------------------------------------
    def create_client(self) -> tuple[str, str]:
        """A new client: (client id, its secret token; keep it, the service stores only a hash).
        Needs the operator key unless the service runs with open registration."""
        return self._call(self._create_client_spec())

    def get_client(self, client_id: str, token: str | None = None, *, device: Client | None = None) -> ClientView:
        """The custodian's view: statuses, public keys and addresses (with the client's token,
        or without one as the operator)."""
        return self._call(self._get_client_spec(client_id, token, device))

    def rotate_token(self, client_id: str, token: str, *, device: Client | None = None) -> str:
        """Replace the client's token: returns the new one (keep it); ``token`` is dead at once."""
        return self._call(self._rotate_token_spec(client_id, token, device))

    def revoke_token(self, client_id: str) -> None:
        """Operator: kill the client's token at once (requests and operations in flight fail)."""
        self._call(self._revoke_token_spec(client_id))

    def issue_token(self, client_id: str) -> str:
        """Operator: a fresh token for the client (after a revoke or a lost one); the old one dies."""
        return self._call(self._issue_token_spec(client_id))

    def unlock_client(self, client_id: str) -> ClientView:
        """Operator: clear the client's lockout; returns the custodian's view."""
        return self._call(self._unlock_client_spec(client_id))

    def revoke_device(self, client_id: str) -> ClientView:
        """Operator: forget the client's device key (a stolen device); returns the custodian's
        view. The owner then recovers onto a new device (or enrols one holding the shares)."""
        return self._call(self._revoke_device_spec(client_id))

    def enrol_device(self, device: Client, token: str) -> ClientView:
        """Register ``device``'s key for a client that has none (created before device keys, or
        whose key the operator revoked): the device proves it holds the signing shares. Returns
        the custodian's view (``device``: the registered key). Refused (``AUTH_FAILED``) once the
        client has a device key."""
        return self._call(self._enrol_device_spec(device, token))

    def stored_client_backup_share(self, client_id: str, token: str, method: str = "CLOUD",
                                   confirmation: Mapping[str, Any] | None = None, *,
                                   device: Client | None = None) -> ClientView:
        """Confirm the customer stored the encrypted client backup share itself; ``confirmation``
        is the backup result's (``result["confirmation"]``), without which nothing changes."""
        return self._call(self._stored_client_backup_share_spec(client_id, token, method, confirmation, device))

    # --- operations -----------------------------------------------------------------------------------
    def generate(self, client: Client, token: str) -> tuple[dict[str, str], ClientView]:
        """Create ``client``'s wallet (``Client.generate``); returns (client result, custodian result)."""
        return self._operate(generate_spec(client), token)

    def backup(self, client: Client, token: str, method: BackupMethod | None = None, *,
               client_stores_backup: bool = False) -> tuple[dict[str, Any], ClientView]:
        """Back up ``client``'s shares with ``method`` (``Client.backup``); returns both results."""
        return self._operate(backup_spec(client, method, client_stores_backup), token)

    def recover(self, client: Client, token: str, method: BackupMethod | None = None, *,
                encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[dict[str, str], RecoverResult]:
        """Recover onto ``client``: (the wallet's addresses, a ``RecoverResult``: the custodian's
        view with the client's *new* token, ``result["token"]``). Keep it: ``token`` is dead once
        recover completes (presented again: ``AUTH_TOKEN_REPLACED``)."""
        return self._operate(recover_spec(client, method, encrypted_backup), token)

    def eject(self, client: Client, token: str, method: BackupMethod | None = None, *,
              encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[EjectedKeys, RecoverResult]:
        """Eject (rebuild the private keys on ``client``): (the ``EjectedKeys``, a ``RecoverResult``
        with the client's new token, as for :meth:`recover`)."""
        return self._operate(eject_spec(client, method, encrypted_backup), token)

    def sign(self, client: Client, token: str, chain: str, data: bytes, *,
             path: str | None = None) -> tuple[SignResult, SignResult]:
        """Sign ``data`` for ``chain`` (at the HD ``path`` if given): (the ``SignResult``, the same
        ``SignResult`` once the custodian's result is checked to be the same signature), as
        ``mpc.run_local`` gives."""
        return self._operate(sign_spec(client, "sign", chain, data, path), token)

    def derive(self, client: Client, token: str,
               paths: Sequence[str]) -> tuple[dict[str, dict[str, str]], ClientView]:
        """Derive the accounts of ``paths`` (docs/hd.md): (account path -> {curve: extended public
        key}, the custodian's view with its accounts)."""
        return self._operate(derive_spec(client, paths), token)

    def presign(self, client: Client, token: str, count: int) -> tuple[dict[str, int], dict[str, int]]:
        """Have the custodian make ``count`` ECDSA precomputations (kept in its store only)."""
        return self._operate(presign_spec(client, count), token)

    def sign_presigned(self, client: Client, token: str, chain: str, data: bytes, *,
                       path: str | None = None) -> tuple[SignResult, SignResult]:
        """The same as :meth:`sign` (no presignature lives on the device); kept as a name."""
        return self._operate(sign_spec(client, "sign_presigned", chain, data, path), token)

    def _operate(self, spec: OperationSpec[A, B], token: str) -> tuple[A, B]:
        """Run ``spec``, typed as ``mpc.run_local`` gives; a sign or presign lost with a server
        failure (``OPERATION_LOST``) is started again with a new device session, within the retry
        budget (issue 26)."""
        restarts = Backoff(self.retry_policy)
        while True:
            session, params = spec.make()
            try:
                return spec.typed(*self.run(spec.op, session, spec.client_id, token, params))
            except OperationLost as lost:
                delay = restart_delay(spec.op, restarts, lost)
            time.sleep(delay)

    def run(self, op: str, session: Session, client_id: str, token: str, params: Mapping[str, Any] | None = None,
            *, on_message: Callable[[int], None] | None = None) -> tuple[Any, Any]:
        """Drive the device's ``session`` of ``op`` against the service until both are done
        (with the retries of the module docstring).

        ``on_message(n)`` is called after the n-th protocol message from the custodian was
        processed and the device's answer sent (tests use it to cut or restart the service
        between two rounds).
        """
        channel = self._channel(op, session, client_id, token, params)
        try:
            channel.start()
            fresh = False  # a new connection after a kept one the service had closed idle (once)
            while True:
                try:
                    return self._connection(channel, on_message)
                except Exception as exc:  # noqa: BLE001 - retry() raises everything it must not retry
                    if not fresh and closed_idle(exc):
                        fresh = True
                        continue
                    delay = channel.retry(exc)
                time.sleep(delay)
        except EngineError:
            raise
        except MPCError as exc:
            raise from_protocol_error(exc) from exc

    # --- transport ---------------------------------------------------------------------------------
    def _connect(self) -> Any:
        from websockets.sync.client import connect

        try:
            return connect(self.url, **self._connect_options())
        except Exception as exc:
            self._diagnose(exc)  # a misconfiguration is raised at once (issue 26), else retried
            raise

    @contextlib.contextmanager
    def _leased(self) -> Iterator[Lease]:
        """A connection for one request or operation: the kept one (``KeptConnection``) with the
        challenge its last result carried, else a new one; kept when the body returns (it
        succeeded) with the challenge the body's result carried (``Lease.next``), closed when
        it raises."""
        ws, challenge, stale = self._kept.take() if self.keep_alive else (None, None, None)
        for old in (stale, ws if ws is not None and not _is_open(ws) else None):
            if old is not None:
                old.close()
                ws, challenge = (None, None) if old is ws else (ws, challenge)
        with contextlib.ExitStack() as closing:
            if ws is None:
                ws = closing.enter_context(self._connect())
            closing.callback(ws.close)  # on failure; detached below when kept
            lease = Lease(ws, challenge)
            yield lease
            done = self._kept.put(ws, lease.next) if self.keep_alive else ws
            if done is not ws:
                closing.pop_all()
            if done is not None and done is not ws:
                done.close()

    def close(self) -> None:
        """Close the kept connection, if any (the service closes it idle anyway)."""
        kept = self._kept.drop()
        if kept is not None:
            kept.close()

    def __enter__(self) -> RemoteCustodian:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self, channel: OperationChannel, on_message: Callable[[int], None] | None) -> tuple[Any, Any]:
        """One connection of an operation: the request, ready, then frames until the result."""
        channel.connecting()
        with self._leased() as lease:
            ws = lease.ws
            ws.send(channel.request(lease.challenge))
            if _send(ws, channel.ready(self._answered(ws, channel.answer)), channel):
                return channel.outcome()
            while True:
                frame = ws.recv(timeout=self.timeout)
                if not channel.is_message(frame):
                    if channel.control(frame):
                        lease.next = channel.next_challenge
                        return channel.outcome()
                    continue
                try:
                    replies = channel.deliver(frame)
                except Exception:
                    _abort_quietly(ws, channel.abort_frame)  # the device gave up: the service frees the session now
                    raise
                if replies is None:
                    continue  # a replay the device already processed
                if _send(ws, replies, channel):
                    return channel.outcome()
                if on_message is not None:
                    on_message(channel.received)

    def _call(self, spec: RequestSpec[T]) -> T:
        """One request with its retries (``RequestAttempts``)."""
        attempts = RequestAttempts(spec, self.retry_policy)
        fresh = False  # a new connection after a kept one the service had closed idle (once)
        while True:
            attempts.connecting()
            try:
                with self._leased() as lease:
                    lease.ws.send(attempts.frame(lease.challenge))
                    result = attempts.reply(self._answered(lease.ws, attempts.answer))
                    lease.next = attempts.next_challenge
                    return result
            except Exception as exc:  # noqa: BLE001 - retry() raises everything it must not retry
                if not fresh and closed_idle(exc):
                    fresh = True
                    continue
                delay = attempts.retry(exc)
            time.sleep(delay)


    def _answered(self, ws: Any, answer: Callable[[Any], str | None]) -> Any:
        """The service's answer to the request, after answering its challenge if it sent one
        (``mpc.remote.channel.answer_challenge``)."""
        frame = ws.recv(timeout=self.ready_timeout)
        reply = answer(frame)
        if reply is None:
            return frame
        ws.send(reply)
        return ws.recv(timeout=self.ready_timeout)



_DRAIN_WAIT = 1.0  # seconds to wait for each frame still on the way once a send failed


def _send(ws: Any, messages: list[Message], channel: OperationChannel) -> bool:
    """Send the device's ``messages``; if the connection fails meanwhile, read what the service
    sent before it closed (its error frame raises: ``OperationChannel.pending``), then raise the
    send's failure. True only if the result was among those frames."""
    try:
        for message in messages:
            ws.send(message.to_bytes().decode("ascii"))
        return False
    except transport_errors():
        frames = []
        while True:
            try:
                frames.append(ws.recv(timeout=_DRAIN_WAIT))
            except Exception:  # noqa: BLE001 - nothing more to read: closed, or silent
                break
        if channel.pending(frames):
            return True
        raise

def _is_open(ws: Any) -> bool:
    """Whether a kept connection is still open (the service may have closed it meanwhile)."""
    from websockets.protocol import State

    return bool(ws.state is State.OPEN)


def _abort_quietly(ws: Any, frame: str) -> None:
    try:
        ws.send(frame)
    except Exception:  # noqa: BLE001 - the connection is gone: the session expires instead
        pass
