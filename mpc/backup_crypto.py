"""Client-side encryption of backup shares, and the backup methods that keep the key (issue 8).

Encrypted backup share (``encrypt_backup`` / ``decrypt_backup``)::

    box = "MPBS" | version 1 | nonce (24) | XChaCha20-Poly1305-IETF(key, nonce, share, AD)
    AD  = box header ‖ context.to_bytes()   (client id and curve, length-prefixed)

The key is 32 fresh bytes from libsodium's CSPRNG, one per encryption. Binding the context as
associated data means a box only opens for the client and curve it was made for: a box moved to
another client, or an ed25519 box presented as the secp256k1 one, fails like a wrong key.
Every failure (wrong key, wrong context, tampered or truncated box) is ``BackupDecryptionFailed``.

Backup methods keep that key. Each has a ``name`` (``PASSWORD``, ``CLOUD``, ``PASSKEY``) and::

    store_key(context, key) -> record     keep the key; return a record to store beside the box
    load_key(context, record) -> key      get the key back for recover

The record is public (the custodian may hold it with the encrypted share); it starts with the
method's name, so recovering through another method than the backup's raises ``InputInvalid``.

- :class:`PasswordMethod` (``PASSWORD``): the key is wrapped under Argon2id(password, salt); the
  record carries the Argon2id parameters, the salt and the wrapped key. Wrong password →
  ``BackupPasswordInvalid``. Anyone holding the record can try passwords offline, at Argon2id's
  cost: the default is libsodium's MODERATE limits (3 passes, 256 MiB).
- :class:`CloudMethod` (``CLOUD``): the key is saved through a :class:`CloudStorage` (the user's
  cloud drive; :class:`LocalFolderCloudStorage` is the default, :class:`MemoryCloudStorage` for
  tests, :class:`KeychainCloudStorage` adapts any keychain); the record only names the method. Missing key → ``BackupKeyNotFound``.
- :class:`PasskeyMethod` (``PASSKEY``): a device-held secret wraps the key through a
  :class:`PasskeyWrapper` (e.g. a WebAuthn PRF output on a real device;
  :class:`MemoryPasskeyWrapper` is the in-memory test double); the record is the wrapped key.
"""

from __future__ import annotations

import os
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.utils
from nacl import bindings as sodium

from curves import group_by_name
from curves.errors import CurveError
from mpc.errors import (
    BackupDecryptionFailed,
    BackupKeyNotFound,
    BackupPasswordInvalid,
    EngineError,
    InputInvalid,
    KeychainCorrupted,
    KeychainEntryNotFound,
)
from mpc.keychain import FileKeychain, Keychain, MemoryKeychain, validate_name

__all__ = [
    "KEY_LENGTH",
    "BackupContext",
    "encrypt_backup",
    "decrypt_backup",
    "BackupMethod",
    "PasswordMethod",
    "CloudStorage",
    "KeychainCloudStorage",
    "LocalFolderCloudStorage",
    "MemoryCloudStorage",
    "CloudMethod",
    "PasskeyWrapper",
    "MemoryPasskeyWrapper",
    "PasskeyMethod",
]

KEY_LENGTH = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES  # 32
_NONCE_LENGTH = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES  # 24
_TAG_LENGTH = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES  # 16
_BOX_HEADER = b"MPBS\x01"
_RECORD_MAGIC = b"MPBK\x01"


# --- context and AEAD ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BackupContext:
    """What an encrypted backup share belongs to: the client and the curve of the share."""

    client_id: str
    curve: str

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise InputInvalid("backup context needs a non-empty client id")
        if not isinstance(self.curve, str):
            raise InputInvalid("backup context needs a curve name")
        try:
            group_by_name(self.curve)
        except CurveError:
            raise InputInvalid(f"unknown curve {self.curve!r}") from None

    def to_bytes(self) -> bytes:
        """Canonical, length-prefixed encoding (the associated data of the encryption)."""
        fields = [b"portal-mpc/backup-share", self.client_id.encode(), self.curve.encode()]
        return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def _check_key(key: object, error: type[EngineError] = InputInvalid) -> bytes:
    """``key`` as bytes if it has the key length; else ``error`` (the caller's or the data's fault)."""
    if not isinstance(key, (bytes, bytearray)):
        raise InputInvalid("a backup key is bytes")
    if len(key) != KEY_LENGTH:
        raise error(f"a backup key is {KEY_LENGTH} bytes")
    return bytes(key)


def _seal(key: bytes, header: bytes, plaintext: bytes, ad: bytes) -> bytes:
    nonce = nacl.utils.random(_NONCE_LENGTH)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header + ad, nonce, key)
    return header + nonce + sealed


def _open(key: bytes, header: bytes, blob: bytes, ad: bytes) -> bytes | None:
    """The plaintext, or None if the blob does not open under this key and AD."""
    if len(blob) < len(header) + _NONCE_LENGTH + _TAG_LENGTH or not blob.startswith(header):
        return None
    nonce = blob[len(header) : len(header) + _NONCE_LENGTH]
    sealed = blob[len(header) + _NONCE_LENGTH :]
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, header + ad, nonce, key)
    except nacl.exceptions.CryptoError:
        return None


def encrypt_backup(plaintext: bytes, context: BackupContext) -> tuple[bytes, bytes]:
    """Encrypt a backup share under a fresh key: returns ``(key, box)``; the key is secret."""
    if not isinstance(plaintext, (bytes, bytearray)):
        raise InputInvalid("a backup share is bytes")
    if not isinstance(context, BackupContext):
        raise InputInvalid("context must be a BackupContext")
    key = nacl.utils.random(KEY_LENGTH)
    return key, _seal(key, _BOX_HEADER, bytes(plaintext), context.to_bytes())


def decrypt_backup(key: bytes, box: bytes, context: BackupContext) -> bytes:
    """Open a box from :func:`encrypt_backup`; ``BackupDecryptionFailed`` on any mismatch."""
    if not isinstance(box, (bytes, bytearray)) or not isinstance(context, BackupContext):
        raise InputInvalid("decrypt_backup takes a key, a box (bytes) and a BackupContext")
    plaintext = _open(_check_key(key, BackupDecryptionFailed), _BOX_HEADER, bytes(box), context.to_bytes())
    if plaintext is None:
        raise BackupDecryptionFailed(
            "the backup share does not open: wrong key, tampered box, or another client or curve"
        )
    return plaintext


# --- key records ---------------------------------------------------------------------------------
def _record(method: str, body: bytes) -> bytes:
    raw = method.encode("ascii")
    return _RECORD_MAGIC + bytes([len(raw)]) + raw + body


def _record_body(method: str, record: object) -> bytes:
    """The method-specific body of a key record, after checking it is this method's."""
    if not isinstance(record, (bytes, bytearray)):
        raise InputInvalid("a backup key record is bytes")
    record = bytes(record)
    if len(record) < 6 or not record.startswith(_RECORD_MAGIC):
        raise BackupDecryptionFailed("not a backup key record")
    end = 6 + record[5]
    if len(record) < end:
        raise BackupDecryptionFailed("the backup key record is truncated")
    stored = record[6:end].decode("ascii", errors="replace")
    if stored != method:
        raise InputInvalid(f"this backup's key is kept by method {stored!r}, not {method!r}")
    return record[end:]


class BackupMethod(ABC):
    """Keeps the key of an encrypted backup share (see the module docstring)."""

    name: ClassVar[str]

    @abstractmethod
    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        """Keep ``key``; return the (non-secret) record to store beside the encrypted share."""

    @abstractmethod
    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        """The key kept by :meth:`store_key` for this context and record."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --- PASSWORD ------------------------------------------------------------------------------------
_ARGON2_OPS_RANGE = (argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_SENSITIVE)
_ARGON2_MEM_RANGE = (argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_SENSITIVE)
_WRAP_HEADER = b"MPBW\x01"


def _password_bytes(password: object) -> bytes:
    if isinstance(password, str):
        # NFC so the same password typed on two keyboards derives the same key.
        password = unicodedata.normalize("NFC", password).encode("utf-8")
    if not isinstance(password, (bytes, bytearray)) or not password:
        raise InputInvalid("a backup password is a non-empty string or bytes")
    return bytes(password)


class PasswordMethod(BackupMethod):
    """``PASSWORD``: the key wrapped under Argon2id(password); parameters kept in the record."""

    name = "PASSWORD"

    def __init__(
        self,
        password: str | bytes,
        *,
        opslimit: int = argon2id.OPSLIMIT_MODERATE,
        memlimit: int = argon2id.MEMLIMIT_MODERATE,
    ) -> None:
        _check_argon2_limits(opslimit, memlimit, InputInvalid)
        self._password = _password_bytes(password)
        self.opslimit = opslimit
        self.memlimit = memlimit

    def _kek(self, salt: bytes, opslimit: int, memlimit: int) -> bytes:
        return argon2id.kdf(KEY_LENGTH, self._password, salt, opslimit=opslimit, memlimit=memlimit)

    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        salt = nacl.utils.random(argon2id.SALTBYTES)
        params = self.opslimit.to_bytes(8, "big") + self.memlimit.to_bytes(8, "big") + salt
        kek = self._kek(salt, self.opslimit, self.memlimit)
        wrapped = _seal(kek, _WRAP_HEADER, _check_key(key), params + context.to_bytes())
        return _record(self.name, params + wrapped)

    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        body = _record_body(self.name, record)
        params_len = 16 + argon2id.SALTBYTES
        if len(body) < params_len:
            raise BackupDecryptionFailed("the password backup record is truncated")
        opslimit, memlimit = int.from_bytes(body[:8], "big"), int.from_bytes(body[8:16], "big")
        # Bounded so a forged record cannot make us spend unbounded time or memory.
        _check_argon2_limits(opslimit, memlimit, BackupDecryptionFailed)
        kek = self._kek(body[16:params_len], opslimit, memlimit)
        key = _open(kek, _WRAP_HEADER, body[params_len:], body[:params_len] + context.to_bytes())
        if key is None:
            raise BackupPasswordInvalid()
        return key

    def __repr__(self) -> str:
        return "<PasswordMethod PASSWORD (password redacted)>"


def _check_argon2_limits(opslimit: int, memlimit: int, error: type[EngineError]) -> None:
    ops_ok = _ARGON2_OPS_RANGE[0] <= opslimit <= _ARGON2_OPS_RANGE[1]
    mem_ok = _ARGON2_MEM_RANGE[0] <= memlimit <= _ARGON2_MEM_RANGE[1]
    if not (ops_ok and mem_ok):
        raise error("Argon2id limits outside the supported range (MIN..SENSITIVE)")


# --- CLOUD ---------------------------------------------------------------------------------------
class CloudStorage(ABC):
    """The user's cloud storage as the client sees it: named blobs."""

    @abstractmethod
    def save(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing what was there."""

    @abstractmethod
    def load(self, name: str) -> bytes:
        """The blob stored under ``name``; ``BackupKeyNotFound`` if there is none."""


class KeychainCloudStorage(CloudStorage):
    """Cloud storage over any :class:`~mpc.keychain.Keychain` (names validated the same way)."""

    def __init__(self, keychain: Keychain) -> None:
        self.keychain = keychain

    def save(self, name: str, data: bytes) -> None:
        self.keychain.put(name, data)

    def load(self, name: str) -> bytes:
        try:
            return self.keychain.get(name)
        except KeychainEntryNotFound:
            raise BackupKeyNotFound(f"no backup key {name!r} in cloud storage") from None
        except KeychainCorrupted:
            raise BackupDecryptionFailed(f"backup key {name!r} in cloud storage is damaged") from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.keychain!r}>"


class LocalFolderCloudStorage(KeychainCloudStorage):
    """The default: a local (or synced) folder; atomic, checksummed 0600 files (a FileKeychain)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(FileKeychain(path))


class MemoryCloudStorage(KeychainCloudStorage):
    """Cloud storage in memory (tests)."""

    def __init__(self) -> None:
        super().__init__(MemoryKeychain())


class CloudMethod(BackupMethod):
    """``CLOUD``: the key saved in the user's cloud storage as ``<client_id>.<curve>.backup-key``."""

    name = "CLOUD"

    def __init__(self, storage: CloudStorage) -> None:
        self.storage = storage

    @staticmethod
    def object_name(context: BackupContext) -> str:
        """The name the key is stored under (the client id must be a valid keychain-style name)."""
        return validate_name(f"{context.client_id}.{context.curve}.backup-key")

    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        self.storage.save(self.object_name(context), _check_key(key))
        return _record(self.name, b"")

    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        _record_body(self.name, record)
        return _check_key(self.storage.load(self.object_name(context)), BackupDecryptionFailed)

    def __repr__(self) -> str:
        return f"<CloudMethod CLOUD via {self.storage!r}>"


# --- PASSKEY -------------------------------------------------------------------------------------
class PasskeyWrapper(ABC):
    """Wraps and unwraps a key with a secret that never leaves the user's device."""

    @abstractmethod
    def wrap(self, key: bytes) -> bytes:
        """The key, encrypted and authenticated under the device secret."""

    @abstractmethod
    def unwrap(self, blob: bytes) -> bytes:
        """The key of a :meth:`wrap` output; ``BackupDecryptionFailed`` if it does not open."""


class MemoryPasskeyWrapper(PasskeyWrapper):
    """Test double of a passkey: a 32-byte device secret in memory wraps with XChaCha20-Poly1305."""

    _HEADER = b"MPPK\x01"

    def __init__(self, device_secret: bytes | None = None) -> None:
        if device_secret is None:
            device_secret = nacl.utils.random(KEY_LENGTH)
        if not isinstance(device_secret, (bytes, bytearray)) or len(device_secret) != KEY_LENGTH:
            raise InputInvalid(f"a device secret is {KEY_LENGTH} bytes")
        self._secret = bytes(device_secret)

    def wrap(self, key: bytes) -> bytes:
        return _seal(self._secret, self._HEADER, _check_key(key), b"")

    def unwrap(self, blob: bytes) -> bytes:
        key = _open(self._secret, self._HEADER, bytes(blob), b"")
        if key is None:
            raise BackupDecryptionFailed("the passkey does not unwrap this backup key")
        return key

    def __repr__(self) -> str:
        return "<MemoryPasskeyWrapper (device secret redacted)>"


class PasskeyMethod(BackupMethod):
    """``PASSKEY``: the key wrapped by a device-held secret; the record is the wrapped key.

    The wrapper does not see the context; a record moved to another client or curve unwraps,
    but its key then fails on that context's box (which binds the context itself).
    """

    name = "PASSKEY"

    def __init__(self, wrapper: PasskeyWrapper) -> None:
        self.wrapper = wrapper

    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        return _record(self.name, self.wrapper.wrap(_check_key(key)))

    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        key = self.wrapper.unwrap(_record_body(self.name, record))
        return _check_key(key, BackupDecryptionFailed)

    def __repr__(self) -> str:
        return f"<PasskeyMethod PASSKEY via {self.wrapper!r}>"
