"""Chain addresses from the wallet's two public keys.

secp256k1 key (33-byte compressed SEC1):
  ethereum  EIP-55 checksummed hex of the last 20 bytes of Keccak-256(X ‖ Y)
  bitcoin   P2WPKH: BIP173 bech32 of witness v0 program HASH160(pubkey33); hrp ``bc`` / ``tb``
  tron      base58check of 0x41 ‖ the same 20 bytes as Ethereum (``T…``)
ed25519 key (32 bytes):
  solana    base58 of the key
  stellar   SEP-23 StrKey: base32(0x30 ‖ key ‖ CRC16-XModem little-endian) (``G…``)

Keys are decoded strictly at the boundary (on the curve, canonical, in the prime-order group); a
bad key raises ``InputInvalid``. Keccak-256 and RIPEMD-160 come from pycryptodome (hashlib has
no Keccak, and OpenSSL 3 may leave out RIPEMD-160). Base58 and bech32 are the small encoders
below, also used by the chain modules.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence

from Crypto.Hash import RIPEMD160, keccak

from curves import ed25519, secp256k1
from curves.errors import CurveError
from mpc.errors import InputInvalid
from protocols.encoding import base58_encode, base58check_encode

__all__ = [
    "CHAIN_CURVES",
    "ethereum_address",
    "bitcoin_address",
    "tron_address",
    "solana_address",
    "stellar_address",
    "addresses",
    "address_of",
    "base58_encode",
    "base58check_encode",
    "bech32_encode",
    "segwit_address",
    "crc16_xmodem",
]

CHAIN_CURVES: Mapping[str, str] = {
    "ethereum": "secp256k1",
    "bitcoin": "secp256k1",
    "tron": "secp256k1",
    "solana": "ed25519",
    "stellar": "ed25519",
}
"""Each supported chain and the curve its keys and signatures are on."""

_TRON_PREFIX = b"\x41"
_STELLAR_ACCOUNT_VERSION = 6 << 3  # SEP-23 version byte of an ed25519 public key ("G…")


# --- hashes -------------------------------------------------------------------------------------
def _keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def _hash160(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)), Bitcoin's HASH160."""
    return RIPEMD160.new(hashlib.sha256(data).digest()).digest()


# --- bech32 (BIP173) / bech32m (BIP350) ----------------------------------------------------------
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: Sequence[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_encode(hrp: str, data: Sequence[int], *, bech32m: bool = False) -> str:
    """BIP173 bech32 (or BIP350 bech32m) string of 5-bit ``data`` under a lowercase ``hrp``."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp) or hrp != hrp.lower():
        raise InputInvalid("bech32 human-readable part must be lowercase printable ASCII")
    if any(not 0 <= d < 32 for d in data):
        raise InputInvalid("bech32 data values must be 5-bit")
    const = _BECH32M_CONST if bech32m else _BECH32_CONST
    polymod = _bech32_polymod(_hrp_expand(hrp) + list(data) + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    encoded = hrp + "1" + "".join(_BECH32_CHARSET[d] for d in [*data, *checksum])
    if len(encoded) > 90:
        raise InputInvalid("bech32 string longer than 90 characters")
    return encoded


def _bytes_to_5bit(data: bytes) -> list[int]:
    """Regroup 8-bit bytes into 5-bit groups, zero-padding the last one (BIP173 convertbits)."""
    acc, bits, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def segwit_address(hrp: str, witness_version: int, program: bytes) -> str:
    """Segwit address: bech32 for witness v0 (BIP173), bech32m for v1..v16 (BIP350)."""
    if not 0 <= witness_version <= 16:
        raise InputInvalid("witness version must be 0..16")
    if not 2 <= len(program) <= 40 or (witness_version == 0 and len(program) not in (20, 32)):
        raise InputInvalid("witness program length not allowed for this version")
    data = [witness_version, *_bytes_to_5bit(program)]
    return bech32_encode(hrp, data, bech32m=witness_version != 0)


# --- CRC16-XModem (Stellar StrKey) ----------------------------------------------------------------
def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


# --- key decoding ---------------------------------------------------------------------------------
def _secp_uncompressed_xy(secp_pub33: bytes) -> bytes:
    """The 64 bytes X ‖ Y of a strictly decoded compressed secp256k1 key."""
    try:
        point = secp256k1.decode_point(secp_pub33)
    except CurveError as exc:
        raise InputInvalid(f"not a secp256k1 public key: {exc}") from None
    x, y = secp256k1.affine(point)
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _checked_secp(secp_pub33: bytes) -> bytes:
    _secp_uncompressed_xy(secp_pub33)
    return bytes(secp_pub33)


def _checked_ed(ed_pub32: bytes) -> bytes:
    try:
        ed25519.decode_point(ed_pub32)
    except CurveError as exc:
        raise InputInvalid(f"not an ed25519 public key: {exc}") from None
    return bytes(ed_pub32)


def _keccak_account(secp_pub33: bytes) -> bytes:
    """The 20-byte account id shared by Ethereum and Tron."""
    return _keccak256(_secp_uncompressed_xy(secp_pub33))[-20:]


# --- addresses ------------------------------------------------------------------------------------
def _eip55(account20: bytes) -> str:
    lower = account20.hex()
    digest = _keccak256(lower.encode("ascii")).hex()
    # EIP-55: a letter is upper case where the matching nibble of the hash is 8 or more.
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest))


def ethereum_address(secp_pub33: bytes) -> str:
    """EIP-55 checksummed Ethereum address (``0x`` + 40 hex digits) of a secp256k1 key."""
    return _eip55(_keccak_account(secp_pub33))


def bitcoin_address(secp_pub33: bytes, testnet: bool = False) -> str:
    """P2WPKH address (``bc1q…``, or ``tb1q…`` for testnet) of a compressed secp256k1 key."""
    program = _hash160(_checked_secp(secp_pub33))
    return segwit_address("tb" if testnet else "bc", 0, program)


def tron_address(secp_pub33: bytes) -> str:
    """Tron address (base58check of 0x41 ‖ account id, ``T…``) of a secp256k1 key."""
    return base58check_encode(_TRON_PREFIX + _keccak_account(secp_pub33))


def solana_address(ed_pub32: bytes) -> str:
    """Solana address: the base58 of the ed25519 public key."""
    return base58_encode(_checked_ed(ed_pub32))


def _strkey(version: int, raw: bytes) -> str:
    """SEP-23 StrKey: base32 (no padding) of version ‖ raw ‖ CRC16-XModem(version ‖ raw) LE."""
    payload = bytes([version]) + raw
    checksum = crc16_xmodem(payload).to_bytes(2, "little")
    return base64.b32encode(payload + checksum).decode("ascii").rstrip("=")


def stellar_address(ed_pub32: bytes) -> str:
    """Stellar account id (SEP-23 StrKey, ``G…``) of an ed25519 public key."""
    return _strkey(_STELLAR_ACCOUNT_VERSION, _checked_ed(ed_pub32))


def addresses(secp_pub33: bytes, ed_pub32: bytes, *, testnet: bool = False) -> dict[str, str]:
    """All five addresses keyed by chain name; ``testnet`` changes only Bitcoin's (``tb1…``)."""
    return {
        "ethereum": ethereum_address(secp_pub33),
        "bitcoin": bitcoin_address(secp_pub33, testnet=testnet),
        "tron": tron_address(secp_pub33),
        "solana": solana_address(ed_pub32),
        "stellar": stellar_address(ed_pub32),
    }


_ADDRESS_OF = {
    "ethereum": ethereum_address,
    "tron": tron_address,
    "solana": solana_address,
    "stellar": stellar_address,
}


def address_of(chain: str, public_key: bytes, *, testnet: bool = False) -> str:
    """The address of one public key on ``chain`` (33-byte secp256k1 or 32-byte ed25519 key)."""
    if chain == "bitcoin":
        return bitcoin_address(public_key, testnet=testnet)
    if chain not in _ADDRESS_OF:
        raise InputInvalid(f"unknown chain {chain!r}")
    return _ADDRESS_OF[chain](public_key)

