"""The device side against a networked custodian: ``RemoteCustodian(url)``.

Runs ``mpc.Client`` operations over the WebSocket protocol of ``mpc.server`` (one connection per
operation; see that module for the frames)::

    remote = RemoteCustodian("ws://127.0.0.1:8765")
    client_id, token = remote.create_client()
    device = mpc.Client(client_id, keychain)
    remote.generate(device, token)
    result, _ = remote.sign(device, token, "ethereum", digest32)
    remote.presign(device, token, 8)                      # 8 ECDSA precomputations, custodian side
    result, _ = remote.sign(device, token, "ethereum", digest32)   # takes one from the pool

Each operation returns (the device's result, the custodian's result), like ``mpc.run_local``.
Engine errors come back as the same ``mpc.errors`` classes (``errors.from_json``). A lost
connection in the middle of an operation is retried (``retries`` times): the client reconnects
with ``resume``, sends again the messages the custodian has not processed and drops the ones it
already has, so an operation survives a server restart between two rounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from mpc import errors
from mpc.backup_crypto import BackupMethod
from mpc.client import Client
from mpc.errors import EngineError, from_protocol_error
from mpc.server import MAX_FRAME_BYTES
from protocols.errors import MPCError
from protocols.rounds import Message, Session

__all__ = ["RemoteCustodian"]


class RemoteCustodian:
    """A custodian service at ``url`` (``ws://host:port``), driven from the device."""

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3, retry_delay: float = 0.2) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay

    # --- requests without a protocol --------------------------------------------------------------
    def create_client(self) -> tuple[str, str]:
        """A new client: (client id, its secret token; keep it, the service stores only a hash)."""
        result = self._request({"op": "create_client"})
        return result["client_id"], result["token"]

    def get_client(self, client_id: str, token: str) -> dict[str, Any]:
        """The custodian's view: statuses, public keys and addresses."""
        return self._request({"op": "get_client", "client_id": client_id, "token": token})

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
        session = client.recover(method, encrypted_backup=encrypted_backup)
        return self.run("recover", session, client.client_id, token, {"method": session.method.name})

    def eject(self, client: Client, token: str, method: BackupMethod | None = None, *,
              encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[Any, Any]:
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
    def _connect(self) -> Any:
        from websockets.sync.client import connect

        return connect(self.url, max_size=MAX_FRAME_BYTES, open_timeout=self.timeout, close_timeout=2)

    def _request(self, request: dict[str, Any]) -> Any:
        with self._connect() as ws:
            ws.send(json.dumps(request))
            reply = _control(ws.recv(timeout=self.timeout))
        if "result" not in reply:
            raise EngineError("unexpected reply from the custodian service")
        return reply["result"]


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
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                if attempt >= self.remote.retries:
                    raise EngineError("lost the connection to the custodian service") from None
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
