"""The networked custodian: ``python -m mpc serve [--db URL] [--host 127.0.0.1] [--port N]``.

An asyncio WebSocket service (the ``websockets`` library, ``server`` extra) in front of
``mpc.Custodian``. One WebSocket connection carries one request; for a wallet operation it then
carries that operation's round messages until it completes. A client that offers the keep-alive
subprotocol (``mpc.wire.KEEP_ALIVE_SUBPROTOCOL``) sends its next request on the same connection
after one succeeded, each checked in full (``CustodianService._serve``; ``docs/operations.md``,
Kept connections).

Front door (``mpc.service.guard``; ``docs/operations.md``, Security)
--------------------------------------------------------------------
TLS (``wss://``) with ``tls_cert`` and ``tls_key``; with ``tls_client_ca`` every client must
present a certificate signed by that CA (mTLS). Without TLS the service listens on loopback
only, unless ``allow_plaintext=True`` (``--insecure-plaintext``). An *operator key*
(``operator_key``: the key or ``sha256:<hex>``; ``serve`` reads it from a file or
``$PORTAL_MPC_OPERATOR_KEY``) is required for the operator ops below; with
``operator_cert_cn`` a verified client certificate of that subject CN counts as the operator
too. Without an operator key the service refuses to start unless ``open_registration=True``
(anyone may then create clients). Limits (``ServiceLimits``): sockets over the per-IP caps are
closed as they are accepted; near the total socket cap (sized from the descriptor limit, raised
to the hard limit at start) and above ``max_connections`` open WebSocket connections, the
oldest connection that has not sent a valid request frame is evicted, from the address holding
the most (one that sent it never is), else the new one is closed (at accept, or with code 1013);
per-IP and per-client token buckets and a cap on a client's parked sessions answer
``RATE_LIMITED`` (``retry after N s``); the handshakes and the request frame must arrive within
``first_frame_timeout``.

The request frames and their parsing: ``mpc.service.requests`` (Wire protocol). The per-step
worker side (parking, restarts, expiry; steps off the event loop): ``mpc.service.worker``. The
worker pool and the node heartbeat: ``mpc.service.pool``. The parts of ``CustodianService`` kept
in modules of their own (its base classes): the executor that runs the steps and is rebuilt when
a worker dies, ``mpc.service.executor``; the operator's requests and the device's credential
check, ``mpc.service.operator``; readiness, the HTTP endpoints' configuration, warming, draining
and the purge loop, ``mpc.service.health``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # the ``server`` extra is imported when the service starts
    from websockets.typing import Subprotocol

from mpc.service import credentials, liveness, logs, metrics, pool, requests, worker
from mpc.service.worker import log
from mpc.custodian import Custodian
from mpc.errors import (
    AuthFailed,
    ConfigInvalid,
    EngineError,
    InputInvalid,
    RateLimited,
    TransportInsecure,
)
from mpc.service.health import NodeHealth
from mpc.service.operator import OperatorRequests
from mpc.service.observability import RequestRecord, current_request
from mpc.service.guard import (
    BoundedLog,
    ConnectionGate,
    GatedSocket,
    OperatorKey,
    ServiceLimits,
    TokenBuckets,
    binds_loopback_only,
    check_fd_budget,
    peer_key,
    server_tls_context,
)
from mpc.service.store import ServiceStore
from mpc.wire import (
    ABORT_FRAME,
    CLOSE_BUSY,
    CLOSE_POLICY,
    CLOSE_RESTARTING,
    IDLE_CLOSE_REASON,
    KEEP_ALIVE_SUBPROTOCOL,
    MAX_FRAME_BYTES,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_DEPTH,
    OPERATIONS,
    OPERATOR_OPS,
)
from mpc.storage.backends import open_store

__all__ = [
    "CustodianService",
    "ServiceThread",
    "ServiceLimits",
    "OperatorKey",
    "OPERATIONS",
    "OPERATOR_OPS",
    "MAX_FRAME_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_DEPTH",
    "MAX_INVALID_FRAMES",
    "DEFAULT_PORT",
    "DEFAULT_SESSION_TTL",
    "DEFAULT_LOCK_TTL",
    "DEFAULT_NODE_TTL",
    "DEFAULT_DRAIN_GRACE",
]

DEFAULT_PORT = 8765
DEFAULT_SESSION_TTL = 300.0
DEFAULT_LOCK_TTL = 120.0  # the lease of a client's operation lock while one of its steps runs
DEFAULT_NODE_TTL = 5.0  # a node whose heartbeat is older is dead: the steps it was running are lost
DEFAULT_DRAIN_GRACE = 30.0  # SIGTERM: how long steps in flight may take to finish and park
MAX_INVALID_FRAMES = 8
MAX_REQUESTS_PER_CONNECTION = 1000  # a kept connection (KEEP_ALIVE_SUBPROTOCOL) is closed after as many
_LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn: a flood queues, probes are not SYN-dropped


class CustodianService(NodeHealth, OperatorRequests):
    """The WebSocket custodian over one database (``db``: a SQLite path, ``:memory:`` or a
    ``postgresql://`` URL). ``executor`` is ``"process"``, ``"thread"`` or ``"auto"``.

    The front door (module docstring): ``tls_cert`` and ``tls_key`` (``tls_client_ca``: client
    certificates required), ``allow_plaintext`` (ws:// off loopback), ``operator_key`` (an
    :class:`OperatorKey` or its configuration text), ``operator_cert_cn``, ``open_registration``
    and ``limits``. A configuration without any operator credential is refused
    (``CONFIG_INVALID``) unless ``open_registration`` is set explicitly.

    Resilience (``docs/operations.md``, Resilience): ``lock_ttl`` is the lease of a client's
    operation lock while one of its steps runs (parked, the lease is the park's expiry,
    ``session_ttl``); ``node_ttl`` how long this node counts as alive after its last heartbeat
    (the steps of a node silent for longer are lost, their locks freed); ``drain_grace`` how long
    ``drain`` (SIGTERM) lets steps in flight finish. A dead worker process is replaced (its lane);
    ``ready()`` says whether the node should get traffic.
    """

    _log_settings: logs.LogSettings | None  # this process's log settings, naming the node (worker steps repeat them)

    def __init__(self, db: str = "custodian.sqlite3", *, session_ttl: float = DEFAULT_SESSION_TTL,
                 executor: str = "auto", workers: int = 2, max_frame: int = MAX_FRAME_BYTES,
                 custodian: Custodian | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, tls_client_ca: str | Path | None = None,
                 allow_plaintext: bool = False, operator_key: OperatorKey | str | None = None,
                 operator_cert_cn: str | None = None, open_registration: bool = False,
                 limits: ServiceLimits | None = None, metrics_public: bool = False,
                 lock_ttl: float = DEFAULT_LOCK_TTL, node_ttl: float = DEFAULT_NODE_TTL,
                 drain_grace: float = DEFAULT_DRAIN_GRACE) -> None:
        if executor not in ("auto", "process", "thread"):
            raise InputInvalid("executor must be auto, process or thread")
        for name, value in (("session_ttl", session_ttl), ("lock_ttl", lock_ttl), ("node_ttl", node_ttl)):
            if not value > 0:
                raise ConfigInvalid(f"{name} must be a positive number of seconds")
        if not drain_grace >= 0:
            raise ConfigInvalid("drain_grace must be a number of seconds, 0 or more")
        self._configure_front_door(tls_cert, tls_key, tls_client_ca, allow_plaintext, operator_key,
                                   operator_cert_cn, open_registration, limits)
        self._configure_observability(metrics_public)  # issue 18: logs, audit, /healthz /readyz /metrics
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
            worker.bind(self._key, self.custodian)
        self._configure_resilience(workers, lock_ttl, node_ttl, drain_grace)
        logs.set_node(self.node_id)  # every log line of this process names its node (issue 26)
        if self._log_settings is not None:
            self._log_settings = self._log_settings.with_node(self.node_id)  # and of its workers
        self._server: Any = None

    def _configure_resilience(self, workers: int, lock_ttl: float, node_ttl: float, drain_grace: float) -> None:
        """The executor pool, this node's identity and heartbeat, lock leases, the drain state."""
        self.workers = workers
        self.lock_ttl, self.node_ttl, self.drain_grace = float(lock_ttl), float(node_ttl), float(drain_grace)
        self.node_id = secrets.token_hex(8)
        self.custodian.lock_ttl = self.lock_ttl
        self.custodian.lock_reclaim = self.service.reclaim_lock
        self.pool_rebuilds = 0
        self.warm = False  # the workers started (issue 26: the service listens before they do)
        self._warmer: asyncio.Task[None] | None = None
        self._retired: list[concurrent.futures.Executor] = []  # broken pools, the bridge: joined at stop
        self._bridge: concurrent.futures.ThreadPoolExecutor | None = None  # steps while the workers warm
        self._pool: concurrent.futures.Executor = self._new_pool()
        self._draining = False
        self._in_flight = 0  # steps (and opening operations) running now
        self._heartbeat: pool.Heartbeat | None = None

    def _announce(self) -> None:
        """This node is alive (its heartbeat and where its process runs), and the nodes that died on
        this machine (``mpc.service.liveness``) have their steps declared lost now: a node killed
        and restarted at once is not waited for during ``node_ttl``."""
        here = liveness.this_process()
        self.service.heartbeat(self.node_id, self.node_ttl)
        self.service.register_process(self.node_id, here)
        self.service.reap_dead_neighbours(here)

    def _configure_front_door(self, tls_cert: str | Path | None, tls_key: str | Path | None,
                              tls_client_ca: str | Path | None, allow_plaintext: bool,
                              operator_key: OperatorKey | str | None, operator_cert_cn: str | None,
                              open_registration: bool, limits: ServiceLimits | None) -> None:
        """Check and keep the TLS, credential and limit settings (before anything is opened)."""
        if (tls_cert is None) != (tls_key is None):
            raise ConfigInvalid("TLS needs both a certificate and its key")
        if tls_cert is None and tls_client_ca is not None:
            raise ConfigInvalid("a client CA (mTLS) needs TLS: give the certificate and key too")
        if operator_cert_cn is not None and tls_client_ca is None:
            raise ConfigInvalid("operator_cert_cn needs client certificates (tls_client_ca)")
        self.ssl_context = None if tls_cert is None else server_tls_context(tls_cert, tls_key, tls_client_ca)  # type: ignore[arg-type]
        self.allow_plaintext = allow_plaintext
        self._operator_key = OperatorKey.parse(operator_key) if isinstance(operator_key, str) else operator_key
        self._operator_cn = operator_cert_cn
        self.open_registration = open_registration
        if self._operator_key is None and self._operator_cn is None and not open_registration:
            raise ConfigInvalid("no operator key: configure one (--operator-key-file or $PORTAL_MPC_OPERATOR_KEY) "
                                "or allow anyone to create clients with --open-registration")
        self.limits = limits if limits is not None else ServiceLimits()
        self._log = BoundedLog(log, self.limits.log_per_minute)
        self._gate = ConnectionGate(self.limits.max_sockets, self.limits.max_connections_per_ip, self._log)
        self._ip_requests = TokenBuckets(self.limits.ip_rate, self.limits.ip_burst)
        self._client_requests = TokenBuckets(self.limits.client_rate, self.limits.client_burst)
        self._active = 0
        # Per kept connection, the challenge its last result carried, for its next request only
        # (weak: a closed connection's goes with it).
        self._issued: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()

    @property
    def scheme(self) -> str:
        """``wss`` with TLS, else ``ws``."""
        return "ws" if self.ssl_context is None else "wss"

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the port. Plain ws:// on an
        address that is not loopback is refused (``TRANSPORT_INSECURE``) unless allowed."""
        from websockets.asyncio.server import serve

        if self.ssl_context is None and not self.allow_plaintext and not binds_loopback_only(host):
            raise TransportInsecure(f"refusing plaintext ws:// on {host}: configure TLS (--tls-cert, --tls-key) "
                                    "or pass --insecure-plaintext")
        GatedSocket.require_python_accepts(asyncio.get_running_loop())
        self._gate.max_sockets = check_fd_budget(self.limits)  # the soft descriptor limit raised to the hard one
        if self.open_registration:
            log.warning("OPEN REGISTRATION: anyone who can reach this service may create clients "
                        "(no operator key is required for create_client)")
        await asyncio.to_thread(self._announce)  # alive before any step; dead neighbours' steps lost at once
        self._heartbeat = pool.Heartbeat(self.service, self.node_id, self.node_ttl, self._log)
        listener = GatedSocket.listen_on(host, port, self._gate, _LISTEN_BACKLOG)
        try:
            self._server = await serve(self._handle, sock=listener, ssl=self.ssl_context, backlog=_LISTEN_BACKLOG,
                                       max_size=self.max_frame, open_timeout=self.limits.first_frame_timeout,
                                       ping_interval=20, ping_timeout=20, close_timeout=2,
                                       compression=None,  # issue 30: no per-frame deflate (CPU; and no
                                       # compression of secrets beside what a peer sends: no CRIME-like oracle)
                                       process_request=self._http.process_request,  # /healthz /readyz /metrics
                                       select_subprotocol=_keep_alive)  # offered: kept; else one request
        except BaseException:
            listener.close()
            raise
        loop = asyncio.get_running_loop()
        self._purger = loop.create_task(self._purge_loop())
        self._warmer = loop.create_task(self._warm())  # issue 26: listen first, warm after
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every connection (1001), shut the pool down (its workers get
        ``drain_grace`` seconds to finish, then are terminated) and leave: steps this node still
        had are lost at once for the other nodes, their locks free."""
        self._draining = True
        if self._server is not None:
            self._purger.cancel()
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._warmer is not None:
            self._warmer.cancel()
        bridge = [self._bridge] if self._bridge is not None and self._bridge not in self._retired else []
        for retired in [*self._retired, *bridge, self._pool]:  # issue 26: no worker outlives the service
            await asyncio.to_thread(pool.close_pool, retired, self.drain_grace)
        self._retired.clear()
        if self._heartbeat is not None:
            await asyncio.to_thread(self._heartbeat.stop)
            self._heartbeat = None

    # --- connections ------------------------------------------------------------------------------
    async def _handle(self, ws: Any) -> None:
        """One connection: over ``max_connections`` the oldest connection still waiting for its
        first frame is evicted to make room; if every one sent its frame, this one is closed at
        once (1013, try again later)."""
        fd = _socket_fd(ws)
        if self._active >= self.limits.max_connections and not self._gate.evict_waiting(fd):
            self._log.warning(f"closed a connection from {peer_key(ws.remote_address)}: "
                              f"{self._active} connections open (cap {self.limits.max_connections})")
            RequestRecord.limited("connections")
            await ws.close(CLOSE_BUSY, "the custodian service is busy; try again later")
            return
        self._gate.handshaken(fd)
        self._active += 1
        metrics.CONNECTIONS_OPEN.inc()
        try:
            await self._serve(ws, fd)
        finally:
            self._active -= 1
            metrics.CONNECTIONS_OPEN.dec()

    async def _serve(self, ws: Any, fd: int) -> None:
        """The requests of one connection, one after the other: one, or with the keep-alive
        subprotocol (``mpc.wire.KEEP_ALIVE_SUBPROTOCOL``, issue 30) the next after each one that
        succeeded, at most ``MAX_REQUESTS_PER_CONNECTION``. Every request is checked in full
        (rate limits, token, device challenge), so a token or device key revoked meanwhile is
        refused at the connection's next request. A kept connection waits for its next request
        for ``first_frame_timeout`` seconds, evictable as a new one (``ConnectionGate.idle``),
        and is closed with ``IDLE_CLOSE_REASON`` when no request of it is read any more."""
        keep = ws.subprotocol == KEEP_ALIVE_SUBPROTOCOL
        close_idle = _idle_closer(ws, asyncio.get_running_loop())
        for served in range(MAX_REQUESTS_PER_CONNECTION):
            if served:
                self._gate.idle(fd, close_idle)
            if not await self._serve_one(ws, fd) or not keep:
                return
            if self._draining:
                break
        await ws.close(1000, IDLE_CLOSE_REASON)

    async def _serve_one(self, ws: Any, fd: int) -> bool:
        """One request (or operation): its record gives the request id to the logs and the reply
        frames, and writes the audit line and the metrics when it ends; whether it succeeded
        (else the connection is done). Once a request frame is in, the connection (socket ``fd``)
        is not evicted until the request ends; a kept connection evicted while idle leaves the
        frame unread (its client was told so: ``IDLE_CLOSE_REASON``). A connection that sends no request in
        ``first_frame_timeout`` is closed (a kept one with ``IDLE_CLOSE_REASON``)."""
        from websockets.exceptions import ConnectionClosed

        record = RequestRecord.begin(ws.remote_address)
        try:
            try:
                frame = await requests.receive(ws, self.limits.first_frame_timeout)
            except asyncio.TimeoutError:
                await ws.close(1000, IDLE_CLOSE_REASON)  # nothing of this connection was read since
                return False
            if not self._gate.settle(fd):  # evicted while idle, its idle close under way: left unread
                return False
            # Counted once the frame is in, so the refusal is the answer the client reads.
            try:
                self._ip_requests.take(peer_key(ws.remote_address), "too many requests from this address")
            except RateLimited:
                record.limited("ip")
                raise
            request = requests.parse_request(frame)
            record.presigned = credentials.take_presigned(request, self._issued.pop(ws, None))
            await self._dispatch(ws, request)
        except EngineError as exc:
            await _send_quietly(ws, record.failed(exc))
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        except Exception as exc:  # noqa: BLE001 - one connection never takes the service down
            self._log.error("internal error on a connection", exc)
            await _send_quietly(ws, record.failed(EngineError()))
        finally:
            record.finish()
        return record.outcome == "ok"

    async def _reply(self, ws: Any, result: Any) -> None:
        """The request's result frame (with its request id): the request succeeded."""
        record = current_request()
        record.succeeded()
        reply: dict[str, Any] = {"result": result}
        if ws.subprotocol == KEEP_ALIVE_SUBPROTOCOL:  # the next request's challenge (one frame pair less)
            challenge = credentials.new_challenge()
            self._issued[ws] = challenge  # spent by the connection's next request (_serve_one)
            reply["next_challenge"] = challenge.hex()
        await ws.send(requests.frame_text(record.frame(reply)))

    async def _dispatch(self, ws: Any, request: dict[str, Any]) -> None:
        op = request["op"]
        record = current_request()
        record.claims(request.get("client_id"))
        if op == "create_client":
            record.named(op, "operator")
            self._require_operator(ws, request, registration=True)
            created = await asyncio.to_thread(self._create_client)
            record.claims(created["client_id"])
            await self._reply(ws, created)
            return
        if op in OPERATOR_OPS or (op == "get_client" and "token" not in request):
            record.named(op, "operator")
            await self._reply(ws, await self._operator_op(ws, op, request))
            return
        record.named(op, "token")
        client_id, token = requests.client_credentials(request)
        refused, wanted, authorised = await asyncio.to_thread(self._token_and_claim, client_id, token, request,
                                                              record.presigned)
        if refused is not None:  # issue 18 (client retries): a lost recover/eject result, once, for the old token
            if op != "resume" or not await self._resume_finished(ws, client_id, token, request):
                raise refused
            return
        grant = await self._prove_device(ws, request, wanted, authorised)
        try:  # the registered device draws on its own allowance: a token thief cannot drain it
            self._client_requests.take(f"{client_id}/{grant.allowance if grant else 'token'}",
                                       "too many requests for this client")
        except RateLimited:
            record.limited("client")
            raise
        if op == "get_client":
            await self._reply(ws, await asyncio.to_thread(self._client_view, client_id))
        elif op == "enrol_device":  # authorise registered the key
            await self._reply(ws, await asyncio.to_thread(self._client_view, client_id))
        elif op == "rotate_token":
            fresh = await asyncio.to_thread(self.service.rotate_token, client_id, token)
            await self._reply(ws, {"client_id": client_id, "token": fresh})
        elif op == "stored_client_backup_share":
            method = request.get("method", "CLOUD")
            if not isinstance(method, str):
                raise InputInvalid("method must be a string")
            confirmation = request.get("confirmation")
            if confirmation is not None and not isinstance(confirmation, dict):
                raise InputInvalid("confirmation must be the backup result's confirmation (an object)")
            view = await asyncio.to_thread(self._stored_client_backup_share, client_id, method, confirmation)
            await self._reply(ws, view)
        elif op in OPERATIONS and grant is not None:
            session_id = requests.parse_session_id(request)
            params, first = requests.operation_params(op, request), requests.first_message(op, request)
            if await self._closed_for_drain(ws):
                return
            opened = await self._open(op, client_id, params, session_id, grant, first)
            await self._channel(ws, client_id, token, session_id, opened)
        elif op == "resume":
            session_id = requests.parse_session_id(request)
            if await self._closed_for_drain(ws):
                return
            opened = await self._resume(client_id, session_id)
            if opened.get("error", {}).get("error", {}).get("id") == "NOT_FOUND" and \
                    await self._resume_finished(ws, client_id, token, request, authorised=grant is not None):
                return  # issue 26: it finished and its result frame was lost: the kept result, once
            await self._channel(ws, client_id, token, session_id, opened)
        else:
            raise InputInvalid(f"unknown op {op!r}")

    async def _resume_finished(self, ws: Any, client_id: str, token: str, request: dict[str, Any], *,
                               authorised: bool = False) -> bool:
        """Issue 18 (client retries): ``resume`` of a finished recover or eject whose result frame
        was lost, with the token that ran it (dead since): ready, the last step's messages and
        the result with a fresh token, once (``mpc.service.results``); False otherwise (the
        answer stays ``AUTH_FAILED``)."""
        session_id = request.get("session_id")
        if not isinstance(session_id, str) or not requests.SESSION_ID_PATTERN.fullmatch(session_id):
            return False
        if await asyncio.to_thread(self.service.session_device, session_id, client_id) is None:
            return False
        if not authorised:  # (a resume whose request the device already signed is not asked twice)
            await self._authorise_device(ws, request)  # the key that ran the recover or eject
        finished = await self._run_step(worker.take_finished, self._key, client_id, token, session_id)
        if finished is None:
            return False
        await ws.send(requests.frame_text(current_request().frame({"ready": {"session_id": session_id, "expect": None}})))
        for text in finished["messages"]:
            await ws.send(text)
        await self._reply(ws, finished["result"])
        return True

    async def _closed_for_drain(self, ws: Any) -> bool:
        """While draining no step starts: close the connection (1001, going away) so the client
        resumes its parked session on another node or after the restart."""
        if not self._draining:
            return False
        await ws.close(CLOSE_RESTARTING, "the custodian service is restarting; resume the session")
        return True

    async def _channel(self, ws: Any, client_id: str, token: str, session_id: str, opened: dict[str, Any]) -> None:
        """Carry one operation's messages: frame in, step in the executor, frames out. Control
        frames carry the request id (``current_request``), which also records the outcome."""
        record = current_request()
        if "error" in opened:
            if opened["error"]["error"].get("id") == "RATE_LIMITED":  # the cap on parked sessions
                record.limited("parked")
            await ws.send(requests.frame_text(record.error(opened["error"])))
            return
        await ws.send(requests.frame_text(record.frame({"ready": {"session_id": session_id, "expect": opened["expect"]}})))
        for text in opened["messages"]:
            await ws.send(text)
        invalid = 0
        while True:
            frame = await requests.receive(ws, self.session_ttl)
            if await self._closed_for_drain(ws):  # the session stays parked: the client resumes
                return
            if frame == ABORT_FRAME:  # the device's step failed: the session ends and frees its lock now
                await self._run_step(worker.abort_session, self._key, client_id, token, session_id, session=session_id)
                await ws.close()
                return
            try:
                data = requests.message_frame(frame)
            except EngineError as exc:
                invalid += 1
                await ws.send(requests.frame_text(record.error(exc.to_json(), fatal=invalid >= MAX_INVALID_FRAMES)))
                if invalid >= MAX_INVALID_FRAMES:
                    await ws.close(CLOSE_POLICY, "too many invalid frames")
                    return
                continue
            outcome = await self._deliver(client_id, token, session_id, data)
            if outcome.pop("locked_out", False):
                metrics.CLIENT_LOCKOUTS.inc()
            for text in outcome.get("messages", ()):
                await ws.send(text)
            if "result" in outcome:
                await self._reply(ws, outcome["result"])
                return
            if "error" in outcome:
                fatal = outcome["fatal"] or invalid + 1 >= MAX_INVALID_FRAMES
                await ws.send(requests.frame_text(record.error(outcome["error"], fatal=fatal)))
                if outcome["fatal"]:
                    return
                invalid += 1
                if invalid >= MAX_INVALID_FRAMES:
                    await ws.close(CLOSE_POLICY, "too many invalid frames")
                    return


def _keep_alive(connection: Any, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """The subprotocol of a connection: ``KEEP_ALIVE_SUBPROTOCOL`` if the client offers it, else
    none (a client that offers none, or others, is served one request per connection, as always)."""
    return cast("Subprotocol", KEEP_ALIVE_SUBPROTOCOL) if KEEP_ALIVE_SUBPROTOCOL in offered else None


def _idle_closer(ws: Any, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """How the connection gate evicts the idle kept connection ``ws`` (from any thread): a close
    with ``IDLE_CLOSE_REASON`` on the event loop, which tells its client that a request it sent
    meanwhile was never read (it sends it again on a new connection), where a socket shut down
    would leave the client unable to tell that apart from a step that failed mid-way."""
    def start_closing() -> None:
        task = loop.create_task(ws.close(1000, IDLE_CLOSE_REASON))
        _CLOSING.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_CLOSING.discard)

    def close() -> None:
        loop.call_soon_threadsafe(start_closing)

    return close


_CLOSING: set[asyncio.Task[None]] = set()


def _socket_fd(ws: Any) -> int:
    """The descriptor of a connection's socket (-1 if it has none: closed already)."""
    sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
    return -1 if sock is None else int(sock.fileno())


async def _send_quietly(ws: Any, obj: Any) -> None:
    try:
        await ws.send(requests.frame_text(obj))
    except Exception:  # noqa: BLE001 - the peer is gone: nothing more to tell it
        pass



class ServiceThread:
    """A ``CustodianService`` on its own event loop in a background thread (tests, demo);
    ``options`` go to ``CustodianService`` (TLS, operator key, limits, ...)."""

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
        """``ws://host:port``, or ``wss://`` with TLS."""
        scheme = "wss" if self._options.get("tls_cert") is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0, *, warm: bool = True) -> ServiceThread:
        """Start the thread and wait up to ``timeout`` seconds for the service to listen (its start-up
        error is raised here) and, with ``warm``, for its workers to start (the service listens
        first: issue 26); returns ``self``."""
        deadline = time.monotonic() + timeout
        self._thread.start()
        if not self._ready.wait(timeout):
            raise EngineError("the custodian service did not start in time")
        if self._error is not None:
            raise self._error
        while warm and self.service is not None and not self.service.warm:
            if time.monotonic() > deadline:
                raise EngineError("the custodian service's workers did not start in time")
            time.sleep(0.01)
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.service = CustodianService(self._db, **self._options)
            self.port = self._loop.run_until_complete(self.service.start(self.host, self._port))
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            if self.service is not None:  # constructed, refused to start: free its executor
                self._loop.run_until_complete(self.service.stop())
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
    """``python -m mpc serve``: run until SIGTERM or SIGINT (``options``: ``CustodianService``'s),
    then drain (steps in flight finish and park, up to ``drain_grace``), stop the pool and exit 0
    with no worker process left."""
    async def main() -> None:
        service = CustodianService(db, **options)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        try:
            bound = await service.start(host, port)
            _banner(f"portal-mpc custodian on {service.scheme}://{host}:{bound} (db {_redact(db)}, "
                    f"{service.executor_kind} pool)")
            if service.open_registration:
                _banner("WARNING: open registration: anyone who can reach this service may create clients",
                        sys.stderr)
            await stopping.wait()
            log.info("stopping: draining steps in flight (up to %.0f s)", service.drain_grace)
            await service.drain()
        finally:
            await service.stop()
            await asyncio.to_thread(pool.stop_resource_tracker)  # exit after every process we started
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except ConfigInvalid as exc:  # a refused configuration: say why, no traceback
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr, flush=True)
        return 2
    return 0


def _banner(text: str, stream: Any = None) -> None:
    """The start-up line on stdout (``stream``: another one): one JSON object like every other
    line with ``--log-format json`` (issue 26), else the plain text operators grep for."""
    settings = logs.current_settings()
    line = logs.json_line(text) if settings is not None and settings.format == "json" else text
    print(line, file=stream if stream is not None else sys.stdout, flush=True)


def _redact(db: str) -> str:
    """The database for the banner: a file path as is; a URL as scheme, host and database only
    (no user, password or query: ``?password=`` and passwords with ``@`` never print)."""
    if "://" not in db:
        return db
    parts = urlsplit(db)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
