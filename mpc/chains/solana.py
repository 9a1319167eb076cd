"""Solana: sign a transaction message built with solders (legacy ``Message`` or ``MessageV0``).

Extra ``solana`` (solders). What the wallet signs (ed25519, the message itself, no pre-hash)::

  legacy ``Message``   bytes(message): header ‖ account keys ‖ recent blockhash ‖ instructions
  ``MessageV0``        solders.message.to_bytes_versioned(message): 0x80 ‖ the v0 message
                       (with its address-table lookups)

The signature goes into the wallet's slot among the message's required signers; the result is a
``solders`` ``Transaction`` (legacy) or ``VersionedTransaction`` (v0). When the wallet is the
only required signer the transaction is complete and ``verify()`` passes; other signers' slots
stay ``Signature.default()`` for them to fill.

Refused (``InputInvalid``): anything but a solders message, a message that does not sanitize
(inconsistent header or instruction indices), a default (all-zero) recent blockhash, and a
message in which the wallet is not a required signer (its signature would be useless).
"""

from __future__ import annotations

from typing import Any

from mpc.chains._common import import_library
from mpc.chains.signer import Signer, sign_ed25519
from mpc.errors import InputInvalid

_hash = import_library("solders.hash", distribution="solders", extra="solana")
_message = import_library("solders.message", distribution="solders", extra="solana")
_pubkey = import_library("solders.pubkey", distribution="solders", extra="solana")
_signature = import_library("solders.signature", distribution="solders", extra="solana")
_transaction = import_library("solders.transaction", distribution="solders", extra="solana")

__all__ = ["signed_bytes", "sign_message"]

CHAIN = "solana"


def signed_bytes(message: Any) -> bytes:
    """The bytes the wallet signs for a solders ``Message`` or ``MessageV0`` (see the docstring)."""
    if isinstance(message, _message.Message):
        return bytes(message)
    if isinstance(message, _message.MessageV0):
        return bytes(_message.to_bytes_versioned(message))
    raise InputInvalid("a Solana message is a solders Message or MessageV0")


def _unsigned(message: Any) -> Any:
    if isinstance(message, _message.Message):
        return _transaction.Transaction.new_unsigned(message)
    return _transaction.VersionedTransaction.populate(
        message, [_signature.Signature.default()] * message.header.num_required_signatures)


def _signer_index(message: Any, wallet: Any) -> int:
    signers = list(message.account_keys[: message.header.num_required_signatures])
    if wallet not in signers:
        raise InputInvalid("the wallet is not a required signer of this message")
    return signers.index(wallet)


def sign_message(signer: Signer, message: Any) -> Any:
    """Sign a solders message as the wallet; returns the (Versioned)Transaction carrying the signature."""
    data = signed_bytes(message)
    try:
        _unsigned(message).sanitize()
    except Exception as exc:  # solders raises its own SanitizeError / ValueError
        raise InputInvalid(f"the message does not sanitize: {type(exc).__name__}") from None
    if message.recent_blockhash == _hash.Hash.default():
        raise InputInvalid("the message has no recent blockhash")
    wallet = _pubkey.Pubkey.from_bytes(signer.public_key("ed25519"))
    index = _signer_index(message, wallet)
    signature = sign_ed25519(signer, CHAIN, data)
    signatures = [_signature.Signature.default()] * message.header.num_required_signatures
    signatures[index] = _signature.Signature.from_bytes(signature)
    if isinstance(message, _message.Message):
        return _transaction.Transaction.populate(message, signatures)
    return _transaction.VersionedTransaction.populate(message, signatures)
