"""What ``import mpc`` offers: every name of ``mpc.__all__`` resolves, nothing a user needs is missing."""

from __future__ import annotations

import importlib
import sys

import pytest

import mpc
from mpc import errors

NEEDED = {
    "Custodian", "Client", "SQLiteStore", "open_store", "MemoryKeychain", "FileKeychain", "PasswordMethod",
    "CloudMethod", "PasskeyMethod", "MemoryCloudStorage", "LocalFolderCloudStorage", "RemoteCustodian",
    "AsyncRemoteCustodian", "EjectedKeys", "SignResult", "run_local", "errors", "CHAINS",
}


def test_every_name_in_all_resolves() -> None:
    assert len(mpc.__all__) == len(set(mpc.__all__))
    assert NEEDED <= set(mpc.__all__)
    for name in mpc.__all__:
        assert getattr(mpc, name) is not None, name


def test_exports_are_the_library_objects() -> None:
    from mpc.backup.methods import PasswordMethod
    from mpc.client import EjectedKeys
    from mpc.remote.blocking import RemoteCustodian
    from mpc.storage.backends import open_store

    assert mpc.PasswordMethod is PasswordMethod and mpc.EjectedKeys is EjectedKeys
    assert mpc.RemoteCustodian is RemoteCustodian and mpc.open_store is open_store


def test_every_error_class_is_reachable_from_mpc_errors() -> None:
    for code, cls in errors.ERRORS.items():
        assert getattr(mpc.errors, cls.__name__) is cls, code


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        mpc.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(mpc, "NoSuchThing")


def test_the_remote_custodian_without_the_server_extra_says_what_to_install(monkeypatch) -> None:
    """The lazy exports need websockets only when used: without it, the error names the extra."""
    real = importlib.import_module

    def without_remote(name: str, package: str | None = None):
        if name in ("mpc.remote.blocking", "mpc.remote.aio"):
            raise ModuleNotFoundError("No module named 'websockets'")
        return real(name, package)

    monkeypatch.delitem(mpc.__dict__, "RemoteCustodian", raising=False)
    monkeypatch.setattr(importlib, "import_module", without_remote)
    with pytest.raises(ImportError, match=r"portal-mpc\[server\]"):
        mpc.RemoteCustodian  # noqa: B018
    assert "mpc" in sys.modules


def test_run_local_refuses_what_is_not_a_session() -> None:
    with pytest.raises(errors.InputInvalid, match="two sessions"):
        mpc.run_local("client", "custodian")  # type: ignore[arg-type]


def test_dir_shows_only_public_names() -> None:
    """``dir(mpc)`` lists ``__all__`` and subpackages: no typing helpers or type variables."""
    names = set(dir(mpc))
    assert set(mpc.__all__) <= names
    assert not names & {"Any", "TypeVar", "cast", "A", "B", "R_co", "MPCError", "importlib", "Protocol", "annotations"}
    assert all(name in mpc.__all__ or isinstance(getattr(mpc, name), type(errors)) for name in names)


def test_one_public_error_base_with_a_code() -> None:
    """``mpc.EngineError`` is exported, carries ``code`` and ``status``, and every coded error is one."""
    assert "EngineError" in mpc.__all__ and mpc.EngineError is errors.EngineError
    assert all(issubclass(cls, mpc.EngineError) for cls in errors.ERRORS.values())
    assert mpc.EngineError.code == "ENGINE_INTERNAL_ERROR" and mpc.EngineError().status == 500


def test_run_local_surfaces_a_protocol_error_as_a_coded_one() -> None:
    """A message refused by the protocol layer (``InvalidMessage``, no code) reaches the caller of
    ``run_local`` as ``MESSAGE_INVALID``, an ``mpc.EngineError``."""
    from protocols.errors import InvalidMessage
    from protocols.rounds import Message, Session

    class Refusing(Session):
        def start(self) -> list[Message]:
            raise InvalidMessage("refused")

    with pytest.raises(mpc.EngineError) as caught:
        mpc.run_local(Refusing(b"\x01" * 32, 1, (1, 2)), Refusing(b"\x01" * 32, 2, (1, 2)))
    assert caught.value.code == "MESSAGE_INVALID"
