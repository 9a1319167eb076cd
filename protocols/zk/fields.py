"""Shared checks and strict payload decoding for the Paillier-side CGGMP proofs.

Decoding helpers raise ``InvalidMessage`` (a malformed proof is a malformed message);
``require_*`` checks used inside ``verify`` raise ``ProofError``, so that a proof object built
directly (not decoded) is held to the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protocols import bigint
from protocols.encoding import encode_int, encode_nat, get_int, get_list, get_nat
from protocols.errors import InvalidMessage, ProofError
from protocols.paillier import check_modulus_size

first_non_unit = bigint.first_non_unit  # one gcd for many values (the rule lives in bigint)

__all__ = [
    "is_unit",
    "first_non_unit",
    "get_unit",
    "get_units",
    "get_signed",
    "encode_nats",
    "encode_ints",
    "require_unit",
    "require_units",
    "require_paillier_blum_candidate",
]


def is_unit(value: object, modulus: int) -> bool:
    """Whether ``value`` is an int in [1, modulus) coprime to ``modulus`` (an element of Z*)."""
    return _is_residue(value, modulus) and bigint.gcd(value, modulus) == 1  # type: ignore[arg-type]


def _is_residue(value: object, modulus: int) -> bool:
    """Whether ``value`` is an int (not a bool) in [1, modulus)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < modulus


def get_unit(payload: Mapping[str, Any], key: str, modulus: int) -> int:
    """``payload[key]`` as an element of Z*_modulus in minimal hex."""
    value = get_nat(payload, key, modulus.bit_length())
    if not is_unit(value, modulus):
        raise InvalidMessage(f"{key} must be a unit modulo the modulus")
    return value


def get_units(payload: Mapping[str, Any], key: str, modulus: int, length: int) -> tuple[int, ...]:
    """A list of exactly ``length`` elements of Z*_modulus."""
    items = get_list(payload, key, length)
    values = tuple(get_nat({f"{key}[{i}]": item}, f"{key}[{i}]", modulus.bit_length()) for i, item in enumerate(items))
    bad = next((i for i, value in enumerate(values) if not _is_residue(value, modulus)), None)
    if bad is None:
        bad = first_non_unit(values, modulus)
    if bad is not None:
        raise InvalidMessage(f"{key}[{bad}] must be a unit modulo the modulus")
    return values


def get_signed(payload: Mapping[str, Any], key: str, max_bits: int) -> int:
    """A signed integer of magnitude below 2^max_bits (bounds the verifier's work)."""
    return get_int(payload, key, max_bits)


def encode_nats(values: Sequence[int]) -> list[str]:
    """Non-negative integers as minimal lowercase hex (``encoding.encode_nat``)."""
    return [encode_nat(v) for v in values]


def encode_ints(values: Sequence[int]) -> list[str]:
    """Signed integers as signed minimal hex (``encoding.encode_int``)."""
    return [encode_int(v) for v in values]


def require_unit(value: int, modulus: int, name: str) -> None:
    """Raise ``ProofError`` unless ``value`` ∈ Z*_modulus."""
    if not is_unit(value, modulus):
        raise ProofError(f"{name} is not a unit modulo the modulus")


def require_units(values: Sequence[int], modulus: int, name: str, length: int) -> None:
    """Raise ``ProofError`` unless ``values`` has ``length`` items, each in Z*_modulus."""
    if len(values) != length:
        raise ProofError(f"{name} must have {length} items")
    if not all(_is_residue(value, modulus) for value in values) or first_non_unit(values, modulus) is not None:
        raise ProofError(f"{name} is not a unit modulo the modulus")


def require_paillier_blum_candidate(n: int) -> None:
    """The checks on N alone: accepted size, odd, not prime (BitForge, Alpha-Rays)."""
    try:
        check_modulus_size(n)
    except InvalidMessage as exc:
        raise ProofError(str(exc)) from None
    if bigint.is_probable_prime(n):
        raise ProofError("modulus is prime")
