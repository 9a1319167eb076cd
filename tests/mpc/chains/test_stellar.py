"""Stellar adapter: envelopes built with stellar-sdk, signed by the two-party wallet, verified by stellar-sdk."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("stellar_sdk")
from stellar_sdk import Account, Asset, Keypair, Network, TransactionBuilder, TransactionEnvelope  # noqa: E402
from stellar_sdk.exceptions import BadSignatureError  # noqa: E402

from mpc.chains import stellar  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402

FEW = settings(max_examples=8, deadline=None)
recipients = st.binary(min_size=32, max_size=32).map(lambda seed: Keypair.from_raw_ed25519_seed(seed).public_key)
amounts = st.integers(1, 10**15).map(lambda stroops: Decimal(stroops) / 10**7)
passphrases = st.sampled_from([Network.TESTNET_NETWORK_PASSPHRASE, Network.PUBLIC_NETWORK_PASSPHRASE])


def _payment(source: str, to: str, amount: Decimal, sequence: int, memo: str, passphrase: str) -> TransactionEnvelope:
    builder = TransactionBuilder(Account(source, sequence), passphrase, base_fee=100)
    builder.append_payment_op(to, Asset.native(), amount)
    if memo:
        builder.add_text_memo(memo)
    return builder.set_timeout(300).build()


@FEW
@given(to=recipients, amount=amounts, sequence=st.integers(0, 2**62), passphrase=passphrases,
       memo=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=28))
def test_payment_signature_verifies_and_xdr_round_trips(wallet, to, amount, sequence, memo, passphrase):
    me = wallet.addresses["stellar"]
    envelope = _payment(me, to, amount, sequence, memo, passphrase)
    signed = stellar.sign_envelope(wallet.signer, envelope)
    (decorated,) = signed.signatures
    Keypair.from_public_key(me).verify(envelope.hash(), decorated.signature)
    assert decorated.signature_hint == Keypair.from_public_key(me).signature_hint()
    xdr = signed.to_xdr()
    parsed = TransactionEnvelope.from_xdr(xdr, passphrase)
    assert parsed.to_xdr() == xdr and parsed.hash() == envelope.hash()
    assert envelope.signatures == []                   # the caller's envelope is not changed


def test_signature_is_bound_to_the_network_passphrase(wallet):
    me = wallet.addresses["stellar"]
    envelope = _payment(me, me, Decimal("1"), 7, "", Network.TESTNET_NETWORK_PASSPHRASE)
    signed_xdr = stellar.sign_envelope_xdr(wallet.signer, envelope.to_xdr(), Network.TESTNET_NETWORK_PASSPHRASE)
    on_public = TransactionEnvelope.from_xdr(signed_xdr, Network.PUBLIC_NETWORK_PASSPHRASE)
    with pytest.raises(BadSignatureError):
        Keypair.from_public_key(me).verify(on_public.hash(), on_public.signatures[0].signature)


def test_operation_source_is_enough(wallet):
    other = Keypair.from_raw_ed25519_seed(b"\x09" * 32).public_key
    builder = TransactionBuilder(Account(other, 1), Network.TESTNET_NETWORK_PASSPHRASE, base_fee=100)
    builder.append_payment_op(other, Asset.native(), "2", source=wallet.addresses["stellar"])
    envelope = builder.set_timeout(300).build()
    signed = stellar.sign_envelope(wallet.signer, envelope)
    Keypair.from_public_key(wallet.addresses["stellar"]).verify(envelope.hash(), signed.signatures[0].signature)


def test_malformed_requests_are_refused_before_signing(wallet):
    other = Keypair.from_raw_ed25519_seed(b"\x09" * 32).public_key
    not_ours = _payment(other, other, Decimal("1"), 1, "", Network.TESTNET_NETWORK_PASSPHRASE)
    recording = wallet.recording()
    with pytest.raises(InputInvalid):
        stellar.sign_envelope(recording, not_ours)                 # the wallet has no say in it
    with pytest.raises(InputInvalid):
        stellar.sign_envelope(recording, not_ours.to_xdr())        # XDR text given to the object API
    with pytest.raises(InputInvalid):
        stellar.sign_envelope_xdr(recording, "not xdr", Network.TESTNET_NETWORK_PASSPHRASE)
    with pytest.raises(InputInvalid):
        stellar.sign_envelope_xdr(recording, not_ours.to_xdr(), "")
    assert recording.signed == []
