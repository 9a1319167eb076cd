"""Store backends by URL: SQLite by default, PostgreSQL through psycopg 3 (``postgres`` extra).

``open_store(url, *, sealer=None, allow_plaintext=False)``:
  ``:memory:``, a file path or ``sqlite:///path``   → ``mpc.storage.store.SQLiteStore``
  ``postgresql://user@host:port/db``                → :class:`PostgresStore` (the password from
  PostgreSQL's own ``PGPASSWORD`` / ``PGPASSFILE``, or in the URL when it comes from
  ``$PORTAL_MPC_DB``, never from a command line)
  (optionally ``?schema=NAME``: its tables live in that schema, created if needed; tests use a
  fresh schema each)

The store's secrets are sealed at rest (``mpc.storage.sealing``): with no ``sealer`` the key comes from
the environment (``PORTAL_MPC_STORE_KEY_FILE`` / ``PORTAL_MPC_STORE_KEY``, with
``PORTAL_MPC_STORE_OLD_KEY_FILES`` during a rotation). A file or PostgreSQL store with no key
at all is refused (``StoreKeyMissing``, saying how to configure one) unless plaintext is
explicitly allowed: ``allow_plaintext=True`` or ``PORTAL_MPC_STORE_PLAINTEXT=1``, for tests
only; ``:memory:`` needs no key. ``rotate_store_key`` moves a store to a new key (or seals a
plaintext one): ``python -m mpc store-key rotate``.

One implementation of the queries serves both: ``SQLiteStore``'s methods (and
``mpc.service.store``'s) are written once with ``?`` placeholders in SQL both databases speak
(``DELETE … RETURNING``, ``COUNT``, ``INSERT … VALUES``). :class:`PostgresStore` adapts each
statement at one place, ``_execute``: ``?`` becomes ``%s``; ``INSERT OR REPLACE INTO t`` becomes
``INSERT INTO t … ON CONFLICT (primary key) DO UPDATE SET …`` (the key and columns learnt from
the ``CREATE TABLE`` statements it ran); ``BLOB`` becomes ``BYTEA`` and ``REAL`` ``DOUBLE
PRECISION``; booleans are stored as integers as in SQLite. The schema is the same tables and
columns; the schema version check is the same.

Transactions: SQLite's ``BEGIN IMMEDIATE`` serialises every writer on the database file;
PostgreSQL's ``transaction()`` takes a transaction-scoped advisory lock instead, so the
check-then-write steps of the engine (the per-client operation lock, status changes) are just
as atomic across connections and processes.

Lost PostgreSQL connections (a server restart, a failover, a killed backend) are replaced, never
papered over: see :class:`PostgresStore` (what is retried, and why only that).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from mpc.errors import InputInvalid, StoreKeyMissing, StoreNotSealed, StoreUnavailable
from mpc.storage.ledger import ENV_VAR as LEDGER_ENV, LedgerKey, open_ledger
from mpc.storage.restore_guard import ENV_VAR, RestoreGuard
from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, PLAINTEXT_ENV, KeyProvider, Sealer, plaintext_allowed
from mpc.storage.store import SQLiteStore
from mpc.storage.urls import connect_in_schema, is_postgres_url, split_schema, url_has_password

__all__ = ["open_store", "configured_sealer", "rotate_store_key", "PostgresStore", "is_postgres_url",
           "url_has_password", "DB_ENV"]

DB_ENV = "PORTAL_MPC_DB"  # the database URL for python -m mpc serve / setup / nonce-epoch / store-key

_MEMORY = (":memory:", "sqlite:///:memory:")

_ADVISORY_LOCK = 0x706F7274616C  # "portal": one lock id for every store transaction
_CREATE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*$", re.S | re.I)
_INSERT_OR_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s*(\(([^)]*)\))?\s*VALUES", re.I)
_READ_ONLY = re.compile(r"^\s*SELECT\b", re.I)
log = logging.getLogger("mpc.storage.store")


def open_store(url: str, *, sealer: Sealer | None = None, allow_plaintext: bool = False) -> SQLiteStore:
    """The store a URL names (see the module docstring), sealed with ``sealer`` or the
    environment's key, with the restore guard named by ``$PORTAL_MPC_RESTORE_GUARD`` attached if
    that is set (``mpc.storage.restore_guard``) and the revocation ledger named by
    ``$PORTAL_MPC_LEDGER`` (``mpc.storage.ledger``: reconciled before this returns)."""
    store = _open(url, configured_sealer(url, sealer, allow_plaintext=allow_plaintext))
    guard_path = os.environ.get(ENV_VAR)
    if guard_path:
        store.attach_restore_guard(RestoreGuard(guard_path))
    where = os.environ.get(LEDGER_ENV)
    if where:
        store.attach_ledger(open_ledger(where, LedgerKey.configured(store.sealer)))
    return store


def configured_sealer(url: str, sealer: Sealer | None = None, *, allow_plaintext: bool = False) -> Sealer | None:
    """The sealer for the store at ``url``: ``sealer``, else the environment's key; None (no
    sealing) only for ``:memory:`` or when plaintext is explicitly allowed, else ``StoreKeyMissing``."""
    _check_url(url)
    if sealer is None:
        sealer = Sealer.from_env()
    if sealer is None and url not in _MEMORY and not (allow_plaintext or plaintext_allowed()):
        raise StoreKeyMissing(
            f"no store key is configured, and this store would keep the custodian's shares in plaintext: "
            f"make a key with python -m mpc store-key new --out FILE (mode 0600, kept out of the database's "
            f"backups) and set ${KEY_FILE_ENV}=FILE (serve --store-key-file FILE), or ${KEY_ENV} to its "
            f"base64; {PLAINTEXT_ENV}=1 is for tests only")
    return sealer


def rotate_store_key(url: str, new: KeyProvider, old: Sequence[KeyProvider] = ()) -> int:
    """Re-seal every secret of the store at ``url`` under ``new`` in one transaction
    (``SQLiteStore.rotate_key``), reading with ``old`` (and ``new``: a second run is harmless);
    a plaintext store is sealed. Returns how many values were sealed. Run it with the service
    stopped, or with every process already reading with both keys (``docs/operations.md``)."""
    _check_url(url)
    readers = Sealer(new, *(provider for provider in old if provider.key_id != new.key_id))
    try:
        store = _open(url, readers)
    except StoreNotSealed:  # plaintext secrets: this rotation seals them
        store = _open(url, None)
    try:
        return store.rotate_key(Sealer(new))
    finally:
        store.close()


def _check_url(url: Any) -> None:
    if not isinstance(url, str) or not url:
        raise InputInvalid("the database must be a path or a URL")


def _open(url: str, sealer: Sealer | None) -> SQLiteStore:
    _check_url(url)
    if is_postgres_url(url):
        return PostgresStore(url, sealer=sealer)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///"):], sealer=sealer)
    if "://" in url:
        raise InputInvalid("unsupported database URL (use a SQLite path or postgresql://…)")
    return SQLiteStore(url, sealer=sealer)


def _table_info(statement: str) -> tuple[str, list[str], list[str]] | None:
    """(table, columns, primary key) of a CREATE TABLE statement."""
    match = _CREATE.match(statement)
    if match is None:
        return None
    table, body = match.group(1), match.group(2)
    columns: list[str] = []
    key: list[str] = []
    for line in (part.strip() for part in re.split(r",\s*(?![^()]*\))", body)):
        if line.upper().startswith("PRIMARY KEY"):
            key = [c.strip() for c in line[line.index("(") + 1 : line.rindex(")")].split(",")]
        elif line:
            name = line.split()[0]
            columns.append(name)
            if "PRIMARY KEY" in line.upper():
                key = [name]
    return table, columns, key


class PostgresStore(SQLiteStore):
    """The custodian store on PostgreSQL (psycopg 3); same tables, same methods as SQLite's.

    One connection (autocommit outside ``transaction()``), replaced when it is lost (a server
    restart, a failover, a killed backend: psycopg marks it ``broken``). What is retried on the
    new connection is only what cannot have been applied twice:

    - ``BEGIN`` (and its advisory lock): nothing of the transaction ran yet;
    - a statement outside a transaction that only reads (``SELECT``).

    Anything else fails with ``STORE_UNAVAILABLE`` (the next call reconnects): a write outside a
    transaction may have been applied before the connection died, and the body of a transaction
    cannot be run again from here (it is the caller's code; a half-run body on a dead connection
    was rolled back by the server, all or nothing). A connection lost *at* ``COMMIT`` is the one
    ambiguous case: the transaction's id (``txid_current_if_assigned()``, read before COMMIT) is
    looked up on the new connection (``txid_status``): committed, the call returns normally;
    aborted, ``STORE_UNAVAILABLE`` says nothing was written; still unknown, ``STORE_UNAVAILABLE``
    says so. A failure to reconnect is ``STORE_UNAVAILABLE`` too.
    """

    # A psycopg connection in place of SQLiteStore's sqlite3 one (psycopg is optional and imported
    # lazily, so its type cannot be named here; the inherited methods use the calls both share).
    _conn: Any

    def __init__(self, url: str, *, sealer: Sealer | None = None) -> None:  # noqa: D107 - see the class docstring
        try:
            import psycopg
        except ImportError:
            raise InputInvalid("PostgreSQL needs psycopg 3: pip install 'portal-mpc[postgres]'") from None
        self._psycopg = psycopg
        self.path = url
        self.sealer = sealer
        self._dsn, self.schema = split_schema(url)
        self._lock = threading.RLock()
        self._depth = 0
        self._tables: dict[str, tuple[list[str], list[str]]] = {}
        self.single_use_tables = ["presignatures", "resumed_sessions"]
        self._init_guard_state()
        self.ledger = None
        self.ledger_report = None
        self.reconnects = 0
        self._conn = self._connect()
        self._init_schema()

    def _connect(self) -> Any:
        """A new autocommit connection (in the URL's schema); ``STORE_UNAVAILABLE`` if it fails."""
        try:
            conn = connect_in_schema(self._psycopg, self._dsn, self.schema)
        except self._psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {reason}") from None
        return conn

    def _lost(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def _reconnect(self) -> None:
        """Replace a lost connection (the server already dropped whatever it had open). The new
        connection may reach a restored database (a point-in-time restore, a failover to a
        lagging replica): the restore guard compares before its next statement, or first thing
        in the transaction being opened (``SQLiteStore.check_restore_guard``)."""
        self._conn.close()
        self._conn = self._connect()
        self.reconnects += 1
        self._guard_due = self.restore_guard is not None
        log.warning("the PostgreSQL connection was lost: reconnected")

    def _begin(self) -> None:
        """BEGIN plus a transaction-scoped advisory lock: serialised with every store transaction.
        On a lost connection nothing ran yet: reconnect and begin once more."""
        for attempt in range(2):
            if self._lost():
                self._reconnect()
            try:
                self._conn.execute("BEGIN")
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
                return
            except self._psycopg.OperationalError:
                if not self._lost():
                    raise
                if attempt:
                    raise StoreUnavailable("the PostgreSQL connection was lost twice while opening a transaction") \
                        from None

    def _rollback(self) -> None:
        if self._lost():  # the server rolled the transaction back when the connection died
            return
        try:
            self._conn.execute("ROLLBACK")
        except self._psycopg.OperationalError:
            if not self._lost():
                raise

    def _commit(self) -> None:
        try:
            xid = self._conn.execute("SELECT txid_current_if_assigned()").fetchone()[0]
        except self._psycopg.OperationalError:
            if not self._lost():
                raise
            # Lost before COMMIT was sent: the server rolled the transaction back (issue 26: the
            # caller gets STORE_UNAVAILABLE, not an internal error); the next call reconnects.
            raise StoreUnavailable("the PostgreSQL connection was lost in a transaction; it was rolled back, "
                                   "retry") from None
        try:
            self._conn.execute("COMMIT")
            return
        except self._psycopg.OperationalError:
            if not self._lost():
                raise
        self._reconnect()
        if xid is None:  # it wrote nothing: nothing to lose (what it read stands)
            return
        status = self._conn.execute("SELECT txid_status(%s)", (xid,)).fetchone()[0]
        if status == "committed":
            log.warning("the PostgreSQL connection was lost at COMMIT; the transaction had committed")
            return
        if status == "aborted":
            raise StoreUnavailable("the PostgreSQL connection was lost at COMMIT: the transaction was rolled "
                                   "back, nothing was written; retry")
        raise StoreUnavailable("the PostgreSQL connection was lost at COMMIT and the transaction's outcome is not "
                               "known yet; check before retrying (resume an operation)")

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        values = tuple(int(a) if isinstance(a, bool) else a for a in args)
        with self._lock:
            adapted = self._adapt(sql)
            if self._depth == 0 and self._lost():
                self._reconnect()
            self._recheck_if_due()
            try:
                return self._conn.execute(adapted, values)
            except self._psycopg.OperationalError:
                if not self._lost():
                    raise
            if self._depth > 0:  # the transaction is gone with its connection: all or nothing
                raise StoreUnavailable("the PostgreSQL connection was lost in a transaction; it was rolled back, "
                                       "retry")
            self._reconnect()
            if _READ_ONLY.match(adapted):  # a read is harmless to repeat (after the guard's check)
                self._recheck_if_due()
                return self._conn.execute(adapted, values)
            raise StoreUnavailable("the PostgreSQL connection was lost during a write that may or may not have "
                                   "been applied; retry")

    def _has_table(self, table: str) -> bool:
        return self._execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                             "AND table_name = ?", (table,)).fetchone() is not None

    def _adapt(self, sql: str) -> str:
        info = _table_info(sql)
        if info is not None:
            table, columns, key = info
            self._tables[table] = (columns, key)
            sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
            sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql)
        match = _INSERT_OR_REPLACE.match(sql)
        if match is not None:
            table = match.group(1)
            if table not in self._tables:
                raise InputInvalid(f"unknown table {table}")
            columns, key = self._tables[table]
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
            conflict = f" ON CONFLICT ({', '.join(key)}) " + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
            sql = "INSERT INTO" + sql[match.start(1) - 1 :] + conflict
        return sql.replace("%", "%%").replace("?", "%s")

    def close(self) -> None:
        self._conn.close()
