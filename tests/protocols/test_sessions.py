"""The Session framework and the in-memory driver, through the joint-key example protocol."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import ed25519, secp256k1
from protocols.errors import FutureMessage, InvalidMessage, ProtocolAbort, UsageError
from protocols.examples.joint_key import JointKey, joint_key_sessions
from protocols.local import Stalled, run
from protocols.rounds import Message


def sessions(n=3, group="secp256k1"):
    return joint_key_sessions(secrets.token_bytes(32), range(1, n + 1), group)


@pytest.mark.parametrize("group", ["secp256k1", "ed25519"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_all_parties_agree(group, n):
    results = run(sessions(n, group))
    keys = {r.public_key.to_bytes() for r in results}
    assert len(keys) == 1
    total = sum(r.secret_share.value for r in results)
    g = results[0].public_key.group
    assert g.base_mul(total) == results[0].public_key


def first_messages(n=2):
    ss = sessions(n)
    return ss, [s.start() for s in ss]


def test_envelope_rejections_leave_state_unchanged():
    (a, b), (out_a, out_b) = first_messages()
    (msg,) = out_b
    bad = [
        replace(msg, protocol="other/proto"),
        replace(msg, session_id=secrets.token_bytes(32)),
        replace(msg, sender=7),
        replace(msg, sender=1),
        replace(msg, recipient=9),
        replace(msg, round=0),
    ]
    for m in bad:
        with pytest.raises(InvalidMessage):
            a.receive(m)
    with pytest.raises(FutureMessage):
        a.receive(replace(msg, round=2))
    # The honest message still works after all those rejections, and a duplicate does not.
    out = a.receive(msg)
    assert [m.round for m in out] == [2]
    with pytest.raises(InvalidMessage):
        a.receive(msg)


def test_malformed_payload_leaves_state_unchanged():
    (a, b), (_, (msg,)) = first_messages()
    for payload in ({}, {"commitment": "zz"}, {"commitment": "00"}, {"commitment": "ab" * 32, "x": 1}):
        with pytest.raises(InvalidMessage):
            a.receive(replace(msg, payload=payload))
    assert a.awaiting_round == 1
    a.receive(msg)
    assert a.awaiting_round == 2


def test_abort_names_culprit_and_is_sticky():
    def tamper(msg: Message):
        if msg.round == 2 and msg.sender == 2:
            payload = dict(msg.payload)
            payload["nonce"] = secrets.token_hex(32)
            return replace(msg, payload=payload)
        return msg

    ss = sessions(3)
    with pytest.raises(ProtocolAbort) as info:
        run(ss, tamper=tamper)
    assert info.value.culprit == 2
    victim = next(s for s in ss if s.aborted)
    with pytest.raises(ProtocolAbort) as again:
        victim.result()
    assert again.value is victim.aborted
    with pytest.raises(ProtocolAbort):
        victim.receive(Message(JointKey.protocol, victim.session_id, 2, 3, victim.party_id, {}))


def test_bad_proof_names_culprit():
    ss = sessions(2)
    a, b = ss
    out_a, out_b = a.start(), b.start()
    a.receive(out_b[0])
    (open_b,) = b.receive(out_a[0])
    # Replace b's proof with a valid proof for a different statement: the commitment check fails first.
    payload = dict(open_b.payload)
    payload["X"] = ed25519.generator().to_bytes().hex()  # wrong group's point: malformed
    with pytest.raises(InvalidMessage):
        a.receive(replace(open_b, payload=payload))
    payload["X"] = secp256k1.generator().to_bytes().hex()  # well-formed, but not what was committed
    with pytest.raises(ProtocolAbort) as info:
        a.receive(replace(open_b, payload=payload))
    assert info.value.culprit == 2


def test_dropped_message_stalls_with_clear_error():
    with pytest.raises(Stalled):
        run(sessions(2), tamper=lambda m: None if m.round == 2 else m)


def test_usage_errors():
    sid = secrets.token_bytes(32)
    with pytest.raises(UsageError):
        JointKey(sid[:5], 1, [1, 2], secp256k1)
    with pytest.raises(UsageError):
        JointKey(sid, 3, [1, 2], secp256k1)
    with pytest.raises(UsageError):
        JointKey(sid, 1, [1, 1, 2], secp256k1)
    s = JointKey(sid, 1, [1, 2], secp256k1)
    with pytest.raises(UsageError):
        s.result()
    s.start()
    with pytest.raises(UsageError):
        s.start()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_tampered_bytes_never_corrupt_state(data):
    """Any mutation of any wire message raises InvalidMessage/ProtocolAbort or is harmless."""
    ss = sessions(2)
    target_round = data.draw(st.sampled_from([1, 2]))
    seen = {"done": False}

    def tamper(msg: Message):
        if msg.round != target_round or seen["done"]:
            return msg
        seen["done"] = True
        raw = bytearray(msg.to_bytes())
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
        return bytes(raw)

    try:
        results = run(ss, tamper=tamper)
    except (InvalidMessage, ProtocolAbort, Stalled):
        return
    # The mutation was harmless (e.g. replaced a byte by itself): everyone still agrees.
    assert len({r.public_key.to_bytes() for r in results}) == 1


def _general_verdict(party_id, parties):
    """What ``Session.__init__`` decided before its two-party shortcut: the ids sorted, distinct
    ints (not bools) in [1, 2^32), ``party_id`` among them; else ``UsageError``."""
    try:
        checked = tuple(sorted(parties))
    except TypeError:
        return "TypeError"
    if len(set(checked)) != len(checked) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p < 2**32 for p in checked):
        return "UsageError"
    return checked if party_id in checked else "UsageError"


_ids = st.sampled_from([0, 1, 2, 3, 2**32 - 1, 2**32, -1, True, False])


@settings(max_examples=300, deadline=None)
@given(party_id=_ids, parties=st.one_of(st.tuples(_ids, _ids), st.lists(_ids, max_size=3),
                                        st.tuples(_ids, _ids).map(list), st.tuples(_ids, _ids, _ids)))
def test_the_two_party_shortcut_decides_what_the_general_check_decides(party_id, parties):
    """Two ascending plain ints skip the general party check (``protocols.rounds``): every tuple or
    list of ids, bools, zero, 2^32 and duplicates among them, gets the same verdict and the same
    sorted ids as the general check gives."""
    expected = _general_verdict(party_id, parties)
    try:
        session = JointKey(bytes(32), party_id, parties, secp256k1)
    except UsageError:
        assert expected == "UsageError"
    except TypeError:
        assert expected == "TypeError"
    else:
        assert session.parties == expected and type(session.parties) is tuple
