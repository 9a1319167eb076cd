"""Single-use state across database restores, for the custodian's stores (``mpc.storage.store``).

Every single-use take (a parked operation resumed: ``consume_park_id``) runs in ``taking``: it
first compares the database with the restore guard (``mpc.storage.restore_guard``), and its
transaction raises ``meta.take_counter``, which the guard records once the transaction committed.
A database found behind its guard (restored) has its *nonce epoch* bumped: ``bump_nonce_epoch``
empties every table of single-use rows, and state tagged with an older epoch is never used
(docs/threat-model.md, "Rollback"). ``SingleUseState`` holds that logic for ``SQLiteStore`` and
its subclasses, over the store's transactions, statements and locks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from mpc.storage.restore_guard import RestoreGuard

__all__ = ["EPOCH_MATCHES", "SingleUseState"]

# A condition a statement of a take adds to compare a value's nonce epoch (its one ``?``) with the
# store's as the database has it, in that statement (``SingleUseState.epoch_matched``; the same
# value ``nonce_epoch`` reads: 1 while none is stored).
EPOCH_MATCHES = "? = COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'nonce_epoch'), 1)"

log = logging.getLogger("mpc.storage.store")
TOMBSTONE_PURGE_INTERVAL = 60.0  # seconds between two purges of expired park-id tombstones (per store)


class SingleUseState:
    """The take counter, the restore guard and the nonce epoch of a store (module docstring).

    The store provides the transaction, statement and lock primitives declared below."""

    single_use_tables: list[str]
    _depth: int

    # --- the store's primitives (``mpc.storage.store.SQLiteStore``) --------------------------------
    def transaction(self) -> AbstractContextManager[None]:
        """The store's transaction (``SQLiteStore.transaction``)."""
        raise NotImplementedError

    def _serialised(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _lock_key(self, name: str) -> None:
        raise NotImplementedError

    def _set_meta(self, key: str, value: str) -> None:
        raise NotImplementedError

    def _init_guard_state(self) -> None:
        """No restore guard yet (``attach_restore_guard``); nothing due, nothing to record."""
        self.restore_guard: RestoreGuard | None = None
        self.restores_detected = 0  # how many times this store bumped its epoch for the guard
        self._guard_due = False  # compare at the next statement (set by a reconnect)
        self._guard_pending: int | None = None  # a count to record once the outer transaction commits
        self._memo: dict[str, int] = {}  # this transaction's take count and nonce epoch (``taking``)
        self._tombstones_purged = -math.inf  # ``time.monotonic()`` of this connection's last purge

    # --- single-use takes and the restore guard (``mpc.storage.restore_guard``) -----------------------
    def take_counter(self) -> int:
        """How many transactions with a single-use take this database has made (it goes back
        with a restore; takes nested in one transaction count once: ``taking``)."""
        row = self._execute("SELECT value FROM meta WHERE key = 'take_counter'").fetchone()
        return 0 if row is None else int(row[0])

    def _set_take_counter(self, value: int) -> None:
        self._set_meta("take_counter", str(value))

    def _bump_take_counter(self) -> int:
        """The take counter one higher, in one statement (under its lock: ``_lock_takes``); the new count."""
        row = self._execute("INSERT INTO meta VALUES ('take_counter', '1') ON CONFLICT (key) DO UPDATE SET value = "
                            "CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT) RETURNING value").fetchone()
        return int(row[0])

    def _lock_takes(self) -> None:
        """The take counter's lock, taken before it is read: takes, the restore guard's
        comparison and epoch bumps are serialised (an exact count; a guard never sees a count
        a concurrent take has not committed yet)."""
        self._lock_key("meta:take_counter")

    @contextmanager
    def taking(self) -> Iterator[Callable[[bool], None]]:
        """A transaction for one single-use take: it first compares the store with the restore
        guard (a restored database is bumped before anything is taken from it); call the
        yielded function with whether something was taken; the count rises in the same
        transaction and, once the outermost transaction committed, the restore guard (if any)
        records it, before the caller uses what it took (a take inside an outer transaction
        is used after that commits, or its rollback would bring the item back anyway)."""
        with self.transaction():
            if "taking" not in self._memo:  # a take nested in another's transaction compared already
                self._lock_takes()
                self._reconcile()
                self._memo["taking"] = 1

            def took(taken: bool) -> None:
                if taken and "took" not in self._memo:  # the count rises once per transaction (issue 30)
                    count = self._bump_take_counter()
                    self._guard_pending = max(self._guard_pending or 0, count)
                    self._memo["took"] = count
            yield took

    def attach_restore_guard(self, guard: RestoreGuard) -> bool:
        """Use ``guard`` from now on, comparing at once (``check_restore_guard``): a database
        behind it (restored), or one that took before and meets a guard with no count yet (a
        new host), has its nonce epoch bumped. Returns whether it was bumped."""
        self.restore_guard = guard
        return self.check_restore_guard()

    def check_restore_guard(self) -> bool:
        """Compare this database with the restore guard now (one transaction); if it is behind
        (restored), bump the nonce epoch and catch the counter up. Whether it bumped."""
        if self.restore_guard is None:
            self._guard_due = False
            return False
        before = self.restores_detected
        with self.transaction():
            self._reconcile()
        return self.restores_detected > before

    def _recheck_if_due(self) -> None:
        """Outside a transaction, after a reconnect: compare before the next statement."""
        if self._guard_due and self._depth == 0:
            self.check_restore_guard()

    def _reconcile(self) -> None:
        """Inside a transaction: act on the guard's verdict for this database's take counter
        (``RestoreGuard.verdict``); the counter it reached is recorded after the commit."""
        if self.restore_guard is None:
            self._guard_due = False
            return
        self._lock_takes()
        verdict = self.restore_guard.verdict(self.take_counter())  # a damaged file raises: still due
        if verdict.bump:
            epoch = self.bump_nonce_epoch()
            self._set_take_counter(verdict.counter)
            self.restores_detected += 1
            log.warning("restore guard: %s; nonce epoch bumped to %d, every parked session "
                        "of this database is dead", verdict.why, epoch)
        self._guard_pending = max(self._guard_pending or 0, verdict.counter)
        self._guard_due = False

    def _record_pending(self) -> None:
        """After the outermost commit: the guard records the count this transaction reached."""
        pending, self._guard_pending = self._guard_pending, None
        if pending is not None and self.restore_guard is not None:
            self.restore_guard.record(pending)

    def consume_park_id(self, park_id: str, parked_at: float, purge_before: float, epoch: int | None = None) -> bool:
        """Record that a parked operation was resumed; False if it was already (single use), or
        if ``epoch`` (the blob's nonce epoch) is not the store's once the take compared with the
        restore guard (a restore found here has just emptied the tombstones: its blobs are dead).
        Tombstones of blobs parked before ``purge_before`` go (such blobs are refused anyway by
        their age: ``Custodian._consume_park``), at most every ``TOMBSTONE_PURGE_INTERVAL``
        seconds per store (issue 30: a statement less per take; a tombstone kept longer only
        refuses more)."""
        with self.taking() as took:
            if epoch is not None and epoch != self.nonce_epoch():
                return False
            if time.monotonic() - self._tombstones_purged >= TOMBSTONE_PURGE_INTERVAL:
                self._execute("DELETE FROM resumed_sessions WHERE parked_at < ?", (purge_before,))
                self._tombstones_purged = time.monotonic()
            if self._execute("INSERT INTO resumed_sessions VALUES (?, ?) ON CONFLICT (park_id) DO NOTHING",
                             (park_id, parked_at)).rowcount != 1:  # its tombstone is there: resumed before
                return False
            took(True)
        return True

    # --- nonce epoch (single-use state across database restores) -------------------------------
    def nonce_epoch(self) -> int:
        """The current nonce epoch (1 in a new store)."""
        with self._serialised():
            memo = self._memo if self._depth and "taking" in self._memo else {}
            if "epoch" not in memo:  # read once per take: no epoch moves while the take counter's lock is held
                row = self._execute("SELECT value FROM meta WHERE key = 'nonce_epoch'").fetchone()
                memo["epoch"] = 1 if row is None else int(row[0])
            return memo["epoch"]

    def epoch_matched(self, epoch: int) -> None:
        """In a take (``taking``): a statement of it compared ``epoch`` equal to the store's
        nonce epoch in the database (``EPOCH_MATCHES``) and wrote, so ``nonce_epoch`` answers it
        for the rest of the take without a read (issue 30, round six: a statement less per
        step). Exact: the take holds the take counter's lock (SQLite: the writer's lock) from
        before that statement, and an epoch moves only under that lock
        (``bump_nonce_epoch``, which forgets the value kept here)."""
        if self._depth and "taking" in self._memo:
            self._memo["epoch"] = epoch

    def bump_nonce_epoch(self) -> int:
        """Move to a new epoch and empty every table of single-use rows (``single_use_tables``:
        old precomputation rows, the park tombstones and the service's parked sessions): defence in depth
        after a restore (docs/threat-model.md, Rollback)."""
        with self.transaction():
            self._lock_takes()  # no take runs meanwhile (a take checks the epoch and adds a tombstone)
            self._lock_key("meta:nonce_epoch")
            epoch = self.nonce_epoch() + 1
            self._set_meta("nonce_epoch", str(epoch))
            self._memo.pop("epoch", None)
            for table in self.single_use_tables:
                self._execute(f"DELETE FROM {table}")
        return epoch
