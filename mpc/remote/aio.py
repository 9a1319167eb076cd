"""The device side against a networked custodian, for asyncio: ``AsyncRemoteCustodian(url)``.

The same methods, options and semantics as ``mpc.remote.blocking.RemoteCustodian`` (timeouts, retries,
tokens: see that module's docstring), as coroutines over ``websockets.asyncio.client``. The
transport-independent part (the retry rules, the operation's state machine: what to resend on
resume, which replays to drop) is shared with the blocking client (``mpc.remote.channel``).

The device's protocol steps are CPU-bound (Paillier keys and arithmetic, zero-knowledge proofs,
Argon2id for a password backup): they run in a worker thread (``asyncio.to_thread``), so the
event loop keeps serving other tasks while the device computes. Example::

    import asyncio
    import mpc
    from mpc.remote.aio import AsyncRemoteCustodian

    async def main(operator_key: str, digest32: bytes) -> None:
        remote = AsyncRemoteCustodian("wss://custodian.example:8765", cafile="ca.pem",
                                      operator_key=operator_key, retry_budget=30.0)
        client_id, token = await remote.create_client()
        device = mpc.Client(client_id, mpc.FileKeychain("keychain/"))
        await remote.generate(device, token)
        await remote.backup(device, token)
        result, _ = await remote.sign(device, token, "ethereum", digest32)
        print(result.signature.hex())

    asyncio.run(main(operator_key, digest32))

Several operations may run at once from one event loop (each has its own connection); two
operations of the *same* client that need its operation lock (generate, backup, recover,
eject, sign, presign) are refused by the service with ``OPERATION_IN_PROGRESS`` as usual, and
one device keychain should not be driven by two operations at once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from mpc.backup.methods import BackupMethod
from mpc.client import Client, EjectedKeys
from mpc.errors import EngineError, OperationLost, from_protocol_error
from mpc.remote.channel import OperationChannel, RemoteBase, RequestAttempts
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

__all__ = ["AsyncRemoteCustodian", "RetryPolicy"]

OnMessage = Callable[[int], "Awaitable[None] | None"]


class AsyncRemoteCustodian(RemoteBase):
    """A custodian service at ``url`` driven from asyncio: every method of
    ``mpc.remote.blocking.RemoteCustodian`` as a coroutine, with the same options
    (``mpc.remote.channel.RemoteBase``) and the same retries."""

    _reuses_connections = False  # one connection per request (a connection belongs to its event loop)

    # --- requests without a protocol --------------------------------------------------------------
    async def create_client(self) -> tuple[str, str]:
        """A new client: (client id, its secret token). Needs the operator key unless the
        service runs with open registration."""
        return await self._call(self._create_client_spec())

    async def get_client(self, client_id: str, token: str | None = None, *, device: Client | None = None) -> ClientView:
        """The custodian's view (with the client's token, or without one as the operator)."""
        return await self._call(self._get_client_spec(client_id, token, device))

    async def rotate_token(self, client_id: str, token: str, *, device: Client | None = None) -> str:
        """Replace the client's token: returns the new one; ``token`` is dead at once."""
        return await self._call(self._rotate_token_spec(client_id, token, device))

    async def revoke_token(self, client_id: str) -> None:
        """Operator: kill the client's token at once."""
        await self._call(self._revoke_token_spec(client_id))

    async def issue_token(self, client_id: str) -> str:
        """Operator: a fresh token for the client; the old one dies."""
        return await self._call(self._issue_token_spec(client_id))

    async def unlock_client(self, client_id: str) -> ClientView:
        """Operator: clear the client's lockout; returns the custodian's view."""
        return await self._call(self._unlock_client_spec(client_id))

    async def revoke_device(self, client_id: str) -> ClientView:
        """Operator: forget the client's device key (a stolen device); returns the custodian's
        view. The owner then recovers onto a new device (or enrols one holding the shares)."""
        return await self._call(self._revoke_device_spec(client_id))

    async def enrol_device(self, device: Client, token: str) -> ClientView:
        """Register ``device``'s key for a client that has none (created before device keys, or
        whose key the operator revoked): the device proves it holds the signing shares. Returns
        the custodian's view (``device``: the registered key). Refused (``AUTH_FAILED``) once the
        client has a device key."""
        return await self._call(self._enrol_device_spec(device, token))

    async def stored_client_backup_share(self, client_id: str, token: str, method: str = "CLOUD",
                                         confirmation: Mapping[str, Any] | None = None, *,
                                         device: Client | None = None) -> ClientView:
        """Confirm the customer stored the encrypted client backup share itself; ``confirmation``
        is the backup result's (``result["confirmation"]``), without which nothing changes."""
        return await self._call(self._stored_client_backup_share_spec(client_id, token, method, confirmation, device))

    # --- operations -----------------------------------------------------------------------------------
    async def generate(self, client: Client, token: str) -> tuple[dict[str, str], ClientView]:
        """Create ``client``'s wallet (``Client.generate``); returns (client result, custodian result)."""
        return await self._operate(generate_spec(client), token)

    async def backup(self, client: Client, token: str, method: BackupMethod | None = None, *,
                     client_stores_backup: bool = False) -> tuple[dict[str, Any], ClientView]:
        """Back up ``client``'s shares with ``method`` (``Client.backup``); returns both results."""
        return await self._operate(backup_spec(client, method, client_stores_backup), token)

    async def recover(self, client: Client, token: str, method: BackupMethod | None = None, *,
                      encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[dict[str, str], RecoverResult]:
        """Recover onto ``client``; the custodian's result holds the client's *new* token."""
        return await self._operate(recover_spec(client, method, encrypted_backup), token)

    async def eject(self, client: Client, token: str, method: BackupMethod | None = None, *,
                    encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> tuple[EjectedKeys, RecoverResult]:
        """Eject onto ``client``; the custodian's result holds the client's new token."""
        return await self._operate(eject_spec(client, method, encrypted_backup), token)

    async def sign(self, client: Client, token: str, chain: str, data: bytes, *,
                   path: str | None = None) -> tuple[SignResult, SignResult]:
        """Sign ``data`` for ``chain`` (at the HD ``path`` if given): (the ``SignResult``, the same
        ``SignResult`` once the custodian's result is checked to be the same signature), as
        ``mpc.run_local`` gives."""
        return await self._operate(sign_spec(client, "sign", chain, data, path), token)

    async def derive(self, client: Client, token: str,
                     paths: Sequence[str]) -> tuple[dict[str, dict[str, str]], ClientView]:
        """Derive the accounts of ``paths`` (docs/hd.md): (account path -> {curve: extended public
        key}, the custodian's view with its accounts)."""
        return await self._operate(derive_spec(client, paths), token)

    async def presign(self, client: Client, token: str, count: int) -> tuple[dict[str, int], dict[str, int]]:
        """Have the custodian make ``count`` ECDSA precomputations (kept in its store only)."""
        return await self._operate(presign_spec(client, count), token)

    async def sign_presigned(self, client: Client, token: str, chain: str, data: bytes, *,
                             path: str | None = None) -> tuple[SignResult, SignResult]:
        """The same as :meth:`sign`; kept as a name."""
        return await self._operate(sign_spec(client, "sign_presigned", chain, data, path), token)

    async def _operate(self, spec: OperationSpec[A, B], token: str) -> tuple[A, B]:
        """As ``RemoteCustodian._operate``: a lost sign or presign is started again (issue 26)."""
        restarts = Backoff(self.retry_policy)
        while True:
            session, params = await asyncio.to_thread(spec.make)  # a password backup runs Argon2id
            try:
                return spec.typed(*await self.run(spec.op, session, spec.client_id, token, params))
            except OperationLost as lost:
                delay = restart_delay(spec.op, restarts, lost)
            await asyncio.sleep(delay)

    async def run(self, op: str, session: Session, client_id: str, token: str,
                  params: Mapping[str, Any] | None = None, *, on_message: OnMessage | None = None) -> tuple[Any, Any]:
        """Drive the device's ``session`` of ``op`` until both sides are done (with retries).
        ``on_message(n)`` (a function or a coroutine function) runs after the n-th custodian
        message was processed and the device's answer sent."""
        channel = self._channel(op, session, client_id, token, params)
        try:
            await asyncio.to_thread(channel.start)
            while True:
                try:
                    return await self._connection(channel, on_message)
                except Exception as exc:  # noqa: BLE001 - retry() raises everything it must not retry
                    delay = channel.retry(exc)
                await asyncio.sleep(delay)
        except EngineError:
            raise
        except MPCError as exc:
            raise from_protocol_error(exc) from exc

    # --- transport ---------------------------------------------------------------------------------
    async def _connect(self) -> Any:
        from websockets.asyncio.client import connect

        try:
            return await connect(self.url, **self._connect_options())
        except Exception as exc:
            await asyncio.to_thread(self._diagnose, exc)  # a misconfiguration is raised at once (issue 26)
            raise

    async def _connection(self, channel: OperationChannel, on_message: OnMessage | None) -> tuple[Any, Any]:
        channel.connecting()
        async with await self._connect() as ws:
            await ws.send(channel.request())
            if await _send(ws, channel.ready(await self._answered(ws, channel.answer)), channel):
                return channel.outcome()
            while True:
                frame = await asyncio.wait_for(ws.recv(), self.timeout)
                if not channel.is_message(frame):
                    if channel.control(frame):
                        return channel.outcome()
                    continue
                try:
                    replies = await asyncio.to_thread(channel.deliver, frame)  # the device's step: CPU-bound
                except Exception:
                    await _abort_quietly(ws, channel.abort_frame)  # the device gave up: the service frees the session now
                    raise
                if replies is None:
                    continue  # a replay the device already processed
                if await _send(ws, replies, channel):
                    return channel.outcome()
                if on_message is not None:
                    called = on_message(channel.received)
                    if inspect.isawaitable(called):
                        await called

    async def _call(self, spec: RequestSpec[T]) -> T:
        attempts = RequestAttempts(spec, self.retry_policy)
        while True:
            attempts.connecting()
            try:
                async with await self._connect() as ws:
                    await ws.send(attempts.frame())
                    return attempts.reply(await self._answered(ws, attempts.answer))
            except Exception as exc:  # noqa: BLE001 - retry() raises everything it must not retry
                delay = attempts.retry(exc)
            await asyncio.sleep(delay)


    async def _answered(self, ws: Any, answer: Callable[[Any], str | None]) -> Any:
        """The service's answer to the request, after answering its challenge if it sent one."""
        frame = await asyncio.wait_for(ws.recv(), self.ready_timeout)
        reply = answer(frame)
        if reply is None:
            return frame
        await ws.send(reply)
        return await asyncio.wait_for(ws.recv(), self.ready_timeout)



_DRAIN_WAIT = 1.0  # seconds to wait for each frame still on the way once a send failed


async def _send(ws: Any, messages: list[Message], channel: OperationChannel) -> bool:
    """As ``mpc.remote.blocking``'s: send, or read what the service sent before it closed (its
    error frame raises) and raise the send's failure; True if the result was among them."""
    try:
        for message in messages:
            await ws.send(message.to_bytes().decode("ascii"))
        return False
    except transport_errors():
        frames = []
        while True:
            try:
                frames.append(await asyncio.wait_for(ws.recv(), _DRAIN_WAIT))
            except Exception:  # noqa: BLE001 - nothing more to read: closed, or silent
                break
        if channel.pending(frames):
            return True
        raise

async def _abort_quietly(ws: Any, frame: str) -> None:
    try:
        await ws.send(frame)
    except Exception:  # noqa: BLE001 - the connection is gone: the session expires instead
        pass
