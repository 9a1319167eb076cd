"""Modular exponentiation by OpenSSL's libcrypto (``BN_mod_exp_mont``): the optional fast path
of :func:`protocols.bigint.powmod` for long exponentiations modulo large odd moduli.

libcrypto's Montgomery exponentiation (assembly multiplication with the CPU's mulx/adx) is
about a fifth faster than GMP's ``mpz_powm`` at the sizes that bound a 2P-ECDSA sign: a Paillier
nonce ρ^N modulo a 4096-bit N² (~7.0 ms instead of ~9.0), a decryption half c^(p−1) modulo p²
(~1.0 instead of ~1.3), the conversions through ``ctypes`` included (benchmarks/README, issue 30
round three). Same values; the same timing behaviour as ``mpz_powm`` (neither is constant time,
both slide a window over the exponent). ``consttime=True`` uses ``BN_mod_exp_mont_consttime``
instead, for a secret exponent (:func:`protocols.bigint.powmod_secret_exponent`: the
decryption halves). Values cross as big-endian bytes (Python's own
copies, which nothing here can wipe); every ``BIGNUM`` is cleared and freed before the call
returns, and each call has its own ``BN_CTX`` (thread safe).

Only OpenSSL's versioned shared objects are tried (``_SONAMES``: OpenSSL 3 and 1.1 on Linux and
the BSDs; never an unversioned ``libcrypto``, which some systems refuse to let a process load).
:func:`load` returns None when none loads, a symbol is missing, or a known exponentiation comes
out wrong, and ``bigint`` then keeps GMP for everything. ``PORTAL_MPC_NO_LIBCRYPTO=1`` turns the
path off (``bigint`` reads it).
"""

from __future__ import annotations

import ctypes
from functools import partial
from typing import Protocol

__all__ = ["load", "ModExp"]

_VP = ctypes.c_void_p


class ModExp(Protocol):
    """``(base, exponent, modulus, consttime=False) -> result`` on big-endian bytes, or None."""

    def __call__(self, base: bytes, exponent: bytes, modulus: bytes, consttime: bool = False) -> bytes | None: ...


def _bind(lib: ctypes.CDLL) -> None:
    """Declare the argument and result types of the few functions used (pointers, not ints)."""
    lib.BN_CTX_new.restype, lib.BN_CTX_new.argtypes = _VP, []
    lib.BN_CTX_free.restype, lib.BN_CTX_free.argtypes = None, [_VP]
    lib.BN_new.restype, lib.BN_new.argtypes = _VP, []
    lib.BN_clear_free.restype, lib.BN_clear_free.argtypes = None, [_VP]
    lib.BN_bin2bn.restype, lib.BN_bin2bn.argtypes = _VP, [ctypes.c_char_p, ctypes.c_int, _VP]
    lib.BN_bn2binpad.restype, lib.BN_bn2binpad.argtypes = ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_int]
    lib.BN_mod_exp_mont.restype, lib.BN_mod_exp_mont.argtypes = ctypes.c_int, [_VP] * 6
    lib.BN_mod_exp_mont_consttime.restype, lib.BN_mod_exp_mont_consttime.argtypes = ctypes.c_int, [_VP] * 6
    lib.ERR_clear_error.restype, lib.ERR_clear_error.argtypes = None, []
    lib.BN_set_flags.restype, lib.BN_set_flags.argtypes = None, [_VP, ctypes.c_int]


_BN_FLG_CONSTTIME = 0x04  # openssl/bn.h: constant-time paths for this number (as OpenSSL's RSA sets on p, q, d)
_SONAMES = ("libcrypto.so.3", "libcrypto.so.1.1")


def load() -> ModExp | None:
    """The exponentiation ``(base, exponent, modulus) -> result`` on big-endian bytes (the base
    already reduced and padded to the modulus's length, the modulus odd), or None without libcrypto.
    The function returns None when libcrypto reports an error (the caller falls back to GMP)."""
    for name in _SONAMES:
        try:
            lib = ctypes.CDLL(name)
            _bind(lib)
        except (OSError, AttributeError):
            continue
        run: ModExp = partial(_mod_exp, lib)
        return run if _self_test(run) else None
    return None


def _self_test(run: ModExp) -> bool:
    """A known exponentiation (3^(2^127 + 1) modulo 2^1279 − 1, a Mersenne prime) comes out right."""
    modulus, exponent = (1 << 1279) - 1, (1 << 127) + 1
    size = (modulus.bit_length() + 7) >> 3
    expected = pow(3, exponent, modulus)
    return all(result is not None and int.from_bytes(result, "big") == expected
               for result in (run((3).to_bytes(size, "big"), exponent.to_bytes(16, "big"), modulus.to_bytes(size, "big"),
                                  consttime) for consttime in (False, True)))


def _mod_exp(lib: ctypes.CDLL, base: bytes, exponent: bytes, modulus: bytes, consttime: bool = False) -> bytes | None:
    """base^exponent mod modulus by ``BN_mod_exp_mont`` (``consttime``: by
    ``BN_mod_exp_mont_consttime``, whose fixed window makes no branch or memory access that
    depends on the exponent's bits: for a secret exponent); None if any libcrypto call fails."""
    size = len(modulus)
    ctx = lib.BN_CTX_new()
    numbers = [lib.BN_bin2bn(base, len(base), None), lib.BN_bin2bn(exponent, len(exponent), None),
               lib.BN_bin2bn(modulus, size, None), lib.BN_new()]
    try:
        if ctx and all(numbers):
            b, e, m, r = numbers
            out = ctypes.create_string_buffer(size)
            exp = lib.BN_mod_exp_mont
            if consttime:  # the secret exponent and modulus (p², whose Montgomery setup is per call)
                for secret in (e, m):
                    lib.BN_set_flags(secret, _BN_FLG_CONSTTIME)
                exp = lib.BN_mod_exp_mont_consttime
            if exp(r, b, e, m, ctx, None) == 1 and lib.BN_bn2binpad(r, out, size) == size:
                return out.raw
        lib.ERR_clear_error()  # a failure's errors leave no trace in this thread's queue (the ssl module's too)
        return None
    finally:
        for number in numbers:
            if number:
                lib.BN_clear_free(number)
        if ctx:
            lib.BN_CTX_free(ctx)
