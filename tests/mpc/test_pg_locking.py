"""PostgreSQL: a connection pool and row-level locks instead of one global lock (issue 26, item 5;
docs/operations.md, "PostgreSQL: connections and locking").

Two clients' operations commit while a third client's rows are held locked by an open
transaction (of the store, and of another connection); the counters that the global lock used to
keep exact stay exact when many threads race on one client (attempts, the operation lock,
device enrolment, the take counter and single-use park ids); the commit-ambiguity check still
tells a transaction lost at COMMIT that committed from one that did not; and a new pooled
connection (not only a lost one) makes the restore guard compare. Skipped without a server
($PORTAL_MPC_TEST_POSTGRES, tests/mpc/conftest.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc.backup.attempts import AttemptCounter
from mpc.errors import ClientLockedOut, InputInvalid, OperationInProgress, StoreUnavailable
from mpc.service.store import ServiceStore, Step
from mpc.storage.backends import PostgresStore, open_store
from mpc.storage.restore_guard import RestoreGuard

from .conftest import data_for, new_wallet, verify_result
from .test_restore_guard import _Backup

THREADS = 8
HELD = 60.0  # the longest a held transaction waits to be released (the test fails long before)


@pytest.fixture
def store(postgres_schema_url: str) -> Iterator[PostgresStore]:
    """A PostgreSQL store whose pool can serve every racing thread at once."""
    opened = open_store(f"{postgres_schema_url}&pool_size={THREADS + 2}")
    assert isinstance(opened, PostgresStore)
    yield opened
    opened.close()


def _race(action: Callable[[int], Any], count: int = THREADS) -> list[Any]:
    """``action(i)`` in ``count`` threads released at once; each one's result or exception."""
    start = threading.Barrier(count)

    def run(i: int) -> Any:
        start.wait()
        try:
            return action(i)
        except Exception as exc:  # noqa: BLE001 - the caller counts the outcomes
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


class _Holder:
    """A transaction of the store, held open on another thread with client ``client_id``'s row
    locked and written (what a slow operation of that client does), until ``release``."""

    def __init__(self, store: PostgresStore, client_id: str) -> None:
        self.held, self.done = threading.Event(), threading.Event()
        self._go = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(store, client_id), daemon=True)
        self.thread.start()
        assert self.held.wait(10), "the holder could not open its transaction"

    def _hold(self, store: PostgresStore, client_id: str) -> None:
        with store.transaction():
            store.lock_client(client_id)
            store.update_client(client_id, signing_share_status="STORED_DATABASE")
            self.held.set()
            self._go.wait(HELD)
        self.done.set()

    def release(self) -> None:
        self._go.set()
        self.thread.join(10)


def _raw_row_lock(postgres_url: str, schema: str, client_id: str) -> Any:
    """Another connection holding ``FOR UPDATE`` on the client's row in an open transaction (the
    strongest row lock: it also blocks inserts of rows referencing the client)."""
    import psycopg

    conn = psycopg.connect(postgres_url)  # not autocommit: the lock lasts until rollback
    conn.execute(f'SET search_path TO "{schema}"')
    assert conn.execute("SELECT client_id FROM clients WHERE client_id = %s FOR UPDATE", (client_id,)).fetchone()
    return conn


# --- the test --------------------------------------------------------------------------------
def test_two_clients_sign_while_a_third_clients_transaction_is_held_open(store: PostgresStore,
                                                                          postgres_url: str) -> None:
    """A store transaction of a third client and a raw connection's lock on a fourth client's
    row stay open while two clients sign at once (the global lock made both signs wait)."""
    custodian = mpc.Custodian(store)
    first, second = new_wallet(custodian), new_wallet(custodian)
    first.generate()
    second.generate()
    third, fourth = custodian.create_client(), custodian.create_client()
    holder = _Holder(store, third)
    raw = _raw_row_lock(postgres_url, str(store.schema), fourth)
    try:
        chains = ("ethereum", "solana")
        signed = _race(lambda i: (first, second)[i].sign(chains[i], data_for(chains[i])), 2)
        assert not holder.done.is_set()  # both committed while the third transaction was open
        for outcome, chain in zip(signed, chains):
            assert isinstance(outcome, tuple), outcome  # (the device's result, the custodian's)
            verify_result(outcome[0], data_for(chain))
        assert store.client(first.client_id).operation is None  # each released its operation lock
    finally:
        raw.rollback()
        raw.close()
        holder.release()
    assert holder.done.is_set()
    assert store.client(third).signing_share_status == "STORED_DATABASE"


def test_the_same_clients_transactions_still_wait_for_each_other(store: PostgresStore) -> None:
    """The row lock serialises what must be: the held client's operation lock cannot be taken
    until its transaction ends (then it is, with what that transaction wrote)."""
    custodian = mpc.Custodian(store)
    client_id = custodian.create_client()
    holder = _Holder(store, client_id)
    acquired = threading.Event()

    def acquire() -> None:
        custodian._acquire(client_id, "backup", "waiting-session")
        acquired.set()

    waiter = threading.Thread(target=acquire, daemon=True)
    waiter.start()
    assert not acquired.wait(0.5)  # blocked on the client's row
    holder.release()
    assert acquired.wait(10)
    assert store.client(client_id).operation_session == "waiting-session"


# --- counters that relied on the global lock stay exact ----------------------------------------------
def test_racing_attempts_are_admitted_exactly_up_to_the_limit(store: PostgresStore) -> None:
    store.create_client("c1", "STORED_CLIENT")
    attempts = AttemptCounter(store, limit=5)
    outcomes = _race(lambda _: attempts.admit("c1"), 12)
    assert sorted(o for o in outcomes if isinstance(o, int)) == [1, 2, 3, 4, 5]  # no lost update
    assert sum(isinstance(o, ClientLockedOut) for o in outcomes) == 7
    assert attempts.failures("c1") == 5


def test_racing_failures_are_all_counted(store: PostgresStore) -> None:
    store.create_client("c1", "STORED_CLIENT")
    attempts = AttemptCounter(store, limit=100)
    outcomes = _race(lambda _: attempts.failed("c1"))
    assert sorted(outcomes) == list(range(1, THREADS + 1))
    assert attempts.failures("c1") == THREADS


def test_only_one_of_racing_operations_takes_the_clients_lock(store: PostgresStore) -> None:
    custodian = mpc.Custodian(store)
    client_id = custodian.create_client()
    outcomes = _race(lambda i: custodian._acquire(client_id, "backup", f"session-{i}"))
    winners = [i for i, outcome in enumerate(outcomes) if outcome is None]
    assert len(winners) == 1
    assert all(isinstance(o, OperationInProgress) for o in outcomes if o is not None)
    assert store.client(client_id).operation_session == f"session-{winners[0]}"


def test_only_one_of_racing_device_enrolments_wins(store: PostgresStore) -> None:
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    keys = [bytes([i]) * 32 for i in range(THREADS)]
    outcomes = _race(lambda i: service.enrol_device("c1", keys[i]))
    assert outcomes.count(True) == 1 and outcomes.count(False) == THREADS - 1
    registered = service.device("c1")
    assert registered is not None and registered[0] == keys[outcomes.index(True)]


def test_racing_takes_count_exactly_and_a_park_id_is_resumed_once(store: PostgresStore) -> None:
    now = time.time()
    distinct = _race(lambda i: store.consume_park_id(f"park-{i}", now, now - 3600, epoch=1))
    assert distinct == [True] * THREADS
    assert store.take_counter() == THREADS  # no take lost to a concurrent delete + insert
    same = _race(lambda _: store.consume_park_id("park-once", now, now - 3600, epoch=1))
    assert same.count(True) == 1 and same.count(False) == THREADS - 1
    assert store.take_counter() == THREADS + 1


def test_a_guard_never_sees_a_concurrent_take_as_a_restore(store: PostgresStore, tmp_path: Path) -> None:
    """Takes on many threads record the guard after their commits: a comparison made meanwhile
    must never find the database behind (it reads the counter under the take counter's lock)."""
    assert not store.attach_restore_guard(RestoreGuard(tmp_path / "guard"))
    now = time.time()
    outcomes = _race(lambda i: store.consume_park_id(f"park-{i}", now, now - 3600, epoch=1) if i % 2
                     else store.check_restore_guard())
    assert outcomes == [False, True] * (THREADS // 2)
    assert store.restores_detected == 0 and store.nonce_epoch() == 1


def test_a_deadlock_victim_is_store_unavailable_and_wrote_nothing(store: PostgresStore) -> None:
    """Two transactions locking two clients in opposite orders (the engine never does: one
    client per transaction, ``reap`` in client order): PostgreSQL rolls one back (after its
    ``deadlock_timeout``, 1 s by default) and the caller hears ``STORE_UNAVAILABLE``."""
    for client_id in ("a", "b"):
        store.create_client(client_id, "NOT_CREATED")
    both = threading.Barrier(2)

    def cross(first: str, second: str) -> None:
        with store.transaction():
            store.lock_client(first)
            store.update_client(first, has_wallet=1)
            both.wait()
            store.lock_client(second)

    outcomes = _race(lambda i: cross(*(("a", "b"), ("b", "a"))[i]), 2)
    victims = [o for o in outcomes if isinstance(o, StoreUnavailable)]
    assert len(victims) == 1 and outcomes.count(None) == 1, outcomes
    assert "rolled it back" in str(victims[0])
    assert [store.client(c).has_wallet for c in ("a", "b")].count(True) == 1  # the victim's update is gone


# --- the commit-ambiguity check, with a pool ------------------------------------------------------------
def _cut_at_commit(store: PostgresStore, before: bool, postgres_url: str) -> None:
    """Make the transaction's COMMIT fail as a lost connection: ``before`` it reaches the
    server (the backend is killed first) or after (it commits; the answer is lost)."""
    import psycopg

    conn = store._local.conn
    execute = conn.execute

    def cut(query: Any, *args: Any, **kwargs: Any) -> Any:
        if query != "COMMIT":
            return execute(query, *args, **kwargs)
        if before:
            with psycopg.connect(postgres_url, autocommit=True) as killer:
                killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            time.sleep(0.1)
            return execute(query, *args, **kwargs)  # raises: the connection is gone
        execute(query, *args, **kwargs)
        conn.close()
        raise psycopg.OperationalError("the connection was lost while COMMIT was answered")

    conn.execute = cut


def test_a_connection_lost_at_commit_after_the_commit_returns_normally(store: PostgresStore,
                                                                        postgres_url: str) -> None:
    store.create_client("c1", "NOT_CREATED")
    with store.transaction():
        store.update_client("c1", signing_share_status="STORED_CLIENT")
        _cut_at_commit(store, False, postgres_url)
    assert store.client("c1").signing_share_status == "STORED_CLIENT"
    assert store.reconnects == 1


def test_a_connection_lost_at_commit_before_it_arrived_says_nothing_was_written(store: PostgresStore,
                                                                                 postgres_url: str) -> None:
    store.create_client("c1", "NOT_CREATED")
    with pytest.raises(StoreUnavailable, match="nothing was written"):
        with store.transaction():
            store.update_client("c1", signing_share_status="STORED_CLIENT")
            _cut_at_commit(store, True, postgres_url)
    assert store.client("c1").signing_share_status == "NOT_CREATED"


# --- the restore guard on a new pooled connection ------------------------------------------------------
def test_a_new_pooled_connection_makes_the_restore_guard_compare(store: PostgresStore, tmp_path: Path) -> None:
    """No connection is lost: the pool grows (one connection is held by an open transaction),
    and the new connection may reach a restored database: the guard compares before its first
    statement, and bumps the epoch."""
    assert not store.attach_restore_guard(RestoreGuard(tmp_path / "guard"))
    store.create_client("c1", "STORED_CLIENT")
    backup = _Backup(store, tmp_path)
    backup.take()
    now = time.time()
    assert store.consume_park_id("park-1", now, now - 3600, epoch=1)
    backup.restore()
    assert store.connections == 1 and store.restores_detected == 0
    holder = _Holder(store, "c1")  # holds the pool's one connection: the next statement needs another
    try:
        assert store.nonce_epoch() == 2
    finally:
        holder.release()
    assert store.connections == 2 and store.reconnects == 0 and store.restores_detected == 1


# --- the pool's size ---------------------------------------------------------------------------------
def test_the_pool_size_is_a_url_option(postgres_schema_url: str) -> None:
    with pytest.raises(InputInvalid, match="pool_size"):
        PostgresStore(f"{postgres_schema_url}&pool_size=0")
    with pytest.raises(InputInvalid, match="pool_size"):
        PostgresStore(f"{postgres_schema_url}&pool_size=lots")
    sized = PostgresStore(f"{postgres_schema_url}&pool_size=3")
    try:
        assert sized.pool_size == 3 and sized._pool.max_size == 3
        assert "pool_size" not in sized._dsn  # never passed on to libpq
    finally:
        sized.close()


def test_a_take_waiting_for_its_clients_row_holds_up_no_other_clients_take(store: PostgresStore) -> None:
    """A take locks its client's row before the take counter's lock that every take needs: while
    one client's row is held (a slow operation of that client), its own take waits and another
    client's take goes on."""
    service = ServiceStore(store)
    for client_id in ("slow", "other"):
        store.create_client(client_id, "NOT_CREATED")
        service.park(f"s-{client_id}", client_id, "sign", b"state", [], False, 60)
    holder = _Holder(store, "slow")
    try:
        waiting = ThreadPoolExecutor(1)
        slow_take = waiting.submit(service.take, "s-slow", Step("step-slow", "node-a", 60.0), "slow")
        other = ThreadPoolExecutor(1).submit(service.take, "s-other", Step("step-other", "node-a", 60.0), "other")
        assert other.result(timeout=HELD) is not None  # not held up by the waiting take
        assert not slow_take.done()  # still waits for its client's row
    finally:
        holder.release()
    assert slow_take.result(timeout=HELD) is not None


def test_a_transaction_takes_each_lock_once(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking again for a lock the transaction holds costs no round trip (a take asks for the
    take counter's lock in ``taking``, the restore-guard comparison and the counter's write)."""
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    service.park("s1", "c1", "sign", b"state", [], False, 60)
    statements: list[tuple[str, tuple[Any, ...]]] = []
    execute = store._execute

    def counted(sql: str, args: tuple[Any, ...] = ()) -> Any:
        statements.append((sql, tuple(args)))
        return execute(sql, args)

    monkeypatch.setattr(store, "_execute", counted)
    assert service.take("s1", Step("step-1", "node-a", 60.0), "c1") is not None
    locks = [(sql, args) for sql, args in statements if "pg_advisory_xact_lock" in sql or "FOR NO KEY UPDATE" in sql]
    assert locks and len(locks) == len(set(locks))  # each lock asked for once
    assert sum("FOR NO KEY UPDATE" in sql for sql, _ in locks) == 1  # the client's row, once


def test_a_reap_waiting_for_one_clients_row_holds_no_other_clients_row(store: PostgresStore) -> None:
    """Each lost step is buried in a transaction of its own: a reap that waits for one client's
    row (held by a slow operation) has committed the clients before it and holds none of them."""
    service = ServiceStore(store)
    for client_id in ("a-other", "b-slow"):
        store.create_client(client_id, "NOT_CREATED")
        service.park(f"s-{client_id}", client_id, "sign", b"state", [], False, 60)
        assert service.take(f"s-{client_id}", Step(f"step-{client_id}", "node-gone", 60.0), client_id) is not None
    holder = _Holder(store, "b-slow")
    try:
        reaping = ThreadPoolExecutor(1).submit(service.reap)
        deadline = time.monotonic() + HELD
        while _marker_node(store, "s-a-other") != "" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _marker_node(store, "s-a-other") == ""  # buried (a tombstone) and committed
        service.park("s-a-again", "a-other", "sign", b"state", [], False, 60)
        taken = ThreadPoolExecutor(1).submit(service.take, "s-a-again", Step("step-again", "node-a", 60.0), "a-other")
        assert taken.result(timeout=HELD) is not None  # its row is not held by the waiting reap
        assert not reaping.done() and _marker_node(store, "s-b-slow") == "node-gone"
    finally:
        holder.release()
    assert reaping.result(timeout=HELD) == 2 and _marker_node(store, "s-b-slow") == ""


def _marker_node(store: PostgresStore, session_id: str) -> str | None:
    row = store._execute("SELECT node_id FROM session_steps WHERE session_id = ?", (session_id,)).fetchone()
    return None if row is None else str(row[0])


def test_a_read_only_transaction_is_given_no_transaction_id(store: PostgresStore) -> None:
    """Only a transaction that wrote reads its id for the commit-ambiguity check: one that only
    read is never given an id (its COMMIT then writes no WAL record and uses up no xid)."""
    store.create_client("c1", "NOT_CREATED")
    with store.transaction():
        store.client("c1")
        assert store._execute("SELECT txid_current_if_assigned()").fetchone()[0] is None
        assert store._local.wrote is False
    with store.transaction():
        store.put_hd("c1", "ed25519", "n", b"x")
        assert store._local.wrote is True
