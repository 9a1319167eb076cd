"""Key generation: consistent shares, every round's message tampered field by field."""

from __future__ import annotations

import pytest

from curves import secp256k1
from protocols import ecdsa2p, paillier
from protocols.ecdsa2p import CLIENT, CUSTODIAN, KeygenP1, KeygenP2, P1KeyShare, P2KeyShare
from protocols.errors import UsageError
from tests.protocols.ecdsa2p.harness import Scenario, Sessions, check_signature, new_sid, results_if_done, tamper_round

Q = secp256k1.order


def test_shares_combine_to_the_public_key(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    assert p1.public_key == p2.public_key and len(p1.public_key) == 33
    x = (p1.x1.value + p2.x2.value) % Q
    assert secp256k1.base_mul(x) == p1.public_point
    assert p2.q1 == p1.q1 and p1.q2 == p2.x2.public_point()
    assert p1.paillier is not None and p2.paillier == p1.paillier.public_key
    assert paillier.decrypt(p1.paillier, p2.c_key) == p1.x1.value  # type: ignore[arg-type]
    assert p1.paillier.n.bit_length() >= paillier.MIN_MODULUS_BITS
    assert p1.can_sign and p2.can_sign and not p1.locked


def test_keys_are_fresh(pair: tuple[P1KeyShare, P2KeyShare], custodian_setup: ecdsa2p.CustodianSetup) -> None:
    p1, _ = pair
    q1, _ = ecdsa2p.keygen(custodian_setup)
    assert q1.public_key != p1.public_key and q1.paillier.n != p1.paillier.n  # type: ignore[union-attr]


def test_session_cannot_be_started_twice(custodian_setup: ecdsa2p.CustodianSetup) -> None:
    s1, s2 = KeygenP1(new_sid()), KeygenP2(new_sid(), custodian_setup)
    s1.start()
    s2.start()
    for session in (s1, s2):
        with pytest.raises(UsageError):
            session.start()


def keygen_scenario(setup: ecdsa2p.CustodianSetup) -> Scenario:
    def make() -> Sessions:
        sid = new_sid()
        return {CLIENT: KeygenP1(sid), CUSTODIAN: KeygenP2(sid, setup)}

    def check(sessions: Sessions, tampered_by: int | None) -> None:
        results = results_if_done(sessions)
        x1 = sessions[CLIENT]._x1.value  # type: ignore[attr-defined]
        x2 = sessions[CUSTODIAN]._x2.value  # type: ignore[attr-defined]
        public = secp256k1.base_mul((x1 + x2) % Q)
        for share in results.values():
            assert share.public_point == public
        if CUSTODIAN in results:
            p1_paillier = sessions[CLIENT]._paillier  # type: ignore[attr-defined]
            assert paillier.decrypt(p1_paillier, results[CUSTODIAN].c_key) == x1
        if len(results) == 2:
            p1, p2 = results[CLIENT], results[CUSTODIAN]
            digest = bytes(range(32))
            check_signature(p1.public_key, digest, ecdsa2p.sign(p1, p2, digest))

    return Scenario(make, check)


@pytest.fixture(scope="module")
def scenario(custodian_setup: ecdsa2p.CustodianSetup) -> Scenario:
    return keygen_scenario(custodian_setup)


@pytest.mark.parametrize("round_no", [1, 2, 3, 4])
def test_tampering_any_field_is_refused(scenario: Scenario, round_no: int) -> None:
    outcomes = tamper_round(scenario, round_no)
    assert outcomes and "accepted" not in outcomes.values(), outcomes
