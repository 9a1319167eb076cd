"""Prime-order groups: secp256k1 and ed25519 behind one interface (the ``curves`` layer of README.md)."""

from curves.base import Group, Point, SecretScalar
from curves.ed25519 import ed25519
from curves.errors import CurveError, InvalidEncoding
from curves.secp256k1 import secp256k1

__all__ = [
    "Group",
    "Point",
    "SecretScalar",
    "CurveError",
    "InvalidEncoding",
    "secp256k1",
    "ed25519",
    "group_by_name",
]

_GROUPS = {g.name: g for g in (secp256k1, ed25519)}


def group_by_name(name: str) -> Group:
    """The group called ``name`` ("secp256k1" or "ed25519")."""
    try:
        return _GROUPS[name]
    except KeyError:
        raise CurveError(f"unknown group {name!r}") from None
