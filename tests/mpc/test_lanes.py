"""Issue 30: the service's worker lanes (``mpc.service.lanes``, ``mpc.service.pool.LanePool``): one
worker process per lane fed through a pipe, answered through one collector thread. Played through
the pool's public names: what a caller gets when a worker raises, dies in the middle of a call
or is stopped with a call in flight, and what the service's health and rebuild read of it
(``pool_state``, ``pool_processes``, ``replace_broken``, ``close_pool``)."""

from __future__ import annotations

import multiprocessing
import operator
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from mpc.service import worker
from mpc.service.lanes import DIRECT_SEND, RemoteTraceback
from mpc.service.pool import LanePool, close_pool, pool_processes, pool_state

WITHIN = 60.0  # seconds a worker gets to start (spawn) and answer, on a loaded machine


@pytest.fixture
def lanes() -> Iterator[LanePool]:
    """Two lanes with the service's worker initializer (``worker.worker_init``)."""
    pool = LanePool(2, worker.worker_init, multiprocessing.get_context("spawn"), evict=worker.forget_warm)
    try:
        yield pool
    finally:
        close_pool(pool, 5.0)


def _started(pool: LanePool) -> list[int]:
    """Start every lane's worker (a call on each) and return their pids, lane by lane."""
    return [lane.submit(os.getpid).result(WITHIN) for lane in pool.lanes]


def _until(condition: Any) -> None:
    """Wait (bounded) for the collector to have seen what ``condition`` checks."""
    deadline = time.monotonic() + WITHIN
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_exception_raised_in_a_worker_reaches_the_caller_with_its_traceback(lanes: LanePool) -> None:
    first = _started(lanes)
    with pytest.raises(ZeroDivisionError) as raised:
        lanes.submit_to("s1", operator.truediv, 1, 0).result(WITHIN)
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "ZeroDivisionError" in str(raised.value.__cause__)
    with pytest.raises(TypeError):  # a result that does not pickle fails that call alone
        lanes.submit(threading.Lock).result(WITHIN)
    assert _started(lanes) == first and pool_state(lanes) == "ok"  # the same workers go on


def test_a_large_call_is_sent_whole_and_never_by_the_submitting_thread_while_its_lane_is_busy(
        lanes: LanePool) -> None:
    _started(lanes)
    frame = os.urandom(4 * DIRECT_SEND)
    lane = lanes.lanes[0]
    busy = lane.submit(time.sleep, 0.5)
    sized = lane.submit(len, frame)  # queued behind the sleep: the submit returned without sending
    assert not busy.done() and not sized.done()
    assert sized.result(WITHIN) == len(frame) and busy.result(WITHIN) is None
    assert lane.submit(bytes, frame).result(WITHIN) == frame  # to an idle lane: the collector sends it


def test_a_worker_that_dies_mid_call_fails_its_calls_and_only_its_lane_is_replaced(lanes: LanePool) -> None:
    victim, survivor = _started(lanes)
    dying = lanes.lanes[0].submit(time.sleep, WITHIN)
    queued = lanes.lanes[0].submit(os.getpid)  # behind the dying call
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        dying.result(WITHIN)
    with pytest.raises(BrokenProcessPool):
        queued.result(WITHIN)
    assert pool_state(lanes) == "broken"
    with pytest.raises(BrokenProcessPool):  # as a broken ProcessPoolExecutor: submit raises
        lanes.lanes[0].submit(os.getpid)
    replaced = lanes.replace_broken()
    assert len(replaced) == 1 and pool_processes(replaced[0]) == []
    assert lanes.replace_broken() == []  # a second caller finds it replaced already
    fresh, kept = _started(lanes)
    assert kept == survivor and fresh not in (victim, survivor) and pool_state(lanes) == "ok"
    close_pool(replaced[0], 1.0)


def test_a_worker_killed_while_idle_breaks_its_lane_for_the_next_call(lanes: LanePool) -> None:
    victim, _ = _started(lanes)
    os.kill(victim, signal.SIGKILL)
    _until(lambda: pool_state(lanes) == "broken")
    assert pool_state(lanes) == "broken" and victim not in [p.pid for p in pool_processes(lanes)]
    assert len(lanes.replace_broken()) == 1 and pool_state(lanes) == "ok"


def test_closing_lets_a_running_call_finish_within_the_grace_and_cancels_the_queued(lanes: LanePool) -> None:
    _started(lanes)
    running = lanes.lanes[0].submit(time.sleep, 0.5)
    queued = lanes.lanes[0].submit(os.getpid)
    close_pool(lanes, 30.0)
    assert running.result(0) is None and queued.cancelled()
    assert pool_processes(lanes) == [] and pool_state(lanes) == "shut down"
    with pytest.raises(RuntimeError):
        lanes.submit(os.getpid)


def test_closing_terminates_a_call_that_outlasts_the_grace(lanes: LanePool) -> None:
    _started(lanes)
    stuck: Future[Any] = lanes.lanes[1].submit(time.sleep, WITHIN)
    close_pool(lanes, 0.5)
    with pytest.raises(BrokenProcessPool):  # it was running: terminated, not cancelled
        stuck.result(0)
    assert pool_processes(lanes) == []


_FORGOTTEN_POOL = """
import multiprocessing, os, sys
from mpc.service import worker
from mpc.service.pool import LanePool

if __name__ == "__main__":
    pool = LanePool(1, worker.worker_init, multiprocessing.get_context("spawn"))
    print(pool.submit(os.getpid).result(60), flush=True)
    del pool  # never shut down: the interpreter's exit stops its worker
"""


def test_a_process_that_exits_without_closing_its_lanes_stops_their_workers(tmp_path: Path) -> None:
    script = tmp_path / "forgotten.py"
    script.write_text(_FORGOTTEN_POOL)
    root = str(Path(__file__).resolve().parents[2])  # this tree's packages
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=WITHIN,
                          cwd=root, env={**os.environ, "PYTHONPATH": root}, check=False)
    assert done.returncode == 0, done.stderr
    worker_pid = int(done.stdout.split()[0])
    with pytest.raises(ProcessLookupError):  # exited and reaped: no orphan, no zombie of ours
        os.kill(worker_pid, 0)
