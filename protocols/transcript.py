"""Fiat-Shamir transcripts: length-prefixed, domain-separated, unambiguous by construction.

Every item is absorbed as ``len(label) ‖ label ‖ len(value) ‖ value`` with 8-byte big-endian
lengths, so two different sequences of (label, value) pairs can never produce the same hash
input (the ambiguity behind TSSHOCK's α-shuffle and taurus PR #105). Integers are absorbed with
an explicit sign byte and a minimal big-endian magnitude. Challenges are squeezed from SHAKE-256
over everything absorbed so far, and the challenge itself is absorbed afterwards, so successive
challenges are independent and bound to every earlier one.

A transcript is started with :meth:`Transcript.for_context`, which binds the domain tag, the
protocol, the session id, the round and the parties; proofs then append their own statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from protocols.errors import UsageError

__all__ = ["Transcript", "encode_int"]

_DOMAIN = b"portal-mpc/transcript/v1"


def _length(n: int) -> bytes:
    return n.to_bytes(8, "big")


def encode_int(value: int) -> bytes:
    """Sign byte (0 = non-negative, 1 = negative) followed by the minimal big-endian magnitude."""
    magnitude = abs(value)
    body = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")
    return (b"\x01" if value < 0 else b"\x00") + body


class Transcript:
    """An append-only Fiat-Shamir transcript."""

    __slots__ = ("_state",)

    def __init__(self, domain: str) -> None:
        self._state = hashlib.shake_256()
        self._absorb(b"domain", _DOMAIN)
        self._absorb(b"tag", domain.encode())

    @classmethod
    def for_context(
        cls,
        domain: str,
        *,
        protocol: str,
        session_id: bytes,
        round: int,
        parties: Iterable[int],
    ) -> Transcript:
        """A transcript bound to a protocol run: session id, protocol, round and party ids."""
        transcript = cls(domain)
        transcript.append_bytes("protocol", protocol.encode())
        transcript.append_bytes("session_id", bytes(session_id))
        transcript.append_int("round", round)
        transcript.append_ints("parties", list(parties))
        return transcript

    def _absorb(self, label: bytes, value: bytes) -> None:
        self._state.update(_length(len(label)) + label + _length(len(value)) + value)

    def append_bytes(self, label: str, value: bytes) -> None:
        """Absorb ``len(label) ‖ label ‖ len(value) ‖ value``."""
        self._absorb(label.encode(), bytes(value))

    def append_int(self, label: str, value: int) -> None:
        """Absorb an integer (sign byte and minimal big-endian magnitude) under ``label``."""
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError("transcript integers must be int")
        self._absorb(label.encode(), encode_int(value))

    def append_ints(self, label: str, values: Iterable[int]) -> None:
        """A list of integers, itself length-prefixed item by item."""
        items = [encode_int(int(v)) for v in values]
        body = _length(len(items)) + b"".join(_length(len(i)) + i for i in items)
        self._absorb(label.encode(), body)

    def copy(self) -> Transcript:
        """An independent transcript with the same history (for forking per prover or verifier)."""
        clone = Transcript.__new__(Transcript)
        clone._state = self._state.copy()
        return clone

    def challenge_bytes(self, label: str, length: int) -> bytes:
        """``length`` bytes bound to everything absorbed so far; absorbed in turn afterwards."""
        if length <= 0:
            raise UsageError("challenge length must be positive")
        self._absorb(b"challenge", label.encode() + _length(length))
        out = self._state.copy().digest(length)
        self._absorb(b"challenge-value", out)
        return out

    def challenge_int(self, label: str, bound: int) -> int:
        """A uniform integer in [0, bound), by rejection sampling (no modular bias)."""
        if bound <= 1:
            raise UsageError("challenge bound must exceed 1")
        nbytes = (bound.bit_length() + 7) // 8
        excess = nbytes * 8 - bound.bit_length()
        counter = 0
        while True:
            raw = int.from_bytes(self.challenge_bytes(f"{label}/{counter}", nbytes), "big")
            candidate = raw >> excess
            if candidate < bound:
                return candidate
            counter += 1

    def challenge_signed(self, label: str, bits: int) -> int:
        """A uniform integer in (-2^bits, 2^bits), as the ±q challenges of CGGMP proofs."""
        raw = self.challenge_int(label, 1 << (bits + 1))
        magnitude = raw >> 1
        return -magnitude if raw & 1 else magnitude
