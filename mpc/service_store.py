"""What the networked custodian (``mpc.server``) keeps beside the engine's store: client tokens
and parked sessions. Same database and connection as the store it wraps (SQLite or PostgreSQL).

Tables (created on first use, portable SQL)
  client_tokens    client id -> BLAKE2b-256 of the client's secret token (never the token);
                   one live token per client: rotating or replacing it kills the old one,
                   revoking deletes the row (every token of that client then fails)
  parked_sessions  session id -> client id, operation, the custodian session's state
                   (``Session.to_bytes()``), the messages it has sent (replayed when a client
                   resumes after a lost connection), whether it holds the client's
                   operation lock, and when it expires

At rest, a parked session's state and outbox (the custodian's messages: an eject's carry its
backup shares) are sealed like the store's other secrets when the store has a key (``mpc.sealing``),
bound to the session id, client and operation: a row copied to another session, client or
operation fails to open (``StoreCorrupted``).

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
        if not isinstance(client_id, str) or not isinstance(token, str) or len(token) > 256 or len(client_id) > 256:
            raise AuthFailed()
        try:
            presented = hash_token(token)
        except UnicodeEncodeError:  # a lone surrogate: not a token this service ever issued
            raise AuthFailed() from None
        row = self.store._execute("SELECT token_hash FROM client_tokens WHERE client_id = ?", (client_id,)).fetchone()
        expected = bytes(row[0]) if row is not None else bytes(32)
        # Compare even for an unknown client, so the timing does not tell whether it exists.
        if not hmac.compare_digest(presented, expected) or row is None:
            raise AuthFailed()

    def rotate_token(self, client_id: Any, token: Any) -> str:
        """The client's new token in place of ``token`` (``AuthFailed`` unless it is the live one;
        of two concurrent rotations with the same token only one succeeds)."""
        self.check_token(client_id, token)
        fresh = new_token()
        with self.store.transaction():
            row = self.store._execute(
                "UPDATE client_tokens SET token_hash = ? WHERE client_id = ? AND token_hash = ? RETURNING client_id",
                (hash_token(fresh), client_id, hash_token(token)),
            ).fetchone()
        if row is None:
            raise AuthFailed()
        return fresh

    def replace_token(self, client_id: str) -> str:
        """A new token for the client, whatever its current one (recover, eject, the operator)."""
        fresh = new_token()
        self.set_token(client_id, fresh)
        return fresh

    def revoke_token(self, client_id: str) -> None:
        """Delete the client's token: every request with any token fails until a new one is issued."""
        self.store._execute("DELETE FROM client_tokens WHERE client_id = ?", (client_id,))

    # --- parked sessions ------------------------------------------------------------------------
    def park(self, session_id: str, client_id: str, operation: str, data: bytes, outbox: list[str],
             holds_lock: bool, ttl: float) -> None:
        """Save (or replace) a session's state after a step."""
        key = (session_id, client_id, operation)
        box = self.store._seal(json.dumps(outbox).encode("ascii"), "parked_sessions", "outbox", *key)
        tagged = self.store.nonce_epoch().to_bytes(_EPOCH_BYTES, "big") + data
        sealed = self.store._seal(tagged, "parked_sessions", "data", *key)
        self.store._execute(
            f"INSERT OR REPLACE INTO parked_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*key, sealed, box, int(holds_lock), time.time() + ttl),
        )

    def take(self, session_id: str) -> ParkedSession | None:
        """Delete the parked session and return it (None if absent or of an older nonce epoch):
        at most one taker wins."""
        with self.store.taking() as took:
            row = self.store._execute(
                f"DELETE FROM parked_sessions WHERE session_id = ? RETURNING {_COLUMNS}", (session_id,)
            ).fetchone()
            took(row is not None)
        if row is None:
            return None
        parked, epoch = self._unpark(row)
        return parked if epoch == self.store.nonce_epoch() else None

    def peek(self, session_id: str) -> ParkedSession | None:
        """Read a parked session without taking it (to check its owner, or to resume a channel)."""
        row = self.store._execute(f"SELECT {_COLUMNS} FROM parked_sessions WHERE session_id = ?",
                                  (session_id,)).fetchone()
        return None if row is None else self._unpark(row)[0]

    def purge(self, now: float | None = None) -> list[ParkedSession]:
        """Delete every expired session and return them (the caller releases their locks)."""
        now = time.time() if now is None else now
        rows = self.store._execute(
            f"DELETE FROM parked_sessions WHERE expires < ? RETURNING {_COLUMNS}", (now,)
        ).fetchall()
        return [self._unpark(row)[0] for row in rows]

    def _unpark(self, row: Any) -> tuple[ParkedSession, int]:
        """A row as a ParkedSession (state and outbox opened: ``StoreCorrupted`` if tampered
        with) and the nonce epoch its state carries."""
        key = (row[0], row[1], row[2])
        tagged = self.store._unseal(row[3], "parked_sessions", "data", *key)
        outbox = json.loads(self.store._unseal(row[4], "parked_sessions", "outbox", *key))
        epoch = int.from_bytes(tagged[:_EPOCH_BYTES], "big")
        return ParkedSession(*key, tagged[_EPOCH_BYTES:], list(outbox), bool(row[5]), float(row[6])), epoch

    def count(self) -> int:
        row = self.store._execute("SELECT COUNT(*) FROM parked_sessions").fetchone()
        return int(row[0])


_EPOCH_BYTES = 8
