"""The custodian service's front door: TLS and mTLS, the plaintext rule, the operator key,
client tokens (rotate, revoke, recover and eject), limits, malformed first frames, bounded logs."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
pytest.importorskip("cryptography")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import (  # noqa: E402
    AuthFailed,
    AuthTokenReplaced,
    ConfigInvalid,
    InputInvalid,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    TlsFailed,
    TransportInsecure,
)
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service.requests import parse_request  # noqa: E402
from mpc.wire import nesting_depth  # noqa: E402
from mpc.service import metrics  # noqa: E402
from mpc.service.server import CustodianService, ServiceThread  # noqa: E402
from mpc.service.guard import (  # noqa: E402
    OPERATOR_KEY_ENV,
    BoundedLog,
    ConnectionGate,
    OperatorKey,
    ServiceLimits,
    TokenBuckets,
    environment_operator_key,
    load_operator_key,
    peer_key,
)
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402
from tests.mpc.tls_helpers import PKI, make_pki  # noqa: E402

TIMEOUT = 30.0
OPERATOR_KEY = "front-door-tests-operator-key-0123456789"


def serving(**options: Any) -> ServiceThread:
    """A service on loopback with the operator key (and ``options``), for a ``with`` block: it
    starts on entry and stops on exit."""
    options.setdefault("operator_key", OPERATOR_KEY)
    return ServiceThread(":memory:", session_ttl=30, **options)


def serve(**options: Any) -> ServiceThread:
    """A started service on loopback with the operator key (and ``options``); the caller stops it."""
    return serving(**options).start()


@contextlib.contextmanager
def closing_all(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    """``sockets``, each closed at the end of the ``with`` block (those added inside it too)."""
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def operator(url: str, **options: Any) -> RemoteCustodian:
    return RemoteCustodian(url, timeout=TIMEOUT, operator_key=OPERATOR_KEY, **options)


def device(client_id: str, cloud: MemoryCloudStorage | None = None) -> mpc.Client:
    return mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud or MemoryCloudStorage())


def reply_to(url: str, frame: str | bytes, *, source: str | None = None) -> dict[str, Any]:
    """Send one first frame on a fresh connection (from ``source``, an address on loopback)."""
    options: dict[str, Any] = {}
    if source is not None:
        host, port = url.removeprefix("ws://").rsplit(":", 1)
        options["sock"] = socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=(source, 0))
    with connect(url, open_timeout=TIMEOUT, max_size=None, **options) as ws:
        ws.send(frame)
        return json.loads(ws.recv(timeout=TIMEOUT))


def wait_until_no_socket_is_open(running: ServiceThread) -> None:
    """Every accepted socket gives its slot back when it closes (TLS or not, refused or not)."""
    gate = running.service._gate  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while gate.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gate.open == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceThread]:
    with serving() as running:
        yield running


@pytest.fixture(scope="module")
def tls_server(pki: PKI) -> Iterator[ServiceThread]:
    with serving(tls_cert=pki.server_cert, tls_key=pki.server_key) as running:
        yield running


# --- TLS --------------------------------------------------------------------------------------------
def test_whole_lifecycle_over_wss_and_recover_and_eject_replace_the_token(tls_server: ServiceThread, pki: PKI) -> None:
    assert tls_server.url.startswith("wss://")
    remote = operator(tls_server.url, cafile=pki.ca)
    client_id, token = remote.create_client()
    cloud = MemoryCloudStorage()
    phone = device(client_id, cloud)
    addresses, view = remote.generate(phone, token)
    assert view["addresses"] == addresses
    data = data_for("ethereum")
    verify_result(remote.sign(phone, token, "ethereum", data)[0], data)
    remote.backup(phone, token)
    new_phone = device(client_id, cloud)
    recovered, recover_view = remote.recover(new_phone, token)
    assert recovered == addresses
    after_recover = recover_view["token"]
    assert after_recover != token
    refused_before = metrics.AUTH_FAILURES.value(kind="token")
    with pytest.raises(AuthTokenReplaced, match="replaced by a completed recover") as replaced:
        remote.get_client(client_id, token)  # the old token died when recover completed, and it says so
    assert replaced.value.code == "AUTH_TOKEN_REPLACED" and isinstance(replaced.value, AuthFailed)
    assert metrics.AUTH_FAILURES.value(kind="token") == refused_before + 1  # still a refused credential
    keys, eject_view = remote.eject(new_phone, after_recover)
    assert keys.secp256k1_public_key.hex() == view["public_keys"]["secp256k1"]
    after_eject = eject_view["token"]
    with pytest.raises(AuthTokenReplaced, match="replaced by a completed eject"):
        remote.get_client(client_id, after_recover)
    with pytest.raises(AuthFailed) as older:  # only the last replaced token is remembered
        remote.get_client(client_id, token)
    assert older.value.code == "AUTH_FAILED"
    data = data_for("solana")
    verify_result(remote.sign(new_phone, after_eject, "solana", data)[0], data)
    wait_until_no_socket_is_open(tls_server)


def test_a_client_without_the_ca_refuses_the_server(tls_server: ServiceThread) -> None:
    remote = RemoteCustodian(tls_server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)  # system CAs only
    with pytest.raises(TlsFailed, match="certificate"):
        remote.create_client()
    with pytest.raises(TlsFailed):  # an operation is not retried either
        remote.generate(device("someone"), "token")


def test_mtls_requires_a_client_certificate_and_the_operator_certificate_is_the_operator(pki: PKI) -> None:
    with serving(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca,
                    operator_cert_cn="operator") as running:
        client_id, token = operator(running.url, cafile=pki.ca, client_cert=pki.clients["device"][0],
                                    client_key=pki.clients["device"][1]).create_client()
        with pytest.raises((TlsFailed, ServiceUnavailable)):  # no client certificate: refused
            RemoteCustodian(running.url, cafile=pki.ca, timeout=TIMEOUT, retries=0).get_client(client_id, token)
        phone = RemoteCustodian(running.url, cafile=pki.ca, client_cert=pki.clients["device"][0],
                                client_key=pki.clients["device"][1], timeout=TIMEOUT)
        assert phone.get_client(client_id, token)["signing_share_status"] == "NOT_CREATED"
        with pytest.raises(AuthFailed):  # a device certificate is not the operator
            phone.create_client()
        operator_by_cert = RemoteCustodian(running.url, cafile=pki.ca, client_cert=pki.clients["operator"][0],
                                           client_key=pki.clients["operator"][1], timeout=TIMEOUT)
        other, _ = operator_by_cert.create_client()  # no operator key: the certificate is enough
        assert operator_by_cert.get_client(other)["signing_share_status"] == "NOT_CREATED"
        wait_until_no_socket_is_open(running)


def test_a_plain_service_refuses_a_non_loopback_address() -> None:
    for host in ("0.0.0.0", ""):
        with pytest.raises(TransportInsecure):
            ServiceThread(":memory:", host=host, operator_key=OPERATOR_KEY).start()
    with ServiceThread(":memory:", host="0.0.0.0", operator_key=OPERATOR_KEY, allow_plaintext=True) as running:
        assert running.port > 0


def test_remote_refuses_plain_ws_to_a_non_loopback_host() -> None:
    for url in ("ws://10.0.0.1:8765", "ws://custodian.example:8765", "ws://0.0.0.0:8765", "ws://[2001:db8::1]:1"):
        with pytest.raises(TransportInsecure):
            RemoteCustodian(url)
    RemoteCustodian("ws://10.0.0.1:8765", allow_plaintext=True)
    for url in ("ws://127.0.0.1:1", "ws://127.0.0.2:1", "ws://localhost:1", "ws://[::1]:1", "wss://custodian.example:1"):
        RemoteCustodian(url)
    for url in ("http://127.0.0.1:1", "ws://", "127.0.0.1:8765"):
        with pytest.raises(ConfigInvalid):
            RemoteCustodian(url)
    remote = RemoteCustodian("ws://127.0.0.1:1")
    with pytest.raises(TransportInsecure):
        remote.url = "ws://192.0.2.7:8765"
    with pytest.raises(ConfigInvalid):
        RemoteCustodian("wss://custodian.example:1", ssl_context=object(), cafile="ca.pem")  # type: ignore[arg-type]


# --- the operator and the tokens ---------------------------------------------------------------------
def test_the_service_refuses_to_start_without_an_operator_credential(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigInvalid, match="open-registration"):
        CustodianService(":memory:")
    with pytest.raises(ConfigInvalid):
        CustodianService(":memory:", operator_key="short")
    caplog.set_level(logging.WARNING, logger="mpc.service.server")
    with ServiceThread(":memory:", open_registration=True) as running:
        assert any("OPEN REGISTRATION" in record.getMessage() for record in caplog.records)
        open_remote = RemoteCustodian(running.url, timeout=TIMEOUT)
        client_id, token = open_remote.create_client()  # anyone may register
        assert open_remote.get_client(client_id, token)["signing_share_status"] == "NOT_CREATED"
        with pytest.raises(AuthFailed):  # but there is no operator to act as
            operator(running.url).revoke_token(client_id)


def test_registration_and_operator_ops_need_the_operator_key(server: ServiceThread) -> None:
    url = server.url
    anonymous = RemoteCustodian(url, timeout=TIMEOUT)
    with pytest.raises(AuthFailed):
        anonymous.create_client()
    with pytest.raises(AuthFailed):
        RemoteCustodian(url, timeout=TIMEOUT, operator_key="not-the-operator-key-000000").create_client()
    assert reply_to(url, json.dumps({"op": "create_client"}))["error"]["id"] == "AUTH_FAILED"
    admin = operator(url)
    client_id, token = admin.create_client()
    assert anonymous.get_client(client_id, token)["client_id"] == client_id  # a client reads its own record
    assert admin.get_client(client_id)["client_id"] == client_id  # the operator reads any record
    for op in ("revoke_token", "issue_token", "unlock_client"):
        for credentials in ({"token": token}, {"operator_key": token}, {}):
            reply = reply_to(url, json.dumps({"op": op, "client_id": client_id, **credentials}))
            assert reply["error"]["id"] == "AUTH_FAILED"
    with pytest.raises(AuthFailed):
        anonymous.get_client(client_id)  # without a token: operator only
    with pytest.raises(NotFound):
        admin.get_client("no-such-client")
    with pytest.raises(NotFound):
        admin.revoke_token("no-such-client")


def test_tokens_rotate_and_revoke_at_once(server: ServiceThread) -> None:
    url = server.url
    admin = operator(url)
    client_id, token = admin.create_client()
    owner = device(client_id)
    admin.generate(owner, token)  # registers the device key: from now on every request needs it
    phone = RemoteCustodian(url, timeout=TIMEOUT)
    rotated = phone.rotate_token(client_id, token, device=owner)
    assert rotated != token
    for dead in (token, "x" * 43, ""):
        with pytest.raises(AuthFailed):
            phone.get_client(client_id, dead, device=owner)
    with pytest.raises(AuthFailed):
        phone.rotate_token(client_id, token, device=owner)
    assert phone.get_client(client_id, rotated, device=owner)["client_id"] == client_id
    admin.revoke_token(client_id)
    with pytest.raises(AuthFailed):
        phone.get_client(client_id, rotated, device=owner)
    issued = admin.issue_token(client_id)
    assert phone.get_client(client_id, issued, device=owner)["client_id"] == client_id
    assert server.service.service.store._execute(  # only a hash is stored
        "SELECT COUNT(*) FROM client_tokens WHERE token_hash = ?", (issued.encode(),)).fetchone()[0] == 0


def test_a_revoked_token_stops_an_operation_in_flight(server: ServiceThread) -> None:
    admin = operator(server.url)
    client_id, token = admin.create_client()
    phone = device(client_id)
    session = phone.generate()
    hello = session.start()
    key = phone.device_key()
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        assert "ready" in json.loads(send_authorised(ws, {"op": "generate", "client_id": client_id, "token": token,
                                                          "session_id": session.session_id.hex(),
                                                          "device_public": key.public.hex()}, key))
        admin.revoke_token(client_id)
        ws.send(hello[0].to_bytes().decode())
        assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["id"] == "AUTH_FAILED"


def test_unlock_client_calls_the_custodian_or_says_not_supported(server: ServiceThread,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    admin = operator(server.url)
    client_id, _ = admin.create_client()
    calls: list[str] = []
    monkeypatch.setattr(mpc.Custodian, "unlock", lambda self, cid: calls.append(cid), raising=False)
    assert admin.unlock_client(client_id)["client_id"] == client_id
    assert calls == [client_id]
    monkeypatch.delattr(mpc.Custodian, "unlock")
    with pytest.raises(InputInvalid, match="not supported"):
        admin.unlock_client(client_id)


def test_operator_key_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = OperatorKey.from_key(OPERATOR_KEY)
    assert key.matches(OPERATOR_KEY)
    for wrong in (OPERATOR_KEY + "x", "", None, 42, "\ud800" * 20, "k" * 5000):
        assert not key.matches(wrong)
    assert OPERATOR_KEY not in repr(key) and "redacted" in repr(key)
    hashed = OperatorKey.parse(OperatorKey.hash_of(OPERATOR_KEY) + "\n")
    assert hashed.matches(OPERATOR_KEY) and not hashed.matches(OperatorKey.hash_of(OPERATOR_KEY))
    for bad in ("too-short", "sha256:abcd", "sha256:" + "zz" * 32):
        with pytest.raises(ConfigInvalid):
            OperatorKey.parse(bad)
    path = tmp_path / "operator.key"
    path.write_text(OPERATOR_KEY + "\n")
    assert load_operator_key(path, None).matches(OPERATOR_KEY)  # type: ignore[union-attr]
    assert load_operator_key(None, OPERATOR_KEY).matches(OPERATOR_KEY)  # type: ignore[union-attr]
    assert load_operator_key(None, None) is None
    with pytest.raises(ConfigInvalid):
        load_operator_key(path, OPERATOR_KEY)
    with pytest.raises(ConfigInvalid):
        load_operator_key(tmp_path / "missing", None)
    monkeypatch.setenv(OPERATOR_KEY_ENV, OPERATOR_KEY)
    assert environment_operator_key() == OPERATOR_KEY
    assert OPERATOR_KEY_ENV not in __import__("os").environ  # worker processes do not inherit it


# --- malformed first frames --------------------------------------------------------------------------
HOSTILE_FIRST_FRAMES = [
    "[" * 60_000, "[" * 100_000, '{"a":' * 12_000 + "1" + "}" * 12_000, "[" * 9 + "]" * 9,
    '{"op":"get_client","x":' + "[" * 9 + "]" * 9 + "}", "1" * 5000, '{"op": 1e999}', "NaN",
    '{"op":"create_client"', "\x00", "", "null", '"op"', '{"op":"get_client","client_id":"c","token":"\\ud800"}',
    '{"op":"create_client","operator_key":"\\udfff"}', '{"\\ud800":1,"op":"x"}', "{" * 70_000,
]


@pytest.mark.parametrize("frame", HOSTILE_FIRST_FRAMES, ids=lambda f: repr(f[:24]))
def test_every_malformed_first_frame_is_input_invalid(frame: str) -> None:
    with pytest.raises(InputInvalid) as caught:
        parse_request(frame)
    assert type(caught.value) is InputInvalid


def test_malformed_first_frames_over_the_wire(server: ServiceThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    for frame in ("[" * 60_000, "[" * 100_000, '{"op":"get_client","client_id":"c","token":"\\ud800"}', b"\x00\x01"):
        assert reply_to(server.url, frame)["error"]["id"] == "INPUT_INVALID"
    session = {"op": "sign", "client_id": "c", "token": "t", "chain": "solana", "data": "00"}
    assert reply_to(server.url, json.dumps({**session, "session_id": "ab" * 32 + "\n"}))["error"]["id"] == "AUTH_FAILED"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_request_checks_skipped_by_counting_still_refuse_what_they_refused() -> None:
    """Issue 30, round six: ``parse_request`` scans the nesting only when the frame holds more
    brackets than the depth allows, and walks the strings only for a frame with ``\\u`` or a
    character outside ASCII; what those checks refused is still refused, and brackets inside
    strings still do not count."""
    many_in_strings = '{"op":"get_client","message":"' + "{[" * 20 + '"}'
    assert parse_request(many_in_strings)["message"] == "{[" * 20
    eight_deep = '{"op":"get_client","a":' + "[" * 7 + "]" * 7 + "}"
    assert parse_request(eight_deep)["a"] == [[[[[[[]]]]]]]
    for frame in ('{"op":"get_client","a":' + "[" * 8 + "]" * 8 + "}",  # nine deep
                  '{"op":"get_client","token":"\\ud800"}',  # an escaped lone surrogate (ASCII frame)
                  '{"op":"get_client","token":"\\ud800","x":"\u00e9"}',  # ... in a frame that is not ASCII
                  '{"op":"get_client","token":"\ud800"}'):  # a raw lone surrogate in the text
        with pytest.raises(InputInvalid):
            parse_request(frame)
    assert parse_request('{"op":"get_client","x":"\\u00e9\u00e9"}')["x"] == "\u00e9\u00e9"


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth('{"op":"[[[[[[[[[[[[[[[[[[[[["}') == 1
    assert nesting_depth('{"a":"\\\\","b":[[["\\"]]]]]]"]]]}') == 4
    assert nesting_depth('{"a":"\\"[[[[[[[[[[[[","b":[]}') == 2
    assert nesting_depth("[" * 50) == 50


def test_a_challenge_answer_nested_deeper_than_a_request_is_refused_before_decoding() -> None:
    from mpc.service.credentials import parse_answer

    signature = "00" * 64
    assert parse_answer(f'{{"device_sig":"{signature}"}}')[0] == bytes(64)
    for frame in ('{"device_sig":"' + signature + '","possession":' + "[" * 4000 + "]" * 4000 + "}", "[" * 8000):
        with pytest.raises(AuthFailed):
            parse_answer(frame)


# --- limits ------------------------------------------------------------------------------------------
def test_per_client_rate_limit_and_bounded_internal_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    with serving(limits=ServiceLimits(client_rate=0.2, client_burst=3, log_per_minute=4)) as running:
        admin = operator(running.url)
        client_id, token = admin.create_client()
        other, other_token = admin.create_client()
        phone = RemoteCustodian(running.url, timeout=TIMEOUT, retry_budget=0)  # the refusal itself, not retried
        for _ in range(3):
            phone.get_client(client_id, token)
        with pytest.raises(RateLimited) as refused:
            phone.get_client(client_id, token)
        assert refused.value.status == 429 and refused.value.retry_after is not None
        assert refused.value.retry_after >= 1 and "retry after" in refused.value.message
        phone.get_client(other, other_token)  # another client is not affected
        with pytest.raises(AuthFailed):  # a wrong token never spends the client's budget
            phone.get_client(other, "x" * 43)

        caplog.set_level(logging.WARNING, logger="mpc.service.server")
        custodian = running.service.custodian  # type: ignore[union-attr]
        custodian.get_client = lambda cid: (_ for _ in ()).throw(RuntimeError("boom " * 5000))  # type: ignore[method-assign]
        for _ in range(30):
            with pytest.raises(mpc.errors.EngineError) as failed:
                admin.get_client(other)
            assert failed.value.code == "ENGINE_INTERNAL_ERROR" and "boom" not in failed.value.message
        errors = [r for r in caplog.records if r.name == "mpc.service.server" and r.levelno >= logging.ERROR]
        assert 1 <= len(errors) <= 4
        assert all(len(r.getMessage()) < 2200 for r in errors)  # truncated


def test_per_ip_request_rate_limit() -> None:
    with serving(limits=ServiceLimits(ip_rate=0.2, ip_burst=4)) as running:
        admin = operator(running.url)
        client_id, token = admin.create_client()
        request = json.dumps({"op": "get_client", "client_id": client_id, "token": token})
        replies = [reply_to(running.url, request) for _ in range(3)]
        assert all("result" in reply for reply in replies)
        refused = reply_to(running.url, request)
        assert refused["error"]["id"] == "RATE_LIMITED" and "retry after" in refused["error"]["message"]
        assert "result" in reply_to(running.url, request, source="127.0.0.2")  # another address


def test_parked_sessions_per_client_are_capped() -> None:
    with serving(limits=ServiceLimits(max_parked_per_client=2)) as running:
        admin = operator(running.url)
        client_id, token = admin.create_client()
        phone = device(client_id)
        admin.generate(phone, token)

        def open_sign() -> dict[str, Any]:
            session = phone.sign("solana", b"parked")
            with connect(running.url, open_timeout=TIMEOUT) as ws:
                return dict(json.loads(send_authorised(ws, {
                    "op": "sign", "client_id": client_id, "token": token, "session_id": session.session_id.hex(),
                    "chain": "solana", "data": b"parked".hex()}, phone.device_key())))

        assert "ready" in open_sign() and "ready" in open_sign()  # both abandoned: parked until they expire
        refused = open_sign()
        assert refused["error"]["id"] == "RATE_LIMITED" and "unfinished operations" in refused["error"]["message"]
        assert running.service.purge(time.time() + 3600) == 2  # type: ignore[union-attr]
        assert "ready" in open_sign()


def test_a_connection_that_sends_nothing_is_closed_after_the_first_frame_timeout() -> None:
    with serving(limits=ServiceLimits(first_frame_timeout=0.5)) as running:
        start = time.monotonic()
        with connect(running.url, open_timeout=TIMEOUT) as ws, pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        bare = socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT)  # no handshake at all
        assert bare.recv(1) == b""
        bare.close()
        assert time.monotonic() - start < 5


def test_a_flood_of_half_open_connections_from_one_address_leaves_others_served(
        caplog: pytest.LogCaptureFixture) -> None:
    with serving(limits=ServiceLimits(max_connections=128, max_connections_per_ip=16, first_frame_timeout=3.0,
                                      log_per_minute=20)) as running:
        with closing_all([]) as flood:
            admin = operator(running.url)
            client_id, token = admin.create_client()
            caplog.set_level(logging.INFO)
            for _ in range(1100):  # TCP connections that never start a handshake
                flood.append(socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT,
                                                      source_address=("127.0.0.2", 0)))
            latencies = []
            for _ in range(20):
                start = time.perf_counter()
                assert admin.get_client(client_id, token)["client_id"] == client_id
                latencies.append(time.perf_counter() - start)
            latencies.sort()
            assert latencies[int(0.95 * (len(latencies) - 1))] < 1.0, latencies
            gate = running.service._gate  # type: ignore[union-attr]
            assert gate.open <= 16 + 1
            # The log is bounded: at most the budget of warnings for ~1,084 refusals, and otherwise only
            # websockets' INFO lines about the 21 served connections (open, closed).
            records = list(caplog.records)
            warnings = [r for r in records if r.levelno >= logging.WARNING]
            assert len(warnings) <= 20, [r.getMessage()[:80] for r in warnings]
            # + 2: the start-up line and the create_client lines logged before the flood began.
            assert len(records) <= 20 + 3 * 21 + 2, [r.getMessage()[:80] for r in records]
        wait_until_no_socket_is_open(running)


# --- the helpers -------------------------------------------------------------------------------------
def test_bounded_log_keeps_a_budget_per_minute_and_reports_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    logger = logging.getLogger("tests.bounded")
    bounded = BoundedLog(logger, per_minute=5, max_chars=100, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="tests.bounded")
    for i in range(50):
        try:
            raise RuntimeError(f"failure {i} " + "x" * 500)
        except RuntimeError as exc:
            bounded.error("internal error", exc)
    assert len(caplog.records) == 5
    assert all(len(r.getMessage()) <= 160 for r in caplog.records)
    now[0] += 61
    bounded.flush()
    assert caplog.records[-1].getMessage() == "suppressed 45 log messages in the last 61 s"
    bounded.warning("next minute")
    assert caplog.records[-1].getMessage() == "next minute"


def test_token_buckets_refill_and_forget() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, max_keys=2, clock=lambda: now[0])
    buckets.take("a", "x")
    buckets.take("a", "x")
    with pytest.raises(RateLimited) as refused:
        buckets.take("a", "x")
    assert refused.value.retry_after == 1.0
    now[0] += 0.5
    buckets.take("a", "x")
    buckets.take("b", "x")
    buckets.take("c", "x")  # "a" is forgotten: at most two keys are kept
    assert list(buckets._buckets) == ["b", "c"]
    assert RateLimited.after(2.2, "slow down").message == "slow down; retry after 3 s"
    assert mpc.errors.from_json(RateLimited.after(2.2, "slow down").to_json()).retry_after == 3.0  # type: ignore[attr-defined]


def test_connection_gate_caps_sockets_in_total_and_per_address() -> None:
    gate = ConnectionGate(max_sockets=3, max_per_ip=2, log=BoundedLog(logging.getLogger("tests.gate")))
    first, second = gate.admit(("10.0.0.1", 1)), gate.admit(("10.0.0.1", 2))
    assert first == second == "10.0.0.1"
    assert gate.admit(("10.0.0.1", 3)) is None  # per address
    assert gate.admit(("10.0.0.2", 1)) == "10.0.0.2"
    assert gate.admit(("10.0.0.3", 1)) is None  # in total
    gate.release("10.0.0.1")
    assert gate.admit(("10.0.0.3", 1)) == "10.0.0.3"
    for key in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        gate.release(key)
    assert gate.open == 0 and not gate._per_ip


def test_peer_keys() -> None:
    assert peer_key(("127.0.0.2", 5)) == "127.0.0.2"
    assert peer_key(("::ffff:10.1.2.3", 5, 0, 0)) == "10.1.2.3"
    assert peer_key(("2001:db8:1:2:3:4:5:6", 5, 0, 0)) == "2001:db8:1:2::/64"
    assert peer_key(None) == "unknown"


def test_limits_are_validated() -> None:
    for bad in ({"max_connections": 0}, {"ip_rate": 0}, {"client_burst": 1.5}, {"first_frame_timeout": float("inf")}):
        with pytest.raises(ConfigInvalid):
            ServiceLimits(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigInvalid, match="ulimit"):  # the descriptor budget is checked at start
        ServiceThread(":memory:", operator_key=OPERATOR_KEY, limits=ServiceLimits(max_connections=10**7)).start()


def test_no_credential_or_state_reaches_a_banner_or_a_repr() -> None:
    """Review fixes: the startup banner's database, a request spec (token, operator key) and a
    parked session (its secret-bearing state and outbox) never show their secrets."""
    from mpc.remote.specs import RequestSpec
    from mpc.service.server import _redact
    from mpc.service.store import ParkedSession

    for url in ("postgresql://u:p@ss@w0rd@db.host:5432/mpc", "postgresql://db.host/mpc?password=s3cret&schema=x"):
        shown = _redact(url)
        assert "ss@w0rd" not in shown and "s3cret" not in shown and shown.startswith("postgresql://db.host")
    assert _redact("custodian.sqlite3") == "custodian.sqlite3"
    spec = RequestSpec({"op": "get_client", "token": "T0KEN-secret", "operator_key": "0PERATOR-secret"}, True, str)
    assert "secret" not in repr(spec)
    parked = ParkedSession("s" * 64, "c1", "sign", b"k2-secret-state", ["outbox-secret"], True, 0.0)
    assert "secret" not in repr(parked)


def test_device_authorisation_hex_is_canonical() -> None:
    from mpc.wire import hex_bytes

    assert hex_bytes("ab" * 32, 32) == b"\xab" * 32
    for loose in ("AB" * 32, "ab" * 31 + "a ", " " + "ab" * 31 + "a", "xy" * 32, 32 * "ab" + "ab"):
        assert hex_bytes(loose, 32) is None
