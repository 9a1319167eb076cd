"""PostgreSQL URLs of the stores (``mpc.storage.backends``) and of the revocation ledger
(``mpc.storage.ledger``): which URLs name PostgreSQL, whether one carries a password, the
``?schema=NAME`` option, and a connection whose tables live in that schema. Below both, so
neither imports the other for them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mpc.errors import InputInvalid

__all__ = ["is_postgres_url", "url_has_password", "split_schema", "connect_in_schema"]

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
    if schema is not None:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
    return conn


def split_schema(url: str) -> tuple[str, str | None]:
    """``url`` without its ``schema`` query option, and that schema (None without one; a name
    that is not a lowercase SQL identifier is ``INPUT_INVALID``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise InputInvalid("schema must be a lowercase SQL identifier")
    return urlunsplit(parts._replace(query=rest)), schema
