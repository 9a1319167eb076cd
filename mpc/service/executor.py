"""Where ``mpc.service.server.CustodianService`` runs its steps: the executor, rebuilt when a worker
dies, the bridge threads while the workers warm (issue 26), and the open / resume / step calls
that decide, after a dead worker, whether a step runs again (``docs/operations.md``, Resilience).

:class:`StepExecutor` is a part of ``CustodianService`` (a base class): the attributes it
declares are set by ``CustodianService.__init__``. The steps themselves are in
``mpc.service.worker``; the pool's state and the node heartbeat in ``mpc.service.pool``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import secrets
import time
from collections.abc import Callable
from typing import Any

from mpc.errors import OperationLost
from mpc.service import logs, metrics, pool, worker
from mpc.service.credentials import Claim
from mpc.service.guard import BoundedLog, ServiceLimits
from mpc.service.store import ServiceStore, Step

__all__ = ["StepExecutor"]


class StepExecutor:
    """The executor part of ``CustodianService``: steps run in a process (or thread) pool; a dead
    worker rebuilds the pool (a ``LanePool``: its lane only) and the step marker decides what the client is told (never a step
    committed twice)."""

    # Set by CustodianService.__init__ (its configuration and resilience state).
    service: ServiceStore
    limits: ServiceLimits
    executor_kind: str
    workers: int
    session_ttl: float
    lock_ttl: float
    node_ttl: float
    node_id: str
    pool_rebuilds: int
    warm: bool
    _key: str
    _log: BoundedLog
    _log_settings: logs.LogSettings | None
    _pool: concurrent.futures.Executor
    _bridge: concurrent.futures.ThreadPoolExecutor | None
    _retired: list[concurrent.futures.Executor]
    _draining: bool
    _in_flight: int

    async def _run_step(self, fn: Callable[..., Any], *args: Any, on_pool: bool = False,
                        session: str | None = None) -> Any:
        """``fn(*args)`` in the executor with this connection's log context (request id, client,
        op) and this process's log settings (a worker process configures its logging alike);
        ``session``: a step of that session (on the worker that keeps it warm, if idle)."""
        return await self._run(logs.call_in_context, self._log_settings, logs.context(), fn, *args, on_pool=on_pool,
                               session=session)

    def _new_pool(self) -> concurrent.futures.Executor:
        if self.executor_kind == "thread":
            return concurrent.futures.ThreadPoolExecutor(max_workers=max(2, self.workers), thread_name_prefix="mpc-step")
        return pool.LanePool(self.workers, worker.worker_init, multiprocessing.get_context("spawn"),
                             evict=worker.forget_warm)

    def _rebuild_pool(self, broken: concurrent.futures.Executor) -> None:
        """Replace ``broken`` (once: a second caller finds it replaced already), unless draining;
        of a ``LanePool`` only the lanes whose worker died (``_replace_lanes``)."""
        if broken is not self._pool or self._draining:
            return
        if isinstance(broken, pool.LanePool):
            self._replace_lanes(broken)
            return
        self.pool_rebuilds += 1
        metrics.POOL_RESTARTS.inc()
        self._log.error(f"a worker process died: the {self.executor_kind} pool is broken, rebuilding it "
                        f"(rebuild {self.pool_rebuilds}); its steps are retried, answered or reported lost")
        self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)
        self._retired = [p for p in self._retired if pool.pool_processes(p)] + [broken]

    def _replace_lanes(self, lanes: pool.LanePool) -> None:
        """Issue 30: a dead worker replaces its own lane; the other lanes keep their workers and
        warm sessions (nothing to do if a concurrent caller replaced it already)."""
        replaced = lanes.replace_broken()
        if not replaced:
            return
        self.pool_rebuilds += 1
        metrics.POOL_RESTARTS.inc()
        self._log.error(f"{len(replaced)} worker process(es) died: their lanes are replaced (rebuild "
                        f"{self.pool_rebuilds}); their steps are retried, answered or reported lost")
        for lane in replaced:
            # Not cancel_futures: a lane whose worker exited may not be marked broken yet, and a
            # cancelled step would end its connection without an answer; the lanes' collector
            # fails what is queued with BrokenProcessPool, which the callers retry, answer or
            # report lost (``mpc.service.lanes``).
            lane.shutdown(wait=False, cancel_futures=False)
        self._retired = [p for p in self._retired if pool.pool_processes(p)] + list(replaced)

    async def _run(self, fn: Callable[..., Any], *args: Any, on_pool: bool = False, session: str | None = None) -> Any:
        """``fn(*args)`` in the executor; a broken pool (a dead worker) is rebuilt and the error
        raised to the caller, which decides whether running ``fn`` again is safe. Until the
        worker processes are warm, steps run in the *bridge* (``on_pool``: on the pool anyway).
        A step of ``session`` goes to the lane that ran its last one (``pool.LanePool``)."""
        executor = self._pool if on_pool or self.warm or self.executor_kind == "thread" else self._bridge_pool()
        try:
            if isinstance(executor, pool.LanePool):
                return await asyncio.wrap_future(executor.submit_to(session, fn, *args))
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except concurrent.futures.BrokenExecutor:
            self._rebuild_pool(executor)
            raise

    def _bridge_pool(self) -> concurrent.futures.Executor:
        """Issue 26 (back in seconds): threads of the service process that run the steps arriving
        while the worker processes start (spawn, imports, store: seconds on a busy machine). The
        service process has everything loaded already, so a restarted node serves at once; the
        steps are the same functions on their own store connection (``worker._custodian``), with
        the same take semantics and step markers, so nothing changes but where they run."""
        if self._bridge is None:
            self._bridge = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.workers),
                                                                 thread_name_prefix="mpc-bridge")
        return self._bridge

    async def _run_again(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn`` (a read) in the executor, run once more on the rebuilt pool if a worker died."""
        try:
            return await self._run_step(fn, *args)
        except concurrent.futures.BrokenExecutor:
            try:
                return await self._run_step(fn, *args)
            except concurrent.futures.BrokenExecutor:
                return pool.pool_failing()

    async def _open(self, op: str, client_id: str, params: dict[str, Any], session_id: str,
                    grant: Claim, first: bytes | None = None) -> dict[str, Any]:
        """Open an operation (``worker.open_operation``) under the device key that authorised it,
        stepped with ``first`` (the device's first message, carried by the request) in the same
        commit; if the worker died, ``worker.reopen`` (the session may have been parked: then it
        is resumed, never opened or stepped twice)."""
        args = (self._key, op, client_id, params, session_id, self.session_ttl, self.limits.max_parked_per_client,
                grant.public, grant.pending, first)
        self._in_flight += 1
        try:
            opened: dict[str, Any]
            try:
                opened = await self._run_step(worker.open_operation, *args, session=session_id)
            except concurrent.futures.BrokenExecutor:
                opened = await self._run_again(worker.reopen, *args)
            return opened
        finally:
            self._in_flight -= 1

    async def _finished(self, client_id: str, token: str, session_id: str) -> dict[str, Any] | None:
        """The kept outcome of a step whose worker died after its commit finished the operation
        (``worker.take_finished``: once, for the token that ran it), or None (none kept, or the
        rebuilt pool failed as well: the step is reported lost)."""
        try:
            finished = await self._run_step(worker.take_finished, self._key, client_id, token, session_id, on_pool=True)
        except concurrent.futures.BrokenExecutor:
            return None
        return None if finished is None else {"messages": list(finished["messages"]), "result": finished["result"]}

    async def _resume(self, client_id: str, session_id: str) -> dict[str, Any]:
        """``worker.resume_channel``; a session a live node is stepping right now is waited for (it
        parks, or its node is found dead within ``node_ttl`` and the answer is ``OPERATION_LOST``)."""
        deadline = time.monotonic() + self.node_ttl + 1.0
        while True:
            opened: dict[str, Any] = await self._run_again(worker.resume_channel, self._key, client_id, session_id)
            if not opened.get("stepping") or time.monotonic() >= deadline:
                return opened
            await asyncio.sleep(0.2)

    async def _deliver(self, client_id: str, token: str, session_id: str, frame: bytes) -> dict[str, Any]:
        """One step (``worker.step``). If its worker died, the step marker decides (never a step
        committed twice): never taken, or an optimistic step that never committed, it runs once
        more on the rebuilt pool; it ran and parked, its messages are sent; it finished the
        operation (its result kept for ``resume``: ``worker.take_finished``), that result is
        sent; taken and not parked again, ``OPERATION_LOST`` (its lock is freed)."""
        self._in_flight += 1
        try:
            for _ in range(2):
                step = Step(secrets.token_hex(8), self.node_id, self.lock_ttl)
                try:
                    answer: dict[str, Any] = await self._run_step(worker.step, self._key, client_id, token, session_id,
                                                                  frame, self.session_ttl, step, session=session_id)
                    return answer
                except concurrent.futures.BrokenExecutor:
                    outcome = await asyncio.to_thread(self.service.step_outcome, session_id, step)
                if outcome.state == "parked":
                    return {"messages": list(outcome.messages)}
                if outcome.state == "lost":
                    finished = await self._finished(client_id, token, session_id)
                    if finished is not None:
                        return finished
                    self._log.warning(f"operation lost with a dead worker (session {session_id[:8]}…)")
                    return {"error": OperationLost().to_json(), "fatal": True}
                if outcome.state == "gone":
                    return {"error": worker.session_not_found(), "fatal": True}
            return pool.pool_failing()
        finally:
            self._in_flight -= 1
