"""Share serialisation: round trips, strict rejection, and no secret in repr or str."""

from __future__ import annotations

import json

import pytest

from protocols import ecdsa2p
from protocols.ecdsa2p import P1KeyShare, P2KeyShare
from protocols.errors import InvalidMessage, UsageError
from tests.protocols.ecdsa2p.harness import copy_p1


def _edit(data: bytes, **changes: object) -> bytes:
    obj = json.loads(data)
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_round_trips(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    r1 = P1KeyShare.from_bytes(p1.to_bytes())
    assert r1.to_bytes() == p1.to_bytes() and r1.x1 == p1.x1 and r1.public_key == p1.public_key
    assert r1.paillier.p == p1.paillier.p and not r1.locked  # type: ignore[union-attr]
    r2 = P2KeyShare.from_bytes(p2.to_bytes())
    assert r2.to_bytes() == p2.to_bytes() and r2.c_key == p2.c_key and r2.paillier == p2.paillier


def test_lock_survives_serialisation(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    share = copy_p1(pair[0])
    share.lock()
    assert P1KeyShare.from_bytes(share.to_bytes()).locked
    assert not pair[0].locked


def test_rejects_non_canonical_and_malformed(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    for cls, data in ((P1KeyShare, p1.to_bytes()), (P2KeyShare, p2.to_bytes())):
        bad = [
            data + b" ",
            b" " + data,
            json.dumps(json.loads(data), indent=1).encode(),
            json.dumps(json.loads(data), sort_keys=False, separators=(",", ":")).encode()[::-1],
            data[:-1],
            data[: len(data) // 2],
            b"",
            b"[" * 100_000,
            b"null",
            _edit(data, v=1),
            _edit(data, v=3),
            _edit(data, v=True),
            _edit(data, v="1"),
            _edit(data, kind="ecdsa2p/p3-share"),
            _edit(data, extra=1),
            _edit(data, Q="02" + "00" * 32),
        ]
        other_kind = p2.to_bytes() if cls is P1KeyShare else p1.to_bytes()
        bad.append(other_kind)
        for item in bad:
            with pytest.raises(InvalidMessage):
                cls.from_bytes(item)


def test_rejects_a_secret_share_that_does_not_match_the_public_shares(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    # x1 must equal the discrete log of Q - Q2 (and x2 that of Q - Q1).
    with pytest.raises(InvalidMessage):
        P1KeyShare.from_bytes(_edit(p1.to_bytes(), x1=p2.x2.to_bytes().hex()))
    with pytest.raises(InvalidMessage):
        P1KeyShare.from_bytes(_edit(p1.to_bytes(), Q2=p1.q1.to_bytes().hex()))
    with pytest.raises(InvalidMessage):
        P2KeyShare.from_bytes(_edit(p2.to_bytes(), x2=p1.x1.to_bytes().hex()))
    with pytest.raises(InvalidMessage):
        P1KeyShare.from_bytes(_edit(p1.to_bytes(), locked="no"))
    with pytest.raises(InvalidMessage):
        P2KeyShare.from_bytes(_edit(p2.to_bytes(), c_key=None))
    with pytest.raises(InvalidMessage):
        P2KeyShare.from_bytes(_edit(p2.to_bytes(), c_key="00"))


def test_no_secret_in_repr_or_str(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    assert p1.paillier is not None
    secrets_hex = [
        p1.x1.to_bytes().hex(), p2.x2.to_bytes().hex(), f"{p1.x1.value:x}", f"{p2.x2.value:x}",
        f"{p1.paillier.p:x}", f"{p1.paillier.q:x}", str(p1.paillier.p), str(p1.x1.value),
    ]
    for shown in (repr(p1), str(p1), repr(p2), str(p2), repr(p1.paillier), repr(p1.x1)):
        for secret in secrets_hex:
            assert secret not in shown


def test_sessions_name_the_share_type_they_expect(pair: tuple[P1KeyShare, P2KeyShare], custodian_setup) -> None:
    """A share of the other party (or anything else) is a UsageError naming both types, not an
    AttributeError from deep inside the session."""
    from protocols.errors import UsageError

    p1, p2 = pair
    sid, digest = bytes(32), bytes(32)
    cases = [
        (lambda: ecdsa2p.SignP1(sid, p2, digest), "P1KeyShare expected, got P2KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.SignP2(sid, p1, digest), "P2KeyShare expected, got P1KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.ReshareP1(sid, p2), "P1KeyShare expected, got P2KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.ReshareP2(sid, p1, setup=custodian_setup),  # type: ignore[arg-type]
         "P2KeyShare expected, got P1KeyShare"),
        (lambda: ecdsa2p.ReshareP2(sid, p2, setup=p2), "CustodianSetup expected, got P2KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.KeygenP2(sid, p2), "CustodianSetup expected, got P2KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.KeygenP1(sid, p1), "expected, got P1KeyShare"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.SignP2(sid, p2, digest, precomputed=p1), "C3Precomputation expected"),  # type: ignore[arg-type]
        (lambda: ecdsa2p.sign(p2, p1, digest), "SignP1 takes the client's share"),  # type: ignore[arg-type]
    ]
    for make, text in cases:
        with pytest.raises(UsageError, match=text):
            make()
