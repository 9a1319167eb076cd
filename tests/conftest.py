"""Shared test set-up: the pre-generated custodian and client setups (never used by library code)."""

from __future__ import annotations

import os

import pytest

from protocols import ecdsa2p
from protocols.ecdsa2p.setup import ClientSetup, CustodianSetup, set_default_client_setup, setup_from_ring_pedersen
from tests.fixtures import ring_pedersen_sets


@pytest.fixture(scope="session", autouse=True)
def custodian_setup() -> CustodianSetup:
    """Test ring-Pedersen parameters with their Π_prm proof, installed as the default setup."""
    setup = setup_from_ring_pedersen(*ring_pedersen_sets()[0])
    ecdsa2p.set_default_setup(setup)
    return setup


@pytest.fixture(scope="session", autouse=True)
def client_setup() -> ClientSetup:
    """The device's ring-Pedersen setup (test parameters), installed as the process default."""
    setup = setup_from_ring_pedersen(*ring_pedersen_sets()[1])
    set_default_client_setup(setup)
    return setup


@pytest.fixture(scope="session", autouse=True)
def portal_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """File-based defaults (the custodian's SQLite file, keychains) live in a temporary folder."""
    home = str(tmp_path_factory.mktemp("portal-mpc-home"))
    os.environ["PORTAL_MPC_HOME"] = home
    return home


@pytest.fixture(scope="session", autouse=True)
def store_key() -> str:
    """Every store the tests open is sealed (``mpc.storage.sealing``) with one random key for the session,
    through the environment, which the server tests' worker processes inherit too."""
    import base64
    import secrets

    from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, OLD_KEY_FILES_ENV, PLAINTEXT_ENV

    for name in (KEY_FILE_ENV, OLD_KEY_FILES_ENV, PLAINTEXT_ENV):
        os.environ.pop(name, None)
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    os.environ[KEY_ENV] = key
    return key


@pytest.fixture
def cheap_argon2id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test-only escape hatch, opted into by name: new PASSWORD backups may use libsodium's
    cheapest Argon2id limits (1 pass, 8 KiB) so wallet tests run fast. The library's floor
    (``mpc.backup.methods.MIN_BACKUP_OPSLIMIT``/``MIN_BACKUP_MEMLIMIT``, libsodium's MODERATE)
    holds everywhere else (docs/backup.md)."""
    import nacl.pwhash.argon2id as argon2id

    from mpc.backup import methods as backup_crypto

    monkeypatch.setattr(backup_crypto, "MIN_BACKUP_OPSLIMIT", argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(backup_crypto, "MIN_BACKUP_MEMLIMIT", argon2id.MEMLIMIT_MIN)


def _own_root_handlers() -> list[object]:
    """The root logger's handlers other than pytest's own (which it swaps per test phase)."""
    import logging

    return [h for h in logging.getLogger().handlers if not type(h).__module__.startswith("_pytest")]


@pytest.fixture(autouse=True)
def logging_left_as_found() -> object:
    """A test leaves the root logger as it found it. A handler left behind writes every later
    record of every thread (a server's, websockets') into a stream a finished test closed
    (``capsys``): the "Logging error" noise a leaked ``serve`` configuration once made."""
    import logging

    root = logging.getLogger()
    before = (_own_root_handlers(), root.level)
    yield None
    after = (_own_root_handlers(), root.level)
    assert after == before, f"the test left the root logger changed: {before} -> {after}"
