"""What the custodian service (``mpc.service.server``) tells its operators: per-request records (request
id, audit line, metrics) and the plain HTTP endpoints on the service's own port
(``docs/operations.md``, Monitor).

- :class:`RequestRecord`: one per connection (one request or one operation), bound to the
  connection's task (:func:`current_request`). It gives the request id to the log context and to
  the reply frames (``"request_id"``, beside ``"result"`` / ``"ready"`` / ``"error"``), counts
  error frames and refusals, and when the connection ends writes the audit line and the
  operation metrics (``mpc.service.metrics``) exactly once.
- :class:`HttpEndpoints`: the ``process_request`` hook of the WebSocket server. ``GET /healthz``
  (200 while the process runs), ``GET /readyz`` (200 when ``CustodianService.ready()`` says so:
  serving, the store answers, the executor pool is alive; else 503; its checks as a JSON
  object; cached for a second), ``GET /metrics`` (the Prometheus
  text format; needs ``Authorization: Bearer <operator key>`` or the operator's client
  certificate unless ``metrics_public``). Every other request goes on to the WebSocket
  handshake as before (plain HTTP there still gets 426 Upgrade Required).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mpc.service import logs, metrics
from mpc.storage.store import SQLiteStore
from mpc.errors import ERRORS, AuthFailed, EngineError, RateLimited
from mpc.service.guard import BoundedLog, OperatorKey, TokenBuckets, peer_common_name, peer_key

__all__ = ["KNOWN_OPS", "HttpEndpoints", "RequestRecord", "current_request", "read_gauges"]

# Every op name a request may carry (plus "metrics" for the HTTP endpoint); any other op is
# recorded as "unknown", so metric labels and audit lines stay within this set.
KNOWN_OPS = frozenset({"create_client", "get_client", "rotate_token", "revoke_token", "issue_token",
                       "unlock_client", "stored_client_backup_share", "generate", "backup", "recover",
                       "eject", "sign", "presign", "sign_presigned", "derive", "resume", "metrics", "enrol_device",
                       "revoke_device"})
UNKNOWN_OP = "unknown"
READY_CACHE_SECONDS = 1.0
GAUGE_CACHE_SECONDS = 5.0
CHECK_TIMEOUT = 3.0
# Refused credentials, counted in mpc_auth_failures_total: AUTH_FAILED and its subclasses.
_AUTH_FAILURE_CODES = frozenset(code for code, cls in ERRORS.items() if issubclass(cls, AuthFailed))
_RECORD: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("mpc_request_record", default=None)


def _known_error_code(code: Any) -> str:
    """An error code for a metric label: one of the engine's codes (a bounded set)."""
    return code if isinstance(code, str) and code in ERRORS else EngineError.code


@dataclass
class RequestRecord:
    """One connection's request or operation: its id, who, what, and how it ended."""

    remote: str | None
    request_id: str = field(default_factory=logs.new_request_id)
    started: float = field(default_factory=time.monotonic)
    op: str | None = None
    client_id: str | None = None
    credential: str | None = None  # "operator" or "token": which credential the request needs
    outcome: str | None = None  # "ok", an error code, or None (the connection ended first)
    culprit: int | None = None
    finished: bool = False
    # The device's signature the request brought over the challenge of the connection's previous
    # result (``credentials.take_presigned``): used by the request's device check, once.
    presigned: tuple[bytes, tuple[bytes, None]] | None = field(default=None, repr=False)

    @classmethod
    def begin(cls, remote_address: Any) -> RequestRecord:
        """A new record for the connection from ``remote_address``, bound to the current task."""
        host = str(remote_address[0]) if remote_address else None
        record = cls(host)
        _RECORD.set(record)
        logs.set_context(request_id=record.request_id, op=None, client_id=None)  # none of a kept connection's last
        return record

    def named(self, op: str, credential: str) -> None:
        """The request names ``op`` (recorded as ``unknown`` unless it is a known op)."""
        self.op = op if op in KNOWN_OPS else UNKNOWN_OP
        self.credential = credential
        logs.set_context(op=self.op)

    def claims(self, client_id: Any) -> None:
        """The request is about ``client_id`` (as claimed: it may fail authentication)."""
        if isinstance(client_id, str):
            self.client_id = logs.clean(client_id)
            logs.set_context(client_id=self.client_id)

    def frame(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A reply frame with the request id beside its ``result`` / ``ready`` / ``error``."""
        return {**obj, "request_id": self.request_id}

    def error(self, error: dict[str, Any], *, fatal: bool = True) -> dict[str, Any]:
        """An error frame for ``error`` (``{"error": {...}}``, maybe with a ``culprit`` that
        stays here): counted, and the outcome when ``fatal``."""
        body = error["error"]
        code = _known_error_code(body.get("id"))
        metrics.ERRORS.inc(code=code)
        if fatal:
            self.outcome = code
            culprit = error.get("culprit")
            self.culprit = culprit if isinstance(culprit, int) and not isinstance(culprit, bool) else None
            if code in _AUTH_FAILURE_CODES:
                metrics.AUTH_FAILURES.inc(kind=self.credential or "token")
        return self.frame({"error": body})

    def failed(self, exc: EngineError) -> dict[str, Any]:
        """The error frame of ``exc`` (an engine error raised while serving), as the outcome."""
        document: dict[str, Any] = exc.to_json()
        culprit = getattr(exc, "culprit", None)
        if culprit is not None:
            document = {**document, "culprit": culprit}
        return self.error(document)

    @staticmethod
    def limited(limit: str) -> None:
        """A limit (``ip``, ``client``, ``parked``, ``connections``, ``sockets``) refused this."""
        metrics.RATE_LIMITED.inc(limit=limit)

    def succeeded(self) -> None:
        """Record the request's outcome as ``ok``."""
        self.outcome = "ok"

    def finish(self) -> None:
        """Write the audit line and the metrics (once; nothing for a connection that never
        sent a request)."""
        if self.finished or self.op is None and self.outcome is None:
            return
        self.finished = True
        elapsed = time.monotonic() - self.started
        op = self.op or UNKNOWN_OP
        outcome = self.outcome or "closed"
        metrics.OPERATIONS.inc(op=op, outcome=outcome)
        metrics.OPERATION_SECONDS.observe(elapsed, op=op)
        logs.audit(op, outcome, client_id=self.client_id, request_id=self.request_id, remote=self.remote,
                   duration=elapsed, culprit=self.culprit, credential=self.credential)


def current_request() -> RequestRecord:
    """The record of the connection this task serves (``RequestRecord.begin`` made it)."""
    record = _RECORD.get()
    if record is None:
        raise RuntimeError("no request record: RequestRecord.begin was not called for this connection")
    return record


# --- HTTP ---------------------------------------------------------------------------------------------------
class HttpEndpoints:
    """``/healthz``, ``/readyz`` and ``/metrics`` for one service (``process_request`` hook).

    ``readiness`` answers (ready, details) (blocking; run in a thread). ``gauges`` reads the
    scrape-time gauges (parked sessions, precomputation pool; blocking, cached a few seconds).
    ``operator_key`` / ``operator_cn``: the credentials that may read ``/metrics`` unless
    ``public``; ``ip_requests``: the per-address token bucket ``/metrics`` spends from.
    """

    def __init__(self, *, readiness: Callable[[], tuple[bool, dict[str, Any]]], gauges: Callable[[], None],
                 operator_key: OperatorKey | None, operator_cn: str | None, public: bool,
                 ip_requests: TokenBuckets, log: BoundedLog, clock: Callable[[], float] = time.monotonic) -> None:
        self._readiness, self._gauges = readiness, gauges
        self._operator_key, self._operator_cn, self.public = operator_key, operator_cn, public
        self._ip_requests, self._log, self._clock = ip_requests, log, clock
        self._ready: tuple[float, bool, dict[str, Any]] | None = None
        self._gauges_at: float | None = None
        self._ready_lock = asyncio.Lock()
        self._gauges_lock = asyncio.Lock()

    async def process_request(self, connection: Any, request: Any) -> Any:
        """The HTTP response for one of the three paths, else None (the WebSocket handshake)."""
        path = urlsplit(request.path).path
        if path == "/healthz":
            return _respond(connection, 200, "ok\n")
        if path == "/readyz":
            ready, detail = await self._readiness_cached()
            return _respond(connection, 200 if ready else 503, json.dumps({"ready": ready, **detail}) + "\n",
                            "application/json")
        if path == "/metrics":
            return await self._metrics(connection, request)
        return None

    def forget_readiness(self) -> None:
        """Drop the cached readiness answer (the service started draining: the next probe sees it)."""
        self._ready = None

    async def _readiness_cached(self) -> tuple[bool, dict[str, Any]]:
        async with self._ready_lock:  # one check at a time; probes in between share its answer
            now = self._clock()
            if self._ready is None or now - self._ready[0] >= READY_CACHE_SECONDS:
                try:
                    ready, detail = await asyncio.wait_for(asyncio.to_thread(self._readiness), CHECK_TIMEOUT)
                except asyncio.TimeoutError:
                    ready, detail = False, {"reason": f"the readiness check took over {CHECK_TIMEOUT:.0f} s"}
                self._ready = (now, ready, detail)
            return self._ready[1], self._ready[2]

    async def _metrics(self, connection: Any, request: Any) -> Any:
        record = RequestRecord.begin(connection.remote_address)  # audited only when refused
        record.named("metrics", "operator")
        try:
            self._ip_requests.take(peer_key(connection.remote_address), "too many requests from this address")
        except RateLimited as exc:
            record.limited("ip")
            record.failed(exc)
            record.finish()
            response = _respond(connection, 429, exc.message + "\n")
            response.headers["Retry-After"] = str(int(exc.retry_after or 1))
            return response
        if not self.public and not self._authorized(connection, request):
            record.failed(AuthFailed())
            record.finish()
            self._log.warning(f"refused /metrics from {peer_key(connection.remote_address)}: no operator credential")
            response = _respond(connection, 401, "the operator credential is required (Authorization: Bearer)\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="portal-mpc metrics"'
            return response
        await self._refresh_gauges()
        return _respond(connection, 200, metrics.REGISTRY.render(), metrics.CONTENT_TYPE)

    def _authorized(self, connection: Any, request: Any) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if self._operator_key is not None and scheme.lower() == "bearer" and \
                self._operator_key.matches(credential.strip()):
            return True
        return self._operator_cn is not None and peer_common_name(connection.transport) == self._operator_cn

    async def _refresh_gauges(self) -> None:
        async with self._gauges_lock:
            now = self._clock()
            if self._gauges_at is not None and now - self._gauges_at < GAUGE_CACHE_SECONDS:
                return
            try:
                await asyncio.wait_for(asyncio.to_thread(self._gauges), CHECK_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the rest of the metrics are still worth serving
                metrics.SCRAPE_ERRORS.inc()
                self._log.error("reading the parked-session and precomputation gauges failed", exc)
            self._gauges_at = now


def _respond(connection: Any, status: int, body: str, content_type: str | None = None) -> Any:
    response = connection.respond(status, body)
    if content_type is not None:
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    return response


def read_gauges(pool_size: Callable[[], int], parked_count: Callable[[], int], locked_count: Callable[[], int],
                store: SQLiteStore) -> None:
    """Set the scrape-time gauges: parked sessions (the store), clients locked out, the
    precomputations in the serving process's memory (``mpc.presign``: never stored) and the
    revocation ledger's."""
    metrics.PARKED_SESSIONS.set(parked_count())
    metrics.CLIENTS_LOCKED_OUT.set(locked_count())
    metrics.PRESIGN_POOL.set(pool_size())
    if store.ledger is not None:  # the revocation ledger (mpc.storage.ledger) and the start's reconciliation
        metrics.LEDGER_RECORDS.set(len(store.ledger))
        report = store.ledger_report
        if report is None:
            return
        metrics.LEDGER_REAPPLIED.set(report.tokens_revoked, kind="tokens")
        metrics.LEDGER_REAPPLIED.set(report.attempts_restored, kind="attempts")
        metrics.LEDGER_RESTORE_DETECTED.set(int(report.restored))

