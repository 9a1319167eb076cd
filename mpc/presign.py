"""Fast signing without a single-use secret on the device: custodian-side precomputation.

The device never stores a nonce, a presignature or a nonce-bearing session (docs/threat-model.md,
rollback: a device restored from a backup would bring them back, and one nonce used for two
messages gives the key away). Signing is fast all the same:

- **ed25519** needs nothing ahead: ``sign`` is FROST in one round trip with fresh nonces on both
  sides (``protocols.frost.round_trip``).
- **secp256k1**: the costly, message-independent part of the custodian's work is the Paillier
  nonces of c3 and of its proof Π_c3 with their N-th powers (``ecdsa2p.C3Precomputation``). The
  custodian makes them ahead and keeps them in its store; every ECDSA ``sign`` takes one if the
  pool has one (and draws fresh ones online otherwise). They hold no signing nonce: k2 and the
  mask are drawn in the run itself.

Operations::

  presign         ``client.presign(count)`` / ``custodian.presign(client_id, count)``: the client
                  asks, the custodian makes ``count`` precomputations for the client's current
                  signing share and answers with a ``pool`` step (how many it holds per curve).
                  The client stores nothing. Not exclusive: it changes no share or status.
  sign_presigned  the same operation as ``sign`` (kept as a name: signing uses the pool by itself).

**Single use, even across restarts and restores.** A precomputation is deleted from the store in
one transaction before it is decoded (``take_precomputation``); a crash after that loses it,
never reuses it. Each row is tagged with the custodian's *nonce epoch* and the Paillier key it
was made for: rows of an older epoch or an older key are never taken (and are dropped at the
next presign). After restoring the custodian database from a backup, run
``python -m mpc nonce-epoch --db ... --bump``: rows and parked sessions of the restored copy are
then dead (``docs/threat-model.md``, rollback).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, cast

from mpc.operation import ClientOperation, CustodianOperation, Device, Service
from mpc.errors import InputInvalid, KeyLockedError, StateInvalid
from mpc.storage.store import SQLiteStore
from mpc.wallet import CURVES
from protocols.ecdsa2p import C3Precomputation, P2KeyShare
from protocols.encoding import require_keys
from protocols.errors import InvalidMessage, MPCError
from protocols.rounds import Message
from protocols.state import register_attrs


__all__ = [
    "MAX_PRESIGN_COUNT",
    "ClientPresign",
    "CustodianPresign",
    "precompute",
    "take_precomputation",
]

MAX_PRESIGN_COUNT = 64  # per operation: bounds one request's work
_CURVE = "secp256k1"


def _check_count(count: Any) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PRESIGN_COUNT:
        raise InputInvalid(f"presign count must be an integer from 1 to {MAX_PRESIGN_COUNT}")
    return count


def _binding(store: SQLiteStore, share: P2KeyShare) -> bytes:
    """The tag of a usable row: the current nonce epoch and the share's Paillier key."""
    if share.paillier is None:
        raise StateInvalid("a backup share has no precomputations")
    key = hashlib.sha256(share.paillier.n.to_bytes((share.paillier.n.bit_length() + 7) // 8, "big")).digest()
    return store.nonce_epoch().to_bytes(8, "big") + key


def precompute(store: SQLiteStore, client_id: str, share: P2KeyShare, count: int) -> int:
    """Make ``count`` precomputations for ``share`` and store them; rows of an older epoch or
    key are dropped. Returns how many the client's pool holds now."""
    items = []
    for _ in range(_check_count(count)):
        item = C3Precomputation.for_share(share)
        items.append((hashlib.sha256(item.to_bytes()).digest(), item.to_bytes()))
    with store.transaction():
        store.put_presignatures(client_id, _CURVE, _binding(store, share), items)
    return store.count_presignatures(client_id)[_CURVE]


def take_precomputation(store: SQLiteStore, client_id: str, share: P2KeyShare) -> C3Precomputation | None:
    """Delete one usable precomputation from the store (committed), then decode it; None if the
    pool holds none (or only a damaged row, which is dropped all the same)."""
    data = store.take_any_presignature(client_id, _CURVE, _binding(store, share))
    if data is None:
        return None
    try:
        return C3Precomputation.from_bytes(data)
    except MPCError:
        return None


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
        held = precompute(self.store, self.client_id, self._share, self.count)
        counts = {curve: held if curve == _CURVE else 0 for curve in CURVES}
        self._complete(counts)
        return [self._step("pool", counts)]

    def result(self) -> dict[str, int]:
        """How many precomputations the client's pool holds now, per curve."""
        return cast("dict[str, int]", super().result())


# Parkable state (``protocols.state``).
for _cls in (ClientPresign, CustodianPresign):
    register_attrs(_cls)
