"""The service's CPU per request of one ethereum sign: ``python -m benchmarks.request_cpu
[--backend sqlite|postgresql] [--signs N] [--warm W]``.

A custodian service (``ServiceThread``, process pool of two lanes, sealed store) runs in this
process; one client process signs ``W`` ethereum signatures sequentially to warm up, then ``N``
more over one kept connection. A sign is three requests: the open (carrying the device's round 1),
round 3, and round 5 (the signature handed to the custodian: docs/architecture.md). At the start
of each request's step (``StepExecutor._open`` / ``_deliver``, wrapped for the measurement only)
the CPU of this process and of the worker processes is read (``schedstat``: see
``benchmarks.service_threads``). The client waits for each answer, so the requests' cycles do not
overlap: a request's cycle runs from its step's start to the next one's and holds its step, its
answer, and the next request's receipt and checks in the service process. The table gives each
cycle's median, beside the in-process custodian's CPU per signature (``benchmarks.load``'s
reference) measured after it. Issue 30: what each request costs beyond the protocol's own work
(benchmarks/README.md, "Issue 30 after round eight").
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["REQUESTS", "main", "measure"]

REQUESTS = ("open (round 1)", "round 3", "round 5")


@contextmanager
def _marked(marks: list[tuple[float, float]], read: Callable[[], tuple[float, float]]) -> Iterator[None]:
    """While inside: each open and step appends ``read()`` (this process's and the workers' CPU
    seconds) as it starts."""
    from mpc.service.executor import StepExecutor

    originals = {name: getattr(StepExecutor, name) for name in ("_open", "_deliver")}

    def marking(original: Callable[..., Any]) -> Callable[..., Any]:
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            marks.append(read())
            return await original(self, *args, **kwargs)
        return run

    for name, original in originals.items():
        setattr(StepExecutor, name, marking(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(StepExecutor, name, original)


def measure(db: str, signs: int, warm: int) -> dict[str, tuple[float, float]]:
    """Each request's median cycle: (this process's, the workers') CPU milliseconds."""
    from benchmarks.load import _service_cpu, _signer_job, _signer_setup
    from mpc.service.server import ServiceThread

    operator_key = secrets.token_urlsafe(32)
    server = ServiceThread(db, host="127.0.0.1", port=0, executor="process", workers=2,
                           operator_key=operator_key).start()
    marks: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="portal-mpc-requests-") as folder, \
                concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            client_id, token = pool.submit(_signer_setup, server.url, operator_key, folder).result()
            pool.submit(_signer_job, server.url, client_id, token, folder, warm).result()
            with _marked(marks, lambda: _service_cpu(server)):
                pool.submit(_signer_job, server.url, client_id, token, folder, signs + 1).result()
    finally:
        server.stop()
    cycles: dict[str, list[tuple[float, float]]] = {name: [] for name in REQUESTS}
    for index, (start, end) in enumerate(zip(marks, marks[1:])):  # the last sign's round 5 has no end
        cycles[REQUESTS[index % 3]].append((end[0] - start[0], end[1] - start[1]))
    return {name: (statistics.median(own for own, _ in spent) * 1e3, statistics.median(w for _, w in spent) * 1e3)
            for name, spent in cycles.items()}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.load import _InProcess
    from benchmarks.service_threads import service_arguments, service_database

    args = service_arguments("python -m benchmarks.request_cpu", __doc__, 40, argv)
    signs = max(1, args.signs)
    with service_database(args.backend) as db:
        if db is None:
            print("no PostgreSQL server reachable")
            return 1
        figures = measure(db, signs, max(0, args.warm))
        reference = _InProcess()  # the store key of the service's folder seals nothing here (":memory:")
        reference.sign(args.warm)
        in_process = reference.sign(signs) * 1e3 / signs
    print(f"{'request':<16} {'service process':>16} {'workers':>9} {'total':>7}   (CPU ms, median cycle)")
    for name, (own, workers) in figures.items():
        print(f"{name:<16} {own:16.2f} {workers:9.2f} {own + workers:7.2f}")
    total = sum(own + workers for own, workers in figures.values())
    print(f"{'per signature':<16} {'':>16} {'':>9} {total:7.2f}   in-process custodian {in_process:.2f} ms: "
          f"{total / in_process:.2f}x")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
