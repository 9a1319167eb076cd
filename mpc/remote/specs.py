"""What the device-side clients send, and how each answer becomes a method's typed return value.

- :class:`RequestSpec`: a one-frame request (``get_client``, ``create_client``, the operator
  ops): its frame, whether sending it twice is harmless, how its result is typed;
- :class:`OperationSpec` and its builders (:func:`generate_spec`, :func:`backup_spec`,
  :func:`recover_spec`, :func:`eject_spec`, :func:`sign_spec`, :func:`derive_spec`,
  :func:`presign_spec`): a wallet operation's device session, its request parameters, and the
  typed pair of results, the same types as ``mpc.run_local`` gives (a malformed custodian result
  raises).

No I/O: ``mpc.remote.channel`` runs them (``RequestAttempts``, ``OperationChannel``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from mpc.backup.methods import BackupMethod
from mpc.client import Client, EjectedKeys
from mpc.errors import EngineError
from mpc.storage.device_key import DeviceKey
from mpc.wallet import ClientView, RecoverResult, SignResult, client_view, recover_result
from protocols.rounds import Session

__all__ = [
    "OperationSpec",
    "RequestSpec",
    "backup_spec",
    "derive_spec",
    "eject_spec",
    "generate_spec",
    "presign_spec",
    "recover_spec",
    "sign_spec",
]

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


# --- one-frame requests ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestSpec(Generic[T]):
    """A one-frame request: its first frame, whether sending it twice is harmless
    (``idempotent``), and how its ``result`` becomes the method's return value."""

    request: dict[str, Any] = field(repr=False)  # carries the token or the operator key
    idempotent: bool
    extract: Callable[[Any], T]
    signer: DeviceKey | None = None  # the device key that answers the service's challenge
    prover: Callable[[bytes], dict[str, Any]] | None = None  # enrol_device: its possession proofs


def _as_view(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise EngineError("unexpected reply from the custodian service")
    return result


def _token_of(result: Any) -> str:
    token = _as_view(result).get("token")
    if not isinstance(token, str):
        raise EngineError("unexpected reply from the custodian service")
    return token


def _client_and_token(result: Any) -> tuple[str, str]:
    client_id = _as_view(result).get("client_id")
    if not isinstance(client_id, str):
        raise EngineError("unexpected reply from the custodian service")
    return client_id, _token_of(result)



@dataclass(frozen=True)
class OperationSpec(Generic[A, B]):
    """A wallet operation to run: ``make()`` builds the device's session and the request's
    parameters (CPU-bound for some: the asyncio client calls it in a thread); ``typed`` turns
    (the device session's result, the custodian's JSON result) into the method's typed pair, the
    same types as ``mpc.run_local`` gives (a malformed custodian result raises)."""

    op: str
    client_id: str
    make: Callable[[], tuple[Session, dict[str, Any]]]
    typed: Callable[[Any, Any], tuple[A, B]]


def _with_view(device: Any, custodian: Any) -> tuple[Any, ClientView]:
    return device, client_view(custodian)


def _with_new_token(device: Any, custodian: Any) -> tuple[Any, RecoverResult]:
    return device, recover_result(custodian)


def _signed(device: Any, custodian: Any) -> tuple[SignResult, SignResult]:
    """The device's ``SignResult`` twice, once the custodian's JSON result is checked to be the
    same signature (``SignResult.to_json``)."""
    if not isinstance(device, SignResult) or custodian != device.to_json():
        raise EngineError("the custodian service's signature differs from the device's")
    return device, device


def _counts(device: Any, custodian: Any) -> tuple[dict[str, int], dict[str, int]]:
    if not isinstance(custodian, dict) or not all(isinstance(n, int) and not isinstance(n, bool)
                                                  for n in custodian.values()):
        raise EngineError("unexpected presign result from the custodian service")
    return cast("dict[str, int]", device), cast("dict[str, int]", custodian)


def generate_spec(client: Client) -> OperationSpec[dict[str, str], ClientView]:
    """``generate`` for ``client``: (the wallet's addresses, the custodian's view)."""
    return OperationSpec("generate", client.client_id, lambda: (client.generate(), {}), _with_view)


def backup_spec(client: Client, method: BackupMethod | None,
                client_stores_backup: bool) -> OperationSpec[dict[str, Any], ClientView]:
    """``backup`` for ``client`` with ``method`` (the device's default if None)."""
    def make() -> tuple[Session, dict[str, Any]]:
        session = client.backup(method, client_stores_backup=client_stores_backup)
        return session, {"method": session.method.name, "client_stores_backup": client_stores_backup}

    return OperationSpec("backup", client.client_id, make, _with_view)


def _from_backup_spec(client: Client, op: str, method: BackupMethod | None,
                      encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[Any, RecoverResult]:
    def make() -> tuple[Session, dict[str, Any]]:
        factory = client.recover if op == "recover" else client.eject
        session = factory(method, encrypted_backup=encrypted_backup)
        return session, {"method": session.method.name}

    return OperationSpec(op, client.client_id, make, _with_new_token)


def recover_spec(client: Client, method: BackupMethod | None,
                 encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[dict[str, str], RecoverResult]:
    """``recover``: (the wallet's addresses, the custodian's view with the client's new token)."""
    return _from_backup_spec(client, "recover", method, encrypted_backup)


def eject_spec(client: Client, method: BackupMethod | None,
               encrypted_backup: Mapping[str, tuple[bytes, bytes]] | None) -> OperationSpec[EjectedKeys, RecoverResult]:
    """``eject``: (the whole private keys, the custodian's view with the client's new token)."""
    return _from_backup_spec(client, "eject", method, encrypted_backup)


def sign_spec(client: Client, op: str, chain: str, data: bytes,
              path: str | None = None) -> OperationSpec[SignResult, SignResult]:
    """``sign`` or ``sign_presigned`` (same parameters), at the HD ``path`` if given."""
    def make() -> tuple[Session, dict[str, Any]]:
        factory = client.sign if op == "sign" else client.sign_presigned
        params: dict[str, Any] = {"chain": chain, "data": bytes(data).hex()}
        if path is not None:
            params["path"] = path
        return factory(chain, data, path=path), params

    return OperationSpec(op, client.client_id, make, _signed)


def derive_spec(client: Client, paths: Sequence[str]) -> OperationSpec[dict[str, dict[str, str]], ClientView]:
    """``derive`` of the accounts of ``paths`` (docs/hd.md): (account path -> {curve: extended
    public key}, the custodian's view with its accounts)."""
    return OperationSpec("derive", client.client_id, lambda: (client.derive(paths), {"paths": list(paths)}),
                         _with_view)


def presign_spec(client: Client, count: int) -> OperationSpec[dict[str, int], dict[str, int]]:
    """``presign`` of ``count`` precomputations for ``client``: the pool's size per curve, both sides."""
    return OperationSpec("presign", client.client_id, lambda: (client.presign(count), {"count": count}), _counts)

