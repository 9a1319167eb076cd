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


_ROW = re.compile(r"^\|(?P<cells>.*)\|$")
_PARENT = re.compile(r"\((?:a|an) `(\w+)`")
_ALSO = re.compile(r"also (?:a|an) `([\w.]+)`")


def _table() -> list[list[str]]:
    """The reference table of docs/errors.md: one list of five cells per error row."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line.strip())
        if match and line.startswith("| `"):
            cells = [cell.strip() for cell in match.group("cells").split("|")]
            assert len(cells) == 5, f"a row of docs/errors.md does not have 5 cells: {line[:60]}"
            rows.append(cells)
    return rows


def _engine_parent(cls: type[EngineError]) -> type[EngineError] | None:
    """The engine error class ``cls`` specialises (None for EngineError's direct subclasses)."""
    parents = [base for base in cls.__bases__ if issubclass(base, EngineError) and base is not EngineError]
    return parents[0] if parents else None


def test_docs_errors_table_matches_the_registry():
    """docs/errors.md and ``mpc.errors.ERRORS`` cannot drift: every code documented once with its
    class, its parent, its status and both texts; no documented code that the code lacks."""
    table = _table()
    ids = [cells[0].strip("`") for cells in table]
    assert len(ids) == len(set(ids)), "a code is documented twice"
    assert set(ids) == set(ERRORS), (
        f"documented but not in the code: {sorted(set(ids) - set(ERRORS))}; "
        f"in the code but not documented: {sorted(set(ERRORS) - set(ids))}")
    for cells in table:
        code, class_cell, status, meaning, todo = cells
        cls = ERRORS[code.strip("`")]
        assert class_cell.startswith(f"`{cls.__name__}`"), f"{code}: documented as {class_cell}"
        assert int(status) == cls.status, f"{code}: documented status {status}, the class says {cls.status}"
        assert meaning and todo, f"{code}: say what it means and what the caller should do"
        parent = _engine_parent(cls)
        documented_parent = _PARENT.search(class_cell)
        assert (documented_parent.group(1) if documented_parent else None) == (parent.__name__ if parent else None), \
            f"{code}: the table must name its parent class as the code does"
        for also in _ALSO.findall(class_cell):
            assert any(also.rsplit(".", 1)[-1] == base.__name__ for base in cls.__mro__), f"{code}: not a {also}"


def test_every_engine_error_in_the_package_is_registered():
    """Every EngineError subclass of every ``mpc`` module is in ERRORS (so in the table above):
    codes are defined in mpc.errors, where from_json and the table see them."""
    import importlib
    import pkgutil

    import mpc

    for module in pkgutil.walk_packages(mpc.__path__, "mpc."):
        if module.name != "mpc.__main__":
            try:
                importlib.import_module(module.name)
            except ImportError:  # a chain adapter without its library
                continue
    pending, seen = [EngineError], []
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    stray = [f"{cls.__module__}.{cls.__name__}" for cls in seen if ERRORS.get(cls.code) is not cls]
    assert not stray, f"define these in mpc.errors with their own code: {stray}"


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


# --- errors that said the wrong thing (issue 20) ---------------------------------------------------
def _wallet_modules():
    from tests.mpc.conftest import data_for, new_wallet

    return data_for, new_wallet


@pytest.fixture(scope="module")
def one_wallet():
    """A generated wallet for the tests below that change nothing (a generate takes seconds)."""
    _, new_wallet = _wallet_modules()
    wallet = new_wallet()
    wallet.generate()
    return wallet


@pytest.mark.parametrize("data", [b"x" * 31, b"x" * 33, b"", "ab" * 16, 32, None], ids=repr)
def test_a_secp256k1_digest_of_another_length_or_type_is_input_invalid(one_wallet, data):
    wallet = one_wallet
    for make in (lambda: wallet.client.sign("ethereum", data),
                 lambda: wallet.custodian.sign(wallet.client_id, "ethereum", data)):
        with pytest.raises(InputInvalid) as info:
            make()
        assert type(info.value) is InputInvalid and info.value.status == 400
        expected = "signs a 32-byte digest" if isinstance(data, bytes) else "must be bytes"
        assert expected in info.value.message


def test_after_a_refused_digest_signing_goes_on(one_wallet):
    data_for, _ = _wallet_modules()
    with pytest.raises(InputInvalid):
        one_wallet.client.sign("bitcoin", b"x" * 31)
    one_wallet.sign("bitcoin", data_for("bitcoin"))


def test_an_old_device_after_a_recover_gets_share_replaced():
    data_for, new_wallet = _wallet_modules()
    wallet = new_wallet()
    wallet.generate()
    wallet.backup()
    old_device, new_device = wallet.client, wallet.device()
    wallet.recover(new_device)
    for chain in ("ethereum", "bitcoin", "solana", "stellar"):
        with pytest.raises(errors.ShareReplaced) as info:
            wallet.sign(chain, data_for(chain), client=old_device)
        err = info.value
        assert err.code == "SHARE_REPLACED" and err.status == 409
        assert "recover" in err.message and "wipe this device" in err.message
        assert not isinstance(err, (MessageInvalid, ProtocolAborted))  # not "drop the message", no culprit
        assert from_json(err.to_json()).code == "SHARE_REPLACED"
    for chain in ("ethereum", "solana"):  # the refusal locked nothing: the new device signs
        wallet.sign(chain, data_for(chain), client=new_device)
    with pytest.raises(errors.ShareReplaced, match="recover replaced it"):  # a backup from it too
        wallet.backup(client=old_device)
    wallet.backup(client=new_device)  # and the refused backup left no operation lock behind


def test_a_late_confirmation_overtaken_by_another_generate_gets_share_replaced():
    from protocols.local import run

    _, new_wallet = _wallet_modules()
    wallet = new_wallet()
    first_client, first_custodian = wallet.client.generate(), wallet.custodian.generate(wallet.client_id)
    held = []
    with pytest.raises(MPCError):  # the first device's "stored" never arrives
        run([first_client, first_custodian],
            tamper=lambda m: held.append(m) if m.payload.get("step") == "stored" else m)
    import mpc

    mpc.run_local(wallet.device().generate(), wallet.custodian.generate(wallet.client_id))
    with pytest.raises(errors.ShareReplaced, match="replaced by a later generate or recover"):
        first_custodian.receive(held[0])
    assert wallet.status() == ("STORED_CLIENT", "NOT_CREATED")


def test_a_backup_method_mismatch_names_both_methods(one_wallet, cheap_argon2id):
    import mpc
    from mpc.backup.methods import PasswordMethod

    wallet = one_wallet
    password = PasswordMethod("violet tractor moss lantern quibble fjord", opslimit=1, memlimit=8192)
    with pytest.raises(MessageInvalid) as info:
        mpc.run_local(wallet.client.backup(password), wallet.custodian.backup(wallet.client_id, "CLOUD"))
    assert info.value.message == "the client asks for backup method PASSWORD, the custodian session was opened for CLOUD"
    assert "violet" not in info.value.message


def test_a_hello_mismatch_names_each_parameter_and_no_data():
    from mpc.operation import hello_mismatch

    expected = {"client_id": "c1", "chain": "ethereum", "data_sha256": "ab" * 32, "client_share": "02" * 33}
    asked = {"client_id": "c1", "chain": "bitcoin", "data_sha256": "cd" * 32, "client_share": "02" * 33,
             "extra\n": "x" * 100}
    text = hello_mismatch(asked, expected)
    assert "the client asks for a signature on bitcoin, the custodian session was opened for ethereum" in text
    assert "other data" in text and "cd" * 4 not in text and "ab" * 4 not in text
    assert "unknown field extra?" in text and "x" * 41 not in text
    assert hello_mismatch({"client_id": "c1"}, {"client_id": "c1", "count": 3}) == "the client's hello has no count"


def test_recover_before_any_backup_is_backup_not_found_as_documented(one_wallet):
    with pytest.raises(errors.BackupNotFound):
        one_wallet.custodian.recover(one_wallet.client_id, "CLOUD")
    rows = {line.split("|")[1].strip(" `"): line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `")}
    assert "recover before a backup" not in rows["STATE_INVALID"]
    assert "recover" in rows["BACKUP_NOT_FOUND"]
