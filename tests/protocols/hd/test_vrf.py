"""The derivation key and the account VRF, played against a tampering peer through the public API:
every field of every message, bad DLEQ proofs, wrong points, replays across sessions and paths."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from curves import ed25519, group_by_name, secp256k1
from protocols.errors import InvalidMessage, ProtocolAbort, UsageError
from protocols.hd import AccountKey, AccountVRF, DerivationKeygen, DerivationKeyShare, derivation_keygen
from protocols.hd.account import account_point, account_tweak
from protocols.local import run
from protocols.rounds import Message
from protocols.transcript import Transcript
from protocols.zk import dleq

CURVES = ["secp256k1", "ed25519"]
PATHS = ["m/44'/60'/0'", "m/44'/60'/1'"]


def _vrf(shares: tuple[DerivationKeyShare, DerivationKeyShare], paths: list[str] = PATHS,
         sid: bytes | None = None) -> list[AccountVRF]:
    sid = sid or secrets.token_bytes(32)
    return [AccountVRF(sid, share, (1, 2), paths) for share in shares]


def _with(msg: Message, **payload: Any) -> Message:
    return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, {**msg.payload, **payload})


@pytest.fixture(scope="module", params=CURVES)
def keys(request: pytest.FixtureRequest) -> tuple[DerivationKeyShare, DerivationKeyShare]:
    return derivation_keygen(request.param)


def test_both_parties_get_the_same_account_tweaks_equal_to_k_times_p(keys) -> None:  # type: ignore[no-untyped-def]
    first, second = run(_vrf(keys))
    assert first == second and [a.account_path for a in first] == PATHS
    curve = keys[0].curve
    k = (keys[0].secret.value + keys[1].secret.value) % keys[0].group.order
    for result, path in zip(first, PATHS):
        assert (result.tweak, result.chain_code) == account_tweak(curve, path, account_point(curve, path) * k)
    assert first[0].tweak != first[1].tweak and first[0].chain_code != first[1].chain_code
    again = run(_vrf(keys, ["m/44h/60h/1h"]))[0]
    assert again[0] == first[1]  # deterministic: the same account in any later run


def test_another_derivation_key_gives_unrelated_accounts(keys) -> None:  # type: ignore[no-untyped-def]
    other = derivation_keygen(keys[0].curve)
    assert run(_vrf(keys))[0][0].tweak != run(_vrf(other))[0][0].tweak


def test_share_round_trip_and_repr_hides_the_secret(keys) -> None:  # type: ignore[no-untyped-def]
    share = keys[0]
    again = DerivationKeyShare.from_bytes(share.to_bytes())
    assert again.secret == share.secret and again.public_shares == share.public_shares
    assert share.secret.to_bytes().hex() not in repr(share)
    for bad in (b"{}", share.to_bytes().replace(b'"party":1', b'"party":3'), share.to_bytes()[:-2], b"\xff"):
        with pytest.raises(InvalidMessage):
            DerivationKeyShare.from_bytes(bad)


def _expect_rejected(keys, tamper: Callable[[Message], Message | None],  # type: ignore[no-untyped-def]
                     error: type[Exception] = ProtocolAbort) -> BaseException:
    with pytest.raises(error) as info:
        run(_vrf(keys), tamper=tamper)
    return info.value


def _tamper_from(sender: int, change: Callable[[Message], Message]) -> Callable[[Message], Message]:
    return lambda msg: change(msg) if msg.sender == sender else msg


@pytest.mark.parametrize("sender", [1, 2])
def test_a_wrong_value_is_caught_by_its_dleq_proof(keys, sender: int) -> None:  # type: ignore[no-untyped-def]
    group = keys[0].group

    def wrong_value(msg: Message) -> Message:
        values = list(msg.payload["V"])
        values[1] = (group.decode_point(bytes.fromhex(values[1])) + group.generator()).to_bytes().hex()
        return _with(msg, V=values)

    abort = _expect_rejected(keys, _tamper_from(sender, wrong_value))
    assert isinstance(abort, ProtocolAbort) and abort.culprit == sender


@pytest.mark.parametrize("field", ["A", "B", "z"])
def test_each_proof_field_is_checked(keys, field: str) -> None:  # type: ignore[no-untyped-def]
    group = keys[0].group

    def bad_proof(msg: Message) -> Message:
        proofs = [dict(p) for p in msg.payload["proofs"]]
        if field == "z":
            proofs[0]["z"] = group.encode_scalar((group.decode_scalar(bytes.fromhex(proofs[0]["z"])) + 1)
                                                 % group.order).hex()
        else:
            point = group.decode_point(bytes.fromhex(proofs[0][field])) + group.generator()
            proofs[0][field] = point.to_bytes().hex()
        return _with(msg, proofs=proofs)

    assert _expect_rejected(keys, _tamper_from(2, bad_proof)).culprit == 2  # type: ignore[attr-defined]


def test_swapped_paths_and_honest_proofs_for_a_wrong_base_are_refused(keys) -> None:  # type: ignore[no-untyped-def]
    def swap(msg: Message) -> Message:
        return _with(msg, V=list(reversed(msg.payload["V"])), proofs=list(reversed(msg.payload["proofs"])))

    assert _expect_rejected(keys, _tamper_from(1, swap)).culprit == 1  # type: ignore[attr-defined]
    # A malicious custodian that proves a value for another base (another path) is caught too.
    base = account_point(keys[1].curve, "m/9'")

    def other_base(msg: Message) -> Message:
        value = base * keys[1].secret.value
        proof = dleq.prove(keys[1].secret, base, _ctx(msg, "m/44'/60'/0'", keys[1].curve))
        return _with(msg, V=[value.to_bytes().hex(), msg.payload["V"][1]],
                     proofs=[proof.to_payload(), msg.payload["proofs"][1]])

    assert _expect_rejected(keys, _tamper_from(2, other_base)).culprit == 2  # type: ignore[attr-defined]


def _ctx(msg: Message, path: str, curve: str) -> Transcript:
    """The transcript the session binds a proof to (protocols.hd.vrf): a proof made here is valid
    for its own base, so only the base check can refuse it."""
    t = Transcript.for_context("hd/vrf/dleq", protocol="hd/vrf", session_id=msg.session_id, round=1, parties=(1, 2))
    t.append_int("prover", msg.sender)
    t.append_bytes("curve", curve.encode())
    t.append_bytes("account_path", path.encode())
    return t


@pytest.mark.parametrize("change", ["identity", "off_curve", "short", "missing", "extra_item", "not_list"])
def test_malformed_fields_are_invalid_and_leave_the_session_usable(keys, change: str) -> None:  # type: ignore[no-untyped-def]
    client, custodian = _vrf(keys)
    first = client.start()[0]
    custodian.start()
    values = list(first.payload["V"])
    identity = keys[0].group.identity_encoding().hex()
    bad = {
        "identity": _with(first, V=[identity, values[1]]),
        "off_curve": _with(first, V=["02" + "ff" * 32 if keys[0].curve == "secp256k1" else "ff" * 32, values[1]]),
        "short": _with(first, V=[values[0][:-2], values[1]]),
        "missing": Message(first.protocol, first.session_id, 1, 1, None, {"V": values}),
        "extra_item": _with(first, V=values + values[:1]),
        "not_list": _with(first, proofs={"a": 1}),
    }[change]
    with pytest.raises(InvalidMessage):
        custodian.receive(bad)
    custodian.receive(first)  # the honest message still works: the state was unchanged
    assert custodian.done


def test_replays_from_another_session_or_party_are_refused(keys) -> None:  # type: ignore[no-untyped-def]
    old_client, _ = _vrf(keys)
    old = old_client.start()[0]
    client, custodian = _vrf(keys)
    custodian.start()
    with pytest.raises(InvalidMessage):
        custodian.receive(old)  # another session id
    # the same payload re-wrapped in this session: its proofs are bound to the old session id
    with pytest.raises(ProtocolAbort):
        custodian.receive(Message(old.protocol, client.session_id, 1, 1, None, old.payload))
    # a party's own message reflected back to it
    client2, custodian2 = _vrf(keys)
    own = client2.start()[0]
    custodian2.start()
    with pytest.raises(InvalidMessage):
        client2.receive(own)


def test_derivation_keygen_refuses_a_bad_proof_and_an_echoed_share() -> None:
    sid = secrets.token_bytes(32)

    def bad(msg: Message) -> Message:
        proof = dict(msg.payload["proof"])
        proof["z"] = "00" * 31 + "01"
        return _with(msg, proof=proof) if msg.sender == 2 else msg

    with pytest.raises(ProtocolAbort) as info:
        run([DerivationKeygen(sid, p, (1, 2), "ed25519") for p in (1, 2)], tamper=bad)
    assert info.value.culprit == 2
    with pytest.raises(UsageError):
        DerivationKeygen(sid, 1, (1, 2), "p256")


def test_usage_errors() -> None:
    keys = derivation_keygen("secp256k1")
    for paths in ([], ["m/0'/1"], ["m/1'", "m/1h"], ["m/%d'" % i for i in range(17)]):
        with pytest.raises(UsageError):
            AccountVRF(bytes(32), keys[0], (1, 2), paths)


def test_account_key_round_trip_and_extended_keys() -> None:
    for curve in CURVES:
        group = group_by_name(curve)
        account = AccountKey.from_root(curve, "m/44h/0h/3h", group.base_mul(7), 11, bytes(range(32)))
        assert account.public_key == group.base_mul(18) and account.account_path == "m/44'/0'/3'"
        assert AccountKey.from_bytes(account.to_bytes()) == account
        key, tweak = account.child((0, 1))
        assert key == group.base_mul(7 + tweak)
    xpub = AccountKey.from_root("secp256k1", "m/84'/0'/0'", secp256k1.base_mul(7), 11, bytes(32)).extended_public_key()
    assert xpub.startswith("xpub")
    assert len(AccountKey.from_root("ed25519", "m/0'", ed25519.base_mul(7), 1, bytes(32)).extended_public_key()) == 128
