"""PostgreSQL URLs of the stores (``mpc.storage.backends``) and of the revocation ledger
(``mpc.storage.ledger``): which URLs name PostgreSQL, whether one carries a password, the
``?schema=NAME`` option, and a connection whose tables live in that schema. Below both, so
neither imports the other for them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mpc.errors import InputInvalid

__all__ = ["is_postgres_url", "url_has_password", "split_schema", "split_pool_size", "connect_in_schema", "use_schema",
           "DEFAULT_POOL_SIZE", "MAX_POOL_SIZE"]

DEFAULT_POOL_SIZE = 8  # connections a PostgreSQL store's pool may hold (``?pool_size=N``)
MAX_POOL_SIZE = 100

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return url.startswith(("postgresql://", "postgres://"))


def url_has_password(url: str) -> bool:
    """Whether a database URL carries a password (``user:pw@`` or ``?password=``); such a URL
    must not be given on a command line (``$PORTAL_MPC_DB``, ``PGPASSWORD`` or ``PGPASSFILE``)."""
    if not is_postgres_url(url):
        return False
    parts = urlsplit(url)
    return parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query))


def connect_in_schema(psycopg: Any, dsn: str, schema: str | None) -> Any:
    """A new autocommit psycopg connection whose tables live in ``schema`` (made if missing);
    psycopg's ``OperationalError`` if it fails (the store and the revocation ledger use it)."""
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    use_schema(conn, schema)
    return conn


def use_schema(conn: Any, schema: str | None) -> None:
    """Point an autocommit connection's ``search_path`` at ``schema`` (made if missing); nothing
    without one."""
    if schema is not None:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')


def split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema`` query option, and that schema (None without one; a name
    that is not a lowercase SQL identifier is ``INPUT_INVALID``)."""
    rest, schema = _split_option(url, "schema")
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise InputInvalid("schema must be a lowercase SQL identifier")
    return rest, schema


def split_pool_size(url: str) -> tuple[str, int]:
    """``url`` without its ``pool_size`` query option, and that size: how many connections the
    store's pool may hold (``DEFAULT_POOL_SIZE`` without one; not a decimal number from 1 to
    ``MAX_POOL_SIZE`` is ``INPUT_INVALID``). ``docs/operations.md``, PostgreSQL."""
    rest, size = _split_option(url, "pool_size")
    if size is None:
        return rest, DEFAULT_POOL_SIZE
    if not (size.isascii() and size.isdigit() and 1 <= int(size) <= MAX_POOL_SIZE):
        raise InputInvalid(f"pool_size must be a number from 1 to {MAX_POOL_SIZE}")
    return rest, int(size)


def _split_option(url: str, name: str) -> tuple[str, str | None]:
    """``url`` without its query option ``name``, and that option's value (None without one)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in query if k == name), None)
    rest = urlencode([(k, v) for k, v in query if k != name])
    return urlunsplit(parts._replace(query=rest)), value
