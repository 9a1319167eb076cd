"""Presigning sessions parked after every step and resumed from bytes; single use survives it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from nacl.signing import VerifyKey

from protocols import ecdsa2p, frost
from protocols.ecdsa2p import OnlineSignP1, OnlineSignP2, P1Presignature, P2Presignature, PresignP1, PresignP2
from protocols.errors import InvalidMessage, UsageError
from protocols.frost import CommittedNonces, OnlineSignSession, PrecommitSession
from protocols.state import decode_state, encode_state, registered_names
from tests.protocols.test_state import park, run_parked, sid, verify_ecdsa


@pytest.fixture(scope="module")
def ecdsa_pair(custodian_setup):
    return ecdsa2p.keygen(custodian_setup)


@pytest.fixture(scope="module")
def frost_shares():
    return frost.trusted_dealer_keygen(2, 3)


def presign_parked(pair: Any) -> tuple[P1Presignature, P2Presignature]:
    s = sid()
    pre1, pre2 = run_parked([PresignP1(s, pair[0]), PresignP2(s, pair[1])])
    return pre1, pre2


def test_everything_presign_related_is_on_the_allowlist() -> None:
    names = set(registered_names())
    for cls in (PresignP1, PresignP2, OnlineSignP1, OnlineSignP2, P1Presignature, P2Presignature,
                PrecommitSession, OnlineSignSession, CommittedNonces):
        assert f"{cls.__module__}.{cls.__qualname__}" in names


def test_ecdsa_presign_and_online_sign_parked_after_every_round(ecdsa_pair) -> None:
    p1, p2 = ecdsa_pair
    pre1, pre2 = presign_parked(ecdsa_pair)  # restored from bytes after the last step
    assert pre1.id == pre2.id and pre1.r_point == pre2.r_point and not pre1.used and not pre2.used
    digest = hashlib.sha256(b"parked presigned").digest()
    s = sid()
    sig1, sig2 = run_parked([OnlineSignP1(s, p1, pre1, digest), OnlineSignP2(s, p2, pre2, digest)])
    assert sig1 == sig2 and sig1.r == pre1.r
    verify_ecdsa(p1.public_key, digest, sig1)
    assert pre1.used and pre2.used
    with pytest.raises(UsageError):
        OnlineSignP1(sid(), p1, pre1, digest)
    with pytest.raises(UsageError):
        OnlineSignP2(sid(), p2, pre2, digest)


def test_presignatures_keep_their_used_state_through_a_park(ecdsa_pair) -> None:
    p1, p2 = ecdsa_pair
    pre1, pre2 = presign_parked(ecdsa_pair)
    for pre in (pre1, pre2):
        again = decode_state(encode_state(pre))
        assert type(again) is type(pre) and not again.used
        assert again.to_bytes() == pre.to_bytes()  # same id, R, binding and secrets
    digest = bytes(range(32))
    # Taken by the online sessions' constructors, before parking: still taken after resuming.
    sessions = [OnlineSignP1(sid(), p1, pre1, digest), OnlineSignP2(sid(), p2, pre2, digest)]
    for session in sessions:
        restored = park(session)
        assert restored._presignature.used  # type: ignore[attr-defined]
        with pytest.raises(UsageError):
            restored._presignature.take()  # type: ignore[attr-defined]
    for pre in (pre1, pre2):
        used = decode_state(encode_state(pre))
        assert used.used and used.id == pre.id
        with pytest.raises(UsageError):
            used.take()
        with pytest.raises(UsageError):
            used.to_bytes()


def test_a_parked_online_sign_blob_holds_its_presignature_once(ecdsa_pair) -> None:
    """The session and its presignature stay one object, so the resumed session signs once."""
    p1, p2 = ecdsa_pair
    pre1, pre2 = presign_parked(ecdsa_pair)
    digest = hashlib.sha256(b"once").digest()
    c1, c2 = OnlineSignP1(sid(), p1, pre1, digest), OnlineSignP2(sid(), p2, pre2, digest)
    c1.holder = pre1  # type: ignore[attr-defined] - a second reference to the same presignature
    restored = park(c1)
    assert restored.holder is restored._presignature  # type: ignore[attr-defined]


def test_frost_precommit_and_online_sign_parked_after_every_round(frost_shares) -> None:
    signers = (1, 2, 3)  # three signers: the precommit round waits for two peers, parked in between
    s = sid()
    pools = run_parked([PrecommitSession(s, share, signers, 3) for share in frost_shares])
    assert all(len(pool) == 3 and not any(c.used for c in pool) for pool in pools)
    assert len({pool[1].slot for pool in pools}) == 1
    for slot in (0, 2):
        message = f"parked slot {slot}".encode()
        s = sid()
        signatures = run_parked([OnlineSignSession(s, share, pool[slot], message)
                                 for share, pool in zip(frost_shares, pools)])
        assert len(set(signatures)) == 1
        VerifyKey(frost_shares[0].public_key).verify(message, signatures[0])
        assert all(pool[slot].used for pool in pools)
    # A slot used before parking stays used; an unused one keeps its nonces.
    used = decode_state(encode_state(pools[0][0]))
    assert used.used and used.slot == pools[0][0].slot
    with pytest.raises(UsageError):
        used.take()
    unused = decode_state(encode_state(pools[0][1]))
    assert not unused.used and unused.to_bytes() == pools[0][1].to_bytes()


def test_frost_online_sign_two_of_three_parked(frost_shares) -> None:
    s = sid()
    chosen = (frost_shares[0], frost_shares[2])
    pools = run_parked([PrecommitSession(s, share, (1, 3), 1) for share in chosen])
    s = sid()
    sessions = [OnlineSignSession(s, share, pool[0], b"two of three") for share, pool in zip(chosen, pools)]
    restored = park(sessions[0])
    assert restored._nonces.used is False and pools[0][0].used  # type: ignore[attr-defined]
    signatures = run_parked(sessions)
    VerifyKey(chosen[0].public_key).verify(b"two of three", signatures[0])


# --- tampered states are refused ------------------------------------------------------------------
def _tamper(obj: Any, edit: Any) -> bytes:
    envelope = json.loads(encode_state(obj))
    edit(envelope["state"][2])  # ["o", name, body]: edit the body in place
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


def _set(index: int, value: Any) -> Any:
    def edit(body: list[Any]) -> None:
        body[index] = value
    return edit


def test_tampered_presignature_states_are_refused(ecdsa_pair, frost_shares) -> None:
    pre1, pre2 = presign_parked(ecdsa_pair)
    other = P1Presignature.from_bytes(pre1.to_bytes())
    other.take()
    cases = [
        (pre1, _set(0, ["b", "00" * 31])),                             # id of the wrong length
        (pre1, _set(1, ["p", "secp256k1", None])),                     # R = identity (r = 0)
        (pre1, _set(4, ["k", "secp256k1", "00" * 32])),                # zero nonce
        (pre1, _set(4, ["t", [["k", "secp256k1", "01" * 32], ["i", "5"]]])),  # a P2 secret in a P1
        (pre2, _set(4, ["t", [["k", "secp256k1", "01" * 32], ["i", "0"]]])),  # c_pre = 0
        (pre2, _set(4, ["k", "secp256k1", "01" * 32])),                # a P1 secret in a P2
        (pre2, _set(2, ["p", "ed25519", None])),                       # another group
        (other, lambda body: body.pop()),                              # wrong arity
    ]
    for obj, edit in cases:
        with pytest.raises(InvalidMessage):
            decode_state(_tamper(obj, edit))

    s = sid()
    pools = run_parked([PrecommitSession(s, share, (1, 2), 1) for share in frost_shares[:2]])
    committed = pools[0][0]
    good = json.loads(encode_state(committed))["state"][2]
    swapped = ["t", [good[4][1][1], good[4][1][0]]]  # hiding and binding swapped
    cases = [
        (committed, _set(4, swapped)),                                 # nonces do not match commitments
        (committed, _set(0, ["b", "00" * 32])),                        # zero slot id
        (committed, _set(1, ["i", "7"])),                              # own identifier not listed
        (committed, _set(2, ["b", "00" * 32])),                        # not a valid group key
        (committed, _set(3, ["t", []])),                               # empty commitment list
    ]
    for obj, edit in cases:
        with pytest.raises(InvalidMessage):
            decode_state(_tamper(obj, edit))
