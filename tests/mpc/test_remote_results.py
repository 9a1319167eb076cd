"""The remote clients' typed results (``mpc.remote.channel``): what the custodian service sends is
checked before it is handed out as the same types ``mpc.run_local`` gives."""

from __future__ import annotations

from typing import Any

import pytest

import mpc
from mpc.errors import EngineError
from mpc.remote.specs import eject_spec, generate_spec, presign_spec, recover_spec, sign_spec
from mpc.wallet import SignResult

VIEW: dict[str, Any] = {
    "client_id": "c1", "signing_share_status": "STORED_CLIENT", "backup_share_status": "NOT_CREATED",
    "backups": {}, "backup_methods": [], "ejected": False, "public_keys": {}, "addresses": {},
    "lockout": {"locked": False, "failed_attempts": 0, "limit": 10, "since": None},
    "accounts": {"secp256k1": [], "ed25519": []},
}
SIGNED = SignResult("ethereum", "secp256k1", b"\x02" * 33, b"\x01" * 64, 1, 2, 0, b"\x30")


def device() -> mpc.Client:
    return mpc.Client("c1", mpc.MemoryKeychain())


def test_a_sign_result_is_the_device_signature_once_the_custodian_agrees() -> None:
    typed = sign_spec(device(), "sign", "ethereum", bytes(32)).typed
    assert typed(SIGNED, SIGNED.to_json()) == (SIGNED, SIGNED)
    other = {**SIGNED.to_json(), "s": hex(3)}
    with pytest.raises(EngineError, match="differs"):
        typed(SIGNED, other)


def test_views_are_checked_and_a_recover_result_must_carry_the_new_token() -> None:
    addresses = {"ethereum": "0x"}
    assert generate_spec(device()).typed(addresses, VIEW) == (addresses, VIEW)
    with pytest.raises(EngineError, match="client view"):
        generate_spec(device()).typed(addresses, {**VIEW, "ejected": "no"})
    with pytest.raises(EngineError, match="client view"):
        generate_spec(device()).typed(addresses, ["not", "a", "view"])
    for spec in (recover_spec(device(), None, None), eject_spec(device(), None, None)):
        _, result = spec.typed(addresses, {**VIEW, "token": "new"})
        assert result["token"] == "new"
        with pytest.raises(EngineError, match="new token"):
            spec.typed(addresses, VIEW)


@pytest.mark.parametrize("field, bad", [
    ("public_keys", {"secp256k1": 7}),
    ("addresses", {"ethereum": None}),
    ("addresses", {1: "0x"}),
    ("backups", {"CLOUD": {"status": "BACKED_UP", "self_managed": "no", "pending": False}}),
    ("backups", {"CLOUD": "BACKED_UP"}),
    ("backup_methods", ["CLOUD", 2]),
    ("lockout", {"locked": False, "failed_attempts": "0", "limit": 10, "since": None}),
    ("lockout", {"locked": False, "failed_attempts": True, "limit": 10, "since": None}),
    ("lockout", {"locked": False, "limit": 10, "since": None}),
    ("accounts", {"secp256k1": "m/44'/60'/0'"}),
    ("accounts", {"secp256k1": [0]}),
])
def test_nested_fields_of_a_view_are_checked(field: str, bad: Any) -> None:
    """A view whose nested values have the wrong types is refused, not handed out typed."""
    with pytest.raises(EngineError, match="client view"):
        generate_spec(device()).typed({}, {**VIEW, field: bad})
    good = {**VIEW, "backups": {"CLOUD": {"status": "BACKED_UP", "self_managed": False, "pending": False}},
            "lockout": {"locked": True, "failed_attempts": 10, "limit": 10, "since": 1.5},
            "accounts": {"secp256k1": ["m/44'/60'/0'"], "ed25519": []}}
    assert generate_spec(device()).typed({}, good) == ({}, good)


def test_presign_counts_must_be_integers() -> None:
    typed = presign_spec(device(), 2).typed
    assert typed({"secp256k1": 2}, {"secp256k1": 2}) == ({"secp256k1": 2}, {"secp256k1": 2})
    for bad in ({"secp256k1": True}, {"secp256k1": "2"}, [2]):
        with pytest.raises(EngineError, match="presign"):
            typed({"secp256k1": 2}, bad)
