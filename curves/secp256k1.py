"""secp256k1 (SEC 2, section 2.4.1): the group used everywhere, on the fastest backend present.

Points are encoded as 33-byte compressed SEC1 (``02``/``03`` ‖ x). The identity has no encoding
on the wire here: encoding it raises, and decoding never yields it. Scalars are 32 bytes
big-endian. Decoding checks the exact length, the prefix, that x < p, and that x is on the curve.

The arithmetic backend is chosen once, at import: coincurve (libsecp256k1, the ``fast`` extra;
k·P in tens of µs) if it is importable and the environment variable ``PORTAL_MPC_NO_COINCURVE``
is unset or empty, python-ecdsa (pure Python, about 0.5 ms per k·P) otherwise. Both give
byte-identical encodings and accept exactly the same inputs; ``BACKEND`` names the one in use.
:func:`backend_groups` gives every available backend's instance, for tests that run on all of
them; only :data:`secp256k1` is used by the library.
"""

from __future__ import annotations

import os

from curves import _secp256k1_ecdsa
from curves._secp256k1_base import N, P, Secp256k1

__all__ = ["Secp256k1", "secp256k1", "P", "N", "BACKEND", "backend_groups"]

DISABLE_ENV = "PORTAL_MPC_NO_COINCURVE"
"""Set to a non-empty value to force the python-ecdsa backend."""


def _available() -> dict[str, Secp256k1]:
    groups: dict[str, Secp256k1] = {}
    try:
        from curves import _secp256k1_coincurve
    except ImportError:
        pass
    else:
        groups["coincurve"] = _secp256k1_coincurve.group
    groups["python-ecdsa"] = _secp256k1_ecdsa.group
    return groups


_GROUPS = _available()


def backend_groups() -> dict[str, Secp256k1]:
    """Every importable backend's group instance by backend name (the active one included)."""
    return dict(_GROUPS)


def _choose() -> Secp256k1:
    if os.environ.get(DISABLE_ENV):
        return _GROUPS["python-ecdsa"]
    return next(iter(_GROUPS.values()))


secp256k1: Secp256k1 = _choose()
"""THE secp256k1 group of the library."""
BACKEND: str = secp256k1.backend
"""The backend of :data:`secp256k1`: ``"coincurve"`` or ``"python-ecdsa"``."""
