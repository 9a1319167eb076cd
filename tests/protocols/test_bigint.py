"""protocols.bigint: both backends agree, and the environment switch forces the fallback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from hypothesis import given, settings
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
