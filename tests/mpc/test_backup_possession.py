"""A backup needs the device's shares (issue 32): proofs of knowledge before the custodian
reshares, stores or promotes anything.

The adversary is a thief holding the client id, its token and the client's *public* shares (Q1
and the ed25519 verifying share: every sign hello carries one) but not the device: it runs an
unmodified client whose keychain holds forged secret shares with the real public values, or it
drives the wire messages itself. Whatever it sends, the custodian refuses before it takes part in
a resharing, stores nothing (every row of the store as it was), leaves the owner's current backup
current and recoverable, and counts nothing against the owner (``mpc.backup.attempts``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest

import mpc
from curves import SecretScalar, ed25519, secp256k1
from mpc.backup import possession
from mpc.backup.methods import CloudMethod, MemoryCloudStorage, MemoryPasskeyWrapper, PasskeyMethod, PasswordMethod
from mpc.errors import PossessionProofFailed
from mpc.wallet import CLIENT_PARTY, CUSTODIAN_PARTY
from protocols import frost
from protocols.ecdsa2p import P1KeyShare
from protocols.errors import FutureMessage, InvalidMessage, ProofError
from protocols.local import Stalled, run
from protocols.rounds import Message

from .conftest import Wallet, service_with_wallet


pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # FAST limits below the floor for new backups (tests only)

FAST = dict(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
PASSPHRASE = "orbit-velvet-quarry-lantern-mosaic-thistle"
_TABLES = ("shares", "client_backups", "backup_versions", "backups")


# --- the thief ---------------------------------------------------------------------------------
class _ForgedP1(P1KeyShare):
    """A random x1 that claims the real Q1 (what a thief can build from public values)."""

    def __init__(self, real: P1KeyShare) -> None:
        super().__init__(SecretScalar.random(secp256k1), real.public_point, real.q2, None)
        self._real_q1 = real.q1

    @property
    def q1(self) -> Any:
        return self._real_q1


class _ThiefDevice(mpc.Client):
    """An unmodified ``Client`` whose keychain holds forged secrets with the owner's public shares
    (and, with ``device_key_of``, the owner's device key too: the strongest thief over the
    service, past the device-key check, still stopped by the proofs of possession)."""

    def __init__(self, owner: mpc.Client, cloud: MemoryCloudStorage, device_key_of: mpc.Client | None = None) -> None:
        super().__init__(owner.client_id, mpc.MemoryKeychain(), cloud=cloud)
        self._device_key_of = device_key_of
        real_ed = owner.signing_share("ed25519")
        self._forged = {
            "secp256k1": _ForgedP1(owner.signing_share("secp256k1")),
            "ed25519": frost.KeyShare(real_ed.identifier, real_ed.threshold, real_ed.participants,
                                      SecretScalar.random(ed25519), real_ed.verifying_shares,
                                      real_ed.group_public_key),
        }

    def has_wallet(self) -> bool:
        return True

    def signing_share(self, curve: str) -> Any:
        return self._forged[curve]

    def device_key(self, *, pending: bool = False) -> Any:
        if self._device_key_of is not None and not pending:
            return self._device_key_of.device_key()
        return super().device_key(pending=pending)


def _methods(wallet: Wallet) -> dict[str, Callable[[], Any]]:
    wrapper = MemoryPasskeyWrapper()
    return {"CLOUD": lambda: None,
            "PASSWORD": lambda: PasswordMethod(PASSPHRASE, **FAST),
            "PASSKEY": lambda: PasskeyMethod(wrapper)}


def _rows(custodian: mpc.Custodian) -> dict[str, list[Any]]:
    """Every row of the tables a backup writes (sealed values compare as stored)."""
    return {table: sorted(map(repr, custodian.store._execute(f"SELECT * FROM {table}").fetchall()))
            for table in _TABLES}


def _owner_backup(wallet: Wallet, method: Any, name: str, **kwargs: Any) -> Any:
    result, _ = mpc.run_local(wallet.client.backup(method, **kwargs), wallet.custodian.backup(wallet.client_id, name))
    if kwargs.get("client_stores_backup"):
        wallet.custodian.stored_client_backup_share(wallet.client_id, name, result["confirmation"])
    return result


def _owner_recovers_and_signs(wallet: Wallet, method: Any, name: str, encrypted: Any = None) -> None:
    device = wallet.device()
    mpc.run_local(device.recover(method, encrypted_backup=encrypted), wallet.custodian.recover(wallet.client_id, name))
    assert device.addresses() == wallet.client.addresses()
    wallet.sign("ethereum", bytes(range(32)), client=device)
    assert wallet.custodian.failed_attempts(wallet.client_id) == 0


def _assert_untouched(wallet: Wallet, before: dict[str, list[Any]], current: str) -> None:
    assert _rows(wallet.custodian) == before
    assert wallet.custodian.failed_attempts(wallet.client_id) == 0
    assert wallet.custodian.get_client(wallet.client_id)["signing_share_status"] == "STORED_CLIENT"
    for method, version in current.items():
        assert wallet.custodian.backup_versions.of(wallet.client_id, method).current == version


@pytest.fixture
def owner(generated: Wallet) -> Wallet:
    generated.methods = _methods(generated)
    return generated


def _steps(seen: list[Message], sender: int) -> list[str]:
    return [m.payload.get("step") or f"child:{m.payload.get('child')}" for m in seen if m.sender == sender]


# --- the thief's device against every method, in process ----------------------------------------
@pytest.mark.parametrize("name, kept", [("CLOUD", False), ("PASSWORD", False), ("PASSKEY", False),
                                        ("CLOUD", True), ("PASSWORD", True)],
                         ids=["cloud", "password", "passkey", "cloud-customer-kept", "password-customer-kept"])
def test_a_thief_with_token_and_public_shares_backs_up_nothing(owner: Wallet, name: str, kept: bool) -> None:
    method = owner.methods[name]
    encrypted = _owner_backup(owner, method(), name, client_stores_backup=kept)["encrypted_backup"]
    current = {name: owner.custodian.backup_versions.of(owner.client_id, name).current}
    before = _rows(owner.custodian)
    thief = _ThiefDevice(owner.client, MemoryCloudStorage())
    seen: list[Message] = []
    with pytest.raises(PossessionProofFailed) as failure:
        run([thief.backup(method(), client_stores_backup=kept), owner.custodian.backup(owner.client_id, name)],
            lambda m: seen.append(m) or m)
    assert failure.value.culprit == CLIENT_PARTY and failure.value.code == "POSSESSION_PROOF_FAILED"
    assert _steps(seen, CUSTODIAN_PARTY) == ["challenge"]  # no resharing message, no evaluation
    _assert_untouched(owner, before, current)
    if kept:  # and no pending version the thief (or anyone) could confirm
        assert owner.custodian.backup_versions.of(owner.client_id, name).pending is None
    _owner_recovers_and_signs(owner, method(), name, encrypted)


def test_the_thief_without_any_proof_gets_no_resharing(owner: Wallet) -> None:
    """Driving the wire: the resharing's first messages without the possession step are not taken."""
    _owner_backup(owner, None, "CLOUD")
    before, current = _rows(owner.custodian), {"CLOUD": owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current}
    thief = _ThiefDevice(owner.client, MemoryCloudStorage()).backup()
    custodian = owner.custodian.backup(owner.client_id)
    (hello,) = thief.start()
    (challenge,) = custodian.start() + custodian.receive(hello)
    possession_step, *children = thief.receive(challenge)
    assert possession_step.payload["step"] == "possession" and children
    for child in children:
        with pytest.raises(FutureMessage):
            custodian.receive(child)
    _assert_untouched(owner, before, current)


def test_a_first_backup_is_refused_too(owner: Wallet) -> None:
    """No backup yet: the thief cannot make the first one either (it would pick the backup key)."""
    before = _rows(owner.custodian)
    with pytest.raises(PossessionProofFailed):
        mpc.run_local(_ThiefDevice(owner.client, MemoryCloudStorage()).backup(), owner.custodian.backup(owner.client_id))
    _assert_untouched(owner, before, {})
    assert owner.custodian.get_client(owner.client_id)["backup_share_status"] == "NOT_CREATED"


def test_failed_backup_proofs_never_lock_the_owner_out(owner: Wallet) -> None:
    """Not counted: more failures than the lockout limit, and the owner still recovers."""
    _owner_backup(owner, None, "CLOUD")
    for _ in range(mpc.backup.attempts.MAX_FAILED_ATTEMPTS + 1):
        with pytest.raises(PossessionProofFailed):
            mpc.run_local(_ThiefDevice(owner.client, MemoryCloudStorage()).backup(),
                          owner.custodian.backup(owner.client_id))
    _owner_recovers_and_signs(owner, None, "CLOUD")


# --- tampered and replayed proofs -------------------------------------------------------------
def _tamper_step(step: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Message], Message]:
    def tamper(msg: Message) -> Message:
        if msg.payload.get("step") != step:
            return msg
        payload = {"step": step, "data": change(dict(msg.payload["data"]))}
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, payload)

    return tamper


def _flip(hex_text: str) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[-1] ^= 1
    return raw.hex()


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if len(path) == 1:
        return {**data, path[0]: value}
    return {**data, path[0]: _set(dict(data[path[0]]), path[1:], value)}


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


_PROOF_FIELDS = [("proofs", curve, field) for curve in ("secp256k1", "ed25519") for field in ("A", "z")]


_SIGNING_FIELDS = [("client_shares", "secp256k1"), ("client_shares", "ed25519"), *_PROOF_FIELDS]


@pytest.mark.parametrize("path", [path if path in {("client_shares", "ed25519"), ("proofs", "secp256k1", "z")}
                                  else pytest.param(path, marks=pytest.mark.slow) for path in _SIGNING_FIELDS],
                         ids=lambda path: ".".join(path))
def test_every_field_of_the_signing_share_proof_tampered_is_refused(owner: Wallet, path: tuple[str, ...]) -> None:
    """A changed value is refused (malformed: state unchanged; well formed: abort, not counted),
    and nothing is stored; the owner's next backup goes through."""
    _owner_backup(owner, None, "CLOUD")
    before, current = _rows(owner.custodian), {"CLOUD": owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current}
    tamper = _tamper_step("possession", lambda data: _set(data, path, _flip(_get(data, path))))
    with pytest.raises((PossessionProofFailed, InvalidMessage, mpc.errors.ShareReplaced)):
        run([owner.client.backup(), owner.custodian.backup(owner.client_id)], tamper)
    _assert_untouched(owner, before, current)
    _owner_backup(owner, None, "CLOUD")
    _owner_recovers_and_signs(owner, None, "CLOUD")


@pytest.mark.parametrize("curve, field", [("ed25519", "A"), ("secp256k1", "z"),
                                          pytest.param("secp256k1", "A", marks=pytest.mark.slow),
                                          pytest.param("ed25519", "z", marks=pytest.mark.slow)])
def test_a_tampered_new_backup_share_proof_promotes_nothing(owner: Wallet, curve: str, field: str) -> None:
    """The last step's proof (of the new client backup shares) altered: no box stored, the
    current version stays current. A well-formed forgery ends the operation (not counted); a
    malformed one leaves the session as it was, and the honest step still completes it."""
    _owner_backup(owner, None, "CLOUD")
    current = owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current
    boxes_before = owner.custodian.store._execute("SELECT * FROM client_backups").fetchall()
    honest: list[Message] = []

    def tamper(msg: Message) -> Message:
        if msg.payload.get("step") != "client_backup":
            return msg
        honest.append(msg)
        path = ("possession", curve, field)
        data = _set(dict(msg.payload["data"]), path, _flip(_get(msg.payload["data"], path)))
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient,
                       {"step": "client_backup", "data": data})

    custodian = owner.custodian.backup(owner.client_id)
    with pytest.raises((PossessionProofFailed, InvalidMessage)) as refused:
        run([owner.client.backup(), custodian], tamper)
    assert owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current == current
    assert owner.custodian.store._execute("SELECT * FROM client_backups").fetchall() == boxes_before
    assert owner.custodian.failed_attempts(owner.client_id) == 0
    if isinstance(refused.value, PossessionProofFailed):
        _owner_recovers_and_signs(owner, None, "CLOUD")
    else:
        stored = custodian.receive(honest[0])  # the honest last step: stored, and the device told so
        assert [m.payload["step"] for m in stored] == ["backup_stored"] and custodian.done
        assert owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current != current
        _owner_recovers_and_signs(owner, None, "CLOUD")


def _captured(wallet: Wallet, session: Any, custodian_session: Any, step: str) -> dict[str, Any]:
    recorded: list[Message] = []
    run([session, custodian_session], lambda m: recorded.append(m) or m)
    return next(m for m in recorded if m.payload.get("step") == step).payload["data"]


def test_a_proof_replayed_from_another_backup_session_fails(owner: Wallet) -> None:
    """Same session id, same client, same method: the custodian's nonce differs."""
    recorded = _captured(owner, owner.client.backup(session_id=bytes(32)), owner.custodian.backup(owner.client_id),
                         "possession")
    before, current = _rows(owner.custodian), {"CLOUD": owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current}
    tamper = _tamper_step("possession", lambda data: recorded)
    with pytest.raises(PossessionProofFailed):
        run([_ThiefDevice(owner.client, MemoryCloudStorage()).backup(session_id=bytes(32)),
             owner.custodian.backup(owner.client_id)], tamper)
    _assert_untouched(owner, before, current)


def test_proofs_of_another_kind_or_operation_never_verify(owner: Wallet) -> None:
    """A backup proof for the right nonce but of another kind (recover's backup-share domain,
    the new-backup-share domain) or another operation fails; a recover proof made for a backup's
    nonce fails as a recover proof too."""
    _owner_backup(owner, None, "CLOUD")
    signing = {curve: owner.client.signing_share(curve) for curve in ("secp256k1", "ed25519")}
    custodian_signing = {curve: owner.custodian._load_share(owner.client_id, "signing", "", curve)
                         for curve in ("secp256k1", "ed25519")}
    nonce, session_id = bytes(range(32)), bytes(32)
    context = dict(session_id=session_id, client_id=owner.client_id, method="CLOUD", nonce=nonce)
    good = possession.prove(signing, protocol="wallet/backup", kind=possession.SIGNING_SHARE, **context)
    possession.verify(custodian_signing, good, protocol="wallet/backup", kind=possession.SIGNING_SHARE, **context)
    variants = [("wallet/backup", possession.BACKUP_SHARE), ("wallet/backup", possession.NEW_BACKUP_SHARE),
                ("wallet/recover", possession.SIGNING_SHARE), ("wallet/eject", possession.SIGNING_SHARE)]
    for protocol, kind in variants:
        with pytest.raises(ProofError):
            possession.verify(custodian_signing, good, protocol=protocol, kind=kind, **context)
    for field, value in (("client_id", "another"), ("method", "PASSKEY"), ("nonce", bytes(32)),
                         ("session_id", bytes([1]) * 32)):
        with pytest.raises(ProofError):
            possession.verify(custodian_signing, good, protocol="wallet/backup", kind=possession.SIGNING_SHARE,
                              **{**context, field: value})


def test_a_stale_device_gets_share_replaced_not_a_proof_failure(owner: Wallet) -> None:
    """The owner's old device after a recover elsewhere: named as such, nothing stored, nothing counted."""
    _owner_backup(owner, None, "CLOUD")
    new_device = owner.device()
    owner.recover(new_device)
    before = _rows(owner.custodian)
    with pytest.raises(mpc.errors.ShareReplaced):
        mpc.run_local(owner.client.backup(), owner.custodian.backup(owner.client_id))
    assert _rows(owner.custodian) == before
    assert owner.custodian.failed_attempts(owner.client_id) == 0


# --- customer-kept boxes: the confirmation ------------------------------------------------------
def _forged_confirmation(client_id: str) -> dict[str, Any]:
    fake = {"secp256k1": SimpleNamespace(x1=SecretScalar.random(secp256k1)),
            "ed25519": SimpleNamespace(signing_share=SecretScalar.random(ed25519))}
    return possession.prove(fake, protocol="wallet/backup", session_id=bytes(32), client_id=client_id,
                            method="CLOUD", nonce=bytes(32), kind=possession.CONFIRM_BACKUP)


def test_a_customer_kept_version_is_promoted_only_with_its_own_confirmation(owner: Wallet) -> None:
    """The token alone, a forged proof, the confirmation of an earlier version or a malformed one:
    nothing changes and nothing counts; the owner's confirmation then promotes the new version."""
    first = _owner_backup(owner, None, "CLOUD", client_stores_backup=True)
    second, _ = mpc.run_local(owner.client.backup(client_stores_backup=True), owner.custodian.backup(owner.client_id))
    before, current = _rows(owner.custodian), {"CLOUD": owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current}
    for confirmation, error in ((None, PossessionProofFailed),
                                (_forged_confirmation(owner.client_id), PossessionProofFailed),
                                (first["confirmation"], PossessionProofFailed),
                                ({"secp256k1": {"A": "00", "z": "00"}}, mpc.errors.InputInvalid)):
        with pytest.raises(error):
            owner.custodian.stored_client_backup_share(owner.client_id, "CLOUD", confirmation)
        _assert_untouched(owner, before, current)
    _owner_recovers_and_signs(owner, None, "CLOUD", first["encrypted_backup"])
    owner.custodian.stored_client_backup_share(owner.client_id, "CLOUD", second["confirmation"])
    assert owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current != current["CLOUD"]
    _owner_recovers_and_signs(owner, None, "CLOUD", second["encrypted_backup"])


def test_an_interrupted_custodian_kept_backup_cannot_be_confirmed(owner: Wallet) -> None:
    """The device died before its boxes arrived: the pending version has no boxes, and a
    confirmation (which used to promote it) is refused; the current backup stays."""
    _owner_backup(owner, None, "CLOUD")
    current = {"CLOUD": owner.custodian.backup_versions.of(owner.client_id, "CLOUD").current}

    def drop_last(msg: Message) -> Message | None:
        return None if msg.payload.get("step") == "client_backup" else msg

    custodian = owner.custodian.backup(owner.client_id)
    with pytest.raises(Stalled):  # the custodian waits for the boxes that never come
        run([owner.client.backup(), custodian], drop_last)
    assert not custodian.done
    custodian._end()  # the device is gone: its lease would lapse
    assert owner.custodian.backup_versions.of(owner.client_id, "CLOUD").pending is not None
    before = _rows(owner.custodian)
    with pytest.raises(mpc.errors.StateInvalid):
        owner.custodian.stored_client_backup_share(owner.client_id, "CLOUD", _forged_confirmation(owner.client_id))
    _assert_untouched(owner, before, current)
    _owner_recovers_and_signs(owner, None, "CLOUD")


# --- over the service: the unmodified RemoteCustodian ---------------------------------------------
def test_a_stolen_token_backs_up_nothing_over_the_service() -> None:
    with service_with_wallet("backup-possession-tests-operator-key-01234") as (running, remote, client_id, token,
                                                                            owner):
        cloud = owner.cloud
        password = PasswordMethod(PASSPHRASE, **FAST)
        remote.backup(owner, token)
        remote.backup(owner, token, password)
        custodian = running.service.custodian
        before = _rows(custodian)
        with pytest.raises(mpc.errors.AuthFailed):  # the token and the thief's own device key: nothing starts
            remote.backup(_ThiefDevice(owner, MemoryCloudStorage()), token)
        thief = _ThiefDevice(owner, MemoryCloudStorage(), device_key_of=owner)  # token and device key, no shares
        for method in (None, PasswordMethod(PASSPHRASE, **FAST)):
            with pytest.raises(PossessionProofFailed):
                remote.backup(thief, token, method)
        with pytest.raises(PossessionProofFailed):  # customer-kept boxes: nothing pending to confirm
            remote.backup(thief, token, client_stores_backup=True)
        assert _rows(custodian) == before
        # The owner's own customer-kept backup, not confirmed yet: the token alone cannot promote it.
        remote.backup(owner, token, client_stores_backup=True)
        pending = _rows(custodian)
        for confirmation in (None, _forged_confirmation(client_id)):
            with pytest.raises(PossessionProofFailed):
                remote.stored_client_backup_share(client_id, token, "CLOUD", confirmation, device=thief)
        assert _rows(custodian) == pending
        assert custodian.failed_attempts(client_id) == 0
        view = remote.get_client(client_id, token, device=owner)
        assert {m: b["status"] for m, b in view["backups"].items()} == \
            {"CLOUD": "STORED_CLIENT_BACKUP_SHARE", "PASSWORD": "STORED_CLIENT_BACKUP_SHARE"}
        assert {m: b["pending"] for m, b in view["backups"].items()} == {"CLOUD": True, "PASSWORD": False}
        # The owner loses the phone: both backups recover on a new device, which signs.
        for method in (CloudMethod(cloud), PasswordMethod(PASSPHRASE, **FAST)):
            device = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
            _, view = remote.recover(device, token, method)
            token = view["token"]  # a completed recover replaces the client's token
            assert device.addresses() == owner.addresses()
            remote.sign(device, token, "ethereum", bytes(range(32)))
        assert custodian.failed_attempts(client_id) == 0

