"""Issue 30, round five: a ``sign`` / ``sign_presigned`` request carries the device's first
protocol message (``"message"``); the service opens the session, steps it with that message and
commits both at once (``mpc.service.worker``: The first message in the request). The device
plays the adversary through the public API: tampered, non-canonical, other-session and
other-round messages, a message swapped after the device signed the request, the parked-session
cap and a session id in use, the same request twice, and a worker killed just before or just
after the combined commit."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.errors import InputInvalid  # noqa: E402
from mpc.service import requests, worker  # noqa: E402
from mpc.service.guard import ServiceLimits  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.service.store import ServiceStore  # noqa: E402
from mpc.storage.backends import open_store  # noqa: E402
from mpc.wire import device_auth_message  # noqa: E402
from protocols.rounds import Message  # noqa: E402
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402
from tests.mpc.test_service_warm import TTL, _copy, _Node, enrolled  # noqa: E402

__all__ = ["enrolled"]

OPERATOR_KEY = "operator-key-for-the-first-message-tests"
TIMEOUT = 60.0


@dataclasses.dataclass
class _Wallet:
    running: ServiceThread
    remote: RemoteCustodian
    client_id: str
    token: str
    phone: mpc.Client

    @property
    def service(self) -> ServiceStore:
        assert self.running.service is not None
        return self.running.service.service

    def request(self, op: str = "sign", chain: str = "ethereum", **extra: Any) -> tuple[dict[str, Any], Any]:
        """A sign request carrying the device's first message, and the device session."""
        session = self.phone.sign(chain, data_for(chain))
        (first,) = session.start()
        request = {"op": op, "client_id": self.client_id, "token": self.token,
                   "session_id": session.session_id.hex(), "chain": chain, "data": data_for(chain).hex(),
                   "message": first.to_bytes().decode("ascii"), **extra}
        return request, session

    def send(self, request: dict[str, Any], replies: int = 1) -> list[dict[str, Any]]:
        """``request`` on a raw connection, authorised by the device key; the replies decoded
        (control frames as objects, messages as ``{"message": text}``)."""
        with connect(self.running.url, open_timeout=TIMEOUT) as ws:
            frames = [send_authorised(ws, request, self.phone.device_key())]
            frames += [ws.recv(timeout=TIMEOUT) for _ in range(replies - 1)]
        return [{"message": f} if f.startswith('{"payload":') else json.loads(f) for f in frames]


@pytest.fixture(scope="module")
def wallet() -> Iterator[_Wallet]:
    """A service (cap: 2 parked sessions per client) and a client whose device generated its wallet."""
    limits = ServiceLimits(max_parked_per_client=2, client_rate=1000.0, client_burst=1000, ip_rate=1000.0, ip_burst=1000)
    with ServiceThread(":memory:", session_ttl=120, operator_key=OPERATOR_KEY, limits=limits) as running:
        remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        client_id, token = remote.create_client()
        phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=mpc.backup.methods.MemoryCloudStorage())
        remote.generate(phone, token)
        yield _Wallet(running, remote, client_id, token, phone)


def _error(reply: dict[str, Any]) -> str:
    return str(reply["error"]["id"])


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
def test_a_sign_carrying_its_first_message_completes_and_verifies(
        wallet: _Wallet, monkeypatch: pytest.MonkeyPatch, chain: str) -> None:
    """The device's client sends its first message in the request: the open got it, no step
    frame repeats it, and the signature verifies."""
    opened: list[Any] = []
    stepped: list[bytes] = []
    open_operation, step = worker.open_operation, worker.step
    monkeypatch.setattr(worker, "open_operation", lambda *a: opened.append(a[-1]) or open_operation(*a))
    monkeypatch.setattr(worker, "step", lambda *a: stepped.append(a[4]) or step(*a))
    data = data_for(chain, b"first message in the request")
    result, custodian_result = wallet.remote.sign(wallet.phone, wallet.token, chain, data)
    verify_result(result, data)
    assert custodian_result == result
    assert len(opened) == 1 and isinstance(opened[0], bytes)
    first = Message.from_bytes(opened[0])
    assert first.round == 1 and stepped and all(Message.from_bytes(f).round > first.round for f in stepped)


def test_an_older_custodian_refusing_the_field_gets_the_message_after_ready(
        wallet: _Wallet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A custodian before this change refuses the unknown field (``INPUT_INVALID``, nothing
    opened): the device opens again at once without it and sends its message after ``ready``."""
    opened: list[Any] = []
    open_operation = worker.open_operation

    def older(op: str, request: dict[str, Any]) -> None:
        if "message" in request:
            raise InputInvalid("unknown request fields: message")

    monkeypatch.setattr(requests, "first_message", older)
    monkeypatch.setattr(worker, "open_operation", lambda *a: opened.append(a[-1]) or open_operation(*a))
    data = data_for("ethereum", b"an older custodian")
    verify_result(wallet.remote.sign(wallet.phone, wallet.token, "ethereum", data)[0], data)
    assert opened == [None]


def _tampered(field: str) -> Any:
    """The message with its payload's ``field`` changed (still canonical JSON)."""
    def tamper(text: str) -> str:
        document = json.loads(text)
        value = document["payload"][field]
        document["payload"][field] = value[:-1] + ("0" if value[-1] != "0" else "1")
        return _canonical(document)
    return tamper


def _other_round(text: str) -> str:
    document = json.loads(text)
    document["round"] += 1
    return _canonical(document)


def _other_session(wallet: _Wallet) -> str:
    (message,) = wallet.phone.sign("ethereum", data_for("ethereum")).start()
    return message.to_bytes().decode("ascii")


BAD_MESSAGES = {  # how a bad first message is made, and whether it is refused as a message (not the protocol)
    "tampered-Q1": (_tampered("Q1"), False),
    "tampered-digest": (_tampered("digest"), False),
    "tampered-hello": (_tampered("hello"), False),
    "non-canonical": (lambda text: text.replace(",", ", ", 1), True),
    "other-round": (_other_round, True),
    "not-a-message": (lambda text: '{"payload":{}}', True),
    "non-ascii": (lambda text: text[:-1] + "\u00e9}", True),
    "not-a-string": (lambda text: 7, True),
}


def _as_frame(wallet: _Wallet, request: dict[str, Any]) -> str:
    """The error a first *frame* gets for ``request``'s message (opened without it)."""
    opening = {key: value for key, value in request.items() if key != "message"}
    with connect(wallet.running.url, open_timeout=TIMEOUT) as ws:
        assert "ready" in json.loads(send_authorised(ws, opening, wallet.phone.device_key()))
        ws.send(request["message"])
        reply = json.loads(ws.recv(timeout=TIMEOUT))
        if wallet.service.is_parked(request["session_id"]):  # kept after MESSAGE_INVALID: give it up
            ws.send('{"abort":true}')
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)  # closed once the abort's step freed the session
    assert not wallet.service.is_parked(request["session_id"])
    return _error(reply)


@pytest.mark.parametrize("how", [*BAD_MESSAGES, "other-session"])
def test_a_bad_first_message_is_refused_and_parks_nothing(wallet: _Wallet, how: str) -> None:
    """A message that is not this session's canonical first message is ``MESSAGE_INVALID``; one
    the protocol refuses gets the error a first frame would get; either way the request fails
    and nothing is parked, so the cap is not consumed (it is 2: three refusals, then a sign)."""
    before = wallet.service.count()
    make, framing = BAD_MESSAGES.get(how, (None, True))
    answers = set()
    for _ in range(3):
        request, _ = wallet.request()
        request["message"] = _other_session(wallet) if make is None else make(request["message"])
        (reply,) = wallet.send(request)
        answers.add(_error(reply))
        assert not wallet.service.is_parked(request["session_id"])
    assert wallet.service.count() == before and len(answers) == 1
    if framing:
        assert answers == {"MESSAGE_INVALID"}
    if isinstance(request["message"], str):
        request, _ = wallet.request()
        request["message"] = _other_session(wallet) if make is None else make(request["message"])
        assert answers == {_as_frame(wallet, request)}
    data = data_for("ethereum", b"after the refusals")
    verify_result(wallet.remote.sign(wallet.phone, wallet.token, "ethereum", data)[0], data)


def test_a_message_swapped_after_the_device_signed_is_refused(wallet: _Wallet) -> None:
    """The device key signed the request with its message; the same request with another
    message (a man in the middle's) fails the device check: ``AUTH_FAILED``, nothing parked."""
    signed, _ = wallet.request()
    swapped = {**signed, "message": _other_session(wallet)}
    with connect(wallet.running.url, open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps(swapped))
        challenge = bytes.fromhex(json.loads(ws.recv(timeout=TIMEOUT))["challenge"])
        key = wallet.phone.device_key()
        ws.send(json.dumps({"device_sig": key.sign(device_auth_message(challenge, signed)).hex()}))
        reply = json.loads(ws.recv(timeout=TIMEOUT))
    assert _error(reply) == "AUTH_FAILED" and not wallet.service.is_parked(signed["session_id"])


def test_a_message_on_an_operation_that_cannot_carry_it_is_refused(wallet: _Wallet) -> None:
    request, _ = wallet.request()
    presign = {key: request[key] for key in ("client_id", "token", "session_id", "message")}
    (reply,) = wallet.send({**presign, "op": "presign", "count": 1})
    assert _error(reply) == "INPUT_INVALID" and "message" in reply["error"]["message"]
    assert not wallet.service.is_parked(request["session_id"])


def test_the_cap_and_a_session_id_in_use_still_refuse(wallet: _Wallet) -> None:
    """Two sessions parked (the cap): a third sign with its message is ``RATE_LIMITED`` and
    parks nothing; a session id parked as another operation is ``INPUT_INVALID``."""
    parked = [wallet.request() for _ in range(2)]
    for request, _ in parked:
        ready, reply = wallet.send(request, replies=2)
        assert ready["ready"]["expect"] == 3 and "message" in reply  # round 2 answered it
    third, _ = wallet.request()
    (reply,) = wallet.send(third)
    assert _error(reply) == "RATE_LIMITED" and not wallet.service.is_parked(third["session_id"])
    _abort(wallet, parked[1][0])  # a place comes back: the id check answers, not the cap
    request, _ = parked[0]
    (reply,) = wallet.send({**request, "op": "sign_presigned"})
    assert _error(reply) == "INPUT_INVALID" and "in use" in reply["error"]["message"]
    _abort(wallet, request)
    (reply,) = wallet.send({**request, "op": "sign_presigned"})  # not parked any more: opened afresh
    assert reply.get("ready", {}).get("expect") == 3


def test_an_open_checks_in_one_statement_before_and_one_inside_its_transaction(
        wallet: _Wallet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 30, round seven: the open carrying its first message reads its checks (the
    committed-already check, the cap, the id in use; again under the client's lock with the
    nonce epoch) in one statement each, and nothing else of them: no ``peek``, ``is_parked``,
    ``parked_count`` or epoch read of their own; the state is parked tagged with the store's epoch."""
    store = wallet.service.store
    texts: list[str] = []
    execute = store._execute
    monkeypatch.setattr(store, "_execute", lambda sql, args=(): texts.append(sql) or execute(sql, args))
    request, _ = wallet.request()
    ready, reply = wallet.send(request, replies=2)
    monkeypatch.undo()
    assert ready["ready"]["expect"] == 3 and "message" in reply
    checks = [text for text in texts if text.startswith("SELECT COUNT(*), MIN(p.expires)")]
    assert len(checks) == 2 and "nonce_epoch" not in checks[0] and "nonce_epoch" in checks[1]
    assert "session_devices WHERE session_id = ? AND client_id = ?" in checks[0]
    own_reads = ("SELECT value FROM meta WHERE key = 'nonce_epoch'", "SELECT 1 FROM parked_sessions",
                 "SELECT session_id, client_id, operation, data, outbox", "SELECT device_public, pending FROM")
    assert not [text for text in texts if text.startswith(own_reads)], texts
    parked = wallet.service.peek(request["session_id"])
    assert parked is not None and parked.epoch == store.nonce_epoch()
    _abort(wallet, request)


def _abort(wallet: _Wallet, request: dict[str, Any]) -> None:
    """The device gives the session of ``request`` up (resume, then the abort frame)."""
    with connect(wallet.running.url, open_timeout=TIMEOUT) as ws:
        resume = {key: request[key] for key in ("client_id", "token", "session_id")}
        assert "ready" in json.loads(send_authorised(ws, {**resume, "op": "resume"}, wallet.phone.device_key()))
        ws.recv(timeout=TIMEOUT)  # the replayed message
        ws.send('{"abort":true}')
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)  # closed once the abort's step freed the session
    assert not wallet.service.is_parked(request["session_id"])


def test_the_same_request_twice_answers_the_committed_step(wallet: _Wallet) -> None:
    """The request's reply was lost and the device sends it again (a new challenge, the same
    request): the service answers ready and the very messages it committed, never a second
    run; the device then completes the sign on a resume."""
    request, session = wallet.request()
    first = wallet.send(request, replies=2)
    again = wallet.send(request, replies=2)
    assert first[1:] == again[1:] and first[0]["ready"] == again[0]["ready"] == {
        "session_id": request["session_id"], "expect": 3}
    replies = session.receive(Message.from_bytes(first[1]["message"].encode()))
    with connect(wallet.running.url, open_timeout=TIMEOUT) as ws:
        resume = {key: request[key] for key in ("client_id", "token", "session_id")}
        assert "ready" in json.loads(send_authorised(ws, {**resume, "op": "resume"}, wallet.phone.device_key()))
        ws.recv(timeout=TIMEOUT)  # the replayed message: processed already
        while True:
            for reply in replies:
                ws.send(reply.to_bytes().decode("ascii"))
            frame = ws.recv(timeout=TIMEOUT)
            if not frame.startswith('{"payload":'):
                break
            replies = session.receive(Message.from_bytes(frame.encode()))
        result = json.loads(frame)["result"]
    assert result["signature"] == session.result().signature.hex()
    verify_result(session.result(), data_for("ethereum"))


# --- a worker killed around the combined commit -------------------------------------------------------
def _open_then_die(db: str, client_id: str, device_public: bytes, session_id: str, data: bytes, frame: bytes,
                   after_commit: bool) -> None:
    """In a worker process of its own: the open runs with the first message and the process is
    killed (SIGKILL) inside its transaction (before the commit), or just after the commit."""
    def die(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    if after_commit:
        worker._keep_warm = die  # type: ignore[assignment]  # right after the commit
    else:
        ServiceStore.bind_session = die  # type: ignore[method-assign]  # inside the transaction
    worker.open_operation(db, "sign", client_id, {"chain": "ethereum", "data": data}, session_id, TTL, 8,
                          device_public, False, frame)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_worker_killed_around_the_combined_commit(enrolled: tuple[Path, str, str, mpc.Client], tmp_path: Path,
                                                    after_commit: bool) -> None:
    """Killed before its commit: nothing is parked and the retry (``reopen``, as the service
    runs it after a dead worker) opens afresh with the message. Killed after it: the session is
    parked with the step's messages, and the retry answers exactly those (never a second run)."""
    db, client_id, token, phone = _copy(enrolled, tmp_path)
    node = _Node(open_store(db))
    try:
        data = data_for("ethereum", b"killed around the commit")
        session = phone.sign("ethereum", data)
        sid, (first,) = session.session_id.hex(), session.start()
        public = phone.device_key().public
        process = multiprocessing.get_context("spawn").Process(
            target=_open_then_die, args=(db, client_id, public, sid, data, first.to_bytes(), after_commit))
        process.start()
        process.join(120)
        assert process.exitcode == -signal.SIGKILL
        parked = node.service.service.peek(sid)
        assert (parked is not None) == after_commit
        committed = None if parked is None else list(parked.outbox)
        again = worker.reopen(node.key, "sign", client_id, {"chain": "ethereum", "data": data}, sid, TTL, 8, public,
                              False, first.to_bytes())
        assert "error" not in again and again["expect"] == 3
        if committed is not None:
            assert again["messages"] == committed
        outbox = [m for text in again["messages"] for m in session.receive(Message.from_bytes(text.encode()))]
        while outbox:
            outcome = worker.step(node.key, client_id, token, sid, outbox.pop(0).to_bytes(), TTL)
            assert "error" not in outcome, outcome
            for text in outcome["messages"]:
                outbox += session.receive(Message.from_bytes(text.encode()))
        assert session.done and outcome["result"]["signature"] == session.result().signature.hex()
        verify_result(session.result(), data)
    finally:
        node.close()
