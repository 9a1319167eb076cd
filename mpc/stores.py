"""Store backends by URL: SQLite by default, PostgreSQL through psycopg 3 (``postgres`` extra).

``open_store(url)``:
  ``:memory:``, a file path or ``sqlite:///path``   → ``mpc.store.SQLiteStore``
  ``postgresql://user:password@host:port/db``       → :class:`PostgresStore`
  (optionally ``?schema=NAME``: its tables live in that schema, created if needed; tests use a
  fresh schema each)

One implementation of the queries serves both: ``SQLiteStore``'s methods (and
``mpc.service_store``'s) are written once with ``?`` placeholders in SQL both databases speak
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
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mpc.errors import InputInvalid
from mpc.restore_guard import ENV_VAR, RestoreGuard
from mpc.store import SQLiteStore

__all__ = ["open_store", "PostgresStore", "is_postgres_url"]

_ADVISORY_LOCK = 0x706F7274616C  # "portal": one lock id for every store transaction
_CREATE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*$", re.S | re.I)
_INSERT_OR_REPLACE = re.compile(r"^\s*INSERT OR REPLACE INTO (\w+)\s*(\(([^)]*)\))?\s*VALUES", re.I)
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str) -> SQLiteStore:
    """The store a URL names (see the module docstring), with the restore guard named by
    ``$PORTAL_MPC_RESTORE_GUARD`` attached if that is set (``mpc.restore_guard``)."""
    store = _open(url)
    guard_path = os.environ.get(ENV_VAR)
    if guard_path:
        store.attach_restore_guard(RestoreGuard(guard_path))
    return store


def _open(url: str) -> SQLiteStore:
    if not isinstance(url, str) or not url:
        raise InputInvalid("the database must be a path or a URL")
    if is_postgres_url(url):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///"):])
    if "://" in url:
        raise InputInvalid("unsupported database URL (use a SQLite path or postgresql://…)")
    return SQLiteStore(url)


def _split_schema(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise InputInvalid("schema must be a lowercase SQL identifier")
    return urlunsplit(parts._replace(query=rest)), schema


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
    """The custodian store on PostgreSQL (psycopg 3); same tables, same methods as SQLite's."""

    def __init__(self, url: str) -> None:  # noqa: D107 - see the class docstring
        try:
            import psycopg
        except ImportError:
            raise InputInvalid("PostgreSQL needs psycopg 3: pip install 'portal-mpc[postgres]'") from None
        self.path = url
        dsn, self.schema = _split_schema(url)
        self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        self._lock = threading.RLock()
        self._depth = 0
        self._tables: dict[str, tuple[list[str], list[str]]] = {}
        self.single_use_tables = ["presignatures", "resumed_sessions"]
        self.restore_guard = None
        if self.schema is not None:
            self._conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self._conn.execute(f'SET search_path TO "{self.schema}"')
        self._init_schema()

    def _begin(self) -> None:
        """BEGIN plus a transaction-scoped advisory lock: serialised with every store transaction."""
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._conn.execute(self._adapt(sql), tuple(int(a) if isinstance(a, bool) else a for a in args))

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
