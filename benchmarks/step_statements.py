"""Count the store work of one Ethereum signature in the service's steps: ``python -m benchmarks.step_statements``.

The worker's functions (``mpc.service.worker``: ``open_operation`` and ``step``, as a service with a
thread executor runs them) sign ``--signs`` times after ``--warm`` signatures, on a SQLite file and,
when reachable, on PostgreSQL (``$PORTAL_MPC_TEST_POSTGRES``, in a throw-away schema); per signature
it prints the outermost transactions (``BEGIN``), the statements (``_execute``), the
``COMMIT``s and, on PostgreSQL, the round trips (every statement psycopg sends: ``BEGIN``,
``COMMIT`` and the transaction id's read included) (counted, not timed: they do not depend on the
machine's load), and the steps' overhead: the thread CPU of ``worker.open_operation`` and
``worker.step`` minus the custodian protocol's ``receive`` in them (timed: noisy, compare trees in alternating runs). It uses only the
worker's API, so the tree before a change can be measured as well (``PYTHONPATH=that tree``).

Two ways of opening (issue 30, round five): ``frame``, the device's first message sent after
``ready`` (a step of its own, as an older device does), and ``request``, carried by the request
(``open_operation``'s ``frame``: the open and the first step in one commit), when the worker
supports it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from typing import Any

__all__ = ["count_signatures"]


def _counting(store: Any, counts: Counter[str]) -> None:
    """Count ``store``'s outermost transactions, statements and commits into ``counts``."""
    for name in ("_begin", "_execute", "_commit"):
        original = getattr(store, name)

        def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            counts[_name] += 1
            return _original(*args)

        setattr(store, name, counted)


def _counting_round_trips(counts: Counter[str]) -> Any:
    """Count every statement psycopg sends (``BEGIN``, ``COMMIT`` and the locks included: a round
    trip each) into ``counts["round trips"]``; returns a function that stops counting."""
    import psycopg

    original = psycopg.Cursor.execute

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["round trips"] += 1
        return original(self, *args, **kwargs)

    psycopg.Cursor.execute = counted  # type: ignore[method-assign]

    def stop() -> None:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
    return stop


def count_signatures(url: str, signs: int, warm: int, carried: bool = False) -> dict[str, float]:
    """Per signature over ``signs`` after ``warm``: transactions, statements and commits (and on
    PostgreSQL every round trip: ``_counting_round_trips``); ``carried``: the device's first
    message goes in the open request."""
    import mpc
    from mpc.backup.methods import MemoryCloudStorage
    from mpc.service import worker
    from mpc.service.server import CustodianService
    from mpc.service.store import new_token
    from mpc.storage.backends import open_store
    from protocols.rounds import Message

    custodian = mpc.Custodian(open_store(url))
    service = CustodianService(url, custodian=custodian, executor="thread", open_registration=True)
    client_id = custodian.create_client()
    device = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
    mpc.run_local(device.generate(), custodian.generate(client_id))
    token = new_token()
    service.service.set_token(client_id, token)
    service.service.register_device(client_id, device.device_key().public)
    counts: Counter[str] = Counter()
    cpu = {"steps": 0.0, "receive": 0.0}
    _timing_receive(cpu)
    stop = None
    for i in range(warm + signs):
        if i == warm:
            _counting(custodian.store, counts)
            if "://" in url:
                stop = _counting_round_trips(counts)
            cpu.update(steps=0.0, receive=0.0)
        data = hashlib.sha256(f"count {i}".encode()).digest()
        session = device.sign("ethereum", data)
        sid = session.session_id.hex()
        outbox = session.start()
        first = (outbox.pop(0).to_bytes(),) if carried else ()
        start = time.thread_time()
        opened = worker.open_operation(service._key, "sign", client_id, {"chain": "ethereum", "data": data}, sid,
                                       60.0, 8, device.device_key().public, False, *first)
        cpu["steps"] += time.thread_time() - start
        assert "error" not in opened, opened
        for text in opened["messages"]:
            outbox += session.receive(Message.from_bytes(text.encode()))
        while outbox:
            start = time.thread_time()
            outcome = worker.step(service._key, client_id, token, sid, outbox.pop(0).to_bytes(), 60.0)
            cpu["steps"] += time.thread_time() - start
            assert "error" not in outcome, outcome
            for text in outcome.get("messages", ()):
                outbox += session.receive(Message.from_bytes(text.encode()))
    if stop is not None:
        stop()
    service._pool.shutdown()
    custodian.store.close()
    figures = {"transactions": counts["_begin"] / signs, "statements": counts["_execute"] / signs,
               "commits": counts["_commit"] / signs}
    if stop is not None:
        figures["round trips"] = counts["round trips"] / signs
    figures["step overhead (ms)"] = (cpu["steps"] - cpu["receive"]) * 1000 / signs
    return figures


def _timing_receive(cpu: dict[str, float]) -> None:
    """Add the thread CPU of every custodian operation's ``receive`` to ``cpu["receive"]``."""
    from mpc.operation import CustodianOperation

    original = CustodianOperation.receive

    def timed(self: Any, msg: Any) -> Any:
        start = time.thread_time()
        try:
            return original(self, msg)
        finally:
            cpu["receive"] += time.thread_time() - start

    CustodianOperation.receive = timed  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signs", type=int, default=40)
    parser.add_argument("--warm", type=int, default=25)
    args = parser.parse_args(argv)
    from mpc.storage.sealing import KEY_ENV

    os.environ.setdefault(KEY_ENV, base64.b64encode(secrets.token_bytes(32)).decode("ascii"))
    with tempfile.TemporaryDirectory() as home:
        backends = {"sqlite": os.path.join(home, "custodian.sqlite3")}
        postgres = os.environ.get("PORTAL_MPC_TEST_POSTGRES")
        if postgres:
            backends["postgresql"] = f"{postgres}{'&' if '?' in postgres else '?'}schema=count_{secrets.token_hex(4)}"
        try:
            for name, url in backends.items():
                for carried in (False, True) if _carries_first_message() else (False,):
                    figures = count_signatures(url, args.signs, args.warm, carried)
                    print(f"{name} ({'request' if carried else 'frame'}): "
                          + ", ".join(f"{key} {value:.2f}" for key, value in figures.items()) + " per signature")
        finally:
            if postgres:
                _drop_schema(postgres, backends["postgresql"].rsplit("schema=", 1)[1])
    return 0


def _carries_first_message() -> bool:
    """Whether this tree's worker opens with the device's first message (issue 30, round five)."""
    import inspect

    from mpc.service import worker

    return "frame" in inspect.signature(worker.open_operation).parameters


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    sys.exit(main())
