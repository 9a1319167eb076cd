"""The adapters' signer: results are checked against the wallet's key; chain libraries stay optional."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import mpc
from mpc.chains import Signer, remote_signer, sign_checked, sign_ecdsa, sign_ed25519
from mpc.chains._common import import_library
from mpc.errors import ChainLibraryMissing, InputInvalid, SignFailed
from mpc.wallet import SignResult
from protocols.ecdsa2p.signature import Q

ROOT = Path(__file__).resolve().parents[3]
DIGEST = hashlib.sha256(b"chains").digest()
CHAIN_LIBRARIES = ["eth_account", "embit", "tronpy", "solders", "stellar_sdk"]


@dataclasses.dataclass
class TamperingSigner:
    """Signs with the real wallet, then changes the result: ``change`` maps it to the fields to replace."""

    inner: Signer
    change: Callable[[SignResult], dict]

    def public_key(self, curve: str) -> bytes:
        return self.inner.public_key(curve)

    def sign(self, chain: str, data: bytes) -> SignResult:
        result = self.inner.sign(chain, data)
        return dataclasses.replace(result, **self.change(result))


@dataclasses.dataclass
class InMemoryService:
    """A stand-in for ``RemoteCustodian``: its ``sign`` runs the custodian's half in memory, for the
    one token it accepts (the service over real sockets: tests/mpc/test_server.py)."""

    custodian: mpc.Custodian
    token: str = dataclasses.field(repr=False)
    calls: int = 0

    def sign(self, client: mpc.Client, token: str, chain: str, data: bytes, *,
             path: str | None = None) -> tuple[SignResult, SignResult]:
        if token != self.token:
            raise mpc.errors.AuthFailed()
        self.calls += 1
        return mpc.run_local(client.sign(chain, data, path=path),
                             self.custodian.sign(client.client_id, chain, data, path=path))


def test_remote_signer_signs_through_the_service_with_the_token(wallet):
    local = wallet.signer
    service = InMemoryService(local.custodian, "the-token")
    signer = remote_signer(service, local.client, "the-token")
    assert isinstance(signer, Signer) and "the-token" not in repr(signer)
    assert signer.public_key("secp256k1") == local.public_key("secp256k1")
    assert sign_checked(signer, "ethereum", DIGEST).recid in (0, 1)
    assert len(sign_ed25519(signer, "solana", b"remote")) == 64 and service.calls == 2
    with pytest.raises(mpc.errors.AuthFailed):
        sign_checked(remote_signer(service, local.client, "an-old-token"), "ethereum", DIGEST)
    with pytest.raises(InputInvalid):
        remote_signer(service, local.client, "")


def test_local_signer_is_a_signer_and_its_results_pass(wallet):
    assert isinstance(wallet.signer, Signer)
    assert sign_checked(wallet.signer, "bitcoin", DIGEST).recid in (0, 1)
    assert len(sign_checked(wallet.signer, "stellar", b"any message").signature) == 64


@pytest.mark.parametrize(("chain", "change"), [
    ("ethereum", {"recid": None}),
    ("ethereum", {"chain": "tron"}),
    ("ethereum", {"public_key": b"\x02" + b"\x01" * 32}),
    ("ethereum", {"signature": b"\x00" * 64}),
    ("solana", {"signature": b"\x00" * 64}),
    ("solana", {"curve": "secp256k1"}),
])
def test_results_that_are_not_the_wallets_signature_are_refused(wallet, chain, change):
    data = DIGEST if chain == "ethereum" else b"message"
    with pytest.raises(SignFailed):
        sign_checked(TamperingSigner(wallet.signer, lambda _: change), chain, data)


def test_wrong_recid_and_high_s_are_refused(wallet):
    def flipped(result: SignResult) -> dict:
        return {"recid": 1 - result.recid}

    def high_s(result: SignResult) -> dict:  # (r, -s) verifies too, but is not low-s
        return {"s": Q - result.s, "signature": result.signature[:32] + (Q - result.s).to_bytes(32, "big")}

    for change in (flipped, high_s):
        with pytest.raises(SignFailed):
            sign_checked(TamperingSigner(wallet.signer, change), "ethereum", DIGEST)


def test_bad_requests_to_sign_checked(wallet):
    with pytest.raises(InputInvalid):
        sign_checked(object(), "ethereum", DIGEST)
    with pytest.raises(InputInvalid):
        sign_checked(wallet.signer, "ethereum", b"short")
    with pytest.raises(InputInvalid):
        sign_checked(wallet.signer, "dogecoin", DIGEST)
    with pytest.raises(InputInvalid):
        sign_ecdsa(wallet.signer, "solana", DIGEST)
    with pytest.raises(InputInvalid):
        sign_ed25519(wallet.signer, "ethereum", DIGEST)


def test_missing_library_is_a_typed_import_error():
    with pytest.raises(ChainLibraryMissing) as info:
        import_library("no_such_chain_library", distribution="no-such", extra="evm")
    assert isinstance(info.value, ImportError)
    assert info.value.to_json()["error"]["id"] == "CHAIN_LIBRARY_MISSING"
    assert "portal-mpc[evm]" in info.value.message


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_core_package_imports_no_chain_library():
    done = _python(f"import sys, mpc, mpc.chains; print([m for m in {CHAIN_LIBRARIES!r} if m in sys.modules])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "library"), [
    ("evm", "eth_account"), ("bitcoin", "embit"), ("tron", "tronpy"), ("solana", "solders"), ("stellar", "stellar_sdk"),
])
def test_adapter_without_its_library_raises_chain_library_missing(module, library):
    code = (f"import sys; sys.modules[{library!r}] = None\n"
            "from mpc.errors import ChainLibraryMissing\n"
            f"try:\n    import mpc.chains.{module}\nexcept ChainLibraryMissing as exc:\n    print(exc.code)")
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CHAIN_LIBRARY_MISSING"
