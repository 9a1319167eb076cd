"""The custodian service's logs: structured lines, request context, and the audit log
(``python -m mpc serve --log-format json --log-level INFO --audit-log FILE``;
``docs/operations.md``, Monitor).

- **Format.** :class:`JsonFormatter` writes one JSON object per line: ``time`` (ISO 8601, UTC,
  milliseconds), ``level``, ``logger``, ``message``, then ``request_id``, ``client_id`` and
  ``op`` when known, ``exc_type`` (the exception's class name, never its text or traceback) and
  the fields of an audit record. :class:`TextFormatter` writes the same on one line for people.
- **Request context.** Each connection gets a request id (:func:`new_request_id`, 64 random bits
  from ``secrets``); :func:`log_context` binds it with the client id and the op in context
  variables that :class:`ContextFilter` copies into every record. Executor steps run in other
  threads or processes, where context variables do not follow: the service calls them through
  :func:`call_in_context`, which carries the context (and the log settings, so a worker process
  writes the same format) as plain arguments.
- **Audit.** :func:`audit` writes one line per operation outcome on the ``mpc.audit`` logger
  (its own file with ``--audit-log``): client id, op, outcome (``ok`` or the error code),
  culprit, duration, request id, remote address. Never a token, a key, a secret or a payload:
  callers pass only those fields, and the client id and op are cut and escaped. Refused and
  invalid requests (:data:`REFUSALS`) are aggregated (:class:`RefusalTally`): the first from an
  address in a window is written in full, the rest are counted and written as one
  ``audit_summary`` line per address when the window ends, so a flood of bad requests writes
  a bounded number of lines.
- **Library chatter.** The ``websockets`` library logs every connection opened and closed at
  INFO: off unless asked for (``connection_logs``); its warnings and errors stay, inside a
  budget of lines a minute (``mpc.service.guard.BudgetFilter``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import contextvars
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mpc.service.guard import BudgetFilter, peer_key

__all__ = [
    "AUDIT_LOGGER",
    "LOG_FORMATS",
    "LogSettings",
    "JsonFormatter",
    "TextFormatter",
    "ContextFilter",
    "configure_logging",
    "current_settings",
    "new_request_id",
    "log_context",
    "set_context",
    "context",
    "call_in_context",
    "audit",
    "flush_audit",
    "clean",
    "REFUSALS",
    "RefusalTally",
    "set_node",
    "json_line",
]

AUDIT_LOGGER = "mpc.audit"
LOG_FORMATS = ("text", "json")
MAX_FIELD_CHARS = 256  # client ids are at most 256 characters; anything longer is cut
_CONTEXT_FIELDS = ("request_id", "client_id", "op", "node_id")
_AUDIT_FIELDS = ("event", "outcome", "culprit", "duration_ms", "remote", "credential", "count", "window_s")
LIBRARY_LOGGERS = ("websockets.server", "websockets.client")  # one line per connection opened and closed
LIBRARY_LOGS_PER_MINUTE = 20
# Outcomes of refused or invalid requests: aggregated per address and window in the audit log.
REFUSALS = frozenset({"RATE_LIMITED", "AUTH_FAILED", "INPUT_INVALID", "MESSAGE_INVALID", "SERVICE_UNAVAILABLE"})
AUDIT_WINDOW = 60.0
AUDIT_MAX_ADDRESSES = 256  # addresses with their own summary in a window; more share the key "*"

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mpc_request_id", default=None)
_CLIENT_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("mpc_client_id", default=None)
_OP: contextvars.ContextVar[str | None] = contextvars.ContextVar("mpc_op", default=None)
_VARS = {"request_id": _REQUEST_ID, "client_id": _CLIENT_ID, "op": _OP}

audit_log = logging.getLogger(AUDIT_LOGGER)


def clean(value: Any) -> str | None:
    """``value`` as a log field: None stays None; anything else becomes a string of at most
    ``MAX_FIELD_CHARS`` characters (caller-chosen strings such as a claimed client id)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_FIELD_CHARS:
        text = text[:MAX_FIELD_CHARS] + "…"
    return text


# --- context ------------------------------------------------------------------------------------------
def new_request_id() -> str:
    """A fresh request id: 16 hex digits (64 bits from ``secrets``)."""
    return secrets.token_hex(8)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Bind ``request_id``, ``client_id`` and/or ``op`` for the records logged inside."""
    tokens = []
    for name, value in fields.items():
        if name not in _VARS:
            raise ValueError(f"unknown log context field {name!r}")
        tokens.append((_VARS[name], _VARS[name].set(clean(value))))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def set_context(**fields: str | None) -> None:
    """Bind context fields until the current task (or thread) ends (a connection handler)."""
    for name, value in fields.items():
        if name not in _VARS:
            raise ValueError(f"unknown log context field {name!r}")
        _VARS[name].set(clean(value))


def context() -> dict[str, str | None]:
    """The bound context fields (to hand to another thread or process)."""
    return {name: var.get() for name, var in _VARS.items()}


_NODE_ID: str | None = None  # this process's node (issue 26: on every line, library lines too)


def set_node(node_id: str | None) -> None:
    """Name this process's node in every log record from now on (``node_id``; a worker process
    gets it with the log settings)."""
    global _NODE_ID
    _NODE_ID = clean(node_id)


class ContextFilter(logging.Filter):
    """Adds the bound ``request_id``, ``client_id`` and ``op``, and the node id, to every record
    that passes (fields a record already carries, through ``extra``, are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        if getattr(record, "node_id", None) is None:
            record.node_id = _NODE_ID
        return True


# --- formats -------------------------------------------------------------------------------------------
def _iso_utc(created: float) -> str:
    seconds = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(created % 1 * 1000):03d}Z"


def _exc_type(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return record.exc_info[0].__name__
    value = getattr(record, "exc_type", None)
    return None if value is None else str(value)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's structured fields, in a fixed order, without the empty ones."""
    out: dict[str, Any] = {"time": _iso_utc(record.created), "level": record.levelname, "logger": record.name,
                           "message": record.getMessage()}
    for name in (*_CONTEXT_FIELDS, *_AUDIT_FIELDS):
        value = getattr(record, name, None)
        if value is not None:
            out[name] = value
    exc_type = _exc_type(record)
    if exc_type is not None:
        out["exc_type"] = exc_type
    return out


def json_line(message: str, logger: str = "mpc.service.server", level: int = logging.INFO) -> str:
    """``message`` as one line of the JSON format (with the node id), for text written outside
    the logging handlers (the start-up banner on stdout)."""
    record = logging.LogRecord(logger, level, __file__, 0, message, None, None)
    ContextFilter().filter(record)
    return JsonFormatter().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (no traceback: ``exc_type`` names the exception's class)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=True, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [key=value ...] message`` on one line; values that could break the
    line (spaces, quotes, control characters) are JSON-quoted, and so is the message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        head = f"{fields.pop('time')} {fields.pop('level')} {fields.pop('logger')}"
        message = fields.pop("message")
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        body = message if message.isprintable() else json.dumps(message, ensure_ascii=True)
        return f"{head} {pairs} {body}" if pairs else f"{head} {body}"


def _text_value(value: Any) -> str:
    text = str(value)
    if text and text.isprintable() and not any(c in text for c in ' "=\\'):
        return text
    return json.dumps(text, ensure_ascii=True)


# --- configuration ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogSettings:
    """What :func:`configure_logging` set up (a worker process repeats it, without the audit file)."""

    format: str = "text"
    level: str = "INFO"
    audit_file: str | None = None
    connection_logs: bool = False
    node_id: str | None = None  # set by the service (``with_node``); worker processes log it too

    def with_node(self, node_id: str) -> LogSettings:
        """These settings naming ``node_id`` (handed to the worker processes)."""
        return dataclasses.replace(self, node_id=node_id)


_SETTINGS: LogSettings | None = None
_CONFIGURED_PID: int | None = None
_HANDLERS: list[tuple[logging.Logger, logging.Handler]] = []
_FILTERS: list[tuple[logging.Logger, logging.Filter]] = []


def current_settings() -> LogSettings | None:
    """The settings this process was configured with (None: logging left as the host set it)."""
    return _SETTINGS if _CONFIGURED_PID == os.getpid() else None


def configure_logging(format: str = "text", level: str = "INFO", audit_file: str | Path | None = None, *,
                      stream: TextIO | None = None, connection_logs: bool = False) -> LogSettings:
    """Send every log record to ``stream`` (stderr) in ``format`` (``text`` or ``json``) at
    ``level`` and above, with the request context; audit lines always (whatever the level), to
    ``audit_file`` alone when given (appended, created 0600), else with the rest. The
    ``websockets`` library's INFO lines (a line per connection opened and closed) only with
    ``connection_logs``; otherwise its warnings and errors, at most ``LIBRARY_LOGS_PER_MINUTE``
    a minute. Calling it again replaces what an earlier call installed."""
    global _SETTINGS, _CONFIGURED_PID
    if format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    formatter: logging.Formatter = JsonFormatter() if format == "json" else TextFormatter()
    audit_handler = None if audit_file is None else _audit_file_handler(Path(audit_file), formatter)
    for logger, handler in _HANDLERS:
        logger.removeHandler(handler)
        handler.close()
    _HANDLERS.clear()
    _quiet_library_loggers(connection_logs)
    root = logging.getLogger()
    main = logging.StreamHandler(stream if stream is not None else sys.stderr)
    main.setFormatter(formatter)
    main.addFilter(ContextFilter())
    root.addHandler(main)
    root.setLevel(numeric)
    _HANDLERS.append((root, main))
    audit_log.setLevel(logging.INFO)
    audit_log.propagate = audit_handler is None
    if audit_handler is not None:
        audit_log.addHandler(audit_handler)
        _HANDLERS.append((audit_log, audit_handler))
    _SETTINGS = LogSettings(format, logging.getLevelName(numeric), None if audit_file is None else str(audit_file),
                            connection_logs)
    _CONFIGURED_PID = os.getpid()
    return _SETTINGS


def _audit_file_handler(path: Path, formatter: logging.Formatter) -> logging.Handler:
    """The audit file's handler: the file created 0600 if new, appended to, reopened after
    logrotate moves it. Opened before :func:`configure_logging` changes anything, so an audit file
    that cannot be opened (``OSError``) leaves this process's logging as it was."""
    from logging.handlers import WatchedFileHandler

    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    handler = WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    return handler


def _quiet_library_loggers(connection_logs: bool) -> None:
    """The ``websockets`` loggers: at the root's level with ``connection_logs``, else WARNING and
    a budget of lines a minute (the suppressed count is reported on ``mpc.service.logs``)."""
    for logger, installed in _FILTERS:
        logger.removeFilter(installed)
    _FILTERS.clear()
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET if connection_logs else logging.WARNING)
        if not connection_logs:
            budget = BudgetFilter(logging.getLogger(__name__), LIBRARY_LOGS_PER_MINUTE)
            logger.addFilter(budget)
            _FILTERS.append((logger, budget))


def call_in_context(settings: LogSettings | None, bound: dict[str, str | None], fn: Callable[..., Any],
                    *args: Any) -> Any:
    """Run ``fn(*args)`` with the log context ``bound`` (in an executor thread or process); a
    worker process not yet configured sets up logging like its parent first (``settings``)."""
    if settings is not None and _CONFIGURED_PID != os.getpid():
        configure_logging(settings.format, settings.level, connection_logs=settings.connection_logs)
        set_node(settings.node_id)
    with log_context(**bound):
        return fn(*args)


# --- audit ---------------------------------------------------------------------------------------------------
class RefusalTally:
    """Refused and invalid requests per address (``mpc.service.guard.peer_key``) and window of
    ``window`` seconds: :meth:`note` says whether a refusal is the first of its address in the
    window (written in full); the others are counted, and :meth:`roll` hands out the counts of
    a window that ended (one summary line each). At most ``max_addresses`` addresses are told
    apart in a window; the refusals of any more are counted under ``"*"``."""

    def __init__(self, window: float = AUDIT_WINDOW, max_addresses: int = AUDIT_MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window, self.max_addresses, self._clock = window, max_addresses, clock
        self._start = clock()
        self._counts: dict[str, dict[str, int]] = {}  # address -> outcome -> refusals not written
        self._lock = threading.Lock()

    def note(self, remote: str | None, outcome: str) -> tuple[bool, list[tuple[str, dict[str, int], float]]]:
        """Count a refusal from ``remote``: (whether to write it in full, the ended window's counts)."""
        key = peer_key((remote,)) if remote else "unknown"
        with self._lock:
            ended = self._roll()
            if key not in self._counts and len(self._counts) < self.max_addresses:
                self._counts[key] = {}
                return True, ended
            if key not in self._counts:
                key = "*"
            counts = self._counts.setdefault(key, {})
            counts[outcome] = counts.get(outcome, 0) + 1
            return False, ended

    def roll(self) -> list[tuple[str, dict[str, int], float]]:
        """The counts (address, outcome counts, seconds) of a window that ended, if one did."""
        with self._lock:
            return self._roll()

    def _roll(self) -> list[tuple[str, dict[str, int], float]]:
        now = self._clock()
        elapsed = now - self._start
        if elapsed < self.window:
            return []
        ended = [(key, counts, elapsed) for key, counts in self._counts.items() if counts]
        self._counts, self._start = {}, now
        return ended


_REFUSALS = RefusalTally()


def flush_audit() -> None:
    """Write the summary lines of a refusal window that has ended (called periodically)."""
    _write_summaries(_REFUSALS.roll())


def _write_summaries(ended: list[tuple[str, dict[str, int], float]]) -> None:
    for key, counts, elapsed in ended:
        outcome = ",".join(f"{code}={n}" for code, n in sorted(counts.items()))
        total = sum(counts.values())
        audit_log.info("%d more refused requests from %s", total, key,
                       extra={"event": "audit_summary", "remote": key, "outcome": outcome, "count": total,
                              "window_s": round(elapsed)})


def audit(op: str | None, outcome: str, *, client_id: str | None, request_id: str | None,
          remote: str | None, duration: float, culprit: int | None = None,
          credential: str | None = None) -> None:
    """One audit line: ``op`` by ``client_id`` from ``remote`` ended with ``outcome`` (``ok``,
    ``closed`` or an error code) after ``duration`` seconds; ``credential`` is the kind the
    request needed (``operator`` or ``token``), never the credential itself. A refusal
    (:data:`REFUSALS`) is written only if it is its address's first in the window (the rest
    are counted into one ``audit_summary`` line, :class:`RefusalTally`)."""
    if outcome in REFUSALS:
        first, ended = _REFUSALS.note(remote, outcome)
        _write_summaries(ended)
        if not first:
            return
    fields: dict[str, Any] = {"event": "audit", "op": clean(op), "client_id": clean(client_id),
                              "request_id": request_id, "remote": clean(remote), "outcome": outcome,
                              "duration_ms": round(duration * 1000, 1), "credential": credential}
    if culprit is not None:
        fields["culprit"] = culprit
    audit_log.info("%s %s", fields["op"] or "-", outcome, extra=fields)
