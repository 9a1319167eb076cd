"""Presigning in the wallet engine: pools of single-use presignatures on both sides.

Operations (each one client session and one custodian session, like every other operation):

  presign         ``client.presign(count)`` / ``custodian.presign(client_id, count)``:
                  ``count`` two-party ECDSA presignatures (``protocols.ecdsa2p.presign``, one
                  child session each) and ``count`` FROST precommitted nonce slots
                  (``protocols.frost.precommit``, one child). The client keeps its halves in the
                  keychain, one entry each (``<client_id>.<curve>.presig.<id hex>``); the
                  custodian keeps its halves in the store's ``presignatures`` table, in one
                  transaction. Nothing else changes.
  sign_presigned  ``client.sign_presigned(chain, data)`` /
                  ``custodian.sign_presigned(client_id, chain, data)``: the client picks one of its
                  presignatures for the chain's curve and names it in its hello; both sides sign
                  with their half of it in one short round trip (ECDSA: id+digest → c3 →
                  signature; FROST: one round of signature shares). Same result as ``sign``.

**Consumed exactly once, even across restarts.** Each side deletes its stored half *before* it
builds the session that uses it: the client removes the keychain entry (one atomic unlink),
the custodian removes the row (one transaction) and only then decodes it. A crash after the
delete loses that presignature — it is simply gone, never used twice — and the in-memory objects
are single use by construction (``take()``). A name the store does not hold (unknown, used or
lost) is refused with ``PresignatureNotFound``; the client gets ``PresignatureNotFound`` when its
pool for the curve is empty. Presignatures of an older share pair (ECDSA, after recover) are
discarded when met: the client skips and deletes them, the custodian drops its stale rows at the
next presign, and either side refuses one that is used anyway (``StateInvalid``).

Two sessions racing for one presignature: on the device, only one ``delete`` of the entry
succeeds (the other moves on to the next entry); at the custodian, the row's deletion in one
transaction is the arbiter, so at most one online sign ever runs per id, whatever the client does.

Parking: both operations, their child sessions and the presignatures / precommitted nonces they
hold are registered with the session-state codec (``protocols.state``, ``mpc.state``), so they
can be parked after every step and resumed like the other operations (the networked custodian
offers ``presign`` and ``sign_presigned``). A presignature keeps its used/unused state through
a park: one the online session took before parking stays taken after resuming. A parked blob
holds single-use secrets like a parked ``sign``: store it with take semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mpc.client import Client, ClientSign, _ClientOperation
from mpc.custodian import Custodian, CustodianSign, _CustodianOperation, sign_hello
from mpc.errors import InputInvalid, KeychainEntryNotFound, KeyLockedError, PresignatureNotFound, from_protocol_error
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES, curve_of_chain
from protocols.compose import child_session_id
from protocols.ecdsa2p.presign import OnlineSignP1, OnlineSignP2, P1Presignature, P2Presignature, PresignP1, PresignP2
from protocols.encoding import get_bytes
from protocols.errors import InvalidMessage, KeyLocked, MPCError
from protocols.frost.precommit import CommittedNonces, OnlineSignSession, PrecommitSession
from protocols.rounds import Message, Session

__all__ = [
    "MAX_PRESIGN_COUNT",
    "ClientPresign",
    "CustodianPresign",
    "ClientSignPresigned",
    "CustodianSignPresigned",
    "client_pool",
    "take_client_presignature",
]

MAX_PRESIGN_COUNT = 64  # per operation: bounds one run's messages and child sessions
_ECDSA_CHILD = "secp256k1.{}"


def _check_count(count: Any) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PRESIGN_COUNT:
        raise InputInvalid(f"presign count must be an integer from 1 to {MAX_PRESIGN_COUNT}")
    return count


def _entry_prefix(client_id: str, curve: str) -> str:
    return f"{client_id}.{curve}.presig."


def _decode(curve: str, party: int, data: bytes) -> Any:
    if curve == "secp256k1":
        return P1Presignature.from_bytes(data) if party == CLIENT_PARTY else P2Presignature.from_bytes(data)
    return CommittedNonces.from_bytes(data)


def _presignature_id(item: Any) -> bytes:
    return item.id if isinstance(item, (P1Presignature, P2Presignature)) else item.slot


def _fits(curve: str, item: Any, share: Any) -> bool:
    """Whether a presignature was made for this share (older share pairs' are useless)."""
    if curve == "secp256k1":
        return bool(item.q1 == share.q1 and item.public_point == share.public_point)
    return bool(item.identifier == share.identifier and item.public_key == share.public_key)


def _binding(curve: str, share: Any) -> bytes:
    """What the custodian's rows are tagged with, to drop those of an older share pair."""
    return share.q1.to_bytes() if curve == "secp256k1" else share.public_key


def _children(session_id: bytes, party: int, shares: Mapping[str, Any], count: int) -> dict[str, Session]:
    presign = PresignP1 if party == CLIENT_PARTY else PresignP2
    children: dict[str, Session] = {
        _ECDSA_CHILD.format(k): presign(child_session_id(session_id, _ECDSA_CHILD.format(k)), shares["secp256k1"])
        for k in range(count)
    }
    children["ed25519"] = PrecommitSession(child_session_id(session_id, "ed25519"), shares["ed25519"], PARTIES, count)
    return children


def _results(op: Any, count: int) -> dict[str, list[Any]]:
    return {"secp256k1": [op.child(_ECDSA_CHILD.format(k)).result() for k in range(count)],
            "ed25519": list(op.child("ed25519").result())}


# --- client side -----------------------------------------------------------------------------
def client_pool(client: Client) -> dict[str, list[str]]:
    """The keychain entry names of the client's presignatures, per curve."""
    names = client.keychain.names()
    return {curve: [n for n in names if n.startswith(_entry_prefix(client.client_id, curve))] for curve in CURVES}


def take_client_presignature(client: Client, curve: str, share: Any, presignature_id: bytes | None = None) -> Any:
    """Delete one presignature of ``curve`` from the keychain, then decode it (delete before use).

    Entries of an older share pair, or damaged ones, are deleted and skipped.
    """
    prefix = _entry_prefix(client.client_id, curve)
    names = [prefix + presignature_id.hex()] if presignature_id is not None else client_pool(client)[curve]
    for name in names:
        if name not in client.keychain:
            continue
        try:
            data = client.keychain.get(name)
            client.keychain.delete(name)  # gone before anything uses it: a crash cannot reuse it
        except KeychainEntryNotFound:
            continue  # another session on this device took it first
        try:
            item = _decode(curve, CLIENT_PARTY, data)
        except MPCError:
            continue
        if _fits(curve, item, share):
            return item
    raise PresignatureNotFound("no presignature for this curve on this device; run presign first")


class ClientPresign(_ClientOperation):
    """The client's side of presign: fills the keychain pool of both curves."""

    protocol = "wallet/presign"

    def __init__(self, client: Client, session_id: bytes, count: int) -> None:
        super().__init__(client, session_id)
        self.count = _check_count(count)
        self._signing = {curve: client.signing_share(curve) for curve in CURVES}
        if self._signing["secp256k1"].locked:
            raise KeyLockedError()

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client.client_id, "count": self.count}

    def _start(self) -> list[Message]:
        return self._add_children(_children(self.session_id, CLIENT_PARTY, self._signing, self.count))

    def _on_children_done(self) -> list[Message]:
        results = _results(self, self.count)
        for curve in CURVES:
            prefix = _entry_prefix(self.client.client_id, curve)
            for item in results[curve]:
                self.client.keychain.put(prefix + _presignature_id(item).hex(), item.to_bytes())
        self._finish({curve: len(names) for curve, names in client_pool(self.client).items()})
        return []


class ClientSignPresigned(ClientSign):
    """The client's side of signing from a presignature (taken from the keychain at once)."""

    protocol = "wallet/sign-presigned"

    def __init__(self, client: Client, session_id: bytes, chain: str, data: bytes,
                 presignature_id: bytes | None = None) -> None:
        _ClientOperation.__init__(self, client, session_id)
        self.chain = chain
        self.curve = curve_of_chain(chain)
        self.data = bytes(data)
        self._share = client.signing_share(self.curve)
        self._child = self._make_child(presignature_id)

    def _make_child(self, presignature_id: bytes | None) -> Session:
        child_id = self._child_id(self.curve)
        try:
            if self.curve == "secp256k1":
                self._share.check_usable()  # a locked share must not consume a presignature
            item = take_client_presignature(self.client, self.curve, self._share, presignature_id)
            self.presignature_id = _presignature_id(item)
            if self.curve == "secp256k1":
                return OnlineSignP1(child_id, self._share, item, self.data)
            return OnlineSignSession(child_id, self._share, item, self.data)
        except KeyLocked:
            raise KeyLockedError() from None
        except MPCError as exc:
            raise from_protocol_error(exc) from None

    def _hello(self) -> dict[str, Any]:
        return {**sign_hello(self.client.client_id, self.chain, self.data), "presignature": self.presignature_id.hex()}


# --- custodian side --------------------------------------------------------------------------
class CustodianPresign(_CustodianOperation):
    """The custodian's side of presign: fills the store's pool of both curves (one transaction)."""

    protocol = "wallet/presign"
    exclusive = False

    def __init__(self, custodian: Custodian, client_id: str, session_id: bytes | None, count: int) -> None:
        self.count = _check_count(count)
        super().__init__(custodian, client_id, session_id)
        self._signing = {curve: custodian._load_share(client_id, "signing", "", curve) for curve in CURVES}

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "count": self.count}

    def _start(self) -> list[Message]:
        return self._add_children(_children(self.session_id, 2, self._signing, self.count))

    def _on_children_done(self) -> list[Message]:
        results = _results(self, self.count)
        with self.store.transaction():
            for curve in CURVES:
                items = [(_presignature_id(item), item.to_bytes()) for item in results[curve]]
                self.store.put_presignatures(self.client_id, curve, _binding(curve, self._signing[curve]), items)
        self._complete(self.store.count_presignatures(self.client_id))
        return []


class CustodianSignPresigned(CustodianSign):
    """The custodian's side of signing from the presignature the client names in its hello."""

    protocol = "wallet/sign-presigned"

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        if name == "hello" and not self._children and self._next_from_peer == 1:
            rest = {k: v for k, v in data.items() if k != "presignature"}
            if rest != self._hello() or "presignature" not in data:
                raise InvalidMessage("the client asks for another operation, client or parameters")
            return get_bytes(data, "presignature", 32)
        return super()._decode_step(name, data, sender)

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        if name == "hello":
            self.presignature_id: bytes = value
        return super()._on_step(name, value, sender)

    def _start(self) -> list[Message]:
        # Deleted (committed) before it is decoded or used: a crash from here on loses it.
        data = self.store.take_presignature(self.client_id, self.curve, self.presignature_id)
        if data is None:
            raise PresignatureNotFound("no such presignature for this client (unknown, used or lost)")
        child_id = self._child_id(self.curve)
        try:
            item = _decode(self.curve, 2, data)
            if self.curve == "secp256k1":
                child: Session = OnlineSignP2(child_id, self._share, item, self.data)
            else:
                child = OnlineSignSession(child_id, self._share, item, self.data)
        except MPCError as exc:
            raise from_protocol_error(exc) from None
        return self._add_children({self.curve: child})
