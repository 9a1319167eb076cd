"""The asyncio device-side client (``mpc.remote.aio.AsyncRemoteCustodian``): the whole wallet
lifecycle, concurrent operations of several clients on one event loop, the device's steps off
the loop, and the same retries as the blocking client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("websockets")

import mpc  # noqa: E402
from mpc.backup.methods import MemoryCloudStorage  # noqa: E402
from mpc.errors import AuthFailed, OperationInProgress  # noqa: E402
from mpc.remote.aio import AsyncRemoteCustodian  # noqa: E402
from mpc.service.server import ServiceThread  # noqa: E402
from mpc.service.store import ServiceStore  # noqa: E402
from tests.mpc.conftest import data_for, verify_result  # noqa: E402
from tests.mpc.cut_proxy import CutProxy  # noqa: E402

OPERATOR_KEY = "async-client-tests-operator-key-0123456789"


def device(client_id: str, cloud: MemoryCloudStorage | None = None) -> mpc.Client:
    return mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud or MemoryCloudStorage())


@pytest.fixture
def server() -> Iterator[ServiceThread]:
    with ServiceThread(":memory:", session_ttl=60, operator_key=OPERATOR_KEY, executor="thread") as running:
        yield running


def remote_at(url: str, **options: Any) -> AsyncRemoteCustodian:
    options.setdefault("operator_key", OPERATOR_KEY)
    return AsyncRemoteCustodian(url, **options)


def test_whole_lifecycle_with_the_asyncio_client(server: ServiceThread) -> None:
    async def lifecycle() -> None:
        remote = remote_at(server.url)
        client_id, token = await remote.create_client()
        cloud = MemoryCloudStorage()
        phone = device(client_id, cloud)
        addresses, view = await remote.generate(phone, token)
        assert view["addresses"] == addresses and view["signing_share_status"] == "STORED_CLIENT"
        with pytest.raises(AuthFailed):  # another device's key is refused before any work
            await remote.generate(device(client_id), token)
        for chain in ("ethereum", "solana", "bitcoin"):
            data = data_for(chain)
            result, custodian_result = await remote.sign(phone, token, chain, data)
            verify_result(result, data)
            assert custodian_result == result and custodian_result.to_json()["signature"] == result.signature.hex()
        counts = (await remote.presign(phone, token, 2))[1]
        assert counts
        data = data_for("tron")
        verify_result((await remote.sign_presigned(phone, token, "tron", data))[0], data)
        await remote.backup(phone, token)
        assert (await remote.get_client(client_id, token, device=phone))["backup_share_status"] == \
            "STORED_CLIENT_BACKUP_SHARE"
        token = await remote.rotate_token(client_id, token, device=phone)
        new_phone = device(client_id, cloud)  # the old device is lost
        recovered, recover_view = await remote.recover(new_phone, token)
        assert recovered == addresses and new_phone.addresses() == addresses
        old, token = token, recover_view["token"]  # recover replaced the token
        with pytest.raises(AuthFailed):
            await remote.get_client(client_id, old, device=new_phone)
        with pytest.raises(AuthFailed):  # the recover moved the wallet to the new device's key
            await remote.get_client(client_id, token, device=phone)
        data = data_for("stellar")
        verify_result((await remote.sign(new_phone, token, "stellar", data))[0], data)
        # The operator: read any record, revoke, issue, unlock.
        assert (await remote.get_client(client_id))["addresses"] == addresses
        await remote.revoke_token(client_id)
        with pytest.raises(AuthFailed):
            await remote.get_client(client_id, token, device=new_phone)
        token = await remote.issue_token(client_id)
        assert (await remote.get_client(client_id, token, device=new_phone))["client_id"] == client_id
        keys, eject_view = await remote.eject(new_phone, token)
        assert keys.secp256k1_public_key.hex() == view["public_keys"]["secp256k1"] and eject_view["token"]

    asyncio.run(lifecycle())
    assert server.service.service.count() == 0  # type: ignore[union-attr]


def test_concurrent_operations_of_several_clients_on_one_event_loop(server: ServiceThread) -> None:
    async def many() -> list[float]:
        remote = remote_at(server.url)
        clients = [await remote.create_client() for _ in range(3)]
        phones = [device(client_id) for client_id, _ in clients]
        await asyncio.gather(*(remote.generate(phone, token) for phone, (_, token) in zip(phones, clients)))
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:  # the loop keeps running while devices compute in threads
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        for round_ in range(2):
            jobs = []
            for i, (phone, (_, token)) in enumerate(zip(phones, clients)):
                chain = ("ethereum", "solana", "bitcoin")[(i + round_) % 3]
                data = data_for(chain, f"payment {i} {round_}".encode())
                jobs.append((remote.sign(phone, token, chain, data), data))
            results = await asyncio.gather(*(job for job, _ in jobs))
            for (result, _), (_, data) in zip(results, jobs):
                verify_result(result, data)
        stop.set()
        await tick
        return gaps

    gaps = asyncio.run(many())
    assert gaps and max(gaps) < 1.0, max(gaps)
    assert server.service.service.count() == 0  # type: ignore[union-attr]


def test_the_asyncio_client_resumes_after_lost_ready_and_a_cut_during_a_step(
        server: ServiceThread, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = ServiceStore.commit_step
    armed = threading.Event()

    with CutProxy(server.port) as proxy:
        def slow_commit(self: ServiceStore, *args: Any, **kwargs: Any) -> Any:
            committed = commit(self, *args, **kwargs)  # the step parked its session (issue 30: one commit)
            if committed is not None and armed.is_set():
                armed.clear()
                proxy.cut()  # its answer never arrives: the client resumes
                time.sleep(1.0)
            return committed

        monkeypatch.setattr(ServiceStore, "commit_step", slow_commit)

        async def scenario() -> None:
            client_id, token = await remote_at(server.url).create_client()
            phone = device(client_id)
            remote = remote_at(proxy.url, ready_timeout=1.0)
            proxy.plan("drop-ready")  # the answer after the device-key challenge is lost
            await remote.generate(phone, token)
            assert proxy.triggered == ["drop-ready"]
            proxy.plan("drop-request")
            data = data_for("ethereum")
            verify_result((await remote.sign(phone, token, "ethereum", data))[0], data)
            armed.set()
            data = data_for("solana")
            verify_result((await remote.sign(phone, token, "solana", data))[0], data)
            assert not armed.is_set()  # the cut happened
            before = proxy.connections
            with pytest.raises(AuthFailed):  # never retried
                await remote.sign(phone, "x" * 43, "solana", data)
            assert proxy.connections == before + 1

        asyncio.run(scenario())
    assert server.service.service.count() == 0  # type: ignore[union-attr]


def test_two_operations_of_one_client_at_once_are_refused_not_retried(server: ServiceThread) -> None:
    async def scenario(proxy: CutProxy) -> None:
        client_id, token = await remote_at(server.url).create_client()
        phone = device(client_id)
        await remote_at(server.url).generate(phone, token)
        remote = remote_at(proxy.url)
        outcomes = await asyncio.gather(remote.backup(phone, token), remote.backup(phone, token),
                                        return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], OperationInProgress), outcomes
        assert proxy.connections == 2  # one each: OPERATION_IN_PROGRESS is not retried

    with CutProxy(server.port) as proxy:
        asyncio.run(scenario(proxy))


def test_the_asyncio_client_outlasts_a_service_restart(tmp_path: Any) -> None:
    db = str(tmp_path / "custodian.sqlite3")
    servers = [ServiceThread(db, executor="thread", operator_key=OPERATOR_KEY).start()]
    port = servers[0].port

    async def scenario() -> None:
        remote = remote_at(servers[0].url)
        client_id, token = await remote.create_client()
        phone = device(client_id)

        async def restart_between_rounds(received: int) -> None:  # a coroutine hook is awaited
            if received == 2:
                await asyncio.to_thread(servers[0].stop)
                asyncio.get_running_loop().call_later(1.5, lambda: servers.append(
                    ServiceThread(db, port=port, executor="thread", operator_key=OPERATOR_KEY).start()))

        session = await asyncio.to_thread(phone.generate)
        addresses, view = await remote.run("generate", session, client_id, token, on_message=restart_between_rounds)
        assert len(servers) == 2 and view["addresses"] == addresses
        data = data_for("ethereum")
        verify_result((await remote.sign(phone, token, "ethereum", data))[0], data)

    try:
        asyncio.run(scenario())
    finally:
        for running in servers:
            running.stop()
