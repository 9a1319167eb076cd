"""protocols.bigint's libcrypto accelerator: the same values as plain ``pow`` on every input
(the accelerated sizes and the fallbacks), and the switches."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import _bigint_libcrypto, bigint, paillier
from protocols.errors import UsageError
from tests.fixtures import bigint_backend, paillier_keys

pytestmark = pytest.mark.skipif(
    "gmpy2" not in bigint.available_backends() or _bigint_libcrypto.load() is None,
    reason="needs gmpy2 and libcrypto",
)


@contextlib.contextmanager
def _libcrypto_on() -> Iterator[None]:
    before = bigint.ACCELERATOR
    with bigint_backend("gmpy2"):
        bigint.use_accelerator("libcrypto")
        try:
            yield
        finally:
            bigint.use_accelerator(before)


@pytest.fixture
def accelerated() -> Iterator[None]:
    with _libcrypto_on():
        yield


MODULI = st.builds(lambda bits, odd, extra: (1 << (bits - 1)) | extra | odd,
                   st.sampled_from([1023, 1024, 1025, 2048, 3072, 4096]), st.sampled_from([0, 1]),
                   st.integers(0, 2**1022))


@settings(max_examples=60, deadline=None)
@given(base=st.integers(-(2**4200), 2**4200), exponent=st.integers(0, 2**2100), modulus=MODULI)
def test_accelerated_powmod_is_pow(base: int, exponent: int, modulus: int) -> None:
    """Bases of any sign and size (reduced first), exponents below and above the accelerated
    size, odd and even moduli below and above it: ``bigint.powmod`` is ``pow``, an ``int``."""
    with _libcrypto_on():
        result = bigint.powmod(base, exponent, modulus)
    assert result == pow(base, exponent, modulus) and type(result) is int


def test_the_paillier_sizes_are_accelerated_and_equal(accelerated: None) -> None:
    """ρ^N mod N², c^(p−1) mod p² and c^e mod p² (the nonces and decryptions of a sign) reach
    libcrypto, and give GMP's values."""
    sk = paillier_keys()[0]
    n, p = sk.n, sk.p
    calls = []
    real = bigint._accelerated_powmod  # noqa: SLF001 - counting the calls that reach libcrypto
    assert real is not None

    def counting(*args: bytes) -> bytes | None:
        calls.append(args)
        return real(*args)

    bigint._accelerated_powmod = counting  # noqa: SLF001
    rho, c = bigint.random_unit(n), bigint.random_unit(n) * 3 + n
    cases = [(rho, n, n * n), (c, p - 1, p * p), (c, (1 << 127) + 5, p * p)]
    got = [bigint.powmod(*case) for case in cases]
    assert len(calls) == len(cases)
    bigint.use_accelerator(None)
    assert got == [bigint.powmod(*case) for case in cases] == [pow(*case) for case in cases]


def test_a_libcrypto_failure_falls_back_to_gmp(accelerated: None) -> None:
    """When libcrypto reports an error (the binding returns None), GMP computes the value."""
    bigint._accelerated_powmod = lambda base, exponent, modulus, consttime=False: None  # noqa: SLF001
    n = paillier_keys()[0].n
    assert bigint.powmod(7, n, n * n) == pow(7, n, n * n)


def test_negative_exponents_stay_with_gmp(accelerated: None) -> None:
    n = paillier_keys()[0].n
    assert bigint.powmod(5, -(2**200), n * n) == pow(5, -(2**200), n * n)
    with pytest.raises(UsageError):
        bigint.powmod(n, -(2**200), n * n)


def test_switches() -> None:
    """An unknown accelerator is a ``UsageError``; the environment variable leaves it off; the
    binding is None without libcrypto."""
    with pytest.raises(UsageError):
        bigint.use_accelerator("gmp")
    env = dict(os.environ, PORTAL_MPC_NO_LIBCRYPTO="1")
    code = "from protocols import bigint; print(bigint.ACCELERATOR)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
    env.pop("PORTAL_MPC_NO_LIBCRYPTO")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "libcrypto"


def test_no_libcrypto_means_no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """No loadable soname, or a library whose exponentiation fails its self-test: no accelerator."""
    monkeypatch.setattr(_bigint_libcrypto, "_SONAMES", ("/nonexistent/libcrypto.so.3",))
    assert _bigint_libcrypto.load() is None
    monkeypatch.undo()
    monkeypatch.setattr(_bigint_libcrypto, "_mod_exp", lambda lib, base, exponent, modulus, consttime=False: b"\x01")
    assert _bigint_libcrypto.load() is None


@settings(max_examples=40, deadline=None)
@given(base=st.integers(-(2**2100), 2**2100), exponent=st.integers(-3, 2**1100), modulus=MODULI,
       path=st.sampled_from(["libcrypto", "gmp", "python"]))
def test_powmod_secret_exponent_is_pow_on_every_path(base: int, exponent: int, modulus: int, path: str) -> None:
    """The constant-time exponentiation (libcrypto's ``BN_mod_exp_mont_consttime``, GMP's
    ``mpz_powm_sec``) and its fallbacks (exponents ≤ 0, even moduli, the pure-Python backend)
    give ``pow``'s value."""
    before = bigint.ACCELERATOR
    with bigint_backend("python" if path == "python" else "gmpy2"):
        bigint.use_accelerator("libcrypto" if path == "libcrypto" else None)
        try:
            if exponent < 0 and bigint.gcd(base, modulus) != 1:
                with pytest.raises(UsageError):
                    bigint.powmod_secret_exponent(base, exponent, modulus)
                return
            result = bigint.powmod_secret_exponent(base, exponent, modulus)
        finally:
            bigint.use_accelerator(before)
    assert result == pow(base, exponent, modulus) and type(result) is int


def test_a_decryption_half_uses_the_constant_time_exponentiation(accelerated: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A Paillier decryption's secret exponent p − 1 goes through ``powmod_secret_exponent``
    (never the variable-time ``powmod``), and the plaintext is right."""
    sk = paillier_keys()[0]
    pk = sk.public_key
    seen: list[int] = []
    plain = bigint.powmod_secret_exponent
    monkeypatch.setattr(bigint, "powmod_secret_exponent", lambda b, e, m: seen.append(e) or plain(b, e, m))
    c, _ = paillier.encrypt(pk, 12345)
    assert paillier.decrypt(sk, c) == 12345 and sorted(seen) == sorted([sk.p - 1, sk.q - 1])
