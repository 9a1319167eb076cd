"""Tron adapter: transactions built with tronpy, signed by the two-party wallet, recovered with tronpy."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("tronpy")
pytest.importorskip("google.protobuf")
from tronpy import Tron  # noqa: E402
from tronpy.keys import Signature, to_base58check_address  # noqa: E402
from tronpy.proto import tron_pb2  # noqa: E402

from mpc.chains import tron  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402

FEW = settings(max_examples=6, deadline=None)
REF_BLOCK = "0000000003b2c1d2" + "ab" * 8 + "cd" * 4
# Offline building: no node is contacted (Tron() only configures a provider).
TRX = Tron(network="nile").trx
recipients = st.binary(min_size=20, max_size=20).map(lambda b: to_base58check_address(b"\x41" + b))


def _recovered_address(signed: tron.SignedTransaction) -> str:
    key = Signature(signed.signature).recover_public_key_from_msg_hash(bytes.fromhex(signed.txid))
    return key.to_base58check_address()


def test_transfer_matches_tronpys_txid_and_recovers_to_the_wallet(wallet):
    built = TRX.transfer(wallet.addresses["tron"], to_base58check_address(b"\x41" + b"\x07" * 20), 1234).build(
        offline=True, ref_block_id=REF_BLOCK)
    signed = tron.sign_transaction(wallet.signer, built.to_json())
    assert signed.txid == built.txid                  # same bytes as tronpy's own protobuf encoding
    assert _recovered_address(signed) == wallet.addresses["tron"]
    assert signed.signature[64] in (0, 1)
    # tronpy accepts the result as a transaction carrying the signature.
    signed_json = signed.to_json()
    assert len(signed_json["signature"]) == 1 and len(bytes.fromhex(signed_json["signature"][0])) == 65


@FEW
@given(amount=st.integers(1, 2**63 - 1), to=recipients, memo=st.binary(max_size=64), fee_limit=st.integers(0, 10**9))
def test_transfer_with_memo_signs_what_it_shows(wallet, amount, to, memo, fee_limit):
    built = TRX.transfer(wallet.addresses["tron"], to, amount).memo(memo).fee_limit(fee_limit).build(
        offline=True, ref_block_id=REF_BLOCK)
    request = {k: v for k, v in built.to_json().items() if k != "txID"}  # tronpy's offline txID omits the memo
    signed = tron.sign_transaction(wallet.signer, request)
    raw = tron_pb2.Transaction.raw.FromString(bytes.fromhex(signed.raw_data_hex))
    body = tron_pb2.TransferContract.FromString(raw.contract[0].parameter.value)
    assert (raw.data, body.amount, to_base58check_address(body.to_address)) == (memo, amount, to)
    assert to_base58check_address(body.owner_address) == wallet.addresses["tron"]
    assert signed.txid == hashlib.sha256(bytes.fromhex(signed.raw_data_hex)).hexdigest()
    assert _recovered_address(signed) == wallet.addresses["tron"]


def test_trc20_call_recovers_to_the_wallet(wallet):
    owner = tron.decode_address(wallet.addresses["tron"], "owner").hex()
    call_data = "a9059cbb" + "00" * 12 + "11" * 20 + (10**6).to_bytes(32, "big").hex()  # transfer(to, 1 USDT)
    raw_data = {
        "contract": [{"parameter": {"value": {"owner_address": owner, "contract_address": "41" + "a6" * 20,
                                              "data": call_data},
                                    "type_url": "type.googleapis.com/protocol.TriggerSmartContract"},
                      "type": "TriggerSmartContract"}],
        "ref_block_bytes": "c1d2", "ref_block_hash": "ab" * 8, "expiration": 1_700_000_060_000,
        "timestamp": 1_700_000_000_000, "fee_limit": 30_000_000,
    }
    signed = tron.sign_transaction(wallet.signer, {"raw_data": raw_data})
    assert _recovered_address(signed) == wallet.addresses["tron"]
    again = tron.sign_transaction(wallet.signer, signed.to_json() | {"signature": []})
    assert again.raw_data_hex == signed.raw_data_hex


def _request(wallet, **raw_changes) -> dict:
    built = TRX.transfer(wallet.addresses["tron"], to_base58check_address(b"\x41" + b"\x07" * 20), 5).build(
        offline=True, ref_block_id=REF_BLOCK)
    request = built.to_json()
    request["raw_data"] = {**request["raw_data"], **raw_changes}
    return request


def _with_value(wallet, **value_changes) -> dict:
    request = _request(wallet)
    contract = request["raw_data"]["contract"][0]
    value = {**contract["parameter"]["value"], **value_changes}
    request["raw_data"]["contract"] = [{**contract, "parameter": {**contract["parameter"], "value": value}}]
    request.pop("txID")
    return request


@pytest.mark.parametrize("make", [
    lambda w: _with_value(w, owner_address="41" + "07" * 20),   # not the wallet's transaction
    lambda w: _with_value(w, amount=0),
    lambda w: _with_value(w, amount=-5),                          # negative amount
    lambda w: _with_value(w, amount="5"),                         # non-integer amount
    lambda w: _with_value(w, amount=2**63),
    lambda w: _with_value(w, to_address="T" + "1" * 33),          # wrong address format
    lambda w: _with_value(w, to_address="0x" + "07" * 20),
    lambda w: _with_value(w, extra=1),
    lambda w: _request(w, expiration=0),
    lambda w: _request(w, ref_block_hash="ab"),
    lambda w: _request(w, contract=[]),
    lambda w: _request(w, unknown=1),
    lambda w: {k: v for k, v in _request(w).items() if k != "txID"} | {"raw_data_hex": "0a02c1d2"},  # shows another tx
    lambda w: _request(w) | {"txID": "00" * 32},
    lambda w: {"raw_data_hex": _request(w)["txID"]},              # missing raw_data
])
def test_malformed_transactions_are_refused_before_signing(wallet, make):
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        tron.sign_transaction(recording, make(wallet))
    assert recording.signed == []
