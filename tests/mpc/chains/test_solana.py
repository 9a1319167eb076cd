"""Solana adapter: messages built with solders, signed by the two-party wallet, verified by solders."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("solders")
from solders.hash import Hash  # noqa: E402
from solders.instruction import Instruction  # noqa: E402
from solders.message import Message, MessageV0  # noqa: E402
from solders.pubkey import Pubkey  # noqa: E402
from solders.signature import Signature  # noqa: E402
from solders.system_program import TransferParams, transfer  # noqa: E402

from mpc.chains import solana  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402

FEW = settings(max_examples=8, deadline=None)
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TsNSCz7cWDoBBw5sWcmuBn")
keys = st.binary(min_size=32, max_size=32).map(Pubkey.from_bytes)
blockhashes = st.binary(min_size=32, max_size=32).filter(any).map(Hash)


def _instructions(me: Pubkey, to: Pubkey, lamports: int, memo: bytes) -> list[Instruction]:
    pay = transfer(TransferParams(from_pubkey=me, to_pubkey=to, lamports=lamports))
    return [pay, Instruction(MEMO_PROGRAM, memo, [])] if memo else [pay]


@FEW
@given(to=keys, lamports=st.integers(0, 2**64 - 1), blockhash=blockhashes, memo=st.binary(max_size=64))
def test_legacy_transfer_verifies(wallet, to, lamports, blockhash, memo):
    me = Pubkey.from_string(wallet.addresses["solana"])
    message = Message.new_with_blockhash(_instructions(me, to, lamports, memo), me, blockhash)
    tx = solana.sign_message(wallet.signer, message)
    tx.verify()                                         # raises unless every signature verifies
    assert tx.message == message and tx.signatures[0] != Signature.default()


@FEW
@given(to=keys, lamports=st.integers(0, 2**64 - 1), blockhash=blockhashes)
def test_v0_transfer_verifies(wallet, to, lamports, blockhash):
    me = Pubkey.from_string(wallet.addresses["solana"])
    message = MessageV0.try_compile(me, _instructions(me, to, lamports, b""), [], blockhash)
    tx = solana.sign_message(wallet.signer, message)
    assert tx.verify_with_results() == [True]


def test_second_signer_slot_is_filled_and_others_left_default(wallet):
    me = Pubkey.from_string(wallet.addresses["solana"])
    payer = Pubkey.from_bytes(b"\x05" * 32)
    message = Message.new_with_blockhash([transfer(TransferParams(from_pubkey=me, to_pubkey=payer, lamports=1))],
                                         payer, Hash(b"\x01" * 32))
    tx = solana.sign_message(wallet.signer, message)
    assert tx.signatures[0] == Signature.default()
    assert tx.verify_with_results() == [False, True]


@pytest.mark.parametrize("make", [
    lambda me: bytes(Message.new_with_blockhash([], me, Hash(b"\x01" * 32))),            # bytes, not a message
    lambda me: Message.new_with_blockhash([], me, Hash.default()),                     # no recent blockhash
    lambda me: Message.new_with_blockhash(                                               # wallet not a signer
        [transfer(TransferParams(from_pubkey=Pubkey.from_bytes(b"\x05" * 32), to_pubkey=me, lamports=1))],
        Pubkey.from_bytes(b"\x05" * 32), Hash(b"\x01" * 32)),
])
def test_malformed_requests_are_refused_before_signing(wallet, make):
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        solana.sign_message(recording, make(Pubkey.from_string(wallet.addresses["solana"])))
    assert recording.signed == []
