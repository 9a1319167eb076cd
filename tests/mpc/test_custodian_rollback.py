"""A restored custodian database gives a malicious client nothing (docs/threat-model.md, "Rollback").

The malicious client drives the custodian's own operations through its public API, parking the
custodian's session after every step as the service does, and snapshots the custodian's store
(SQLite: the database through SQLite's backup API; PostgreSQL: every table of the schema copied
with ``CREATE TABLE … AS``) between and inside operations. It then restores the snapshot - with
no nonce-epoch bump and no restore guard - resumes the parked session again and continues with
(i) the same messages: the custodian's replies are byte-identical (nothing new to learn), or
(ii) a different commitment: the custodian answers with fresh values (k2, FROST nonces, x2, ρ2
never meet two different peer inputs). From each pair of ECDSA transcripts it tries to solve
for the key (k2 reuse: two equations in k2 and x); the solver must fail. With a precomputation
pool no precomputed value appears in two proofs.
"""

from __future__ import annotations

import copy
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.signing import first_payload, parse_hello, sign_protocol, split_first_payload
from protocols import paillier
from protocols.ecdsa2p.common import GROUP
from protocols.errors import MPCError
from protocols.rounds import Message, Session
from tests.mpc.conftest import Wallet, data_for, verify_result

Q = GROUP.order
Restore = Callable[[], None]


# --- stores and their snapshots ------------------------------------------------------------------
@dataclass
class Backend:
    store: mpc.SQLiteStore
    snapshot: Callable[[], Restore]


def _sqlite_backend(path: str) -> Backend:
    store = mpc.SQLiteStore(path)

    def snapshot() -> Restore:
        copy_db = sqlite3.connect(":memory:")
        store._conn.backup(copy_db)
        return lambda: copy_db.backup(store._conn)

    return Backend(store, snapshot)


def _postgres_backend(url: str) -> Backend:
    import psycopg

    from mpc.storage.backends import open_store

    store = open_store(url)
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    base = url.split("?")[0]

    def tables() -> list[str]:
        names = [row[0] for row in _pg(base, "SELECT table_name FROM information_schema.tables WHERE "
                                             "table_schema = %s AND table_name NOT LIKE 'snap%%'", (schema,))]
        return sorted(names, key=lambda t: t != "clients")  # referenced by the others: restored first

    def snapshot() -> Restore:
        tag, saved = "snap" + secrets.token_hex(4), tables()
        with psycopg.connect(base, autocommit=True) as conn:
            for table in saved:
                conn.execute(f'CREATE TABLE "{schema}"."{tag}_{table}" AS SELECT * FROM "{schema}"."{table}"')

        def restore() -> None:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute("TRUNCATE " + ", ".join(f'"{schema}"."{t}"' for t in tables()) + " CASCADE")
                for table in saved:
                    conn.execute(f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{schema}"."{tag}_{table}"')

        return restore

    return Backend(store, snapshot)


def _pg(url: str, sql: str, args: tuple[Any, ...]) -> list[Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, args).fetchall())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Backend]:
    if request.param == "sqlite":
        made = _sqlite_backend(str(tmp_path / "custodian.sqlite3"))
    else:
        made = _postgres_backend(request.getfixturevalue("postgres_schema_url"))
    yield made
    made.store.close()


@pytest.fixture
def wallet(backend: Backend) -> Wallet:
    custodian = mpc.Custodian(backend.store)
    client_id = custodian.create_client()
    cloud = MemoryCloudStorage()
    made = Wallet(custodian, client_id, mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud), cloud)
    made.generate()
    return made


# --- driving a parked custodian operation ------------------------------------------------------------
@dataclass
class Transcript:
    """What the custodian answered to each client message, in order."""

    steps: list[tuple[Message, list[Message]]] = field(default_factory=list)

    def replies(self) -> list[bytes]:
        return [m.to_bytes() for _, out in self.steps for m in out]

    def child_payloads(self, child: str, round_no: int) -> list[Any]:
        """The payloads of child ``child``'s round ``round_no`` in the custodian's replies (a sign's
        messages are its one child's own: mpc.signing, "Framing")."""
        return [out.payload if out.protocol == sign_protocol(child) else out.payload["message"]["payload"]
                for _, outs in self.steps for out in outs
                if (out.protocol == sign_protocol(child) and out.round == round_no)
                or (out.payload.get("child") == child and out.payload["message"]["round"] == round_no)]


def step(custodian: mpc.Custodian, blob: bytes, msg: Message) -> tuple[bytes | None, list[Message]]:
    """Resume the parked custodian session, deliver one client message, park it again."""
    session = custodian.resume(blob)
    out = session.receive(msg)
    return (None if session.done or session.aborted else session.to_bytes()), out


def park_new(custodian_op: Session) -> bytes:
    custodian_op.start()
    return custodian_op.to_bytes()


def drive(custodian: mpc.Custodian, blob: bytes, client: Session, pending: list[Message], *,
          stop_after: int | None = None) -> tuple[bytes | None, list[Message], Transcript]:
    """Deliver client messages one by one (the client answers what it gets), stopping after
    ``stop_after`` client messages; returns the parked blob, the undelivered client messages
    and the transcript."""
    transcript, queue, current = Transcript(), list(pending), blob
    while queue and current is not None and (stop_after is None or len(transcript.steps) < stop_after):
        msg = queue.pop(0)
        current, out = step(custodian, current, msg)
        transcript.steps.append((msg, out))
        for reply in out:
            queue += client.receive(reply)
    return current, queue, transcript


def clone(session: Session) -> Session:
    """A copy of an in-memory client session (test-only: the malicious client replays itself)."""
    from tests.adversarial.harness import copyable_secrets

    with copyable_secrets():
        return copy.deepcopy(session)


# --- the key solver ----------------------------------------------------------------------------------
def solve_key(public: bytes, digest: bytes, runs: list[tuple[int, int, int]]) -> int | None:
    """Given (k1, r, s) of two ECDSA runs on one digest, assume k2 was reused and solve
    k2·s'_i = m + r_i·x (s'_i = ±s_i·k1_i) for x; return x if x·G is the public key."""
    m = int.from_bytes(digest, "big") % Q
    (k1a, ra, sa), (k1b, rb, sb) = runs
    for sign_a in (1, -1):
        for sign_b in (1, -1):
            a, b = sign_a * sa * k1a % Q, sign_b * sb * k1b % Q
            denominator = (b * ra - a * rb) % Q
            if denominator == 0:
                continue
            x = m * (a - b) * pow(denominator, -1, Q) % Q
            if x and GROUP.base_mul(x).to_bytes() == public:
                return x
    return None


def test_the_solver_finds_the_key_when_k2_repeats() -> None:
    """Positive control: with one k2 and two client nonces the two signatures give x away."""
    x, k2, m = secrets.randbelow(Q - 1) + 1, secrets.randbelow(Q - 1) + 1, secrets.token_bytes(32)
    runs = []
    for _ in range(2):
        k1 = secrets.randbelow(Q - 1) + 1
        point = GROUP.base_mul(k1 * k2 % Q)
        r = GROUP.affine(point)[0] % Q
        s = pow(k1 * k2, -1, Q) * (int.from_bytes(m, "big") % Q + r * x) % Q
        runs.append((k1, r, s))
    assert solve_key(GROUP.base_mul(x).to_bytes(), m, runs) == x


def _k1(client: Session) -> int:
    return int(client.child("secp256k1")._k1.value)  # type: ignore[attr-defined]


# --- signing -------------------------------------------------------------------------------------------
def _start_sign(w: Wallet, chain: str, data: bytes, sid: bytes) -> tuple[Session, list[Message]]:
    client = w.client.sign(chain, data, session_id=sid)
    return client, client.start()


@pytest.mark.parametrize("chain", ["ethereum", "solana"])
def test_restore_before_the_commitment(wallet: Wallet, backend: Backend, chain: str) -> None:
    """Restored before the client's first message (its hello with its commitment): the same
    message gets the same answer byte for byte, a different commitment a fresh R2 (ECDSA) or
    fresh custodian commitments (FROST)."""
    data, sid = data_for(chain, b"rollback"), secrets.token_bytes(32)
    client_a, out_a = _start_sign(wallet, chain, data, sid)
    blob, pending, _ = drive(wallet.custodian, park_new(wallet.custodian.sign(wallet.client_id, chain, data, sid)),
                             client_a, out_a, stop_after=0)  # parked as opened: before the commitment
    restore = backend.snapshot()
    replay_a = clone(client_a)
    assert blob is not None
    _, _, run_a = drive(wallet.custodian, blob, client_a, pending)
    verify_result(client_a.result(), data)

    restore()  # the nightly backup comes back: same nonce epoch, the park id unused again
    custodian = mpc.Custodian(backend.store)  # a new process
    _, _, replay = drive(custodian, blob, replay_a, list(pending))
    assert replay.replies() == run_a.replies()  # identical input: nothing new

    restore()
    client_b, out_b = _start_sign(wallet, chain, data, sid)
    assert split_first_payload(out_b[0].payload)[0] == split_first_payload(out_a[0].payload)[0]
    assert out_b[0].to_bytes() != pending[0].to_bytes()
    _, _, run_b = drive(mpc.Custodian(backend.store), blob, client_b, out_b)
    verify_result(client_b.result(), data)
    child = "secp256k1" if chain == "ethereum" else "ed25519"
    first_a, first_b = run_a.child_payloads(child, 2)[0], run_b.child_payloads(child, 2)[0]
    if chain == "ethereum":
        assert first_a["R2"] != first_b["R2"]  # k2 never meets a second R1
        signatures = [(_k1(c), c.result().r, c.result().s) for c in (replay_a, client_b)]
        assert solve_key(wallet.client.public_keys()["secp256k1"], data, signatures) is None
    else:
        assert (first_a["hiding"], first_a["binding"]) != (first_b["hiding"], first_b["binding"])
        assert client_a.result().signature[:32] != client_b.result().signature[:32]


def _c3_of(payload: Any, w: Wallet) -> int:
    pk = w.client.signing_share("secp256k1").paillier.public_key
    return paillier.decode_ciphertext(payload, "c3", pk)


def _proof_values(payload: Any) -> set[str]:
    """Every value of a Π_c3 payload (hex strings of its commitments and responses)."""
    values: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif hasattr(value, "values"):
            for item in value.values():
                walk(item)

    walk(payload)
    return values


@pytest.mark.parametrize("pool", [False, True], ids=["no-pool", "pool"])
def test_restore_between_commitment_and_opening(wallet: Wallet, backend: Backend, pool: bool) -> None:
    """Restored after R2 went out (k2 is in the parked state): the client can only open its
    commitment again. Without a pool the round-4 reply is byte-identical; with one, the c3 step
    is fresh as a whole: the two c3 hide plaintexts that differ by a multiple of q only (the
    mask), and no value of one proof appears in the other."""
    if pool:
        mpc.run_local(wallet.client.presign(2), wallet.custodian.presign(wallet.client_id, 2))
    data, sid = data_for("ethereum", b"opening"), secrets.token_bytes(32)
    client_a, out_a = _start_sign(wallet, "ethereum", data, sid)
    blob, pending, _ = drive(wallet.custodian, park_new(wallet.custodian.sign(wallet.client_id, "ethereum", data, sid)),
                             client_a, out_a, stop_after=1)  # hello and commitment: R2 is out
    assert blob is not None and pending  # the opening waits
    restore = backend.snapshot()
    replay_a = clone(client_a)
    _, _, run_a = drive(wallet.custodian, blob, client_a, pending)
    restore()
    _, _, replay = drive(wallet.custodian, blob, replay_a, list(pending))  # same process: its pool if any
    assert client_a.result() == replay_a.result()  # one k1, one k2: the same signature, nothing new
    c3_a, c3_b = run_a.child_payloads("secp256k1", 4)[0], replay.child_payloads("secp256k1", 4)[0]
    if not pool:
        assert replay.replies() == run_a.replies()
        return
    assert wallet.custodian.presignature_count(wallet.client_id)["secp256k1"] == 0  # each used once
    sk = wallet.client.signing_share("secp256k1").paillier
    plain_a, plain_b = (paillier.decrypt_signed(sk, _c3_of(c, wallet)) for c in (c3_a, c3_b))
    assert plain_a != plain_b and (plain_a - plain_b) % Q == 0
    assert not _proof_values(c3_a["proof"]) & _proof_values(c3_b["proof"])


def test_restore_after_completion_gives_a_new_operation_fresh_values(wallet: Wallet, backend: Backend) -> None:
    """After a finished signature nothing of it is parked: the restored custodian, given the same
    session again, makes a new operation with a salt of its own, so even the same client messages
    (the same R1) meet a fresh k2, and no pair of the three runs gives the key."""
    data, sid = data_for("ethereum", b"done"), secrets.token_bytes(32)
    restore = backend.snapshot()
    client_a, out_a = _start_sign(wallet, "ethereum", data, sid)
    replay_a = clone(client_a)
    _, _, run_a = drive(wallet.custodian, park_new(wallet.custodian.sign(wallet.client_id, "ethereum", data, sid)),
                        client_a, out_a)
    restore()
    custodian = mpc.Custodian(backend.store)
    _, _, replay = drive(custodian, park_new(custodian.sign(wallet.client_id, "ethereum", data, sid)), replay_a,
                         out_a)
    r2 = [t.child_payloads("secp256k1", 2)[0]["R2"] for t in (run_a, replay)]
    assert r2[0] != r2[1]  # a new operation: fresh k2, even for the same commitment
    restore()
    client_b, out_b = _start_sign(wallet, "ethereum", data, sid)
    custodian = mpc.Custodian(backend.store)
    _, _, run_b = drive(custodian, park_new(custodian.sign(wallet.client_id, "ethereum", data, sid)), client_b, out_b)
    assert run_a.child_payloads("secp256k1", 2)[0]["R2"] != run_b.child_payloads("secp256k1", 2)[0]["R2"]
    public = wallet.client.public_keys()["secp256k1"]
    runs = {name: (_k1(c), c.result().r, c.result().s) for name, c in (("a", client_a), ("replay", replay_a),
                                                                      ("b", client_b))}
    for pair in (("a", "replay"), ("a", "b"), ("replay", "b")):
        assert solve_key(public, data, [runs[name] for name in pair]) is None


def test_a_rejected_message_does_not_move_the_derivation(wallet: Wallet) -> None:
    """A refused message changes nothing, not even the transcript the randomness is derived from."""
    data, sid = data_for("ethereum", b"refused"), secrets.token_bytes(32)
    _, out = _start_sign(wallet, "ethereum", data, sid)
    custodian_op = wallet.custodian.sign(wallet.client_id, "ethereum", data, sid)
    custodian_op.start()
    honest = wallet.custodian.resume(custodian_op.to_bytes())
    bad = Message(out[0].protocol, out[0].session_id, out[0].round, out[0].sender, out[0].recipient,
                  first_payload(parse_hello(split_first_payload(out[0].payload)[0]), {"garbage": 1}))
    with pytest.raises(MPCError):
        custodian_op.receive(bad)
    assert custodian_op.receive(out[0])[0].to_bytes() == honest.receive(out[0])[0].to_bytes()


def assert_same_input_same_reply(first: Transcript, second: Transcript) -> None:
    """While the client's messages agree, so do the custodian's replies, byte for byte (the
    custodian's possession challenge is fresh on purpose: from there the client's messages,
    and so the replies, differ)."""
    compared = 0
    for (msg_a, out_a), (msg_b, out_b) in zip(first.steps, second.steps):
        if msg_a.to_bytes() != msg_b.to_bytes():
            break
        assert [m.to_bytes() for m in out_a] == [m.to_bytes() for m in out_b]
        compared += 1
    assert compared >= 1


# --- composite operations ------------------------------------------------------------------------------
def test_generate_restored_after_the_hello(backend: Backend) -> None:
    """Keygen: x2 is drawn once the client committed to Q1, so a restored hello-parked generate
    resumed by another device gets a fresh Q2; the FROST DKG coefficients, drawn at the hello,
    only ever produce the same messages (they never combine with the second client's input)."""
    custodian = mpc.Custodian(backend.store)
    client_id = custodian.create_client()
    devices = [mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage()) for _ in range(2)]
    sid = secrets.token_bytes(32)
    client_a = devices[0].generate(session_id=sid)
    out_a = client_a.start()
    blob, pending, hello = drive(custodian, park_new(custodian.generate(client_id, sid)), client_a, out_a,
                                 stop_after=1)
    restore = backend.snapshot()
    assert blob is not None
    _, _, run_a = drive(custodian, blob, client_a, pending)
    restore()
    client_b = devices[1].generate(session_id=sid)
    out_b = client_b.start()
    assert out_b[0].to_bytes() == out_a[0].to_bytes()
    for reply in hello.steps[0][1]:  # what the custodian answered the hello (its DKG round 1)
        out_b += client_b.receive(reply)
    custodian = mpc.Custodian(backend.store)
    _, _, run_b = drive(custodian, blob, client_b, out_b[1:])
    q2 = [t.child_payloads("secp256k1", 2)[0]["Q2"] for t in (run_a, run_b)]
    assert q2[0] != q2[1]
    # The DKG polynomial was drawn at the hello (its commitments went out before any client
    # input): its value for the client is the same in both runs, so nothing new is learnt.
    shares = [t.child_payloads("ed25519", 2)[0]["share"] for t in (run_a, run_b)]
    assert shares[0] == shares[1]


@pytest.mark.parametrize("operation", ["backup", pytest.param("recover", marks=pytest.mark.slow)])
def test_reshare_operations_restored_after_the_hello(wallet: Wallet, backend: Backend, operation: str) -> None:
    """Backup and recover (ECDSA reshare, FROST refresh): the custodian's ρ2 is drawn once the
    client committed to ρ1, so a restored operation resumed with a new commitment gets a fresh
    ρ2, and a fresh refresh polynomial; the same messages get the same replies."""
    if operation == "recover":
        wallet.backup()
    device = wallet.client if operation == "backup" else wallet.device()
    sid = secrets.token_bytes(32)

    def client_op() -> Session:
        return device.backup(session_id=sid) if operation == "backup" else device.recover(session_id=sid)

    def custodian_op(custodian: mpc.Custodian) -> Session:
        return (custodian.backup if operation == "backup" else custodian.recover)(wallet.client_id, None, sid)

    client_a = client_op()
    out_a = client_a.start()
    blob = park_new(custodian_op(wallet.custodian))
    restore = backend.snapshot()
    replay_a = clone(client_a)
    _, _, run_a = drive(wallet.custodian, blob, client_a, out_a)
    restore()
    _, _, replay = drive(mpc.Custodian(backend.store), blob, replay_a, list(out_a))
    assert_same_input_same_reply(run_a, replay)
    restore()
    client_b = client_op()
    _, _, run_b = drive(mpc.Custodian(backend.store), blob, client_b, client_b.start())
    rho2 = [t.child_payloads("secp256k1", 2)[0]["rho2"] for t in (run_a, run_b)]
    assert rho2[0] != rho2[1]
    # The FROST refresh polynomial is drawn when the child starts, in both operations after the
    # client's proof of possession (a client input bound into the derivation): another client
    # run gets a fresh one.
    committed = [t.child_payloads("ed25519", 1)[0]["commitment"] for t in (run_a, run_b)]
    dealt = [t.child_payloads("ed25519", 2)[0]["share"] for t in (run_a, run_b)]
    assert committed[0] != committed[1] and dealt[0] != dealt[1]


def test_the_transcript_link_is_the_length_prefixed_chain() -> None:
    """Each accepted message advances the custodian's running hash by one link: SHA-256 over the
    length-prefixed hash so far and the message's bytes (``_link``, written out for speed, is
    ``_chain`` of the two; a parked transcript advances the same way after an upgrade)."""
    from mpc.operation import _chain, _initial_transcript, _link

    salt = secrets.token_bytes(32)
    start = _chain(b"portal-mpc/custodian-rng/v1", b"client", b"wallet/sign", salt)
    assert _initial_transcript(b"client", b"wallet/sign", salt) == start  # the start, also written out
    assert _initial_transcript(b"client", b"wallet/backup", salt) != start != _initial_transcript(b"clien", b"twallet/sign", salt)
    for message in (b"", b"{}", secrets.token_bytes(700)):
        assert _link(start, message) == _chain(start, message)
    assert _link(start, b"a") != _link(start, b"b") and _link(b"short", b"a") == _chain(b"short", b"a")


def test_a_sign_custodian_starts_without_drawing_and_still_derives_its_nonces(wallet: Wallet) -> None:
    """The custodian's sign sends and draws nothing at its start (no derived scope entered then);
    its nonces are still derived: the same client message gives the same reply in two copies."""
    data, sid = data_for("solana", b"start"), secrets.token_bytes(32)
    _, out = _start_sign(wallet, "solana", data, sid)
    custodian_op = wallet.custodian.sign(wallet.client_id, "solana", data, sid)
    assert custodian_op.start() == []
    copy_op = wallet.custodian.resume(custodian_op.to_bytes())
    assert custodian_op.receive(out[0])[0].to_bytes() == copy_op.receive(out[0])[0].to_bytes()
