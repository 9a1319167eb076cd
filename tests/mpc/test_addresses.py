"""Addresses from the wallet's public keys: published vectors and independent libraries."""

from __future__ import annotations

import base64

import base58
import bech32
import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.pubkey import Pubkey
from stellar_sdk import Keypair

from curves import ed25519, secp256k1
from mpc.addresses import (
    CHAIN_CURVES,
    _eip55,
    addresses,
    base58_encode,
    base58check_encode,
    bech32_encode,
    bitcoin_address,
    crc16_xmodem,
    ethereum_address,
    segwit_address,
    solana_address,
    stellar_address,
    tron_address,
)
from mpc.errors import InputInvalid

# The secp256k1 generator (private key 1), the key of BIP173's P2WPKH example.
G33 = bytes.fromhex("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
# RFC 8032 section 7.1, TEST 1 public key.
RFC8032_PK1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

secp_keys = st.integers(min_value=1, max_value=secp256k1.order - 1).map(
    lambda k: secp256k1.base_mul(k).to_bytes()
)
ed_keys = st.integers(min_value=1, max_value=ed25519.order - 1).map(
    lambda k: ed25519.base_mul(k).to_bytes()
)


# --- Ethereum -------------------------------------------------------------------------------------
EIP55_EXAMPLES = [  # the examples in the EIP-55 text
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_checksum_casing_matches_the_eip(address):
    assert _eip55(bytes.fromhex(address[2:])) == address


def test_ethereum_address_of_private_key_one():
    assert ethereum_address(G33) == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


# --- Bitcoin / bech32 -----------------------------------------------------------------------------
def test_bip173_p2wpkh_example():
    assert bitcoin_address(G33) == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    assert bitcoin_address(G33, testnet=True) == "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"


BIP173_CHECKSUM_VECTORS = [  # valid bech32 strings from BIP173
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # 90 characters, the longest allowed
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]


@pytest.mark.parametrize("vector", BIP173_CHECKSUM_VECTORS)
def test_bech32_checksum_vectors(vector):
    lower = vector.lower()
    hrp, _, rest = lower.rpartition("1")
    data = ["qpzry9x8gf2tvdw0s3jn54khce6mua7l".index(c) for c in rest[:-6]]
    assert bech32_encode(hrp, data) == lower


SEGWIT_VECTORS = [  # BIP350's valid segwit addresses (including the corrected BIP173 ones)
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]


@pytest.mark.parametrize(("address", "script"), SEGWIT_VECTORS)
def test_segwit_address_vectors(address, script):
    script_bytes = bytes.fromhex(script)
    opcode, push, program = script_bytes[0], script_bytes[1], script_bytes[2:]
    assert push == len(program)
    version = 0 if opcode == 0 else opcode - 0x50  # OP_0, OP_1..OP_16
    hrp = address.lower()[:2]
    assert segwit_address(hrp, version, program) == address.lower()


@pytest.mark.parametrize(
    ("version", "program"),
    [(0, b"\x00" * 21), (17, b"\x00" * 20), (1, b"\x00"), (1, b"\x00" * 41)],
)
def test_segwit_address_rejects_bad_programs(version, program):
    with pytest.raises(InputInvalid):
        segwit_address("bc", version, program)


@pytest.mark.parametrize(("hrp", "data"), [("", [0]), ("BC", [0]), ("bc", [32])])
def test_bech32_rejects_bad_input(hrp, data):
    with pytest.raises(InputInvalid):
        bech32_encode(hrp, data)


# --- base58 / Tron --------------------------------------------------------------------------------
BASE58_VECTORS = [  # Bitcoin Core's base58_encode_decode.json
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
]


@pytest.mark.parametrize(("hex_data", "encoded"), BASE58_VECTORS)
def test_base58_vectors(hex_data, encoded):
    assert base58_encode(bytes.fromhex(hex_data)) == encoded


def test_base58check_tron_documented_example():
    # TRON's documentation pairs this hex address with this base58check form.
    payload = bytes.fromhex("418840E6C55B9ADA326D211D818C34A994AECED808")
    assert base58check_encode(payload) == "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL"


def test_tron_address_shares_the_ethereum_account_id():
    tron = tron_address(G33)
    assert tron.startswith("T")
    decoded = base58.b58decode_check(tron)
    assert decoded == b"\x41" + bytes.fromhex(ethereum_address(G33)[2:])


# --- Solana / Stellar -----------------------------------------------------------------------------
def test_solana_address_is_base58_of_the_key():
    # A well-known program id decodes and re-encodes to itself.
    vote_program = "Vote111111111111111111111111111111111111111"
    assert base58_encode(base58.b58decode(vote_program)) == vote_program
    assert solana_address(RFC8032_PK1) == str(Pubkey(RFC8032_PK1))


def test_stellar_strkey_sep23_example():
    # SEP-23's example account id; its key is a valid ed25519 point.
    account = "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ"
    raw = base64.b32decode(account)
    assert raw[0] == 6 << 3
    assert stellar_address(raw[1:33]) == account


def test_crc16_xmodem_check_value():
    # The CRC catalogue's check value for CRC-16/XMODEM over "123456789".
    assert crc16_xmodem(b"123456789") == 0x31C3


# --- all five, and bad keys -----------------------------------------------------------------------
def test_addresses_has_exactly_the_five_chains():
    result = addresses(G33, RFC8032_PK1)
    assert list(result) == ["ethereum", "bitcoin", "tron", "solana", "stellar"]
    assert set(result) == set(CHAIN_CURVES)
    assert result["bitcoin"].startswith("bc1q")
    assert addresses(G33, RFC8032_PK1, testnet=True)["bitcoin"].startswith("tb1q")


@pytest.mark.parametrize(
    "bad",
    [b"", G33[:-1], b"\x04" + G33[1:], b"\x02" + b"\xff" * 32, "02" * 33, None],
)
def test_secp_functions_reject_bad_keys(bad):
    for fn in (ethereum_address, bitcoin_address, tron_address):
        with pytest.raises(InputInvalid):
            fn(bad)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        RFC8032_PK1[:-1],
        b"\x01" + b"\x00" * 31,  # the identity
        b"\x00" * 32,  # a point of small order
        b"\xff" * 32,  # not canonical
    ],
)
def test_ed_functions_reject_bad_keys(bad):
    for fn in (solana_address, stellar_address):
        with pytest.raises(InputInvalid):
            fn(bad)


# --- cross-checks against independent libraries --------------------------------------------------
def _uncompressed_xy(pub33: bytes) -> bytes:
    x, y = secp256k1.affine(secp256k1.decode_point(pub33))
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


@settings(max_examples=40, deadline=None)
@given(secp_keys)
def test_ethereum_matches_eth_utils(pub33):
    from eth_hash.auto import keccak

    account = keccak(_uncompressed_xy(pub33))[-20:]
    assert ethereum_address(pub33) == to_checksum_address(account)


@settings(max_examples=40, deadline=None)
@given(secp_keys, st.booleans())
def test_bitcoin_matches_bech32_library(pub33, testnet):
    hrp = "tb" if testnet else "bc"
    address = bitcoin_address(pub33, testnet=testnet)
    version, program = bech32.decode(hrp, address)
    assert version == 0 and len(program) == 20
    assert bech32.encode(hrp, 0, program) == address


@settings(max_examples=40, deadline=None)
@given(secp_keys)
def test_tron_matches_base58_library(pub33):
    account = bytes.fromhex(ethereum_address(pub33)[2:])
    assert tron_address(pub33) == base58.b58encode_check(b"\x41" + account).decode()


@settings(max_examples=40, deadline=None)
@given(ed_keys)
def test_solana_matches_solders_and_base58(pub32):
    assert solana_address(pub32) == str(Pubkey(pub32))
    assert solana_address(pub32) == base58.b58encode(pub32).decode()


@settings(max_examples=40, deadline=None)
@given(ed_keys)
def test_stellar_matches_stellar_sdk(pub32):
    assert stellar_address(pub32) == Keypair.from_raw_ed25519_public_key(pub32).public_key


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40))
def test_base58_matches_library_on_any_bytes(data):
    assert base58_encode(data) == base58.b58encode(data).decode()
    assert base58check_encode(data) == base58.b58encode_check(data).decode()
