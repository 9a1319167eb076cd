"""The client's decryption guard: the lock is persisted before a c3 decryption completes.

A device that stops between decrypting c3 and checking the signature leaves a marker in its
keychain; the next signing operation counts it as a failed signature and locks the share
(docs/architecture.md section 5, "Two-party ECDSA"). A young marker belongs to a session still
running and is left alone.
"""

from __future__ import annotations

import struct
import time

import pytest

import mpc
from mpc import errors
from mpc.signing import DECRYPTION_MARKER_SECONDS
from protocols import paillier
from tests.mpc.conftest import Wallet, data_for, verify_result


def _markers(w: Wallet) -> list[str]:
    return [n for n in w.client.keychain.names() if ".decrypting." in n]


def test_marker_exists_exactly_while_decrypting(generated: Wallet, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = paillier.decrypt

    def spy(sk, c):  # type: ignore[no-untyped-def]
        seen.append(_markers(generated))
        return real(sk, c)

    monkeypatch.setattr(paillier, "decrypt", spy)
    data = data_for("ethereum")
    verify_result(generated.sign("ethereum", data)[0], data)
    assert len(seen) == 1 and len(seen[0]) == 1  # written before the decryption
    assert _markers(generated) == []  # and gone once the signature verified


def test_a_marker_left_by_a_crash_locks_the_share(generated: Wallet) -> None:
    stale = f"{generated.client_id}.secp256k1.decrypting.{'ab' * 32}"
    generated.client.keychain.put(stale, struct.pack(">d", time.time() - DECRYPTION_MARKER_SECONDS - 1))
    with pytest.raises(errors.KeyLockedError):
        generated.sign("ethereum", data_for("ethereum"))
    assert generated.client.signing_share("secp256k1").locked and _markers(generated) == []
    verify_result(generated.sign("solana", data_for("solana"))[0], data_for("solana"))  # ed25519 unaffected


def test_a_young_marker_is_another_session_still_running(generated: Wallet) -> None:
    running = f"{generated.client_id}.secp256k1.decrypting.{'cd' * 32}"
    generated.client.keychain.put(running, struct.pack(">d", time.time()))
    data = data_for("ethereum")
    verify_result(generated.sign("ethereum", data)[0], data)
    assert not generated.client.signing_share("secp256k1").locked
    assert running in generated.client.keychain


def test_a_damaged_marker_counts_as_a_crash(generated: Wallet) -> None:
    generated.client.keychain.put(f"{generated.client_id}.secp256k1.decrypting.{'ef' * 32}", b"?")
    with pytest.raises(errors.KeyLockedError):
        generated.sign("ethereum", data_for("ethereum"))
    assert isinstance(generated.client, mpc.Client)
