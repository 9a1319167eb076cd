"""The round-message framework: immutable messages and sans-I/O sessions.

Wire format of a :class:`Message` (version 1): one JSON object with exactly the keys
``v, protocol, session_id, round, sender, recipient, payload``, serialised with sorted keys, no
white space and ASCII only. ``Message.from_bytes`` parses strictly (no duplicate keys, no floats,
no NaN, bounded size and depth) and re-encodes: input that is not byte-for-byte canonical is
rejected. Payload values are JSON values without floats; binary data travels as lowercase hex.

A :class:`Session` is one party's state in one run. Subclasses implement ``_begin()`` (the first
messages) and, for each incoming round N, two methods:

- ``_decode_roundN(msg)`` turns the payload into typed values. It raises ``InvalidMessage`` for
  malformed input and ``ProofError`` for a failed proof, and never changes state.
- ``_on_roundN(inputs)`` runs when every expected message of round N has been decoded, with
  ``inputs`` mapping each sender to its decoded value; it changes state and returns the
  messages to send. A failed check here raises ``ProtocolAbort`` naming the culprit.

The base class checks the envelope (protocol, session id, recipient, sender, round, duplicates)
before any decoding, so a rejected message never touches the session state, and it turns a
``ProofError`` into a ``ProtocolAbort`` that names the sender. After an abort (or a
``KeyLocked``) every call raises the same error.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeGuard, TypeVar

from protocols.errors import (
    FutureMessage,
    InvalidMessage,
    KeyLocked,
    MPCError,
    ProofError,
    ProtocolAbort,
    UsageError,
)
from protocols.frozen import FrozenDict, frozen
from protocols.state import register_bytes

__all__ = ["Message", "Session", "WIRE_VERSION", "MAX_MESSAGE_BYTES", "parse_hex", "parse_strict_json"]

WIRE_VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 16
SESSION_ID_LENGTH = 32
# A payload's numbers are small (counts, levels, indices): protocol values travel as hex strings.
# The bound keeps every number a message holds encodable (Python writes at most 4300 decimal
# digits of an int by default), so ``to_bytes`` never fails on a message its constructor took.
MAX_INT_BITS = 8192
_INT_BOUND = 1 << MAX_INT_BITS
_KEYS = frozenset({"v", "protocol", "session_id", "round", "sender", "recipient", "payload"})
_PROTOCOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-/]{0,63}$")
_T = TypeVar("_T")


def _freeze(value: Any, depth: int = 0) -> Any:
    """Deep-copy a JSON-able value into immutable containers (``FrozenDict``, tuples), rejecting
    anything else and any number of ``MAX_INT_BITS`` bits or more."""
    if depth > MAX_DEPTH:
        raise InvalidMessage("payload nested too deeply")
    # The exact JSON types first (every value of a decoded message is one): no ABC check.
    kind = type(value)
    if kind is str or kind is int and -_INT_BOUND < value < _INT_BOUND or kind is bool or value is None:
        return value
    if kind is dict or kind is FrozenDict:
        return _freeze_mapping(value, depth)
    if kind is tuple or kind is list:
        return _freeze_sequence(value, depth)
    if isinstance(value, str):  # a subclass: kept as the plain str it holds (what the encoding writes)
        return str.__str__(value)
    if isinstance(value, int):  # an int subclass, or a number too large to be a payload's
        number = int.__index__(value)
        if not -_INT_BOUND < number < _INT_BOUND:
            raise InvalidMessage(f"payload number of {number.bit_length()} bits (at most {MAX_INT_BITS - 1})")
        return number
    if isinstance(value, (list, tuple)):
        return _freeze_sequence(value, depth)
    if isinstance(value, Mapping):
        return _freeze_mapping(value, depth)
    raise InvalidMessage(f"payload value of type {type(value).__name__} is not allowed")


def _freeze_mapping(value: Mapping[Any, Any], depth: int) -> FrozenDict[str, Any]:
    made = {}
    for key, item in value.items():
        if type(key) is not str:
            if not isinstance(key, str):
                raise InvalidMessage("payload keys must be strings")
            key = str.__str__(key)
        if depth >= MAX_DEPTH:  # the item would be nested too deeply, whatever it is
            raise InvalidMessage("payload nested too deeply")
        kind = type(item)  # a scalar is kept as it is without a call (most values are)
        made[key] = item if kind is str or kind is int and -_INT_BOUND < item < _INT_BOUND or kind is bool \
            or item is None else _freeze(item, depth + 1)
    return frozen(made)


def _freeze_sequence(value: list[Any] | tuple[Any, ...], depth: int) -> tuple[Any, ...]:
    if value and depth >= MAX_DEPTH:
        raise InvalidMessage("payload nested too deeply")
    return tuple([item if (kind := type(item)) is str or kind is int and -_INT_BOUND < item < _INT_BOUND
                  or kind is bool or item is None else _freeze(item, depth + 1) for item in value])


# One encoder and one decoder for every message: json.dumps/json.loads with options build a new
# JSONEncoder/JSONDecoder on each call, which is a measurable share of a small message's cost.
# No circularity check: every value encoded is a frozen payload (fresh containers, bounded depth)
# or a decoded one (a tree), so the check's bookkeeping per container buys nothing.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, check_circular=False,
)


def _encode(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("ascii")


def _encode_payload(payload: Mapping[str, Any]) -> str:
    """``_ENCODER.encode(payload)``, written directly when every key and value is a string the
    encoder writes as it is between quotes (most payloads: hex fields): sorted keys, no escapes.

    ``body`` joins ``key":"value`` pairs with ``","``; it raises ``TypeError`` for a value that is
    not a string, and it holds exactly 4n - 2 quotes when no key or value has one. The encoder
    (``ensure_ascii``) writes a string as it is iff it is printable ASCII (0x20-0x7e) without a
    quote or a backslash.
    """
    try:
        body = '","'.join([key + '":"' + value for key, value in sorted(payload.items())])
    except TypeError:
        return _ENCODER.encode(payload)
    if body.count('"') == 4 * len(payload) - 2 and "\\" not in body and body.isascii() and body.isprintable():
        return '{"' + body + '"}'
    return _ENCODER.encode(payload)


def _encode_message(message: Message) -> bytes:
    """``_encode(message.wire_object())``, the envelope written directly: its keys in sorted
    order, the protocol name plain (``_PROTOCOL_NAME``), the numbers ints (``%d``, as the encoder
    writes an int), and the payload by ``_encode_payload``."""
    recipient = "null" if message.recipient is None else "%d" % message.recipient
    return ('{"payload":%s,"protocol":"%s","recipient":%s,"round":%d,"sender":%d,"session_id":"%s","v":%d}' % (
        _encode_payload(message.payload), message.protocol, recipient, message.round, message.sender,
        message.session_id.hex(), WIRE_VERSION)).encode("ascii")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidMessage("duplicate key in message")
    return obj


def _reject_constant(name: str) -> Any:
    raise InvalidMessage(f"{name} is not allowed")


def _reject_float(text: str) -> Any:
    raise InvalidMessage("floating-point numbers are not allowed")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_float=_reject_float, parse_constant=_reject_constant
)
# For messages: no hook per object. A duplicate key cannot survive ``from_bytes``'s check that the
# bytes are the canonical encoding (a decoded object re-encodes without duplicates).
_MESSAGE_DECODER = json.JSONDecoder(parse_float=_reject_float, parse_constant=_reject_constant)


def _is_int(value: Any) -> bool:
    """An int and not a bool (the exact type decided first: no subclass check on the common path)."""
    return type(value) is int or isinstance(value, int) and not isinstance(value, bool)


def _is_party_id(value: Any) -> bool:
    return _is_int(value) and 1 <= value < 2**32


# Protocol names already checked against ``_PROTOCOL_NAME`` (a handful in a process; bounded, so
# that a peer naming new protocols cannot grow it).
_PROTOCOL_NAMES_SEEN: set[str] = set()
_PROTOCOL_NAMES_KEPT = 64


@dataclass(frozen=True)
class Message:
    """One protocol message. ``recipient=None`` means broadcast to every other party."""

    protocol: str
    session_id: bytes
    round: int
    sender: int
    recipient: int | None
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_header()
        payload = self.payload
        if type(payload) is not dict and type(payload) is not FrozenDict and not isinstance(payload, Mapping):
            raise InvalidMessage("payload must be a mapping")
        object.__setattr__(self, "payload", _freeze(payload))

    def _check_header(self) -> None:
        """Every field but the payload (``InvalidMessage``); a ``str`` subclass protocol name
        becomes the plain string it holds."""
        if type(self.protocol) is not str or self.protocol not in _PROTOCOL_NAMES_SEEN:
            if not isinstance(self.protocol, str) or not _PROTOCOL_NAME.fullmatch(self.protocol):
                raise InvalidMessage("bad protocol name")
            if type(self.protocol) is not str:  # the str it holds: its own __str__ could write anything
                object.__setattr__(self, "protocol", str.__str__(self.protocol))
            if len(_PROTOCOL_NAMES_SEEN) < _PROTOCOL_NAMES_KEPT:
                _PROTOCOL_NAMES_SEEN.add(self.protocol)
        if not isinstance(self.session_id, bytes) or len(self.session_id) != SESSION_ID_LENGTH:
            raise InvalidMessage("session id must be 32 bytes")
        if not _is_int(self.round) or not 0 <= self.round < 2**16:
            raise InvalidMessage("bad round number")
        if not _is_party_id(self.sender):
            raise InvalidMessage("bad sender id")
        if self.recipient is not None and not _is_party_id(self.recipient):
            raise InvalidMessage("bad recipient id")

    def _with_payload(self, payload: Mapping[str, Any]) -> Message:
        """``Message(self.protocol, self.session_id, self.round, self.sender, self.recipient,
        payload)``: this message's header, which its constructor checked (a message is immutable),
        and ``payload`` frozen and checked as the constructor freezes it (``InvalidMessage``),
        without the frozen dataclass's per-field ``object.__setattr__`` calls and the header
        checks run again (~2 µs). For a message made of another's fields (the wallet's sign joins
        its hello to its child's first payload and splits it off again: ``mpc.signing``)."""
        if type(payload) is not dict and type(payload) is not FrozenDict and not isinstance(payload, Mapping):
            raise InvalidMessage("payload must be a mapping")
        return self._with_frozen_payload(payload if type(self) is not Message else _freeze(payload))

    def _with_frozen_payload(self, payload: Mapping[str, Any]) -> Message:
        """``_with_payload(payload)`` of a payload frozen already: a ``FrozenDict`` that nothing
        else holds, whose values are each a value of a message's payload (which its constructor
        froze) or a ``str`` (the wallet's sign: its child's first payload with the hello's text,
        and that payload without it). Not frozen and checked again: the values are those
        ``_freeze`` returned, and the ``FrozenDict`` refuses every change."""
        if type(self) is not Message:  # a subclass's constructor may check more: run it
            return type(self)(self.protocol, self.session_id, self.round, self.sender, self.recipient, payload)
        message = object.__new__(Message)
        message.__dict__.update(protocol=self.protocol, session_id=self.session_id, round=self.round,
                                sender=self.sender, recipient=self.recipient, payload=payload)
        return message

    def to_bytes(self) -> bytes:
        """The canonical, versioned JSON encoding (made once: a message is immutable, so a
        received message's bytes, or a sent one's, are never encoded again)."""
        encoded: bytes | None = self.__dict__.get("_encoded")
        if encoded is None:
            encoded = _encode_message(self)
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    def wire_object(self) -> dict[str, Any]:
        """The JSON object that ``to_bytes`` encodes (a composite carries a child's message as
        this object, inside its own message: ``protocols.compose``)."""
        return {
            "v": WIRE_VERSION,
            "protocol": self.protocol,
            "session_id": self.session_id.hex(),
            "round": self.round,
            "sender": self.sender,
            "recipient": self.recipient,
            "payload": self.payload,
        }

    @classmethod
    def from_bytes(cls, data: bytes) -> Message:
        """Parse the canonical encoding; anything malformed or non-canonical is ``InvalidMessage``."""
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidMessage("message must be bytes")
        if len(data) > MAX_MESSAGE_BYTES:
            raise InvalidMessage("message too large")
        data = bytes(data)
        try:
            message = cls.from_wire_object(_parse_json(data, _MESSAGE_DECODER))
        except InvalidMessage:
            _parse_json(data)  # a duplicate key is named as such (the strict parser checks for it)
            raise
        # ``from_wire_object`` admits no other form of any field, so the bytes are canonical
        # exactly when they are the message's own encoding.
        if _encode_message(message) != data:
            _parse_json(data)
            raise InvalidMessage("message encoding is not canonical")
        object.__setattr__(message, "_encoded", data)
        return message

    @classmethod
    def from_wire_object(cls, obj: Any) -> Message:
        """The message whose ``wire_object()`` is ``obj`` (exactly its keys, wire version 1, the
        session id in lowercase hex, every field checked as the constructor does), else
        ``InvalidMessage``. ``from_bytes`` is this plus the check that the bytes are canonical;
        an object taken from a message that was itself decoded (a composite's child message)
        re-encodes to a canonical substring of that message, so it needs no second check."""
        if type(obj) is not dict and not isinstance(obj, Mapping) or set(obj) != _KEYS:
            raise InvalidMessage("message must have exactly the keys " + ",".join(sorted(_KEYS)))
        if obj["v"] != WIRE_VERSION or isinstance(obj["v"], bool):
            raise InvalidMessage("unsupported wire version")
        session_id = parse_hex(obj["session_id"], "session_id")
        if session_id.hex() != obj["session_id"]:  # bytes.fromhex skips white space: not canonical
            raise InvalidMessage("session_id must be lowercase hex")
        return cls(
            protocol=obj["protocol"],
            session_id=session_id,
            round=obj["round"],
            sender=obj["sender"],
            recipient=obj["recipient"],
            payload=obj["payload"],
        )

    def __repr__(self) -> str:
        to = "all" if self.recipient is None else self.recipient
        return (
            f"Message({self.protocol} sid={self.session_id.hex()[:8]}… round={self.round} "
            f"{self.sender}->{to} keys={sorted(self.payload)})"
        )


def parse_strict_json(data: bytes) -> Any:
    """Parse JSON strictly (ASCII, bounded depth, no floats/NaN/duplicate keys): ``InvalidMessage``.

    For any JSON that crosses a trust boundary (messages, stored shares): the depth bound is
    checked before the C parser runs, since a deeply nested input can exhaust the C stack.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidMessage("JSON input must be bytes")
    return _parse_json(bytes(data))


def _parse_json(data: bytes, message_decoder: json.JSONDecoder | None = None) -> Any:
    """Strict JSON (``parse_strict_json``); with ``message_decoder``, the text must be one JSON
    value and nothing else (a message: no white space around it), parsed by that decoder."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidMessage("message must be ASCII") from None
    if _nesting_depth(data) > MAX_DEPTH + 2:
        raise InvalidMessage("message nested too deeply")
    try:
        if message_decoder is None:
            return _DECODER.decode(text)
        value, end = message_decoder.raw_decode(text)  # ``decode`` without its white-space scans
    except InvalidMessage:
        raise
    except (ValueError, RecursionError):
        raise InvalidMessage("message is not valid JSON") from None
    if end != len(text):
        raise InvalidMessage("message is not valid JSON")  # trailing data or white space
    return value


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _nesting_depth(data: bytes) -> int:
    """An upper bound on the bracket depth (brackets inside strings count too: harmless).

    Runs on every received message, so the scan over the whole text stays in C: the brackets
    are picked out with ``bytes.translate``; when there are few of them their number is bound
    enough, otherwise the running depth is computed over the brackets alone.
    """
    brackets = data.translate(None, _NOT_BRACKETS)
    if len(brackets) <= MAX_DEPTH + 2:
        return len(brackets)
    return max(0, max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0))


def parse_hex(value: Any, name: str) -> bytes:
    """Decode lowercase hex of even length; raises ``InvalidMessage`` naming ``name`` otherwise."""
    if type(value) is not str and not isinstance(value, str):
        raise InvalidMessage(f"{name} must be lowercase hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidMessage(f"{name} must be lowercase hex") from None
    if raw.hex() != value:  # upper case or white space (which ``fromhex`` skips)
        raise InvalidMessage(f"{name} must be lowercase hex")
    return raw


def _two_sorted_parties(parties: Iterable[int]) -> TypeGuard[tuple[int, int]]:
    """Whether ``parties`` is already what ``_checked_parties`` returns for two parties (the common
    case: a two-party protocol or a wallet operation, ``mpc.wallet.PARTIES``): a tuple of two plain
    ints, ascending (so distinct), both in [1, 2^32). Anything else takes the general check."""
    if type(parties) is not tuple or len(parties) != 2:
        return False
    first, second = parties
    return type(first) is int and type(second) is int and 1 <= first < second < 2**32


def _checked_parties(parties: Iterable[int]) -> tuple[int, ...]:
    """The party ids sorted, if they are distinct integers in [1, 2^32), else ``UsageError``."""
    checked = tuple(sorted(parties))
    if len(set(checked)) != len(checked) or not all(_is_party_id(p) for p in checked):
        raise UsageError("party ids must be distinct integers in [1, 2^32)")
    return checked


class Session:
    """One party's state in one protocol run (sans-I/O: no clocks, no sockets, no sleeps)."""

    protocol: ClassVar[str]
    _transient: ClassVar[tuple[str, ...]] = ()
    """Attributes that are collaborators, not state: left out by ``to_bytes``, given back to
    ``from_bytes`` as keyword arguments (see ``protocols.state``)."""

    def __init__(self, session_id: bytes, party_id: int, parties: Iterable[int]) -> None:
        if type(session_id) is not bytes and not isinstance(session_id, bytes) or len(session_id) != SESSION_ID_LENGTH:
            raise UsageError("session_id must be 32 bytes")
        checked: tuple[int, ...] = parties if _two_sorted_parties(parties) else _checked_parties(parties)
        if party_id not in checked:
            raise UsageError("party_id must be one of the parties")
        self.session_id = session_id
        self.party_id = party_id
        self.parties = checked
        self._started = False
        self._round: int | None = None
        self._awaited: frozenset[int] = frozenset()
        self._inputs: dict[int, Any] = {}
        self._done = False
        self._result: Any = None
        self._abort: ProtocolAbort | KeyLocked | None = None

    # --- public API -------------------------------------------------------------------------
    @property
    def peers(self) -> tuple[int, ...]:
        """The other parties' ids, sorted."""
        return tuple(p for p in self.parties if p != self.party_id)

    @property
    def done(self) -> bool:
        """Whether the session has finished; ``result()`` is then available."""
        return self._done

    @property
    def aborted(self) -> ProtocolAbort | KeyLocked | None:
        """The ``ProtocolAbort`` or ``KeyLocked`` that ended the session (every later call raises it), or None."""
        return self._abort

    @property
    def awaiting_round(self) -> int | None:
        """The round whose messages the session waits for (None when done or not started)."""
        return self._round

    def start(self) -> list[Message]:
        """The party's first messages."""
        self._raise_if_aborted()
        if self._started:
            raise UsageError("session already started")
        messages = self._guard(self._begin)
        self._started = True
        return messages

    def receive(self, msg: Message) -> list[Message]:
        """Consume one message; returns what is now ready to send (often nothing)."""
        if self._abort is not None:
            raise self._abort
        if not isinstance(msg, Message):
            raise InvalidMessage("not a Message")
        self._check_envelope(msg)
        decoded = self._guard(self._decode, msg, culprit=msg.sender)
        self._inputs[msg.sender] = decoded
        if len(self._inputs) != len(self._awaited):  # every input is from an awaited sender, once
            return []
        inputs, self._inputs = self._inputs, {}
        handler: Callable[[dict[int, Any]], list[Message]] = getattr(self, f"_on_round{msg.round}")
        return self._guard(handler, inputs)

    def result(self) -> Any:
        """The session's output; raises ``UsageError`` before it is done."""
        self._raise_if_aborted()
        if not self._done:
            raise UsageError("session is not done")
        return self._result

    def to_bytes(self) -> bytes:
        """The whole state, for parking between rounds (``protocols.state``: a secret-bearing,
        single-use blob; store it with take semantics)."""
        from protocols.state import encode_state

        return encode_state(self)

    @classmethod
    def from_bytes(cls, data: bytes, **context: Any) -> Session:
        """Resume a session parked with ``to_bytes``; ``context`` gives back its ``_transient``
        collaborators (and ``setup=`` for sessions that use the custodian setup)."""
        from protocols.state import decode_state

        session = decode_state(data, **context)
        if not isinstance(session, cls):
            raise InvalidMessage(f"the state is not a {cls.__name__}")
        return session

    # --- for subclasses ---------------------------------------------------------------------
    def _resume(self, context: Mapping[str, Any]) -> None:
        """Called by ``from_bytes``: put the ``_transient`` collaborators back."""
        for name in self._transient:
            if name not in context:
                raise UsageError(f"resuming {type(self).__name__} needs {name}=...")
            setattr(self, name, context[name])

    def _begin(self) -> list[Message]:
        raise NotImplementedError

    def _expect(self, round: int, senders: Iterable[int] | None = None) -> None:
        """Wait for round ``round`` from ``senders`` (default: every peer)."""
        self._round = round
        self._awaited = frozenset(self.peers if senders is None else senders)
        self._inputs = {}

    def _finish(self, result: Any) -> None:
        self._round = None
        self._awaited = frozenset()
        self._done = True
        self._result = result

    def _message(self, round: int, payload: Mapping[str, Any], recipient: int | None = None) -> Message:
        return Message(self.protocol, self.session_id, round, self.party_id, recipient, payload)

    def _broadcast(self, round: int, payload: Mapping[str, Any]) -> list[Message]:
        return [self._message(round, payload)]

    # --- internals --------------------------------------------------------------------------
    def _raise_if_aborted(self) -> None:
        if self._abort is not None:
            raise self._abort

    def _guard(self, step: Callable[..., _T], *args: Any, culprit: int | None = None) -> _T:
        """Run ``step(*args)``; turn proof failures into an abort naming ``culprit`` and remember aborts."""
        try:
            return step(*args)
        except ProofError as exc:
            self._abort = ProtocolAbort(exc.reason, culprit)
        except (ProtocolAbort, KeyLocked) as exc:
            self._abort = exc
        raise self._abort

    def _decode(self, msg: Message) -> Any:
        """Decode a payload; decoders are pure, so any failure leaves the state as it was."""
        decode: Callable[[Message], Any] = getattr(self, f"_decode_round{msg.round}")
        try:
            return decode(msg)
        except MPCError:
            raise
        except Exception as exc:  # a hostile payload must only ever surface as InvalidMessage
            raise InvalidMessage(f"malformed round {msg.round} payload") from exc

    def _check_envelope(self, msg: Message) -> None:
        if msg.protocol != self.protocol:
            raise InvalidMessage(f"message for protocol {msg.protocol!r}, expected {self.protocol!r}")
        if msg.session_id != self.session_id:
            raise InvalidMessage("message for another session")
        if msg.sender not in self.parties or msg.sender == self.party_id:
            raise InvalidMessage(f"unknown sender {msg.sender}")
        if msg.recipient is not None and msg.recipient != self.party_id:
            raise InvalidMessage("message addressed to another party")
        if self._done:
            raise InvalidMessage("session already finished")
        if not self._started or self._round is None:
            raise FutureMessage("session not started")
        if msg.round > self._round:
            raise FutureMessage(f"message of round {msg.round} while waiting for round {self._round}")
        if msg.round < self._round:
            raise InvalidMessage(f"message of past round {msg.round}")
        if msg.sender not in self._awaited:
            raise InvalidMessage(f"no message expected from party {msg.sender} in this round")
        if msg.sender in self._inputs:
            raise InvalidMessage("duplicate message")
        if not hasattr(self, f"_decode_round{msg.round}"):
            raise InvalidMessage(f"round {msg.round} has no incoming messages")

    def __repr__(self) -> str:
        state = "aborted" if self._abort else "done" if self._done else f"round {self._round}"
        return f"<{type(self).__name__} party={self.party_id} sid={self.session_id.hex()[:8]}… {state}>"


# Parkable state (``protocols.state``).
register_bytes(Message)
