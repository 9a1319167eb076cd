"""HD derivation cases (docs/hd.md): ``derive`` of one new account, and signing at a path against
signing at the root in the same run (the path adds the child-key derivation on both sides and
the tweak of the shares; it should stay well under 10 % of a signature).

Each wallet case is one whole operation through ``mpc.run_local`` with an in-memory store and
keychain. The protocol case is the account VRF alone on one curve (both parties in memory).
"""

from __future__ import annotations

import itertools
import secrets
from functools import lru_cache
from typing import Any

import mpc
from benchmarks.ecdsa2p_cases import REF_ENC_DEC
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from benchmarks.wallet_cases import DIGEST, MESSAGE, Wallet, drained
from protocols.hd import AccountVRF, DerivationKeyShare, derivation_keygen
from protocols.local import run

__all__ = ["cases"]

ACCOUNT = "m/44'/60'/0'"
PATH = ACCOUNT + "/0/7"
_fresh = itertools.count()


@lru_cache(maxsize=1)
def hd_wallet() -> Wallet:
    """A generated wallet with one derived account (its own: other cases recover theirs)."""
    wallet = Wallet()
    wallet.generate()
    mpc.run_local(wallet.client.derive([ACCOUNT]), wallet.custodian.derive(wallet.client_id, [ACCOUNT]))
    return wallet


def derive_new_account() -> Any:
    wallet, path = hd_wallet(), f"m/44'/60'/{1000 + next(_fresh)}'"
    return mpc.run_local(wallet.client.derive([path]), wallet.custodian.derive(wallet.client_id, [path]))


def _drained() -> Wallet:
    """The HD wallet with an empty ECDSA pool: both signing cases draw every nonce online."""
    return drained(hd_wallet())


def sign(wallet: Wallet, chain: str, data: bytes, path: str | None) -> Any:
    return mpc.run_local(wallet.client.sign(chain, data, path=path),
                         wallet.custodian.sign(wallet.client_id, chain, data, path=path))


@lru_cache(maxsize=2)
def _keys(curve: str) -> tuple[DerivationKeyShare, DerivationKeyShare]:
    return derivation_keygen(curve)


def vrf_one_account(curve: str) -> Any:
    sid = secrets.token_bytes(32)
    return run([AccountVRF(sid, share, (1, 2), [ACCOUNT]) for share in _keys(curve)])


def cases(quick: bool) -> list[Case]:
    return [
        Case("hd wallet derive one new account (both curves)", derive_new_account, references=(REF_NACL,), runs=20),
        Case("hd vrf one account [secp256k1]", lambda: vrf_one_account("secp256k1"), references=(REF_NACL,), runs=40),
        Case("hd vrf one account [ed25519]", lambda: vrf_one_account("ed25519"), references=(REF_NACL,), runs=40),
        Case("hd wallet sign ethereum at the root", lambda w: sign(w, "ethereum", DIGEST, None),
             setup=_drained, references=(REF_ENC_DEC,), runs=30),
        Case("hd wallet sign ethereum at a path", lambda w: sign(w, "ethereum", DIGEST, PATH), setup=_drained,
             references=("hd wallet sign ethereum at the root",), runs=30),
        Case("hd wallet sign solana at the root", lambda: sign(hd_wallet(), "solana", MESSAGE, None),
             references=(REF_NACL,), runs=100),
        Case("hd wallet sign solana at a path", lambda: sign(hd_wallet(), "solana", MESSAGE, PATH),
             references=("hd wallet sign solana at the root",), runs=100),
    ]
