"""The ed25519 key of an eject signs standard Ed25519 (RFC 8032) from its expanded secret key
(docs/backup.md, "Eject"); PyNaCl (libsodium) verifies every signature."""

from __future__ import annotations

import hashlib

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

import mpc
from mpc.backup import client_ops
from mpc.client import EjectedKeys
from mpc.errors import InputInvalid

# RFC 8032 §7.1, TEST 2 and TEST 3 (secret seed, public key, message, signature)
RFC8032 = [
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


@pytest.fixture(scope="module")
def ejected() -> EjectedKeys:
    from .conftest import new_wallet

    wallet = new_wallet()
    wallet.generate()
    wallet.backup()
    keys, _ = mpc.run_local(wallet.client.eject(), wallet.custodian.eject(wallet.client_id))
    assert isinstance(keys, EjectedKeys)
    return keys


@pytest.mark.parametrize("message", [b"", b"transfer 1 SOL", bytes(range(256)) * 4])
def test_signatures_of_the_ejected_key_verify_with_pynacl(ejected, message):
    signature = ejected.ed25519_sign(message)
    assert len(signature) == 64
    VerifyKey(ejected.ed25519_public_key).verify(message, signature)
    assert ejected.ed25519_sign(message) == signature  # deterministic, as RFC 8032
    with pytest.raises(BadSignatureError):
        VerifyKey(ejected.ed25519_public_key).verify(message + b"!", signature)


def test_the_expanded_key_is_the_scalar_and_a_derived_prefix(ejected):
    expanded = ejected.ed25519_expanded_secret_key()
    assert len(expanded) == 64 and expanded[:32] == ejected.ed25519_scalar
    assert expanded[32:] == hashlib.sha512(b"portal-mpc/ed25519-eject-prefix/v1" + ejected.ed25519_scalar).digest()[:32]
    assert expanded.hex() not in repr(ejected) and ejected.ed25519_scalar.hex() not in str(ejected)


@pytest.mark.parametrize("seed, public, message, signature", RFC8032)
def test_the_signer_is_rfc8032_given_the_seeds_expanded_key(monkeypatch, seed, public, message, signature):
    """With the prefix RFC 8032 takes from a seed, the signer gives the RFC's signatures byte for byte."""
    digest = hashlib.sha512(bytes.fromhex(seed)).digest()
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    monkeypatch.setattr(client_ops, "_ed25519_prefix", lambda _scalar: digest[32:])
    keys = EjectedKeys(bytes(32), bytes(33), bytes(scalar), bytes.fromhex(public))
    assert keys.ed25519_sign(bytes.fromhex(message)).hex() == signature
    assert SigningKey(bytes.fromhex(seed)).sign(bytes.fromhex(message)).signature.hex() == signature


def test_the_signer_takes_bytes_only(ejected):
    with pytest.raises(InputInvalid):
        ejected.ed25519_sign("transfer")  # type: ignore[arg-type]
