"""The wire format of ``Message``: canonical, strict, immutable."""

from __future__ import annotations

import copy
import json
import pickle
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import InvalidMessage
from protocols.frozen import FrozenDict
from protocols.rounds import MAX_DEPTH, MAX_INT_BITS, MAX_MESSAGE_BYTES, Message

SID = bytes(range(32))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def make(**overrides) -> Message:
    fields = dict(protocol="test/proto", session_id=SID, round=1, sender=1, recipient=2, payload={"a": "00"})
    fields.update(overrides)
    return Message(**fields)


@settings(max_examples=100, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
       recipient=st.none() | st.integers(1, 2**32 - 1))
def test_round_trip(payload, recipient):
    msg = make(payload=payload, recipient=recipient)
    data = msg.to_bytes()
    again = Message.from_bytes(data)
    assert again == msg and again.to_bytes() == data


def test_encoding_is_canonical_json():
    data = make().to_bytes()
    obj = json.loads(data)
    assert obj["v"] == 1 and obj["session_id"] == SID.hex()
    assert data == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_payload_is_immutable():
    payload = {"list": [1, 2], "map": {"k": "v"}}
    msg = make(payload=payload)
    payload["list"].append(3)
    assert msg.payload["list"] == (1, 2)
    with pytest.raises(TypeError):
        msg.payload["new"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        msg.payload["map"]["k"] = "w"  # type: ignore[index]


@pytest.mark.parametrize("change", [
    lambda p: p.__setitem__("new", 1), lambda p: p.__delitem__("map"), lambda p: p.update(a=1), lambda p: p.pop("map"),
    lambda p: p.popitem(), lambda p: p.setdefault("new", 1), lambda p: p.clear(), lambda p: p.__ior__({"a": 1}),
])
def test_no_method_changes_a_payload(change) -> None:
    msg = make(payload={"map": {"k": "v"}, "n": 1})
    for mapping in (msg.payload, msg.payload["map"]):
        with pytest.raises(TypeError):
            change(mapping)
        mapping.__init__({"n": 2})  # type: ignore[misc]  # filled by the constructor: a second __init__ does nothing
    assert msg == make(payload={"map": {"k": "v"}, "n": 1}) and msg.payload == {"map": {"k": "v"}, "n": 1}


@settings(max_examples=50, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_a_message_is_plain_data_to_json_pickle_and_copy(payload) -> None:
    """DESIGN's payload is "a mapping of plain JSON-able values": ``json.dumps`` takes it as it is
    (equal to the payload given, lists as arrays), a queue frontend can pickle a message and a
    harness can deep-copy one to tamper with the copy; the copies are equal and encode alike."""
    msg = make(payload=payload)
    assert json.loads(json.dumps(msg.payload)) == json.loads(json.dumps(payload))
    for copied in (copy.deepcopy(msg), copy.copy(msg), pickle.loads(pickle.dumps(msg))):
        assert copied == msg and copied.to_bytes() == msg.to_bytes()
        assert type(copied.payload) is FrozenDict
    assert make(payload={"a": "00", "b": {"c": 1}}).payload == {"a": "00", "b": {"c": 1}}  # equal to a dict
    tampered = dict(copy.deepcopy(msg).payload)
    tampered["extra"] = "01"
    assert make(payload=tampered).payload["extra"] == "01" and "extra" not in msg.payload


def test_a_number_too_large_to_encode_is_refused_as_the_wire_refuses_it() -> None:
    """A payload number is below 2^MAX_INT_BITS in magnitude, given as an object or on the wire:
    ``to_bytes`` never meets a number it cannot write (Python writes at most 4300 digits)."""
    largest = (1 << MAX_INT_BITS) - 1
    for number in (largest, -largest):
        msg = make(payload={"n": number, "l": [number], "d": {"n": number}})
        assert Message.from_bytes(msg.to_bytes()) == msg
    bound = 1 << MAX_INT_BITS
    for number, digits in ((bound, str(bound)), (-bound, str(-bound)), (10**5000, "1" + "0" * 5000)):
        for payload in ({"n": number}, {"l": [number]}, {"d": {"n": number}}):
            with pytest.raises(InvalidMessage, match="payload number"):
                make(payload=payload)
        wire = make(payload={"n": 1}).to_bytes().replace(b'"n":1', b'"n":' + digits.encode())
        with pytest.raises(InvalidMessage):
            Message.from_bytes(wire)


def test_an_int_subclass_is_kept_as_the_int_it_holds() -> None:
    class Loud(int):
        def __repr__(self) -> str:
            return "loud"
    msg = make(payload={"n": Loud(5)})
    assert type(msg.payload["n"]) is int and msg.to_bytes() == make(payload={"n": 5}).to_bytes()


def _reencode(mutate) -> bytes:
    obj = json.loads(make().to_bytes())
    mutate(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("payload"),
        lambda o: o.update(extra=1),
        lambda o: o.update(v=2),
        lambda o: o.update(v=True),
        lambda o: o.update(session_id=SID.hex()[:-2]),
        lambda o: o.update(session_id=SID.hex().upper()),
        lambda o: o.update(round=-1),
        lambda o: o.update(round="1"),
        lambda o: o.update(sender=0),
        lambda o: o.update(sender=True),
        lambda o: o.update(recipient="2"),
        lambda o: o.update(protocol=""),
        lambda o: o.update(protocol="Bad Name"),
        lambda o: o.update(payload=[1]),
        lambda o: o.update(payload={"f": 1.5}),
    ],
)
def test_rejects_malformed_fields(mutate):
    with pytest.raises(InvalidMessage):
        Message.from_bytes(_reencode(mutate))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"\xff\xfe",
        b'{"v":1,"v":1}',
        b"[" * 10000 + b"]" * 10000,
        b'{"payload":{"x":NaN}}',
    ],
)
def test_rejects_garbage(data):
    with pytest.raises(InvalidMessage):
        Message.from_bytes(data)


def test_rejects_non_canonical_spacing_and_order():
    data = make().to_bytes()
    obj = json.loads(data)
    with pytest.raises(InvalidMessage, match="canonical"):
        Message.from_bytes(json.dumps(obj, sort_keys=True).encode())
    with pytest.raises(InvalidMessage, match="canonical"):
        Message.from_bytes(json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")).encode())


def test_rejects_oversized_and_huge_integers():
    with pytest.raises(InvalidMessage):
        Message.from_bytes(b" " * (MAX_MESSAGE_BYTES + 1))
    huge = _reencode(lambda o: o.update(payload={"n": 0})).replace(b'"n":0', b'"n":' + b"9" * 5000)
    with pytest.raises(InvalidMessage):
        Message.from_bytes(huge)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_bit_flips_never_escape_as_other_errors(data):
    raw = bytearray(make(payload={"x": secrets.token_hex(4)}).to_bytes())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= 1 << data.draw(st.integers(0, 7))
    try:
        Message.from_bytes(bytes(raw))
    except InvalidMessage:
        pass


def test_repr_shows_no_payload_values():
    msg = make(payload={"secret": "deadbeefcafe"})
    assert "deadbeefcafe" not in repr(msg)


def _nested(depth: int) -> dict:
    payload: dict = {"leaf": 0}
    for _ in range(depth - 1):
        payload = {"x": payload}
    return payload


def test_nesting_limit_is_exact_at_the_boundary():
    # The payload's values may sit MAX_DEPTH levels below it, and no deeper.
    deepest = make(payload=_nested(MAX_DEPTH)).to_bytes()
    assert Message.from_bytes(deepest).to_bytes() == deepest
    for extra in (b"[0]", b"[[0]]", b"[[[0]]]"):
        with pytest.raises(InvalidMessage, match="nested too deeply"):
            Message.from_bytes(deepest.replace(b'"leaf":0', b'"leaf":' + extra))


def test_many_shallow_brackets_are_accepted():
    # More brackets than the depth limit, but shallow: the running depth decides, not the count.
    payload = {"rows": [[secrets.token_hex(8), [1, 2]] for _ in range(3 * MAX_DEPTH)], "s": "[]{}" * 20}
    data = make(payload=payload).to_bytes()
    assert Message.from_bytes(data).to_bytes() == data


def test_brackets_in_strings_count_toward_the_bound():
    # Brackets inside strings are counted too (an upper bound): harmless, and never lets more through.
    data = make(payload={"s": "[" * (MAX_DEPTH + 3)}).to_bytes()
    with pytest.raises(InvalidMessage, match="nested too deeply"):
        Message.from_bytes(data)


# --- a message as a JSON object (a composite carries its child's message so) -------------------------
@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_wire_object_is_what_to_bytes_encodes(payload):
    msg = make(payload=payload)
    assert json.loads(msg.to_bytes()) == json.loads(json.dumps(msg.wire_object(), default=dict))
    again = Message.from_wire_object(msg.wire_object())
    assert again == msg and again.to_bytes() == msg.to_bytes()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("payload"),
        lambda o: o.update(extra=1),
        lambda o: o.update(v=True),
        lambda o: o.update(v=2),
        lambda o: o.update(session_id=SID.hex().upper()),
        lambda o: o.update(session_id=" ".join(SID.hex()[i:i + 2] for i in range(0, 64, 2))),  # fromhex skips it
        lambda o: o.update(session_id=SID.hex()[:-2]),
        lambda o: o.update(round=True),
        lambda o: o.update(recipient="2"),
        lambda o: o.update(payload=(1,)),
    ],
)
def test_from_wire_object_refuses_what_from_bytes_refuses(mutate):
    obj = make().wire_object()
    mutate(obj)
    with pytest.raises(InvalidMessage):
        Message.from_wire_object(obj)
    with pytest.raises(InvalidMessage):
        Message.from_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list).encode())


def test_a_received_message_keeps_its_bytes():
    data = make(payload={"x": "00", "n": [1, {"k": None}]}).to_bytes()
    msg = Message.from_bytes(data)
    assert msg.to_bytes() is data  # never encoded again (the custodian hashes it into its transcript)
    built = make()
    assert built.to_bytes() is built.to_bytes()


def test_duplicate_keys_are_still_named():
    data = make().to_bytes().replace(b'"round":1,', b'"round":1,"round":1,')
    with pytest.raises(InvalidMessage, match="duplicate"):
        Message.from_bytes(data)


@settings(max_examples=120, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=12), st.text(max_size=40) | json_values, max_size=5)
       | st.dictionaries(st.text(alphabet="abcdef_0123456789", max_size=12), st.text(alphabet="0123456789abcdef"),
                         max_size=4),
       recipient=st.none() | st.integers(1, 2**32 - 1), round_no=st.integers(0, 2**16 - 1),
       protocol=st.from_regex(r"[a-z0-9][a-z0-9_\-/]{0,63}", fullmatch=True))
def test_the_direct_encoding_is_the_json_encoders(payload, recipient, round_no, protocol):
    """``to_bytes`` writes the envelope and plain payloads itself: byte for byte what the JSON
    encoder makes of ``wire_object()`` (keys sorted, no white space, ASCII with escapes)."""
    msg = make(payload=payload, recipient=recipient, round=round_no, protocol=protocol)
    expected = json.dumps(msg.wire_object(), sort_keys=True, separators=(",", ":"), default=dict).encode()
    assert msg.to_bytes() == expected
    assert Message.from_bytes(expected) == msg


class _OddStr(str):
    """A str subclass whose operators and text form differ from what it holds."""

    def __radd__(self, other):
        return "tampered"

    def __add__(self, other):
        return "tampered"

    def __str__(self):
        return "tampered"


def test_string_subclasses_travel_as_the_strings_they_hold():
    msg = make(payload={_OddStr("k"): _OddStr("00ff"), "list": [_OddStr("a")]})
    assert msg.payload == {"k": "00ff", "list": ("a",)} and all(type(k) is str for k in msg.payload)
    assert msg.to_bytes() == json.dumps(make(payload={"k": "00ff", "list": ["a"]}).wire_object(),
                                        sort_keys=True, separators=(",", ":"), default=dict).encode()


@pytest.mark.parametrize("name", ["test/proto\n", "test/proto\r", " test/proto", "Test/proto", ""])
def test_a_protocol_name_is_all_of_it_plain(name: str) -> None:
    with pytest.raises(InvalidMessage):
        make(protocol=name)


def test_a_protocol_name_subclass_travels_as_the_name_it_holds() -> None:
    msg = make(protocol=_OddStr("test/proto"))
    assert type(msg.protocol) is str and msg.protocol == "test/proto"
    assert msg.to_bytes() == make().to_bytes()
    assert Message.from_bytes(msg.to_bytes()) == make()


@settings(max_examples=100, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5), recipient=st.sampled_from([None, 2]))
def test_a_message_with_another_payload_is_what_the_constructor_makes(payload, recipient) -> None:
    """``Message._with_payload``: the base's header and the payload frozen as the constructor freezes
    it; equal to, encoding and printing like ``Message(...)`` of the same fields; the base unchanged."""
    base = make(recipient=recipient, payload={"a": "00"})
    made = base._with_payload(payload)
    rebuilt = Message(base.protocol, base.session_id, base.round, base.sender, base.recipient, payload)
    assert made == rebuilt and made.to_bytes() == rebuilt.to_bytes() and repr(made) == repr(rebuilt)
    assert Message.from_bytes(made.to_bytes()) == made and base.payload == {"a": "00"}
    with pytest.raises(TypeError):
        made.payload["new"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        made.round = 2  # type: ignore[misc]


@settings(max_examples=50, deadline=None)
@given(first=st.dictionaries(st.text(max_size=8), json_values, max_size=5), text=st.text(max_size=40),
       dropped=st.text(max_size=8))
def test_a_message_with_a_payload_frozen_already_is_what_the_constructor_makes(first, text, dropped) -> None:
    """``Message._with_frozen_payload`` (the wallet's sign: a message's frozen payload with one more
    text field, and a frozen payload with one field less, each wrapped as it is): equal to, encoding
    like and as immutable as ``Message(...)`` of the same fields; the source message unchanged."""
    source = make(payload=first)
    joined = dict(source.payload)
    joined["hello"] = text
    split = dict(source.payload)
    split.pop(dropped, None)
    for fields in (joined, split):
        made = source._with_frozen_payload(FrozenDict(fields))
        rebuilt = Message(source.protocol, source.session_id, source.round, source.sender, source.recipient, fields)
        assert made == rebuilt and made.to_bytes() == rebuilt.to_bytes() and repr(made) == repr(rebuilt)
        assert Message.from_bytes(made.to_bytes()) == made
        with pytest.raises(TypeError):
            made.payload["new"] = 1  # type: ignore[index]
    assert source == make(payload=first)


def test_a_message_subclass_with_another_payload_runs_its_constructor() -> None:
    """A subclass's constructor may check more: both ways of making a message of another payload run it."""
    seen: list[Any] = []

    @dataclass(frozen=True)
    class Checked(Message):
        def __post_init__(self) -> None:
            seen.append(dict(self.payload))
            super().__post_init__()

    base = Checked("test/proto", bytes(32), 1, 1, 2, {"a": "00"})
    assert type(base._with_payload({"b": "01"})) is Checked
    assert type(base._with_frozen_payload(FrozenDict({"c": "02"}))) is Checked
    assert seen == [{"a": "00"}, {"b": "01"}, {"c": "02"}]


def test_a_message_with_another_payload_refuses_what_the_constructor_refuses() -> None:
    base = make()
    for bad in (["a"], {"a": 1.5}, {1: "x"}, {"a": object()}, {"a": [[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]}):
        with pytest.raises(InvalidMessage):
            Message(base.protocol, base.session_id, base.round, base.sender, base.recipient, bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage):
            base._with_payload(bad)  # type: ignore[arg-type]
