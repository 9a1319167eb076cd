"""Ethereum and EVM chains: EIP-191 personal messages, EIP-712 typed data, EIP-155, EIP-2930 and EIP-1559 transactions.

Extra ``evm`` (eth-account, with eth-utils, eth-keys and rlp). Only public APIs are used:
eth-account's ``eth_account.messages`` (``encode_defunct``, ``encode_typed_data``) and
``eth_account.typed_transactions.TypedTransaction`` (EIP-1559 hashing and encoding), pyrlp's
``rlp.encode`` and eth-utils' ``keccak``. What the wallet signs (all Keccak-256)::

  sign_personal_message   keccak256(0x19 ‖ "Ethereum Signed Message:\\n" ‖ len(message) in decimal ‖ message)
                          (EIP-191 version 0x45; ``encode_defunct``); v = 27 + recid
  sign_typed_data         keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))
                          (EIP-712; ``encode_typed_data(full_message=...)``); v = 27 + recid
  sign_transaction        legacy (no ``type`` or ``type`` 0), EIP-155:
                            keccak256(rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0]))
                            v = chainId·2 + 35 + recid
                          EIP-2930 (``type`` 1): keccak256(0x01 ‖ rlp([chainId, nonce, gasPrice, gas,
                                                  to, value, data, accessList])); y_parity = recid
                          EIP-1559 (``type`` 2):
                            keccak256(0x02 ‖ rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas,
                                                  gas, to, value, data, accessList]))
                            y_parity (the ``v`` field) = recid

Requests take what eth-account's ``Account.sign_transaction`` takes and are decoded strictly
before anything is signed: every integer a Python ``int`` or 0x-prefixed hex text (``"0x2"``; no
``bool``, float or decimal text) in range (nonce < 2^64 per EIP-2681, amounts and fees < 2^256,
chainId ≥ 1); ``type`` 0, 1 or 2 (an int or hex text), or absent and inferred as eth-account
does (fee caps: 2, an access list: 1, else legacy); ``to`` a 20-byte address (mixed case only
with a valid EIP-55 checksum; absent, None or empty means contract creation), ``data`` bytes or
0x-hex, ``from`` (optional) the wallet's own address, and no field eth-account would not know.
Two deliberate differences: unprotected (pre-EIP-155, no ``chainId``) transactions are refused,
and so is ``maxPriorityFeePerGas > maxFeePerGas`` (such a transaction can never be included).
The result has eth-account's names (``raw_transaction``, ``hash``, ``r``, ``s``, ``v``);
``tests/mpc/chains/test_evm_parity.py`` checks both against eth-account itself.

eth-account has no public "sign with an external signer" call (``Account.sign_transaction`` and
``Account.sign_message`` want the private key), so the pieces are put together here from public
parts: an EIP-191 hash is keccak256(0x19 ‖ version ‖ header ‖ body) of eth-account's
``SignableMessage``; an EIP-2930 or EIP-1559 transaction is hashed by ``TypedTransaction.hash()`` and encoded
by ``TypedTransaction.from_dict(... v, r, s).encode()``; eth-account has no public legacy
transaction type, so the EIP-155 lists above (and the signed one, [nonce, gasPrice, gas, to,
value, data, v, r, s]) are encoded with ``rlp.encode``. ``tests/mpc/chains/test_evm_encoding.py``
pins every hash and raw encoding against EIP-155's published example and eth-account's own
private-key signing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mpc.addresses import ethereum_address
from mpc.chains._common import import_library, require_fields, require_hex_bytes, require_int, require_mapping
from mpc.chains.signer import Signer, sign_ecdsa
from mpc.errors import InputInvalid

_messages = import_library("eth_account.messages", distribution="eth-account", extra="evm")
_typed = import_library("eth_account.typed_transactions", distribution="eth-account>=0.13", extra="evm")
_rlp = import_library("rlp", distribution="rlp", extra="evm")
_eth_utils = import_library("eth_utils", distribution="eth-utils", extra="evm")

__all__ = [
    "SignedMessage",
    "SignedTransaction",
    "sign_personal_message",
    "sign_typed_data",
    "sign_transaction",
    "transaction_hash_to_sign",
]

CHAIN = "ethereum"
UINT256_MAX = 2**256 - 1
NONCE_MAX = 2**64 - 1  # EIP-2681
CHAIN_ID_MAX = 2**64 - 1
_COMMON_OPTIONAL = {"to", "value", "data", "from", "type"}
# Required and optional fields per transaction type, as eth-account accepts them.
_FIELDS: dict[int, tuple[set[str], set[str]]] = {
    0: ({"nonce", "gasPrice", "gas", "chainId"}, _COMMON_OPTIONAL),
    1: ({"type", "nonce", "gasPrice", "gas", "chainId"}, _COMMON_OPTIONAL | {"accessList"}),
    2: ({"type", "nonce", "maxFeePerGas", "maxPriorityFeePerGas", "gas", "chainId"}, _COMMON_OPTIONAL | {"accessList"}),
}
_TYPE_NAMES = {0: "legacy transaction", 1: "EIP-2930 transaction", 2: "EIP-1559 transaction"}


@dataclass(frozen=True)
class SignedMessage:
    """An EIP-191 or EIP-712 signature: ``signature`` is the 65-byte r ‖ s ‖ v that wallets return."""

    message_hash: bytes
    r: int
    s: int
    v: int
    signature: bytes


@dataclass(frozen=True)
class SignedTransaction:
    """A signed transaction with eth-account's field names: ``raw_transaction`` for
    ``eth_sendRawTransaction``, ``hash`` = keccak256(raw_transaction), ``r``, ``s``, ``v``
    (y_parity for a typed transaction)."""

    raw_transaction: bytes
    hash: bytes
    r: int
    s: int
    v: int

    @property
    def raw(self) -> bytes:
        """The same as ``raw_transaction`` (the name before eth-account parity; kept)."""
        return self.raw_transaction


def _wallet_address(signer: Signer) -> str:
    return ethereum_address(signer.public_key("secp256k1"))


def _sign_message_hash(signer: Signer, message_hash: bytes) -> SignedMessage:
    signature = sign_ecdsa(signer, CHAIN, bytes(message_hash))
    return SignedMessage(bytes(message_hash), signature.r, signature.s, signature.v, signature.to_bytes() + bytes([signature.v]))


def _eip191_hash(signable: Any) -> bytes:
    """keccak256(0x19 ‖ version ‖ header ‖ body) of an eth-account ``SignableMessage`` (EIP-191)."""
    if len(signable.version) != 1:
        raise InputInvalid("an EIP-191 message has a one-byte version")
    return bytes(_eth_utils.keccak(b"\x19" + bytes(signable.version) + bytes(signable.header) + bytes(signable.body)))


def sign_personal_message(signer: Signer, message: bytes | str) -> SignedMessage:
    """EIP-191 ``personal_sign``: ``str`` is signed as its UTF-8 text, ``bytes`` as they are."""
    if isinstance(message, str):
        signable = _messages.encode_defunct(text=message)
    elif isinstance(message, (bytes, bytearray)):
        signable = _messages.encode_defunct(primitive=bytes(message))
    else:
        raise InputInvalid("a personal message is bytes or str")
    return _sign_message_hash(signer, _eip191_hash(signable))


def sign_typed_data(signer: Signer, full_message: Mapping[str, Any]) -> SignedMessage:
    """EIP-712 ``eth_signTypedData_v4`` of ``{"types", "primaryType", "domain", "message"}``."""
    require_mapping(full_message, "typed data")
    require_fields(full_message, "typed data", {"types", "primaryType", "domain", "message"})
    try:
        signable = _messages.encode_typed_data(full_message=dict(full_message))
        message_hash = _eip191_hash(signable)
    except Exception as exc:  # eth-account raises ValueError, TypeError, ValidationError, KeyError...
        raise InputInvalid(f"typed data does not encode under EIP-712: {type(exc).__name__}") from None
    return _sign_message_hash(signer, message_hash)


def _address(value: Any, name: str) -> str:
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        return str(_eth_utils.to_checksum_address(bytes(value)))
    if not isinstance(value, str) or not _eth_utils.is_hex_address(value):
        raise InputInvalid(f"{name} must be a 20-byte 0x-hex address")
    if value[2:] not in (value[2:].lower(), value[2:].upper()) and not _eth_utils.is_checksum_address(value):
        raise InputInvalid(f"{name} has a mixed-case address with a wrong EIP-55 checksum")
    return str(_eth_utils.to_checksum_address(value))


def _quantity(value: Any, name: str, *, minimum: int = 0, maximum: int = UINT256_MAX) -> int:
    """An integer field as eth-account takes it: a Python ``int`` or 0x-prefixed hex text
    (``"0x2"``); not ``bool``, float or decimal text."""
    if isinstance(value, str):
        digits = value[2:] if value[:2] in ("0x", "0X") else None
        if not digits or len(digits) > 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise InputInvalid(f"{name} must be an integer or 0x-prefixed hex text")
        value = int(digits, 16)
    return require_int(value, name, minimum=minimum, maximum=maximum)


def _transaction_type(tx: Mapping[str, Any]) -> int:
    """0 (legacy, EIP-155), 1 (EIP-2930) or 2 (EIP-1559): the ``type`` field (an int or hex text
    such as ``"0x2"``), or without one inferred as eth-account does (fee caps: 2; an access list: 1)."""
    if "type" in tx:
        tx_type = _quantity(tx["type"], "type", maximum=255)
        if tx_type not in _FIELDS:
            raise InputInvalid("type must be 0 (legacy, EIP-155), 1 (EIP-2930) or 2 (EIP-1559)")
        return tx_type
    if "maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx:
        return 2
    return 1 if "accessList" in tx else 0


def _clean_transaction(tx: Any, wallet: str) -> dict[str, Any]:
    """The transaction as eth-account wants it, or ``InputInvalid``; see the module docstring."""
    require_mapping(tx, "transaction")
    tx_type = _transaction_type(tx)
    required, optional = _FIELDS[tx_type]
    require_fields(tx, _TYPE_NAMES[tx_type], required - {"type"}, optional)
    if tx_type == 2:
        fees = {name: _quantity(tx[name], name) for name in ("maxFeePerGas", "maxPriorityFeePerGas")}
        if fees["maxPriorityFeePerGas"] > fees["maxFeePerGas"]:
            raise InputInvalid("maxPriorityFeePerGas exceeds maxFeePerGas")
    else:
        fees = {"gasPrice": _quantity(tx["gasPrice"], "gasPrice")}
    if "from" in tx and _address(tx["from"], "from") != wallet:
        raise InputInvalid("from is not the wallet's address")
    clean: dict[str, Any] = {
        "nonce": _quantity(tx["nonce"], "nonce", maximum=NONCE_MAX),
        "gas": _quantity(tx["gas"], "gas"),
        "chainId": _quantity(tx["chainId"], "chainId", minimum=1, maximum=CHAIN_ID_MAX),
        "value": _quantity(tx.get("value", 0), "value"),
        "data": require_hex_bytes(tx.get("data", b""), "data", prefix=True),
        **fees,
    }
    if tx.get("to") not in (None, "", b""):  # absent, None or empty: a contract creation
        clean["to"] = _address(tx["to"], "to")
    if tx_type:
        clean["type"] = tx_type
        clean["accessList"] = tx.get("accessList", [])
    return clean


def _legacy_fields(clean: Mapping[str, Any]) -> list[Any]:
    """[nonce, gasPrice, gas, to, value, data]: the legacy transaction's RLP fields (``to`` empty
    for a contract creation), which EIP-155 follows with (chainId, 0, 0) to sign or (v, r, s)."""
    to = bytes.fromhex(clean["to"][2:]) if "to" in clean else b""
    return [clean["nonce"], clean["gasPrice"], clean["gas"], to, clean["value"], clean["data"]]


def transaction_hash_to_sign(tx: Mapping[str, Any], wallet_address: str) -> tuple[dict[str, Any], bytes]:
    """The checked transaction (``tx`` with addresses checksummed, ``data`` as bytes and defaults
    filled) and the 32-byte hash the wallet signs for it."""
    clean = _clean_transaction(tx, wallet_address)
    if "type" not in clean:
        return clean, bytes(_eth_utils.keccak(_rlp.encode(_legacy_fields(clean) + [clean["chainId"], 0, 0])))
    try:
        return clean, bytes(_typed.TypedTransaction.from_dict(dict(clean)).hash())
    except Exception as exc:  # eth-account validation (accessList shape, ...): TypeError, ValueError...
        raise InputInvalid(f"eth-account refused the transaction: {type(exc).__name__}") from None


def sign_transaction(signer: Signer, tx: Mapping[str, Any]) -> SignedTransaction:
    """Sign a legacy EIP-155, an EIP-2930 or an EIP-1559 transaction dict (web3 field names; the
    inputs eth-account's ``Account.sign_transaction`` accepts, except unprotected ones)."""
    clean, tx_hash = transaction_hash_to_sign(tx, _wallet_address(signer))
    signature = sign_ecdsa(signer, CHAIN, tx_hash)
    if "type" in clean:  # EIP-2930 or EIP-1559
        v = signature.recid  # y_parity
        raw = bytes(_typed.TypedTransaction.from_dict({**clean, "v": v, "r": signature.r, "s": signature.s}).encode())
    else:
        v = clean["chainId"] * 2 + 35 + signature.recid  # EIP-155
        raw = bytes(_rlp.encode(_legacy_fields(clean) + [v, signature.r, signature.s]))
    return SignedTransaction(raw, bytes(_eth_utils.keccak(raw)), signature.r, signature.s, v)
