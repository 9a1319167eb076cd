"""Hypothesis strategies that mutate a message's wire bytes the way an attacker or a broken
transport would: bit flips, truncation, field deletion, type changes, huge and negative numbers,
deep nesting, unicode, duplicated keys, a hex digit changed (the value still decodes, so the
change reaches the proofs), and values moved between fields.

Structural mutations are re-encoded canonically (sorted keys, no spaces, ASCII) most of the
time, so that they pass the envelope's canonical-form check and reach the payload decoders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

__all__ = ["wire_mutations", "paths"]

Path = tuple[Any, ...]

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 2**64, 2**4096 + 1, -(2**1000)]),
    st.text(max_size=12),
    st.sampled_from(["", "00", "-00", "-01", "0x01", "ff" * 600, "00" * 33, "0" * 65, "é", "\u0000",
                     "\ud7ff", "\U0001f600", "FF", "1" * 4097]),
    st.lists(st.integers(min_value=0, max_value=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=3), max_size=2),
    st.just(1.5),
)


def paths(obj: Any, prefix: Path = ()) -> list[Path]:
    """Every node of a JSON value, as key/index paths (the root is ``()``)."""
    out = [prefix]
    if isinstance(obj, Mapping):
        for key in sorted(obj):
            out += paths(obj[key], prefix + (key,))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            out += paths(item, prefix + (i,))
    return out


def _get(obj: Any, path: Path) -> Any:
    for step in path:
        obj = obj[step]
    return obj


def _set(obj: Any, path: Path, value: Any) -> Any:
    """A copy of ``obj`` with the node at ``path`` replaced (``_DELETE`` removes it)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, Mapping):
        new = dict(obj)
        if rest or value is not _DELETE:
            new[head] = _set(obj[head], rest, value)
        else:
            del new[head]
        return new
    new_list = list(obj)
    if rest or value is not _DELETE:
        new_list[head] = _set(obj[head], rest, value)
    else:
        del new_list[head]
    return new_list


_DELETE = object()
_DUP = "\u0000duplicate-marker\u0000"


def canonical(obj: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")


@st.composite
def _structural(draw: st.DrawFn, obj: Any) -> bytes:
    nodes = paths(obj)
    path = draw(st.sampled_from(nodes))
    op = draw(st.sampled_from(["delete", "replace", "nest", "duplicate", "hex", "move", "unicode"]))
    target = _get(obj, path)
    if op == "delete" and path:
        return canonical(_set(obj, path, _DELETE))
    if op == "nest":
        depth = draw(st.integers(min_value=1, max_value=200))
        return canonical(_set(obj, path, json.loads("[" * depth + json.dumps(target) + "]" * depth)))
    if op == "duplicate" and isinstance(target, Mapping) and target:
        key = draw(st.sampled_from(sorted(target)))
        body = canonical(target).decode()
        dup = "{" + json.dumps(key) + ":" + canonical(target[key]).decode() + "," + body[1:]
        text = canonical(_set(obj, path, _DUP)).decode()
        return text.replace(json.dumps(_DUP), dup, 1).encode()
    if op == "hex" and isinstance(target, str) and target and all(c in "0123456789abcdef-" for c in target):
        digits = [i for i, c in enumerate(target) if c != "-"]
        if digits:
            i = draw(st.sampled_from(digits))
            new_digit = draw(st.sampled_from([c for c in "0123456789abcdef" if c != target[i]]))
            return canonical(_set(obj, path, target[:i] + new_digit + target[i + 1:]))
    if op == "move":
        source = _get(obj, draw(st.sampled_from(nodes)))
        return canonical(_set(obj, path, source))
    if op == "unicode" and isinstance(target, str):
        text = draw(st.text(min_size=1, max_size=4).filter(lambda s: not s.isascii()))
        where = draw(st.integers(min_value=0, max_value=len(target)))
        raw = target[:where] + text + target[where:]
        return canonical(_set(obj, path, raw), ascii_only=draw(st.booleans()))
    return canonical(_set(obj, path, draw(HOSTILE_VALUES)))


@st.composite
def _bit_flip(draw: st.DrawFn, data: bytes) -> bytes:
    flips = draw(st.lists(st.integers(min_value=0, max_value=len(data) * 8 - 1), min_size=1, max_size=3))
    out = bytearray(data)
    for bit in flips:
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@st.composite
def _truncate(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]


def wire_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Mutations of one message's canonical bytes ``data`` (never ``data`` itself)."""
    obj = json.loads(data)
    structural = _structural(obj)
    return st.one_of(_bit_flip(data), _truncate(data), structural, structural, structural, structural).filter(
        lambda mutated: mutated != data
    )
