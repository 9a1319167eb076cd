"""Session state codec: every protocol session parked after every step and resumed from bytes."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest
from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_string
from nacl.signing import VerifyKey

from curves import SecretScalar, ed25519, secp256k1
from protocols import ecdsa2p, frost
from protocols.errors import FutureMessage, InvalidMessage, ProtocolAbort, UsageError
from protocols.frost import round1
from protocols.rounds import Message, Session
from protocols.state import decode_state, encode_state, registered_names


def park(session: Session, **context: Any) -> Session:
    """Round-trip through bytes; the encoding is canonical (a second round trip is identical).
    Sessions that hold nonces (the device's, FROST's SignSession) are never parked: kept as they are."""
    if isinstance(session, (ecdsa2p.SignP1, frost.InitiatorSession, frost.SignSession)):
        return session
    data = session.to_bytes()
    restored = Session.from_bytes(data, **context)
    assert type(restored) is type(session)
    assert restored.to_bytes() == data
    return restored


def run_parked(sessions: Sequence[Session], contexts: Sequence[dict[str, Any]] | None = None) -> list[Any]:
    """Like ``protocols.local.run``, but every session is parked and resumed after each step."""
    contexts = list(contexts or [{} for _ in sessions])
    by_party = {s.party_id: i for i, s in enumerate(sessions)}
    current = [park(s, **c) for s, c in zip(sessions, contexts)]  # parked before it starts, too
    queue: deque[tuple[int, bytes]] = deque()

    def post(messages: list[Message]) -> None:
        for msg in messages:
            targets = [p for p in by_party if p != msg.sender] if msg.recipient is None else [msg.recipient]
            queue.extend((p, msg.to_bytes()) for p in targets if p in by_party)

    for i in range(len(current)):
        post(current[i].start())
        current[i] = park(current[i], **contexts[i])
    deferred = 0
    while queue:
        party, data = queue.popleft()
        i = by_party[party]
        try:
            post(current[i].receive(Message.from_bytes(data)))
            deferred = 0
        except FutureMessage:
            queue.append((party, data))
            deferred += 1
            assert deferred <= len(queue)
        current[i] = park(current[i], **contexts[i])
    return [s.result() for s in current]


def sid() -> bytes:
    return secrets.token_bytes(32)


def verify_ecdsa(public_key: bytes, digest: bytes, signature: ecdsa2p.Signature) -> None:
    key = VerifyingKey.from_string(public_key, curve=SECP256k1)
    assert key.verify_digest(signature.to_bytes(), digest, sigdecode=sigdecode_string)


@pytest.fixture(scope="module")
def ecdsa_pair(custodian_setup):
    return ecdsa2p.keygen(custodian_setup)


def test_ecdsa2p_keygen_sign_reshare_parked_after_every_round(custodian_setup) -> None:
    ctx = [{}, {"setup": custodian_setup}]
    s = sid()
    p1, p2 = run_parked([ecdsa2p.KeygenP1(s), ecdsa2p.KeygenP2(s, custodian_setup)], ctx)
    assert p1.public_key == p2.public_key
    digest = hashlib.sha256(b"parked").digest()
    s = sid()
    sig1, sig2 = run_parked([ecdsa2p.SignP1(s, p1, digest), ecdsa2p.SignP2(s, p2, digest)])
    assert sig1 == sig2
    verify_ecdsa(p1.public_key, digest, sig1)
    s = sid()
    b1, b2 = run_parked([ecdsa2p.ReshareP1(s, p1, for_signing=False), ecdsa2p.ReshareP2(s, p2, for_signing=False)])
    s = sid()
    n1, n2 = run_parked([ecdsa2p.ReshareP1(s, b1), ecdsa2p.ReshareP2(s, b2, setup=custodian_setup)], ctx)
    s = sid()
    sig, _ = run_parked([ecdsa2p.SignP1(s, n1, digest), ecdsa2p.SignP2(s, n2, digest)])
    verify_ecdsa(p1.public_key, digest, sig)


def test_frost_dkg_sign_refresh_reshare_parked_after_every_round() -> None:
    s = sid()
    shares = run_parked([frost.DKGSession(s, i, (1, 2, 3), 2) for i in (1, 2, 3)])
    message = b"parked frost"
    s = sid()
    signatures = run_parked([frost.SignSession(s, share, (1, 3), message) for share in (shares[0], shares[2])])
    VerifyKey(shares[0].public_key).verify(message, signatures[0])
    s = sid()
    refreshed = run_parked([frost.RefreshSession(s, share, (1, 2, 3)) for share in shares])
    s = sid()
    old = shares[0]
    reshare_sessions = [
        frost.ReshareSession(s, p, dealers=[1, 2], receivers=[2, 4, 5], new_threshold=2,
                             key_share={1: refreshed[0], 2: refreshed[1]}.get(p),
                             group_public_key=old.group_public_key, old_verifying_shares=refreshed[0].verifying_shares)
        for p in (1, 2, 4, 5)
    ]
    results = run_parked(reshare_sessions)
    new = [r for r in results if r is not None]
    assert len(new) == 3
    signature = frost.sign(new[1:], message)
    VerifyKey(old.public_key).verify(message, signature)


def test_sessions_keep_shared_objects_shared(ecdsa_pair) -> None:
    p1, _ = ecdsa_pair
    session = ecdsa2p.ReshareP1(sid(), p1, for_signing=False)
    holder = ecdsa2p.ReshareP1(sid(), p1, for_signing=False)
    session.other = holder  # type: ignore[attr-defined] - two sessions on one share object
    restored = park(session)
    assert restored._share is restored.other._share  # type: ignore[attr-defined]
    restored._share.lock()
    assert restored.other._share.locked  # type: ignore[attr-defined]


def test_a_referenced_object_is_named_and_resolved_once_per_key(ecdsa_pair) -> None:
    """References (``protocols.state``): an object the caller keeps elsewhere is written as its
    key, never its content, and comes back from ``resolve`` once per key, still one object."""
    p1, _ = ecdsa_pair
    session = ecdsa2p.ReshareP1(sid(), p1, for_signing=False)
    session.other = p1  # type: ignore[attr-defined] - a second occurrence of the share
    data = encode_state(session, [(p1, ("share", "c1"))])
    assert p1.to_bytes().hex().encode() not in data and data.count(b'["x",["share","c1"]]') == 2
    asked: list[tuple[str, ...]] = []

    def resolve(key: tuple[str, ...]) -> Any:
        asked.append(key)
        return type(p1).from_bytes(p1.to_bytes())

    restored = decode_state(data, resolve=resolve)
    assert asked == [("share", "c1")] and restored._share is restored.other
    assert encode_state(restored, [(restored._share, ("share", "c1"))]) == data


def test_references_are_refused_when_malformed_or_unresolved(ecdsa_pair) -> None:
    p1, _ = ecdsa_pair
    session = ecdsa2p.ReshareP1(sid(), p1, for_signing=False)
    for key in [(), ("a", 1), ["a"]]:
        with pytest.raises(UsageError):
            encode_state(session, [(p1, key)])  # type: ignore[list-item]
    data = encode_state(session, [(p1, ("share",))])
    with pytest.raises(UsageError):  # a state with references needs its resolver, as a collaborator
        decode_state(data)
    for bad in [b'["x",[]]', b'["x",["share",1]]', b'["x","share"]', b'["x",["share"],1]']:
        with pytest.raises(InvalidMessage):
            decode_state(data.replace(b'["x",["share"]]', bad), resolve=lambda key: p1)

    def refuse(key: tuple[str, ...]) -> Any:
        raise InvalidMessage("not this one")

    with pytest.raises(InvalidMessage, match="not this one"):  # the resolver's refusal is the decode's
        decode_state(data, resolve=refuse)


@pytest.mark.parametrize("device_session", ["ecdsa2p", "frost", "frost-sign"])
def test_device_signing_sessions_holding_nonces_cannot_be_parked(ecdsa_pair, device_session: str) -> None:
    """Rollback: a session holding nonces between rounds is never stored, so these refuse to be
    serialised (FROST's SignSession too: a restored copy would sign twice with its nonces)."""
    if device_session == "ecdsa2p":
        session: Session = ecdsa2p.SignP1(sid(), ecdsa_pair[0], bytes(32))
    elif device_session == "frost":
        shares = frost.dkg(2, 2)
        session = frost.InitiatorSession(sid(), shares[0], 2, b"m")
    else:
        shares = frost.dkg(2, 2)
        session = frost.SignSession(sid(), shares[0], (1, 2), b"m")
    session.start()
    with pytest.raises(UsageError):
        session.to_bytes()
    assert f"{type(session).__module__}.{type(session).__qualname__}" not in registered_names()


def test_signing_nonces_are_not_parkable() -> None:
    """FROST nonces are off the allowlist: neither alone nor inside a state."""
    nonces = round1.commit(1, SecretScalar.random(ed25519))
    with pytest.raises(UsageError):
        encode_state(nonces)
    assert "protocols.frost.round1.SigningNonces" not in registered_names()


def test_every_value_kind_round_trips() -> None:
    value = {
        1: (-5, 0, 2**300, "text", b"\x00\xff", True, None),
        "list": [frozenset({1, 2, 3}), secp256k1.generator(), ed25519.identity()],
        "group": ed25519,
        "suite": frost.FROST_ED25519_SHA512,
    }
    assert decode_state(encode_state(value)) == value


def test_the_encoding_is_the_sorted_compact_json_text_and_a_cycle_is_refused(custodian_setup) -> None:
    """The canonical text is written by one shared encoder without JSON's circularity check
    (issue 30, round seven): byte for byte ``json.dumps``'s sorted compact text, as before; a
    state holding a cycle is still refused when encoding (``UsageError``), never looped over."""
    value = {"list": [frozenset({3, 1}), b"\x01", "t\u00e9xt\"", -7], "group": ed25519}
    for data in (encode_state(value), ecdsa2p.KeygenP2(sid(), custodian_setup).to_bytes()):
        assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode("ascii")
    looped: list[Any] = [1]
    looped.append(looped)
    nested: dict[str, Any] = {}
    nested["again"] = [nested]
    for cyclic in (looped, nested):
        with pytest.raises(UsageError):
            encode_state(cyclic)


def _state(root: Any) -> bytes:
    return json.dumps({"kind": "portal-mpc/session-state", "v": 1, "state": root},
                      sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("data", [
    b"not json",
    _state(["o", "os.system", "ls"]),                      # not on the allowlist
    _state(["o", "builtins.dict", []]),
    _state(["z", 1]),                                      # unknown tag
    _state(["i", "0a"]),                                   # non-minimal int
    _state(["i", "-0"]),
    _state(["b", "ABCD"]),                                 # uppercase hex
    _state(["p", "secp256k1", "02" + "00" * 32]),          # not on the curve
    _state(["k", "secp256k1", "ff" * 32]),                 # above the order
    _state(["p", "p256", None]),                           # unknown group
    _state(["r", 0]),                                      # dangling reference
    _state(["l", [["r", 0]]]),                             # reference cycle
    _state(["d", [[["i", "1"], None], [["i", "1"], None]]]),  # duplicate key
    _state(["f", [["i", "2"], ["i", "1"]]]),               # unsorted frozenset
    _state(["o", "protocols.frost.keys.KeyShare", "00"]),  # class's own decoder refuses
    _state(["o", "protocols.paillier.PaillierPublicKey", [["n", ["i", "f"]]]]),  # too small
    b'{"kind":"portal-mpc/session-state","state":null,"v":2}',
    b'{"kind":"portal-mpc/session-state", "state":null,"v":1}',  # not canonical
    b"[" * 5000 + b"]" * 5000,
    _state(1.5),
])
def test_rejects_malformed_unknown_or_non_canonical_state(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode_state(data)


def test_from_bytes_needs_the_setup_and_checks_the_class(custodian_setup) -> None:
    session = ecdsa2p.KeygenP2(sid(), custodian_setup)
    data = session.to_bytes()
    assert b"secret" not in data and len(data) < 20_000  # the setup travels by reference only
    with pytest.raises(UsageError):
        Session.from_bytes(data)
    with pytest.raises(InvalidMessage):
        ecdsa2p.KeygenP1.from_bytes(data, setup=custodian_setup)
    assert isinstance(ecdsa2p.KeygenP2.from_bytes(data, setup=custodian_setup), ecdsa2p.KeygenP2)


def test_unregistered_values_are_refused_when_encoding() -> None:
    session = frost.SignSession(sid(), frost.trusted_dealer_keygen(2, 2)[0], (1, 2), b"m")
    session.callback = print  # type: ignore[attr-defined]
    with pytest.raises(UsageError):
        session.to_bytes()
    assert "protocols.ecdsa2p.sign.SignP2" in registered_names()


def test_aborted_session_stays_aborted(ecdsa_pair) -> None:
    p1, p2 = ecdsa_pair
    s = sid()
    c1, c2 = ecdsa2p.SignP1(s, p1, bytes(32)), ecdsa2p.SignP2(s, p2, bytes(32))
    c2.start()
    (round2,) = c2.receive(c1.start()[0])
    (opening,) = c1.receive(round2)
    bad = Message(opening.protocol, s, 3, 1, 2, {**opening.payload, "nonce": "00" * 32})
    with pytest.raises(ProtocolAbort):
        c2.receive(bad)
    restored = park(c2)
    with pytest.raises(ProtocolAbort) as info:
        restored.receive(opening)
    assert info.value.culprit == 1
