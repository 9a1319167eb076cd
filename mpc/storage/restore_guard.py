"""Detecting a restore of the custodian's database, with a counter kept outside it.

Defence in depth: the custodian's single-use secrets are safe under a restore by construction
(``docs/threat-model.md``, Rollback); the guard and the nonce epoch are a second line that
notices a restore and kills the restored copy's single-use state before anything is served.

A database restored from a snapshot brings back single-use state that was used since the
snapshot: parked sessions and the tombstones of those already resumed (ECDSA precomputations
live in the custodian's memory only and never come back).
Nothing inside the database can tell, since whatever it would compare against is restored with
it. So the store counts every single-use *take* (``meta.take_counter``, in the take's own
transaction) and a ``RestoreGuard`` keeps the highest count in a small file *outside* the
restore boundary, written (and fsync'd) after each take's transaction commits and before the
taken item is used. A store whose counter is below the file's has gone back in time: it was
restored (or is a stale replica), and the store (``SQLiteStore.check_restore_guard``) bumps
its nonce epoch (killing every parked session of the restored copy) and
catches its counter up before anything is served.

When the store compares (``mpc.storage.store``): when the guard is attached (the store opens); at the
start of *every single-use take*, in the take's own transaction, so a restored row can never
be taken (a database overwritten under a running service, or a PostgreSQL point-in-time restore,
is caught by the very next take of any process); after every reconnect (``PostgresStore``: at
its next statement); and whenever ``check_restore_guard`` is called (``mpc.service.server`` calls it
from its purge loop, at most every 30 seconds, so a restore is noticed and logged while idle).
The check is one locked read of a few bytes against ``meta.take_counter``, cheaper than the
fsync each take already pays, which is why it runs before every take rather than every N seconds.

A guard file with no count (a new host, or the file was lost) and a database that has taken
before (``take_counter`` > 0) cannot tell whether that database was restored: the epoch is
bumped once, with a warning, and the count recorded (the safe default: it costs the parked
sessions of that moment, never a nonce).

What it needs: the file on storage that is not backed up and restored with the database (the
way stutxo/mercurylayer keeps its "consumed" tombstones outside the database), shared by every
process that opens the store (an ``fcntl`` lock serialises them). Exactly what it detects: a
restore to any point before the last single-use take that was recorded; a restore that loses
no take needs no action. What it cannot detect: a guard file restored together with the
database (both go back together: do not back it up with the database), a guard file written
by hand, or a take whose process died between its commit and its record (the guard lags by
that take). Enable it with ``PORTAL_MPC_RESTORE_GUARD=/path`` (``mpc.storage.backends.open_store``, and
so ``python -m mpc serve`` and its worker processes) or ``SQLiteStore.attach_restore_guard``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mpc.errors import StoreCorrupted

__all__ = ["RestoreGuard", "GuardVerdict", "ENV_VAR"]

ENV_VAR = "PORTAL_MPC_RESTORE_GUARD"


@dataclass(frozen=True)
class GuardVerdict:
    """What a store at some take count must do (``RestoreGuard.verdict``): ``bump`` its nonce
    epoch (``reason``: ``"restored"``, behind the guard; ``"unrecorded"``, a database that took
    before met a guard file with no count), and bring its counter up to ``counter``."""

    bump: bool
    counter: int
    reason: str = ""

    @property
    def why(self) -> str:
        """The reason in words, for the warning the store logs."""
        return _REASONS.get(self.reason, "")


_REASONS = {
    "restored": "this database's take counter is behind the guard file's: it was restored or overwritten",
    "unrecorded": "the guard file holds no count but this database has taken before (a new host, or a lost "
                  "guard file): it may have been restored",
}


class RestoreGuard:
    """The highest single-use take count a store has reached, in a file (0600) outside it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RestoreGuard({str(self.path)!r})"

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _value(handle: IO[bytes]) -> int | None:
        handle.seek(0)
        text = handle.read().strip()
        if not text:
            return None
        if not text.isdigit():
            raise StoreCorrupted("the restore guard file is damaged")
        return int(text)

    def recorded(self) -> int | None:
        """The highest count recorded, or None if the file holds none yet (new, or lost)."""
        with self._locked() as handle:
            return self._value(handle)

    def read(self) -> int:
        """The highest count recorded (0 for a new file)."""
        return self.recorded() or 0

    def record(self, count: int) -> None:
        """Raise the recorded count to ``count`` (never lowers it; an empty file gets it even
        if 0); durable when this returns."""
        with self._locked() as handle:
            current = self._value(handle)
            if current is not None and count <= current:
                return
            handle.seek(0)
            handle.truncate()
            handle.write(str(count).encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())

    def is_behind(self, store_count: int) -> bool:
        """Whether a store at ``store_count`` is behind what this guard has seen: restored."""
        return store_count < self.read()

    def verdict(self, store_count: int) -> GuardVerdict:
        """What a store at ``store_count`` must do before it serves (see the module docstring)."""
        recorded = self.recorded()
        if recorded is None:
            return GuardVerdict(store_count > 0, store_count, "unrecorded" if store_count > 0 else "")
        if store_count < recorded:
            return GuardVerdict(True, recorded, "restored")
        return GuardVerdict(False, store_count)
