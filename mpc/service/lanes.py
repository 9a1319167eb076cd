"""Worker lanes (issue 30): one worker process per lane, fed through a pipe, and one *collector*
thread that reads every lane's answers; what a ``ProcessPoolExecutor(max_workers=1)`` per lane
did, without its manager and queue feeder threads in the service process (about 1.1 ms of the
service's CPU per signature: ``benchmarks/README.md``, Service CPU: worker lanes).

A lane's worker (``_lane_main``, started from the spawn context on the lane's first call) runs
the initializer (``mpc.service.worker.worker_init``: the worker exits when the service process
dies, after the step it is running), then answers the calls it receives, one at a time: a call
is ``(fn, args, kwargs)`` pickled, its answer ``(True, result)`` or ``(False, exception)``, the
exception carrying the worker's traceback as its ``__cause__`` (``RemoteTraceback``), as
``ProcessPoolExecutor`` does. An empty message, or the service's end of the pipe closing, stops it.

A lane has at most one call in its pipe: the next one is sent when the answer to the last one
arrives, so a send never waits for a busy worker, and a call is sent from the submitting thread
only if it is at most ``DIRECT_SEND`` bytes (the pipe, a socket pair, holds it whole); a larger
one (a frame of up to ``mpc.wire.MAX_FRAME_BYTES``) is sent by the collector, so the event loop
never waits for a worker to read it.

The collector (``Collector``: one thread, one selector over every lane's pipe and process
sentinel) completes each call's ``concurrent.futures.Future`` and sends the lane's next call. A
worker whose process exits, or whose pipe closes, unless it was told to stop and had nothing
left to do, *breaks* its lane: the call it was running and those queued behind it fail with
``BrokenProcessPool`` (which ``mpc.service.executor`` retries, answers or reports lost, as with
a broken ``ProcessPoolExecutor``), and ``submit`` on the lane raises the same.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import multiprocessing.util  # noqa: F401 - its exit handler first, so ours runs before it
import os
import pickle
import selectors
import threading
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["DIRECT_SEND", "Collector", "Lane", "RemoteTraceback"]

_T = TypeVar("_T")
_log = logging.getLogger("mpc.service.server")  # the service's one logger (``mpc.service.worker.log``)

# Bytes of a call sent by its caller (more: by the collector). A socket pair's buffer holds at
# least this much on every platform we know (Linux ~200 KiB, macOS 8 KiB); a sign step's call is
# ~1 KiB, so only the rare large call (a generate's) goes through the collector.
DIRECT_SEND = 4 * 1024  # with the length header, well inside the smallest buffer
_STOP = b""  # the message that stops a worker
_BROKEN = "a worker process died: its lane is broken (the call may or may not have run)"


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised by a call in a worker: its traceback there."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _rebuild(exc: BaseException, text: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(text)
    return exc


class _Raised:
    """An exception raised in a worker, pickled with its traceback's text (``_rebuild``)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.exc, f'\n"""\n{self.text}"""')


def _answer(data: bytes) -> bytes:
    """The pickled answer to one pickled call (an answer that does not pickle: its error)."""
    try:
        fn, args, kwargs = pickle.loads(data)
        answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - every failure travels back to the caller
        answer = (False, _Raised(exc))
    try:
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - e.g. a result that does not pickle
        return pickle.dumps((False, _Raised(exc)), pickle.HIGHEST_PROTOCOL)


def _lane_main(conn: Any, initializer: Callable[[], None] | None) -> None:
    """A lane's worker process: the initializer, then one call after the other until told to stop
    or until the service's end of the pipe closes (the service stopped or died)."""
    if initializer is not None:
        initializer()
    while True:
        try:
            data = conn.recv_bytes()
            if data == _STOP:
                return
            conn.send_bytes(_answer(data))
        except (EOFError, OSError):
            return


class _Call:
    __slots__ = ("future", "payload")

    def __init__(self, future: concurrent.futures.Future[Any], payload: bytes) -> None:
        self.future, self.payload = future, payload


class Lane(concurrent.futures.Executor):
    """One worker process and the calls submitted to it (see the module docstring). The names
    ``_broken``, ``_shutdown_thread`` and ``_processes`` are those ``mpc.service.pool`` reads
    (``pool_state``, ``pool_processes``, ``close_pool``), as of a ``ProcessPoolExecutor``."""

    def __init__(self, initializer: Callable[[], None] | None, context: Any, collector: Collector) -> None:
        self._initializer, self._context, self._collector = initializer, context, collector
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()  # submitted, not sent yet
        self._running: _Call | None = None  # sent, not answered yet
        self._process: Any = None
        self._conn: Any = None
        self._broken = False
        self._shutdown_thread = False
        self._stopped = False  # the stop message was sent
        self._closed = False  # the collector is done with it: its pipe is closed

    @property
    def _processes(self) -> dict[int, Any]:
        process = self._process
        return {} if process is None else {process.pid: process}

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        """``fn(*args, **kwargs)`` in this lane's worker, after the calls submitted before it.
        Raises ``BrokenProcessPool`` if its worker died, ``RuntimeError`` after ``shutdown``."""
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()
        try:
            payload = pickle.dumps((fn, args, kwargs), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - as ProcessPoolExecutor: the call's future fails
            future.set_exception(exc)
            return future
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(_BROKEN)
            if self._shutdown_thread:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._process is None:
                self._start()
            self._queue.append(_Call(future, payload))
            self._next()
        return future

    def _start(self) -> None:
        """Start the worker (holding the lock): its pipe's far end goes to it, ours is watched.
        A start that fails leaves the lane unstarted (the next call tries again)."""
        self._collector.check_open()
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_lane_main, args=(theirs, self._initializer))
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process, self._conn = process, ours
        try:
            self._collector.watch(self)
        except RuntimeError:  # closed meanwhile: nobody would read this worker's answers
            process.terminate()
            ours.close()
            self._broken = True
            raise

    def _next(self) -> None:
        """Holding the lock: if the worker is idle, send it the next queued call (a large one
        through the collector, outside any lock), or the stop message after a ``shutdown`` once
        nothing is left. Never blocks: the pipe holds nothing else (``DIRECT_SEND``)."""
        while self._running is None and self._queue:
            call = self._queue.popleft()
            if not call.future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            self._running = call
            if len(call.payload) <= DIRECT_SEND:
                self._send(call.payload)
            else:
                self._collector.send_later(self)
            return
        if self._running is None and self._shutdown_thread and not self._stopped and not self._closed:
            self._stopped = True
            self._send(_STOP)

    def _send(self, payload: bytes) -> None:
        try:
            self._conn.send_bytes(payload)
        except OSError:  # the worker died: the collector sees its sentinel and breaks the lane
            pass

    def _send_running(self) -> None:
        """The collector's send of a large call (``_next``): outside the lock, the lane's only
        sender while that call is unanswered."""
        with self._lock:
            call, closed = self._running, self._closed
        if call is not None and not closed:
            self._send(call.payload)

    def _receive(self) -> bool:
        """The collector: read the worker's answer, send the next call, complete the answered
        call's future. False if the pipe closed (the worker is gone)."""
        try:
            data = self._conn.recv_bytes()
        except (EOFError, OSError):
            return False
        with self._lock:
            call, self._running = self._running, None
            self._next()
        if call is not None:
            _complete(call.future, data)
        return True

    def _lost(self) -> None:
        """The collector: the worker exited or its pipe closed. Its calls fail with
        ``BrokenProcessPool`` and the lane is broken, unless it stopped when told to, idle."""
        with self._lock:
            calls = ([self._running] if self._running is not None else []) + list(self._queue)
            self._running = None
            self._queue.clear()
            self._broken = self._broken or bool(calls) or not self._stopped
            self._closed = True
            self._conn.close()
        for call in calls:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled meanwhile
                call.future.set_exception(BrokenProcessPool(_BROKEN))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; queued ones are cancelled (``cancel_futures``) or run first; then the
        worker is told to stop. ``wait``: until its process exited."""
        with self._lock:
            self._shutdown_thread = True
            cancelled = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            if self._process is not None:
                self._next()
        for call in cancelled:
            call.future.cancel()
        if wait and self._process is not None:
            self._process.join()


def _complete(future: concurrent.futures.Future[Any], data: bytes) -> None:
    """Complete a call's future with the worker's pickled answer (one that does not unpickle
    fails that call alone)."""
    try:
        ok, value = pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - the call fails with it; the lane goes on
        future.set_exception(exc)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class Collector:
    """The one thread that reads every lane's answers and watches every lane's process
    (``selectors`` over the pipes and the process sentinels; started with the first lane).
    ``close`` stops it once every lane it watches has exited."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._added: list[Lane] = []
        self._sends: list[Lane] = []
        self._lanes: set[Lane] = set()
        _COLLECTORS.add(self)
        self._closing = False
        self._finished = False  # the thread ended: its selector and wake pipe are closed
        self._thread: threading.Thread | None = None

    def check_open(self) -> None:
        """``RuntimeError`` once ``close`` was called (no new worker to watch)."""
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")

    def watch(self, lane: Lane) -> None:
        """Watch a lane whose worker just started (``RuntimeError`` after ``close``)."""
        with self._lock:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._added.append(lane)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mpc-lanes", daemon=True)
                self._thread.start()
            self._wake()

    def send_later(self, lane: Lane) -> None:
        """Have the collector send ``lane``'s running call (a large one)."""
        with self._lock:
            self._sends.append(lane)
            self._wake()

    def close(self, *, cancel_futures: bool = False) -> None:
        """Stop once every watched lane's worker has exited (each lane is shut down)."""
        with self._lock:
            self._closing = True
            lanes = [*self._lanes, *self._added]
            if self._thread is None:  # no worker ever started
                self._release()
            self._wake()
        for lane in lanes:
            lane.shutdown(wait=False, cancel_futures=cancel_futures)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (after ``close``)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _wake(self) -> None:
        """Holding the lock: wake the thread (it re-reads what changed)."""
        if self._finished:
            return
        try:
            os.write(self._wake_write, b"\0")
        except BlockingIOError:  # the pipe is full: the collector wakes anyway
            pass

    def _run(self) -> None:
        try:
            while self._changes():
                for key, _ in self._selector.select():
                    if key.data is None:
                        os.read(self._wake_read, 4096)
                        continue
                    try:
                        self._ready(*key.data)
                    except Exception:  # noqa: BLE001 - a bug here must not stop every lane's answers
                        _log.exception("the lanes' collector failed on a worker's event: its lane is broken")
                        self._drop(key)
        finally:
            with self._lock:
                self._release()

    def _release(self) -> None:
        """Holding the lock: close the selector and the wake pipe (once)."""
        if not self._finished:
            self._finished = True
            self._selector.close()
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _changes(self) -> bool:
        """Register the lanes started and send the large calls since the last turn; False
        when closing and no lane is left."""
        with self._lock:
            added, self._added = self._added, []
            sends, self._sends = self._sends, []
            for lane in added:
                self._lanes.add(lane)
                self._selector.register(lane._conn.fileno(), selectors.EVENT_READ, (lane, "answer"))
                self._selector.register(lane._process.sentinel, selectors.EVENT_READ, (lane, "exit"))
            done = self._closing and not self._lanes
        for lane in sends:
            lane._send_running()
        return not done

    def _ready(self, lane: Lane, what: str) -> None:
        if what == "answer":
            if not lane._receive():
                self._forget_pipe(lane)
            return
        while not lane._closed and lane._conn.poll(0) and lane._receive():
            pass  # the answers it sent before it exited
        self._selector.unregister(lane._process.sentinel)
        lane._process.join()  # it has exited: reaped before its calls fail, so their callers find it gone
        self._forget_pipe(lane)
        with self._lock:
            self._lanes.discard(lane)

    def _drop(self, key: selectors.SelectorKey) -> None:
        """After a failure on ``key``'s event: stop watching it (no event loops forever) and break
        its lane (its calls fail; the service replaces it and terminates the worker at stop)."""
        lane, what = key.data
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(key.fileobj)
        if what == "answer" and not lane._closed:
            lane._lost()
        with self._lock:
            if what == "exit":
                self._lanes.discard(lane)

    def _forget_pipe(self, lane: Lane) -> None:
        """Unregister a lane's pipe and break the lane (before its descriptor is closed)."""
        if not lane._closed:
            self._selector.unregister(lane._conn.fileno())
            lane._lost()


_COLLECTORS: weakref.WeakSet[Collector] = weakref.WeakSet()  # a running one is kept by its thread


@atexit.register
def _stop_lanes() -> None:
    """At interpreter exit (registered after ``multiprocessing``'s own exit handler, so it runs
    first: that one joins the worker processes): every lane still open stops its worker after
    the call it is running, the calls queued are cancelled, as ``ProcessPoolExecutor`` does."""
    for collector in list(_COLLECTORS):
        collector.close(cancel_futures=True)
    for collector in list(_COLLECTORS):
        collector.join()
