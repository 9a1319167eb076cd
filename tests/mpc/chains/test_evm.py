"""EVM adapter: messages and transactions signed by the two-party wallet, checked by eth-account."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

eth_account = pytest.importorskip("eth_account")
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct, encode_typed_data  # noqa: E402
from eth_utils import keccak, to_checksum_address  # noqa: E402

from mpc.chains import evm  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402

FEW = settings(max_examples=6, deadline=None)
addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
uint = st.integers(min_value=0, max_value=2**256 - 1)


def _mail(amount: int, recipient: str, nonce: int, memo: str) -> dict:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Payment": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"},
                        {"name": "nonce", "type": "uint256"}, {"name": "memo", "type": "string"}],
        },
        "primaryType": "Payment",
        "domain": {"name": "portal", "chainId": 1, "verifyingContract": "0x" + "cc" * 20},
        "message": {"to": recipient, "amount": amount, "nonce": nonce, "memo": memo},
    }


@FEW
@given(message=st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_personal_message_recovers_to_the_wallet(wallet, message):
    signed = evm.sign_personal_message(wallet.signer, message)
    signable = encode_defunct(text=message) if isinstance(message, str) else encode_defunct(primitive=message)
    assert Account.recover_message(signable, signature=signed.signature) == wallet.addresses["ethereum"]
    assert signed.v in (27, 28) and len(signed.signature) == 65


@FEW
@given(amount=uint, recipient=addresses, nonce=st.integers(0, 2**64), memo=st.text(max_size=40))
def test_typed_data_recovers_to_the_wallet(wallet, amount, recipient, nonce, memo):
    full = _mail(amount, recipient, nonce, memo)
    signed = evm.sign_typed_data(wallet.signer, full)
    recovered = Account.recover_message(encode_typed_data(full_message=full), signature=signed.signature)
    assert recovered == wallet.addresses["ethereum"]


@FEW
@given(nonce=st.integers(0, 2**64 - 1), value=uint, to=addresses, data=st.binary(max_size=64),
       chain_id=st.integers(1, 2**32), gas_price=st.integers(0, 10**12))
def test_legacy_eip155_transaction_recovers_to_the_wallet(wallet, nonce, value, to, data, chain_id, gas_price):
    tx = {"nonce": nonce, "gasPrice": gas_price, "gas": 21000 + 16 * len(data), "to": to, "value": value,
          "data": data, "chainId": chain_id}
    signed = evm.sign_transaction(wallet.signer, tx)
    assert Account.recover_transaction(signed.raw_transaction) == wallet.addresses["ethereum"]
    assert signed.v in (chain_id * 2 + 35, chain_id * 2 + 36)
    assert signed.hash == keccak(signed.raw)


@FEW
@given(nonce=st.integers(0, 2**64 - 1), value=uint, to=addresses, data=st.binary(max_size=64),
       chain_id=st.integers(1, 2**32), fees=st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)))
def test_eip1559_transaction_recovers_to_the_wallet(wallet, nonce, value, to, data, chain_id, fees):
    tx = {"type": 2, "nonce": nonce, "maxFeePerGas": max(fees), "maxPriorityFeePerGas": min(fees), "gas": 60000,
          "to": to, "value": value, "data": "0x" + data.hex(), "chainId": chain_id,
          "accessList": [{"address": to, "storageKeys": ["0x" + "00" * 31 + "01"]}]}
    signed = evm.sign_transaction(wallet.signer, tx)
    assert signed.raw[0] == 2 and signed.v in (0, 1)
    assert Account.recover_transaction(signed.raw_transaction) == wallet.addresses["ethereum"]
    assert signed.hash == keccak(signed.raw)


def test_contract_creation_and_from_field(wallet):
    tx = {"type": 2, "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "gas": 100000, "chainId": 5,
          "data": b"\x60\x00", "from": wallet.addresses["ethereum"].lower()}
    signed = evm.sign_transaction(wallet.signer, tx)
    assert Account.recover_transaction(signed.raw_transaction) == wallet.addresses["ethereum"]


LEGACY = {"nonce": 1, "gasPrice": 10, "gas": 21000, "to": "0x" + "ab" * 20, "value": 1, "chainId": 1}
DYNAMIC = {"type": 2, "nonce": 1, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1, "gas": 21000,
           "to": "0x" + "ab" * 20, "value": 1, "chainId": 1}


@pytest.mark.parametrize(("base", "change"), [
    (LEGACY, {"chainId": "1"}),                       # wrong chain id type
    (LEGACY, {"chainId": True}),
    (LEGACY, {"chainId": 0}),
    (LEGACY, {"chainId": None}),                      # unprotected (pre-EIP-155) transaction
    (LEGACY, {"value": -1}),                          # negative amount
    (LEGACY, {"value": 1.0}),                         # non-integer amount
    (LEGACY, {"value": 2**256}),
    (LEGACY, {"nonce": 2**64}),
    (LEGACY, {"to": "0x" + "ab" * 19}),               # wrong address format
    (LEGACY, {"to": "0xAbababababababababababababababababababab"}),  # bad EIP-55 checksum
    (LEGACY, {"from": "0x" + "cd" * 20}),             # another account
    (LEGACY, {"data": "abcd"}),                       # data without 0x
    (LEGACY, {"maxFeePerGas": 1}),                    # field of another type
    (LEGACY, {"type": 3}),                            # unsupported type (EIP-4844 blobs)
    (LEGACY, {"type": "2"}),                          # decimal text: eth-account refuses it too
    (LEGACY, {"value": "16"}),
    (LEGACY, {"type": "0x2"}),                        # EIP-1559 without its fee caps
    (DYNAMIC, {"maxPriorityFeePerGas": 11}),          # can never be included
    (DYNAMIC, {"accessList": [{"address": "nope"}]}),
    (DYNAMIC, {"gasPrice": 1}),
])
def test_malformed_transactions_are_refused_before_signing(wallet, base, change):
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        evm.sign_transaction(recording, {**base, **change})
    assert recording.signed == []


@pytest.mark.parametrize("missing", ["nonce", "gas", "chainId", "gasPrice"])
def test_missing_fields_are_refused(wallet, missing):
    recording = wallet.recording()
    with pytest.raises(InputInvalid, match=missing):
        evm.sign_transaction(recording, {k: v for k, v in LEGACY.items() if k != missing})
    assert recording.signed == []


@pytest.mark.parametrize("request_", [None, 5, {"types": {}}, {**_mail(1, "0x" + "ab" * 20, 0, ""), "message": {"to": 1}}])
def test_malformed_typed_data_and_messages_are_refused(wallet, request_):
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        evm.sign_typed_data(recording, request_)
    with pytest.raises(InputInvalid):
        evm.sign_personal_message(recording, 5)
    assert recording.signed == []
