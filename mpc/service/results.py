"""The result of a finished operation, kept so a client whose result frame was lost can
fetch it once (issue 26: every operation, so a node killed after a step finished but before its
result frame left costs the client a ``resume``, not ``NOT_FOUND``; an operation that keeps the
client's token is handed its result as it was, to that token). For recover and eject (``mpc.service.server``: ``resume`` with the old token; ``mpc.remote.blocking``, Retries).

A completed recover or eject replaces the client's token, and the new token travels only in the
result frame. If that frame is lost, the client's ``resume`` carries the old token, which is
dead. So for the session TTL the service keeps, per finished session (table
``finished_results``): the hash of the token that ran the operation, the hash of the token it
issued, the custodian's result without the token, and the messages of the last step (sealed at
rest like parked sessions: an eject's carry the custodian's backup shares). :func:`take` hands
them out once, to a ``resume`` of that session id by that client presenting that old token, with
a *fresh* token that replaces the one the lost frame carried, and only if that one is still the
client's token (a rotation or an operator's ``issue_token`` meanwhile wins: nothing is handed
out, the answer stays ``AUTH_FAILED``).

Why this is safe: no token is stored, only hashes (as in ``client_tokens``); fetching needs the
old token *and* the 256-bit random session id the recovering device chose, which travelled only
inside that operation's TLS connection, so whoever presents both took part in the operation;
it works once (the row is deleted in the transaction that reads it) and only within the TTL.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any

from mpc.service.store import hash_token, new_token
from mpc.storage.store import SQLiteStore

__all__ = ["keep", "take", "purge"]

_TABLE = "finished_results"
_SCHEMA = """CREATE TABLE IF NOT EXISTS finished_results (
    session_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    token_hash BLOB NOT NULL,
    issued_hash BLOB NOT NULL,
    data BLOB NOT NULL,
    expires REAL NOT NULL
)"""
_READY_FLAG = "_finished_results_ready"


def ensure_table(store: SQLiteStore) -> None:
    """Create the table once per store object, in a transaction of its own: call it before an
    outer transaction that keeps a result (a rolled-back CREATE must not leave it marked made)."""
    if not getattr(store, _READY_FLAG, False):
        with store.transaction():
            store._execute(_SCHEMA)
        setattr(store, _READY_FLAG, True)


def keep(store: SQLiteStore, session_id: str, client_id: str, token: str, outcome: dict[str, Any],
         ttl: float) -> None:
    """Keep the finished step's ``outcome`` (``messages``, ``result`` with the new ``token``) of
    the operation ``token`` ran, for ``ttl`` seconds (the expired ones go in ``purge``)."""
    ensure_table(store)
    result = dict(outcome["result"])
    issued = result.pop("token", token)  # issue 26: an operation that keeps the token keeps it here too
    data = json.dumps({"result": result, "messages": list(outcome.get("messages", ()))}).encode("utf-8")
    sealed = store._seal(data, _TABLE, "data", session_id, client_id)
    now = time.time()
    store._execute(
        "INSERT OR REPLACE INTO finished_results (session_id, client_id, token_hash, issued_hash, data, expires) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (session_id, client_id, hash_token(token), hash_token(issued), sealed, now + ttl))


def purge(store: SQLiteStore, now: float) -> None:
    """Drop the kept outcomes that expired (the service's purge tick)."""
    ensure_table(store)
    store._execute("DELETE FROM finished_results WHERE expires < ?", (now,))


def take(store: SQLiteStore, session_id: str, client_id: str, token: str) -> dict[str, Any] | None:
    """The kept outcome of ``session_id`` with a fresh token in its result, once, if ``token``
    ran that operation and the token it issued is still the client's; else None."""
    try:
        presented = hash_token(token)
    except UnicodeEncodeError:
        return None
    ensure_table(store)
    now = time.time()
    with store.transaction():
        row = store._execute("SELECT token_hash, expires FROM finished_results WHERE session_id = ? AND client_id = ?",
                             (session_id, client_id)).fetchone()
        if row is None or float(row[1]) < now or not hmac.compare_digest(bytes(row[0]), presented):
            return None
        taken = store._execute("DELETE FROM finished_results WHERE session_id = ? RETURNING issued_hash, data",
                               (session_id,)).fetchone()
        if taken is None:
            return None
        if hmac.compare_digest(bytes(taken[0]), presented):  # the operation kept the token (sign, backup, ...)
            kept = json.loads(store._unseal(taken[1], _TABLE, "data", session_id, client_id))
            return {"messages": list(kept["messages"]), "result": kept["result"]}
        fresh = new_token()
        swapped = store._execute(
            "UPDATE client_tokens SET token_hash = ? WHERE client_id = ? AND token_hash = ? RETURNING client_id",
            (hash_token(fresh), client_id, bytes(taken[0]))).fetchone()
        if swapped is None:
            return None
        kept = json.loads(store._unseal(taken[1], _TABLE, "data", session_id, client_id))
    return {"messages": list(kept["messages"]), "result": {**kept["result"], "token": fresh}}
