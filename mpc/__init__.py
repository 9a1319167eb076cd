"""The wallet engine: custodian and client roles over the MPC protocols.

    custodian = mpc.Custodian(mpc.storage.backends.open_store(path))  # secrets sealed at rest (mpc.storage.sealing)
    client_id = custodian.create_client()
    client = mpc.Client(client_id, keychain)
    mpc.run_local(client.generate(), custodian.generate(client_id))
    mpc.run_local(client.sign("ethereum", digest32), custodian.sign(client_id, "ethereum", digest32))

Every operation is one client session and one custodian session; any transport can move their
messages (``mpc.run_local`` does it in memory). Everything a user needs is exported here (the
error classes from ``mpc.errors``); ``RemoteCustodian``, ``AsyncRemoteCustodian`` and
``RetryPolicy`` are imported on first use, since they need the ``server`` extra (websockets).
"""

from __future__ import annotations

import importlib
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from mpc import errors
from mpc.backup.methods import (
    BackupMethod,
    CloudMethod,
    CloudStorage,
    LocalFolderCloudStorage,
    MemoryCloudStorage,
    MemoryPasskeyWrapper,
    PasskeyMethod,
    PasskeyWrapper,
    PasswordMethod,
)
from mpc.client import Client, EjectedKeys
from mpc.custodian import Custodian
from mpc.storage.keychain import FileKeychain, Keychain, MemoryKeychain
from mpc.status import BackupShareStatus, SigningShareStatus
from mpc.storage.store import SQLiteStore
from mpc.storage.backends import open_store
from mpc.wallet import CHAINS, SignResult
from mpc.backup.webhook import BackupWebhook, CallbackWebhook, MemoryWebhook
from protocols.errors import MPCError
from protocols.local import run
from protocols.rounds import Message, Session

if TYPE_CHECKING:
    from mpc.remote.blocking import RemoteCustodian, RetryPolicy
    from mpc.remote.aio import AsyncRemoteCustodian

try:
    __version__: str = _metadata.version("portal-mpc")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    # the two roles and where they keep their state
    "Custodian",
    "Client",
    "SQLiteStore",
    "open_store",
    "Keychain",
    "MemoryKeychain",
    "FileKeychain",
    # backup methods and where their keys live (docs/backup.md); self-managed backups
    "BackupMethod",
    "PasswordMethod",
    "CloudMethod",
    "PasskeyMethod",
    "CloudStorage",
    "MemoryCloudStorage",
    "LocalFolderCloudStorage",
    "PasskeyWrapper",
    "MemoryPasskeyWrapper",
    "BackupWebhook",
    "CallbackWebhook",
    "MemoryWebhook",
    # results and statuses
    "SigningShareStatus",
    "BackupShareStatus",
    "SignResult",
    "EjectedKeys",
    "CHAINS",
    # the networked custodian, device side (imported on first use: the server extra)
    "RemoteCustodian",
    "AsyncRemoteCustodian",
    "RetryPolicy",
    # running an operation
    "Operation",
    "run_local",
    "errors",
]

_LAZY = {"RemoteCustodian": "mpc.remote.blocking", "RetryPolicy": "mpc.remote.blocking", "AsyncRemoteCustodian": "mpc.remote.aio"}


def __getattr__(name: str) -> Any:
    """The exports that need the ``server`` extra, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpc' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"mpc.{name} needs the server extra: pip install 'portal-mpc[server]' ({exc})") from exc
    globals()[name] = value
    return value


R_co = TypeVar("R_co", covariant=True)
A = TypeVar("A")
B = TypeVar("B")


class Operation(Protocol[R_co]):
    """A session whose ``result()`` is an ``R_co``: every ``Session`` (``result()`` is ``Any``), and
    the operations of ``Client`` and ``Custodian`` that declare their result type
    (``client.sign(...)``: a ``SignResult``)."""

    @property
    def done(self) -> bool:
        """Whether the operation has finished (``Session.done``)."""

    def start(self) -> list[Message]:
        """The party's first messages (``Session.start``)."""

    def receive(self, msg: Message) -> list[Message]:
        """Consume one message; returns what is now ready to send (``Session.receive``)."""

    def result(self) -> R_co:
        """The operation's result once it is done (``Session.result``)."""


def run_local(client_session: Operation[A], custodian_session: Operation[B]) -> tuple[A, B]:
    """Drive one operation's two sessions in memory; returns (client result, custodian result),
    typed by the sessions' ``result()`` (``run_local(client.sign(...), custodian.sign(...))`` is
    a ``tuple[SignResult, SignResult]``).

    Protocol-level failures surface as engine errors (``mpc.errors``) with stable codes.
    """
    if not isinstance(client_session, Session) or not isinstance(custodian_session, Session):
        raise errors.InputInvalid("run_local takes the two sessions of one operation (client first, then custodian)")
    try:
        client_result, custodian_result = run([client_session, custodian_session])
    except errors.EngineError:
        raise
    except MPCError as exc:
        raise errors.from_protocol_error(exc) from exc
    return cast(A, client_result), cast(B, custodian_result)
