"""The device's backup operations: backup, recover and eject (``mpc.Client.backup``, ``recover``,
``eject``; the flows in ``mpc.client``'s module docstring and ``docs/backup.md``), and the
``EjectedKeys`` an eject returns (exported as ``mpc.EjectedKeys`` and ``mpc.client.EjectedKeys``).

Each is a ``ClientOperation`` over a :class:`BackupDevice`: what the operations use of
``mpc.Client`` (its keychain, signing shares, ring-Pedersen setup and addresses), named as a
protocol so that this module does not import the facade (docs/architecture.md, layout by role).
Their parked state keeps the names it had when they were defined in ``mpc.client``
(``protocols.state``): a session parked before still resumes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from curves import ed25519, secp256k1
from mpc import hd
from mpc.backup import possession
from mpc.backup.methods import BackupContext, BackupMethod, decrypt_backup, encrypt_backup
from mpc.errors import BackupNotConfirmed, BackupNotFound, InputInvalid, KeyLockedError, StateInvalid
from mpc.operation import ClientOperation, Device, method_name
from mpc.storage import device_key
from mpc.wallet import CLIENT_PARTY, CURVES, CUSTODIAN_PARTY, PARTIES, decode_share
from nacl import bindings as sodium
from protocols import ecdsa2p, frost, oprf
from protocols.encoding import get_bytes, require_keys
from protocols.errors import InvalidMessage, ProtocolAbort
from protocols.hd import AccountKey, account_point, account_tweak
from protocols.rounds import Message
from protocols.sharing import interpolate_at_zero
from protocols.state import register_attrs

__all__ = ["BackupDevice", "EjectedKeys"]


class BackupDevice(Device, Protocol):
    """What the backup, recover and eject operations (and generate) use of ``mpc.Client``."""

    def device_setup(self) -> ecdsa2p.ClientSetup | ecdsa2p.ClientSetupPublic:
        """The device's ring-Pedersen setup (``Client.device_setup``)."""

    def addresses(self, *, testnet: bool = False) -> dict[str, str]:
        """The wallet's address on each chain (``Client.addresses``)."""

    def _store_signing_shares(self, shares: Mapping[str, Any]) -> None: ...


def _stored_step(shares: Mapping[str, Any]) -> dict[str, str]:
    return {curve: shares[curve].public_key.hex() for curve in CURVES}


class _DeviceOperation(ClientOperation):
    """The device operations of this module and ``mpc.client``'s generate: they use more of the
    facade than ``operation.Device`` names (:class:`BackupDevice`)."""

    client: BackupDevice

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

    def __init__(self, client: BackupDevice, session_id: bytes, method: BackupMethod, client_stores_backup: bool) -> None:
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

    def __init__(self, client: BackupDevice, session_id: bytes, method: BackupMethod,
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


# Parkable state (``protocols.state``), under the names of ``mpc.client`` where they were defined.
for _cls in (ClientBackup, ClientRecover, ClientEject, EjectedKeys):
    register_attrs(_cls, f"mpc.client.{_cls.__qualname__}")
