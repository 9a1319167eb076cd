"""``python -m benchmarks [--quick] [--json PATH] [--only SUBSTRING] [--plot PATH]``.

Runs every case and the references in one process, in interleaved passes, then prints a Markdown
table with each case's median and p95 and its ratio to each of its references measured in the
same run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from benchmarks.timing import Case, Result, sample, summarise

# Each module defines cases(quick: bool) -> list[Case]; modules that fail to import (an
# optional extra missing) are reported and skipped.
CASE_MODULES = ["benchmarks.reference_cases"]
PASSES = 3
OPTIONAL_MODULES = [
    "benchmarks.paillier_cases",
    "benchmarks.frost_cases",
    "benchmarks.ecdsa2p_cases",
    "benchmarks.wallet_cases",
    "benchmarks.presign_cases",
    "benchmarks.scale_cases",
    "benchmarks.oprf_cases",
]


def collect(quick: bool) -> list[Case]:
    cases: list[Case] = []
    for name in CASE_MODULES + OPTIONAL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name in CASE_MODULES or exc.name != name:
                raise
            continue
        cases.extend(module.cases(quick))
    return cases


def run(quick: bool, only: str | None, passes: int = PASSES) -> list[Result]:
    """Measure the selected cases in ``passes`` interleaved passes (one share of each case's runs
    per pass, warm-up in the first), so that a change of machine load during the run (other
    processes on a shared 2-core machine) hits a case and its references alike."""
    cases = collect(quick)
    needed = {ref for c in cases if only is None or only in c.name for ref in c.references}
    selected = [c for c in cases if only is None or only in c.name or c.name in needed]
    samples: dict[str, tuple[list[float], list[Any]]] = {c.name: ([], []) for c in selected}
    for p in range(passes):
        for case in selected:
            runs = max(3, case.runs // 10) if quick else case.runs
            share = max(1, runs // passes + (1 if p < runs % passes else 0))
            times, returned = sample(case, share, case.warmup if p == 0 else 0)
            samples[case.name][0].extend(times)
            samples[case.name][1].extend(returned)
        print(f"  pass {p + 1}/{passes} done", file=sys.stderr)
    results = {c.name: summarise(c, *samples[c.name]) for c in selected}
    for case in selected:
        for ref in case.references:
            if ref in results and results[ref].median_ms > 0:
                results[case.name].ratios[ref] = results[case.name].median_ms / results[ref].median_ms
    return list(results.values())


def table(results: list[Result]) -> str:
    lines = ["| case | median ms | p95 ms | runs | ratio to reference | notes |", "|---|---:|---:|---:|---|---|"]
    for r in results:
        ratios = ", ".join(f"{v:.2f}× {k}" for k, v in r.ratios.items()) or "—"
        notes = ", ".join(f"{k} = {v:.1f}" for k, v in r.extra.items())
        lines.append(f"| {r.name} | {r.median_ms:.3f} | {r.p95_ms:.3f} | {r.runs} | {ratios} | {notes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs per case (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only cases whose name contains this")
    parser.add_argument("--plot", metavar="PATH", help="also draw sign latency by case as a PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    results = run(args.quick, args.only)
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([r.to_json() for r in results], fh, indent=2)
    if args.plot:
        from benchmarks.plot import plot_sign_latency

        plot_sign_latency([r.to_json() for r in results], args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
