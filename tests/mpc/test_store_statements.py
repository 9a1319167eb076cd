"""Issue 30, round six: fewer statements per step, the same transactional semantics
(docs/operations.md, "PostgreSQL: connections and locking"; benchmarks/README.md, "Service CPU,
round six").

An optimistic step's commit compares the park's nonce epoch in its own write and reads none (on
both backends), and what it refuses is refused as before: a park that changed, a park of a dead
epoch. On PostgreSQL a lock asked for is sent just before the transaction's next statement (a client's
row and the take counter's lock in one): the test plays a second connection and finds the lock
held once that statement ran, and a transaction whose last act is a lock still waits for it
before it commits; the transaction's id comes with its first write that wrote a row, and a
connection lost at COMMIT is still told apart (committed, or nothing written)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpc.errors import StoreUnavailable
from mpc.service.store import NewPark, ParkedSession, ServiceStore
from mpc.storage.backends import PostgresStore, open_store
from mpc.storage.store import SQLiteStore

from .test_pg_locking import _cut_at_commit, _raw_row_lock

_EPOCH_READ = "SELECT value FROM meta WHERE key = 'nonce_epoch'"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    """A store of each backend (PostgreSQL skipped without a server: tests/mpc/conftest.py)."""
    where = str(tmp_path / "custodian.sqlite3") if request.param == "sqlite" else \
        request.getfixturevalue("postgres_schema_url")
    opened = open_store(where, allow_plaintext=True)
    yield opened
    opened.close()


@pytest.fixture
def pg(postgres_schema_url: str) -> Iterator[PostgresStore]:
    opened = open_store(postgres_schema_url, allow_plaintext=True)
    assert isinstance(opened, PostgresStore)
    yield opened
    opened.close()


def _parked(store: SQLiteStore) -> tuple[ServiceStore, ParkedSession]:
    """Client ``c1`` with session ``s1`` parked (as a sign's open parks it), read as a step reads it."""
    store.create_client("c1", "NOT_CREATED")
    service = ServiceStore(store)
    service.park("s1", "c1", "sign", b"state one", ["m0"], False, 60.0)
    parked = service.peek("s1")
    assert parked is not None
    return service, parked


def _recorded(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts of the statements ``store`` runs from now on, in the order they ran (a lock
    sent with a statement runs before it)."""
    texts: list[str] = []
    execute = store._execute

    def recorded(sql: str, args: tuple[Any, ...] = ()) -> Any:
        rows = execute(sql, args)
        texts.append(sql)
        return rows

    monkeypatch.setattr(store, "_execute", recorded)
    return texts


def test_a_steps_commit_reads_no_epoch_and_its_take_knows_the_one_it_matched(
        store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    service, parked = _parked(store)
    texts = _recorded(store, monkeypatch)
    seen: list[int] = []
    version = service.commit_step(parked, None, lambda: seen.append(store.nonce_epoch()),
                                  NewPark(b"state two", ["m0", "m1"], False, 60.0, parked.epoch))
    assert version and seen == [parked.epoch]
    assert not [text for text in texts if text.startswith(_EPOCH_READ)], texts
    again = service.peek("s1")
    assert again is not None and again.data == b"state two" and again.outbox == ["m0", "m1"]


def test_a_commit_on_a_park_that_changed_writes_nothing(store: SQLiteStore) -> None:
    service, parked = _parked(store)
    service.park("s1", "c1", "sign", b"another step's state", ["m0", "x"], False, 60.0)  # another step committed
    admitted: list[bool] = []
    assert service.commit_step(parked, None, lambda: admitted.append(True),
                               NewPark(b"state two", ["m0", "m1"], False, 60.0, parked.epoch)) is None
    now = service.peek("s1")
    assert not admitted and now is not None and now.data == b"another step's state"
    assert store.take_counter() == 0  # nothing taken


def test_a_commit_on_a_park_of_a_dead_epoch_deletes_it_and_admits_nothing(store: SQLiteStore) -> None:
    service, parked = _parked(store)
    with store.transaction():  # the epoch moved without emptying the table (a copy met after a restore)
        store._set_meta("nonce_epoch", str(store.nonce_epoch() + 1))
    admitted: list[bool] = []
    assert service.commit_step(parked, None, lambda: admitted.append(True), None) is None
    assert not admitted and not service.is_parked("s1")


def test_an_opens_checks_read_in_one_statement_what_their_own_statements_read(
        store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ServiceStore.open_checks`` (issue 30, round seven): the cap's count and earliest expiry
    (``parked_count``), whether the id is parked (``is_parked``), the nonce epoch
    (``nonce_epoch``) and the id's operation and device key for this client (``peek``,
    ``session_device``), as those read them, for sessions of both kinds, of another client,
    expired, unknown; the epoch as stored or 1 while none is; one statement."""
    for client in ("c1", "c2"):
        store.create_client(client, "NOT_CREATED")
    service = ServiceStore(store)
    for sid, client, op, key, pending, ttl in (("s1", "c1", "sign", b"k1", False, 60.0),
                                               ("s2", "c1", "recover", b"k2", True, 60.0),
                                               ("s3", "c2", "sign", b"k3", False, 60.0),
                                               ("s4", "c1", "sign", b"k1", False, -5.0)):  # s4: expired
        service.bind_session(sid, client, key, pending, 60.0)
        service.park(sid, client, op, b"state", ["m"], False, ttl)
    for stored_epoch in (None, 7):
        if stored_epoch is not None:
            with store.transaction():
                store._set_meta("nonce_epoch", str(stored_epoch))
        now = time.time()
        for sid in ("s1", "s2", "s3", "s4", "s9"):
            for client in ("c1", "c2"):
                for pending in (False, True):
                    texts = _recorded(store, monkeypatch)
                    checks = service.open_checks(sid, client, pending, now, epoch=True, mine=True)
                    assert len(texts) == 1
                    monkeypatch.undo()
                    parked, bound = service.peek(sid), service.session_device(sid, client)
                    assert (checks.live, checks.first_expiry) == service.parked_count(client, pending, now)
                    assert checks.parked == service.is_parked(sid)
                    assert checks.epoch == store.nonce_epoch() == (stored_epoch or 1)
                    assert checks.operation == (parked.operation if parked and parked.client_id == client else None)
                    assert checks.device == (None if bound is None else bound[0])
    plain = service.open_checks("s1", "c1", False, time.time())
    assert plain.live == 1 and plain.parked and plain.epoch is None and plain.operation is None and plain.device is None


# --- PostgreSQL: locks sent with the next statement ------------------------------------------------------
def _row_lock_free(postgres_url: str, schema: str) -> bool:
    """Whether another connection can lock client ``c1``'s row at once (``NOWAIT``)."""
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        try:
            conn.execute("SELECT 1 FROM clients WHERE client_id = 'c1' FOR NO KEY UPDATE NOWAIT")
        except psycopg.errors.LockNotAvailable:
            return False
        return True


def test_a_lock_asked_is_held_once_the_next_statement_ran(pg: PostgresStore, postgres_url: str) -> None:
    pg.create_client("c1", "NOT_CREATED")
    assert pg.schema is not None
    with pg.transaction():
        pg.lock_client("c1")
        pg.backups("c1")  # any statement
        assert not _row_lock_free(postgres_url, pg.schema)
    assert _row_lock_free(postgres_url, pg.schema)


def test_a_transaction_whose_last_act_is_a_lock_waits_for_it_before_committing(
        pg: PostgresStore, postgres_url: str) -> None:
    pg.create_client("c1", "NOT_CREATED")
    assert pg.schema is not None
    holder = _raw_row_lock(postgres_url, pg.schema, "c1")
    done = threading.Event()

    def lock_only() -> None:
        with pg.transaction():
            pg.lock_client("c1")
        done.set()

    thread = threading.Thread(target=lock_only, daemon=True)
    thread.start()
    try:
        assert not done.wait(1.0)  # waiting for the row, as a lock statement of its own would
    finally:
        holder.rollback()
        holder.close()
    assert done.wait(30)


def test_a_takes_row_lock_and_counter_lock_share_one_statement(pg: PostgresStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service, parked = _parked(pg)
    texts = _recorded(pg, monkeypatch)
    assert service.commit_step(parked, None, lambda: None, None) == b""
    locks = [text for text in texts if "FOR NO KEY UPDATE" in text or "pg_advisory_xact_lock" in text]
    assert len(locks) == 1 and "FOR NO KEY UPDATE" in locks[0] and "pg_advisory_xact_lock" in locks[0], texts
    assert texts[0] == locks[0]  # before anything the locks protect


@pytest.mark.parametrize("committed", [True, False], ids=["lost-after-commit", "lost-before-commit"])
def test_the_transaction_id_comes_from_its_first_write_that_wrote_a_row(
        pg: PostgresStore, postgres_url: str, committed: bool) -> None:
    """A first write that wrote no row gives no id; the next one does; a connection lost at
    COMMIT is then told apart as before."""
    pg.create_client("c1", "NOT_CREATED")

    def body() -> None:
        with pg.transaction():
            assert pg.release_operation("nobody") is False  # wrote no row
            pg.update_client("c1", signing_share_status="STORED_CLIENT")
            _cut_at_commit(pg, not committed, postgres_url)

    if committed:
        body()
    else:
        with pytest.raises(StoreUnavailable, match="nothing was written"):
            body()
    assert (pg.client("c1").signing_share_status == "STORED_CLIENT") == committed


def test_a_transaction_that_wrote_no_row_lost_at_commit_returns_normally(pg: PostgresStore,
                                                                        postgres_url: str) -> None:
    pg.create_client("c1", "NOT_CREATED")
    with pg.transaction():
        assert pg.release_operation("nobody") is False
        _cut_at_commit(pg, False, postgres_url)
    assert pg.client("c1").signing_share_status == "NOT_CREATED" and pg.reconnects == 1


def test_a_last_lock_on_a_lost_connection_is_store_unavailable_and_the_store_goes_on(
        pg: PostgresStore, postgres_url: str) -> None:
    """The lock sent before COMMIT fails as any statement of the transaction would: rolled back,
    ``STORE_UNAVAILABLE``, the connection replaced (none kept checked out)."""
    import psycopg

    pg.create_client("c1", "NOT_CREATED")
    with pytest.raises(StoreUnavailable, match="rolled back"), pg.transaction():
        pg.lock_client("c1")
        with psycopg.connect(postgres_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pg._local.conn.info.backend_pid,))
    assert pg._local.conn is None and pg.reconnects == 1
    with pg.transaction():  # the store goes on, on another connection
        pg.lock_client("c1")
        assert pg.client("c1").signing_share_status == "NOT_CREATED"
