"""Load test of the networked custodian: ``python -m benchmarks.load [--clients N] [--signs M]``.

Loopback only and bounded: a custodian service (``mpc.server``, process pool) is started in this
process on 127.0.0.1 with a free port, for each backend in turn (SQLite file; PostgreSQL when
``$PORTAL_MPC_TEST_POSTGRES`` or the local default URL is reachable, in a throw-away schema).
N client processes then each create a client, generate a wallet and sign M times (alternating
ethereum and solana), all at once; every client stops issuing requests at ``--time-limit``
seconds and the run ends by itself. Reported per backend and operation: count, throughput,
p50 / p95 latency and errors (which must be zero; the exit status is 1 otherwise).

The custodian setup is the tests' pre-generated one (``tests.fixtures``), so no safe prime is
generated. The device side (Paillier key generation and proofs of a generate) runs in the client
processes, on the same machine: the figures are end to end on this machine's cores.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "run_backend"]

MAX_CLIENTS = 32
MAX_SIGNS = 200


def _client_job(url: str, signs: int, deadline: float, operator_key: str) -> dict[str, Any]:
    """One client process: create, generate, then up to ``signs`` signatures before ``deadline``."""
    import mpc
    from mpc.backup_crypto import MemoryCloudStorage
    from mpc.remote import RemoteCustodian

    remote = RemoteCustodian(url, timeout=120.0, retries=0, operator_key=operator_key)
    samples: dict[str, list[float]] = {"generate": [], "sign": []}
    errors: list[str] = []
    try:
        client_id, token = remote.create_client()
        device = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
        start = time.perf_counter()
        remote.generate(device, token)
        samples["generate"].append(time.perf_counter() - start)
        for i in range(signs):
            if time.time() > deadline:
                break
            chain = "ethereum" if i % 2 == 0 else "solana"
            data = hashlib.sha256(f"load {i}".encode()).digest() if chain == "ethereum" else f"load {i}".encode()
            start = time.perf_counter()
            remote.sign(device, token, chain, data)
            samples["sign"].append(time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - counted and reported
        errors.append(f"{type(exc).__name__}: {exc}")
    return {"samples": samples, "errors": errors}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_backend(name: str, db: str, clients: int, signs: int, time_limit: float) -> dict[str, Any]:
    """Start a service on ``db``, run the clients, stop it; returns the figures."""
    from mpc.server import ServiceLimits, ServiceThread

    operator_key = secrets.token_urlsafe(32)
    # Every client runs on loopback: the per-address and per-client limits must not throttle the load.
    limits = ServiceLimits(max_connections_per_ip=4 * MAX_CLIENTS, ip_rate=1e6, ip_burst=10**6,
                           client_rate=1e6, client_burst=10**6)
    with ServiceThread(db, host="127.0.0.1", port=0, executor="process", workers=2, operator_key=operator_key,
                       limits=limits) as server:
        deadline = time.time() + time_limit
        context = multiprocessing.get_context("spawn")
        start = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
            futures = [pool.submit(_client_job, server.url, signs, deadline, operator_key) for _ in range(clients)]
            done, pending = concurrent.futures.wait(futures, timeout=time_limit + 120)
            for future in pending:
                future.cancel()
            results = [f.result() for f in done]
        elapsed = time.perf_counter() - start
    report: dict[str, Any] = {"backend": name, "clients": clients, "elapsed_s": elapsed,
                              "errors": [e for r in results for e in r["errors"]] + ["timed out"] * len(pending)}
    for op in ("generate", "sign"):
        values = [v for r in results for v in r["samples"][op]]
        report[op] = {"count": len(values), "per_s": len(values) / elapsed if elapsed else 0.0,
                      "p50_ms": _percentile(values, 0.5) * 1000, "p95_ms": _percentile(values, 0.95) * 1000}
    return report


def _prepare_setup(db: str) -> None:
    """Store the tests' pre-generated custodian setup, so the service generates no safe prime."""
    from mpc.stores import open_store
    from protocols.ecdsa2p.setup import setup_from_ring_pedersen
    from tests.fixtures import ring_pedersen_sets

    store = open_store(db)
    if store.load_setup() is None:
        store.save_setup(setup_from_ring_pedersen(*ring_pedersen_sets()[0]).to_bytes())
    store.close()


def _postgres_db() -> tuple[str, Any] | None:
    url = os.environ.get("PORTAL_MPC_TEST_POSTGRES") or "postgresql://portal:portal@127.0.0.1:5432/portal_mpc"
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - no server: PostgreSQL is left out, and the report says so
        return None
    schema = "load_" + secrets.token_hex(4)

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{url}{'&' if '?' in url else '?'}schema={schema}", drop


def _print(report: dict[str, Any]) -> None:
    print(f"{report['backend']:<11} {report['clients']:>3} clients, {report['elapsed_s']:.1f} s, "
          f"errors: {len(report['errors'])}")
    for op in ("generate", "sign"):
        r = report[op]
        print(f"  {op:<9} {r['count']:>5}  {r['per_s']:7.2f}/s  p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms")
    for error in report["errors"][:5]:
        print(f"  error: {error}")


def _use_store_key(folder: Path) -> None:
    """Seal the load test's stores (``mpc.sealing``) with a fresh key in its temporary folder,
    unless one is configured; through the environment, so the service's workers read it too."""
    from mpc.sealing import KEY_ENV, KEY_FILE_ENV, new_key_file

    if not (os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV)):
        new_key_file(folder / "store.key")
        os.environ[KEY_FILE_ENV] = str(folder / "store.key")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--signs", type=int, default=20, help="signatures per client")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds before clients stop issuing")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    args = parser.parse_args(argv)
    clients = max(1, min(args.clients, MAX_CLIENTS))
    signs = max(0, min(args.signs, MAX_SIGNS))
    failed = False
    with tempfile.TemporaryDirectory(prefix="portal-mpc-load-") as tmp:
        _use_store_key(Path(tmp))
        backends: list[tuple[str, str, Any]] = []
        if args.backend in ("sqlite", "all"):
            backends.append(("sqlite", str(Path(tmp) / "custodian.sqlite3"), None))
        if args.backend in ("postgresql", "all"):
            pg = _postgres_db()
            if pg is None:
                print("postgresql  skipped: no server reachable ($PORTAL_MPC_TEST_POSTGRES or the local default)")
            else:
                backends.append(("postgresql", pg[0], pg[1]))
        for name, db, cleanup in backends:
            try:
                _prepare_setup(db)
                report = run_backend(name, db, clients, signs, args.time_limit)
            finally:
                if cleanup is not None:
                    cleanup()
            _print(report)
            failed = failed or bool(report["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
