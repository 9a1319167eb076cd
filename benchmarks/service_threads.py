"""The service process's CPU per signature, thread by thread: ``python -m benchmarks.service_threads
[--backend sqlite|postgresql] [--signs N] [--warm W]``.

A custodian service (``ServiceThread``, process pool of two lanes, sealed store) runs in this
process; one client process signs ``W`` ethereum signatures sequentially to warm up, then ``N``
more, and each thread of this process is charged the CPU time it spent during the ``N``
(``/proc/self/task/*/schedstat``, nanoseconds; where the kernel has none, ``stat``'s ticks of
1/CLK_TCK s; matched to Python threads by ``native_id``).
The worker processes' CPU is reported as one figure (they are other processes). Issue 30: where
the service process's own CPU per signature goes (``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["main", "service_arguments", "service_database", "thread_ns", "thread_ticks"]


def thread_ticks() -> dict[int, int]:
    """CPU ticks (user + system) of each thread of this process, by thread id."""
    ticks: dict[int, int] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[int(task.name)] = int(fields[11]) + int(fields[12])
    return ticks


def thread_ns(pid: str = "self") -> dict[int, int]:
    """Nanoseconds on a CPU of each thread of process ``pid``, by thread id (``schedstat``: the
    scheduler's own count, finer than the ticks of ``stat``); empty where the kernel has none."""
    times: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            times[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # the thread ended meanwhile, or no schedstat
            continue
    return times


def _clock() -> tuple[Callable[[str], dict[int, int]], float]:
    """The per-thread clock and its units per millisecond: ``schedstat`` if this kernel has it,
    else ``stat``'s ticks."""
    if thread_ns():
        return thread_ns, 1e6
    return (lambda pid: thread_ticks()), os.sysconf("SC_CLK_TCK") / 1000


def _names() -> dict[int, str]:
    return {thread.native_id: thread.name for thread in threading.enumerate() if thread.native_id is not None}


def _label(name: str) -> str:
    """Threads of one kind under one label (numbered pool threads summed)."""
    for prefix in ("asyncio_", "ThreadPoolExecutor-", "mpc-bridge", "mpc-step", "Thread-", "QueueFeederThread"):
        if name.startswith(prefix):
            return prefix.rstrip("_-") + "*"
    return name


def measure(db: str, signs: int, warm: int) -> dict[str, float]:
    """Milliseconds of CPU per signature of each thread (label) of this process, and the workers'."""
    from benchmarks.load import _signer_job, _signer_setup
    from mpc.service.server import ServiceThread

    operator_key = secrets.token_urlsafe(32)
    server = ServiceThread(db, host="127.0.0.1", port=0, executor="process", workers=2,
                           operator_key=operator_key).start()
    clock, per_ms = _clock()
    try:
        with tempfile.TemporaryDirectory(prefix="portal-mpc-threads-") as folder, \
                concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            client_id, token = pool.submit(_signer_setup, server.url, operator_key, folder).result()
            pool.submit(_signer_job, server.url, client_id, token, folder, warm).result()
            workers = [str(pid) for pid in getattr(server.service._pool, "_processes", None) or {}]  # type: ignore[union-attr]
            before, names = clock("self"), _names()
            workers_before = sum(sum(clock(pid).values()) for pid in workers)
            pool.submit(_signer_job, server.url, client_id, token, folder, signs).result()
            after = clock("self")
            workers_after = sum(sum(clock(pid).values()) for pid in workers)
            names.update(_names())
    finally:
        server.stop()
    figures: dict[str, float] = {}
    for tid, spent_until in after.items():
        spent = spent_until - before.get(tid, 0)
        if spent:
            label = _label(names.get(tid, f"tid {tid}"))
            figures[label] = figures.get(label, 0.0) + spent / per_ms / signs
    figures["total (this process)"] = sum(figures.values())
    figures["worker processes"] = (workers_after - workers_before) / per_ms / signs
    return figures


def service_arguments(prog: str, description: str | None, signs: int, argv: list[str] | None) -> argparse.Namespace:
    """``--backend``, ``--signs`` and ``--warm``: the options of a benchmark of one service."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--signs", type=int, default=signs)
    parser.add_argument("--warm", type=int, default=30)
    return parser.parse_args(argv)


@contextmanager
def service_database(backend: str) -> Iterator[str | None]:
    """A fresh database for one service, with the custodian's setup stored and a store key set
    (a SQLite file in a temporary folder, or a PostgreSQL schema dropped afterwards); None when
    no PostgreSQL server is reachable."""
    from benchmarks.load import _postgres_db, _prepare_setup, _use_store_key

    with tempfile.TemporaryDirectory(prefix="portal-mpc-service-") as tmp:
        _use_store_key(Path(tmp))
        cleanup = None
        db = str(Path(tmp) / "custodian.sqlite3")
        if backend == "postgresql":
            pg = _postgres_db()
            if pg is None:
                yield None
                return
            db, cleanup = pg
        try:
            _prepare_setup(db)
            yield db
        finally:
            if cleanup is not None:
                cleanup()


def main(argv: list[str] | None = None) -> int:
    args = service_arguments("python -m benchmarks.service_threads", __doc__, 100, argv)
    with service_database(args.backend) as db:
        if db is None:
            print("no PostgreSQL server reachable")
            return 1
        figures = measure(db, max(1, args.signs), max(0, args.warm))
    for label, value in sorted(figures.items(), key=lambda item: -item[1]):
        print(f"  {label:<28} {value:6.2f} ms per signature")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
