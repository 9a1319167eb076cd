"""Stellar: sign a transaction envelope built with stellar-sdk, for its network passphrase.

Extra ``stellar`` (stellar-sdk). What the wallet signs (ed25519 over the 32-byte hash):

  te.hash() = SHA-256( SHA-256(network passphrase) ‖ ENVELOPE_TYPE_TX ‖ Transaction XDR )
              (the transaction's signature base; stellar-sdk computes it)

and a ``DecoratedSignature`` (hint = last 4 bytes of the wallet's public key, the signature) is
appended to the envelope's signatures. The network passphrase is part of the hash, so a
signature for the test network is worthless on the public one.

Refused (``InputInvalid``): anything but a stellar-sdk ``TransactionEnvelope`` (a fee-bump
envelope is not supported), an empty network passphrase, an XDR that does not parse, and a
transaction in which the wallet is neither the source account nor the source of an operation
(its signature would carry no weight).
"""

from __future__ import annotations

from typing import Any

from mpc.addresses import stellar_address
from mpc.chains._common import import_library
from mpc.chains.signer import Signer, sign_ed25519
from mpc.errors import InputInvalid

_sdk = import_library("stellar_sdk", distribution="stellar-sdk", extra="stellar")

__all__ = ["sign_envelope", "sign_envelope_xdr", "involves_account"]

CHAIN = "stellar"


def involves_account(envelope: Any, account_id: str) -> bool:
    """True when ``account_id`` (``G…``) is the transaction's source or an operation's source."""
    transaction = envelope.transaction
    sources = [transaction.source] + [op.source for op in transaction.operations if op.source is not None]
    return any(source.account_id == account_id for source in sources)


def sign_envelope(signer: Signer, envelope: Any) -> Any:
    """A copy of ``envelope`` with the wallet's decorated signature appended."""
    if not isinstance(envelope, _sdk.TransactionEnvelope):
        raise InputInvalid("a Stellar request is a stellar_sdk TransactionEnvelope")
    if not isinstance(envelope.network_passphrase, str) or not envelope.network_passphrase:
        raise InputInvalid("the envelope has no network passphrase")
    public_key = bytes(signer.public_key("ed25519"))
    if not involves_account(envelope, stellar_address(public_key)):
        raise InputInvalid("the wallet is neither the source account nor an operation's source")
    tx_hash = envelope.hash()
    decorated = _sdk.DecoratedSignature(public_key[-4:], sign_ed25519(signer, CHAIN, tx_hash))
    return _sdk.TransactionEnvelope(envelope.transaction, envelope.network_passphrase,
                                    [*envelope.signatures, decorated])


def sign_envelope_xdr(signer: Signer, envelope_xdr: str, network_passphrase: str) -> str:
    """Parse a base64 envelope XDR for ``network_passphrase``, sign it, return the signed XDR."""
    if not isinstance(envelope_xdr, str) or not isinstance(network_passphrase, str) or not network_passphrase:
        raise InputInvalid("an envelope XDR and a network passphrase are non-empty strings")
    try:
        envelope = _sdk.TransactionEnvelope.from_xdr(envelope_xdr, network_passphrase)
    except Exception as exc:  # stellar-sdk / xdrlib raise ValueError, binascii.Error, their own errors
        raise InputInvalid(f"the envelope XDR does not parse: {type(exc).__name__}") from None
    signed_xdr: str = sign_envelope(signer, envelope).to_xdr()
    return signed_xdr
