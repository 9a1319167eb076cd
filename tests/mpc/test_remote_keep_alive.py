"""Kept connections (issue 30): with the keep-alive subprotocol (``mpc.wire.KEEP_ALIVE_SUBPROTOCOL``) one
connection carries a client's requests one after the other (``CustodianService._serve``,
``mpc.remote.channel.KeptConnection``); every request is still checked in full, so a token or a
device key revoked meanwhile is refused on the open connection; a client without the
subprotocol gets one request per connection, as before."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytest.importorskip("websockets")
from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.frames import Close  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import AuthFailed  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.remote.kept import closed_idle  # noqa: E402
from mpc.service import metrics  # noqa: E402
from mpc.storage.device_key import DeviceKey  # noqa: E402
from mpc.service.guard import ServiceLimits  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.wire import IDLE_CLOSE_REASON, KEEP_ALIVE_SUBPROTOCOL, device_auth_message  # noqa: E402
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402
from tests.mpc.cut_proxy import CutProxy  # noqa: E402
from tests.mpc.test_remote_retries import OPERATOR_KEY, proxy, server  # noqa: E402,F401 - the same fixtures


def operator(url: str) -> RemoteCustodian:
    return RemoteCustodian(url, operator_key=OPERATOR_KEY, keep_alive=False)


def with_wallet(server: ServiceThread, remote: RemoteCustodian) -> tuple[str, str, mpc.Client]:
    client_id, token = operator(server.url).create_client()
    phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
    remote.generate(phone, token)
    return client_id, token, phone


def sign(remote: RemoteCustodian, phone: mpc.Client, token: str) -> None:
    data = data_for("ethereum")
    verify_result(remote.sign(phone, token, "ethereum", data)[0], data)


@pytest.mark.parametrize("revoke", ["revoke_token", "revoke_device"])
def test_operations_share_one_connection_and_a_revocation_is_refused_on_it(
        server: ServiceThread, proxy: CutProxy, revoke: str) -> None:
    with RemoteCustodian(proxy.url, retries=0) as remote:
        client_id, token, phone = with_wallet(server, remote)
        sign(remote, phone, token)
        assert remote.get_client(client_id, token, device=phone)["client_id"] == client_id
        assert proxy.connections == 1  # generate, sign and get_client on one connection
        getattr(operator(server.url), revoke)(client_id)
        with pytest.raises(AuthFailed):
            remote.sign(phone, token, "ethereum", data_for("ethereum"))
        assert proxy.connections == 1  # refused on the open connection, at its next request
        with pytest.raises(AuthFailed):  # and the refusal closed it: a new connection is refused too
            remote.sign(phone, token, "ethereum", data_for("ethereum"))
        assert proxy.connections == 2
    assert server.service.custodian.store.client(client_id).operation is None  # type: ignore[union-attr]


def test_a_client_without_the_subprotocol_gets_one_request_per_connection(server: ServiceThread) -> None:
    request = json.dumps({"op": "create_client", "operator_key": OPERATOR_KEY})
    with connect(server.url, open_timeout=10) as ws:
        assert ws.subprotocol is None
        ws.send(request)
        answer = json.loads(ws.recv(timeout=10))
        assert "result" in answer and "next_challenge" not in answer  # no next request on this one
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == KEEP_ALIVE_SUBPROTOCOL
        for _ in range(3):
            ws.send(request)
            assert "result" in json.loads(ws.recv(timeout=10))
        ws.send('{"op": "get_client", "client_id": "nobody"}')  # a failed request ends the connection
        assert json.loads(ws.recv(timeout=10))["error"]["id"] == "AUTH_FAILED"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)


def test_an_idle_kept_connection_is_closed_and_the_next_request_goes_on_a_new_one() -> None:
    limits = ServiceLimits(first_frame_timeout=0.5)
    with ServiceThread(":memory:", operator_key=OPERATOR_KEY, executor="thread", limits=limits) as running, \
            CutProxy(running.port) as counted:
        remote = RemoteCustodian(counted.url, operator_key=OPERATOR_KEY, retries=0)
        client_id, token = remote.create_client()
        with connect(running.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"op": "create_client", "operator_key": OPERATOR_KEY}))
            ws.recv(timeout=10)
            with pytest.raises(ConnectionClosed) as closed:  # idle past first_frame_timeout
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == IDLE_CLOSE_REASON
        assert closed_idle(closed.value)
        time.sleep(1.0)  # the client's kept connection was closed idle too (retries=0: no retry hides it)
        assert remote.get_client(client_id, token)["client_id"] == client_id
        assert counted.connections == 2
        remote.close()


def test_only_the_idle_close_reason_counts_as_unread() -> None:
    def closed(code: int, reason: str) -> Any:
        return ConnectionClosed(Close(code, reason), None)

    assert closed_idle(closed(1000, IDLE_CLOSE_REASON))
    assert not closed_idle(closed(1001, "the custodian service is restarting; resume the session"))
    assert not closed_idle(closed(1000, ""))
    assert not closed_idle(ConnectionClosed(None, None))
    assert not closed_idle(OSError("connection reset"))


def test_a_request_signed_over_the_kept_challenge_needs_no_challenge_frame_once(server: ServiceThread) -> None:
    """The result on a kept connection carries the next request's challenge: a request signed over
    it is answered at once; the challenge serves the next request only (a replay of that signed
    request, or a signature with no challenge issued on the connection, is ``AUTH_FAILED``)."""
    client_id, token, phone = with_wallet(server, RemoteCustodian(server.url, keep_alive=False))
    key = phone.device_key()
    request = {"op": "get_client", "client_id": client_id, "token": token}

    def presigned(challenge: str) -> str:
        signature = key.sign(device_auth_message(bytes.fromhex(challenge), request)).hex()
        return json.dumps({**request, "device_sig": signature})

    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        first = json.loads(send_authorised(ws, request, key))  # a challenge frame, as on a new connection
        assert first["result"]["client_id"] == client_id
        ws.send(presigned(first["next_challenge"]))
        second = json.loads(ws.recv(timeout=10))  # the result, no challenge frame
        assert second["result"]["client_id"] == client_id and second["next_challenge"] != first["next_challenge"]
        ws.send(presigned(first["next_challenge"]))  # replayed: the challenge was spent
        assert json.loads(ws.recv(timeout=10))["error"]["id"] == "AUTH_FAILED"
    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        ws.send(presigned(first["next_challenge"]))  # on another connection: none was issued there
        assert json.loads(ws.recv(timeout=10))["error"]["id"] == "AUTH_FAILED"


def test_a_presigned_request_is_checked_token_first_then_signature_in_one_trip(server: ServiceThread) -> None:
    """Issue 30, round six: the signature a request brings over the kept challenge is checked in the
    token check's thread trip, in the same order as before: a wrong token is refused as a token
    (``AUTH_FAILED``, counted as a token refusal, the challenge spent), a signature by another key
    as a device refusal; a refused request changes nothing and the device's next request works."""
    client_id, token, phone = with_wallet(server, RemoteCustodian(server.url, keep_alive=False))
    key, thief = phone.device_key(), DeviceKey.generate()
    request = {"op": "get_client", "client_id": client_id, "token": token}

    def presigned(challenge: str, signer: Any, body: dict[str, Any]) -> str:
        return json.dumps({**body, "device_sig": signer.sign(device_auth_message(bytes.fromhex(challenge), body)).hex()})

    def refused(ws: Any) -> str:
        answer = json.loads(ws.recv(timeout=10))
        assert "result" not in answer and "next_challenge" not in answer
        return str(answer["error"]["id"])

    tokens, devices = metrics.AUTH_FAILURES.value(kind="token"), metrics.AUTH_FAILURES.value(kind="device")
    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        first = json.loads(send_authorised(ws, request, key))
        wrong_token = {**request, "token": token + "x"}
        ws.send(presigned(first["next_challenge"], key, wrong_token))
        assert refused(ws) == "AUTH_FAILED"
    assert metrics.AUTH_FAILURES.value(kind="token") == tokens + 1
    assert metrics.AUTH_FAILURES.value(kind="device") == devices
    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        first = json.loads(send_authorised(ws, request, key))
        ws.send(presigned(first["next_challenge"], thief, request))
        assert refused(ws) == "AUTH_FAILED"
    assert metrics.AUTH_FAILURES.value(kind="device") == devices + 1
    with connect(server.url, open_timeout=10, subprotocols=[KEEP_ALIVE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
        first = json.loads(send_authorised(ws, request, key))
        ws.send(presigned(first["next_challenge"], key, request))
        assert json.loads(ws.recv(timeout=10))["result"]["client_id"] == client_id
