"""The custodian's secrets at rest: envelope encryption with AES-256-GCM (NIST SP 800-38D).

Every secret value the custodian's store keeps (shares, the ring-Pedersen setup with its
trapdoor, precomputations, parked sessions, client backups) is *sealed* on its own by a
:class:`Sealer`: a fresh random 256-bit data key (DEK) encrypts the value with AES-256-GCM,
and the DEK is *wrapped* by a key-encryption key (KEK) that a :class:`KeyProvider` holds. The
KEK never touches the database; a thief of the database (or of a backup of it) gets
ciphertext only.

Sealed value, format version 1 (all lengths big-endian)::

    magic b"\\xa5PMS" (4) | version 0x01 (1) | key id length (1) | key id (UTF-8)
    | wrapped DEK length (2) | wrapped DEK | nonce (12) | AES-256-GCM ciphertext and tag (16)

Associated data: the DEK is wrapped under ``b"portal-mpc/dek/v1" + row`` and the value is
encrypted under ``header + row``, where ``header`` is every byte before the nonce and ``row``
is :func:`row_aad` of the row's identity (table, column and key: client id, kind, method,
curve, ...). Changing any byte, or moving a sealed value to another row, client or curve, makes
it fail authentication (``StoreCorrupted``); a value sealed under a key this sealer does not
hold raises ``StoreKeyInvalid``.

Keys: :class:`LocalKeyProvider` holds a 32-byte KEK read from a 0600 file (``from_file``;
``new_key_file`` makes one with ``secrets``) or from the environment (``from_env``). Any key
management service plugs in as a :class:`KeyProvider` (``key_id``, ``wrap``, ``unwrap``). A
sealer seals with its current provider and opens with any of its providers (current and
previous ones): that is how a key rotation reads old rows (``SQLiteStore.rotate_key``).

Environment (``Sealer.from_env``; ``docs/operations.md``, Key management)
  PORTAL_MPC_STORE_KEY             the KEK, standard base64 of 32 bytes
  PORTAL_MPC_STORE_KEY_FILE        a 0600 file holding that base64 text
  PORTAL_MPC_STORE_OLD_KEY_FILES   previous key files (``os.pathsep``-separated), read only
  PORTAL_MPC_STORE_PLAINTEXT=1     allow a store with no key (tests only; ``mpc.storage.backends``)
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mpc.storage._files import create_private_file, private_dirs
from mpc.errors import InputInvalid, StoreCorrupted, StoreKeyInvalid, StoreKeyMissing

__all__ = [
    "KeyProvider",
    "LocalKeyProvider",
    "Sealer",
    "new_key_file",
    "key_file",
    "row_aad",
    "looks_sealed",
    "plaintext_allowed",
    "SEALING_FORMAT",
    "KEY_ENV",
    "KEY_FILE_ENV",
    "OLD_KEY_FILES_ENV",
    "PLAINTEXT_ENV",
]

KEY_ENV = "PORTAL_MPC_STORE_KEY"
KEY_FILE_ENV = "PORTAL_MPC_STORE_KEY_FILE"
OLD_KEY_FILES_ENV = "PORTAL_MPC_STORE_OLD_KEY_FILES"
PLAINTEXT_ENV = "PORTAL_MPC_STORE_PLAINTEXT"

SEALING_FORMAT = "aes256gcm-envelope-v1"  # what a sealed store records in its meta table

MAGIC = b"\xa5PMS"  # 0xA5 never starts UTF-8 text, JSON or the engine's binary encodings
VERSION = 1
KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_WRAP_DOMAIN = b"portal-mpc/dek/v1\x00"
_ROW_DOMAIN = b"portal-mpc/row/v1\x00"
_KEY_ID_DOMAIN = b"portal-mpc/store-key-id/v1"
_MAX_KEY_FILE = 4096


@runtime_checkable
class KeyProvider(Protocol):
    """Where a KEK lives (a local file, or a key management service such as a cloud KMS).

    ``wrap`` encrypts a 32-byte data key under the KEK with ``aad`` as associated data (a KMS
    "encryption context"); ``unwrap`` reverses it and raises ``StoreCorrupted`` if the wrapped
    key does not authenticate under ``aad``. ``key_id`` names the KEK (public, at most 255
    UTF-8 bytes, stored in every sealed value and in the store's meta table)."""

    @property
    def key_id(self) -> str:
        """The KEK's public name (at most 255 UTF-8 bytes)."""

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """Encrypt the 32-byte data key ``dek`` under the KEK, bound to ``aad``."""

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """The data key of ``wrapped``; ``StoreCorrupted`` if it does not authenticate under ``aad``."""


class LocalKeyProvider:
    """A KEK held in this process (AES-256-GCM key wrap with a random 96-bit nonce).

    The key bytes are kept only inside the AEAD object: the repr shows the key id, never the
    key, and the provider cannot be pickled."""

    __slots__ = ("_aead", "_key_id", "_kdf")

    def __init__(self, kek: bytes) -> None:
        if not isinstance(kek, (bytes, bytearray)) or len(kek) != KEY_BYTES:
            raise StoreKeyInvalid(f"a store key is {KEY_BYTES} bytes")
        kek = bytes(kek)
        self._aead = AESGCM(kek)
        fingerprint = hmac.new(kek, _KEY_ID_DOMAIN, hashlib.sha256).hexdigest()[:16]
        self._key_id = f"local:{fingerprint}"
        self._kdf = hashlib.blake2b(key=kek, digest_size=32, person=b"portal-mpc/kdf")

    @property
    def key_id(self) -> str:
        """``local:`` and 64 bits of HMAC-SHA256(KEK, domain): names the key, reveals nothing of it."""
        return self._key_id

    @classmethod
    def from_base64(cls, text: str | bytes) -> LocalKeyProvider:
        """A KEK from standard base64 of 32 bytes (surrounding whitespace allowed)."""
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise StoreKeyInvalid("the store key is not valid base64") from None
        if len(raw) != KEY_BYTES:
            raise StoreKeyInvalid(f"the store key must decode to {KEY_BYTES} bytes")
        return cls(raw)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        """The KEK in ``path`` (base64 text); a file group or others may access is refused."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise StoreKeyMissing(f"no store key file at {os.fspath(path)}") from None
        except OSError as exc:
            raise StoreKeyInvalid(f"the store key file {os.fspath(path)} cannot be opened ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise StoreKeyInvalid(f"the store key file {os.fspath(path)} is not a regular file")
            if mode & 0o077:
                raise StoreKeyInvalid(f"the store key file {os.fspath(path)} is accessible to group or others "
                                      f"(mode {stat.S_IMODE(mode):04o}): chmod 600 it")
            content = handle.read(_MAX_KEY_FILE + 1)
        if len(content) > _MAX_KEY_FILE:
            raise StoreKeyInvalid(f"the store key file {os.fspath(path)} is not a store key")
        return cls.from_base64(content)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalKeyProvider | None:
        """The KEK of ``$PORTAL_MPC_STORE_KEY`` (base64) or ``$PORTAL_MPC_STORE_KEY_FILE``
        (a path); None if neither is set, ``StoreKeyInvalid`` if both are."""
        env = os.environ if environ is None else environ
        text, path = env.get(KEY_ENV), env.get(KEY_FILE_ENV)
        if text and path:
            raise StoreKeyInvalid(f"set only one of {KEY_ENV} and {KEY_FILE_ENV}")
        if text:
            return cls.from_base64(text)
        if path:
            return cls.from_file(path)
        return None

    def derive(self, label: bytes) -> bytes:
        """A 32-byte key of its own for ``label`` (BLAKE2b keyed with the KEK, domain-tagged):
        e.g. the revocation ledger's MAC key (``mpc.storage.ledger``)."""
        kdf = self._kdf.copy()
        kdf.update(len(label).to_bytes(2, "big") + label)
        return kdf.digest()

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """nonce (12) | AES-256-GCM(KEK, nonce, dek, aad) with its tag."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """The data key of ``wrap``'s output; ``StoreCorrupted`` if it does not authenticate."""
        if len(wrapped) != _NONCE_BYTES + KEY_BYTES + _TAG_BYTES:
            raise StoreCorrupted("a wrapped data key has the wrong length")
        try:
            return self._aead.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise StoreCorrupted("a wrapped data key fails authentication (tampered or moved)") from None

    def __repr__(self) -> str:
        return f"<LocalKeyProvider {self._key_id}>"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a store key is not pickled: every process reads it from its own configuration")


def new_key_file(path: str | os.PathLike[str]) -> LocalKeyProvider:
    """Make a new KEK (``secrets``) in a new file at ``path``, mode 0600 (a missing folder is
    made 0700); an existing file is never overwritten (``InputInvalid``)."""
    target = Path(path)
    if not target.parent.exists():
        private_dirs(target.parent)
    kek = secrets.token_bytes(KEY_BYTES)
    try:
        create_private_file(target, base64.b64encode(kek) + b"\n")
    except FileExistsError:
        raise InputInvalid(f"{target} exists: a store key file is never overwritten") from None
    return LocalKeyProvider(kek)


def key_file(path: str | os.PathLike[str]) -> LocalKeyProvider:
    """The key in ``path``, made first (``new_key_file``) if there is no file there (the demo's)."""
    if os.path.lexists(path):
        return LocalKeyProvider.from_file(path)
    return new_key_file(path)


def row_aad(table: str, column: str, *key: str | bytes | int) -> bytes:
    """The identity of one stored value (table, column, then its key columns), encoded without
    ambiguity: each part is a type byte, a 4-byte length and the bytes (ints as decimal text).

    A row's key of text only (a parked session's, a share's) is encoded once for its columns
    (issue 30, round seven: a parked row seals and opens two columns, each step): ``_text_key``
    keeps the last few such encodings (ids, never secrets); the bytes are the same."""
    named = _named(table, column)
    if all(type(part) is str for part in key):
        return _ROW_DOMAIN + named + _text_key(*key)
    return _ROW_DOMAIN + named + _encoded_parts(key)


def _encoded_parts(parts: tuple[str | bytes | int, ...]) -> bytes:
    """``row_aad``'s encoding of ``parts``, each in turn (``InputInvalid`` for a bool)."""
    out = bytearray()
    for part in parts:
        if isinstance(part, bool):
            raise InputInvalid("a row key part is text, bytes or an integer")
        if isinstance(part, int):
            part = str(part)
        tag, raw = (b"s", part.encode("utf-8")) if isinstance(part, str) else (b"b", bytes(part))
        out += tag + len(raw).to_bytes(4, "big") + raw
    return bytes(out)


@functools.lru_cache(maxsize=64, typed=True)
def _named(table: str, column: str) -> bytes:
    """The encoded table and column of ``row_aad`` (a few dozen pairs in all)."""
    return _encoded_parts((table, column))


@functools.lru_cache(maxsize=256)
def _text_key(*key: str) -> bytes:
    """The encoded key of ``row_aad``, when every part is ``str`` (checked by the caller: the
    cache compares by equality, and only ``str`` equals nothing but ``str``)."""
    return _encoded_parts(key)


def looks_sealed(blob: bytes) -> bool:
    """Whether ``blob`` starts like a sealed value (so a store without a key refuses it)."""
    return bytes(blob[: len(MAGIC)]) == MAGIC


def plaintext_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """``$PORTAL_MPC_STORE_PLAINTEXT`` is ``1``: a store may run without a key (tests only)."""
    env = os.environ if environ is None else environ
    return env.get(PLAINTEXT_ENV) == "1"


class Sealer:
    """Seals with the current provider; opens with the current or any previous one."""

    def __init__(self, current: KeyProvider, *previous: KeyProvider) -> None:
        providers = (current, *previous)
        for provider in providers:
            if not isinstance(provider, KeyProvider):
                raise InputInvalid("a sealer needs key providers (key_id, wrap, unwrap)")
            raw = provider.key_id.encode("utf-8")
            if not 1 <= len(raw) <= 255:
                raise InputInvalid("a key id is 1 to 255 UTF-8 bytes")
        ids = [provider.key_id for provider in providers]
        if len(set(ids)) != len(ids):
            raise InputInvalid("a sealer's key ids must differ")
        self.current = current
        self._providers = dict(zip(ids, providers))

    @property
    def providers(self) -> tuple[KeyProvider, ...]:
        """Every provider, the current one first."""
        return tuple(self._providers.values())

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this sealer can open, the current one first."""
        return tuple(self._providers)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """Encrypt ``data`` bound to ``aad`` under a fresh data key wrapped by the current KEK."""
        dek = secrets.token_bytes(KEY_BYTES)
        wrapped = self.current.wrap(dek, _WRAP_DOMAIN + aad)
        header = _header(self.current.key_id.encode("utf-8"), wrapped)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return header + nonce + AESGCM(dek).encrypt(nonce, bytes(data), header + aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext of a sealed value of this ``aad``: ``StoreCorrupted`` if it is damaged,
        tampered with or of another row; ``StoreKeyInvalid`` if its key is not held here."""
        key_id, wrapped, nonce, ciphertext, header = _parse(bytes(blob))
        provider = self._providers.get(key_id)
        if provider is None:
            raise StoreKeyInvalid(f"a row is sealed under key id {key_id[:64]!r}, which is not configured "
                                  f"(configured: {', '.join(self.key_ids)})")
        dek = provider.unwrap(wrapped, _WRAP_DOMAIN + aad)
        if len(dek) != KEY_BYTES:
            raise StoreCorrupted("an unwrapped data key has the wrong length")
        try:
            return AESGCM(dek).decrypt(nonce, ciphertext, header + aad)
        except InvalidTag:
            raise StoreCorrupted("a sealed row fails authentication (tampered, or moved from another row)") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Sealer | None:
        """The sealer the environment configures (see the module docstring); None if no key is set."""
        env = os.environ if environ is None else environ
        current = LocalKeyProvider.from_env(env)
        old_paths = [p for p in env.get(OLD_KEY_FILES_ENV, "").split(os.pathsep) if p]
        if current is None:
            if old_paths:
                raise StoreKeyMissing(f"{OLD_KEY_FILES_ENV} is set but no current key "
                                      f"({KEY_FILE_ENV} or {KEY_ENV})")
            return None
        return cls(current, *(LocalKeyProvider.from_file(p) for p in old_paths))

    def __repr__(self) -> str:
        return f"<Sealer current={self.current.key_id} keys={list(self.key_ids)}>"


def _header(key_id: bytes, wrapped: bytes) -> bytes:
    if not 1 <= len(wrapped) <= 0xFFFF:
        raise InputInvalid("a wrapped data key is 1 to 65535 bytes")
    return MAGIC + bytes([VERSION, len(key_id)]) + key_id + len(wrapped).to_bytes(2, "big") + wrapped


def _parse(blob: bytes) -> tuple[str, bytes, bytes, bytes, bytes]:
    """(key id, wrapped DEK, nonce, ciphertext, header) of a sealed value; ``StoreCorrupted``
    if it is not one of this format version."""
    if not looks_sealed(blob):
        raise StoreCorrupted("a row that should be sealed is not (plaintext, or damaged)")
    if len(blob) < len(MAGIC) + 2 or blob[4] != VERSION:
        raise StoreCorrupted("a sealed row has an unknown format version")
    at = len(MAGIC) + 2
    key_id_raw = blob[at : at + blob[5]]
    at += blob[5]
    wrapped_len = int.from_bytes(blob[at : at + 2], "big")
    at += 2
    wrapped = blob[at : at + wrapped_len]
    at += wrapped_len
    nonce = blob[at : at + _NONCE_BYTES]
    ciphertext = blob[at + _NONCE_BYTES :]
    if len(key_id_raw) != blob[5] or not key_id_raw or len(wrapped) != wrapped_len or not wrapped \
            or len(nonce) != _NONCE_BYTES or len(ciphertext) < _TAG_BYTES:
        raise StoreCorrupted("a sealed row is truncated")
    try:
        key_id = key_id_raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreCorrupted("a sealed row has a malformed key id") from None
    return key_id, wrapped, nonce, ciphertext, blob[:at]
