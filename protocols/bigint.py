"""One small backend for the big-integer arithmetic of Paillier and the CGGMP proofs.

Uses gmpy2 (GMP) when it can be imported and pure Python otherwise; setting the environment
variable ``PORTAL_MPC_NO_GMPY2=1`` before the first import forces the pure-Python path, and
:func:`use_backend` switches at run time (for tests and benchmarks). ``BACKEND`` names the active
path, ``"gmpy2"`` or ``"python"``. Both paths return identical values.

Callers reach the operations through the module (``bigint.powmod(...)``, not ``from ... import
powmod``) so that a switch takes effect everywhere.

Values: every function accepts Python ints (or ``mpz``) and returns a plain ``int``, except
:func:`mpz`, which converts to the backend's fastest integer type for callers that cache
long-lived moduli (Paillier keys keep ``N`` and ``N²`` as ``mpz`` so that the hot path does not
convert them on every call; the results handed back are still ``int``).

Randomness comes only from :mod:`protocols.randomness` (:mod:`secrets`, or the keyed stream of a
``derived`` scope).

On the gmpy2 path, :func:`powmod` hands long exponentiations modulo large odd moduli (at least
``ACCELERATED_MODULUS_BITS`` and ``ACCELERATED_EXPONENT_BITS``) to OpenSSL's libcrypto when it
can be loaded (``protocols._bigint_libcrypto``: about a fifth faster than GMP there, the same
values); ``ACCELERATOR`` names it (``"libcrypto"`` or None), :func:`use_accelerator` switches it,
and ``PORTAL_MPC_NO_LIBCRYPTO=1`` before the first import leaves it off.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from protocols import _bigint_libcrypto, randomness
from protocols.errors import InvalidMessage, UsageError

__all__ = [
    "BACKEND",
    "use_backend",
    "ACCELERATOR",
    "ACCELERATED_MODULUS_BITS",
    "ACCELERATED_EXPONENT_BITS",
    "use_accelerator",
    "available_backends",
    "mpz",
    "powmod",
    "powmod_secret_exponent",
    "mulmod",
    "invert",
    "gcd",
    "lcm",
    "is_probable_prime",
    "jacobi",
    "isqrt",
    "random_below",
    "random_range",
    "random_bits",
    "random_signed",
    "random_unit",
    "CrtModulus",
    "FixedBase",
    "CrtFixedBase",
    "FixedBaseCache",
    "PlainBase",
    "RentedBase",
    "pack_nats",
    "unpack_nats",
    "first_non_unit",
]

try:  # pragma: no cover - depends on the environment
    import gmpy2 as _gmpy2
except ImportError:  # pragma: no cover
    _gmpy2 = None

# Miller-Rabin rounds on top of the Baillie-PSW test for candidates chosen by an adversary.
_PRIME_ROUNDS = 32

BACKEND = "python"
mpz: Callable[[int], Any] = int
powmod: Callable[[int, int, int], int]
mulmod: Callable[[int, int, int], int]
invert: Callable[[int, int], int]
is_probable_prime: Callable[[int], bool]
gcd: Callable[[int, int], int]
jacobi: Callable[[int, int], int]


# --- pure-Python path ----------------------------------------------------------------------
def _py_powmod(base: int, exponent: int, modulus: int) -> int:
    """``base^exponent mod modulus``; a negative exponent inverts the base first."""
    try:
        return pow(int(base), int(exponent), int(modulus))
    except ValueError:
        raise UsageError("base is not invertible modulo the modulus") from None


def _py_mulmod(a: int, b: int, modulus: int) -> int:
    """``a·b mod modulus``."""
    return (a * b) % modulus


def _py_invert(a: int, modulus: int) -> int:
    """The inverse of ``a`` modulo ``modulus`` (raises ``UsageError`` if there is none)."""
    try:
        return pow(int(a), -1, int(modulus))
    except ValueError:
        raise UsageError("value is not invertible modulo the modulus") from None


def _py_is_probable_prime(n: int) -> bool:
    """Baillie-PSW via sympy (no known counterexample), after trial division by sympy. Imported
    here, on first use: sympy takes about a second to import, which every process start (the
    service's workers too) would otherwise pay (issue 26: back in seconds)."""
    import sympy

    return bool(sympy.isprime(int(n)))


def _py_jacobi(a: int, n: int) -> int:
    """The Jacobi symbol (a | n) for odd positive ``n``."""
    if n <= 0 or n % 2 == 0:
        raise UsageError("the Jacobi symbol needs an odd positive modulus")
    a, n, result = int(a) % n, int(n), 1
    while a:
        while a % 2 == 0:
            a //= 2
            if n % 8 in (3, 5):
                result = -result
        a, n = n, a
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


# --- gmpy2 path ----------------------------------------------------------------------------
ACCELERATED_MODULUS_BITS = 1024
ACCELERATED_EXPONENT_BITS = 128
ACCELERATOR: str | None = None
_LIBCRYPTO = None if os.environ.get("PORTAL_MPC_NO_LIBCRYPTO") == "1" else _bigint_libcrypto.load()
_accelerated_powmod: _bigint_libcrypto.ModExp | None = None


def use_accelerator(name: str | None) -> None:
    """``"libcrypto"``: the gmpy2 path's long exponentiations by libcrypto; None: all by GMP."""
    global ACCELERATOR, _accelerated_powmod
    if name is not None and (name != "libcrypto" or _LIBCRYPTO is None):
        raise UsageError(f"powmod accelerator {name!r} is not available")
    ACCELERATOR, _accelerated_powmod = name, (_LIBCRYPTO if name else None)


use_accelerator(None if _LIBCRYPTO is None else "libcrypto")


def _accelerated(base: int, exponent: int, modulus: int) -> int | None:
    """``base^exponent mod modulus`` by the accelerator when it applies (an odd modulus of at
    least ``ACCELERATED_MODULUS_BITS``, an exponent of at least ``ACCELERATED_EXPONENT_BITS``),
    else None (also if libcrypto reports an error): the caller then uses GMP."""
    run = _accelerated_powmod
    if run is None or exponent.bit_length() < ACCELERATED_EXPONENT_BITS or exponent < 0:
        return None
    if modulus.bit_length() < ACCELERATED_MODULUS_BITS or not modulus & 1 or modulus < 0:
        return None
    return _on_libcrypto(run, base, exponent, modulus)


def _on_libcrypto(run: _bigint_libcrypto.ModExp, base: int, exponent: int, modulus: int,
                  consttime: bool = False) -> int | None:
    """``run`` (libcrypto's exponentiation) on the values as big-endian bytes, the base reduced
    first (an odd modulus, a positive exponent); None if libcrypto reported an error."""
    size = (modulus.bit_length() + 7) >> 3
    m = _gmpy2.mpz(modulus)
    result = run(int(_gmpy2.mpz(base) % m).to_bytes(size, "big"),
                 int(exponent).to_bytes((exponent.bit_length() + 7) >> 3, "big"), int(m).to_bytes(size, "big"),
                 consttime)
    return None if result is None else int.from_bytes(result, "big")


def _gmp_powmod(base: int, exponent: int, modulus: int) -> int:
    """``base^exponent mod modulus``; a negative exponent inverts the base first. Long
    exponentiations modulo large odd moduli go to the accelerator (libcrypto) when it is on."""
    result = _accelerated(base, exponent, modulus)
    if result is not None:
        return result
    try:
        return int(_gmpy2.powmod(base, exponent, modulus))
    except (ZeroDivisionError, ValueError):
        raise UsageError("base is not invertible modulo the modulus") from None


def powmod_secret_exponent(base: int, exponent: int, modulus: int) -> int:
    """``base^exponent mod modulus`` for a secret ``exponent`` (and modulus), e.g. a Paillier
    decryption's p − 1 modulo p² on a ciphertext the other party chose (a remote timing attack's
    setting): by libcrypto's ``BN_mod_exp_mont_consttime`` when the accelerator is on, else GMP's
    ``mpz_powm_sec``; both use a fixed window with no branch or memory access that depends on
    the exponent's bits. The pure-Python backend has no constant-time exponentiation (Python's
    ``pow``), nor do exponents ≤ 0 or even moduli, which go to :func:`powmod` (callers give a
    positive exponent and an odd modulus)."""
    if BACKEND != "gmpy2" or exponent <= 0 or not modulus & 1 or modulus < 3:
        return powmod(base, exponent, modulus)
    run = _accelerated_powmod
    result = None if run is None else _on_libcrypto(run, base, exponent, modulus, consttime=True)
    return result if result is not None else int(_gmpy2.powmod_sec(_gmpy2.mpz(base) % modulus, exponent, modulus))


def _gmp_mulmod(a: int, b: int, modulus: int) -> int:
    """``a·b mod modulus``."""
    return int(_gmpy2.mpz(a) * b % modulus)


def _gmp_invert(a: int, modulus: int) -> int:
    """The inverse of ``a`` modulo ``modulus`` (raises ``UsageError`` if there is none)."""
    try:
        return int(_gmpy2.invert(a, modulus))
    except ZeroDivisionError:
        raise UsageError("value is not invertible modulo the modulus") from None


def _gmp_is_probable_prime(n: int) -> bool:
    """GMP's test: trial division, Baillie-PSW, then extra Miller-Rabin rounds."""
    return bool(n >= 2 and _gmpy2.is_prime(n, _PRIME_ROUNDS))


def _gmp_gcd(a: int, b: int) -> int:
    """The greatest common divisor of ``a`` and ``b``."""
    return int(_gmpy2.gcd(a, b))


def _py_gcd(a: int, b: int) -> int:
    """The greatest common divisor of ``a`` and ``b``."""
    return math.gcd(int(a), int(b))


def _gmp_jacobi(a: int, n: int) -> int:
    """The Jacobi symbol (a | n) for odd positive ``n``."""
    if n <= 0 or n % 2 == 0:
        raise UsageError("the Jacobi symbol needs an odd positive modulus")
    return int(_gmpy2.jacobi(a, n))


def available_backends() -> tuple[str, ...]:
    """The backends this interpreter can run: always ``"python"``, ``"gmpy2"`` if importable."""
    return ("gmpy2", "python") if _gmpy2 is not None else ("python",)


def use_backend(name: str) -> None:
    """Switch every operation of this module to ``name`` (``"gmpy2"`` or ``"python"``)."""
    global BACKEND, mpz, powmod, mulmod, invert, is_probable_prime, jacobi, gcd
    if name not in available_backends():
        raise UsageError(f"big-integer backend {name!r} is not available")
    BACKEND = name
    if name == "gmpy2":
        mpz, powmod, mulmod, invert = _gmpy2.mpz, _gmp_powmod, _gmp_mulmod, _gmp_invert
        is_probable_prime, jacobi, gcd = _gmp_is_probable_prime, _gmp_jacobi, _gmp_gcd
    else:
        mpz, powmod, mulmod, invert = int, _py_powmod, _py_mulmod, _py_invert
        is_probable_prime, jacobi, gcd = _py_is_probable_prime, _py_jacobi, _py_gcd


use_backend("python" if _gmpy2 is None or os.environ.get("PORTAL_MPC_NO_GMPY2") == "1" else "gmpy2")


# --- backend-independent helpers -----------------------------------------------------------
def lcm(a: int, b: int) -> int:
    """The least common multiple of ``a`` and ``b``."""
    return math.lcm(int(a), int(b))


def isqrt(n: int) -> int:
    """The integer square root ⌊√n⌋ of a non-negative integer."""
    return math.isqrt(int(n))


def random_below(bound: int) -> int:
    """Uniform in [0, bound)."""
    return randomness.randbelow(bound)


def random_range(low: int, high: int) -> int:
    """Uniform in [low, high)."""
    if high <= low:
        raise UsageError("empty random range")
    return low + randomness.randbelow(high - low)


def random_bits(bits: int) -> int:
    """Uniform in [0, 2^bits)."""
    return randomness.randbits(bits)


def random_signed(bound: int) -> int:
    """Uniform in [-bound, bound] (the ``±bound`` sampling of the CGGMP proofs)."""
    return randomness.randbelow(2 * bound + 1) - bound


def first_non_unit(values: Sequence[int], modulus: int) -> int | None:
    """The index of the first of ``values`` (ints) that shares a factor with ``modulus``, or None.

    One gcd for all of them: gcd(∏ values mod modulus, modulus) = 1 exactly when every value is
    coprime to the modulus (a prime dividing the modulus and the product divides a factor), so
    the verdict is the same as one gcd per value, at one modular multiplication per value instead
    of a gcd. Only when the product fails are the values tried one by one, to name the first bad
    one."""
    product = mpz(1)
    for value in values:
        product = product * value % modulus
    if gcd(product, modulus) == 1:
        return None
    return next((i for i, value in enumerate(values) if gcd(value, modulus) != 1), None)


def random_unit(modulus: int) -> int:
    """Uniform in Z*_modulus: [1, modulus) and coprime to it."""
    while True:
        r = randomness.randbelow(modulus - 1) + 1
        if gcd(r, modulus) == 1:
            return r


@dataclass(frozen=True, repr=False)
class CrtModulus:
    """A modulus ``m1·m2`` of known factorisation, for exponentiation by the Chinese remainder theorem.

    ``totient1`` and ``totient2`` are the orders of Z*_m1 and Z*_m2; exponents are reduced by
    them, which is only valid for bases coprime to the modulus (the callers' bases are units).
    Holds secrets: the ``repr`` shows nothing.
    """

    m1: int
    m2: int
    totient1: int
    totient2: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_m1_inv", _py_invert(self.m1, self.m2))
        object.__setattr__(self, "modulus", self.m1 * self.m2)
        # The backend's integers for the joins (with gmpy2 a 2048-bit join costs a quarter of
        # Python's): values, not kept in any stored form.
        object.__setattr__(self, "_join", (mpz(self.m1), mpz(self.m2), mpz(self._m1_inv)))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "CrtModulus(<secret>)"

    def combine(self, r1: int, r2: int) -> int:
        """The x mod m1·m2 with x ≡ r1 (mod m1) and x ≡ r2 (mod m2) (Garner's formula)."""
        m1, m2, m1_inv = self._join  # type: ignore[attr-defined]
        h = (mpz(r2) - r1) * m1_inv % m2
        return int(h * m1 + r1)

    def powmod(self, base: int, exponent: int) -> int:
        """``base^exponent`` modulo ``m1·m2`` for a unit ``base`` (negative exponents allowed)."""
        r1 = powmod(base, exponent % self.totient1, self.m1)  # powmod reduces the base (in C with gmpy2)
        r2 = powmod(base, exponent % self.totient2, self.m2)
        return self.combine(r1, r2)


_INT_HEADER_BYTES = 32  # an mpz or int object's header, about (sys.getsizeof less the digits)


class FixedBase:
    """``base^e mod m`` for many non-negative ``e`` below ``2^max_bits``, by a table of
    ``base^(j·2^(w·i))`` for every ``w``-bit window i and digit j: one multiplication per window
    instead of a square and a multiplication per bit (about 3× faster than ``powmod`` for the
    custodian's repeated bases: P1's s and c_key'). The table holds only public values; its
    size is ⌈max_bits/w⌉·2^w residues (about 1.6 MB for 769-bit exponents modulo a 4096-bit
    N² with w = 4). Larger or negative exponents fall back to :func:`powmod`.

    With ``w = 8`` the digits are the exponent's bytes (``int.to_bytes``, no shift of the whole
    exponent per window): the walk is one multiplication and reduction per non-zero byte and
    almost no Python-level work beside it (benchmarks/README, issue 30 round two).
    """

    def __init__(self, base: int, modulus: int, max_bits: int, window: int = 4) -> None:
        if max_bits <= 0 or not 1 <= window <= 8:
            raise UsageError("fixed-base table: max_bits > 0 and 1 <= window <= 8")
        self.base, self.modulus, self.max_bits, self.window = int(base), int(modulus), max_bits, window
        m = mpz(modulus)
        g = mpz(base) % m
        rows = []
        for _ in range(-(-max_bits // window)):
            row = [mpz(1), g]
            for _ in range(2, 1 << window):
                row.append(row[-1] * g % m)
            rows.append(tuple(row))
            g = row[-1] * g % m
        # Tuples of integers: the cyclic garbage collector untracks them at its first pass, so a
        # later collection does not walk the table's ~10^5 entries (one that did took ~18 ms with
        # the prover's and the key owner's tables in lists, benchmarks/README round three).
        self._rows, self._m = tuple(rows), m

    def __repr__(self) -> str:
        return f"FixedBase({self.modulus.bit_length()}-bit modulus, {self.max_bits}-bit exponents)"

    @property
    def entries(self) -> int:
        """How many residues the table holds (⌈max_bits/w⌉·2^w: its memory, for sizing a cache)."""
        return len(self._rows) << self.window

    @property
    def nbytes(self) -> int:
        """The table's memory, roughly: its residues' bytes and each integer object's header."""
        return self.entries * ((self.modulus.bit_length() + 7) // 8 + _INT_HEADER_BYTES)

    def pow(self, exponent: int) -> int:
        """``base^exponent mod modulus``: the product over the exponent's non-zero ``w``-bit
        digits d_i of the entries ``base^(d_i·2^(w·i))``."""
        if exponent < 0 or exponent.bit_length() > self.max_bits:
            return powmod(self.base, exponent, self.modulus)
        m, acc = self._m, mpz(1)
        if self.window == 8:
            digits = int(exponent).to_bytes((exponent.bit_length() + 7) >> 3, "little")  # an mpz too (gmpy2 < 2.2)
            for row, digit in zip(self._rows, digits):
                if digit:
                    acc = acc * row[digit] % m
            return int(acc)
        mask, w = (1 << self.window) - 1, self.window
        for row in self._rows:
            if not exponent:
                break
            digit = exponent & mask
            if digit:
                acc = acc * row[digit] % m
            exponent >>= w
        return int(acc)


class CrtFixedBase:
    """``base^e`` modulo ``m1·m2`` of known factorisation (a :class:`CrtModulus`) for a unit
    ``base`` raised again and again to any integer ``e``: a :class:`FixedBase` table modulo each
    factor, the exponent reduced by each totient, the halves joined by the CRT (the key owner's
    repeated bases: the client's ring-Pedersen t and its c_key, ``protocols.zk.c3``). Exponents
    already below ``2^max_bits`` (default: the totients' size) are used as they are. The tables
    are values modulo secret primes: the ``repr`` shows nothing.
    """

    def __init__(self, base: int, crt: CrtModulus, max_bits: int | None = None, window: int = 5) -> None:
        self._crt = crt
        self._tables = tuple(
            FixedBase(base % m, m, max_bits or totient.bit_length(), window)
            for m, totient in ((crt.m1, crt.totient1), (crt.m2, crt.totient2))
        )

    def __repr__(self) -> str:
        return "CrtFixedBase(<secret>)"

    def pow(self, exponent: int) -> int:
        """``base^exponent mod m1·m2``."""
        crt = self._crt
        r1, r2 = (
            table.pow(exponent if 0 <= exponent and exponent.bit_length() <= table.max_bits else int(mpz(exponent) % totient))
            for table, totient in zip(self._tables, (crt.totient1, crt.totient2))
        )
        return crt.combine(r1, r2)

    @property
    def entries(self) -> int:
        """How many residues the two tables hold (for sizing a cache)."""
        return sum(table.entries for table in self._tables)
class PlainBase:
    """``base^e mod m`` by :func:`powmod`: what :class:`FixedBaseCache` hands out until a table
    pays, with the same ``pow`` as a :class:`FixedBase`; each power is charged to the cache."""

    def __init__(self, base: int, modulus: int, charge: Callable[[int], None] | None = None) -> None:
        self.base, self.modulus, self._charge = int(base), int(modulus), charge

    def __repr__(self) -> str:
        return f"PlainBase({self.modulus.bit_length()}-bit modulus)"

    def pow(self, exponent: int) -> int:
        """``base^exponent mod modulus``."""
        if self._charge is not None:
            self._charge(exponent.bit_length())
        return powmod(self.base, exponent, self.modulus)


class RentedBase:
    """A narrower :class:`FixedBase` that :class:`FixedBaseCache` hands out while a wider table's
    rent is still being paid: the powers come from ``table``, their bits are charged to the wide one."""

    def __init__(self, table: FixedBase, charge: Callable[[int], None]) -> None:
        self.table, self._charge = table, charge

    def __repr__(self) -> str:
        return f"RentedBase({self.table!r})"

    def pow(self, exponent: int) -> int:
        """``base^exponent mod modulus``."""
        self._charge(exponent.bit_length())
        return self.table.pow(exponent)


class FixedBaseCache:
    """The :class:`FixedBase` tables of the bases a process raises again and again, made once
    they pay for themselves (the ski-rental rule): until then a base is raised by plain
    :func:`powmod` (:class:`PlainBase`), and its table is made at the first request after the
    plain powers cost as much as the table does (their exponent bits, about one modular
    multiplication each, against the table's ⌈max_bits/w⌉·(2^w − 1) multiplications). So a base
    used a few times (a client that signs once in this process) never pays for a table, and one
    used often pays at most twice the best of either. Keeps the ``size`` most recently used
    tables, at most ``max_bytes`` of them (:meth:`FixedBase.nbytes`; the most recent table is
    kept even if it alone is larger), and the charges of the ``seen`` most recent other bases;
    thread-safe. Public values only."""

    def __init__(self, size: int, seen: int = 4096, *, max_bytes: int | None = None) -> None:
        if size < 1 or seen < 1 or (max_bytes is not None and max_bytes < 1):
            raise UsageError("fixed-base cache: size, seen and max_bytes must be positive")
        self._size, self._seen_max, self._max_bytes = size, seen, max_bytes
        self._tables: OrderedDict[tuple[int, int, int, int], FixedBase] = OrderedDict()
        self._charged: OrderedDict[tuple[int, int, int, int], int] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FixedBaseCache({len(self._tables)} tables)"

    def __len__(self) -> int:
        return len(self._tables)

    def get(self, base: int, modulus: int, max_bits: int, window: int = 4, *,
            first_window: int | None = None) -> FixedBase | PlainBase | RentedBase:
        """The table of ``base`` modulo ``modulus`` (made now if its plain powers have cost as much
        as it does), or a :class:`PlainBase` charging its powers to this cache. With
        ``first_window`` (narrower than ``window``), a table of that window first, made at its
        own smaller rent and used (:class:`RentedBase`, still charging the wide table's rent)
        until the wide table is made, which replaces it: a base raised a few times gets a cheap
        table early, one raised often the wide one."""
        key = (int(base), int(modulus), max_bits, window)
        first = None if first_window is None or first_window >= window else key[:3] + (first_window,)
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
            if not self._rent_paid(key):
                narrow = None if first is None else self._tables.get(first)
                if narrow is not None:
                    self._tables.move_to_end(first)  # type: ignore[arg-type]
                    return RentedBase(narrow, lambda bits: self._charge(key, bits))
                if first is None or not self._rent_paid(first):
                    keys = (key,) if first is None else (key, first)
                    return PlainBase(base, modulus, lambda bits: self._charge_all(keys, bits))
                key = first  # the narrow table's rent is paid: it is made now
        table = FixedBase(base, modulus, max_bits, key[3])  # outside the lock: tens of milliseconds
        with self._lock:
            self._charged.pop(key, None)
            if first is not None and key != first:
                self._tables.pop(first, None)  # the wide table replaces the narrow one
            self._tables[key] = table
            _trim(self._tables, self._size)
            while self._max_bytes is not None and len(self._tables) > 1 and self.nbytes > self._max_bytes:
                self._tables.popitem(last=False)
        return table if key[3] == window else RentedBase(table, lambda bits: self._charge(key[:3] + (window,), bits))

    def _rent_paid(self, key: tuple[int, int, int, int]) -> bool:
        """Whether ``key``'s plain powers have cost as much as its table (``_lock`` held)."""
        max_bits, window = key[2], key[3]
        return self._charged.get(key, 0) >= -(-max_bits // window) * ((1 << window) - 1)

    def _charge_all(self, keys: tuple[tuple[int, int, int, int], ...], bits: int) -> None:
        for key in keys:
            self._charge(key, bits)

    @property
    def nbytes(self) -> int:
        """The memory the kept tables take, roughly (:meth:`FixedBase.nbytes`)."""
        return sum(table.nbytes for table in self._tables.values())

    def _charge(self, key: tuple[int, int, int, int], bits: int) -> None:
        with self._lock:
            self._charged[key] = self._charged.pop(key, 0) + bits
            _trim(self._charged, self._seen_max)

    def clear(self) -> None:
        """Forget every table and every charge."""
        with self._lock:
            self._tables.clear()
            self._charged.clear()


def _trim(entries: OrderedDict[Any, Any], size: int) -> None:
    while len(entries) > size:
        entries.popitem(last=False)


def pack_nats(version: int, values: list[int]) -> bytes:
    """A version byte, then each natural number as a 2-byte length and minimal big-endian bytes."""
    out = bytearray([version])
    for value in values:
        body = value.to_bytes((value.bit_length() + 7) // 8, "big")
        out += len(body).to_bytes(2, "big") + body
    return bytes(out)


def unpack_nats(data: bytes, version: int, count: int, what: str) -> list[int]:
    """Strict inverse of :func:`pack_nats` for exactly ``count`` non-zero values."""
    if not isinstance(data, (bytes, bytearray)) or not data or data[0] != version:
        raise InvalidMessage(f"{what}: unknown encoding")
    values, offset = [], 1
    for _ in range(count):
        length = int.from_bytes(data[offset : offset + 2], "big")
        body = bytes(data[offset + 2 : offset + 2 + length])
        if len(body) != length or length == 0 or body[0] == 0:
            raise InvalidMessage(f"{what}: malformed value")
        values.append(int.from_bytes(body, "big"))
        offset += 2 + length
    if offset != len(data):
        raise InvalidMessage(f"{what}: trailing bytes")
    return values
