"""``FrozenDict``: the read-only mapping of message payloads (``protocols.rounds.Message``).

A payload is "a mapping of plain JSON-able values" (docs/architecture.md, the round-message API)
that nobody may change once the message exists. ``types.MappingProxyType`` gave the first
property but not the second half of "plain": ``json.dumps``, ``pickle`` and ``copy.deepcopy``
all refuse a proxy, so a harness that copies a message to tamper with it, or a queue frontend
that pickles messages between processes, failed before our code ran. A ``FrozenDict`` is a
``dict`` (so it is a JSON object to every encoder and equal to a ``dict`` of the same items)
whose mutating methods raise ``TypeError``.
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

__all__ = ["FrozenDict", "frozen"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(dict[_K, _V]):
    """A ``dict`` whose items are fixed by its constructor: ``d[k] = v``, ``del d[k]``, ``update``,
    ``pop``, ``popitem``, ``setdefault``, ``clear`` and ``|=`` raise ``TypeError``, and ``__init__``
    called again changes nothing (only ``dict``'s own methods called on it, ``dict.update(d, ...)``,
    change it, as for any ``dict`` subclass). A copy is the object itself and pickling rebuilds it
    from its items: for a payload, whose values are immutable too (``str``, ``int``, ``bool``,
    ``None``, tuples and ``FrozenDict``); a ``FrozenDict`` holding a mutable value shares it with
    its copies."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> FrozenDict[_K, _V]:
        made = dict.__new__(cls)
        dict.__init__(made, *args, **kwargs)
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Filled by the constructor (``__new__``): calling ``__init__`` again changes nothing."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: a ``FrozenDict`` is read-only (``TypeError``)."""
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[_K, _V]:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (dict(self),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


_EMPTY = dict.__new__
_FILL = dict.update


def frozen(items: dict[_K, _V]) -> FrozenDict[_K, _V]:
    """``FrozenDict(items)`` without the Python-level constructor (two calls into C: a payload is
    frozen per message, ``protocols.rounds``)."""
    made: FrozenDict[_K, _V] = _EMPTY(FrozenDict)
    _FILL(made, items)
    return made
