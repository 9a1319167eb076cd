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
  tests, :class:`KeychainCloudStorage` adapts any keychain) under a fresh versioned name per
  backup, which the record carries (an interrupted backup never overwrites the keys of the last
  complete one). Missing key → ``BackupKeyNotFound``.
- :class:`PasskeyMethod` (``PASSKEY``): a device-held secret wraps the key through a
  :class:`PasskeyWrapper` (e.g. a WebAuthn PRF output on a real device;
  :class:`MemoryPasskeyWrapper` is the in-memory test double); the record is the wrapped key.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.utils
import zxcvbn
from nacl import bindings as sodium

from curves import group_by_name
from curves.errors import CurveError
from mpc.errors import (
    BackupDecryptionFailed,
    BackupKeyNotFound,
    BackupPasswordInvalid,
    BackupPasswordKdfTooWeak,
    BackupPasswordTooWeak,
    EngineError,
    InputInvalid,
    KeychainCorrupted,
    KeychainEntryNotFound,
)
from protocols import oprf
from protocols.errors import InvalidMessage, UsageError
from mpc.storage.keychain import FileKeychain, Keychain, MemoryKeychain, validate_name
from mpc.wallet import default_home

__all__ = [
    "KEY_LENGTH",
    "BackupContext",
    "encrypt_backup",
    "decrypt_backup",
    "BackupMethod",
    "PasswordMethod",
    "MIN_PASSWORD_BITS",
    "MIN_BACKUP_OPSLIMIT",
    "MIN_BACKUP_MEMLIMIT",
    "password_strength_bits",
    "CloudStorage",
    "KeychainCloudStorage",
    "LocalFolderCloudStorage",
    "default_cloud_storage",
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

    def check_for_backup(self, user_inputs: Sequence[str] = ()) -> None:
        """Raise before a backup starts if this method may not make one (a weak password);
        ``user_inputs`` are words of the caller's context a guesser would try (the client id)."""

    def hardening_request(self, record: bytes | None = None) -> bytes | None:
        """A blinded element the custodian must evaluate before ``store_key`` (record None) or
        ``load_key`` (the backup's record); None (the default): this method needs none."""
        return None

    def finish_hardening(self, evaluated: bytes, proof: bytes, public_key: bytes) -> None:
        """Take the custodian's evaluation of :meth:`hardening_request`'s element."""
        raise UsageError(f"the {self.name} method asks the custodian for nothing")

    def custodian_key(self, record: bytes) -> bytes | None:
        """The custodian key a backup's ``record`` is bound to (None: none), which must be the
        custodian's current backup version's for the record to be usable."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --- PASSWORD ------------------------------------------------------------------------------------
_ARGON2_OPS_RANGE = (argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_SENSITIVE)
_ARGON2_MEM_RANGE = (argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_SENSITIVE)
_WRAP_HEADER = b"MPBW\x01"


MIN_PASSWORD_BITS = 50.0
"""Below this estimated strength (log2 of the guesses an informed guesser needs, see
:func:`password_strength_bits`) ``PasswordMethod`` refuses to back up unless ``allow_weak=True``.
Five random words of a diceware list estimate at 60 bits or more, 16 random characters at 53."""

# The wallet's own context, words a guesser tries first (zxcvbn's "user inputs"): the product,
# the chains it serves, and the mail providers of an address used as a password.
_CONTEXT_WORDS = (
    "portal", "portal-mpc", "portalmpc", "mpc", "wallet", "custodian", "backup", "recover", "crypto",
    "ethereum", "bitcoin", "solana", "stellar", "tron", "ether", "eth", "btc", "sol", "xlm", "trx",
    "gmail", "googlemail", "yahoo", "hotmail", "outlook", "icloud", "proton", "protonmail", "com", "org", "net",
)
_ESTIMATED_CHARACTERS = 100  # zxcvbn's time grows with the length; a longer password is at least this strong
# Separators between the words of a passphrase (or the parts of an e-mail address).
_WORD_SEPARATORS = re.compile(r"[\s._@+\-,;:/|]+")


def _password_text(password: str | bytes) -> str:
    """The password as text for estimation: NFC, bytes as UTF-8 (else one character per byte)."""
    if isinstance(password, str):
        text = password
    else:
        try:
            text = bytes(password).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(password).decode("latin-1")
    return unicodedata.normalize("NFC", text)[:_ESTIMATED_CHARACTERS]


def _estimate(text: str, user_inputs: Sequence[str]) -> dict[str, Any]:
    """zxcvbn's result for ``text`` (its ``guesses`` and ``feedback``) with the wallet's context words."""
    result: dict[str, Any] = zxcvbn.zxcvbn(text, user_inputs=[*_CONTEXT_WORDS, *user_inputs])
    return result


def _words_bits(text: str, user_inputs: Sequence[str]) -> float | None:
    """log2 of the guesses for a phrase of known words taken word by word: the product of
    zxcvbn's guesses of each word. zxcvbn alone credits a sequence of common words with the
    orderings of its parts ("the quick brown fox": 52 bits); a guesser of phrases does not pay
    them. None unless there are two words or more and zxcvbn knows every one whole (a word with
    random characters in it is left to the estimate of the whole text)."""
    words = [word for word in _WORD_SEPARATORS.split(text) if word]
    if len(words) < 2:
        return None
    estimates = [_estimate(word, user_inputs) for word in words]
    if any(match["pattern"] == "bruteforce" for estimate in estimates for match in estimate["sequence"]):
        return None
    return sum(math.log2(estimate["guesses"]) for estimate in estimates)


def password_strength_bits(password: str | bytes, user_inputs: Sequence[str] = ()) -> float:
    """The estimated strength of a password in bits: log2 of the guesses a guesser who knows
    common passwords, names, words, keyboard walks, dates, l33t and the wallet's context needs.

    It is the smaller of two estimates from ``zxcvbn`` (Dropbox's estimator, RFC-style pattern
    matching over ranked dictionaries): the whole password, and the passphrase word by word
    (:func:`_words_bits`). ``user_inputs`` adds words of the caller's context (the client id).
    Only the first 100 characters are estimated. A guard rail, not a guarantee (docs/backup.md).
    """
    text = _password_text(password)
    if not text:
        return 0.0
    bits = math.log2(_estimate(text, user_inputs)["guesses"])
    words = _words_bits(text, user_inputs)
    return max(0.0, bits if words is None else min(bits, words))


def _weakness_reason(password: bytes, user_inputs: Sequence[str]) -> str:
    """Why a password is weak, in zxcvbn's words (never the password itself)."""
    warning = _estimate(_password_text(password), user_inputs)["feedback"]["warning"]
    return f" ({str(warning).rstrip('.')})" if warning else ""


# --- Argon2id floor (docs/backup.md, "Cost of a guess") -----------------------------------------
MIN_BACKUP_OPSLIMIT = argon2id.OPSLIMIT_MODERATE
"""The fewest Argon2id passes a *new* backup may use: libsodium's MODERATE, ``PasswordMethod``'s
default (3). Records of older backups are read at whatever limits they carry."""
MIN_BACKUP_MEMLIMIT = argon2id.MEMLIMIT_MODERATE
"""The least Argon2id memory a new backup may use: libsodium's MODERATE (256 MiB)."""


def _check_kdf_floor(opslimit: int, memlimit: int) -> None:
    """``BackupPasswordKdfTooWeak`` if a new backup would make each offline guess cheaper than the
    default. (Tests lower the floor explicitly with the ``cheap_argon2id`` fixture of
    ``tests/mpc/conftest.py``; the library never does.)"""
    if opslimit < MIN_BACKUP_OPSLIMIT or memlimit < MIN_BACKUP_MEMLIMIT:
        raise BackupPasswordKdfTooWeak(
            f"a new PASSWORD backup needs Argon2id limits of at least opslimit={MIN_BACKUP_OPSLIMIT}, "
            f"memlimit={MIN_BACKUP_MEMLIMIT} (libsodium's MODERATE, the default); got opslimit={opslimit}, "
            f"memlimit={memlimit}")


def _password_bytes(password: object) -> bytes:
    if isinstance(password, str):
        # NFC so the same password typed on two keyboards derives the same key.
        password = unicodedata.normalize("NFC", password).encode("utf-8")
    if not isinstance(password, (bytes, bytearray)) or not password:
        raise InputInvalid("a backup password is a non-empty string or bytes")
    return bytes(password)


class PasswordMethod(BackupMethod):
    """``PASSWORD``: the key wrapped under a key derived from the password, hardened by the
    custodian's oblivious PRF (docs/backup.md).

    Hardened (the default, record version 2): one Argon2id(password, salt) per backup, on the
    device; its output goes blinded to the custodian, which evaluates its per-backup VOPRF key on
    it (``protocols.oprf``, RFC 9497 P256-SHA256, with a proof that it used the key pinned in the
    record) and counts the guess (``mpc.backup.attempts``). The wrapping key of each curve is
    BLAKE2b(key = VOPRF output, Argon2id output ‖ context). Every password guess then needs one
    online, rate-limited evaluation: a stolen box and token give at most the attempt limit's
    guesses; only a party holding both the box and the custodian's VOPRF key can guess offline,
    at Argon2id's cost. The operation asks the custodian between :meth:`hardening_request` and
    :meth:`finish_hardening`; ``store_key``/``load_key`` come after.

    ``harden=False`` makes version-1 records (Argon2id alone, guessable offline by whoever holds
    the record), as engines before 0.4 did: a backup refuses it (``check_for_backup``); it
    exists for tests and tools that handle old records. Version-1 records always stay readable.
    """

    name = "PASSWORD"

    def __init__(
        self,
        password: str | bytes,
        *,
        opslimit: int = argon2id.OPSLIMIT_MODERATE,
        memlimit: int = argon2id.MEMLIMIT_MODERATE,
        allow_weak: bool = False,
        harden: bool = True,
    ) -> None:
        _check_argon2_limits(opslimit, memlimit, InputInvalid)
        self._password = _password_bytes(password)
        self.opslimit = opslimit
        self.memlimit = memlimit
        self.allow_weak = allow_weak
        self.harden = harden
        self._pending: tuple[bytes, bytes, Any, bytes] | None = None  # setting, stretched, blind, element
        self._hardened: tuple[bytes, bytes] | None = None  # setting (with pkS), wrapping seed

    def check_for_backup(self, user_inputs: Sequence[str] = ()) -> None:
        """Before a new backup: ``BackupPasswordKdfTooWeak`` below the Argon2id floor
        (``MIN_BACKUP_OPSLIMIT``/``MIN_BACKUP_MEMLIMIT``); ``BackupPasswordTooWeak`` below
        ``MIN_PASSWORD_BITS`` unless made with ``allow_weak=True``. Recovering is never refused
        for either: the backup exists already."""
        if not self.harden:
            raise InputInvalid("harden=False makes version-1 PASSWORD records, which the custodian no longer "
                               "accepts for a new backup (they stay readable for recover)")
        _check_kdf_floor(self.opslimit, self.memlimit)
        if self.allow_weak:
            return
        bits = password_strength_bits(self._password, user_inputs)
        if bits < MIN_PASSWORD_BITS:
            raise BackupPasswordTooWeak(
                f"the password is estimated at {bits:.0f} bits, below {MIN_PASSWORD_BITS:.0f}"
                f"{_weakness_reason(self._password, user_inputs)}: a guesser tries such passwords first. Use a "
                "passphrase of 5 or 6 words picked at random (diceware) or 16+ random characters, or "
                "allow_weak=True to accept it (only the custodian's guess limit then protects it)")

    # --- the custodian's evaluation (version 2) -------------------------------------------------
    def hardening_request(self, record: bytes | None = None) -> bytes | None:
        """The blinded element to send to the custodian before :meth:`store_key` (``record``
        None: a new backup) or :meth:`load_key` (the backup's record); None if this backup needs
        no evaluation (``harden=False``, or a version-1 record). Runs Argon2id once."""
        if record is None:
            if not self.harden:
                return None
            _check_kdf_floor(self.opslimit, self.memlimit)  # a new record: never cheaper than the default
            salt = nacl.utils.random(argon2id.SALTBYTES)
            setting = _V2 + self.opslimit.to_bytes(8, "big") + self.memlimit.to_bytes(8, "big") + salt
        else:
            body = _record_body(self.name, record)
            if not body.startswith(_V2):
                return None
            setting = _v2_setting(body)  # with the pinned public key
        opslimit, memlimit, salt = _argon2_params(setting[1:])
        stretched = argon2id.kdf(KEY_LENGTH, self._password, salt, opslimit=opslimit, memlimit=memlimit)
        blind, element = oprf.blind(_OPRF_LABEL + stretched, oprf.MODE_VOPRF)
        self._pending, self._hardened = (setting, stretched, blind, element), None
        return element

    def finish_hardening(self, evaluated: bytes, proof: bytes, public_key: bytes) -> None:
        """Take the custodian's VOPRF answer. A new backup pins ``public_key`` in its records; a
        recover verifies the proof against the key its record pinned (a custodian answering with
        another key raises ``ProofError``; a malformed element ``InvalidMessage``)."""
        if self._pending is None:
            raise UsageError("finish_hardening needs a hardening_request first")
        setting, stretched, blind, element = self._pending
        pinned = setting[_V2_SETTING_NO_KEY:]
        if pinned:
            public_key = pinned
        elif not isinstance(public_key, bytes) or len(public_key) != oprf.NE:
            raise InvalidMessage("the custodian's VOPRF public key is malformed")
        output = oprf.voprf_finalize(_OPRF_LABEL + stretched, blind, evaluated, element, public_key, proof)
        seed = hashlib.blake2b(output + stretched, digest_size=32, person=b"portal-mpc-pwkey").digest()
        self._pending, self._hardened = None, (setting[:_V2_SETTING_NO_KEY] + public_key, seed)

    def custodian_key(self, record: bytes) -> bytes | None:
        """The VOPRF public key a version-2 record pinned (None for a version-1 record)."""
        body = _record_body(self.name, record)
        return _v2_setting(body)[_V2_SETTING_NO_KEY:] if body.startswith(_V2) else None

    def _hardened_kek(self, setting: bytes, context: BackupContext) -> bytes:
        if self._hardened is None or self._hardened[0] != setting:
            raise UsageError("a version-2 PASSWORD key needs the custodian's evaluation first (finish_hardening)")
        return hashlib.blake2b(context.to_bytes(), key=self._hardened[1], digest_size=KEY_LENGTH,
                               person=b"portal-mpc-pwkek").digest()

    # --- keys -------------------------------------------------------------------------------------
    def _kek(self, salt: bytes, opslimit: int, memlimit: int) -> bytes:
        return argon2id.kdf(KEY_LENGTH, self._password, salt, opslimit=opslimit, memlimit=memlimit)

    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        if self.harden:
            if self._hardened is None:
                raise UsageError("a hardened PASSWORD backup needs the custodian's evaluation first")
            setting = self._hardened[0]
            kek = self._hardened_kek(setting, context)
        else:
            salt = nacl.utils.random(argon2id.SALTBYTES)
            setting = self.opslimit.to_bytes(8, "big") + self.memlimit.to_bytes(8, "big") + salt
            kek = self._kek(salt, self.opslimit, self.memlimit)
        wrapped = _seal(kek, _WRAP_HEADER, _check_key(key), setting + context.to_bytes())
        return _record(self.name, setting + wrapped)

    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        body = _record_body(self.name, record)
        if body.startswith(_V2):
            setting = _v2_setting(body)
            kek = self._hardened_kek(setting, context)
        else:
            setting = body[:_V1_SETTING]
            opslimit, memlimit, salt = _argon2_params(setting)
            kek = self._kek(salt, opslimit, memlimit)
        key = _open(kek, _WRAP_HEADER, body[len(setting):], setting + context.to_bytes())
        if key is None:
            raise BackupPasswordInvalid()
        return key

    def __repr__(self) -> str:
        return "<PasswordMethod PASSWORD (password redacted)>"


_V2 = b"\x02"  # a version-1 body starts with opslimit's top byte, always 0
_OPRF_LABEL = b"portal-mpc/password-backup/v2:"
_V1_SETTING = 16 + argon2id.SALTBYTES
_V2_SETTING_NO_KEY = 1 + _V1_SETTING
_V2_SETTING = _V2_SETTING_NO_KEY + oprf.NE  # version, Argon2id parameters and salt, the custodian's pkS


def _v2_setting(body: bytes) -> bytes:
    if len(body) < _V2_SETTING:
        raise BackupDecryptionFailed("the password backup record is truncated")
    return body[:_V2_SETTING]


def _argon2_params(setting: bytes) -> tuple[int, int, bytes]:
    """(opslimit, memlimit, salt) of a record's setting, bounded so a forged record cannot make
    the device spend unbounded time or memory."""
    if len(setting) < _V1_SETTING:
        raise BackupDecryptionFailed("the password backup record is truncated")
    opslimit, memlimit = int.from_bytes(setting[:8], "big"), int.from_bytes(setting[8:16], "big")
    _check_argon2_limits(opslimit, memlimit, BackupDecryptionFailed)
    return opslimit, memlimit, setting[16:_V1_SETTING]


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
    """Cloud storage over any :class:`~mpc.storage.keychain.Keychain` (names validated the same way)."""

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
    """The default: a local (or synced) folder; atomic, checksummed 0600 files (a FileKeychain),
    the folder made (0700) when the first key is saved or read, not before."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._folder: FileKeychain | None = None

    @property
    def keychain(self) -> Keychain:  # type: ignore[override]
        """The folder's ``FileKeychain``, made (with the folder) at its first use."""
        if self._folder is None:
            self._folder = FileKeychain(self.path)
        return self._folder

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {os.fspath(self.path)!r}>"


def default_cloud_storage() -> LocalFolderCloudStorage:
    """The CLOUD method's storage of a device that names none (``Client(..., cloud=None)``;
    docs/backup.md): the folder ``cloud`` under ``default_home()`` (``$PORTAL_MPC_HOME``, else
    ``~/.portal-mpc``; an absolute path, fixed when the device first backs up or recovers), made
    0700 when the first key is saved or read, one 0600 file per backup key. Every device of the
    same account on this machine reads it, as every device of a user reads a synced drive, so a
    new device recovers from the keys an old one saved there. Only the key goes there: the
    encrypted share it opens stays with the custodian (or the customer)."""
    return LocalFolderCloudStorage(default_home() / "cloud")


class MemoryCloudStorage(KeychainCloudStorage):
    """Cloud storage in memory (tests)."""

    def __init__(self) -> None:
        super().__init__(MemoryKeychain())


class CloudMethod(BackupMethod):
    """``CLOUD``: the key saved in the user's cloud storage as ``<client_id>.<curve>.backup-key.<v>``.

    Every backup writes its keys under a fresh version ``v`` (16 hex digits, named in the record),
    never over the keys of an earlier backup: a backup interrupted half-way leaves the last
    complete one (whose record names its own keys) recoverable. Records without a version, from
    before versioning, name ``<client_id>.<curve>.backup-key``.
    """

    name = "CLOUD"
    VERSION_BYTES = 8

    def __init__(self, storage: CloudStorage) -> None:
        self.storage = storage

    @staticmethod
    def object_name(context: BackupContext, version: bytes = b"") -> str:
        """The name the key is stored under (the client id must be a valid keychain-style name)."""
        suffix = f".{version.hex()}" if version else ""
        return validate_name(f"{context.client_id}.{context.curve}.backup-key{suffix}")

    def store_key(self, context: BackupContext, key: bytes) -> bytes:
        version = secrets.token_bytes(self.VERSION_BYTES)
        self.storage.save(self.object_name(context, version), _check_key(key))
        return _record(self.name, version)

    def load_key(self, context: BackupContext, record: bytes) -> bytes:
        version = _record_body(self.name, record)
        if len(version) not in (0, self.VERSION_BYTES):
            raise BackupDecryptionFailed("the cloud backup record names no valid key version")
        return _check_key(self.storage.load(self.object_name(context, version)), BackupDecryptionFailed)

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
