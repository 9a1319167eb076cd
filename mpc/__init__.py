"""The wallet engine: custodian and client roles over the MPC protocols.

    custodian = mpc.Custodian(mpc.storage.backends.open_store(path))  # secrets sealed at rest (mpc.storage.sealing)
    client_id = custodian.create_client()
    client = mpc.Client(client_id, keychain)
    mpc.run_local(client.generate(), custodian.generate(client_id))
    mpc.run_local(client.sign("ethereum", digest32), custodian.sign(client_id, "ethereum", digest32))

Every operation is one client session and one custodian session; any transport can move their
messages (``mpc.run_local`` does it in memory). Everything a user needs is exported here:
``mpc.EngineError`` is the one error base (every error the engine raises, each with a stable
``code``; the classes are in ``mpc.errors``, docs/errors.md); ``RemoteCustodian``, ``AsyncRemoteCustodian`` and
``RetryPolicy`` are imported on first use, since they need the ``server`` extra (websockets).
"""

from __future__ import annotations

import importlib as _importlib
import types as _types
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

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
from mpc.wallet import CHAINS, ClientView, RecoverResult, SignResult
from mpc.backup.webhook import BackupWebhook, CallbackWebhook, MemoryWebhook
from mpc.errors import EngineError
from mpc.operation import Operation, run_local

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
    "ClientView",
    "RecoverResult",
    "CHAINS",
    # the networked custodian, device side (imported on first use: the server extra)
    "RemoteCustodian",
    "AsyncRemoteCustodian",
    "RetryPolicy",
    # running an operation
    "Operation",
    "run_local",
    # errors: every error the engine raises is an EngineError with a stable .code (docs/errors.md)
    "EngineError",
    "errors",
]

_LAZY = {"RemoteCustodian": "mpc.remote.blocking", "RetryPolicy": "mpc.remote.blocking", "AsyncRemoteCustodian": "mpc.remote.aio"}


def __getattr__(name: str) -> object:
    """The exports that need the ``server`` extra, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpc' has no attribute {name!r}")
    try:
        value = getattr(_importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"mpc.{name} needs the server extra: pip install 'portal-mpc[server]' ({exc})") from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (``__all__``) and the subpackages already imported: no helpers."""
    modules = [name for name, value in globals().items() if isinstance(value, _types.ModuleType) and not name.startswith("_")]
    return sorted({*__all__, *modules})
