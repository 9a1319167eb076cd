"""Self-managed backups: the custodian backup share handed to the customer and fetched back.

With a ``BackupWebhook`` configured on the custodian, a backup hands each curve's custodian
backup share to ``hand_over`` (the customer's webhook) and keeps no copy; recover and eject get it
back through ``fetch``. The ``method`` argument names a backup *version* (``CLOUD.<16 hex>``,
``mpc.backup.versions``): keep each one until ``discard`` says a newer version is complete (an
interrupted backup must not overwrite the last complete one). A callback that raises, returns something malformed, or takes longer
than its timeout gives ``WebhookFailed`` (502) and leaves every status where it was.
"""

from __future__ import annotations

import concurrent.futures
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from mpc.errors import WebhookFailed

__all__ = ["BackupWebhook", "CallbackWebhook", "MemoryWebhook"]

T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 10.0


class BackupWebhook(ABC):
    """Where the custodian's backup shares of self-managed backups live."""

    @abstractmethod
    def hand_over(self, client_id: str, method: str, curve: str, share: bytes) -> None:
        """Give the customer the custodian backup share of (client, method, curve); raise ``WebhookFailed``
        if it was not taken (the backup then fails and the custodian keeps no copy)."""

    @abstractmethod
    def fetch(self, client_id: str, method: str, curve: str) -> bytes:
        """The custodian backup share the customer holds for (client, method, curve), for recover
        or eject; ``WebhookFailed`` if it cannot be had."""

    def discard(self, client_id: str, method: str) -> None:
        """Optional: an older backup version (``method`` names it) is no longer needed."""


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="portal-mpc-webhook")


def _call_with_timeout(call: Callable[[], T], timeout: float, what: str) -> T:
    future = _POOL.submit(call)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise WebhookFailed(f"the {what} webhook did not answer within {timeout:g} s") from None
    except WebhookFailed:
        raise
    except Exception as exc:  # the customer's code: any failure is a webhook failure
        # from None: the customer's exception may carry the share it was handed (in its message
        # or its traceback's locals); only its type is told.
        raise WebhookFailed(f"the {what} webhook failed ({type(exc).__name__})") from None


class CallbackWebhook(BackupWebhook):
    """A webhook from two callables, each call bounded by ``timeout`` seconds."""

    def __init__(
        self,
        hand_over: Callable[[str, str, str, bytes], object],
        fetch: Callable[[str, str, str], bytes],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._hand_over = hand_over
        self._fetch = fetch
        self.timeout = timeout

    def hand_over(self, client_id: str, method: str, curve: str, share: bytes) -> None:
        _call_with_timeout(lambda: self._hand_over(client_id, method, curve, share), self.timeout, "hand-over")

    def fetch(self, client_id: str, method: str, curve: str) -> bytes:
        data = _call_with_timeout(lambda: self._fetch(client_id, method, curve), self.timeout, "fetch")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise WebhookFailed("the fetch webhook returned no share")
        return bytes(data)


class MemoryWebhook(BackupWebhook):
    """An in-memory customer (tests and demos)."""

    def __init__(self) -> None:
        self.shares: dict[tuple[str, str, str], bytes] = {}

    def hand_over(self, client_id: str, method: str, curve: str, share: bytes) -> None:
        self.shares[(client_id, method, curve)] = bytes(share)

    def fetch(self, client_id: str, method: str, curve: str) -> bytes:
        try:
            return self.shares[(client_id, method, curve)]
        except KeyError:
            raise WebhookFailed("the customer has no such backup share") from None

    def discard(self, client_id: str, method: str) -> None:
        for key in [k for k in self.shares if k[:2] == (client_id, method)]:
            del self.shares[key]

    def __repr__(self) -> str:
        return f"MemoryWebhook({len(self.shares)} shares)"
