"""``python -m benchmarks.paired [--runs N] NAME [NAME ...]``: the named cases and their
references timed call by call, round-robin.

``python -m benchmarks`` interleaves whole passes (a third of a case's runs at a time); on a
machine shared with other jobs the load still changes between a case and its reference within a
pass. Here every iteration runs each selected case once (its ``setup`` untimed, as in
``benchmarks.timing``), so a change of load hits them all alike; the ratio of two medians is then
as close to "the same conditions" as one process gets. Names are exact case names (see
``python -m benchmarks --list``); each case's references are added. Prints the medians and the
ratios to the references (benchmarks/README.md, issue 30).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from benchmarks.__main__ import collect
from benchmarks.timing import Case, sample


def paired(cases: list[Case], runs: int, warmup: int | None = None) -> dict[str, float]:
    """The median milliseconds of each case over ``runs`` round-robin iterations, after ``warmup``
    untimed ones (default: the largest ``Case.warmup`` of the cases); every iteration calls each
    case once (``timing.sample``), so a change of load hits them all alike."""
    rounds = max(case.warmup for case in cases) if warmup is None else warmup
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for i in range(rounds + runs):
        for case in cases:
            timed = sample(case, 1, 0)[0] if i >= rounds else sample(case, 0, 1)[0]
            samples[case.name] += timed
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="round-robin iterations (default 30)")
    parser.add_argument("names", nargs="+", help="exact case names")
    args = parser.parse_args(argv)
    every = {case.name: case for case in collect(False)}
    missing = [name for name in args.names if name not in every]
    if missing:
        print(f"no such case: {', '.join(missing)} (python -m benchmarks --list)", file=sys.stderr)
        return 2
    wanted = set(args.names) | {ref for name in args.names for ref in every[name].references if ref in every}
    cases = [case for name, case in every.items() if name in wanted]
    medians = paired(cases, args.runs)
    for case in cases:
        ratios = ", ".join(f"{medians[case.name] / medians[ref]:.2f}× {ref}"
                           for ref in case.references if ref in medians)
        print(f"| {case.name} | {medians[case.name]:.2f} | {ratios or '—'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
