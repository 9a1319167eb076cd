"""EVM adapter encodings pinned byte for byte, with a single-key signer standing in for the wallet.

``mpc.chains.evm`` builds hashes and raw transactions from public parts (``rlp.encode``,
``TypedTransaction``, the fields of eth-account's ``SignableMessage``). These tests fix what those
parts produce, so a library upgrade that changes any of them fails here:

- the legacy path against the worked example published in EIP-155 (signing data, signing hash
  and the signed transaction, with the EIP's private key 0x4646…46);
- the EIP-1559, EIP-191 and EIP-712 paths against eth-account's own private-key signing, and the
  EIP-1559 hash against one computed here from the EIP's definition.

``KeySigner`` signs with RFC 6979 deterministic nonces (eth-keys, as eth-account does), so the
adapter and eth-account sign the same hash into the same (r, s) and the raw bytes must match.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytest.importorskip("eth_account")
import rlp  # type: ignore[import-untyped]  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import defunct_hash_message, encode_defunct, encode_typed_data  # noqa: E402
from eth_keys import keys  # noqa: E402
from eth_utils import keccak, to_checksum_address  # noqa: E402

from curves import secp256k1  # noqa: E402
from mpc.chains import evm  # noqa: E402
from mpc.wallet import SignResult  # noqa: E402

Q = secp256k1.order


@dataclass(frozen=True)
class KeySigner:
    """A ``Signer`` holding one private key: deterministic (RFC 6979) low-s signatures."""

    secret: bytes

    def public_key(self, curve: str) -> bytes:
        assert curve == "secp256k1"
        return keys.PrivateKey(self.secret).public_key.to_compressed_bytes()

    def sign(self, chain: str, data: bytes) -> SignResult:
        signature = keys.PrivateKey(self.secret).sign_msg_hash(data)
        r, s, recid = signature.r, signature.s, signature.v
        assert s <= Q // 2  # eth-keys returns low-s, as Ethereum requires
        return SignResult(chain, "secp256k1", self.public_key("secp256k1"),
                          r.to_bytes(32, "big") + s.to_bytes(32, "big"), r, s, recid)


# EIP-155, "Example": https://eips.ethereum.org/EIPS/eip-155
EIP155_KEY = bytes.fromhex("46" * 32)
EIP155_TX = {"nonce": 9, "gasPrice": 20 * 10**9, "gas": 21000, "to": "0x" + "35" * 20, "value": 10**18,
             "data": b"", "chainId": 1}
EIP155_SIGNING_DATA = bytes.fromhex("ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7"
                                    "64000080018080")
EIP155_SIGNING_HASH = bytes.fromhex("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
EIP155_SIGNED = bytes.fromhex(
    "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd9"
    "39bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc6421"
    "4b297fb1966a3b6d83")

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SIGNER = KeySigner(KEY)
WALLET = Account.from_key(KEY).address


def test_legacy_transaction_matches_the_eip155_example() -> None:
    assert keccak(EIP155_SIGNING_DATA) == EIP155_SIGNING_HASH
    signer = KeySigner(EIP155_KEY)
    _, tx_hash = evm.transaction_hash_to_sign(EIP155_TX, Account.from_key(EIP155_KEY).address)
    assert tx_hash == EIP155_SIGNING_HASH
    signed = evm.sign_transaction(signer, EIP155_TX)
    assert signed.raw == EIP155_SIGNED
    assert signed.v == 37 and signed.hash == keccak(EIP155_SIGNED)


@pytest.mark.parametrize("tx", [
    {"nonce": 0, "gasPrice": 1, "gas": 53000, "value": 0, "data": "0x6000", "chainId": 5},  # contract creation
    {"nonce": 2**64 - 1, "gasPrice": 2**256 - 1, "gas": 21000, "to": to_checksum_address("0x" + "ab" * 20), "value": 2**256 - 1,
     "data": b"\x00" * 57, "chainId": 2**32 + 7},  # long fields, v beyond one byte
])
def test_legacy_transaction_matches_eth_account(tx: dict) -> None:
    expected = Account.sign_transaction(tx, KEY)
    signed = evm.sign_transaction(SIGNER, tx)
    assert signed.raw == bytes(expected.raw_transaction)
    assert signed.hash == bytes(expected.hash)
    assert (signed.r, signed.s, signed.v) == (expected.r, expected.s, expected.v)


def _eip1559_hash(tx: dict) -> bytes:
    """keccak256(0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value,
    data, accessList])), written out from EIP-1559 for this test."""
    access_list = [[bytes.fromhex(e["address"][2:]), [bytes.fromhex(k[2:]) for k in e["storageKeys"]]]
                   for e in tx.get("accessList", [])]
    to = bytes.fromhex(tx["to"][2:]) if "to" in tx else b""
    fields = [tx["chainId"], tx["nonce"], tx["maxPriorityFeePerGas"], tx["maxFeePerGas"], tx["gas"], to,
              tx.get("value", 0), bytes.fromhex(tx.get("data", "0x")[2:]), access_list]
    return keccak(b"\x02" + rlp.encode(fields))


@pytest.mark.parametrize("tx", [
    {"type": 2, "nonce": 7, "maxFeePerGas": 3 * 10**10, "maxPriorityFeePerGas": 10**9, "gas": 60000,
     "to": to_checksum_address("0x" + "cd" * 20), "value": 12345, "data": "0x" + "aa" * 36, "chainId": 1,
     "accessList": [{"address": to_checksum_address("0x" + "ef" * 20), "storageKeys": ["0x" + "00" * 31 + "01", "0x" + "11" * 32]}]},
    {"type": 2, "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 2, "gas": 100000, "chainId": 10,
     "data": "0x6000"},  # contract creation, no access list
])
def test_eip1559_transaction_matches_eth_account_and_the_eip(tx: dict) -> None:
    _, tx_hash = evm.transaction_hash_to_sign(tx, WALLET)
    assert tx_hash == _eip1559_hash(tx)
    expected = Account.sign_transaction(tx, KEY)
    signed = evm.sign_transaction(SIGNER, tx)
    assert signed.raw == bytes(expected.raw_transaction)
    assert signed.hash == bytes(expected.hash)
    assert (signed.r, signed.s, signed.v) == (expected.r, expected.s, expected.v)


@pytest.mark.parametrize("message", ["hello", "", b"\x00\xff" * 40])
def test_personal_message_matches_eth_account(message: str | bytes) -> None:
    signable = encode_defunct(text=message) if isinstance(message, str) else encode_defunct(primitive=message)
    body = message.encode() if isinstance(message, str) else message
    independent = keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + body)
    signed = evm.sign_personal_message(SIGNER, message)
    assert signed.message_hash == independent == bytes(defunct_hash_message(primitive=body))
    assert signed.signature == bytes(Account.sign_message(signable, KEY).signature)


def test_typed_data_matches_eth_account() -> None:
    full = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}],
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
                   "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
                    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
                    "contents": "Hello, Bob!"},
    }
    signed = evm.sign_typed_data(SIGNER, full)
    # EIP-712's own example: the hash of this Mail is published in the EIP.
    assert signed.message_hash.hex() == "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    assert signed.signature == bytes(Account.sign_message(encode_typed_data(full_message=full), KEY).signature)
