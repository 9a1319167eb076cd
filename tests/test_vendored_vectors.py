"""The vendored official vectors (``tests/vectors/``) are present, unmodified, and required.

The SHA-256 of every file vendored from an upstream repository is pinned here and in
``tests/vectors/README.md``: the files are byte-for-byte copies, and a changed byte must be a
deliberate update of both. A missing file fails the tests that read it (never a skip).
"""

from __future__ import annotations

import hashlib

import pytest

from tests.fixtures.vectors import VECTOR_ROOT, load_vector, vector_path

# path under tests/vectors -> SHA-256 of the upstream file (see tests/vectors/README.md)
VENDORED = {
    "frost-ed25519/rfc9591_frost_ed25519_sha512.json": "1aa27908efa7f9388c4145059021fe71db971613bfd1f27467b1bb2da5d95c9c",
    "frost-ed25519/vectors.json": "758b15f8ca7f6e18dae2ce907ab727717e19a6476ae62fc3406b82a58470a128",
    "frost-ed25519/vectors-big-identifier.json": "a7861e00487f42dc079e8f0d65a38699ae8a71e2de8e1fb74854b4cfe73aaa05",
    "frost-ed25519/vectors_dkg.json": "ab1cb3c50d18e59eb15b099ac4faad5240b5cde5eeeb6305dbd9601b70a15c7c",
    "frost-ed25519/repair-share.json": "2f0c6fae5a29a48606865b68e76c90f75393a612111a192a4179704fba2d9b2b",
    "wycheproof/ecdsa_secp256k1_sha256_test.json": "43db761c0a2eae71fb0755d355d5130e28ce64a5b07846cf27e7072082597a81",
    "wycheproof/ecdsa_secp256k1_sha256_p1363_test.json": "7a339efc7134fb2495cd32afdbd692e0f86427d3c24e9073f6a7d858bb8788d2",
    "wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json": "543dcb717016959f287dfc65af749e4501b9d2ec42824c59d80796aa605695da",
}


@pytest.mark.parametrize("relative", sorted(VENDORED))
def test_vendored_file_is_the_upstream_copy(relative: str) -> None:
    path = VECTOR_ROOT / relative
    assert path.is_file(), f"missing vendored vector {relative}"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == VENDORED[relative], relative


@pytest.mark.parametrize("folder", sorted({r.split("/")[0] for r in VENDORED}))
def test_only_used_files_are_vendored(folder: str) -> None:
    present = {f"{folder}/{p.name}" for p in (VECTOR_ROOT / folder).iterdir() if p.is_file()}
    assert present == {r for r in VENDORED if r.startswith(folder + "/")}


def test_readme_names_every_vendored_file() -> None:
    readme = (VECTOR_ROOT / "README.md").read_text(encoding="utf-8")
    for relative, digest in VENDORED.items():
        assert relative.split("/")[1] in readme and digest in readme, relative


def test_a_missing_vector_fails_instead_of_skipping() -> None:
    assert not vector_path("wycheproof", "no_such_file.json").exists()
    with pytest.raises(pytest.fail.Exception, match="vendored test vector missing"):
        load_vector("wycheproof", "no_such_file.json")
