"""The service's worker pool and node heartbeat: the state of the executor that runs steps, closing
it with a grace period, and the heartbeat that marks this node alive (``mpc.service.server``:
Parking, restarts, expiry; a node silent for ``node_ttl`` has its steps counted lost).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import multiprocessing.connection
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from mpc.errors import (
    ServiceUnavailable,
)
from mpc.service.guard import (
    BoundedLog,
)
from mpc.service.lanes import Collector, Lane
from mpc.service.store import ServiceStore
from mpc.service.worker import log

_T = TypeVar("_T")


def pool_failing() -> dict[str, Any]:
    """The answer when the rebuilt pool failed too: fatal; a parked session stays parked."""
    return {"error": ServiceUnavailable("the custodian's worker processes keep failing; resume later").to_json(),
            "fatal": True}


def pool_state(pool: concurrent.futures.Executor) -> str:
    """``"ok"``, ``"broken"``, ``"shut down"`` or ``"worker died"`` (read from the executor's
    private state: ``_broken``, ``_shutdown_thread``, ``_processes``)."""
    if getattr(pool, "_broken", False):
        return "broken"
    if getattr(pool, "_shutdown_thread", False) or getattr(pool, "_shutdown", False):
        return "shut down"
    processes = getattr(pool, "_processes", None) or {}
    if any(not process.is_alive() for process in list(processes.values())):
        return "worker died"
    return "ok"


def pool_processes(pool: concurrent.futures.Executor) -> list[Any]:
    """The worker processes of ``pool`` still alive (none for a thread pool)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    return [process for process in processes if process.is_alive()]


def stop_resource_tracker() -> None:
    """Stop this process's ``multiprocessing`` resource tracker (started by the spawn pool) and
    reap it, so the service exits after every process it started (issue 26: under an init that
    does not reap, a tracker left to exit after its parent stays a zombie). Private API of
    ``multiprocessing.resource_tracker``: skipped where it differs."""
    from multiprocessing import resource_tracker

    stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)
    if callable(stop):
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - it exits with this process instead
            log.warning("could not stop the resource tracker: %s", type(exc).__name__)


def close_pool(pool: concurrent.futures.Executor, grace: float) -> None:
    """Shut ``pool`` down: queued work is cancelled, running steps get ``grace`` seconds, then
    worker processes still running are terminated; returns once every worker has exited."""
    if isinstance(pool, LanePool):
        lanes, collector = list(pool.lanes), pool.collector
    elif isinstance(pool, Lane):  # a replaced lane (``LanePool.replace_broken``)
        lanes, collector = [pool], None
    else:
        pool.shutdown(wait=True, cancel_futures=True)
        return
    processes = [process for lane in lanes for process in lane._processes.values()]
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    stuck = [process for process in processes if not _exited(process)]
    for process in stuck:
        process.terminate()
    for process in stuck:
        process.join(10.0)
    if stuck:
        log.warning("terminated %d worker process(es) still running a step after %.0f s", len(stuck), grace)
    if collector is not None:
        collector.join(10.0)  # it fails the calls of a terminated worker, then ends


def _exited(process: Any) -> bool:
    """Whether a worker process has exited: its sentinel is readable. (``is_alive`` is not
    enough: the collector thread joins the workers too, and a process reaped there may keep
    answering ``is_alive() == True`` here, which made a clean stop log a termination.)"""
    try:
        return bool(multiprocessing.connection.wait([process.sentinel], 0))
    except (ValueError, OSError):  # the process object is closed: nothing left to wait for
        return True


class LanePool(concurrent.futures.Executor):
    """Issue 30: the worker processes as *lanes* (``mpc.service.lanes.Lane``: one worker process
    each, fed through a pipe, answered through one collector thread for all lanes), so the steps
    of a session go where its decoded state is warm (``mpc.service.worker``, Warm sessions).
    ``submit_to(key, ...)`` runs on the lane that ran ``key``'s last call unless another lane is
    less busy (then on the least busy one: a miss only costs a decode); ``submit`` on the least
    busy lane; when a key moves to another lane, ``evict(key)`` runs on the lane it left (what
    that worker keeps of it is stale). A lane whose process died breaks the pool (``_broken``,
    as a dead worker broke one ``ProcessPoolExecutor``): the service replaces that lane only
    (``replace_broken``), the others keep their worker and its warm sessions."""

    def __init__(self, workers: int, initializer: Callable[[], None], context: Any,
                 evict: Callable[[str], Any] | None = None) -> None:
        self._initializer, self._context, self._evict = initializer, context, evict
        self.collector = Collector()
        self.lanes = [self._new_lane() for _ in range(max(1, workers))]
        self._busy = [0] * len(self.lanes)  # calls submitted to each lane and not done yet
        self._last: OrderedDict[str, int] = OrderedDict()  # key -> the lane of its last call
        self._lock = threading.Lock()

    def _new_lane(self) -> Lane:
        return Lane(self._initializer, self._context, self.collector)

    def replace_broken(self) -> list[Lane]:
        """Replace each lane whose worker died (broken, or its process exited: two workers killed
        at once are replaced together) by a new one; the live lanes go on untouched. Returns the
        replaced lanes, for the caller to shut down and join (their calls have failed already
        with ``BrokenProcessPool``, or fail once the collector notices)."""
        with self._lock:
            dead = [index for index, lane in enumerate(self.lanes) if _lane_dead(lane)]
            replaced = [self.lanes[index] for index in dead]
            for index in dead:
                self.lanes[index] = self._new_lane()
        return replaced

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        return self.submit_to(None, fn, *args, **kwargs)

    def submit_to(self, key: str | None, fn: Callable[..., _T], /, *args: Any,
                  **kwargs: Any) -> concurrent.futures.Future[_T]:
        """``fn(*args, **kwargs)`` on ``key``'s lane (see the class docstring)."""
        with self._lock:
            previous = None if key is None else self._last.get(key)
            lane = self._lane(key)
            future = self.lanes[lane].submit(fn, *args, **kwargs)
            self._busy[lane] += 1
            if key is not None and previous is not None and previous != lane and self._evict is not None:
                with contextlib.suppress(concurrent.futures.BrokenExecutor, RuntimeError):  # dead or shut down:
                    self.lanes[previous].submit(self._evict, key)  # nothing kept there; else a stale copy
        future.add_done_callback(functools.partial(self._done, lane))
        return future

    def _lane(self, key: str | None) -> int:
        least = min(range(len(self.lanes)), key=self._busy.__getitem__)
        if key is None:
            return least
        lane = self._last.get(key, least)
        if self._busy[lane] > self._busy[least]:
            lane = least
        self._last[key] = lane
        self._last.move_to_end(key)
        while len(self._last) > _LANE_KEYS:
            self._last.popitem(last=False)
        return lane

    def _done(self, lane: int, _: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._busy[lane] -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut every lane down (``Lane.shutdown``) and the collector once their workers exited."""
        for lane in self.lanes:
            lane.shutdown(wait=False, cancel_futures=cancel_futures)
        self.collector.close()
        if wait:
            for lane in self.lanes:
                lane.shutdown(wait=True)
            self.collector.join()

    # What ``pool_state``, ``pool_processes`` and ``close_pool`` read (a ``ProcessPoolExecutor``'s names).
    @property
    def _broken(self) -> bool:
        return any(lane._broken for lane in self.lanes)

    @property
    def _shutdown_thread(self) -> bool:
        return any(lane._shutdown_thread for lane in self.lanes)

    @property
    def _processes(self) -> dict[int, Any]:
        return {pid: process for lane in self.lanes for pid, process in lane._processes.items()}


_LANE_KEYS = 4096  # sessions whose last lane is remembered


def _lane_dead(lane: Lane) -> bool:
    """Whether a lane's worker died: the lane is broken, or its process has exited."""
    return lane._broken or any(_exited(process) for process in lane._processes.values())


class Heartbeat:
    """This node's heartbeat (``ServiceStore.heartbeat``) every ``ttl / 5`` seconds, from its own
    thread so a busy event loop never makes a live node look dead; ``stop`` leaves."""

    def __init__(self, service: ServiceStore, node_id: str, ttl: float, errors: BoundedLog) -> None:
        self._service, self._node_id, self._ttl, self._errors = service, node_id, ttl, errors
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mpc-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stopped.wait(self._ttl / 5):
            try:
                self._service.heartbeat(self._node_id, self._ttl)
            except Exception as exc:  # noqa: BLE001 - beat again on the next tick
                self._errors.error("the node heartbeat failed", exc)

    def stop(self) -> None:
        """Stop beating and delete this node's row (its remaining steps are lost at once)."""
        self._stopped.set()
        self._thread.join()
        try:
            self._service.leave(self._node_id)
        except Exception as exc:  # noqa: BLE001 - the row lapses after ttl instead
            self._errors.error("could not remove this node's heartbeat row", exc)


