"""Retry timing of the device-side clients: the policy, the backoff inside a budget, and when an
operation lost with a node is started again.

- :class:`RetryPolicy` and :class:`Backoff`: exponential backoff with jitter (from ``secrets``)
  inside a total retry budget, honouring a ``retry after N s`` hint;
- :func:`restart_delay`: the delay before a lost ``sign`` / ``sign_presigned`` / ``presign`` is
  started again with a new device session (``RESTARTABLE_OPERATIONS``).

Used by ``mpc.remote.channel`` (``RequestAttempts``, ``OperationChannel``, ``RemoteBase``). The
retry rules are documented in ``mpc.remote.blocking`` (module docstring) and ``docs/operations.md``
(Client retries).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from mpc.errors import ConfigInvalid, EngineError, ServiceUnavailable

__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_STEP_WAIT",
    "RESTARTABLE_OPERATIONS",
    "Backoff",
    "RetryPolicy",
    "restart_delay",
]

DEFAULT_RETRY_BUDGET = 30.0
"""Seconds an operation or request may keep retrying after its first failure (a restart of the
service takes a few seconds)."""
DEFAULT_STEP_WAIT = 15.0
"""Seconds ``NOT_FOUND`` on ``resume`` is retried once the operation was accepted (its session is
out of the database while a worker steps it, and comes back when the step parks it again)."""

log = logging.getLogger("mpc.remote")  # each retry at INFO with its reason (issue 26)

# Operations a client starts again by itself after OPERATION_LOST (issue 26): a fresh device session
# (fresh nonces) of the same request, harmless twice: a lost sign signs again, a lost presign makes
# more precomputations. The others change the wallet and are left to the caller.
RESTARTABLE_OPERATIONS = frozenset({"sign", "sign_presigned", "presign"})
_MAX_RESTARTS = 2  # a node lost with the step is one loss; more in a row is a service to report


@dataclass(frozen=True)
class RetryPolicy:
    """How a client retries (``mpc.remote.blocking``, Retries).

    ``budget``: seconds after the first failure during which retries may start (0: none).
    ``first_delay`` doubles after each retry up to ``max_delay``; each delay is drawn uniformly
    from its upper half (jitter, from ``secrets``) and is at least a ``retry after`` hint.
    ``max_retries`` caps the number of retries (None: only the budget). ``step_wait``: how long
    ``NOT_FOUND`` on resume of an accepted operation is retried (never beyond the budget).
    """

    budget: float = DEFAULT_RETRY_BUDGET
    first_delay: float = 0.1
    max_delay: float = 5.0
    max_retries: int | None = None
    step_wait: float = DEFAULT_STEP_WAIT

    def __post_init__(self) -> None:
        for name in ("budget", "first_delay", "max_delay", "step_wait"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise ConfigInvalid(f"{name} must be a finite number of seconds, at least 0")
        if self.max_delay < self.first_delay:
            raise ConfigInvalid("max_delay must be at least first_delay")
        if self.max_retries is not None and (type(self.max_retries) is not int or self.max_retries < 0):
            raise ConfigInvalid("max_retries must be None or an integer at least 0")


def restart_delay(op: str, restarts: Backoff, lost: EngineError) -> float:
    """After ``lost`` (``OPERATION_LOST``) of ``op``: the seconds before starting it again with a
    new device session (``RESTARTABLE_OPERATIONS``, at most twice, within the retry budget), or
    raise ``lost``."""
    if op not in RESTARTABLE_OPERATIONS or lost.code != "OPERATION_LOST" or restarts.retries >= _MAX_RESTARTS:
        raise lost
    return restarts.delay(lost)


def _jitter() -> float:
    """A uniform fraction in [0, 1) from the operating system's CSPRNG (``secrets``)."""
    return secrets.randbelow(1 << 30) / (1 << 30)


class Backoff:
    """The delays of one operation's (or request's) retries under a :class:`RetryPolicy`.

    :meth:`delay` is called after each failure with the error the caller would see; it returns
    the seconds to wait before the next attempt, or raises that error when the policy allows no
    more (budget spent, retry count reached, or a ``retry after`` hint beyond the budget).
    """

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.retries = 0
        self.first_failure: float | None = None

    def elapsed(self) -> float:
        """Seconds since the first failure (0 before any)."""
        return 0.0 if self.first_failure is None else self.clock() - self.first_failure

    def delay(self, failure: EngineError, hint: float | None = None) -> float:
        """The seconds to wait after ``failure`` (exponential with jitter, at least ``hint``), or raise
        the error the caller sees once the policy allows no more attempts."""
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        policy = self.policy
        if policy.max_retries is not None and self.retries >= policy.max_retries:
            raise self._gave_up(failure, now)
        ceiling = min(policy.max_delay, policy.first_delay * 2.0 ** min(self.retries, 60))
        wait: float = ceiling / 2 + _jitter() * ceiling / 2
        if hint is not None:
            wait = max(wait, hint)
        if now + wait - self.first_failure > policy.budget:
            raise self._gave_up(failure, now)
        self.retries += 1
        log.info("retry %d in %.2f s (%.1f s of the %.0f s budget spent) after %s: %s", self.retries, wait,
                 now - self.first_failure, policy.budget, failure.code, failure.message)
        return wait

    def _gave_up(self, failure: EngineError, now: float) -> EngineError:
        """``failure``, saying how long the client retried when it is ``SERVICE_UNAVAILABLE``
        (the same class either way, so callers can still tell a refusal from an outage)."""
        if self.retries == 0 or not isinstance(failure, ServiceUnavailable):
            return failure
        waited = now - (self.first_failure or now)
        return ServiceUnavailable(f"{failure.message} (gave up after {self.retries} retries in {waited:.1f} s)")

