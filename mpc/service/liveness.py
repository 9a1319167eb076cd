"""Which service processes on this machine are certainly dead (issue 26: back within seconds).

A node is otherwise known dead only when its heartbeat lapses (``--node-ttl``), so a node killed
and restarted at once would wait that long before the steps its predecessor was running are
declared lost. A process can do better for its neighbours on the same kernel: a node records
where it runs (:func:`this_process`: the boot id, the PID namespace, its pid and the tick at
which that pid started) beside its heartbeat, and a node starting up asks :func:`is_dead` about
every node registered from the same boot and PID namespace. A pid that no longer exists, that
is a zombie, or that another process started later holds (pid reuse), is dead for certain: its
steps are declared lost at once instead of after the TTL (``ServiceStore.reap_dead_neighbours``).

Anything uncertain counts as alive (another machine, another container's PID namespace, a
system without ``/proc``): those nodes are left to their heartbeat, as before. The records are
public facts about processes, nothing secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessIdentity", "is_dead", "this_process"]

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """Where a node runs: ``host`` (boot id and PID namespace: the scope in which a pid means
    one process), its ``pid`` and ``started`` (the pid's start time in clock ticks since boot,
    which tells a reused pid from the original)."""

    host: str
    pid: int
    started: int


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (from field 3, the state)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def _exists(pid: int) -> bool:
    """Whether any process has ``pid`` (signal 0: nothing is sent); a pid we may not signal exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_process() -> ProcessIdentity | None:
    """This process's identity, or None where ``/proc`` cannot tell (then no neighbour is ever
    declared dead early: the heartbeat TTL decides, as on any other machine)."""
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(_PROC / "self/ns/pid")
        fields = _stat_fields("self")
    except OSError:
        return None
    if not boot_id or fields is None:
        return None
    return ProcessIdentity(f"{boot_id}/{namespace}", os.getpid(), int(fields[19]))


def is_dead(other: ProcessIdentity, here: ProcessIdentity | None) -> bool:
    """True only when ``other`` certainly no longer runs: it was recorded from this boot and PID
    namespace (``here.host``) and its pid is gone, a zombie, or now another, later process; a
    ``/proc`` that hides or refuses other users' processes (``hidepid``) leaves it alive."""
    if here is None or other.host != here.host:
        return False
    if other.pid == here.pid:
        return other.started != here.started
    try:
        fields = _stat_fields(other.pid)
    except OSError:  # /proc restricted (hidepid): uncertain
        return False
    if fields is None:
        return not _exists(other.pid)  # hidden by hidepid=2, or gone
    state, started = fields[0], int(fields[19])
    return state in ("Z", "X") or started != other.started
