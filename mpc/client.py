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

import hashlib
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from mpc.backup import possession
from mpc.addresses import addresses
from mpc.backup.methods import BackupContext, BackupMethod, CloudMethod, CloudStorage, decrypt_backup, encrypt_backup
from mpc import hd
from mpc.addresses import address_of
from mpc.operation import ClientOperation, method_name, new_session_id
from mpc.presign import ClientPresign
from mpc.signing import ClientSign
from mpc.errors import (
    BackupNotConfirmed,
    BackupNotFound,
    StateInvalid,
    InputInvalid,
    KeychainCorrupted,
    KeychainEntryNotFound,
    PathInvalid,
    KeyLockedError,
    WalletAlreadyExists,
    WalletNotFound,
)
from mpc.storage import device_key
from mpc.storage.device_key import DeviceKey
from mpc.storage.keychain import Keychain
from mpc.wallet import CLIENT_PARTY, CURVES, CUSTODIAN_PARTY, PARTIES, curve_of_chain, decode_share, default_home
from protocols import ecdsa2p, frost, oprf
from protocols.encoding import get_bytes, require_keys
from curves import ed25519, secp256k1
from nacl import bindings as sodium
from protocols.errors import InvalidMessage, MPCError, ProtocolAbort
from protocols.hd import AccountKey, account_point, account_tweak
from protocols.sharing import interpolate_at_zero
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
        self.client_id = client_id
        # No default location: the shares live where the caller says (a FileKeychain folder, the
        # platform's keystore behind the Keychain interface, MemoryKeychain in tests).
        if not isinstance(keychain, Keychain):
            raise InputInvalid("Client needs a keychain: mpc.FileKeychain(folder), a Keychain of the platform's "
                               "keystore, or mpc.MemoryKeychain() for tests")
        self.keychain = keychain
        self.cloud = cloud  # the CLOUD method's storage; None: name another backup method
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
        if self._entry(curve) not in self.keychain:
            raise WalletNotFound("no signing share on this device")
        return decode_share(curve, CLIENT_PARTY, self.keychain.get(self._entry(curve)))

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
        """The default backup method: CLOUD, through the storage this device was given."""
        if self.cloud is None:
            raise InputInvalid("no backup method: pass one (PasswordMethod, PasskeyMethod, CloudMethod) "
                               "or give the device its cloud storage, Client(..., cloud=...)")
        return CloudMethod(self.cloud)


def _stored_step(shares: Mapping[str, Any]) -> dict[str, str]:
    return {curve: shares[curve].public_key.hex() for curve in CURVES}


class _DeviceOperation(ClientOperation):
    """The operations of this module use more of the facade than ``operation.Device`` names."""

    client: Client


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


class ClientBackup(_DeviceOperation):
    protocol = "wallet/backup"

    def result(self) -> dict[str, Any]:
        """``{"method": name, "encrypted_backup": {curve: (box, record)} or None, "confirmation":
        proofs or None, "confirmed": bool}``.

        The session ends when the custodian confirms it stored the new version ("backup_stored").
        The custodian keeps the boxes (the default): ``confirmed`` True, the new backup is the one
        recover uses. The customer keeps them (``client_stores_backup``): the boxes are here with
        the ``confirmation`` the customer passes to ``custodian.stored_client_backup_share`` once
        it stored them; ``confirmed`` False until then, and recovering with these boxes is refused
        (``BackupNotConfirmed``) while the previous backup stays the current one."""
        outcome: dict[str, Any] = super().result()
        return outcome

    _transient = ("client", "method")

    def __init__(self, client: Client, session_id: bytes, method: BackupMethod, client_stores_backup: bool) -> None:
        super().__init__(client, session_id)
        self.method = method
        self.client_stores_backup = client_stores_backup
        method.check_for_backup(user_inputs=(client.client_id,))  # e.g. a weak password: refused before anything runs
        self._signing = {curve: client.signing_share(curve) for curve in CURVES}
        if self._signing["secp256k1"].locked:  # its bits may have leaked: never reshare it
            raise KeyLockedError()

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client.client_id, "method": method_name(self.method.name),
                "client_stores_backup": self.client_stores_backup}

    def _start(self) -> list[Message]:
        return []  # the custodian's "challenge" (its nonce) comes first

    _nonce = b""
    _hardening = False

    def _prove(self, shares: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """Proofs of knowledge of ``shares`` bound to the custodian's nonce (``mpc.backup.possession``)."""
        return possession.prove(shares, protocol=self.protocol, session_id=self.session_id,
                                client_id=self.client.client_id, method=self.method.name, nonce=self._nonce,
                                kind=kind)

    def _on_challenge(self) -> list[Message]:
        """Name the signing shares and prove knowledge of them, then start the resharing."""
        data = {"client_shares": possession.public_shares(self._signing),
                "proofs": self._prove(self._signing, possession.SIGNING_SHARE)}
        return [self._step("possession", data)] + self._add_children({
            "secp256k1": ecdsa2p.ReshareP1(self._child_id("secp256k1"), self._signing["secp256k1"], for_signing=False),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), self._signing["ed25519"], PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        element = self.method.hardening_request()
        if element is None:
            return self._encrypt_and_send()
        self._hardening = True  # a PASSWORD backup: the custodian's evaluation comes first
        return [self._step("oprf", {"element": element.hex()})]

    _sent_last = False  # the last step went to the custodian; its "backup_stored" ends the session
    _outcome: dict[str, Any] | None = None

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        if name == "challenge" and not self._nonce:
            require_keys(data, ("nonce",))
            return possession.decode_nonce(data)
        if name == "backup_stored" and self._sent_last and not self.done:
            require_keys(data, ("method",))
            if data["method"] != method_name(self.method.name):
                raise InvalidMessage("the custodian confirms the backup of another method")
            return None
        if name != "oprf_evaluation" or not self._hardening or self._sent_last or self.done:
            raise InvalidMessage(f"unexpected step {name!r}")
        self.method.finish_hardening(*_decode_oprf_evaluation(data))  # a bad proof: the custodian's fault
        return None

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        if name == "challenge":
            self._nonce = value
            return self._on_challenge()
        if name == "backup_stored":  # only now is the new version stored (and current, unless the customer keeps it)
            self._finish(self._outcome)
            return []
        return self._encrypt_and_send()

    def _encrypt_and_send(self) -> list[Message]:
        """Encrypt each new backup share, then the last step: the boxes (unless the customer keeps
        them) with proofs of knowledge of the new shares (what the custodian promotes)."""
        shares = self._shares()
        encrypted: dict[str, tuple[bytes, bytes]] = {}
        for curve, share in shares.items():
            context = BackupContext(self.client.client_id, curve)
            plaintext = hd.pack_backup(share.to_bytes(), hd.client_derivation_share(self.client, curve))
            key, box = encrypt_backup(plaintext, context)
            encrypted[curve] = (box, self.method.store_key(context, key))
        confirmation = self._prove(shares, possession.CONFIRM_BACKUP) if self.client_stores_backup else None
        self._outcome = {"method": self.method.name, "encrypted_backup": encrypted if self.client_stores_backup else None,
                         "confirmation": confirmation, "confirmed": not self.client_stores_backup}
        self._sent_last = True
        data: dict[str, Any] = {"possession": self._prove(shares, possession.NEW_BACKUP_SHARE)}
        if not self.client_stores_backup:
            data["boxes"] = {curve: {"box": box.hex(), "record": record.hex()} for curve, (box, record) in encrypted.items()}
        return [self._step("client_backup", data)]


class _FromBackup(_DeviceOperation):
    """An operation that starts from the client backup shares of one method.

    The encrypted shares come from the custodian's first step ("client_backup", with the
    custodian's nonce), unless the customer kept them (``encrypted_backup``); nothing starts
    before they are decrypted and the client proved it holds them ("possession").
    """

    _transient = ("client", "method")

    def __init__(self, client: Client, session_id: bytes, method: BackupMethod,
                 encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> None:
        super().__init__(client, session_id)
        self.method = method
        self.encrypted_backup = encrypted_backup

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client.client_id, "method": method_name(self.method.name)}

    def _start(self) -> list[Message]:
        return []

    _opened = False
    _derivation: dict[str, Any] = {}  # the device's derivation key shares from the backup (docs/hd.md)
    _boxes: dict[str, tuple[bytes, bytes]] = {}  # kept while the custodian evaluates a password guess
    _nonce = b""

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        """Open the backup shares: from "client_backup" directly, or, for a hardened PASSWORD
        backup, once "oprf_evaluation" brings the custodian's evaluation. A wrong key or password,
        a tampered box or a bad evaluation fails here, before anything changes or is sent."""
        if name == "oprf_evaluation" and self._boxes and not self._opened:
            self.method.finish_hardening(*_decode_oprf_evaluation(data))
            shares, derivation = _decrypt_boxes(self.client.client_id, self.method, self._boxes)
            return "opened", shares, self._nonce, derivation
        if name != "client_backup" or self._opened or self._boxes:
            return self._decode_after_backup(name, data)
        require_keys(data, ("method", "boxes", "nonce", "oprf_public_key"))
        nonce = get_bytes(data, "nonce", possession.NONCE_BYTES)
        boxes = _backup_boxes(self.method, data, self.encrypted_backup)
        _check_current_version(self.method, boxes, get_bytes(data, "oprf_public_key"))
        element = self.method.hardening_request(boxes["secp256k1"][1])
        if element is not None:
            return "harden", boxes, nonce, element
        shares, derivation = _decrypt_boxes(self.client.client_id, self.method, boxes)
        return "opened", shares, nonce, derivation

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        if name not in ("client_backup", "oprf_evaluation") or self._opened:
            return self._on_step_after_backup(name, value)
        if value[0] == "harden":  # the custodian evaluates the password guess first
            _, self._boxes, self._nonce, element = value
            return [self._step("oprf", {"element": element.hex()})]
        _, shares, nonce, *derivation = value  # derivation: the backup's derivation key shares, if any
        self._derivation = derivation[0] if derivation else {}
        self._opened, self._boxes, self._nonce = True, {}, b""
        proofs = possession.prove(shares, protocol=self.protocol, session_id=self.session_id,
                                  client_id=self.client.client_id, method=self.method.name, nonce=nonce)
        return [self._step("possession", proofs)] + self._on_backup_opened(shares)

    def _on_backup_opened(self, shares: dict[str, Any]) -> list[Message]:
        raise NotImplementedError

    def _decode_after_backup(self, name: str, data: Mapping[str, Any]) -> Any:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_step_after_backup(self, name: str, value: Any) -> list[Message]:
        raise InvalidMessage(f"unexpected step {name!r}")


class ClientRecover(_FromBackup):
    protocol = "wallet/recover"

    def result(self) -> dict[str, str]:
        """The recovered wallet's address on every chain (the same as before)."""
        addresses: dict[str, str] = super().result()
        return addresses

    def _on_backup_opened(self, shares: dict[str, Any]) -> list[Message]:
        return self._add_children({
            "secp256k1": ecdsa2p.ReshareP1(self._child_id("secp256k1"), shares["secp256k1"], for_signing=True,
                                           client_setup=self.client.device_setup()),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), shares["ed25519"], PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        shares = self._shares()
        self.client._store_signing_shares(shares)
        hd.store_client_derivation_shares(self.client, self._derivation)
        device_key.promote(self.client.keychain, self.client.client_id)  # the new shares go with the new key
        self._finish(self.client.addresses())
        return [self._step("stored", _stored_step(shares))]


def _backup_boxes(
    method: BackupMethod,
    data: Mapping[str, Any],
    encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None,
) -> dict[str, tuple[bytes, bytes]]:
    """The encrypted client backup shares: the customer's copy if given, else the custodian's."""
    if data["method"] != method_name(method.name):
        raise InvalidMessage("the custodian offers the backup of another method")
    boxes = dict(encrypted_backup) if encrypted_backup else _decode_boxes(data["boxes"])
    if set(boxes) != set(CURVES):
        raise BackupNotFound("no encrypted client backup share for this method")
    return boxes


def _check_current_version(method: BackupMethod, boxes: Mapping[str, tuple[bytes, bytes]], offered: bytes) -> None:
    """``BackupNotConfirmed`` before any password guess if the boxes are bound to another
    custodian key than the current backup version's (docs/backup.md): the customer kept the boxes
    of a backup it never confirmed, or of an older one. Nobody is at fault; nothing is counted."""
    for curve in CURVES:
        pinned = method.custodian_key(boxes[curve][1])
        if pinned is not None and pinned != offered:
            raise BackupNotConfirmed(
                "these encrypted backup shares are not of the custodian's current backup: a backup whose "
                "storage was never confirmed (stored_client_backup_share), or an older one; no attempt was "
                "counted. Confirm that backup, or recover with the boxes of the current one")


def _decrypt_boxes(client_id: str, method: BackupMethod,
                   boxes: Mapping[str, tuple[bytes, bytes]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The client backup shares and, if the backup holds them, the derivation key shares."""
    shares, derivation = {}, {}
    for curve in CURVES:
        box, record = boxes[curve]
        context = BackupContext(client_id, curve)
        plaintext, derivation_share = hd.unpack_backup(decrypt_backup(method.load_key(context, record), box, context))
        shares[curve] = decode_share(curve, CLIENT_PARTY, plaintext)
        if derivation_share is not None and derivation_share.curve == curve:
            derivation[curve] = derivation_share
    return shares, derivation


def _decode_oprf_evaluation(data: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """The custodian's VOPRF answer: (evaluated element, proof, public key), lengths checked
    (the element and proof are checked strictly by ``finish_hardening``)."""
    require_keys(data, ("element", "proof", "public_key"))
    return (get_bytes(data, "element", oprf.NE), get_bytes(data, "proof", 2 * oprf.NS),
            get_bytes(data, "public_key", oprf.NE))


def _decode_boxes(data: Any) -> dict[str, tuple[bytes, bytes]]:
    if not isinstance(data, Mapping) or not set(data) <= set(CURVES):
        raise InvalidMessage("malformed encrypted backup")
    out = {}
    for curve, item in data.items():
        require_keys(item, ("box", "record"))
        out[curve] = (get_bytes(item, "box"), get_bytes(item, "record"))
    return out


class EjectedKeys:
    """The whole private keys after an eject. ``repr`` shows only the public keys.

    ``secp256k1_private_key`` is the 32-byte key (hex via ``secp256k1_private_key_hex()``),
    importable into common Ethereum, Bitcoin and Tron wallets.

    ``ed25519_scalar`` is the raw secret scalar ``s`` (32 bytes, little-endian, reduced mod L,
    not clamped) with ``ed25519_public_key`` = s·B. A FROST key has no RFC 8032 seed (the 32
    bytes hashed into the scalar and the nonce prefix), so wallets that import a seed or a
    "secret key" of seed ‖ public key (Phantom, Solflare, Solana CLI keypair files, Stellar
    ``S...`` secret seeds, Freighter, Lobstr) cannot take it. Sign with :meth:`ed25519_sign`
    (standard RFC 8032 signatures, verified by any Ed25519 verifier), e.g. a transfer of the funds
    to a wallet of the user's choice; or hand :meth:`ed25519_expanded_secret_key` to software
    that signs with an expanded key (docs/backup.md, "Eject").
    """

    def __init__(self, secp256k1_private_key: bytes, secp256k1_public_key: bytes, ed25519_scalar: bytes,
                 ed25519_public_key: bytes, derivation_keys: Mapping[str, bytes] | None = None) -> None:
        self.secp256k1_private_key = secp256k1_private_key
        self.secp256k1_public_key = secp256k1_public_key
        self.ed25519_scalar = ed25519_scalar
        self.ed25519_public_key = ed25519_public_key
        # The whole derivation key k per curve (docs/hd.md): every account can be derived alone.
        self.derivation_keys = dict(derivation_keys or {})

    def derived_private_key(self, curve: str, path: str) -> bytes:
        """The private key at the HD ``path`` on ``curve`` (a secret): the root key plus the
        path's tweak, the account's from k·P (docs/hd.md), computed here without the custodian.
        secp256k1: 32 bytes big-endian; ed25519: the scalar, 32 bytes little-endian (as
        :attr:`ed25519_scalar`). ``StateInvalid`` if the backup held no derivation key."""
        if curve not in self.derivation_keys:
            raise StateInvalid("this wallet's backup holds no derivation key (made before HD derivation, docs/hd.md)")
        group = secp256k1 if curve == "secp256k1" else ed25519
        parsed = hd.parse_hd_path(path)
        k = group.decode_scalar(self.derivation_keys[curve])
        root_private = group.decode_scalar(self.secp256k1_private_key if curve == "secp256k1" else self.ed25519_scalar)
        z = account_point(curve, parsed.account_path) * k
        tweak, chain_code = account_tweak(curve, parsed.account_path, z)
        account = AccountKey.from_root(curve, parsed.account_path, group.base_mul(root_private), tweak, chain_code)
        _, total = hd.child_key(account, parsed)
        return group.encode_scalar((root_private + total) % group.order)

    def secp256k1_private_key_hex(self) -> str:
        """The secp256k1 private key as hex (a secret: handle it as one)."""
        return self.secp256k1_private_key.hex()

    def ed25519_expanded_secret_key(self) -> bytes:
        """The RFC 8032 expanded secret key ``s ‖ prefix`` (64 bytes; a secret): ``s`` is
        :attr:`ed25519_scalar`, ``prefix`` is derived from it (:func:`_ed25519_prefix`)."""
        return self.ed25519_scalar + _ed25519_prefix(self.ed25519_scalar)

    def ed25519_sign(self, message: bytes) -> bytes:
        """A standard Ed25519 signature (RFC 8032 §5.1.6, 64 bytes R ‖ S) of ``message`` under
        :attr:`ed25519_public_key`, made with the expanded key (:meth:`ed25519_expanded_secret_key`):
        r = SHA-512(prefix ‖ M) mod L, R = r·B, k = SHA-512(R ‖ A ‖ M) mod L, S = r + k·s mod L.
        Deterministic, like every RFC 8032 signature."""
        if not isinstance(message, (bytes, bytearray)):
            raise InputInvalid("ed25519_sign takes the message as bytes")
        message = bytes(message)
        r = sodium.crypto_core_ed25519_scalar_reduce(
            hashlib.sha512(_ed25519_prefix(self.ed25519_scalar) + message).digest())
        big_r = sodium.crypto_scalarmult_ed25519_base_noclamp(r)
        k = sodium.crypto_core_ed25519_scalar_reduce(
            hashlib.sha512(big_r + self.ed25519_public_key + message).digest())
        s = sodium.crypto_core_ed25519_scalar_add(r, sodium.crypto_core_ed25519_scalar_mul(k, self.ed25519_scalar))
        return big_r + s

    def __repr__(self) -> str:
        return (f"EjectedKeys(secp256k1={self.secp256k1_public_key.hex()}, ed25519={self.ed25519_public_key.hex()}, "
                "<private keys redacted>)")

    __str__ = __repr__


_ED25519_PREFIX_TAG = b"portal-mpc/ed25519-eject-prefix/v1"


def _ed25519_prefix(scalar: bytes) -> bytes:
    """The nonce prefix of an ejected ed25519 key: SHA-512(tag ‖ s)[:32]. RFC 8032 takes it from
    the seed's hash, which a threshold key does not have; any secret, fixed value keeps the
    signatures deterministic and their nonces secret (RFC 8032 §5.1.6 step 2), and deriving it
    from ``s`` under a domain tag makes it the same on every device that ejects the key."""
    return hashlib.sha512(_ED25519_PREFIX_TAG + scalar).digest()[:32]


def _combine(client_shares: Mapping[str, Any], custodian_shares: Mapping[str, Any]) -> EjectedKeys:
    """x = x1 + x2 (secp256k1, additive) and s = λ1·s1 + λ2·s2 (ed25519, Shamir over {1, 2})."""
    p1, p2 = client_shares["secp256k1"], custodian_shares["secp256k1"]
    x = (p1.x1.value + p2.x2.value) % secp256k1.order
    e1, e2 = client_shares["ed25519"], custodian_shares["ed25519"]
    scalar = interpolate_at_zero(ed25519, {e1.identifier: e1.signing_share.value, e2.identifier: e2.signing_share.value})
    if secp256k1.base_mul(x).to_bytes() != p1.public_key or ed25519.base_mul(scalar).to_bytes() != e1.public_key:
        raise ProtocolAbort("the custodian's backup shares do not complete the client's", CUSTODIAN_PARTY)
    return EjectedKeys(secp256k1.encode_scalar(x), p1.public_key, ed25519.encode_scalar(scalar), e1.public_key)


def _combine_derivation(client_shares: Mapping[str, Any], custodian_shares: Any) -> dict[str, bytes]:
    """k = k1 + k2 per curve, where both parties' shares are there; each checked against the
    public shares the client holds (a custodian share that does not match is the custodian's fault)."""
    if not isinstance(custodian_shares, Mapping) or not set(custodian_shares) <= set(CURVES):
        raise InvalidMessage("malformed derivation key shares")
    out = {}
    for curve, share in client_shares.items():
        if curve not in custodian_shares:
            continue
        group = share.group
        k2 = group.decode_scalar(get_bytes(custodian_shares, curve, group.scalar_length))
        if group.base_mul(k2) != share.public_shares[CUSTODIAN_PARTY]:
            raise ProtocolAbort("the custodian's derivation key share does not match its public share", CUSTODIAN_PARTY)
        out[curve] = group.encode_scalar((share.secret.value + k2) % group.order)
    return out


class ClientEject(_FromBackup):
    """Eject: rebuild each whole private key from the two backup shares of one method."""

    protocol = "wallet/eject"

    def result(self) -> EjectedKeys:
        """The whole private keys."""
        keys: EjectedKeys = super().result()
        return keys

    def _on_backup_opened(self, shares: dict[str, Any]) -> list[Message]:
        self._client_shares = shares  # until the custodian's shares arrive
        return []

    def _decode_after_backup(self, name: str, data: Mapping[str, Any]) -> Any:
        if name != "eject" or self.done or not self._opened:
            raise InvalidMessage(f"unexpected step {name!r}")
        require_keys(data, ("method", "shares", "derivation"))
        if data["method"] != self.method.name:
            raise InvalidMessage("the custodian sends the backup shares of another method")
        shares = data["shares"]
        require_keys(shares, CURVES)
        custodian_shares = {curve: decode_share(curve, CUSTODIAN_PARTY, get_bytes(shares, curve)) for curve in CURVES}
        keys = _combine(self._client_shares, custodian_shares)
        keys.derivation_keys = _combine_derivation(self._derivation, data["derivation"])
        return keys

    def _on_step_after_backup(self, name: str, value: Any) -> list[Message]:
        self._client_shares = {}
        self._finish(value)
        stored = {"secp256k1": value.secp256k1_public_key.hex(), "ed25519": value.ed25519_public_key.hex()}
        return [self._step("ejected", stored)]


# Parkable state (``protocols.state``): every client operation but signing (``mpc.signing``).
for _cls in (ClientGenerate, ClientBackup, ClientRecover, ClientEject, EjectedKeys):
    register_attrs(_cls)
