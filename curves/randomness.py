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

Construction (v2): a scope's draws read one output of SHAKE-256 over the domain tag, the key and
the context, each length-prefixed (8-byte big-endian length), in that order: each draw the next
bytes of that one output, as many as it needs. That is a keyed sponge, a PRF as KMAC256 is
(cSHAKE256 over the key, then the input): the key (32 bytes) sits at a fixed place behind the tag,
the prefixed encoding is injective, and the context comes last, so two scopes share an output
only if their tag, key and context are all equal. (v1 hashed the same three into a BLAKE2b-512
seed first, then read SHAKE-256(seed): two hash constructions per scope for no more separation.)
Uniform integers below a bound are made by rejection sampling (no modulo bias). A long-lived key
may be made ready once (:class:`DerivationKey`: the SHAKE-256 state with the tag and the key
absorbed, copied for each scope): the same outputs as from the key's bytes, without absorbing the
key again at every scope; it lives exactly as long as its holder keeps the key itself.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, NoReturn

from curves.errors import CurveError

if TYPE_CHECKING:
    from _hashlib import HASHXOF  # what ``hashlib.shake_256`` returns

__all__ = ["randbits", "randbelow", "token_bytes", "derived", "fresh", "is_derived", "DerivationKey", "KEY_LENGTH"]

KEY_LENGTH = 32
_TAG = b"portal-mpc/rng/v2"
_PREFIX = len(_TAG).to_bytes(8, "big") + _TAG + KEY_LENGTH.to_bytes(8, "big")  # then the key


class DerivationKey:
    """A derivation key made ready once (module docstring): SHAKE-256 with the length-prefixed
    domain tag and key absorbed; each scope's XOF is a copy of that state over the length-prefixed
    context, the same as from the key's bytes. A secret: no repr of it, never serialised; its
    holder keeps it exactly as long as the key."""

    __slots__ = ("_state",)

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        self._state = hashlib.shake_256(_PREFIX + bytes(key))

    def xof(self, context: bytes) -> HASHXOF:
        """The XOF whose output a scope over ``context`` (bytes) reads."""
        state = self._state.copy()
        state.update(len(context).to_bytes(8, "big") + context)
        return state

    def __repr__(self) -> str:
        return "DerivationKey(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a derivation key is never serialised")


class _Stream:
    """A derived scope's deterministic byte stream (not thread-shared), and the context manager
    ``derived`` returns (a class, not a generator: it is entered on every step of every custodian
    operation): the draws read the scope's SHAKE-256 output (module docstring) in order, each the
    next bytes of that one XOF output (squeezed ahead in blocks, so two 32-byte nonces are one
    SHAKE call).

    The XOF is made at the first draw: a step that draws nothing (most steps of an operation only
    check and store) never pays for the keyed hash."""

    __slots__ = ("_key", "_context", "_xof", "_output", "_used", "_token")

    def __init__(self, key: bytes | DerivationKey, context: bytes) -> None:
        if type(key) is not DerivationKey:
            key = DerivationKey(key)  # type: ignore[arg-type]  # checks it: CurveError
        if type(context) is not bytes:
            _check_context(context)
            context = bytes(context)
        self._key: DerivationKey | None = key
        self._context = context
        self._output = b""
        self._used = 0
        self._token: Token[_Stream | None] | None = None

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes of the scope's SHAKE-256 output."""
        used, end = self._used, self._used + n
        if end > len(self._output):
            self._squeeze(end)
        self._used = end
        return self._output[used:end]

    def _squeeze(self, end: int) -> None:
        """At least ``end`` bytes of the XOF output (a multiple of SHAKE-256's 136-byte rate, at
        least doubling: a scope's draws cost linear time however many there are)."""
        if self._key is not None:  # the first draw: the XOF, then the key and context dropped
            self._xof = self._key.xof(self._context)
            self._key, self._context = None, b""
        size = 2 * len(self._output)
        size = end if end > size else size  # (not ``max``: no call)
        self._output = self._xof.digest(size + -size % _RATE)

    def __enter__(self) -> None:
        if self._token is not None:  # one scope, one stream, entered once (as the generator was)
            raise CurveError("a derived-randomness scope is entered once")
        self._token = _CURRENT.set(self)

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)  # type: ignore[arg-type]  # set by ``__enter__``

    def __repr__(self) -> str:
        return "_Stream(<secret>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a derived-randomness scope is never copied or serialised (a copy would replay its draws)")


_RATE = 136  # SHAKE-256's rate in bytes: squeezing a whole block costs what a part of it does
_CURRENT: ContextVar[_Stream | None] = ContextVar("portal_mpc_randomness", default=None)


def _check_key(key: bytes) -> None:
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LENGTH:
        raise CurveError(f"a derivation key must be {KEY_LENGTH} bytes")


def _check_context(context: bytes) -> None:
    if not isinstance(context, (bytes, bytearray)):
        raise CurveError("a derivation context must be bytes")


def derived(key: bytes | DerivationKey, context: bytes) -> AbstractContextManager[None]:
    """Within this scope every draw is a deterministic function of ``key`` (its bytes, or the
    ``DerivationKey`` made of them), ``context`` and the order and sizes of the draws (a fresh
    stream per scope: nested or repeated scopes never share one)."""
    return _Stream(key, context)


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
    stream = _CURRENT.get()
    if stream is None:
        return secrets.randbelow(n)
    bits = (n - 1).bit_length()  # each try is ``randbits(bits)``, read here directly (one lookup of the stream)
    size, shift = (bits + 7) // 8, -bits % 8
    while True:
        value = int.from_bytes(stream.read(size), "big") >> shift
        if value < n:
            return value
