"""The WebSocket custodian (mpc.service.server) and its device-side client (mpc.remote.blocking), on loopback."""

from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import AuthFailed, NotFound  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from protocols.rounds import Message  # noqa: E402
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402

TIMEOUT = 30.0
OPERATOR_KEY = "operator-key-for-the-tests-0123456789"  # the services below require an operator key


@pytest.fixture
def server():
    with ServiceThread(":memory:", session_ttl=30, operator_key=OPERATOR_KEY) as running:
        yield running


def device(client_id: str, cloud: MemoryCloudStorage | None = None) -> mpc.Client:
    return mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud or MemoryCloudStorage())


def raw(url: str, *frames: str, replies: int = 1) -> list[str]:
    """Send frames on one connection; return the replies read."""
    with connect(url, open_timeout=TIMEOUT) as ws:
        for frame in frames:
            ws.send(frame)
        return [ws.recv(timeout=TIMEOUT) for _ in range(replies)]


def error_id(frame: str) -> str:
    return json.loads(frame)["error"]["id"]


def test_whole_lifecycle_over_sockets(server: ServiceThread) -> None:
    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    cloud = MemoryCloudStorage()
    phone = device(client_id, cloud)
    addresses, view = remote.generate(phone, token)
    assert view["signing_share_status"] == "STORED_CLIENT" and view["addresses"] == addresses
    for chain in ("ethereum", "solana"):
        data = data_for(chain)
        result, custodian_result = remote.sign(phone, token, chain, data)
        verify_result(result, data)
        assert custodian_result == result and custodian_result.to_json()["signature"] == result.signature.hex()
    # A chain adapter over the network: remote_signer, the transaction checked by eth-account.
    from eth_account import Account

    from mpc.chains import evm, remote_signer
    tx = {"type": "0x2", "nonce": 0, "maxFeePerGas": 2, "maxPriorityFeePerGas": 1, "gas": 21000, "chainId": 1,
          "to": "0x" + "35" * 20, "value": "0x1"}
    signed = evm.sign_transaction(remote_signer(remote, phone, token), tx)
    assert Account.recover_transaction(signed.raw_transaction) == addresses["ethereum"]
    remote.backup(phone, token)
    assert remote.get_client(client_id, token, device=phone)["backup_share_status"] == "STORED_CLIENT_BACKUP_SHARE"
    new_phone = device(client_id, cloud)
    recovered, recover_view = remote.recover(new_phone, token)
    assert recovered == addresses
    token = recover_view["token"]  # recover replaced the client's token
    keys, eject_view = remote.eject(new_phone, token)
    token = eject_view["token"]  # and so did eject
    assert keys.secp256k1_public_key.hex() == view["public_keys"]["secp256k1"]
    with pytest.raises(AuthFailed):  # a device whose key is not the client's is refused before any work
        remote.generate(device(client_id), token)


def test_customer_stored_backup_is_confirmed_over_the_wire(server: ServiceThread) -> None:
    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    remote.generate(phone, token)
    (result, view) = remote.backup(phone, token, client_stores_backup=True)
    assert result["encrypted_backup"] and view["backup_share_status"] == "STORED_CUSTODIAN_BACKUP_SHARE"
    with pytest.raises(mpc.errors.PossessionProofFailed):  # the device without the backup's confirmation: nothing
        remote.stored_client_backup_share(client_id, token, "CLOUD", device=phone)
    view = remote.stored_client_backup_share(client_id, token, "CLOUD", result["confirmation"], device=phone)
    assert view["backup_share_status"] == "STORED_CLIENT_BACKUP_SHARE"


def test_one_client_cannot_operate_another_clients_wallet(server: ServiceThread) -> None:
    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    alice, alice_token = remote.create_client()
    bob, bob_token = remote.create_client()
    remote.generate(device(alice), alice_token)
    data = data_for("ethereum")
    for client_id, token in ((alice, bob_token), (alice, "x" * 43), (alice, ""), ("no-such-client", alice_token)):
        with pytest.raises(AuthFailed):
            remote.get_client(client_id, token)
        with pytest.raises(AuthFailed):
            remote.run("sign", device(bob).generate(), client_id, token, {"chain": "ethereum", "data": data.hex()})
    reply = raw(server.url, json.dumps({"op": "get_client", "client_id": alice}))
    assert error_id(reply[0]) == "AUTH_FAILED"


def test_bad_frames_get_error_frames_and_the_service_survives(server: ServiceThread) -> None:
    url = server.url
    assert error_id(raw(url, "not json")[0]) == "INPUT_INVALID"
    assert error_id(raw(url, json.dumps({"op": "fly"}))[0]) == "AUTH_FAILED"  # unauthenticated first
    assert error_id(raw(url, json.dumps([1, 2]))[0]) == "INPUT_INVALID"
    remote = RemoteCustodian(url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    base = {"client_id": client_id, "token": token}
    assert error_id(raw(url, json.dumps({"op": "fly", **base}))[0]) == "INPUT_INVALID"
    assert error_id(raw(url, json.dumps({"op": "generate", "session_id": "zz", **base}))[0]) == "INPUT_INVALID"
    phone = device(client_id)
    session = phone.generate()
    hello = session.start()
    other = Message(hello[0].protocol, bytes(32), 1, 1, 2, hello[0].payload)
    request = {"op": "generate", "session_id": session.session_id.hex(), **base,
               "device_public": phone.device_key().public.hex()}
    with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        assert "ready" in json.loads(send_authorised(ws, request, phone.device_key()))
        for frame, expected in (("{}", "MESSAGE_INVALID"), ("x" * 100, "MESSAGE_INVALID"),
                                (other.to_bytes().decode(), "MESSAGE_INVALID"), (b"\x00binary", "MESSAGE_INVALID")):
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=TIMEOUT))
            assert reply["error"]["id"] == expected
        ws.send("A" * (2 << 20))  # above max_size: the server closes the connection (1009)
        with pytest.raises(Exception):
            for _ in range(3):
                ws.recv(timeout=TIMEOUT)
    assert ws.close_code == 1009
    # Still serving, and nothing was half-written: the client can generate from scratch.
    assert remote.get_client(client_id, token, device=phone)["signing_share_status"] == "NOT_CREATED"
    assert remote.generate(phone, token)[1]["signing_share_status"] == "STORED_CLIENT"


def test_too_many_invalid_frames_close_the_connection(server: ServiceThread) -> None:
    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    session = phone.generate()
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        send_authorised(ws, {"op": "generate", "session_id": session.session_id.hex(), "client_id": client_id,
                             "token": token, "device_public": phone.device_key().public.hex()}, phone.device_key())
        for _ in range(8):
            ws.send("{}")
        with pytest.raises(Exception):
            for _ in range(10):
                ws.recv(timeout=TIMEOUT)
    assert ws.close_code == 1008


def test_abrupt_disconnect_mid_round_then_expiry_frees_the_lock_only(server: ServiceThread) -> None:
    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    remote.generate(phone, token)
    custodian = server.service.custodian
    shares_before = custodian.store.get_share(client_id, "signing", "", "secp256k1")
    session = phone.backup()
    first = session.start()
    with connect(server.url, open_timeout=TIMEOUT, close_timeout=0.1) as ws:
        send_authorised(ws, {"op": "backup", "session_id": session.session_id.hex(), "client_id": client_id,
                             "token": token, "method": "CLOUD", "client_stores_backup": False}, phone.device_key())
        for message in first:
            ws.send(message.to_bytes().decode())
        challenge = Message.from_bytes(ws.recv(timeout=TIMEOUT).encode())  # the custodian's nonce
        for message in session.receive(challenge):  # the proof of possession, the resharing's start
            ws.send(message.to_bytes().decode())
            # each frame's answer: the session is parked and holds the lock, no step of it running
            # (a step still running when the test purges is a taken session, not a parked one)
            ws.recv(timeout=TIMEOUT)
        ws.socket.close()  # abrupt: no closing handshake
    deadline = time.time() + TIMEOUT
    while custodian.store.client(client_id).operation is None and time.time() < deadline:
        time.sleep(0.02)
    assert custodian.store.client(client_id).operation == "backup"
    with pytest.raises(mpc.errors.OperationInProgress):
        remote.backup(phone, token)
    assert server.service.purge(time.time() + 3600) == 1
    assert custodian.store.client(client_id).operation is None
    assert custodian.store.get_share(client_id, "signing", "", "secp256k1") == shares_before
    assert remote.get_client(client_id, token, device=phone)["backup_share_status"] == "NOT_CREATED"
    with pytest.raises(NotFound):  # the purged session cannot be resumed
        _resume(server.url, client_id, token, session.session_id.hex())
    remote.backup(phone, token)  # free again


def _resume(url: str, client_id: str, token: str, session_id: str) -> None:
    reply = raw(url, json.dumps({"op": "resume", "client_id": client_id, "token": token, "session_id": session_id}))
    raise mpc.errors.from_json(json.loads(reply[0]))


def test_server_restart_between_two_rounds_on_the_same_database(tmp_path) -> None:
    db = str(tmp_path / "custodian.sqlite3")
    first = ServiceThread(db, executor="thread", operator_key=OPERATOR_KEY).start()
    remote = RemoteCustodian(first.url, timeout=TIMEOUT, retries=5, retry_delay=0.05,
                              operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    servers = [first]

    def restart(received: int) -> None:
        if received == 2:  # between two rounds of keygen
            servers[0].stop()
            servers.append(ServiceThread(db, executor="thread", operator_key=OPERATOR_KEY).start())
            remote.url = servers[-1].url

    try:
        addresses, view = remote.run("generate", phone.generate(), client_id, token, on_message=restart)
        assert len(servers) == 2 and view["addresses"] == addresses
        data = data_for("bitcoin")
        verify_result(remote.sign(phone, token, "bitcoin", data)[0], data)
        assert servers[-1].service.service.count() == 0
    finally:
        for running in servers:
            running.stop()


def test_a_parked_session_is_resumed_once(server: ServiceThread) -> None:
    from mpc.service.worker import step as _step

    remote = RemoteCustodian(server.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
    client_id, token = remote.create_client()
    phone = device(client_id)
    remote.generate(phone, token)
    data = data_for("solana")
    session = phone.sign("solana", data)
    messages = session.start()
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        send_authorised(ws, {"op": "sign", "session_id": session.session_id.hex(), "client_id": client_id,
                             "token": token, "chain": "solana", "data": data.hex()}, phone.device_key())
        for message in messages:  # hello and the commitments: the custodian answers, then it is parked
            ws.send(message.to_bytes().decode())
        reply = Message.from_bytes(ws.recv(timeout=TIMEOUT).encode())
        last = session.receive(reply)[0]  # the signature, for the custodian's last round
        service = server.service.service
        taken = service.take(session.session_id.hex())  # another worker took the blob
        assert taken is not None
        outcome = _step(server.service._key, client_id, token, session.session_id.hex(), last.to_bytes(), 30)
        assert outcome["error"]["error"]["id"] == "NOT_FOUND" and outcome["fatal"]
        ws.send(last.to_bytes().decode())
        assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["id"] == "NOT_FOUND"


def test_a_slow_keygen_does_not_stall_other_clients_signing(tmp_path) -> None:
    with ServiceThread(str(tmp_path / "c.sqlite3"), executor="process", workers=2,
                       operator_key=OPERATOR_KEY) as running:
        remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        signer, signer_token = remote.create_client()
        phone = device(signer)
        remote.generate(phone, signer_token)
        busy, busy_token = remote.create_client()
        keygen_done = threading.Event()
        failures: list[BaseException] = []

        def keygens() -> None:
            try:
                other = device(busy)
                remote.generate(other, busy_token)
                remote.backup(other, busy_token)
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
            finally:
                keygen_done.set()

        worker = threading.Thread(target=keygens)
        worker.start()
        latencies = []
        data = data_for("solana")
        while not keygen_done.is_set() and len(latencies) < 20:
            start = time.perf_counter()
            verify_result(remote.sign(phone, signer_token, "solana", data)[0], data)
            latencies.append(time.perf_counter() - start)
        worker.join(TIMEOUT)
        assert not failures
        assert latencies and max(latencies) < 2.0, latencies


def test_service_on_postgresql_with_worker_processes(postgres_schema_url: str) -> None:
    with ServiceThread(postgres_schema_url, executor="process", workers=2,
                       operator_key=OPERATOR_KEY) as running:
        remote = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        client_id, token = remote.create_client()
        phone = device(client_id)
        addresses, _ = remote.generate(phone, token)
        for chain in ("tron", "stellar"):
            data = data_for(chain)
            verify_result(remote.sign(phone, token, chain, data)[0], data)
        assert remote.get_client(client_id, token, device=phone)["addresses"] == addresses
