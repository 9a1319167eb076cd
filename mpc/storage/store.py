"""The custodian's storage: clients, share statuses, shares, encrypted client backups, setup.

``SQLiteStore(path, sealer=...)`` (``":memory:"`` for tests) creates its schema on first use and
refuses a database written by a newer schema (``StoreSchemaUnsupported``). Every state change
of an operation happens in one transaction (``with store.transaction():``), so a crash never
leaves a half-written share or a status that does not match the shares. A new database file is
created mode 0600 whatever the umask (SQLite gives its -journal / -wal files the same mode),
and SQLite runs with ``secure_delete``: deleted or replaced values are zeroed in the file. A
commit is durable once it returns (``synchronous = FULL`` with the ``TRUNCATE`` rollback
journal, whose truncation is synced; ``_make_commits_durable``).

**Secrets at rest** (``mpc.storage.sealing``): with a ``Sealer`` every secret value is sealed when
written and opened when read, bound to its row (``SEALED_COLUMNS``: the shares, the
ring-Pedersen setup with its Paillier/RSA trapdoor, the nonce key, the encrypted client backups
and their key records, the HD derivation key shares and accounts (``hd``), and
``mpc.service.store``'s parked sessions). ``meta`` records
that the store is sealed (``sealing``) and the key ids in use (``sealing_key_ids``): a sealed
store opened without a key raises ``StoreKeyMissing``, with a key it was not sealed with
``StoreKeyInvalid``; a key given to a store that still holds plaintext secrets raises
``StoreNotSealed``. ``rotate_key`` re-seals everything under a new key (or seals a plaintext
store) in one transaction (``python -m mpc store-key rotate``; ``docs/operations.md``). With
no sealer (``mpc.storage.backends.open_store`` allows that only for ``:memory:`` or when plaintext is
explicitly allowed) values are stored as they are.

Tables (sealed columns marked ``*``)::

  meta            schema version, nonce epoch, take counter, sealing format and key ids
  setup           the custodian's ring-Pedersen setup* (one row)
  nonce_key       the custodian's nonce key* (one row; ``nonce_key``): the key of the PRF every
                  single-use secret of an operation is derived from (docs/threat-model.md)
  clients         client id, public keys, signing status, ejected flag, operation lock (the
                  operation, its lease's expiry and its holder: the session id holding it)
  backups         (client, method) -> backup status, whether the custodian share is self-managed
  shares          (client, kind = signing | backup, method, curve) -> share bytes*
  client_backups  (client, method, curve) -> encrypted client backup share* and its key record*
  resumed_sessions  park ids of parked operations already resumed (``consume_park_id``)
  presignatures   unused: precomputations of an older version, deleted when the store opens
                  (they live in the custodian's memory now, ``mpc.presign``)

Safety against a restored database holds by construction (docs/threat-model.md, "Rollback"):
nothing stored lets a resumed session combine an old secret with a new peer input. As defence
in depth, the *nonce epoch* (``meta``, key ``nonce_epoch``) still kills parked state of a
restored copy: ``bump_nonce_epoch`` moves it on and deletes every parked session; state tagged
with an older epoch is never used (``python -m mpc nonce-epoch --bump``). Every single-use take
also counts in ``meta.take_counter``; with a ``RestoreGuard`` attached (a counter file outside
the database, ``mpc.storage.restore_guard``) a restored database is detected, and its epoch
bumped by itself, when the guard is attached, at the start of every single-use take (in the
take's transaction), at the first statement after a reconnect (PostgreSQL: a new pooled
connection), and whenever ``check_restore_guard`` is called (``mpc.storage.single_use``).

**Locks.** SQLite serialises every writer (``BEGIN IMMEDIATE``). Where transactions run
concurrently (``mpc.storage.backends.PostgresStore``) a check-then-write step locks what it reads
before reading it: ``lock_client`` (the client's row) for one client's state, ``_lock_key`` (an
advisory lock per name) for the take counter and each ``meta`` key; on SQLite both do nothing
(docs/operations.md, "PostgreSQL: connections and locking").
"""

from __future__ import annotations

import functools

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from mpc.storage._files import create_private_file
from mpc.errors import (
    ClientNotFound,
    InputInvalid,
    StoreKeyInvalid,
    StoreKeyMissing,
    StoreNotSealed,
    StoreSchemaUnsupported,
    StateInvalid,
)
from mpc.storage.ledger import LedgerReport, RevocationLedger, note_seen, reconcile
from mpc.storage.single_use import SingleUseState
from mpc.storage.sealing import KEY_FILE_ENV, SEALING_FORMAT, Sealer, looks_sealed, row_aad
from protocols.errors import UsageError

__all__ = ["SQLiteStore", "ClientRecord", "SCHEMA_VERSION", "SEALED_COLUMNS", "NONCE_KEY_LENGTH"]

NONCE_KEY_LENGTH = 32


SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS setup (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nonce_key (id INTEGER PRIMARY KEY CHECK (id = 1), data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secp256k1_public BLOB,
    ed25519_public BLOB,
    signing_share_status TEXT NOT NULL,
    has_wallet INTEGER NOT NULL DEFAULT 0,
    ejected INTEGER NOT NULL DEFAULT 0,
    operation TEXT,
    operation_expires REAL,
    operation_session TEXT
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
CREATE TABLE IF NOT EXISTS hd (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    curve TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (client_id, curve, name)
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

# table -> (the columns naming a row, bound into its seal; the sealed columns). parked_sessions
# belongs to mpc.service.store; a table that does not exist (yet) is skipped.
SEALED_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "setup": (("id",), ("data",)),
    "nonce_key": (("id",), ("data",)),
    "shares": (("client_id", "kind", "method", "curve"), ("data",)),
    "client_backups": (("client_id", "method", "curve"), ("box", "record")),
    "presignatures": (("client_id", "curve", "id", "binding"), ("data",)),
    "hd": (("client_id", "curve", "name"), ("data",)),
    "parked_sessions": (("session_id", "client_id", "operation"), ("data", "outbox")),
}

_CLIENT_COLUMNS = (
    "client_id, secp256k1_public, ed25519_public, signing_share_status, "
    "has_wallet, ejected, operation, operation_expires, operation_session"
)

# ``signing_row``'s answers kept while the database is unchanged (opened shares: as many as
# ``mpc.wallet``'s cache of validated shares; all dropped at the first change of the database).
SIGNING_ROWS_KEPT = 32

# Whole statements made once: the driver's statement cache is keyed by the text, and a text built
# per call is hashed again per call. The signing share's kind and method are constants of the
# statement, not parameters (two bindings fewer per sign: ~0.3 µs of the ~2.9 µs statement, warm).
_SIGNING_ROW_SQL = ("SELECT c.has_wallet, c.signing_share_status, s.data FROM clients c LEFT JOIN shares s "
                    "ON s.client_id = c.client_id AND s.kind = 'signing' AND s.method = '' AND s.curve = ? "
                    "WHERE c.client_id = ?")


@dataclass(frozen=True)
class ClientRecord:
    """One row of ``clients``: public keys, signing status, flags and the operation lock's lease."""

    client_id: str
    secp256k1_public: bytes | None
    ed25519_public: bytes | None
    signing_share_status: str
    has_wallet: bool
    ejected: bool
    operation: str | None
    operation_expires: float | None
    operation_session: str | None = None  # the lock's holder (the session id of the operation holding it)


def _make_commits_durable(conn: sqlite3.Connection) -> None:
    """A commit that has returned survives a power loss (docs/operations.md, Durable commits).

    SQLite's default rollback journal (``DELETE``) commits by unlinking the journal, and with
    ``synchronous = FULL`` nothing syncs that unlink: a power loss right after a commit can leave
    the journal in place, hot, and the next open rolls the transaction back (SQLite's ``EXTRA``
    level exists for that). ``TRUNCATE`` commits by truncating the journal and, at ``FULL``, syncs
    the truncation before the commit returns, for the same CPU per commit (measured: benchmarks/
    README.md, round seven; ``EXTRA``'s directory sync costs more). Set per connection
    (a rollback journal mode is not stored in the file). A database an operator put in WAL mode
    is left in it (``journal_mode`` persists for WAL; docs/operations.md says what WAL trades)."""
    conn.execute("PRAGMA synchronous = FULL")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete":
        conn.execute("PRAGMA journal_mode = TRUNCATE")


class SQLiteStore(SingleUseState):
    """SQLite-backed custodian store; safe to share between threads of one process.

    ``sealer``: seal secret values at rest (``mpc.storage.sealing``; see the module docstring)."""

    def __init__(self, path: str = ":memory:", *, sealer: Sealer | None = None) -> None:
        if not isinstance(path, str):
            raise InputInvalid("SQLiteStore takes the database's path as a str (':memory:' for a store in memory)")
        self.path = path
        self.sealer = sealer
        if path not in ("", ":memory:") and not path.startswith("file:"):
            create_private_file(path, exclusive=False)  # 0600 before SQLite creates it with the umask's mode
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed: no stale secrets in the file
        _make_commits_durable(self._conn)
        self._lock = threading.RLock()
        self._depth = 0
        self._signing_rows: dict[tuple[str, str], tuple[bool, str, bytes | None]] = {}  # ``signing_row``
        self._signing_rows_version: tuple[int, int, int] | None = None  # the version they were read at
        self.single_use_tables: list[str] = ["presignatures", "resumed_sessions"]  # emptied by bump_nonce_epoch
        self._init_guard_state()
        self.ledger: RevocationLedger | None = None  # ``attach_ledger`` (mpc.storage.ledger)
        self.ledger_report: LedgerReport | None = None
        self._init_schema()

    def _init_schema(self) -> None:
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._execute(statement)
            self._add_lock_holder_column()
            # Precomputations are kept in memory only now (``mpc.presign``): rows an older version
            # stored (and a restore could bring back) are never used.
            self._execute("DELETE FROM presignatures")
            row = self._execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self._execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise StoreSchemaUnsupported(
                    f"store schema version {row[0]} is newer than this engine's ({SCHEMA_VERSION})"
                )
            self._init_sealing()

    def _add_lock_holder_column(self) -> None:
        """A database made before the operation lock named its holder gets the column
        (``clients.operation_session``: the session id of the operation holding the lock)."""
        columns = [column[0] for column in self._execute("SELECT * FROM clients LIMIT 0").description]
        if "operation_session" not in columns:
            self._execute("ALTER TABLE clients ADD COLUMN operation_session TEXT")

    def _begin(self) -> None:
        """Open the outermost transaction (SQLite: BEGIN IMMEDIATE serialises writers)."""
        self._conn.execute("BEGIN IMMEDIATE")

    def _serialised(self) -> AbstractContextManager[Any]:
        """What a transaction holds in this process: SQLite's one connection is shared by the
        threads, so its lock (``PostgresStore``: nothing, each thread has its own connection)."""
        return self._lock

    # --- locks (docs/operations.md, "PostgreSQL: connections and locking"): SQLite's BEGIN
    # IMMEDIATE already serialises every writer; they matter where transactions run concurrently.
    def lock_client(self, client_id: str) -> None:
        """Inside a transaction: serialise it with every other transaction that locks the same
        client or updates its row (its operation lock, its counters); other clients go on.
        Nothing to do on SQLite (``BEGIN IMMEDIATE``); ``PostgresStore`` locks the row."""
        self._require_transaction()

    def _lock_key(self, name: str) -> None:
        """Inside a transaction: serialise it with every other that locks ``name`` (a ``meta``
        key, the take counter). Nothing to do on SQLite; ``PostgresStore`` takes an advisory lock."""
        self._require_transaction()

    def _require_transaction(self) -> None:
        """A lock outside a transaction would be released at once: a caller's mistake."""
        if self._depth == 0:
            raise UsageError("a store lock must be taken inside a transaction")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work (nested uses join the outer transaction)."""
        with self._serialised():
            outer = self._depth == 0
            if outer:
                self._begin()
                self._memo = {}
            self._depth += 1
            try:
                if outer and self._guard_due:  # a reconnect happened (in ``_begin`` too): compare first
                    self._reconcile()
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._guard_pending = None
                    self._rollback()
                raise
            self._depth -= 1
            if outer:
                self._commit_and_record()

    def _commit_and_record(self) -> None:
        """Commit, then let the guard record the count this transaction reached; a commit that
        fails records nothing (its takes may not have happened: the guard never runs ahead)."""
        try:
            self._commit()
        except BaseException:
            self._guard_pending = None
            raise
        self._record_pending()

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            self._recheck_if_due()
            return self._conn.execute(sql, args)

    # --- sealing (``mpc.storage.sealing``) ------------------------------------------------------------
    def _init_sealing(self) -> None:
        """Check the key against what ``meta`` records (in the schema's transaction): a sealed
        store needs a key holding every key id in use; a key marks a store without secrets sealed."""
        sealed = self._meta("sealing") is not None
        recorded: list[str] = json.loads(self._meta("sealing_key_ids") or "[]")
        if sealed and self.sealer is None:
            raise StoreKeyMissing(f"this store is sealed (its secrets are encrypted at rest): configure its key "
                                  f"(${KEY_FILE_ENV}, serve --store-key-file; docs/operations.md)")
        if self.sealer is None:
            return
        if sealed:
            unknown = [key_id for key_id in recorded if key_id not in self.sealer.key_ids]
            if unknown:
                raise StoreKeyInvalid(f"this store is sealed under key id(s) {', '.join(unknown)}, which the "
                                      f"configured key(s) ({', '.join(self.sealer.key_ids)}) do not include")
        elif self._holds_secrets():
            raise StoreNotSealed("this store holds plaintext secrets: stop the service and seal them once with "
                                 "python -m mpc store-key rotate --new-key-file FILE (docs/operations.md)")
        else:
            self._set_meta("sealing", SEALING_FORMAT)
        if self.sealer.current.key_id not in recorded:
            self._set_meta("sealing_key_ids", json.dumps(sorted({*recorded, self.sealer.current.key_id})))

    @property
    def sealed(self) -> bool:
        """Whether this store seals its secrets (it was opened with a key)."""
        return self.sealer is not None

    def sealing_key_ids(self) -> list[str]:
        """The key ids ``meta`` records as in use (empty for a plaintext store)."""
        return list(json.loads(self._meta("sealing_key_ids") or "[]"))

    def _seal(self, data: bytes, table: str, column: str, *key: str | bytes | int) -> bytes:
        """``data`` sealed for this row (as it is without a sealer)."""
        if self.sealer is None:
            return bytes(data)
        return self.sealer.seal(bytes(data), row_aad(table, column, *key))

    def _unseal(self, blob: Any, table: str, column: str, *key: str | bytes | int) -> bytes:
        """The plaintext of a stored value of this row; a sealed value without a key is refused."""
        data = bytes(blob)
        if self.sealer is None:
            if looks_sealed(data):
                raise StoreKeyMissing("a sealed value was met but this store has no key configured")
            return data
        return self.sealer.open(data, row_aad(table, column, *key))

    def rotate_key(self, new: Sealer) -> int:
        """Re-seal every secret value under ``new``'s current key (a plaintext store: seal it),
        all in one transaction; afterwards only that key is needed. Returns how many values.

        Values are opened with this store's sealer (the old key or keys), so open the store with
        them first. Every row is read into memory at once."""
        count = 0
        with self.transaction():
            for table, (key_columns, secret_columns) in SEALED_COLUMNS.items():
                if self._has_table(table):
                    count += self._reseal_table(table, key_columns, secret_columns, new)
            self._set_meta("sealing", SEALING_FORMAT)
            self._set_meta("sealing_key_ids", json.dumps([new.current.key_id]))
        self.sealer = new
        return count

    def _reseal_table(self, table: str, key_columns: tuple[str, ...], secret_columns: tuple[str, ...],
                      new: Sealer) -> int:
        rows = self._execute(f"SELECT {', '.join(key_columns + secret_columns)} FROM {table}").fetchall()
        assignments = ", ".join(f"{column} = ?" for column in secret_columns)
        where = " AND ".join(f"{column} = ?" for column in key_columns)
        for row in rows:
            key = tuple(_key_part(value) for value in row[: len(key_columns)])
            values = [new.seal(self._unseal(blob, table, column, *key), row_aad(table, column, *key))
                      for column, blob in zip(secret_columns, row[len(key_columns):])]
            self._execute(f"UPDATE {table} SET {assignments} WHERE {where}", (*values, *key))
        return len(rows) * len(secret_columns)

    def _holds_secrets(self) -> bool:
        return any(self._has_table(table) and self._execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                   for table in SEALED_COLUMNS)

    def _has_table(self, table: str) -> bool:
        return self._execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() \
            is not None

    def _meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        """Replace the ``meta`` row ``key`` (under that key's lock: a caller that read it first
        takes the lock before its read, ``_lock_key("meta:" + key)``)."""
        self._lock_key("meta:" + key)
        self._execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- setup --------------------------------------------------------------------------------
    def load_setup(self) -> bytes | None:
        """The stored custodian setup (``CustodianSetup.to_bytes``), or None."""
        row = self._execute("SELECT data FROM setup WHERE id = 1").fetchone()
        return None if row is None else self._unseal(row[0], "setup", "data", 1)

    def save_setup(self, data: bytes) -> None:
        """Store the custodian setup (sealed)."""
        self._execute("INSERT OR REPLACE INTO setup VALUES (1, ?)", (self._seal(data, "setup", "data", 1),))

    # --- the custodian's nonce key (docs/threat-model.md, "Rollback") ---------------------------
    def nonce_key(self) -> bytes:
        """The custodian's long-lived nonce key: 32 random bytes made at first use, sealed like
        the setup. Every single-use secret of an operation is derived from it and the
        operation's transcript (``mpc.operation``); a restore brings back the same key, so a
        replay reproduces the same replies. Never part of a parked state."""
        with self.transaction():
            self._lock_key("nonce_key")  # two first uses at once: one key
            row = self._execute("SELECT data FROM nonce_key WHERE id = 1").fetchone()
            if row is None:
                key = secrets.token_bytes(NONCE_KEY_LENGTH)
                self._execute("INSERT INTO nonce_key VALUES (1, ?)", (self._seal(key, "nonce_key", "data", 1),))
                return key
        key = self._unseal(row[0], "nonce_key", "data", 1)
        if len(key) != NONCE_KEY_LENGTH:
            raise StateInvalid("the stored nonce key is damaged")
        return key

    # --- clients ------------------------------------------------------------------------------
    def create_client(self, client_id: str, signing_status: str) -> None:
        """Add a client row with its signing share status."""
        self._execute("INSERT INTO clients (client_id, signing_share_status) VALUES (?, ?)", (client_id, signing_status))

    def client(self, client_id: str) -> ClientRecord:
        """The client's row; ``ClientNotFound`` if there is none."""
        row = self._execute(f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        return _client_record(row)

    def signing_row(self, client_id: str, curve: str) -> tuple[bool, str, bytes | None]:
        """What the custodian's sign checks and signs with, in one read: whether the client has a
        wallet, its signing share status and its signing share on ``curve`` (opened; None if
        there is none); ``ClientNotFound``. Only these columns: each is a Python object made per
        read.

        The answer is exact at every call. Outside a transaction an answer read before is given
        again while the database provably has not changed since (``_database_version``); at the
        first change every answer kept is dropped, and the row is read."""
        with self._lock:
            version = self._database_version()
            if version is None:
                return self._read_signing_row(client_id, curve)
            if version != self._signing_rows_version:
                self._signing_rows.clear()
                self._signing_rows_version = version
            key = (client_id, curve)
            answer = self._signing_rows.get(key)
            if answer is None:
                answer = self._read_signing_row(client_id, curve)
                if len(self._signing_rows) >= SIGNING_ROWS_KEPT:
                    self._signing_rows.pop(next(iter(self._signing_rows)))
                self._signing_rows[key] = answer
            return answer

    def _read_signing_row(self, client_id: str, curve: str) -> tuple[bool, str, bytes | None]:
        row = self._execute(_SIGNING_ROW_SQL, (curve, client_id)).fetchone()
        if row is None:
            raise ClientNotFound("no such client")
        data = row[2]
        return bool(row[0]), row[1], None if data is None else self._unseal(data, "shares", "data", client_id,
                                                                          "signing", "", curve)

    def _database_version(self) -> tuple[int, int, int] | None:
        """A value that differs whenever the database this connection reads may have changed since
        it was last taken; None inside a transaction (its own uncommitted writes may roll back).

        SQLite's ``data_version`` changes once another connection (any process) has committed to
        the file, and reading it starts a read transaction, which also notices a file changed
        underneath (its change counter); it never changes for this connection's own writes.
        ``total_changes`` counts those (every row a statement inserts, updates or deletes, also in
        a transaction that rolled back, so it never returns to an old value), and the schema
        cookie the rest: a backup or schema change made through this connection. Two pragma
        statements (~1 µs each warm; one SELECT of both table-valued pragmas costs ~5). Read
        before the row, so a change in between leaves the answer under the older version."""
        if self._depth or self._conn.in_transaction:
            return None
        changes = self._conn.total_changes
        data_version = self._execute("PRAGMA data_version").fetchone()[0]
        return changes, data_version, self._execute("PRAGMA schema_version").fetchone()[0]

    def update_client(self, client_id: str, **fields: Any) -> None:
        """Set columns of the client's row (``UsageError`` for an unknown one, ``ClientNotFound``)."""
        allowed = set(_CLIENT_COLUMNS.replace(" ", "").split(",")) - {"client_id"}
        if not fields or not set(fields) <= allowed:
            raise UsageError("unknown client fields")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        cursor = self._execute(f"UPDATE clients SET {assignments} WHERE client_id = ?", (*fields.values(), client_id))
        if cursor.rowcount != 1:
            raise ClientNotFound("no such client")

    def release_operation(self, client_id: str, holder: str | None = None) -> bool:
        """Clear the client's operation lock; with ``holder``, only if that session holds it (or
        the lock names no holder: one taken before holders were recorded). Whether it was cleared."""
        sql = "UPDATE clients SET operation = NULL, operation_expires = NULL, operation_session = NULL WHERE client_id = ?"
        if holder is None:
            return self._execute(sql, (client_id,)).rowcount == 1
        return self._execute(sql + " AND (operation_session = ? OR operation_session IS NULL)",
                             (client_id, holder)).rowcount == 1

    # --- shares -------------------------------------------------------------------------------
    def put_share(self, client_id: str, kind: str, method: str, curve: str, data: bytes) -> None:
        """Store (or replace) a share, sealed and bound to its row."""
        sealed = self._seal(data, "shares", "data", client_id, kind, method, curve)
        self._execute("INSERT OR REPLACE INTO shares VALUES (?, ?, ?, ?, ?)", (client_id, kind, method, curve, sealed))

    def get_share(self, client_id: str, kind: str, method: str, curve: str) -> bytes | None:
        """A stored share, opened, or None."""
        row = self._execute(
            "SELECT data FROM shares WHERE client_id = ? AND kind = ? AND method = ? AND curve = ?",
            (client_id, kind, method, curve),
        ).fetchone()
        return None if row is None else self._unseal(row[0], "shares", "data", client_id, kind, method, curve)

    def delete_shares(self, client_id: str, kind: str, method: str) -> None:
        """Delete the client's shares of ``kind`` and ``method`` on every curve."""
        self._execute("DELETE FROM shares WHERE client_id = ? AND kind = ? AND method = ?", (client_id, kind, method))

    # --- HD derivation (docs/hd.md): the derivation key share ("key") and accounts ("account:<path>")
    def put_hd(self, client_id: str, curve: str, name: str, data: bytes) -> None:
        """Store (or replace) an HD record of the client on ``curve``, sealed and bound to its row."""
        sealed = self._seal(data, "hd", "data", client_id, curve, name)
        self._execute("INSERT OR REPLACE INTO hd VALUES (?, ?, ?, ?)", (client_id, curve, name, sealed))

    def get_hd(self, client_id: str, curve: str, name: str) -> bytes | None:
        """An HD record, opened, or None."""
        row = self._execute("SELECT data FROM hd WHERE client_id = ? AND curve = ? AND name = ?",
                            (client_id, curve, name)).fetchone()
        return None if row is None else self._unseal(row[0], "hd", "data", client_id, curve, name)

    def hd_names(self, client_id: str, curve: str) -> list[str]:
        """The names of the client's HD records on ``curve``, sorted."""
        rows = self._execute("SELECT name FROM hd WHERE client_id = ? AND curve = ? ORDER BY name",
                             (client_id, curve)).fetchall()
        return [str(row[0]) for row in rows]

    def delete_hd(self, client_id: str) -> None:
        """Forget every HD record of the client (a new wallet: generate replaced the keys)."""
        self._execute("DELETE FROM hd WHERE client_id = ?", (client_id,))

    # --- backups (one per client and method) ----------------------------------------------------
    def set_backup(self, client_id: str, method: str, status: str, self_managed: bool) -> None:
        """Record the backup status of ``method`` and whether the customer keeps the custodian share."""
        self._execute("INSERT OR REPLACE INTO backups VALUES (?, ?, ?, ?)", (client_id, method, status, int(self_managed)))

    def backups(self, client_id: str) -> dict[str, tuple[str, bool]]:
        """method -> (status, self_managed)."""
        rows = self._execute(
            "SELECT method, status, self_managed FROM backups WHERE client_id = ? ORDER BY method", (client_id,)
        ).fetchall()
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    # --- encrypted client backups ---------------------------------------------------------------
    def put_client_backup(self, client_id: str, method: str, curve: str, box: bytes, record: bytes) -> None:
        """Store the encrypted client backup share and its key record, both sealed."""
        key = (client_id, method, curve)
        self._execute("INSERT OR REPLACE INTO client_backups VALUES (?, ?, ?, ?, ?)",
                      (*key, self._seal(box, "client_backups", "box", *key),
                       self._seal(record, "client_backups", "record", *key)))

    def get_client_backup(self, client_id: str, method: str, curve: str) -> tuple[bytes, bytes] | None:
        """The encrypted client backup share and its key record, or None."""
        row = self._execute(
            "SELECT box, record FROM client_backups WHERE client_id = ? AND method = ? AND curve = ?",
            (client_id, method, curve),
        ).fetchone()
        if row is None:
            return None
        key = (client_id, method, curve)
        return (self._unseal(row[0], "client_backups", "box", *key),
                self._unseal(row[1], "client_backups", "record", *key))

    def attach_ledger(self, ledger: RevocationLedger) -> LedgerReport:
        """Use the revocation ledger ``ledger`` from now on (``mpc.storage.ledger``): first re-apply
        every revocation and count it holds (``reconcile``: after a restore, what the restored
        copy forgot), then keep ``meta.ledger_seen`` at its length after each append. A ledger
        shorter than what this store has seen raises ``LedgerCorrupted``."""
        report = reconcile(self, ledger)
        ledger.observers.append(functools.partial(note_seen, self))
        self.ledger, self.ledger_report = ledger, report
        return report

    def close(self) -> None:
        """Close the database connection."""
        self._signing_rows.clear()
        self._signing_rows_version = None
        self._conn.close()


def _client_record(row: Any) -> ClientRecord:
    """A ``ClientRecord`` from the first columns of a row (``_CLIENT_COLUMNS``); None: ``ClientNotFound``."""
    if row is None:
        raise ClientNotFound("no such client")
    return ClientRecord(row[0], _blob(row[1]), _blob(row[2]), row[3], bool(row[4]), bool(row[5]), row[6], row[7], row[8])


def _blob(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _key_part(value: Any) -> str | bytes | int:
    """A key column's value as ``row_aad`` takes it (BLOB / BYTEA values as bytes)."""
    return bytes(value) if isinstance(value, (bytes, bytearray, memoryview)) else value
