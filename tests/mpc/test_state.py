"""Wallet operations parked after every step on both sides and resumed from bytes."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import pytest

import mpc
from mpc.errors import EngineError
from protocols.errors import FutureMessage, UsageError
from protocols.rounds import Message, Session
from tests.mpc.conftest import Wallet, data_for, verify_result


def run_parked(client: mpc.Client, custodian: mpc.Custodian, client_session: Session,
               custodian_session: Session, method: Any = None, *, park_client: bool = True) -> tuple[Any, Any]:
    """Drive one operation; after every step each side is parked and resumed from bytes (the
    client's side of a signing operation holds nonces and is never parked: ``park_client``)."""
    parks = {
        1: (lambda s: client.resume(s.to_bytes(), method)) if park_client else (lambda s: s),
        2: lambda s: custodian.resume(s.to_bytes()),
    }
    sessions = {1: parks[1](client_session), 2: parks[2](custodian_session)}
    queue: deque[tuple[int, bytes]] = deque()

    def step(party: int, action: Callable[[Session], list[Message]]) -> None:
        out = action(sessions[party])
        sessions[party] = parks[party](sessions[party])
        queue.extend((m.recipient, m.to_bytes()) for m in out)

    step(1, Session.start)
    step(2, Session.start)
    while queue:
        party, data = queue.popleft()
        try:
            step(party, lambda s: s.receive(Message.from_bytes(data)))
        except FutureMessage:
            queue.append((party, data))
    return sessions[1].result(), sessions[2].result()


def test_whole_lifecycle_parked_after_every_step(wallet: Wallet) -> None:
    c, cust, cid = wallet.client, wallet.custodian, wallet.client_id
    addresses, view = run_parked(c, cust, c.generate(), cust.generate(cid))
    assert view["signing_share_status"] == "STORED_CLIENT" and view["addresses"] == addresses
    for chain in ("ethereum", "solana"):
        data = data_for(chain)
        result, same = run_parked(c, cust, c.sign(chain, data), cust.sign(cid, chain, data), park_client=False)
        verify_result(result, data)
        assert same == result
    run_parked(c, cust, c.backup(), cust.backup(cid))
    assert wallet.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")
    device = wallet.device()
    assert run_parked(device, cust, device.recover(), cust.recover(cid)) [0] == addresses
    data = data_for("bitcoin")
    result, _ = run_parked(device, cust, device.sign("bitcoin", data), cust.sign(cid, "bitcoin", data),
                           park_client=False)
    verify_result(result, data)
    keys, _ = run_parked(device, cust, device.eject(), cust.eject(cid))
    assert keys.secp256k1_public_key == result.public_key


def test_custodian_blob_holds_no_collaborators_and_needs_them_back(generated: Wallet) -> None:
    session = generated.custodian.sign(generated.client_id, "ethereum", data_for("ethereum"))
    data = session.to_bytes()
    assert b"sqlite" not in data.lower()
    with pytest.raises(UsageError):
        Session.from_bytes(data)
    other = mpc.Custodian()
    resumed = other.resume(data)
    assert resumed.custodian is other and resumed.store is other.store


def test_resumed_sign_refuses_a_replayed_message(generated: Wallet) -> None:
    c, cust, cid = generated.client, generated.custodian, generated.client_id
    data = data_for("ethereum")
    client_op, custodian_op = c.sign("ethereum", data), cust.sign(cid, "ethereum", data)
    first = client_op.start()
    custodian_op.start()
    replies = []
    for m in first:
        replies += custodian_op.receive(m)
    resumed = cust.resume(custodian_op.to_bytes())
    with pytest.raises(Exception) as info:
        resumed.receive(first[-1])
    assert "past round" in str(info.value)  # the child's own envelope check (mpc.signing, "Framing")
    assert not isinstance(info.value, EngineError) or info.value.code == "MESSAGE_INVALID"
