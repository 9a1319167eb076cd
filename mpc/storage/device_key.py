"""The device key: an Ed25519 key (RFC 8032, libsodium through PyNaCl) that each device keeps in
its keychain beside the client's signing shares, and with which it authorises every request to
the custodian service (``docs/operations.md``, Device keys).

A bearer token alone never acts on a wallet: the service sends a fresh challenge and the device
signs it together with the request (``mpc.wire.device_auth_message``), a proof of possession in
the spirit of DPoP (RFC 9449). The key is made by the device at ``generate`` (kept from then on)
and again at ``recover``: a recover makes a *pending* key, which authorises that recover and
becomes the device's key when the recover stored the new signing shares (the service registers
it when the recover completes and the old device's key is dead from then on).

Keychain entries (one key per client and keychain): ``<client_id>.device`` and, during a
recover, ``<client_id>.device.pending``; each holds the 32-byte Ed25519 seed. The key never goes
into a parked state or a message; only its public half and signatures leave the device.
"""

from __future__ import annotations

import secrets

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from mpc.errors import AuthFailed, KeychainCorrupted
from mpc.storage.keychain import Keychain

__all__ = ["DeviceKey", "PUBLIC_KEY_BYTES", "SIGNATURE_BYTES", "current", "forget", "load_or_create", "pending", "new_pending", "promote",
           "verify_signature"]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
_SEED_BYTES = 32


class DeviceKey:
    """An Ed25519 device key (the seed stays inside; ``repr`` shows only the public key)."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != _SEED_BYTES:
            raise KeychainCorrupted("a device key entry must hold a 32-byte seed")
        self._key = SigningKey(seed)

    @classmethod
    def generate(cls) -> DeviceKey:
        """A fresh key from the operating system's CSPRNG (``secrets``)."""
        return cls(secrets.token_bytes(_SEED_BYTES))

    @property
    def public(self) -> bytes:
        """The 32-byte Ed25519 public key (what the service registers)."""
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return bytes(self._key.sign(message).signature)

    def _seed(self) -> bytes:
        return bytes(self._key)

    def __repr__(self) -> str:
        return f"<DeviceKey {self.public.hex()[:16]}…>"


def verify_signature(public: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``AuthFailed`` unless ``signature`` is ``public``'s Ed25519 signature of ``message``
    (libsodium's strict verification: canonical encodings, no small-order keys)."""
    if len(public) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise AuthFailed()
    try:
        VerifyKey(public).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        raise AuthFailed() from None


def _entry(client_id: str, suffix: str = "") -> str:
    return f"{client_id}.device{suffix}"


def _load(keychain: Keychain, name: str) -> DeviceKey | None:
    return DeviceKey(keychain.get(name)) if name in keychain else None


def current(keychain: Keychain, client_id: str) -> DeviceKey | None:
    """The device's key for ``client_id``, if it has one."""
    return _load(keychain, _entry(client_id))


def load_or_create(keychain: Keychain, client_id: str) -> DeviceKey:
    """The device's key for ``client_id``, made and kept first if there is none."""
    key = current(keychain, client_id)
    if key is None:
        key = DeviceKey.generate()
        keychain.put(_entry(client_id), key._seed())
    return key


def new_pending(keychain: Keychain, client_id: str) -> DeviceKey:
    """A fresh key for a recover, kept as the pending entry (replacing an older pending one)."""
    key = DeviceKey.generate()
    keychain.put(_entry(client_id, ".pending"), key._seed())
    return key


def pending(keychain: Keychain, client_id: str) -> DeviceKey | None:
    """The pending key of a recover in progress, if any."""
    return _load(keychain, _entry(client_id, ".pending"))


def forget(keychain: Keychain, client_id: str) -> None:
    """Delete the device's keys for ``client_id`` (a wiped device)."""
    for name in (_entry(client_id), _entry(client_id, ".pending")):
        keychain.delete(name, missing_ok=True)


def promote(keychain: Keychain, client_id: str) -> None:
    """The recover stored its shares: the pending key becomes the device's key (nothing if none)."""
    key = pending(keychain, client_id)
    if key is not None:
        keychain.put(_entry(client_id), key._seed())
        keychain.delete(_entry(client_id, ".pending"), missing_ok=True)
