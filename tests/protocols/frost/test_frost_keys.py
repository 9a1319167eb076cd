"""KeyShare byte format: round trip, and strict rejection of anything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.frost as frost
from protocols.errors import InvalidMessage, UsageError
from protocols.frost.keys import KeyShare


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 5), data=st.data())
def test_round_trip(n: int, data) -> None:
    t = data.draw(st.integers(1, n))
    for share in frost.trusted_dealer_keygen(t, n):
        data_bytes = share.to_bytes()
        parsed = KeyShare.from_bytes(data_bytes)
        assert parsed.to_bytes() == data_bytes
        assert parsed.public_key == share.public_key and len(parsed.public_key) == 32
        assert parsed.verifying_shares == share.verifying_shares
        assert parsed.signing_share == share.signing_share


def test_every_single_byte_change_is_rejected() -> None:
    share = frost.trusted_dealer_keygen(2, 3)[1]
    data = share.to_bytes()
    for i in range(len(data)):
        for mask in (0x01, 0x80):
            corrupted = data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
            with pytest.raises(InvalidMessage):
                KeyShare.from_bytes(corrupted)


@pytest.mark.parametrize("cut", [0, 1, 8, 20, -1, -32])
def test_truncated_or_extended_is_rejected(cut: int) -> None:
    data = frost.trusted_dealer_keygen(2, 2)[0].to_bytes()
    with pytest.raises(InvalidMessage):
        KeyShare.from_bytes(data[:cut])
    with pytest.raises(InvalidMessage):
        KeyShare.from_bytes(data + b"\x00")
    with pytest.raises(InvalidMessage):
        KeyShare.from_bytes("not bytes")  # type: ignore[arg-type]


def test_share_of_another_key_is_rejected() -> None:
    a, b = frost.trusted_dealer_keygen(2, 2), frost.trusted_dealer_keygen(2, 2)
    data = a[0].to_bytes()
    with pytest.raises(InvalidMessage):
        KeyShare.from_bytes(data[:-32] + b[0].public_key)  # wrong group key for these shares


def test_secret_never_in_repr() -> None:
    share = frost.trusted_dealer_keygen(2, 2)[0]
    secret_hex = share.signing_share.to_bytes().hex()
    assert secret_hex not in repr(share) and secret_hex not in str(share)
    assert str(share.signing_share.value) not in repr(share)


def test_bad_parameters_refused() -> None:
    with pytest.raises(UsageError):
        frost.trusted_dealer_keygen(3, 2)
    with pytest.raises(UsageError):
        frost.trusted_dealer_keygen(0, 2)
    with pytest.raises(UsageError):
        frost.dkg(3, 2)
