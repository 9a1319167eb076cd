"""The error hierarchy of the MPC protocols (the engine's codes: docs/errors.md).

Every error a public function raises for bad input or a failed check is an ``MPCError``.
Messages never contain secret values: they name the check that failed, never the numbers.

- ``InvalidMessage``: a message is malformed or out of place. The session's state is unchanged,
  so the caller may drop the message and go on (a retry with the right message still works).
- ``FutureMessage``: an ``InvalidMessage`` for a well-formed message of a later round; a frontend
  may keep it and deliver it again once the session has reached that round.
- ``ShareMismatch``: an ``InvalidMessage`` saying the peer's key share does not pair with this
  party's (two-party ECDSA checks Q1 before any nonce is used).
- ``ProtocolAbort``: a well-formed message failed a check (a proof, a commitment opening, a
  consistency equation). ``culprit`` names the party at fault; the session is dead and raises the
  same abort on every later call.
- ``ProofError``: raised by a zero-knowledge ``verify`` function; sessions turn it into a
  ``ProtocolAbort`` naming the prover.
- ``KeyLocked``: the key share may no longer be used (two-party ECDSA after a failed signature).
- ``UsageError``: the caller misused the API (wrong arguments, calling out of order).
"""

from __future__ import annotations

__all__ = [
    "MPCError",
    "InvalidMessage",
    "FutureMessage",
    "ShareMismatch",
    "ProtocolAbort",
    "ProofError",
    "KeyLocked",
    "UsageError",
    "require_instance",
]


class MPCError(Exception):
    """Base class of every error raised by this library."""


class InvalidMessage(MPCError):
    """A message is malformed, unknown or out of place; the session state is unchanged."""


class FutureMessage(InvalidMessage):
    """A well-formed message of a round the session has not reached yet."""


class ShareMismatch(InvalidMessage):
    """The peer's key share is not the other half of this party's share (a stale share, replaced
    since, or another key's); the session is unchanged."""


class ProofError(MPCError):
    """A zero-knowledge proof or a commitment opening did not verify."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProtocolAbort(MPCError):
    """A check failed; ``culprit`` is the party at fault (None if it cannot be known)."""

    def __init__(self, reason: str, culprit: int | None = None) -> None:
        who = "unknown party" if culprit is None else f"party {culprit}"
        super().__init__(f"{who}: {reason}")
        self.reason = reason
        self.culprit = culprit


class KeyLocked(MPCError):
    """The key share is locked for good (a computed signature failed to verify)."""


class UsageError(MPCError):
    """The API was called with wrong arguments or in the wrong order."""


def require_instance(value: object, expected: type | tuple[type, ...], what: str) -> None:
    """Raise ``UsageError`` naming the expected and the given type unless ``value`` is an
    ``expected`` (``what`` says who takes it: "SignP1 takes the client's share")."""
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise UsageError(f"{what}: {names} expected, got {type(value).__name__}")
