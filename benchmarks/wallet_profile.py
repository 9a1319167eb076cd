"""``python -m benchmarks.wallet_profile [--signs N] [--rounds R]``: where a wallet-level solana
sign spends its time, step by step, beside the same protocol without the engine
(benchmarks/README.md, "Wallet-level sign, round two" to "round six").

Both runs are driven alike: sessions made, ``start`` on both sides, then every message through
its wire encoding and strict decoding (``to_bytes``, ``Message.from_bytes``) and the receiver's
``receive``, in order, as ``protocols.local.run`` does. Each step is timed with
``time.perf_counter_ns`` and summed per sign; the table shows each item's median over the signs
(microseconds), for the wallet (``mpc.run_local``'s work: ``benchmarks.wallet_cases``) and the
protocol (``frost sign 2-of-2 one round trip``), in alternating blocks of ``--signs`` each, so
that a change of machine load hits both. The difference is the engine's own cost.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from benchmarks.wallet_cases import MESSAGE, ready_wallet
from protocols import frost
from protocols.frost.round_trip import InitiatorSession, ResponderSession
from protocols.rounds import Message, Session

__all__ = ["ITEMS", "profile", "main"]

ITEMS = ("sessions made", "client start", "custodian start", "messages on the wire", "custodian receive",
         "client receive", "results")
Sample = dict[str, float]


def _drive(make: Callable[[], tuple[Session, Session]]) -> Sample:
    """One run of (client, custodian) sessions, each step's nanoseconds summed per item."""
    clock, spent = time.perf_counter_ns, dict.fromkeys(ITEMS, 0.0)
    began = clock()
    client, custodian = make()
    made = clock()
    queue = [(custodian, m) for m in client.start()]
    started = clock()
    queue += [(client, m) for m in custodian.start()]
    spent["sessions made"], spent["client start"], spent["custodian start"] = made - began, started - made, clock() - started
    while queue:
        target, msg = queue.pop(0)
        before = clock()
        delivered = Message.from_bytes(msg.to_bytes())
        decoded = clock()
        out = target.receive(delivered)
        spent["messages on the wire"] += decoded - before
        spent["custodian receive" if target is custodian else "client receive"] += clock() - decoded
        queue += [(client if target is custodian else custodian, m) for m in out]
    before = clock()
    client.result(), custodian.result()
    spent["results"] = clock() - before
    return spent


def _wallet_sessions() -> tuple[Session, Session]:
    wallet = ready_wallet()
    return (wallet.client.sign("solana", MESSAGE),
            wallet.custodian.sign(wallet.client_id, "solana", MESSAGE))


_SHARES: list[Any] = []


def _protocol_sessions() -> tuple[Session, Session]:
    if not _SHARES:
        _SHARES.extend(frost.dkg(2, 2))
    client, custodian = _SHARES
    sid = secrets.token_bytes(32)
    return (InitiatorSession(sid, client, custodian.identifier, MESSAGE),
            ResponderSession(sid, custodian, client.identifier, MESSAGE))


def profile(signs: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median microseconds per item and in total, {"wallet": ..., "protocol": ...}, over
    ``rounds`` alternating blocks of ``signs`` signs each (after one untimed block)."""
    samples: dict[str, list[Sample]] = defaultdict(list)
    for block in range(rounds + 1):
        for name, make in (("wallet", _wallet_sessions), ("protocol", _protocol_sessions)):
            runs = [_drive(make) for _ in range(signs)]
            if block:
                samples[name] += runs
    return {name: {**{item: statistics.median(s[item] for s in runs) / 1000 for item in ITEMS},
                   "total": statistics.median(sum(s.values()) for s in runs) / 1000}
            for name, runs in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wallet_profile", description=__doc__)
    parser.add_argument("--signs", type=int, default=100, help="signs per block (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per side (default 5)")
    args = parser.parse_args(argv)
    medians = profile(args.signs, args.rounds)
    print("| item | wallet µs | protocol µs | engine µs |\n|---|---:|---:|---:|")
    for item in (*ITEMS, "total"):
        wallet, protocol = medians["wallet"][item], medians["protocol"][item]
        print(f"| {item} | {wallet:.1f} | {protocol:.1f} | {wallet - protocol:+.1f} |")
    print(f"\nratio of the totals: {medians['wallet']['total'] / medians['protocol']['total']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
