"""One real transaction per chain for ``python -m mpc demo``, each shown in its library's wire form.

Every transaction is built with the chain's library, signed through the given signer (the full
two-party flow) and checked with the same library before it is printed. A chain whose library is
not installed is skipped with a one-line note. Nothing is broadcast: the UTXO, nonces, block
references and blockhash are made up (derived from fixed labels, so runs are reproducible).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
from collections.abc import Callable

from mpc.chains.signer import Signer

__all__ = ["show_transactions"]

Say = Callable[[str, str], None]


def _label(text: str) -> bytes:
    return hashlib.sha256(b"portal-mpc demo " + text.encode()).digest()


def _ethereum(signer: Signer, addresses: dict[str, str]) -> str:
    from eth_account import Account

    from mpc.chains import evm

    tx = {"type": 2, "chainId": 11155111, "nonce": 0, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9,
          "gas": 21000, "to": "0x" + _label("eth to")[:20].hex(), "value": 10**15}
    signed = evm.sign_transaction(signer, tx)
    ok = Account.recover_transaction(signed.raw) == addresses["ethereum"]
    return f"0x{signed.raw.hex()} (eth-account recovers the wallet: {ok})"


def _bitcoin(signer: Signer, addresses: dict[str, str]) -> str:
    from embit import ec
    from embit.transaction import Transaction

    from mpc.chains import bitcoin

    public_key = signer.public_key("secp256k1")
    utxo = bitcoin.Utxo(_label("btc utxo").hex(), 0, 50_000, addresses["bitcoin"])
    signed = bitcoin.sign_p2wpkh_spend(signer, [utxo], [bitcoin.Output(addresses["bitcoin"], 49_000)], max_fee=2_000)
    tx = Transaction.parse(signed.raw)
    sig = tx.vin[0].witness.items[0]
    ok = ec.PublicKey.parse(public_key).verify(ec.Signature.parse(sig[:-1]), bitcoin.p2wpkh_sighash(tx, 0, public_key, utxo.amount))
    return f"{tx.to_string()} (txid {signed.txid}, embit verifies: {ok})"


def _tron(signer: Signer, addresses: dict[str, str]) -> str:
    from tronpy import Tron
    from tronpy.keys import Signature, to_base58check_address

    from mpc.chains import tron

    to = to_base58check_address(b"\x41" + _label("tron to")[:20])
    built = Tron(network="nile").trx.transfer(addresses["tron"], to, 1_000_000).build(
        offline=True, ref_block_id=_label("tron block")[:16].hex())
    signed = tron.sign_transaction(signer, built.to_json())
    key = Signature(signed.signature).recover_public_key_from_msg_hash(bytes.fromhex(signed.txid))
    return f"{json.dumps(signed.to_json())} (tronpy recovers the wallet: {key.to_base58check_address() == addresses['tron']})"


def _solana(signer: Signer, addresses: dict[str, str]) -> str:
    from solders.hash import Hash
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.system_program import TransferParams, transfer

    from mpc.chains import solana

    me = Pubkey.from_string(addresses["solana"])
    pay = transfer(TransferParams(from_pubkey=me, to_pubkey=Pubkey.from_bytes(_label("sol to")), lamports=1_000_000))
    tx = solana.sign_message(signer, Message.new_with_blockhash([pay], me, Hash(_label("sol blockhash"))))
    tx.verify()
    return f"{base64.b64encode(bytes(tx)).decode()} (solders verify: True)"


def _stellar(signer: Signer, addresses: dict[str, str]) -> str:
    from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder

    from mpc.chains import stellar

    to = Keypair.from_raw_ed25519_seed(_label("xlm to")).public_key
    envelope = (TransactionBuilder(Account(addresses["stellar"], 1), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
                .append_payment_op(to, Asset.native(), "10").add_text_memo("portal-mpc demo").set_timeout(300).build())
    signed = stellar.sign_envelope(signer, envelope)
    Keypair.from_public_key(addresses["stellar"]).verify(signed.hash(), signed.signatures[0].signature)
    return f"{signed.to_xdr()} (stellar-sdk verifies: True)"


_CHAINS = {"ethereum": ("evm", _ethereum), "bitcoin": ("bitcoin", _bitcoin), "tron": ("tron", _tron),
           "solana": ("solana", _solana), "stellar": ("stellar", _stellar)}


def show_transactions(signer: Signer, addresses: dict[str, str], say: Say) -> None:
    """Sign and print one transaction per chain; skip a chain whose library is missing."""
    for chain, (adapter, make) in _CHAINS.items():
        try:
            importlib.import_module(f"mpc.chains.{adapter}")  # names the extra to install if missing
            say(f"{chain} transaction", make(signer, addresses))
        except ImportError as exc:  # ChainLibraryMissing is one; so is a missing verifier library
            say(f"{chain} transaction", f"skipped ({exc})")
