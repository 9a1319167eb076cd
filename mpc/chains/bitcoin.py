"""Bitcoin: spend P2WPKH outputs of the wallet (BIP141 native segwit v0).

Extra ``bitcoin`` (embit: transaction encoding, BIP143 sighash, address decoding). For every
input i the wallet signs the BIP143 digest with SIGHASH_ALL, computed by embit's
``Transaction.sighash_segwit``:

  double-SHA256( nVersion ‖ hashPrevouts ‖ hashSequence ‖ outpoint_i
                 ‖ scriptCode_i = 0x19 76 a9 14 ‖ HASH160(pubkey) ‖ 88 ac   (P2PKH form of the program)
                 ‖ amount_i (8 bytes LE) ‖ nSequence_i ‖ hashOutputs ‖ nLockTime ‖ 0x01000000 )

and the witness is [DER(r, s) with low-s ‖ 0x01, 33-byte compressed public key]. The spent
amount is part of the digest, so a wrong UTXO amount gives a signature the network rejects
rather than an overpaid fee.

Refused before anything is signed (``InputInvalid``): no inputs or outputs, a duplicated
outpoint, a txid that is not 32 bytes of hex, amounts that are not integers in
[1, 21·10^14] sats (outputs) or that overdraw the inputs, an output address that does not decode
for the chosen network, a UTXO paid to anything but the wallet's P2WPKH address on that
network, and (when ``max_fee`` is given) a fee above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpc.addresses import segwit_address
from mpc.chains._common import import_library, require_fields, require_hex_bytes, require_int, require_mapping
from mpc.chains.signer import Signer, sign_ecdsa
from mpc.errors import InputInvalid

_base58 = import_library("embit.base58", distribution="embit", extra="bitcoin")
_bech32 = import_library("embit.bech32", distribution="embit", extra="bitcoin")
_hashes = import_library("embit.hashes", distribution="embit", extra="bitcoin")
_networks = import_library("embit.networks", distribution="embit", extra="bitcoin")
_script = import_library("embit.script", distribution="embit", extra="bitcoin")
_transaction = import_library("embit.transaction", distribution="embit", extra="bitcoin")

__all__ = [
    "Utxo",
    "Output",
    "SignedTransaction",
    "NETWORKS",
    "MAX_MONEY",
    "wallet_address",
    "output_script",
    "p2wpkh_sighash",
    "sign_p2wpkh_spend",
]

CHAIN = "bitcoin"
MAX_MONEY = 21_000_000 * 100_000_000
NETWORKS = ("main", "test", "signet", "regtest")
SEQUENCE_RBF = 0xFFFFFFFD  # BIP125 opt-in replace-by-fee, and nLockTime stays enforced
SIGHASH_ALL = 1


@dataclass(frozen=True)
class Utxo:
    """An output of the wallet to spend: ``txid`` in the usual (display, big-endian) hex."""

    txid: str
    vout: int
    amount: int
    address: str


@dataclass(frozen=True)
class Output:
    """A payment: ``amount`` sats to ``address`` (any standard address of the network)."""

    address: str
    amount: int


@dataclass(frozen=True)
class SignedTransaction:
    """The signed transaction: ``raw`` for ``sendrawtransaction``, ``txid`` in display hex."""

    raw: bytes
    txid: str
    fee: int

    @property
    def hex(self) -> str:
        """The signed transaction as hex, ready for ``sendrawtransaction``."""
        return self.raw.hex()


def _network(network: str) -> Mapping[str, Any]:
    if network not in NETWORKS:
        raise InputInvalid(f"network must be one of {', '.join(NETWORKS)}")
    params: Mapping[str, Any] = _networks.NETWORKS[network]
    return params


def wallet_address(public_key: bytes, network: str = "main") -> str:
    """The wallet's P2WPKH address on ``network`` (``bc1q…``, ``tb1q…``, ``bcrt1q…``)."""
    return segwit_address(_network(network)["bech32"], 0, _hashes.hash160(bytes(public_key)))


def output_script(address: str, network: str = "main") -> Any:
    """embit ``Script`` of a P2PKH, P2SH, segwit v0 or taproot address, checked against ``network``."""
    params = _network(network)
    if not isinstance(address, str) or not address:
        raise InputInvalid("an address is a non-empty string")
    version, program = _bech32.decode(params["bech32"], address)  # (None, None) unless valid for this hrp
    if version is not None:
        if version > 1 or (version == 1 and len(program) != 32):
            raise InputInvalid("only segwit v0 and v1 (taproot) outputs are supported")
        return _script.Script(bytes([version + 0x50 if version else 0, len(program)]) + bytes(program))
    try:
        payload = _base58.decode_check(address)
    except Exception:  # embit raises ValueError or its own errors for bad characters and checksums
        raise InputInvalid(f"{address!r} is not a {params['name']} address") from None
    if len(payload) == 21 and payload[:1] == params["p2pkh"]:
        return _script.Script(b"\x76\xa9\x14" + payload[1:] + b"\x88\xac")
    if len(payload) == 21 and payload[:1] == params["p2sh"]:
        return _script.Script(b"\xa9\x14" + payload[1:] + b"\x87")
    raise InputInvalid(f"{address!r} is not a {params['name']} address")


def _utxo(value: Utxo | Mapping[str, Any], owned: str) -> Utxo:
    if not isinstance(value, Utxo):
        require_mapping(value, "utxo")
        require_fields(value, "utxo", {"txid", "vout", "amount", "address"})
        value = Utxo(value["txid"], value["vout"], value["amount"], value["address"])
    if not isinstance(value.txid, str):
        raise InputInvalid("utxo txid must be a hex string")
    require_hex_bytes(value.txid, "utxo txid", length=32)
    require_int(value.vout, "utxo vout", maximum=0xFFFFFFFF)
    require_int(value.amount, "utxo amount", minimum=1, maximum=MAX_MONEY)
    if value.address != owned:
        raise InputInvalid(f"utxo {value.txid}:{value.vout} is not paid to the wallet's address {owned}")
    return value


def _output(value: Output | Mapping[str, Any], network: str) -> tuple[Output, Any]:
    if not isinstance(value, Output):
        require_mapping(value, "output")
        require_fields(value, "output", {"address", "amount"})
        value = Output(value["address"], value["amount"])
    require_int(value.amount, "output amount", minimum=1, maximum=MAX_MONEY)
    return value, output_script(value.address, network)


def p2wpkh_sighash(tx: Any, index: int, public_key: bytes, amount: int) -> bytes:
    """BIP143 SIGHASH_ALL digest of input ``index`` of an embit transaction spending P2WPKH(public_key)."""
    script_code = _script.p2pkh_from_p2wpkh(_script.Script(b"\x00\x14" + _hashes.hash160(bytes(public_key))))
    return bytes(tx.sighash_segwit(index, script_code, amount, SIGHASH_ALL))


def _build(utxos: list[Utxo], outputs: list[tuple[Output, Any]], sequence: int, locktime: int) -> Any:
    vin = [_transaction.TransactionInput(bytes.fromhex(u.txid), u.vout, sequence=sequence) for u in utxos]
    vout = [_transaction.TransactionOutput(o.amount, script) for o, script in outputs]
    return _transaction.Transaction(version=2, vin=vin, vout=vout, locktime=locktime)


def sign_p2wpkh_spend(
    signer: Signer,
    utxos: Sequence[Utxo | Mapping[str, Any]],
    outputs: Sequence[Output | Mapping[str, Any]],
    *,
    network: str = "main",
    max_fee: int | None = None,
    sequence: int = SEQUENCE_RBF,
    locktime: int = 0,
) -> SignedTransaction:
    """Spend the wallet's ``utxos`` to ``outputs``; the fee is what the outputs leave over."""
    public_key = bytes(signer.public_key("secp256k1"))
    owned = wallet_address(public_key, network)
    if not isinstance(utxos, Sequence) or not isinstance(outputs, Sequence) or not utxos or not outputs:
        raise InputInvalid("a spend needs at least one utxo and one output")
    inputs = [_utxo(u, owned) for u in utxos]
    if len({(u.txid.lower(), u.vout) for u in inputs}) != len(inputs):
        raise InputInvalid("a utxo is listed twice")
    payments = [_output(o, network) for o in outputs]
    require_int(sequence, "sequence", maximum=0xFFFFFFFF)
    require_int(locktime, "locktime", maximum=0xFFFFFFFF)
    fee = sum(u.amount for u in inputs) - sum(o.amount for o, _ in payments)
    if fee < 0:
        raise InputInvalid("the outputs spend more than the utxos hold")
    if max_fee is not None and fee > require_int(max_fee, "max_fee"):
        raise InputInvalid(f"the fee of {fee} sats exceeds max_fee")
    tx = _build(inputs, payments, sequence, locktime)
    for index, utxo in enumerate(inputs):
        der = sign_ecdsa(signer, CHAIN, p2wpkh_sighash(tx, index, public_key, utxo.amount)).to_der()
        tx.vin[index].witness = _script.Witness([der + bytes([SIGHASH_ALL]), public_key])
    return SignedTransaction(tx.serialize(), tx.txid().hex(), fee)
