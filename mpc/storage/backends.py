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

Transactions: SQLite's ``BEGIN IMMEDIATE`` serialises every writer on the database file.
PostgreSQL runs them concurrently (``READ COMMITTED``), each on its own pooled connection
(``psycopg_pool``; ``?pool_size=N`` connections per process, default
``mpc.storage.urls.DEFAULT_POOL_SIZE``), and each check-then-write step locks only what it
touches: the client's row (``SQLiteStore.lock_client``: ``SELECT … FOR NO KEY UPDATE``) for the
operation lock, the attempt counter, device enrolment, token replacement and the release of a
lost session's lock; a transaction-scoped advisory lock per name (``SQLiteStore._lock_key``:
the take counter, a ``meta`` key, the nonce key, schema changes), the name qualified by the
schema. A lock is sent just before the transaction's next statement, a client's row and the
take counter's lock in one (``PostgresStore._send_locks``: one round trip for both, the same order).
Two clients' operations never wait for each other, except that single-use takes are
serialised on the take counter (one short transaction each). The table of what protects what is
in ``docs/operations.md`` ("PostgreSQL: connections and locking").

Lost PostgreSQL connections (a server restart, a failover, a killed backend) are replaced, never
papered over: see :class:`PostgresStore` (what is retried, and why only that).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpc.errors import InputInvalid, StoreKeyMissing, StoreNotSealed, StoreUnavailable
from mpc.storage.ledger import ENV_VAR as LEDGER_ENV, LedgerKey, open_ledger
from mpc.storage.restore_guard import ENV_VAR, RestoreGuard
from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, PLAINTEXT_ENV, KeyProvider, Sealer, plaintext_allowed
from mpc.storage.store import SQLiteStore
from mpc.storage.urls import (connect_in_schema, is_postgres_url, split_pool_size, split_schema, url_has_password,
                              use_schema)

__all__ = ["open_store", "configured_sealer", "rotate_store_key", "PostgresStore", "is_postgres_url",
           "url_has_password", "DB_ENV"]

DB_ENV = "PORTAL_MPC_DB"  # the database URL for python -m mpc serve / setup / nonce-epoch / store-key

_MEMORY = (":memory:", "sqlite:///:memory:")

_POOL_WAIT = 5.0  # seconds a call waits for a pooled connection before STORE_UNAVAILABLE
_DDL = re.compile(r"^\s*(CREATE|ALTER)\s+TABLE\b", re.I)
_CREATE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*$", re.S | re.I)
_INSERT_OR_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s*(\(([^)]*)\))?\s*VALUES", re.I)
_READ_ONLY = re.compile(r"^\s*SELECT\b", re.I)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_STATEMENTS_KEPT = 1024  # statement texts kept adapted per store (``PostgresStore._statement``)
_TUPLES_OK = 2  # libpq's PGRES_TUPLES_OK: a result with rows (``_Rows``)
# The locks of ``PostgresStore._send_locks``: a client's row; an advisory lock; the row, then the
# advisory lock, in one statement (the aggregate reads the locked row in full before the lock
# function of the outer SELECT runs).
_ROW_LOCK, _KEY_LOCK = "row", "key"
_ROW_SQL = "SELECT 1 FROM clients WHERE client_id = ? FOR NO KEY UPDATE"
_KEY_SQL = "SELECT pg_advisory_xact_lock(?)"
_ROW_THEN_KEY_SQL = ("SELECT pg_advisory_xact_lock(?) FROM (SELECT COUNT(*) AS n FROM (SELECT 1 FROM clients "
                     "WHERE client_id = ? FOR NO KEY UPDATE) AS locked) AS row_locked")
_UNSENT = object()  # COMMIT was not sent (``PostgresStore._commit``)
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


def _advisory_key(schema: str | None, name: str) -> int:
    """The 64-bit advisory lock id of ``name`` in ``schema`` (advisory locks are per database:
    stores in different schemas never contend)."""
    digest = hashlib.blake2b(f"{schema or ''}\0{name}".encode("utf-8"), digest_size=8,
                             person=b"portal-mpc-lock").digest()
    return int.from_bytes(digest, "big", signed=True)


class _Rows:
    """A statement's result read in full, so that its connection can go back to the pool at
    once: what the store's callers use of a cursor (``fetchone``, ``fetchall``, ``rowcount``,
    ``description``). Made from the connection's one cursor (``PostgresStore._cursor``), which
    the next statement reuses: the rows are fetched now, the column names only if asked (from
    the result, which stays this statement's). ``hidden``: the rows are not the caller's (the
    transaction's id a write returned: ``_Statement.with_xid``)."""

    __slots__ = ("_next", "_result", "_rows", "rowcount")

    def __init__(self, cursor: Any, hidden: bool = False) -> None:
        self.rowcount: int = cursor.rowcount
        result = cursor.pgresult
        tuples = result is not None and result.status == _TUPLES_OK
        self._result = result if tuples and not hidden else None
        self._rows: list[Any] = cursor.fetchall() if tuples and not hidden else []
        self._next = 0

    @property
    def description(self) -> list[tuple[str]] | None:
        """The result's columns (their name first, as a DB-API cursor's); None for a statement
        that returns no rows."""
        result = self._result
        if result is None:
            return None
        return [(result.fname(i).decode(),) for i in range(result.nfields)]

    def fetchone(self) -> Any:
        """The next row, or None."""
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        """The rows not fetched yet."""
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows


@dataclass(frozen=True)
class _Statement:
    """A statement as ``PostgresStore`` sends it (``_adapt``), made once per text: whether it
    only reads (harmless to repeat on a new connection), whether it changes the schema, and for
    a write that returns nothing, the same write returning the transaction's id
    (``txid_current_if_assigned()``, evaluated after the row is written: the id ``_commit``
    needs for ``_settle``, read with the transaction's first write instead of in a round trip
    of its own before COMMIT)."""

    text: str
    reads: bool
    ddl: bool
    with_xid: str | None


class _ThreadState(threading.local):
    """One thread's transaction: its pooled connection (None outside one), its nesting depth,
    the take count its restore guard records after the commit, the locks it holds and those
    not sent yet, and its id once a write read it."""

    conn: Any = None
    depth: int = 0
    guard_pending: int | None = None
    held: frozenset[str] = frozenset()  # the locks this transaction holds (taken once each)
    memo: dict[str, int]  # this transaction's take count and nonce epoch (``SQLiteStore.taking``)
    pending: list[tuple[str, Any]]  # locks taken and not sent yet (``PostgresStore._send_locks``)
    xid: int | None = None  # this transaction's id, if a write returned it (``_Statement.with_xid``)

    def __init__(self) -> None:
        self.memo = {}
        self.pending = []


class PostgresStore(SQLiteStore):
    """The custodian store on PostgreSQL (psycopg 3); same tables, same methods as SQLite's.

    Connections come from a pool (``psycopg_pool.ConnectionPool``, at most ``pool_size`` per
    process: ``?pool_size=N``; opened in the process that uses it, a forked child opens its own):
    a transaction holds one for its duration only, a statement outside a transaction
    (autocommit) for that statement only, so threads run their transactions concurrently. Every
    pooled connection is in the URL's schema and named ``application_name`` (the URL's, else
    ``portal-mpc-<pid>-<random>``) in ``pg_stat_activity``.

    A lost connection (a server restart, a failover, a killed backend: psycopg marks it
    ``broken``) leaves the pool, and the pool's idle connections are checked at once (a restart
    drops them all). What is retried on a new connection is only what cannot have been applied
    twice:

    - ``BEGIN``: nothing of the transaction ran yet;
    - a statement outside a transaction that only reads (``SELECT``).

    Anything else fails with ``STORE_UNAVAILABLE``: a write outside a transaction may have been
    applied before the connection died, and the body of a transaction cannot be run again from
    here (it is the caller's code; a half-run body on a dead connection was rolled back by the
    server, all or nothing). A connection lost *at* ``COMMIT`` is the one ambiguous case: the
    transaction's id (``txid_current_if_assigned()``, returned by its first write that wrote a
    row, or read before COMMIT if none did) is looked up on another
    connection (``txid_status``): committed, the call returns normally; aborted,
    ``STORE_UNAVAILABLE`` says nothing was written; still unknown, ``STORE_UNAVAILABLE`` says so.
    No pooled connection within ``_POOL_WAIT`` seconds (the server is down, or every connection
    is busy) is ``STORE_UNAVAILABLE`` too, as is a transaction PostgreSQL rolled back as a
    deadlock victim. Every new connection after the first makes the restore guard compare
    before the next statement (it may reach a restored database: ``SQLiteStore.check_restore_guard``).
    """

    def __init__(self, url: str, *, sealer: Sealer | None = None) -> None:  # noqa: D107 - see the class docstring
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise InputInvalid("PostgreSQL needs psycopg 3 and psycopg-pool: pip install 'portal-mpc[postgres]'") \
                from None
        self._psycopg = psycopg
        self._pools = psycopg_pool
        self.path = url
        self.sealer = sealer
        dsn, self.schema = split_schema(url)
        self._dsn, self.pool_size = split_pool_size(dsn)
        self._local = _ThreadState()
        self._tables: dict[str, tuple[list[str], list[str]]] = {}
        self._statements: dict[str, _Statement] = {}  # ``_statement``
        self.single_use_tables = ["presignatures", "resumed_sessions"]
        self._init_guard_state()
        self.ledger = None
        self.ledger_report = None
        self.reconnects = 0  # lost connections replaced
        self.connections = 0  # connections the pools of this store opened
        try:
            named = psycopg.conninfo.conninfo_to_dict(self._dsn).get("application_name")
        except psycopg.ProgrammingError:  # libpq quotes the bad part, which may be the password
            raise InputInvalid("malformed PostgreSQL URL") from None
        self.application_name = str(named or f"portal-mpc-{os.getpid()}-{secrets.token_hex(3)}")
        self._pool = self._open_pool()
        self._init_schema()

    # --- per-thread transaction state (SQLiteStore keeps it on the store: one connection) -------
    @property
    def _depth(self) -> int:
        return self._local.depth

    @_depth.setter
    def _depth(self, value: int) -> None:
        self._local.depth = value

    @property
    def _guard_pending(self) -> int | None:
        return self._local.guard_pending

    @_guard_pending.setter
    def _guard_pending(self, value: int | None) -> None:
        self._local.guard_pending = value

    @property
    def _memo(self) -> dict[str, int]:
        return self._local.memo

    @_memo.setter
    def _memo(self, value: dict[str, int]) -> None:
        self._local.memo = value

    def _serialised(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    # --- the pool ---------------------------------------------------------------------------
    def _open_pool(self) -> Any:
        """This process's pool, its first connection open (``STORE_UNAVAILABLE``, with the
        reason, if the server cannot be reached: tried once directly, which also makes the schema)."""
        self._pid = os.getpid()
        try:
            connect_in_schema(self._psycopg, self._dsn, self.schema).close()
        except self._psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {reason}") from None
        pool = self._pools.ConnectionPool(
            self._dsn, min_size=1, max_size=self.pool_size, open=False, timeout=_POOL_WAIT,
            name=self.application_name, configure=self._configure,
            kwargs={"autocommit": True, "connect_timeout": 10, "application_name": self.application_name})
        try:
            pool.open(wait=True, timeout=10.0)
        except self._pools.PoolTimeout:
            pool.close()
            raise StoreUnavailable("cannot connect to PostgreSQL: no connection within 10 s") from None
        return pool

    def _configure(self, conn: Any) -> None:
        """Every new pooled connection: in the URL's schema; after the first, the restore guard
        compares before the next statement (a new connection may reach a restored database)."""
        use_schema(conn, self.schema)
        self.connections += 1
        if self.connections > 1:
            self._guard_due = self.restore_guard is not None

    def _checkout(self) -> Any:
        """A connection of this process's pool (a forked child opens its own: the parent's
        threads and sockets are not its to use); ``STORE_UNAVAILABLE`` after ``_POOL_WAIT`` s."""
        if os.getpid() != self._pid:  # kept, never closed or collected here: its sockets are the parent's
            self._inherited, self._pool = self._pool, self._open_pool()
        try:
            return self._pool.getconn()
        except (self._pools.PoolTimeout, self._pools.PoolClosed):
            raise StoreUnavailable(f"no PostgreSQL connection within {_POOL_WAIT:g} s (the server does not answer, "
                                   f"or all {self.pool_size} connections of this process are busy: pool_size)") \
                from None

    def _checkout_compared(self) -> Any:
        """A connection for a statement outside a transaction; if the restore guard is due (a
        new or replaced connection, maybe to a restored database), it compares first."""
        conn = self._checkout()
        for _ in range(3):  # each comparison may itself have made the pool open a connection
            if not self._guard_due:
                break
            self._checkin(conn)
            self._recheck_if_due()
            conn = self._checkout()
        return conn

    def _checkin(self, conn: Any) -> None:
        """Back to the pool (a lost one is replaced: ``_replace``)."""
        if conn.closed or conn.broken:
            self._replace(conn)
        else:
            self._pool.putconn(conn)

    def _replace(self, conn: Any) -> None:
        """A lost connection leaves the pool (which opens another when it needs one); the idle
        ones are checked now (a restart drops them all); the restore guard compares before the
        next statement (``_configure`` makes it due again for the new connection)."""
        self._pool.putconn(conn)  # closed or broken: the pool discards it
        self.reconnects += 1
        self._guard_due = self.restore_guard is not None
        log.warning("a PostgreSQL connection was lost: replaced")
        with contextlib.suppress(self._psycopg.Error):
            self._pool.check()

    # --- transactions -----------------------------------------------------------------------
    def _begin(self) -> None:
        """A pooled connection for this transaction and BEGIN on it. On a lost connection nothing
        ran yet: another connection, and BEGIN once more."""
        for _ in range(2):
            conn = self._checkout()
            try:
                self._cursor(conn).execute("BEGIN")
            except self._psycopg.OperationalError:
                lost = conn.closed or conn.broken
                self._checkin(conn)
                if not lost:
                    raise
                continue
            state = self._local
            state.conn, state.held, state.wrote, state.xid = conn, frozenset(), False, None
            state.pending = []
            return
        raise StoreUnavailable("the PostgreSQL connection was lost twice while opening a transaction")

    def _rollback(self) -> None:
        conn, self._local.conn = self._local.conn, None
        self._local.pending = []  # never sent: nothing to release
        try:
            if not (conn.closed or conn.broken):  # else the server rolled it back when the connection died
                conn.execute("ROLLBACK")
        except self._psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise
        finally:
            self._checkin(conn)

    def _commit(self) -> None:
        """COMMIT, the connection back to the pool. A transaction that wrote needs its id for
        ``_settle``: returned by its first write that wrote a row (``_Statement.with_xid``), else
        read now (``txid_current_if_assigned()``: one round trip, only then; forcing an id on
        every transaction would make each read-only COMMIT flush a WAL record); a connection
        lost at COMMIT: ``_settle`` with that id. Locks taken and not sent yet are taken first
        (``_send_locks``: the transaction holds them before it ends, as it would have)."""
        if self._local.pending:
            try:
                self._send_locks()
            except BaseException:  # a deadlock victim, a lost connection: as a failed body
                self._rollback()
                raise
        conn, self._local.conn = self._local.conn, None
        xid: Any = _UNSENT
        try:
            known = self._local.xid
            if known is None and self._local.wrote:  # (lost during this read: still ``_UNSENT``)
                known = self._cursor(conn).execute("SELECT txid_current_if_assigned()").fetchone()[0]
            xid = known
            conn.execute("COMMIT")
        except self._psycopg.OperationalError:
            lost = conn.closed or conn.broken
            self._checkin(conn)
            if not lost:
                raise
            if xid is _UNSENT:  # lost before COMMIT was sent: the server rolled the transaction back
                raise StoreUnavailable("the PostgreSQL connection was lost in a transaction; it was rolled back, "
                                       "retry") from None
            self._settle(xid)
            return
        self._checkin(conn)

    def _settle(self, xid: int | None) -> None:
        """The outcome of a transaction whose connection was lost at COMMIT, asked on another
        connection: returns if it committed (or wrote nothing), else ``STORE_UNAVAILABLE``."""
        if xid is None:  # it wrote nothing: nothing to lose (what it read stands)
            return
        try:
            status = self._execute("SELECT txid_status(?)", (xid,)).fetchone()[0]
        except StoreUnavailable:
            status = None
        if status == "committed":
            log.warning("the PostgreSQL connection was lost at COMMIT; the transaction had committed")
            return
        if status == "aborted":
            raise StoreUnavailable("the PostgreSQL connection was lost at COMMIT: the transaction was rolled "
                                   "back, nothing was written; retry")
        raise StoreUnavailable("the PostgreSQL connection was lost at COMMIT and the transaction's outcome is not "
                               "known yet; check before retrying (resume an operation)")

    # --- locks (docs/operations.md, "PostgreSQL: connections and locking") ----------------------
    def lock_client(self, client_id: str) -> None:
        """The client's row, locked until the transaction ends (``FOR NO KEY UPDATE``: rows that
        reference it can still be inserted; every update of it waits); sent just before the
        transaction's next statement (``_send_locks``)."""
        super().lock_client(client_id)
        if self._first_hold("client:" + client_id):
            self._local.pending.append((_ROW_LOCK, client_id))

    def _lock_key(self, name: str) -> None:
        """A transaction-scoped advisory lock on ``name`` in this store's schema (sent just
        before the transaction's next statement: ``_send_locks``)."""
        super()._lock_key(name)
        if self._first_hold("key:" + name):
            self._local.pending.append((_KEY_LOCK, _advisory_key(self.schema, name)))

    def _first_hold(self, lock: str) -> bool:
        """Whether this transaction takes ``lock`` now (a lock it holds already is held until it
        ends: asking again would cost a round trip for nothing)."""
        if lock in self._local.held:
            return False
        self._local.held = self._local.held | {lock}
        return True

    def _send_locks(self) -> None:
        """Take the locks asked for since the transaction's last statement, in the order asked,
        before its next statement (issue 30, round six: locks asked for together share a round
        trip). Exact: nothing of the transaction reaches the database between
        the ask and this, so every statement after the ask still runs under the lock. A client's
        row lock followed by an advisory lock (every take: ``ServiceStore.take``,
        ``commit_step``) is one statement whose aggregate has locked the row before the lock
        function runs (the same order as two statements: the order every transaction locks in;
        a deadlock is still detected and reported). Nothing else shares the statement: under
        ``READ COMMITTED`` a statement reads the snapshot taken when it began, before its lock
        waits, so what a lock protects is read by the next statement, never by its own."""
        pending, self._local.pending = self._local.pending, []
        while pending:
            kind, value = pending.pop(0)
            if kind == _ROW_LOCK and pending and pending[0][0] == _KEY_LOCK:
                self._execute(_ROW_THEN_KEY_SQL, (pending.pop(0)[1], value))
            elif kind == _ROW_LOCK:
                self._execute(_ROW_SQL, (value,))
            else:
                self._execute(_KEY_SQL, (value,))

    # --- statements ---------------------------------------------------------------------------
    def _cursor(self, conn: Any) -> Any:
        """The connection's one cursor, made once (issue 30, round six: a cursor per statement
        costs ~9 µs of client CPU). A pooled connection serves one thread at a time, and
        ``_Rows`` reads each result in full before the next statement."""
        cursor = getattr(conn, "_portal_mpc_cursor", None)
        if cursor is None:
            cursor = conn.cursor()
            conn._portal_mpc_cursor = cursor
        return cursor

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        values = tuple(int(a) if isinstance(a, bool) else a for a in args)
        statement = self._statement(sql)
        if self._local.conn is not None:
            return self._in_transaction(statement, values)
        for attempt in range(2):
            conn = self._checkout_compared()
            try:
                rows = _Rows(self._cursor(conn).execute(statement.text, values))
            except self._psycopg.OperationalError:
                lost = conn.closed or conn.broken
                self._checkin(conn)
                if not lost:
                    raise
                if attempt or not statement.reads:
                    raise StoreUnavailable("the PostgreSQL connection was lost during a statement that may or may "
                                           "not have been applied; retry") from None
                continue  # a read is harmless to repeat (after the guard's check)
            self._checkin(conn)
            return rows
        raise AssertionError("unreachable")  # pragma: no cover

    def _in_transaction(self, statement: _Statement, values: tuple[Any, ...]) -> _Rows:
        """A statement of the thread's transaction, after the locks it asked for
        (``_send_locks``; a schema change first takes the schema's lock: two processes creating
        the same table at once would collide). The transaction's first write that returns
        nothing returns its id instead (``_Statement.with_xid``), unseen by the caller."""
        conn = self._local.conn
        if statement.ddl:
            self._lock_key("schema")
        if self._local.pending:
            self._send_locks()
        cursor = self._cursor(conn)
        try:
            if statement.reads:
                return _Rows(cursor.execute(statement.text, values))
            self._local.wrote = True  # ``_commit`` needs the transaction's id for ``_settle``
            if statement.with_xid is None or self._local.xid is not None:
                return _Rows(cursor.execute(statement.text, values))
            row = cursor.execute(statement.with_xid, values).fetchone()
            if row is not None:  # a row was written: the transaction has its id
                self._local.xid = row[0]
            return _Rows(cursor, hidden=True)
        except self._psycopg.OperationalError as exc:
            if (exc.sqlstate or "").startswith("40"):  # class 40, transaction rollback: 40P01 deadlock, 40001
                raise StoreUnavailable("this transaction conflicted with a concurrent one and PostgreSQL rolled it "
                                       "back (a deadlock); nothing was written, retry") from None
            if not (conn.closed or conn.broken):
                raise
            raise StoreUnavailable("the PostgreSQL connection was lost in a transaction; it was rolled back, "
                                   "retry") from None

    def _has_table(self, table: str) -> bool:
        return self._execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                             "AND table_name = ?", (table,)).fetchone() is not None

    def _statement(self, sql: str) -> _Statement:
        """``sql`` as sent (``_adapt``), made once per text (the store's texts are constants)."""
        statement = self._statements.get(sql)
        if statement is None:
            text = self._adapt(sql)
            writes = _WRITE.match(text) is not None and _RETURNING.search(text) is None
            statement = _Statement(text, _READ_ONLY.match(text) is not None, _DDL.match(text) is not None,
                                   text.rstrip().rstrip(";") + " RETURNING txid_current_if_assigned()" if writes
                                   else None)
            if len(self._statements) < _STATEMENTS_KEPT and not statement.ddl:  # a DDL text teaches ``_adapt``
                self._statements[sql] = statement
        return statement

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

    def signing_row(self, client_id: str, curve: str) -> tuple[bool, str, bytes | None]:
        """``SQLiteStore.signing_row``, read at every call: PostgreSQL gives no cheap exact sign
        that nothing changed since an earlier read."""
        return self._read_signing_row(client_id, curve)

    def close(self) -> None:
        """Close this process's pool (its connections)."""
        self._pool.close()


