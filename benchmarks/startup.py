"""Start-up of the networked custodian: ``python -m benchmarks.startup [--runs N] [--postgres]``.

Issue 26 (back in seconds): a restarted service must accept connections at once and get ready
soon after. Each run starts ``python -m mpc serve`` (process pool, 2 workers) on a SQLite file
(or, with ``--postgres``, a throw-away schema of ``$PORTAL_MPC_TEST_POSTGRES``) and measures,
from the moment the process is spawned:

- **accept**: the first ``GET /healthz`` answered 200 (the listener is up);
- **ready**: the first ``GET /readyz`` answered 200 (the workers are warm, the store answers).

Printed: the median and the maximum of each over the runs. The custodian setup is the tests'
pre-generated one (``benchmarks.load``), so no safe prime is generated.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main", "measure_start"]

OPERATOR_KEY = "startup-benchmark-operator-key-0123456789"
POLL = 0.01


def _status(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure_start(db: str, timeout: float = 120.0) -> tuple[float, float]:
    """(seconds to the first accepted ``/healthz``, seconds to ``/readyz`` 200) of one start."""
    from mpc.service.guard import OPERATOR_KEY_ENV
    from mpc.storage.backends import DB_ENV

    port = _free_port()
    env = {**os.environ, OPERATOR_KEY_ENV: OPERATOR_KEY, DB_ENV: db}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "mpc", "serve", "--port", str(port), "--executor", "process",
                                "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        accepted = ready = None
        while ready is None and time.monotonic() - started < timeout:
            if accepted is None and _status(port, "/healthz") == 200:
                accepted = time.monotonic() - started
            if accepted is not None and _status(port, "/readyz") == 200:
                ready = time.monotonic() - started
            time.sleep(POLL)
        if accepted is None or ready is None:
            raise SystemExit(f"the service did not get ready within {timeout:.0f} s")
        return accepted, ready
    finally:
        process.terminate()
        process.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="a schema of $PORTAL_MPC_TEST_POSTGRES")
    args = parser.parse_args(argv)
    from benchmarks.load import _postgres_db, _prepare_setup, _use_store_key

    with tempfile.TemporaryDirectory() as folder:
        _use_store_key(Path(folder))
        drop = None
        if args.postgres:
            found = _postgres_db()
            if found is None:
                print("PostgreSQL is not reachable")
                return 2
            db, drop = found
        else:
            db = str(Path(folder) / "custodian.sqlite3")
        try:
            _prepare_setup(db)
            runs = [measure_start(db) for _ in range(args.runs)]
        finally:
            if drop is not None:
                drop()
    accept, ready = [r[0] for r in runs], [r[1] for r in runs]
    print(f"{'postgresql' if args.postgres else 'sqlite'}, {args.runs} starts (process pool, 2 workers):")
    print(f"  spawn to first accepted connection: median {statistics.median(accept):.2f} s, max {max(accept):.2f} s")
    print(f"  spawn to ready (/readyz 200):       median {statistics.median(ready):.2f} s, max {max(ready):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
