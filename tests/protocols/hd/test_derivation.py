"""Public derivation: BIP32 CKDpub and xpubs against BIP32's vectors; the ed25519 rule against an
independent, straightforward implementation written here from docs/hd.md; paths."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest
from nacl import bindings as sodium

from curves import ed25519, secp256k1
from protocols.errors import UsageError
from protocols.hd import HARDENED, InvalidChild, InvalidPath, parse_path
from protocols.hd import bip32, ed25519_derivation
from tests.fixtures.vectors import load_vector

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode_check(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    data = number.to_bytes(82, "big")
    assert hashlib.sha256(hashlib.sha256(data[:-4]).digest()).digest()[:4] == data[-4:]
    return data[:-4]


def _fingerprint(key: bytes) -> bytes:
    return hashlib.new("ripemd160", hashlib.sha256(key).digest()).digest()[:4]


def test_ckdpub_matches_bip32_test_vectors() -> None:
    data = load_vector("bip32", "bip32_ckdpub.json")
    assert len(data["steps"]) == 6
    for step in data["steps"]:
        raw = _b58decode_check(step["parent"])
        depth, chain_code, key = raw[4], raw[13:45], secp256k1.decode_point(raw[45:78])
        child, child_code, _ = bip32.ckd_pub(key, chain_code, step["index"])
        text = bip32.serialize_xpub(child, child_code, depth=depth + 1, child_number=step["index"],
                                    parent_fingerprint=_fingerprint(key.to_bytes()))
        assert text == step["child"], step["parent_chain"]


def test_xpub_serialisation_round_trips_bip32_vectors() -> None:
    for text in load_vector("bip32", "bip32_ckdpub.json")["serialisation"]:
        raw = _b58decode_check(text)
        again = bip32.serialize_xpub(secp256k1.decode_point(raw[45:]), raw[13:45], depth=raw[4],
                                     child_number=int.from_bytes(raw[9:13], "big"), parent_fingerprint=raw[5:9])
        assert again == text


def test_derive_public_sums_the_tweaks() -> None:
    root = secp256k1.base_mul(12345)
    key, _, tweak = bip32.derive_public(root, bytes(32), (0, 7, 2**31 - 1))
    assert key == root + secp256k1.base_mul(tweak)


def _independent_ed25519_child(point: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """docs/hd.md's rule written out with libsodium only."""
    digest = hmac.new(chain_code, point + index.to_bytes(4, "big"), hashlib.sha512).digest()
    t = int.from_bytes(digest[:32], "big") % (2**252 + 27742317777372353535851937790883648493)
    tweak_point = sodium.crypto_scalarmult_ed25519_base_noclamp(t.to_bytes(32, "little"))
    return sodium.crypto_core_ed25519_add(point, tweak_point), digest[32:]


def test_ed25519_derivation_matches_an_independent_implementation() -> None:
    for _ in range(10):
        a, c = ed25519.base_mul(ed25519.random_scalar()), secrets.token_bytes(32)
        index = secrets.randbelow(HARDENED)
        child, code, _ = ed25519_derivation.ckd_pub(a, c, index)
        assert (child.to_bytes(), code) == _independent_ed25519_child(a.to_bytes(), c, index)


def test_ed25519_fixed_vector_of_docs() -> None:
    """The vector printed in docs/hd.md, from both implementations."""
    a = ed25519.base_mul(1)
    expected = {
        (0,): ("cb14b7daebb6f93a1e8538116ff017828d91048731165a9ada816d066757c87a",
               "0ffb0e3687c695f356826cdf2b583e08d2ec99c0d4045cb392f8e62c7ff417d6"),
        (0, 1): ("509329681c34a6b01ab125ef2210bc750a2ddc41878d5df497bf25a53e2ea037",
                 "54c17e739d11da1e9160c549cc527f82662d877d5b8da0535bba9d2f5ee9155f"),
    }
    for indices, (key_hex, code_hex) in expected.items():
        child, code, _ = ed25519_derivation.derive_public(a, bytes(range(32)), indices)
        assert (child.to_bytes().hex(), code.hex()) == (key_hex, code_hex)
        point, chain = a.to_bytes(), bytes(range(32))
        for index in indices:
            point, chain = _independent_ed25519_child(point, chain, index)
        assert (point.hex(), chain.hex()) == (key_hex, code_hex)
        extended = ed25519_derivation.serialize_extended(child, code)
        assert ed25519_derivation.parse_extended(extended) == (child, code) and len(extended) == 128


def test_paths_are_parsed_strictly() -> None:
    parsed = parse_path("m/44'/60h/0'/0/5")
    assert parsed.account == (44 + HARDENED, 60 + HARDENED, HARDENED) and parsed.children == (0, 5)
    assert parsed.account_path == "m/44'/60'/0'" and str(parsed) == "m/44'/60'/0'/0/5"
    assert parse_path("m") == parse_path("m") and parse_path("m/0").account == ()
    bad = ["", "M/0", "m/", "m//1", "m/01", "m/-1", "m/2147483648", "m/1'/2/3'", "m/1H", "m/ 1", "m/1''",
           "/".join(["m"] + ["1"] * 11), 44, None, "m/１"]
    for path in bad:
        with pytest.raises(InvalidPath):
            parse_path(path)
    assert len(parse_path("/".join(["m"] + ["1'"] * 10)).account) == 10


def test_hardened_or_wrong_inputs_are_refused_by_ckdpub() -> None:
    with pytest.raises(UsageError) as info:
        bip32.ckd_pub(secp256k1.base_mul(1), bytes(32), HARDENED)
    assert not isinstance(info.value, InvalidChild)
    for text in ("00" * 64, "AB" * 64, "zz" * 64, "01" * 63):
        with pytest.raises(UsageError):
            ed25519_derivation.parse_extended(text)


def test_path_parsing_is_cached_by_the_plain_text_and_refusals_stay_refused() -> None:
    class Collides(str):  # every instance hashes and compares equal: a cache keyed on it would mix them up
        def __hash__(self) -> int:
            return 0

        def __eq__(self, other: object) -> bool:
            return True

    assert str(parse_path(Collides("m/1'/2"))) == "m/1'/2" and str(parse_path(Collides("m/3/4"))) == "m/3/4"
    for _ in range(2):
        with pytest.raises(InvalidPath):
            parse_path("m/1/2'")
    assert parse_path("m/5'/6") == parse_path("m/5h/6") and parse_path("m/5'/6").children == (6,)
