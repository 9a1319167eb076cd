"""Sign latency by case as a horizontal bar chart (PNG), from benchmark JSON records.

``python -m benchmarks --plot PATH`` draws it from the run it just made;
``python -m benchmarks.plot RESULTS.json PATH`` draws it from a saved ``--json`` file.
Needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_sign_latency", "SIGN_CASES"]

# The signing cases worth comparing, in the order drawn (missing ones are left out).
SIGN_CASES = [
    "ref/pynacl sign ed25519",
    "ref/python-ecdsa sign secp256k1",
    "frost sign 2-of-2 one round trip",
    "frost sign 2-of-2 end to end",
    "frost sign 3-of-5 end to end",
    "wallet sign solana",
    "ref/phe encrypt+decrypt 2048",
    "ecdsa2p sign end to end, precomputed [gmpy2]",
    "wallet sign ethereum precomputed",
    "ecdsa2p sign end to end [gmpy2]",
    "wallet sign ethereum",
    "ecdsa2p sign end to end, precomputed [python]",
    "ecdsa2p sign end to end [python]",
]


def plot_sign_latency(records: Sequence[Mapping[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_name = {r["name"]: r for r in records}
    names = [n for n in SIGN_CASES if n in by_name]
    medians = [by_name[n]["median_ms"] for n in names]
    p95 = [by_name[n]["p95_ms"] - by_name[n]["median_ms"] for n in names]
    colours = ["#999999" if n.startswith("ref/") else "#2b6cb0" if "secp" in n or "ecdsa" in n or "ethereum" in n
               else "#2f855a" for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.2), dpi=80)
    ax.barh(range(len(names)), medians, xerr=[[0] * len(names), p95], color=colours, capsize=2)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median ms, log scale (whisker: p95; grey: single-key references)", fontsize=8)
    for i, value in enumerate(medians):
        ax.text((value + p95[i]) * 1.15, i, f"{value:.3g}", va="center", fontsize=7)
    ax.set_xlim(right=max(m + w for m, w in zip(medians, p95)) * 4)
    ax.set_title("Sign latency, both parties in one process", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m benchmarks.plot RESULTS.json OUTPUT.png")
    with open(sys.argv[1], encoding="utf-8") as fh:
        plot_sign_latency(json.load(fh), sys.argv[2])
