"""Timing helpers: warm-up, then median and p95 of wall-clock runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    """One measured operation.

    ``setup`` (optional) runs before each timed call, untimed, and its return value is passed
    to ``fn``; ``references`` names the reference cases this one is compared with.
    """

    name: str
    fn: Callable[..., Any]
    setup: Callable[[], Any] | None = None
    references: tuple[str, ...] = ()
    runs: int = 30
    warmup: int = 2
    # Optional figures beyond latency (throughput, memory): computed from the result and the
    # values ``fn`` returned in the timed runs; they go to the table's notes and the JSON "extra".
    extra: Callable[[Result, list[Any]], dict[str, float]] | None = None


@dataclass
class Result:
    name: str
    median_ms: float
    p95_ms: float
    runs: int
    ratios: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        record = {
            "name": self.name,
            "median_ms": round(self.median_ms, 4),
            "p95_ms": round(self.p95_ms, 4),
            "runs": self.runs,
            "ratios": {k: round(v, 3) for k, v in self.ratios.items()},
        }
        if self.extra:
            record["extra"] = {k: round(v, 3) for k, v in self.extra.items()}
        return record


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def sample(case: Case, runs: int, warmup: int) -> tuple[list[float], list[Any]]:
    """``warmup`` untimed calls, then ``runs`` timed ones: (milliseconds, returned values)."""
    samples: list[float] = []
    returned: list[Any] = []
    for i in range(warmup + runs):
        arg = case.setup() if case.setup else None
        start = time.perf_counter()
        value = case.fn(arg) if case.setup else case.fn()
        elapsed = (time.perf_counter() - start) * 1000.0
        if i >= warmup:
            samples.append(elapsed)
            if case.extra is not None:
                returned.append(value)
    return samples, returned


def summarise(case: Case, samples: list[float], returned: list[Any]) -> Result:
    """Median and p95 of the samples, and the case's extra figures."""
    result = Result(case.name, statistics.median(samples), percentile(samples, 0.95), len(samples))
    if case.extra is not None:
        result.extra = case.extra(result, returned)
    return result


def measure(case: Case, runs: int | None = None) -> Result:
    samples, returned = sample(case, runs or case.runs, case.warmup)
    return summarise(case, samples, returned)
