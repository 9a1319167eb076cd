"""The engine error hierarchy: codes, statuses, JSON form, protocol mapping, error reference."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from curves.errors import InvalidEncoding
from mpc import errors
from mpc.errors import (
    ERRORS,
    EngineError,
    InputInvalid,
    KeyLockedError,
    MessageInvalid,
    ProtocolAborted,
    StateInvalid,
    WalletAlreadyExists,
    from_json,
    from_protocol_error,
)
from protocols.errors import (
    FutureMessage,
    InvalidMessage,
    KeyLocked,
    MPCError,
    ProofError,
    ProtocolAbort,
    UsageError,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
CODE_PATTERN = re.compile(r"^[A-Z]+(_[A-Z]+)*$")


def _error_classes() -> list[type[EngineError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, EngineError) and obj.__module__ == errors.__name__
    ]


def _documented_rows() -> dict[str, tuple[str, int]]:
    """id -> (class name, status) from the reference table."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([A-Z_]+)` \| `(\w+)`[^|]*\| (\d{3}) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2), int(match.group(3)))
    return rows


def test_codes_are_unique_and_well_formed():
    classes = _error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    for code in codes:
        assert CODE_PATTERN.match(code), code
    assert set(ERRORS) == set(codes)


def test_statuses_are_http_error_statuses():
    for cls in _error_classes():
        assert 400 <= cls.status <= 599, cls


def test_every_error_class_is_documented_and_vice_versa():
    documented = _documented_rows()
    in_code = {cls.code: (cls.__name__, cls.status) for cls in _error_classes()}
    assert documented == in_code


def test_every_error_class_is_exported():
    for cls in _error_classes():
        assert cls.__name__ in errors.__all__


def test_json_form():
    err = WalletAlreadyExists()
    doc = err.to_json()
    assert doc == {"error": {"id": "WALLET_ALREADY_EXISTS", "message": err.message}}
    assert json.loads(json.dumps(doc)) == doc
    assert err.status == 400
    assert isinstance(err, MPCError)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.code)
def test_json_round_trip_rebuilds_the_class(cls):
    err = cls("some message")
    back = from_json(err.to_json())
    assert type(back) is cls
    assert back.message == "some message"
    assert back.code == cls.code and back.status == cls.status


def test_from_json_unknown_id_gives_base_error():
    back = from_json({"error": {"id": "FUTURE_THING", "message": "m"}})
    assert type(back) is EngineError


@pytest.mark.parametrize("doc", [None, {}, {"error": 1}, {"error": {"id": 1, "message": "m"}}])
def test_from_json_rejects_malformed_documents(doc):
    with pytest.raises(InputInvalid):
        from_json(doc)


def test_key_locked_error_is_also_protocol_key_locked():
    err = KeyLockedError()
    assert isinstance(err, KeyLocked)
    assert err.status == 423 and err.code == "KEY_LOCKED"
    with pytest.raises(KeyLocked):
        raise err


@pytest.mark.parametrize(
    ("exc", "expected", "status"),
    [
        (InvalidMessage("bad round"), MessageInvalid, 400),
        (FutureMessage("later round"), MessageInvalid, 400),
        (ProtocolAbort("proof failed", culprit=2), ProtocolAborted, 422),
        (ProofError("bad proof"), ProtocolAborted, 422),
        (KeyLocked("locked"), KeyLockedError, 423),
        (UsageError("out of order"), StateInvalid, 409),
        (InvalidEncoding("bad point"), InputInvalid, 400),
        (RuntimeError("secret-bearing text"), EngineError, 500),
    ],
)
def test_from_protocol_error_maps_each_layer_error(exc, expected, status):
    mapped = from_protocol_error(exc)
    assert type(mapped) is expected
    assert mapped.status == status


def test_protocol_abort_keeps_its_culprit():
    mapped = from_protocol_error(ProtocolAbort("opening mismatch", culprit=1))
    assert isinstance(mapped, ProtocolAborted)
    assert mapped.culprit == 1
    assert "opening mismatch" in mapped.message


def test_unknown_errors_do_not_leak_their_text():
    mapped = from_protocol_error(RuntimeError("share=1234"))
    assert "1234" not in mapped.message


def test_engine_errors_pass_through_unchanged():
    err = WalletAlreadyExists()
    assert from_protocol_error(err) is err
