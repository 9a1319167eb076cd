"""Presign and sign_presigned over the WebSocket custodian (loopback only, bounded in time)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("websockets")

import mpc  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402
from tests.mpc.test_server import OPERATOR_KEY, TIMEOUT, device, error_id, raw  # noqa: E402


@pytest.fixture
def server():
    with ServiceThread(":memory:", host="127.0.0.1", session_ttl=30, operator_key=OPERATOR_KEY) as running:
        yield running


def _wallet(url: str) -> tuple[RemoteCustodian, str, str, mpc.Client]:
    remote = RemoteCustodian(url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    remote.generate(phone, token)
    return remote, client_id, token, phone


def test_presign_and_fast_signing_over_sockets(server: ServiceThread) -> None:
    remote, client_id, token, phone = _wallet(server.url)
    before = set(phone.keychain.names())
    counts, custodian_counts = remote.presign(phone, token, 2)
    assert counts == custodian_counts == {"secp256k1": 2, "ed25519": 0}
    for chain in ("ethereum", "solana"):
        data = data_for(chain, b"presigned over the wire")
        result, custodian_result = remote.sign_presigned(phone, token, chain, data)
        verify_result(result, data)
        assert custodian_result == result and custodian_result.to_json()["signature"] == result.signature.hex()
    assert set(phone.keychain.names()) == before  # nothing single-use on the device
    assert server.service.custodian.presignature_count(client_id) == {"secp256k1": 1, "ed25519": 0}
    assert server.service.service.count() == 0  # nothing left parked


def test_bad_presign_requests_get_input_invalid(server: ServiceThread) -> None:
    remote, client_id, token, phone = _wallet(server.url)
    base = {"op": "presign", "client_id": client_id, "token": token, "session_id": "ab" * 32}
    def answer(request: dict[str, object]) -> str:
        with connect(server.url, open_timeout=TIMEOUT) as ws:  # the device authorises, then params are checked
            return send_authorised(ws, request, phone.device_key())

    for extra in ({}, {"count": 0}, {"count": 65}, {"count": True}, {"count": "3"}, {"count": 2.0},
                  {"count": 1, "chain": "ethereum"}):
        assert error_id(answer({**base, **extra})) == "INPUT_INVALID"
    signing = {**base, "op": "sign_presigned"}
    assert error_id(answer({**signing, "chain": "ethereum"})) == "INPUT_INVALID"
    assert error_id(answer({**signing, "chain": "ethereum", "data": "zz"})) == "INPUT_INVALID"
    assert "challenge" in json.loads(raw(server.url, json.dumps({**signing, "chain": "ethereum"}))[0])  # token only


def test_ecdsa_sign_survives_a_server_restart_between_two_rounds(tmp_path) -> None:
    """The custodian's signing session (holding k2) is parked in the database between rounds and
    resumed once by the restarted server. Precomputations live in a process's memory only: the
    restarted server has none and computes the c3 step online."""
    db = str(tmp_path / "custodian.sqlite3")
    servers = [ServiceThread(db, host="127.0.0.1", executor="thread", operator_key=OPERATOR_KEY).start()]
    try:
        remote, client_id, token, phone = _wallet(servers[0].url)
        remote.retries, remote.retry_delay = 5, 0.05
        remote.presign(phone, token, 2)

        def restart(received: int) -> None:
            if received == 1:  # the custodian's R2 is in: its session is parked in the database
                servers[0].stop()
                servers.append(ServiceThread(db, host="127.0.0.1", executor="thread", operator_key=OPERATOR_KEY).start())
                remote.url = servers[-1].url

        data = data_for("bitcoin")
        result, _ = remote.run("sign", phone.sign("bitcoin", data), client_id, token,
                               {"chain": "bitcoin", "data": data.hex()}, on_message=restart)
        verify_result(result, data)
        assert len(servers) == 2
        assert servers[-1].service.custodian.presignature_count(client_id)["secp256k1"] == 0
    finally:
        for running in servers:
            running.stop()
