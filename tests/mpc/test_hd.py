"""HD accounts through the wallet API (docs/hd.md), checked by independent code: embit (BIP32,
P2WPKH), eth-keys (Ethereum), an ed25519 derivation written here from docs/hd.md with solders
(Solana) and stellar-sdk (Stellar); signatures verified with coincurve and PyNaCl."""

from __future__ import annotations

import hashlib
import hmac
import random
from typing import Any

import coincurve
import pytest
from embit import bip32 as embit_bip32
from embit import script as embit_script
from eth_keys import keys as eth_keys
from nacl import bindings as sodium
from nacl.signing import VerifyKey
from solders.pubkey import Pubkey
from stellar_sdk import Keypair

import mpc
from curves import ed25519
from mpc import hd
from mpc.errors import AccountNotDerived, MessageInvalid, PathInvalid, StateInvalid
from protocols.hd import AccountKey
from tests.mpc.conftest import Wallet, data_for, new_wallet

ACCOUNTS = ["m/84'/0'/0'", "m/44'/60'/1'"]
L = 2**252 + 27742317777372353535851937790883648493


def _paths(seed: int, count: int = 20) -> list[tuple[str, tuple[int, ...]]]:
    """``count`` random non-hardened paths, half under each account."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        children = tuple(rng.randrange(2**31) if rng.random() < 0.3 else rng.randrange(100)
                         for _ in range(rng.randrange(1, 4)))
        out.append((ACCOUNTS[n % 2] + "".join(f"/{i}" for i in children), children))
    return out


PATHS = _paths(29)


@pytest.fixture(scope="module")
def hd_wallet() -> Wallet:
    wallet = new_wallet()
    wallet.generate()
    mpc.run_local(wallet.client.derive(ACCOUNTS), wallet.custodian.derive(wallet.client_id, ACCOUNTS))
    return wallet


def _ed25519_child(extended: str, children: tuple[int, ...]) -> bytes:
    """docs/hd.md's ed25519 derivation, written independently with libsodium."""
    point, chain_code = bytes.fromhex(extended[:64]), bytes.fromhex(extended[64:])
    for index in children:
        digest = hmac.new(chain_code, point + index.to_bytes(4, "big"), hashlib.sha512).digest()
        t = int.from_bytes(digest[:32], "big") % L
        point = sodium.crypto_core_ed25519_add(point, sodium.crypto_scalarmult_ed25519_base_noclamp(t.to_bytes(32, "little")))
        chain_code = digest[32:]
    return point


def test_addresses_equal_those_derived_from_the_account_xpubs(hd_wallet: Wallet) -> None:
    client = hd_wallet.client
    for path, children in PATHS:
        account = path.rsplit("'", 1)[0] + "'"
        xpub = embit_bip32.HDKey.from_string(client.extended_public_key("bitcoin", account))
        key = xpub.derive(list(children)).key
        assert client.address("bitcoin", path) == embit_script.p2wpkh(key).address()
        uncompressed = coincurve.PublicKey(key.sec()).format(compressed=False)[1:]
        assert client.address("ethereum", path) == eth_keys.PublicKey(uncompressed).to_checksum_address()
        point = _ed25519_child(client.extended_public_key("solana", account), children)
        assert client.address("solana", path) == str(Pubkey(point))
        assert client.address("stellar", path) == Keypair.from_raw_ed25519_public_key(point).public_key
    assert client.extended_public_key("ethereum", ACCOUNTS[0]) == client.extended_public_key("bitcoin", ACCOUNTS[0])


def test_xpubs_follow_bip32_serialisation(hd_wallet: Wallet) -> None:
    xpub = embit_bip32.HDKey.from_string(hd_wallet.client.extended_public_key("bitcoin", "m/84'/0'/0'"))
    assert (xpub.depth, xpub.child_number, xpub.fingerprint) == (3, 0x80000000, bytes(4))
    assert not xpub.is_private


def _sign(wallet: Wallet, chain: str, data: bytes, path: str, device: mpc.Client | None = None) -> mpc.SignResult:
    result, custodian_result = mpc.run_local((device or wallet.client).sign(chain, data, path=path),
                                             wallet.custodian.sign(wallet.client_id, chain, data, path=path))
    assert result.signature == custodian_result.signature
    return result


def _check_signatures(wallet: Wallet, paths: list[tuple[str, tuple[int, ...]]], chains: tuple[str, ...]) -> None:
    for path, _ in paths:
        for chain in chains:
            data = data_for(chain, path.encode())
            result = _sign(wallet, chain, data, path)
            assert result.public_key == wallet.client.public_key(result.curve, path)
            if result.curve == "secp256k1":
                der = result.der
                assert der is not None and coincurve.PublicKey(result.public_key).verify(der, data, hasher=None)
            else:
                VerifyKey(result.public_key).verify(data, result.signature)


def test_signatures_at_paths_verify_under_the_child_keys(hd_wallet: Wallet) -> None:
    _check_signatures(hd_wallet, PATHS, ("solana",))
    _check_signatures(hd_wallet, PATHS[:4], ("bitcoin",))


@pytest.mark.slow
def test_signatures_at_all_twenty_paths_on_both_curves(hd_wallet: Wallet) -> None:
    _check_signatures(hd_wallet, PATHS, ("ethereum", "stellar"))


def test_root_key_stays_the_default_address(hd_wallet: Wallet) -> None:
    client = hd_wallet.client
    assert client.address("ethereum") == client.addresses()["ethereum"]
    assert client.address("ethereum", "m/44'/60'/1'/0/0") != client.addresses()["ethereum"]
    view = hd_wallet.custodian.get_client(hd_wallet.client_id)
    assert client.accounts() == {"secp256k1": sorted(ACCOUNTS), "ed25519": sorted(ACCOUNTS)}
    assert all(set(ACCOUNTS) <= set(view["accounts"][curve]) for curve in ("secp256k1", "ed25519"))


@pytest.mark.parametrize("path", ["m/84'/0'/0'/0/1'", "m/84'/0'/0'" + "/1" * 8, "m/84'/0'/0'/x", "84'/0", "", 5,
                                  "m/84'/0'/0'/2147483648"])
def test_bad_paths_are_refused_and_nothing_is_signed(hd_wallet: Wallet, path: object) -> None:
    data = data_for("bitcoin")
    with pytest.raises(PathInvalid):
        hd_wallet.client.sign("bitcoin", data, path=path)  # type: ignore[arg-type]
    with pytest.raises(PathInvalid):
        hd_wallet.custodian.sign(hd_wallet.client_id, "bitcoin", data, path=path)  # type: ignore[arg-type]
    with pytest.raises(PathInvalid):
        hd_wallet.client.address("bitcoin", path)  # type: ignore[arg-type]


def test_underived_accounts_and_mismatched_paths_are_refused(hd_wallet: Wallet) -> None:
    data = data_for("bitcoin")
    with pytest.raises(AccountNotDerived):
        hd_wallet.client.sign("bitcoin", data, path="m/84'/0'/7'/0/0")
    with pytest.raises(AccountNotDerived):
        hd_wallet.client.extended_public_key("bitcoin", "m/84'/0'/7'")
    with pytest.raises(MessageInvalid):  # the custodian was asked for another path: refused at hello
        mpc.run_local(hd_wallet.client.sign("bitcoin", data, path="m/84'/0'/0'/0/1"),
                      hd_wallet.custodian.sign(hd_wallet.client_id, "bitcoin", data, path="m/84'/0'/0'/0/2"))
    with pytest.raises(MessageInvalid):  # a path on one side only
        mpc.run_local(hd_wallet.client.sign("solana", b"m", path="m/84'/0'/0'/0/1"),
                      hd_wallet.custodian.sign(hd_wallet.client_id, "solana", b"m"))
    with pytest.raises(MessageInvalid):  # derive of other paths than the custodian's
        mpc.run_local(hd_wallet.client.derive(["m/1'"]), hd_wallet.custodian.derive(hd_wallet.client_id, ["m/2'"]))


def test_backup_recover_keeps_the_derived_addresses_and_eject_gives_the_derived_keys() -> None:
    wallet = new_wallet()
    wallet.generate()
    mpc.run_local(wallet.client.derive(ACCOUNTS), wallet.custodian.derive(wallet.client_id, ACCOUNTS))
    before = {path: wallet.client.address("ethereum", path) for path, _ in PATHS[:6]}
    before_sol = {path: wallet.client.address("solana", path) for path, _ in PATHS[:6]}
    wallet.backup()
    wallet.client.wipe()
    assert not any(name.startswith(wallet.client_id) for name in wallet.client.keychain.names())  # k1, accounts
    device = wallet.device()
    wallet.recover(device)
    with pytest.raises(AccountNotDerived):  # accounts are derived again on a new device (one round trip)
        device.address("ethereum", PATHS[0][0])
    mpc.run_local(device.derive(ACCOUNTS), wallet.custodian.derive(wallet.client_id, ACCOUNTS))
    assert {path: device.address("ethereum", path) for path in before} == before
    assert {path: device.address("solana", path) for path in before_sol} == before_sol
    path = PATHS[1][0]
    assert _sign(wallet, "solana", b"after recover", path, device).public_key == device.public_key("ed25519", path)
    keys, _ = mpc.run_local(device.eject(), wallet.custodian.eject(wallet.client_id))
    for path in before:
        secret = keys.derived_private_key("secp256k1", path)
        assert coincurve.PrivateKey(secret).public_key.format() == device.public_key("secp256k1", path)
        scalar = keys.derived_private_key("ed25519", path)
        assert sodium.crypto_scalarmult_ed25519_base_noclamp(scalar) == device.public_key("ed25519", path)


def test_a_wallet_without_derivation_key_gets_one_at_its_first_derive() -> None:
    wallet = new_wallet()
    wallet.generate()
    for curve in ("secp256k1", "ed25519"):  # a wallet generated before HD derivation existed
        wallet.client.keychain.delete(f"{wallet.client_id}.{curve}.derivation")
    wallet.custodian.store.delete_hd(wallet.client_id)
    result, view = mpc.run_local(wallet.client.derive(["m/0'"]), wallet.custodian.derive(wallet.client_id, ["m/0'"]))
    assert set(result["m/0'"]) == {"secp256k1", "ed25519"} and view["accounts"]["ed25519"] == ["m/0'"]
    again, _ = mpc.run_local(wallet.client.derive(["m/0'"]), wallet.custodian.derive(wallet.client_id, ["m/0'"]))
    assert again == result  # the same key from now on
    wallet.client.keychain.delete(f"{wallet.client_id}.secp256k1.derivation")  # a lost share, accounts exist
    with pytest.raises(StateInvalid):
        mpc.run_local(wallet.client.derive(["m/0'"]), wallet.custodian.derive(wallet.client_id, ["m/0'"]))


def test_derive_and_sign_at_a_path_over_the_service() -> None:
    pytest.importorskip("websockets")
    from mpc.backup.methods import MemoryCloudStorage
    from mpc.remote.blocking import RemoteCustodian
    from mpc.service.server import ServiceThread

    operator_key = "operator-key-for-the-tests-0123456789"
    with ServiceThread(":memory:", session_ttl=30, operator_key=operator_key) as running:
        remote = RemoteCustodian(running.url, timeout=30.0, operator_key=operator_key)
        client_id, token = remote.create_client()
        phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
        remote.generate(phone, token)
        accounts, view = remote.derive(phone, token, ACCOUNTS)
        assert sorted(accounts) == sorted(ACCOUNTS) and view["accounts"]["secp256k1"] == sorted(ACCOUNTS)
        for chain, path in (("bitcoin", "m/84'/0'/0'/1/3"), ("stellar", "m/44'/60'/1'/0")):
            data = data_for(chain, b"over the wire")
            result, custodian_result = remote.sign(phone, token, chain, data, path=path)
            assert result.public_key == phone.public_key(result.curve, path)
            assert custodian_result.signature == result.signature  # typed: the same SignResult
        with pytest.raises(PathInvalid):
            remote.sign(phone, token, "bitcoin", data_for("bitcoin"), path="m/84'/0'/0'/1/3'")


def _run_parking(device: Any, server: Any, custodian: mpc.Custodian) -> tuple[Any, Any]:
    """Drive the two sessions, parking and resuming the custodian's after every message it takes."""
    to_server, to_device = device.start(), server.start()
    while not (device.done and server.done):
        assert to_server or to_device, "the sessions stalled"
        if to_server:
            to_device += server.receive(to_server.pop(0))
            if not server.done:
                server = custodian.resume(server.to_bytes())
        else:
            to_server += device.receive(to_device.pop(0))
    return device.result(), server.result()


def test_custodian_sessions_at_a_path_park_and_resume(hd_wallet: Wallet) -> None:
    """The networked custodian parks its session between rounds: signing at a path and derive
    resume from their bytes."""
    client, custodian, client_id = hd_wallet.client, hd_wallet.custodian, hd_wallet.client_id
    path, data = "m/84'/0'/0'/1/2", data_for("bitcoin", b"parked")
    result, _ = _run_parking(client.sign("bitcoin", data, path=path),
                             custodian.sign(client_id, "bitcoin", data, path=path), custodian)
    assert result.public_key == client.public_key("secp256k1", path)
    der = result.der
    assert der is not None and coincurve.PublicKey(result.public_key).verify(der, data, hasher=None)
    before = client.extended_public_key("solana", ACCOUNTS[1])
    accounts, view = _run_parking(client.derive(ACCOUNTS[1:]), custodian.derive(client_id, ACCOUNTS[1:]), custodian)
    assert accounts[ACCOUNTS[1]]["ed25519"] == before and ACCOUNTS[1] in view["accounts"]["ed25519"]


def test_a_custodian_sending_a_wrong_vrf_value_is_caught_and_nothing_is_kept(hd_wallet: Wallet) -> None:
    """The wallet-level view of the VRF's checks (tests/protocols/hd/test_vrf.py has every field):
    a custodian that shifts its V_2 is named by the client's DLEQ check; no account is stored."""
    from curves import group_by_name
    from protocols.errors import ProtocolAbort
    from protocols.local import run
    from protocols.rounds import Message

    def shift(msg: Message) -> Message:
        payload = msg.payload
        if msg.sender != 2 or payload.get("child") != "hd-vrf-ed25519":
            return msg
        inner = dict(payload["message"])
        inner_payload = dict(inner["payload"])
        group = group_by_name("ed25519")
        value = group.decode_point(bytes.fromhex(inner_payload["V"][0])) + group.generator()
        inner_payload["V"] = [value.to_bytes().hex()]
        inner["payload"] = inner_payload
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient,
                       {"child": payload["child"], "message": inner})

    path = "m/77'"
    with pytest.raises(ProtocolAbort) as info:
        run([hd_wallet.client.derive([path]), hd_wallet.custodian.derive(hd_wallet.client_id, [path])], tamper=shift)
    assert info.value.culprit == 2
    with pytest.raises(AccountNotDerived):
        hd_wallet.client.extended_public_key("solana", path)


def test_cached_child_keys_belong_to_their_own_account() -> None:
    """``hd.child_key`` is cached: two accounts with the same path and chain code, each asked twice,
    get the child key of the independent derivation and the tweak δ + t of their own account."""
    chain_code, (path, children) = random.Random(7).randbytes(32), PATHS[0]
    accounts = [AccountKey.from_root("ed25519", ACCOUNTS[0], ed25519.base_mul(random.randrange(1, L)), delta,
                                     chain_code) for delta in (5, 6)]
    keys = set()
    for account in accounts:
        for _ in range(2):
            key, tweak = hd.child_key(account, hd.parse_hd_path(path))
            assert key.to_bytes() == _ed25519_child(account.extended_public_key(), children)
            assert key == account.public_key + ed25519.base_mul(tweak - account.tweak)
            keys.add(key)
    assert len(keys) == 2
