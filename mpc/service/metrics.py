"""The custodian service's metrics: a small in-process registry written out in the Prometheus
text exposition format 0.0.4 (``GET /metrics`` of ``python -m mpc serve``; ``docs/operations.md``,
Monitor). No dependency: counters, gauges and fixed-bucket histograms only.

Memory is bounded: histogram buckets are fixed at construction, and each metric keeps at most
``max_series`` label combinations; a combination beyond that is counted under the label value
``"other"`` and in ``mpc_metric_series_overflow_total`` (so it is visible, never dropped
silently). Label values are always drawn from small sets (operations, error codes, limit names):
never a client id, an address or anything a caller chooses freely.

The service's metrics are module-level objects (every ``CustodianService`` of a process adds to
them; ``mpc.service.server`` increments them in the service's process only, never in a worker)::

    from mpc.service import metrics
    metrics.POOL_RESTARTS.inc()          # the executor pool was rebuilt after a worker died
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

__all__ = [
    "CONTENT_TYPE",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
    "REGISTRY",
    "OPERATIONS",
    "OPERATION_SECONDS",
    "ERRORS",
    "CONNECTIONS_OPEN",
    "PARKED_SESSIONS",
    "PRESIGN_POOL",
    "RATE_LIMITED",
    "AUTH_FAILURES",
    "POOL_RESTARTS",
    "CLIENT_LOCKOUTS",
    "CLIENTS_LOCKED_OUT",
    "SCRAPE_ERRORS",
    "LEDGER_RECORDS",
    "LEDGER_REAPPLIED",
    "LEDGER_RESTORE_DETECTED",
    "PROCESS",
    "ProcessMetrics",
    "DEFAULT_BUCKETS",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_MAX_SERIES = 200
OVERFLOW_VALUE = "other"
# Seconds: a get_client answers in milliseconds, a generate takes seconds, and an operation's
# connection may wait for a slow device up to the session TTL.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                      60.0, 120.0, 300.0)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape_label(value)}"' for name, value in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    """What every metric shares: a name, a help text, label names and the series lock."""

    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (), *,
                 max_series: int = DEFAULT_MAX_SERIES, registry: Registry | None = None) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._registry = registry
        if registry is not None:
            registry.register(self)

    def _key(self, labels: dict[str, str], existing: Mapping[tuple[str, ...], object]) -> tuple[str, ...]:
        """The series key of ``labels`` (all label names, as strings); past ``max_series``
        series a new combination becomes all-``"other"`` and is counted as an overflow."""
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes the labels {self.label_names}, not {tuple(labels)}")
        key = tuple(str(labels[name]) for name in self.label_names)
        if key in existing or len(existing) < self.max_series:
            return key
        if self._registry is not None and self is not self._registry.overflow:
            self._registry.overflow.inc(metric=self.name)
        return tuple(OVERFLOW_VALUE for _ in self.label_names)

    def samples(self) -> list[str]:
        """The metric's sample lines in the text exposition format (no HELP/TYPE lines)."""
        raise NotImplementedError

    def render(self) -> str:
        return "".join([f"# HELP {self.name} {_escape_help(self.help)}\n", f"# TYPE {self.name} {self.kind}\n",
                        *(line + "\n" for line in self.samples())])


class Counter(_Metric):
    """A monotonically increasing count per label combination."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (), *,
                 max_series: int = DEFAULT_MAX_SERIES, registry: Registry | None = None) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, registry=registry)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (not negative) to the series of ``labels``."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            key = self._key(labels, self._values)
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current value of one series (0 if it was never incremented)."""
        with self._lock:
            return self._values.get(tuple(str(labels[name]) for name in self.label_names), 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.label_names:
            items = [((), 0.0)]
        return [f"{self.name}{_labels(self.label_names, key)} {_number(value)}" for key, value in items]


class Gauge(Counter):
    """A value that goes up and down (``set``, ``inc``, ``dec``)."""

    kind = "gauge"

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            key = self._key(labels, self._values)
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        """Subtract ``amount`` from the series of ``labels``."""
        self.inc(-amount, **labels)

    def set(self, value: float, **labels: str) -> None:
        """Set the series of ``labels`` to ``value``."""
        with self._lock:
            self._values[self._key(labels, self._values)] = float(value)


class Histogram(_Metric):
    """Observations counted in fixed cumulative buckets (``le``), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = DEFAULT_BUCKETS, *, max_series: int = DEFAULT_MAX_SERIES,
                 registry: Registry | None = None) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, registry=registry)
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or math.isinf(bounds[-1]):
            raise ValueError("histogram buckets must be finite, distinct and increasing")
        self.buckets = bounds
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        """Count ``value`` in its bucket of the series of ``labels`` (and in the sum and count)."""
        with self._lock:
            key = self._key(labels, self._series)
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
                    break
            series[-2] += value
            series[-1] += 1

    def count(self, **labels: str) -> float:
        """How many observations one series holds."""
        with self._lock:
            series = self._series.get(tuple(str(labels[name]) for name in self.label_names))
            return 0.0 if series is None else series[-1]

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((key, list(series)) for key, series in self._series.items())
        lines = []
        for key, series in items:
            cumulative = 0.0
            for bound, hits in zip(self.buckets, series):
                cumulative += hits
                le = f'le="{bound!r}"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(cumulative)}")
            le = 'le="+Inf"'
            lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(series[-1])}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {_number(series[-1])}")
        return lines


class ProcessMetrics(_Metric):
    """This process's CPU time, memory and descriptors, read at scrape time, under the names
    Prometheus's client libraries use (``process_cpu_seconds_total``,
    ``process_resident_memory_bytes``, ``process_virtual_memory_bytes``, ``process_open_fds``,
    ``process_max_fds``, ``process_start_time_seconds``): from ``/proc/self`` on Linux, the CPU
    time and the peak resident size from ``resource`` elsewhere."""

    kind = "gauge"

    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__("process", "The service process's resources", registry=registry)

    def render(self) -> str:
        """Each process metric with its own HELP and TYPE lines (they are separate metrics)."""
        lines = []
        for name, kind, help_text, value in _process_values():
            lines += [f"# HELP {name} {help_text}\n", f"# TYPE {name} {kind}\n", f"{name} {_number(value)}\n"]
        return "".join(lines)

    def samples(self) -> list[str]:
        return [f"{name} {_number(value)}" for name, _, _, value in _process_values()]


def _process_values() -> list[tuple[str, str, str, float]]:
    """(name, type, help, value) of each process metric this platform can read."""
    import os
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    values = [("process_cpu_seconds_total", "counter", "User and system CPU time, seconds",
               usage.ru_utime + usage.ru_stime)]
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    try:
        with open("/proc/self/statm") as statm:
            size, resident = (int(field) for field in statm.read().split()[:2])
        values += [("process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes", size * page),
                   ("process_resident_memory_bytes", "gauge", "Resident memory size, bytes", resident * page)]
        values.append(("process_open_fds", "gauge", "Open file descriptors", len(os.listdir("/proc/self/fd"))))
        values.append(("process_start_time_seconds", "gauge", "Start time since the Unix epoch, seconds",
                       _start_time()))
    except (OSError, ValueError):  # not Linux: the peak resident size (kilobytes on Linux and BSD)
        values.append(("process_resident_memory_bytes", "gauge", "Peak resident memory size, bytes",
                       usage.ru_maxrss * 1024))
    values.append(("process_max_fds", "gauge", "Open file descriptors allowed (soft limit)",
                   float(resource.getrlimit(resource.RLIMIT_NOFILE)[0])))
    return values


def _start_time() -> float:
    """The process's start from ``/proc/self/stat`` (clock ticks after boot) and the boot time."""
    import os

    with open("/proc/self/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as system:
        boot = next(int(line.split()[1]) for line in system if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


class Registry:
    """The metrics written out together by :meth:`render`, in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self.overflow = Counter("mpc_metric_series_overflow_total",
                                "Label combinations counted under 'other' because a metric reached its series cap",
                                ("metric",), registry=self)

    def register(self, metric: _Metric) -> None:
        """Add ``metric`` (``ValueError`` if one of that name is already registered)."""
        with self._lock:
            if metric.name in self._names:
                raise ValueError(f"metric {metric.name} is already registered")
            self._names.add(metric.name)
            self._metrics.append(metric)

    def render(self) -> str:
        """Every metric in the text exposition format 0.0.4."""
        with self._lock:
            metrics = list(self._metrics)
        return "".join(metric.render() for metric in metrics)


REGISTRY = Registry()

OPERATIONS = Counter("mpc_operations_total", "Requests and operations finished, by operation and outcome "
                     "(ok, an error code, or closed: the connection ended first)", ("op", "outcome"),
                     registry=REGISTRY)
OPERATION_SECONDS = Histogram("mpc_operation_duration_seconds", "Time from a request's first frame to its "
                              "outcome, by operation", ("op",), registry=REGISTRY)
ERRORS = Counter("mpc_errors_total", "Error frames sent, by stable error code", ("code",), registry=REGISTRY)
AUTH_FAILURES = Counter("mpc_auth_failures_total", "Refused credentials: client token, operator key, metrics "
                        "bearer", ("kind",), registry=REGISTRY)
CONNECTIONS_OPEN = Gauge("mpc_connections_open", "WebSocket connections open now", registry=REGISTRY)
PARKED_SESSIONS = Gauge("mpc_parked_sessions", "Sessions parked in the database between two messages "
                        "(read at scrape time, cached a few seconds)", registry=REGISTRY)
PRESIGN_POOL = Gauge("mpc_presign_pool_size", "Custodian ECDSA precomputations in the serving process's memory, "
                     "all clients (read at scrape time, cached a few seconds)", registry=REGISTRY)
RATE_LIMITED = Counter("mpc_rate_limited_total", "Requests or sockets refused by a limit (ip, client, parked, "
                       "connections, sockets; evicted: sockets without a request frame closed near the caps)", ("limit",), registry=REGISTRY)
SCRAPE_ERRORS = Counter("mpc_scrape_errors_total", "Scrapes whose store-read gauges could not be refreshed "
                        "(the previous values were served)", registry=REGISTRY)
POOL_RESTARTS = Counter("mpc_pool_worker_restarts_total", "Times the executor pool was rebuilt after a worker "
                        "died", registry=REGISTRY)
LEDGER_RECORDS = Gauge("mpc_revocation_ledger_records", "Records in the revocation ledger (mpc.storage.ledger; read "
                       "at scrape time)", registry=REGISTRY)
LEDGER_REAPPLIED = Gauge("mpc_revocation_ledger_reapplied", "What the start-up reconciliation re-applied to the "
                         "store from the revocation ledger, by kind (tokens, attempts)", ("kind",), registry=REGISTRY)
LEDGER_RESTORE_DETECTED = Gauge("mpc_revocation_ledger_restore_detected", "1 if at start the store was behind the "
                                "revocation ledger (a restore: revocations re-applied), else 0", registry=REGISTRY)
CLIENT_LOCKOUTS = Counter("mpc_client_lockouts_total", "Clients locked out by failed proofs of possession or "
                          "password guesses (recover and eject refused until an operator unlocks them)",
                          registry=REGISTRY)
CLIENTS_LOCKED_OUT = Gauge("mpc_clients_locked_out", "Clients locked out now (read at scrape time, cached a few "
                           "seconds)", registry=REGISTRY)
PROCESS = ProcessMetrics(registry=REGISTRY)  # issue 26: CPU, memory, descriptors of the service process
