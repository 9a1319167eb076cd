"""Fast signing without a stored single-use secret: the custodian's in-memory precomputation pool.

The device never stores a nonce, a presignature or a nonce-bearing session, and the custodian's
database holds no single-use secret either (docs/threat-model.md, rollback: a restored backup
would bring it back, and one secret combined with two different peer inputs gives the key
away). Signing is fast all the same:

- **ed25519** needs nothing ahead: ``sign`` is FROST in one round trip; the custodian's nonces
  are drawn in the step that receives the client's commitments (``protocols.frost.round_trip``).
- **secp256k1**: the costly, message-independent part of the custodian's work is the Paillier
  nonces of c3 and of its proof Π_c3 with their N-th powers, Π_c3's commitment masks with their
  t-halves, its masks α with the commitments A_i, and the signing mask ρ with its commitment
  (``ecdsa2p.C3Precomputation``). The custodian makes them ahead from fresh randomness and
  keeps them **in process memory only** (``PrecomputationPool``: per client and Paillier key,
  bounded, never stored, never parked); ``SignP2`` pops one at the moment of use, in the
  round-3 step, and then draws the rest of that step fresh too. With an empty pool the step is
  derived from the custodian's nonce key and the transcript instead (``mpc.operation``). They
  hold no signing nonce: k2 is drawn once the client's commitment arrived.

Operations::

  presign         ``client.presign(count)`` / ``custodian.presign(client_id, count)``: the client
                  asks, the custodian makes ``count`` precomputations for the client's current
                  signing share and answers with a ``pool`` step (how many it holds per curve).
                  The client stores nothing. Not exclusive: it changes no share or status.
  sign_presigned  the same operation as ``sign`` (kept as a name: signing uses the pool by itself).

**Each process has its own pool.** In the service (``mpc.service.server``) every worker process keeps
its own: a presign fills the pool of the process that ran it, and a sign uses a precomputation
only if the process that runs its round 3 holds one (otherwise it computes online, slower but
the same protocol). A restart empties the pool; a database restore cannot bring anything back.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, cast

from mpc.operation import ClientOperation, CustodianOperation, Device, Service
from mpc.errors import InputInvalid, KeyLockedError, StateInvalid
from mpc.wallet import CURVES
from protocols import randomness
from protocols.ecdsa2p import C3Precomputation, P2KeyShare
from protocols.encoding import require_keys
from protocols.errors import InvalidMessage
from protocols.rounds import Message
from protocols.state import register_attrs


__all__ = [
    "MAX_PRESIGN_COUNT",
    "MAX_POOL_PER_CLIENT",
    "ClientPresign",
    "CustodianPresign",
    "PrecomputationPool",
]

MAX_PRESIGN_COUNT = 64  # per operation: bounds one request's work
MAX_POOL_PER_CLIENT = 2 * MAX_PRESIGN_COUNT  # per client: bounds the pool's memory
MAX_POOL_CLIENTS = 4096  # clients with a pool at once (the oldest pool goes first)
_CURVE = "secp256k1"


def _check_count(count: Any) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PRESIGN_COUNT:
        raise InputInvalid(f"presign count must be an integer from 1 to {MAX_PRESIGN_COUNT}")
    return count


def _key_of(share: P2KeyShare) -> bytes:
    """Which share a precomputation fits: P1's Paillier key N and ring-Pedersen modulus N̂."""
    if share.paillier is None or share.client_params is None:
        raise StateInvalid("a backup share has no precomputations")
    h = hashlib.sha256(b"portal-mpc/presign/key\0")
    for value in (share.paillier.n, share.client_params.n_hat):
        h.update(value.to_bytes((value.bit_length() + 7) // 8, "big") + b"\0")
    return h.digest()


class PrecomputationPool:
    """The custodian's ECDSA precomputations, in this process's memory only (never stored, never
    parked, never serialised): per client, for one Paillier key at a time, at most
    ``MAX_POOL_PER_CLIENT``; ``take`` pops one (single use). Thread-safe."""

    def __init__(self, per_client: int = MAX_POOL_PER_CLIENT, clients: int = MAX_POOL_CLIENTS) -> None:
        self._per_client, self._clients = per_client, clients
        self._pools: OrderedDict[str, tuple[bytes, list[C3Precomputation]]] = OrderedDict()
        self._lock = threading.Lock()

    def fill(self, client_id: str, share: P2KeyShare, count: int) -> int:
        """Make ``count`` precomputations for ``share`` (fresh randomness, outside any derived
        scope) and add them, up to the bound; returns how many the client's pool holds now."""
        key = _key_of(share)
        with randomness.fresh():
            items = [C3Precomputation.for_share(share) for _ in range(_check_count(count))]
        with self._lock:
            pool = self._current(client_id, key)
            pool.extend(items[: max(0, self._per_client - len(pool))])
            self._pools.move_to_end(client_id)
            while len(self._pools) > self._clients:
                self._pools.popitem(last=False)
            return len(pool)

    def take(self, client_id: str, share: P2KeyShare) -> C3Precomputation | None:
        """Pop one precomputation for ``share`` (None if the pool has none for it)."""
        key = _key_of(share)
        with self._lock:  # a client that signs without a pool adds no entry
            entry = self._pools.get(client_id)
            if entry is not None and entry[0] != key:  # an older share's pool: dropped
                del self._pools[client_id]
                return None
            return entry[1].pop() if entry is not None and entry[1] else None

    def count(self, client_id: str, share: P2KeyShare | None) -> int:
        """How many precomputations for ``share`` the client's pool holds."""
        if share is None or share.paillier is None:
            return 0
        key = _key_of(share)
        with self._lock:
            entry = self._pools.get(client_id)
            return len(entry[1]) if entry is not None and entry[0] == key else 0

    def size(self) -> int:
        """How many precomputations the pool holds, all clients."""
        with self._lock:
            return sum(len(items) for _, items in self._pools.values())

    def source(self, client_id: str, share: P2KeyShare) -> Callable[[], C3Precomputation | None]:
        """A ``SignP2`` precomputation source: pops one for ``share`` when round 3 needs it."""
        return lambda: self.take(client_id, share)

    def _current(self, client_id: str, key: bytes) -> list[C3Precomputation]:
        """The client's list for ``key`` (a pool for another key, an older share's, is dropped)."""
        entry = self._pools.get(client_id)
        if entry is None or entry[0] != key:
            entry = self._pools[client_id] = (key, [])
        return entry[1]

    def __reduce__(self) -> Any:
        raise TypeError("the precomputation pool is never serialised")

    def __repr__(self) -> str:
        return f"PrecomputationPool({len(self._pools)} clients, <secret>)"


class ClientPresign(ClientOperation):
    """The client's side of presign: it asks and hears the pool's size; it stores nothing."""

    protocol = "wallet/presign"

    def __init__(self, client: Device, session_id: bytes, count: int) -> None:
        super().__init__(client, session_id)
        self.count = _check_count(count)
        if client.signing_share(_CURVE).locked:
            raise KeyLockedError()

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client.client_id, "count": self.count}

    def _start(self) -> list[Message]:
        return []

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        if name != "pool" or self.done:
            raise InvalidMessage(f"unexpected step {name!r}")
        require_keys(data, CURVES)
        counts = {curve: data[curve] for curve in CURVES}
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in counts.values()):
            raise InvalidMessage("pool sizes must be non-negative integers")
        return counts

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        self._finish(value)
        return []

    def result(self) -> dict[str, int]:
        """How many precomputations the custodian's pool holds now, per curve."""
        return cast("dict[str, int]", super().result())


class CustodianPresign(CustodianOperation):
    """The custodian's side of presign: precomputes for the client's current signing share."""

    protocol = "wallet/presign"
    exclusive = False

    def __init__(self, custodian: Service, client_id: str, session_id: bytes | None, count: int) -> None:
        self.count = _check_count(count)
        super().__init__(custodian, client_id, session_id)
        self._share = custodian._load_share(client_id, "signing", "", _CURVE)

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "count": self.count}

    def _start(self) -> list[Message]:
        held = self.custodian.precomputations.fill(self.client_id, self._share, self.count)
        counts = {curve: held if curve == _CURVE else 0 for curve in CURVES}
        self._complete(counts)
        return [self._step("pool", counts)]

    def result(self) -> dict[str, int]:
        """How many precomputations the client's pool holds now, per curve."""
        return cast("dict[str, int]", super().result())


# Parkable state (``protocols.state``).
for _cls in (ClientPresign, CustodianPresign):
    register_attrs(_cls)
