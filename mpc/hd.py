"""HD accounts of a wallet (docs/hd.md): the ``derive`` operation, both roles side by side, and
where each side keeps its derivation key share and its accounts.

Steps of ``derive``::

  client     hello (client, the account paths, "setup" when the wallet has no derivation key
             yet, the client's public derivation shares otherwise)
  custodian  checks the hello against its own state (the same paths; the same derivation key)
  setup      only for a wallet made before HD derivation existed (the migration): the joint
             derivation key on each curve (``protocols.hd.keys``), each side stores its share
  vrf        on each curve, the account VRF (``protocols.hd.vrf``): one round trip, DLEQ proofs
  result     both sides keep the accounts (``AccountKey``: tweak δ, chain code, account key);
             each side's result maps account path -> {curve: extended public key}

``generate`` makes the derivation key with the signing keys (``derivation_keygen_children``), so
the setup step runs only for older wallets. Where the shares live: the client's in its keychain
(``<client_id>.<curve>.derivation``; accounts under ``<client_id>.<curve>.account.<hash>``), the
custodian's in its store (table ``hd``, sealed: ``key`` and ``account:<path>``).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, cast

from curves import Point, group_by_name
from mpc.errors import AccountNotDerived, InputInvalid, PathInvalid, StateInvalid
from mpc.operation import ClientOperation, CustodianOperation, Device, Service
from mpc.storage.store import SQLiteStore
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES
from protocols.errors import InvalidMessage, MPCError
from protocols.hd import (
    MAX_PATHS,
    AccountKey,
    AccountTweak,
    AccountVRF,
    DerivationKeygen,
    DerivationKeyShare,
    HDPath,
    InvalidChild,
    InvalidPath,
    parse_path,
)
from protocols.rounds import Message, Session
from protocols.state import register_attrs

__all__ = [
    "ClientDerive",
    "CustodianDerive",
    "parse_hd_path",
    "account_paths_of",
    "client_derivation_share",
    "client_account",
    "client_accounts",
    "store_client_derivation_shares",
    "wipe_client",
    "custodian_derivation_share",
    "custodian_account",
    "custodian_accounts",
    "child_key",
    "derivation_keygen_children",
    "derivation_shares_of",
    "pack_backup",
    "unpack_backup",
]

_KEYGEN_CHILD = "hd-key-{curve}"
_VRF_CHILD = "hd-vrf-{curve}"


# --- paths -----------------------------------------------------------------------------------
def parse_hd_path(path: Any) -> HDPath:
    """``protocols.hd.parse_path`` with the engine's error (``PathInvalid``)."""
    try:
        return parse_path(path)
    except InvalidPath as exc:
        raise PathInvalid(str(exc)) from None


def account_paths_of(paths: Iterable[str]) -> list[str]:
    """The distinct account paths (hardened prefixes) of ``paths``, sorted; 1 to ``MAX_PATHS``."""
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise InputInvalid("derive takes a list of paths, e.g. [\"m/44'/60'/0'\"]")
    accounts = sorted({parse_hd_path(path).account_path for path in paths})
    if not 1 <= len(accounts) <= MAX_PATHS:
        raise InputInvalid(f"derive takes 1 to {MAX_PATHS} account paths per operation")
    return accounts


@lru_cache(maxsize=1024)
def child_key(account: AccountKey, path: HDPath) -> tuple[Point, int]:
    """The key at ``path`` below ``account`` and its whole tweak from the root key; a child that
    does not exist (BIP32: about 2^-127 per index) is ``PathInvalid``. Cached: a pure function of
    public values (both frozen), which signing at a path computes on both sides every time (one
    HMAC-SHA512, base multiplication and point addition per level); an error is not cached."""
    try:
        return account.child(path.children)
    except InvalidChild as exc:
        raise PathInvalid(str(exc)) from None


# --- the client's keychain -------------------------------------------------------------------
def _derivation_entry(client: Device, curve: str) -> str:
    return f"{client.client_id}.{curve}.derivation"


def _account_prefix(client: Device, curve: str) -> str:
    return f"{client.client_id}.{curve}.account."


def _account_entry(client: Device, curve: str, account_path: str) -> str:
    return _account_prefix(client, curve) + hashlib.sha256(account_path.encode()).hexdigest()[:32]


@lru_cache(maxsize=1024)
def _account_from_bytes(data: bytes) -> AccountKey:
    """``AccountKey.from_bytes``, cached: an account is immutable and signing at a path reads it
    on both sides every time (strict JSON decoding costs more than the derivation itself)."""
    return AccountKey.from_bytes(data)


def _decoded(decode: Callable[[bytes], Any], data: bytes, what: str) -> Any:
    try:
        return decode(data)
    except MPCError:
        raise StateInvalid(f"the stored {what} is damaged") from None


def client_derivation_share(client: Device, curve: str) -> DerivationKeyShare | None:
    """The device's derivation key share on ``curve``, or None (a wallet made before HD)."""
    entry = _derivation_entry(client, curve)
    if entry not in client.keychain:
        return None
    return cast(DerivationKeyShare, _decoded(DerivationKeyShare.from_bytes, client.keychain.get(entry),
                                             "derivation key share"))


def store_client_derivation_shares(client: Device, shares: Mapping[str, DerivationKeyShare]) -> None:
    """Keep the device's derivation key shares (generate, the migration, recover)."""
    for curve, share in shares.items():
        client.keychain.put(_derivation_entry(client, curve), share.to_bytes())


def client_account(client: Device, curve: str, account_path: str) -> AccountKey:
    """A derived account from the keychain; ``AccountNotDerived`` before ``derive``."""
    entry = _account_entry(client, curve, account_path)
    if entry not in client.keychain:
        raise AccountNotDerived(f"account {account_path} has not been derived on this device: run derive first")
    account = cast(AccountKey, _decoded(_account_from_bytes, client.keychain.get(entry), "account"))
    if account.account_path != account_path or account.curve != curve:
        raise StateInvalid("the stored account is damaged")
    return account


def wipe_client(client: Device) -> None:
    """Forget the device's derivation key shares and accounts of the client (``Client.wipe``)."""
    for curve in CURVES:
        client.keychain.delete(_derivation_entry(client, curve), missing_ok=True)
        for name in [n for n in client.keychain.names() if n.startswith(_account_prefix(client, curve))]:
            client.keychain.delete(name, missing_ok=True)


def client_accounts(client: Device) -> dict[str, list[str]]:
    """The account paths derived on this device, per curve."""
    out = {}
    for curve in CURVES:
        prefix = _account_prefix(client, curve)
        names = [name for name in client.keychain.names() if name.startswith(prefix)]
        out[curve] = sorted(AccountKey.from_bytes(client.keychain.get(name)).account_path for name in names)
    return out


# --- the custodian's store -------------------------------------------------------------------
def custodian_derivation_share(store: SQLiteStore, client_id: str, curve: str) -> DerivationKeyShare | None:
    """The custodian's derivation key share of the client on ``curve``, or None."""
    data = store.get_hd(client_id, curve, "key")
    if data is None:
        return None
    return cast(DerivationKeyShare, _decoded(DerivationKeyShare.from_bytes, data, "derivation key share"))


def custodian_account(store: SQLiteStore, client_id: str, curve: str, account_path: str) -> AccountKey:
    """A derived account of the client; ``AccountNotDerived`` before ``derive``."""
    data = store.get_hd(client_id, curve, "account:" + account_path)
    if data is None:
        raise AccountNotDerived(f"account {account_path} has not been derived for this client: run derive first")
    return cast(AccountKey, _decoded(_account_from_bytes, data, "account"))


def custodian_accounts(store: SQLiteStore, client_id: str) -> dict[str, list[str]]:
    """The client's derived account paths, per curve (the custodian's view)."""
    return {curve: [name[len("account:"):] for name in store.hd_names(client_id, curve) if name.startswith("account:")]
            for curve in CURVES}


# --- generate's part ---------------------------------------------------------------------------
def derivation_keygen_children(child_id: Callable[[str], bytes], party: int) -> dict[str, Session]:
    """The derivation key generation on each curve, as children of a wallet operation."""
    return {_KEYGEN_CHILD.format(curve=curve): DerivationKeygen(child_id(_KEYGEN_CHILD.format(curve=curve)), party,
                                                                 PARTIES, curve)
            for curve in CURVES}


def derivation_shares_of(operation: Any) -> dict[str, DerivationKeyShare]:
    """The derivation key shares made by ``derivation_keygen_children`` in ``operation``."""
    return {curve: operation.child(_KEYGEN_CHILD.format(curve=curve)).result() for curve in CURVES}


def _accounts(roots: Mapping[str, bytes], tweaks: Mapping[str, Sequence[AccountTweak]]) -> list[AccountKey]:
    out = []
    for curve in CURVES:
        root = group_by_name(curve).decode_point(roots[curve])
        out += [AccountKey.from_root(curve, t.account_path, root, t.tweak, t.chain_code) for t in tweaks[curve]]
    return out


def _summary(accounts: Sequence[AccountKey]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for account in accounts:
        out.setdefault(account.account_path, {})[account.curve] = account.extended_public_key()
    return out


class _Derive:
    """What both roles of ``derive`` share: the two phases (setup if needed, then the VRF)."""

    paths: list[str]
    setup: bool
    _keys: dict[str, DerivationKeyShare]
    _in_vrf: bool

    def _derive_hello(self, client_id: str, shares: Mapping[str, DerivationKeyShare] | None) -> dict[str, Any]:
        publics = {} if shares is None else {curve: shares[curve].public_shares[CLIENT_PARTY].to_bytes().hex()
                                             for curve in CURVES}
        return {"client_id": client_id, "paths": tuple(self.paths), "setup": shares is None,
                "derivation_keys": publics}

    def _first_children(self, child_id: Callable[[str], bytes], party: int) -> dict[str, Session]:
        if self.setup:
            return derivation_keygen_children(child_id, party)
        return self._vrf_children(child_id)

    def _vrf_children(self, child_id: Callable[[str], bytes]) -> dict[str, Session]:
        self._in_vrf = True
        return {_VRF_CHILD.format(curve=curve): AccountVRF(child_id(_VRF_CHILD.format(curve=curve)),
                                                           self._keys[curve], PARTIES, self.paths)
                for curve in CURVES}

    def _tweaks(self, operation: Any) -> dict[str, list[AccountTweak]]:
        return {curve: operation.child(_VRF_CHILD.format(curve=curve)).result() for curve in CURVES}


class ClientDerive(_Derive, ClientOperation):
    """The device's side of ``derive``; its result maps account path -> {curve: extended key}."""

    protocol = "wallet/derive"

    def __init__(self, client: Device, session_id: bytes, paths: Iterable[str]) -> None:
        super().__init__(client, session_id)
        self.paths = account_paths_of(paths)
        self._roots = {curve: client.signing_share(curve).public_key for curve in CURVES}
        found = {curve: client_derivation_share(client, curve) for curve in CURVES}
        self.setup = any(share is None for share in found.values())
        self._keys = {} if self.setup else cast(dict[str, DerivationKeyShare], found)
        self._in_vrf = False

    def _hello(self) -> dict[str, Any]:
        return self._derive_hello(self.client.client_id, None if self.setup else self._keys)

    def _start(self) -> list[Message]:
        return self._add_children(self._first_children(self._child_id, CLIENT_PARTY))

    def _on_children_done(self) -> list[Message]:
        if not self._in_vrf:
            self._keys = derivation_shares_of(self)
            store_client_derivation_shares(self.client, self._keys)
            self._children_done = False
            return self._add_children(self._vrf_children(self._child_id))
        accounts = _accounts(self._roots, self._tweaks(self))
        for account in accounts:
            self.client.keychain.put(_account_entry(self.client, account.curve, account.account_path),
                                     account.to_bytes())
        self._finish(_summary(accounts))
        return []

    def result(self) -> dict[str, dict[str, str]]:
        """Account path -> {curve: extended public key} (docs/hd.md)."""
        return cast(dict[str, dict[str, str]], super().result())


class CustodianDerive(_Derive, CustodianOperation):
    """The custodian's side of ``derive``; its result is ``get_client`` (which lists the accounts)."""

    protocol = "wallet/derive"
    operation = "derive"

    def __init__(self, custodian: Service, client_id: str, session_id: bytes | None, paths: Iterable[str]) -> None:
        super().__init__(custodian, client_id, session_id)
        self.paths = account_paths_of(paths)
        record = custodian.store.client(client_id)
        if not record.has_wallet or record.secp256k1_public is None or record.ed25519_public is None:
            raise StateInvalid("the client has no wallet: generate first")
        self._roots = {"secp256k1": record.secp256k1_public, "ed25519": record.ed25519_public}
        found = {curve: custodian_derivation_share(self.store, client_id, curve) for curve in CURVES}
        self._stored = {curve: share for curve, share in found.items() if share is not None}
        self.setup = len(self._stored) != len(CURVES)
        self._keys = dict(self._stored)
        self._in_vrf = False

    def _hello(self) -> dict[str, Any]:
        return self._derive_hello(self.client_id, None if self.setup else self._keys)

    def _expected_hello(self, data: Mapping[str, Any]) -> dict[str, Any]:
        # A device that lost its share (an interrupted migration) may set the key up again, but
        # only while no account depends on the key: otherwise every account would change.
        if not self.setup and data.get("setup") is True:
            if any(custodian_accounts(self.store, self.client_id).values()):
                raise StateInvalid("this device has no derivation key share but the client's accounts depend on "
                                   "it: recover from a backup made after the derivation key existed (docs/hd.md)")
            return self._derive_hello(self.client_id, None)
        return self._hello()

    def _on_hello(self, hello: Mapping[str, Any]) -> None:
        self.setup = bool(hello["setup"])  # only now: a rejected hello leaves the session as it was

    def _start(self) -> list[Message]:
        return self._add_children(self._first_children(self._child_id, self.party_id))

    def _on_children_done(self) -> list[Message]:
        if not self._in_vrf:
            self._keys = derivation_shares_of(self)
            with self.store.transaction():
                for curve, share in self._keys.items():
                    self.store.put_hd(self.client_id, curve, "key", share.to_bytes())
            self._children_done = False
            return self._add_children(self._vrf_children(self._child_id))
        accounts = _accounts(self._roots, self._tweaks(self))
        with self.store.transaction():
            for account in accounts:
                self.store.put_hd(self.client_id, account.curve, "account:" + account.account_path,
                                  account.to_bytes())
        self._complete(self.custodian.get_client(self.client_id))
        return []

    def result(self) -> dict[str, Any]:
        """The custodian's view of the client (``get_client``), with its accounts."""
        return cast(dict[str, Any], super().result())


register_attrs(ClientDerive)
register_attrs(CustodianDerive)


# --- backups: the client's derivation key share travels in its backup box ----------------------
_BACKUP_MAGIC = b"portal-mpc/hd-backup/v1\x00"


def pack_backup(share: bytes, derivation: DerivationKeyShare | None) -> bytes:
    """The plaintext of a client backup box: the backup share alone (a wallet without a
    derivation key: the format of before), or a tagged pair of the backup share and the
    device's derivation key share (docs/hd.md, backups)."""
    if derivation is None:
        return share
    return _BACKUP_MAGIC + len(share).to_bytes(4, "big") + share + derivation.to_bytes()


def unpack_backup(plaintext: bytes) -> tuple[bytes, DerivationKeyShare | None]:
    """Split ``pack_backup`` output (``InvalidMessage`` if the tagged form is malformed)."""
    if not plaintext.startswith(_BACKUP_MAGIC):
        return plaintext, None
    body = plaintext[len(_BACKUP_MAGIC):]
    size = int.from_bytes(body[:4], "big")
    if len(body) < 4 + size:
        raise InvalidMessage("malformed backup plaintext")
    derivation = DerivationKeyShare.from_bytes(body[4 + size:])
    if derivation.party != CLIENT_PARTY:
        raise InvalidMessage("the backup holds another party's derivation key share")
    return body[4:4 + size], derivation
