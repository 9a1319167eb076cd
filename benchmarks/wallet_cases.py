"""Wallet-level cases (``mpc``): generate, backup, recover and sign, with and without presignatures.

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
from benchmarks.ecdsa2p_cases import REF_ENC_DEC, custodian_setup
from benchmarks.paillier_cases import REF_KEYGEN
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from mpc.backup_crypto import MemoryCloudStorage
from protocols import bigint

__all__ = ["cases", "Wallet"]

DIGEST = hashlib.sha256(b"benchmark transaction").digest()
MESSAGE = b"benchmark transaction"


class Wallet:
    """One custodian and one client device, in memory."""

    def __init__(self) -> None:
        self.custodian = mpc.Custodian(setup=custodian_setup())
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

    def sign_presigned(self, chain: str, data: bytes) -> Any:
        if self.client.presignature_count()[mpc.wallet.curve_of_chain(chain)] == 0:
            self.presign(32)  # untimed refill would be better; amortised over 32 signatures
        return mpc.run_local(self.client.sign_presigned(chain, data),
                             self.custodian.sign_presigned(self.client_id, chain, data))


@lru_cache(maxsize=1)
def ready_wallet() -> Wallet:
    wallet = Wallet()
    wallet.generate()
    wallet.backup()
    return wallet


def _refilled(chain: str) -> Wallet:
    wallet = ready_wallet()
    curve = mpc.wallet.curve_of_chain(chain)
    if wallet.client.presignature_count()[curve] == 0:
        wallet.presign(32)
    return wallet


def cases(quick: bool) -> list[Case]:
    slow_runs = 3 if bigint.BACKEND == "python" else 8
    return [
        Case("wallet generate (2P-ECDSA keygen + FROST DKG)", lambda: Wallet().generate(), references=(REF_KEYGEN,),
             runs=slow_runs, warmup=1),
        Case("wallet backup", lambda: ready_wallet().backup(), references=(REF_KEYGEN,), runs=slow_runs, warmup=1),
        Case("wallet recover", lambda: ready_wallet().recover(), references=(REF_KEYGEN,), runs=slow_runs, warmup=1),
        Case("wallet sign ethereum", lambda: ready_wallet().sign("ethereum", DIGEST),
             references=(REF_ENC_DEC, "ecdsa2p sign end to end [gmpy2]"), runs=40),
        Case("wallet sign solana", lambda: ready_wallet().sign("solana", MESSAGE),
             references=(REF_NACL, "frost sign 2-of-2 end to end"), runs=100),
        Case("wallet presign x8", lambda: ready_wallet().presign(8), references=(REF_ENC_DEC,), runs=10, warmup=1),
        Case("wallet sign ethereum presigned",
             lambda w: mpc.run_local(w.client.sign_presigned("ethereum", DIGEST),
                                     w.custodian.sign_presigned(w.client_id, "ethereum", DIGEST)),
             setup=lambda: _refilled("ethereum"), references=(REF_ENC_DEC, "wallet sign ethereum"), runs=40),
        Case("wallet sign solana presigned",
             lambda w: mpc.run_local(w.client.sign_presigned("solana", MESSAGE),
                                     w.custodian.sign_presigned(w.client_id, "solana", MESSAGE)),
             setup=lambda: _refilled("solana"), references=(REF_NACL, "wallet sign solana"), runs=100),
    ]
