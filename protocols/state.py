"""Session state codec: park a session between rounds and resume it.

``Session.to_bytes()`` encodes one party's whole state; ``Session.from_bytes(data, **context)``
restores it, so a server can keep a session in its database between two messages and continue
on any node. The codec is *strict and allowlisted*: only the types below and classes registered
by an explicit call can be encoded or restored (never by importing a name found in the data);
an unknown tag or class name is ``InvalidMessage``. Each module declares what of its own state
may be parked, at its end (``register_attrs`` and friends); this module imports none of them.
What is *not* declared cannot be parked: every session that holds a nonce between its rounds
(the device's signing sessions, FROST ``SignSession``) and single-use randomness (FROST
``SigningNonces``, the custodian's c3 precomputations).

Format (version 1): canonical JSON (sorted keys, no white space, ASCII), an envelope
``{"kind": "portal-mpc/session-state", "v": 1, "state": VALUE}``. Apart from ``null``, ``true``
and ``false``, every value is a JSON array whose first element is a type tag::

    ["i", hex]              int (minimal lowercase hex, "-" prefix when negative)
    ["s", text]             str
    ["b", hex]              bytes
    ["t", [v…]]  ["l", [v…]]  ["f", [v…]]      tuple, list, frozenset (sorted by encoding)
    ["d", [[k, v]…]]  ["m", [[k, v]…]]         dict, read-only mapping (a ``FrozenDict`` or a
                                                ``MappingProxyType``; restored as a ``FrozenDict``;
                                                insertion order kept; keys are values too, so int
                                                keys are fine)
    ["g", name]                                group singletons, by name
    ["p", group, hex | null]                   curve point (null: the identity)
    ["k", group, hex]                          SecretScalar (explicitly: it is a secret)
    ["o", class, body]                         a registered class (body per its kind)
    ["r", n]                                   the n-th object already seen (see below)
    ["x", [text…]]                             an object held outside the state, by reference

Registered kinds: ``attrs`` (sessions and plain objects: their ``__dict__`` by sorted name,
minus the names in the class's ``_transient``), ``dataclass`` (its init fields, rebuilt through
the constructor so its validation runs), ``bytes`` (the class's own strict ``to_bytes`` /
``from_bytes``: key shares, Paillier and ring-Pedersen secrets, messages) and a few custom ones
(aborts; the custodian setup *by reference*: its fingerprint only, the object comes back from
the ``setup`` context).

Shared objects keep their identity: lists, dicts and registered objects are numbered in the
order they are first met, and a second occurrence is ``["r", n]``. A signing session and its
wallet operation hold the same key share object (a lock set by one is seen by the other), and a
composite holds its children once; after a restore they are still one object.

References. An object the caller keeps elsewhere (the custodian's key share, which its store
holds) may be left out of the state and *named* instead: ``encode_state(root, references=[(obj,
key)…])`` writes every occurrence of ``obj`` as ``["x", key]`` (``key``: a non-empty tuple of
text, meaningful to the caller only), and ``decode_state(data, resolve=...)`` gets it back by
calling ``resolve(key)`` once per distinct key (so its occurrences are still one object). The
codec knows nothing of what a key means: the caller that resolves it must check that it names
what the rest of the state may use (its client, curve and version). A reference met without a
``resolve`` is ``UsageError`` (as a missing collaborator).

Transient collaborators (the custodian facade, its store, the device's keychain facade, a
backup method) are not state: a class names them in ``_transient`` and ``from_bytes`` takes them
from ``**context`` (``Session._resume`` re-injects them; a missing one is ``UsageError``).

Safety. A parked session is a *secret-bearing* blob: it holds secret shares and, between the
rounds of ECDSA signing, the custodian's k2, already committed to the client's R1. Resuming a
blob with a *different* peer input must never combine an old secret with it: the only parkable
session that holds a nonce, ``SignP2``, draws k2 after the peer's commitment, and a custodian runs
every step inside ``protocols.randomness.derived`` over the transcript, so a replay of a copy
(or of a restored database) reproduces the same replies and another input meets fresh values
(docs/threat-model.md, "Rollback"). Store blobs with *take* semantics all the same (load and
delete in one transaction, process the message, save the new state: ``mpc.storage.store``'s
``take_session``) as defence in depth. Store the blobs like the shares themselves (same
database, same protection), and only blobs this code produced: restoring validates every field through the types' strict
decoders (points on the curve, scalars below the order, Paillier keys well formed, canonical
encodings), but it does not authenticate who wrote them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from types import MappingProxyType
from typing import Any

from curves import Group, Point, SecretScalar, group_by_name
from curves.errors import CurveError
from protocols.errors import InvalidMessage, KeyLocked, MPCError, ProtocolAbort, UsageError
from protocols.frozen import FrozenDict

__all__ = [
    "STATE_VERSION",
    "MAX_STATE_BYTES",
    "encode_state",
    "decode_state",
    "register_attrs",
    "register_dataclass",
    "register_bytes",
    "register_custom",
    "register_message_error",
    "registered_names",
]

STATE_VERSION = 1
STATE_KIND = "portal-mpc/session-state"
MAX_STATE_BYTES = 8 * 1024 * 1024
MAX_STATE_DEPTH = 96

Encoder = Callable[[Any, "_Encoder"], Any]
Decoder = Callable[[Any, "_Decoder"], Any]


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    cls: type
    kind: str  # "attrs" | "dataclass" | "bytes" | "custom"
    encode: Encoder | None = None
    decode: Decoder | None = None


_BY_NAME: dict[str, _Entry] = {}
_BY_CLASS: dict[type, _Entry] = {}


def _add(entry: _Entry) -> None:
    known = _BY_NAME.get(entry.name)
    if known is not None and known.cls is not entry.cls:
        raise UsageError(f"state name {entry.name!r} is already registered for another class")
    _BY_NAME[entry.name] = entry
    _BY_CLASS[entry.cls] = entry


def _default_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_attrs(cls: type, name: str | None = None) -> type:
    """Allow ``cls`` (a session or plain object): state = ``__dict__`` minus ``cls._transient``."""
    _add(_Entry(name or _default_name(cls), cls, "attrs"))
    return cls


def register_dataclass(cls: type, name: str | None = None) -> type:
    """Allow dataclass ``cls``: its init fields, rebuilt through the constructor."""
    if not dataclasses.is_dataclass(cls):
        raise UsageError(f"{cls.__name__} is not a dataclass")
    _add(_Entry(name or _default_name(cls), cls, "dataclass"))
    return cls


def register_bytes(cls: type, name: str | None = None) -> type:
    """Allow ``cls`` through its own strict ``to_bytes()`` / ``cls.from_bytes(data)``."""
    _add(_Entry(name or _default_name(cls), cls, "bytes"))
    return cls


def register_custom(cls: type, name: str, encode: Encoder, decode: Decoder) -> type:
    """Allow ``cls`` with explicit functions: ``encode(obj, enc) -> JSON``, ``decode(body, dec)``."""
    _add(_Entry(name, cls, "custom", encode, decode))
    return cls


def registered_names() -> list[str]:
    """Every registered class name (the allowlist): what the modules imported so far declared."""
    return sorted(_BY_NAME)


# --- encoding -------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self, references: Iterable[tuple[Any, tuple[str, ...]]] = ()) -> None:
        pairs = list(references)
        self._references = {id(obj): _reference_key(key) for obj, key in pairs}
        self._referenced = [obj for obj, _ in pairs]  # kept alive while encoding, so ids stay unique
        self._seen: dict[int, int] = {}
        self._alive: list[Any] = []  # keeps every numbered object alive, so ids stay unique
        self._open: set[int] = set()

    def _number(self, obj: Any) -> list[Any] | None:
        index = self._seen.get(id(obj))
        if index is not None:
            if id(obj) in self._open:
                raise UsageError("session state contains a reference cycle")
            return ["r", index]
        self._seen[id(obj)] = len(self._alive)
        self._alive.append(obj)
        return None

    def value(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, bool):
            return obj
        kind = type(obj)
        if kind is int:
            return ["i", _hex_int(obj)]
        if kind is str:
            return ["s", obj]
        if kind is bytes:
            return ["b", obj.hex()]
        if kind is tuple:
            return ["t", [self.value(v) for v in obj]]
        if kind is frozenset:
            items = [self.value(v) for v in obj]
            return ["f", sorted(items, key=_canonical_text)]
        if kind is Point:
            return ["p", obj.group.name, None if obj.is_identity else obj.to_bytes().hex()]
        if kind is SecretScalar:
            return ["k", obj.group.name, obj.to_bytes().hex()]
        if isinstance(obj, Group):
            return ["g", obj.name]
        if self._references and id(obj) in self._references:
            return ["x", list(self._references[id(obj)])]
        if kind in (list, dict, FrozenDict, MappingProxyType) or kind in _BY_CLASS:
            ref = self._number(obj)
            if ref is not None:
                return ref
            self._open.add(id(obj))
            try:
                return self._container(obj)
            finally:
                self._open.discard(id(obj))
        raise UsageError(f"cannot serialise a {kind.__module__}.{kind.__qualname__} in a session state")

    def _container(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is list:
            return ["l", [self.value(v) for v in obj]]
        if kind is dict or kind is FrozenDict or kind is MappingProxyType:
            pairs = [[self.value(k), self.value(v)] for k, v in obj.items()]
            return ["d" if kind is dict else "m", pairs]
        entry = _BY_CLASS[kind]
        if entry.kind == "attrs":
            transient = set(getattr(kind, "_transient", ()))
            state = vars(obj)
            body: Any = [[name, self.value(state[name])] for name in sorted(state) if name not in transient]
        elif entry.kind == "dataclass":
            body = [[f.name, self.value(getattr(obj, f.name))] for f in dataclasses.fields(obj) if f.init]
        elif entry.kind == "bytes":
            body = obj.to_bytes().hex()
        else:
            body = entry.encode(obj, self)  # type: ignore[misc]
        return ["o", entry.name, body]


def _hex_int(value: int) -> str:
    return ("-" + format(-value, "x")) if value < 0 else format(value, "x")


# One encoder for every canonical text (issue 30, round seven: ``json.dumps`` with options builds
# a new ``JSONEncoder`` per call). No circularity check: every value it writes is a tree, either
# made fresh by ``_Encoder.value`` (its lists are new per occurrence; a shared object is written
# once and then as ``["r", n]``, a cycle refused before: ``_number``) or parsed from JSON
# (``_parse``), so the check's bookkeeping per list (~40 % of writing a parked sign's text) buys
# nothing; a cycle met anyway would end in ``RecursionError``, never loop.
# The text is the same byte for byte. ``protocols.rounds`` keeps an encoder of its own on purpose:
# a message's payload refuses NaN (``allow_nan=False``); a state's never meets one (its values are
# made by ``_Encoder.value``).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, check_circular=False)


def _canonical_text(value: Any) -> str:
    """The canonical JSON text of ``value`` (a tree: module docstring, Format)."""
    return _CANONICAL.encode(value)


def _reference_key(key: Any) -> tuple[str, ...]:
    """A reference's key as given (module docstring, References): a non-empty tuple of text."""
    if type(key) is not tuple or not key or not all(type(part) is str for part in key):
        raise UsageError("a state reference is named by a non-empty tuple of text")
    return key


def encode_state(root: Any, references: Iterable[tuple[Any, tuple[str, ...]]] = ()) -> bytes:
    """The canonical version-1 encoding of ``root`` (normally a ``Session``); each object of
    ``references`` is written as its key (module docstring, References)."""
    envelope = {"kind": STATE_KIND, "v": STATE_VERSION, "state": _Encoder(references).value(root)}
    return _canonical_text(envelope).encode("ascii")


# --- decoding -------------------------------------------------------------------------------------
_PENDING = object()


class _Decoder:
    def __init__(self, context: Mapping[str, Any], resolve: Callable[[tuple[str, ...]], Any] | None = None) -> None:
        self.context = context
        self._objects: list[Any] = []
        self._resolve = resolve
        self._resolved: dict[tuple[str, ...], Any] = {}

    def _reserve(self) -> int:
        self._objects.append(_PENDING)
        return len(self._objects) - 1

    def value(self, item: Any) -> Any:
        if item is None or isinstance(item, bool):
            return item
        if not isinstance(item, list) or not item or not isinstance(item[0], str):
            raise InvalidMessage("state value must be a tagged array")
        tag, args = item[0], item[1:]
        handler = _TAGS.get(tag)
        if handler is None:
            raise InvalidMessage(f"unknown state tag {tag!r}")
        return handler(self, args)

    def items(self, body: Any) -> list[Any]:
        if not isinstance(body, list):
            raise InvalidMessage("state container must be an array")
        return [self.value(v) for v in body]

    def pairs(self, body: Any) -> list[tuple[Any, Any]]:
        if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
            raise InvalidMessage("state mapping must be an array of pairs")
        return [(self.value(k), self.value(v)) for k, v in body]

    def named(self, body: Any) -> list[tuple[str, Any]]:
        if not isinstance(body, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in body
        ):
            raise InvalidMessage("state fields must be an array of [name, value]")
        names = [p[0] for p in body]
        if len(set(names)) != len(names):
            raise InvalidMessage("duplicate state field")
        return [(name, self.value(v)) for name, v in body]

    # --- tags ---------------------------------------------------------------------------------------
    def _int(self, args: list[Any]) -> int:
        text = _one_str(args)
        digits = text[1:] if text.startswith("-") else text
        if not digits or digits != digits.lower() or (len(digits) > 1 and digits[0] == "0") or text == "-0":
            raise InvalidMessage("state int must be minimal lowercase hex")
        try:
            return int(text, 16)
        except ValueError:
            raise InvalidMessage("state int must be minimal lowercase hex") from None

    def _str(self, args: list[Any]) -> str:
        return _one_str(args)

    def _bytes(self, args: list[Any]) -> bytes:
        text = _one_str(args)
        if len(text) % 2 or text != text.lower():
            raise InvalidMessage("state bytes must be lowercase hex")
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise InvalidMessage("state bytes must be lowercase hex") from None

    def _tuple(self, args: list[Any]) -> tuple[Any, ...]:
        return tuple(self.items(_one(args)))

    def _frozenset(self, args: list[Any]) -> frozenset[Any]:
        body = _one(args)
        if not isinstance(body, list) or body != sorted(body, key=_canonical_text):
            raise InvalidMessage("state frozenset must be sorted")
        try:
            return frozenset(self.items(body))
        except TypeError:
            raise InvalidMessage("state frozenset of unhashable values") from None

    def _list(self, args: list[Any]) -> list[Any]:
        index = self._reserve()  # numbered before its items, like the encoder; filled after
        out = self.items(_one(args))
        self._objects[index] = out
        return out

    def _dict(self, args: list[Any]) -> dict[Any, Any]:
        index, out = self._reserve(), {}
        for key, value in self.pairs(_one(args)):
            try:
                if key in out:
                    raise InvalidMessage("duplicate key in state mapping")
                out[key] = value
            except TypeError:
                raise InvalidMessage("unhashable key in state mapping") from None
        self._objects[index] = out
        return out

    def _mapping(self, args: list[Any]) -> FrozenDict[Any, Any]:
        index = self._reserve()
        pairs = self.pairs(_one(args))
        try:
            content: FrozenDict[Any, Any] = FrozenDict(pairs)
        except TypeError:
            raise InvalidMessage("unhashable key in state mapping") from None
        if len(content) != len(pairs):
            raise InvalidMessage("duplicate key in state mapping")
        self._objects[index] = content
        return content

    def _group(self, args: list[Any]) -> Group:
        try:
            return group_by_name(_one_str(args))
        except CurveError:
            raise InvalidMessage("unknown group in session state") from None

    def _point(self, args: list[Any]) -> Point:
        if len(args) != 2:
            raise InvalidMessage("state point needs a group and an encoding")
        group = self._group([args[0]])
        if args[1] is None:
            return group.identity()
        try:
            return group.decode_point(self._bytes([args[1]]))
        except CurveError:
            raise InvalidMessage("invalid point in session state") from None

    def _secret(self, args: list[Any]) -> SecretScalar:
        if len(args) != 2:
            raise InvalidMessage("state secret scalar needs a group and an encoding")
        group = self._group([args[0]])
        try:
            return SecretScalar.from_bytes(group, self._bytes([args[1]]))
        except CurveError:
            raise InvalidMessage("invalid secret scalar in session state") from None

    def _ref(self, args: list[Any]) -> Any:
        index = _one(args)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self._objects):
            raise InvalidMessage("state reference to an unknown object")
        target = self._objects[index]
        if target is _PENDING:
            raise InvalidMessage("state reference cycle")
        return target

    def _reference(self, args: list[Any]) -> Any:
        """An object named by its key (module docstring, References): ``resolve(key)``, once per key."""
        body = _one(args)
        if not isinstance(body, list) or not body or not all(isinstance(part, str) for part in body):
            raise InvalidMessage("a state reference is named by a non-empty array of text")
        key = tuple(body)
        if key not in self._resolved:
            if self._resolve is None:  # a missing collaborator, as a missing transient one
                raise UsageError("this session state names objects held outside it: resuming it needs resolve=...")
            self._resolved[key] = self._resolve(key)
        return self._resolved[key]

    def _object(self, args: list[Any]) -> Any:
        if len(args) != 2 or not isinstance(args[0], str):
            raise InvalidMessage("state object needs a class name and a body")
        entry = _BY_NAME.get(args[0])
        if entry is None:
            raise InvalidMessage(f"class {args[0]!r} is not allowed in a session state")
        index = self._reserve()
        try:
            obj = self._build(entry, args[1])
        except MPCError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, CurveError) as exc:
            raise InvalidMessage(f"invalid {entry.name} in session state") from exc
        self._objects[index] = obj
        return obj

    def _build(self, entry: _Entry, body: Any) -> Any:
        if entry.kind == "attrs":
            # type[object], not type: mypy reads __new__ of a bare ``type`` as type.__new__.
            cls: type[object] = entry.cls
            obj = cls.__new__(cls)
            transient = set(getattr(entry.cls, "_transient", ()))
            for name, value in self.named(body):
                if name in transient:
                    raise InvalidMessage(f"transient field {name!r} in a session state")
                obj.__dict__[name] = value
            resume = getattr(obj, "_resume", None)
            if resume is not None:
                resume(self.context)
            return obj
        if entry.kind == "dataclass":
            fields = [f.name for f in dataclasses.fields(entry.cls) if f.init]
            values = self.named(body)
            if [name for name, _ in values] != fields:
                raise InvalidMessage(f"{entry.name}: wrong fields in session state")
            return entry.cls(**dict(values))
        if entry.kind == "bytes":
            return entry.cls.from_bytes(self._bytes([body]))  # type: ignore[attr-defined]
        return entry.decode(body, self)  # type: ignore[misc]


_TAGS: dict[str, Callable[[_Decoder, list[Any]], Any]] = {
    "i": _Decoder._int, "s": _Decoder._str, "b": _Decoder._bytes, "t": _Decoder._tuple,
    "f": _Decoder._frozenset, "l": _Decoder._list, "d": _Decoder._dict, "m": _Decoder._mapping,
    "g": _Decoder._group, "p": _Decoder._point, "k": _Decoder._secret,
    "o": _Decoder._object, "r": _Decoder._ref, "x": _Decoder._reference,
}


def _one(args: list[Any]) -> Any:
    if len(args) != 1:
        raise InvalidMessage("malformed state value")
    return args[0]


def _one_str(args: list[Any]) -> str:
    value = _one(args)
    if not isinstance(value, str):
        raise InvalidMessage("malformed state value")
    return value


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise InvalidMessage("duplicate key in session state")
    return obj


def _reject_float(text: str) -> Any:
    raise InvalidMessage("floating-point numbers are not allowed in a session state")


_JSON = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_float=_reject_float,
                         parse_constant=_reject_float)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _parse(data: bytes) -> Any:
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidMessage("session state must be bytes")
    data = bytes(data)
    if len(data) > MAX_STATE_BYTES:
        raise InvalidMessage("session state too large")
    # Bound the nesting before the C parser runs: a deeply nested input can exhaust its stack.
    depth = max(accumulate(map(_STEP.__getitem__, data.translate(None, _NOT_BRACKETS))), default=0)
    if depth > MAX_STATE_DEPTH:
        raise InvalidMessage("session state nested too deeply")
    try:
        obj = _JSON.decode(data.decode("ascii"))
    except InvalidMessage:
        raise
    except (ValueError, RecursionError):
        raise InvalidMessage("session state is not valid ASCII JSON") from None
    if _canonical_text(obj).encode("ascii") != data:
        raise InvalidMessage("session state encoding is not canonical")
    return obj


def decode_state(data: bytes, *, resolve: Callable[[tuple[str, ...]], Any] | None = None, **context: Any) -> Any:
    """Restore what :func:`encode_state` encoded; ``context`` re-injects transient collaborators,
    ``resolve`` gives back the objects the state names by reference (module docstring, References).

    Anything malformed, non-canonical, of another version or naming a class that is not
    registered raises ``InvalidMessage`` (and a reference ``resolve`` refuses, its error); a
    missing collaborator (or ``resolve``, for a state with references) raises ``UsageError``.
    """
    obj = _parse(data)
    if not isinstance(obj, dict) or set(obj) != {"kind", "v", "state"} or obj["kind"] != STATE_KIND:
        raise InvalidMessage("not a session state")
    if type(obj["v"]) is not int or obj["v"] != STATE_VERSION:
        raise InvalidMessage("unsupported session state version")
    try:
        return _Decoder(context, resolve).value(obj["state"])
    except RecursionError:
        raise InvalidMessage("session state nested too deeply") from None


# --- the errors every session may hold ---------------------------------------------------------
def _encode_abort(exc: Any, enc: _Encoder) -> Any:
    return [enc.value(exc.reason), enc.value(exc.culprit)]


def _decode_abort(body: Any, dec: _Decoder) -> ProtocolAbort:
    if not isinstance(body, list) or len(body) != 2:
        raise InvalidMessage("malformed abort")
    reason, culprit = dec.value(body[0]), dec.value(body[1])
    if not isinstance(reason, str) or not (culprit is None or type(culprit) is int):
        raise InvalidMessage("malformed abort")
    return ProtocolAbort(reason, culprit)


def register_message_error(cls: type, name: str) -> type:
    """Allow an exception class built from its message alone (``cls(text)``): the message."""

    def decode(body: Any, dec: _Decoder) -> Any:
        text = dec.value(body)
        if not isinstance(text, str):
            raise InvalidMessage(f"malformed {name}")
        return cls(text)

    return register_custom(cls, name, lambda exc, enc: enc.value(str(exc)), decode)


register_custom(ProtocolAbort, "protocols.errors.ProtocolAbort", _encode_abort, _decode_abort)
register_message_error(KeyLocked, "protocols.errors.KeyLocked")
