"""Issue 30, round six: the parked row. A parked custodian sign names its key share (client,
curve, digest of the stored share, and with an HD path the tweak) instead of carrying it
(``mpc.signing.CustodianSign.share_references``; ``Custodian._decode`` loads it again), and the
service parks only the last step's messages of a sign (``mpc.service.worker._outbox``). The
client plays the adversary: it continues a parked sign after a recover replaced the share,
tampers with the share a state names, and resumes after every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.errors import ShareReplaced, StateInvalid
from mpc.service import worker
from mpc.signing import CustodianSign
from mpc.storage.backends import open_store
from mpc.storage.store import SQLiteStore
from protocols.errors import UsageError
from protocols.rounds import Message, Session
from tests.mpc.conftest import Wallet, data_for, new_wallet, verify_result
from tests.mpc.test_service_warm import TTL, _copy, _Node, _Signing, enrolled, signer

__all__ = ["enrolled", "signer"]


def _first_step(wallet: Wallet, chain: str = "ethereum", path: str | None = None) -> tuple[Any, CustodianSign, Any]:
    """A sign of ``chain`` stepped once on each side: (device session, custodian session, the
    device's next messages)."""
    data = data_for(chain)
    device = wallet.client.sign(chain, data, path=path)
    custodian = wallet.custodian.sign(wallet.client_id, chain, data, device.session_id, path=path)
    assert custodian.start() == []
    replies = custodian.receive(device.start()[0])
    assert len(replies) == 1
    return device, custodian, device.receive(replies[0])


def _finish(device: Any, custodian: Session, pending: list[Message]) -> Any:
    while pending:
        replies = custodian.receive(pending.pop(0))
        for message in replies:
            pending += device.receive(message)
    return device.result()


@pytest.fixture(scope="module")
def two_wallets() -> tuple[Wallet, Wallet]:
    """Two clients with wallets on one custodian (one SQLite store in memory; made once: the
    tests only sign and derive, which replace no share)."""
    custodian = mpc.Custodian(SQLiteStore(":memory:"))
    first, second = new_wallet(custodian), new_wallet(custodian)
    first.generate()
    second.generate()
    return first, second


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
def test_a_parked_sign_names_its_share_and_finishes(two_wallets: tuple[Wallet, Wallet], chain: str) -> None:
    wallet, _ = two_wallets
    device, custodian, pending = _first_step(wallet, chain)
    blob = custodian.to_bytes()
    share = wallet.custodian._load_share(wallet.client_id, "signing", "", custodian.curve)
    assert share.to_bytes().hex().encode() not in blob and b'["x",["signing-share",' in blob
    if chain == "ethereum":
        assert len(blob) < 3_000  # 8.6 KB when it carried the share
    with pytest.raises(UsageError):  # a state with references needs its resolver
        Session.from_bytes(blob, custodian=wallet.custodian, setup=wallet.custodian.setup)
    verify_result(_finish(device, wallet.custodian.resume(blob), pending), data_for(chain))


def test_a_path_signs_with_the_tweaked_share_derived_again(two_wallets: tuple[Wallet, Wallet]) -> None:
    wallet, _ = two_wallets
    mpc.run_local(wallet.client.derive(["m/44/60/0"]), wallet.custodian.derive(wallet.client_id, ["m/44/60/0"]))
    device, custodian, pending = _first_step(wallet, path="m/44/60/0/0/7")
    resumed = wallet.custodian.resume(custodian.to_bytes())
    assert resumed._share is not resumed._root and resumed._share.public_point == custodian._share.public_point
    result = _finish(device, resumed, pending)
    verify_result(result, data_for("ethereum"))
    assert result.public_key == custodian._share.public_key


@pytest.mark.parametrize("tweak", ["", "0", "00", "0a", "A", "g", "1" * 65, "-1"])
def test_a_parked_path_sign_naming_a_malformed_tweak_is_refused(two_wallets: tuple[Wallet, Wallet],
                                                                 tweak: str) -> None:
    """Beneath the sealed row's AAD: a parked sign at a path names its tweak as the lowercase hex
    ``format(t, "x")`` writes; any other text (empty, a leading zero, upper case, not hex, longer
    than a scalar, signed) is ``STATE_INVALID`` when the state is decoded, and the genuine state
    still resumes. ("0" alone is the canonical zero; a sign's tweak is never zero, so it names
    another share, which the check of the references refuses as well.)"""
    wallet, _ = two_wallets
    mpc.run_local(wallet.client.derive(["m/44/60/0"]), wallet.custodian.derive(wallet.client_id, ["m/44/60/0"]))
    _, custodian, _ = _first_step(wallet, path="m/44/60/0/0/7")
    blob = custodian.to_bytes()
    digest = custodian._root_digest
    named = f'"{digest}","{format(custodian._hd_child[2], "x")}"]'.encode()  # the tweaked share's references
    assert blob.count(named) >= 1
    with pytest.raises(StateInvalid):
        wallet.custodian.resume(blob.replace(named, f'"{digest}","{tweak}"]'.encode()))
    wallet.custodian.resume(blob)  # the genuine state is untouched by the attempt


def test_a_parked_sign_whose_share_a_recover_replaced_is_refused() -> None:
    """A recover between two steps of a sign: the parked state is refused (``SHARE_REPLACED``)
    when it is decoded: it never signs with the share it named once another took its place,
    nor with the new one."""
    wallet = new_wallet(mpc.Custodian(SQLiteStore(":memory:")))
    wallet.generate()
    wallet.backup()
    _, custodian, _ = _first_step(wallet)
    blob = custodian.to_bytes()
    wallet.recover(wallet.device())
    with pytest.raises(ShareReplaced):
        wallet.custodian.resume(blob)


@pytest.mark.parametrize("field", ["client", "curve"])
def test_a_state_naming_another_clients_or_curves_share_is_refused(two_wallets: tuple[Wallet, Wallet],
                                                                    field: str) -> None:
    """The sealed row's AAD binds the state to its client; beneath it, a state whose reference
    names a share that exists (and whose digest matches) but is another client's, or of the
    other curve, is still refused: nothing signs with it."""
    wallet, other = two_wallets
    _, custodian, _ = _first_step(wallet)
    blob = custodian.to_bytes()
    store = wallet.custodian.store
    digest = custodian._root_digest
    if field == "client":
        target_client, curve = other.client_id, "secp256k1"
    else:
        target_client, curve = wallet.client_id, "ed25519"
    target = mpc.signing.share_digest(store.get_share(target_client, "signing", "", curve))
    named = f'["signing-share","{wallet.client_id}","secp256k1","{digest}"]'.encode()
    forged = f'["signing-share","{target_client}","{curve}","{target}"]'.encode()
    assert blob.count(named) >= 1
    with pytest.raises(StateInvalid):
        wallet.custodian.resume(blob.replace(named, forged))
    wallet.custodian.resume(blob)  # the genuine state is untouched by the attempt


@pytest.mark.parametrize("digest", [["l", []], ["d", []], ["i", "1"], ["k", "secp256k1", "01" * 32], None])
def test_a_state_whose_share_digest_is_not_a_digest_is_refused(two_wallets: tuple[Wallet, Wallet], digest: Any) -> None:
    """The state's own field naming its share's version holds another type (a list, a mapping, an
    int, a secret scalar, null): ``StateInvalid`` (a bare ``TypeError`` before), the genuine state
    untouched."""
    wallet, _ = two_wallets
    _, custodian, _ = _first_step(wallet)
    blob = custodian.to_bytes()
    field = f'["_root_digest",["s","{custodian._root_digest}"]]'.encode()
    assert blob.count(field) == 1
    with pytest.raises(StateInvalid):
        forged = b'["_root_digest",' + json.dumps(digest, separators=(",", ":")).encode() + b"]"
        wallet.custodian.resume(blob.replace(field, forged))
    wallet.custodian.resume(blob)


def test_a_state_parked_with_the_share_inside_still_finishes(two_wallets: tuple[Wallet, Wallet]) -> None:
    """A row parked by the version before references (the share inside the state) decodes and
    finishes as before."""
    wallet, _ = two_wallets
    device, custodian, pending = _first_step(wallet)
    del custodian._root_digest  # what a session of that version holds: no digest, so no reference
    blob = custodian.to_bytes()
    assert b'"x"' not in blob and len(blob) > 6_000
    resumed = wallet.custodian.resume(blob)
    assert resumed.share_references() == []  # parked again the old way: it never names a share it did not
    verify_result(_finish(device, resumed, pending), data_for("ethereum"))


# --- through the service's worker -------------------------------------------------------------------
def test_resume_after_each_step_answers_that_steps_messages(signer: tuple[_Node, str, str, mpc.Client]) -> None:
    """After every step of a sign the service parks what that step sent, and a resume answers
    exactly it: all a device that lost the connection lacks (it sent its message only once it
    had every earlier one); the sign then finishes from the resumed messages."""
    running, client_id, token, phone = signer
    signing = _Signing(running, client_id, token, phone)
    while signing.outbox:
        message = signing.outbox.pop(0)
        outcome = worker.step(running.key, client_id, token, signing.sid, message.to_bytes(), TTL)
        assert "error" not in outcome, outcome
        if "result" in outcome:
            break
        resumed = worker.resume_channel(running.key, client_id, signing.sid)
        assert resumed["messages"] == outcome["messages"] and resumed["expect"] > message.round
        parked = running.service.service.peek(signing.sid)
        assert parked is not None and parked.outbox == outcome["messages"] and len(parked.data) < 3_000
        for text in resumed["messages"]:  # the device reads them from the resume, not the step
            signing.outbox += signing.session.receive(Message.from_bytes(text.encode()))
    verify_result(signing.session.result(), signing.data)


def test_a_recover_between_two_service_steps_refuses_the_next(enrolled: tuple[Path, str, str, mpc.Client],
                                                              tmp_path: Path) -> None:
    """Through the worker: a recover that replaced the share between two steps of a sign (made
    here beside the service, which keeps the token and device key: only the share is new) gets
    ``SHARE_REPLACED``, fatal, on a node that decodes the row, and the parked row is gone."""
    db, client_id, token, phone = _copy(enrolled, tmp_path)
    first, second = _Node(open_store(db)), _Node(open_store(db))
    try:
        cloud = MemoryCloudStorage()
        device = mpc.Client(client_id, phone.keychain, cloud=cloud)
        mpc.run_local(device.backup(), first.custodian.backup(client_id))
        signing = _Signing(first, client_id, token, device)
        assert "error" not in signing.step(first)
        mpc.run_local(mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud).recover(),
                      first.custodian.recover(client_id))
        outcome = signing.step(second)
        assert outcome["error"]["error"]["id"] == "SHARE_REPLACED" and outcome["fatal"]
        assert second.decoded == 1 and second.service.service.peek(signing.sid) is None
    finally:
        first.close()
        second.close()


def test_a_row_parked_by_the_previous_version_finishes_through_the_worker(
        signer: tuple[_Node, str, str, mpc.Client]) -> None:
    """A sign row as the version before parked it (the share inside the state, every message sent
    so far in the outbox) is resumed (its whole outbox replayed: the device drops what it has)
    and stepped to the end (its share still inside its state: it names none it did not before;
    its outbox from then on the last step's messages only)."""
    running, client_id, token, phone = signer
    data = data_for("ethereum")
    device = phone.sign("ethereum", data)
    sid = device.session_id.hex()
    custodian = running.custodian.sign(client_id, "ethereum", data, device.session_id)
    custodian.start()
    replies = custodian.receive(device.start()[0])
    del custodian._root_digest  # a session of that version: no digest, the share inside its state
    old = custodian.to_bytes()
    assert b'"x"' not in old
    service = running.service.service
    service.bind_session(sid, client_id, phone.device_key().public, False, TTL)
    service.park(sid, client_id, "sign", old, [m.to_bytes().decode("ascii") for m in replies], False, TTL)
    resumed = worker.resume_channel(running.key, client_id, sid)
    assert resumed["messages"] == [m.to_bytes().decode("ascii") for m in replies]
    pending = device.receive(Message.from_bytes(resumed["messages"][0].encode()))
    while pending:
        outcome = worker.step(running.key, client_id, token, sid, pending.pop(0).to_bytes(), TTL)
        assert "error" not in outcome, outcome
        parked = service.peek(sid)
        assert "result" in outcome or (parked is not None and parked.outbox == outcome["messages"])
        for text in outcome["messages"]:
            pending += device.receive(Message.from_bytes(text.encode()))
    verify_result(device.result(), data)
