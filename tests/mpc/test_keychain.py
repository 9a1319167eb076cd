"""The client keychain: interface behaviour for both implementations, FileKeychain's disk format."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.errors import InputInvalid, KeychainCorrupted, KeychainEntryNotFound, NotFound
from mpc.storage.keychain import FileKeychain, Keychain, MemoryKeychain, validate_name

SECRET = b"\x13share-bytes-that-must-not-leak\x37"


@pytest.fixture(params=["memory", "file"])
def keychain(request, tmp_path) -> Keychain:
    if request.param == "memory":
        return MemoryKeychain()
    return FileKeychain(tmp_path / "kc")


def test_put_get_round_trip_and_overwrite(keychain):
    keychain.put("ecdsa-signing", SECRET)
    assert keychain.get("ecdsa-signing") == SECRET
    keychain.put("ecdsa-signing", b"new")
    assert keychain.get("ecdsa-signing") == b"new"


def test_empty_value_round_trips(keychain):
    keychain.put("empty", b"")
    assert keychain.get("empty") == b""


def test_missing_entry_is_a_typed_not_found(keychain):
    with pytest.raises(KeychainEntryNotFound) as info:
        keychain.get("absent")
    assert isinstance(info.value, NotFound) and info.value.status == 404


def test_delete(keychain):
    keychain.put("a", b"1")
    keychain.delete("a")
    assert "a" not in keychain
    with pytest.raises(KeychainEntryNotFound):
        keychain.delete("a")
    keychain.delete("a", missing_ok=True)


def test_names_and_wipe(keychain):
    for name in ["b", "a", "frost.share", "ECDSA_share-1"]:
        keychain.put(name, b"x")
    assert keychain.names() == sorted(["b", "a", "frost.share", "ECDSA_share-1"])
    assert "a" in keychain
    keychain.wipe()
    assert keychain.names() == []


@pytest.mark.parametrize(
    "name",
    ["", "../escape", "a/b", "/abs", ".hidden", "..", "-dash", "x" * 129, "ümlaut", "a b", "a\0b", 7],
)
def test_rejects_names_that_could_leave_the_directory_or_are_malformed(keychain, name):
    with pytest.raises(InputInvalid):
        keychain.put(name, b"x")
    with pytest.raises(InputInvalid):
        keychain.get(name)


def test_rejects_non_bytes_data(keychain):
    with pytest.raises(InputInvalid):
        keychain.put("a", "text")  # type: ignore[arg-type]


def test_validate_name_accepts_the_longest_name():
    assert validate_name("x" * 128) == "x" * 128


def test_repr_shows_no_secret(tmp_path):
    memory = MemoryKeychain()
    memory.put("a", SECRET)
    files = FileKeychain(tmp_path / "kc")
    files.put("a", SECRET)
    for keychain in (memory, files):
        assert "share-bytes" not in repr(keychain) and SECRET.hex() not in repr(keychain)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip_through_a_file(data):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        keychain = FileKeychain(os.path.join(tmp, "kc"))
        keychain.put("entry", data)
        assert FileKeychain(os.path.join(tmp, "kc")).get("entry") == data


# --- FileKeychain on disk -------------------------------------------------------------------------
def test_file_and_directory_permissions(tmp_path):
    keychain = FileKeychain(tmp_path / "kc")
    keychain.put("a", SECRET)
    assert stat.S_IMODE((tmp_path / "kc").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "kc" / "a.entry").stat().st_mode) == 0o600


def test_existing_open_directory_is_tightened(tmp_path):
    directory = tmp_path / "kc"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    FileKeychain(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_no_temporary_files_remain_after_writes(tmp_path):
    keychain = FileKeychain(tmp_path / "kc")
    for i in range(5):
        keychain.put("a", bytes([i]) * 100)
    assert sorted(p.name for p in (tmp_path / "kc").iterdir()) == ["a.entry"]


def test_interrupted_write_leaves_the_old_entry(tmp_path, monkeypatch):
    keychain = FileKeychain(tmp_path / "kc")
    keychain.put("a", b"old")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        keychain.put("a", b"new")
    monkeypatch.undo()
    assert keychain.get("a") == b"old"
    assert keychain.names() == ["a"]
    assert [p.name for p in (tmp_path / "kc").iterdir()] == ["a.entry"]


def test_wipe_removes_leftover_temporary_files(tmp_path):
    keychain = FileKeychain(tmp_path / "kc")
    (tmp_path / "kc" / ".tmp-abc").write_bytes(b"partial")
    keychain.put("a", b"x")
    keychain.wipe()
    assert list((tmp_path / "kc").iterdir()) == []


def _entry(tmp_path):
    keychain = FileKeychain(tmp_path / "kc")
    keychain.put("share", SECRET)
    return keychain, tmp_path / "kc" / "share.entry"


def test_truncated_file_is_corrupted(tmp_path):
    keychain, path = _entry(tmp_path)
    blob = path.read_bytes()
    for length in (0, 3, 10, len(blob) - 1):
        path.write_bytes(blob[:length])
        with pytest.raises(KeychainCorrupted):
            keychain.get("share")


def test_every_flipped_byte_is_detected(tmp_path):
    keychain, path = _entry(tmp_path)
    blob = path.read_bytes()
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(KeychainCorrupted) as info:
            keychain.get("share")
        assert "share-bytes" not in str(info.value)


def test_appended_garbage_is_detected(tmp_path):
    keychain, path = _entry(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(KeychainCorrupted):
        keychain.get("share")


def test_file_copied_to_another_name_is_detected(tmp_path):
    keychain, path = _entry(tmp_path)
    (tmp_path / "kc" / "other.entry").write_bytes(path.read_bytes())
    with pytest.raises(KeychainCorrupted):
        keychain.get("other")


def test_unknown_version_is_reported_as_such(tmp_path):
    keychain, path = _entry(tmp_path)
    blob = bytearray(path.read_bytes())
    blob[4] = 99
    path.write_bytes(bytes(blob))
    with pytest.raises(KeychainCorrupted, match="version"):
        keychain.get("share")


def test_symlinked_entry_is_not_followed(tmp_path):
    keychain = FileKeychain(tmp_path / "kc")
    target = tmp_path / "elsewhere"
    target.write_bytes(b"not a keychain file")
    (tmp_path / "kc" / "link.entry").symlink_to(target)
    with pytest.raises(KeychainCorrupted):
        keychain.get("link")


def test_corruption_error_json_has_code(tmp_path):
    keychain, path = _entry(tmp_path)
    path.write_bytes(b"garbage")
    with pytest.raises(KeychainCorrupted) as info:
        keychain.get("share")
    assert info.value.to_json()["error"]["id"] == "KEYCHAIN_CORRUPTED"


def test_membership_agrees_with_the_listing(keychain) -> None:
    keychain.put("c1.ed25519.signing", SECRET)
    assert "c1.ed25519.signing" in keychain and "c1.ed25519.signing" in keychain.names()
    for name in ("c1.secp256k1.signing", "", "../escape", ".hidden", "x" * 129, 7, None):
        assert name not in keychain  # never an error, whatever the name
    keychain.delete("c1.ed25519.signing")
    assert "c1.ed25519.signing" not in keychain and keychain.names() == []
