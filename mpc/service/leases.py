"""The custodian service's operation locks as leases, its steps' markers and its nodes
(``mpc.service.store``, whose ``ServiceStore`` they are part of; ``mpc.service.server``: Parking,
restarts, expiry): a step's marker tells a dead worker's step apart (``step_outcome``,
``missing_session``), the lock of a step whose node died or whose lease lapsed is freed
(``reclaim_lock``, ``reap``), and every node heartbeats (``heartbeat``) and records where it
runs, so a dead neighbour on the same machine is declared dead at once
(``reap_dead_neighbours``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from mpc.errors import StoreUnavailable
from mpc.service import liveness
from mpc.service.liveness import ProcessIdentity
from mpc.service.parked import ParkedSession
from mpc.storage.store import SQLiteStore

__all__ = ["LOST_TOMBSTONE_TTL", "Step", "StepLeases", "StepOutcome"]

log = logging.getLogger("mpc.service.server")
LOST_TOMBSTONE_TTL = 600.0  # seconds a lost step's marker answers OPERATION_LOST to a resuming client


@dataclass(frozen=True)
class Step:
    """One step of a parked session: its id (fresh per attempt), the node running it, and the
    lease (seconds) of the client's operation lock while it runs."""

    step_id: str
    node_id: str
    lease: float


@dataclass(frozen=True)
class StepOutcome:
    """What became of a step whose worker died: ``"untouched"`` (never taken, or an optimistic
    step never committed: the row is parked as it was, safe to run again), ``"parked"`` (it ran
    and parked the session, or committed: ``messages`` are what it produced),
    ``"lost"`` (taken and never parked again: the operation is lost, its lock freed) or
    ``"gone"`` (the session is not there, or another step took it)."""

    state: str
    messages: tuple[str, ...] = ()


class StepLeases:
    """The leases, step markers and nodes part of ``ServiceStore`` (which provides ``store`` and
    ``peek``)."""

    store: SQLiteStore

    def peek(self, session_id: str) -> ParkedSession | None:
        """The parked session ``session_id`` as it is now (``ServiceStore.peek``)."""
        raise NotImplementedError

    def _renew_lock(self, client_id: str, session_id: str, expires: float) -> bool:
        """Set the lease of the client's lock to ``expires`` if ``session_id`` holds it (or the
        lock names no holder: taken before holders were recorded); whether it did."""
        return self.store._execute(
            "UPDATE clients SET operation_expires = ?, operation_session = ? WHERE client_id = ? AND operation IS NOT "
            "NULL AND (operation_session = ? OR operation_session IS NULL)",
            (expires, session_id, client_id, session_id)).rowcount == 1

    def end_step(self, session_id: str, step: Step) -> None:
        """The step ended without parking the session (it finished, failed or was refused)."""
        self.store._execute("DELETE FROM session_steps WHERE session_id = ? AND step_id = ?",
                            (session_id, step.step_id))

    def step_outcome(self, session_id: str, step: Step) -> StepOutcome:
        """What became of ``step`` after its worker died (``StepOutcome``); a lost step's marker
        goes and the lock its session held is freed."""
        with self.store.transaction():
            owner = self.store._execute("SELECT client_id FROM session_steps WHERE session_id = ?",
                                        (session_id,)).fetchone()
            if owner is not None:  # the client's row first: a park renewing its lock waits, or is seen
                self.store.lock_client(owner[0])
            marker = self.store._execute("SELECT step_id, parked, sent FROM session_steps WHERE session_id = ?",
                                         (session_id,)).fetchone()
            if marker is not None and (marker[0] == step.step_id or (marker[0] == "" and not marker[1])):
                # ours, or a tombstone ``reap`` left (the step outran its lease): lost either way
                if marker[1]:
                    parked = self.peek(session_id)
                    return StepOutcome("parked", tuple(parked.outbox[int(marker[2]):]) if parked else ())
                self._forget(session_id)
                return StepOutcome("lost")
            if self.peek(session_id) is not None:  # parked, not taken or committed since: as if it never ran
                return StepOutcome("untouched")
            # Not parked, no marker of ours: it finished (its result lost with the worker) or
            # expired; another step's marker: another connection has it.
            return StepOutcome("lost" if marker is None else "gone")

    def missing_session(self, session_id: str, client_id: str, now: float | None = None) -> str:
        """Why ``session_id`` (of ``client_id``) is not parked: ``"stepping"`` (a live node is
        stepping it now), ``"lost"`` (a step took it and died, or its lease lapsed: the marker
        goes and the lock is freed) or ``"gone"`` (finished, expired, unknown)."""
        now = time.time() if now is None else now
        with self.store.transaction():
            self.store.lock_client(client_id)  # a park renewing the session's lock waits, or is seen
            marker = self.store._execute("SELECT client_id, node_id, parked, expires FROM session_steps "
                                         "WHERE session_id = ?", (session_id,)).fetchone()
            if marker is None or marker[0] != client_id or marker[2]:
                return "gone"
            if float(marker[3]) >= now and self._node_alive(marker[1], now):
                return "stepping"
            self._forget(session_id)
            return "lost"

    def abandon(self, session_id: str) -> None:
        """A session whose step failed and was not parked again: forget it (its marker goes,
        the lock it holds is freed)."""
        with self.store.transaction():
            self._forget(session_id)

    def reclaim_lock(self, client_id: str, now: float | None = None) -> bool:
        """Free the client's live operation lock if its holder is neither parked (unexpired)
        nor being stepped by a live node (``Custodian.lock_reclaim``); whether the lock is free."""
        now = time.time() if now is None else now
        with self.store.transaction():
            self.store.lock_client(client_id)  # a park renewing the holder's lease waits, or is seen
            row = self.store._execute("SELECT operation, operation_expires, operation_session FROM clients "
                                      "WHERE client_id = ?", (client_id,)).fetchone()
            if row is None or row[0] is None or float(row[1] or 0) <= now:
                return True
            holder = row[2]
            if holder is None or self._holder_alive(holder, now):
                return False
            self._forget(holder)
        log.warning("freed the operation lock of client %s: its operation was lost (session %s…)",
                    client_id, holder[:8])
        return True

    def _holder_alive(self, session_id: str, now: float) -> bool:
        parked = self.store._execute("SELECT expires FROM parked_sessions WHERE session_id = ?",
                                     (session_id,)).fetchone()
        if parked is not None and float(parked[0]) >= now:
            return True
        marker = self.store._execute("SELECT node_id, parked, expires FROM session_steps WHERE session_id = ?",
                                     (session_id,)).fetchone()
        return marker is not None and not marker[1] and float(marker[2]) >= now and self._node_alive(marker[0], now)

    def _still_lost(self, session_id: str, client_id: str, step_id: str, now: float) -> bool:
        """Whether step ``step_id`` of ``session_id`` is still lost once its client's row is
        locked (``reap``, one short transaction per step): a step that parked meanwhile is not."""
        self.store.lock_client(client_id)
        marker = self.store._execute("SELECT node_id, parked, expires, step_id FROM session_steps WHERE session_id = ?",
                                     (session_id,)).fetchone()
        return (marker is not None and marker[3] == step_id and not marker[1]
                and not (float(marker[2]) >= now and self._node_alive(marker[0], now)))

    def _node_alive(self, node_id: str, now: float) -> bool:
        row = self.store._execute("SELECT expires FROM service_nodes WHERE node_id = ?", (node_id,)).fetchone()
        return row is not None and float(row[0]) >= now

    def _forget(self, session_id: str) -> None:
        """A lost session: its step marker goes, the lock it held is freed (nothing else)."""
        marker = self.store._execute("DELETE FROM session_steps WHERE session_id = ? RETURNING client_id",
                                     (session_id,)).fetchone()
        if marker is not None:
            self.store.release_operation(marker[0], session_id)
        else:
            self.store._execute("UPDATE clients SET operation = NULL, operation_expires = NULL, operation_session = "
                                "NULL WHERE operation_session = ?", (session_id,))

    def reap(self, now: float | None = None) -> int:
        """Free the locks of lost steps (their node dead, or their lease lapsed) and leave each
        marker as a tombstone for ``LOST_TOMBSTONE_TTL`` (no node, no step id), so the client
        that resumes it later is told ``OPERATION_LOST``, never ``NOT_FOUND`` (issue 26); drop
        lapsed markers of parked steps, lapsed tombstones and lapsed nodes. Each lost step is
        buried in a short transaction of its own under its client's row lock (issue 30: a reap
        never holds many clients' rows at once). How many steps."""
        now = time.time() if now is None else now
        # The marker of a park that expired (``purge`` takes the row and its lock), lapsed tombstones.
        self.store._execute("DELETE FROM session_steps WHERE expires < ? AND (parked = 1 OR node_id = '')", (now,))
        rows = self.store._execute(
            "SELECT session_id, client_id, step_id FROM session_steps WHERE parked = 0 AND node_id <> '' AND "
            "(expires < ? OR node_id NOT IN (SELECT node_id FROM service_nodes WHERE expires >= ?))",
            (now, now)).fetchall()
        lost = sum(self._reap_step(session_id, client_id, step_id, now) for session_id, client_id, step_id in rows)
        self.store._execute("DELETE FROM service_nodes WHERE expires < ?", (now,))
        self.store._execute("DELETE FROM node_processes WHERE node_id NOT IN (SELECT node_id FROM service_nodes)")
        if lost:
            log.warning("%d operation(s) lost to a stopped node or a lapsed step lease: their locks are freed", lost)
        return lost

    def _reap_step(self, session_id: str, client_id: str, step_id: str, now: float) -> bool:
        """Bury one step found lost, in its own transaction, if it still is once its client's
        row is locked (``_still_lost``); whether it did."""
        with self.store.transaction():
            if not self._still_lost(session_id, client_id, step_id, now):
                return False
            self._bury(session_id, now)
        return True

    def _bury(self, session_id: str, now: float) -> None:
        """A lost step: the lock its session held is freed and its marker becomes a tombstone
        (node and step id emptied: no node is '' and no step can park through it)."""
        marker = self.store._execute("UPDATE session_steps SET node_id = '', step_id = '', expires = ? "
                                     "WHERE session_id = ? RETURNING client_id",
                                     (now + LOST_TOMBSTONE_TTL, session_id)).fetchone()
        if marker is not None:
            self.store.release_operation(marker[0], session_id)

    def heartbeat(self, node_id: str, ttl: float) -> None:
        """Node ``node_id`` is alive for ``ttl`` more seconds."""
        self._idempotent("INSERT OR REPLACE INTO service_nodes VALUES (?, ?)", (node_id, time.time() + ttl))

    def leave(self, node_id: str) -> None:
        """Node ``node_id`` stopped: the steps it still has (none after a drain) are lost at once."""
        self._idempotent("DELETE FROM service_nodes WHERE node_id = ?", (node_id,))
        self._idempotent("DELETE FROM node_processes WHERE node_id = ?", (node_id,))

    def register_process(self, node_id: str, identity: ProcessIdentity | None) -> None:
        """Record where node ``node_id`` runs (nothing where ``/proc`` cannot tell)."""
        if identity is not None:
            self._idempotent("INSERT OR REPLACE INTO node_processes VALUES (?, ?, ?, ?)",
                             (node_id, identity.host, identity.pid, identity.started))

    def reap_dead_neighbours(self, here: ProcessIdentity | None) -> int:
        """Declare dead, at once, every node recorded from this machine's boot and PID namespace
        whose process certainly no longer runs (``liveness.is_dead``): the steps they were running
        are lost from now on, without waiting for their heartbeat to lapse. Their markers stay,
        so a client resuming one of them is told ``OPERATION_LOST`` (``missing_session``), not
        ``NOT_FOUND``; the purge loop forgets what nobody resumes. How many nodes."""
        if here is None:
            return 0
        rows = self.store._execute("SELECT node_id, host, pid, started FROM node_processes WHERE host = ?",
                                   (here.host,)).fetchall()
        dead = [node for node, host, pid, started in rows
                if liveness.is_dead(liveness.ProcessIdentity(host, int(pid), int(started)), here)]
        for node_id in dead:
            log.warning("node %s died on this machine: its steps are lost now, not after its heartbeat lapses",
                        node_id)
            self.leave(node_id)
        return len(dead)

    def _idempotent(self, sql: str, args: tuple[Any, ...]) -> None:
        """A write that may be applied twice: once more on the new connection if the first was
        cut (``STORE_UNAVAILABLE``: the store never repeats a write by itself)."""
        try:
            self.store._execute(sql, args)
        except StoreUnavailable:
            self.store._execute(sql, args)
