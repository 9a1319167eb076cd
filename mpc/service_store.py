"""What the networked custodian (``mpc.server``) keeps beside the engine's store: client tokens
and parked sessions. Same database and connection as the store it wraps (SQLite or PostgreSQL).

Tables (created on first use, portable SQL)
  client_tokens    client id -> BLAKE2b-256 of the client's secret token (never the token)
  parked_sessions  session id -> client id, operation, the custodian session's state
                   (``Session.to_bytes()``), the messages it has sent (replayed when a client
                   resumes after a lost connection), whether it holds the client's
                   operation lock, and when it expires

Parked sessions are single use (``protocols.state``): ``take`` deletes the row and returns it
in one statement (``DELETE … RETURNING``), so two workers or two servers can never resume the
same blob; the caller saves the new state with ``park`` after the step. A crash between the
two loses the session (the client starts the operation again), never reuses its nonces. Each
blob carries the store's nonce epoch: after a database restore, ``bump_nonce_epoch`` empties the
table, and a blob of an older epoch met anyway (a copy in flight) is never resumed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from mpc.errors import AuthFailed
from mpc.store import SQLiteStore

__all__ = ["ServiceStore", "ParkedSession", "new_token", "hash_token"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS client_tokens (
    client_id TEXT PRIMARY KEY REFERENCES clients(client_id),
    token_hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS parked_sessions (
    session_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    operation TEXT NOT NULL,
    data BLOB NOT NULL,
    outbox BLOB NOT NULL,
    holds_lock INTEGER NOT NULL,
    expires REAL NOT NULL
)
"""

_COLUMNS = "session_id, client_id, operation, data, outbox, holds_lock, expires"


def new_token() -> str:
    """A fresh client token: 32 random bytes from ``secrets``, URL-safe base64."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """BLAKE2b-256 of the token (domain-separated): the token has 256 bits of entropy, so a
    plain hash suffices; only the hash is stored."""
    return hashlib.blake2b(token.encode("utf-8"), digest_size=32, person=b"portal-mpc-token").digest()


@dataclass(frozen=True)
class ParkedSession:
    """One parked custodian session (``data`` is secret-bearing and single use)."""

    session_id: str
    client_id: str
    operation: str
    data: bytes
    outbox: list[str]
    holds_lock: bool
    expires: float


class ServiceStore:
    """Client tokens and parked sessions in the same database as ``store``."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        if "parked_sessions" not in store.single_use_tables:
            store.single_use_tables.append("parked_sessions")
        with store.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                store._execute(statement)

    # --- tokens -------------------------------------------------------------------------------
    def set_token(self, client_id: str, token: str) -> None:
        self.store._execute("INSERT OR REPLACE INTO client_tokens VALUES (?, ?)", (client_id, hash_token(token)))

    def check_token(self, client_id: Any, token: Any) -> None:
        """Raise ``AuthFailed`` unless ``token`` is the client's (unknown clients fail the same way)."""
        if not isinstance(client_id, str) or not isinstance(token, str) or len(token) > 256:
            raise AuthFailed()
        row = self.store._execute("SELECT token_hash FROM client_tokens WHERE client_id = ?", (client_id,)).fetchone()
        expected = bytes(row[0]) if row is not None else bytes(32)
        # Compare even for an unknown client, so the timing does not tell whether it exists.
        if not hmac.compare_digest(hash_token(token), expected) or row is None:
            raise AuthFailed()

    # --- parked sessions ------------------------------------------------------------------------
    def park(self, session_id: str, client_id: str, operation: str, data: bytes, outbox: list[str],
             holds_lock: bool, ttl: float) -> None:
        """Save (or replace) a session's state after a step."""
        box = json.dumps(outbox).encode("ascii")
        tagged = self.store.nonce_epoch().to_bytes(_EPOCH_BYTES, "big") + data
        self.store._execute(
            f"INSERT OR REPLACE INTO parked_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session_id, client_id, operation, tagged, box, int(holds_lock), time.time() + ttl),
        )

    def take(self, session_id: str) -> ParkedSession | None:
        """Delete the parked session and return it (None if absent or of an older nonce epoch):
        at most one taker wins."""
        with self.store.taking() as took:
            row = self.store._execute(
                f"DELETE FROM parked_sessions WHERE session_id = ? RETURNING {_COLUMNS}", (session_id,)
            ).fetchone()
            took(row is not None)
        if row is None or _epoch(row) != self.store.nonce_epoch():
            return None
        return _parked(row)

    def peek(self, session_id: str) -> ParkedSession | None:
        """Read a parked session without taking it (to check its owner, or to resume a channel)."""
        row = self.store._execute(f"SELECT {_COLUMNS} FROM parked_sessions WHERE session_id = ?",
                                  (session_id,)).fetchone()
        return None if row is None else _parked(row)

    def purge(self, now: float | None = None) -> list[ParkedSession]:
        """Delete every expired session and return them (the caller releases their locks)."""
        now = time.time() if now is None else now
        rows = self.store._execute(
            f"DELETE FROM parked_sessions WHERE expires < ? RETURNING {_COLUMNS}", (now,)
        ).fetchall()
        return [_parked(row) for row in rows]

    def count(self) -> int:
        row = self.store._execute("SELECT COUNT(*) FROM parked_sessions").fetchone()
        return int(row[0])


_EPOCH_BYTES = 8


def _epoch(row: Any) -> int:
    return int.from_bytes(bytes(row[3])[:_EPOCH_BYTES], "big")


def _parked(row: Any) -> ParkedSession:
    outbox = json.loads(bytes(row[4]))
    data = bytes(row[3])[_EPOCH_BYTES:]
    return ParkedSession(row[0], row[1], row[2], data, list(outbox), bool(row[5]), float(row[6]))
