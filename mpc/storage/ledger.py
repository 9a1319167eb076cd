"""The revocation ledger: what a restore of the custodian's database must never undo (issue 31).

A database restored from a snapshot forgets every revocation made since: a recover's replaced
signing shares come back (the stolen device signs again), a replaced or revoked token works
again, failed-attempt counts and lock-outs roll back, and a recorded possession proof replays
into the restored parked recover. Nothing inside the database can remember what its restore
forgets, so these facts are also kept *outside* its restore boundary, in an append-only
``RevocationLedger`` (the way stutxo/mercurylayer keeps its "consumed" tombstones outside the
database). Records (each one JSON body, ``kind`` and ``client_id`` always present)::

  share_replaced      curve, share (the client's public share: Q1 or its FROST verifying share,
                      ``mpc.signing.client_share_id``) a recover replaced: never signs again
  credential_revoked  credential ("token"; "device_key" once devices have keys), digest (hex of
                      the credential's hash as the service stores it): never authenticates again
  attempts            count, since (failed proofs of possession; 0 after a success or an unlock),
                      locked (the count reached the limit): the effective count is
                      max(database, ledger), so a restore cannot reset it
  nonce_consumed      scope ("possession"), nonce (hex): a one-time authorisation seen once
                      (a recorded frame replayed into a restored session is refused)

Integrity: record ``i`` (its body holds ``seq = i``) carries ``MAC_i = BLAKE2b-256(key,
MAC_{i-1} ‖ len(body) ‖ body)`` with ``MAC_{-1}`` = 32 zero bytes, so an edited, removed or
reordered record breaks the chain. A removed *last* record leaves a valid chain: the store's
``meta`` therefore keeps the ledger length it has seen (``ledger_seen``, raised after each
append; it lags the ledger after a restore, it never leads it). A ledger shorter than that, or
shorter than this process has read, or one whose chain fails, raises ``LedgerCorrupted``: refuse
to serve, investigate (``docs/operations.md``, Revocation ledger).

Key: 32 bytes of its own (``LedgerKey``): ``$PORTAL_MPC_LEDGER_KEY_FILE`` (a store-key file,
``python -m mpc store-key new --out FILE``), else derived from the store's current local key
(BLAKE2b with a domain tag: ``LocalKeyProvider.derive``). After a store key rotation, point
``$PORTAL_MPC_LEDGER_KEY_FILE`` at the key file the ledger was made with. Plaintext test stores
pass a key explicitly (``LedgerKey.random()``).

Implementations: :class:`FileLedger` (one line per record, appended and fsync'd under
``flock``, mode 0600: the default for one node, next to the restore guard) and
:class:`PostgresLedger` (table ``revocation_ledger`` in its own database or schema, whose backups
are never restored together with the store's: several nodes). ``open_ledger`` picks one from a
path or a ``postgresql://`` URL (``$PORTAL_MPC_LEDGER``, ``python -m mpc serve --ledger``).

After a restore (``reconcile``, run by ``SQLiteStore.attach_ledger`` before anything is served):
every revoked token still in ``client_tokens`` is deleted, every count of ``client_attempts``
raised to the ledger's, the clients whose stored signing shares were replaced are counted
(signing with them is refused at every sign), and the store's ``ledger_seen`` catches up. The
report is logged and shown in ``/readyz`` and the metrics.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast

from mpc.errors import InputInvalid, LedgerCorrupted, StoreKeyMissing, StoreUnavailable
from mpc.storage.sealing import LocalKeyProvider, Sealer
from mpc.storage.urls import connect_in_schema, split_schema

__all__ = [
    "RevocationLedger",
    "FileLedger",
    "PostgresLedger",
    "LedgerKey",
    "LedgerRecord",
    "LedgerReport",
    "open_ledger",
    "default_path",
    "reconcile",
    "ENV_VAR",
    "KEY_FILE_ENV",
    "SHARE_REPLACED",
    "CREDENTIAL_REVOKED",
    "ATTEMPTS",
    "NONCE_CONSUMED",
]


class LedgerStore(Protocol):
    """What the reconciliation uses of the store it re-applies the ledger to
    (``mpc.storage.store.SQLiteStore``, which imports this module: declared here, not imported)."""

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit of work."""

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any: ...

    def _has_table(self, table: str) -> bool: ...

    def _meta(self, key: str) -> str | None: ...

    def _set_meta(self, key: str, value: str) -> None: ...

    def _lock_key(self, name: str) -> None: ...

    def lock_client(self, client_id: str) -> None: ...


log = logging.getLogger("mpc.storage.ledger")

ENV_VAR = "PORTAL_MPC_LEDGER"  # a file path or a postgresql:// URL
KEY_FILE_ENV = "PORTAL_MPC_LEDGER_KEY_FILE"

SHARE_REPLACED = "share_replaced"
CREDENTIAL_REVOKED = "credential_revoked"
ATTEMPTS = "attempts"
NONCE_CONSUMED = "nonce_consumed"

_FIELDS: dict[str, dict[str, type]] = {
    SHARE_REPLACED: {"curve": str, "share": str},
    CREDENTIAL_REVOKED: {"credential": str, "digest": str},
    ATTEMPTS: {"count": int, "since": float, "locked": bool},
    NONCE_CONSUMED: {"scope": str, "nonce": str},
}
_COMMON = {"seq": int, "kind": str, "client_id": str, "at": float}
_MAC_BYTES = 32
_GENESIS = bytes(_MAC_BYTES)
_MAC_PERSON = b"portal-mpc/ledgr"  # BLAKE2b personalisation: 16 bytes
_KEY_LABEL = b"portal-mpc/revocation-ledger/v1"
_MAX_TEXT = 512


# --- key -----------------------------------------------------------------------------------------
class LedgerKey:
    """The ledger's 32-byte MAC key (never in a repr, never pickled)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
            raise InputInvalid("a ledger key is 32 bytes")
        self._key = bytes(key)

    @classmethod
    def random(cls) -> LedgerKey:
        """A fresh key (tests, plaintext stores)."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LedgerKey:
        """The key derived from a store-key file (0600, base64 of 32 bytes)."""
        return cls(LocalKeyProvider.from_file(path).derive(_KEY_LABEL))

    @classmethod
    def configured(cls, sealer: Sealer | None) -> LedgerKey:
        """``$PORTAL_MPC_LEDGER_KEY_FILE``'s key, else one derived from the store's current local
        key; ``StoreKeyMissing`` if there is neither."""
        path = os.environ.get(KEY_FILE_ENV)
        if path:
            return cls.from_file(path)
        derive = getattr(sealer.current if sealer is not None else None, "derive", None)
        if derive is None:
            raise StoreKeyMissing(f"the revocation ledger needs a key: set ${KEY_FILE_ENV} to a key file "
                                  "(python -m mpc store-key new --out FILE), or seal the store with a local key")
        return cls(derive(_KEY_LABEL))

    def mac(self, previous: bytes, body: bytes) -> bytes:
        """BLAKE2b-256(key, previous MAC ‖ len(body) ‖ body)."""
        digest = hashlib.blake2b(key=self._key, digest_size=_MAC_BYTES, person=_MAC_PERSON)
        digest.update(previous + len(body).to_bytes(4, "big") + body)
        return digest.digest()

    def __repr__(self) -> str:
        return "<LedgerKey>"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a ledger key is not pickled: every process reads it from its own configuration")


# --- records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerRecord:
    """One ledger record: its position, kind, client, time and the kind's fields."""

    seq: int
    kind: str
    client_id: str
    at: float
    fields: dict[str, Any]

    def to_body(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): the bytes the MAC covers."""
        doc = {"seq": self.seq, "kind": self.kind, "client_id": self.client_id, "at": self.at, **self.fields}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_body(cls, body: bytes) -> LedgerRecord:
        """Strict decoding: exactly the kind's fields, each of its type (``LedgerCorrupted`` otherwise)."""
        try:
            doc = json.loads(body.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise LedgerCorrupted("a ledger record is not JSON") from None
        if not isinstance(doc, dict) or doc.get("kind") not in _FIELDS:
            raise LedgerCorrupted("a ledger record has no known kind")
        wanted = {**_COMMON, **_FIELDS[doc["kind"]]}
        if set(doc) != set(wanted) or not all(_typed(doc[name], kind) for name, kind in wanted.items()):
            raise LedgerCorrupted(f"a {doc['kind']} record of the ledger has the wrong fields")
        fields = {name: doc[name] for name in _FIELDS[doc["kind"]]}
        return cls(doc["seq"], doc["kind"], doc["client_id"], float(doc["at"]), fields)


def _typed(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind is str:
        return isinstance(value, str) and len(value) <= _MAX_TEXT
    return isinstance(value, kind)


@dataclass
class _Index:
    """What the records say, folded: the sets checked on every authorisation and sign."""

    length: int = 0
    last_mac: bytes = _GENESIS
    shares: set[tuple[str, str, str]] = field(default_factory=set)
    credentials: set[tuple[str, str]] = field(default_factory=set)
    attempts: dict[str, tuple[int, float, bool]] = field(default_factory=dict)
    nonces: set[tuple[str, str]] = field(default_factory=set)

    def absorb(self, key: LedgerKey, rows: list[tuple[bytes, bytes]]) -> None:
        """Verify ``rows`` as the continuation of the chain and fold them in (all or nothing)."""
        records: list[LedgerRecord] = []
        mac = self.last_mac
        for body, stored in rows:
            mac = key.mac(mac, body)
            if not hmac.compare_digest(mac, stored):
                raise LedgerCorrupted(f"ledger record {self.length + len(records)} fails authentication: edited, "
                                      "removed or reordered records, or another key")
            record = LedgerRecord.from_body(body)
            if record.seq != self.length + len(records):
                raise LedgerCorrupted("ledger records are out of sequence")
            records.append(record)
        for record in records:
            self._fold(record)
        self.length += len(records)
        self.last_mac = mac

    def _fold(self, record: LedgerRecord) -> None:
        f, who = record.fields, record.client_id
        if record.kind == SHARE_REPLACED:
            self.shares.add((who, f["curve"], f["share"]))
        elif record.kind == CREDENTIAL_REVOKED:
            self.credentials.add((f["credential"], f["digest"]))
        elif record.kind == ATTEMPTS:
            self.attempts[who] = (f["count"], float(f["since"]), f["locked"])
        else:
            self.nonces.add((f["scope"], f["nonce"]))


# --- the interface -------------------------------------------------------------------------------
class RevocationLedger(ABC):
    """Append-only, MAC-chained revocation records outside the database (module docstring).

    Subclasses store raw ``(body, mac)`` rows: ``_exclusive`` (one appender at a time, across
    processes), ``_rows_after`` (the rows after the first ``have``, ``LedgerCorrupted`` if there
    are fewer than ``have``), ``_write``."""

    def __init__(self, key: LedgerKey) -> None:
        if not isinstance(key, LedgerKey):
            raise InputInvalid("a revocation ledger needs a LedgerKey")
        self._key = key
        self._index = _Index()
        self._mutex = threading.RLock()
        # Called with the new length after each append (the store's ``ledger_seen``: attach_ledger).
        self.observers: list[Callable[[int], None]] = []

    # backend
    @abstractmethod
    def _exclusive(self) -> AbstractContextManager[None]:
        """Hold the ledger's writer lock (this process and every other)."""

    @abstractmethod
    def _rows_after(self, have: int) -> list[tuple[bytes, bytes]]:
        """Every stored row after the first ``have`` (call within ``_exclusive`` to append)."""

    @abstractmethod
    def _write(self, seq: int, body: bytes, mac: bytes) -> None:
        """Store row ``seq`` durably (within ``_exclusive``)."""

    # reading
    def _unchanged(self) -> bool:
        """Whether the storage certainly holds nothing new since ``_mark_read`` (a cheap check)."""
        return False

    def _mark_read(self) -> None:
        """Remember the storage as read now (for ``_unchanged``)."""

    def refresh(self) -> None:
        """Read and verify what other processes appended since this one last read."""
        with self._mutex:
            if self._unchanged():
                return
            self._index.absorb(self._key, self._rows_after(self._index.length))
            self._mark_read()

    def verify(self) -> int:
        """Read the whole ledger again and check its chain from the first record; the length.
        A ledger that no longer extends what this process read is ``LedgerCorrupted``."""
        with self._mutex:
            rows, known = self._rows_after(0), self._index.length
            fresh = _Index()
            fresh.absorb(self._key, rows[:known])
            if fresh.length < known or not hmac.compare_digest(fresh.last_mac, self._index.last_mac):
                raise LedgerCorrupted("the ledger lost or changed records this process had read")
            fresh.absorb(self._key, rows[known:])
            self._index = fresh
            self._mark_read()
            return fresh.length

    def __len__(self) -> int:
        self.refresh()
        return self._index.length

    def records(self) -> list[LedgerRecord]:
        """Every record, verified, in order."""
        with self._mutex:
            rows = self._rows_after(0)
            _Index().absorb(self._key, rows)
            return [LedgerRecord.from_body(body) for body, _ in rows]

    def share_replaced(self, client_id: str, curve: str, share: str) -> bool:
        """Whether a recover replaced this client's signing share (its public share, hex)."""
        self.refresh()
        return (client_id, curve, share) in self._index.shares

    def credential_revoked(self, credential: str, digest: bytes) -> bool:
        """Whether this credential (its stored hash) was replaced or revoked."""
        self.refresh()
        return (credential, digest.hex()) in self._index.credentials

    def failures(self, client_id: str) -> int:
        """The client's failed-attempt count as the ledger last recorded it (0 if never)."""
        self.refresh()
        return self._index.attempts.get(client_id, (0, 0.0, False))[0]

    def nonce_seen(self, scope: str, nonce: bytes) -> bool:
        """Whether this one-time nonce was consumed."""
        self.refresh()
        return (scope, nonce.hex()) in self._index.nonces

    def snapshot(self) -> _Index:
        """The folded records, fresh (``reconcile``)."""
        self.refresh()
        return self._index

    # writing
    def append(self, kind: str, client_id: str, **fields: Any) -> LedgerRecord:
        """Append one record (durable when this returns) and tell the observers."""
        return cast(LedgerRecord, self._append(kind, client_id, fields, once=False))  # declines only ``once``

    def consume_nonce(self, client_id: str, scope: str, nonce: bytes) -> bool:
        """Record a one-time nonce as used; False (nothing appended) if it was used before."""
        return self._append(NONCE_CONSUMED, client_id, {"scope": scope, "nonce": nonce.hex()}, once=True) is not None

    def _append(self, kind: str, client_id: str, fields: dict[str, Any], *, once: bool) -> LedgerRecord | None:
        if kind not in _FIELDS or set(fields) != set(_FIELDS[kind]):
            raise InputInvalid(f"a {kind} ledger record takes {sorted(_FIELDS.get(kind, {}))}")
        with self._mutex, self._exclusive():
            self._index.absorb(self._key, self._rows_after(self._index.length))
            if once and (fields["scope"], fields["nonce"]) in self._index.nonces:
                return None
            record = LedgerRecord(self._index.length, kind, client_id, time.time(), dict(fields))
            body = record.to_body()
            LedgerRecord.from_body(body)  # what is written must read back
            mac = self._key.mac(self._index.last_mac, body)
            self._write(record.seq, body, mac)
            self._index.absorb(self._key, [(body, mac)])
            self._mark_read()
        for observer in self.observers:
            observer(record.seq + 1)
        return record


# --- a file (one node) ---------------------------------------------------------------------------
class FileLedger(RevocationLedger):
    """The ledger in a file (0600): one ``body<TAB>mac-hex`` line per record, appended and
    fsync'd under an exclusive ``flock`` (every process on this node shares it)."""

    def __init__(self, path: str | os.PathLike[str], key: LedgerKey) -> None:
        super().__init__(key)
        self.path = Path(path)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600))
        self._held: IO[bytes] | None = None  # the handle holding the writer lock, while held
        self._stamp: tuple[int, int, int] | None = None  # the file as this process last read it

    def __repr__(self) -> str:
        return f"FileLedger({str(self.path)!r})"

    @contextmanager
    def _locked(self, mode: int) -> Iterator[IO[bytes]]:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | _NOFOLLOW)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, mode)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._locked(fcntl.LOCK_EX) as handle:
            self._held = handle
            try:
                yield
            finally:
                self._held = None

    def _unchanged(self) -> bool:
        return self._stamp is not None and self._stamp == _stamp(os.stat(self.path))

    def _mark_read(self) -> None:
        self._stamp = _stamp(os.stat(self.path))

    def _rows_after(self, have: int) -> list[tuple[bytes, bytes]]:
        if self._held is not None:
            data = _read_all(self._held)
        else:
            with self._locked(fcntl.LOCK_SH) as handle:
                data = _read_all(handle)
        if data and not data.endswith(b"\n"):
            raise LedgerCorrupted("the ledger file ends in a partial record (truncated or torn)")
        rows = [_split_line(line) for line in data.split(b"\n")[:-1]]
        if len(rows) < have:
            raise LedgerCorrupted(f"the ledger file has {len(rows)} records, fewer than the {have} already read")
        if have and have == self._index.length and not hmac.compare_digest(rows[have - 1][1], self._index.last_mac):
            raise LedgerCorrupted("the ledger file's records were replaced since this process read them")
        return rows[have:]

    def _write(self, seq: int, body: bytes, mac: bytes) -> None:
        handle = self._held
        if handle is None:
            raise LedgerCorrupted("a ledger record is written only under the writer lock")
        handle.write(body + b"\t" + mac.hex().encode("ascii") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _stamp(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_size, info.st_mtime_ns, info.st_ino


def _read_all(handle: IO[bytes]) -> bytes:
    handle.seek(0)
    return handle.read()


def _split_line(line: bytes) -> tuple[bytes, bytes]:
    body, tab, mac = line.rpartition(b"\t")
    try:
        raw = bytes.fromhex(mac.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raw = b""
    if not tab or len(raw) != _MAC_BYTES:
        raise LedgerCorrupted("a line of the ledger file is malformed")
    return body, raw


# --- PostgreSQL (several nodes) ------------------------------------------------------------------
class PostgresLedger(RevocationLedger):
    """The ledger in table ``revocation_ledger`` of its own PostgreSQL database or schema
    (``dsn``, ``schema``): never backed up and restored together with the store's database."""

    _TABLE = "revocation_ledger"

    def __init__(self, dsn: str, key: LedgerKey, schema: str | None = None) -> None:
        super().__init__(key)
        try:
            import psycopg
        except ImportError:
            raise InputInvalid("a PostgreSQL ledger needs psycopg 3: pip install 'portal-mpc[postgres]'") from None
        self._psycopg = psycopg
        self._dsn, self.schema = dsn, schema
        self._conn = self._connect()
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {self._TABLE} (seq BIGINT PRIMARY KEY, "
                           "body BYTEA NOT NULL, mac BYTEA NOT NULL)")

    def __repr__(self) -> str:
        return f"PostgresLedger(schema={self.schema!r})"

    def _connect(self) -> Any:

        try:
            return connect_in_schema(self._psycopg, self._dsn, self.schema)
        except self._psycopg.OperationalError:
            raise StoreUnavailable("the revocation ledger's database cannot be reached") from None

    def _live(self) -> Any:
        """The connection, replaced first if it was lost (a failed statement is never retried:
        ``STORE_UNAVAILABLE``, and the next call reconnects)."""
        if self._conn.broken or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._unavailable(), self._live().transaction():
            self._conn.execute(f"LOCK TABLE {self._TABLE} IN SHARE ROW EXCLUSIVE MODE")
            yield

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        """This process's lock on the connection; a lost connection is ``STORE_UNAVAILABLE``."""
        with self._mutex:
            try:
                yield
            except self._psycopg.OperationalError:
                raise StoreUnavailable("the revocation ledger's database did not answer") from None

    def _rows_after(self, have: int) -> list[tuple[bytes, bytes]]:
        # One statement, one snapshot: the count and the rows agree even while another node appends.
        with self._unavailable():
            rows = self._live().execute(f"SELECT (SELECT COUNT(*) FROM {self._TABLE}), seq, body, mac FROM "
                                        f"{self._TABLE} WHERE seq >= %s ORDER BY seq", (have,)).fetchall()
            count = int(rows[0][0]) if rows else int(
                self._conn.execute(f"SELECT COUNT(*) FROM {self._TABLE}").fetchone()[0])
        if count < have:
            raise LedgerCorrupted(f"the ledger table has {count} records, fewer than the {have} already read")
        if rows and (count != have + len(rows) or any(int(row[1]) != have + i for i, row in enumerate(rows))):
            raise LedgerCorrupted("the ledger table has gaps in its sequence (records removed)")
        return [(bytes(row[2]), bytes(row[3])) for row in rows]

    def _write(self, seq: int, body: bytes, mac: bytes) -> None:
        self._conn.execute(f"INSERT INTO {self._TABLE} VALUES (%s, %s, %s)", (seq, body, mac))

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def default_path(restore_guard: str | os.PathLike[str]) -> Path:
    """The default ledger file of one node: ``revocation-ledger`` next to the restore guard file
    (the same storage, outside the database's backups)."""
    return Path(restore_guard).parent / "revocation-ledger"


def open_ledger(where: str, key: LedgerKey) -> RevocationLedger:
    """A ``PostgresLedger`` for a ``postgresql://`` URL (``?schema=NAME`` allowed), else a ``FileLedger``."""
    if not isinstance(where, str) or not where:
        raise InputInvalid("the ledger is a file path or a postgresql:// URL")
    if where.startswith(("postgresql://", "postgres://")):

        dsn, schema = split_schema(where)
        return PostgresLedger(dsn, key, schema)
    return FileLedger(where, key)


# --- after a restore -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerReport:
    """What ``reconcile`` found and re-applied (logged; ``/readyz`` and the metrics show it)."""

    length: int
    store_seen: int
    tokens_revoked: int = 0
    attempts_restored: int = 0
    replaced_shares: int = 0  # signing shares a recover replaced (every sign with one is refused)
    lockouts: int = 0

    @property
    def restored(self) -> bool:
        """The store lagged the ledger: restored (or it stopped between an append and its commit)."""
        return self.store_seen < self.length

    def to_json(self) -> dict[str, Any]:
        """The report as ``/readyz`` shows it."""
        return {"records": self.length, "store_seen": self.store_seen, "restored": self.restored,
                "tokens_revoked": self.tokens_revoked, "attempts_restored": self.attempts_restored,
                "replaced_shares": self.replaced_shares, "lockouts": self.lockouts}


def reconcile(store: LedgerStore, ledger: RevocationLedger) -> LedgerReport:
    """Re-apply every revocation and count the ledger holds to ``store`` (one transaction):
    revoked tokens deleted, attempt counts raised, ``ledger_seen`` caught up. A store that has
    seen more records than the ledger holds means the ledger lost some: ``LedgerCorrupted``."""
    ledger.verify()
    with store.transaction():
        seen = int(store._meta("ledger_seen") or 0)
        index = ledger.snapshot()
        if seen > index.length:
            raise LedgerCorrupted(f"the revocation ledger holds {index.length} records but the store has seen "
                                  f"{seen}: records were removed; refusing to serve")
        report = LedgerReport(index.length, seen, _revoke_tokens(store, index), _raise_attempts(store, index),
                              len(index.shares), sum(1 for *_, locked in index.attempts.values() if locked))
        note_seen(store, index.length)
    if report.restored:
        log.warning("the store is behind the revocation ledger (%d of %d records): restored; re-applied %d token "
                    "revocation(s), %d attempt count(s); %d replaced signing share(s) stay refused",
                    seen, index.length, report.tokens_revoked, report.attempts_restored,
                    report.replaced_shares)
    return report


def note_seen(store: LedgerStore, length: int) -> None:
    """Raise the store's ``ledger_seen`` to ``length`` (never lowers it)."""
    with store.transaction():
        store._lock_key("meta:ledger_seen")  # read and raised under its lock: never lowered by a race
        if int(store._meta("ledger_seen") or 0) < length:
            store._set_meta("ledger_seen", str(length))


def _revoke_tokens(store: LedgerStore, index: _Index) -> int:
    if not store._has_table("client_tokens"):
        return 0
    rows = store._execute("SELECT client_id, token_hash FROM client_tokens").fetchall()
    dead = [row[0] for row in rows if ("token", bytes(row[1]).hex()) in index.credentials]
    for client_id in dead:
        store._execute("DELETE FROM client_tokens WHERE client_id = ?", (client_id,))
    return len(dead)


def _raise_attempts(store: LedgerStore, index: _Index) -> int:
    if not store._has_table("client_attempts"):
        return 0
    raised = 0
    for client_id, (count, since, _) in sorted(index.attempts.items()):  # the row locks in one order
        store.lock_client(client_id)
        row = store._execute("SELECT failures FROM client_attempts WHERE client_id = ?", (client_id,)).fetchone()
        known = store._execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        if known is not None and count > (0 if row is None else int(row[0])):
            store._execute("DELETE FROM client_attempts WHERE client_id = ?", (client_id,))
            store._execute("INSERT INTO client_attempts VALUES (?, ?, ?)", (client_id, count, since))
            raised += 1
    return raised
