"""Fast signing without single-use secrets on the device, and rollback (device and database restores).

A malicious custodian (or anyone) holding a device backup and a database snapshot tries to make
the engine sign two messages with one nonce: ECDSA r, or FROST's commitments (R), must never
repeat, whatever is restored; single-use custodian state must not come back with a restore.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.errors import InputInvalid, KeyLockedError, StateInvalid
from mpc.presign import MAX_PRESIGN_COUNT, PrecomputationPool
from protocols.state import registered_names
from protocols.errors import MPCError, UsageError
from tests.mpc.conftest import Wallet, data_for, verify_result


def presign(w: Wallet, count: int):
    return mpc.run_local(w.client.presign(count), w.custodian.presign(w.client_id, count))


def test_presign_fills_the_custodian_pool_only(generated: Wallet) -> None:
    before = set(generated.client.keychain.names())
    client_counts, custodian_counts = presign(generated, 3)
    assert client_counts == custodian_counts == {"secp256k1": 3, "ed25519": 0}
    assert set(generated.client.keychain.names()) == before  # the device stores nothing
    for chain in ("ethereum", "solana"):
        data = data_for(chain, b"fast")
        result, _ = mpc.run_local(generated.client.sign_presigned(chain, data),
                                  generated.custodian.sign_presigned(generated.client_id, chain, data))
        verify_result(result, data)
    assert generated.custodian.presignature_count(generated.client_id)["secp256k1"] == 2


def test_signing_takes_one_precomputation_and_works_without(generated: Wallet) -> None:
    presign(generated, 1)
    data = data_for("ethereum")
    verify_result(generated.sign("ethereum", data)[0], data)
    assert generated.custodian.presignature_count(generated.client_id)["secp256k1"] == 0
    verify_result(generated.sign("ethereum", data)[0], data)  # empty pool: fresh nonces online


def test_presign_count_is_bounded_and_a_locked_share_asks_for_nothing(generated: Wallet) -> None:
    for bad in (0, MAX_PRESIGN_COUNT + 1, True, "2"):
        with pytest.raises(InputInvalid):
            generated.client.presign(bad)  # type: ignore[arg-type]
    share = generated.client.signing_share("secp256k1")
    share.lock()
    generated.client.keychain.put(generated.client._entry("secp256k1"), share.to_bytes())
    with pytest.raises(KeyLockedError):
        generated.client.presign(1)


def test_precomputations_of_an_older_key_are_never_taken(generated: Wallet) -> None:
    custodian, cid = generated.custodian, generated.client_id
    presign(generated, 2)
    old_share = custodian._load_share(cid, "signing", "", "secp256k1")
    generated.backup()
    fresh = generated.device()
    generated.recover(fresh)  # new Paillier key: the two precomputations no longer fit
    new_share = custodian._load_share(cid, "signing", "", "secp256k1")
    assert custodian.presignature_count(cid)["secp256k1"] == 0
    assert custodian.precomputations.take(cid, new_share) is None
    assert custodian.precomputations.take(cid, old_share) is None  # dropped when the key changed
    presign(Wallet(custodian, cid, fresh, generated.cloud), 2)
    assert custodian.presignature_count(cid)["secp256k1"] == 2


def test_the_pool_lives_in_memory_only(generated: Wallet) -> None:
    """Nothing of the pool reaches the store or a parked state: a restore cannot bring one back."""
    import pickle

    presign(generated, 2)
    custodian = generated.custodian
    assert custodian.store._execute("SELECT COUNT(*) FROM presignatures").fetchone()[0] == 0
    with pytest.raises(TypeError):
        pickle.dumps(custodian.precomputations)
    assert "protocols.ecdsa2p.sign.C3Precomputation" not in registered_names()
    other = mpc.Custodian(custodian.store)  # another process: its own, empty pool
    assert other.presignature_count(generated.client_id)["secp256k1"] == 0


def test_the_pool_is_bounded_per_client(generated: Wallet) -> None:
    share = generated.custodian._load_share(generated.client_id, "signing", "", "secp256k1")
    pool = PrecomputationPool(per_client=3, clients=1)
    assert pool.fill("a", share, 2) == 2
    assert pool.fill("a", share, 2) == 3
    assert pool.fill("b", share, 1) == 1
    assert pool.count("a", share) == 0  # only one client's pool is kept: the oldest went
    assert pool.take("b", share) is not None and pool.take("b", share) is None


def test_client_signing_sessions_cannot_be_parked(generated: Wallet) -> None:
    """A device never stores a nonce: its signing sessions refuse to be serialised."""
    for chain in ("ethereum", "solana"):
        session = generated.client.sign(chain, data_for(chain))
        session.start()
        with pytest.raises((UsageError, TypeError, MPCError)):
            session.to_bytes()


def _sign_all(w: Wallet, chain: str, messages: list[bytes]) -> list[bytes]:
    out = []
    for data in messages:
        result, _ = w.sign(chain, data)
        verify_result(result, data)
        out.append(result.signature[:32])  # ECDSA r, or FROST's R
    return out


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
def test_restored_device_and_database_never_reuse_a_nonce(tmp_path: Path, chain: str) -> None:
    """Snapshot the device keychain and the custodian database, sign, restore both, sign another
    message (several times): every signature has its own nonce."""
    db, keychain = tmp_path / "custodian.sqlite3", tmp_path / "device"
    cloud = MemoryCloudStorage()

    def open_wallet(cid: str | None = None) -> Wallet:
        custodian = mpc.Custodian(mpc.SQLiteStore(str(db)))
        cid = cid or custodian.create_client()
        return Wallet(custodian, cid, mpc.Client(cid, mpc.FileKeychain(keychain), cloud=cloud), cloud)

    w = open_wallet()
    w.generate()
    presign(w, 4)
    w.custodian.store.close()
    shutil.copy(db, tmp_path / "db.snapshot")
    shutil.copytree(keychain, tmp_path / "keychain.snapshot")
    nonces = []
    for round_no in range(3):
        w = open_wallet(w.client_id)
        nonces += _sign_all(w, chain, [data_for(chain, f"message {round_no}-{k}".encode()) for k in range(2)])
        w.custodian.store.close()
        shutil.copy(tmp_path / "db.snapshot", db)  # the restore
        shutil.rmtree(keychain)
        shutil.copytree(tmp_path / "keychain.snapshot", keychain)
    assert len(set(nonces)) == len(nonces) == 6
    # No operator step is needed after a restore; the nonce epoch still works (defence in depth).
    w = open_wallet(w.client_id)
    assert w.custodian.presignature_count(w.client_id) == {"secp256k1": 0, "ed25519": 0}
    w.custodian.bump_nonce_epoch()
    verify_result(w.sign(chain, data_for(chain))[0], data_for(chain))


def test_a_parked_custodian_signing_session_resumes_once(generated: Wallet) -> None:
    """The custodian's ECDSA session between rounds holds k2: a parked copy resumes only once,
    through any public API, and not at all after the nonce epoch moved on."""
    data = data_for("ethereum")
    client = generated.client.sign("ethereum", data)
    custodian = generated.custodian.sign(generated.client_id, "ethereum", data)
    hello = client.start()
    custodian.start()
    outbox = [reply for msg in hello for reply in custodian.receive(msg)]
    parked = custodian.to_bytes()
    generated.custodian.resume(parked)
    with pytest.raises(StateInvalid):
        generated.custodian.resume(parked)
    again = generated.custodian.sign(generated.client_id, "ethereum", data)
    again.start()
    for msg in hello:
        again.receive(msg)
    parked_again = again.to_bytes()
    generated.custodian.bump_nonce_epoch()
    with pytest.raises(StateInvalid):
        generated.custodian.resume(parked_again)
    assert outbox  # the custodian had answered with R2: its k2 was in the parked state
