"""Observability of the custodian service (issue 18): structured logs with request ids, the audit
log, the metrics registry, GET /healthz /readyz /metrics, and serve's environment configuration."""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import io
import json
import logging
import multiprocessing
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("websockets")
from websockets.sync.client import connect  # noqa: E402

import mpc  # noqa: E402
from mpc.service import logs, metrics  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.service.config import apply_environment  # noqa: E402
from mpc.remote.blocking import RemoteCustodian  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from tests.mpc.conftest import data_for, service_logging  # noqa: E402

TIMEOUT = 30.0
OPERATOR_KEY = "observability-tests-operator-key-0123456789"


# --- helpers -----------------------------------------------------------------------------------------
class Captured:
    """Every record (root and ``mpc.audit``) formatted as JSON lines, as the service writes them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.JsonFormatter())
        self.handler.addFilter(logs.ContextFilter())

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def text(self) -> str:
        return self.stream.getvalue()

    def audit(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "mpc.audit"]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    root, audit_logger = logging.getLogger(), logging.getLogger(logs.AUDIT_LOGGER)
    saved = root.level, audit_logger.level, logs._REFUSALS
    logs._REFUSALS = logs.RefusalTally(window=0)  # every refusal in full here (aggregation: test_server_flood.py)
    root.addHandler(capture.handler)
    root.setLevel(logging.INFO)
    audit_logger.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture.handler)
        root.setLevel(saved[0])
        audit_logger.setLevel(saved[1])
        logs._REFUSALS = saved[2]


def raw(url: str, request: dict[str, Any]) -> dict[str, Any]:
    with connect(url, open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps(request))
        return json.loads(ws.recv(timeout=TIMEOUT))


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        connection.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    """The audit line follows the reply frame: give the service's loop a moment to write it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


# --- the audit log and the request ids, over the wire ------------------------------------------------------
def test_every_operation_and_every_auth_failure_gets_an_audit_line_without_secrets(captured: Captured) -> None:
    before = {op: metrics.OPERATIONS.value(op=op, outcome="ok") for op in ("generate", "sign", "eject")}
    auth_before = metrics.ERRORS.value(code="AUTH_FAILED")
    with ServiceThread(":memory:", session_ttl=30, operator_key=OPERATOR_KEY) as running:
        admin = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        client_id, token = admin.create_client()
        cloud = MemoryCloudStorage()
        phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
        reply = raw(running.url, {"op": "get_client", "client_id": client_id, "token": token})
        assert "result" in reply and re.fullmatch(r"[0-9a-f]{16}", reply["request_id"])
        admin.get_client(client_id)
        admin.generate(phone, token)
        data = data_for("ethereum", b"an observable payment")
        admin.sign(phone, token, "ethereum", data)
        admin.presign(phone, token, 1)
        admin.backup(phone, token)
        token2 = admin.rotate_token(client_id, token, device=phone)
        admin.revoke_token(client_id)
        refused = raw(running.url, {"op": "get_client", "client_id": client_id, "token": token2})
        assert refused["error"]["id"] == "AUTH_FAILED" and "request_id" in refused
        token3 = admin.issue_token(client_id)
        admin.unlock_client(client_id)
        new_phone = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
        token4 = admin.recover(new_phone, token3)[1]["token"]
        token5 = admin.eject(new_phone, token4)[1]["token"]
        wrong_key = "not-the-operator-key-0123456789"
        assert raw(running.url, {"op": "create_client", "operator_key": wrong_key})["error"]["id"] == "AUTH_FAILED"
        assert raw(running.url, {"op": "get_client", "client_id": client_id,
                                 "token": "x" * 43})["error"]["id"] == "AUTH_FAILED"
        expected = ["create_client", "get_client", "get_client", "generate", "sign", "presign", "backup",
                    "rotate_token", "revoke_token", "get_client", "issue_token", "unlock_client", "recover", "eject",
                    "create_client", "get_client"]
        wait_for(lambda: len(captured.audit()) >= len(expected))

    audit = captured.audit()
    assert [line["op"] for line in audit] == expected
    outcomes = [line["outcome"] for line in audit]
    assert outcomes == ["ok"] * 9 + ["AUTH_FAILED"] + ["ok"] * 4 + ["AUTH_FAILED"] * 2
    for line in audit:
        assert re.fullmatch(r"[0-9a-f]{16}", line["request_id"])
        assert line["remote"] == "127.0.0.1" and line["duration_ms"] >= 0 and line["event"] == "audit"
        assert line["credential"] in ("operator", "token", "device")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert all(line["client_id"] == client_id for line in audit[:14])
    assert "client_id" not in audit[14]  # a refused registration names no client
    assert audit[1]["request_id"] == reply["request_id"] and audit[9]["request_id"] == refused["request_id"]
    assert len({line["request_id"] for line in audit}) == len(audit)
    # Never a token, the operator key (right or wrong) or a payload, in any line.
    text = captured.text()
    for secret in (token, token2, token3, token4, token5, OPERATOR_KEY, wrong_key, data.hex(), "x" * 43):
        assert secret not in text
    for op in before:
        assert metrics.OPERATIONS.value(op=op, outcome="ok") >= before[op] + 1
    assert metrics.ERRORS.value(code="AUTH_FAILED") >= auth_before + 3


def test_malformed_requests_and_aborted_operations_are_audited_with_their_code(captured: Captured) -> None:
    with ServiceThread(":memory:", session_ttl=30, operator_key=OPERATOR_KEY) as running:
        assert raw(running.url, {"op": "fly" * 1000})["error"]["id"] == "AUTH_FAILED"
        admin = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        client_id, token = admin.create_client()
        assert raw(running.url, {"op": "generate", "client_id": client_id, "token": token,
                                 "session_id": "zz"})["error"]["id"] == "INPUT_INVALID"
        wait_for(lambda: len(captured.audit()) >= 3)
    audit = captured.audit()
    assert (audit[0]["op"], audit[0]["outcome"]) == ("unknown", "AUTH_FAILED")  # the op is never echoed
    assert (audit[2]["op"], audit[2]["outcome"]) == ("generate", "INPUT_INVALID")


def test_an_abort_naming_a_culprit_is_audited_with_it(captured: Captured) -> None:
    from mpc.service.observability import RequestRecord
    from mpc.service.worker import error_frame as _error
    from protocols.errors import ProtocolAbort

    document = _error(ProtocolAbort("bad proof", culprit=1))
    assert document["culprit"] == 1 and document["error"]["id"] == "PROTOCOL_ABORTED"
    record = RequestRecord("192.0.2.1")
    record.named("sign", "token")
    frame = record.error(document)
    assert "culprit" not in frame and frame["request_id"] == record.request_id  # never on the wire
    record.finish()
    record.finish()  # once
    (line,) = captured.audit()
    assert (line["outcome"], line["culprit"], line["remote"]) == ("PROTOCOL_ABORTED", 1, "192.0.2.1")


# --- HTTP endpoints ---------------------------------------------------------------------------------------
def test_health_readiness_and_metrics_endpoints(captured: Captured) -> None:
    with ServiceThread(":memory:", session_ttl=30, operator_key=OPERATOR_KEY) as running:
        admin = RemoteCustodian(running.url, timeout=TIMEOUT, operator_key=OPERATOR_KEY)
        admin.create_client()
        assert http_get(running.port, "/healthz")[0] == 200
        status, headers, body = http_get(running.port, "/readyz")
        assert status == 200 and headers["content-type"] == "application/json"
        readiness = json.loads(body)  # CustodianService.ready()'s checks
        assert readiness["ready"] is True and readiness["store"] == "ok" and readiness["pool"] == "ok"
        status, headers, body = http_get(running.port, "/metrics")
        assert status == 401 and "bearer" in headers["www-authenticate"].lower()
        assert http_get(running.port, "/metrics", {"Authorization": "Bearer wrong-key-0123456789"})[0] == 401
        status, headers, body = http_get(running.port, "/metrics?x=1", {"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert status == 200 and headers["content-type"] == metrics.CONTENT_TYPE
        for name in ("mpc_operations_total", "mpc_operation_duration_seconds_bucket", "mpc_errors_total",
                     "mpc_connections_open", "mpc_parked_sessions", "mpc_presign_pool_size",
                     "mpc_rate_limited_total", "mpc_pool_worker_restarts_total", "mpc_auth_failures_total"):
            assert f"# TYPE {name.removesuffix('_bucket')} " in body
        assert 'mpc_operations_total{op="create_client",outcome="ok"}' in body
        assert 'mpc_auth_failures_total{kind="operator"}' in body  # the refused scrapes
        assert "mpc_parked_sessions 0" in body
        assert http_get(running.port, "/")[0] == 426  # plain HTTP elsewhere: upgrade required, as before
        wait_for(lambda: len(captured.audit()) >= 3)
    refused = [line for line in captured.audit() if line["op"] == "metrics"]
    assert [line["outcome"] for line in refused] == ["AUTH_FAILED", "AUTH_FAILED"]
    assert OPERATOR_KEY not in captured.text() and "wrong-key-0123456789" not in captured.text()


def test_public_metrics_and_a_failing_readiness() -> None:
    with ServiceThread(":memory:", operator_key=OPERATOR_KEY, metrics_public=True) as running:
        status, _, body = http_get(running.port, "/metrics")
        assert status == 200 and "mpc_connections_open" in body
        running.service._pool.shutdown(wait=True)  # type: ignore[union-attr]
        status, _, body = http_get(running.port, "/readyz")
        assert status == 503 and json.loads(body)["ready"] is False and json.loads(body)["pool"] == "shut down"


# --- logs ------------------------------------------------------------------------------------------------
def test_json_and_text_lines_carry_the_context_and_only_the_exception_type() -> None:
    record = logging.LogRecord("mpc.service.server", logging.ERROR, __file__, 1, "step failed: %s", ("x",), None)
    try:
        raise ValueError("a secret-looking message 0xdeadbeef")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    with logs.log_context(request_id="00ff00ff00ff00ff", client_id="alice\nINFO forged", op="sign"):
        logs.ContextFilter().filter(record)
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["request_id"] == "00ff00ff00ff00ff" and line["op"] == "sign" and line["exc_type"] == "ValueError"
    assert line["level"] == "ERROR" and line["logger"] == "mpc.service.server" and line["message"] == "step failed: x"
    assert "deadbeef" not in json.dumps(line)
    text = logs.TextFormatter().format(record)
    assert "\n" not in text and 'client_id="alice\\nINFO forged"' in text and "deadbeef" not in text
    assert logs.clean("c" * 1000) == "c" * 256 + "…"


def test_the_context_reaches_executor_threads_and_spawned_worker_processes() -> None:
    bound = {"request_id": "0123456789abcdef", "client_id": "alice", "op": "generate"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(logs.call_in_context, None, bound, logs.context).result() == bound
        assert pool.submit(logs.context).result()["request_id"] is None  # nothing left behind
    settings = logs.LogSettings("json", "WARNING")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(logs.call_in_context, settings, bound, logs.context).result(TIMEOUT) == bound
        assert pool.submit(logs.current_settings).result(TIMEOUT) == settings  # configured like its parent


def test_configure_logging_writes_json_lines_and_a_separate_0600_audit_file(tmp_path: Path) -> None:
    stream = io.StringIO()
    path = tmp_path / "audit.log"
    with service_logging(format="json", level="warning", audit_file=path, stream=stream):
        logging.getLogger("mpc.service.server").info("below the level")
        logging.getLogger("mpc.service.server").warning("above the level")
        logs.audit("sign", "ok", client_id="alice", request_id="ab" * 8, remote="::1", duration=0.25)
        (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
        assert line["message"] == "above the level"
        (entry,) = [json.loads(x) for x in path.read_text().splitlines()]
        assert entry["op"] == "sign" and entry["duration_ms"] == 250.0 and entry["client_id"] == "alice"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with pytest.raises(ValueError):
            logs.configure_logging("xml")


# --- metrics ------------------------------------------------------------------------------------------------
def test_registry_renders_the_text_format_with_bounded_series() -> None:
    registry = metrics.Registry()
    counter = metrics.Counter("t_requests_total", "Requests", ("op",), max_series=2, registry=registry)
    histogram = metrics.Histogram("t_seconds", "Latency", ("op",), buckets=(0.1, 1.0), registry=registry)
    gauge = metrics.Gauge("t_open", "Open", registry=registry)
    counter.inc(op='a"b\\c\n')
    counter.inc(op="b")
    counter.inc(op="c")  # over the cap: counted as "other", and the overflow is counted
    histogram.observe(0.05, op="x")
    histogram.observe(0.5, op="x")
    histogram.observe(5.0, op="x")
    gauge.inc()
    gauge.dec(3)
    text = registry.render()
    assert 't_requests_total{op="a\\"b\\\\c\\n"} 1' in text
    assert 't_requests_total{op="other"} 1' in text
    assert 'mpc_metric_series_overflow_total{metric="t_requests_total"} 1' in text
    assert "# TYPE t_seconds histogram" in text
    for sample in ('t_seconds_bucket{op="x",le="0.1"} 1', 't_seconds_bucket{op="x",le="1.0"} 2',
                   't_seconds_bucket{op="x",le="+Inf"} 3', 't_seconds_sum{op="x"} 5.55', 't_seconds_count{op="x"} 3'):
        assert sample in text
    assert "t_open -2" in text
    with pytest.raises(ValueError):
        counter.inc(-1, op="b")
    with pytest.raises(ValueError):
        counter.inc(client="b")
    with pytest.raises(ValueError):
        metrics.Counter("t_open", "again", registry=registry)
    before = metrics.POOL_RESTARTS.value()
    metrics.POOL_RESTARTS.inc()
    assert metrics.POOL_RESTARTS.value() == before + 1


# --- configuration by environment -------------------------------------------------------------------------
def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8765, help="port")
    parser.add_argument("--log-level", type=str.upper, choices=("INFO", "WARNING"), default="INFO", help="level")
    parser.add_argument("--metrics-public", action=argparse.BooleanOptionalAction, default=False, help="public")
    parser.add_argument("--db", help="skipped")
    return parser


def test_flags_come_from_the_environment_and_the_command_line_wins() -> None:
    parser = _serve_parser()
    env = {"PORTAL_MPC_PORT": "9000", "PORTAL_MPC_LOG_LEVEL": "warning", "PORTAL_MPC_METRICS_PUBLIC": "yes",
           "PORTAL_MPC_DB": "postgresql://u:secret@h/db"}
    assert apply_environment(parser, env, skip=("db",)) == []
    args = parser.parse_args([])
    assert (args.port, args.log_level, args.metrics_public, args.db) == (9000, "WARNING", True, None)
    args = parser.parse_args(["--port", "1", "--no-metrics-public"])
    assert (args.port, args.metrics_public) == (1, False)
    assert "[env PORTAL_MPC_PORT]" in parser.format_help()
    problems = apply_environment(_serve_parser(), {"PORTAL_MPC_PORT": "eighty", "PORTAL_MPC_METRICS_PUBLIC": "maybe",
                                                   "PORTAL_MPC_LOG_LEVEL": "loud", "PORTAL_MPC_DB": ""})
    assert len(problems) == 3 and all("$PORTAL_MPC_" in p for p in problems)


def test_serve_reports_a_bad_environment_value_and_documents_every_variable(monkeypatch: pytest.MonkeyPatch,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from mpc.__main__ import main

    monkeypatch.setenv("PORTAL_MPC_WORKERS", "many")
    with pytest.raises(SystemExit) as exited:
        main(["serve"])
    assert exited.value.code == 2 and "$PORTAL_MPC_WORKERS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = capsys.readouterr().out
    documented = (Path(__file__).parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    variables = set(re.findall(r"\[env (PORTAL_MPC_\w+)\]", re.sub(r"\s+", " ", help_text)))
    assert len(variables) >= 25
    for name in variables | {"PORTAL_MPC_DB", "PORTAL_MPC_STORE_KEY_FILE", "PORTAL_MPC_OPERATOR_KEY"}:
        assert f"`{name}`" in documented, name


def test_an_audit_file_that_cannot_be_opened_leaves_logging_as_it_was(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level, list(logs._HANDLERS), logs.current_settings()
    with pytest.raises(OSError):
        logs.configure_logging("json", "debug", tmp_path / "missing-folder" / "audit.log", stream=io.StringIO())
    assert (list(root.handlers), root.level, list(logs._HANDLERS), logs.current_settings()) == before
