"""Resharing (refresh, backup, recover): same key, independent shares, tampering refused."""

from __future__ import annotations

import pytest

from curves import secp256k1
from protocols import ecdsa2p, paillier
from protocols.ecdsa2p import CLIENT, CUSTODIAN, P1KeyShare, P2KeyShare, ReshareP1, ReshareP2, SignP1, SignP2
from protocols.errors import InvalidMessage, UsageError
from protocols.local import run
from tests.protocols.ecdsa2p.harness import (
    Scenario, Sessions, check_signature, copy_p1, new_sid, results_if_done, tamper_round,
)

Q = secp256k1.order
DIGEST = b"\x5a" * 32


def secret_of(p1: P1KeyShare, p2: P2KeyShare) -> int:
    return (p1.x1.value + p2.x2.value) % Q


@pytest.fixture(scope="module")
def backup(pair: tuple[P1KeyShare, P2KeyShare]) -> tuple[P1KeyShare, P2KeyShare]:
    return ecdsa2p.reshare(*pair, for_signing=False)


def test_refresh_keeps_the_key_and_makes_a_new_paillier_key(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    n1, n2 = ecdsa2p.refresh(p1, p2)
    assert n1.public_key == n2.public_key == p1.public_key
    assert secret_of(n1, n2) == secret_of(p1, p2)
    assert n1.paillier.n != p1.paillier.n and n2.paillier == n1.paillier.public_key  # type: ignore[union-attr]
    assert paillier.decrypt(n1.paillier, n2.c_key) == n1.x1.value  # type: ignore[arg-type]
    check_signature(p1.public_key, DIGEST, ecdsa2p.sign(n1, n2, DIGEST))


def test_old_and_new_shares_do_not_combine(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    n1, n2 = ecdsa2p.refresh(p1, p2)
    x = secret_of(p1, p2)
    assert n1.x1 != p1.x1 and n2.x2 != p2.x2
    assert (p1.x1.value + n2.x2.value) % Q != x
    assert (n1.x1.value + p2.x2.value) % Q != x


def test_mismatched_pair_cannot_sign_or_reshare(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    p1, p2 = pair
    n1, n2 = ecdsa2p.refresh(p1, p2)
    for a, b in ((p1, n2), (n1, p2)):
        with pytest.raises(InvalidMessage):
            ecdsa2p.reshare(a, b)
        with pytest.raises(InvalidMessage):
            ecdsa2p.sign(copy_p1(a), b, DIGEST)


def test_backup_pair_cannot_sign(backup: tuple[P1KeyShare, P2KeyShare]) -> None:
    b1, b2 = backup
    assert b1.paillier is None and b2.paillier is None and b2.c_key is None
    assert not b1.can_sign and not b2.can_sign
    with pytest.raises(UsageError):
        SignP1(new_sid(), b1, DIGEST)
    with pytest.raises(UsageError):
        SignP2(new_sid(), b2, DIGEST)
    with pytest.raises(UsageError):
        ecdsa2p.sign(b1, b2, DIGEST)


def test_backup_pair_reshares_into_a_signing_pair(
    pair: tuple[P1KeyShare, P2KeyShare], backup: tuple[P1KeyShare, P2KeyShare]
) -> None:
    p1, p2 = pair
    b1, b2 = backup
    assert b1.public_key == p1.public_key and secret_of(b1, b2) == secret_of(p1, p2)
    assert b1.x1 != p1.x1
    s1, s2 = ecdsa2p.reshare(b1, b2, for_signing=True)
    assert s1.public_key == p1.public_key and s1.can_sign
    check_signature(p1.public_key, DIGEST, ecdsa2p.sign(s1, s2, DIGEST))


@pytest.mark.parametrize("client_purpose", [True, False])
def test_purpose_mismatch_is_refused(pair: tuple[P1KeyShare, P2KeyShare], client_purpose: bool,
                                     custodian_setup: ecdsa2p.CustodianSetup) -> None:
    p1, p2 = pair
    sid = new_sid()
    with pytest.raises(InvalidMessage):
        run([ReshareP1(sid, p1, for_signing=client_purpose),
             ReshareP2(sid, p2, for_signing=not client_purpose, setup=custodian_setup)])


def test_signing_reshare_needs_the_setup(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    with pytest.raises(UsageError):
        ReshareP2(new_sid(), pair[1], for_signing=True, setup=None)


def test_session_cannot_be_started_twice(pair: tuple[P1KeyShare, P2KeyShare]) -> None:
    s1 = ReshareP1(new_sid(), pair[0], for_signing=False)
    s1.start()
    with pytest.raises(UsageError):
        s1.start()


# --- tampering -----------------------------------------------------------------------------------
def reshare_scenario(p1: P1KeyShare, p2: P2KeyShare, for_signing: bool, setup: ecdsa2p.CustodianSetup) -> Scenario:
    x = secret_of(p1, p2)

    def make() -> Sessions:
        sid = new_sid()
        return {CLIENT: ReshareP1(sid, copy_p1(p1), for_signing=for_signing),
                CUSTODIAN: ReshareP2(sid, p2, for_signing=for_signing, setup=setup)}

    def check(sessions: Sessions, tampered_by: int | None) -> None:
        results = results_if_done(sessions)
        for share in results.values():
            assert share.public_point == p1.public_point
        if len(results) == 2:
            n1, n2 = results[CLIENT], results[CUSTODIAN]
            assert secret_of(n1, n2) == x
            if for_signing:
                check_signature(p1.public_key, DIGEST, ecdsa2p.sign(n1, n2, DIGEST))
        elif CUSTODIAN in results and for_signing:
            new_x1 = sessions[CLIENT]._x1  # type: ignore[attr-defined]
            assert (new_x1.value + results[CUSTODIAN].x2.value) % Q == x

    return Scenario(make, check)


@pytest.fixture(scope="module")
def scenarios(pair: tuple[P1KeyShare, P2KeyShare], custodian_setup: ecdsa2p.CustodianSetup) -> dict[bool, Scenario]:
    return {purpose: reshare_scenario(*pair, purpose, custodian_setup) for purpose in (True, False)}


@pytest.mark.parametrize("for_signing", [True, False], ids=["signing", "backup"])
@pytest.mark.parametrize("round_no", [1, 2, 3, 4])
def test_tampering_any_field_is_refused(scenarios: dict[bool, Scenario], for_signing: bool, round_no: int) -> None:
    outcomes = tamper_round(scenarios[for_signing], round_no)
    assert outcomes
    # P2's random contribution rho2 may be anything (P1 is bound to rho1 first): a changed
    # rho2 is not an attack, and the new pair must still be correct (checked by the scenario).
    accepted = {label for label, outcome in outcomes.items() if outcome == "accepted"}
    # client_setup_known only decides how P1 sends its setup (see test_keygen).
    assert accepted <= {"rho2: all zero", "rho2: another run's value", "client_setup_known: flipped",
                        "known_setups: another run's value"}, outcomes
