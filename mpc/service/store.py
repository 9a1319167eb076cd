"""What the networked custodian (``mpc.service.server``) keeps beside the engine's store: client tokens
and parked sessions. Same database and connection as the store it wraps (SQLite or PostgreSQL).

Tables (created on first use, portable SQL)::

  client_tokens    client id -> BLAKE2b-256 of the client's secret token (never the token);
                   one live token per client: rotating or replacing it kills the old one,
                   revoking deletes the row (every token of that client then fails); with a
                   revocation ledger the old hash is recorded there first, so a restored
                   database's copy of it stays dead (``mpc.storage.ledger``)
  parked_sessions  session id -> client id, operation, the custodian session's state
                   (``Session.to_bytes()``; a sign's names its key share instead of
                   carrying it: ``mpc.signing.CustodianSign.share_references``), the
                   messages a client that resumes after a lost connection may lack (replayed:
                   a sign's last step's, another operation's every message), whether it holds the client's
                   operation lock, and when it expires
  session_steps    session id -> the last step taken on it: step id, the node running it,
                   whether it parked the session again, its lease, and how many of the
                   park's messages came before it (what a step that ran produced is the rest)
  service_nodes    node id -> when its heartbeat lapses (every ``serve`` process is a node)
  node_processes   node id -> where its process runs (boot id and PID namespace, pid, start
                   tick: ``mpc.service.liveness``), so a node starting on the same machine
                   declares a certainly dead neighbour's steps lost at once, not after the TTL
  replaced_tokens  client id -> the hash of the token the client's last recover or eject
                   replaced, and which: that token, presented again, gets
                   ``AUTH_TOKEN_REPLACED`` (saying why) instead of a bare ``AUTH_FAILED``
  client_devices   client id -> the public key of the client's device (``mpc.storage.device_key``)
                   and since when it is registered; one per client: a completed recover
                   replaces it (the old device is refused from then on)
  session_devices  session id -> client id, the device key that authorised the session, and
                   whether that key is *pending* (a recover's new key, registered when the
                   recover completes); every later request and step of the session must come
                   under that key (``check_device``, ``check_step``)

At rest, a parked session's state and outbox (the custodian's messages: an eject's carry its
backup shares) are sealed like the store's other secrets when the store has a key (``mpc.storage.sealing``),
bound to the session id, client and operation: a row copied to another session, client or
operation fails to open (``StoreCorrupted``).

Parked sessions are single use (``protocols.state``): ``take`` deletes the row and returns it
in one statement (``DELETE … RETURNING``), so two workers or two servers can never resume the
same blob; the caller saves the new state with ``park`` after the step. A crash between the
two loses the session (the client starts the operation again), never reuses its nonces. The
optimistic step (sign and presign: ``mpc.service.worker``) reads the row (``check_and_read``), runs, and
``commit_step`` takes it (only if it is still the park read: its sealed bytes unchanged) and
parks the new state in one transaction: of two steps run on one park, one commits; a crash
before the commit leaves the row parked as it was. Each
blob carries the store's nonce epoch: after a database restore, ``bump_nonce_epoch`` empties the
table, and a blob of an older epoch met anyway (a copy in flight) is never resumed.

Operation locks are leases (``docs/operations.md``, Resilience). The client's lock
(``clients.operation``, ``operation_expires``, ``operation_session``: the holder's session id)
lives as long as its session: ``park`` renews it to the park's expiry, ``take`` to the step's
lease, in the same transaction as the row. A taken session leaves a *step marker* naming the
node stepping it; every node heartbeats (``heartbeat``). So the fate of a session is always
known: parked; being stepped by a live node; or *lost* (taken by a step whose node died, or
whose lease lapsed). ``reclaim_lock`` frees a lock whose holder is neither parked nor being
stepped by a live node at once, and ``step_outcome`` tells a service whose worker died whether
the step never ran (retry it), ran and parked (send what it produced), or was lost. Those
methods (leases, step markers, nodes) are ``mpc.service.leases.StepLeases``, a part of
``ServiceStore`` kept in a module of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

from mpc.errors import AuthFailed, AuthTokenReplaced, OperationLost, StateInvalid
from mpc.service.leases import (  # re-exported: the worker, the executor and the tests name them here
    LOST_TOMBSTONE_TTL as LOST_TOMBSTONE_TTL,
    StepLeases,
    Step as Step,
    StepOutcome as StepOutcome,
)
from mpc.storage.ledger import CREDENTIAL_REVOKED
from mpc.storage.single_use import EPOCH_MATCHES
from mpc.service.parked import NewPark, ParkedSession  # re-exported: the worker and the tests name them here
from mpc.storage.store import SQLiteStore

__all__ = ["ServiceStore", "OpenChecks", "ParkedSession", "NewPark", "Step", "StepOutcome", "new_token", "hash_token"]

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
);
CREATE TABLE IF NOT EXISTS session_steps (
    session_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    parked INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replaced_tokens (
    client_id TEXT PRIMARY KEY REFERENCES clients(client_id),
    token_hash BLOB NOT NULL,
    operation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS service_nodes (
    node_id TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS node_processes (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS client_devices (
    client_id TEXT PRIMARY KEY REFERENCES clients(client_id),
    device_public BLOB NOT NULL,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_devices (
    session_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    device_public BLOB NOT NULL,
    pending INTEGER NOT NULL,
    expires REAL NOT NULL
)
"""

_COLUMNS = "session_id, client_id, operation, data, outbox, holds_lock, expires"
# ``_replace_if_unchanged``: the very park read (its sealed state unchanged), of the store's nonce epoch.
_THAT_PARK = "session_id = ? AND client_id = ? AND data = ?"
_DELETE_THAT_PARK = f"DELETE FROM parked_sessions WHERE {_THAT_PARK}"
_DELETE_IF_UNCHANGED = f"{_DELETE_THAT_PARK} AND {EPOCH_MATCHES}"
_REPLACE_IF_UNCHANGED = (f"UPDATE parked_sessions SET data = ?, outbox = ?, holds_lock = ?, expires = ? WHERE {_THAT_PARK} "
                         f"AND {EPOCH_MATCHES}")
# ``check_step``'s checks (the token's hash, the registered device key, the key the session was
# opened under and whether it is pending) and ``check_and_read``'s, with the parked row: texts
# made once (issue 30, round seven: not joined again per step).
_CHECK_STEP = ("SELECT (SELECT token_hash FROM client_tokens WHERE client_id = ?), (SELECT device_public FROM "
               "client_devices WHERE client_id = ?), (SELECT device_public FROM session_devices WHERE session_id = ? "
               "AND client_id = ?), (SELECT pending FROM session_devices WHERE session_id = ? AND client_id = ?)")
_CHECK_AND_READ = (f"{_CHECK_STEP}, {', '.join('p.' + c for c in _COLUMNS.split(', '))} FROM (SELECT 1 AS one) o "
                   "LEFT JOIN parked_sessions p ON p.session_id = ? AND p.client_id = ?")
# ``open_checks``: ``parked_count``'s aggregate, ``is_parked``, then, if asked, the nonce epoch as
# ``nonce_epoch`` reads it (1 while none is stored) and the session's row of this client as
# ``peek`` and ``session_device`` read it (its operation; the device key it was opened under).
_LIVE_PARKED = ("FROM parked_sessions p JOIN session_devices d ON d.session_id = p.session_id "
                "WHERE p.client_id = ? AND p.expires >= ? AND d.pending = ?")  # ``parked_count``'s rows
_OPEN_CHECKS = "SELECT COUNT(*), MIN(p.expires), (SELECT COUNT(*) FROM parked_sessions WHERE session_id = ?){} " + \
    _LIVE_PARKED
_EPOCH_COLUMN = ", " + EPOCH_MATCHES.removeprefix("? = ")  # the epoch the commit compares with
_MINE_COLUMNS = (", (SELECT operation FROM parked_sessions WHERE session_id = ? AND client_id = ?), "
                 "(SELECT device_public FROM session_devices WHERE session_id = ? AND client_id = ?)")
_OPEN_CHECKS_SQL = {(epoch, mine): _OPEN_CHECKS.format((_EPOCH_COLUMN if epoch else "") + (_MINE_COLUMNS if mine else ""))
                    for epoch in (False, True) for mine in (False, True)}


class OpenChecks(NamedTuple):
    """What ``open_checks`` read, in one statement."""

    live: int  # the client's live parked sessions of the kind asked (``parked_count``)
    first_expiry: float | None  # the earliest expiry among them
    parked: bool  # a session of this id is parked (``is_parked``), of any client
    epoch: int | None  # the store's nonce epoch (asked for), else None
    operation: str | None  # the operation of this id parked for this client (asked for), else None
    device: bytes | None  # the device key this id was opened under for this client (asked for), else None


log = logging.getLogger("mpc.service.server")


def new_token() -> str:
    """A fresh client token: 32 random bytes from ``secrets``, URL-safe base64."""
    return secrets.token_urlsafe(32)


def _presented(client_id: Any, token: Any) -> bytes:
    """The hash of a presented token (``AuthFailed`` for anything this service never issued)."""
    if not isinstance(client_id, str) or not isinstance(token, str) or len(token) > 256 or len(client_id) > 256:
        raise AuthFailed()
    try:
        return hash_token(token)
    except UnicodeEncodeError:  # a lone surrogate: not a token this service ever issued
        raise AuthFailed() from None


def _device_verdict(registered: bytes | None, public: bytes,
                    bound: Callable[[], tuple[bytes, bool] | None]) -> bool:
    """The decision of ``check_device``: ``public`` is the registered key (False), or the
    pending key the session was opened under (``bound()``, read only if needed: True); else
    ``AuthFailed``."""
    if registered is not None and hmac.compare_digest(registered, public):
        return False
    session = bound()
    if session is not None and session[1] and hmac.compare_digest(session[0], public):
        return True
    raise AuthFailed()


def hash_token(token: str) -> bytes:
    """BLAKE2b-256 of the token (domain-separated): the token has 256 bits of entropy, so a
    plain hash suffices; only the hash is stored."""
    return hashlib.blake2b(token.encode("utf-8"), digest_size=32, person=b"portal-mpc-token").digest()


class ServiceStore(StepLeases):
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
        """Make ``token`` the client's one live token (only its hash is stored)."""
        self._revoke_in_ledger(client_id)
        self.store._execute("INSERT OR REPLACE INTO client_tokens VALUES (?, ?)", (client_id, hash_token(token)))

    def check_token(self, client_id: Any, token: Any) -> None:
        """Raise ``AuthFailed`` unless ``token`` is the client's (unknown clients fail the same way)."""
        presented = _presented(client_id, token)
        row = self.store._execute("SELECT token_hash FROM client_tokens WHERE client_id = ?", (client_id,)).fetchone()
        self._match_token(client_id, presented, None if row is None else row[0])

    def _match_token(self, client_id: str, presented: bytes, stored: Any) -> None:
        """``check_token`` once the client's stored token hash (or None) is read."""
        expected = bytes(stored) if stored is not None else bytes(32)
        # Compare even for an unknown client, so the timing does not tell whether it exists.
        if not hmac.compare_digest(presented, expected) or stored is None:
            self._refuse(client_id, presented)
        ledger = self.store.ledger  # a token replaced or revoked before a restore stays dead
        if ledger is not None and ledger.credential_revoked("token", presented):
            raise AuthFailed()

    def check_step(self, client_id: Any, token: Any, session_id: str) -> bytes:
        """A step's checks from one read: ``check_token``, then the device key ``session_id`` was
        opened under must still pass ``check_device`` (a recover that moved the wallet to another
        device ends the old device's sessions); returns that key."""
        return self.check_and_read(client_id, token, session_id, read=False)[0]

    def check_and_read(self, client_id: Any, token: Any, session_id: str,
                       read: bool = True) -> tuple[bytes, ParkedSession | None]:
        """``check_step`` and, once it passed, the client's parked session as it is now (None if
        absent or of another client), from one statement (issue 30: a step's checks and its row
        in one round trip). The row stays parked: an optimistic step runs on it and
        ``commit_step`` takes it, if it is still this very park."""
        presented = _presented(client_id, token)
        row = self.store._execute(
            _CHECK_AND_READ if read else _CHECK_STEP,
            (client_id, client_id, session_id, client_id, session_id, client_id)
            + ((session_id, client_id) if read else ())).fetchone()
        self._match_token(client_id, presented, row[0])
        if row[2] is None:  # no session of this client opened under a key
            raise AuthFailed()
        bound = bytes(row[2])  # the key that opened it must still pass (a recover to another device ends it)
        _device_verdict(None if row[1] is None else bytes(row[1]), bound, lambda: (bound, bool(row[3])))
        return bound, (self._unpark(row[4:])[0] if read and row[4] is not None else None)

    def _refuse(self, client_id: str, presented: bytes) -> NoReturn:
        """``AuthTokenReplaced`` for the token a recover or eject replaced, else ``AuthFailed``."""
        row = self.store._execute("SELECT token_hash, operation FROM replaced_tokens WHERE client_id = ?",
                                  (client_id,)).fetchone()
        if row is not None and hmac.compare_digest(presented, bytes(row[0])):
            raise AuthTokenReplaced(f"this client token was replaced by a completed {row[1]}: use the new token "
                                    "from its result, or ask the operator for one (issue_token)")
        raise AuthFailed()

    def _revoke_in_ledger(self, client_id: str, token_hash: bytes | None = None) -> None:
        """Record the client's live token (or ``token_hash``) as revoked in the revocation ledger,
        before the database forgets it (``mpc.storage.ledger``; nothing without a ledger)."""
        if self.store.ledger is None:
            return
        if token_hash is None:
            row = self.store._execute("SELECT token_hash FROM client_tokens WHERE client_id = ?",
                                      (client_id,)).fetchone()
            token_hash = None if row is None else bytes(row[0])
        if token_hash is not None:
            self.store.ledger.append(CREDENTIAL_REVOKED, client_id, credential="token", digest=token_hash.hex())

    def rotate_token(self, client_id: Any, token: Any) -> str:
        """The client's new token in place of ``token`` (``AuthFailed`` unless it is the live one;
        of two concurrent rotations with the same token only one succeeds)."""
        self.check_token(client_id, token)
        fresh = new_token()
        self._revoke_in_ledger(client_id, hash_token(token))
        with self.store.transaction():
            row = self.store._execute(
                "UPDATE client_tokens SET token_hash = ? WHERE client_id = ? AND token_hash = ? RETURNING client_id",
                (hash_token(fresh), client_id, hash_token(token)),
            ).fetchone()
        if row is None:
            raise AuthFailed()
        return fresh

    def replace_token(self, client_id: str, operation: str | None = None) -> str:
        """A new token for the client, whatever its current one (recover, eject, the operator).
        With ``operation`` (a completed recover or eject) the old token's hash is remembered, so
        presenting it again says it was replaced (``AUTH_TOKEN_REPLACED``)."""
        fresh = new_token()
        with self.store.transaction():
            self.store.lock_client(client_id)
            old = self.store._execute("SELECT token_hash FROM client_tokens WHERE client_id = ?", (client_id,)).fetchone()
            if operation is not None and old is not None:
                self.store._execute("INSERT OR REPLACE INTO replaced_tokens VALUES (?, ?, ?)",
                                    (client_id, bytes(old[0]), operation))
            self.set_token(client_id, fresh)
        return fresh

    def revoke_token(self, client_id: str) -> None:
        """Delete the client's token: every request with any token fails until a new one is issued."""
        self._revoke_in_ledger(client_id)
        self.store._execute("DELETE FROM client_tokens WHERE client_id = ?", (client_id,))

    # --- device keys (``docs/operations.md``, Device keys) ---------------------------------------
    def device(self, client_id: str) -> tuple[bytes, float] | None:
        """The client's registered device public key and since when, or None (not enrolled)."""
        row = self.store._execute("SELECT device_public, since FROM client_devices WHERE client_id = ?",
                                  (client_id,)).fetchone()
        return None if row is None else (bytes(row[0]), float(row[1]))

    def register_device(self, client_id: str, public: bytes) -> None:
        """Make ``public`` the client's one device key (the previous one is dead at once)."""
        self.store._execute("INSERT OR REPLACE INTO client_devices VALUES (?, ?, ?)", (client_id, public, time.time()))

    def enrol_device(self, client_id: str, public: bytes) -> bool:
        """Register ``public`` only if the client has no device key; whether it did (of two
        concurrent enrolments only one succeeds)."""
        with self.store.transaction():
            self.store.lock_client(client_id)
            if self.device(client_id) is not None:
                return False
            self.register_device(client_id, public)
        return True

    def revoke_device(self, client_id: str) -> None:
        """Forget the client's device key (the operator): the client must enrol again or recover."""
        self.store._execute("DELETE FROM client_devices WHERE client_id = ?", (client_id,))

    def bind_session(self, session_id: str, client_id: str, public: bytes, pending: bool, ttl: float) -> None:
        """Record the device key that authorised opening ``session_id`` (kept ``2 * ttl``: a
        finished recover's result may be fetched again within ``ttl``)."""
        self.store._execute("INSERT OR REPLACE INTO session_devices VALUES (?, ?, ?, ?, ?)",
                            (session_id, client_id, public, int(pending), time.time() + 2 * ttl))

    def session_device(self, session_id: str, client_id: str) -> tuple[bytes, bool] | None:
        """The key that authorised ``session_id`` (of ``client_id``) and whether it is pending."""
        row = self.store._execute("SELECT device_public, pending FROM session_devices WHERE session_id = ? "
                                  "AND client_id = ?", (session_id, client_id)).fetchone()
        return None if row is None else (bytes(row[0]), bool(row[1]))

    def check_device(self, client_id: str, public: bytes, session_id: str | None = None) -> bool:
        """The one check of a device key (every request goes through it, every step through
        ``check_step``: both decide with ``_device_verdict``): raise ``AuthFailed`` unless
        ``public`` is the client's registered key, or the pending key of ``session_id`` (a
        recover in progress on a new device). Returns whether it was pending."""
        registered = self.device(client_id)
        return _device_verdict(None if registered is None else registered[0], public,
                               lambda: None if session_id is None else self.session_device(session_id, client_id))

    def parked_count(self, client_id: str, pending: bool, now: float) -> tuple[int, float | None]:
        """How many live sessions of the client are parked that were opened under a pending
        key (``pending``) or under the registered one, and the earliest expiry among them."""
        row = self.store._execute(f"SELECT COUNT(*), MIN(p.expires) {_LIVE_PARKED}",
                                  (client_id, now, int(pending))).fetchone()
        return int(row[0]), None if row[1] is None else float(row[1])

    def open_checks(self, session_id: str, client_id: str, pending: bool, now: float, epoch: bool = False,
                    mine: bool = False) -> OpenChecks:
        """What an open checks before it parks, from one statement (issue 30, round seven):
        ``parked_count`` (the client's live sessions of this kind and their earliest expiry) and
        ``is_parked(session_id)``; with ``epoch``, the store's nonce epoch (``nonce_epoch``: the
        open's transaction encodes the new session in it); with ``mine``, the session's parked
        operation and the key it was opened under, if it is this client's (``peek``,
        ``session_device``: is it this very open, committed already?). Each is what its own
        statement would read at the same point of the same transaction."""
        args = (session_id, *((session_id, client_id, session_id, client_id) if mine else ()), client_id, now,
                int(pending))
        row = self.store._execute(_OPEN_CHECKS_SQL[(epoch, mine)], args).fetchone()
        at = 4 if epoch else 3
        return OpenChecks(int(row[0]), None if row[1] is None else float(row[1]), bool(row[2]),
                          int(row[3]) if epoch else None, str(row[at]) if mine and row[at] is not None else None,
                          bytes(row[at + 1]) if mine and row[at + 1] is not None else None)

    # --- parked sessions ------------------------------------------------------------------------
    def park(self, session_id: str, client_id: str, operation: str, data: bytes, outbox: list[str],
             holds_lock: bool, ttl: float, step: Step | None = None, epoch: int | None = None,
             before: int = 0) -> bytes:
        """Save (or replace) a session's state after a step, with ``outbox`` (the messages a
        client that resumes may lack: ``mpc.service.worker._outbox``), in one transaction with the renewal
        of its lock's lease to the park's expiry (``OperationLost`` if the lock is no longer this
        session's: its lease lapsed and it was reclaimed) and the step marker's "parked" (with
        ``before``: how many of ``outbox``'s messages came before the step: ``step_outcome``
        sends the rest).
        ``epoch``: the nonce epoch ``data`` was encoded in (a custodian operation's, read as it
        was encoded: issue 30, one read less per park), else the store's is read now. Returns
        the park's ``version`` (``ParkedSession.version``)."""
        key = (session_id, client_id, operation)
        epoch = self.store.nonce_epoch() if epoch is None else epoch
        sealed, box = self._seal_state(key, data, outbox, epoch)
        expires = time.time() + ttl
        with self.store.transaction():
            if holds_lock and not self._renew_lock(client_id, session_id, expires):
                raise OperationLost("the client's operation lock was reclaimed while this session was stepped")
            self.store._execute(
                f"INSERT OR REPLACE INTO parked_sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, sealed, box, int(holds_lock), expires),
            )
            if step is not None:
                self.store._execute("UPDATE session_steps SET parked = 1, sent = ?, expires = ? WHERE session_id = ? "
                                    "AND step_id = ?", (before, expires, session_id, step.step_id))
        return _version(sealed)

    def take(self, session_id: str, step: Step | None = None, client_id: str | None = None,
             admit: Callable[[ParkedSession], None] | None = None) -> ParkedSession | None:
        """Delete the parked session and return it (None if absent, of another client than
        ``client_id`` (left parked), or of an older nonce epoch): at most one taker wins. One
        transaction (issue 30: one store round trip per take): with ``step`` it also leaves the
        step marker and sets the lease of the lock the session holds to ``step.lease`` from now;
        ``admit`` runs last in it on the taken session (the worker consumes the park id of the
        session it kept warm there); if ``admit`` raises, nothing was taken."""
        match, args = ("session_id = ?", (session_id,)) if client_id is None else \
            ("session_id = ? AND client_id = ?", (session_id, client_id))
        with self.store.transaction():
            if client_id is not None:  # the client's row before the take counter's lock, which every take
                self.store.lock_client(client_id)  # needs: a wait for one client's row holds up only its takes
            with self.store.taking() as took:
                row = self.store._execute(f"DELETE FROM parked_sessions WHERE {match} RETURNING {_COLUMNS}",
                                          args).fetchone()
                took(row is not None)
                if row is None:
                    return None
                parked, epoch = self._unpark(row)
                if epoch != self.store.nonce_epoch():  # a dead blob (a copy met after a restore): it goes
                    return None
                if step is not None:
                    self._mark_step(session_id, parked, step)
                if admit is not None:
                    admit(parked)
        return parked

    # --- the optimistic step (issue 30, round four; docs/threat-model.md, "The optimistic step") --
    def commit_step(self, parked: ParkedSession, step: Step | None, admit: Callable[[], None],
                    park: NewPark | None, finish: Callable[[], None] | None = None) -> bytes | None:
        """The one transaction of an optimistic step that ran on ``parked`` (``check_and_read``): under the
        client's row lock and the take counter's (the restore guard compared first: a restored
        database has its epoch bumped and its parked rows deleted here), the row is taken only if
        it is still that very park (its sealed bytes unchanged: no other step, abort or purge took
        it since); ``admit`` runs (the engine's admission: the park id consumed once, in this nonce
        epoch); then the new state is parked in its place, with the renewal of the lock it holds
        and the step marker saying it parked (``step_outcome``: a dead worker's committed step
        sends what it produced), or, with ``park`` None, the row goes with the session's marker
        and ``finish`` runs (the kept result). Anything raised rolls all of it back.

        Returns the new park's version (``b""`` without a park), or None if the row was no longer
        that park: nothing was committed, and what the step computed must not leave."""
        sealed = None if park is None else self._seal_park(parked, park)
        with self.store.transaction():
            self.store.lock_client(parked.client_id)  # the client's row first, as every take
            with self.store.taking() as took:
                if not self._replace_if_unchanged(parked, sealed, park):
                    return None  # nothing written (a restore found here is committed: its bump)
                took(True)
                admit()
                if park is not None:
                    self._parked_again(parked, park, step)
                else:
                    self.store._execute("DELETE FROM session_steps WHERE session_id = ?", (parked.session_id,))
                    if finish is not None:
                        finish()
        return b"" if sealed is None else _version(sealed[0])

    def _seal_park(self, parked: ParkedSession, park: NewPark) -> tuple[bytes, bytes]:
        """The sealed state and outbox of ``park`` (bound to ``parked``'s session, client and operation)."""
        return self._seal_state((parked.session_id, parked.client_id, parked.operation), park.data, park.outbox,
                                park.epoch)

    def _seal_state(self, key: tuple[str, str, str], data: bytes, outbox: list[str], epoch: int) -> tuple[bytes, bytes]:
        """A parked row's sealed state (tagged with its nonce epoch) and sealed outbox, bound to
        its session, client and operation (``key``)."""
        box = self.store._seal(json.dumps(outbox).encode("ascii"), "parked_sessions", "outbox", *key)
        tagged = epoch.to_bytes(_EPOCH_BYTES, "big") + data
        return self.store._seal(tagged, "parked_sessions", "data", *key), box

    def _replace_if_unchanged(self, parked: ParkedSession, sealed: tuple[bytes, bytes] | None,
                              park: NewPark | None) -> bool:
        """In ``commit_step``'s transaction: the row of ``parked``, if it is still that park and
        of the store's nonce epoch, is replaced by ``sealed`` (or deleted); whether it was (if
        not, nothing was written: another step committed first, an abort or the purge took it,
        or the restore guard's bump in this transaction deleted it). A row of a dead nonce epoch
        (a copy met after a restore) is deleted, as a take deletes it, and never replaced.

        The epoch is compared in the replacing statement itself (``EPOCH_MATCHES``; issue 30,
        round six: no read of its own), which then tells the take the epoch
        (``epoch_matched``); the epoch is read only when that statement wrote nothing, to tell
        a dead epoch's row (deleted) from a row that changed."""
        match = (parked.session_id, parked.client_id, parked.sealed)
        if sealed is None or park is None:  # (one is None exactly when the other is)
            done = self.store._execute(_DELETE_IF_UNCHANGED, (*match, parked.epoch)).rowcount == 1
        else:
            done = self.store._execute(_REPLACE_IF_UNCHANGED, (*sealed, int(park.holds_lock), time.time() + park.ttl,
                                                               *match, parked.epoch)).rowcount == 1
        if done:
            self.store.epoch_matched(parked.epoch)
        elif parked.epoch != self.store.nonce_epoch():
            self.store._execute(_DELETE_THAT_PARK, match)
        return bool(done)

    def _parked_again(self, parked: ParkedSession, park: NewPark, step: Step | None) -> None:
        """In ``commit_step``'s transaction, once the new state replaced the row: its epoch is the
        store's, the lock it holds is renewed to the park's expiry (``OperationLost`` if it was
        reclaimed) and the step marker records the park (how many of its messages came before it)."""
        if park.epoch != self.store.nonce_epoch():
            raise StateInvalid("the database's nonce epoch moved while this step ran: start the operation again")
        expires = time.time() + park.ttl
        if park.holds_lock and not self._renew_lock(parked.client_id, parked.session_id, expires):
            raise OperationLost("the client's operation lock was reclaimed while this session was stepped")
        if step is not None:
            self.store._execute("INSERT OR REPLACE INTO session_steps VALUES (?, ?, ?, ?, 1, ?, ?)",
                                (parked.session_id, parked.client_id, step.step_id, step.node_id, park.before,
                                 expires))

    def _mark_step(self, session_id: str, parked: ParkedSession, step: Step) -> None:
        """In the take's transaction: the step marker, and the lease of the lock the session holds."""
        self.store.lock_client(parked.client_id)  # the client's row before its marker, as everywhere
        now = time.time()
        self.store._execute("INSERT OR REPLACE INTO session_steps VALUES (?, ?, ?, ?, 0, ?, ?)",
                            (session_id, parked.client_id, step.step_id, step.node_id, len(parked.outbox),
                             now + step.lease))
        if parked.holds_lock:
            self._renew_lock(parked.client_id, session_id, now + step.lease)

    def ping(self) -> None:
        """One trivial query (readiness): raises if the database does not answer."""
        self.store._execute("SELECT COUNT(*) FROM service_nodes").fetchone()

    def is_parked(self, session_id: str) -> bool:
        """Whether a session of this id is parked (nothing is opened)."""
        return self.store._execute("SELECT 1 FROM parked_sessions WHERE session_id = ?",
                                   (session_id,)).fetchone() is not None

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
        self.store._execute("DELETE FROM session_devices WHERE expires < ?", (now,))
        return [self._unpark(row)[0] for row in rows]

    def _unpark(self, row: Any) -> tuple[ParkedSession, int]:
        """A row as a ParkedSession (state and outbox opened: ``StoreCorrupted`` if tampered
        with) and the nonce epoch its state carries."""
        key = (row[0], row[1], row[2])
        tagged = self.store._unseal(row[3], "parked_sessions", "data", *key)
        outbox = json.loads(self.store._unseal(row[4], "parked_sessions", "outbox", *key))
        epoch = int.from_bytes(tagged[:_EPOCH_BYTES], "big")
        sealed = bytes(row[3])
        parked = ParkedSession(*key, tagged[_EPOCH_BYTES:], list(outbox), bool(row[5]), float(row[6]),
                               _version(sealed), sealed, epoch)
        return parked, epoch

    def count(self) -> int:
        """How many sessions are parked."""
        row = self.store._execute("SELECT COUNT(*) FROM parked_sessions").fetchone()
        return int(row[0])


_EPOCH_BYTES = 8


def _version(sealed: bytes) -> bytes:
    """A park's fingerprint (``ParkedSession.version``)."""
    return hashlib.blake2b(sealed, digest_size=16, person=b"portal-mpc-park").digest()
