"""The device side against a networked custodian: ``RemoteCustodian(url)``.

Runs ``mpc.Client`` operations over the WebSocket protocol of ``mpc.server`` (one connection per
operation; see that module for the frames)::

    remote = RemoteCustodian("wss://custodian.example:8765", cafile="ca.pem", operator_key=key)
    client_id, token = remote.create_client()             # the operator (or open registration)
    device = mpc.Client(client_id, keychain)
    remote.generate(device, token)
    result, _ = remote.sign(device, token, "ethereum", digest32)
    remote.presign(device, token, 8)                      # 8 ECDSA precomputations, custodian side
    result, _ = remote.sign(device, token, "ethereum", digest32)   # takes one from the pool

Transport: a ``wss://`` URL verifies the service's certificate against the system CAs, or only
``cafile`` (or an ``ssl_context`` of your own); ``client_cert`` / ``client_key`` for mTLS. A
plain ``ws://`` URL is refused unless its host is loopback (``localhost``, 127.0.0.0/8, ``::1``)
or ``allow_plaintext=True`` (``TRANSPORT_INSECURE``). Failures are typed: ``TLS_FAILED`` (an
untrusted certificate), ``SERVICE_UNAVAILABLE`` (unreachable, busy, the connection lost).

Tokens: ``rotate_token`` replaces the client's token; a completed ``recover`` or ``eject``
replaces it too and returns the new one in the custodian's result (``result["token"]``): keep it,
the old one is dead. The operator (``operator_key``) creates clients, reads any client's record
(``get_client(client_id)`` without a token), and revokes, issues and unlocks.

Each operation returns (the device's result, the custodian's result), like ``mpc.run_local``.
Engine errors come back as the same ``mpc.errors`` classes (``errors.from_json``). A lost
connection in the middle of an operation is retried (``retries`` times): the client reconnects
with ``resume``, sends again the messages the custodian has not processed and drops the ones it
already has, so an operation survives a server restart between two rounds.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mpc import errors
from mpc.backup_crypto import BackupMethod
from mpc.client import Client
from mpc.errors import (
    ConfigInvalid,
    EngineError,
    ServiceUnavailable,
    TlsFailed,
    from_protocol_error,
)
from mpc.server import MAX_FRAME_BYTES
from mpc.service_guard import check_service_url, client_tls_context
from protocols.errors import MPCError
from protocols.rounds import Message, Session

__all__ = ["RemoteCustodian"]


class RemoteCustodian:
    """A custodian service at ``url`` (``wss://host:port``, or ``ws://`` on loopback), driven
    from the device (or, with ``operator_key``, by the operator)."""

    def __init__(self, url: str, *, cafile: str | Path | None = None, ssl_context: ssl.SSLContext | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 operator_key: str | None = None, allow_plaintext: bool = False, timeout: float = 60.0,
                 retries: int = 3, retry_delay: float = 0.2) -> None:
        if ssl_context is not None and (cafile is not None or client_cert is not None or client_key is not None):
            raise ConfigInvalid("give either ssl_context or cafile / client_cert / client_key")
        self.allow_plaintext = allow_plaintext
        self.url = url
        self._tls_files = (cafile, client_cert, client_key)
        self._ssl_context = ssl_context
        self._operator_key = operator_key
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay

    @property
    def url(self) -> str:
        return self._url

    @url.setter
    def url(self, url: str) -> None:
        self._scheme = check_service_url(url, self.allow_plaintext)
        self._url = url

    def __repr__(self) -> str:
        return f"RemoteCustodian({self._url!r})"

    # --- requests without a protocol --------------------------------------------------------------
    def create_client(self) -> tuple[str, str]:
        """A new client: (client id, its secret token; keep it, the service stores only a hash).
        Needs the operator key unless the service runs with open registration."""
        result = self._request(self._as_operator({"op": "create_client"}))
        return result["client_id"], result["token"]

    def get_client(self, client_id: str, token: str | None = None) -> dict[str, Any]:
        """The custodian's view: statuses, public keys and addresses (with the client's token,
        or without one as the operator)."""
        if token is None:
            return self._request(self._as_operator({"op": "get_client", "client_id": client_id}))
        return self._request({"op": "get_client", "client_id": client_id, "token": token})

    def rotate_token(self, client_id: str, token: str) -> str:
        """Replace the client's token: returns the new one (keep it); ``token`` is dead at once."""
        return self._request({"op": "rotate_token", "client_id": client_id, "token": token})["token"]

    def revoke_token(self, client_id: str) -> None:
        """Operator: kill the client's token at once (requests and operations in flight fail)."""
        self._request(self._as_operator({"op": "revoke_token", "client_id": client_id}))

    def issue_token(self, client_id: str) -> str:
        """Operator: a fresh token for the client (after a revoke or a lost one); the old one dies."""
        return self._request(self._as_operator({"op": "issue_token", "client_id": client_id}))["token"]

    def unlock_client(self, client_id: str) -> dict[str, Any]:
        """Operator: clear the client's lockout; returns the custodian's view."""
        return self._request(self._as_operator({"op": "unlock_client", "client_id": client_id}))

    def _as_operator(self, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` with the operator key, if this remote has one (without it the service
        accepts only the operator's client certificate, or open registration)."""
        if self._operator_key is None:
            return request
        return {**request, "operator_key": self._operator_key}

    def stored_client_backup_share(self, client_id: str, token: str, method: str = "CLOUD") -> dict[str, Any]:
        """Confirm the customer stored the encrypted client backup share itself."""
        return self._request({"op": "stored_client_backup_share", "client_id": client_id, "token": token,
                              "method": method})

    # --- operations -----------------------------------------------------------------------------------
    def generate(self, client: Client, token: str) -> tuple[Any, Any]:
        return self.run("generate", client.generate(), client.client_id, token)

    def backup(self, client: Client, token: str, method: BackupMethod | None = None, *,
               client_stores_backup: bool = False) -> tuple[Any, Any]:
        session = client.backup(method, client_stores_backup=client_stores_backup)
        params = {"method": session.method.name, "client_stores_backup": client_stores_backup}
        return self.run("backup", session, client.client_id, token, params)

    def recover(self, client: Client, token: str, method: BackupMethod | None = None, *,
                encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[Any, Any]:
        """Recover onto ``client``. The custodian's result holds the client's *new* token
        (``result["token"]``): keep it, ``token`` is dead once recover completes."""
        session = client.recover(method, encrypted_backup=encrypted_backup)
        return self.run("recover", session, client.client_id, token, {"method": session.method.name})

    def eject(self, client: Client, token: str, method: BackupMethod | None = None, *,
              encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[Any, Any]:
        """Eject (rebuild the private keys on ``client``). As with :meth:`recover`, the
        custodian's result holds the client's new token (``result["token"]``)."""
        session = client.eject(method, encrypted_backup=encrypted_backup)
        return self.run("eject", session, client.client_id, token, {"method": session.method.name})

    def sign(self, client: Client, token: str, chain: str, data: bytes) -> tuple[Any, Any]:
        session = client.sign(chain, data)
        return self.run("sign", session, client.client_id, token, {"chain": chain, "data": bytes(data).hex()})

    def presign(self, client: Client, token: str, count: int) -> tuple[Any, Any]:
        """Have the custodian make ``count`` ECDSA precomputations (kept in its store only)."""
        session = client.presign(count)
        return self.run("presign", session, client.client_id, token, {"count": count})

    def sign_presigned(self, client: Client, token: str, chain: str, data: bytes) -> tuple[Any, Any]:
        """The same as :meth:`sign` (no presignature lives on the device); kept as a name."""
        session = client.sign_presigned(chain, data)
        return self.run("sign_presigned", session, client.client_id, token,
                        {"chain": chain, "data": bytes(data).hex()})

    def run(self, op: str, session: Session, client_id: str, token: str, params: Mapping[str, Any] | None = None,
            *, on_message: Callable[[int], None] | None = None) -> tuple[Any, Any]:
        """Drive the device's ``session`` of ``op`` against the service until both are done.

        ``on_message(n)`` is called after the n-th protocol message from the custodian was
        processed (tests use it to restart the server between two rounds).
        """
        request = {"op": op, "client_id": client_id, "token": token, "session_id": session.session_id.hex(),
                   **(params or {})}
        channel = _Channel(self, session, on_message)
        try:
            return channel.run(request, {"op": "resume", "client_id": client_id, "token": token,
                                         "session_id": session.session_id.hex()})
        except EngineError:
            raise
        except MPCError as exc:
            raise from_protocol_error(exc) from exc

    # --- transport ---------------------------------------------------------------------------------
    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = client_tls_context(*self._tls_files)
        return self._ssl_context

    def _connect(self) -> Any:
        from websockets.sync.client import connect

        options: dict[str, Any] = {"ssl": self._tls()} if self._scheme == "wss" else {}
        return connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=self.timeout, close_timeout=2, **options)

    def _request(self, request: dict[str, Any]) -> Any:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        try:
            with self._connect() as ws:
                ws.send(json.dumps(request))
                reply = _control(ws.recv(timeout=self.timeout))
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            raise _transport_error(exc) from None
        if "result" not in reply:
            raise EngineError("unexpected reply from the custodian service")
        return reply["result"]


def _transport_error(exc: BaseException) -> EngineError:
    """The typed error of a failed connection: ``TLS_FAILED`` for a TLS failure (in the chain of
    causes), else ``SERVICE_UNAVAILABLE`` (with the close code when the service closed it)."""
    from websockets.exceptions import ConnectionClosed

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or "handshake failed"
            return TlsFailed(f"TLS with the custodian service failed: {reason}")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        if exc.rcvd.code == 1013:
            return ServiceUnavailable("the custodian service is busy (1013); retry later")
        return ServiceUnavailable(f"the custodian service closed the connection ({exc.rcvd.code})")
    detail = f"{type(exc).__name__}: {exc}"[:200]
    return ServiceUnavailable(f"cannot reach the custodian service ({detail})")


def _control(frame: Any) -> dict[str, Any]:
    """A control frame (ready / result); an error frame raises its engine error."""
    try:
        obj = json.loads(frame)
    except (TypeError, ValueError):
        raise EngineError("malformed frame from the custodian service") from None
    if not isinstance(obj, dict):
        raise EngineError("malformed frame from the custodian service")
    if "error" in obj:
        raise errors.from_json(obj)
    return obj


class _Channel:
    """One operation's messages over one (or, after reconnects, several) connections."""

    def __init__(self, remote: RemoteCustodian, session: Session, on_message: Callable[[int], None] | None) -> None:
        self.remote = remote
        self.session = session
        self.on_message = on_message
        self.sent: list[Message] = []
        self.received = 0
        self.result: Any = None
        self.finished = False

    def run(self, request: dict[str, Any], resume: dict[str, Any]) -> tuple[Any, Any]:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        pending = self.session.start()
        attempt, first = 0, True
        while True:
            try:
                self._connection(request if first else resume, pending)
                return self.session.result(), self.result
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                failure = _transport_error(exc)
                if isinstance(failure, TlsFailed) or attempt >= self.remote.retries:
                    raise failure from None
            attempt += 1
            first, pending = False, []
            time.sleep(self.remote.retry_delay * attempt)

    def _connection(self, request: dict[str, Any], pending: list[Message]) -> None:
        timeout = self.remote.timeout
        with self.remote._connect() as ws:
            ws.send(json.dumps(request))
            ready = _control(ws.recv(timeout=timeout)).get("ready")
            if not isinstance(ready, dict):
                raise EngineError("the custodian service did not accept the operation")
            expect = ready.get("expect")
            if request["op"] == "resume" and isinstance(expect, int):
                pending = [m for m in self.sent if m.round >= expect]  # what it never processed
            self._send(ws, pending, record=request["op"] != "resume")
            while True:
                frame = ws.recv(timeout=timeout)
                if not isinstance(frame, str) or not frame.startswith('{"payload":'):  # messages sort first
                    reply = _control(frame)
                    if "result" in reply:
                        self.result = reply["result"]
                        return
                    raise EngineError("unexpected frame from the custodian service")
                message = Message.from_bytes(frame.encode("ascii"))
                waiting = self.session.awaiting_round
                if self.session.done or (waiting is not None and message.round < waiting):
                    continue  # replayed after a reconnect: already processed
                self._send(ws, self.session.receive(message))
                self.received += 1
                if self.on_message is not None:
                    self.on_message(self.received)

    def _send(self, ws: Any, messages: list[Message], record: bool = True) -> None:
        for message in messages:
            if record:
                self.sent.append(message)
            ws.send(message.to_bytes().decode("ascii"))
