"""Issue 30: a worker keeps the session it parked decoded ("warm") for the next step of it and
uses it only for that very park (``mpc.service.worker``, Warm sessions): a hit decodes nothing;
a session another node advanced, or a restored database, is decoded from the store (or refused)
exactly as without the cache. The lanes (``mpc.service.pool.LanePool``) send a session's steps
back to the worker that holds it warm."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.service import warm as warm_cache
from mpc.service import worker
from mpc.service.pool import LanePool
from mpc.service.server import CustodianService
from mpc.service.store import new_token
from mpc.storage.backends import open_store
from mpc.storage.restore_guard import RestoreGuard
from protocols.rounds import Message, Session
from tests.mpc.conftest import data_for, verify_result

TTL = 60.0


class _Node:
    """A ``CustodianService`` on a shared database (thread executor, never listening), and how
    many parked states its custodian decoded (``Custodian._decode``)."""

    def __init__(self, store: mpc.SQLiteStore) -> None:
        self.custodian = mpc.Custodian(store)
        self.service = CustodianService(store.path, custodian=self.custodian, executor="thread",
                                        open_registration=True)
        self.key = self.service._key
        self.decoded = 0
        decode = self.custodian._decode  # what ``resume`` and the optimistic step decode with

        def counting(data: bytes) -> Session:
            self.decoded += 1
            return decode(data)

        self.custodian._decode = counting  # type: ignore[method-assign]

    def close(self) -> None:
        self.service._pool.shutdown()
        self.custodian.store.close()


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, mpc.Client]:
    """A database with one client's wallet, token and device key (each test signs on a copy)."""
    db = tmp_path_factory.mktemp("warm") / "custodian.sqlite3"
    template = _Node(open_store(str(db)))
    try:
        client_id = template.custodian.create_client()
        phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
        mpc.run_local(phone.generate(), template.custodian.generate(client_id))
        token = new_token()
        template.service.service.set_token(client_id, token)
        template.service.service.register_device(client_id, phone.device_key().public)
    finally:
        template.close()
    return db, client_id, token, phone


def _copy(enrolled: tuple[Path, str, str, mpc.Client], tmp_path: Path) -> tuple[str, str, str, mpc.Client]:
    """A copy of the enrolled database in ``tmp_path``: (path, client id, token, device)."""
    template, client_id, token, phone = enrolled
    db = tmp_path / "custodian.sqlite3"
    with sqlite3.connect(template) as source, sqlite3.connect(db) as target:
        source.backup(target)
    return str(db), client_id, token, phone


class _Signing:
    """One ethereum signature driven through the worker's steps, each step on the node chosen."""

    def __init__(self, node: _Node, client_id: str, token: str, phone: mpc.Client) -> None:
        self.client_id, self.token, self.data = client_id, token, data_for("ethereum")
        self.session = phone.sign("ethereum", self.data)
        self.sid = self.session.session_id.hex()
        opened = worker.open_operation(node.key, "sign", client_id, {"chain": "ethereum", "data": self.data},
                                       self.sid, TTL, 8, phone.device_key().public, False)
        assert "error" not in opened, opened
        self.outbox = self.session.start()
        for text in opened["messages"]:
            self.outbox += self.session.receive(Message.from_bytes(text.encode()))
        self.steps = 0

    def step(self, node: _Node) -> dict[str, Any]:
        """Deliver the device's next message on ``node``; the custodian's replies go to the device."""
        message = self.outbox.pop(0)
        outcome = worker.step(node.key, self.client_id, self.token, self.sid, message.to_bytes(), TTL)
        self.steps += 1
        for text in outcome.get("messages", ()):
            self.outbox += self.session.receive(Message.from_bytes(text.encode()))
        return outcome

    def finish(self, node: _Node) -> None:
        while self.outbox:
            outcome = self.step(node)
            assert "error" not in outcome, outcome
        verify_result(self.session.result(), self.data)


@pytest.fixture
def signer(enrolled: tuple[Path, str, str, mpc.Client], tmp_path: Path) -> Any:
    """A node on a copy of the enrolled database, and the client's id, token and device."""
    db, client_id, token, phone = _copy(enrolled, tmp_path)
    running = _Node(open_store(db))
    yield running, client_id, token, phone
    running.close()


def test_a_warm_session_is_used_without_decoding(signer: tuple[_Node, str, str, mpc.Client]) -> None:
    node, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    assert worker.warm_sessions(node.key) == 1  # parked at the open, kept decoded
    signing.finish(node)
    assert signing.steps >= 3 and node.decoded == 0  # every step found its session warm
    assert worker.warm_sessions(node.key) == 0  # finished: nothing kept
    assert node.service.service.count() == 0


def test_a_session_another_node_advanced_is_decoded_from_the_store(signer: tuple[_Node, str, str, mpc.Client]
                                                                   ) -> None:
    node, client_id, token, phone = signer
    other = _Node(open_store(node.custodian.store.path))  # a second node on the same database
    try:
        signing = _Signing(node, client_id, token, phone)
        assert "error" not in signing.step(node)  # warm on this node
        assert "error" not in signing.step(other)  # the other node decodes it and parks a new version
        assert other.decoded == 1 and node.decoded == 0
        assert worker.warm_sessions(node.key) == 1  # this node's copy is of the older park now
        signing.finish(node)  # the versions differ: it decodes the other node's park once, then is warm again
        assert node.decoded == 1 and other.decoded == 1 and worker.warm_sessions(node.key) == 0
    finally:
        other.close()


def test_a_warm_session_is_never_used_after_a_restore(enrolled: tuple[Path, str, str, mpc.Client],
                                                      tmp_path: Path) -> None:
    path, client_id, token, phone = _copy(enrolled, tmp_path)
    db = Path(path)
    store = open_store(path)
    assert not store.attach_restore_guard(RestoreGuard(tmp_path / "guard"))  # nothing taken yet: no bump
    guarded = _Node(store)
    try:
        signing = _Signing(guarded, client_id, token, phone)
        assert "error" not in signing.step(guarded)
        with sqlite3.connect(db) as source, sqlite3.connect(tmp_path / "backup.sqlite3") as target:
            source.backup(target)
        again = signing.outbox[0]  # the message the backup's parked state expects
        assert "error" not in signing.step(guarded)  # warm again, the take counter moved on
        assert worker.warm_sessions(guarded.key) == 1
        shutil.copyfile(tmp_path / "backup.sqlite3", db)  # restored under the running service
        # The optimistic step (issue 30, round four) reads the restored park (not the warm copy:
        # another version), runs it on the very message it expects, and its commit finds the
        # restore (the guard compared first): refused, nothing of what it computed leaves.
        outcome = worker.step(guarded.key, client_id, token, signing.sid, again.to_bytes(), TTL)
        assert outcome["error"]["error"]["id"] == "NOT_FOUND" and outcome["fatal"]
        assert "messages" not in outcome
        assert store.restores_detected == 1 and store.nonce_epoch() == 2
        assert guarded.service.service.count() == 0  # the bump emptied the parked sessions
        assert guarded.decoded == 1 and worker.warm_sessions(guarded.key) == 0
    finally:
        guarded.close()


def test_a_warm_copy_past_its_park_expiry_is_dropped(signer: tuple[_Node, str, str, mpc.Client]) -> None:
    """No decoded state outlives its park: an expired copy is neither used nor kept."""
    node, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    warm_cache._WARM[(node.key, signing.sid)].expires = time.time() - 1
    assert "error" not in signing.step(node)
    assert node.decoded == 1  # decoded from the store instead
    warm_cache._WARM[(node.key, signing.sid)].expires = time.time() - 1
    worker._keep_warm(node.key, "another", b"v", signing.session, TTL)  # any park sweeps the expired out
    assert (node.key, signing.sid) not in warm_cache._WARM
    worker._take_warm(node.key, "another")


def test_a_warm_session_refused_at_its_take_is_refused_from_the_store_too(signer: tuple[_Node, str, str, mpc.Client]
                                                                          ) -> None:
    """Its park id found resumed already: the optimistic step's commit refuses it (nothing
    leaves) and the session ends (its row goes)."""
    node, client_id, token, phone = signer
    signing = _Signing(node, client_id, token, phone)
    warm = warm_cache._WARM[(node.key, signing.sid)]
    session: Any = warm.session
    store = node.custodian.store
    assert store.consume_park_id(session._park_id, session._parked_at, time.time() - 3600, session._park_epoch)
    outcome = signing.step(node)
    assert outcome["error"]["error"]["id"] == "STATE_INVALID" and outcome["fatal"] and "messages" not in outcome
    assert node.decoded == 0 and node.service.service.count() == 0


def _idle(lanes: LanePool) -> None:
    """Wait for the lanes' done callbacks (they may run just after ``result`` returned)."""
    deadline = time.monotonic() + 10
    while any(lanes._busy) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_lanes_send_a_key_back_to_its_worker_unless_another_is_idler() -> None:
    import multiprocessing

    lanes = LanePool(2, worker.worker_init, multiprocessing.get_context("spawn"))
    try:
        first = lanes.submit_to("s1", os.getpid).result(60)
        _idle(lanes)
        assert lanes.submit_to("s1", os.getpid).result(60) == first  # its lane is idle: back there
        _idle(lanes)
        busy = lanes.submit_to("s1", time.sleep, 1.0)  # s1's lane busy
        elsewhere = lanes.submit_to("s1", os.getpid).result(60)
        assert elsewhere != first and set(lanes._processes) == {first, elsewhere}
        busy.result(60)
        _idle(lanes)
        assert lanes.submit_to("s1", os.getpid).result(60) == elsewhere  # it moved with its last call
    finally:
        lanes.shutdown()


def test_a_key_that_moves_to_another_lane_is_evicted_from_the_one_it_left() -> None:
    """Issue 30: a session's step sent to another lane (its own was busy) leaves no stale
    decoded copy behind in the lane it left."""
    import multiprocessing

    lanes = LanePool(2, worker.worker_init, multiprocessing.get_context("spawn"), evict=worker.forget_warm)
    try:
        first = lanes.submit_to("s1", worker._keep_warm, "db", "s1", b"v1", "a session", TTL)
        first.result(60)
        home = lanes._last["s1"]
        _idle(lanes)
        assert lanes.lanes[home].submit(worker.warm_sessions, "db").result(60) == 1
        busy = lanes.submit_to("s1", time.sleep, 1.0)  # s1's lane is idle: it runs there, and is busy
        assert lanes._last["s1"] == home and lanes._busy[home] == 1
        moved = lanes.submit_to("s1", os.getpid).result(60)
        assert lanes._last["s1"] != home and moved in lanes._processes
        busy.result(60)
        _idle(lanes)
        assert lanes.lanes[home].submit(worker.warm_sessions, "db").result(60) == 0  # evicted there
    finally:
        lanes.shutdown()
