"""The store and the service tables on both backends: SQLite and PostgreSQL (when reachable)."""

from __future__ import annotations

import secrets
import time

import pytest

from mpc.errors import AuthFailed, ClientNotFound
from mpc.service.store import ServiceStore
from mpc.storage.backends import PostgresStore, open_store
from mpc.storage.sealing import LocalKeyProvider, Sealer
from mpc.storage.store import SQLiteStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(str(tmp_path / "store.sqlite3"))
        yield s
        s.close()
    else:
        yield request.getfixturevalue("postgres_store")


def test_open_store_picks_the_backend(tmp_path) -> None:
    assert type(open_store(":memory:")) is SQLiteStore
    assert type(open_store(f"sqlite:///{tmp_path}/x.db")) is SQLiteStore


def test_a_sqlite_commit_is_durable_once_it_returns(tmp_path) -> None:
    """FULL with the TRUNCATE journal (its truncation synced): DELETE at FULL syncs no unlink, so
    a power loss right after a commit could roll it back (docs/operations.md, Durable commits)."""
    store = SQLiteStore(str(tmp_path / "store.sqlite3"))
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "truncate"
    with store.transaction():
        store.create_client("c1", "NOT_CREATED")
    journal = tmp_path / "store.sqlite3-journal"
    assert journal.exists() and journal.stat().st_size == 0  # committed: truncated, nothing hot
    store.close()
    again = SQLiteStore(str(tmp_path / "store.sqlite3"))  # every connection sets it (not kept in the file)
    assert again._conn.execute("PRAGMA journal_mode").fetchone()[0] == "truncate"
    assert again.client("c1").client_id == "c1"
    again.close()


def test_a_database_an_operator_put_in_wal_mode_stays_in_it(tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "store.sqlite3"))
    store._execute("PRAGMA journal_mode = WAL")
    store.close()
    again = SQLiteStore(str(tmp_path / "store.sqlite3"))
    assert again._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    again.close()


def test_clients_shares_and_backups(store: SQLiteStore) -> None:
    store.create_client("c1", "NOT_CREATED")
    store.update_client("c1", secp256k1_public=b"\x02" * 33, has_wallet=1, operation_expires=1.5)
    record = store.client("c1")
    assert record.secp256k1_public == b"\x02" * 33 and record.has_wallet and record.operation_expires == 1.5
    with pytest.raises(ClientNotFound):
        store.client("nobody")
    store.put_share("c1", "signing", "", "ed25519", b"one")
    store.put_share("c1", "signing", "", "ed25519", b"two")  # replaces
    assert store.get_share("c1", "signing", "", "ed25519") == b"two"
    store.set_backup("c1", "CLOUD", "STORED_CUSTODIAN_BACKUP_SHARE", False)
    store.set_backup("c1", "CLOUD", "STORED_CLIENT_BACKUP_SHARE", True)
    assert store.backups("c1") == {"CLOUD": ("STORED_CLIENT_BACKUP_SHARE", True)}
    store.put_client_backup("c1", "CLOUD", "ed25519", b"box", b"rec")
    assert store.get_client_backup("c1", "CLOUD", "ed25519") == (b"box", b"rec")
    store.save_setup(b"setup")
    store.save_setup(b"setup2")
    assert store.load_setup() == b"setup2"


def test_signing_row_reads_what_a_sign_checks_each_time(store: SQLiteStore) -> None:
    """``signing_row`` (issue 30, round three): the wallet flag, the signing status and the signing
    share of one curve, in one read, exact at every call (a recover that replaces the share, an
    eject or a status change is seen at the next read)."""
    store.create_client("c1", "NOT_CREATED")
    store.create_client("c2", "STORED_CLIENT")
    assert store.signing_row("c1", "ed25519") == (False, "NOT_CREATED", None)
    store.update_client("c1", has_wallet=1, signing_share_status="STORED_CLIENT")
    store.put_share("c1", "signing", "", "ed25519", b"share one")
    store.put_share("c1", "backup", "CLOUD", "ed25519", b"a backup share")  # not a signing share
    store.put_share("c2", "signing", "", "ed25519", b"another client's")
    assert store.signing_row("c1", "ed25519") == (True, "STORED_CLIENT", b"share one")
    assert store.signing_row("c1", "secp256k1") == (True, "STORED_CLIENT", None)
    store.put_share("c1", "signing", "", "ed25519", b"share two")  # a recover replaces it
    assert store.signing_row("c1", "ed25519")[2] == b"share two"
    store.update_client("c1", signing_share_status="STORED_DATABASE")
    assert store.signing_row("c1", "ed25519")[:2] == (True, "STORED_DATABASE")
    record = store.client("c1")
    assert store.signing_row("c1", "ed25519") == (record.has_wallet, record.signing_share_status,
                                                  store.get_share("c1", "signing", "", "ed25519"))
    with pytest.raises(ClientNotFound):
        store.signing_row("nobody", "ed25519")


def test_signing_row_sees_another_connections_write(tmp_path) -> None:
    """Another process's write (a second connection to the same file) is read at once."""
    path = str(tmp_path / "shared.sqlite3")
    one, two = SQLiteStore(path), SQLiteStore(path)
    one.create_client("c1", "STORED_CLIENT")
    one.put_share("c1", "signing", "", "ed25519", b"before")
    assert two.signing_row("c1", "ed25519")[2] == b"before"
    one.put_share("c1", "signing", "", "ed25519", b"after")
    one.update_client("c1", signing_share_status="STORED_DATABASE")
    assert two.signing_row("c1", "ed25519") == (False, "STORED_DATABASE", b"after")
    one.close()
    two.close()


def test_signing_row_forgets_a_write_that_rolled_back(store: SQLiteStore) -> None:
    """Inside a transaction the row is read (its own write seen); once that transaction rolls
    back, the committed row is what the next read gives, never the write that was undone."""
    store.create_client("c1", "STORED_CLIENT")
    store.put_share("c1", "signing", "", "ed25519", b"committed")
    assert store.signing_row("c1", "ed25519")[2] == b"committed"
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_share("c1", "signing", "", "ed25519", b"undone")
            store.update_client("c1", signing_share_status="STORED_DATABASE")
            assert store.signing_row("c1", "ed25519") == (False, "STORED_DATABASE", b"undone")
            raise RuntimeError("the transaction fails")
    assert store.signing_row("c1", "ed25519") == (False, "STORED_CLIENT", b"committed")


def test_signing_row_is_read_again_after_any_change(tmp_path, monkeypatch) -> None:
    """An answer is given again only while the database provably did not change: any write by this
    connection (to any table) or a commit by another connection makes the next call read."""
    path = str(tmp_path / "shared.sqlite3")
    one, two = SQLiteStore(path), SQLiteStore(path)
    one.create_client("c1", "STORED_CLIENT")
    one.put_share("c1", "signing", "", "ed25519", b"share")
    reads: list[str] = []
    read = one._read_signing_row
    monkeypatch.setattr(one, "_read_signing_row", lambda *key: reads.append(key[0]) or read(*key))
    for _ in range(3):
        assert one.signing_row("c1", "ed25519")[2] == b"share"
    assert len(reads) == 1
    one.create_client("c2", "NOT_CREATED")  # this connection's write, another table's row
    assert one.signing_row("c1", "ed25519")[2] == b"share" and len(reads) == 2
    two.create_client("c3", "NOT_CREATED")  # another connection's commit
    assert one.signing_row("c1", "ed25519")[2] == b"share" and len(reads) == 3
    with one.transaction():  # never answered from memory inside a transaction
        one.signing_row("c1", "ed25519")
    assert len(reads) == 4
    one.close()
    two.close()


def test_signing_row_sees_a_database_file_restored_underneath(tmp_path) -> None:
    """A database file overwritten in place by an older copy while a store has it open (a restore
    nobody announced): the next read gives the restored row, not the answer read before."""
    path = tmp_path / "custodian.sqlite3"
    store = SQLiteStore(str(path))
    store.create_client("c1", "STORED_CLIENT")
    store.put_share("c1", "signing", "", "ed25519", b"old share")
    snapshot = path.read_bytes()
    store.put_share("c1", "signing", "", "ed25519", b"new share")
    assert store.signing_row("c1", "ed25519")[2] == b"new share"
    with open(path, "r+b") as file:  # the same inode, older content
        file.write(snapshot)
        file.truncate()
    assert store.signing_row("c1", "ed25519")[2] == b"old share"
    store.close()


def test_signing_row_sees_a_restore_made_through_its_own_connection(tmp_path) -> None:
    """A backup copied into the store's own connection (as ``tests/mpc/test_custodian_rollback.py``
    restores) changes neither ``total_changes`` nor ``data_version``: the schema cookie it bumps
    does."""
    import sqlite3

    store = SQLiteStore(str(tmp_path / "custodian.sqlite3"))
    store.create_client("c1", "STORED_CLIENT")
    store.put_share("c1", "signing", "", "ed25519", b"old share")
    snapshot = sqlite3.connect(":memory:")
    store._conn.backup(snapshot)
    store.put_share("c1", "signing", "", "ed25519", b"new share")
    store.update_client("c1", has_wallet=1)
    assert store.signing_row("c1", "ed25519") == (True, "STORED_CLIENT", b"new share")
    snapshot.backup(store._conn)
    assert store.signing_row("c1", "ed25519") == (False, "STORED_CLIENT", b"old share")
    store.close()


def test_signing_row_keeps_nothing_across_a_change_nor_in_a_raw_transaction(tmp_path) -> None:
    """Every answer kept goes at the first change (an ejected or deleted client's share does not
    stay in memory); a transaction opened outside ``transaction()`` is seen as one too."""
    store = SQLiteStore(str(tmp_path / "custodian.sqlite3"))
    for client in ("c1", "c2"):
        store.create_client(client, "STORED_CLIENT")
        store.put_share(client, "signing", "", "ed25519", client.encode())
    store.signing_row("c1", "ed25519")
    store.signing_row("c2", "ed25519")
    assert len(store._signing_rows) == 2
    store.update_client("c2", signing_share_status="NOT_CREATED")  # any change
    store.signing_row("c1", "ed25519")
    assert list(store._signing_rows) == [("c1", "ed25519")]
    store._conn.execute("BEGIN")
    store._conn.execute("UPDATE shares SET data = ? WHERE client_id = 'c1'", (b"undone",))
    assert store.signing_row("c1", "ed25519")[2] == b"undone"
    store._conn.execute("ROLLBACK")
    assert store.signing_row("c1", "ed25519")[2] == b"c1"
    with pytest.raises(ClientNotFound):
        store.signing_row("nobody", "ed25519")
    assert ("nobody", "ed25519") not in store._signing_rows
    store.close()


def test_signing_row_opens_a_sealed_share(tmp_path) -> None:
    sealed = SQLiteStore(str(tmp_path / "sealed.sqlite3"), sealer=Sealer(LocalKeyProvider(secrets.token_bytes(32))))
    sealed.create_client("c1", "STORED_CLIENT")
    sealed.put_share("c1", "signing", "", "ed25519", b"secret share")
    assert sealed.signing_row("c1", "ed25519")[2] == b"secret share"
    raw = sealed._execute("SELECT data FROM shares").fetchone()[0]
    assert b"secret share" not in bytes(raw)  # sealed at rest, opened by the read
    sealed.close()


def test_transaction_rolls_back_everything(store: SQLiteStore) -> None:
    store.create_client("c1", "NOT_CREATED")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_share("c1", "signing", "", "ed25519", b"half")
            store.update_client("c1", signing_share_status="STORED_DATABASE")
            raise RuntimeError("crash between two writes")
    assert store.get_share("c1", "signing", "", "ed25519") is None
    assert store.client("c1").signing_share_status == "NOT_CREATED"


def test_tokens_are_stored_hashed_and_checked(store: SQLiteStore) -> None:
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    service.set_token("c1", "secret-token")
    service.check_token("c1", "secret-token")
    for client_id, token in (("c1", "wrong"), ("c2", "secret-token"), ("c1", None), (None, "x")):
        with pytest.raises(AuthFailed):
            service.check_token(client_id, token)
    row = store._execute("SELECT token_hash FROM client_tokens").fetchone()
    assert b"secret-token" not in bytes(row[0])


def test_parked_sessions_are_taken_once_and_expire(store: SQLiteStore) -> None:
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    store.update_client("c1", operation="generate", operation_expires=time.time() + 5, operation_session="s1")
    service.park("s1", "c1", "generate", b"state", ["m1"], True, 60)  # holds the lock: its lease is renewed
    assert store.client("c1").operation_expires == service.peek("s1").expires
    assert service.peek("s1").outbox == ["m1"]
    first = service.take("s1")
    assert first is not None and first.data == b"state" and first.holds_lock
    assert service.take("s1") is None  # a blob is never resumed twice
    service.park("s2", "c1", "sign", b"state", [], False, 60)
    service.park("s3", "c1", "sign", b"state", [], False, -1)
    expired = service.purge(time.time())
    assert [p.session_id for p in expired] == ["s3"] and service.count() == 1


def test_a_step_checks_token_and_device_key_in_one_read(store: SQLiteStore) -> None:
    """``check_step`` (issue 30): the token, then the key the session was opened under must still
    be the client's registered one, or the session's pending one (a recover on a new device)."""
    service = ServiceStore(store)
    for client_id in ("c1", "c2"):
        store.create_client(client_id, "NOT_CREATED")
        service.set_token(client_id, f"token-{client_id}")
    old, new = b"\x01" * 32, b"\x02" * 32
    service.register_device("c1", old)
    service.bind_session("s-old", "c1", old, False, 60)
    service.bind_session("s-new", "c1", new, True, 60)  # a recover onto a new device, in progress
    assert service.check_step("c1", "token-c1", "s-old") == old
    assert service.check_step("c1", "token-c1", "s-new") == new
    for client_id, token, session_id in (("c1", "token-c2", "s-old"), ("c2", "token-c2", "s-old"),
                                         ("c1", "token-c1", "unknown"), ("c1", None, "s-old"), (None, "x", "s-old")):
        with pytest.raises(AuthFailed):
            service.check_step(client_id, token, session_id)
    service.register_device("c1", new)  # the recover completed: the old device's sessions end
    with pytest.raises(AuthFailed):
        service.check_step("c1", "token-c1", "s-old")
    assert service.check_step("c1", "token-c1", "s-new") == new
    service.revoke_device("c1")
    with pytest.raises(AuthFailed):
        service.check_step("c1", "token-c1", "s-old")


def test_parked_sessions_are_taken_only_by_their_client_and_carry_their_version(store: SQLiteStore) -> None:
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    store.create_client("c2", "NOT_CREATED")
    version = service.park("s1", "c1", "sign", b"state", ["m1"], False, 60)
    assert service.take("s1", client_id="c2") is None and service.is_parked("s1")  # another client's: left parked
    refused = []

    def admit(parked: object) -> None:
        refused.append(parked)
        raise AuthFailed()

    with pytest.raises(AuthFailed):
        service.take("s1", client_id="c1", admit=admit)
    assert refused and service.is_parked("s1")  # a refused admit takes nothing
    taken = service.take("s1", client_id="c1")
    assert taken is not None and taken.version == version and not service.is_parked("s1")
    assert service.park("s1", "c1", "sign", b"state 2", ["m1"], False, 60) != version  # a new park, a new version


def test_postgres_url_schema_is_validated() -> None:
    from mpc.errors import InputInvalid

    with pytest.raises(InputInvalid):
        PostgresStore("postgresql://127.0.0.1:1/x?schema=Bad-Name")


def test_a_malformed_postgres_url_is_refused_without_echoing_it() -> None:
    from mpc.errors import InputInvalid

    with pytest.raises(InputInvalid) as refused:  # libpq's own message quotes the bad part
        PostgresStore("postgresql://user:se%Zcret@127.0.0.1:1/x")
    assert "se%Zcret" not in str(refused.value) and "Zcret" not in refused.value.message


def test_a_take_that_consumes_a_park_id_counts_once_and_reads_the_epoch_once(store: SQLiteStore,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 30: the service's take of a warm session consumes its park id in the same
    transaction (a nested single-use take): the take counter rises once, the nonce epoch is read
    once; the park id stays single use and the counter still rises with every take."""
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    service.park("s1", "c1", "sign", b"state", [], False, 60)
    service.park("s2", "c1", "sign", b"state", [], False, 60)
    before = store.take_counter()
    statements: list[str] = []
    execute = store._execute

    def counted(sql: str, args: tuple = ()) -> object:
        statements.append(sql)
        return execute(sql, args)

    def admit(parked: object) -> None:
        assert store.consume_park_id("park-1", int(time.time()), time.time() - 60, store.nonce_epoch())

    monkeypatch.setattr(store, "_execute", counted)
    assert service.take("s1", client_id="c1", admit=admit) is not None
    monkeypatch.undo()
    assert store.take_counter() == before + 1
    assert sum("key = 'nonce_epoch'" in sql for sql in statements) == 1
    assert sum("take_counter" in sql for sql in statements) == 1  # one statement raises the count
    assert not store.consume_park_id("park-1", int(time.time()), time.time() - 60, store.nonce_epoch())
    assert store.take_counter() == before + 1  # a refused consumption took nothing
    assert service.take("s2", client_id="c1") is not None and store.take_counter() == before + 2
    epoch = store.bump_nonce_epoch()
    assert store.nonce_epoch() == epoch  # a bump is seen at once (nothing cached outside a take)


def test_expired_park_tombstones_are_purged_at_most_every_interval(store: SQLiteStore, monkeypatch) -> None:
    """A consumed park id's tombstone outlives its blob's age limit until the next purge, which
    runs at most every ``TOMBSTONE_PURGE_INTERVAL`` seconds (a kept tombstone only refuses more)."""
    from mpc.storage import single_use

    clock = [1000.0]
    monkeypatch.setattr(single_use.time, "monotonic", lambda: clock[0])
    epoch, now = store.nonce_epoch(), int(time.time())

    def tombstones() -> set[str]:
        return {row[0] for row in store._execute("SELECT park_id FROM resumed_sessions").fetchall()}

    assert store.consume_park_id("old", now - 7200, now - 3600, epoch)  # purges (the first take)
    assert store.consume_park_id("new", now, now - 3600, epoch)  # "old" expired: kept until the next purge
    assert tombstones() == {"old", "new"} and not store.consume_park_id("old", now - 7200, now - 3600, epoch)
    clock[0] += single_use.TOMBSTONE_PURGE_INTERVAL
    assert store.consume_park_id("newer", now, now - 3600, epoch)
    assert tombstones() == {"new", "newer"}
    assert not store.consume_park_id("new", now, now - 3600, epoch)  # a live tombstone never goes


def test_a_park_tagged_with_an_older_epoch_is_never_taken(store: SQLiteStore) -> None:
    """``park(..., epoch=)``: the worker passes the epoch the custodian's state was encoded in;
    a state encoded before an epoch bump is dead when it is taken, as a stored one would be."""
    service = ServiceStore(store)
    store.create_client("c1", "NOT_CREATED")
    epoch = store.nonce_epoch()
    service.park("s-old", "c1", "sign", b"state", [], False, 60, epoch=epoch)
    service.park("s-now", "c1", "sign", b"state", [], False, 60, epoch=epoch)
    assert store.bump_nonce_epoch() == epoch + 1  # emptied every parked session
    service.park("s-old", "c1", "sign", b"state", [], False, 60, epoch=epoch)  # encoded before the bump
    service.park("s-now", "c1", "sign", b"state", [], False, 60, epoch=epoch + 1)
    assert service.take("s-old", client_id="c1") is None and not service.is_parked("s-old")
    taken = service.take("s-now", client_id="c1")
    assert taken is not None and taken.data == b"state"
