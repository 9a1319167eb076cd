"""The EVM adapter takes what eth-account's ``Account.sign_transaction`` takes and answers with the
same result names and bytes (``mpc.chains.evm``, docs/chains.md).

``KeySigner`` (tests/mpc/chains/test_evm_encoding.py) signs with RFC 6979 nonces as eth-account
does, so for every transaction both accept the raw transaction, hash, r, s and v must be equal.
Inputs eth-account refuses are refused too (before anything is signed); the two deliberate
differences (an unprotected transaction, a priority fee above the fee cap) are pinned here.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("eth_account")
from eth_account import Account  # noqa: E402

from mpc.chains import evm  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402
from tests.mpc.chains.test_evm_encoding import KEY, SIGNER, WALLET  # noqa: E402

TO = "0x" + "35" * 20
LEGACY: dict[str, Any] = {"nonce": 3, "gasPrice": 10**9, "gas": 21000, "to": TO, "value": 5, "chainId": 1}
DYNAMIC: dict[str, Any] = {"type": 2, "nonce": 3, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9,
                           "gas": 21000, "to": TO, "value": 5, "chainId": 1}
ACCESS = [{"address": TO, "storageKeys": ["0x" + "00" * 31 + "01"]}]

ACCEPTED_BY_BOTH = {
    "legacy": LEGACY,
    "legacy, hex quantities": {**LEGACY, "value": "0x10", "nonce": "0x3", "gasPrice": "0X3b9aca00", "chainId": "0x1"},
    "legacy, contract creation (to empty)": {**LEGACY, "to": "", "data": "0x6000"},
    "legacy, contract creation (to None)": {**LEGACY, "to": None, "data": b"\x60\x00"},
    "legacy, to as bytes": {**LEGACY, "to": bytes.fromhex("35" * 20)},
    "legacy, from the wallet": {**LEGACY, "from": WALLET},
    "EIP-1559": DYNAMIC,
    "EIP-1559, type 0x2": {**DYNAMIC, "type": "0x2", "value": "0xde0b6b3a7640000"},
    "EIP-1559, type 0x02": {**DYNAMIC, "type": "0x02"},
    "EIP-1559, type inferred": {k: v for k, v in DYNAMIC.items() if k != "type"},
    "EIP-1559, access list": {**DYNAMIC, "accessList": ACCESS},
    "EIP-2930": {**LEGACY, "type": 1, "accessList": ACCESS},
    "EIP-2930, type 0x1, no list": {**LEGACY, "type": "0x1"},
    "EIP-2930, type inferred": {**LEGACY, "accessList": ACCESS},
}

REFUSED_BY_BOTH = {
    "decimal text": {**LEGACY, "value": "16"},
    "float": {**LEGACY, "gasPrice": 1.0},
    "bool": {**LEGACY, "gasPrice": True},
    "unknown field": {**LEGACY, "input": "0xab"},
    "blob type": {**DYNAMIC, "type": 3},
    "gasPrice in EIP-1559": {**DYNAMIC, "gasPrice": 1},
    "bad checksum": {**LEGACY, "to": "0x" + "Ab" * 20},
    "short address": {**LEGACY, "to": "0x" + "35" * 19},
}


@pytest.mark.parametrize("tx", ACCEPTED_BY_BOTH.values(), ids=ACCEPTED_BY_BOTH)
def test_what_eth_account_signs_is_signed_to_the_same_bytes(tx: dict[str, Any]) -> None:
    ours = evm.sign_transaction(SIGNER, tx)
    theirs = Account.sign_transaction(tx, KEY)
    assert ours.raw_transaction == bytes(theirs.raw_transaction) and ours.raw == ours.raw_transaction
    assert (ours.hash, ours.r, ours.s, ours.v) == (bytes(theirs.hash), theirs.r, theirs.s, theirs.v)
    assert Account.recover_transaction(ours.raw_transaction) == WALLET


def test_the_result_has_eth_account_names() -> None:
    theirs = Account.sign_transaction(LEGACY, KEY)
    ours = evm.sign_transaction(SIGNER, LEGACY)
    for name in ("raw_transaction", "hash", "r", "s", "v"):
        assert hasattr(theirs, name) and hasattr(ours, name), name
    message = evm.sign_personal_message(SIGNER, "hello")
    for name in ("message_hash", "r", "s", "v", "signature"):
        assert hasattr(message, name), name


@pytest.mark.parametrize("tx", REFUSED_BY_BOTH.values(), ids=REFUSED_BY_BOTH)
def test_what_eth_account_refuses_is_refused(tx: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - eth-account raises TypeError, ValueError, ...
        Account.sign_transaction(tx, KEY)
    with pytest.raises(InputInvalid):
        evm.sign_transaction(SIGNER, tx)


@pytest.mark.parametrize("tx", [
    {k: v for k, v in LEGACY.items() if k != "chainId"},           # unprotected: replayable on every chain
    {**DYNAMIC, "maxPriorityFeePerGas": DYNAMIC["maxFeePerGas"] + 1},  # can never be included
], ids=["unprotected", "priority fee above the cap"])
def test_the_two_deliberate_differences(tx: dict[str, Any]) -> None:
    Account.sign_transaction(tx, KEY)  # eth-account signs it
    with pytest.raises(InputInvalid):
        evm.sign_transaction(SIGNER, tx)
