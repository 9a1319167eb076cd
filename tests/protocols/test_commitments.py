"""Hash commitments bound to protocol, session and party."""

from __future__ import annotations

import pytest

from protocols.commitments import commit, verify_opening
from protocols.errors import ProofError

SID = b"\x05" * 32


def test_open_verifies():
    c, nonce = commit("p", SID, 1, b"value")
    verify_opening("p", SID, 1, c, b"value", nonce)


@pytest.mark.parametrize(
    "change",
    [
        dict(value=b"other"),
        dict(protocol="q"),
        dict(session_id=b"\x06" * 32),
        dict(party=2),
        dict(nonce=b"\x00" * 32),
        dict(nonce=b"\x00" * 31),
    ],
)
def test_any_change_breaks_the_opening(change):
    c, nonce = commit("p", SID, 1, b"value")
    args = dict(protocol="p", session_id=SID, party=1, commitment=c, value=b"value", nonce=nonce)
    args.update(change)
    with pytest.raises(ProofError):
        verify_opening(**args)


def test_commitments_are_hiding_by_fresh_nonce():
    assert commit("p", SID, 1, b"v")[0] != commit("p", SID, 1, b"v")[0]
