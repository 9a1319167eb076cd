"""The custodian's secrets at rest (``mpc.storage.sealing``): envelope format, binding to the row, keys,
rotation, plaintext migration, file permissions and the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import pickle
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc
from mpc.__main__ import main
from mpc.errors import InputInvalid, StoreCorrupted, StoreKeyInvalid, StoreKeyMissing, StoreNotSealed
from mpc.storage.sealing import (
    KEY_ENV,
    KEY_FILE_ENV,
    OLD_KEY_FILES_ENV,
    PLAINTEXT_ENV,
    KeyProvider,
    LocalKeyProvider,
    Sealer,
    looks_sealed,
    new_key_file,
    row_aad,
)
from mpc.service.store import ServiceStore
from mpc.storage.store import SEALED_COLUMNS, SQLiteStore
from mpc.storage.backends import DB_ENV, PostgresStore, open_store, rotate_store_key
from mpc.wallet import CUSTODIAN_PARTY, decode_share
from tests.mpc.conftest import new_wallet

AAD = row_aad("shares", "data", "client-1", "signing", "", "secp256k1")
SETUP = b"setup with its trapdoor" * 300  # larger than a page: SQLite overflow pages


def local_key() -> LocalKeyProvider:
    return LocalKeyProvider(secrets.token_bytes(32))


# --- the envelope ---------------------------------------------------------------------------------
def test_round_trip_and_fresh_randomness() -> None:
    sealer = Sealer(local_key())
    one, two = sealer.seal(b"share bytes", AAD), sealer.seal(b"share bytes", AAD)
    assert one != two and looks_sealed(one) and b"share bytes" not in one
    assert sealer.open(one, AAD) == sealer.open(two, AAD) == b"share bytes"


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2048), parts=st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40)),
                                                     max_size=5))
def test_round_trip_property(data: bytes, parts: list[str | bytes]) -> None:
    sealer = Sealer(LocalKeyProvider(b"\x07" * 32))
    aad = row_aad("t", "c", *parts)
    assert sealer.open(sealer.seal(data, aad), aad) == data


def _reference_aad(*parts: str | bytes | int) -> bytes:
    """``row_aad`` as its docstring states it: the domain, then per part a type byte, a 4-byte length, the bytes."""
    out = b"portal-mpc/row/v1\x00"
    for part in parts:
        raw = str(part).encode() if isinstance(part, int) else part.encode() if isinstance(part, str) else part
        out += (b"b" if isinstance(part, bytes) else b"s") + len(raw).to_bytes(4, "big") + raw
    return out


@settings(max_examples=80, deadline=None)
@given(parts=st.lists(st.one_of(st.text(max_size=40), st.binary(max_size=40), st.integers(0, 2**70)), max_size=5))
def test_row_identity_encoding_is_the_same_when_kept(parts: list[str | bytes | int]) -> None:
    """A text-only key's encoding is kept for the row's next column (issue 30, round seven): the
    bytes are those of the stated encoding, the first time and when kept; a bool is refused
    even once the equal int's encoding is kept."""
    for _ in range(2):
        assert row_aad("parked_sessions", "data", *parts) == _reference_aad("parked_sessions", "data", *parts)
        assert row_aad("parked_sessions", "outbox", *parts) == _reference_aad("parked_sessions", "outbox", *parts)
    row_aad("t", "c", "x", 1)
    row_aad(1, 0, "x")  # type: ignore[arg-type]  # (an int table: kept apart from a bool one)
    for bad in (("t", "c", "x", True), (True, False, "x")):
        with pytest.raises(InputInvalid):
            row_aad(*bad)  # type: ignore[arg-type]


def _fields(blob: bytes) -> dict[str, range]:
    """Byte ranges of the version-1 fields of a sealed value."""
    key_len = blob[5]
    wrapped_at = 6 + key_len + 2
    wrapped_len = int.from_bytes(blob[6 + key_len : wrapped_at], "big")
    nonce_at = wrapped_at + wrapped_len
    return {
        "magic": range(0, 4), "version": range(4, 5), "key id length": range(5, 6),
        "key id": range(6, 6 + key_len), "wrapped length": range(6 + key_len, wrapped_at),
        "wrapped DEK": range(wrapped_at, nonce_at), "nonce": range(nonce_at, nonce_at + 12),
        "ciphertext": range(nonce_at + 12, len(blob) - 16), "tag": range(len(blob) - 16, len(blob)),
    }


def test_tampering_with_any_field_is_refused() -> None:
    sealer = Sealer(local_key())
    blob = sealer.seal(b"a custodian share", AAD)
    fields = _fields(blob)
    assert sum(len(r) for r in fields.values()) == len(blob)
    for span in fields.values():
        for at in (span.start, span.stop - 1):
            damaged = bytearray(blob)
            damaged[at] ^= 0x01
            with pytest.raises((StoreCorrupted, StoreKeyInvalid)):
                sealer.open(bytes(damaged), AAD)
    for damaged in (blob[:-1], blob + b"\x00", blob[:20], b"", b"plaintext share"):
        with pytest.raises(StoreCorrupted):
            sealer.open(damaged, AAD)


def test_another_row_identity_is_refused() -> None:
    sealer = Sealer(local_key())
    blob = sealer.seal(b"share", AAD)
    for other in (row_aad("shares", "data", "client-2", "signing", "", "secp256k1"),
                  row_aad("shares", "data", "client-1", "signing", "", "ed25519"),
                  row_aad("shares", "data", "client-1", "backup", "CLOUD", "secp256k1"),
                  row_aad("setup", "data", 1)):
        with pytest.raises(StoreCorrupted):
            sealer.open(blob, other)
    # the encoding is unambiguous: moving a separator is another identity
    assert row_aad("t", "c", "ab", "c") != row_aad("t", "c", "a", "bc")
    assert row_aad("t", "c", "1") != row_aad("t", "c", b"1")


def test_a_wrong_key_is_refused() -> None:
    blob = Sealer(local_key()).seal(b"share", AAD)
    with pytest.raises(StoreKeyInvalid):
        Sealer(local_key()).open(blob, AAD)


def test_old_and_new_keys_read_during_a_rotation() -> None:
    old, new = local_key(), local_key()
    old_blob = Sealer(old).seal(b"old row", AAD)
    both = Sealer(new, old)
    assert both.key_ids == (new.key_id, old.key_id)
    assert both.open(old_blob, AAD) == b"old row"
    new_blob = both.seal(b"new row", AAD)
    assert Sealer(new).open(new_blob, AAD) == b"new row"
    with pytest.raises(StoreKeyInvalid):
        Sealer(old).open(new_blob, AAD)
    with pytest.raises(InputInvalid):
        Sealer(old, old)


class FakeKms:
    """A key management service behind the KeyProvider hook (here: a local AEAD, by key id)."""

    key_id = "kms:arn:example:key/1234"

    def __init__(self) -> None:
        self._aead = AESGCM(secrets.token_bytes(32))
        self.calls = 0

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        self.calls += 1
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        self.calls += 1
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], aad)
        except InvalidTag:
            raise StoreCorrupted("the KMS refused to unwrap") from None


def test_a_kms_plugs_in_as_a_key_provider() -> None:
    kms = FakeKms()
    assert isinstance(kms, KeyProvider)
    store = SQLiteStore(":memory:", sealer=Sealer(kms))
    store.create_client("c1", "NOT_CREATED")
    store.put_share("c1", "signing", "", "ed25519", b"share")
    assert store.get_share("c1", "signing", "", "ed25519") == b"share" and kms.calls == 2
    assert store.sealing_key_ids() == [kms.key_id]


def test_keys_never_show_and_are_not_pickled() -> None:
    raw = secrets.token_bytes(32)
    key = LocalKeyProvider(raw)
    for text in (repr(key), str(key), repr(Sealer(key))):
        assert raw.hex() not in text and base64.b64encode(raw).decode() not in text and key.key_id in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert LocalKeyProvider(raw).key_id == key.key_id != local_key().key_id


# --- keys from files and the environment ------------------------------------------------------
@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_key_file_is_private_and_never_overwritten(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "keys" / "nested" / "store.key"
    key = new_key_file(path)
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700 and _mode(path.parent.parent) == 0o700
    assert LocalKeyProvider.from_file(path).key_id == key.key_id
    with pytest.raises(InputInvalid):
        new_key_file(path)
    assert LocalKeyProvider.from_file(path).key_id == key.key_id


def test_key_files_others_can_read_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.key"
    new_key_file(path)
    for mode in (0o640, 0o604, 0o620):
        os.chmod(path, mode)
        with pytest.raises(StoreKeyInvalid):
            LocalKeyProvider.from_file(path)
    with pytest.raises(StoreKeyMissing):
        LocalKeyProvider.from_file(tmp_path / "missing.key")


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"\x01" * 31).decode(),
                                  base64.b64encode(b"\x01" * 33).decode()])
def test_malformed_keys_are_refused(text: str) -> None:
    with pytest.raises(StoreKeyInvalid):
        LocalKeyProvider.from_base64(text)


def test_keys_from_the_environment(tmp_path: Path) -> None:
    path, old_path = tmp_path / "new.key", tmp_path / "old.key"
    new, old = new_key_file(path), new_key_file(old_path)
    text = base64.b64encode(b"\x05" * 32).decode()
    assert Sealer.from_env({}) is None
    assert LocalKeyProvider.from_env({KEY_ENV: text}).key_id == LocalKeyProvider(b"\x05" * 32).key_id
    sealer = Sealer.from_env({KEY_FILE_ENV: str(path), OLD_KEY_FILES_ENV: str(old_path)})
    assert sealer is not None and sealer.key_ids == (new.key_id, old.key_id)
    with pytest.raises(StoreKeyInvalid):
        Sealer.from_env({KEY_ENV: text, KEY_FILE_ENV: str(path)})
    with pytest.raises(StoreKeyMissing):
        Sealer.from_env({OLD_KEY_FILES_ENV: str(old_path)})


# --- the store on both backends ---------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "custodian.sqlite3")
    return request.getfixturevalue("postgres_schema_url")


def _all_secret_values(store: SQLiteStore) -> list[bytes]:
    """Every sealed column's raw stored value."""
    values = []
    for table, (_, columns) in SEALED_COLUMNS.items():
        if store._has_table(table):
            for row in store._execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall():
                values.extend(bytes(v) for v in row)
    return values


def _fill(store: SQLiteStore) -> dict[str, object]:
    """One row of every sealed kind, written through the store's own methods."""
    store.create_client("c1", "NOT_CREATED")
    store.create_client("c2", "NOT_CREATED")
    store.save_setup(SETUP)
    store.put_share("c1", "signing", "", "secp256k1", b"c1 signing share")
    store.put_share("c1", "backup", "CLOUD", "ed25519", b"c1 backup share")
    store.put_client_backup("c1", "CLOUD", "ed25519", b"encrypted box of c1", b"key record of c1")
    store.nonce_key()
    store.put_hd("c1", "ed25519", "key", b"c1 derivation key share")
    service = ServiceStore(store)
    service.park("s1", "c1", "sign", b"session state", ["sent"], False, 60)  # no lock: sealing only
    return {"service": service}


def _check_filled(store: SQLiteStore) -> None:
    assert store.load_setup() == SETUP
    assert store.get_share("c1", "signing", "", "secp256k1") == b"c1 signing share"
    assert store.get_share("c1", "backup", "CLOUD", "ed25519") == b"c1 backup share"
    assert store.get_client_backup("c1", "CLOUD", "ed25519") == (b"encrypted box of c1", b"key record of c1")
    assert store.get_hd("c1", "ed25519", "key") == b"c1 derivation key share"
    parked = ServiceStore(store).peek("s1")
    assert parked is not None and parked.data == b"session state" and parked.outbox == ["sent"]
    assert len(store.nonce_key()) == 32


def test_every_secret_is_sealed_at_rest(url: str) -> None:
    store = open_store(url)
    _fill(store)
    values = _all_secret_values(store)
    assert len(values) == 9 and all(looks_sealed(v) for v in values)
    key = store.nonce_key()
    for plain in (b"setup with its trapdoor", b"c1 signing share", b"session state", key):
        assert all(plain not in v for v in values)
    _check_filled(store)
    store.close()


def test_a_row_moved_to_another_client_or_curve_is_refused(url: str) -> None:
    store = open_store(url)
    _fill(store)
    store.put_share("c2", "signing", "", "secp256k1", b"c2 signing share")
    c1 = store._execute("SELECT data FROM shares WHERE client_id = 'c1' AND kind = 'signing'").fetchone()[0]
    store._execute("UPDATE shares SET data = ? WHERE client_id = 'c2'", (bytes(c1),))
    with pytest.raises(StoreCorrupted):
        store.get_share("c2", "signing", "", "secp256k1")
    store._execute("UPDATE shares SET curve = 'ed25519' WHERE client_id = 'c1' AND kind = 'signing'")
    with pytest.raises(StoreCorrupted):
        store.get_share("c1", "signing", "", "ed25519")
    store._execute("UPDATE parked_sessions SET client_id = 'c2'")
    with pytest.raises(StoreCorrupted):
        ServiceStore(store).peek("s1")
    store._execute("UPDATE client_backups SET box = record")
    with pytest.raises(StoreCorrupted):
        store.get_client_backup("c1", "CLOUD", "ed25519")
    store.close()


def test_a_sealed_store_needs_its_key(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(url).close()
    with pytest.raises(StoreKeyInvalid):
        open_store(url, sealer=Sealer(local_key()))  # a wrong key
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(PLAINTEXT_ENV, "1")
    with pytest.raises(StoreKeyMissing):
        open_store(url)  # plaintext allowed, but this store is sealed


def test_open_store_without_a_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    path = str(tmp_path / "custodian.sqlite3")
    with pytest.raises(StoreKeyMissing) as refused:
        open_store(path)
    assert KEY_FILE_ENV in refused.value.message and "store-key new" in refused.value.message
    assert not os.path.exists(path)
    open_store(":memory:").close()  # needs no key
    store = open_store(path, allow_plaintext=True)
    assert not store.sealed
    store.close()
    monkeypatch.setenv(PLAINTEXT_ENV, "1")
    open_store(path).close()


def test_the_default_custodian_store_is_sealed_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORTAL_MPC_HOME", str(tmp_path / "home"))
    custodian = mpc.Custodian()
    assert custodian.store.sealed and _mode(tmp_path / "home") == 0o700
    custodian.store.close()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(StoreKeyMissing):
        mpc.Custodian()


def _rotate_and_check(url: str, new: LocalKeyProvider, old: list[LocalKeyProvider]) -> None:
    assert rotate_store_key(url, new, old) == 9
    store = open_store(url, sealer=Sealer(new))  # the new key alone
    assert store.sealing_key_ids() == [new.key_id]
    _check_filled(store)
    store.close()
    for stale in old:
        with pytest.raises(StoreKeyInvalid):
            open_store(url, sealer=Sealer(stale))


def test_rotation_to_a_new_key(url: str) -> None:
    old, new = local_key(), local_key()
    store = open_store(url, sealer=Sealer(old))
    _fill(store)
    store.close()
    # During a rotation a process reads with both keys and writes under the new one.
    store = open_store(url, sealer=Sealer(new, old))
    store.put_share("c2", "signing", "", "ed25519", b"written during the rotation")
    assert store.get_share("c1", "signing", "", "secp256k1") == b"c1 signing share"
    assert set(store.sealing_key_ids()) == {old.key_id, new.key_id}
    store._execute("DELETE FROM shares WHERE client_id = 'c2'")
    store.close()
    with pytest.raises(StoreKeyInvalid):
        rotate_store_key(url, new)  # the old key is needed to read the old rows
    _rotate_and_check(url, new, [old])
    _rotate_and_check(url, new, [])  # a second run is harmless


def test_plaintext_store_migration(url: str) -> None:
    store = _plaintext_store(url)
    _fill(store)
    assert not any(looks_sealed(v) for v in _all_secret_values(store))
    store.close()
    with pytest.raises(StoreNotSealed):
        open_store(url)  # a key for plaintext secrets: nothing changes until they are sealed
    _rotate_and_check(url, local_key(), [])
    if not url.startswith("postgresql"):
        raw = Path(url).read_bytes()
        for plain in (b"setup with its trapdoor", b"c1 signing share", b"session state", b"key record of c1"):
            assert plain not in raw


def _plaintext_store(url: str) -> SQLiteStore:
    """A store with no key (as made before sealing existed)."""
    return PostgresStore(url) if url.startswith("postgresql") else SQLiteStore(url)


# --- real secrets never reach the disk in plaintext -------------------------------------------------
def test_no_share_or_setup_secret_in_the_database(url: str) -> None:
    store = open_store(url)
    custodian = mpc.Custodian(store)
    wallet = new_wallet(custodian)
    wallet.generate()
    wallet.backup()
    mpc.run_local(wallet.client.presign(2), custodian.presign(wallet.client_id, 2))
    secrets_plain: list[bytes] = [custodian.setup.secret.to_bytes(), custodian.setup.to_bytes()]
    backup_name = custodian.backup_versions.current_name(wallet.client_id, "CLOUD")
    for kind, method in (("signing", ""), ("backup", backup_name)):
        for curve in ("secp256k1", "ed25519"):
            data = store.get_share(wallet.client_id, kind, method, curve)
            assert data is not None
            share = decode_share(curve, CUSTODIAN_PARTY, data)
            scalar = (share.x2 if curve == "secp256k1" else share.signing_share).to_bytes()
            secrets_plain += [data, scalar, scalar.hex().encode()]
    values = _all_secret_values(store)
    assert values and all(looks_sealed(v) for v in values)
    if url.startswith("postgresql"):
        stored = _every_postgres_value(store)  # every column of every row of every table
        store.close()
    else:
        store.close()  # the database file and whatever journal files are left
        stored = b"".join(p.read_bytes() for p in Path(url).parent.glob(Path(url).name + "*"))
    for secret in secrets_plain:
        assert secret not in stored


def _every_postgres_value(store: SQLiteStore) -> bytes:
    tables = [row[0] for row in store._execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()]
    assert {"shares", "setup", "presignatures"} <= set(tables)
    return b"\x00".join(bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
                        for table in tables for row in store._execute(f"SELECT * FROM {table}").fetchall()
                        for value in row)


# --- file permissions ---------------------------------------------------------------------------------
def test_database_files_are_private(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "custodian.sqlite3"
    store = open_store(str(path))
    store._execute("PRAGMA journal_mode = WAL")
    store.create_client("c1", "NOT_CREATED")
    store.put_share("c1", "signing", "", "ed25519", b"share")
    files = [p for p in tmp_path.iterdir() if p.name.startswith(path.name)]
    assert any(p.name.endswith("-wal") for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    store.close()
    journal = tmp_path / "journal.sqlite3"
    store = SQLiteStore(str(journal))
    with store.transaction():
        store.create_client("c1", "NOT_CREATED")
        assert _mode(str(journal) + "-journal") == 0o600
    store.close()
    assert _mode(journal) == 0o600


def test_keychain_files_and_folders_are_private(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "home" / "keychain" / "client"
    keychain = mpc.FileKeychain(folder)
    keychain.put("entry", b"secret")
    assert _mode(folder / "entry.entry") == 0o600
    assert [_mode(p) for p in (folder, folder.parent, folder.parent.parent)] == [0o700] * 3


# --- the command line ----------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["nonce-epoch", "--db", "postgresql://portal:hunter2@127.0.0.1:1/x"],
    ["setup", "--db", "postgresql://portal:hunter2@127.0.0.1:1/x"],
    ["serve", "--db", "postgres://portal:hunter2@127.0.0.1:1/x"],
    ["store-key", "--db", "postgresql://portal@127.0.0.1:1/x?password=hunter2", "rotate", "--new-key-file", "k"],
    ["store-key", "rotate", "--db", "postgresql://portal:hunter2@127.0.0.1:1/x", "--new-key-file", "k"],
])
def test_a_db_url_with_a_password_is_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert DB_ENV in err and "PGPASSWORD" in err and "hunter2" not in err


def test_store_key_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "custodian.sqlite3")
    monkeypatch.delenv(KEY_ENV)
    store = open_store(db, allow_plaintext=True)
    _fill(store)
    store.close()
    monkeypatch.setenv(DB_ENV, db)  # the URL from $PORTAL_MPC_DB from here on
    assert main(["nonce-epoch"]) == 2  # no key and no plaintext opt-in: one line, the code and the fix
    assert capsys.readouterr().err.startswith(f"python -m mpc: error: {StoreKeyMissing.code}: ")
    first, second = tmp_path / "first.key", tmp_path / "second.key"
    assert main(["store-key", "new", "--out", str(first)]) == 0 and _mode(first) == 0o600
    assert main(["store-key", "rotate", "--new-key-file", str(first)]) == 0  # seals the plaintext store
    monkeypatch.setenv(KEY_FILE_ENV, str(first))
    assert main(["nonce-epoch"]) == 0
    main(["store-key", "new", "--out", str(second)])
    assert main(["store-key", "--db", db, "rotate", "--new-key-file", str(second)]) == 0  # old key from the env
    monkeypatch.setenv(KEY_FILE_ENV, str(second))
    assert main(["nonce-epoch"]) == 0
    assert main(["store-key", "rotate", "--db", db, "--new-key-file", str(second)]) == 0  # again: harmless
    store = open_store(db)
    _check_filled(store)
    store.close()
    out = capsys.readouterr().out
    assert "9 secret values sealed under" in out and base64.b64encode(b"x").decode() not in out
