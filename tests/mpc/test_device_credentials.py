"""Device-bound credentials (docs/operations.md, Device keys): a thief holding only a client's
token, played through the public client library against the networked custodian, can neither
act on the wallet nor change its credentials nor block the owner's device, which signs
throughout; a recover on a new device moves the wallet to that device's key; lockouts are
visible to the operator and in the metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from curves import SecretScalar, ed25519, secp256k1  # noqa: E402
from mpc.backup.attempts import MAX_FAILED_ATTEMPTS  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import (  # noqa: E402
    AuthFailed,
    ClientLockedOut,
    EngineError,
    PossessionProofFailed,
    RateLimited,
)
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service import metrics  # noqa: E402
from mpc.service.guard import ServiceLimits  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.storage.device_key import DeviceKey  # noqa: E402
from mpc.wire import device_auth_message  # noqa: E402
from tests.mpc.conftest import data_for, send_authorised, verify_result  # noqa: E402

OPERATOR_KEY = "device-credentials-operator-key-0123456789"
TIMEOUT = 60.0
MAX_PARKED = 2


@pytest.fixture(scope="module")
def server() -> Iterator[ServiceThread]:
    running = ServiceThread(":memory:", session_ttl=60, operator_key=OPERATOR_KEY,
                            limits=ServiceLimits(max_parked_per_client=MAX_PARKED)).start()
    yield running
    running.stop()


def remote_at(url: str, **options: Any) -> RemoteCustodian:
    options.setdefault("operator_key", OPERATOR_KEY)
    return RemoteCustodian(url, timeout=TIMEOUT, **options)


def backed_up_owner(server: ServiceThread) -> tuple[RemoteCustodian, str, str, mpc.Client]:
    """A client with a wallet and a CLOUD backup, made by its owner's device."""
    remote = remote_at(server.url)
    client_id, token = remote.create_client()
    owner = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
    remote.generate(owner, token)
    remote.backup(owner, token)
    return remote, client_id, token, owner


def thief_of(client_id: str) -> mpc.Client:
    """The thief's own device: the client id and (separately) the token, nothing else."""
    return mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())


def owner_signs(remote: RemoteCustodian, owner: mpc.Client, token: str, text: bytes) -> None:
    data = data_for("ethereum", text)
    verify_result(remote.sign(owner, token, "ethereum", data)[0], data)


def parked_of(server: ServiceThread, client_id: str) -> int:
    store = server.service.service.store  # type: ignore[union-attr]
    return int(store._execute("SELECT COUNT(*) FROM parked_sessions WHERE client_id = ?", (client_id,)).fetchone()[0])


class _ForgingRecover(mpc.client.ClientRecover):
    """A thief's recover that forges its possession proofs (it has no backup key)."""

    def _decode_step(self, name: str, data: Any, sender: int) -> Any:
        if name == "client_backup":
            forged = {"secp256k1": SimpleNamespace(x1=SecretScalar.random(secp256k1)),
                      "ed25519": SimpleNamespace(signing_share=SecretScalar.random(ed25519))}
            return "opened", forged, bytes.fromhex(data["nonce"])
        return super()._decode_step(name, data, sender)

    def _on_backup_opened(self, shares: Any) -> list[Any]:
        return []


# --- the thief with a token --------------------------------------------------------------------------
def test_a_stolen_token_alone_cannot_rotate_sign_back_up_eject_or_read(server: ServiceThread) -> None:
    remote, client_id, token, owner = backed_up_owner(server)
    thief = thief_of(client_id)
    refusals_before = metrics.AUTH_FAILURES.value(kind="device")
    session_id = "ab" * 32
    attacks = [
        lambda: remote.rotate_token(client_id, token),  # no device key at all
        lambda: remote.rotate_token(client_id, token, device=thief),
        # The thief's device holds no shares, so the library builds no sign, presign or backup
        # session for it: the requests themselves, signed with the thief's key.
        lambda: thief_request(server, thief, {"op": "sign", "client_id": client_id, "token": token,
                                              "session_id": session_id, "chain": "ethereum", "data": "00" * 32}),
        lambda: thief_request(server, thief, {"op": "presign", "client_id": client_id, "token": token,
                                              "session_id": session_id, "count": 1}),
        lambda: thief_request(server, thief, {"op": "backup", "client_id": client_id, "token": token,
                                              "session_id": session_id, "method": "CLOUD",
                                              "client_stores_backup": False}),
        lambda: remote.eject(thief, token),
        lambda: remote.get_client(client_id, token, device=thief),
        lambda: remote.stored_client_backup_share(client_id, token, "CLOUD", device=thief),
    ]
    for number, attack in enumerate(attacks):
        with pytest.raises(AuthFailed):
            attack()
        owner_signs(remote, owner, token, b"after attack %d" % number)  # the owner is never locked out
    view = remote.get_client(client_id, token, device=owner)
    assert view["device"]["public_key"] == owner.device_key().public.hex()
    assert view["ejected"] is False and view["lockout"]["failed_attempts"] == 0
    assert metrics.AUTH_FAILURES.value(kind="device") >= refusals_before + len(attacks) - 1  # the first: no key


def thief_request(server: ServiceThread, thief: mpc.Client, request: dict[str, Any]) -> None:
    """Send ``request`` authorised by the thief's own device key; raise the service's answer."""
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        reply = json.loads(send_authorised(ws, request, thief.device_key()))
    raise mpc.errors.from_json(reply)


def wait_until_nothing_is_parked(server: ServiceThread, client_id: str) -> None:
    """The device's abort frame is sent as it gives up: the service drops the session just after."""
    deadline = time.monotonic() + TIMEOUT
    while parked_of(server, client_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert parked_of(server, client_id) == 0


def test_a_signature_is_good_for_one_request_on_one_connection(server: ServiceThread) -> None:
    _, client_id, token, owner = backed_up_owner(server)
    request = {"op": "get_client", "client_id": client_id, "token": token}
    key = owner.device_key()
    with connect(server.url, open_timeout=TIMEOUT) as ws:  # the owner's answer, seen by an eavesdropper
        ws.send(json.dumps(request))
        challenge = bytes.fromhex(json.loads(ws.recv(timeout=TIMEOUT))["challenge"])
        seen = {"device_sig": key.sign(device_auth_message(challenge, request)).hex()}
        ws.send(json.dumps(seen))
        assert "result" in json.loads(ws.recv(timeout=TIMEOUT))
    for replay, answer in ((request, seen),  # the same signature on a new connection (a new challenge)
                           ({**request, "op": "rotate_token"}, seen),  # for another request
                           (request, {"device_sig": "00" * 64}), (request, {"device_sig": "zz"}),
                           (request, {"device_sig": seen["device_sig"], "extra": 1})):
        with connect(server.url, open_timeout=TIMEOUT) as ws:
            ws.send(json.dumps(replay))
            assert "challenge" in json.loads(ws.recv(timeout=TIMEOUT))
            ws.send(json.dumps(answer))
            assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["id"] == "AUTH_FAILED"
    other = DeviceKey.generate()  # a well-formed signature of another key
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        assert json.loads(send_authorised(ws, request, other))["error"]["id"] == "AUTH_FAILED"


def test_failed_recovers_by_a_thief_neither_fill_the_owners_caps_nor_block_signing(server: ServiceThread) -> None:
    remote, client_id, token, owner = backed_up_owner(server)
    thief = thief_of(client_id)
    # Through the unmodified client library: the thief cannot open the backup (no cloud key); its
    # device gives up and the service frees the session at once.
    for attempt in range(MAX_PARKED + 3):
        with pytest.raises(EngineError):
            remote.recover(thief, token)
        wait_until_nothing_is_parked(server, client_id)
        owner_signs(remote, owner, token, b"during failed recovers %d" % attempt)
    # Forged proofs of possession: refused, counted, the session ends at once.
    for attempt in range(2):
        session = _ForgingRecover(thief, bytes([attempt + 1]) * 32, mpc.backup.methods.CloudMethod(thief.cloud), None)
        mpc.storage.device_key.new_pending(thief.keychain, client_id)
        with pytest.raises(PossessionProofFailed):
            remote.run("recover", session, client_id, token, {"method": "CLOUD"})
        assert parked_of(server, client_id) == 0  # the abort ended it before the answer was sent
    # A thief that abandons its recovers (no abort): they fill only the cap of recovers by a new key.
    for attempt in range(MAX_PARKED + 1):
        key = mpc.storage.device_key.new_pending(thief.keychain, client_id)
        request = {"op": "recover", "client_id": client_id, "token": token, "session_id": bytes([9, attempt]).hex() * 16,
                   "method": "CLOUD", "device_public": key.public.hex()}
        with connect(server.url, open_timeout=TIMEOUT) as ws:
            reply = json.loads(send_authorised(ws, request, key))
        if attempt < MAX_PARKED:
            assert "ready" in reply
        else:
            assert reply["error"]["id"] == RateLimited.code and "new device key" in reply["error"]["message"]
    for attempt in range(MAX_PARKED + 1):  # the owner's own allowance is untouched
        owner_signs(remote, owner, token, b"with the thief's recovers parked %d" % attempt)
    view = remote.get_client(client_id, token, device=owner)
    assert view["device"]["public_key"] == owner.device_key().public.hex()  # the wallet stays on the owner's key
    assert view["lockout"] == {"locked": False, "failed_attempts": 2, "limit": MAX_FAILED_ATTEMPTS, "since": None}
    assert server.service.purge(time.time() + 3600) == MAX_PARKED  # type: ignore[union-attr]


def test_a_recover_on_a_new_device_moves_the_wallet_to_its_key(server: ServiceThread) -> None:
    remote, client_id, token, owner = backed_up_owner(server)
    new_phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=owner.cloud)
    addresses, view = remote.recover(new_phone, token)
    token = view["token"]
    assert addresses == owner.addresses()
    assert f"{client_id}.device.pending" not in new_phone.keychain  # the pending key became the device's
    assert remote.get_client(client_id, token, device=new_phone)["device"]["public_key"] == \
        new_phone.device_key().public.hex() != owner.device_key().public.hex()
    for attack in (lambda: remote.sign(owner, token, "ethereum", data_for("ethereum")),  # the old device
                   lambda: remote.get_client(client_id, token, device=owner)):
        with pytest.raises(AuthFailed):
            attack()
    owner_signs(remote, new_phone, token, b"on the new device")


def test_the_operator_revokes_a_device_and_the_owner_enrols_again(server: ServiceThread) -> None:
    remote, client_id, token, owner = backed_up_owner(server)
    remote.revoke_device(client_id)
    assert remote.get_client(client_id)["device"] is None
    with pytest.raises(AuthFailed, match="enrol"):
        remote.sign(owner, token, "ethereum", data_for("ethereum"))
    # A device that does not hold the signing shares cannot enrol (here: forged proofs).
    intruder = DeviceKey.generate()
    request = {"op": "enrol_device", "client_id": client_id, "token": token, "device_public": intruder.public.hex()}
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps(request))
        challenge = bytes.fromhex(json.loads(ws.recv(timeout=TIMEOUT))["challenge"])
        forged = {curve: {"commitment": "00", "response": "00"} for curve in ("secp256k1", "ed25519")}
        ws.send(json.dumps({"device_sig": intruder.sign(device_auth_message(challenge, request)).hex(),
                            "possession": forged}))
        assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["id"] == "AUTH_FAILED"
    # The owner's device, as one made before device keys (no key in its keychain), enrols with its shares.
    mpc.storage.device_key.forget(owner.keychain, client_id)
    enrolled = remote.enrol_device(owner, token)
    assert enrolled["device"]["public_key"] == owner.device_key().public.hex()
    assert remote.enrol_device(owner, token)["device"] == enrolled["device"]  # the same key again: harmless
    other_keychain = mpc.MemoryKeychain()  # another device holding the same shares, with its own key
    for name in owner.keychain.names():
        if ".device" not in name:
            other_keychain.put(name, owner.keychain.get(name))
    with pytest.raises(AuthFailed):  # once enrolled, nobody enrols over it
        remote.enrol_device(mpc.Client(client_id, other_keychain), token)
    owner_signs(remote, owner, token, b"after enrolment")
    remote.revoke_token(client_id)  # the token: revoked and reissued by the operator as before
    with pytest.raises(AuthFailed):
        owner_signs(remote, owner, token, b"with a revoked token")
    owner_signs(remote, owner, remote.issue_token(client_id), b"with the issued token")


def test_a_lockout_is_visible_to_the_operator_in_the_metrics_and_in_the_error(server: ServiceThread) -> None:
    remote, client_id, token, owner = backed_up_owner(server)
    custodian = server.service.custodian  # type: ignore[union-attr]
    for _ in range(MAX_FAILED_ATTEMPTS - 1):  # nine failures already counted
        custodian.attempts.failed(client_id)
    lockouts = metrics.CLIENT_LOCKOUTS.value()
    device_thief = mpc.Client(client_id, owner.keychain, cloud=MemoryCloudStorage())  # key, not the backup
    session = _ForgingRecover(device_thief, bytes(range(32)), mpc.backup.methods.CloudMethod(device_thief.cloud), None)
    mpc.storage.device_key.new_pending(owner.keychain, client_id)
    with pytest.raises(PossessionProofFailed):
        remote.run("recover", session, client_id, token, {"method": "CLOUD"})
    assert metrics.CLIENT_LOCKOUTS.value() == lockouts + 1
    server.service._read_gauges()  # type: ignore[union-attr]  # what a /metrics scrape reads
    assert metrics.CLIENTS_LOCKED_OUT.value() >= 1
    lockout = remote.get_client(client_id)["lockout"]  # the operator's view
    assert lockout["locked"] and lockout["failed_attempts"] == MAX_FAILED_ATTEMPTS
    assert time.time() - 60 < lockout["since"] <= time.time()
    with pytest.raises(ClientLockedOut) as refused:
        remote.eject(owner, token)
    assert "operator" in refused.value.message and "unlock_client" in refused.value.message
    owner_signs(remote, owner, token, b"signing is not locked")
    assert remote.unlock_client(client_id)["lockout"]["locked"] is False


# --- the device key and what it signs, without a service ------------------------------------------------
def test_the_device_key_lives_in_the_keychain_and_a_recover_replaces_it_only_when_done(tmp_path: Any) -> None:
    from mpc.storage import device_key

    keychain = mpc.FileKeychain(tmp_path / "keychain")
    first = device_key.load_or_create(keychain, "client-1")
    assert device_key.load_or_create(mpc.FileKeychain(tmp_path / "keychain"), "client-1").public == first.public
    assert first._seed().hex() not in repr(first) and first.public.hex()[:16] in repr(first)
    pending = device_key.new_pending(keychain, "client-1")
    assert device_key.current(keychain, "client-1").public == first.public  # type: ignore[union-attr]
    device_key.promote(keychain, "client-1")
    assert device_key.current(keychain, "client-1").public == pending.public != first.public  # type: ignore[union-attr]
    assert device_key.pending(keychain, "client-1") is None
    device_key.forget(keychain, "client-1")
    assert device_key.current(keychain, "client-1") is None and keychain.names() == []
    keychain.put("client-2.device", b"short")
    with pytest.raises(mpc.errors.KeychainCorrupted):
        device_key.current(keychain, "client-2")


def test_what_the_device_signs_binds_the_challenge_and_every_field_unambiguously() -> None:
    request = {"op": "sign", "client_id": "ab", "token": "t", "session_id": "00" * 32, "chain": "ethereum",
               "data": "11" * 32}
    message = device_auth_message(b"c" * 32, request)
    assert device_auth_message(b"c" * 32, {**request, "token": "another token"}) == message  # not signed over
    for changed in ({"op": "presign"}, {"client_id": "abc"}, {"session_id": "01" * 32}, {"chain": "tron"},
                    {"data": "22" * 32}, {"extra": 1}):
        assert device_auth_message(b"c" * 32, {**request, **changed}) != message, changed
    assert device_auth_message(b"d" * 32, request) != message
    shifted = {**request, "client_id": "a", "op": "bsign"}  # the same bytes, cut elsewhere
    assert device_auth_message(b"c" * 32, shifted) != message
    key = DeviceKey.generate()
    mpc.storage.device_key.verify_signature(key.public, message, key.sign(message))
    for public, signed, signature in ((key.public, message + b"x", key.sign(message)),
                                      (DeviceKey.generate().public, message, key.sign(message)),
                                      (key.public[:31], message, key.sign(message)), (key.public, message, bytes(64))):
        with pytest.raises(AuthFailed):
            mpc.storage.device_key.verify_signature(public, signed, signature)
