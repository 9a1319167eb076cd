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

__all__ = ["FrozenDict"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenDict(dict[_K, _V]):
    """A ``dict`` whose items are fixed by its constructor: ``d[k] = v``, ``del d[k]``, ``update``,
    ``pop``, ``popitem``, ``setdefault``, ``clear`` and ``|=`` raise ``TypeError``. Its values are
    meant to be immutable too (a payload's are: ``str``, ``int``, ``bool``, ``None``, tuples and
    ``FrozenDict``), so a copy is the object itself and pickling rebuilds it from its items."""

    __slots__ = ()

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
