"""Known attacks on two-party ECDSA are refused (docs/architecture.md section 5;
docs/references.md, "Known attacks and where they are refused").

A malicious client (P1) is played by replacing its prover of the encrypted share (the real
prove functions, run on the real session transcript, but over a malformed modulus or a wrong
share) or by rewriting its messages on the wire; a malicious custodian (P2) by rewriting its
final ciphertext c3 or its proof Π_c3. Each attack must end in ``InvalidMessage`` or a
``ProtocolAbort`` naming the attacker: never in a share or a signature, and (for the client
facing a bad c3) never in a decryption or a lock. The lock stays as defence in depth, shown with
the proof check switched off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from curves import SecretScalar, secp256k1
from protocols import ecdsa2p, paillier
from protocols.ecdsa2p import (
    CLIENT, CUSTODIAN, KeygenP1, KeygenP2, P1KeyShare, P2KeyShare, ReshareP1, ReshareP2, Signature, SignP1, SignP2,
    verify_signature,
)
from protocols.ecdsa2p.encrypted_share import EncryptedShare, _fork, prove_encrypted_share
from protocols.ecdsa2p.setup import setup_from_ring_pedersen
from protocols.ecdsa2p.sign import nonce_point
from protocols.encoding import encode_nat
from protocols.errors import InvalidMessage, KeyLocked, MPCError, ProtocolAbort, UsageError
from protocols.local import run
from protocols.paillier import PaillierPublicKey
from protocols.ring_pedersen import RingPedersenParams
from protocols.rounds import Message
from protocols.transcript import Transcript
from protocols.zk import c3 as c3_proof
from protocols.zk import fac, logstar, mod
from protocols.zk import params as zk_params
from tests.fixtures import malformed_moduli, paillier_keys, ring_pedersen_sets
from tests.protocols.ecdsa2p.harness import check_signature, checkpoint, copy_p1, deliver, new_sid
from tests.protocols.zk.test_mod import _cheating_proof

Q = secp256k1.order
DIGEST = b"\x07" * 32
# The package's helpers keygen()/reshare() shadow the module names: import the modules by path.
keygen_module = importlib.import_module("protocols.ecdsa2p.keygen")
reshare_module = importlib.import_module("protocols.ecdsa2p.reshare")
sign_module = importlib.import_module("protocols.ecdsa2p.sign")
Prover = Callable[..., tuple[Any, EncryptedShare]]


def refused_by_custodian(make: Callable[[], list[Any]], tamper: Any = None) -> MPCError:
    """Run the sessions; the custodian must refuse (InvalidMessage) or abort naming the client."""
    with pytest.raises((InvalidMessage, ProtocolAbort)) as info:
        run(make(), tamper=tamper)
    if isinstance(info.value, ProtocolAbort):
        assert info.value.culprit == CLIENT, info.value
    return info.value


def keygen_sessions(setup: ecdsa2p.CustodianSetup) -> Callable[[], list[Any]]:
    def make() -> list[Any]:
        sid = new_sid()
        return [KeygenP1(sid), KeygenP2(sid, setup)]

    return make


def reshare_sessions(pair: tuple[P1KeyShare, P2KeyShare], setup: ecdsa2p.CustodianSetup) -> Callable[[], list[Any]]:
    def make() -> list[Any]:
        sid = new_sid()
        return [ReshareP1(sid, pair[0]), ReshareP2(sid, pair[1], setup=setup)]

    return make


@contextlib.contextmanager
def malicious_prover(monkeypatch: pytest.MonkeyPatch, prover: Prover) -> Iterator[None]:
    """The client proves its encrypted share with ``prover`` in keygen and in resharing."""
    with monkeypatch.context() as m:
        m.setattr(keygen_module, "prove_encrypted_share", prover)
        m.setattr(reshare_module, "prove_encrypted_share", prover)
        yield


# --- a bad Paillier modulus (BitForge CVE-2023-33241, Alpha-Rays) ---------------------------------
def _raw_public_key(n: int) -> PaillierPublicKey:
    """A public key object for any n (the constructor would refuse a short or even one)."""
    pk = object.__new__(PaillierPublicKey)
    object.__setattr__(pk, "n", n)
    object.__setattr__(pk, "n_squared", n * n)
    return pk


def bad_modulus_prover(n: int, factors: tuple[int, ...]) -> Prover:
    """Real prove functions over ``n``; where a prover refuses, an honest key's proof stands in."""
    honest = paillier_keys()[0]

    def prove(x1: SecretScalar, params: RingPedersenParams, transcript: Transcript,
              level: Any = None) -> tuple[Any, EncryptedShare]:
        pk, nonce = _raw_public_key(n), 3
        c_key = (1 + x1.value * n) * pow(nonce, n, n * n) % (n * n)
        p = factors[0] if factors else honest.p
        q = n // p if factors else honest.q
        if factors:
            mod_proof = _cheating_proof(n, factors, _fork(transcript, "mod"))
        else:  # N even (factors unknown): an honest key's proof, the shape the wire expects
            mod_proof = mod.prove(honest.n, honest.p, honest.q, _fork(transcript, "mod"))
        with contextlib.suppress(UsageError):
            fac_proof = fac.prove(honest.n, honest.p, honest.q, params, _fork(transcript, "fac"))
            fac_proof = fac.prove(n, p, q, params, _fork(transcript, "fac"))
        log_proof = logstar.prove(pk, params, c_key, x1.public_point(), x1.value, nonce, _fork(transcript, "logstar"))
        return None, EncryptedShare(pk, c_key, mod_proof, fac_proof, log_proof)

    return prove


@pytest.mark.parametrize("name", sorted(malformed_moduli()))
@pytest.mark.parametrize("protocol", ["keygen", "reshare"])
def test_bad_paillier_modulus_is_refused(monkeypatch: pytest.MonkeyPatch, custodian_setup: ecdsa2p.CustodianSetup,
                                         pair: tuple[P1KeyShare, P2KeyShare], name: str, protocol: str) -> None:
    n, factors = malformed_moduli()[name]
    make = keygen_sessions(custodian_setup) if protocol == "keygen" else reshare_sessions(pair, custodian_setup)
    with malicious_prover(monkeypatch, bad_modulus_prover(n, factors)):
        refused_by_custodian(make)


# --- a bad encrypted share -------------------------------------------------------------------------
def replace_in_round3(field: str, value: Callable[[Message], Any]) -> Callable[[Message], Message]:
    """A wire tamper hook setting ``field`` of the client's round-3 message to ``value(msg)``."""

    def tamper(msg: Message) -> Message:
        if msg.round != 3 or msg.sender != CLIENT:
            return msg
        return dataclasses.replace(msg, payload={**msg.payload, field: value(msg)})

    return tamper


def _n(msg: Message) -> int:
    return int(msg.payload["paillier"]["n"], 16)


def _enc(msg: Message, m: int) -> str:
    return encode_nat(paillier.encrypt(PaillierPublicKey(_n(msg)), m)[0])


C_KEY_ATTACKS: dict[str, Callable[[Message], str]] = {
    "zero": lambda msg: "00",
    "one (Enc(0; 1))": lambda msg: "01",
    "N (not invertible)": lambda msg: encode_nat(_n(msg)),
    "N squared": lambda msg: encode_nat(_n(msg) ** 2),
    "above N squared": lambda msg: encode_nat(_n(msg) ** 2 + int(msg.payload["c_key"], 16)),
    "encrypts another value": lambda msg: _enc(msg, 12345),
}


@pytest.mark.parametrize("attack", sorted(C_KEY_ATTACKS))
def test_bad_c_key_is_refused(custodian_setup: ecdsa2p.CustodianSetup, attack: str) -> None:
    refused_by_custodian(keygen_sessions(custodian_setup), replace_in_round3("c_key", C_KEY_ATTACKS[attack]))


def test_c_key_sharing_a_factor_with_n_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                  custodian_setup: ecdsa2p.CustodianSetup) -> None:
    """c_key = p·k: not a ciphertext at all (BitGo "zero proof" style); the client knows p."""
    primes: list[int] = []

    def prover(x1: SecretScalar, params: RingPedersenParams, transcript: Transcript,
               level: Any = None) -> tuple[Any, EncryptedShare]:
        sk, share = prove_encrypted_share(x1, params, transcript)
        primes.append(sk.p)
        return sk, share

    with malicious_prover(monkeypatch, prover):
        error = refused_by_custodian(keygen_sessions(custodian_setup),
                                     replace_in_round3("c_key", lambda msg: encode_nat(primes[-1] * 5)))
    assert isinstance(error, InvalidMessage)


@pytest.mark.parametrize("offset", [1, Q, Q << (zk_params.ELL + zk_params.EPSILON + 1)],
                         ids=["x1+1", "x1+q (same point, lies past 2^l)", "x1 + q*2^(l+e+1) (Alpha-Rays)"])
def test_c_key_encrypting_another_share_fails_log_star(monkeypatch: pytest.MonkeyPatch,
                                                       custodian_setup: ecdsa2p.CustodianSetup, offset: int) -> None:
    """The client proves (with the real prover) an encryption of x1 + offset for the point Q1."""

    def prover(x1: SecretScalar, params: RingPedersenParams, transcript: Transcript,
               level: Any = None) -> tuple[Any, EncryptedShare]:
        sk, honest = prove_encrypted_share(x1, params, transcript)
        wrong = x1.value + offset
        c_key, nonce = paillier.encrypt(honest.paillier, wrong)
        with monkeypatch.context() as m:
            m.setattr(logstar, "ELL", 4096)  # let the prover run past its own range check
            proof = logstar.prove(honest.paillier, params, c_key, x1.public_point(), wrong, nonce,
                                  _fork(transcript, "logstar"))
        return sk, dataclasses.replace(honest, c_key=c_key, logstar_proof=proof)

    with malicious_prover(monkeypatch, prover):
        error = refused_by_custodian(keygen_sessions(custodian_setup))
    assert offset == 1 or isinstance(error, (ProtocolAbort, InvalidMessage))


# --- replay across sessions --------------------------------------------------------------------------
def test_proofs_replayed_from_another_session_are_refused(custodian_setup: ecdsa2p.CustodianSetup) -> None:
    """Session B's client has the same x1 as session A's; A's valid proofs still fail in B."""
    a = {CLIENT: KeygenP1(new_sid()), CUSTODIAN: KeygenP2(new_sid(), custodian_setup)}
    a[CUSTODIAN].session_id = a[CLIENT].session_id
    round3_a = checkpoint(a, 3)
    sid = new_sid()
    b = {CLIENT: KeygenP1(sid), CUSTODIAN: KeygenP2(sid, custodian_setup)}
    b[CLIENT]._x1 = a[CLIENT]._x1  # type: ignore[attr-defined]
    round3_b = checkpoint(b, 3)
    assert round3_a.payload["Q1"] == round3_b.payload["Q1"]
    replayed = {**round3_b.payload, **{k: round3_a.payload[k] for k in EncryptedShare.payload_keys()}}
    with pytest.raises(ProtocolAbort) as info:
        b[CUSTODIAN].receive(dataclasses.replace(round3_b, payload=replayed))
    assert info.value.culprit == CLIENT


def test_whole_messages_replayed_into_another_session_are_refused(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    first = checkpoint({CLIENT: SignP1(sid := new_sid(), p1, DIGEST), CUSTODIAN: SignP2(sid, p2, DIGEST)}, 1)
    other = {CLIENT: SignP1(sid2 := new_sid(), p1, DIGEST), CUSTODIAN: SignP2(sid2, p2, DIGEST)}
    honest = checkpoint(other, 1)
    with pytest.raises(InvalidMessage):  # the envelope names session A
        other[CUSTODIAN].receive(first)
    with pytest.raises(InvalidMessage):  # a keygen message offered to a signing session
        other[CUSTODIAN].receive(dataclasses.replace(honest, protocol="ecdsa2p/keygen"))
    # A's payload in B's envelope: accepted as a commitment, but B's opening cannot match it.
    failure = deliver(other, [dataclasses.replace(honest, payload=first.payload)])
    assert failure is not None and isinstance(failure[1], ProtocolAbort) and failure[1].culprit == CLIENT


# --- a malicious custodian's final ciphertext (CVE-2023-33242) -----------------------------------
def replace_c3(make_c3: Callable[[Message], int], proof: Callable[[Message], Any] | None = None) -> Callable[[Message], Message]:
    """Rewrite round 4: c3 from ``make_c3`` (the honest proof kept, or ``proof``'s)."""
    def tamper(msg: Message) -> Message:
        if msg.round != 4 or msg.sender != CUSTODIAN:
            return msg
        new_proof = msg.payload["proof"] if proof is None else proof(msg)
        return dataclasses.replace(msg, payload={"c3": encode_nat(make_c3(msg)), "proof": new_proof})

    return tamper


def sign_with(p1: P1KeyShare, p2: P2KeyShare, tamper: Any = None) -> Signature:
    sid = new_sid()
    return run([SignP1(sid, p1, DIGEST), SignP2(sid, p2, DIGEST)], tamper=tamper)[0]


def _honest_c3(msg: Message) -> int:
    return int(msg.payload["c3"], 16)


def _round4_of_another_session(pair: tuple[P1KeyShare, P2KeyShare]) -> Message:
    sid = new_sid()
    return checkpoint({CLIENT: SignP1(sid, copy_p1(pair[0]), DIGEST), CUSTODIAN: SignP2(sid, pair[1], DIGEST)}, 4)


def c3_attacks(pair: tuple[P1KeyShare, P2KeyShare]) -> dict[str, Callable[[Message], Message]]:
    """Every way a malicious custodian may alter the c3 it sends (CVE-2023-33242 and beyond)."""
    pk = pair[1].paillier
    assert pk is not None
    other = _round4_of_another_session(pair)
    shift = lambda amount: replace_c3(lambda msg: paillier.add(pk, _honest_c3(msg), paillier.encrypt(pk, amount)[0]))  # noqa: E731
    return {
        "shifted by q": shift(Q),
        "shifted by 2^1795 q (wraps mod N)": shift(Q << 1795),
        "shifted by a random amount": shift(secp256k1.random_scalar()),
        "re-randomised": shift(0),
        "random plaintext": replace_c3(lambda msg: paillier.encrypt(pk, secp256k1.random_scalar())[0]),
        "another session's c3 and proof": replace_c3(lambda msg: _honest_c3(other), lambda msg: other.payload["proof"]),
        "another session's proof": replace_c3(_honest_c3, lambda msg: other.payload["proof"]),
        "another session's c3": replace_c3(lambda msg: _honest_c3(other)),
    }


ATTACKS = ["shifted by q", "shifted by 2^1795 q (wraps mod N)", "shifted by a random amount", "re-randomised",
           "random plaintext", "another session's c3 and proof", "another session's proof", "another session's c3"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_altered_c3_is_refused_before_decryption_without_lock(
    pair: tuple[P1KeyShare, P2KeyShare], attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Π_c3 fails: abort naming the custodian, nothing decrypted, no lock; honest signing goes on."""
    p1, p2 = copy_p1(pair[0]), pair[1]
    decrypted: list[int] = []
    real_decrypt = paillier.decrypt

    def spy(sk: Any, c: int) -> int:
        decrypted.append(c)
        return real_decrypt(sk, c)

    tamper = c3_attacks(pair)[attack]
    monkeypatch.setattr(paillier, "decrypt", spy)
    with pytest.raises(ProtocolAbort) as info:
        sign_with(p1, p2, tamper)
    assert info.value.culprit == CUSTODIAN
    assert decrypted == [] and not p1.locked
    check_signature(p1.public_key, DIGEST, sign_with(p1, p2))


def test_lock_remains_as_defence_in_depth(pair: tuple[P1KeyShare, P2KeyShare], monkeypatch: pytest.MonkeyPatch) -> None:
    """Were Π_c3 ever to accept a bad c3 (a bug), the failed signature still locks the share for good."""
    p1, p2 = copy_p1(pair[0]), pair[1]
    backup1, backup2 = ecdsa2p.reshare(p1, p2, for_signing=False)  # made before the attack
    monkeypatch.setattr(c3_proof, "verify", lambda *args, **kwargs: None)
    with pytest.raises(KeyLocked):
        sign_with(p1, p2, c3_attacks(pair)["random plaintext"])
    assert p1.locked and not p1.can_sign
    restored = P1KeyShare.from_bytes(p1.to_bytes())
    assert restored.locked
    for share in (p1, restored):
        with pytest.raises(KeyLocked):
            SignP1(new_sid(), share, DIGEST)
        with pytest.raises(KeyLocked):
            ReshareP1(new_sid(), share)
    monkeypatch.undo()
    n1, n2 = ecdsa2p.reshare(backup1, backup2, for_signing=True)
    assert n1.public_key == p1.public_key
    check_signature(n1.public_key, DIGEST, ecdsa2p.sign(n1, n2, DIGEST))


def test_sessions_started_before_the_lock_do_not_decrypt(
    pair: tuple[P1KeyShare, P2KeyShare], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel sessions on one share: once one locks it, the others refuse at the last round."""
    p1, p2 = copy_p1(pair[0]), pair[1]
    sid = new_sid()
    waiting = {CLIENT: SignP1(sid, p1, DIGEST), CUSTODIAN: SignP2(sid, p2, DIGEST)}
    c3 = checkpoint(waiting, 4)  # the honest c3, held back
    monkeypatch.setattr(c3_proof, "verify", lambda *args, **kwargs: None)
    with pytest.raises(KeyLocked):
        sign_with(p1, p2, c3_attacks(pair)["random plaintext"])
    with pytest.raises(KeyLocked):
        waiting[CLIENT].receive(c3)


def _overflowing_witness_c3(p2: P2KeyShare, monkeypatch: pytest.MonkeyPatch) -> None:
    """The custodian proves honestly but with a mask far past the range: the wrap-around attack."""
    monkeypatch.setattr(sign_module, "_draw_mask", lambda: 1 << 1790)
    monkeypatch.setattr(c3_proof, "_check_witness", lambda *args: None)


def test_c3_with_an_out_of_range_mask_is_refused(pair: tuple[P1KeyShare, P2KeyShare],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A mask that makes the plaintext wrap mod N cannot be proven: the range check refuses z3."""
    p1, p2 = copy_p1(pair[0]), pair[1]
    _overflowing_witness_c3(p2, monkeypatch)
    with pytest.raises((ProtocolAbort, InvalidMessage)) as info:
        sign_with(p1, p2)
    if isinstance(info.value, ProtocolAbort):
        assert info.value.culprit == CUSTODIAN
    assert not p1.locked


def test_lock_and_recover_probing_gains_zero_bits(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    """BitForge's probe (shift c3 so the plaintext wraps exactly when a bit of x1 is set), repeated
    over lock/recover cycles against two different client shares of the same public key: every
    probe aborts the same way before decryption, no share ever locks, and the custodian's view
    is identical for both shares, so it learns nothing about x1 (zero bits)."""
    p1, p2 = copy_p1(pair[0]), pair[1]
    backup1, backup2 = ecdsa2p.reshare(p1, p2, for_signing=False)
    pk = p2.paillier
    assert pk is not None

    def observe(p1: P1KeyShare, p2: P2KeyShare, bit: int) -> str:
        probe = replace_c3(lambda msg: paillier.add(pk_of(p2), _honest_c3(msg), paillier.encrypt(pk_of(p2), Q << (1790 + bit % 8))[0]))
        try:
            sign_with(p1, p2, probe)
        except ProtocolAbort as exc:
            return f"abort:{exc.culprit}"
        except KeyLocked:
            return "locked"
        return "signed"

    views = []
    for shares in ((p1, p2), ecdsa2p.refresh(p1, p2)):  # two client shares x1 ≠ x1' of one key
        view = []
        a, b = shares
        for bit in range(6):
            view.append(observe(a, b, bit))
            assert not a.locked
            a, b = ecdsa2p.reshare(*ecdsa2p.reshare(a, b, for_signing=False), for_signing=True)  # "recover"
        views.append(view)
    assert views[0] == views[1] == [f"abort:{CUSTODIAN}"] * 6
    n1, n2 = ecdsa2p.reshare(backup1, backup2, for_signing=True)
    check_signature(n1.public_key, DIGEST, ecdsa2p.sign(n1, n2, DIGEST))


def pk_of(share: P2KeyShare) -> PaillierPublicKey:
    assert share.paillier is not None
    return share.paillier


def test_mismatched_pair_is_refused_before_any_nonce_and_does_not_lock(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = copy_p1(pair[0]), pair[1]
    n1, n2 = ecdsa2p.refresh(p1, p2)
    with pytest.raises(InvalidMessage):
        sign_with(p1, n2)
    assert not p1.locked
    check_signature(p1.public_key, DIGEST, sign_with(p1, p2))
    check_signature(p1.public_key, DIGEST, sign_with(n1, n2))


# --- points and r = 0 ------------------------------------------------------------------------------
OFF_CURVE = "02" + "00" * 32  # x = 0: 7 is not a square mod p
IDENTITY = secp256k1.identity_encoding().hex()


@pytest.mark.parametrize("point", [IDENTITY, OFF_CURVE, "04" + "11" * 64], ids=["identity", "off-curve", "uncompressed"])
@pytest.mark.parametrize("round_no, field", [(2, "R2"), (3, "R1")])
def test_bad_nonce_points_are_refused(pair: tuple[P1KeyShare, P2KeyShare], point: str, round_no: int,
                                      field: str) -> None:
    p1, p2 = pair
    sid = new_sid()
    sessions = {CLIENT: SignP1(sid, copy_p1(p1), DIGEST), CUSTODIAN: SignP2(sid, p2, DIGEST)}
    honest = checkpoint(sessions, round_no)
    receiver = sessions[honest.recipient]  # type: ignore[index]
    with pytest.raises(InvalidMessage):
        receiver.receive(dataclasses.replace(honest, payload={**honest.payload, field: point}))
    assert deliver(sessions, [honest]) is None  # state unchanged: the honest message still works
    check_signature(p1.public_key, DIGEST, sessions[CLIENT].result())


def _point_with_x(x: int) -> Any:
    return secp256k1.decode_point(b"\x02" + x.to_bytes(32, "big"))


def test_r_zero_is_refused() -> None:
    """R.x = q gives r = 0: (r, s) would then "verify" for any message (Kudelski KS-SBCF-F-01)."""
    bad = _point_with_x(Q)  # q < p is the x-coordinate of a curve point
    k = 12345
    with pytest.raises(ProtocolAbort, match="r = 0"):
        nonce_point(k, bad * pow(k, -1, Q))
    with pytest.raises(ProtocolAbort):
        nonce_point(k, secp256k1.identity())
    with pytest.raises(InvalidMessage):
        Signature(0, 1, 0)
    with pytest.raises(InvalidMessage):
        Signature(1, 0, 0)
    forged = Signature.__new__(Signature)
    object.__setattr__(forged, "r", 0)
    object.__setattr__(forged, "s", 0)
    object.__setattr__(forged, "recid", 0)
    assert not verify_signature(secp256k1.base_mul(5), DIGEST, forged)


@pytest.mark.parametrize("wrong", ["prm", "mod"])
def test_bad_ring_pedersen_setup_is_refused_by_the_client(wrong: str) -> None:
    """A custodian whose Π_prm or Π_mod does not verify for its parameters gets no keygen."""
    good = setup_from_ring_pedersen(*ring_pedersen_sets()[0])
    other = setup_from_ring_pedersen(*ring_pedersen_sets()[1])
    payload = other.public.to_payload()
    payload[wrong] = good.public.to_payload()[wrong]

    def tamper(msg: Message) -> Message:
        return dataclasses.replace(msg, payload={**msg.payload, "setup": payload}) if msg.round == 2 else msg

    sid = new_sid()
    with pytest.raises((InvalidMessage, ProtocolAbort)) as info:
        run([KeygenP1(sid), KeygenP2(sid, good)], tamper=tamper)
    if isinstance(info.value, ProtocolAbort):
        assert info.value.culprit == CUSTODIAN


@pytest.mark.parametrize("wrong", ["prm", "mod"])
@pytest.mark.parametrize("protocol", ["keygen", "reshare"])
def test_bad_client_setup_is_refused_by_the_custodian(pair: tuple[P1KeyShare, P2KeyShare], wrong: str,
                                                      protocol: str) -> None:
    """A client whose Π_prm or Π_mod does not verify for its own parameters gets no share: the
    custodian never proves a c3 against parameters whose commitments might not hide."""
    good = setup_from_ring_pedersen(*ring_pedersen_sets()[0])
    other = setup_from_ring_pedersen(*ring_pedersen_sets()[1])
    payload = other.public.to_payload()
    payload[wrong] = good.public.to_payload()[wrong]

    def tamper(msg: Message) -> Message:
        if msg.round == 3 and msg.sender == CLIENT:
            return dataclasses.replace(msg, payload={**msg.payload, "client_setup": payload})
        return msg

    make = keygen_sessions(good) if protocol == "keygen" else reshare_sessions(pair, good)
    refused_by_custodian(make, tamper)
