"""Whether a node of ``mpc.service.server.CustodianService`` should get traffic, and its upkeep:
the readiness checks (``/readyz``, with the revocation ledger's report), the HTTP endpoints and
gauges (``mpc.service.observability``), warming the workers after the listener is up (issue 26),
draining on SIGTERM and the purge loop (expired parked sessions, lost steps, the restore guard);
``docs/operations.md``, Resilience and Observability.

:class:`NodeHealth` is a part of ``CustodianService`` (a base class, over its executor
``mpc.service.executor.StepExecutor``): the attributes it declares are set by
``CustodianService.__init__`` and ``start``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mpc.custodian import Custodian
from mpc.service import logs, pool, results, worker
from mpc.service.executor import StepExecutor
from mpc.service.guard import OperatorKey, TokenBuckets
from mpc.service.observability import HttpEndpoints, read_gauges
from mpc.service.worker import log

__all__ = ["NodeHealth"]


class NodeHealth(StepExecutor):
    """The readiness, observability, warming, draining and purging part of ``CustodianService``."""

    # Set by CustodianService.__init__ and start (its configuration and listener).
    custodian: Custodian
    metrics_public: bool
    drain_grace: float
    executor_kind: str
    _server: Any
    _http: HttpEndpoints
    _operator_key: OperatorKey | None
    _operator_cn: str | None
    _ip_requests: TokenBuckets

    # --- observability (mpc.service.observability, mpc.service.logs, mpc.service.metrics) ---------------------------------
    def _configure_observability(self, metrics_public: bool) -> None:
        """The HTTP endpoints, and the log settings executor steps repeat (``metrics_public``:
        ``/metrics`` without the operator credential)."""
        self.metrics_public = metrics_public
        self._log_settings = logs.current_settings()
        self._http = HttpEndpoints(readiness=self.ready, gauges=self._read_gauges,  # /readyz: ready()
                                   operator_key=self._operator_key, operator_cn=self._operator_cn,
                                   public=metrics_public, ip_requests=self._ip_requests, log=self._log)

    def _read_gauges(self) -> None:
        read_gauges(self.custodian.precomputations.size, self.service.count, self.custodian.attempts.locked_count,
                    self.custodian.store)

    # --- readiness, warming, draining, purging ------------------------------------------------
    async def _warm(self) -> None:
        """Start the workers after the listener is up (issue 26: ``/healthz`` answers at once,
        ``/readyz`` says 503 until this is done). A step that arrives meanwhile runs in the bridge
        threads (``_bridge_pool``): never refused, never lost."""
        for attempt in range(2):
            try:
                await asyncio.gather(*(self._run_step(worker.warm, self._key, on_pool=True)
                                       for _ in range(max(1, self.workers))))
                break
            except Exception as exc:  # noqa: BLE001 - a worker that died warming rebuilt the pool: once more
                self._log.error(f"warming the worker pool failed (attempt {attempt + 1})", exc)
        self.warm = True  # warming is over; /readyz's pool check tells whether the pool is alive
        if self._bridge is not None:  # steps go to the workers from now on; those in the bridge finish
            self._retired.append(self._bridge)
            self._bridge.shutdown(wait=False)
        log.info("worker pool warm (%d %s worker(s)): ready", self.workers, self.executor_kind)

    async def drain(self, grace: float | None = None) -> bool:
        """Stop taking work (SIGTERM): ``/readyz`` answers 503 (the listener stays open so the
        load balancer reads it), no new step starts (a connection whose
        next frame arrives is closed with 1001: its session stays parked and the client resumes
        on another node or after the restart), and steps in flight get up to ``grace`` seconds
        (default ``drain_grace``) to finish and park. Whether they all did."""
        self._draining = True
        self._http.forget_readiness()  # /readyz says 503 from now on (the listener stays open for it)
        deadline = time.monotonic() + (self.drain_grace if grace is None else grace)
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._in_flight:
            log.warning("drain: %d step(s) still running after the grace period", self._in_flight)
        return self._in_flight == 0

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether this node should get traffic, and the checks: ``serving`` (listening, not
        draining), ``warm`` (the workers started: issue 26, the service listens first), ``store``
        (the database answers: ``"ok"`` or the error's code), ``pool`` (``"ok"``, ``"broken"``
        until rebuilt, ``"shut down"``, ``"worker died"``), ``ledger`` (the revocation ledger: its
        reconciliation report, or its error's code: not ready), plus ``node``, ``pool_rebuilds``
        and ``in_flight``. Blocking (one query): call it in a thread."""
        checks: dict[str, Any] = {"serving": self._server is not None and not self._draining,
                                  "warm": self.warm, "node": self.node_id, "pool_rebuilds": self.pool_rebuilds,
                                  "in_flight": self._in_flight}
        try:
            self.service.ping()
            checks["store"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready
            checks["store"] = getattr(exc, "code", type(exc).__name__)
        checks["pool"] = pool.pool_state(self._pool)
        checks["ledger"] = self._ledger_check()
        ready = checks["serving"] and checks["warm"] and checks["store"] == "ok" and checks["pool"] == "ok"
        return bool(ready and isinstance(checks["ledger"], dict)), checks

    def _ledger_check(self) -> dict[str, Any] | str:
        """The revocation ledger (``mpc.storage.ledger``): what the start's reconciliation found
        and re-applied, and its length now (``{"configured": false}`` without one), or the error's
        code (``LEDGER_CORRUPTED``: not ready)."""
        store = self.custodian.store
        if store.ledger is None or store.ledger_report is None:
            return {"configured": False}
        try:
            return {**store.ledger_report.to_json(), "configured": True, "records_now": len(store.ledger)}
        except Exception as exc:  # noqa: BLE001 - any failure of the ledger means not ready
            return str(getattr(exc, "code", type(exc).__name__))

    async def _purge_loop(self) -> None:
        interval = max(0.5, min(self.session_ttl / 2, self.node_ttl, 30.0))
        while True:
            await asyncio.sleep(interval)
            self._log.flush()
            worker.BOUNDED_LOG.flush()
            logs.flush_audit()
            if pool.pool_state(self._pool) == "broken":  # a worker died while idle: heal before the next request
                self._rebuild_pool(self._pool)
            try:
                await asyncio.to_thread(self.purge)
            except Exception as exc:  # noqa: BLE001 - keep purging on the next tick
                self._log.error("purging expired sessions failed", exc)

    def purge(self, now: float | None = None) -> int:
        """Compare the store with its restore guard (``SQLiteStore.check_restore_guard``: a
        restore is noticed while idle too, not only at the next take), delete expired parked
        sessions, releasing the operation locks they held, and forget lost steps (their node
        dead or their lease lapsed), freeing their locks."""
        self.custodian.store.check_restore_guard()
        results.purge(self.custodian.store, time.time() if now is None else now)
        expired = self.service.purge(now)
        for parked in expired:
            worker.release(self.custodian, parked)
        # This node is alive (it is purging, at ``now`` too): its heartbeat first, so a heartbeat
        # thread held up (a busy store, a loaded machine) never makes the reap count this node's
        # own running steps lost, nor drop this node's row.
        ahead = 0.0 if now is None else max(0.0, now - time.time())
        self.service.heartbeat(self.node_id, self.node_ttl + ahead)
        self.service.reap(now)
        return len(expired)
