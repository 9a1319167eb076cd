"""Wallet-level cases (``mpc``): generate, backup, recover and sign, with and without the custodian's
ECDSA precomputation.

Each case is one whole operation through ``mpc.run_local`` with an in-memory custodian store and
keychain: both parties' protocol work plus the engine's (share decoding and validation from the
keychain and the store, status bookkeeping, backup encryption). The custodian setup is the
tests' pre-generated one. References: the same signing protocol without the engine
(``ecdsa2p sign end to end``, ``frost sign 2-of-2 end to end``) shows what the engine adds.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import mpc
import mpc.presign
from benchmarks.ecdsa2p_cases import REF_ENC_DEC, custodian_setup
from benchmarks.paillier_cases import REF_KEYGEN
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from mpc.backup.methods import MemoryCloudStorage
from mpc.storage.store import SQLiteStore
from protocols import bigint

__all__ = ["cases", "Wallet", "drained"]

DIGEST = hashlib.sha256(b"benchmark transaction").digest()
MESSAGE = b"benchmark transaction"


class Wallet:
    """One custodian and one client device, in memory."""

    def __init__(self, store: SQLiteStore | None = None) -> None:
        self.custodian = mpc.Custodian(store if store is not None else SQLiteStore(":memory:"), setup=custodian_setup())
        self.client_id = self.custodian.create_client()
        self.cloud = MemoryCloudStorage()
        self.client = self.device()

    def device(self) -> mpc.Client:
        return mpc.Client(self.client_id, mpc.MemoryKeychain(), cloud=self.cloud)

    def generate(self) -> Any:
        return mpc.run_local(self.client.generate(), self.custodian.generate(self.client_id))

    def backup(self) -> Any:
        return mpc.run_local(self.client.backup(), self.custodian.backup(self.client_id))

    def recover(self) -> Any:
        device = self.device()
        result = mpc.run_local(device.recover(), self.custodian.recover(self.client_id))
        self.client = device
        return result

    def sign(self, chain: str, data: bytes) -> Any:
        return mpc.run_local(self.client.sign(chain, data), self.custodian.sign(self.client_id, chain, data))

    def presign(self, count: int) -> Any:
        return mpc.run_local(self.client.presign(count), self.custodian.presign(self.client_id, count))



@lru_cache(maxsize=1)
def ready_wallet() -> Wallet:
    wallet = Wallet()
    wallet.generate()
    wallet.backup()
    return wallet


def _refilled() -> Wallet:
    """The ready wallet with at least one ECDSA precomputation in the custodian's pool (untimed)."""
    wallet = ready_wallet()
    if wallet.custodian.presignature_count(wallet.client_id)["secp256k1"] == 0:
        wallet.presign(32)
    return wallet


def drained(wallet: Wallet) -> Wallet:
    """``wallet`` with an empty ECDSA pool: signing draws every nonce online."""
    share = wallet.custodian._load_share(wallet.client_id, "signing", "", "secp256k1")
    while wallet.custodian.precomputations.take(wallet.client_id, share):
        pass
    return wallet


def _drained() -> Wallet:
    """The ready wallet with an empty pool."""
    return drained(ready_wallet())


def cases(quick: bool) -> list[Case]:
    slow_runs = 3 if bigint.BACKEND == "python" else 8
    return [
        Case("wallet generate (2P-ECDSA keygen + FROST DKG)", lambda: Wallet().generate(), references=(REF_KEYGEN,),
             runs=slow_runs, warmup=1),
        Case("wallet backup", lambda: ready_wallet().backup(), references=(REF_KEYGEN,), runs=slow_runs, warmup=1),
        Case("wallet recover", lambda: ready_wallet().recover(), references=(REF_KEYGEN,), runs=slow_runs, warmup=1),
        Case("wallet sign ethereum", lambda w: w.sign("ethereum", DIGEST), setup=_drained,
             references=(REF_ENC_DEC, "ecdsa2p sign end to end [gmpy2]"), runs=40),
        Case("wallet sign solana", lambda: ready_wallet().sign("solana", MESSAGE),
             references=(REF_NACL, "frost sign 2-of-2 one round trip"), runs=100),
        Case("wallet presign x8", lambda: ready_wallet().presign(8), references=(REF_ENC_DEC,), runs=10, warmup=1),
        Case("wallet sign ethereum precomputed", lambda w: w.sign("ethereum", DIGEST), setup=_refilled,
             references=(REF_ENC_DEC, "wallet sign ethereum"), runs=40),
    ]
