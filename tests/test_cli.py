"""The command line (``python -m mpc``, the ``portal-mpc`` console script): version, help on every
option, one clean line for a configuration error, progress on stderr for the slow steps."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc import __main__ as cli

ROOT = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The parser and every sub-command's parser, depth first, with their command paths."""
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_the_console_script_is_main() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["portal-mpc"].partition(":")
    assert module == "mpc.__main__" and getattr(cli, function) is cli.main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"portal-mpc {mpc.__version__}"


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out
    for command in ("demo", "setup", "serve", "store-key", "nonce-epoch"):
        assert command in out


def test_every_option_of_every_command_has_help() -> None:
    parser, _ = cli.build_parser()
    missing = [f"{prog} {'/'.join(action.option_strings) or action.dest}"
               for prog, sub in _parsers(parser) for action in sub._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert not missing, missing


def test_a_store_without_a_key_is_one_clean_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """serve on a file store with no key: exit status 2 and one line naming the code and the fix
    (in this process: logging is left alone, the store is refused before anything starts)."""
    import mpc.service.logs

    for name in [name for name in os.environ if name.startswith("PORTAL_MPC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(mpc.service.logs, "configure_logging", lambda *args, **kwargs: None)
    status = cli.main(["serve", "--db", str(tmp_path / "c.sqlite3"), "--port", "0", "--open-registration"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "registration" not in line.lower()]
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m mpc: error: STORE_KEY_MISSING:") and "store-key new" in lines[0]


def test_an_engine_error_that_is_not_configuration_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> int:
        raise mpc.errors.ProtocolAborted("a bug, not a configuration")

    monkeypatch.setattr(cli, "nonce_epoch", broken)
    with pytest.raises(mpc.errors.ProtocolAborted):
        cli.main(["nonce-epoch", "--db", "x.sqlite3"])


def test_device_setup_reports_progress_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str], client_setup: Any) -> None:
    """The device's setup (seconds) says what it is doing on stderr before and while it works;
    the result line stays on stdout. The setup itself is replaced by the tests' pre-made one."""
    import mpc.client

    def fake(keychain: mpc.Keychain, progress: object = None, level: object = None) -> object:
        assert callable(progress)
        progress("safe prime 1 of 2")
        return client_setup

    monkeypatch.setattr(mpc.client, "make_device_setup", fake)
    assert cli.main(["setup", "--device", str(tmp_path / "keychain")]) == 0
    captured = capsys.readouterr()
    assert "making the device's setup" in captured.err and "safe prime 1 of 2" in captured.err
    assert "device setup" in captured.out and "making" not in captured.out


@pytest.mark.parametrize("argv", [
    ["serve", "--db", "postgresql://portal:hunter2@127.0.0.1:1/x", "--restore-guard", "g", "--store-key-file", "k"],
    ["serve", "--ledger", "postgresql://portal:hunter2@127.0.0.1:1/l", "--restore-guard", "g", "--store-key-file", "k"],
])
def test_a_refused_serve_changes_nothing_in_the_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Every argument is checked before serve configures logging or exports the environment its
    workers read: a refused command leaves no log handler (on the caller's stream) and no variable."""
    import logging

    root = logging.getLogger()
    handlers, level, environment = list(root.handlers), root.level, dict(os.environ)
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and "hunter2" not in capsys.readouterr().err
    assert (list(root.handlers), root.level) == (handlers, level)
    assert dict(os.environ) == environment
