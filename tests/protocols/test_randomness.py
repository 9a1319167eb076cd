"""``protocols.randomness``: secrets by default, a keyed deterministic stream inside ``derived``."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import SecretScalar, ed25519, secp256k1
from curves.errors import CurveError
from protocols import bigint, randomness
from protocols.commitments import commit

KEYS = st.binary(min_size=32, max_size=32)
CONTEXTS = st.binary(max_size=64)


def _draws() -> tuple[int, int, bytes, int, int]:
    """One of each kind of draw, through the paths protocol code uses."""
    return (randomness.randbits(77), randomness.randbelow(10**40 + 7), randomness.token_bytes(19),
            SecretScalar.random(secp256k1).value, bigint.random_unit(2**127 - 1))


@settings(max_examples=30, deadline=None)
@given(KEYS, CONTEXTS)
def test_the_same_key_and_context_give_the_same_draws(key: bytes, context: bytes) -> None:
    with randomness.derived(key, context):
        first = _draws()
    with randomness.derived(key, context):
        assert _draws() == first


@settings(max_examples=30, deadline=None)
@given(KEYS, KEYS, CONTEXTS, CONTEXTS)
def test_another_key_or_context_gives_other_draws(key: bytes, other_key: bytes, context: bytes,
                                                   other_context: bytes) -> None:
    if (key, context) == (other_key, other_context):
        return
    with randomness.derived(key, context):
        first = randomness.token_bytes(32)
    with randomness.derived(other_key, other_context):
        assert randomness.token_bytes(32) != first


def test_contexts_are_length_prefixed() -> None:
    """Neither a context that extends another nor one made by moving a boundary collides."""
    key = bytes(32)
    outputs = set()
    for context in (b"", b"a", b"ab", b"a\x00", b"\x00a"):
        with randomness.derived(key, context):
            outputs.add(randomness.token_bytes(32))
    assert len(outputs) == 5


@settings(max_examples=60, deadline=None)
@given(KEYS, CONTEXTS, st.integers(min_value=1, max_value=2**300))
def test_randbelow_stays_in_range(key: bytes, context: bytes, bound: int) -> None:
    with randomness.derived(key, context):
        values = [randomness.randbelow(bound) for _ in range(8)]
    assert all(0 <= v < bound for v in values)
    assert all(0 <= randomness.randbelow(bound) < bound for _ in range(4))


@settings(max_examples=40, deadline=None)
@given(KEYS, st.integers(min_value=0, max_value=600))
def test_randbits_has_exactly_k_bits_at_most(key: bytes, k: int) -> None:
    with randomness.derived(key, b"bits"):
        assert all(0 <= randomness.randbits(k) < 1 << k for _ in range(8))


def test_randbelow_is_uniform_without_modulo_bias() -> None:
    """Bound 3·2^6: a modulo reduction of 8-bit draws would favour the low third (chi-squared,
    6 buckets, 6000 draws: the statistic stays far below the 0.1% quantile of 20.5)."""
    bound, buckets, n = 3 * 64, 6, 6000
    with randomness.derived(secrets.token_bytes(32), b"uniform"):
        counts = [0] * buckets
        for _ in range(n):
            counts[randomness.randbelow(bound) * buckets // bound] += 1
    expected = n / buckets
    assert sum((c - expected) ** 2 / expected for c in counts) < 20.5


def test_successive_draws_in_one_scope_differ_and_scopes_do_not_leak() -> None:
    key = secrets.token_bytes(32)
    with randomness.derived(key, b"c"):
        assert randomness.is_derived()
        a, b = randomness.token_bytes(32), randomness.token_bytes(32)
        with randomness.derived(key, b"c"):  # a nested scope starts its own stream
            assert randomness.token_bytes(32) == a
        assert randomness.token_bytes(32) not in (a, b)
    assert a != b and not randomness.is_derived()


def test_fresh_inside_derived_uses_the_os() -> None:
    key = secrets.token_bytes(32)
    with randomness.derived(key, b"ctx"):
        with randomness.fresh():
            assert not randomness.is_derived()
            first = (randomness.token_bytes(32), commit("p", bytes(32), 1, b"v"), SecretScalar.random(ed25519).value)
        assert randomness.is_derived()
    with randomness.derived(key, b"ctx"):
        with randomness.fresh():
            second = (randomness.token_bytes(32), commit("p", bytes(32), 1, b"v"), SecretScalar.random(ed25519).value)
    assert all(x != y for x, y in zip(first, second))


def test_without_a_scope_draws_are_fresh() -> None:
    assert randomness.token_bytes(32) != randomness.token_bytes(32)
    assert SecretScalar.random(secp256k1).value != SecretScalar.random(secp256k1).value


@pytest.mark.parametrize("key, context", [(b"short", b""), (bytes(33), b""), (bytes(32), "text")])
def test_bad_keys_and_contexts_are_typed_errors(key: object, context: object) -> None:
    with pytest.raises(CurveError):
        with randomness.derived(key, context):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("call", [lambda: randomness.randbelow(0), lambda: randomness.randbits(-1),
                                  lambda: randomness.token_bytes(-1)])
def test_bad_arguments_are_typed_errors(call: object) -> None:
    with pytest.raises(CurveError):
        call()  # type: ignore[operator]


def _documented_output(key: bytes, context: bytes, size: int) -> bytes:
    """SHAKE-256 over the tag, the key and the context, each with its 8-byte big-endian length."""
    import hashlib

    return hashlib.shake_256(b"".join(len(item).to_bytes(8, "big") + item
                                      for item in (b"portal-mpc/rng/v2", key, context))).digest(size)


def test_the_stream_is_the_documented_construction() -> None:
    """The draws read SHAKE-256(tag, key, context; each length-prefixed) in order. A custodian's
    parked operation resumed by another version must replay the same values, so the construction
    never changes silently."""
    key, context = bytes(range(32)), b"transcript"
    output = _documented_output(key, context, 37)
    expected = [output[:32], output[32:37]]
    with randomness.derived(key, context):
        assert [randomness.token_bytes(32), randomness.token_bytes(5)] == expected
    with randomness.derived(key, context):  # a scope that draws nothing, then a fresh one: the same stream
        pass
    with randomness.derived(key, context):
        assert randomness.token_bytes(32) == expected[0]


@settings(max_examples=40, deadline=None)
@given(KEYS, CONTEXTS, st.lists(st.integers(min_value=0, max_value=700), max_size=8))
def test_the_draws_are_a_function_of_exactly_the_key_the_context_and_the_sizes(
        key: bytes, context: bytes, sizes: list[int]) -> None:
    """Whatever the sizes (within one SHAKE block, across blocks, many small draws), the draws are
    the consecutive bytes of SHAKE-256(tag, key, context): nothing else goes in, nothing is read
    twice; a prepared ``DerivationKey`` gives the very same draws as the key's bytes."""
    output = _documented_output(key, context, sum(sizes))
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    expected = [output[start:end] for start, end in zip(offsets, offsets[1:])]
    for source in (key, randomness.DerivationKey(key)):
        with randomness.derived(source, context):
            assert [randomness.token_bytes(n) for n in sizes] == expected


@settings(max_examples=30, deadline=None)
@given(KEYS, st.lists(CONTEXTS, min_size=2, max_size=5, unique=True))
def test_distinct_transcripts_give_distinct_nonce_pairs(key: bytes, contexts: list[bytes]) -> None:
    """A custodian step draws its two 32-byte nonces (a FROST responder's) in one scope over the
    step's transcript: distinct transcripts (another round, another peer message, another label)
    give distinct pairs, and the two nonces of one pair differ."""
    prepared = randomness.DerivationKey(key)
    pairs = []
    for context in contexts:
        with randomness.derived(prepared, context):
            pairs.append((randomness.token_bytes(32), randomness.token_bytes(32)))
    assert len(set(pairs)) == len(contexts) and all(first != second for first, second in pairs)


def test_a_derivation_key_is_checked_and_never_shown_or_serialised() -> None:
    import pickle

    prepared = randomness.DerivationKey(bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(prepared) and "secret" in repr(prepared)
    with pytest.raises(TypeError):
        pickle.dumps(prepared)
    for bad in (bytes(31), "00" * 32, None):
        with pytest.raises(CurveError):
            randomness.DerivationKey(bad)  # type: ignore[arg-type]


def test_a_derived_scope_is_never_copied_or_serialised() -> None:
    """A copy of a scope would replay its draws (the same nonces a second time)."""
    import copy
    import pickle

    scope = randomness.derived(bytes(32), b"test/copy")
    for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            duplicate(scope)
    with scope:
        randomness.randbits(64)
        with pytest.raises(TypeError):
            copy.copy(scope)


def test_a_derived_scope_is_entered_once() -> None:
    scope = randomness.derived(bytes(32), b"test/once")
    with scope:
        first = randomness.randbits(64)
    with pytest.raises(CurveError):
        with scope:
            pass
    with randomness.derived(bytes(32), b"test/once"):
        assert randomness.randbits(64) == first  # a new scope over the same context: the same stream


@settings(max_examples=40, deadline=None)
@given(KEYS, CONTEXTS, st.lists(st.integers(min_value=1, max_value=2**300), min_size=1, max_size=6))
def test_randbelow_is_rejection_sampling_of_randbits_on_the_same_stream(
        key: bytes, context: bytes, bounds: list[int]) -> None:
    """``randbelow(n)`` in a scope is ``randbits(bit length of n - 1)`` drawn until below n (the
    module docstring's construction), reading the scope's stream exactly as those draws would."""
    with randomness.derived(key, context):
        drawn = [randomness.randbelow(n) for n in bounds] + [randomness.token_bytes(8)]
    expected: list[object] = []
    with randomness.derived(key, context):
        for n in bounds:
            value = randomness.randbits((n - 1).bit_length())
            while value >= n:
                value = randomness.randbits((n - 1).bit_length())
            expected.append(value)
        expected.append(randomness.token_bytes(8))
    assert drawn == expected
