"""Costs of this release's security: the custodian's secrets sealed at rest, and the custodian's
VOPRF evaluation in a password backup.

- ``wallet sign ethereum, sealed file store`` against the same sign on an unsealed SQLite file:
  what AES-256-GCM envelope sealing (``mpc.storage.sealing``) adds to the custodian's reads and writes.
- ``password key, hardened`` (Argon2id, blinding, the custodian's VOPRF evaluation with its
  DLEQ proof, verification and unblinding: ``PasswordMethod`` version 2) against Argon2id alone
  (version 1), both at libsodium's MODERATE limits.
"""

from __future__ import annotations

import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

import nacl.pwhash.argon2id as argon2id

from benchmarks.timing import Case
from benchmarks.wallet_cases import DIGEST, Wallet
from mpc.backup.methods import PasswordMethod
from mpc.storage.sealing import LocalKeyProvider, Sealer
from mpc.storage.store import SQLiteStore
from protocols import oprf

__all__ = ["cases"]

_FOLDER = tempfile.TemporaryDirectory(prefix="portal-mpc-bench-")
PASSPHRASE = "violet tractor moss lantern"
SALT = bytes(argon2id.SALTBYTES)


@lru_cache(maxsize=2)
def _wallet(sealed: bool) -> Wallet:
    path = str(Path(_FOLDER.name) / f"custodian-{'sealed' if sealed else 'plain'}.sqlite3")
    sealer = Sealer(LocalKeyProvider(secrets.token_bytes(32))) if sealed else None
    wallet = Wallet(SQLiteStore(path, sealer=sealer))
    wallet.generate()
    return wallet


@lru_cache(maxsize=1)
def _server_key() -> oprf.ServerKey:
    return oprf.generate_key_pair()[0]


def _hardened_key() -> None:
    method = PasswordMethod(PASSPHRASE)
    element = method.hardening_request()
    if element is None:
        raise RuntimeError("a new PASSWORD backup always asks for the custodian's evaluation")
    evaluated, proof = oprf.voprf_blind_evaluate(_server_key(), element)
    method.finish_hardening(evaluated, proof, _server_key().public_key())


def _argon2_alone() -> None:
    argon2id.kdf(32, PASSPHRASE.encode(), SALT, opslimit=argon2id.OPSLIMIT_MODERATE,
                 memlimit=argon2id.MEMLIMIT_MODERATE)


def cases(quick: bool) -> list[Case]:
    runs = 10 if quick else 30
    return [
        Case("wallet sign ethereum, plaintext file store", lambda: _wallet(False).sign("ethereum", DIGEST), runs=runs),
        Case("wallet sign ethereum, sealed file store", lambda: _wallet(True).sign("ethereum", DIGEST),
             references=("wallet sign ethereum, plaintext file store",), runs=runs),
        Case("password key, Argon2id alone", _argon2_alone, runs=5, warmup=1),
        Case("password key, hardened (Argon2id + VOPRF round trip)", _hardened_key,
             references=("password key, Argon2id alone",), runs=5, warmup=1),
    ]
