"""Bitcoin adapter: P2WPKH spends signed by the two-party wallet, each input checked with embit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("embit")
from embit import ec  # noqa: E402
from embit.hashes import hash160  # noqa: E402
from embit.script import Script, p2pkh_from_p2wpkh  # noqa: E402
from embit.transaction import Transaction  # noqa: E402

from mpc.addresses import base58check_encode, segwit_address  # noqa: E402
from mpc.chains import bitcoin  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402
from protocols.ecdsa2p.signature import HALF_Q  # noqa: E402

FEW = settings(max_examples=6, deadline=None)


def test_sighash_matches_the_bip143_native_p2wpkh_example():
    # BIP143 "Native P2WPKH" example: input 1 spends 6 BTC from P2WPKH(025476c2...).
    unsigned = bytes.fromhex(
        "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffff"
        "ef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206"
        "000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42db"
        "ee7e4dbe6a21b2d50ce2f0167faa815988ac11000000")
    pubkey = bytes.fromhex("025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357")
    sighash = bitcoin.p2wpkh_sighash(Transaction.parse(unsigned), 1, pubkey, 600_000_000)
    assert sighash.hex() == "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670"


def _is_strict_der_low_s(sig: bytes) -> bool:
    """BIP66 strict DER with the BIP146 low-s rule, as Bitcoin Core's policy checks it."""
    if len(sig) < 8 or sig[0] != 0x30 or sig[1] != len(sig) - 2 or sig[2] != 0x02:
        return False
    len_r = sig[3]
    r, rest = sig[4:4 + len_r], sig[4 + len_r:]
    if rest[0] != 0x02 or rest[1] != len(rest) - 2:
        return False
    s = rest[2:]
    for part in (r, s):
        if part[0] & 0x80 or (len(part) > 1 and part[0] == 0 and not part[1] & 0x80):
            return False
    return int.from_bytes(s, "big") <= HALF_Q


def _verify_every_input(raw: bytes, utxos: list[bitcoin.Utxo], network: str) -> Transaction:
    """Parse the raw transaction with embit and check each input's P2WPKH witness against its UTXO."""
    tx = Transaction.parse(raw)
    assert [(inp.txid.hex(), inp.vout) for inp in tx.vin] == [(u.txid, u.vout) for u in utxos]
    for index, utxo in enumerate(utxos):
        spent_script = bitcoin.output_script(utxo.address, network)
        sig, pubkey = tx.vin[index].witness.items
        assert tx.vin[index].script_sig.data == b""
        assert spent_script.data == b"\x00\x14" + hash160(pubkey)       # the witness key is the program's
        assert sig[-1] == 0x01 and _is_strict_der_low_s(sig[:-1])        # SIGHASH_ALL, DER, low-s
        digest = tx.sighash_segwit(index, p2pkh_from_p2wpkh(spent_script), utxo.amount)
        assert ec.PublicKey.parse(pubkey).verify(ec.Signature.parse(sig[:-1]), digest)
    return tx


recipients = st.one_of(
    st.binary(min_size=20, max_size=20).map(lambda h: ("p2wpkh", h)),
    st.binary(min_size=32, max_size=32).map(lambda h: ("p2wsh", h)),
    st.binary(min_size=20, max_size=20).map(lambda h: ("p2pkh", h)),
)


def _address(kind: str, program: bytes, network: str) -> str:
    hrp = {"main": "bc", "test": "tb", "regtest": "bcrt"}[network]
    if kind == "p2pkh":
        return base58check_encode((b"\x00" if network == "main" else b"\x6f") + program)
    return segwit_address(hrp, 0, program)


@FEW
@given(amounts=st.lists(st.integers(1, 10**9), min_size=1, max_size=3),
       payments=st.lists(st.tuples(recipients, st.integers(1, 10**6)), min_size=1, max_size=3),
       network=st.sampled_from(["main", "test", "regtest"]), seed=st.binary(min_size=32, max_size=32))
def test_spend_verifies_for_every_input(wallet, amounts, payments, network, seed):
    owned = bitcoin.wallet_address(wallet.signer.public_key("secp256k1"), network)
    utxos = [bitcoin.Utxo(bytes([i]).hex() + seed[1:].hex(), i, amount, owned) for i, amount in enumerate(amounts)]
    outputs = [bitcoin.Output(_address(kind, program, network), amount) for (kind, program), amount in payments]
    fee = sum(amounts) - sum(o.amount for o in outputs)
    if fee < 0:
        with pytest.raises(InputInvalid):
            bitcoin.sign_p2wpkh_spend(wallet.signer, utxos, outputs, network=network)
        return
    signed = bitcoin.sign_p2wpkh_spend(wallet.signer, utxos, outputs, network=network)
    tx = _verify_every_input(signed.raw, utxos, network)
    assert signed.fee == fee and signed.txid == tx.txid().hex()
    assert [(out.value, out.script_pubkey) for out in tx.vout] == [
        (o.amount, bitcoin.output_script(o.address, network)) for o in outputs]


def test_wallet_address_is_the_engines(wallet):
    assert bitcoin.wallet_address(wallet.signer.public_key("secp256k1")) == wallet.addresses["bitcoin"]


def test_taproot_and_p2sh_outputs_and_dict_requests(wallet):
    owned = wallet.addresses["bitcoin"]
    outputs = [{"address": segwit_address("bc", 1, b"\x11" * 32), "amount": 1000},
               {"address": base58check_encode(b"\x05" + b"\x22" * 20), "amount": 2000}]
    utxo = {"txid": "ab" * 32, "vout": 7, "amount": 5000, "address": owned}
    signed = bitcoin.sign_p2wpkh_spend(wallet.signer, [utxo], outputs, max_fee=2000)
    _verify_every_input(signed.raw, [bitcoin.Utxo(**utxo)], "main")
    assert Transaction.parse(signed.raw).vout[0].script_pubkey == Script(b"\x51\x20" + b"\x11" * 32)


def _good(owned: str) -> tuple[dict, dict]:
    return {"txid": "ab" * 32, "vout": 0, "amount": 10_000, "address": owned}, {"address": owned, "amount": 9_000}


@pytest.mark.parametrize(("utxo_change", "output_change", "kwargs"), [
    ({"address": segwit_address("bc", 0, b"\x01" * 20)}, {}, {}),   # UTXO not owned by the wallet
    ({"amount": -1}, {}, {}),                                       # negative amount
    ({"amount": 10_000.0}, {}, {}),                                 # non-integer amount
    ({"amount": True}, {}, {}),
    ({"amount": bitcoin.MAX_MONEY + 1}, {}, {}),
    ({"txid": "ab" * 31}, {}, {}),                                  # short txid
    ({"txid": b"\xab" * 32}, {}, {}),                               # txid must be hex text
    ({"vout": -1}, {}, {}),
    ({}, {"amount": 0}, {}),
    ({}, {"amount": 10_001}, {}),                                   # overspends
    ({}, {"address": segwit_address("tb", 0, b"\x01" * 20)}, {}),   # testnet address on mainnet
    ({}, {"address": "bc1qinvalid"}, {}),
    ({}, {"address": "1BoatSLRHtKNngkdXEeobR76b53LETtpyX"}, {}),    # bad base58 checksum
    ({}, {}, {"max_fee": 999}),                                     # fee of 1000 above the cap
    ({}, {}, {"network": "mainnet"}),
])
def test_malformed_spends_are_refused_before_signing(wallet, utxo_change, output_change, kwargs):
    utxo, output = _good(wallet.addresses["bitcoin"])
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        bitcoin.sign_p2wpkh_spend(recording, [{**utxo, **utxo_change}], [{**output, **output_change}], **kwargs)
    assert recording.signed == []


def test_duplicate_missing_and_empty_are_refused(wallet):
    utxo, output = _good(wallet.addresses["bitcoin"])
    recording = wallet.recording()
    for utxos, outputs in [([utxo, utxo], [output]), ([], [output]), ([utxo], []),
                           ([{k: v for k, v in utxo.items() if k != "address"}], [output])]:
        with pytest.raises(InputInvalid):
            bitcoin.sign_p2wpkh_spend(recording, utxos, outputs)
    assert recording.signed == []
