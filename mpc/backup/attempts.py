"""Failed-attempt counting per client: what stands between a stolen token and backup material.

Eject and recover release backup material (the encrypted client backup share, and for eject the
custodian's backup shares) only after the client proves that it holds its backup share
(``mpc.backup.possession``). Each failed proof counts here, and so does each password guess of a
``PASSWORD`` recover or eject, *before* the custodian evaluates it (:meth:`AttemptCounter.admit`:
check and increment in the transaction of the evaluation; one failed attempt counts once); after ``MAX_FAILED_ATTEMPTS`` failures in a
row the client is *locked out*: eject and recover are refused (``ClientLockedOut``) until an
operator unlocks it (``Custodian.unlock``). A successful proof resets the count.

The counter lives in the custodian's store (table ``client_attempts``, created on first use, same
database and transactions as the store), so it survives restarts and is shared by every server
process on one database. With a revocation ledger attached to the store (``mpc.storage.ledger``)
each change is also appended there first, and the count in force is the larger of the two: a
database restored to before some failures (or a lock-out) does not reset them.
"""

from __future__ import annotations

import time

from datetime import datetime, timezone

from mpc.errors import ClientLockedOut
from mpc.storage.ledger import ATTEMPTS
from mpc.storage.store import SQLiteStore
from mpc.wallet import LockoutView

__all__ = ["AttemptCounter", "MAX_FAILED_ATTEMPTS"]

MAX_FAILED_ATTEMPTS = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS client_attempts (
    client_id TEXT PRIMARY KEY REFERENCES clients(client_id),
    failures INTEGER NOT NULL,
    last_failure REAL NOT NULL
)
"""


class AttemptCounter:
    """Failed attempts per client in ``store`` (``limit`` failures lock the client out)."""

    def __init__(self, store: SQLiteStore, limit: int = MAX_FAILED_ATTEMPTS) -> None:
        self.store = store
        self.limit = limit
        with store.transaction():
            store._execute(_SCHEMA)

    def failures(self, client_id: str) -> int:
        """Failed attempts since the last success or unlock (the ledger's count if higher)."""
        row = self.store._execute("SELECT failures FROM client_attempts WHERE client_id = ?",
                                  (client_id,)).fetchone()
        ledger = self.store.ledger
        return max(0 if row is None else int(row[0]), 0 if ledger is None else ledger.failures(client_id))

    def _record(self, client_id: str, count: int) -> None:
        """The new count in the ledger (if any) before the database: a restore cannot undo it."""
        if self.store.ledger is not None:
            self.store.ledger.append(ATTEMPTS, client_id, count=count, since=time.time(), locked=count >= self.limit)

    def lockout(self, client_id: str) -> LockoutView:
        """The client's lockout state (``Custodian.get_client``'s ``lockout``): ``locked``,
        ``failed_attempts`` (since the last success or unlock), ``limit``, and ``since`` (when
        the client was locked out, Unix seconds; None when not locked)."""
        row = self.store._execute("SELECT failures, last_failure FROM client_attempts WHERE client_id = ?",
                                  (client_id,)).fetchone()
        failures = self.failures(client_id)  # the revocation ledger's count if higher
        locked = failures >= self.limit
        return LockoutView(locked=locked, failed_attempts=failures, limit=self.limit,
                           since=float(row[1]) if locked and row is not None else None)

    def locked_count(self) -> int:
        """How many clients are locked out now (a metrics gauge)."""
        row = self.store._execute("SELECT COUNT(*) FROM client_attempts WHERE failures >= ?", (self.limit,)).fetchone()
        return int(row[0])

    def check(self, client_id: str) -> None:
        """Raise ``ClientLockedOut`` if the client has used up its attempts, saying since when
        and that an operator must unlock it (no more failures are counted meanwhile, so the
        time of the last one is when the lockout began)."""
        state = self.lockout(client_id)
        if state["locked"]:
            when = state["since"]  # None when only the revocation ledger remembers the count (a restore)
            since = "a restore" if when is None else datetime.fromtimestamp(when, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
            raise ClientLockedOut(
                f"locked out since {since} after {state['failed_attempts']} failed proofs of possession of the "
                f"backup share (or password guesses): recover and eject are refused until an operator unlocks "
                f"this client (unlock_client); signing is not affected")

    def admit(self, client_id: str) -> int:
        """Count one attempt *before* it runs, in one transaction with the check: returns the new
        count, or raises ``ClientLockedOut`` (nothing counted) when the client has none left.

        Call it inside the transaction that does the attempt's work (the VOPRF evaluation of a
        password guess): the work's result is used only if the increment committed. Store
        transactions of one client are serialised (SQLite ``BEGIN IMMEDIATE``, PostgreSQL the
        client's row lock, ``SQLiteStore.lock_client``), so concurrent attempts, from any number
        of sessions and server processes, are admitted at most ``limit`` times between two
        successes or unlocks."""
        with self.store.transaction():
            self.store.lock_client(client_id)
            count = self.failures(client_id)
            if count >= self.limit:
                raise ClientLockedOut()
            self._save(client_id, count + 1)
        return count + 1

    def failed(self, client_id: str) -> int:
        """Count one failed attempt (in its own transaction); returns the new count."""
        with self.store.transaction():
            self.store.lock_client(client_id)
            count = self.failures(client_id) + 1
            self._save(client_id, count)
        return count

    def _save(self, client_id: str, count: int) -> None:
        """The new count: in the ledger first (``_record``), then in the database."""
        self._record(client_id, count)
        self.store._execute("INSERT OR REPLACE INTO client_attempts VALUES (?, ?, ?)", (client_id, count, time.time()))

    def succeeded(self, client_id: str) -> None:
        """A successful proof: the count starts again from zero."""
        self.unlock(client_id)

    def unlock(self, client_id: str) -> None:
        """The operator's action: forget the failures (the client may try again)."""
        with self.store.transaction():
            self.store.lock_client(client_id)
            if self.failures(client_id):
                self._record(client_id, 0)
            self.store._execute("DELETE FROM client_attempts WHERE client_id = ?", (client_id,))
