"""Issue 25 (floods, bounded logs, TLS suites): a distributed flood of silent or slow connections
cannot starve authenticated clients (the gate evicts the oldest sockets that sent no valid first
frame, from the busiest address), the descriptor limit is raised and sizes the socket cap,
connection churn and refused requests keep the logs bounded, TLS 1.2 offers AEAD suites only,
and a refused client certificate is one consistent error. Timing lives in ``benchmarks/load.py
--flood``; these tests check behaviour."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
pytest.importorskip("cryptography")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from mpc.errors import ConfigInvalid, ServiceUnavailable, TlsFailed  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service import logs  # noqa: E402
from mpc.service.guard import (  # noqa: E402
    FD_RESERVE,
    MAX_SOCKET_CAP,
    BoundedLog,
    ConnectionGate,
    GatedSocket,
    ServiceLimits,
    check_fd_budget,
)
from mpc.remote.kept import closed_idle  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.wire import IDLE_CLOSE_REASON, KEEP_ALIVE_SUBPROTOCOL  # noqa: E402
from tests.mpc.conftest import send_authorised, service_logging  # noqa: E402
from tests.mpc.test_server_security import (  # noqa: E402
    OPERATOR_KEY, TIMEOUT, closing_all, device, operator, serve, serving,
)
from tests.mpc.tls_helpers import PKI, make_pki  # noqa: E402

resource = pytest.importorskip("resource")


def silent_socket(port: int, source: str) -> socket.socket:
    """A TCP connection from ``source`` (an address on loopback) that never sends a byte."""
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))


def is_closed_by_peer(sock: socket.socket) -> bool:
    """Whether the service closed ``sock`` (EOF or reset within 0.2 s)."""
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@contextlib.contextmanager
def open_generate(url: str, client_id: str, token: str) -> Iterator[Any]:
    """A connection that sent a generate request and got ``ready``: it sent its first frame."""
    phone = device(client_id)
    key = phone.device_key()
    with connect(url, open_timeout=TIMEOUT) as ws:
        request = {"op": "generate", "client_id": client_id, "token": token,
                   "session_id": phone.generate().session_id.hex(), "device_public": key.public.hex()}
        assert "ready" in json.loads(send_authorised(ws, request, key))  # the device key answers the challenge
        yield ws


def wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


# --- the gate ------------------------------------------------------------------------------------------
def test_the_gate_evicts_the_oldest_pending_socket_of_the_busiest_address_never_a_settled_one() -> None:
    gate = ConnectionGate(max_sockets=10, max_per_ip=5, log=BoundedLog(logging.getLogger("tests.gate")))
    assert gate.high_water == 9
    assert gate.admit(("10.0.0.5", 1)) == "10.0.0.5"  # settled at once: never a candidate
    pairs: dict[str, list[tuple[socket.socket, socket.socket]]] = {}
    for address, count in (("10.0.0.1", 4), ("10.0.0.2", 2), ("10.0.0.3", 1), ("10.0.0.4", 1)):
        for _ in range(count):
            ours, theirs = socket.socketpair()
            key = gate.admit((address, 1))
            assert key == address
            gate.track(key, ours.fileno(), ours)
            pairs.setdefault(address, []).append((ours, theirs))
    first = pairs["10.0.0.1"][0]
    gate.settle(first[0].fileno())  # sent a valid first frame: never evicted
    assert gate.admit(("10.0.0.1", 9)) is None  # at the high-water mark an address at the top share is refused
    assert gate.evicted == 0
    assert gate.admit(("10.0.0.9", 1)) == "10.0.0.9"  # a lighter address: one pending socket goes
    assert gate.evicted == 1
    second = pairs["10.0.0.1"][1]  # the oldest pending socket of the address holding the most
    assert is_closed_by_peer(second[1])
    assert not is_closed_by_peer(first[1])
    assert not any(is_closed_by_peer(theirs) for key in ("10.0.0.2", "10.0.0.3") for _, theirs in pairs[key])
    for address in ("10.0.0.1",) * 4 + ("10.0.0.2",) * 2 + ("10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.9"):
        gate.release(address)
    assert gate.open == 0
    for sockets in pairs.values():
        for ours, theirs in sockets:
            ours.close()
            theirs.close()


def test_a_kept_connection_waiting_for_its_next_request_is_evictable_again_and_forgotten_when_closed() -> None:
    """``ConnectionGate.idle`` (kept connections, issue 30): a connection served and waiting for its
    next request is a candidate for eviction like a new one; while a request runs it is not."""
    gate = ConnectionGate(max_sockets=100, max_per_ip=5, log=BoundedLog(logging.getLogger("tests.gate")))
    pairs = [socket.socketpair() for _ in range(3)]
    (first, first_peer), (second, _), (newcomer, _) = pairs
    for ours, address in ((first, "10.0.0.1"), (second, "10.0.0.1"), (newcomer, "10.0.0.2")):
        gate.track(gate.admit((address, 1)) or "", ours.fileno(), ours)
    for kept in (first, second):  # two kept connections of 10.0.0.1, each serving a request
        gate.handshaken(kept.fileno())
        gate.settle(kept.fileno())
    assert not gate.evict_waiting(newcomer.fileno())
    closed: list[str] = []
    gate.idle(first.fileno(), lambda: closed.append("first"))
    gate.idle(second.fileno(), lambda: closed.append("second"))  # both served, waiting for their next request
    assert gate.evict_waiting(newcomer.fileno()) and closed == ["first"]  # the first to idle goes,
    assert not is_closed_by_peer(first_peer)  # closed by its WebSocket close (reason idle), not shut down
    assert not gate.settle(first.fileno())  # a request already on its way stays unread (the race)
    assert gate.settle(second.fileno())  # its next request came
    gate.forget(second.fileno())  # and it closed: idle() of its descriptor number finds nothing now
    gate.idle(second.fileno(), lambda: closed.append("second"))
    assert not gate.evict_waiting(newcomer.fileno()) and closed == ["first"]
    for pair in pairs:
        for sock in pair:
            sock.close()


def test_an_evicted_idle_kept_connection_is_closed_idle_so_its_client_resends() -> None:
    """At the connection cap, an idle kept connection is evicted with a WebSocket close naming
    ``IDLE_CLOSE_REASON`` (the service read nothing of it since its last result), not a socket shut
    down: its client then resends a request it may have sent meanwhile instead of reporting it as
    possibly processed (``mpc.remote.kept.closed_idle``)."""
    with serving(limits=ServiceLimits(max_connections=2, first_frame_timeout=30.0)) as running:
        with connect(running.url, open_timeout=TIMEOUT, sock=silent_socket(running.port, "127.0.0.2"),
                     subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as kept:  # type: ignore[list-item]
            kept.send(json.dumps({"op": "create_client", "operator_key": OPERATOR_KEY}))
            assert "result" in json.loads(kept.recv(timeout=TIMEOUT))  # served: idle, evictable again
            with connect(running.url, open_timeout=TIMEOUT, sock=silent_socket(running.port, "127.0.0.2")):
                time.sleep(0.2)  # the cap is reached; 127.0.0.2 holds both connections
                assert operator(running.url, keep_alive=False).create_client()  # evicts 127.0.0.2's oldest
                with pytest.raises(ConnectionClosed) as closed:
                    kept.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == IDLE_CLOSE_REASON
        assert closed_idle(closed.value)


def test_an_ipv6_56_holds_at_most_two_shares_of_sockets() -> None:
    gate = ConnectionGate(max_sockets=1000, max_per_ip=4, log=BoundedLog(logging.getLogger("tests.gate")))
    admitted = [gate.admit((f"2001:db8:0:{net:x}::1", 1)) for net in range(16) for _ in range(4)]  # a /60
    assert sum(key is not None for key in admitted) == 8  # 2 x max_per_ip for the /56
    assert gate.admit(("2001:db8:0:100::1", 1)) == "2001:db8:0:100::/64"  # another /56
    assert gate.admit(("10.0.0.1", 1)) == "10.0.0.1"  # IPv4 has no aggregate


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one_and_sizes_the_socket_cap() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 1024:
        pytest.skip("needs a finite hard descriptor limit of at least 1024")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
        cap = check_fd_budget(ServiceLimits())
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
        assert cap == min(MAX_SOCKET_CAP, hard - FD_RESERVE)
        assert check_fd_budget(ServiceLimits(max_sockets=100)) == 100  # configured: kept
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- floods ----------------------------------------------------------------------------------------------
def test_a_distributed_flood_of_silent_connections_leaves_authenticated_clients_served() -> None:
    with serving(limits=ServiceLimits(max_sockets=48, max_connections=16, max_connections_per_ip=8,
                                      first_frame_timeout=30.0)) as running, closing_all([]) as flood:
        admin = operator(running.url)
        client_id, token = admin.create_client()
        with open_generate(running.url, client_id, token) as busy:  # an operation under way before the flood
            for _ in range(3):  # 10 addresses x 8 silent sockets, again and again (an attacker reconnects)
                flood += [silent_socket(running.port, f"127.0.1.{n}") for n in range(10) for _ in range(8)]
                for _ in range(5):  # the operator's probe (the client's device key went to the generate)
                    assert admin.get_client(client_id)["client_id"] == client_id
            gate = running.service._gate  # type: ignore[union-attr]
            assert gate.evicted >= 10 and gate.open <= 48  # each probe evicted a flood socket; the rest were refused
            assert sum(not is_closed_by_peer(sock) for sock in flood[-80:]) <= 48
            with pytest.raises(TimeoutError):  # the operation's connection is still open
                busy.recv(timeout=0.2)


def test_connections_waiting_for_a_first_frame_make_room_and_settled_ones_get_1013() -> None:
    with serving(limits=ServiceLimits(max_connections=2, first_frame_timeout=30.0)) as running:
        admin = operator(running.url, keep_alive=False)  # counted connections: none kept between requests
        client_id, token = admin.create_client()
        with connect(running.url, open_timeout=TIMEOUT, sock=silent_socket(running.port, "127.0.0.2")) as silent, \
                connect(running.url, open_timeout=TIMEOUT, sock=silent_socket(running.port, "127.0.0.2")):
            time.sleep(0.2)
            assert admin.get_client(client_id, token)["client_id"] == client_id  # evicts the oldest of 127.0.0.2
            with pytest.raises(ConnectionClosed):
                silent.recv(timeout=TIMEOUT)
        with contextlib.ExitStack() as stack:  # two connections in an operation: they sent their frame
            for _ in range(2):
                other, other_token = admin.create_client()
                stack.enter_context(open_generate(running.url, other, other_token))
            with connect(running.url, open_timeout=TIMEOUT) as ws, pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 1013
            with pytest.raises(ServiceUnavailable, match="busy"):  # without the client's retries
                operator(running.url, retry_budget=0).get_client(client_id, token)
        assert wait_for(lambda: running.service._active == 0)  # type: ignore[union-attr]
        assert admin.get_client(client_id, token)["client_id"] == client_id


# --- logs --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def default_logging(tmp_path: Path) -> Iterator[tuple[io.StringIO, Path]]:
    """``serve``'s logging at its defaults (text, INFO), to a string and an audit file; restored after."""
    stream, path = io.StringIO(), tmp_path / "audit.log"
    saved_tally, logs._REFUSALS = logs._REFUSALS, logs.RefusalTally()
    try:
        with service_logging(stream=stream, audit_file=path):
            yield stream, path
    finally:
        logs._REFUSALS = saved_tally


def churn(url: str, seconds: float) -> int:
    """Connect, handshake and close from one address for ``seconds``; every other connection
    also sends a malformed request first. Returns the number of connections."""
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connect(url, open_timeout=TIMEOUT) as ws:
            if count % 2:
                ws.send("{not json")
                ws.recv(timeout=TIMEOUT)
        count += 1
    return count


def check_churn_keeps_logs_bounded(tmp_path: Path, seconds: float) -> None:
    with default_logging(tmp_path) as (stream, audit_path):
        with ServiceThread(":memory:", operator_key=OPERATOR_KEY) as running:
            connections = churn(running.url, seconds)
        written = len(stream.getvalue().encode()) + audit_path.stat().st_size
        assert connections > 10 * seconds  # the churn did happen (and went past the request budget)
        assert written <= 64 * 1024 * seconds / 15, (connections, written)
        audit = audit_path.read_text().splitlines()
        assert 1 <= len(audit) <= 3, audit  # the first refusals in full; the rest counted in the window
        assert "websockets.server" not in stream.getvalue()


def test_connection_churn_from_one_address_keeps_the_logs_bounded(tmp_path: Path) -> None:
    check_churn_keeps_logs_bounded(tmp_path, 3.0)


@pytest.mark.slow
def test_fifteen_seconds_of_churn_grow_the_logs_by_at_most_64_kib(tmp_path: Path) -> None:
    check_churn_keeps_logs_bounded(tmp_path, 15.0)


def test_refusals_are_counted_per_address_and_window() -> None:
    now = [0.0]
    tally = logs.RefusalTally(window=60, max_addresses=2, clock=lambda: now[0])
    assert tally.note("10.0.0.1", "AUTH_FAILED") == (True, [])
    assert tally.note("10.0.0.1", "AUTH_FAILED") == (False, [])
    assert tally.note("10.0.0.1", "RATE_LIMITED") == (False, [])
    assert tally.note("2001:db8::1", "INPUT_INVALID") == (True, [])
    assert tally.note("2001:db8::2", "INPUT_INVALID") == (False, [])  # the same /64
    assert tally.note("10.0.0.3", "INPUT_INVALID") == (False, [])  # a third address: "*"
    now[0] = 61.0
    assert tally.roll() == [("10.0.0.1", {"AUTH_FAILED": 1, "RATE_LIMITED": 1}, 61.0),
                            ("2001:db8::/64", {"INPUT_INVALID": 1}, 61.0), ("*", {"INPUT_INVALID": 1}, 61.0)]
    assert tally.note("10.0.0.1", "AUTH_FAILED") == (True, [])  # a new window


# --- TLS ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls12_handshake(port: int, ca: str, ciphers: str) -> str:
    """A TLS 1.2 handshake offering only ``ciphers``; the suite the service chose."""
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            chosen = tls.cipher()
            assert chosen is not None
            return chosen[0]


def test_tls_1_2_offers_aead_suites_only_and_a_refused_client_certificate_is_tls_failed(pki: PKI) -> None:
    with serving(tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca) as running:
        cbc = "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384:AES128-SHA"
        with pytest.raises((ssl.SSLError, OSError)):
            tls12_handshake(running.port, str(pki.ca), cbc)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = ssl.create_default_context(cafile=str(pki.ca))
            context.maximum_version = context.minimum_version = version
            # No client certificate: TLS 1.3 completes the handshake and the probe sees the service
            # close without answering (TLS_FAILED, at once); TLS 1.2 cuts the handshake itself, which
            # a busy service's socket cap does too, so the client cannot tell (SERVICE_UNAVAILABLE).
            expected = TlsFailed if version == ssl.TLSVersion.TLSv1_3 else ServiceUnavailable
            for _ in range(3):  # the same error every time
                with pytest.raises(expected):
                    RemoteCustodian(running.url, ssl_context=context, timeout=TIMEOUT, retries=0).get_client(
                        "c" * 16, "t" * 43)
    plain = serve(tls_cert=pki.server_cert, tls_key=pki.server_key)
    try:
        assert "GCM" in tls12_handshake(plain.port, str(pki.ca), "ECDHE+AESGCM")
        assert "CHACHA20" in tls12_handshake(plain.port, str(pki.ca), "ECDHE+CHACHA20")
    finally:
        plain.stop()


# --- the loop must accept through the gate ------------------------------------------------------------
def test_the_service_refuses_an_event_loop_that_would_bypass_its_connection_gate() -> None:
    """The caps and evictions run in the listener's ``accept``: a loop that accepts elsewhere
    (uvloop in C, Windows' proactor) would serve every socket unchecked, so it is refused."""
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        GatedSocket.require_python_accepts(loop)  # asyncio's selector loop calls accept
    finally:
        loop.close()

    class AcceptsElsewhere(asyncio.AbstractEventLoop):
        pass

    with pytest.raises(ConfigInvalid, match="selector event loop, not AcceptsElsewhere"):
        GatedSocket.require_python_accepts(AcceptsElsewhere())


def test_a_service_on_uvloop_does_not_start() -> None:
    import asyncio

    uvloop = pytest.importorskip("uvloop")
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        server = ServiceThread(":memory:", operator_key="operator-key-for-the-tests-0123456789")
    finally:
        asyncio.set_event_loop_policy(policy)
    with pytest.raises(ConfigInvalid, match="selector event loop, not Loop"):
        server.start(timeout=30)
