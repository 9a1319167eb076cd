"""``python -m mpc demo``'s chain transactions: each one signed, then verified by its chain's library."""

from __future__ import annotations

import pytest

from mpc.chains._demo import show_transactions

for library in ("eth_account", "embit", "tronpy", "solders", "stellar_sdk"):
    pytest.importorskip(library)

VERIFIERS = {
    "ethereum": "verified by eth-account: recovered sender = {address} (the wallet)",
    "bitcoin": "verified by embit: input signed by the key of {address} (the wallet)",
    "tron": "verified by tronpy: recovered signer = {address} (the wallet)",
    "solana": "verified by solders: Transaction.verify() passes, signer and fee payer = {address} (the wallet)",
    "stellar": "verified by stellar-sdk: signed by {address} (the wallet)",
}


def test_every_transaction_line_names_the_library_that_verified_it(wallet) -> None:
    lines: dict[str, str] = {}
    failed = show_transactions(wallet.signer, wallet.addresses, lambda step, detail: lines.setdefault(step, detail))
    assert failed == 0
    for chain, verifier in VERIFIERS.items():
        line = lines[f"{chain} transaction"]
        assert line.endswith(verifier.format(address=wallet.addresses[chain])), line
        assert len(line) < 300  # the wire form is abbreviated, not dumped


def test_a_transaction_the_library_does_not_verify_is_reported_and_counted(wallet) -> None:
    """The wallet signs, but the addresses shown are of another Ethereum account: eth-account's
    recovered sender does not match, and the line says so instead of "verified"."""
    other = {"ethereum": "0x" + "11" * 20, "bitcoin": wallet.addresses["bitcoin"], "tron": wallet.addresses["tron"],
             "solana": wallet.addresses["solana"], "stellar": wallet.addresses["stellar"]}
    lines: dict[str, str] = {}
    failed = show_transactions(wallet.signer, other, lambda step, detail: lines.setdefault(step, detail))
    assert failed == 1
    assert lines["ethereum transaction"].startswith("NOT verified: eth-account recovers sender ")
