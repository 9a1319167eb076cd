"""The device-side client's retries (``mpc.remote.blocking``, ``mpc.remote.channel``): connections cut or
silent before ``ready``, a cut while the custodian steps the session, a service restart, refusals
that are retried (``RATE_LIMITED``, 1013) and answers that are not."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
import mpc.service.results as results_module  # noqa: E402
import mpc.service.worker as worker_module  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import (  # noqa: E402
    AuthFailed,
    ConfigInvalid,
    EngineError,
    InputInvalid,
    NotFound,
    OperationInProgress,
    RateLimited,
    ServiceUnavailable,
)
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.remote.channel import OperationChannel  # noqa: E402
from mpc.remote.retries import Backoff, RetryPolicy  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.service.guard import ServiceLimits  # noqa: E402
from mpc.service.store import ServiceStore  # noqa: E402
from protocols.rounds import Message  # noqa: E402
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402
from tests.mpc.cut_proxy import CutProxy  # noqa: E402

OPERATOR_KEY = "client-retry-tests-operator-key-0123456789"


def device(client_id: str, cloud: MemoryCloudStorage | None = None) -> mpc.Client:
    return mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud or MemoryCloudStorage())


@pytest.fixture
def server() -> Iterator[ServiceThread]:
    with ServiceThread(":memory:", session_ttl=60, operator_key=OPERATOR_KEY, executor="thread") as running:
        yield running


@pytest.fixture
def proxy(server: ServiceThread) -> Iterator[CutProxy]:
    with CutProxy(server.port) as running:
        yield running


def remote_at(url: str, **options: Any) -> RemoteCustodian:
    options.setdefault("operator_key", OPERATOR_KEY)
    options.setdefault("keep_alive", False)  # the cut plans apply per connection (kept connections: test_remote_keep_alive)
    return RemoteCustodian(url, **options)


def parked(server: ServiceThread) -> int:
    return server.service.service.count()  # type: ignore[union-attr]


# --- a connection lost before ready ---------------------------------------------------------------------
@pytest.mark.parametrize("plan", ["drop-request", "drop-ready", "stall-ready"])
def test_an_operation_whose_ready_never_arrived_is_resumed_or_opened_again(
        server: ServiceThread, proxy: CutProxy, plan: str) -> None:
    client_id, token = remote_at(server.url).create_client()
    phone = device(client_id)
    remote = remote_at(proxy.url, ready_timeout=1.0)
    for operation in ("generate", "sign"):
        before = proxy.connections
        proxy.plan(plan)
        start = time.monotonic()
        if operation == "generate":
            addresses, view = remote.generate(phone, token)
            assert view["addresses"] == addresses and view["signing_share_status"] == "STORED_CLIENT"
        else:
            data = data_for("ethereum")
            verify_result(remote.sign(phone, token, "ethereum", data)[0], data)
        elapsed = time.monotonic() - start
        assert proxy.triggered[-1] == plan
        # drop-request: resume (NOT_FOUND), then the operation again; drop/stall-ready: resume.
        assert proxy.connections - before == (3 if plan == "drop-request" else 2)
        assert elapsed < 20, elapsed  # not minutes: the ready timeout is 1 s
    assert parked(server) == 0 and server.service.custodian.store.client(client_id).operation is None  # type: ignore[union-attr]


def test_a_silent_connection_is_given_up_after_the_ready_timeout_not_minutes(server: ServiceThread,
                                                                               proxy: CutProxy) -> None:
    client_id, token = remote_at(server.url).create_client()
    remote = remote_at(proxy.url, ready_timeout=0.5, retry_budget=1.0)
    proxy.plan(*["stall-reply"] * 10)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="timed out"):
        remote.get_client(client_id, token)
    assert time.monotonic() - start < 10


# --- a cut while the custodian steps the session ------------------------------------------------------------
@pytest.mark.parametrize("committed", [False, True], ids=["cut-before-commit", "cut-after-commit"])
def test_a_cut_during_a_step_is_resumed_from_the_parked_session(
        server: ServiceThread, proxy: CutProxy, monkeypatch: pytest.MonkeyPatch, committed: bool) -> None:
    """The network drops while a worker runs a sign step (issue 30, round four: an optimistic
    step leaves the row parked until its one commit). Cut before the commit: the client's resume
    finds the session parked as it was and resends; the resent step commits and the first one's
    commit finds the row changed (its answer, to the dead connection, is NOT_FOUND). Cut after
    the commit: the resume hands the committed step's messages. Either way the resume is ready
    at once (never "stepping") and the signature completes."""
    client_id, token = remote_at(server.url).create_client()
    phone = device(client_id)
    remote_at(server.url).generate(phone, token)
    commit = ServiceStore.commit_step
    armed = threading.Event()
    lost: list[Any] = []
    finished = threading.Semaphore(0)  # a first run's late commit is done

    def cut_commit(self: ServiceStore, *args: Any, **kwargs: Any) -> Any:
        if not armed.is_set():
            return commit(self, *args, **kwargs)
        armed.clear()
        done = commit(self, *args, **kwargs) if committed else None
        proxy.cut()  # the network drops while a worker holds the step
        time.sleep(1.5)  # the client resumes (and resends) meanwhile
        if committed:
            return done
        lost.append(commit(self, *args, **kwargs))
        finished.release()
        return lost[-1]

    resumes: list[str] = []
    resume_channel = worker_module.resume_channel

    def recorded(*args: Any) -> dict[str, Any]:
        outcome = resume_channel(*args)
        resumes.append(outcome["error"]["error"]["id"] if "error" in outcome else "ready")
        return outcome

    monkeypatch.setattr(ServiceStore, "commit_step", cut_commit)
    monkeypatch.setattr(worker_module, "resume_channel", recorded)
    remote = remote_at(proxy.url)
    for chain in ("ethereum", "solana"):
        data = data_for(chain)
        armed.set()
        resumes.clear()
        result, custodian_result = remote.sign(phone, token, chain, data)
        verify_result(result, data)
        assert custodian_result == result and custodian_result.to_json()["signature"] == result.signature.hex()
        # Resumed at once from the parked row; but solana's first step after the open (which
        # carries the device's first message: issue 30, round five) is its last: cut after its
        # commit, the resume finds the row gone and the kept result is handed over (issue 26).
        finished_by_it = committed and chain == "solana"
        assert not armed.is_set() and resumes == (["NOT_FOUND"] if finished_by_it else ["ready"]), resumes
    for _ in range(0 if committed else 2):
        assert finished.acquire(timeout=30)
    assert lost == ([] if committed else [None, None])  # the first run of each resent step lost its commit
    assert parked(server) == 0


# --- the result frame of a recover or eject lost ----------------------------------------------------------------
def _resume_reply(url: str, client_id: str, token: str, session_id: str, device: mpc.Client) -> dict[str, Any]:
    with connect(url, open_timeout=10) as ws:
        request = {"op": "resume", "client_id": client_id, "token": token, "session_id": session_id}
        return dict(json.loads(send_authorised(ws, request, device.device_key())))


def cut_after_the_result_is_kept(monkeypatch: pytest.MonkeyPatch, proxy: CutProxy) -> list[str]:
    """From now on, a finished operation's connections are cut as the custodian keeps its result
    (``results.keep``: in the transaction that commits a sign's last step, or after a recover's
    or eject's; its result frame never arrives); returns the list the kept session ids go to."""
    keep = results_module.keep
    sessions: list[str] = []

    def keep_then_cut(store: Any, session_id: str, *args: Any) -> None:
        keep(store, session_id, *args)
        sessions.append(session_id)
        proxy.cut()

    monkeypatch.setattr(results_module, "keep", keep_then_cut)
    return sessions


@pytest.mark.parametrize("operation", ["recover", "eject"])
def test_a_lost_result_of_recover_or_eject_is_fetched_once_with_the_old_token(
        server: ServiceThread, proxy: CutProxy, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    client_id, token = remote_at(server.url).create_client()
    cloud = MemoryCloudStorage()
    phone = device(client_id, cloud)
    addresses, _ = remote_at(server.url).generate(phone, token)
    remote_at(server.url).backup(phone, token)
    sessions = cut_after_the_result_is_kept(monkeypatch, proxy)  # new token issued, result frame lost
    target = device(client_id, cloud) if operation == "recover" else phone  # eject: the registered device
    method = getattr(remote_at(proxy.url), operation)
    result, view = method(target, token)
    assert len(sessions) == 1 and view["token"] != token
    if operation == "recover":
        assert result == addresses
    else:
        assert result.secp256k1_public_key.hex() == view["public_keys"]["secp256k1"]
    assert remote_at(server.url).get_client(client_id, view["token"], device=target)["client_id"] == client_id
    with pytest.raises(AuthFailed):
        remote_at(server.url).get_client(client_id, token, device=target)
    # Once only; and never for a wrong token or another session id.
    # the old token, once the result was handed out: dead, and the answer says a recover/eject replaced it
    reply = _resume_reply(server.url, client_id, token, sessions[0], target)
    assert reply.get("error", {}).get("id") == "AUTH_TOKEN_REPLACED", reply
    reply = _resume_reply(server.url, client_id, view["token"], sessions[0], target)
    assert reply.get("error", {}).get("id") == "NOT_FOUND", reply


def test_a_lost_result_is_not_handed_out_once_the_operator_issued_a_token(
        server: ServiceThread, proxy: CutProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpc.service import results as finished_results

    admin = remote_at(server.url)
    client_id, token = admin.create_client()
    cloud = MemoryCloudStorage()
    phone = device(client_id, cloud)
    admin.generate(phone, token)
    admin.backup(phone, token)
    keep = worker_module.keep_finished
    kept: list[tuple[Any, str]] = []

    def keep_then_cut(service: Any, session_id: str, *args: Any) -> None:
        keep(service, session_id, *args)
        kept.append((service.store, session_id))
        proxy.cut()
        service.replace_token(client_id)  # the operator's issue_token came first

    monkeypatch.setattr(worker_module, "keep_finished", keep_then_cut)
    with pytest.raises(AuthFailed):
        remote_at(proxy.url).recover(device(client_id, cloud), token)
    assert proxy.connections == 2  # the operation, then one resume answered AUTH_FAILED: not retried
    store, session_id = kept[0]
    assert finished_results.take(store, session_id, client_id, token) is None  # taken and refused: gone
    assert finished_results.take(store, session_id, client_id, "x" * 43) is None


# --- a restart ------------------------------------------------------------------------------------------------
def test_a_service_restarted_after_3_s_on_the_same_database_finishes_the_operation(tmp_path: Path) -> None:
    db = str(tmp_path / "custodian.sqlite3")
    first = ServiceThread(db, executor="thread", operator_key=OPERATOR_KEY).start()
    port = first.port
    servers = [first]
    remote = remote_at(first.url)  # the default budget (30 s)
    client_id, token = remote.create_client()
    phone = device(client_id)
    restarted = threading.Event()

    def restart_later() -> None:
        time.sleep(3.0)
        servers.append(ServiceThread(db, port=port, executor="thread", operator_key=OPERATOR_KEY).start())
        restarted.set()

    def stop_between_rounds(received: int) -> None:
        if received == 2:
            servers[0].stop()
            threading.Thread(target=restart_later, daemon=True).start()

    try:
        start = time.monotonic()
        addresses, view = remote.run("generate", phone.generate(), client_id, token, on_message=stop_between_rounds)
        elapsed = time.monotonic() - start
        assert restarted.is_set() and view["addresses"] == addresses
        assert 3.0 <= elapsed < 20, elapsed
        data = data_for("bitcoin")
        verify_result(remote.sign(phone, token, "bitcoin", data)[0], data)
        assert servers[-1].service.service.count() == 0  # type: ignore[union-attr]
    finally:
        for running in servers:
            running.stop()


def test_a_service_down_beyond_the_budget_is_service_unavailable(tmp_path: Path) -> None:
    with ServiceThread(":memory:", operator_key=OPERATOR_KEY) as running:
        url = running.url
    remote = remote_at(url, retry_budget=1.0)
    start = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="gave up after"):
        remote.get_client("someone", "token")
    assert time.monotonic() - start < 4  # retried (backoff from 0.1 s) until a retry would pass 1 s
    with pytest.raises(ServiceUnavailable):  # no retries at all
        remote_at(url, retry_budget=0).create_client()


# --- refusals that are retried, answers that are not ----------------------------------------------------------
def test_rate_limited_and_busy_refusals_are_retried_after_their_hint() -> None:
    limits = ServiceLimits(client_rate=1.0, client_burst=2, max_connections=1)
    with ServiceThread(":memory:", operator_key=OPERATOR_KEY, limits=limits) as running:
        remote = remote_at(running.url)
        client_id, token = remote.create_client()
        start = time.monotonic()
        for _ in range(3):  # the third is refused (retry after 1 s), then served
            assert remote.get_client(client_id, token)["client_id"] == client_id
        assert 0.5 < time.monotonic() - start < 6
        with pytest.raises(RateLimited):  # without retries the refusal surfaces
            for _ in range(3):
                remote_at(running.url, retry_budget=0).get_client(client_id, token)
        with connect(running.url, open_timeout=10) as held:  # the one connection allowed: others get 1013
            threading.Timer(1.0, held.close).start()
            start = time.monotonic()
            assert remote.get_client(client_id, token)["client_id"] == client_id
            assert 0.5 < time.monotonic() - start < 8


def test_a_rate_limit_hint_beyond_the_budget_surfaces_at_once() -> None:
    limits = ServiceLimits(client_rate=0.05, client_burst=1)  # retry after 20 s
    with ServiceThread(":memory:", operator_key=OPERATOR_KEY, limits=limits) as running:
        remote = remote_at(running.url, retry_budget=5.0)
        client_id, token = remote.create_client()
        remote.get_client(client_id, token)
        start = time.monotonic()
        with pytest.raises(RateLimited) as refused:
            remote.get_client(client_id, token)
        assert refused.value.retry_after is not None and refused.value.retry_after > 5
        assert time.monotonic() - start < 3


def test_answers_that_say_the_request_failed_are_never_retried(server: ServiceThread, proxy: CutProxy) -> None:
    client_id, token = remote_at(server.url).create_client()
    phone = device(client_id)
    remote_at(server.url).generate(phone, token)
    remote = remote_at(proxy.url)  # the default 30 s budget; every connection goes through the proxy
    failures: list[tuple[type[EngineError], Any]] = [
        (AuthFailed, lambda: remote.get_client(client_id, "x" * 43)),
        (AuthFailed, lambda: remote.sign(phone, "x" * 43, "ethereum", data_for("ethereum"))),
        (AuthFailed, lambda: remote.generate(device(client_id), token)),  # another device's key
        (InputInvalid, lambda: remote.run("sign", phone.presign(1), client_id, token,
                                          {"chain": "dogecoin", "data": "00"})),
        (NotFound, lambda: remote.get_client("no-such-client")),
    ]
    for expected, call in failures:
        before = proxy.connections
        with pytest.raises(expected):
            call()
        assert proxy.connections == before + 1, expected  # one attempt, no retry
    # An operation of this client abandoned mid-way holds its lock: OPERATION_IN_PROGRESS at once.
    session = phone.backup()
    with connect(server.url, open_timeout=10) as ws:
        assert "ready" in json.loads(send_authorised(ws, {
            "op": "backup", "session_id": session.session_id.hex(), "client_id": client_id, "token": token,
            "method": "CLOUD", "client_stores_backup": False}, phone.device_key()))
        for message in session.start():
            ws.send(message.to_bytes().decode())
        challenge = Message.from_bytes(ws.recv(timeout=10).encode())  # the custodian's nonce
        for message in session.receive(challenge):  # the proof of possession, the resharing's start
            ws.send(message.to_bytes().decode())
        ws.recv(timeout=10)  # the custodian answered: parked, holding the client's lock
    before = proxy.connections
    with pytest.raises(OperationInProgress):
        remote.backup(phone, token)
    assert proxy.connections == before + 1
    assert server.service.purge(time.time() + 3600) == 1  # type: ignore[union-attr]


def test_a_lost_reply_to_create_client_is_not_sent_again(server: ServiceThread, proxy: CutProxy) -> None:
    proxy.plan("drop-reply")
    with pytest.raises(ServiceUnavailable, match="may or may not have been processed"):
        remote_at(proxy.url).create_client()
    assert proxy.connections == 1
    proxy.plan("drop-reply")
    client_id, token = remote_at(server.url).create_client()
    assert remote_at(proxy.url).get_client(client_id, token)["client_id"] == client_id  # idempotent: retried
    assert proxy.connections == 3


# --- the state machine and the backoff, without a service ------------------------------------------------------
class _FakeSession:
    """Just what ``OperationChannel`` reads of a device session."""

    def __init__(self) -> None:
        self.session_id = bytes(range(32))
        self.done = False
        self.awaiting_round: int | None = 2
        self.hello = Message("test", self.session_id, 1, 1, 2, {"hello": "x"})

    def start(self) -> list[Message]:
        return [self.hello]


def test_hostile_custodian_frames_fail_typed_and_leave_the_channel_usable() -> None:
    """The device side of strict decoding: a control frame nested deeper than any answer
    (``MAX_ANSWER_DEPTH``, checked before the parser runs) or not text is a malformed frame
    (``EngineError``; 100 000 levels crashed the process where the recursion limit was raised, a
    ``RecursionError`` elsewhere), and a frame that looks like a
    message but is not ASCII is ``InvalidMessage`` (a ``UnicodeEncodeError`` before); neither
    changes the channel."""
    from mpc.remote.channel import parse_control
    from protocols.errors import InvalidMessage

    from mpc.wire import MAX_ANSWER_DEPTH

    deepest = '{"a":' * (MAX_ANSWER_DEPTH - 2) + "{}" + "}" * (MAX_ANSWER_DEPTH - 2)  # in {"result": ...}: the limit
    assert parse_control('{"result":' + deepest + "}")["result"]["a"]["a"] is not None  # as deep as answers may be
    for frame in ("[" * 100_000 + "]" * 100_000, '{"ready":' * 100_000, '{"result":[' + deepest + "]}",
                  b'{"ready":{}}'):
        with pytest.raises(EngineError, match="malformed frame"):
            parse_control(frame)
    channel = OperationChannel("sign", _FakeSession(), "c", "t", {}, RetryPolicy())  # type: ignore[arg-type]
    channel.start()
    produced = list(channel.produced)
    frame = '{"payload":{"x":"\u00e9"}}'
    assert channel.is_message(frame)
    with pytest.raises(InvalidMessage, match="ASCII"):
        channel.deliver(frame)
    with pytest.raises(InvalidMessage, match="text frame"):
        channel.deliver(b'{"payload":{}}')  # type: ignore[arg-type]
    assert channel.received == 0 and channel.produced == produced


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _closed() -> BaseException:
    from websockets.exceptions import ConnectionClosedError

    return ConnectionClosedError(None, None)


def test_the_channel_decides_resume_reopen_and_when_to_give_up() -> None:
    clock = _Clock()
    policy = RetryPolicy(budget=30, first_delay=0.1, max_delay=1.0, step_wait=5)
    channel = OperationChannel("sign", _FakeSession(), "c", "t", {"chain": "solana"}, policy, clock)  # type: ignore[arg-type]
    channel.start()
    channel.connecting()
    assert json.loads(channel.request())["op"] == "sign"
    channel.retry(_closed())  # lost after the request was sent: did the service open it?
    assert channel.next_request == "resume"
    channel.connecting()
    channel.request()
    channel.retry(NotFound("no such session"))  # never opened: open again, same session id
    assert channel.next_request == "open"
    channel.connecting()
    assert json.loads(channel.request())["session_id"] == bytes(range(32)).hex()
    channel.retry(OperationInProgress())  # maybe our own first open's lock: one resume decides
    assert channel.next_request == "resume"
    channel.connecting()
    channel.request()
    with pytest.raises(OperationInProgress):  # not ours
        channel.retry(NotFound("no such session"))

    channel = OperationChannel("sign", _FakeSession(), "c", "t", {}, policy, clock)  # type: ignore[arg-type]
    channel.start()
    channel.connecting()
    channel.request()
    assert channel.ready(json.dumps({"ready": {"session_id": "x", "expect": 1}})) == [channel.session.hello]
    channel.retry(_closed())
    channel.connecting()
    channel.request()
    assert channel.ready(json.dumps({"ready": {"expect": 2}})) == []  # round 1 was processed: nothing resent
    channel.retry(NotFound())  # the step is in flight
    for _ in range(3):
        clock.now += 2
        channel.connecting()
        channel.request()
        if clock.now - 100 < 5:
            assert channel.retry(NotFound()) > 0
        else:
            with pytest.raises(NotFound, match="cannot be resumed"):
                channel.retry(NotFound())
    for fatal in (AuthFailed(), InputInvalid("bad"), mpc.errors.ProtocolAborted("abort")):
        with pytest.raises(type(fatal)):
            channel.retry(fatal)

    # A message resent after resume may have been processed meanwhile (the old connection's
    # buffered frames): MESSAGE_INVALID then resumes again, a bounded number of times.
    channel = OperationChannel("sign", _FakeSession(), "c", "t", {}, policy, clock)  # type: ignore[arg-type]
    channel.start()
    for _ in range(2):
        channel.connecting()
        channel.request()
        channel.ready(json.dumps({"ready": {"expect": 1}}))
        channel.retry(_closed())
    with pytest.raises(mpc.errors.MessageInvalid):  # not after a fresh open: nothing was resent
        OperationChannel("sign", _FakeSession(), "c", "t", {}, policy, clock).retry(  # type: ignore[arg-type]
            mpc.errors.MessageInvalid())
    for attempt in range(4):
        channel.connecting()
        channel.request()
        assert channel.ready(json.dumps({"ready": {"expect": 1}})) == [channel.session.hello]  # resent
        if attempt < 3:
            assert channel.retry(mpc.errors.MessageInvalid("duplicate")) > 0
            assert channel.next_request == "resume"
        else:
            with pytest.raises(mpc.errors.MessageInvalid):
                channel.retry(mpc.errors.MessageInvalid("duplicate"))


def test_backoff_grows_with_jitter_honours_hints_and_stops_at_the_budget() -> None:
    clock = _Clock()
    backoff = Backoff(RetryPolicy(budget=10, first_delay=0.2, max_delay=1.0), clock)
    failure = ServiceUnavailable("down")
    for ceiling in (0.2, 0.4, 0.8, 1.0, 1.0):
        wait = backoff.delay(failure)
        assert ceiling / 2 <= wait <= ceiling
        clock.now += wait
    assert backoff.delay(failure, hint=3.0) >= 3.0
    clock.now = 100 + 9.9
    with pytest.raises(ServiceUnavailable, match="gave up after 6 retries"):
        backoff.delay(failure)
    capped = Backoff(RetryPolicy(max_retries=1), clock)
    capped.delay(failure)
    with pytest.raises(ServiceUnavailable):
        capped.delay(failure)
    with pytest.raises(RateLimited):  # a hint beyond the budget: at once
        Backoff(RetryPolicy(budget=5), clock).delay(RateLimited("slow; retry after 9 s"), hint=9.0)
    for bad in ({"budget": -1}, {"first_delay": float("inf")}, {"max_retries": -1}, {"first_delay": 2, "max_delay": 1}):
        with pytest.raises(ConfigInvalid):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigInvalid):
        RemoteCustodian("ws://127.0.0.1:1", ready_timeout=0)


def test_client_modules_draw_jitter_from_secrets_not_random() -> None:
    import mpc.remote.blocking
    import mpc.remote.aio
    import mpc.remote.channel
    import mpc.remote.retries

    for module in (mpc.remote.blocking, mpc.remote.aio, mpc.remote.channel, mpc.remote.retries):
        source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
        assert "import random" not in source and "from random" not in source


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_finished_results_are_sealed_single_use_and_need_the_old_token(backend: str,
                                                                        request: pytest.FixtureRequest) -> None:
    from mpc.service import results as finished_results
    from mpc.service.store import hash_token

    custodian = mpc.Custodian(request.getfixturevalue("postgres_store")) if backend == "postgres" else mpc.Custodian()
    service = ServiceStore(custodian.store)
    client_id = custodian.create_client()
    old, issued = "old-token-" + "a" * 33, "issued-token-" + "b" * 30
    service.set_token(client_id, issued)
    session_id = "ab" * 32
    outcome = {"messages": ['{"payload":{}}'], "result": {"client_id": client_id, "token": issued}}
    finished_results.keep(custodian.store, session_id, client_id, old, outcome, ttl=60)
    stored = custodian.store._execute("SELECT data FROM finished_results").fetchone()[0]
    assert issued.encode() not in bytes(stored) and b"payload" not in bytes(stored)  # sealed, no token kept
    for wrong in ((session_id, client_id, issued), (session_id, "someone-else", old), ("cd" * 32, client_id, old)):
        assert finished_results.take(custodian.store, *wrong) is None
    fetched = finished_results.take(custodian.store, session_id, client_id, old)
    assert fetched is not None and fetched["messages"] == outcome["messages"]
    fresh = fetched["result"]["token"]
    assert fresh not in (old, issued) and fetched["result"]["client_id"] == client_id
    service.check_token(client_id, fresh)
    with pytest.raises(AuthFailed):
        service.check_token(client_id, issued)  # the token of the lost frame is dead
    assert finished_results.take(custodian.store, session_id, client_id, old) is None  # once
    finished_results.keep(custodian.store, session_id, client_id, old, outcome, ttl=-1)
    assert finished_results.take(custodian.store, session_id, client_id, old) is None  # expired
    assert custodian.store._execute("SELECT COUNT(*) FROM client_tokens WHERE token_hash = ?",
                                    (hash_token(fresh),)).fetchone()[0] == 1
