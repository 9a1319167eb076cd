"""``python -m benchmarks [--quick] [--json PATH] [--only SUBSTRING] [--list] [--plot PATH]``.

Runs every case and the references in one process, in interleaved passes, then prints a Markdown
table with each case's median and p95 and its ratio to each of its references measured in the
same run (see benchmarks/README.md).

``--only`` keeps the cases whose name contains the text, ignoring case (``"Frost Sign 2-of-2"``
matches ``frost sign 2-of-2 end to end``), plus the references they are compared with. If no
name contains the whole text, the cases whose name contains each of its words are taken instead
(``"FROST 2-of-2"``: every frost case with ``2-of-2``), and a note says so. When nothing matches
either way, nothing runs and the command exits with status 2. ``--list`` prints the names of the
cases that would run, one a line, without running them.
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
    "benchmarks.backup_cases",
    "benchmarks.hd_cases",
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


def matches(name: str, only: str | None, *, by_words: bool = False) -> bool:
    """Whether a case name contains ``only`` (or, ``by_words``, each of its words), ignoring case;
    ``None`` matches every case."""
    if only is None:
        return True
    name = name.casefold()
    parts = only.casefold().split() if by_words else [only.casefold()]
    return bool(parts) and all(part in name for part in parts)


def select(cases: list[Case], only: str | None) -> tuple[list[Case], bool]:
    """The cases whose name matches ``only`` and the references they are compared with, in the
    order of ``cases``, and whether the match fell back to words (no name holds the whole text).
    Empty when nothing matches: references are never selected on their own."""
    by_words = not any(matches(c.name, only) for c in cases)
    matched = {c.name for c in cases if matches(c.name, only, by_words=by_words)}
    if not matched:
        return [], by_words
    needed = {ref for c in cases if c.name in matched for ref in c.references}
    return [c for c in cases if c.name in matched or c.name in needed], by_words


def run(quick: bool, only: str | None, passes: int = PASSES, cases: list[Case] | None = None) -> list[Result]:
    """Measure the selected cases in ``passes`` interleaved passes (one share of each case's runs
    per pass, warm-up in the first), so that a change of machine load during the run (other
    processes on a shared 2-core machine) hits a case and its references alike. ``cases``: the
    collected cases, if the caller has them already."""
    selected, _ = select(collect(quick) if cases is None else cases, only)
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
    parser.add_argument("--only", metavar="SUBSTRING",
                        help="run only cases whose name contains this, ignoring case (plus their references)")
    parser.add_argument("--list", action="store_true", help="print the names of the selected cases and exit")
    parser.add_argument("--plot", metavar="PATH", help="also draw sign latency by case as a PNG (needs matplotlib)")
    args = parser.parse_args(argv)
    cases = collect(args.quick)
    selected, by_words = select(cases, args.only)
    if not selected:
        print(f"no benchmark case matches --only {args.only!r}: no case name contains it or all of "
              "its words (case is ignored); python -m benchmarks --list shows every name", file=sys.stderr)
        return 2
    if by_words:
        print(f"note: no case name contains {args.only!r}; selected the cases whose name contains "
              "each of its words", file=sys.stderr)
    if args.list:
        print("\n".join(case.name for case in selected))
        return 0
    results = run(args.quick, args.only, cases=cases)
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
