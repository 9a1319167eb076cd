"""``python -m mpc demo --server``: the wallet lifecycle over real sockets on loopback.

Starts the custodian service (``mpc.service.server``) in this process on 127.0.0.1 with a free port and
a SQLite file sealed with a key file in the same folder (``mpc.storage.sealing``; named to the worker
processes by ``$PORTAL_MPC_STORE_KEY_FILE``), then plays the device through ``mpc.remote.blocking.RemoteCustodian``: create a client
(its token), generate, addresses, sign on every chain (checked by standard verifiers), back up,
wipe the device, recover on a new one (which replaces the client's token), sign again. The
service requires an operator key (a fresh one per run) to create clients; plain ws:// is
allowed because it listens on loopback only.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import mpc
from mpc.backup.methods import LocalFolderCloudStorage
from mpc.remote.blocking import RemoteCustodian
from mpc.service.server import ServiceThread
from mpc.wallet import CHAINS, curve_of_chain

__all__ = ["demo_server"]


def demo_server(directory: Path, say: Callable[[str, str], None], verify: Callable[[mpc.SignResult, bytes], str],
                progress: Callable[[str], None] = lambda text: None) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    db = str(directory / "custodian.sqlite3")
    print(f"portal-mpc demo over WebSockets (state in {directory})")
    _use_demo_key(directory / "store.key", say)
    start = time.perf_counter()
    operator_key = secrets.token_urlsafe(32)  # this run's operator: only it may create clients
    progress("starting the custodian service (the first run makes its setup: two safe primes, seconds)")
    with ServiceThread(db, host="127.0.0.1", port=0, operator_key=operator_key) as server:
        say("custodian service", f"{server.url} ({server.service.executor_kind} pool, "  # type: ignore[union-attr]
            f"started in {time.perf_counter() - start:.1f} s)")
        remote = RemoteCustodian(server.url, operator_key=operator_key)
        client_id, token = remote.create_client()
        say("create client", f"{client_id} (token issued; the service keeps only its hash)")
        cloud = LocalFolderCloudStorage(directory / "cloud")
        device = mpc.Client(client_id, mpc.FileKeychain(directory / "device-1"), cloud=cloud)
        start = time.perf_counter()
        progress("generating the wallet over the service (the device's one-time setup first: seconds)")
        remote.generate(device, token)
        say("generate (secp256k1 + ed25519)", f"{_statuses(remote, device, token)} "
            f"({time.perf_counter() - start:.1f} s)")
        before = device.addresses()
        for chain, address in before.items():
            say(f"  {chain} address", address)
        _sign_everywhere(remote, device, token, say, verify)
        remote.backup(device, token)
        say("backup (CLOUD)", _statuses(remote, device, token))
        device.wipe()
        say("device wiped", f"has wallet: {device.has_wallet()}")
        new_device = mpc.Client(client_id, mpc.FileKeychain(directory / "device-2"), cloud=cloud)
        token = remote.recover(new_device, token)[1]["token"]  # recover replaced the token
        say("recover on a new device", f"{_statuses(remote, new_device, token)} (new token issued; the wallet "
            "moved to this device's key)")
        same = new_device.addresses() == before == remote.get_client(client_id, token, device=new_device)["addresses"]
        say("addresses unchanged", str(same))
        _sign_everywhere(remote, new_device, token, say, verify)
    print("done")
    return 0 if same else 1


def _use_demo_key(path: Path, say: Callable[[str, str], None]) -> None:
    """Seal the demo's store with the key in ``path`` (made if missing), through the environment
    so the service's worker processes read it too."""
    from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, OLD_KEY_FILES_ENV, key_file

    key = key_file(path)
    for name in (KEY_ENV, OLD_KEY_FILES_ENV):  # this demo's key only
        os.environ.pop(name, None)
    os.environ[KEY_FILE_ENV] = str(path)
    say("custodian store sealed", f"key {key.key_id} in {path} (beside the database: a demo only; a "
        "deployment keeps it away from the database and its backups)")


def _statuses(remote: RemoteCustodian, device: mpc.Client, token: str) -> str:
    view = remote.get_client(device.client_id, token, device=device)
    return f"signing={view['signing_share_status']} backup={view['backup_share_status']}"


def _sign_everywhere(remote: RemoteCustodian, device: mpc.Client, token: str,
                     say: Callable[[str, str], None], verify: Callable[[mpc.SignResult, bytes], str]) -> None:
    for chain in CHAINS:
        payload = f"demo payment on {chain} at {time.time():.0f}".encode()
        data = hashlib.sha256(payload).digest() if curve_of_chain(chain) == "secp256k1" else payload
        start = time.perf_counter()
        result, _ = remote.sign(device, token, chain, data)
        elapsed = (time.perf_counter() - start) * 1000
        say(f"sign on {chain}", f"{result.signature.hex()[:24]}… {verify(result, data)} ({elapsed:.0f} ms)")
