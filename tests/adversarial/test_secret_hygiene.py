"""Secret hygiene: no secret value in any repr, str, format, log record or exception message.

Each secret-holding object is rendered every way Python renders objects (``repr``, ``str``,
``format``, f-strings) and the text is searched for the secret in every spelling a leak would
use: hex (minimal, 32-byte big- and little-endian), decimal, and the raw bytes' hex. A whole
wallet lifecycle runs with logging captured at DEBUG, including failing runs (a crafted c3 that
locks the key, a tampered backup, hostile messages), and every log record and every exception
message (with its causes) is searched the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

import mpc
from curves import SecretScalar, ed25519, secp256k1
from mpc import errors
from mpc.backup.methods import BackupContext, PasswordMethod, encrypt_backup
from mpc.signing import sign_protocol
from protocols import ecdsa2p, frost, hd, paillier
from protocols.ecdsa2p import SignP1, SignP2
from protocols.errors import MPCError
from protocols.frost import round1
from protocols.local import run
from protocols.rounds import Message
from tests.adversarial.harness import DIGEST, MESSAGE, copy_p1, ecdsa_pair, new_sid, new_wallet
from tests.fixtures import ring_pedersen_sets


def spellings(value: int | bytes) -> set[str]:
    """How a secret could appear in text."""
    if isinstance(value, bytes):
        return {value.hex(), value.hex().upper()} if len(value) >= 8 else set()
    out = {f"{value:x}", f"{value:X}", str(value)}
    size = max(32, (value.bit_length() + 7) // 8)
    out |= {value.to_bytes(size, "big").hex(), value.to_bytes(size, "little").hex()}
    return {s for s in out if len(s) >= 16}  # a short number could appear by chance


def renderings(obj: Any) -> Iterator[str]:
    yield repr(obj)
    yield str(obj)
    yield format(obj, "")
    yield f"{obj}"
    yield f"{obj!r}"


def assert_clean(texts: Iterable[str], secrets_: Iterable[int | bytes], where: str) -> None:
    needles = set().union(*(spellings(s) for s in secrets_))
    for text in texts:
        for needle in needles:
            assert needle not in text, f"a secret appears in {where}: {text[:120]}"


def secrets_of(obj: Any) -> list[int | bytes]:
    """The secret values held by a secret-holding object."""
    if isinstance(obj, SecretScalar):
        return [obj.value, obj.to_bytes()]
    if isinstance(obj, paillier.PaillierSecretKey):
        return [obj.p, obj.q, obj.phi]
    if isinstance(obj, ecdsa2p.P1KeyShare):
        return secrets_of(obj.x1) + (secrets_of(obj.paillier) if obj.paillier else [])
    if isinstance(obj, ecdsa2p.P2KeyShare):
        return secrets_of(obj.x2)
    if isinstance(obj, frost.KeyShare):
        return secrets_of(obj.signing_share)
    if isinstance(obj, hd.DerivationKeyShare):
        return secrets_of(obj.secret)
    if isinstance(obj, mpc.client.EjectedKeys):
        return [obj.secp256k1_private_key, obj.ed25519_scalar, *obj.derivation_keys.values()]
    if isinstance(obj, ecdsa2p.CustodianSetup):
        return [obj.secret.p, obj.secret.q, obj.secret.lam]
    if hasattr(obj, "lam") and hasattr(obj, "p"):  # RingPedersenSecret
        return [obj.p, obj.q, obj.lam]
    if isinstance(obj, round1.SigningNonces):
        return [n for pair in [obj._nonces or ()] for s in pair for n in secrets_of(s)]
    raise TypeError(type(obj))


def test_secret_objects_render_no_secret() -> None:
    p1, p2 = ecdsa_pair()
    setup = ecdsa2p.default_setup()
    params, rp_secret = ring_pedersen_sets()[0]
    shares = frost.dkg(2, 2)
    nonces = round1.commit(1, shares[0].signing_share)
    derivation = hd.derivation_keygen("ed25519")
    ejected = mpc.client.EjectedKeys(secp256k1.encode_scalar(7), secp256k1.base_mul(7).to_bytes(), bytes(32),
                                     ed25519.base_mul(1).to_bytes(), {"ed25519": ed25519.encode_scalar(12345)})
    objects = [p1, p2, p1.x1, p2.x2, p1.paillier, setup, rp_secret, shares[0], shares[1],
               shares[0].signing_share, nonces, derivation[0], derivation[1], p2.tweaked(5), shares[1].tweaked(5),
               ejected]
    for obj in objects:
        assert_clean(renderings(obj), secrets_of(obj), type(obj).__name__)


def test_sessions_in_mid_run_render_no_secret() -> None:
    p1, p2 = ecdsa_pair()
    sid = new_sid()
    client, custodian = SignP1(sid, copy_p1(p1), DIGEST), SignP2(sid, p2, DIGEST)
    custodian.start()
    custodian.receive(client.start()[0])
    shares = frost.trusted_dealer_keygen(2, 2)
    fsid = new_sid()
    signer = frost.SignSession(fsid, shares[0], (1, 2), MESSAGE)
    signer.start()
    keygen = ecdsa2p.KeygenP1(new_sid())
    keygen.start()
    secret_values = (secrets_of(p1) + secrets_of(p2) + secrets_of(client._k1) + secrets_of(custodian._k2)
                     + secrets_of(shares[0]) + secrets_of(signer._nonces) + secrets_of(keygen._x1))
    for session in (client, custodian, signer, keygen):
        assert_clean(renderings(session), secret_values, type(session).__name__)


def _exception_texts(exc: BaseException) -> list[str]:
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts += [str(seen), repr(seen), "".join(traceback.format_exception_only(type(seen), seen))]
        if isinstance(seen, errors.EngineError):
            texts.append(str(seen.to_json()))
        seen = seen.__cause__ or seen.__context__
    return texts


def test_wallet_lifecycle_logs_and_errors_show_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    secret_values: list[int | bytes] = []
    wallet = new_wallet(generate=False)
    custodian, client, cid = wallet.custodian, wallet.client, wallet.client_id

    def expect_failure(make: Any, tamper: Any = None) -> None:
        with pytest.raises(MPCError) as info:
            run(make(), tamper=tamper)
        texts.extend(_exception_texts(info.value))

    mpc.run_local(client.generate(), custodian.generate(cid))
    mpc.run_local(client.backup(), custodian.backup(cid))
    password = PasswordMethod("violet tractor moss lantern quibble fjord")
    mpc.run_local(client.backup(password), custodian.backup(cid, "PASSWORD"))
    for chain, data in (("ethereum", DIGEST), ("solana", MESSAGE)):
        mpc.run_local(client.sign(chain, data), custodian.sign(cid, chain, data))
    for curve in ("secp256k1", "ed25519"):
        secret_values += secrets_of(client.signing_share(curve))
        secret_values += secrets_of(mpc.wallet.decode_share(curve, 2, custodian.store.get_share(cid, "signing", "", curve)))
        secret_values += secrets_of(mpc.wallet.decode_share(curve, 2, custodian.store.get_share(cid, "backup", custodian.backup_versions.current_name(cid, "CLOUD"), curve)))
    secret_values += secrets_of(custodian.setup)
    secret_values += [b"violet tractor moss lantern quibble fjord"]
    texts += list(renderings(password)) + list(renderings(client)) + list(renderings(custodian))

    # Failing runs: a wrong password, a tampered backup box, hostile messages, a crafted c3.
    device = wallet.device()
    expect_failure(lambda: [device.recover(PasswordMethod("wrong")), custodian.recover(cid, "PASSWORD")])

    def flip_box(msg: Message) -> Message:
        if msg.payload.get("step") != "client_backup":
            return msg
        data = {curve: {**item, "box": item["box"][:-2] + ("00" if item["box"][-2:] != "00" else "01")}
                for curve, item in msg.payload["data"]["boxes"].items()}
        return dataclasses.replace(msg, payload={"step": "client_backup",
                                                 "data": {**msg.payload["data"], "boxes": data}})

    expect_failure(lambda: [device.recover(), custodian.recover(cid)], flip_box)
    pk = client.signing_share("secp256k1").paillier.public_key

    def crafted_c3(msg: Message) -> Message:
        if msg.protocol == "ecdsa2p/sign" and msg.sender == 2 and msg.round == 4:  # P2's c3 (mpc.signing)
            return dataclasses.replace(msg, payload={"c3": paillier.encode_ciphertext(paillier.encrypt(pk, 7)[0])})
        return msg

    expect_failure(lambda: [client.sign("ethereum", DIGEST), custodian.sign(cid, "ethereum", DIGEST)], crafted_c3)
    for hostile in ({"hello/client_id": [1] * 3}, {"hello": {"client_id": [1] * 3}, "message": {}},
                    {"step": "hello", "data": {"client_id": [1] * 3}},
                    {"child": "secp256k1", "message": {}}):
        session = custodian.sign(cid, "solana", MESSAGE)
        session.start()
        with pytest.raises(MPCError) as info:
            session.receive(Message(sign_protocol("ed25519"), new_sid(), 1, 1, 2, hostile))
        texts.extend(_exception_texts(info.value))

    # Recover (the lock is cleared by fresh shares) and eject (the whole private keys).
    fresh = wallet.device()
    mpc.run_local(fresh.recover(), custodian.recover(cid))
    ejected, _ = mpc.run_local(fresh.eject(), custodian.eject(cid))
    secret_values += [ejected.secp256k1_private_key, ejected.ed25519_scalar,
                      int.from_bytes(ejected.secp256k1_private_key, "big"),
                      int.from_bytes(ejected.ed25519_scalar, "little")]
    for curve in ("secp256k1", "ed25519"):
        secret_values += secrets_of(fresh.signing_share(curve))
    texts += list(renderings(ejected))
    key, box = encrypt_backup(b"share bytes", BackupContext(cid, "secp256k1"))
    secret_values.append(key)

    texts += [record.getMessage() for record in caplog.records]
    texts += [logging.Formatter().format(record) for record in caplog.records]
    texts += [caplog.text]
    assert_clean(texts, secret_values, "wallet lifecycle output")
    assert secp256k1.base_mul(int.from_bytes(ejected.secp256k1_private_key, "big")).to_bytes() == \
        ejected.secp256k1_public_key
    assert ed25519.base_mul(int.from_bytes(ejected.ed25519_scalar, "little")).to_bytes() == ejected.ed25519_public_key
