"""The client role (a user's device): ``mpc.Client(client_id, keychain)``.

The keychain holds the client's signing shares, one entry per curve
(``<client_id>.<curve>.signing``), and the device's ring-Pedersen setup (``device.ecdsa2p-setup``,
one per keychain, shared by every wallet on it): the parameters the custodian proves every c3
against (``protocols.zk.c3``). It is made once (two safe primes: seconds with gmpy2), ahead of
time with ``python -m mpc setup --device DIR`` or at the first keygen or recover. The client's backup share never stays on the device: it is
encrypted here (XChaCha20-Poly1305 under a fresh key, bound to the client id and curve) and the
key is kept by a backup method (``CLOUD`` by default: the client's cloud storage).

Operation flows (client side; see ``mpc.custodian`` for the other side):
  generate  ecdsa2p keygen (P1) + FROST DKG 2-of-2 → shares written to the keychain → "stored"
  backup    custodian's nonce → prove possession of the signing shares → ecdsa2p reshare for
            backup + FROST refresh → each backup share encrypted, key to the backup method; the
            encrypted shares go to the custodian with a proof of the new backup shares
            ("client_backup") unless the customer stores them itself (they are then in the
            operation's result, with the confirmation for ``stored_client_backup_share``)
  recover   custodian's "client_backup" (or the customer's copy) → decrypt → prove possession of
            the backup shares ("possession", bound to the custodian's nonce) → ecdsa2p reshare for
            signing + FROST refresh → new signing shares in the keychain → "stored"
  sign      ecdsa2p sign (P1: it decrypts, verifies and gets the signature first) or FROST sign.
            A failed ECDSA signature locks the share for good, persisted in the keychain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from mpc.addresses import addresses
from mpc.backup.client_ops import ClientBackup, ClientEject, ClientRecover, EjectedKeys, _DeviceOperation, _stored_step
from mpc.backup.methods import BackupMethod, CloudMethod, CloudStorage, default_cloud_storage
from mpc import hd
from mpc.addresses import address_of
from mpc.operation import new_session_id
from mpc.presign import ClientPresign
from mpc.signing import ClientSign
from mpc.errors import (
    InputInvalid,
    KeychainCorrupted,
    KeychainEntryNotFound,
    PathInvalid,
    WalletAlreadyExists,
    WalletNotFound,
)
from mpc.storage import device_key
from mpc.storage.device_key import DeviceKey
from mpc.storage.keychain import Keychain
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES, curve_of_chain, decode_share, default_home
from protocols import ecdsa2p, frost
from protocols.errors import MPCError
from protocols.rounds import Message, Session
from protocols.state import register_attrs

__all__ = ["Client", "EjectedKeys", "default_home", "DEVICE_SETUP_ENTRY", "make_device_setup"]

DEVICE_SETUP_ENTRY = "device.ecdsa2p-setup"


@lru_cache(maxsize=8)
def _load_device_setup(data: bytes) -> ecdsa2p.ClientSetup:
    try:
        return ecdsa2p.CustodianSetup.from_bytes(data)
    except MPCError as exc:
        raise KeychainCorrupted("the device setup in the keychain is damaged") from exc


def device_setup_entry(level: ecdsa2p.SecurityLevel) -> str:
    """The keychain entry of the device's setup at ``level`` (the default level's has no suffix)."""
    return DEVICE_SETUP_ENTRY if level == ecdsa2p.LEVEL_112 else f"{DEVICE_SETUP_ENTRY}.{level.name}"


def make_device_setup(keychain: Keychain, progress: Callable[[str], None] | None = None,
                      level: ecdsa2p.SecurityLevel = ecdsa2p.LEVEL_112) -> ecdsa2p.ClientSetup:
    """Make the device's ring-Pedersen setup at ``level`` ahead of time and keep it in ``keychain``.

    Keeps an existing one (a device has one setup per level for good); ``progress`` hears each stage.
    """
    entry = device_setup_entry(level)
    if entry in keychain:
        return _load_device_setup(keychain.get(entry))
    setup = ecdsa2p.generate_setup(progress=progress, level=level)
    keychain.put(entry, setup.to_bytes())
    return setup


class Client:
    """A device holding one client's signing shares.

    Each operation returns the device's session; the custodian's session for the same operation
    runs against it (``mpc.run_local`` in memory, ``mpc.remote.blocking.RemoteCustodian`` over the network).
    Example (``README.md``, The wallet engine)::

        custodian = mpc.Custodian(open_store("custodian.sqlite3"))  # sealed: $PORTAL_MPC_STORE_KEY_FILE
        client_id = custodian.create_client()
        client = mpc.Client(client_id, mpc.FileKeychain("keychain/"), cloud=LocalFolderCloudStorage("cloud/"))
        mpc.run_local(client.generate(), custodian.generate(client_id))
        client.addresses()["ethereum"]
        result, _ = mpc.run_local(client.sign("ethereum", digest32), custodian.sign(client_id, "ethereum", digest32))
        mpc.run_local(client.backup(), custodian.backup(client_id))        # CLOUD: the cloud storage
        device = mpc.Client(client_id, mpc.FileKeychain("new-device/"), cloud=LocalFolderCloudStorage("cloud/"))
        mpc.run_local(device.recover(), custodian.recover(client_id))     # same addresses
    """

    def __init__(self, client_id: str, keychain: Keychain, *, cloud: CloudStorage | None = None,
                 security_level: ecdsa2p.SecurityLevel = ecdsa2p.LEVEL_112,
                 published_setup: ecdsa2p.ClientSetupPublic | None = None) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise InputInvalid("Client takes the client id custodian.create_client() returned (a str)")
        self.client_id = client_id
        # No default location: the shares live where the caller says (a FileKeychain folder, the
        # platform's keystore behind the Keychain interface, MemoryKeychain in tests).
        if not isinstance(keychain, Keychain):
            raise InputInvalid("Client needs a keychain: mpc.FileKeychain(folder), a Keychain of the platform's "
                               "keystore, or mpc.MemoryKeychain() for tests")
        self.keychain = keychain
        # The CLOUD method's storage (backup keys); None: the local-folder default, at first use
        # (``default_cloud_storage``: $PORTAL_MPC_HOME/cloud).
        self.cloud = cloud
        self.security_level = security_level  # the deployment's: the custodian's must be the same
        # A deployment option: parameters published by a third party instead of the device's own
        # (whoever made them can forge the custodian's c3 proofs: docs/threat-model.md).
        self.published_setup = published_setup

    # --- keychain -----------------------------------------------------------------------------
    def device_setup(self) -> ecdsa2p.ClientSetup | ecdsa2p.ClientSetupPublic:
        """The device's ring-Pedersen setup from the keychain, made and stored on first use.

        A keychain without one takes this process's ``ecdsa2p.default_client_setup()`` (made
        once per process, or installed by the application) and keeps it from then on. One
        entry per security level (the 128-bit level needs a 3072-bit N̂).
        """
        if self.published_setup is not None:
            return self.published_setup
        entry = device_setup_entry(self.security_level)
        if entry in self.keychain:
            return _load_device_setup(self.keychain.get(entry))
        setup = ecdsa2p.default_client_setup(self.security_level)
        self.keychain.put(entry, setup.to_bytes())
        return setup

    def _entry(self, curve: str) -> str:
        return f"{self.client_id}.{curve}.signing"

    def has_wallet(self) -> bool:
        """Whether this device holds the client's signing shares on every curve."""
        return all(self._entry(curve) in self.keychain for curve in CURVES)

    def signing_share(self, curve: str) -> Any:
        """The signing share on ``curve`` from the keychain (``ecdsa2p.P1KeyShare`` on secp256k1,
        ``frost.KeyShare`` on ed25519); ``WalletNotFound`` if the device has none."""
        try:  # one read: ``get`` says when the entry is missing
            data = self.keychain.get(self._entry(curve))
        except KeychainEntryNotFound:
            raise WalletNotFound("no signing share on this device") from None
        return decode_share(curve, CLIENT_PARTY, data)

    def _store_signing_shares(self, shares: Mapping[str, Any]) -> None:
        for curve in CURVES:
            self.keychain.put(self._entry(curve), shares[curve].to_bytes())

    def wipe(self) -> None:
        """Forget this client's signing shares, derivation key shares, accounts and device keys (a lost
        or reset device)."""
        for curve in CURVES:
            self.keychain.delete(self._entry(curve), missing_ok=True)
        hd.wipe_client(self)
        device_key.forget(self.keychain, self.client_id)

    def device_key(self, *, pending: bool = False) -> DeviceKey:
        """The device key that authorises this device's requests to the custodian service
        (``mpc.storage.device_key``): made and kept on first use; ``pending``: the key a recover
        in progress made (``KeychainEntryNotFound`` if none)."""
        if pending:
            key = device_key.pending(self.keychain, self.client_id)
            if key is None:
                raise KeychainEntryNotFound("no recover in progress on this device (no pending device key)")
            return key
        return device_key.load_or_create(self.keychain, self.client_id)

    def public_keys(self) -> dict[str, bytes]:
        """The wallet's public key per curve (33-byte compressed secp256k1, 32-byte ed25519)."""
        return {curve: self.signing_share(curve).public_key for curve in CURVES}

    def addresses(self, *, testnet: bool = False) -> dict[str, str]:
        """The wallet's address on each chain, from the public keys on this device."""
        keys = self.public_keys()
        return addresses(keys["secp256k1"], keys["ed25519"], testnet=testnet)

    # --- HD accounts (docs/hd.md) ----------------------------------------------------------------
    def derive(self, paths: Iterable[str], session_id: bytes | None = None) -> hd.ClientDerive:
        """Derive the accounts of ``paths`` (their hardened prefixes) on both curves, against
        ``custodian.derive(client_id, paths)``; a wallet without a derivation key gets one first
        (the migration). The result maps account path -> {curve: extended public key}."""
        return hd.ClientDerive(self, new_session_id(session_id), paths)

    def accounts(self) -> dict[str, list[str]]:
        """The account paths derived on this device, per curve."""
        return hd.client_accounts(self)

    def public_key(self, curve: str, path: str | None = None) -> bytes:
        """The public key on ``curve`` at ``path`` (None: the root key, the default address);
        ``AccountNotDerived`` until the path's account was derived."""
        if path is None:
            return bytes(self.signing_share(curve).public_key)
        parsed = hd.parse_hd_path(path)
        key, _ = hd.child_key(hd.client_account(self, curve, parsed.account_path), parsed)
        return key.to_bytes()

    def address(self, chain: str, path: str | None = None, *, testnet: bool = False) -> str:
        """The address on ``chain`` of the key at ``path`` (e.g. ``m/84'/0'/0'/0/7``; None: the root)."""
        return address_of(chain, self.public_key(curve_of_chain(chain), path), testnet=testnet)

    def extended_public_key(self, chain: str, account_path: str) -> str:
        """The account's extended public key for watch-only use: a BIP32 ``xpub`` on secp256k1
        chains, hex of A ‖ c on ed25519 chains (docs/hd.md)."""
        parsed = hd.parse_hd_path(account_path)
        if parsed.children:
            raise PathInvalid("an account path has hardened levels only, e.g. m/84'/0'/0'")
        return hd.client_account(self, curve_of_chain(chain), parsed.account_path).extended_public_key()

    # --- operations ---------------------------------------------------------------------------
    def generate(self, session_id: bytes | None = None) -> ClientGenerate:
        """Create the wallet: ecdsa2p keygen (P1) and a FROST 2-of-2 DKG, the shares kept in the
        keychain; run against ``custodian.generate(client_id)``. ``WalletAlreadyExists`` if the
        device holds one."""
        if self.has_wallet():
            raise WalletAlreadyExists("this device already holds a wallet for the client")
        self.device_key()  # made at generate, kept from then on (a retried generate reuses it)
        return ClientGenerate(self, new_session_id(session_id))

    def backup(self, method: BackupMethod | None = None, session_id: bytes | None = None, *,
               client_stores_backup: bool = False) -> ClientBackup:
        """A new backup of the signing shares under ``method`` (default: CLOUD through this device's
        cloud storage; ``docs/backup.md``), against ``custodian.backup(client_id)``. The encrypted
        client backup shares go to the custodian, or into the result with ``client_stores_backup``."""
        return ClientBackup(self, new_session_id(session_id), method or self._cloud_method(), client_stores_backup)

    def recover(self, method: BackupMethod | None = None, session_id: bytes | None = None, *,
                encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> ClientRecover:
        """New signing shares on this device from the backup of ``method``, against
        ``custodian.recover(client_id)``; ``encrypted_backup`` is the customer's own copy of the
        encrypted client backup shares, if it kept them. The device first proves it decrypted its
        backup shares. A fresh device key is made (pending until the recover stored its shares,
        ``mpc.storage.device_key``): the custodian service moves the wallet to it."""
        device_key.new_pending(self.keychain, self.client_id)
        return ClientRecover(self, new_session_id(session_id), method or self._cloud_method(), encrypted_backup)

    def eject(self, method: BackupMethod | None = None, session_id: bytes | None = None, *,
              encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None = None) -> ClientEject:
        """Leave MPC: rebuild the whole private keys from both backup shares of ``method``."""
        return ClientEject(self, new_session_id(session_id), method or self._cloud_method(), encrypted_backup)

    def sign(self, chain: str, data: bytes, session_id: bytes | None = None, *, path: str | None = None) -> ClientSign:
        """Sign ``data`` for ``chain`` (``mpc.CHAINS``): a 32-byte digest on secp256k1 chains, the
        message on ed25519 chains. Against ``custodian.sign(client_id, chain, data, path=...)``;
        the result is a ``SignResult``. ``path`` signs with the key at that HD path (docs/hd.md)."""
        return ClientSign(self, new_session_id(session_id), chain, data, path=path)

    # Precomputation (``mpc.presign``): the custodian's, in its store; the device keeps nothing.
    def presign(self, count: int, session_id: bytes | None = None) -> Session:
        """Ask the custodian for ``count`` ECDSA precomputations (``custodian.presign``)."""
        return ClientPresign(self, new_session_id(session_id), count)

    def sign_presigned(self, chain: str, data: bytes, session_id: bytes | None = None, *,
                       path: str | None = None) -> ClientSign:
        """The same as :meth:`sign`; kept as a name (no presignature ever lives on the device)."""
        return self.sign(chain, data, session_id, path=path)

    def resume(self, data: bytes, method: BackupMethod | None = None) -> Session:
        """An operation of this device parked with ``session.to_bytes()``; ``method`` is the
        backup method of a backup, recover or eject. Signing cannot be parked on a device (its
        nonces would come back with a device backup): a crashed sign starts again."""
        return Session.from_bytes(data, client=self, method=method or self._cloud_method())

    def _cloud_method(self) -> CloudMethod:
        """The default backup method: CLOUD, through the storage this device was given, else the
        local-folder default (``default_cloud_storage``), set as ``cloud`` at its first use."""
        if self.cloud is None:
            self.cloud = default_cloud_storage()
        return CloudMethod(self.cloud)


class ClientGenerate(_DeviceOperation):
    protocol = "wallet/generate"

    def result(self) -> dict[str, str]:
        """The new wallet's address on every chain."""
        addresses: dict[str, str] = super().result()
        return addresses

    def _start(self) -> list[Message]:
        return self._add_children({
            "secp256k1": ecdsa2p.KeygenP1(self._child_id("secp256k1"), self.client.device_setup()),
            "ed25519": frost.DKGSession(self._child_id("ed25519"), CLIENT_PARTY, PARTIES, 2),
            **hd.derivation_keygen_children(self._child_id, CLIENT_PARTY),
        })

    def _on_children_done(self) -> list[Message]:
        shares = self._shares()
        self.client._store_signing_shares(shares)
        hd.store_client_derivation_shares(self.client, hd.derivation_shares_of(self))
        self._finish(self.client.addresses())
        return [self._step("stored", _stored_step(shares))]


# Parkable state (``protocols.state``): every client operation but signing (``mpc.signing``);
# backup, recover and eject register in ``mpc.backup.client_ops``.
register_attrs(ClientGenerate)
