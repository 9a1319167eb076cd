"""KeyShare byte format: round trip, and strict rejection of anything malformed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols.frost as frost
from protocols.errors import InvalidMessage, UsageError
from protocols.frost.keys import KeyShare


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 5), data=st.data())
def test_round_trip(n: int, data) -> None:
    t = data.draw(st.integers(2, n))
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


def test_threshold_one_is_refused_everywhere() -> None:
    """RFC 9591 needs 2 ≤ MIN_PARTICIPANTS ≤ MAX_PARTICIPANTS: with t = 1 any single party holds the key."""
    from curves import SecretScalar
    from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE

    shares = frost.trusted_dealer_keygen(2, 3)
    for make in (
        lambda: frost.dkg(1, 3),
        lambda: frost.DKGSession(bytes(32), 1, (1, 2, 3), 1),
        lambda: frost.trusted_dealer_keygen(1, 3),
        lambda: frost.trusted_dealer_keygen(1, 1),
        lambda: frost.split_secret(SecretScalar.random(SUITE.group), 1, (1, 2, 3)),
        lambda: frost.reshare(shares[:2], 1, (1, 2, 3)),
    ):
        with pytest.raises(UsageError, match="t = 1 is refused: t must be at least 2 .*holds the whole key"):
            make()
    with pytest.raises(UsageError, match="t = 3 is more than the n = 2 participants"):
        frost.dkg(3, 2)


@pytest.mark.parametrize("call", [
    lambda sh, sid: frost.SignSession(sid, sh[0], None, b"m"),
    lambda sh, sid: frost.SignSession(sid, sh[0], (1, "2"), b"m"),
    lambda sh, sid: frost.RefreshSession(sid, sh[0], [1, [2], 3]),
    lambda sh, sid: frost.DKGSession(sid, 1, 5, 2),
    lambda sh, sid: frost.DKGSession(sid, 1, (1, 2, 3), None),
    lambda sh, sid: frost.dkg(None, 3),
    lambda sh, sid: frost.trusted_dealer_keygen(None, 3),
    lambda sh, sid: frost.split_secret(None, 2, [1, 2]),  # type: ignore[arg-type]
    lambda sh, sid: frost.reshare(sh[:2], None, [1, 2, 3]),
    lambda sh, sid: frost.reshare(sh[:2], 2, None),
    lambda sh, sid: frost.ReshareSession(sid, 3, dealers=(1, 2), receivers=(1, 2, 3), new_threshold=None,
                                         group_public_key=sh[0].group_public_key,
                                         old_verifying_shares=sh[0].verifying_shares),
    lambda sh, sid: frost.ReshareSession(sid, 6, dealers=(1, 2), receivers=(1, 2, 6), new_threshold=2,
                                         group_public_key=sh[0].group_public_key, old_verifying_shares=[1, 2, 3]),
    lambda sh, sid: frost.ReshareSession(sid, 6, dealers=(1, 2), receivers=(1, 2, 6), new_threshold=2,
                                         group_public_key=b"junk", old_verifying_shares=sh[0].verifying_shares),
    lambda sh, sid: frost.ReshareSession(sid, 6, dealers=(1, 2), receivers=(1, 2, 6), new_threshold=2,
                                         group_public_key=sh[0].group_public_key,
                                         old_verifying_shares={1: b"x", 2: b"y"}),
])
def test_arguments_of_the_wrong_kind_are_a_usage_error(call) -> None:
    """Sessions and helpers given signer sets, thresholds, keys or verifying shares of the wrong
    kind refuse them at once (``UsageError``; bare ``TypeError``, ``AttributeError`` or
    ``IndexError`` before, found by fuzzing)."""
    with pytest.raises(UsageError):
        call(frost.trusted_dealer_keygen(2, 3), bytes(32))


def test_duplicate_signer_is_named() -> None:
    shares = frost.trusted_dealer_keygen(2, 3)
    with pytest.raises(UsageError, match="duplicate signer identifier 1"):
        frost.sign([shares[0], shares[0]], b"m")
    with pytest.raises(UsageError, match="duplicate signer identifier 2"):
        frost.SignSession(bytes(32), shares[1], (2, 2, 3), b"m")
    with pytest.raises(UsageError, match="duplicate identifier 2"):
        frost.refresh([shares[1], shares[1]])


def test_sessions_name_the_share_type_they_expect() -> None:
    share = frost.trusted_dealer_keygen(2, 2)[0]
    sid = bytes(32)
    for make in (
        lambda: frost.SignSession(sid, share.to_bytes(), (1, 2), b"m"),  # type: ignore[arg-type]
        lambda: frost.InitiatorSession(sid, share.to_bytes(), 2, b"m"),  # type: ignore[arg-type]
        lambda: frost.ResponderSession(sid, share.to_bytes(), 1, b"m"),  # type: ignore[arg-type]
        lambda: frost.RefreshSession(sid, share.to_bytes(), (1, 2)),  # type: ignore[arg-type]
        lambda: frost.ReshareSession(sid, 1, dealers=(1, 2), receivers=(1, 2), new_threshold=2,
                                     key_share=share.to_bytes()),  # type: ignore[arg-type]
        lambda: frost.sign([share, share.to_bytes()], b"m"),  # type: ignore[list-item]
    ):
        with pytest.raises(UsageError, match="KeyShare expected, got bytes"):
            make()
