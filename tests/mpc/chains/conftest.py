"""Chain adapter fixtures: one wallet per test module, and a signer that records its calls."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.chains import LocalSigner, local_signer
from mpc.wallet import SignResult


@dataclass
class RecordingSigner:
    """Wraps the wallet's signer and records what it was asked to sign (to prove refusals sign nothing)."""

    inner: LocalSigner
    signed: list[tuple[str, bytes]] = field(default_factory=list)

    def public_key(self, curve: str) -> bytes:
        return self.inner.public_key(curve)

    def sign(self, chain: str, data: bytes) -> SignResult:
        self.signed.append((chain, data))
        return self.inner.sign(chain, data)


@dataclass
class ChainWallet:
    signer: LocalSigner
    addresses: dict[str, str]

    def recording(self) -> RecordingSigner:
        return RecordingSigner(self.signer)


@pytest.fixture(scope="module")
def wallet(custodian_setup) -> ChainWallet:
    """A generated wallet (two-party keygen on both curves), shared by one test module."""
    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    client = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
    mpc.run_local(client.generate(), custodian.generate(client_id))
    return ChainWallet(local_signer(client, custodian, client_id), client.addresses())
