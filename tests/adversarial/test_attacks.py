"""Known attacks on two-party ECDSA, FROST and the wallet, played with the malicious-party harness.

This file adds what ``tests/protocols/ecdsa2p/test_attacks.py`` (keygen/refresh moduli, c_key,
replays, crafted c3 locks, bad points, r = 0), ``tests/protocols/frost/test_frost_tampering.py``
(every field of every FROST round) and ``tests/mpc/test_wallet_faults.py`` (the bit-leak lock
through the wallet) do not already show; ``docs/threat-model.md`` maps each attack to its test.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest

import mpc
from curves import ed25519
from mpc import errors
from protocols import ecdsa2p, frost, paillier
from protocols.ecdsa2p import CLIENT, CUSTODIAN, KeygenP1, KeygenP2, ReshareP1, ReshareP2, SignP1, SignP2
from protocols.ecdsa2p.setup import CustodianSetup, CustodianSetupPublic, _mod_transcript, _prm_transcript
from protocols.encoding import encode_nat
from protocols.errors import FutureMessage, InvalidMessage, ProtocolAbort
from protocols.ring_pedersen import RingPedersenParams
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.rounds import Message
from protocols.zk import mod, prm
from protocols.frost.broadcast import view_hash
from protocols.frost.helpers import SigningCommitments, encode_group_commitment_list
from protocols.zk.params import M_ITERATIONS
from tests.adversarial.harness import (
    DIGEST, MESSAGE, Malicious, Scripted, check_ecdsa, copy_p1, drive, ecdsa_pair, frost_shares, new_sid,
    new_wallet,
)
from tests.fixtures import malformed_moduli, paillier_keys, ring_pedersen_sets
from tests.protocols.ecdsa2p.test_attacks import bad_modulus_prover

reshare_module = importlib.import_module("protocols.ecdsa2p.reshare")


def payload_edit(round_no: int, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Message], Message]:
    """A rewrite that edits the payload of the party's message of ``round_no``."""

    def rewrite(msg: Message) -> Message:
        if msg.round != round_no:
            return msg
        return dataclasses.replace(msg, payload=edit(_plain(msg.payload)))

    return rewrite


def child_edit(child: str, round_no: int, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Message], Message]:
    """A wallet-level rewrite: edit the payload of child ``child``'s round ``round_no`` message."""

    def rewrite(msg: Message) -> Message:
        inner = msg.payload.get("message")
        if msg.payload.get("child") != child or inner is None or inner["round"] != round_no:
            return msg
        new_inner = {**_plain(inner), "payload": edit(_plain(inner["payload"]))}
        return dataclasses.replace(msg, payload={"child": child, "message": new_inner})

    return rewrite


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def keygen_pair(setup: CustodianSetup | None = None) -> list[Any]:
    sid = new_sid()
    return [KeygenP1(sid, known=[]), KeygenP2(sid, setup or ecdsa2p.default_setup(), known=[])]


# --- Paillier modulus attacks at wallet recover (BitForge CVE-2023-33241, Alpha-Rays) -------------------
@pytest.mark.parametrize("name", sorted(malformed_moduli()))
def test_bad_paillier_modulus_at_wallet_recover_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A malicious client device proves a malformed modulus during recover: no new shares."""
    wallet = new_wallet(backup=True)
    before = wallet.custodian.store.get_share(wallet.client_id, "signing", "", "secp256k1")
    n, factors = malformed_moduli()[name]
    monkeypatch.setattr(reshare_module, "prove_encrypted_share", bad_modulus_prover(n, factors))
    device = wallet.device()
    with pytest.raises((errors.MessageInvalid, errors.ProtocolAborted)) as info:
        mpc.run_local(device.recover(), wallet.custodian.recover(wallet.client_id))
    assert getattr(info.value, "culprit", CLIENT) == CLIENT
    assert wallet.custodian.store.get_share(wallet.client_id, "signing", "", "secp256k1") == before
    assert not device.has_wallet()
    monkeypatch.undo()
    # The lock was released and the wallet still works with its old signing shares.
    result, _ = mpc.run_local(wallet.client.sign("ethereum", DIGEST),
                              wallet.custodian.sign(wallet.client_id, "ethereum", DIGEST))
    check_ecdsa(result.public_key, DIGEST, ecdsa2p.Signature(result.r, result.s, result.recid))


# --- Π_mod / Π_fac: too few iterations, replayed from another session ----------------------------------
@pytest.mark.parametrize("entries", [M_ITERATIONS - 1, 1, M_ITERATIONS + 1])
def test_mod_proof_with_wrong_number_of_iterations_is_invalid(entries: int) -> None:
    """TSSHOCK c-guess: a Π_mod with fewer (or more) than m = 80 iterations is malformed."""

    def cut(payload: dict[str, Any]) -> dict[str, Any]:
        proof = payload["mod"]
        payload["mod"] = {"w": proof["w"], **{k: (proof[k] * 2)[:entries] for k in ("x", "a", "b", "z")}}
        return payload

    p1, p2 = keygen_pair()
    outcome = drive([Malicious(p1, payload_edit(3, cut)), p2])
    outcome.honest_error(InvalidMessage)
    assert outcome.party == CUSTODIAN and not p2.done


@pytest.mark.parametrize("entries", [M_ITERATIONS - 1, 1])
def test_prm_proof_with_too_few_iterations_is_invalid(entries: int) -> None:
    """The custodian's Π_prm with fewer than 80 binary challenges is refused by the client."""

    def cut(payload: dict[str, Any]) -> dict[str, Any]:
        proof = payload["setup"]["prm"]
        payload["setup"]["prm"] = {k: v[:entries] for k, v in proof.items()}
        return payload

    p1, p2 = keygen_pair()
    outcome = drive([p1, Malicious(p2, payload_edit(2, cut))])
    outcome.honest_error(InvalidMessage)
    assert outcome.party == CLIENT


@pytest.fixture
def fixed_paillier_key(monkeypatch: pytest.MonkeyPatch) -> paillier.PaillierSecretKey:
    """Every Paillier key the client makes is the same fixture key (so proofs about it can be moved)."""
    key = paillier_keys()[1]
    monkeypatch.setattr(paillier, "keygen", lambda bits=2048: (key.public_key, key))
    return key


@pytest.mark.parametrize("proof", ["mod", "fac", "logstar"])
@pytest.mark.parametrize("protocol", ["keygen", "refresh"])
def test_single_proof_replayed_from_another_session_is_refused(fixed_paillier_key: Any, proof: str,
                                                               protocol: str) -> None:
    """Same N in both runs; a valid proof of run A (bound to A's session) fails in run B."""

    def sessions() -> list[Any]:
        if protocol == "keygen":
            return keygen_pair()
        p1, p2 = ecdsa_pair()
        sid = new_sid()
        return [ReshareP1(sid, p1), ReshareP2(sid, p2, setup=ecdsa2p.default_setup())]

    recorded: list[Message] = []
    a1, a2 = sessions()
    drive([Malicious(a1, lambda m: recorded.append(m) or m), a2])
    old = next(m for m in recorded if m.round == 3).payload
    b1, b2 = sessions()
    if protocol == "keygen":  # same x1 too, so that only the session differs
        b1._x1 = a1._x1  # type: ignore[attr-defined]

    def replay(payload: dict[str, Any]) -> dict[str, Any]:
        assert payload["paillier"] == _plain(old["paillier"])
        payload[proof] = _plain(old[proof])
        return payload

    outcome = drive([Malicious(b1, payload_edit(3, replay)), b2])
    error = outcome.honest_error(ProtocolAbort)
    assert error.culprit == CLIENT and not b2.done


# --- bad ring-Pedersen parameters from the custodian -------------------------------------------------------
def _setup_with(params: RingPedersenParams, lam: int, phi: int) -> CustodianSetup:
    """A setup whose Π_prm is computed by the real prover with ``lam`` (maybe no valid λ exists)."""
    n = params.n_hat
    secret = SimpleNamespace(lam=lam, phi=phi, crt=SimpleNamespace(powmod=lambda x, e: pow(x, e, n)))
    proof = prm.prove(params, secret, _prm_transcript())  # type: ignore[arg-type]
    # Π_mod by the real prover over the good N̂: honest where the bad setup keeps that N̂ (the
    # flaw is elsewhere), a proof for another modulus where it does not (refused either way).
    good_params, good_secret = ring_pedersen_sets()[0]
    mod_proof = mod.prove(good_params.n_hat, good_secret.p, good_secret.q, _mod_transcript(params))
    return CustodianSetup(CustodianSetupPublic(params, proof, mod_proof), secret)  # type: ignore[arg-type]


def _raw_params(n_hat: int, s: int, t: int) -> RingPedersenParams:
    params = object.__new__(RingPedersenParams)
    object.__setattr__(params, "n_hat", n_hat)
    object.__setattr__(params, "s", s)
    object.__setattr__(params, "t", t)
    return params


def bad_setups() -> dict[str, Callable[[], CustodianSetup]]:
    good, secret = ring_pedersen_sets()[0]
    n_hat, t = good.n_hat, good.t

    def non_residue() -> CustodianSetup:
        # s = -t: Jacobi symbol +1 but not a square, so s ∉ ⟨t⟩ ⊆ QR(N̂): no λ exists.
        return _setup_with(_raw_params(n_hat, n_hat - t, t), secret.lam, secret.phi)

    def small_factor() -> CustodianSetup:
        # N̂' = 3·q·p' with a *valid* Π_prm (the custodian knows φ(N̂')): only the small factor is wrong.
        big_q, big_p = secret.q, paillier_keys()[0].p
        n_small = 3 * big_q * big_p
        t_small = pow(t, 2, n_small)
        phi = 2 * (big_q - 1) * (big_p - 1)
        return _setup_with(_raw_params(n_small, pow(t_small, 12345, n_small), t_small), 12345, phi)

    def wrong_lambda() -> CustodianSetup:
        return _setup_with(good, secret.lam + 1, secret.phi)

    return {"s = -t (non-residue)": non_residue, "N̂ with a small factor": small_factor,
            "Π_prm made with a wrong λ": wrong_lambda}


_bad_setups: dict[str, CustodianSetup] = {}


@pytest.mark.parametrize("name", sorted(bad_setups()))
@pytest.mark.parametrize("protocol", ["keygen", "refresh", "wallet recover"])
def test_bad_ring_pedersen_setup_from_the_custodian_is_refused(name: str, protocol: str) -> None:
    if name not in _bad_setups:
        _bad_setups[name] = bad_setups()[name]()
    bad = _bad_setups[name]
    payload = {"params": bad.public.params.to_payload(), "prm": bad.public.proof.to_payload()}

    def swap(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "setup": payload}

    if protocol == "wallet recover":
        wallet = new_wallet(backup=True)
        device = wallet.device()
        custodian = Malicious(wallet.custodian.recover(wallet.client_id), child_edit("secp256k1", 2, swap))
        outcome = drive([device.recover(), custodian])
        assert not device.has_wallet()
    else:
        if protocol == "keygen":
            p1, p2 = keygen_pair()
        else:
            a, b = ecdsa_pair()
            sid = new_sid()
            p1, p2 = ReshareP1(sid, a), ReshareP2(sid, b, setup=ecdsa2p.default_setup())
        outcome = drive([p1, Malicious(p2, payload_edit(2, swap))])
    assert outcome.party == CLIENT
    error = outcome.honest_error((InvalidMessage, ProtocolAbort))
    if isinstance(error, ProtocolAbort):
        assert error.culprit == CUSTODIAN


def test_ring_pedersen_modulus_with_small_factor_is_refused_at_decoding() -> None:
    good = ring_pedersen_sets()[0][0]
    with pytest.raises(InvalidMessage, match="small prime factor"):
        RingPedersenParams(good.n_hat * 3, good.s, good.t)
    with pytest.raises(InvalidMessage, match="small prime factor"):
        RingPedersenParams.from_payload({"n": encode_nat(good.n_hat * 65521), "s": encode_nat(good.s),
                                         "t": encode_nat(good.t)})


# --- ciphertext attacks wherever a ciphertext is accepted ---------------------------------------------------
def _ciphertexts(key: paillier.PaillierSecretKey, honest: int) -> dict[str, int]:
    n = key.n
    return {"0": 0, "N": n, "N²": n * n, "N² + c": n * n + honest, "2·N": 2 * n, "N² - N": n * n - n,
            "p·5 (shares a factor)": key.p * 5}


CIPHERTEXT_CASES = ["0", "N", "N²", "N² + c", "2·N", "N² - N", "p·5 (shares a factor)"]


@pytest.mark.parametrize("case", CIPHERTEXT_CASES)
def test_bad_c3_is_invalid_never_decrypted_and_never_locks(case: str) -> None:
    """The client refuses a c3 that is no ciphertext before decrypting: no lock, retry works."""
    p1, p2 = ecdsa_pair()
    assert p1.paillier is not None
    share = copy_p1(p1)
    sid = new_sid()
    client, custodian = SignP1(sid, share, DIGEST), SignP2(sid, p2, DIGEST)
    held: list[Message] = []

    def hold(msg: Message) -> Message | None:
        if msg.round == 4:
            held.append(msg)
            return None
        return msg

    drive([client, Malicious(custodian, hold)])
    honest = held[0]
    value = _ciphertexts(p1.paillier, int(honest.payload["c3"], 16))[case]
    with pytest.raises(InvalidMessage):
        client.receive(dataclasses.replace(honest, payload={"c3": encode_nat(value)}))
    assert not share.locked and client.aborted is None
    client.receive(honest)
    check_ecdsa(p1.public_key, DIGEST, client.result())


@pytest.mark.parametrize("case", ["0", "N", "N²", "N² + c", "p·5 (shares a factor)"])
def test_bad_c_key_at_refresh_is_refused(fixed_paillier_key: paillier.PaillierSecretKey, case: str) -> None:
    p1, p2 = ecdsa_pair()
    sid = new_sid()

    def bad(payload: dict[str, Any]) -> dict[str, Any]:
        values = _ciphertexts(fixed_paillier_key, int(payload["c_key"], 16))
        return {**payload, "c_key": encode_nat(values[case])}

    custodian = ReshareP2(sid, p2, setup=ecdsa2p.default_setup())
    outcome = drive([Malicious(ReshareP1(sid, p1), payload_edit(3, bad)), custodian])
    assert outcome.party == CUSTODIAN and not custodian.done
    error = outcome.honest_error((InvalidMessage, ProtocolAbort))
    assert getattr(error, "culprit", CLIENT) == CLIENT


# --- replay and mix-up ---------------------------------------------------------------------------------------
def test_another_clients_wallet_messages_are_refused() -> None:
    """Client A's sign operation offered to the custodian's session for client B signs nothing."""
    custodian = mpc.Custodian()
    a = new_wallet()
    b_id = custodian.create_client()
    b_client = mpc.Client(b_id, mpc.MemoryKeychain())
    mpc.run_local(b_client.generate(), custodian.generate(b_id))
    # A's device (another custodian's wallet, or this custodian's other client) against B's session.
    with pytest.raises(errors.MessageInvalid):
        mpc.run_local(a.client.sign("ethereum", DIGEST), custodian.sign(b_id, "ethereum", DIGEST))
    # A device that claims to be B but holds A's shares: the share check refuses before any nonce.
    impostor = mpc.Client(b_id, a.client.keychain)
    for curve in ("secp256k1", "ed25519"):
        impostor.keychain.put(impostor._entry(curve), a.client.keychain.get(a.client._entry(curve)))
    with pytest.raises(errors.EngineError) as info:
        mpc.run_local(impostor.sign("ethereum", DIGEST), custodian.sign(b_id, "ethereum", DIGEST))
    assert type(info.value) is not errors.EngineError
    assert not a.client.signing_share("secp256k1").locked


def test_wallet_operation_messages_replayed_into_another_operation_are_refused() -> None:
    """A recorded backup run's messages cannot drive another backup run or another operation."""
    wallet = new_wallet()
    recorded: list[Message] = []
    client = Malicious(wallet.client.backup(), lambda m: recorded.append(m) or m)
    drive([client, wallet.custodian.backup(wallet.client_id)])
    fresh = wallet.custodian.backup(wallet.client_id, session_id=new_sid())
    fresh.start()
    for msg in recorded:
        with pytest.raises(InvalidMessage):
            fresh.receive(msg)  # another session id
    sign = wallet.custodian.sign(wallet.client_id, "solana", MESSAGE)
    sign.start()
    for msg in recorded:
        with pytest.raises(InvalidMessage):
            sign.receive(dataclasses.replace(msg, protocol="wallet/sign"))  # hello of another op
    # A scripted client that replays the whole recorded run against a fresh unbound custodian
    # session: the custodian binds to the old session id, but its children's nonces are fresh,
    # so the replayed child messages fail and nothing is stored.
    before = wallet.custodian.store.get_share(wallet.client_id, "backup", wallet.custodian.backup_versions.current_name(wallet.client_id, "CLOUD"), "secp256k1")
    scripted = Scripted(1, (1, 2), recorded[0].session_id, [[m] for m in recorded[:1]] + [[m] for m in recorded[1:]])
    outcome = drive([scripted, wallet.custodian.backup(wallet.client_id)])
    assert outcome.error is not None or outcome.stalled
    if outcome.error is not None:
        assert isinstance(outcome.error, (InvalidMessage, ProtocolAbort))
    assert wallet.custodian.store.get_share(wallet.client_id, "backup", wallet.custodian.backup_versions.current_name(wallet.client_id, "CLOUD"), "secp256k1") == before


@pytest.mark.parametrize("protocol", ["keygen", "sign"])
def test_commitment_opened_to_another_value_is_refused(protocol: str) -> None:
    """P1 commits to (Q1 or R1, proof) and opens another valid point with its valid proof."""
    if protocol == "keygen":
        p1, p2 = keygen_pair()
        donor1, donor2 = keygen_pair()
        donor2.session_id = donor1.session_id = p1.session_id  # same session: the proof is valid here
        field_names = ("Q1", "proof")
    else:
        a, b = ecdsa_pair()
        sid = new_sid()
        p1, p2 = SignP1(sid, copy_p1(a), DIGEST), SignP2(sid, b, DIGEST)
        donor1, donor2 = SignP1(sid, copy_p1(a), DIGEST), SignP2(sid, b, DIGEST)
        field_names = ("R1", "proof")
    donated: list[Message] = []
    drive([Malicious(donor1, lambda m: donated.append(m) or m), Malicious(donor2, lambda m: m)])
    opening = next(m for m in donated if m.round == 3).payload

    def swap(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, **{k: _plain(opening[k]) for k in field_names}}

    outcome = drive([Malicious(p1, payload_edit(3, swap)), p2])
    error = outcome.honest_error(ProtocolAbort)
    assert error.culprit == CLIENT and outcome.party == CUSTODIAN


def test_every_recorded_message_out_of_place_is_refused_without_state_change() -> None:
    """Messages of other rounds, other senders, other protocols and other runs, at every step."""
    from tests.adversarial.test_fuzz import checkpoints_of

    names = ["ecdsa2p/sign", "ecdsa2p/reshare-backup", "frost/sign", "frost/dkg", "wallet/sign-solana"]
    transcripts = {name: [cp for cp, _ in checkpoints_of(name)] for name in names}
    for name, checkpoints in transcripts.items():
        others = [cp.message for other, cps in transcripts.items() for cp in cps]
        for cp in checkpoints:
            sessions, _ = cp.fresh()
            receiver = sessions[cp.receiver]
            waiting = receiver.awaiting_round
            for msg in others:
                if msg == cp.message:
                    continue
                for candidate in (msg, dataclasses.replace(msg, session_id=cp.message.session_id)):
                    try:
                        receiver.receive(candidate)
                    except (InvalidMessage, FutureMessage):
                        assert receiver.aborted is None and receiver.awaiting_round == waiting
                        continue
                    except ProtocolAbort as exc:
                        # Same session, same round, same sender, another run's payload.
                        assert exc.culprit in (candidate.sender, None), (cp.label, exc)
                        sessions, _ = cp.fresh()
                        receiver = sessions[cp.receiver]
                        continue
                    # Accepted: only a message of the awaited round of this protocol (a legitimate one
                    # of this run from another sender, or a commitment of another run's).
                    assert (candidate.round, candidate.protocol) == (cp.message.round, cp.message.protocol), cp.label
                    sessions, _ = cp.fresh()
                    receiver = sessions[cp.receiver]


# --- FROST ---------------------------------------------------------------------------------------------------------
def frost_sign_sessions(signers: tuple[int, ...], sid: bytes | None = None) -> dict[int, frost.SignSession]:
    shares = frost_shares(2, 3)
    sid = sid or new_sid()
    return {i: frost.SignSession(sid, shares[i - 1], signers, MESSAGE) for i in signers}


def test_bad_signature_share_names_the_signer() -> None:
    sessions = frost_sign_sessions((1, 2, 3))

    def off_by_one(payload: dict[str, Any]) -> dict[str, Any]:
        z = ed25519.decode_scalar(bytes.fromhex(payload["sig_share"]))
        return {**payload, "sig_share": ed25519.encode_scalar((z + 1) % ed25519.order).hex()}

    outcome = drive([sessions[1], sessions[2], Malicious(sessions[3], payload_edit(2, off_by_one))])
    error = outcome.honest_error(ProtocolAbort)
    assert error.culprit == 3 and outcome.party in (1, 2)


def test_replayed_nonce_commitment_does_not_make_an_honest_signer_reuse_its_nonces() -> None:
    """Party 2 replays, in session B, the round-1 commitments of session A (its own or party 1's)."""
    first = frost_sign_sessions((1, 2))
    recorded: list[Message] = []
    drive([Malicious(first[1], lambda m: recorded.append(m) or m), Malicious(first[2], lambda m: recorded.append(m) or m)])
    old = {m.sender: m.payload for m in recorded if m.round == 1}
    assert first[1].done
    for replayed_from in (1, 2):
        second = frost_sign_sessions((1, 2))
        attacker = Malicious(second[2], payload_edit(1, lambda payload, source=replayed_from: _plain(old[source])))
        sent = second[1].start()
        outcome = drive([second[1], attacker], started=True, pending=sent + attacker.start())
        # Fresh nonces: the honest signer's commitments differ from session A's.
        assert _plain(sent[0].payload) != _plain(old[1])
        error = outcome.honest_error(ProtocolAbort)
        assert error.culprit == 2 and outcome.party == 1 and not second[1].done


def test_replayed_commitment_with_matching_view_fails_the_aggregate_naming_the_culprit() -> None:
    """As above, but party 2 also sends the view hash the honest signer expects: the aggregate
    fails and the share check names party 2 (its share was made for other commitments)."""
    first = frost_sign_sessions((1, 2))
    recorded: list[Message] = []
    drive([first[1], Malicious(first[2], lambda m: recorded.append(m) or m)])
    old = next(m for m in recorded if m.round == 1).payload
    second = frost_sign_sessions((1, 2))
    honest_view: list[str] = []

    honest_round1: list[Message] = []

    def spy(msg: Message) -> Message:
        if msg.round == 1:
            honest_round1.append(msg)
        return msg

    def point(hex_value: str) -> Any:
        return ed25519.decode_point(bytes.fromhex(hex_value))

    def expected_view() -> str:
        mine = honest_round1[0].payload
        listed = [SigningCommitments(1, point(mine["hiding"]), point(mine["binding"])),
                  SigningCommitments(2, point(old["hiding"]), point(old["binding"]))]
        return view_hash("frost/sign", second[1].session_id, "commitments",
                         {0: encode_group_commitment_list(listed), 1: SUITE.H4(second[1].message)}).hex()

    def rewrite(msg: Message) -> Message:
        if msg.round == 1:
            return dataclasses.replace(msg, payload=_plain(old))
        if msg.round == 2:
            return dataclasses.replace(msg, payload={**_plain(msg.payload), "view": expected_view()})
        return msg

    outcome = drive([Malicious(second[1], spy), Malicious(second[2], rewrite)])
    assert outcome.error is None  # the honest party is wrapped only to spy: read its own verdict
    wrapped = second[1]
    assert wrapped.aborted is not None and wrapped.aborted.culprit == 2
    assert "signature share" in wrapped.aborted.reason


@pytest.mark.parametrize("length", [1, 3])
def test_dkg_commitment_of_the_wrong_length_is_invalid(length: int) -> None:
    """Trail of Bits 2024: a longer commitment would silently raise the threshold."""
    sid = new_sid()
    sessions = [frost.DKGSession(sid, i, (1, 2, 3), 2) for i in (1, 2, 3)]
    extra = ed25519.base_mul(7).to_bytes().hex()

    def resize(payload: dict[str, Any]) -> dict[str, Any]:
        points = payload["commitment"]
        return {**payload, "commitment": (points + [extra])[:length]}

    outcome = drive([sessions[0], sessions[1], Malicious(sessions[2], payload_edit(1, resize))])
    outcome.honest_error(InvalidMessage)


def test_inconsistent_dkg_share_in_wallet_generate_names_the_custodian() -> None:
    wallet = new_wallet(generate=False)

    def corrupt(payload: dict[str, Any]) -> dict[str, Any]:
        share = ed25519.decode_scalar(bytes.fromhex(payload["share"]))
        return {**payload, "share": ed25519.encode_scalar((share + 1) % ed25519.order).hex()}

    custodian = Malicious(wallet.custodian.generate(wallet.client_id), child_edit("ed25519", 2, corrupt))
    outcome = drive([wallet.client.generate(), custodian])
    error = outcome.honest_error(ProtocolAbort)
    assert error.culprit == CUSTODIAN and outcome.party == CLIENT and not wallet.client.has_wallet()


def test_signer_set_smaller_than_threshold_is_refused() -> None:
    shares = frost_shares(2, 3)
    with pytest.raises(Exception) as info:
        frost.SignSession(new_sid(), shares[0], (1,), MESSAGE)
    assert type(info.value).__name__ == "UsageError"
    # A peer cannot shrink the set either: the list is fixed at construction, and a round-1
    # message from a party outside it is refused.
    sessions = frost_sign_sessions((1, 2))
    sessions[1].start()
    intruder = frost.SignSession(sessions[1].session_id, shares[2], (1, 3), MESSAGE)
    with pytest.raises(InvalidMessage):
        sessions[1].receive(intruder.start()[0])
