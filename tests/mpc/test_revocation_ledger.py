"""A database restore never undoes a revocation (issue 31): the revocation ledger.

The adversary holds a stolen device (its signing shares, its token) and a recorded possession
proof of the owner's recover, and waits for the operator to restore the custodian's database
from a backup taken before the owner recovered onto a new device, before tokens were replaced or
revoked and before a client was locked out. With the ledger (``mpc.storage.ledger``) outside the
restore boundary every one of those stays in force. The ledger itself is append-only and
MAC-chained: a record edited, removed, reordered or cut off is refused loudly
(``LedgerCorrupted``), never silently forgotten.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc.backup.attempts import MAX_FAILED_ATTEMPTS
from mpc.backup.methods import MemoryCloudStorage
from mpc.errors import AuthFailed, ClientLockedOut, LedgerCorrupted, PossessionProofFailed, ShareReplaced
from mpc.service.store import ServiceStore, new_token
from mpc.storage.ledger import (
    ATTEMPTS,
    CREDENTIAL_REVOKED,
    NONCE_CONSUMED,
    SHARE_REPLACED,
    FileLedger,
    LedgerKey,
    PostgresLedger,
    RevocationLedger,
    open_ledger,
)
from mpc.wallet import CLIENT_PARTY
from protocols.rounds import Message, Session

from .conftest import Wallet, data_for, verify_result
from .test_possession import _forged_proofs, _replace_possession


# --- the two implementations ------------------------------------------------------------------------
def _pg_schema(postgres_url: str, schema: str) -> str:
    return f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"


def _drop_schemas(postgres_url: str, *schemas: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["file", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a ledger lives: a file, or a fresh PostgreSQL schema."""
    if request.param == "file":
        yield str(tmp_path / "revocation-ledger")
        return
    postgres_url = request.getfixturevalue("postgres_url")
    schema = "l_" + secrets.token_hex(6)
    yield _pg_schema(postgres_url, schema)
    _drop_schemas(postgres_url, schema)


def _tamper(where: str, edit: Any) -> None:
    """Apply ``edit`` to the stored rows [(body, mac)] of the ledger at ``where`` (the attacker
    with write access to the ledger's storage, but not its key)."""
    if where.startswith("postgresql://"):
        ledger = open_ledger(where, LedgerKey.random())
        assert isinstance(ledger, PostgresLedger)
        rows = [(bytes(b), bytes(m)) for _, b, m in
                ledger._conn.execute("SELECT seq, body, mac FROM revocation_ledger ORDER BY seq").fetchall()]
        kept = edit(rows)
        ledger._conn.execute("DELETE FROM revocation_ledger")
        for seq, (body, mac) in enumerate(kept):
            ledger._conn.execute("INSERT INTO revocation_ledger VALUES (%s, %s, %s)", (seq, body, mac))
        ledger.close()
        return
    path = Path(where)
    lines = [line.rpartition(b"\t") for line in path.read_bytes().split(b"\n")[:-1]]
    rows = [(body, bytes.fromhex(mac.decode())) for body, _, mac in lines]
    path.write_bytes(b"".join(body + b"\t" + mac.hex().encode() + b"\n" for body, mac in edit(rows)))


def _filled(where: str, key: LedgerKey) -> RevocationLedger:
    ledger = open_ledger(where, key)
    ledger.append(SHARE_REPLACED, "c1", curve="secp256k1", share="02" + "11" * 32)
    ledger.append(CREDENTIAL_REVOKED, "c1", credential="token", digest="ab" * 32)
    ledger.append(ATTEMPTS, "c2", count=3, since=1.0, locked=False)
    assert ledger.consume_nonce("c1", "possession", b"\x07" * 32)
    return ledger


def test_records_read_back_and_answer_the_checks(where: str) -> None:
    key = LedgerKey.random()
    _filled(where, key)
    again = open_ledger(where, key)  # another process: reads what the first appended
    assert [r.kind for r in again.records()] == [SHARE_REPLACED, CREDENTIAL_REVOKED, ATTEMPTS, NONCE_CONSUMED]
    assert [r.seq for r in again.records()] == [0, 1, 2, 3]
    assert again.share_replaced("c1", "secp256k1", "02" + "11" * 32)
    assert not again.share_replaced("c2", "secp256k1", "02" + "11" * 32)
    assert again.credential_revoked("token", bytes.fromhex("ab" * 32))
    assert again.failures("c2") == 3 and again.failures("c1") == 0
    assert again.nonce_seen("possession", b"\x07" * 32)
    assert not again.consume_nonce("c1", "possession", b"\x07" * 32)  # at most once, across processes
    assert len(again) == 4
    assert "key" not in repr(key).lower().replace("ledgerkey", "")


def test_a_file_ledger_is_private(tmp_path: Path) -> None:
    _filled(str(tmp_path / "ledger"), LedgerKey.random())
    assert (tmp_path / "ledger").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("edit", [
    pytest.param(lambda rows: rows[:1] + rows[2:], id="removed"),
    pytest.param(lambda rows: [rows[0], (rows[1][0].replace(b"ab", b"ac", 1), rows[1][1]), *rows[2:]], id="edited"),
    pytest.param(lambda rows: [rows[1], rows[0], *rows[2:]], id="reordered"),
    pytest.param(lambda rows: rows + [(rows[-1][0].replace(b'"seq":3', b'"seq":4'), rows[-1][1])], id="forged"),
])
def test_a_tampered_ledger_is_refused_loudly(where: str, edit: Any) -> None:
    key = LedgerKey.random()
    _filled(where, key)
    _tamper(where, edit)
    fresh = open_ledger(where, key)
    with pytest.raises(LedgerCorrupted):
        fresh.records()
    with pytest.raises(LedgerCorrupted):
        fresh.share_replaced("c1", "secp256k1", "02" + "11" * 32)  # every check refuses, none answers "no"


def test_another_key_is_refused(where: str) -> None:
    _filled(where, LedgerKey.random())
    with pytest.raises(LedgerCorrupted):
        open_ledger(where, LedgerKey.random()).verify()


def test_a_ledger_cut_short_is_refused_by_the_store_that_saw_it(where: str, tmp_path: Path) -> None:
    """Removing the *last* records leaves a valid chain: the store remembers how many it saw."""
    key = LedgerKey.random()
    store = mpc.SQLiteStore(str(tmp_path / "c.sqlite3"))
    ledger = open_ledger(where, key)
    store.attach_ledger(ledger)
    for count in (1, 2):
        ledger.append(ATTEMPTS, "c2", count=count, since=1.0, locked=False)
    store.close()
    _tamper(where, lambda rows: rows[:1])
    with pytest.raises(LedgerCorrupted, match="records were removed"):
        mpc.SQLiteStore(str(tmp_path / "c.sqlite3")).attach_ledger(open_ledger(where, key))


def test_records_removed_under_a_running_process_are_refused(tmp_path: Path) -> None:
    key = LedgerKey.random()
    ledger = _filled(str(tmp_path / "ledger"), key)
    _tamper(str(tmp_path / "ledger"), lambda rows: rows[:2])
    with pytest.raises(LedgerCorrupted):
        ledger.nonce_seen("possession", b"\x07" * 32)


def test_a_torn_last_line_is_refused(tmp_path: Path) -> None:
    key = LedgerKey.random()
    _filled(str(tmp_path / "ledger"), key)
    with (tmp_path / "ledger").open("ab") as handle:
        handle.write(b'{"seq":4,"kind"')
    with pytest.raises(LedgerCorrupted):
        FileLedger(tmp_path / "ledger", key).verify()


def test_the_ledger_key_is_its_own(tmp_path: Path) -> None:
    """Derived from the store key with a domain tag (never the store key itself), or from its
    own key file; without either there is no ledger."""
    from mpc.errors import StoreKeyMissing
    from mpc.storage.sealing import Sealer, new_key_file

    provider = new_key_file(tmp_path / "store.key")
    derived = LedgerKey.configured(Sealer(provider))
    assert derived.mac(bytes(32), b"x") == LedgerKey.from_file(tmp_path / "store.key").mac(bytes(32), b"x")
    assert derived.mac(bytes(32), b"x") != LedgerKey(provider.derive(b"another label")).mac(bytes(32), b"x")
    with pytest.raises(StoreKeyMissing):
        LedgerKey.configured(None)


# --- the restore sequences (SQLite, PostgreSQL) -------------------------------------------------------
class _Database:
    """A custodian database that can be snapshot and restored (a backup and its restore)."""

    def __init__(self, tmp_path: Path, postgres_url: str | None) -> None:
        self.tmp_path, self.postgres_url = tmp_path, postgres_url
        self.schema = "r_" + secrets.token_hex(6)

    def open(self) -> mpc.SQLiteStore:
        if self.postgres_url is None:
            return mpc.SQLiteStore(str(self.tmp_path / "custodian.sqlite3"))
        from mpc.storage.backends import PostgresStore

        return PostgresStore(_pg_schema(self.postgres_url, self.schema))

    def snapshot(self) -> None:
        if self.postgres_url is None:
            shutil.copy(self.tmp_path / "custodian.sqlite3", self.tmp_path / "backup.sqlite3")
            return
        self._copy_schema(self.schema, self.schema + "_backup")

    def restore(self) -> None:
        if self.postgres_url is None:
            shutil.copy(self.tmp_path / "backup.sqlite3", self.tmp_path / "custodian.sqlite3")
            return
        _drop_schemas(self.postgres_url, self.schema)
        self._copy_schema(self.schema + "_backup", self.schema)

    def _copy_schema(self, source: str, target: str) -> None:
        import psycopg

        assert self.postgres_url is not None
        with psycopg.connect(self.postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{target}"')
            tables = [row[0] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (source,)).fetchall()]
            for table in tables:
                conn.execute(f'CREATE TABLE "{target}"."{table}" (LIKE "{source}"."{table}" INCLUDING ALL)')
                conn.execute(f'INSERT INTO "{target}"."{table}" SELECT * FROM "{source}"."{table}"')

    def ledger(self, key: LedgerKey) -> RevocationLedger:
        """The ledger beside it: a file (one node), or its own PostgreSQL schema (never restored
        with the store's)."""
        if self.postgres_url is None:
            return FileLedger(self.tmp_path / "revocation-ledger", key)
        return open_ledger(_pg_schema(self.postgres_url, self.schema + "_ledger"), key)

    def drop(self) -> None:
        if self.postgres_url is not None:
            _drop_schemas(self.postgres_url, self.schema, self.schema + "_backup", self.schema + "_ledger")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Database]:
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    db = _Database(tmp_path, postgres_url)
    yield db
    db.drop()


def _exchange(client: Session, custodian: Session, messages: list[Message]) -> None:
    """Deliver ``messages`` (and every answer) between a device's and the custodian's session."""
    queue = deque(messages)
    while queue:
        msg = queue.popleft()
        queue.extend((custodian if msg.sender == CLIENT_PARTY else client).receive(msg))


def _custodian(store: mpc.SQLiteStore, ledger: RevocationLedger) -> tuple[mpc.Custodian, ServiceStore]:
    custodian = mpc.Custodian(store, ledger=ledger)
    return custodian, ServiceStore(store)


def test_a_restore_to_before_a_recover_undoes_no_revocation(database: _Database) -> None:
    key, cloud = LedgerKey.random(), MemoryCloudStorage()
    custodian, service = _custodian(database.open(), database.ledger(key))
    owner, other = custodian.create_client(), custodian.create_client()
    old_token, other_token = new_token(), new_token()
    service.set_token(owner, old_token)
    service.set_token(other, other_token)
    stolen = mpc.Client(owner, mpc.MemoryKeychain(), cloud=cloud)  # the device the thief will hold
    w = Wallet(custodian, owner, stolen, cloud)
    w.generate()
    w.backup()
    for _ in range(3):  # the thief guessed before the owner noticed
        tamper, _ = _replace_possession(_forged_proofs)
        with pytest.raises(PossessionProofFailed):
            _run(w.device().recover(), custodian.recover(owner), tamper)
    assert custodian.failed_attempts(owner) == 3

    # The owner starts a recover on a new device; its possession proof is on the wire (recorded).
    new_device = w.device()
    client_side, custodian_side = new_device.recover(), custodian.recover(owner)
    (client_backup,) = custodian_side.start() + custodian_side.receive(client_side.start()[0])
    recorded = client_side.receive(client_backup)
    (proof,) = [m for m in recorded if m.payload.get("step") == "possession"]
    service.park("recover-1", owner, "recover", custodian_side.to_bytes(), [], False, 300.0)
    custodian.store.close()
    database.snapshot()  # the operator's backup: the parked recover, 3 failures, the old shares and tokens

    custodian, service = _custodian(database.open(), database.ledger(key))
    w.custodian = custodian
    parked = service.take("recover-1")
    assert parked is not None
    resumed = custodian.resume(parked.data)
    _exchange(client_side, resumed, recorded)  # the recover completes: new shares, count reset
    assert custodian.failed_attempts(owner) == 0
    service.replace_token(owner)  # what the service does after a recover
    service.revoke_token(other)
    for _ in range(MAX_FAILED_ATTEMPTS):  # the other client is locked out (its failed guesses, counted)
        custodian.attempts.failed(other)
    with pytest.raises(ShareReplaced):  # before the restore: the stolen device is shut out
        w.sign("ethereum", data_for("ethereum"))
    custodian.store.close()

    database.restore()
    store = database.open()
    report = store.attach_ledger(database.ledger(key))  # what serve does at start
    assert report.restored and report.tokens_revoked == 2 and report.lockouts == 1
    custodian, service = _custodian(store, store.ledger)  # type: ignore[arg-type]
    w.custodian = custodian

    with pytest.raises(ShareReplaced):  # the stolen device's old shares: refused, nothing signed
        w.sign("ethereum", data_for("ethereum"))
    with pytest.raises(AuthFailed):  # the pre-recover token
        service.check_token(owner, old_token)
    with pytest.raises(AuthFailed):  # the revoked token
        service.check_token(other, other_token)
    assert custodian.failed_attempts(other) == MAX_FAILED_ATTEMPTS  # the lock-out holds
    with pytest.raises(ClientLockedOut):
        custodian.recover(other)

    parked = service.take("recover-1")  # the restored parked recover, and the recorded proof
    assert parked is not None
    replayed = custodian.resume(parked.data)
    with pytest.raises(PossessionProofFailed, match="used before"):
        replayed.receive(proof)
    assert custodian.failed_attempts(owner) == 4  # not reset: counted

    # The owner is not stuck: it recovers again (onto a fresh device) and signs.
    again = w.device()
    mpc.run_local(again.recover(), custodian.recover(owner))
    verify_result(w.sign("ethereum", data_for("ethereum"), client=again)[0], data_for("ethereum"))


def _run(client: Session, custodian: Session, tamper: Any) -> None:
    from protocols.local import run

    run([client, custodian], tamper)


# --- the same sequence over the networked service (serve's own path: $PORTAL_MPC_LEDGER) -----------------
def test_a_restored_service_keeps_the_stolen_device_out_and_says_so(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An independent check of the restore-after-recover sequence through ``open_store`` (the
    ledger from ``$PORTAL_MPC_LEDGER``, its key derived from the store key), the WebSocket
    service, ``/readyz`` and ``/metrics``."""
    from mpc.errors import ShareReplaced as Replaced
    from mpc.remote.blocking import RemoteCustodian
    from mpc.service.server import ServiceThread
    from mpc.storage.ledger import ENV_VAR

    from .test_observability import http_get
    from .test_server import OPERATOR_KEY, TIMEOUT

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "revocation-ledger"))
    db, cloud = tmp_path / "custodian.sqlite3", MemoryCloudStorage()

    def service() -> ServiceThread:
        return ServiceThread(str(db), executor="thread", operator_key=OPERATOR_KEY, metrics_public=True).start()

    running = service()
    remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, old_token = remote.create_client()
    stolen = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
    remote.generate(stolen, old_token)
    remote.backup(stolen, old_token)
    running.stop()
    shutil.copy(db, tmp_path / "backup.sqlite3")  # the operator's backup

    running = service()
    remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    remote.recover(mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud), old_token)  # the owner shuts the thief out
    running.stop()
    shutil.copy(tmp_path / "backup.sqlite3", db)  # the restore

    running = service()
    try:
        remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        readiness = json.loads(http_get(running.port, "/readyz")[2])
        assert readiness["ready"] is True
        assert readiness["ledger"]["restored"] is True and readiness["ledger"]["tokens_revoked"] == 1
        metrics_text = http_get(running.port, "/metrics")[2]
        assert "mpc_revocation_ledger_restore_detected 1" in metrics_text
        assert 'mpc_revocation_ledger_reapplied{kind="tokens"} 1' in metrics_text
        with pytest.raises(AuthFailed):  # the pre-recover token: dead
            remote.sign(stolen, old_token, "ethereum", data_for("ethereum"))
        fresh = remote.issue_token(client_id)  # even with a token the operator issues now
        with pytest.raises(Replaced):
            remote.sign(stolen, fresh, "ethereum", data_for("ethereum"))
    finally:
        running.stop()


def test_serve_puts_the_ledger_next_to_the_restore_guard_by_default(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from mpc.__main__ import _export_worker_environment, _ledger_location
    from mpc.storage.ledger import ENV_VAR, KEY_FILE_ENV

    parser = argparse.ArgumentParser()
    for name in (ENV_VAR, KEY_FILE_ENV):  # recorded first, so what serve exports is undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    args = argparse.Namespace(ledger=None, ledger_key_file=None, restore_guard=tmp_path / "guard" / "restore-guard",
                              store_key_file=None)
    where = _ledger_location(parser, args)
    assert where is not None and Path(where) == tmp_path / "guard" / "revocation-ledger"
    assert ENV_VAR not in os.environ  # checked first, exported only when serve starts
    monkeypatch.setattr(args, "restore_guard", None)  # the guard's variable is not this test's to set
    _export_worker_environment(args, where)
    assert Path(os.environ[ENV_VAR]) == tmp_path / "guard" / "revocation-ledger"
    with pytest.raises(SystemExit):  # a password never goes on a command line
        _ledger_location(parser, argparse.Namespace(ledger="postgresql://u:secret@h/db", ledger_key_file=None,
                                                    restore_guard=None))


def test_a_ledger_file_swapped_under_a_running_process_is_refused(tmp_path: Path) -> None:
    """Another valid chain (same key, other records) put in place of the one a process read."""
    key = LedgerKey.random()
    running = _filled(str(tmp_path / "ledger"), key)
    _filled(str(tmp_path / "other"), key).append(ATTEMPTS, "c3", count=1, since=1.0, locked=False)
    shutil.copy(tmp_path / "other", tmp_path / "ledger")
    with pytest.raises(LedgerCorrupted):
        running.failures("c3")
