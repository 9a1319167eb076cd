"""The one source of randomness of the protocol layers: the OS CSPRNG, or a keyed PRF stream.

Every secret a protocol draws (scalars, nonces, masks, Paillier nonces, commitment nonces) comes
from :func:`randbits`, :func:`randbelow` or :func:`token_bytes` here (``protocols.randomness``
re-exports them for the protocol code; this module sits in ``curves`` so that
``Group.random_scalar`` can use it without an upward import).

By default they read :mod:`secrets`. Inside ``with derived(key, context):`` every draw comes
instead from a deterministic stream keyed by ``key`` and the ``context`` (docs/threat-model.md,
"Rollback"): the custodian runs each step of a session so, with its long-lived nonce key and a
context that already binds every peer input of the step, so a replay of the same transcript
after a database restore reproduces the same outputs, and any other peer input gives unrelated
values (RFC 6979's idea, with the peer's commitment bound first). ``with fresh():`` goes back to
:mod:`secrets` inside a derived scope (a step whose randomness was drawn ahead, from the
precomputation pool, must draw the rest fresh too: never mix the two inside one proof).

Construction: seed = BLAKE2b-512 keyed with ``key`` (personalised ``portal-mpc/rng``) over the
domain tag and the context, each length-prefixed; the i-th draw of a scope reads
SHAKE-256(seed ‖ i) for as many bytes as it needs. Uniform integers below a bound are made by
rejection sampling (no modulo bias).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from curves.errors import CurveError

__all__ = ["randbits", "randbelow", "token_bytes", "derived", "fresh", "is_derived", "KEY_LENGTH"]

KEY_LENGTH = 32
_TAG = b"portal-mpc/rng/v1"


class _Stream:
    """A deterministic byte stream: draw i reads SHAKE-256(seed ‖ i) (not thread-shared).

    The seed is computed at the first draw: a step that draws nothing (most steps of an
    operation only check and store) never pays for the keyed hash."""

    __slots__ = ("_key", "_context", "_seed", "_counter")

    def __init__(self, key: bytes, context: bytes) -> None:
        self._key, self._context = key, context
        self._seed: bytes | None = None
        self._counter = 0

    def read(self, n: int) -> bytes:
        if self._seed is None:
            self._seed = _seed(self._key, self._context)
            self._key = self._context = b""
        self._counter += 1
        return hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(n)

    def __repr__(self) -> str:
        return "_Stream(<secret>)"


_CURRENT: ContextVar[_Stream | None] = ContextVar("portal_mpc_randomness", default=None)


def _check_key(key: bytes, context: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LENGTH:
        raise CurveError(f"a derivation key must be {KEY_LENGTH} bytes")
    if not isinstance(context, (bytes, bytearray)):
        raise CurveError("a derivation context must be bytes")


def _seed(key: bytes, context: bytes) -> bytes:
    h = hashlib.blake2b(key=bytes(key), digest_size=64, person=b"portal-mpc/rng")
    for item in (_TAG, bytes(context)):
        h.update(len(item).to_bytes(8, "big") + item)
    return h.digest()


class _DerivedScope:
    """The context manager ``derived`` returns (a class, not a generator: it is entered on every
    step of every custodian operation)."""

    __slots__ = ("_stream", "_token")

    def __init__(self, key: bytes, context: bytes) -> None:
        _check_key(key, context)
        self._stream = _Stream(bytes(key), bytes(context))

    def __enter__(self) -> None:
        if hasattr(self, "_token"):  # one scope, one stream, entered once (as the generator was)
            raise CurveError("a derived-randomness scope is entered once")
        self._token = _CURRENT.set(self._stream)

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def derived(key: bytes, context: bytes) -> AbstractContextManager[None]:
    """Within this scope every draw is a deterministic function of ``key``, ``context`` and the
    order of the draws (a fresh stream per scope: nested or repeated scopes never share one)."""
    return _DerivedScope(key, context)


@contextmanager
def fresh() -> Iterator[None]:
    """Within this scope every draw comes from :mod:`secrets`, even inside ``derived``."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def is_derived() -> bool:
    """Whether draws here come from a derived stream."""
    return _CURRENT.get() is not None


def token_bytes(n: int) -> bytes:
    """``n`` uniform bytes."""
    if not isinstance(n, int) or n < 0:
        raise CurveError("a byte count must be a non-negative integer")
    stream = _CURRENT.get()
    return secrets.token_bytes(n) if stream is None else stream.read(n)


def randbits(k: int) -> int:
    """Uniform in [0, 2^k)."""
    if not isinstance(k, int) or k < 0:
        raise CurveError("a bit count must be a non-negative integer")
    stream = _CURRENT.get()
    if stream is None:
        return secrets.randbits(k)
    if k == 0:
        return 0
    return int.from_bytes(stream.read((k + 7) // 8), "big") >> (-k % 8)


def randbelow(n: int) -> int:
    """Uniform in [0, n) for n ≥ 1, by rejection sampling of bit-length-``n`` draws."""
    if not isinstance(n, int) or n < 1:
        raise CurveError("an upper bound must be a positive integer")
    if _CURRENT.get() is None:
        return secrets.randbelow(n)
    bits = (n - 1).bit_length()
    while True:
        value = randbits(bits)
        if value < n:
            return value
