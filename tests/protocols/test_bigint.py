"""protocols.bigint: both backends agree, and the environment switch forces the fallback."""

from __future__ import annotations

import functools
import math
import os
import secrets
import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols import bigint, primes
from protocols.errors import UsageError
from tests.fixtures import bigint_backend, paillier_keys

BACKENDS = bigint.available_backends()


def _in_both(fn, *args):  # type: ignore[no-untyped-def]
    results = []
    for name in BACKENDS:
        with bigint_backend(name):
            results.append(fn(*args))
    return results


def test_environment_variable_forces_python_backend() -> None:
    env = dict(os.environ, PORTAL_MPC_NO_GMPY2="1")
    code = "from protocols import bigint; print(bigint.BACKEND)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"


def test_default_backend_is_gmpy2_when_importable() -> None:
    pytest.importorskip("gmpy2")
    env = {k: v for k, v in os.environ.items() if k != "PORTAL_MPC_NO_GMPY2"}
    code = "from protocols import bigint; print(bigint.BACKEND)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gmpy2"


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        bigint.use_backend("openssl")


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**300), st.integers(min_value=-(2**64), max_value=2**300))
def test_backends_agree_on_powmod_invert_gcd_jacobi(a: int, e: int) -> None:
    modulus = paillier_keys()[0].n
    assert len(set(_in_both(bigint.gcd, a, modulus))) == 1
    assert len(set(_in_both(bigint.jacobi, a, modulus))) == 1
    if bigint.gcd(a, modulus) == 1:
        assert len(set(_in_both(bigint.powmod, a, e, modulus))) == 1
        assert len(set(_in_both(bigint.invert, a, modulus))) == 1
    assert len(set(_in_both(bigint.mulmod, a, e, modulus))) == 1


def test_backends_agree_on_primality() -> None:
    key = paillier_keys()[0]
    for value in (key.p, key.q, key.n, key.p * key.p, 2, 1, 0, 561, 3215031751, 2**127 - 1):
        assert len(set(_in_both(bigint.is_probable_prime, value))) == 1
    assert _in_both(bigint.is_probable_prime, key.p) == [True] * len(BACKENDS)


def test_jacobi_matches_definition_on_small_primes() -> None:
    for prime in (3, 7, 11, 23):
        squares = {x * x % prime for x in range(1, prime)}
        for a in range(prime):
            expected = 0 if a == 0 else (1 if a in squares else -1)
            assert _in_both(bigint.jacobi, a, prime) == [expected] * len(BACKENDS)


def test_non_invertible_raises_usage_error() -> None:
    for name in BACKENDS:
        with bigint_backend(name):
            with pytest.raises(UsageError):
                bigint.invert(6, 9)
            with pytest.raises(UsageError):
                bigint.powmod(6, -1, 9)


def test_crt_modulus_matches_plain_powmod() -> None:
    key = paillier_keys()[0]
    base = bigint.random_unit(key.n)
    for exponent in (0, 1, -1, key.n, -(2**700) - 3):
        assert key.crt_n.powmod(base, exponent) == bigint.powmod(base, exponent, key.n)
    assert "<secret>" in repr(key.crt_n)


def test_random_helpers_stay_in_range() -> None:
    for _ in range(200):
        assert 0 <= bigint.random_below(10) < 10
        assert 5 <= bigint.random_range(5, 7) < 7
        assert -3 <= bigint.random_signed(3) <= 3
        assert bigint.gcd(bigint.random_unit(15), 15) == 1


@pytest.mark.parametrize("bits", [16, 64, 512])
def test_blum_prime_has_exact_size_and_form(bits: int) -> None:
    p = primes.blum_prime(bits)
    assert p.bit_length() == bits and p >> (bits - 2) == 0b11 and p % 4 == 3
    assert bigint.is_probable_prime(p)


@pytest.mark.parametrize("bits", [16, 64, 256])
def test_safe_prime_has_exact_size_and_form(bits: int) -> None:
    p = primes.safe_prime(bits)
    assert p.bit_length() == bits and p >> (bits - 2) == 0b11
    assert bigint.is_probable_prime(p) and bigint.is_probable_prime((p - 1) // 2)


def test_prime_generation_works_on_python_backend() -> None:
    with bigint_backend("python"):
        assert bigint.is_probable_prime(primes.safe_prime(128))
        assert primes.blum_prime(256) % 4 == 3


def test_tiny_prime_sizes_are_refused() -> None:
    with pytest.raises(UsageError):
        primes.blum_prime(8)


@pytest.mark.parametrize("backend", bigint.available_backends())
def test_fixed_base_table_matches_powmod(backend: str) -> None:
    from tests.fixtures import bigint_backend

    modulus = (1 << 521) - 1
    base = 0x1234567890ABCDEF ** 5 % modulus
    with bigint_backend(backend):
        table = bigint.FixedBase(base, modulus, 300, window=4)
        for exponent in (0, 1, 15, 16, 2**300 - 1, 2**299, secrets.randbits(300), secrets.randbits(64),
                         2**300, 2**400 + 7, -3):
            assert table.pow(exponent) == pow(base, exponent, modulus)
    with pytest.raises(UsageError):
        bigint.FixedBase(base, modulus, 0)


@settings(max_examples=25, deadline=None)
@given(exponent=st.integers(-(2**2100), 2**2100), bits=st.sampled_from([None, 64, 769]))
def test_crt_fixed_base_matches_powmod(exponent: int, bits: int | None) -> None:
    """The key owner's CRT tables against plain powmod, for exponents of any sign and size (they
    are reduced by the totients only where the table is too short)."""
    key = paillier_keys()[0]
    base = 0xC0FFEE ** 41 % key.n  # a unit: no factor of N divides it
    table = bigint.CrtFixedBase(base, key.crt_n, bits)
    assert table.pow(exponent) == bigint.powmod(base, exponent, key.n)
    assert "<secret>" in repr(table) and str(key.p) not in repr(table)
    assert table.entries > 0


@settings(max_examples=40, deadline=None)
@given(exponent=st.integers(0, 2**700), window=st.integers(1, 8), backend=st.sampled_from(bigint.available_backends()))
def test_fixed_base_every_window_matches_powmod(exponent: int, window: int, backend: str) -> None:
    """Every window size, the 8-bit one by the exponent's bytes, against plain ``pow`` (exponents
    up to and beyond the table's 600 bits, with zero bytes and zero digits)."""
    modulus = (1 << 607) - 1
    base = 0xFEEDFACE ** 9 % modulus
    with bigint_backend(backend):
        table = _fixed_base_table(base, modulus, window)
        for e in (exponent, exponent >> 300, exponent & ~0xFF00FF, 1 << 599, (1 << 600) - 1):
            assert table.pow(e) == pow(base, e, modulus)


@functools.lru_cache(maxsize=32)
def _fixed_base_table(base: int, modulus: int, window: int) -> bigint.FixedBase:
    return bigint.FixedBase(base, modulus, 600, window)


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(1, 2**256), min_size=1, max_size=8), bad=st.lists(st.integers(0, 7), max_size=3))
def test_first_non_unit_is_the_per_value_verdict(values: list[int], bad: list[int]) -> None:
    """One gcd of the product against one gcd per value: the same first bad index (or None)."""
    from protocols.zk.fields import first_non_unit

    modulus = 1009 * 1013 * 65537
    values = [v * (1009 if i in bad else 1) % modulus or 1 for i, v in enumerate(values)]
    expected = next((i for i, v in enumerate(values) if math.gcd(v, modulus) != 1), None)
    assert first_non_unit(values, modulus) == expected


@settings(max_examples=10, deadline=None)
@given(base=st.integers(1, 2**4200), exponent=st.integers(-(2**1100), 2**1100))
def test_crt_powmod_of_unreduced_bases_matches_powmod(base: int, exponent: int) -> None:
    """``CrtModulus.powmod`` leaves the base's reduction to ``powmod``: bases above the modulus
    and negative exponents give plain modular exponentiation's values (units only, as documented)."""
    key = paillier_keys()[0]
    n, n2 = key.n, key.public_key.n_squared
    base = base * base + 1
    assume(math.gcd(base, n) == 1)
    expected = (bigint.powmod(base % n, exponent, n), bigint.powmod(base % n2, exponent, n2))
    for backend in bigint.available_backends():
        with bigint_backend(backend):
            assert (key.crt_n.powmod(base, exponent), key.crt_n_squared.powmod(base, exponent)) == expected


@settings(max_examples=30, deadline=None)
@given(x=st.integers(0, 2**4100), made=st.sampled_from(BACKENDS), used=st.sampled_from(BACKENDS))
def test_crt_combine_is_the_chinese_remainder(x: int, made: str, used: str) -> None:
    """``CrtModulus.combine`` (Garner's join, in the backend's integers) against the textbook CRT
    sum Σ r_i·M_i·(M_i⁻¹ mod m_i) mod M, modulo N and N², with the modulus made under one backend
    and used under the other: a plain ``int`` in [0, M) either way."""
    key = paillier_keys()[0]
    with bigint_backend(made):
        crts = (bigint.CrtModulus(key.p, key.q, key.p - 1, key.q - 1),
                bigint.CrtModulus(key.p ** 2, key.q ** 2, key.p * (key.p - 1), key.q * (key.q - 1)))
    with bigint_backend(used):
        for crt in crts:
            m = crt.m1 * crt.m2
            r1, r2 = x % crt.m1, x % crt.m2
            textbook = (r1 * crt.m2 * pow(crt.m2, -1, crt.m1) + r2 * crt.m1 * pow(crt.m1, -1, crt.m2)) % m
            joined = crt.combine(r1, r2)
            assert joined == textbook == x % m and type(joined) is int


def test_fixed_base_rows_leave_the_garbage_collectors_walk() -> None:
    """A table's rows are tuples of integers, which the cyclic collector untracks at its first
    pass: later collections do not walk the ~10^5 entries of the prover's tables."""
    import gc

    table = bigint.FixedBase(0xFEEDFACE, (1 << 607) - 1, 64, 8)
    gc.collect()
    assert not any(gc.is_tracked(row) for row in table._rows)  # noqa: SLF001 - the layout is the point
    assert table.pow(12345) == pow(0xFEEDFACE, 12345, (1 << 607) - 1)
