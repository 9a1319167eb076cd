"""Detecting a restore of the custodian's database, with a counter kept outside it.

A database restored from a snapshot brings back single-use state that was used since the
snapshot: ECDSA precomputations (Paillier nonces), parked sessions and their tombstones.
Nothing inside the database can tell, since whatever it would compare against is restored with
it. So the store counts every single-use *take* (``meta.take_counter``, in the take's own
transaction) and a ``RestoreGuard`` keeps the highest count in a small file *outside* the
restore boundary, written (and fsync'd) after each take commits and before the taken item is
used. A store whose counter is below the file's has gone back in time: it was restored (or is a
stale replica), and ``reconcile`` bumps its nonce epoch (killing every precomputation and
parked session of the restored copy) before anything is served.

What it needs: the file on storage that is not backed up and restored with the database (the
way stutxo/mercurylayer keeps its "consumed" tombstones outside the database), shared by every
process that opens the store (an ``fcntl`` lock serialises them). Exactly what it detects: a
restore to any point before the last single-use take; a restore that loses no take needs no
action. A guard file restored together with the database defeats it, so do not back it up with
the database. Enable it with ``PORTAL_MPC_RESTORE_GUARD=/path`` (``mpc.storage.backends.open_store``, and
so ``python -m mpc serve`` and its worker processes) or ``SQLiteStore.attach_restore_guard``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mpc.errors import StoreCorrupted

__all__ = ["RestoreGuard", "ENV_VAR"]

ENV_VAR = "PORTAL_MPC_RESTORE_GUARD"


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
    def _value(handle: IO[bytes]) -> int:
        handle.seek(0)
        text = handle.read().strip()
        if not text:
            return 0
        if not text.isdigit():
            raise StoreCorrupted("the restore guard file is damaged")
        return int(text)

    def read(self) -> int:
        """The highest count recorded (0 for a new file)."""
        with self._locked() as handle:
            return self._value(handle)

    def record(self, count: int) -> None:
        """Raise the recorded count to ``count`` (never lowers it); durable when this returns."""
        with self._locked() as handle:
            if count <= self._value(handle):
                return
            handle.seek(0)
            handle.truncate()
            handle.write(str(count).encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())

    def is_behind(self, store_count: int) -> bool:
        """Whether a store at ``store_count`` is behind what this guard has seen: restored."""
        return store_count < self.read()
