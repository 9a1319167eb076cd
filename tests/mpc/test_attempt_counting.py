"""The attempt limit is exact (docs/backup.md, "Guess limit"): a password guess is counted and
evaluated in one transaction, so no number of concurrent sessions gets more than
``MAX_FAILED_ATTEMPTS`` evaluations between two successes or unlocks; and one failed attempt
counts once (the right password with a bad possession proof is one attempt, not two).

The adversary holds the client's token: it opens many recover sessions, has each parked just
before its password guess, and resumes them all at once on separate custodian processes (here:
threads, each with its own store connection) sharing one database, SQLite or PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest

import mpc
from mpc.backup.attempts import MAX_FAILED_ATTEMPTS
from mpc.backup.methods import PasswordMethod
from mpc.errors import ClientLockedOut, PossessionProofFailed
from mpc.storage.store import SQLiteStore
from protocols.rounds import Message, Session

from .conftest import new_wallet

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
PASSPHRASE = "crumpet maverick unsworn tadpole glitter reapply"
SESSIONS = 8
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # the backup at FAST limits (tests/conftest.py)


def _step(msg: Message) -> str | None:
    step = msg.payload.get("step")
    return step if isinstance(step, str) else None


def _drive_until_guess(client: Session, server: Session) -> Message:
    """Run recover until the device sends its password guess ("oprf"); returns that message,
    not delivered (the custodian session waits for it)."""
    to_server = client.start()
    server.start()
    while True:
        guess = [m for m in to_server if _step(m) == "oprf"]
        if guess:
            return guess[0]
        to_client = [out for m in to_server for out in server.receive(m)]
        to_server = [out for m in to_client for out in client.receive(m)]
        assert to_server, "recover stopped before the password guess"


def _parked_guesses(wallet: Any, count: int) -> list[tuple[bytes, Message]]:
    """``count`` recover sessions of the right password, each parked before its guess."""
    parked = []
    for _ in range(count):
        server = wallet.custodian.recover(wallet.client_id, "PASSWORD")
        guess = _drive_until_guess(wallet.device().recover(PasswordMethod(PASSPHRASE)), server)
        parked.append((server.to_bytes(), guess))
    return parked


def _resume_all_at_once(open_store: Callable[[], Any], parked: list[tuple[bytes, Message]]) -> list[str]:
    """Every parked session resumed on its own custodian (own store connection) and handed its
    guess at the same moment; each outcome is "evaluated" or "locked out"."""
    barrier = threading.Barrier(len(parked))
    outcomes: list[str] = []

    def guess(blob: bytes, msg: Message) -> None:
        store = open_store()
        try:
            session = mpc.Custodian(store).resume(blob)
            barrier.wait()
            try:
                replies = session.receive(msg)
                outcomes.append("evaluated" if [m for m in replies if _step(m) == "oprf_evaluation"] else "nothing")
            except ClientLockedOut:
                outcomes.append("locked out")
        finally:
            store.close()

    threads = [threading.Thread(target=guess, args=item) for item in parked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == len(parked)
    return outcomes


ROUNDS = (MAX_FAILED_ATTEMPTS - 1, MAX_FAILED_ATTEMPTS - 1, 4)  # attempts used before the sessions resume
MANY_ROUNDS = (MAX_FAILED_ATTEMPTS - 1,) * 10 + (0, 2, 4, 6)


def _check_the_limit_holds(custodian: mpc.Custodian, open_store: Callable[[], Any],
                           rounds: tuple[int, ...] = ROUNDS) -> None:
    wallet = new_wallet(custodian)
    wallet.generate()
    mpc.run_local(wallet.client.backup(PasswordMethod(PASSPHRASE, **FAST)),
                  custodian.backup(wallet.client_id, "PASSWORD"))
    for used_before in rounds:
        custodian.unlock(wallet.client_id)
        parked = _parked_guesses(wallet, SESSIONS)
        for _ in range(used_before):
            custodian.attempts.failed(wallet.client_id)
        outcomes = _resume_all_at_once(open_store, parked)
        left = MAX_FAILED_ATTEMPTS - used_before
        assert outcomes.count("evaluated") == min(left, SESSIONS), (used_before, outcomes)
        assert outcomes.count("locked out") == SESSIONS - min(left, SESSIONS)
        assert custodian.failed_attempts(wallet.client_id) == used_before + min(left, SESSIONS)


def test_parked_guesses_resumed_at_once_never_overshoot_the_limit_on_sqlite(tmp_path):
    path = str(tmp_path / "custodian.sqlite3")
    custodian = mpc.Custodian(SQLiteStore(path))
    _check_the_limit_holds(custodian, lambda: SQLiteStore(path))


def test_parked_guesses_resumed_at_once_never_overshoot_the_limit_on_postgresql(postgres_schema_url):
    from mpc.storage.backends import open_store

    custodian = mpc.Custodian(open_store(postgres_schema_url))
    try:
        _check_the_limit_holds(custodian, lambda: open_store(postgres_schema_url))
    finally:
        custodian.store.close()


# --- one failed attempt counts once ------------------------------------------------------------
@pytest.fixture
def password_wallet():
    wallet = new_wallet(mpc.Custodian(SQLiteStore(":memory:")))
    wallet.generate()
    mpc.run_local(wallet.client.backup(PasswordMethod(PASSPHRASE, **FAST)),
                  wallet.custodian.backup(wallet.client_id, "PASSWORD"))
    return wallet


def _recover_with_a_bad_proof(wallet: Any) -> None:
    """The right password (the guess is evaluated), then a possession proof with a flipped byte."""
    client = wallet.device().recover(PasswordMethod(PASSPHRASE))
    server = wallet.custodian.recover(wallet.client_id, "PASSWORD")
    guess = _drive_until_guess(client, server)
    to_server = [out for m in server.receive(guess) for out in client.receive(m)]
    proof = next(m for m in to_server if _step(m) == "possession")
    data = {curve: dict(item) for curve, item in proof.payload["data"].items()}
    z = data["secp256k1"]["z"]  # a big-endian scalar: a changed middle digit stays canonical
    data["secp256k1"]["z"] = z[:32] + ("1" if z[32] == "0" else "0") + z[33:]
    forged = Message(proof.protocol, proof.session_id, proof.round, proof.sender, proof.recipient,
                     {**proof.payload, "data": data})
    server.receive(forged)


def test_the_right_password_with_a_bad_proof_counts_once(password_wallet):
    with pytest.raises(PossessionProofFailed) as info:
        _recover_with_a_bad_proof(password_wallet)
    assert password_wallet.custodian.failed_attempts(password_wallet.client_id) == 1
    assert "failed attempt 1 of" in info.value.message


def test_the_last_admitted_guess_may_still_prove_possession(password_wallet):
    """The tenth guess was admitted (count 10): its possession proof is not refused as locked out."""
    custodian = password_wallet.custodian
    for _ in range(MAX_FAILED_ATTEMPTS - 1):
        custodian.attempts.failed(password_wallet.client_id)
    device = password_wallet.device()
    mpc.run_local(device.recover(PasswordMethod(PASSPHRASE)), custodian.recover(password_wallet.client_id, "PASSWORD"))
    assert device.addresses() == password_wallet.client.addresses()
    assert custodian.failed_attempts(password_wallet.client_id) == 0


@pytest.mark.slow
def test_many_rounds_of_parked_guesses_never_overshoot_the_limit(tmp_path, postgres_schema_url):
    from mpc.storage.backends import open_store

    path = str(tmp_path / "custodian.sqlite3")
    _check_the_limit_holds(mpc.Custodian(SQLiteStore(path)), lambda: SQLiteStore(path), MANY_ROUNDS)
    custodian = mpc.Custodian(open_store(postgres_schema_url))
    try:
        _check_the_limit_holds(custodian, lambda: open_store(postgres_schema_url), MANY_ROUNDS)
    finally:
        custodian.store.close()
