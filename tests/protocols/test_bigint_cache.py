"""``bigint.FixedBaseCache``: plain powers until a table pays for itself (ski rental), then the
table; the same values either way; bounded; thread-safe enough to share; public values only."""

from __future__ import annotations

import secrets
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import bigint
from protocols.errors import UsageError

MODULUS = (1 << 521) - 1  # a prime: every base below it is a unit
BITS, WINDOW = 64, 4
TABLE_COST = -(-BITS // WINDOW) * ((1 << WINDOW) - 1)  # 240 multiplications: the rent to pay first


def test_plain_powers_until_their_bits_reach_the_table_cost_then_the_table() -> None:
    cache = bigint.FixedBaseCache(4)
    charged = 0
    while charged < TABLE_COST:
        power = cache.get(3, MODULUS, BITS, WINDOW)
        assert isinstance(power, bigint.PlainBase) and len(cache) == 0
        exponent = secrets.randbits(BITS) | 1 << (BITS - 1)
        assert power.pow(exponent) == pow(3, exponent, MODULUS)
        charged += BITS
    table = cache.get(3, MODULUS, BITS, WINDOW)
    assert isinstance(table, bigint.FixedBase) and len(cache) == 1
    assert cache.get(3, MODULUS, BITS, WINDOW) is table
    assert cache.get(3, MODULUS, BITS, WINDOW + 1) is not table  # another window: another key
    cache.clear()
    assert len(cache) == 0 and isinstance(cache.get(3, MODULUS, BITS, WINDOW), bigint.PlainBase)


@settings(max_examples=20, deadline=None)
@given(base=st.integers(2, MODULUS - 1), exponents=st.lists(st.integers(0, 2**80), min_size=1, max_size=12))
def test_the_same_values_before_and_after_the_table(base: int, exponents: list[int]) -> None:
    cache = bigint.FixedBaseCache(2)
    for exponent in exponents * 6:  # enough bits to build the table on the way for most lists
        assert cache.get(base, MODULUS, BITS, WINDOW).pow(exponent) == pow(base, exponent, MODULUS)


def test_bounded_tables_and_charges() -> None:
    cache = bigint.FixedBaseCache(2, seen=3)
    for base in (2, 3, 5):
        for _ in range(2):
            cache.get(base, MODULUS, BITS, WINDOW).pow(2**TABLE_COST - 1)  # one power pays the rent
        assert isinstance(cache.get(base, MODULUS, BITS, WINDOW), bigint.FixedBase)
    assert len(cache) == 2  # the oldest table (base 2) went
    assert isinstance(cache.get(2, MODULUS, BITS, WINDOW), bigint.PlainBase)
    for base in range(7, 12):  # five charged bases, three remembered: base 7's charge is gone
        cache.get(base, MODULUS, BITS, WINDOW).pow(2**(TABLE_COST // 2))
    cache.get(7, MODULUS, BITS, WINDOW).pow(2**(TABLE_COST // 2))
    assert isinstance(cache.get(7, MODULUS, BITS, WINDOW), bigint.PlainBase)
    cache.get(11, MODULUS, BITS, WINDOW).pow(2**(TABLE_COST // 2))
    assert isinstance(cache.get(11, MODULUS, BITS, WINDOW), bigint.FixedBase)
    with pytest.raises(UsageError):
        bigint.FixedBaseCache(0)


def test_threads_share_one_cache() -> None:
    cache, errors = bigint.FixedBaseCache(4), []

    def work() -> None:
        for _ in range(20):
            exponent = secrets.randbits(BITS)
            if cache.get(5, MODULUS, BITS, WINDOW).pow(exponent) != pow(5, exponent, MODULUS):
                errors.append(exponent)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and isinstance(cache.get(5, MODULUS, BITS, WINDOW), bigint.FixedBase)


def _paid_table(cache: bigint.FixedBaseCache, base: int) -> bigint.FixedBase | bigint.PlainBase:
    cache.get(base, MODULUS, BITS, WINDOW).pow(2**TABLE_COST - 1)  # one power pays the rent
    return cache.get(base, MODULUS, BITS, WINDOW)


def test_a_memory_budget_keeps_the_most_recent_tables_that_fit() -> None:
    one = _paid_table(bigint.FixedBaseCache(8), 2)
    assert isinstance(one, bigint.FixedBase)
    assert one.nbytes == one.entries * (66 + 32)  # a 521-bit modulus: 66 bytes a residue
    cache = bigint.FixedBaseCache(8, max_bytes=2 * one.nbytes + 1)
    for base in (2, 3, 5):
        assert isinstance(_paid_table(cache, base), bigint.FixedBase)
    assert len(cache) == 2 and cache.nbytes <= 2 * one.nbytes + 1  # base 2's table went
    assert isinstance(cache.get(2, MODULUS, BITS, WINDOW), bigint.PlainBase)
    small = bigint.FixedBaseCache(8, max_bytes=1)  # smaller than any table: the newest one stays
    assert isinstance(_paid_table(small, 7), bigint.FixedBase) and len(small) == 1
    with pytest.raises(UsageError):
        bigint.FixedBaseCache(8, max_bytes=0)


NARROW = 2
NARROW_COST = -(-BITS // NARROW) * ((1 << NARROW) - 1)  # 96 multiplications: the narrow table's rent


def test_a_narrow_table_first_then_the_wide_one_which_replaces_it() -> None:
    cache = bigint.FixedBaseCache(8)
    exponents = [secrets.randbits(BITS) | 1 << (BITS - 1) for _ in range(-(-TABLE_COST // BITS) + 1)]
    kinds = []
    for exponent in exponents:
        power = cache.get(3, MODULUS, BITS, WINDOW, first_window=NARROW)
        kinds.append(type(power).__name__ if not isinstance(power, bigint.RentedBase) else "Rented")
        assert power.pow(exponent) == pow(3, exponent, MODULUS)
    # plain until the narrow rent (96 bits: two 64-bit powers), then the narrow table (charging the
    # wide rent, 240 bits: four powers in all), then the wide table, which replaced the narrow one
    assert kinds[:2] == ["PlainBase", "PlainBase"] and kinds[2] == "Rented" and kinds[-1] == "FixedBase"
    assert len(cache) == 1 and cache.get(3, MODULUS, BITS, WINDOW, first_window=NARROW).window == WINDOW


@settings(max_examples=15, deadline=None)
@given(base=st.integers(2, MODULUS - 1), exponents=st.lists(st.integers(0, 2**80), min_size=1, max_size=10))
def test_the_same_values_through_both_stages(base: int, exponents: list[int]) -> None:
    cache = bigint.FixedBaseCache(4)
    for exponent in exponents * 5:
        assert cache.get(base, MODULUS, BITS, WINDOW, first_window=NARROW).pow(exponent) == pow(base, exponent, MODULUS)


def test_a_first_window_not_narrower_is_ignored() -> None:
    cache = bigint.FixedBaseCache(4)
    for _ in range(2):
        cache.get(5, MODULUS, BITS, WINDOW, first_window=WINDOW).pow(2**TABLE_COST - 1)
    assert isinstance(cache.get(5, MODULUS, BITS, WINDOW, first_window=WINDOW + 1), bigint.FixedBase)
    assert len(cache) == 1
