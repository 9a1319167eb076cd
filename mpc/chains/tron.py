"""Tron: sign a transaction's raw data, in the JSON form of tronpy and the node's HTTP API.

Extra ``tron`` (tronpy with its ``offline`` extra: the protobuf classes of ``protocol.Transaction``).
The request is ``{"raw_data": {...}}`` as tronpy's ``Transaction.to_json()`` or the node's
``createtransaction`` returns it, optionally with ``raw_data_hex``, ``txID`` and earlier
``signature`` entries. What the wallet signs::

  raw   = protobuf ``Transaction.raw`` serialised from the *decoded* raw_data (ref_block_bytes,
          ref_block_hash, expiration, timestamp, the contract, memo ``data``, fee_limit)
  txID  = SHA-256(raw); the wallet signs txID as the secp256k1 digest
  signature = r ‖ s ‖ recid (65 bytes, recid 0/1, as tronpy's ``PrivateKey.sign_msg_hash``)

The bytes are always rebuilt from the parsed JSON, never taken on trust: a given
``raw_data_hex`` must equal them and a given ``txID`` must equal their SHA-256, so a node cannot
show one transaction and have another signed. Supported contracts: ``TransferContract`` (TRX)
and ``TriggerSmartContract`` (TRC-20 calls and other contract calls), exactly one per
transaction, whose ``owner_address`` is the wallet's Tron address. Refused (``InputInvalid``):
unknown fields, amounts that are not integers in [1, 2^63) (call values and fee_limit may be 0),
malformed addresses (41-prefixed hex or ``T…`` base58check), expiration not after timestamp.

(tronpy's own offline txID leaves the memo ``data`` field out of the hash; this module includes
it, as the node does.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpc.addresses import tron_address
from mpc.chains._common import import_library, require_fields, require_hex_bytes, require_int, require_mapping
from mpc.chains.signer import Signer, sign_ecdsa
from mpc.errors import InputInvalid

_base58 = import_library("base58", distribution="base58", extra="tron")
_pb = import_library("tronpy.proto.tron_pb2", distribution="tronpy[offline] (protobuf)", extra="tron")
_any_pb2 = import_library("google.protobuf.any_pb2", distribution="protobuf", extra="tron")

__all__ = ["SignedTransaction", "decode_address", "raw_data_bytes", "sign_transaction"]

CHAIN = "tron"
INT64_MAX = 2**63 - 1
_TYPE_URL = "type.googleapis.com/protocol."
_RAW_REQUIRED = {"contract", "ref_block_bytes", "ref_block_hash", "expiration", "timestamp"}
_RAW_OPTIONAL = {"fee_limit", "data"}
_CONTRACT_FIELDS = {
    "TransferContract": ({"owner_address", "to_address", "amount"}, set()),
    "TriggerSmartContract": ({"owner_address", "contract_address"}, {"data", "call_value", "call_token_value", "token_id"}),
}


@dataclass(frozen=True)
class SignedTransaction:
    """The signed transaction; ``to_json()`` is what tronpy and ``broadcasttransaction`` take."""

    txid: str
    raw_data: Mapping[str, Any]
    raw_data_hex: str
    signature: bytes
    earlier_signatures: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The signed transaction in the node's JSON form (``broadcasttransaction``), signatures included."""
        return {
            "txID": self.txid,
            "raw_data": dict(self.raw_data),
            "raw_data_hex": self.raw_data_hex,
            "signature": [*self.earlier_signatures, self.signature.hex()],
        }


def decode_address(value: Any, name: str) -> bytes:
    """The 21 bytes (0x41 ‖ account id) of a ``41…`` hex or ``T…`` base58check Tron address."""
    if isinstance(value, str) and len(value) == 42 and value[:2] == "41":
        raw = require_hex_bytes(value, name, length=21)
    elif isinstance(value, str) and len(value) == 34 and value[:1] == "T":
        try:
            raw = _base58.b58decode_check(value)
        except ValueError:
            raise InputInvalid(f"{name} has a bad base58check checksum") from None
    else:
        raise InputInvalid(f"{name} must be a 41-prefixed hex or T… base58check Tron address")
    if len(raw) != 21 or raw[0] != 0x41:
        raise InputInvalid(f"{name} is not a Tron address")
    return raw


def _contract(item: Any, owner: bytes) -> Any:
    require_mapping(item, "contract")
    require_fields(item, "contract", {"type", "parameter"}, {"Permission_id"})
    kind = item["type"]
    if kind not in _CONTRACT_FIELDS:
        raise InputInvalid(f"contract type must be one of {', '.join(_CONTRACT_FIELDS)}")
    parameter = require_mapping(item["parameter"], "contract parameter")
    require_fields(parameter, "contract parameter", {"type_url", "value"})
    if parameter["type_url"] != _TYPE_URL + kind:
        raise InputInvalid("contract type_url does not match its type")
    value = require_mapping(parameter["value"], kind)
    require_fields(value, kind, *_CONTRACT_FIELDS[kind])
    if decode_address(value["owner_address"], "owner_address") != owner:
        raise InputInvalid("owner_address is not the wallet's Tron address")
    if kind == "TransferContract":
        body = _pb.TransferContract(owner_address=owner, to_address=decode_address(value["to_address"], "to_address"),
                                    amount=require_int(value["amount"], "amount", minimum=1, maximum=INT64_MAX))
    else:
        body = _pb.TriggerSmartContract(
            owner_address=owner,
            contract_address=decode_address(value["contract_address"], "contract_address"),
            data=require_hex_bytes(value.get("data", ""), "data"),
            call_value=require_int(value.get("call_value", 0), "call_value", maximum=INT64_MAX),
            call_token_value=require_int(value.get("call_token_value", 0), "call_token_value", maximum=INT64_MAX),
            token_id=require_int(value.get("token_id", 0), "token_id", maximum=INT64_MAX),
        )
    contract = _pb.Transaction.Contract(type=getattr(_pb.Transaction.Contract.ContractType, kind),
                                        parameter=_any_pb2.Any(type_url=parameter["type_url"], value=body.SerializeToString()))
    if "Permission_id" in item:
        contract.Permission_id = require_int(item["Permission_id"], "Permission_id", maximum=2**31 - 1)
    return contract


def raw_data_bytes(raw_data: Mapping[str, Any], owner: bytes) -> bytes:
    """The protobuf ``Transaction.raw`` bytes of tronpy/node ``raw_data`` whose owner is ``owner``."""
    require_mapping(raw_data, "raw_data")
    require_fields(raw_data, "raw_data", _RAW_REQUIRED, _RAW_OPTIONAL)
    contracts = raw_data["contract"]
    if not isinstance(contracts, list) or len(contracts) != 1:
        raise InputInvalid("raw_data must hold exactly one contract")
    expiration = require_int(raw_data["expiration"], "expiration", maximum=INT64_MAX)
    timestamp = require_int(raw_data["timestamp"], "timestamp", maximum=INT64_MAX)
    if expiration <= timestamp:
        raise InputInvalid("expiration must be after timestamp")
    raw = _pb.Transaction.raw(
        ref_block_bytes=require_hex_bytes(raw_data["ref_block_bytes"], "ref_block_bytes", length=2),
        ref_block_hash=require_hex_bytes(raw_data["ref_block_hash"], "ref_block_hash", length=8),
        expiration=expiration,
        timestamp=timestamp,
        contract=[_contract(contracts[0], owner)],
        data=require_hex_bytes(raw_data.get("data", ""), "data (memo)"),
        fee_limit=require_int(raw_data.get("fee_limit", 0), "fee_limit", maximum=INT64_MAX),
    )
    serialized: bytes = raw.SerializeToString()
    return serialized


def _earlier_signatures(transaction: Mapping[str, Any]) -> tuple[str, ...]:
    signatures = transaction.get("signature", [])
    if not isinstance(signatures, list):
        raise InputInvalid("signature must be a list of hex signatures")
    return tuple(require_hex_bytes(sig, "signature", length=65).hex() for sig in signatures)


def sign_transaction(signer: Signer, transaction: Mapping[str, Any]) -> SignedTransaction:
    """Sign ``{"raw_data": ..., ["raw_data_hex", "txID", "signature", "permission"]}`` as the wallet."""
    require_mapping(transaction, "transaction")
    require_fields(transaction, "transaction", {"raw_data"}, {"raw_data_hex", "txID", "signature", "permission", "visible"})
    owner = decode_address(tron_address(signer.public_key("secp256k1")), "wallet address")
    raw = raw_data_bytes(transaction["raw_data"], owner)
    if "raw_data_hex" in transaction and require_hex_bytes(transaction["raw_data_hex"], "raw_data_hex") != raw:
        raise InputInvalid("raw_data_hex is not the encoding of raw_data")
    txid = hashlib.sha256(raw).digest()
    if transaction.get("txID") not in (None, "", txid.hex()):
        raise InputInvalid("txID is not the SHA-256 of the raw data")
    earlier = _earlier_signatures(transaction)
    signature = sign_ecdsa(signer, CHAIN, txid)
    return SignedTransaction(txid.hex(), dict(transaction["raw_data"]), raw.hex(),
                             signature.to_bytes() + bytes([signature.recid]), earlier)
