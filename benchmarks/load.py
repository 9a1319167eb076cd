"""Load test of the networked custodian: ``python -m benchmarks.load [--clients N] [--signs M]``.

Loopback only and bounded: a custodian service (``mpc.service.server``, process pool) is started in this
process on 127.0.0.1 with a free port, for each backend in turn (SQLite file; PostgreSQL when
``$PORTAL_MPC_TEST_POSTGRES`` or the local default URL is reachable, in a throw-away schema).
N client processes then each create a client, generate a wallet and sign M times (alternating
ethereum and solana; each client over its kept connection: ``RemoteCustodian``'s default
``keep_alive``), all at once; every client stops issuing requests at ``--time-limit``
seconds and the run ends by itself. Reported per backend and operation: count, throughput,
p50 / p95 latency and errors (which must be zero; the exit status is 1 otherwise).

The custodian setup is the tests' pre-generated one (``tests.fixtures``), so no safe prime is
generated. The device side (Paillier key generation and proofs of a generate) runs in the client
processes, on the same machine: the figures are end to end on this machine's cores.

``--nodes 2`` runs two services on the same database (issue 18, scale-out), the clients spread
over them. ``--cpu-signs K`` (after the load) has one client process sign K times (ethereum)
against the first node and reports the service's CPU seconds per signature (its process and
its worker processes, from ``/proc``, and the two apart), beside the custodian's protocol CPU per
signature run in process (``mpc.Custodian`` driven directly on ``:memory:``, no service: the
overhead of the service is the difference; the ratio is printed too). The two are measured in
alternating batches (``CPU_ROUNDS``), so a machine whose speed drifts (other jobs) weighs on both.

``--flood`` runs the flood case instead (``benchmarks.flood``, issue 25): slow and silent
connections from many loopback addresses against ``python -m mpc serve`` with a descriptor
limit of 1,024, and an authenticated client's probes.
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

__all__ = ["main", "run_backend", "cpu_per_sign"]

MAX_CLIENTS = 32
MAX_SIGNS = 200
CPU_ROUNDS = 4  # ``--cpu-signs``: alternating batches of service and in-process signatures
# ``--cpu-signs`` measures the steady state: each side first signs until the custodian's fixed-base
# tables are made (``protocols.zk.c3``: the last, c_key''s, after 19 signs of a client in a process;
# the service's lanes share the warm-up signatures between its workers, so it signs twice as many).
WARM_SIGNS = 24


def _client_job(url: str, signs: int, deadline: float, operator_key: str) -> dict[str, Any]:
    """One client process: create, generate, then up to ``signs`` signatures before ``deadline``."""
    import mpc
    from mpc.backup.methods import MemoryCloudStorage
    from mpc.remote.blocking import RemoteCustodian

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
    finally:
        remote.close()
    return {"samples": samples, "errors": errors}


def _signer_setup(url: str, operator_key: str, folder: str) -> tuple[str, str]:
    """A client with a wallet whose device keychain is in ``folder`` (for ``_signer_job``)."""
    import mpc
    from mpc.backup.methods import MemoryCloudStorage
    from mpc.remote.blocking import RemoteCustodian

    with RemoteCustodian(url, timeout=300.0, operator_key=operator_key) as remote:
        client_id, token = remote.create_client()
        remote.generate(mpc.Client(client_id, mpc.FileKeychain(folder), cloud=MemoryCloudStorage()), token)
    return client_id, token


def _signer_job(url: str, client_id: str, token: str, folder: str, count: int) -> int:
    """``count`` ethereum signatures one after the other; returns how many."""
    import mpc
    from mpc.backup.methods import MemoryCloudStorage
    from mpc.remote.blocking import RemoteCustodian

    device = mpc.Client(client_id, mpc.FileKeychain(folder), cloud=MemoryCloudStorage())
    with RemoteCustodian(url, timeout=300.0) as remote:  # one kept connection for the batch
        for i in range(count):
            remote.sign(device, token, "ethereum", hashlib.sha256(f"cpu {i}".encode()).digest())
    return count


def _process_cpu(pid: int) -> float:
    """CPU seconds of a live process, from ``/proc``: its threads' ``schedstat`` nanoseconds (the
    scheduler's own count) where the kernel has them, else its ``stat`` ticks (user + system,
    1/CLK_TCK s: 0.5 ms per signature at 20 signatures). Only live threads count: a lane's
    worker keeps its threads (its main thread and the parent watch) as long as it lives."""
    from benchmarks.service_threads import thread_ns

    nanoseconds = thread_ns(str(pid))
    if nanoseconds:
        return sum(nanoseconds.values()) / 1e9
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _service_cpu(server: Any) -> tuple[float, float]:
    """This process's CPU (the service's event loop and threads) and its worker processes'."""
    workers = getattr(server.service._pool, "_processes", None) or {}
    return time.process_time(), sum(_process_cpu(pid) for pid in list(workers))


class _InProcess:
    """The custodian with no service: a wallet on ``db`` (``:memory:``, or the service's own
    database: the same durable commits and sealing, no transport, pool or service bookkeeping),
    its sign sessions driven in this process; ``sign(count)`` returns the CPU seconds spent inside
    the custodian's ``start`` / ``receive`` only (the device's side is not counted)."""

    def __init__(self, db: str = ":memory:") -> None:
        import mpc
        from mpc.backup.methods import MemoryCloudStorage
        from mpc.storage.backends import open_store
        from protocols.ecdsa2p.setup import set_default_client_setup, setup_from_ring_pedersen
        from tests.fixtures import ring_pedersen_sets

        sets = ring_pedersen_sets()
        set_default_client_setup(setup_from_ring_pedersen(*sets[1]))
        self.custodian = mpc.Custodian(open_store(db), setup=setup_from_ring_pedersen(*sets[0]))
        self.client_id = self.custodian.create_client()
        self.device = mpc.Client(self.client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
        mpc.run_local(self.device.generate(), self.custodian.generate(self.client_id))

    def sign(self, count: int) -> float:
        spent = 0.0
        for i in range(count):
            digest = hashlib.sha256(f"cpu {i}".encode()).digest()
            client = self.device.sign("ethereum", digest)
            server = self.custodian.sign(self.client_id, "ethereum", digest)
            to_server = client.start()
            start = time.process_time()
            to_client = server.start()
            spent += time.process_time() - start
            while to_server or to_client:
                for message in to_server:
                    start = time.process_time()
                    to_client += server.receive(message)
                    spent += time.process_time() - start
                to_server = [reply for message in to_client for reply in client.receive(message)]
                to_client = []
        return spent


def cpu_per_sign(server: Any, operator_key: str, count: int, rounds: int = CPU_ROUNDS,
                 db: str | None = None) -> dict[str, float]:
    """CPU milliseconds per ethereum signature: the service's (one client process signing
    sequentially; its own process's and its worker processes', from ``/proc``) and the in-process
    custodian's (``_InProcess``) on ``:memory:`` (issue 30's reference) and, given ``db``, on the
    service's own database (``in_process_store``: what the service adds beyond a durable
    custodian's commits), measured in ``rounds`` alternating batches of ``count / rounds``
    signatures each, so that all see the same machine (a loaded machine's speed drifts between
    two measurements taken one after the other; the ratio is what is compared)."""
    context = multiprocessing.get_context("spawn")
    batches = [count // rounds + (1 if i < count % rounds else 0) for i in range(max(1, min(rounds, count)))]
    own = workers = alone = durable = 0.0
    in_process = _InProcess()
    in_process.sign(WARM_SIGNS)
    on_store = _InProcess(db) if db is not None else None
    if on_store is not None:
        on_store.sign(WARM_SIGNS)
    with tempfile.TemporaryDirectory(prefix="portal-mpc-cpu-") as folder:
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            client_id, token = pool.submit(_signer_setup, server.url, operator_key, folder).result()
            pool.submit(_signer_job, server.url, client_id, token, folder, 2 * WARM_SIGNS).result()  # both workers
            for batch in batches:
                before = _service_cpu(server)
                pool.submit(_signer_job, server.url, client_id, token, folder, batch).result()
                after = _service_cpu(server)
                own, workers = own + after[0] - before[0], workers + after[1] - before[1]
                alone += in_process.sign(batch)
                durable += on_store.sign(batch) if on_store is not None else 0.0
    figures = {"service": (own + workers) * 1000 / count, "service_process": own * 1000 / count,
               "workers": workers * 1000 / count, "in_process": alone * 1000 / count}
    if on_store is not None:
        figures["in_process_store"] = durable * 1000 / count
    return figures


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run_backend(name: str, db: str, clients: int, signs: int, time_limit: float, nodes: int = 1,
                cpu_signs: int = 0) -> dict[str, Any]:
    """Start ``nodes`` services on ``db``, run the clients (spread over them), then (``cpu_signs``)
    the CPU figures, and stop them; returns the figures."""
    from mpc.service.server import ServiceLimits, ServiceThread

    operator_key = secrets.token_urlsafe(32)
    # Every client runs on loopback: the per-address and per-client limits must not throttle the load.
    limits = ServiceLimits(max_connections_per_ip=4 * MAX_CLIENTS, ip_rate=1e6, ip_burst=10**6,
                           client_rate=1e6, client_burst=10**6)
    servers = [ServiceThread(db, host="127.0.0.1", port=0, executor="process", workers=2, operator_key=operator_key,
                             limits=limits).start() for _ in range(nodes)]
    report: dict[str, Any] = {"backend": name, "clients": clients, "nodes": nodes}
    try:
        deadline = time.time() + time_limit
        context = multiprocessing.get_context("spawn")
        start = time.perf_counter()
        with concurrent.futures.ProcessPoolExecutor(max_workers=clients, mp_context=context) as pool:
            futures = [pool.submit(_client_job, servers[i % nodes].url, signs, deadline, operator_key)
                       for i in range(clients)]
            done, pending = concurrent.futures.wait(futures, timeout=time_limit + 120)
            for future in pending:
                future.cancel()
            results = [f.result() for f in done]
        elapsed = time.perf_counter() - start
        if cpu_signs:
            report["cpu_ms_per_sign"] = cpu_per_sign(servers[0], operator_key, cpu_signs, db=db)
    finally:
        for server in servers:
            server.stop()
    report.update({"elapsed_s": elapsed,
                   "errors": [e for r in results for e in r["errors"]] + ["timed out"] * len(pending)})
    for op in ("generate", "sign"):
        values = [v for r in results for v in r["samples"][op]]
        report[op] = {"count": len(values), "per_s": len(values) / elapsed if elapsed else 0.0,
                      "p50_ms": _percentile(values, 0.5) * 1000, "p95_ms": _percentile(values, 0.95) * 1000}
    return report


def _prepare_setup(db: str) -> None:
    """Store the tests' pre-generated custodian setup, so the service generates no safe prime."""
    from mpc.storage.backends import open_store
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
    print(f"{report['backend']:<11} {report['clients']:>3} clients, {report['nodes']} node(s), "
          f"{report['elapsed_s']:.1f} s, errors: {len(report['errors'])}")
    for op in ("generate", "sign"):
        r = report[op]
        print(f"  {op:<9} {r['count']:>5}  {r['per_s']:7.2f}/s  p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms")
    if "cpu_ms_per_sign" in report:
        cpu = report["cpu_ms_per_sign"]
        print(f"  CPU per ethereum signature: service {cpu['service']:.1f} ms (its process "
              f"{cpu['service_process']:.1f} + workers {cpu['workers']:.1f}), custodian in process "
              f"{cpu['in_process']:.1f} ms: {cpu['service'] / cpu['in_process']:.2f}x, overhead "
              f"{cpu['service'] - cpu['in_process']:.1f} ms")
        if "in_process_store" in cpu:
            print(f"  custodian in process on the service's own database {cpu['in_process_store']:.1f} ms: "
                  f"{cpu['service'] / cpu['in_process_store']:.2f}x, overhead "
                  f"{cpu['service'] - cpu['in_process_store']:.1f} ms")
    for error in report["errors"][:5]:
        print(f"  error: {error}")


def _use_store_key(folder: Path) -> None:
    """Seal the load test's stores (``mpc.storage.sealing``) with a fresh key in its temporary folder,
    unless one is configured; through the environment, so the service's workers read it too."""
    from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV, new_key_file

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
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                        help="services on the same database, the clients spread over them")
    parser.add_argument("--cpu-signs", type=int, default=0, metavar="K",
                        help="after the load: the service's and the in-process custodian's CPU per signature, "
                             "over K sequential signatures (0: skip)")
    parser.add_argument("--flood", action="store_true",
                        help="the flood case instead: slow and silent connections from many loopback addresses "
                             "against 'python -m mpc serve' (benchmarks.flood)")
    args = parser.parse_args(argv)
    if args.flood:
        from benchmarks.flood import print_flood, run_flood

        with tempfile.TemporaryDirectory(prefix="portal-mpc-flood-") as tmp:
            _use_store_key(Path(tmp))
            return 0 if print_flood(run_flood(Path(tmp), time_limit=args.time_limit)) else 1
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
                report = run_backend(name, db, clients, signs, args.time_limit, args.nodes,
                                     max(0, min(args.cpu_signs, MAX_SIGNS)))
            finally:
                if cleanup is not None:
                    cleanup()
            _print(report)
            failed = failed or bool(report["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
