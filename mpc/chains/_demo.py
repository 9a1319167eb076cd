"""One real transaction per chain for ``python -m mpc demo``, each verified by the chain's library.

Every transaction is built with the chain's library, signed through the given signer (the full
two-party flow) and then checked by that same library, independently of the wallet: eth-account
recovers the sender, embit verifies the input's signature against its own BIP143 digest, tronpy
recovers the signer of the txID, solders verifies the transaction, stellar-sdk verifies the
envelope's signature. Each line names the library and what it found; a check that fails is
reported as such and counted. A chain whose library is not installed is skipped with a one-line
note (``pip install portal-mpc[chains]`` installs them all). Nothing is broadcast: the UTXO,
nonces, block references and blockhash are made up (derived from fixed labels).
"""

from __future__ import annotations

import base64
import hashlib
import importlib
from collections.abc import Callable

from mpc.chains.signer import Signer
from mpc.errors import EngineError

__all__ = ["DemoCheckFailed", "show_transactions"]

Say = Callable[[str, str], None]


class DemoCheckFailed(Exception):
    """A chain library did not accept the transaction the wallet signed."""


def _label(text: str) -> bytes:
    return hashlib.sha256(b"portal-mpc demo " + text.encode()).digest()


def _short(text: str, keep: int = 18) -> str:
    """A long wire encoding, abbreviated: its start and end."""
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-8:]}"


def _require(ok: bool, library: str, what: str) -> None:
    if not ok:
        raise DemoCheckFailed(f"NOT verified: {library} {what}")


def _ethereum(signer: Signer, addresses: dict[str, str]) -> str:
    from eth_account import Account

    from mpc.chains import evm

    tx = {"type": 2, "chainId": 11155111, "nonce": 0, "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9,
          "gas": 21000, "to": "0x" + _label("eth to")[:20].hex(), "value": 10**15}
    signed = evm.sign_transaction(signer, tx)
    sender = Account.recover_transaction(signed.raw_transaction)
    _require(sender == addresses["ethereum"], "eth-account", f"recovers sender {sender}, not the wallet")
    return (f"EIP-1559 on Sepolia, 0.001 ETH: {_short('0x' + signed.raw_transaction.hex())} ({len(signed.raw_transaction)} bytes), "
            f"verified by eth-account: recovered sender = {sender} (the wallet)")


def _bitcoin(signer: Signer, addresses: dict[str, str]) -> str:
    from embit import ec, script
    from embit.networks import NETWORKS
    from embit.transaction import Transaction

    from mpc.chains import bitcoin

    utxo = bitcoin.Utxo(_label("btc utxo").hex(), 0, 50_000, addresses["bitcoin"])
    signed = bitcoin.sign_p2wpkh_spend(signer, [utxo], [bitcoin.Output(addresses["bitcoin"], 49_000)], max_fee=2_000)
    tx = Transaction.parse(signed.raw)
    der_and_type, key_bytes = tx.vin[0].witness.items
    key = ec.PublicKey.parse(key_bytes)
    owner = script.p2wpkh(key).address(NETWORKS["main"])
    _require(owner == addresses["bitcoin"], "embit", f"reads the witness key of {owner}, not the wallet's")
    digest = tx.sighash_segwit(0, script.p2pkh(key), utxo.amount)  # embit's own BIP143 digest
    _require(der_and_type[-1] == bitcoin.SIGHASH_ALL, "embit", "finds no SIGHASH_ALL signature")
    _require(key.verify(ec.Signature.parse(der_and_type[:-1]), digest), "embit", "rejects the input's signature")
    return (f"P2WPKH spend, 49,000 sats: {_short(signed.raw.hex())} ({len(signed.raw)} bytes, txid "
            f"{_short(signed.txid, 12)}), verified by embit: input signed by the key of {owner} (the wallet)")


def _tron(signer: Signer, addresses: dict[str, str]) -> str:
    from tronpy import Tron
    from tronpy.keys import Signature, to_base58check_address

    from mpc.chains import tron

    to = to_base58check_address(b"\x41" + _label("tron to")[:20])
    built = Tron(network="nile").trx.transfer(addresses["tron"], to, 1_000_000).build(
        offline=True, ref_block_id=_label("tron block")[:16].hex())
    signed = tron.sign_transaction(signer, built.to_json())
    txid = hashlib.sha256(bytes.fromhex(signed.raw_data_hex)).hexdigest()
    _require(txid == signed.txid, "tronpy", "finds a txID that is not SHA-256 of raw_data")
    signer_address = Signature(signed.signature).recover_public_key_from_msg_hash(bytes.fromhex(txid))
    recovered = signer_address.to_base58check_address()
    _require(recovered == addresses["tron"], "tronpy", f"recovers signer {recovered}, not the wallet")
    return (f"TRX transfer on Nile, 1 TRX: txID {_short(signed.txid, 12)} ({len(signed.raw_data_hex) // 2}-byte "
            f"raw_data), verified by tronpy: recovered signer = {recovered} (the wallet)")


def _solana(signer: Signer, addresses: dict[str, str]) -> str:
    from solders.hash import Hash
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.system_program import TransferParams, transfer

    from mpc.chains import solana

    me = Pubkey.from_string(addresses["solana"])
    pay = transfer(TransferParams(from_pubkey=me, to_pubkey=Pubkey.from_bytes(_label("sol to")), lamports=1_000_000))
    tx = solana.sign_message(signer, Message.new_with_blockhash([pay], me, Hash(_label("sol blockhash"))))
    try:
        tx.verify()  # every signature against its account key (raises on failure)
    except Exception as exc:  # noqa: BLE001 - solders raises its own error types
        raise DemoCheckFailed(f"NOT verified: solders rejects the transaction ({exc})") from None
    payer = str(tx.message.account_keys[0])
    _require(payer == addresses["solana"], "solders", f"finds fee payer {payer}, not the wallet")
    wire = base64.b64encode(bytes(tx)).decode()
    return (f"SOL transfer, 0.001 SOL: {_short(wire)} ({len(bytes(tx))} bytes), verified by solders: "
            f"Transaction.verify() passes, signer and fee payer = {payer} (the wallet)")


def _stellar(signer: Signer, addresses: dict[str, str]) -> str:
    from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder
    from stellar_sdk.exceptions import BadSignatureError

    from mpc.chains import stellar

    to = Keypair.from_raw_ed25519_seed(_label("xlm to")).public_key
    envelope = (TransactionBuilder(Account(addresses["stellar"], 1), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
                .append_payment_op(to, Asset.native(), "10").add_text_memo("portal-mpc demo").set_timeout(300).build())
    signed = stellar.sign_envelope(signer, envelope)
    wallet = Keypair.from_public_key(addresses["stellar"])
    decorated = signed.signatures[0]
    _require(decorated.signature_hint == wallet.signature_hint(), "stellar-sdk",
             "finds a signature hint of another key")
    try:
        wallet.verify(signed.hash(), decorated.signature)
    except BadSignatureError:
        raise DemoCheckFailed("NOT verified: stellar-sdk rejects the envelope's signature") from None
    return (f"XLM payment on testnet, 10 XLM: {_short(signed.to_xdr())} (envelope hash "
            f"{_short(signed.hash_hex(), 12)}), verified by stellar-sdk: signed by {wallet.public_key} (the wallet)")


_CHAINS = {"ethereum": ("evm", _ethereum), "bitcoin": ("bitcoin", _bitcoin), "tron": ("tron", _tron),
           "solana": ("solana", _solana), "stellar": ("stellar", _stellar)}


def show_transactions(signer: Signer, addresses: dict[str, str], say: Say) -> int:
    """Sign, verify and print one transaction per chain (a chain whose library is missing is
    skipped); returns how many transactions a chain library did not verify."""
    failed = 0
    say("chain transactions", "built and verified with each chain's own library (made-up inputs, "
        "nothing broadcast)")
    for chain, (adapter, make) in _CHAINS.items():
        try:
            importlib.import_module(f"mpc.chains.{adapter}")  # names the extra to install if missing
            say(f"{chain} transaction", make(signer, addresses))
        except ImportError as exc:  # ChainLibraryMissing is one; so is a missing verifier library
            say(f"{chain} transaction", f"skipped ({exc})")
        except DemoCheckFailed as exc:
            failed += 1
            say(f"{chain} transaction", str(exc))
        except EngineError as exc:  # the adapter's own checks refused the signature (SignFailed, ...)
            failed += 1
            say(f"{chain} transaction", f"NOT signed: {exc.code}: {exc.message}")
    return failed
