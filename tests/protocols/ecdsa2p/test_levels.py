"""Security levels: the 128-bit level end to end (|N|, |N̂| = 3072, m = 128), recorded in every
share and setup, and a peer of another level refused with an error that names both levels."""

from __future__ import annotations

import hashlib

import pytest

from protocols import ecdsa2p, paillier
from protocols.ecdsa2p import LEVEL_112, LEVEL_128, KeygenP1, KeygenP2, P1KeyShare, P2KeyShare, SignP1, SignP2
from protocols.ecdsa2p.setup import CustodianSetupPublic, setup_from_ring_pedersen
from protocols.errors import InvalidMessage, UsageError
from protocols.local import run
from tests.fixtures import keys_3072
from tests.protocols.ecdsa2p.harness import check_signature, new_sid

DIGEST = hashlib.sha256(b"128-bit level").digest()


@pytest.fixture(scope="module")
def setups_128() -> tuple[ecdsa2p.CustodianSetup, ecdsa2p.ClientSetup]:
    _, sets = keys_3072()
    return setup_from_ring_pedersen(*sets[0], LEVEL_128), setup_from_ring_pedersen(*sets[1], LEVEL_128)


@pytest.fixture(scope="module")
def pair_128(setups_128: tuple[ecdsa2p.CustodianSetup, ecdsa2p.ClientSetup]) -> tuple[P1KeyShare, P2KeyShare]:
    custodian, client = setups_128
    key = keys_3072()[0][0]
    with pytest.MonkeyPatch.context() as m:  # a pre-generated 3072-bit Paillier key: no prime search in tests
        m.setattr(paillier, "keygen", lambda bits: (key.public_key, key))
        sid = new_sid()
        return run([KeygenP1(sid, client), KeygenP2(sid, custodian)])


def test_the_128_bit_level_end_to_end(pair_128: tuple[P1KeyShare, P2KeyShare],
                                      setups_128: tuple[ecdsa2p.CustodianSetup, ecdsa2p.ClientSetup]) -> None:
    p1, p2 = pair_128
    assert p1.level == p2.level == LEVEL_128
    assert p2.paillier is not None and p2.paillier.n.bit_length() == 3072
    assert P1KeyShare.from_bytes(p1.to_bytes()).level == LEVEL_128
    assert P2KeyShare.from_bytes(p2.to_bytes()).level == LEVEL_128
    check_signature(p1.public_key, DIGEST, ecdsa2p.sign(p1, p2, DIGEST))
    b1, b2 = ecdsa2p.reshare(p1, p2, for_signing=False)
    assert b1.level == b2.level == LEVEL_128
    custodian, client = setups_128
    sid = new_sid()
    key = keys_3072()[0][1]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(paillier, "keygen", lambda bits: (key.public_key, key))
        n1, n2 = run([ecdsa2p.ReshareP1(sid, b1, client_setup=client), ecdsa2p.ReshareP2(sid, b2, setup=custodian)])
    assert n1.level == n2.level == LEVEL_128 and n1.public_key == p1.public_key
    check_signature(n1.public_key, DIGEST, ecdsa2p.sign(n1, n2, DIGEST))


def test_setups_record_their_level_and_its_iterations(setups_128: tuple[ecdsa2p.CustodianSetup, ecdsa2p.ClientSetup]) -> None:
    public = setups_128[0].public
    assert public.level == LEVEL_128 and len(public.proof.commitments) == 128 and len(public.mod_proof.x) == 128
    assert CustodianSetupPublic.from_payload(public.to_payload()) == public
    claimed_128 = {**ecdsa2p.default_setup().public.to_payload(), "level": "128"}  # a 2048-bit N̂
    with pytest.raises(InvalidMessage, match="too short"):
        CustodianSetupPublic.from_payload(claimed_128)
    with pytest.raises(InvalidMessage):
        CustodianSetupPublic.from_payload({**public.to_payload(), "level": "112"})  # 128 iterations, 80 expected
    with pytest.raises(InvalidMessage, match="unknown security level"):
        CustodianSetupPublic.from_payload({**public.to_payload(), "level": "256"})
    with pytest.raises(UsageError):
        setup_from_ring_pedersen(ecdsa2p.default_setup().public.params, ecdsa2p.default_setup().secret, LEVEL_128)


@pytest.mark.parametrize("client_level", ["112", "128"])
def test_a_peer_of_another_level_is_refused_naming_both(setups_128: tuple[ecdsa2p.CustodianSetup, ecdsa2p.ClientSetup],
                                                        client_setup: ecdsa2p.ClientSetup, client_level: str) -> None:
    custodian = ecdsa2p.default_setup() if client_level == "128" else setups_128[0]
    client = setups_128[1] if client_level == "128" else client_setup
    sid = new_sid()
    with pytest.raises(InvalidMessage) as info:
        run([KeygenP1(sid, client, known=[]), KeygenP2(sid, custodian, known=[])])
    assert "security level" in str(info.value) and "112" in str(info.value) and "128" in str(info.value)


def test_signing_refuses_shares_of_different_levels(pair_128: tuple[P1KeyShare, P2KeyShare]) -> None:
    """The custodian refuses, before any nonce, a client share of another level."""
    p1, _ = pair_128
    _, p2_112 = ecdsa2p.keygen()
    assert p2_112.level == LEVEL_112
    sid = new_sid()
    with pytest.raises(InvalidMessage, match="security level"):
        run([SignP1(sid, p1.copy(), DIGEST), SignP2(sid, p2_112, DIGEST)])


def test_published_parameters_are_a_deployment_option(custodian_setup: ecdsa2p.CustodianSetup,
                                                      client_setup: ecdsa2p.ClientSetup) -> None:
    """A client without its own setup uses published parameters (public part only): the custodian
    still proves every c3, the client verifies without CRT, and its share keeps only the params."""
    published = client_setup.public
    sid = new_sid()
    p1, p2 = run([KeygenP1(sid, published), KeygenP2(sid, custodian_setup)])
    assert p1.ring_pedersen == published.params and p1.client_params == p2.client_params == published.params
    assert P1KeyShare.from_bytes(p1.to_bytes()).ring_pedersen == published.params
    check_signature(p1.public_key, DIGEST, ecdsa2p.sign(p1, p2, DIGEST))
    with pytest.raises(UsageError):
        KeygenP1(new_sid(), published.params)  # type: ignore[arg-type]
