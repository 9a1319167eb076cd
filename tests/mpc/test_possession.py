"""Backup material leaves the custodian only to a client that proves it holds its backup share.

The adversary is a thief holding the client id and token (or a compromised device) but not the
backup key: it can ask for an eject or a recover and forge, replay or swap the "possession"
proofs; it gets no custodian backup share, starts no reshare, and every failure counts until the
client is locked out (then only an operator's unlock lets anyone try again).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

import mpc
from curves import SecretScalar, ed25519, secp256k1
from mpc.backup import possession
from mpc.backup.attempts import MAX_FAILED_ATTEMPTS
from mpc.errors import AuthFailed, ClientLockedOut, PossessionProofFailed
from protocols.errors import InvalidMessage
from protocols.local import run
from protocols.rounds import Message

from .conftest import Wallet, service_with_wallet


def _replace_possession(new_data: Any):
    """A tamper hook that swaps the client's possession step for ``new_data(msg)``."""
    seen: list[Message] = []

    def tamper(msg: Message) -> Message:
        seen.append(msg)
        if msg.payload.get("step") != "possession":
            return msg
        payload = {"step": "possession", "data": new_data(msg)}
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, payload)

    return tamper, seen


def _forged_proofs(msg: Message, nonce: bytes = bytes(32)) -> dict[str, Any]:
    """Proofs of knowledge of random scalars: what a thief without the backup key can make."""
    fake = {"secp256k1": SimpleNamespace(x1=SecretScalar.random(secp256k1)),
            "ed25519": SimpleNamespace(signing_share=SecretScalar.random(ed25519))}
    return possession.prove(fake, protocol=msg.protocol, session_id=msg.session_id, client_id="x",
                            method="CLOUD", nonce=nonce)


def _steps_from_custodian(seen: list[Message]) -> set[str]:
    return {m.payload.get("step") for m in seen if m.sender == mpc.wallet.CUSTODIAN_PARTY}


def _children_from_custodian(seen: list[Message]) -> int:
    return sum(1 for m in seen if m.sender == mpc.wallet.CUSTODIAN_PARTY and "child" in m.payload)


@pytest.fixture
def backed_up(generated: Wallet) -> Wallet:
    generated.backup()
    return generated


@pytest.mark.parametrize("operation", ["eject", "recover"])
def test_forged_possession_proof_releases_nothing_and_counts(backed_up: Wallet, operation: str) -> None:
    device = backed_up.device()
    tamper, seen = _replace_possession(_forged_proofs)
    with pytest.raises(PossessionProofFailed) as failure:
        run([getattr(device, operation)(), getattr(backed_up.custodian, operation)(backed_up.client_id)], tamper)
    assert failure.value.culprit == mpc.wallet.CLIENT_PARTY
    assert "eject" not in _steps_from_custodian(seen)  # no custodian backup share went out
    assert _children_from_custodian(seen) == 0  # no reshare started
    assert backed_up.custodian.failed_attempts(backed_up.client_id) == 1
    assert backed_up.custodian.get_client(backed_up.client_id)["ejected"] is False
    # The operation lock was released: the honest owner goes on at once, and a success resets the count.
    mpc.run_local(backed_up.client.eject(), backed_up.custodian.eject(backed_up.client_id))
    assert backed_up.custodian.failed_attempts(backed_up.client_id) == 0


def test_a_replayed_proof_from_an_honest_session_fails(backed_up: Wallet) -> None:
    """Even with the same session id: the custodian's nonce is fresh in every session."""
    honest: list[Message] = []
    _, _ = run([backed_up.client.eject(session_id=bytes(32)), backed_up.custodian.eject(backed_up.client_id)],
               lambda m: honest.append(m) or m)
    captured = next(m for m in honest if m.payload.get("step") == "possession").payload["data"]
    tamper, seen = _replace_possession(lambda msg: captured)
    with pytest.raises(PossessionProofFailed):
        run([backed_up.device().eject(session_id=bytes(32)), backed_up.custodian.eject(backed_up.client_id)],
            tamper)
    assert "eject" not in _steps_from_custodian(seen)


def test_a_proof_bound_to_another_nonce_fails(backed_up: Wallet) -> None:
    tamper, seen = _replace_possession(lambda msg: _forged_proofs(msg, nonce=b"\x01" * 32))
    with pytest.raises(PossessionProofFailed):
        run([backed_up.client.eject(), backed_up.custodian.eject(backed_up.client_id)], tamper)
    assert "eject" not in _steps_from_custodian(seen)


def test_proofs_swapped_between_curves_are_malformed_and_change_nothing(backed_up: Wallet) -> None:
    """A secp256k1 proof does not decode on ed25519: the message is refused, nothing counted,
    the session unchanged (the honest proof can still follow)."""
    client, custodian = backed_up.client.eject(), backed_up.custodian.eject(backed_up.client_id)
    hello = client.start()
    (client_backup,) = custodian.start() + custodian.receive(hello[0])
    (proofs,) = client.receive(client_backup)
    data = proofs.payload["data"]
    swapped = Message(proofs.protocol, proofs.session_id, proofs.round, proofs.sender, proofs.recipient,
                      {"step": "possession", "data": {"secp256k1": data["ed25519"], "ed25519": data["secp256k1"]}})
    with pytest.raises(InvalidMessage):
        custodian.receive(swapped)
    assert backed_up.custodian.failed_attempts(backed_up.client_id) == 0
    (eject,) = custodian.receive(proofs)
    assert eject.payload["step"] == "eject"


def test_lockout_after_the_limit_until_an_operator_unlocks(backed_up: Wallet) -> None:
    for attempt in range(MAX_FAILED_ATTEMPTS):
        tamper, _ = _replace_possession(_forged_proofs)
        with pytest.raises(PossessionProofFailed, match=f"{attempt + 1} of {MAX_FAILED_ATTEMPTS}"):
            run([backed_up.device().eject(), backed_up.custodian.eject(backed_up.client_id)], tamper)
    # Locked out: even the honest owner (who has the key) is refused before anything is sent.
    for operation in ("eject", "recover"):
        with pytest.raises(ClientLockedOut):
            getattr(backed_up.custodian, operation)(backed_up.client_id)
    assert ClientLockedOut.status == 423
    backed_up.custodian.unlock(backed_up.client_id)
    device = backed_up.device()
    mpc.run_local(device.recover(), backed_up.custodian.recover(backed_up.client_id))
    assert backed_up.custodian.failed_attempts(backed_up.client_id) == 0
    backed_up.sign("ethereum", bytes(range(32)), client=device)


def test_lockout_survives_a_new_custodian_on_the_same_store(backed_up: Wallet) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS):
        tamper, _ = _replace_possession(_forged_proofs)
        with pytest.raises(PossessionProofFailed):
            run([backed_up.device().eject(), backed_up.custodian.eject(backed_up.client_id)], tamper)
    restarted = mpc.Custodian(backed_up.custodian.store)
    with pytest.raises(ClientLockedOut):
        restarted.eject(backed_up.client_id)


def test_a_device_without_the_backup_key_never_reaches_the_backup_shares(backed_up: Wallet) -> None:
    """A thief's device with the token but an empty cloud: it cannot even build a proof."""
    thief = mpc.Client(backed_up.client_id, mpc.MemoryKeychain(), cloud=mpc.backup.methods.MemoryCloudStorage())
    seen: list[Message] = []
    with pytest.raises(mpc.errors.EngineError):
        run([thief.eject(), backed_up.custodian.eject(backed_up.client_id)], lambda m: seen.append(m) or m)
    assert "eject" not in _steps_from_custodian(seen)


# --- over the wire: a thief holding a client's token ------------------------------------------
class _ThiefEject(mpc.client.ClientEject):
    """A device that has the token but not the backup key: it forges its possession proofs."""

    def _decode_step(self, name, data, sender):
        if name == "client_backup":
            return "opened", {"secp256k1": SimpleNamespace(x1=SecretScalar.random(secp256k1)),
                              "ed25519": SimpleNamespace(signing_share=SecretScalar.random(ed25519))}, \
                bytes.fromhex(data["nonce"])
        return super()._decode_step(name, data, sender)

    def _on_backup_opened(self, shares):
        return []


def test_a_stolen_token_ejects_nothing_over_the_service() -> None:
    with service_with_wallet("possession-tests-operator-key-0123456789") as (running, remote, client_id, token,
                                                                          owner):
        remote.backup(owner, token)
        # A token thief on its own device: refused before anything (its key is not the client's).
        thief = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=mpc.backup.methods.MemoryCloudStorage())
        session = _ThiefEject(thief, bytes(range(32)), mpc.backup.methods.CloudMethod(thief.cloud), None)
        with pytest.raises(AuthFailed):
            remote.run("eject", session, client_id, token, {"method": "CLOUD"})
        assert running.service.custodian.failed_attempts(client_id) == 0
        # A thief of the token and the device (its keychain) but not of the backup: no possession.
        thief = mpc.Client(client_id, owner.keychain, cloud=mpc.backup.methods.MemoryCloudStorage())
        session = _ThiefEject(thief, bytes(range(1, 33)), mpc.backup.methods.CloudMethod(thief.cloud), None)
        with pytest.raises(PossessionProofFailed):
            remote.run("eject", session, client_id, token, {"method": "CLOUD"})
        assert not session.done
        view = remote.get_client(client_id, token, device=owner)
        assert view["ejected"] is False
        assert running.service.custodian.failed_attempts(client_id) == 1
        # The owner's eject still works (and its success resets the count).
        owner_result, _ = remote.eject(owner, token)
        assert owner_result.secp256k1_public_key == owner.public_keys()["secp256k1"]
