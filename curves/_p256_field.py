"""The base field of P-256 and its integer backend (gmpy2 when importable, plain ``int`` otherwise).

Only :mod:`curves.p256` and :mod:`curves.p256_h2c` use this module. They reach the backend
through the module (``_p256_field.P``, ``_p256_field.powmod(...)``), never by ``from ... import``,
so that :func:`use_backend` takes effect everywhere at once.

- ``gmpy2``: field elements are ``mpz`` (a 256-bit multiply-and-reduce is about 2.5x faster than
  with ``int``) and exponentiations use ``gmpy2.powmod_sec``, GMP's side-channel-silent
  ``mpz_powm_sec``.
- ``python``: plain ``int`` and the built-in ``pow``.

Inversion is Fermat's ``x^(p-2)`` and square roots are ``x^((p+1)/4)`` (p ≡ 3 mod 4) in both
backends: a fixed public exponent, no secret-dependent branch as an extended-gcd inversion
would have (pure Python cannot promise constant time; the algorithms at least do not branch on
secrets). Setting ``PORTAL_MPC_NO_GMPY2`` to a non-empty value before the first import forces the
pure-Python backend, as for :mod:`protocols.bigint`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from curves.errors import CurveError

__all__ = ["P", "B", "P_INT", "B_INT", "use_backend", "using_backend", "backend",
           "available_backends", "element", "powmod", "inv0", "sqrt_candidate"]

DISABLE_ENV = "PORTAL_MPC_NO_GMPY2"

P_INT: int = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
"""The field prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1 (FIPS 186-4, D.1.2.3)."""
B_INT: int = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
"""The curve is y^2 = x^3 - 3x + b."""
_INV_EXP = P_INT - 2
_SQRT_EXP = (P_INT + 1) // 4

try:  # pragma: no cover - depends on the environment
    import gmpy2 as _gmpy2
except ImportError:  # pragma: no cover
    _gmpy2 = None

_BACKEND = "python"
element: Callable[[int], Any] = int
"""Converts an ``int`` to the backend's field-element type."""
powmod: Callable[[Any, int, Any], Any] = pow
"""``base^exponent mod modulus`` for a positive public exponent and an odd modulus."""
P: Any = P_INT
"""p in the backend's type (``mpz`` or ``int``)."""
B: Any = B_INT
"""b in the backend's type."""


def _gmp_powmod(base: Any, exponent: int, modulus: Any) -> Any:
    return _gmpy2.powmod_sec(base, exponent, modulus)


def available_backends() -> tuple[str, ...]:
    """The backends that can be selected here: always ``"python"``, ``"gmpy2"`` if importable."""
    return ("gmpy2", "python") if _gmpy2 is not None else ("python",)


def use_backend(name: str) -> None:
    """Switch the field arithmetic to ``"gmpy2"`` or ``"python"`` (both give identical values)."""
    global _BACKEND, element, powmod, P, B
    if name not in available_backends():
        raise CurveError(f"P-256 field backend {name!r} is not available")
    if name == "gmpy2":
        element, powmod = _gmpy2.mpz, _gmp_powmod
    else:
        element, powmod = int, pow
    P, B = element(P_INT), element(B_INT)
    _BACKEND = name


@contextmanager
def using_backend(name: str) -> Iterator[None]:
    """Run the body on backend ``name``, then switch back (for tests and benchmarks)."""
    previous = _BACKEND
    use_backend(name)
    try:
        yield
    finally:
        use_backend(previous)


def backend() -> str:
    """The active backend: ``"gmpy2"`` or ``"python"``."""
    return _BACKEND


def inv0(x: Any) -> Any:
    """inv0(x) of RFC 9380, section 4: x^(p-2), which is 1/x for x != 0 and 0 for x = 0."""
    return powmod(x % P, _INV_EXP, P)


def sqrt_candidate(x: Any) -> Any:
    """x^((p+1)/4): a square root of x whenever x is a square (p ≡ 3 mod 4); callers check."""
    return powmod(x % P, _SQRT_EXP, P)


use_backend("python" if os.environ.get(DISABLE_ENV) or _gmpy2 is None else "gmpy2")
