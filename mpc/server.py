"""The networked custodian: ``python -m mpc serve [--db URL] [--host 127.0.0.1] [--port N]``.

An asyncio WebSocket service (the ``websockets`` library, ``server`` extra) in front of
``mpc.Custodian``. One WebSocket connection carries one request; for a wallet operation it then
carries that operation's round messages until it completes.

Wire protocol (text frames, JSON)
---------------------------------
The client's first frame is a request object::

    {"op": "create_client"}                                   -> {"result": {"client_id", "token"}}
    {"op": "get_client", "client_id", "token"}                -> {"result": <custodian view>}
    {"op": "stored_client_backup_share", "client_id", "token", "method"?}
                                                              -> {"result": <custodian view>}
    {"op": "generate" | "backup" | "recover" | "eject" | "sign" | "presign" | "sign_presigned",
     "client_id", "token", "session_id": 64 hex digits, ...parameters}
                                                              -> {"ready": {"session_id", "expect"}}
    {"op": "resume", "client_id", "token", "session_id"}      -> {"ready": {...}} + replayed frames

Operation parameters: backup ``method`` (default ``CLOUD``) and ``client_stores_backup``
(bool); recover and eject ``method``; sign and sign_presigned ``chain`` and ``data`` (hex: the
32-byte digest for secp256k1 chains, the message for ed25519 chains); presign ``count`` (an
integer from 1 to ``mpc.presign.MAX_PRESIGN_COUNT``: ECDSA precomputations the custodian makes
and keeps; the device stores nothing). sign_presigned is the same operation as sign (every
ECDSA sign takes a precomputation from the pool when there is one). After ``ready``
both sides exchange protocol messages, each one frame holding ``Message.to_bytes()`` exactly
(the client speaks first, with its "hello"). When the custodian's session completes the server
sends ``{"result": <custodian result>}`` (the view of ``get_client``, the signature's
``SignResult.to_json()``, or presign's counts per curve) and closes the connection normally.

Errors are ``{"error": {"id": CODE, "message": text}}`` with the stable codes of ``mpc.errors``
(``docs/errors.md``): ``AUTH_FAILED`` for a missing or wrong token (or an unknown client: the
answer is the same), ``INPUT_INVALID`` for a malformed request, ``MESSAGE_INVALID`` for a frame
that is not a canonical message of this session (the session is unchanged and the connection
stays open, up to ``MAX_INVALID_FRAMES``), ``NOT_FOUND`` for an unknown, finished, expired or
busy session; an abort (``PROTOCOL_ABORTED``, ``DKG_FAILED``, ``KEY_LOCKED``, …) ends the
session and closes the connection. A frame above ``MAX_FRAME_BYTES`` closes the connection
(1009); a binary frame is ``MESSAGE_INVALID``.

Parking, restarts, expiry
-------------------------
Between two messages a session lives only in the database (``mpc.service_store``): each
incoming message *takes* the parked state (load and delete at once), steps it, and parks the new
state with the messages it produced. A server may therefore stop between two rounds and another
process on the same database continue: the client reconnects with ``resume``, learns which of
its messages the custodian expects next (``expect``) and receives the last step's messages again
(it drops those it already has). A session untouched for ``session_ttl`` seconds is purged,
releasing the operation lock it held; shares and statuses are never touched by the purge.

Off the event loop
------------------
Every step (decode the parked state, verify proofs, Paillier arithmetic, store writes) runs in
an executor, never on the event loop. With a file or PostgreSQL database the default is a
*process* pool (``spawn``): the proofs are pure-Python / gmpy2 big-integer work that holds the
GIL, so threads would take turns on one core; a worker receives only picklable bytes (database
URL, parked state, frame) and keeps its own store connection, which the take-semantics make
safe. With ``:memory:`` (one connection, one process) it is a thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from mpc.custodian import Custodian
from mpc.errors import EngineError, InputInvalid, MessageInvalid, NotFound, from_protocol_error
from mpc.presign import MAX_PRESIGN_COUNT
from mpc.service_store import ServiceStore, new_token
from mpc.stores import open_store
from mpc.wallet import SignResult
from protocols.errors import InvalidMessage, MPCError
from protocols.rounds import Message

__all__ = [
    "CustodianService",
    "ServiceThread",
    "OPERATIONS",
    "MAX_FRAME_BYTES",
    "MAX_INVALID_FRAMES",
    "DEFAULT_PORT",
    "DEFAULT_SESSION_TTL",
]

log = logging.getLogger("mpc.server")

DEFAULT_PORT = 8765
DEFAULT_SESSION_TTL = 300.0
MAX_FRAME_BYTES = 1 << 20  # the largest protocol message (keygen round 5) is about 100 kB
MAX_INVALID_FRAMES = 8
REQUEST_TIMEOUT = 30.0
OPERATIONS = ("generate", "backup", "recover", "eject", "sign", "presign", "sign_presigned")
_SESSION_ID = re.compile(r"^[0-9a-f]{64}$")


def _session_not_found() -> dict[str, Any]:
    """No parked session of this id for this client (unknown, finished, expired, or in use)."""
    return NotFound("no such session (unknown, finished, expired or busy)").to_json()


# --- the steps (run in an executor: a worker thread or a worker process) -----------------------------
_CUSTODIANS: dict[str, Custodian] = {}
_CUSTODIANS_LOCK = threading.Lock()


def _custodian(db: str) -> Custodian:
    """This process's custodian on ``db`` (a worker process opens its own connection)."""
    with _CUSTODIANS_LOCK:
        custodian = _CUSTODIANS.get(db)
        if custodian is None:
            custodian = _CUSTODIANS[db] = Custodian(open_store(db))
        return custodian


def _bind(db: str, custodian: Custodian) -> None:
    with _CUSTODIANS_LOCK:
        _CUSTODIANS[db] = custodian


def _service(db: str) -> tuple[Custodian, ServiceStore]:
    custodian = _custodian(db)
    service = getattr(custodian, "_service", None)
    if service is None:
        service = ServiceStore(custodian.store)
        custodian._service = service  # type: ignore[attr-defined]
    return custodian, service


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, MPCError):
        return from_protocol_error(exc).to_json()
    log.exception("internal error in a custodian step", exc_info=exc)
    return EngineError().to_json()


def _result_json(result: Any) -> Any:
    return result.to_json() if isinstance(result, SignResult) else result


def _open_operation(db: str, op: str, client_id: str, params: dict[str, Any], session_id: str,
                    ttl: float) -> dict[str, Any]:
    """Create the custodian session of ``op`` and park it before any message arrives."""
    custodian, service = _service(db)
    try:
        if service.peek(session_id) is not None:
            raise InputInvalid("this session id is in use")
        sid = bytes.fromhex(session_id)
        factory = getattr(custodian, op)
        session = factory(client_id, session_id=sid, **params)
        outbox = [m.to_bytes().decode("ascii") for m in session.start()]
        service.park(session_id, client_id, op, session.to_bytes(), outbox, session._holds_lock, ttl)
        return {"messages": outbox, "expect": session.awaiting_round}
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error frame
        return {"error": _error(exc), "fatal": True}


def _resume_channel(db: str, client_id: str, session_id: str) -> dict[str, Any]:
    """What a reconnecting client needs: the next message number expected and the last outbox."""
    custodian, service = _service(db)
    parked = service.peek(session_id)
    if parked is None or parked.client_id != client_id or parked.expires < time.time():
        return {"error": _session_not_found(), "fatal": True}
    try:
        expect = custodian.parked_awaiting_round(parked.data)
    except Exception as exc:  # noqa: BLE001
        return {"error": _error(exc), "fatal": True}
    return {"messages": parked.outbox, "expect": expect}


def _step(db: str, client_id: str, session_id: str, frame: bytes, ttl: float) -> dict[str, Any]:
    """Take the parked session, deliver one message, park the new state (or finish)."""
    custodian, service = _service(db)
    owner = service.peek(session_id)
    if owner is None or owner.client_id != client_id:
        return {"error": _session_not_found(), "fatal": True}
    parked = service.take(session_id)
    if parked is None:  # another connection took it first
        return {"error": _session_not_found(), "fatal": True}
    if parked.expires < time.time():
        _release(custodian, parked)
        return {"error": _session_not_found(), "fatal": True}
    try:
        session = custodian.resume(parked.data)
        message = Message.from_bytes(frame)
    except Exception as exc:  # noqa: BLE001 - a state that does not restore is dropped
        _release(custodian, parked)
        return {"error": _error(exc), "fatal": True}
    try:
        produced = session.receive(message)
    except InvalidMessage as exc:  # the session is unchanged: park it again, keep the channel
        service.park(session_id, client_id, parked.operation, session.to_bytes(), parked.outbox,
                     session._holds_lock, ttl)
        return {"error": MessageInvalid(str(exc)).to_json(), "fatal": False}
    except Exception as exc:  # noqa: BLE001 - an abort ends the session (it released its lock)
        return {"error": _error(exc), "fatal": True}
    sent = [m.to_bytes().decode("ascii") for m in produced]
    if session.done:
        return {"messages": sent, "result": _result_json(session.result())}
    # Every message sent so far stays with the state: a client that reconnects gets them all
    # again and drops those it has (an operation sends a handful of messages).
    service.park(session_id, client_id, parked.operation, session.to_bytes(), parked.outbox + sent,
                 session._holds_lock, ttl)
    return {"messages": sent}


def _release(custodian: Custodian, parked: Any) -> None:
    """An abandoned session frees the client's operation lock it held (and nothing else)."""
    if parked.holds_lock:
        record = custodian.store.client(parked.client_id)
        if record.operation == parked.operation:
            custodian._release(parked.client_id)


def _warm(db: str) -> bool:
    _service(db)
    return True


# --- requests --------------------------------------------------------------------------------------------
def _parse_request(frame: Any) -> dict[str, Any]:
    if not isinstance(frame, str) or len(frame) > 64 * 1024:
        raise InputInvalid("the first frame must be a JSON request object (text)")
    try:
        request = json.loads(frame, parse_constant=_no_constant)
    except ValueError:
        raise InputInvalid("the request is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise InputInvalid("the request must be an object with an 'op'")
    return request


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _operation_params(op: str, request: dict[str, Any]) -> dict[str, Any]:
    allowed = {"generate": (), "backup": ("method", "client_stores_backup"), "recover": ("method",),
               "eject": ("method",), "sign": ("chain", "data"), "sign_presigned": ("chain", "data"),
               "presign": ("count",)}[op]
    extra = set(request) - {"op", "client_id", "token", "session_id", *allowed}
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
    if op in ("sign", "sign_presigned"):
        if not isinstance(params.get("chain"), str) or not isinstance(params.get("data"), str):
            raise InputInvalid(f"{op} needs 'chain' and 'data' (hex)")
        try:
            params["data"] = bytes.fromhex(params["data"])
        except ValueError:
            raise InputInvalid("data must be hex") from None
    return params


def _session_id(request: dict[str, Any]) -> str:
    session_id = request.get("session_id")
    if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
        raise InputInvalid("session_id must be 64 lowercase hex digits")
    return session_id


def _frame(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class CustodianService:
    """The WebSocket custodian over one database (``db``: a SQLite path, ``:memory:`` or a
    ``postgresql://`` URL). ``executor`` is ``"process"``, ``"thread"`` or ``"auto"``."""

    def __init__(self, db: str = "custodian.sqlite3", *, session_ttl: float = DEFAULT_SESSION_TTL,
                 executor: str = "auto", workers: int = 2, max_frame: int = MAX_FRAME_BYTES,
                 custodian: Custodian | None = None) -> None:
        if executor not in ("auto", "process", "thread"):
            raise InputInvalid("executor must be auto, process or thread")
        self.db = db
        self.session_ttl = session_ttl
        self.max_frame = max_frame
        self.custodian = custodian if custodian is not None else Custodian(open_store(db))
        self.service = ServiceStore(self.custodian.store)
        self.custodian._service = self.service  # type: ignore[attr-defined]
        self.custodian.setup  # noqa: B018 - the workers load it from the store: make sure it is there
        in_memory = db == ":memory:" or custodian is not None
        self.executor_kind = "thread" if executor == "thread" or (executor == "auto" and in_memory) else "process"
        if self.executor_kind == "process" and in_memory:
            raise InputInvalid("a process pool needs a database file or URL, not :memory:")
        self._key = db if self.executor_kind == "process" else f"inproc:{id(self)}"
        if self.executor_kind == "thread":
            _bind(self._key, self.custodian)
            self._pool: concurrent.futures.Executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(2, workers), thread_name_prefix="mpc-step")
        else:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        self._server: Any = None

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the port."""
        from websockets.asyncio.server import serve

        await asyncio.gather(*(self._run(_warm, self._key) for _ in range(2)))
        self._server = await serve(self._handle, host, port, max_size=self.max_frame,
                                   ping_interval=20, ping_timeout=20, close_timeout=2)
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._purger.cancel()
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _purge_loop(self) -> None:
        interval = max(0.5, min(self.session_ttl / 2, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.purge)
            except Exception:  # noqa: BLE001 - keep purging on the next tick
                log.exception("purging expired sessions failed")

    def purge(self, now: float | None = None) -> int:
        """Delete expired parked sessions, releasing the operation locks they held."""
        expired = self.service.purge(now)
        for parked in expired:
            _release(self.custodian, parked)
        return len(expired)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # --- connections ------------------------------------------------------------------------------
    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            request = _parse_request(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT))
            await self._dispatch(ws, request)
        except EngineError as exc:
            await _send_quietly(ws, exc.to_json())
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one connection never takes the service down
            log.exception("internal error on a connection")
            await _send_quietly(ws, EngineError().to_json())

    async def _dispatch(self, ws: Any, request: dict[str, Any]) -> None:
        op = request["op"]
        if op == "create_client":
            await ws.send(_frame({"result": await asyncio.to_thread(self._create_client)}))
            return
        client_id, token = request.get("client_id"), request.get("token")
        await asyncio.to_thread(self.service.check_token, client_id, token)
        if op == "get_client":
            await ws.send(_frame({"result": await asyncio.to_thread(self.custodian.get_client, client_id)}))
        elif op == "stored_client_backup_share":
            method = request.get("method", "CLOUD")
            if not isinstance(method, str):
                raise InputInvalid("method must be a string")
            view = await asyncio.to_thread(self._stored_client_backup_share, client_id, method)
            await ws.send(_frame({"result": view}))
        elif op in OPERATIONS:
            session_id = _session_id(request)
            opened = await self._run(_open_operation, self._key, op, client_id,
                                     _operation_params(op, request), session_id, self.session_ttl)
            await self._channel(ws, client_id, session_id, opened)
        elif op == "resume":
            session_id = _session_id(request)
            await self._channel(ws, client_id, session_id,
                                await self._run(_resume_channel, self._key, client_id, session_id))
        else:
            raise InputInvalid(f"unknown op {op!r}")

    def _create_client(self) -> dict[str, str]:
        token = new_token()
        with self.custodian.store.transaction():
            client_id = self.custodian.create_client()
            self.service.set_token(client_id, token)
        return {"client_id": client_id, "token": token}

    def _stored_client_backup_share(self, client_id: str, method: str) -> dict[str, Any]:
        self.custodian.stored_client_backup_share(client_id, method)
        return self.custodian.get_client(client_id)

    async def _channel(self, ws: Any, client_id: str, session_id: str, opened: dict[str, Any]) -> None:
        """Carry one operation's messages: frame in, step in the executor, frames out."""
        if "error" in opened:
            await ws.send(_frame({"error": opened["error"]["error"]}))
            return
        await ws.send(_frame({"ready": {"session_id": session_id, "expect": opened["expect"]}}))
        for text in opened["messages"]:
            await ws.send(text)
        invalid = 0
        while True:
            frame = await asyncio.wait_for(ws.recv(), self.session_ttl)
            try:
                data = _message_frame(frame, session_id)
            except EngineError as exc:
                invalid += 1
                await ws.send(_frame(exc.to_json()))
                if invalid >= MAX_INVALID_FRAMES:
                    await ws.close(1008, "too many invalid frames")
                    return
                continue
            outcome = await self._run(_step, self._key, client_id, session_id, data, self.session_ttl)
            for text in outcome.get("messages", ()):
                await ws.send(text)
            if "result" in outcome:
                await ws.send(_frame({"result": outcome["result"]}))
                return
            if "error" in outcome:
                await ws.send(_frame({"error": outcome["error"]["error"]}))
                if outcome["fatal"]:
                    return
                invalid += 1
                if invalid >= MAX_INVALID_FRAMES:
                    await ws.close(1008, "too many invalid frames")
                    return


def _message_frame(frame: Any, session_id: str) -> bytes:
    """A protocol message frame of this session, as bytes (``MESSAGE_INVALID`` otherwise)."""
    if not isinstance(frame, str):
        raise MessageInvalid("protocol messages are text frames")
    try:
        data = frame.encode("ascii")
        message = Message.from_bytes(data)
    except (UnicodeEncodeError, InvalidMessage) as exc:
        raise MessageInvalid(str(exc) if isinstance(exc, InvalidMessage) else "message must be ASCII") from None
    if message.session_id.hex() != session_id:
        raise MessageInvalid("message for another session")
    return data


async def _send_quietly(ws: Any, obj: Any) -> None:
    try:
        await ws.send(_frame(obj))
    except Exception:  # noqa: BLE001 - the peer is gone: nothing more to tell it
        pass


class ServiceThread:
    """A ``CustodianService`` on its own event loop in a background thread (tests, demo)."""

    def __init__(self, db: str = ":memory:", *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._options = options
        self._db, self._port = db, port
        self.service: CustodianService | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._main, name="mpc-server", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EngineError("the custodian service did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.service = CustodianService(self._db, **self._options)
            self.port = self._loop.run_until_complete(self.service.start(self.host, self._port))
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self, timeout: float = 30.0) -> None:
        """Close the listener and every connection, then the executor."""
        if self.service is None or not self._thread.is_alive():
            return

        async def _stop() -> None:
            await self.service.stop()  # type: ignore[union-attr]
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop)
        self._thread.join(timeout)

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve_forever(db: str, host: str, port: int, **options: Any) -> int:
    """``python -m mpc serve``: run until interrupted."""
    async def main() -> None:
        service = CustodianService(db, **options)
        bound = await service.start(host, port)
        print(f"portal-mpc custodian on ws://{host}:{bound} (db {_redact(db)}, {service.executor_kind} pool)",
              flush=True)
        try:
            await asyncio.Future()
        finally:
            await service.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def _redact(db: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", db)
