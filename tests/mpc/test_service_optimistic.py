"""Issue 30, round four: the optimistic step (``mpc.service.worker``, The optimistic step). A
step of a sign or presign session runs on the parked row without taking it and commits once
(``ServiceStore.commit_step``); nothing it computed leaves before that commit. The client plays
the adversary racing itself: two steps on one parked state, the same message twice, an abort
racing a valid step, a worker killed between its run and its commit (or just after), a database
restored under a running step; and, for a take-first operation (backup), an abort racing a
valid step over the client's operation lock. The races are made deterministic by holding each
step at its commit (or take) until both got there (``_Race``), never by sleeping."""

from __future__ import annotations

import asyncio
import concurrent.futures.process
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc import errors
from mpc.service import worker
from mpc.service.store import ServiceStore, Step
from mpc.storage.backends import open_store
from mpc.storage.restore_guard import RestoreGuard
from protocols.rounds import Message
from tests.mpc.conftest import verify_result
from tests.mpc.test_service_warm import TTL, _copy, _Node, _Signing, enrolled

__all__ = ["enrolled"]


@pytest.fixture
def signer(enrolled: tuple[Path, str, str, mpc.Client], tmp_path: Path) -> Any:
    """A node on a copy of the enrolled database, its path, and the client's id, token and device."""
    db, client_id, token, phone = _copy(enrolled, tmp_path)
    running = _Node(open_store(db))
    yield running, db, client_id, token, phone
    running.close()


class _Race:
    """Two steps in two threads (``A`` and ``B``): each runs until its first call of ``gate`` (a
    ``ServiceStore`` method: the optimistic step's commit, or a take-first step's take) and waits
    there until both got there; the calls then go in ``order``, one after the other, and the
    first step goes on only once the second's call returned (a take-first step's second take
    meets the session taken, not yet parked again)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, order: str = "AB", gate: str = "commit_step") -> None:
        self.order = order
        self.arrived = threading.Barrier(2, timeout=60)
        self.turn = {name: threading.Event() for name in order}
        self.gated: set[str] = set()
        self.second_done = threading.Event()
        original = getattr(ServiceStore, gate)

        def commit(store: ServiceStore, *args: Any, **kwargs: Any) -> Any:
            name = threading.current_thread().name
            if name not in self.turn or name in self.gated:  # a thread's later commits (a drop) go at once
                return original(store, *args, **kwargs)
            self.gated.add(name)
            self.arrived.wait()  # both ran their protocol: neither committed yet
            if name != order[0]:
                assert self.turn[name].wait(60)
            try:
                return original(store, *args, **kwargs)
            finally:
                if name == order[0]:  # the second's call runs now, before the first goes on
                    self.turn[order[1]].set()
                    assert self.second_done.wait(60)
                else:
                    self.second_done.set()

        monkeypatch.setattr(ServiceStore, gate, commit)

    def run(self, a: Callable[[], dict[str, Any]], b: Callable[[], dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Run ``a`` as thread ``A`` and ``b`` as thread ``B``; their outcomes by name."""
        outcomes: dict[str, dict[str, Any]] = {}

        def keep(name: str, fn: Callable[[], dict[str, Any]]) -> None:
            outcomes[name] = fn()

        threads = [threading.Thread(target=keep, args=(name, fn), name=name) for name, fn in (("A", a), ("B", b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert set(outcomes) == {"A", "B"}
        return outcomes


def _deliver(node: _Node, signing: _Signing, message: Message) -> Callable[[], dict[str, Any]]:
    return lambda: worker.step(node.key, signing.client_id, signing.token, signing.sid, message.to_bytes(), TTL)


def _error(outcome: dict[str, Any]) -> str:
    return str(outcome["error"]["error"]["id"])


def _resume(node: _Node, signing: _Signing) -> dict[str, Any]:
    return worker.resume_channel(node.key, signing.client_id, signing.sid)


@pytest.mark.parametrize("first", ["A", "B"])
def test_two_different_messages_on_one_parked_state_only_the_committed_one_leaves(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    """Two device sessions of the client race with their first message (each valid, each with
    its own nonce commitment) on the one parked custodian session: exactly one answer leaves,
    the other connection gets a typed error, and the winner's signature completes."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    rival = phone.sign("ethereum", signing.data, bytes.fromhex(signing.sid))  # the same session, other nonces
    rival_first = rival.start()[0]
    assert rival_first.to_bytes() != signing.outbox[0].to_bytes()
    before = _resume(node, signing)
    outcomes = _Race(monkeypatch, first + ("B" if first == "A" else "A")).run(
        _deliver(node, signing, signing.outbox[0]), _deliver(node, signing, rival_first))
    winner, loser = outcomes[first], outcomes["B" if first == "A" else "A"]
    assert "error" not in winner and len(winner["messages"]) == 1
    assert _error(loser) == "NOT_FOUND" and loser["fatal"] and "messages" not in loser
    assert _resume(node, signing)["messages"] == before["messages"] + winner["messages"]  # only the winner's
    device = signing.session if first == "A" else rival
    signing.session = device
    signing.outbox = device.receive(Message.from_bytes(winner["messages"][0].encode()))
    signing.finish(node)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_the_same_message_twice_at_once_one_answer_and_a_typed_error(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    """The client resends its message on a second connection while the first step runs (at each
    of the sign's three steps; the last one finishes the operation): one answer, one NOT_FOUND,
    never two outputs; the operation completes with the answer."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    for _ in range(index):
        assert "error" not in signing.step(node)
    message = signing.outbox[0]
    outcomes = _Race(monkeypatch).run(_deliver(node, signing, message), _deliver(node, signing, message))
    assert "error" not in outcomes["A"] and _error(outcomes["B"]) == "NOT_FOUND" and "messages" not in outcomes["B"]
    signing.outbox.pop(0)
    for text in outcomes["A"]["messages"]:
        signing.outbox += signing.session.receive(Message.from_bytes(text.encode()))
    if index == 2:
        assert "result" in outcomes["A"] and node.service.service.count() == 0
        verify_result(signing.session.result(), signing.data)
    else:
        signing.finish(node)


@pytest.mark.parametrize("first", ["valid", "abort"])
def test_an_abort_racing_a_valid_step_leaves_one_consistent_outcome(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    """After the first step, a rival device session's second message (its opening does not match
    the commitment the custodian accepted: an abort) races the winner's valid one. The valid one
    committed first: it leaves and the operation completes, the abort only tells its connection.
    The abort committed first: the session is over for both (NOT_FOUND for the valid one, nothing
    of it leaves), the row is gone and the client holds no lock."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    rival = phone.sign("ethereum", signing.data, bytes.fromhex(signing.sid))
    rival.start()
    answered = signing.step(node)  # the device's first message wins; the rival never got an answer
    rival_second = rival.receive(Message.from_bytes(answered["messages"][0].encode()))[0]
    race = _Race(monkeypatch, "AB" if first == "valid" else "BA")
    outcomes = race.run(_deliver(node, signing, signing.outbox[0]), _deliver(node, signing, rival_second))
    assert outcomes["B"]["fatal"] and "messages" not in outcomes["B"]
    assert _error(outcomes["B"]) in ("PROTOCOL_ABORTED", "MESSAGE_INVALID"), outcomes
    record = node.custodian.store.client(client_id)
    assert record.operation is None  # a sign holds no operation lock, before or after
    if first == "valid":
        assert "error" not in outcomes["A"]
        signing.outbox.pop(0)
        for text in outcomes["A"]["messages"]:
            signing.outbox += signing.session.receive(Message.from_bytes(text.encode()))
        signing.finish(node)
    else:
        assert _error(outcomes["A"]) == "NOT_FOUND" and "messages" not in outcomes["A"]
        assert node.service.service.count() == 0 and _error(_resume(node, signing)) == "NOT_FOUND"


@pytest.mark.parametrize("first", ["valid", "abort"])
def test_a_backups_abort_racing_its_valid_step_leaves_the_lock_with_its_session(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    """A backup (take-first: its steps hold the client's operation lock) receives, at once, its
    valid round-5 message and a copy whose reshare share was tampered with (an abort, which frees
    the lock): only the step that takes the row runs. Valid first: it parks, the lock stays its
    session's, the other gets NOT_FOUND, and the backup completes. Abort first: the session and
    its lock go together. Never a parked session whose lock is free."""
    node, _, client_id, token, phone = signer
    session = phone.backup()
    sid = session.session_id.hex()
    opened = worker.open_operation(node.key, "backup", client_id, {}, sid, TTL, 8, phone.device_key().public, False)
    outbox = session.start()
    for text in opened["messages"]:
        outbox += session.receive(Message.from_bytes(text.encode()))
    deliver = _Driver(node, client_id, token, sid)
    while outbox[0].round < 5:
        outbox += _replies(session, deliver(outbox.pop(0)))
    valid = outbox.pop(0)
    race = _Race(monkeypatch, "AB" if first == "valid" else "BA", gate="take")
    outcomes = race.run(lambda: deliver(valid), lambda: deliver(_tampered_share(valid)))
    assert "messages" not in outcomes["B"] and outcomes["B"]["fatal"]
    lock = node.custodian.store.client(client_id)
    if first == "valid":
        assert _error(outcomes["B"]) == "NOT_FOUND" and "error" not in outcomes["A"]
        assert lock.operation == "backup" and lock.operation_session == sid and node.service.service.is_parked(sid)
        outbox += _replies(session, outcomes["A"])
        while outbox:
            outbox += _replies(session, deliver(outbox.pop(0)))
        assert session.done and node.custodian.store.client(client_id).operation is None
    else:
        assert _error(outcomes["B"]) == "PROTOCOL_ABORTED" and _error(outcomes["A"]) == "NOT_FOUND"
        assert lock.operation is None and not node.service.service.is_parked(sid)


class _Driver:
    """Deliver one device message of a session to the worker (``worker.step``)."""

    def __init__(self, node: _Node, client_id: str, token: str, session_id: str) -> None:
        self.node, self.client_id, self.token, self.session_id = node, client_id, token, session_id

    def __call__(self, message: Message) -> dict[str, Any]:
        return worker.step(self.node.key, self.client_id, self.token, self.session_id, message.to_bytes(), TTL)


def _replies(session: Any, outcome: dict[str, Any]) -> list[Message]:
    """The device's replies to the custodian's messages in ``outcome`` (which must be no error)."""
    assert "error" not in outcome, outcome
    return [reply for text in outcome["messages"] for reply in session.receive(Message.from_bytes(text.encode()))]


def _tampered_share(message: Message) -> Message:
    """``message`` (a backup's round 5: the client's reshare share) with its share changed."""
    document = json.loads(message.to_bytes())
    inner = document["payload"]["message"]["payload"]
    # The last byte is the scalar's most significant (little-endian): 00 or 01 keeps it below
    # the group order, so the share stays canonical and only the protocol's check can refuse it.
    inner["share"] = inner["share"][:-2] + ("00" if inner["share"][-2:] != "00" else "01")
    return Message.from_bytes(json.dumps(document, separators=(",", ":"), sort_keys=True).encode())


def test_a_restore_between_the_read_and_the_commit_is_refused(
        enrolled: tuple[Path, str, str, mpc.Client], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database is restored (to a copy taken at this very park) while the step runs: the
    commit compares with the restore guard first, bumps the nonce epoch and finds the row gone:
    nothing of what the step computed leaves."""
    path, client_id, token, phone = _copy(enrolled, tmp_path)
    store = open_store(path)
    store.attach_restore_guard(RestoreGuard(tmp_path / "guard"))
    node = _Node(store)
    try:
        signing = _Signing(node, client_id, token, phone)
        assert "error" not in signing.step(node)
        with sqlite3.connect(path) as source, sqlite3.connect(tmp_path / "backup.sqlite3") as target:
            source.backup(target)  # a backup of this very park: its row and version are the same
        assert "error" not in signing.step(node)  # the take counter moves on past the backup's
        original = ServiceStore.commit_step

        def restored_first(service: ServiceStore, *args: Any, **kwargs: Any) -> Any:
            shutil.copyfile(tmp_path / "backup.sqlite3", path)  # restored under the running step
            return original(service, *args, **kwargs)

        monkeypatch.setattr(ServiceStore, "commit_step", restored_first)
        outcome = signing.step(node)
        assert _error(outcome) == "NOT_FOUND" and outcome["fatal"] and "messages" not in outcome
        assert store.restores_detected == 1 and store.nonce_epoch() == 2 and node.service.service.count() == 0
    finally:
        node.close()


def _step_then_die(db: str, client_id: str, token: str, session_id: str, frame: bytes, step: Step,
                   after_commit: bool) -> None:
    """In a worker process of its own: the step runs and the process is killed (SIGKILL) just
    before its commit, or just after it (before its answer could leave)."""
    original = ServiceStore.commit_step

    def die(service: ServiceStore, *args: Any, **kwargs: Any) -> Any:
        if after_commit:
            original(service, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    ServiceStore.commit_step = die  # type: ignore[method-assign]
    worker.step(db, client_id, token, session_id, frame, TTL, step)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_worker_killed_around_its_commit(signer: tuple[_Node, str, str, str, mpc.Client],
                                           after_commit: bool) -> None:
    """A worker killed between its run and its commit sent nothing and left the row parked as it
    was: the step is ``untouched`` and the resend completes the operation. Killed just after the
    commit: the step is ``parked`` with what it produced (never lost, never run twice), which is
    what a resume answers (the last step's messages only)."""
    node, db, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    assert "error" not in signing.step(node)
    before = _resume(node, signing)
    message, step = signing.outbox[0], Step("killed", "node-x", 60.0)
    process = multiprocessing.get_context("spawn").Process(
        target=_step_then_die, args=(db, client_id, token, signing.sid, message.to_bytes(), step, after_commit))
    process.start()
    process.join(120)
    assert process.exitcode == -signal.SIGKILL
    outcome = node.service.service.step_outcome(signing.sid, step)
    if not after_commit:
        assert outcome.state == "untouched" and _resume(node, signing) == before  # parked as it was
        signing.finish(node)  # the client's resend runs the step again
        return
    assert outcome.state == "parked" and len(outcome.messages) == 1
    assert _resume(node, signing)["messages"] == list(outcome.messages)  # the last step's messages only
    signing.outbox.pop(0)
    signing.outbox += signing.session.receive(Message.from_bytes(outcome.messages[0].encode()))
    signing.finish(node)


@pytest.mark.parametrize("where", ["decode", "admission"])
def test_a_store_failure_in_a_step_leaves_the_session_parked(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """The store fails (``STORE_UNAVAILABLE``) while a step decodes its state or in its commit's
    admission: nothing leaves, and the session is not dropped (the store failed, not the
    session): the same message, sent again once the store answers, completes the signature."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    assert "error" not in signing.step(node)
    before = _resume(node, signing)
    worker.forget_warm(signing.sid)  # the step decodes the stored state

    def unavailable(*_: Any) -> Any:
        raise errors.StoreUnavailable("the database does not answer")

    if where == "decode":
        monkeypatch.setattr(node.custodian, "_decode", unavailable)
    else:
        monkeypatch.setattr(node.custodian, "_admission", lambda session: unavailable)
    message = signing.outbox[0]
    outcome = worker.step(node.key, client_id, token, signing.sid, message.to_bytes(), TTL)
    assert _error(outcome) == "STORE_UNAVAILABLE" and "messages" not in outcome
    monkeypatch.undo()
    assert _resume(node, signing) == before  # still parked, as it was
    signing.finish(node)


def test_a_row_of_a_dead_nonce_epoch_is_deleted_at_its_commit(
        signer: tuple[_Node, str, str, str, mpc.Client]) -> None:
    """A parked row whose state carries an epoch the store has left (a copy met after a
    restore, the epoch moved without emptying the table): the step's commit refuses it, nothing
    leaves, and the row goes, as a take would delete it."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    assert "error" not in signing.step(node)
    store = node.custodian.store
    with store.transaction():
        store._set_meta("nonce_epoch", str(store.nonce_epoch() + 1))
    outcome = signing.step(node)
    assert _error(outcome) == "NOT_FOUND" and "messages" not in outcome
    assert not node.service.service.is_parked(signing.sid)


@pytest.mark.parametrize("last", [False, True], ids=["middle-step", "last-step"])
def test_a_worker_dying_after_its_commit_is_answered_by_the_service(
        signer: tuple[_Node, str, str, str, mpc.Client], monkeypatch: pytest.MonkeyPatch, last: bool) -> None:
    """Through the service's step (``CustodianService._deliver``): the step runs and commits,
    then its worker dies before the answer comes back. A middle step's parked messages are sent;
    the last step's kept result is sent (once), not ``OPERATION_LOST``: the signature completes
    on the device, and nothing ran twice."""
    node, _, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    for _ in range(2 if last else 1):
        assert "error" not in signing.step(node)
    message = signing.outbox.pop(0)
    service = node.service
    run_step = service._run_step
    died: list[bool] = []

    async def dies_after_the_step(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        answer = await run_step(fn, *args, **kwargs)
        if fn is worker.step and not died:
            died.append(True)  # committed; the worker dies before its answer reaches the service
            raise concurrent.futures.process.BrokenProcessPool("the worker died")
        return answer

    monkeypatch.setattr(service, "_run_step", dies_after_the_step)
    outcome = asyncio.run(service._deliver(client_id, token, signing.sid, message.to_bytes()))
    assert died and "error" not in outcome, outcome
    if last:  # the custodian's last step sends nothing but its result: the device's signature
        assert outcome["messages"] == [] and node.service.service.count() == 0
        verify_result(signing.session.result(), signing.data)
        assert outcome["result"]["r"] == signing.session.result().to_json()["r"]
        assert worker.take_finished(node.key, client_id, token, signing.sid) is None  # sent once
    else:
        assert "result" not in outcome and len(outcome["messages"]) == 1
        signing.outbox += signing.session.receive(Message.from_bytes(outcome["messages"][0].encode()))
        signing.finish(node)
