"""The wallet engine's errors (docs/errors.md): stable codes, HTTP-style statuses, JSON form.

Every error the engine raises is an :class:`EngineError` (itself a ``protocols.errors.MPCError``)
with two class attributes that callers may rely on:

- ``code``: a stable uppercase id in the pattern ``MODULE_[CONTEXT_]ERROR``
  (``WALLET_ALREADY_EXISTS``, ``BACKUP_DECRYPTION_FAILED``). Codes never change meaning; a new
  situation gets a new code. Every code is listed in ``docs/errors.md`` with what to do about it.
- ``status``: the HTTP status a service frontend should answer with.

``err.to_json()`` gives ``{"error": {"id": code, "message": text}}``; :func:`from_json` turns that
back into the matching class on the other side of a transport. Messages name the check or the
object that failed, never a secret value (no share, key, password or plaintext).

Errors of the protocol and group layers are turned into engine errors by
:func:`from_protocol_error`; :class:`KeyLockedError` is also a ``protocols.errors.KeyLocked``, so
``except KeyLocked`` catches a locked key from either layer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from curves.errors import CurveError
from protocols.errors import (
    InvalidMessage,
    KeyLocked,
    MPCError,
    ProofError,
    ProtocolAbort,
    UsageError,
)
from protocols.hd.paths import InvalidPath
from protocols.state import register_message_error

__all__ = [
    "EngineError",
    "InputInvalid",
    "MessageInvalid",
    "AuthFailed",
    "AuthTokenReplaced",
    "NotFound",
    "ClientNotFound",
    "WalletNotFound",
    "BackupNotFound",
    "BackupNotConfirmed",
    "BackupKeyNotFound",
    "KeychainEntryNotFound",
    "AccountNotDerived",
    "PathInvalid",
    "WalletAlreadyExists",
    "StateInvalid",
    "OperationInProgress",
    "ShareReplaced",
    "KeyLockedError",
    "RateLimited",
    "PossessionProofFailed",
    "ClientLockedOut",
    "ProtocolAborted",
    "DKGFailed",
    "SignFailed",
    "BackupDecryptionFailed",
    "BackupPasswordInvalid",
    "BackupPasswordTooWeak",
    "BackupPasswordKdfTooWeak",
    "KeychainCorrupted",
    "StoreSchemaUnsupported",
    "StoreCorrupted",
    "LedgerCorrupted",
    "StoreKeyMissing",
    "StoreKeyInvalid",
    "StoreNotSealed",
    "WebhookFailed",
    "ConfigInvalid",
    "TransportInsecure",
    "TlsFailed",
    "ServiceUnavailable",
    "OperationLost",
    "StoreUnavailable",
    "ChainLibraryMissing",
    "ERRORS",
    "from_json",
    "from_protocol_error",
]


class EngineError(MPCError):
    """Base of every wallet-engine error; on its own, an unexpected internal failure."""

    code: ClassVar[str] = "ENGINE_INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error in the wallet engine"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        super().__init__(self.message)

    def to_json(self) -> dict[str, dict[str, str]]:
        """The wire form ``{"error": {"id": code, "message": text}}``."""
        return {"error": {"id": self.code, "message": self.message}}


# --- 400: the request itself is wrong ---------------------------------------------------------
class InputInvalid(EngineError):
    """An argument is malformed or out of range (wrong length, unknown chain, bad encoding)."""

    code = "INPUT_INVALID"
    status = 400
    default_message = "invalid input"


class PathInvalid(InputInvalid):
    """An HD derivation path is malformed, deeper than 10 levels, or has a hardened index after
    a non-hardened one (docs/hd.md); nothing was derived or signed."""

    code = "HD_PATH_INVALID"
    status = 400
    default_message = "invalid derivation path"


class MessageInvalid(InputInvalid):
    """A protocol message is malformed or out of place; the session is unchanged."""

    code = "MESSAGE_INVALID"
    status = 400
    default_message = "invalid or out-of-place protocol message"


class WalletAlreadyExists(EngineError):
    """Generate was called for a client whose wallet already reached ``STORED_CLIENT``."""

    code = "WALLET_ALREADY_EXISTS"
    status = 400
    default_message = "the client already has a wallet"


class BackupDecryptionFailed(EngineError):
    """An encrypted backup share did not open: wrong key, tampered or truncated box, wrong context."""

    code = "BACKUP_DECRYPTION_FAILED"
    status = 400
    default_message = "the backup share could not be decrypted"


class BackupPasswordInvalid(BackupDecryptionFailed):
    """The password (or PIN) given for a ``PASSWORD`` backup does not unwrap its key."""

    code = "BACKUP_PASSWORD_INVALID"
    status = 400
    default_message = "the backup password is not correct"


class BackupPasswordTooWeak(InputInvalid):
    """A backup password's estimated strength is below ``mpc.backup.methods.MIN_PASSWORD_BITS``;
    nothing was run. Choose a passphrase (several random words), or opt in with ``allow_weak=True``
    knowing that only the custodian's guess limit then protects it (docs/backup.md)."""

    code = "BACKUP_PASSWORD_TOO_WEAK"
    status = 400
    default_message = "the backup password is too weak"


class BackupPasswordKdfTooWeak(InputInvalid):
    """A new ``PASSWORD`` backup was asked with Argon2id limits below the default
    (``mpc.backup.methods.MIN_BACKUP_OPSLIMIT``/``MIN_BACKUP_MEMLIMIT``: libsodium's MODERATE),
    which would make each offline guess cheaper; nothing was run. Old records stay readable."""

    code = "BACKUP_PASSWORD_KDF_TOO_WEAK"
    status = 400
    default_message = "the backup's Argon2id limits are below the default"


# --- 401 / 404 --------------------------------------------------------------------------------
class AuthFailed(EngineError):
    """The caller could not be authenticated or is not allowed to act for this client."""

    code = "AUTH_FAILED"
    status = 401
    default_message = "authentication failed"


class AuthTokenReplaced(AuthFailed):
    """The client token presented was the client's until a completed recover or eject replaced
    it; the new one travelled in that operation's result (``RecoverResult["token"]``)."""

    code = "AUTH_TOKEN_REPLACED"
    status = 401
    default_message = ("this client token was replaced by a completed recover or eject: use the new token "
                       "from its result, or ask the operator for one (issue_token)")


class NotFound(EngineError):
    """A named object does not exist."""

    code = "NOT_FOUND"
    status = 404
    default_message = "not found"


class ClientNotFound(NotFound):
    """No client with this id exists."""

    code = "CLIENT_NOT_FOUND"
    default_message = "unknown client"


class WalletNotFound(NotFound):
    """The client exists but has no wallet yet (generate has not completed)."""

    code = "WALLET_NOT_FOUND"
    default_message = "the client has no wallet"


class BackupNotFound(NotFound):
    """No completed backup exists for this client and backup method."""

    code = "BACKUP_NOT_FOUND"
    default_message = "no backup for this client and method"


class BackupNotConfirmed(NotFound):
    """The encrypted client backup shares given to recover or eject are not of the custodian's
    current backup of that method: a backup whose storage was never confirmed (the customer kept
    the boxes and ``stored_client_backup_share`` never came), or an older one. Nobody is at fault
    and no attempt was counted."""

    code = "BACKUP_NOT_CONFIRMED"
    default_message = "these encrypted backup shares are not of a confirmed backup"


class BackupKeyNotFound(NotFound):
    """The key of a backup is missing from where its backup method keeps it (e.g. cloud)."""

    code = "BACKUP_KEY_NOT_FOUND"
    default_message = "the backup key is missing"


class AccountNotDerived(NotFound):
    """An HD path's account has not been derived on this side yet (``client.derive`` with
    ``custodian.derive``), or this side has no derivation key (docs/hd.md)."""

    code = "HD_ACCOUNT_NOT_DERIVED"
    default_message = "this account has not been derived yet"


class KeychainEntryNotFound(NotFound):
    """The device keychain has no entry of this name."""

    code = "KEYCHAIN_ENTRY_NOT_FOUND"
    default_message = "no keychain entry of this name"


# --- 409 / 422 / 423: the request does not fit the current state --------------------------------
class StateInvalid(EngineError):
    """The operation is not allowed in the current state (wrong order of operations)."""

    code = "STATE_INVALID"
    status = 409
    default_message = "operation not allowed in the current state"


class OperationInProgress(EngineError):
    """Another state-changing operation is already running for this client."""

    code = "OPERATION_IN_PROGRESS"
    status = 409
    default_message = "another operation is in progress for this client"


class ShareReplaced(EngineError):
    """This device's signing shares are no longer the client's: a recover (or another operation
    that made new shares) replaced them on the custodian. Nothing was signed or stored."""

    code = "SHARE_REPLACED"
    status = 409
    default_message = ("this device's signing shares were replaced by a recover: wipe this device and "
                       "recover onto it, or use the device that recovered")


class ProtocolAborted(EngineError):
    """A protocol run failed a check; ``culprit`` names the party at fault (None if unknown)."""

    code = "PROTOCOL_ABORTED"
    status = 422
    default_message = "the protocol run was aborted"

    def __init__(self, message: str | None = None, culprit: int | None = None) -> None:
        super().__init__(message)
        self.culprit = culprit


class DKGFailed(ProtocolAborted):
    """Key generation (2P-ECDSA keygen or FROST DKG) failed a check."""

    code = "DKG_FAILED"
    default_message = "distributed key generation failed"


class SignFailed(ProtocolAborted):
    """A signing run failed a check or produced no valid signature."""

    code = "SIGN_FAILED"
    default_message = "signing failed"


class KeyLockedError(EngineError, KeyLocked):
    """The ECDSA signing share is locked for good after a failed signature; recover to go on."""

    code = "KEY_LOCKED"
    status = 423
    default_message = "the signing key is locked; recover the wallet to use it again"


class PossessionProofFailed(ProtocolAborted, ProtocolAbort):
    """The client did not prove that it holds its backup share (eject, recover): the custodian
    released nothing, counted a failed attempt and ended the operation (``culprit``: the client).

    Also a ``protocols.errors.ProtocolAbort``, so the session that raised it is aborted.
    """

    code = "POSSESSION_PROOF_FAILED"
    status = 403
    default_message = "the client did not prove possession of its backup share"


class ClientLockedOut(EngineError):
    """Too many failed proofs of possession (or password guesses) for this client: backup
    material is released no more until an operator unlocks the client."""

    code = "CLIENT_LOCKED_OUT"
    status = 423
    default_message = "too many failed attempts: an operator must unlock this client"


# --- 429: too many requests -------------------------------------------------------------------
_RETRY_AFTER = re.compile(r"retry after (\d+) s")


class RateLimited(EngineError):
    """A rate or concurrency limit of the custodian service refused the request; the message
    says when to retry (``retry after N s``, also ``retry_after`` in seconds)."""

    code = "RATE_LIMITED"
    status = 429
    default_message = "too many requests; retry later"

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is None:  # rebuilt from the wire: the hint is in the message
            found = _RETRY_AFTER.search(self.message)
            retry_after = float(found.group(1)) if found else None
        self.retry_after = retry_after

    @classmethod
    def after(cls, seconds: float, what: str) -> RateLimited:
        """``what`` was refused; retry in ``seconds`` (rounded up to whole seconds, at least 1)."""
        wait = max(1, math.ceil(seconds))
        return cls(f"{what}; retry after {wait} s", retry_after=float(wait))


# --- 5xx: the engine or something it depends on failed -----------------------------------------
class KeychainCorrupted(EngineError):
    """A keychain entry is damaged (bad header, checksum mismatch, truncated)."""

    code = "KEYCHAIN_CORRUPTED"
    status = 500
    default_message = "a keychain entry is corrupted"


class StoreSchemaUnsupported(EngineError):
    """The store was written by a newer (or unknown) schema version; nothing was changed."""

    code = "STORE_SCHEMA_UNSUPPORTED"
    status = 500
    default_message = "the store's schema version is not supported"


class StoreCorrupted(EngineError):
    """A file or row the store relies on is damaged: the restore guard's counter, or a sealed
    row (``mpc.storage.sealing``) that fails authentication (tampered, truncated, or moved to another row)."""

    code = "STORE_CORRUPTED"
    status = 500
    default_message = "a file or row of the store is damaged"


class LedgerCorrupted(StoreCorrupted):
    """The revocation ledger (``mpc.storage.ledger``) fails its checks: a record edited, removed,
    reordered or torn, fewer records than the store has seen, or another key. Nothing is served."""

    code = "LEDGER_CORRUPTED"
    status = 500
    default_message = "the revocation ledger is damaged or was tampered with"


class StoreKeyMissing(EngineError):
    """The store needs its key (``mpc.storage.sealing``) and none is configured: a sealed store, or a
    file / PostgreSQL store opened with neither a key nor an explicit plaintext opt-in."""

    code = "STORE_KEY_MISSING"
    status = 500
    default_message = "the store's key is not configured"


class StoreKeyInvalid(EngineError):
    """The store key is unusable: malformed (not 32 bytes of base64), in a file others can read,
    or not a key this store was sealed with."""

    code = "STORE_KEY_INVALID"
    status = 500
    default_message = "the store key is not valid for this store"


class StoreNotSealed(EngineError):
    """A key was configured for a store that still holds plaintext secrets; nothing was changed
    (seal them first: ``python -m mpc store-key rotate``)."""

    code = "STORE_NOT_SEALED"
    status = 500
    default_message = "the store holds plaintext secrets: seal them with store-key rotate first"


class WebhookFailed(EngineError):
    """The self-managed-backup callback failed or timed out; the status was left unchanged."""

    code = "WEBHOOK_FAILED"
    status = 502
    default_message = "the backup webhook failed"


class ConfigInvalid(EngineError):
    """The service or its client is configured unsafely or incompletely (no operator key without
    open registration, an unreadable certificate, a limit above the file descriptor limit)."""

    code = "CONFIG_INVALID"
    status = 500
    default_message = "invalid or unsafe configuration"


class TransportInsecure(ConfigInvalid):
    """Plain ``ws://`` to or on an address that is not loopback, without an explicit
    ``allow_plaintext`` (``--insecure-plaintext``)."""

    code = "TRANSPORT_INSECURE"
    status = 500
    default_message = "plaintext WebSocket refused on a non-loopback address; use TLS (wss://)"


class TlsFailed(EngineError):
    """The TLS handshake with the custodian service failed: its certificate is not trusted or
    does not name the host, or the service refused the client certificate."""

    code = "TLS_FAILED"
    status = 502
    default_message = "the TLS handshake with the custodian service failed"


class ServiceUnavailable(EngineError):
    """The custodian service could not be reached, closed the connection (busy: close code
    1013), or the connection was lost and could not be resumed."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "the custodian service is unavailable"


class OperationLost(EngineError):
    """A server failure (a crashed service process or worker) interrupted an operation while one
    of its steps ran: its parked state was taken and never parked again, so it cannot be resumed
    (single use: a state is never stepped twice). The client's operation lock is freed. Retryable:
    start the operation again with a new session."""

    code = "OPERATION_LOST"
    status = 503
    default_message = "the operation was interrupted by a server failure; start it again"


class StoreUnavailable(EngineError):
    """The database could not be reached, or its connection was lost (a PostgreSQL restart or
    failover) while the request ran; what was not committed was rolled back. The store
    reconnects by itself: retry the request."""

    code = "STORE_UNAVAILABLE"
    status = 503
    default_message = "the custodian's database is unavailable; retry later"


class ChainLibraryMissing(EngineError, ImportError):
    """A chain adapter (``mpc.chains.*``) needs a library that is not installed.

    Also an ``ImportError``, so ``import mpc.chains.evm`` without the ``evm`` extra fails the way
    an import does (``pytest.importorskip`` and ``except ImportError`` both work).
    """

    code = "CHAIN_LIBRARY_MISSING"
    status = 501
    default_message = "the chain adapter's library is not installed"


def _all_error_classes() -> list[type[EngineError]]:
    found: list[type[EngineError]] = []
    pending: list[type[EngineError]] = [EngineError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


ERRORS: Mapping[str, type[EngineError]] = {cls.code: cls for cls in _all_error_classes()}
"""Every engine error class by its code."""


def from_json(data: Any) -> EngineError:
    """Rebuild the engine error of a ``to_json()`` document (an unknown id gives ``EngineError``)."""
    body = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(body, Mapping):
        raise InputInvalid("not an engine error document")
    code, message = body.get("id"), body.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        raise InputInvalid("engine error document needs string 'id' and 'message'")
    # Walk the classes now rather than use ERRORS, so subclasses defined later are found too.
    by_code = {cls.code: cls for cls in _all_error_classes()}
    return by_code.get(code, EngineError)(message)


def from_protocol_error(exc: BaseException) -> EngineError:
    """Map an error of ``protocols`` or ``curves`` to the engine error a caller should see.

    ``InvalidMessage`` → ``MessageInvalid`` (400); ``ProtocolAbort`` → ``ProtocolAborted`` (422,
    same ``culprit``); ``ProofError`` → ``ProtocolAborted`` (culprit unknown); ``KeyLocked`` →
    ``KeyLockedError`` (423); ``UsageError`` → ``StateInvalid`` (409); ``CurveError`` →
    ``InputInvalid`` (400); an ``EngineError`` is returned as it is; anything else →
    ``EngineError`` (500) with a generic message, since its text may not be safe to show.
    Raise the result ``from exc`` to keep the cause for logs.
    """
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InvalidMessage):
        return MessageInvalid(str(exc))
    if isinstance(exc, ProtocolAbort):
        return ProtocolAborted(str(exc), culprit=exc.culprit)
    if isinstance(exc, ProofError):
        return ProtocolAborted(exc.reason)
    if isinstance(exc, KeyLocked):
        return KeyLockedError()
    if isinstance(exc, InvalidPath):
        return PathInvalid(str(exc))
    if isinstance(exc, UsageError):
        return StateInvalid(str(exc))
    if isinstance(exc, CurveError):
        return InputInvalid(str(exc))
    return EngineError()


# Parkable state (``protocols.state``): a session that ended with a lock keeps it when parked.
register_message_error(KeyLockedError, "mpc.errors.KeyLockedError")
