"""The runnable examples of the documentation: the Python blocks of README.md and docs/*.md, and the
docstrings of ``protocols.frost`` and ``protocols.ecdsa2p``.

Markdown: every ```python block is run by a test here, or is preceded by a marker saying why it
is not (``<!-- not-run: why -->``); :func:`test_every_python_block_is_run_or_says_why_not`
refuses a block that is neither. The files whose blocks run are ``MARKDOWN_RUNNERS``: all the
unmarked blocks of a file run in order in one namespace, in a fresh folder, as printed, with two
test-only substitutions the runner states (the tests' pre-made Paillier key and setups instead of
fresh safe primes, and a service on a free port instead of 8765). The TLS recipe of
docs/operations.md (its shell steps, then its Python block) runs step by step under ``-m slow``.

Docstrings: each docstring with examples is one test, run with ``doctest``. Two-party ECDSA keygen takes
about 1.5 s even with a pre-generated Paillier key (Π_mod, Π_fac and Π_log* at 2048 bits), so
its example lines are marked ``# doctest: +SKIP`` and the ECDSA examples run on one share pair
made here, once: keygen with the test setups (tests/conftest.py) and the pre-generated Paillier
key of ``tests/fixtures``, given to the examples as ``p1_share`` and ``p2_share``.
"""

from __future__ import annotations

import copy
import doctest
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from protocols import ecdsa2p, frost, paillier
from tests.fixtures import paillier_keys

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->$")
# The files whose unmarked Python blocks a test here runs, and that test.
MARKDOWN_RUNNERS = {"README.md": "test_readme_python_blocks_run_as_printed",
                    "docs/errors.md": "test_errors_md_python_blocks_run",
                    "docs/hd.md": "test_hd_md_python_blocks_run",
                    "docs/operations.md": "test_the_tls_recipe_runs_step_by_step"}

MODULES: tuple[ModuleType, ...] = (frost, ecdsa2p)

# Docstrings that must keep runnable examples (the reference's entry points for both protocols).
REQUIRED = {
    "protocols.frost", "protocols.frost.dkg", "protocols.frost.sign",
    "protocols.ecdsa2p", "protocols.ecdsa2p.sign",
}


def _find() -> list[tuple[ModuleType, doctest.DocTest]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [(module, test) for module in MODULES for test in finder.find(module) if test.examples]


TESTS = _find()


@pytest.fixture(scope="module")
def ecdsa_pair() -> tuple[ecdsa2p.P1KeyShare, ecdsa2p.P2KeyShare]:
    key = paillier_keys()[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paillier, "keygen", lambda bits=2048: (key.public_key, key))
        return ecdsa2p.keygen()


def test_the_protocols_have_examples() -> None:
    assert REQUIRED <= {test.name for _, test in TESTS}


@pytest.mark.parametrize(("module", "test"), TESTS, ids=[test.name for _, test in TESTS])
def test_docstring_examples(module: ModuleType, test: doctest.DocTest, request: pytest.FixtureRequest) -> None:
    test = copy.copy(test)
    test.globs = dict(vars(module))  # fresh globals: the runner clears them afterwards
    if "p1_share" in "".join(example.source for example in test.examples):
        test.globs["p1_share"], test.globs["p2_share"] = request.getfixturevalue("ecdsa_pair")
    output: list[str] = []
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=output.append)
    assert result.failed == 0, "".join(output)


# --- Markdown ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    """A fenced code block: file (relative to the repository), first line, language, code, and the
    reason of its ``not-run`` marker (None without one)."""

    path: str
    line: int
    language: str
    code: str
    not_run: str | None


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with the marker on the line before it, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, at = [], 0
    while at < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[at])
        if opening is None:
            at += 1
            continue
        end = next(i for i in range(at + 1, len(lines)) if lines[i].startswith("```"))
        marker = NOT_RUN.match(lines[at - 1].strip()) if at else None
        blocks.append(Block(path.relative_to(ROOT).as_posix(), at + 1, opening.group(1), "\n".join(lines[at + 1:end]),
                            marker.group(1) if marker else None))
        at = end + 1
    return blocks


def runnable(path: str, language: str = "python") -> list[Block]:
    """The unmarked blocks of ``language`` in ``path``, in order."""
    return [block for block in markdown_blocks(ROOT / path) if block.language == language and block.not_run is None]


def test_every_python_block_is_run_or_says_why_not() -> None:
    blocks = [block for path in MARKDOWN for block in markdown_blocks(path) if block.language == "python"]
    assert blocks, "no Python blocks found"
    orphans = [f"{block.path}:{block.line}" for block in blocks
               if block.not_run is None and block.path not in MARKDOWN_RUNNERS]
    assert not orphans, f"Python blocks neither run by a test nor marked <!-- not-run: why -->: {orphans}"
    assert all(runnable(path) for path in MARKDOWN_RUNNERS), "a runner with nothing to run"


def test_the_marker_is_found_and_read() -> None:
    """The parser itself: a marked block carries its reason, the next one none."""
    text = "intro\n<!-- not-run: needs AWS -->\n```python\nimport boto3\n```\n\n```python\nx = 1\n```\n"
    path = ROOT / "build" / "marker-check.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        first, second = markdown_blocks(path)
    finally:
        path.unlink()
    assert (first.not_run, first.code, first.line) == ("needs AWS", "import boto3", 3)
    assert (second.not_run, second.code) == (None, "x = 1")


@pytest.fixture
def fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with a new store key in ``$PORTAL_MPC_STORE_KEY_FILE`` (what the README
    tells its reader to do) and the tests' Paillier key for every keygen (not a fresh 2048-bit one)."""
    from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, new_key_file

    monkeypatch.chdir(tmp_path)
    new_key_file(tmp_path / "store.key")
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, "store.key")
    key = paillier_keys()[0]
    monkeypatch.setattr(paillier, "keygen", lambda bits=2048: (key.public_key, key))
    return tmp_path


def test_readme_python_blocks_run_as_printed(fresh_folder: Path, custodian_setup: Any, client_setup: Any) -> None:
    """README.md's Python blocks, in order, in one namespace; the networked custodian's block talks
    to a service started here (its operator key in ``operator.key``, as the README's shell block
    makes it) on a free port instead of 8765."""
    pytest.importorskip("websockets")
    pytest.importorskip("eth_account")
    from eth_account import Account

    from mpc.service.server import ServiceThread

    operator_key = "operator-key-for-the-readme-0123456789"
    (fresh_folder / "operator.key").write_text(operator_key + "\n", encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    with ServiceThread(":memory:", operator_key=operator_key) as service:
        for block in runnable("README.md"):
            code = block.code.replace("ws://127.0.0.1:8765", service.url)
            exec(compile(code, f"{block.path}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
    assert len(namespace["ed_signature"]) == 64 and namespace["signature"].recid in (0, 1)
    new_device = namespace["new_device"]  # the in-process wallet (client_id now names the networked one)
    view = namespace["custodian"].get_client(new_device.client_id)
    assert view["signing_share_status"] == "STORED_CLIENT" and view["addresses"] == new_device.addresses()
    assert namespace["result"].chain == "ethereum"
    assert Account.recover_transaction(namespace["signed"].raw_transaction) == namespace["device"].addresses()["ethereum"]


def test_errors_md_python_blocks_run(fresh_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {"__name__": "__errors__"}
    for block in runnable("docs/errors.md"):
        exec(compile(block.code, f"{block.path}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
    assert capsys.readouterr().out.startswith("CLIENT_NOT_FOUND 404 {'error': {'id': 'CLIENT_NOT_FOUND'")


def test_hd_md_python_blocks_run(fresh_folder: Path, custodian_setup: Any, client_setup: Any) -> None:
    """docs/hd.md's example, as printed: a wallet, two accounts, a receive address, an xpub and a
    signature at a path (checked against the key at that path)."""
    from tests.mpc.conftest import verify_result

    namespace: dict[str, Any] = {"__name__": "__hd__"}
    for block in runnable("docs/hd.md"):
        exec(compile(block.code, f"{block.path}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
    client = namespace["client"]
    assert namespace["receive"].startswith("bc1q") and namespace["xpub"].startswith("xpub")
    signature = namespace["signature"]
    assert signature.public_key == client.public_key("secp256k1", "m/44'/60'/1'/0/0")
    verify_result(signature, namespace["digest"])  # verifies under the key at the path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _commands(script: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The TLS recipe's shell blocks run in ``tmp_path``; its ``serve`` line started in the background
    on a free port (stopped at the end), the other lines run by bash in order."""
    pytest.importorskip("websockets")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_MPC_")}
    env["PYTHONPATH"] = str(ROOT)
    port = _free_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        for block in runnable("docs/operations.md", "bash")[:2]:  # the test CA, then serve
            for command in _commands(block.code):
                if " -m mpc serve " in command:
                    argv = shlex.split(command.replace("--port 8765", f"--port {port}"))
                    argv[0] = sys.executable
                    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE)
                    continue
                subprocess.run(["bash", "-ec", "umask 077; " + command.replace("python3 ", f"{sys.executable} ", 1)],
                               cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
        assert server is not None, "the recipe has no serve line"
        _wait_listening(port, server)
        yield tmp_path, port
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)


def _wait_listening(port: int, server: subprocess.Popen[bytes], limit: float = 180.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("serve did not listen in time")


@pytest.mark.slow
def test_the_tls_recipe_runs_step_by_step(served: tuple[Path, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/operations.md, TLS: the test CA and certificates with openssl, the store key and the
    operator key, ``serve`` with them (a free port instead of 8765), then the Python block."""
    folder, port = served
    monkeypatch.chdir(folder)
    assert (folder / "operator.key").read_text() != (folder / "operator-client.key").read_text()
    namespace: dict[str, Any] = {"__name__": "__operations__"}
    for block in runnable("docs/operations.md"):
        code = block.code.replace("wss://localhost:8765", f"wss://localhost:{port}")
        exec(compile(code, f"{block.path}:{block.line}", "exec"), namespace)  # noqa: S102 - the docs' own code
    assert namespace["view"]["client_id"] == namespace["client_id"]
    assert namespace["view"]["signing_share_status"] == "STORED_CLIENT"  # the recipe generates the wallet
