"""A node that died on this machine has its steps declared lost at once (``mpc.service.liveness``,
``ServiceStore.reap_dead_neighbours``; issue 26), and nothing uncertain is ever declared dead."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from mpc.service import liveness
from mpc.service.liveness import ProcessIdentity
from mpc.service.store import ServiceStore, Step
from tests.mpc.test_resilience import _lock, service  # noqa: F401 - the SQLite and PostgreSQL fixture

here = liveness.this_process()
pytestmark = pytest.mark.skipif(here is None, reason="no /proc: liveness is left to the heartbeat TTL")


def _started(pid: int) -> int:
    """The start tick of a live process (``/proc/<pid>/stat``, read as ``liveness`` reads it)."""
    fields = liveness._stat_fields(pid)
    assert fields is not None
    return int(fields[19])


def _exited_process() -> ProcessIdentity:
    """The identity a node that has since exited recorded (a real process, started and reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = _started(child.pid)
    finally:
        child.kill()
        child.wait()
    assert here is not None
    return ProcessIdentity(here.host, child.pid, started)


def test_only_a_process_certainly_gone_is_dead() -> None:
    assert here is not None
    assert not liveness.is_dead(here, here)  # this process
    assert liveness.is_dead(replace(here, started=here.started - 1), here)  # this pid, an earlier process
    dead = _exited_process()
    assert liveness.is_dead(dead, here)
    assert liveness.is_dead(replace(dead, pid=1, started=-1), here)  # pid 1 now another process
    assert not liveness.is_dead(replace(dead, host="another-boot/pid:[1]"), here)  # another machine: unknown
    assert not liveness.is_dead(dead, None)  # no /proc here: unknown


def test_a_proc_that_hides_or_refuses_other_processes_leaves_them_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert here is not None
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            alive = ProcessIdentity(here.host, child.pid, _started(child.pid))
            monkeypatch.setattr(liveness, "_stat_fields", lambda pid: None)  # hidepid=2: not listed
            assert not liveness.is_dead(alive, here)

            def refused(pid: int) -> None:
                raise PermissionError(pid)

            monkeypatch.setattr(liveness, "_stat_fields", refused)  # hidepid=1: not readable
            assert not liveness.is_dead(alive, here)
        finally:
            child.kill()
    monkeypatch.undo()
    assert liveness.is_dead(_exited_process(), here)  # really gone: still dead


def test_a_live_neighbour_is_left_to_its_heartbeat() -> None:
    assert here is not None
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            alive = ProcessIdentity(here.host, child.pid, _started(child.pid))
            assert not liveness.is_dead(alive, here)
        finally:
            child.kill()


def test_a_dead_neighbours_step_is_lost_at_once_not_after_its_ttl(service: ServiceStore) -> None:  # noqa: F811
    store = service.store
    store.update_client("c1", operation="backup", operation_expires=time.time() + 1000, operation_session="s1")
    service.heartbeat("node-dead", 600)  # its heartbeat would hold for ten minutes
    service.register_process("node-dead", _exited_process())
    service.heartbeat("node-far", 600)  # a node on another machine, also stepping
    service.register_process("node-far", replace(_exited_process(), host="another-boot/pid:[1]"))
    service.park("s1", "c1", "backup", b"state", [], True, 60)
    assert service.take("s1", Step("step-1", "node-dead", 600.0)) is not None
    assert service.missing_session("s1", "c1") == "stepping"
    assert service.reap() == 0  # by the TTL alone it is still running

    assert service.reap_dead_neighbours(here) == 1  # a restarted node on this machine
    assert service.missing_session("s1", "c1") == "lost"  # the client resuming it: OPERATION_LOST at once
    assert _lock(service) == (None, None, None)
    alive = {row[0] for row in store._execute("SELECT node_id FROM service_nodes").fetchall()}
    assert alive == {"node-far"}  # the uncertain one keeps its heartbeat
    assert service.reap_dead_neighbours(None) == 0  # without /proc nothing is declared


def test_a_dead_workers_step_that_was_reaped_is_lost_not_gone(service: ServiceStore) -> None:  # noqa: F811
    """A step whose lease lapsed is reaped while its worker still runs; the worker then dies: the
    executor asks what became of the step and hears ``lost`` (OPERATION_LOST), not ``gone``."""
    store = service.store
    store.update_client("c1", operation="backup", operation_expires=time.time() + 1000, operation_session="s1")
    service.heartbeat("node-a", 600)
    service.park("s1", "c1", "backup", b"state", [], True, 60)
    step = Step("step-1", "node-a", 60.0)
    assert service.take("s1", step) is not None
    service.heartbeat("node-a", 600)
    assert service.reap(time.time() + 61) == 1  # its lease lapsed (node alive): lost, a tombstone left
    assert service.step_outcome("s1", step).state == "lost"
