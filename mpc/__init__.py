"""The wallet engine: custodian and client roles over the MPC protocols.

    custodian = mpc.Custodian(mpc.stores.open_store(path))  # secrets sealed at rest (mpc.sealing)
    client_id = custodian.create_client()
    client = mpc.Client(client_id, keychain)
    mpc.run_local(client.generate(), custodian.generate(client_id))
    mpc.run_local(client.sign("ethereum", digest32), custodian.sign(client_id, "ethereum", digest32))

Every operation is one client session and one custodian session; any transport can move their
messages (``mpc.run_local`` does it in memory).
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from mpc import errors, store
from mpc.client import Client
from mpc.custodian import Custodian
from mpc.keychain import FileKeychain, Keychain, MemoryKeychain
from mpc.status import BackupShareStatus, SigningShareStatus
from mpc.store import SQLiteStore
from mpc.wallet import CHAINS, SignResult
from protocols.errors import MPCError
from protocols.local import run
from protocols.rounds import Session

try:
    __version__: str = _metadata.version("portal-mpc")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "Custodian",
    "Client",
    "SQLiteStore",
    "Keychain",
    "MemoryKeychain",
    "FileKeychain",
    "SigningShareStatus",
    "BackupShareStatus",
    "SignResult",
    "CHAINS",
    "errors",
    "store",
    "run_local",
]


def run_local(client_session: Session, custodian_session: Session) -> tuple[Any, Any]:
    """Drive one operation's two sessions in memory; returns (client result, custodian result).

    Protocol-level failures surface as engine errors (``mpc.errors``) with stable codes.
    """
    try:
        client_result, custodian_result = run([client_session, custodian_session])
    except errors.EngineError:
        raise
    except MPCError as exc:
        raise errors.from_protocol_error(exc) from exc
    return client_result, custodian_result
