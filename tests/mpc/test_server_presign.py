"""Presign and sign_presigned over the WebSocket custodian (loopback only, bounded in time)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.errors import PresignatureNotFound  # noqa: E402
from mpc.remote import RemoteCustodian  # noqa: E402
from mpc.server import ServiceThread  # noqa: E402
from tests.mpc.conftest import data_for, verify_result  # noqa: E402
from tests.mpc.test_server import TIMEOUT, device, error_id, raw  # noqa: E402


@pytest.fixture
def server():
    with ServiceThread(":memory:", host="127.0.0.1", session_ttl=30) as running:
        yield running


def _wallet(url: str) -> tuple[RemoteCustodian, str, str, mpc.Client]:
    remote = RemoteCustodian(url, timeout=TIMEOUT)
    client_id, token = remote.create_client()
    phone = device(client_id)
    remote.generate(phone, token)
    return remote, client_id, token, phone


def test_presigned_signing_over_sockets(server: ServiceThread) -> None:
    remote, client_id, token, phone = _wallet(server.url)
    counts, custodian_counts = remote.presign(phone, token, 2)
    assert counts == custodian_counts == {"secp256k1": 2, "ed25519": 2}
    for chain in ("ethereum", "solana"):
        data = data_for(chain, b"presigned over the wire")
        result, custodian_result = remote.sign_presigned(phone, token, chain, data)
        verify_result(result, data)
        assert custodian_result["signature"] == result.signature.hex()
    assert phone.presignature_count() == {"secp256k1": 1, "ed25519": 1}
    assert server.service.custodian.presignature_count(client_id) == {"secp256k1": 1, "ed25519": 1}
    assert server.service.service.count() == 0  # nothing left parked


def test_a_presignature_is_refused_the_second_time(server: ServiceThread) -> None:
    remote, client_id, token, phone = _wallet(server.url)
    remote.presign(phone, token, 3)
    data = data_for("ethereum")
    first = phone.sign_presigned("ethereum", data)
    used = first.presignature_id
    remote.run("sign_presigned", first, client_id, token, {"chain": "ethereum", "data": data.hex()})

    # Through the client class: a session naming the used presignature again.
    replay = phone.sign_presigned("ethereum", data)
    replay.presignature_id = used
    with pytest.raises(PresignatureNotFound):
        remote.run("sign_presigned", replay, client_id, token, {"chain": "ethereum", "data": data.hex()})

    # On the wire: the typed error frame, and the connection ends.
    replay = phone.sign_presigned("ethereum", data)
    replay.presignature_id = used
    request = {"op": "sign_presigned", "client_id": client_id, "token": token,
               "session_id": replay.session_id.hex(), "chain": "ethereum", "data": data.hex()}
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps(request))
        assert "ready" in json.loads(ws.recv(timeout=TIMEOUT))
        for message in replay.start():
            ws.send(message.to_bytes().decode("ascii"))
        reply = json.loads(ws.recv(timeout=TIMEOUT))
    assert reply["error"]["id"] == "PRESIGNATURE_NOT_FOUND"
    # The unused presignatures the replays took on the device are gone; the service still signs.
    assert phone.presignature_count()["secp256k1"] == 0
    remote.presign(phone, token, 1)
    verify_result(remote.sign_presigned(phone, token, "ethereum", data)[0], data)


def test_bad_presign_requests_get_input_invalid(server: ServiceThread) -> None:
    remote, client_id, token, phone = _wallet(server.url)
    base = {"op": "presign", "client_id": client_id, "token": token, "session_id": "ab" * 32}
    for extra in ({}, {"count": 0}, {"count": 65}, {"count": True}, {"count": "3"}, {"count": 2.0},
                  {"count": 1, "chain": "ethereum"}):
        assert error_id(raw(server.url, json.dumps({**base, **extra}))[0]) == "INPUT_INVALID"
    signing = {**base, "op": "sign_presigned"}
    assert error_id(raw(server.url, json.dumps({**signing, "chain": "ethereum"}))[0]) == "INPUT_INVALID"
    assert error_id(raw(server.url, json.dumps({**signing, "chain": "ethereum", "data": "zz"}))[0]) == "INPUT_INVALID"


def test_presign_survives_a_server_restart_between_two_rounds(tmp_path) -> None:
    db = str(tmp_path / "custodian.sqlite3")
    servers = [ServiceThread(db, host="127.0.0.1", executor="thread").start()]
    try:
        remote, client_id, token, phone = _wallet(servers[0].url)
        remote.retries, remote.retry_delay = 5, 0.05

        def restart(received: int) -> None:
            if received == 1:  # the custodian's first presign messages are in: parked in the database
                servers[0].stop()
                servers.append(ServiceThread(db, host="127.0.0.1", executor="thread").start())
                remote.url = servers[-1].url

        counts, _ = remote.run("presign", phone.presign(2), client_id, token, {"count": 2}, on_message=restart)
        assert len(servers) == 2 and counts == {"secp256k1": 2, "ed25519": 2}
        for chain in ("bitcoin", "stellar"):  # both halves of both curves were stored across the restart
            data = data_for(chain)
            verify_result(remote.sign_presigned(phone, token, chain, data)[0], data)
    finally:
        for running in servers:
            running.stop()
