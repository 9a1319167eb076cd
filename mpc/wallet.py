"""What both roles of the wallet engine share: party ids, curves, chains, share encodings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from functools import lru_cache
from typing import Any, TypedDict, cast

from mpc.addresses import CHAIN_CURVES
from mpc.errors import EngineError, InputInvalid
from protocols import frost
from protocols.ecdsa2p import P1KeyShare, P2KeyShare
from protocols.state import register_dataclass

__all__ = [
    "BackupView",
    "ClientView",
    "RecoverResult",
    "client_view",
    "recover_result",
    "CLIENT_PARTY",
    "CUSTODIAN_PARTY",
    "PARTIES",
    "CURVES",
    "CHAINS",
    "SignResult",
    "curve_of_chain",
    "default_home",
    "decode_share",
]

CLIENT_PARTY = 1  # P1 in two-party ECDSA, FROST identifier 1
CUSTODIAN_PARTY = 2  # P2 in two-party ECDSA, FROST identifier 2
PARTIES = (CLIENT_PARTY, CUSTODIAN_PARTY)
CURVES = ("secp256k1", "ed25519")
CHAINS = tuple(CHAIN_CURVES)
BACKUP_METHODS = ("PASSWORD", "CLOUD", "PASSKEY")
DEFAULT_METHOD = "CLOUD"


def default_home() -> Path:
    """Where file-based defaults live: ``$PORTAL_MPC_HOME`` (``~`` expanded, made absolute: a
    later change of the working folder moves nothing) or, unset or empty, ``~/.portal-mpc``."""
    configured = os.environ.get("PORTAL_MPC_HOME")
    return Path(configured).expanduser().absolute() if configured else Path.home() / ".portal-mpc"


def curve_of_chain(chain: str) -> str:
    """The curve a chain signs with ("ethereum", "bitcoin", "tron" → secp256k1; others ed25519)."""
    try:
        return CHAIN_CURVES[chain]
    except (KeyError, TypeError):
        raise InputInvalid(f"unknown chain {chain!r}; expected one of {', '.join(CHAINS)}") from None


def decode_share(curve: str, role: int, data: bytes) -> Any:
    """A key share from its bytes: P1/P2 two-party ECDSA share or a FROST share.

    Full validation (P1's Paillier primes are primality-tested: ~9 ms; a FROST share's
    verifying shares are interpolated: ~1 ms) runs once per distinct byte string in this
    process; the same bytes again give a fresh copy of the share validated then. Bytes that
    differ in any way (another share, a locked one, a damaged entry) are validated in full.
    """
    share = _decode_validated(curve, role, bytes(data))
    if isinstance(share, P1KeyShare):  # mutable (lock flag): every caller gets its own object
        return share.copy()
    if isinstance(share, P2KeyShare):
        return share.copy()
    return share  # frost.KeyShare is frozen


@lru_cache(maxsize=32)
def _decode_validated(curve: str, role: int, data: bytes) -> Any:
    if curve == "secp256k1":
        return P1KeyShare.from_bytes(data) if role == CLIENT_PARTY else P2KeyShare.from_bytes(data)
    return frost.KeyShare.from_bytes(data)


@dataclass(frozen=True)
class SignResult:
    """A signature as the chain wants it.

    secp256k1: ``r``, ``s`` (low-s), ``recid`` and ``v`` = 27 + recid, ``signature`` = r ‖ s
    (64 bytes), ``der``; it also unpacks as the triple ``r, s, v = result``.
    ed25519: ``signature`` is the 64-byte RFC 8032 signature (R ‖ z).
    Either way ``bytes(result)`` is the 64-byte signature and ``result["r"]`` reads a field.
    """

    chain: str
    curve: str
    public_key: bytes
    signature: bytes
    r: int | None = None
    s: int | None = None
    recid: int | None = None
    der: bytes | None = None

    @property
    def v(self) -> int | None:
        """27 + recid (Ethereum's legacy ``v``) for an ECDSA signature, else None."""
        return None if self.recid is None else 27 + self.recid

    def __iter__(self) -> Iterator[int]:
        """(r, s, v) for an ECDSA signature; an ed25519 signature is bytes, not a triple."""
        if self.r is None or self.s is None or self.v is None:
            raise TypeError("an ed25519 signature does not unpack: use .signature or bytes(result)")
        return iter((self.r, self.s, self.v))

    def __bytes__(self) -> bytes:
        return self.signature

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return tuple(self)[key]
        if key not in {"chain", "curve", "public_key", "signature", "r", "s", "recid", "der", "v"}:
            raise KeyError(key)
        return getattr(self, key)

    @classmethod
    def _of(cls, chain: str, curve: str, public_key: bytes, signature: bytes, r: int | None = None,
            s: int | None = None, recid: int | None = None, der: bytes | None = None) -> SignResult:
        """``SignResult(...)`` of the sign operation's own values (``mpc.signing.sign_result``),
        made without the frozen dataclass's ``__init__``, which sets each of the eight fields with
        its own ``object.__setattr__`` call (~1.2 µs of each side's sign): the same fields, equal
        and hashing alike; the class has no ``__post_init__`` to skip."""
        result = object.__new__(cls)
        result.__dict__.update(chain=chain, curve=curve, public_key=public_key, signature=signature, r=r, s=s,
                               recid=recid, der=der)
        return result

    def to_json(self) -> dict[str, Any]:
        """The result as JSON values: chain, curve and signature (hex); r, s, v, recid for ECDSA."""
        out: dict[str, Any] = {"chain": self.chain, "curve": self.curve, "signature": self.signature.hex()}
        if self.r is not None and self.s is not None:  # an ECDSA signature sets both
            out.update(r=hex(self.r), s=hex(self.s), v=self.v, recid=self.recid)
        return out


# Parkable state (``protocols.state``): a finished signing operation's result.
register_dataclass(SignResult)


# --- the custodian's view of a client (Custodian.get_client; over the network, mpc.remote) ---------
class BackupView(TypedDict):
    """One backup method of a client (``ClientView["backups"][method]``)."""

    status: str
    """``BackupShareStatus`` value of this method's backup."""
    self_managed: bool
    """The customer keeps the custodian backup share (a webhook), the custodian has no copy."""
    pending: bool
    """A backup of this method was started and has not completed (the last complete one holds)."""


class LockoutView(TypedDict):
    """A client's lockout (``mpc.backup.attempts``): failed proofs of possession and password
    guesses since the last success or unlock; at ``limit`` recover and eject are refused until
    an operator unlocks the client (signing is not affected)."""

    locked: bool
    failed_attempts: int
    limit: int
    since: float | None
    """When the client was locked out (Unix seconds); None when it is not."""


class ClientView(TypedDict):
    """The custodian's view of a client (``Custodian.get_client``): statuses, public keys, addresses."""

    client_id: str
    signing_share_status: str
    """``SigningShareStatus`` value."""
    backup_share_status: str
    """``BackupShareStatus`` value over every method (the most complete backup)."""
    backups: dict[str, BackupView]
    backup_methods: list[str]
    ejected: bool
    public_keys: dict[str, str]
    """Curve name -> the wallet's public key (hex); empty before generate."""
    addresses: dict[str, str]
    """Chain name -> the wallet's address; empty before generate."""
    lockout: LockoutView
    accounts: dict[str, list[str]]
    """Curve name -> the derived HD account paths (docs/hd.md); empty lists before any derive."""


class DeviceView(TypedDict):
    """A client's registered device key (the networked custodian's ``device``)."""

    public_key: str
    """The device's Ed25519 public key (hex, ``mpc.storage.device_key``)."""
    since: float
    """When it was registered (Unix seconds)."""


class ServiceClientView(ClientView):
    """The networked custodian's view of a client (``get_client`` over the service): the
    engine's :class:`ClientView` plus ``device``, its registered device key (None before the
    device enrolled)."""

    device: DeviceView | None


class RecoverResult(ClientView):
    """The custodian's result of a recover or an eject over the network (``RemoteCustodian``):
    its view and ``token``, the client's new token (keep it: the one that ran the operation is
    dead; presented again it gets ``AUTH_TOKEN_REPLACED``). ``Custodian.get_client`` and the
    in-memory operations (``mpc.run_local``) give a :class:`ClientView`; a completed recover or
    eject over the network replaces the client's token, so its result carries the new one
    (docs/operations.md, Credentials). Both are ``TypedDict``: plain dicts at run time, typed
    for a type checker (``result["token"]`` is a ``str``)."""

    token: str


def _is_map(value: Any, check: Callable[[Any], bool]) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and check(v) for k, v in value.items())


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_backup(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("status"), str)
            and isinstance(value.get("self_managed"), bool) and isinstance(value.get("pending"), bool))


def _is_lockout(value: Any) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("locked"), bool)
            and type(value.get("failed_attempts")) is int and type(value.get("limit")) is int
            and (value.get("since") is None or isinstance(value.get("since"), (int, float))))


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# Each field of a ClientView and the check of its value, nested fields included.
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "client_id": _is_str,
    "signing_share_status": _is_str,
    "backup_share_status": _is_str,
    "backups": lambda v: _is_map(v, _is_backup),
    "backup_methods": _is_str_list,
    "ejected": lambda v: isinstance(v, bool),
    "public_keys": lambda v: _is_map(v, _is_str),
    "addresses": lambda v: _is_map(v, _is_str),
    "lockout": _is_lockout,
    "accounts": lambda v: _is_map(v, _is_str_list),
}


def client_view(value: Any) -> ClientView:
    """``value`` (a view decoded from JSON) as a :class:`ClientView`, once every field is checked,
    nested ones included (a malformed one is ``ENGINE_INTERNAL_ERROR``: the service broke its own
    protocol)."""
    if not isinstance(value, dict) or not all(check(value.get(name)) for name, check in _FIELDS.items()):
        raise EngineError("unexpected client view from the custodian service")
    return cast(ClientView, value)


def recover_result(value: Any) -> RecoverResult:
    """``value`` (a recover's or eject's result decoded from JSON) as a :class:`RecoverResult`."""
    view = client_view(value)
    if not isinstance(view.get("token"), str):
        raise EngineError("the custodian service's recover or eject result carries no new token")
    return cast(RecoverResult, view)
