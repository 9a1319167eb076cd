"""Wallet fixtures: an in-memory custodian and a client device with an in-memory keychain."""

from __future__ import annotations

import hashlib
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_string
from nacl.signing import VerifyKey

import mpc
from mpc.backup.methods import MemoryCloudStorage


@dataclass
class Wallet:
    custodian: mpc.Custodian
    client_id: str
    client: mpc.Client
    cloud: MemoryCloudStorage

    def device(self) -> mpc.Client:
        """A fresh device of the same client (empty keychain, same cloud storage)."""
        return mpc.Client(self.client_id, mpc.MemoryKeychain(), cloud=self.cloud)

    def generate(self):
        return mpc.run_local(self.client.generate(), self.custodian.generate(self.client_id))

    def sign(self, chain: str, data: bytes, client: mpc.Client | None = None):
        client = client or self.client
        return mpc.run_local(client.sign(chain, data), self.custodian.sign(self.client_id, chain, data))

    def backup(self, client: mpc.Client | None = None, **kwargs):
        client = client or self.client
        return mpc.run_local(client.backup(**kwargs), self.custodian.backup(self.client_id))

    def recover(self, client: mpc.Client):
        return mpc.run_local(client.recover(), self.custodian.recover(self.client_id))

    def status(self) -> tuple[str, str]:
        view = self.custodian.get_client(self.client_id)
        return view["signing_share_status"], view["backup_share_status"]


def new_wallet(custodian: mpc.Custodian | None = None) -> Wallet:
    custodian = custodian or mpc.Custodian()
    client_id = custodian.create_client()
    cloud = MemoryCloudStorage()
    return Wallet(custodian, client_id, mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud), cloud)


@pytest.fixture
def wallet() -> Wallet:
    return new_wallet()


@pytest.fixture
def generated(wallet: Wallet) -> Wallet:
    wallet.generate()
    return wallet


def data_for(chain: str, text: bytes = b"pay 1 unit") -> bytes:
    """A 32-byte digest for secp256k1 chains, the raw message for ed25519 chains."""
    return hashlib.sha256(text).digest() if chain in ("ethereum", "bitcoin", "tron") else text


def verify_result(result: mpc.SignResult, data: bytes) -> None:
    """Check with ordinary single-key verifiers: python-ecdsa (low-s too) and PyNaCl."""
    if result.curve == "secp256k1":
        key = VerifyingKey.from_string(result.public_key, curve=SECP256k1)
        assert key.verify_digest(result.signature, data, sigdecode=sigdecode_string)
        assert result.s <= SECP256k1.order // 2
    else:
        VerifyKey(result.public_key).verify(data, result.signature)


# --- PostgreSQL (tests/mpc/test_stores.py, test_server.py) --------------------------------------
POSTGRES_ENV = "PORTAL_MPC_TEST_POSTGRES"
DEFAULT_POSTGRES_URL = "postgresql://portal:portal@127.0.0.1:5432/portal_mpc"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server ($PORTAL_MPC_TEST_POSTGRES, else a local default); skips,
    saying why, only when no server is reachable there."""
    import os

    url = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg 3 (pip install 'psycopg[binary]')")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        pytest.skip(f"no PostgreSQL server reachable at ${POSTGRES_ENV} / default URL: {type(exc).__name__}")
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str):
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    import secrets

    import psycopg

    schema = "t_" + secrets.token_hex(6)
    yield f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_store(postgres_schema_url: str):
    from mpc.storage.backends import open_store

    store = open_store(postgres_schema_url)
    yield store
    store.close()


# --- device authorisation over a raw WebSocket (docs/operations.md, Device keys) ---------------------
def send_authorised(ws, request: dict, key) -> str:
    """Send ``request`` on a raw connection and answer the service's challenge with device key
    ``key`` (``mpc.storage.device_key.DeviceKey``); returns the service's next frame."""
    import json

    from mpc.wire import device_auth_message

    ws.send(json.dumps(request))
    frame = ws.recv(timeout=60)
    challenge = json.loads(frame).get("challenge")
    if challenge is None:
        return frame
    ws.send(json.dumps({"device_sig": key.sign(device_auth_message(bytes.fromhex(challenge), request)).hex()}))
    return ws.recv(timeout=60)


@contextlib.contextmanager
def service_with_wallet(operator_key: str) -> Iterator[tuple[Any, Any, str, str, mpc.Client]]:
    """An in-memory ``python -m mpc serve`` (``ServiceThread``) and a ``RemoteCustodian`` with one
    client whose device generated its wallet: (running, remote, client_id, token, device)."""
    pytest.importorskip("websockets")
    from mpc.remote.blocking import RemoteCustodian
    from mpc.service.server import ServiceThread

    # A parked session lives 120 s: a recover's device step (a fresh Paillier key) on a loaded
    # machine must not outlast it.
    with ServiceThread(":memory:", session_ttl=120, operator_key=operator_key) as running:
        remote = RemoteCustodian(running.url, timeout=60, operator_key=operator_key)
        client_id, token = remote.create_client()
        owner = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
        remote.generate(owner, token)
        yield running, remote, client_id, token, owner


@contextlib.contextmanager
def service_logging(**settings: Any) -> Iterator[None]:
    """``mpc.service.logs.configure_logging(**settings)`` for the body, then the process's logging
    as it was: root and audit loggers, the websockets loggers' levels and filters, the refusal tally."""
    import logging

    from mpc.service import logs

    root, audit_logger = logging.getLogger(), logging.getLogger(logs.AUDIT_LOGGER)
    saved = (list(root.handlers), root.level, audit_logger.level, audit_logger.propagate, logs._REFUSALS)
    libraries = [(logging.getLogger(name), logging.getLogger(name).level) for name in logs.LIBRARY_LOGGERS]
    try:
        logs.configure_logging(**settings)
        yield
    finally:
        for logger, handler in list(logs._HANDLERS):
            logger.removeHandler(handler)
            handler.close()
        logs._HANDLERS.clear()
        for logger, installed in list(logs._FILTERS):
            logger.removeFilter(installed)
        logs._FILTERS.clear()
        for logger, level in libraries:
            logger.setLevel(level)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        audit_logger.setLevel(saved[2])
        audit_logger.propagate = saved[3]
        logs._REFUSALS = saved[4]
        logs._SETTINGS = logs._CONFIGURED_PID = None
