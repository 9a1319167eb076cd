"""The sign operation's channel (mpc.signing, "Framing"; docs/architecture.md): the child's own
messages under the operation's session id, the hello beside the client's first child payload. A malicious device
drives the custodian's side through its public API: every rejected message leaves the custodian
as it was (unbound, no hello, no child), and the honest message still signs afterwards."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import mpc
from mpc.errors import ShareReplaced, StateInvalid
from mpc.signing import (HELLO_FIELD, first_payload, hello_text, parse_hello, sign_hello, sign_hello_text, sign_protocol,
                         split_first_payload)
from mpc.storage.store import SQLiteStore
from mpc.wallet import SignResult
from protocols.errors import FutureMessage, InvalidMessage, MPCError, UsageError
from protocols.frozen import FrozenDict
from protocols.rounds import Message, Session
from protocols.state import encode_state
from tests.mpc.conftest import Wallet, data_for, new_wallet, verify_result


@pytest.fixture(scope="module")
def generated() -> Wallet:
    """One wallet for the module: signing changes nothing a later sign depends on."""
    made = new_wallet()
    made.generate()
    return made


def _opened(w: Wallet, chain: str) -> tuple[Session, Session, Message]:
    """A device's sign and the custodian's (made without a session id, as a service that knows
    only the client's next operation makes it), started; the device's first message."""
    data = data_for(chain)
    client, custodian = w.client.sign(chain, data), w.custodian.sign(w.client_id, chain, data)
    (first,) = client.start()
    assert custodian.start() == []
    return client, custodian, Message.from_bytes(first.to_bytes())


def _finish(client: Session, custodian: Session, first: Message, chain: str) -> None:
    """Deliver the honest messages from ``first`` on; both sides must end with one valid signature."""
    queue: list[tuple[Session, Message]] = [(custodian, first)]
    while queue:
        target, msg = queue.pop(0)
        other = client if target is custodian else custodian
        queue += [(other, Message.from_bytes(m.to_bytes())) for m in target.receive(msg)]
    verify_result(client.result(), data_for(chain))
    assert custodian.result() == client.result()


def _with_payload(msg: Message, payload: dict[str, Any]) -> Message:
    return dataclasses.replace(msg, payload=payload)


def _plain(value: Any) -> Any:
    return {k: _plain(v) for k, v in value.items()} if hasattr(value, "items") else value


@pytest.mark.parametrize("chain", ["solana", "ethereum"])
def test_the_first_message_carries_the_hello_beside_the_childs_first_payload(generated: Wallet, chain: str) -> None:
    client, custodian, first = _opened(generated, chain)
    text, child = split_first_payload(first.payload)
    hello = parse_hello(text)
    assert first.round == 1 and hello["chain"] == chain and hello["client_id"] == generated.client_id
    assert list(hello) == ["client_id", "chain", "data_sha256", "client_share"] and hello_text(hello) == text
    curve = "ed25519" if chain == "solana" else "secp256k1"
    assert first.protocol == sign_protocol(curve) and first.session_id == client.session_id
    assert child and HELLO_FIELD not in child and set(first.payload) == {*child, HELLO_FIELD}
    assert all(isinstance(value, str) for value in first.payload.values())  # flat: the direct encoding
    assert first_payload(hello, child) == dict(first.payload)
    replies = custodian.receive(first)
    assert [(m.protocol, m.round, m.sender) for m in replies] == [(sign_protocol(curve), 2, 2)]
    assert HELLO_FIELD not in replies[0].payload and "child" not in replies[0].payload
    assert custodian.session_id == client.session_id == custodian.child(curve).session_id  # type: ignore[attr-defined]
    (answer,) = client.receive(Message.from_bytes(replies[0].to_bytes()))
    _finish(client, custodian, Message.from_bytes(answer.to_bytes()), chain)


def test_a_solana_sign_is_three_messages_as_the_protocol_alone(generated: Wallet) -> None:
    client, custodian, first = _opened(generated, "solana")
    sent = [first]
    queue: list[tuple[Session, Message]] = [(custodian, first)]
    while queue:
        target, msg = queue.pop(0)
        out = target.receive(msg)
        sent += out
        queue += [(client if target is custodian else custodian, Message.from_bytes(m.to_bytes())) for m in out]
    assert [(m.protocol, m.sender, m.round) for m in sent] == [("frost/round-trip-sign", 1, 1),
                                                               ("frost/round-trip-sign", 2, 2),
                                                               ("frost/round-trip-sign", 1, 3)]
    verify_result(client.result(), data_for("solana"))


@pytest.mark.parametrize("chain", ["solana", "ethereum"])
@pytest.mark.parametrize("hostile", [
    "no hello", "extra key", "extra hello field", "hello not text", "hello for other data",
    "another client's hello", "child payload malformed", "child payload missing", "old nested shape",
    "old prefixed hello", "hello with a space more", "hello with a field less", "hello with seven fields",
    "empty hello",
])
def test_a_rejected_first_message_leaves_the_custodian_unbound(generated: Wallet, chain: str, hostile: str) -> None:
    client, custodian, first = _opened(generated, chain)
    text, child = split_first_payload(first.payload)
    hello, child = parse_hello(text), _plain(child)
    payload = {
        "no hello": child,
        "extra key": {**first.payload, "step": "hello"},
        "extra hello field": first_payload({**hello, "path": "m/0"}, child),
        "hello not text": {**child, HELLO_FIELD: hello},
        "hello for other data": first_payload({**hello, "data_sha256": "00" * 32}, child),
        "another client's hello": first_payload({**hello, "client_id": "0" * 32}, child),
        "child payload malformed": first_payload(hello, {**child, next(iter(child)): "zz"}),
        "child payload missing": first_payload(hello, {}),
        "old nested shape": {"hello": hello, "message": child},
        "old prefixed hello": {**{"hello/" + key: value for key, value in hello.items()}, **child},
        "hello with a space more": {**child, HELLO_FIELD: text + " "},
        "hello with a field less": {**child, HELLO_FIELD: text.rsplit(" ", 1)[0]},
        "hello with seven fields": {**child, HELLO_FIELD: " ".join([text, "m/0", "00", "x"])},
        "empty hello": {**child, HELLO_FIELD: ""},
    }[hostile]
    with pytest.raises(MPCError) as info:
        custodian.receive(_with_payload(first, payload))
    assert isinstance(info.value, InvalidMessage) and not isinstance(info.value, FutureMessage)
    assert custodian.aborted is None and custodian.awaiting_round == 1
    assert custodian.session_id == bytes(32)  # unbound still: the next client's first message binds it
    assert not custodian._children  # type: ignore[attr-defined]  # no child kept for a refused message
    _finish(client, custodian, first, chain)


def test_replays_and_messages_ahead_are_refused_without_a_change(generated: Wallet) -> None:
    client, custodian, first = _opened(generated, "ethereum")
    (reply,) = custodian.receive(first)
    with pytest.raises(InvalidMessage, match="past round"):
        custodian.receive(first)  # the first message again: its commitment met k2 once
    (opening,) = client.receive(Message.from_bytes(reply.to_bytes()))
    assert opening.round == 3 and custodian.awaiting_round == 3
    with pytest.raises(FutureMessage):
        custodian.receive(dataclasses.replace(opening, round=5))
    hostile = {
        "the wrong parties": dataclasses.replace(opening, sender=2, recipient=1),
        "a broadcast": dataclasses.replace(opening, recipient=None),
        "another session": dataclasses.replace(opening, session_id=bytes(32)),
        "the old envelope": dataclasses.replace(opening, protocol="wallet/sign", round=2),
        "another protocol": dataclasses.replace(opening, protocol="frost/round-trip-sign"),
    }
    for name, msg in hostile.items():
        with pytest.raises(InvalidMessage) as info:
            custodian.receive(msg)
        assert not isinstance(info.value, FutureMessage), name
        assert custodian.aborted is None and custodian.awaiting_round == 3, name
    out = custodian.receive(Message.from_bytes(opening.to_bytes()))  # the honest opening still goes on
    assert [(m.protocol, m.sender, m.round) for m in out] == [("ecdsa2p/sign", 2, 4)]


@pytest.mark.parametrize("chain", ["solana", "ethereum"])
def test_a_first_message_of_another_shape_leaves_the_custodian_unbound(generated: Wallet, chain: str) -> None:
    """The first message's envelope is checked before its hello, as the child checks the next ones:
    another protocol (the old ``wallet/sign`` envelope too), another round, the wrong parties."""
    client, custodian, first = _opened(generated, chain)
    refused = {
        "the old envelope": (dataclasses.replace(first, protocol="wallet/sign"), InvalidMessage),
        "the other curve's protocol": (dataclasses.replace(
            first, protocol="ecdsa2p/sign" if chain == "solana" else "frost/round-trip-sign"), InvalidMessage),
        "the wrong parties": (dataclasses.replace(first, sender=2, recipient=1), InvalidMessage),
        "a broadcast": (dataclasses.replace(first, recipient=None), InvalidMessage),
        "round 0": (dataclasses.replace(first, round=0), InvalidMessage),
        "a later round": (dataclasses.replace(first, round=3), FutureMessage),
    }
    for name, (msg, error) in refused.items():
        with pytest.raises(error) as info:
            custodian.receive(msg)
        assert type(info.value) is error or error is InvalidMessage and not isinstance(info.value, FutureMessage), name
        assert custodian.session_id == bytes(32) and not custodian._children, name  # type: ignore[attr-defined]
        assert custodian.aborted is None and custodian.awaiting_round == 1, name
    _finish(client, custodian, first, chain)


def test_a_first_message_of_another_sign_binds_nothing_it_cannot_finish(generated: Wallet) -> None:
    """The first message of one device's sign, given to the custodian's sign of other data, is
    refused at the hello (before any child runs); that custodian then signs its own data."""
    _, _, foreign = _opened(generated, "solana")
    client, custodian, first = _opened(generated, "solana")
    data = data_for("solana", b"other data")
    other = generated.custodian.sign(generated.client_id, "solana", data)
    other.start()
    with pytest.raises(InvalidMessage):
        other.receive(foreign)
    assert other.session_id == bytes(32) and other.aborted is None
    _finish(client, custodian, first, "solana")


def test_a_child_message_cannot_be_moved_into_another_sign(generated: Wallet) -> None:
    """Each sign's child runs under its own operation's session id: the device's second message,
    moved into another sign (its session id rewritten), meets that sign's commitment and aborts it."""
    client_a, custodian_a, first_a = _opened(generated, "ethereum")
    client_b, custodian_b, first_b = _opened(generated, "ethereum")
    (opening_a,) = client_a.receive(Message.from_bytes(custodian_a.receive(first_a)[0].to_bytes()))
    (reply_b,) = custodian_b.receive(first_b)
    client_b.receive(Message.from_bytes(reply_b.to_bytes()))
    moved = dataclasses.replace(opening_a, session_id=first_b.session_id)
    with pytest.raises(MPCError):  # b's P2 holds b's commitment: a's opening does not open it
        custodian_b.receive(Message.from_bytes(moved.to_bytes()))
    assert custodian_b.aborted is not None and not custodian_b.done


def test_the_first_payload_keeps_the_hello_apart_from_the_childs_fields() -> None:
    """``first_payload`` and ``split_first_payload`` are inverse, and so are ``hello_text`` and
    ``parse_hello``; a child field named ``hello``, or a hello that would not read back as the
    same values (a space in one, an empty one, a field skipped, a non-text value), is refused
    when the message is made; a payload without a text hello, or an unreadable one, when it is read."""
    hello = {"client_id": "c", "chain": "solana", "data_sha256": "ab", "client_share": "cd"}
    child = {"hiding": "aa", "binding": "bb"}
    joined = first_payload(hello, child)
    assert joined == {"hello": "c solana ab cd", "hiding": "aa", "binding": "bb"}
    assert split_first_payload(joined) == ("c solana ab cd", child)
    assert parse_hello("c solana ab cd") == hello
    with_path = {**hello, "path": "m/44'/501'/0'/0'", "child_key": "ef"}
    assert parse_hello(hello_text(with_path)) == with_path
    with pytest.raises(UsageError):
        first_payload(hello, {"hello": "x"})
    for bad in ({**hello, "chain": "sol ana"}, {**hello, "chain": ""}, {**hello, "chain": ["solana"]},
                {"client_id": "c", "data_sha256": "ab"}, {**hello, "child_key": "ef"}, {**with_path, "extra": "x"}):
        with pytest.raises(UsageError):
            hello_text(bad)
    for payload in (child, {**child, "hello": ["c"]}, {**child, "hello": None}):
        with pytest.raises(InvalidMessage):
            split_first_payload(payload)
    for text in ("", "c  solana", "c solana ab cd m/0 ef x", " c"):
        with pytest.raises(InvalidMessage):
            parse_hello(text)


def test_the_channels_messages_equal_the_checked_constructors(generated: Wallet) -> None:
    """Every message of a sign is what ``Message``'s own constructor makes of its fields (frozen
    as it freezes), and encodes alike; the custodian's child got exactly the child's fields of
    the first message, under the operation's session id."""
    client, custodian, first = _opened(generated, "solana")
    (reply,) = custodian.receive(first)
    child = custodian.child("ed25519")  # type: ignore[attr-defined]
    assert child.session_id == first.session_id and child.awaiting_round == 3
    (answer,) = client.receive(Message.from_bytes(reply.to_bytes()))
    for msg in (first, reply, answer):
        rebuilt = Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, _plain(msg.payload))
        assert msg == rebuilt and msg.to_bytes() == rebuilt.to_bytes()
        assert type(msg.payload) is FrozenDict  # frozen as the constructor freezes it
    custodian.receive(Message.from_bytes(answer.to_bytes()))
    verify_result(client.result(), data_for("solana"))


def test_a_sign_reads_the_share_another_process_replaced(tmp_path) -> None:
    """The custodian's sign reads its row and share at every sign (``SQLiteStore.signing_row``;
    only the decoding is memoised, by the exact bytes read): a recover or a status change written
    by another process on the same database is seen by the next sign, never a stale share."""
    path = str(tmp_path / "custodian.sqlite3")
    w = new_wallet(mpc.Custodian(SQLiteStore(path)))
    w.generate()
    w.backup()
    for chain in ("solana", "ethereum"):
        verify_result(w.sign(chain, data_for(chain))[0], data_for(chain))  # the old shares decoded once
    other = mpc.Custodian(SQLiteStore(path))  # another process: its own connection
    device = w.device()
    mpc.run_local(device.recover(), other.recover(w.client_id))
    for chain in ("solana", "ethereum"):
        with pytest.raises(ShareReplaced):
            w.sign(chain, data_for(chain))  # the old device, against the first process
        verify_result(w.sign(chain, data_for(chain), client=device)[0], data_for(chain))
    other.store.update_client(w.client_id, signing_share_status="STORED_DATABASE")
    with pytest.raises(StateInvalid):
        w.sign("solana", data_for("solana"), client=device)


@pytest.mark.parametrize("chain", ["solana", "ethereum"])
def test_a_signs_result_is_what_the_dataclass_constructor_makes(generated: Wallet, chain: str) -> None:
    """``SignResult._of`` (the sign's results on both sides) makes what ``SignResult(...)`` makes of
    the same fields: equal, hashing and printing alike, frozen, its JSON and parked form the same."""
    client_result, custodian_result = generated.sign(chain, data_for(chain))
    for result in (client_result, custodian_result):
        made = SignResult(*(getattr(result, f.name) for f in dataclasses.fields(SignResult)))
        assert result == made and hash(result) == hash(made) and repr(result) == repr(made)
        assert result.to_json() == made.to_json() and vars(result) == vars(made)
        assert encode_state(result) == encode_state(made)
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.signature = b""
    verify_result(client_result, data_for(chain))


def test_a_hellos_text_made_directly_is_the_hellos_text() -> None:
    """``sign_hello_text`` (each side's own hello, made once per sign) is ``hello_text`` of
    ``sign_hello`` of the same arguments, with and without a path, and refuses what it refuses: a
    client id or path with a space or empty, a value that is not text."""
    for child in (None, ("m/44'/501'/0'/0'", bytes(range(32)))):
        args: tuple[Any, ...] = ("client-1", "solana", b"data to sign", "ab" * 32, child)
        assert sign_hello_text(*args) == hello_text(sign_hello(*args))
        assert parse_hello(sign_hello_text(*args)) == sign_hello(*args)
    for bad in (("client 1", "solana", b"d", "ab", None), ("", "solana", b"d", "ab", None),
                ("c", "solana", b"d", "ab", ("m/0 /1", b"k")), (7, "solana", b"d", "ab", None)):
        for make in (sign_hello_text, lambda *a: hello_text(sign_hello(*a))):
            with pytest.raises(UsageError):
                make(*bad)
