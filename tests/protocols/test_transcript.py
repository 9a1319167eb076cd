"""Fiat-Shamir transcripts: unambiguous encoding, binding, challenge ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import UsageError
from protocols.transcript import Transcript, encode_int

SID = b"\x01" * 32


def challenge(items, domain="t") -> bytes:
    t = Transcript(domain)
    for label, value in items:
        t.append_bytes(label, value)
    return t.challenge_bytes("c", 32)


def test_moving_bytes_between_items_changes_the_challenge():
    # The α-shuffle ambiguity: ("ab","c") and ("a","bc") must never collide.
    assert challenge([("x", b"ab"), ("y", b"c")]) != challenge([("x", b"a"), ("y", b"bc")])
    assert challenge([("xy", b"")]) != challenge([("x", b"y")])
    assert challenge([("x", b"1")]) != challenge([("x", b"1")], domain="u")


@settings(max_examples=200, deadline=None)
@given(a=st.lists(st.tuples(st.text(max_size=3), st.binary(max_size=4)), max_size=4),
       b=st.lists(st.tuples(st.text(max_size=3), st.binary(max_size=4)), max_size=4))
def test_distinct_item_lists_give_distinct_challenges(a, b):
    if a != b:
        assert challenge(a) != challenge(b)


def test_integers_are_signed_and_minimal():
    assert encode_int(0) == b"\x00"
    assert encode_int(1) == b"\x00\x01"
    assert encode_int(-1) == b"\x01\x01"
    assert encode_int(256) == b"\x00\x01\x00"
    t1, t2 = Transcript("t"), Transcript("t")
    t1.append_int("n", 5)
    t2.append_int("n", -5)
    assert t1.challenge_bytes("c", 16) != t2.challenge_bytes("c", 16)
    with pytest.raises(UsageError):
        t1.append_int("n", True)


def test_int_lists_are_unambiguous():
    t1, t2 = Transcript("t"), Transcript("t")
    t1.append_ints("l", [1, 2])
    t2.append_ints("l", [258])
    assert t1.challenge_bytes("c", 16) != t2.challenge_bytes("c", 16)


def test_context_binds_every_field():
    base = dict(protocol="p", session_id=SID, round=1, parties=[1, 2])
    variants = [
        base,
        {**base, "protocol": "q"},
        {**base, "session_id": b"\x02" * 32},
        {**base, "round": 2},
        {**base, "parties": [1, 3]},
    ]
    outs = {Transcript.for_context("d", **v).challenge_bytes("c", 32) for v in variants}
    assert len(outs) == len(variants)


def test_successive_challenges_differ_and_copies_are_independent():
    t = Transcript("t")
    fork = t.copy()
    first = t.challenge_bytes("c", 32)
    assert t.challenge_bytes("c", 32) != first
    assert fork.challenge_bytes("c", 32) == first


@settings(max_examples=100, deadline=None)
@given(bound=st.integers(2, 2**300), bits=st.integers(1, 300))
def test_challenge_ranges(bound, bits):
    t = Transcript("t")
    assert 0 <= t.challenge_int("i", bound) < bound
    assert -(2**bits) < t.challenge_signed("s", bits) < 2**bits


def test_usage_errors():
    with pytest.raises(UsageError):
        Transcript("t").challenge_int("i", 1)
    with pytest.raises(UsageError):
        Transcript("t").challenge_bytes("i", 0)
