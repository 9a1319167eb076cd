"""The custodian's storage: clients, share statuses, shares, encrypted client backups, setup.

``SQLiteStore(path)`` (``":memory:"`` for tests) creates its schema on first use and refuses a
database written by a newer schema (``StoreSchemaUnsupported``). Every state change of an
operation happens in one transaction (``with store.transaction():``), so a crash never leaves a
half-written share or a status that does not match the shares.

Tables
  meta            schema version
  setup           the custodian's ring-Pedersen setup (one row)
  clients         client id, public keys, signing status, ejected flag, operation lock
  backups         (client, method) -> backup status, whether the custodian share is self-managed
  shares          (client, kind = signing | backup, method, curve) -> share bytes
  client_backups  (client, method, curve) -> encrypted client backup share and its key record
  resumed_sessions  park ids of parked operations already resumed (``consume_park_id``)
  presignatures   (client, curve, id) -> a custodian-side precomputation for fast signing
                  (``mpc.presign``; single use: ``take_any_presignature`` deletes the row before
                  the caller sees it), tagged (``binding``) with the nonce epoch and the key it
                  was made for

The *nonce epoch* (``meta``, key ``nonce_epoch``) guards single-use state against a database
restore: ``bump_nonce_epoch`` moves it on and deletes every precomputation and parked session;
state tagged with an older epoch is never used (``python -m mpc nonce-epoch --bump``). Every
single-use take also counts in ``meta.take_counter``; with a ``RestoreGuard`` attached (a counter
file outside the database, ``mpc.restore_guard``) a restored database is detected when it is
opened, and its epoch is bumped by itself.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mpc.errors import ClientNotFound, StoreSchemaUnsupported
from mpc.restore_guard import RestoreGuard
from protocols.errors import UsageError

__all__ = ["SQLiteStore", "ClientRecord", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS setup (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secp256k1_public BLOB,
    ed25519_public BLOB,
    signing_share_status TEXT NOT NULL,
    has_wallet INTEGER NOT NULL DEFAULT 0,
    ejected INTEGER NOT NULL DEFAULT 0,
    operation TEXT,
    operation_expires REAL
);
CREATE TABLE IF NOT EXISTS backups (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    self_managed INTEGER NOT NULL,
    PRIMARY KEY (client_id, method)
);
CREATE TABLE IF NOT EXISTS shares (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    kind TEXT NOT NULL CHECK (kind IN ('signing', 'backup')),
    method TEXT NOT NULL,
    curve TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (client_id, kind, method, curve)
);
CREATE TABLE IF NOT EXISTS client_backups (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    method TEXT NOT NULL,
    curve TEXT NOT NULL,
    box BLOB NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (client_id, method, curve)
);
CREATE TABLE IF NOT EXISTS resumed_sessions (
    park_id TEXT PRIMARY KEY,
    parked_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS presignatures (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    curve TEXT NOT NULL,
    id BLOB NOT NULL,
    binding BLOB NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (client_id, curve, id)
);
"""

_CLIENT_COLUMNS = (
    "client_id, secp256k1_public, ed25519_public, signing_share_status, "
    "has_wallet, ejected, operation, operation_expires"
)


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    secp256k1_public: bytes | None
    ed25519_public: bytes | None
    signing_share_status: str
    has_wallet: bool
    ejected: bool
    operation: str | None
    operation_expires: float | None


class SQLiteStore:
    """SQLite-backed custodian store; safe to share between threads of one process."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._lock = threading.RLock()
        self._depth = 0
        self.single_use_tables: list[str] = ["presignatures", "resumed_sessions"]  # emptied by bump_nonce_epoch
        self.restore_guard: RestoreGuard | None = None
        self._init_schema()

    def _init_schema(self) -> None:
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._execute(statement)
            row = self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreSchemaUnsupported(
                    f"store schema version {row[0]} is newer than this engine's ({SCHEMA_VERSION})"
                )

    def _begin(self) -> None:
        """Open the outermost transaction (SQLite: BEGIN IMMEDIATE serialises writers)."""
        self._conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work (nested uses join the outer transaction)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._begin()
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, args)

    # --- setup --------------------------------------------------------------------------------
    def load_setup(self) -> bytes | None:
        row = self._execute("SELECT data FROM setup WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def save_setup(self, data: bytes) -> None:
        self._execute("INSERT OR REPLACE INTO setup VALUES (1, ?)", (data,))

    # --- clients ------------------------------------------------------------------------------
    def create_client(self, client_id: str, signing_status: str) -> None:
        self._execute("INSERT INTO clients (client_id, signing_share_status) VALUES (?, ?)", (client_id, signing_status))

    def client(self, client_id: str) -> ClientRecord:
        row = self._execute(f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if row is None:
            raise ClientNotFound("no such client")
        return ClientRecord(row[0], _blob(row[1]), _blob(row[2]), row[3], bool(row[4]), bool(row[5]), row[6], row[7])

    def update_client(self, client_id: str, **fields: Any) -> None:
        allowed = set(_CLIENT_COLUMNS.replace(" ", "").split(",")) - {"client_id"}
        if not fields or not set(fields) <= allowed:
            raise UsageError("unknown client fields")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        cursor = self._execute(f"UPDATE clients SET {assignments} WHERE client_id = ?", (*fields.values(), client_id))
        if cursor.rowcount != 1:
            raise ClientNotFound("no such client")

    # --- shares -------------------------------------------------------------------------------
    def put_share(self, client_id: str, kind: str, method: str, curve: str, data: bytes) -> None:
        self._execute("INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?, ?)", (client_id, kind, method, curve, data))

    def get_share(self, client_id: str, kind: str, method: str, curve: str) -> bytes | None:
        row = self._execute(
            "SELECT data FROM shares WHERE client_id = ? AND kind = ? AND method = ? AND curve = ?",
            (client_id, kind, method, curve),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def delete_shares(self, client_id: str, kind: str, method: str) -> None:
        self._execute("DELETE FROM shares WHERE client_id = ? AND kind = ? AND method = ?", (client_id, kind, method))

    # --- backups (one per client and method) ----------------------------------------------------
    def set_backup(self, client_id: str, method: str, status: str, self_managed: bool) -> None:
        self._execute("INSERT OR REPLACE INTO backups VALUES (?, ?, ?, ?)", (client_id, method, status, int(self_managed)))

    def backups(self, client_id: str) -> dict[str, tuple[str, bool]]:
        """method -> (status, self_managed)."""
        rows = self._execute(
            "SELECT method, status, self_managed FROM backups WHERE client_id = ? ORDER BY method", (client_id,)
        ).fetchall()
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    # --- encrypted client backups ---------------------------------------------------------------
    def put_client_backup(self, client_id: str, method: str, curve: str, box: bytes, record: bytes) -> None:
        self._execute("INSERT OR REPLACE INTO client_backups VALUES (?, ?, ?, ?, ?)", (client_id, method, curve, box, record))

    def get_client_backup(self, client_id: str, method: str, curve: str) -> tuple[bytes, bytes] | None:
        row = self._execute(
            "SELECT box, record FROM client_backups WHERE client_id = ? AND method = ? AND curve = ?",
            (client_id, method, curve),
        ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    # --- presignatures (single use) -------------------------------------------------------------
    def put_presignatures(self, client_id: str, curve: str, binding: bytes, items: list[tuple[bytes, bytes]]) -> None:
        """Add (id, data) rows; rows of this curve made for another share (``binding``) go."""
        with self.transaction():
            self._execute("DELETE FROM presignatures WHERE client_id = ? AND curve = ? AND binding != ?",
                          (client_id, curve, binding))
            for presignature_id, data in items:
                self._execute("INSERT INTO presignatures VALUES (?, ?, ?, ?, ?)",
                              (client_id, curve, presignature_id, binding, data))

    def take_any_presignature(self, client_id: str, curve: str, binding: bytes) -> bytes | None:
        """Delete one row with this ``binding`` and return its data (None if there is none).

        One statement (``DELETE … RETURNING``): two takers never get the same row.
        """
        with self.taking() as took:
            row = self._execute(
                "DELETE FROM presignatures WHERE client_id = ? AND curve = ? AND id = (SELECT id FROM presignatures "
                "WHERE client_id = ? AND curve = ? AND binding = ? LIMIT 1) AND binding = ? RETURNING data",
                (client_id, curve, client_id, curve, binding, binding),
            ).fetchone()
            took(row is not None)
        return None if row is None else bytes(row[0])

    # --- single-use takes and the restore guard (``mpc.restore_guard``) -----------------------
    def take_counter(self) -> int:
        """How many single-use takes this database has made (it goes back with a restore)."""
        row = self._execute("SELECT value FROM meta WHERE key = 'take_counter'").fetchone()
        return 0 if row is None else int(row[0])

    def _set_take_counter(self, value: int) -> None:
        self._execute("DELETE FROM meta WHERE key = 'take_counter'")
        self._execute("INSERT INTO meta VALUES ('take_counter', ?)", (str(value),))

    @contextmanager
    def taking(self) -> Iterator[Callable[[bool], None]]:
        """A transaction for one single-use take: call the yielded function with whether
        something was taken; the count rises in the same transaction and, once it committed,
        the restore guard (if any) records it before the caller uses what it took."""
        counted: list[int] = []
        with self.transaction():
            def took(taken: bool) -> None:
                if taken:
                    counted.append(self.take_counter() + 1)
                    self._set_take_counter(counted[-1])
            yield took
        if counted and self.restore_guard is not None:  # (inside an outer transaction: early, never late)
            self.restore_guard.record(counted[-1])

    def attach_restore_guard(self, guard: RestoreGuard) -> bool:
        """Use ``guard`` from now on; if this database is behind it (restored), bump the nonce
        epoch and catch the counter up first. Returns whether a restore was detected."""
        with self.transaction():
            behind = guard.is_behind(self.take_counter())
            if behind:
                self.bump_nonce_epoch()
                self._set_take_counter(guard.read())
        self.restore_guard = guard
        guard.record(self.take_counter())
        return behind

    def consume_park_id(self, park_id: str, parked_at: float, purge_before: float) -> bool:
        """Record that a parked operation was resumed; False if it was already (single use).
        Tombstones of blobs parked before ``purge_before`` go (such blobs are refused anyway)."""
        with self.taking() as took:
            self._execute("DELETE FROM resumed_sessions WHERE parked_at < ?", (purge_before,))
            if self._execute("SELECT 1 FROM resumed_sessions WHERE park_id = ?", (park_id,)).fetchone():
                return False
            self._execute("INSERT INTO resumed_sessions VALUES (?, ?)", (park_id, parked_at))
            took(True)
        return True

    # --- nonce epoch (single-use state across database restores) -------------------------------
    def nonce_epoch(self) -> int:
        """The current nonce epoch (1 in a new store)."""
        row = self._execute("SELECT value FROM meta WHERE key = 'nonce_epoch'").fetchone()
        return 1 if row is None else int(row[0])

    def bump_nonce_epoch(self) -> int:
        """Move to a new epoch and empty every table of single-use rows (``single_use_tables``:
        the precomputations, and the service's parked sessions). Run it after a restore."""
        with self.transaction():
            epoch = self.nonce_epoch() + 1
            self._execute("DELETE FROM meta WHERE key = 'nonce_epoch'")
            self._execute("INSERT INTO meta VALUES ('nonce_epoch', ?)", (str(epoch),))
            for table in self.single_use_tables:
                self._execute(f"DELETE FROM {table}")
        return epoch

    def count_presignatures(self, client_id: str) -> dict[str, int]:
        """How many presignatures are stored per curve."""
        rows = self._execute("SELECT curve, COUNT(*) FROM presignatures WHERE client_id = ? GROUP BY curve",
                             (client_id,)).fetchall()
        counts = {"secp256k1": 0, "ed25519": 0}
        counts.update({curve: n for curve, n in rows})
        return counts

    def close(self) -> None:
        self._conn.close()


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)
