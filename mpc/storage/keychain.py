"""The client's keychain: where a device keeps its signing shares.

:class:`Keychain` is the interface the client uses; any platform store (OS keychain, secure
enclave wrapper, ...) can implement it. Two implementations ship here:

- :class:`MemoryKeychain`: a dict in memory, for tests and short-lived tools.
- :class:`FileKeychain`: one file per entry in a directory of its own.

FileKeychain on disk: the directory (and any parent it creates) is mode 0700 and each entry
file ``<name>.entry`` is mode 0600, whatever the umask. A write goes to a temporary file in the same directory, is fsync'd, then moved over the
entry with ``os.replace`` (atomic on POSIX) and the directory is fsync'd, so a crash leaves
either the old or the new entry, never a half-written one. Each file is::

    magic "MPKC" | version (1 byte) | name length (1) | name | data length (8, big-endian) | data
    | BLAKE2b-256 of everything before

The checksum and the embedded name make a damaged, truncated or swapped file raise
:class:`~mpc.errors.KeychainCorrupted` instead of handing back wrong share bytes. It detects
accidents, not an attacker with write access to the directory: the files are not encrypted, so
the directory's permissions (and the device's disk encryption) are what protect the shares.

Entry names are 1-128 characters of ``A-Z a-z 0-9 . _ -`` starting with a letter or digit, so
a name can never leave the directory (no ``/``, no ``..`` path, no hidden file).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from mpc.storage._files import private_dirs
from mpc.errors import InputInvalid, KeychainCorrupted, KeychainEntryNotFound

__all__ = ["Keychain", "MemoryKeychain", "FileKeychain", "validate_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_name(name: object) -> str:
    """Return ``name`` if it is an allowed entry name, else raise ``InputInvalid``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputInvalid(
            "keychain entry names are 1-128 characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return name


def _validate_data(data: object) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputInvalid("keychain entries hold bytes")
    return bytes(data)


class Keychain(ABC):
    """A device's store of named secret byte strings (the client's signing shares)."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing any entry of that name."""

    @abstractmethod
    def get(self, name: str) -> bytes:
        """The bytes stored under ``name``; ``KeychainEntryNotFound`` if there are none."""

    @abstractmethod
    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Remove the entry; ``KeychainEntryNotFound`` if absent unless ``missing_ok``."""

    @abstractmethod
    def names(self) -> list[str]:
        """The names of all entries, sorted."""

    def wipe(self) -> None:
        """Remove every entry (a device reset)."""
        for name in self.names():
            self.delete(name, missing_ok=True)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()


class MemoryKeychain(Keychain):
    """A keychain held in memory (tests, short-lived tools)."""

    def __init__(self) -> None:
        self._entries: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> None:
        self._entries[validate_name(name)] = _validate_data(data)

    def get(self, name: str) -> bytes:
        try:
            return self._entries[validate_name(name)]
        except KeyError:
            raise KeychainEntryNotFound(f"no keychain entry named {name!r}") from None

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        if self._entries.pop(validate_name(name), None) is None and not missing_ok:
            raise KeychainEntryNotFound(f"no keychain entry named {name!r}")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries  # only valid names are ever stored

    def __repr__(self) -> str:
        return f"<MemoryKeychain with {len(self._entries)} entries>"


# --- file format --------------------------------------------------------------------------------
_MAGIC = b"MPKC"
_VERSION = 1
_SUFFIX = ".entry"
_TMP_PREFIX = ".tmp-"  # never a valid entry name, so temp files can't be mistaken for entries
_CHECKSUM_LEN = 32


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=_CHECKSUM_LEN, person=b"mpc-keychain").digest()


def _encode_entry(name: str, data: bytes) -> bytes:
    """The versioned, checksummed file content of one entry."""
    raw_name = name.encode("ascii")
    body = (
        _MAGIC
        + bytes([_VERSION, len(raw_name)])
        + raw_name
        + len(data).to_bytes(8, "big")
        + data
    )
    return body + _checksum(body)


def _decode_entry(name: str, blob: bytes) -> bytes:
    """The data of an entry file, after checking its header, length, name and checksum."""
    if len(blob) < len(_MAGIC) + 2 + _CHECKSUM_LEN or not blob.startswith(_MAGIC):
        raise KeychainCorrupted(f"keychain entry {name!r} has no valid header")
    if blob[4] != _VERSION:
        raise KeychainCorrupted(f"keychain entry {name!r} has unknown format version {blob[4]}")
    body, checksum = blob[:-_CHECKSUM_LEN], blob[-_CHECKSUM_LEN:]
    if not hmac.compare_digest(checksum, _checksum(body)):
        raise KeychainCorrupted(f"keychain entry {name!r} fails its checksum (damaged or truncated)")
    name_len = body[5]
    stored_name = body[6 : 6 + name_len]
    rest = body[6 + name_len :]
    if stored_name != name.encode("ascii"):
        raise KeychainCorrupted(f"keychain entry {name!r} holds another entry's data")
    if len(rest) < 8 or int.from_bytes(rest[:8], "big") != len(rest) - 8:
        raise KeychainCorrupted(f"keychain entry {name!r} has a wrong length field")
    return rest[8:]


class FileKeychain(Keychain):
    """One checksummed file per entry in ``directory`` (created 0700 if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        # Missing folders are made 0700 whatever the umask; the directory is the keychain's
        # own: others are kept out even if it existed before.
        self.directory = private_dirs(directory)

    def _path(self, name: str) -> Path:
        return self.directory / (validate_name(name) + _SUFFIX)

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        content = _encode_entry(name, _validate_data(data))
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        self._sync_directory()

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise KeychainEntryNotFound(f"no keychain entry named {name!r}") from None
        except OSError:
            raise KeychainCorrupted(f"keychain entry {name!r} cannot be opened") from None
        with os.fdopen(fd, "rb") as handle:
            blob = handle.read()
        return _decode_entry(name, blob)

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            if not missing_ok:
                raise KeychainEntryNotFound(f"no keychain entry named {name!r}") from None
            return
        self._sync_directory()

    def names(self) -> list[str]:
        found = []
        for path in self.directory.iterdir():
            stem = path.name[: -len(_SUFFIX)]
            if path.name.endswith(_SUFFIX) and _NAME.fullmatch(stem):
                found.append(stem)
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        """One ``stat`` of the entry's file (not a listing of the directory, as ``names`` is)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return False
        return os.path.lexists(self.directory / (name + _SUFFIX))  # what ``names`` would list

    def wipe(self) -> None:
        """Remove every entry and any temporary file left by an interrupted write."""
        super().wipe()
        for path in self.directory.glob(_TMP_PREFIX + "*"):
            _unlink_quietly(str(path))

    def _sync_directory(self) -> None:
        # Makes the rename itself durable; not possible on every platform.
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<FileKeychain at {str(self.directory)!r}>"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
