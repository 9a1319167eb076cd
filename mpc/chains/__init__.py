"""Chain adapters: turn a chain-native request into what the wallet signs, and back.

Each adapter is one module per chain family, behind an optional extra so the core package stays
light (``pip install portal-mpc[evm]``, ``[bitcoin]``, ``[tron]``, ``[solana]``, ``[stellar]``, or
``[chains]`` for all)::

    from mpc.chains import local_signer
    from mpc.chains import evm                 # ChainLibraryMissing (an ImportError) without eth-account

    signer = local_signer(client, custodian, client_id)      # both parties in this process
    signer = remote_signer(remote, device, token)            # or: a RemoteCustodian and the device
    signed = evm.sign_transaction(signer, {"type": 2, "chainId": 1, "nonce": 0, ...})
    signed.raw_transaction                      # ready for eth_sendRawTransaction

Every adapter validates the whole request with the chain's own library (or strictly by hand where
the library is lax) *before* anything is signed, raises ``mpc.errors.InputInvalid`` for a
malformed request, checks the returned signature against the wallet's public key, and documents
in its module docstring exactly which bytes are hashed and signed (see also docs/chains.md).

This package itself imports no chain library; only the adapter modules do.
"""

from __future__ import annotations

from mpc.chains.signer import (
    LocalSigner,
    RemoteSigner,
    Signer,
    SigningService,
    local_signer,
    remote_signer,
    sign_checked,
    sign_ecdsa,
    sign_ed25519,
)

__all__ = ["Signer", "LocalSigner", "local_signer", "RemoteSigner", "SigningService", "remote_signer", "sign_checked",
           "sign_ecdsa", "sign_ed25519"]
