"""The custodian service's steps, run in an executor (a worker thread or a worker process).

Each step opens (or reuses) this process's ``Custodian`` and ``ServiceStore`` for the database
URL, steps the parked session with one frame and parks the new state with the messages it
produced: a sign's or presign's step optimistically, in one commit after the run (The optimistic
step, below), any other operation's by *taking* the parked session first (load and delete at
once) and parking it after. A worker receives only picklable values (database URL, client id
and token, parked state, frame), and a worker process exits when the service process dies
(after the step it is running).

The optimistic step (issue 30, round four)
-------------------------------------------
A step of a sign, ``sign_presigned`` or presign session (``OPTIMISTIC_OPERATIONS``: their custodian
steps write nothing to the store while the protocol runs) reads the parked row without taking
it, decodes it (or uses this process's warm copy of that very park), runs the protocol, and then
commits once (``ServiceStore.commit_step``): the row taken only if it is still that park, the
session admitted (``Custodian._admission``: its park id consumed, its nonce epoch and a sign's
share checked, after the restore guard compared), the new state parked with the step marker
saying so (or the row gone and the result kept when the operation finished). Only then is
anything returned: a step whose commit finds the row changed (another step of the same session
committed first, an abort, the purge, a restore) answers ``NOT_FOUND`` and what it computed is
dropped; a rejected message commits nothing (the row stays parked as it was); an abort deletes
the row if it is still that park. A worker that dies before its commit sent nothing and left the
row parked: the step runs again (``ServiceStore.step_outcome``: ``untouched``); one that dies after
it left the new park and its marker (``parked``: its messages are sent). Why this is safe (the
custodian's per-step randomness is derived from the transcript, so only the committed run's
output ever leaves): docs/threat-model.md, The optimistic step. The other operations (generate,
backup, recover, eject, derive) write inside their steps (the operation lock, shares, statuses,
attempt counts, HD keys) and keep the take-first step. A sign's first step may come with its
open, in one commit (issue 30, round five: The first message in the request, at
``open_operation``).

Parking, restarts, expiry
-------------------------
Between two messages a session lives only in the database (``mpc.service.store``): each
incoming message steps the parked state (optimistically, or by taking it first: above) and parks
the new state with the messages it produced. A server may therefore stop between two rounds and another
process on the same database continue: the client reconnects with ``resume``, learns which of
its messages the custodian expects next (``expect``) and receives again the messages it may lack
(it drops those it already has): a sign's last step's, another operation's every message
(``_outbox``). A parked sign names its key share instead of carrying it (docs/operations.md, The
parked row). A session untouched for ``session_ttl`` seconds is purged,
releasing the operation lock it held; shares and statuses are never touched by the purge.

The operation lock is a lease held by its session (``mpc.service.store``): renewed to the
park's expiry at each park, ``lock_ttl`` while a step runs. Each take (take-first steps) leaves a step marker
naming this node, and every node heartbeats, so a session taken by a step that died (its node
silent for ``node_ttl``, or its worker process dead) is *lost*: ``resume`` answers
``OPERATION_LOST`` (retryable: start the operation again) and its lock is freed at once. A
dead worker is replaced (its lane only: ``pool.LanePool``); a step that never ran (or an
optimistic step that never committed: nothing of it left) is run again, one that committed is
never run twice. SIGTERM drains (``drain``), ``ready()`` tells a load balancer whether to send traffic
(``docs/operations.md``, Resilience).

Off the event loop
------------------
Every step (decode the parked state, verify proofs, Paillier arithmetic, store writes) runs in
an executor, never on the event loop. With a file or PostgreSQL database the default is a
*process* pool (``spawn``): the proofs are pure-Python / gmpy2 big-integer work that holds the
GIL, so threads would take turns on one core; a worker receives only picklable values (database
URL, client id and token, parked state, frame) and keeps its own store connection, which the take-semantics make
safe. A worker keeps its custodian and store for its life; with a restore guard
(``mpc.storage.restore_guard``) that store compares with the guard file before every take and after
every reconnect, and the service process once per purge tick, so a database restored or
overwritten under the running service is caught by the next take of any process. With ``:memory:``
(one connection, one process) it is a thread pool. A worker process
exits when the service process dies (after the step it is running).

Warm sessions (issue 30)
------------------------
A step costs the protocol's work plus what the service adds around it; to keep the latter small
a worker keeps the session it just parked decoded in memory (``WARM_SESSIONS`` per process), with
the *version* of that park (``ParkedSession.version``: a fingerprint of the sealed row). The pool
is made of lanes, one worker each (``mpc.service.pool.LanePool``), and the next step of a session
goes to the lane that ran its last one unless another lane is less busy. The store stays the
truth: the warm session is used only if the row read (optimistic step) or taken (take-first
step) is the very park it made (same version); the transaction that commits the step (or takes
the row) admits it (``Custodian._admit``: its park id consumed, the nonce epoch checked), as
``Custodian.resume`` does for a decoded one. A row another node parked since, a database
restored (the restore guard empties the parked sessions at the take), a warm copy dropped (a
full cache, a worker restart) or refused: the stored state is decoded as before. A warm session
serves one step at most (it is removed before the take); a failed or finished step keeps none.
The frame is decoded once, here, before anything is taken (``requests.parse_message``).
"""

from __future__ import annotations

import functools
import hmac
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from mpc.service import results
from mpc.custodian import Custodian
from mpc.operation import CustodianOperation
from mpc.errors import (
    AuthFailed,
    EngineError,
    InputInvalid,
    MessageInvalid,
    NotFound,
    OperationLost,
    RateLimited,
    StoreUnavailable,
    from_protocol_error,
)
from mpc.service.guard import (
    BoundedLog,
)
from mpc.service.requests import parse_message
from mpc.service.store import NewPark, OpenChecks, ParkedSession, ServiceStore, Step
from mpc.service.warm import (  # re-exported: the executor and the tests name them here
    WARM_SESSIONS as WARM_SESSIONS,
    _keep_warm,
    _take_warm,
    forget_warm as forget_warm,
    warm_sessions as warm_sessions,
)
from mpc.wire import (
    TOKEN_ROTATING_OPERATIONS,
)
from mpc.storage.backends import open_store
from mpc.wallet import SignResult
from protocols.errors import InvalidMessage, MPCError
from protocols.rounds import Message, Session

log = logging.getLogger("mpc.service.server")  # one logger for the whole service: the name operators filter on
BOUNDED_LOG = BoundedLog(log)  # this process's internal errors (each worker process has its own)


def session_not_found() -> dict[str, Any]:
    """No parked session of this id for this client (unknown, finished, expired, or in use)."""
    return NotFound("no such session (unknown, finished, expired or busy)").to_json()


# --- the steps (run in an executor: a worker thread or a worker process) -----------------------------
_CUSTODIANS: dict[str, Custodian] = {}
_CUSTODIANS_LOCK = threading.Lock()


def _custodian(db: str) -> Custodian:
    """This process's custodian on ``db`` (a worker process opens its own connection)."""
    with _CUSTODIANS_LOCK:
        custodian = _CUSTODIANS.get(db)
        if custodian is None:
            custodian = Custodian(open_store(db))
            # The setup (the custodian's Paillier key and its proofs) is loaded and verified once
            # per process: ``Custodian.resume`` would otherwise decode it from the store at every
            # step (it never changes: ``CustodianService`` loads it before any worker starts).
            custodian.setup  # noqa: B018
            _CUSTODIANS[db] = custodian
        return custodian


def bind(db: str, custodian: Custodian) -> None:
    with _CUSTODIANS_LOCK:
        _CUSTODIANS[db] = custodian


def _service(db: str) -> tuple[Custodian, ServiceStore]:
    custodian = _custodian(db)
    service = getattr(custodian, "_service", None)
    if service is None:
        service = ServiceStore(custodian.store)
        custodian._service = service  # type: ignore[attr-defined]
        custodian.lock_reclaim = service.reclaim_lock  # a lock whose holder died is freed at once
    return custodian, service


def error_frame(exc: BaseException) -> dict[str, Any]:
    """The error document of a step's failure; an abort that names a culprit keeps it beside the
    document (``"culprit"``: for the audit line, never sent to the client)."""
    if isinstance(exc, MPCError):
        engine = from_protocol_error(exc)
        culprit = getattr(engine, "culprit", None)
        return engine.to_json() if culprit is None else {**engine.to_json(), "culprit": culprit}
    BOUNDED_LOG.error("internal error in a custodian step", exc)
    return EngineError().to_json()


def _result_json(result: Any) -> Any:
    return result.to_json() if isinstance(result, SignResult) else result


# --- worker processes never outlive their service -------------------------------------------------------
_WORKER_STEP: threading.RLock | None = None  # held while a worker *process* runs a step


def worker_init() -> None:
    """Initializer of every worker process: when the service process dies (kill -9), the worker
    finishes the step it is running (it may still park its session) and exits, instead of
    waiting forever on the pool's queue (an orphan, which would keep the resource tracker too)."""
    global _WORKER_STEP
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    _WORKER_STEP = threading.RLock()
    threading.Thread(target=_exit_with_parent, args=(parent.sentinel, _WORKER_STEP), name="mpc-parent-watch",
                     daemon=True).start()


def _exit_with_parent(sentinel: int, stepping: threading.RLock) -> None:
    multiprocessing.connection.wait([sentinel])  # readable once the parent process is gone
    with stepping:
        os._exit(0)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_step(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` runs holding the worker's step lock (a worker whose service died exits between steps)."""
    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _WORKER_STEP is None:
            return fn(*args, **kwargs)
        with _WORKER_STEP:
            return fn(*args, **kwargs)
    return run


@_one_step
def open_operation(db: str, op: str, client_id: str, params: dict[str, Any], session_id: str,
                    ttl: float, max_parked: int, device_public: bytes, pending: bool,
                    frame: bytes | None = None) -> dict[str, Any]:
    """Create the custodian session of ``op`` and park it before any message arrives, bound to
    the device key that authorised it (``ServiceStore.bind_session``); refused when the client
    already has ``max_parked`` unfinished sessions parked of the same kind (opened under its
    registered key, or under a key a recover brought: see ``_refuse_open``).

    ``frame``: the device's first message, carried in the request (issue 30, round five: The
    first message in the request, below): the session is stepped with it before anything is
    committed, and the open and the step commit together, once."""
    custodian, service = _service(db)
    try:
        message = None if frame is None else parse_message(frame, session_id)
        checks = service.open_checks(session_id, client_id, pending, time.time(), mine=message is not None)
        if message is not None and _in_use(checks, op, device_public):
            return resume_channel(db, client_id, session_id)  # the same request again: its committed answer
        _refuse_open(checks, max_parked, pending)
        sid = bytes.fromhex(session_id)
        factory = getattr(custodian, op)
        session = factory(client_id, session_id=sid, **params)
        outbox = [m.to_bytes().decode("ascii") for m in session.start()]
        if message is not None:
            outbox = _first_step(session, outbox, message)
        try:
            with service.store.transaction():
                service.store.lock_client(client_id)  # the cap again, under the client's lock: exact
                # (and the id again: a concurrent open of the same id may have parked it meanwhile)
                checks = service.open_checks(session_id, client_id, pending, time.time(),
                                             epoch=isinstance(session, CustodianOperation))
                _refuse_open(checks, max_parked, pending)
                if message is not None:
                    custodian._check_share_current(session)  # the admission of a session with no park id yet
                service.bind_session(session_id, client_id, device_public, pending, ttl)
                # tagged with the epoch the checks read (issue 30, round seven: ``to_bytes`` reads it otherwise)
                data = session.to_bytes() if checks.epoch is None else session.to_bytes(nonce_epoch=checks.epoch)
                version = service.park(session_id, client_id, op, data, outbox, session._holds_lock, ttl,
                                       epoch=_encoded_epoch(session))
        except (RateLimited, InputInvalid):  # a concurrent open took the last place, or this id, meanwhile
            if session._holds_lock:
                _end_quietly(session)
            raise
        _keep_warm(db, session_id, version, session, ttl)
        return {"messages": outbox, "expect": session.awaiting_round}
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error frame
        return {"error": error_frame(exc), "fatal": True}


# --- the first message in the request (issue 30, round five) ------------------------------------------
# A ``sign`` or ``sign_presigned`` request (``mpc.wire.FIRST_MESSAGE_OPERATIONS``: optimistic
# operations whose custodian start sends nothing and that do not complete on that message) may
# carry the device's first message (``"message"``). ``open_operation`` then creates the session,
# steps it with that message and commits the open and the step in one transaction (the cap and
# session-id checks, the share check of the step's admission, ``bind_session``, the park of the
# stepped state with its messages): nothing is sent before that commit, and a refusal of the
# open or of the message commits nothing (the request fails: ``MESSAGE_INVALID``, or the error
# the protocol gives that message as a first frame).
# A worker that dies before the commit left nothing: ``reopen`` opens afresh with the message;
# after it, ``reopen`` (or the same request again: ``_in_use``) answers the parked outbox.
# docs/threat-model.md, The optimistic step.
def _first_step(session: Session, started: list[str], message: Message) -> list[str]:
    """The messages of ``session``'s first step with the device's first ``message`` (its start
    must have sent nothing: ``started``); ``MESSAGE_INVALID`` if the protocol refuses it."""
    if started:
        raise InputInvalid("this operation's custodian speaks first: send the first message after ready")
    try:
        produced = session.receive(message)
    except InvalidMessage as exc:
        raise MessageInvalid(str(exc)) from None
    if session.done:  # no operation allowed here completes on its first message
        raise EngineError("the operation completed on its first message")
    return [m.to_bytes().decode("ascii") for m in produced]


def _in_use(checks: OpenChecks, op: str, device_public: bytes) -> bool:
    """Whether the session id the open checked (``ServiceStore.open_checks`` with ``mine``) is
    parked as this client's ``op``, opened under this device key: a request carrying the first
    message that was committed already (its reply lost, its worker dead), answered with that
    commit's outbox (``resume_channel``), never stepped twice."""
    return checks.operation == op and checks.device is not None and hmac.compare_digest(checks.device, device_public)


def _refuse_open(checks: OpenChecks, max_parked: int, pending: bool) -> None:
    """An open's refusals from its checks (``ServiceStore.open_checks``): ``RATE_LIMITED`` when
    the client has ``max_parked`` live parked sessions of this kind (retry when the oldest
    expires), then ``INPUT_INVALID`` when the session id is parked already. The two kinds have a
    cap each: sessions opened under the registered device key, and recovers under a key they
    brought (what a token thief can open: filling that cap never blocks the owner's device)."""
    if checks.live >= max_parked:
        now = time.time()
        kind = "recovers by a new device key" if pending else "unfinished operations"
        raise RateLimited.after((checks.first_expiry or now) - now,
                                f"this client has {checks.live} {kind} (at most {max_parked})")
    if checks.parked:
        raise InputInvalid("this session id is in use")


def resume_channel(db: str, client_id: str, session_id: str) -> dict[str, Any]:
    """What a reconnecting client needs: the next message number expected and the last outbox."""
    custodian, service = _service(db)
    parked = service.peek(session_id)
    if parked is None or parked.client_id != client_id:
        return _missing(service, session_id, client_id)
    if parked.expires < time.time():
        return {"error": session_not_found(), "fatal": True}
    try:
        expect = custodian.parked_awaiting_round(parked.data)
    except Exception as exc:  # noqa: BLE001
        return {"error": error_frame(exc), "fatal": True}
    return {"messages": parked.outbox, "expect": expect}


def _missing(service: ServiceStore, session_id: str, client_id: str) -> dict[str, Any]:
    """The answer for a session that is not parked: ``OPERATION_LOST`` if a step took it and died
    (its lock is freed), else ``NOT_FOUND`` (``"stepping"``: a live node is stepping it now)."""
    state = service.missing_session(session_id, client_id)
    if state == "lost":
        return {"error": OperationLost().to_json(), "fatal": True}
    return {"error": session_not_found(), "fatal": True, "stepping": state == "stepping"}


def reopen(db: str, op: str, client_id: str, params: dict[str, Any], session_id: str, ttl: float,
            max_parked: int, device_public: bytes, pending: bool, frame: bytes | None = None) -> dict[str, Any]:
    """``open_operation`` again after its worker died: if it had parked the new session (and,
    with ``frame``, stepped it), the channel resumes it; else it is opened now. With ``frame``
    ``open_operation``'s own checks find a committed open (one statement, not two)."""
    if frame is None:
        _, service = _service(db)
        if _in_use(service.open_checks(session_id, client_id, pending, time.time(), mine=True), op, device_public):
            return resume_channel(db, client_id, session_id)
    return open_operation(db, op, client_id, params, session_id, ttl, max_parked, device_public, pending, frame)


@_one_step
def step(db: str, client_id: str, token: str, session_id: str, frame: bytes, ttl: float,
          step: Step | None = None) -> dict[str, Any]:
    """Decode the frame (strictly, once: ``MESSAGE_INVALID`` leaves the session untouched), check
    the client's token and the device key the session was opened under (revoked, rotated or
    replaced: ``AUTH_FAILED``, the session stays parked until it expires), then step the parked
    session: an optimistic operation's (``OPTIMISTIC_OPERATIONS``) on the row as read, committed
    once (``_step_optimistic``), another's taken first, then its new state parked (or finish: a
    completed recover or eject gets a fresh token in its result, and a completed recover
    registers its device key).

    ``step`` (the service's: step id, node, lock lease) leaves a marker, with the take or with the
    optimistic step's commit, so a crash mid-step is known for what it is
    (``ServiceStore.step_outcome``, ``missing_session``)."""
    custodian, service = _service(db)
    if step is not None:
        custodian.lock_ttl = step.lease  # a lock this step takes is leased like the step
    try:
        message = parse_message(frame, session_id)
    except MessageInvalid as exc:
        return {"error": exc.to_json(), "fatal": False}
    try:
        device, current = service.check_and_read(client_id, token, session_id)
    except AuthFailed as exc:
        return {"error": exc.to_json(), "fatal": True}
    if current is None:
        return _missing(service, session_id, client_id)
    if current.operation in OPTIMISTIC_OPERATIONS:
        return _step_optimistic(db, custodian, service, current, message, token, ttl, step)
    parked, session = _take(db, custodian, service, session_id, client_id, step)
    if parked is None:  # not parked, another client's, or another connection took it first
        return _missing(service, session_id, client_id)
    settled = False  # parked again (its marker says so), or its marker already went
    counted = parked.operation in TOKEN_ROTATING_OPERATIONS  # recover and eject count failed proofs
    failures = custodian.attempts.failures(client_id) if counted else 0
    try:
        outcome = _step_taken(db, custodian, service, parked, session, message, ttl, step, device)
        settled = bool(outcome.pop("parked", False))
        if counted and failures < custodian.attempts.limit <= custodian.attempts.failures(client_id):
            outcome["locked_out"] = True  # this step locked the client out (counted by the service)
        if "result" in outcome:  # issues 18 and 26: a lost result frame is fetched by resume
            settled = keep_finished(service, session_id, client_id, token, outcome, ttl, step)
        return outcome
    finally:
        if step is not None and not settled:
            service.end_step(session_id, step)


def _take(db: str, custodian: Custodian, service: ServiceStore, session_id: str, client_id: str,
          step: Step | None) -> tuple[ParkedSession | None, Session | None]:
    """Take the client's parked session (``ServiceStore.take``) and, if this process kept it warm
    for that very park (the versions match), the warm session, admitted in the same transaction
    (``Custodian._admit``: its park id consumed once, in this nonce epoch). Otherwise the session
    is None and the stored state is decoded (``Custodian.resume``). A warm session refused by
    ``_admit`` takes nothing: the stored one is taken instead, and refused the same way."""
    warm = _take_warm(db, session_id)
    if warm is None:
        return service.take(session_id, step, client_id), None
    admitted: list[Session] = []
    refused: list[MPCError] = []

    def admit(parked: ParkedSession) -> None:
        if hmac.compare_digest(parked.version, warm.version):
            try:
                admitted.append(custodian._admit(warm.session))
            except MPCError as exc:
                refused.append(exc)
                raise

    try:
        return service.take(session_id, step, client_id, admit), (admitted[0] if admitted else None)
    except MPCError:
        if not refused:  # the store's own failure: as without a warm session
            raise
        return service.take(session_id, step, client_id), None


# --- the optimistic step (issue 30, round four) -------------------------------------------------------
# The operations whose custodian steps write nothing to the store while the protocol runs (no
# operation lock, no status, no attempt count, no HD key or account): their steps run on the
# parked row without taking it and commit once (module docstring, The optimistic step).
OPTIMISTIC_OPERATIONS = ("sign", "sign_presigned", "presign")


def _step_optimistic(db: str, custodian: Custodian, service: ServiceStore, parked: ParkedSession,
                     message: Message, token: str, ttl: float, step: Step | None) -> dict[str, Any]:
    """One step of ``parked`` (read, not taken): decode it (or use this process's warm copy of
    that very park), deliver the message, then commit once (``ServiceStore.commit_step``: the
    row taken if still that park, the session admitted, the new state parked or the result
    kept). Nothing the step computed is returned unless that commit succeeded; a rejected
    message commits nothing (the row stays parked as it was)."""
    if parked.expires < time.time():  # the purge takes it
        return {"error": session_not_found(), "fatal": True}
    try:
        session = _decoded(db, custodian, parked)
    except Exception as exc:  # noqa: BLE001 - a state that does not restore is dropped
        _drop(service, parked, step, exc)
        return {"error": error_frame(exc), "fatal": True}
    admit = custodian._admission(session)  # its park tag now: ``to_bytes`` re-tags it below
    try:
        produced = session.receive(message)
    except InvalidMessage as exc:  # nothing changed and nothing is committed
        return {"error": MessageInvalid(str(exc)).to_json(), "fatal": False}
    except Exception as exc:  # noqa: BLE001 - an abort ends the session: its row goes
        _drop(service, parked, step, exc)
        return {"error": error_frame(exc), "fatal": True}
    sent = [m.to_bytes().decode("ascii") for m in produced]
    if session.done:
        outcome: dict[str, Any] = {"messages": sent, "result": _result_json(session.result())}
        results.ensure_table(service.store)
        kept = functools.partial(results.keep, service.store, parked.session_id, parked.client_id, token, outcome, ttl)
        return _committed(service, parked, step, admit, None, kept) or outcome
    # Tagged with the epoch of the park it ran on (no read of the store's: the commit checks it).
    data = session.to_bytes(nonce_epoch=parked.epoch) if isinstance(session, CustodianOperation) else \
        session.to_bytes()
    outbox, before = _outbox(session, parked, sent)
    park = NewPark(data, outbox, bool(getattr(session, "_holds_lock", False)), ttl, parked.epoch, before)
    version: list[bytes] = []
    refused = _committed(service, parked, step, admit, park, None, version)
    if refused is not None:
        return refused
    _keep_warm(db, parked.session_id, version[0], session, ttl)
    return {"messages": sent}


def _decoded(db: str, custodian: Custodian, parked: ParkedSession) -> Session:
    """The session of ``parked``: this process's warm copy if it is of that very park (removed:
    a warm copy serves one step at most), else decoded from the row (not admitted)."""
    warm = _take_warm(db, parked.session_id)
    if warm is not None and hmac.compare_digest(warm.version, parked.version):
        return warm.session
    return custodian._decode(parked.data)


def _committed(service: ServiceStore, parked: ParkedSession, step: Step | None, admit: Callable[[], None],
               park: NewPark | None, finish: Callable[[], None] | None,
               version: list[bytes] | None = None) -> dict[str, Any] | None:
    """Commit the step (``ServiceStore.commit_step``); None once committed (the new park's
    version appended to ``version``), else the answer instead of what the step computed:
    ``NOT_FOUND`` if another step of the session committed first (or an abort, the purge or a
    restore took the row), the admission's or the store's error otherwise."""
    refused: list[BaseException] = []

    def admitted() -> None:
        try:
            admit()
        except BaseException as exc:
            refused.append(exc)
            raise

    try:
        committed = service.commit_step(parked, step, admitted, park, finish)
    except Exception as exc:  # noqa: BLE001 - refused or failed: nothing leaves
        if refused:  # its park id used, its epoch dead, its share replaced: it never will be admitted
            _drop(service, parked, step, refused[0])
        return {"error": error_frame(exc), "fatal": True}
    if committed is None:
        return {"error": session_not_found(), "fatal": True}
    if version is not None:
        version.append(committed)
    return None


def _drop(service: ServiceStore, parked: ParkedSession, step: Step | None, cause: BaseException) -> None:
    """An optimistic step that ended its session (an abort, a state that does not restore, an
    admission refused): the row goes, if it is still that park (a step that committed meanwhile
    keeps its own). Not for ``STORE_UNAVAILABLE`` (the store failed, not the session: the row
    stays parked and the client resumes it once the store answers)."""
    if isinstance(cause, StoreUnavailable):
        return
    try:
        service.commit_step(parked, step, lambda: None, None)
    except Exception as exc:  # noqa: BLE001 - the session expires instead
        BOUNDED_LOG.error("could not drop an ended session", exc)


# --- issue 18 (client retries): a lost recover/eject result frame ------------------------------------
def keep_finished(service: ServiceStore, session_id: str, client_id: str, token: str, outcome: dict[str, Any],
                   ttl: float, step: Step | None = None) -> bool:
    """Keep a finished operation's outcome for one ``resume`` (``mpc.service.results``), with
    ``step``'s marker removed in the same transaction; whether that was done (a failure to
    keep the outcome only costs that fallback: the caller then ends the step alone)."""
    try:
        results.ensure_table(service.store)
        with service.store.transaction():
            results.keep(service.store, session_id, client_id, token, outcome, ttl)
            if step is not None:
                service.end_step(session_id, step)
        return True
    except Exception as exc:  # noqa: BLE001 - the operation itself completed
        BOUNDED_LOG.error("could not keep a finished operation's result for resume", exc)
        return False


def take_finished(db: str, client_id: str, token: str, session_id: str) -> dict[str, Any] | None:
    """The kept outcome of a finished recover/eject, once, for the token that ran it."""
    _, service = _service(db)
    return results.take(service.store, session_id, client_id, token)
# --- end of issue 18 (client retries) -------------------------------------------------------------------


def _step_taken(db: str, custodian: Custodian, service: ServiceStore, parked: ParkedSession,
                session: Session | None, message: Message, ttl: float, step: Step | None,
                device: bytes) -> dict[str, Any]:
    """``step`` once the session is taken (``"parked": True`` when it was parked again);
    ``session`` is the warm one, or None: the stored state is decoded."""
    client_id = parked.client_id
    if parked.expires < time.time():
        release(custodian, parked)
        return {"error": session_not_found(), "fatal": True}
    if session is None:
        try:
            session = custodian.resume(parked.data)
        except Exception as exc:  # noqa: BLE001 - a state that does not restore is dropped
            release(custodian, parked)
            return {"error": error_frame(exc), "fatal": True}
    try:
        produced = session.receive(message)
    except InvalidMessage as exc:  # the session is unchanged: park it again, keep the channel (and its outbox)
        lost = _park(db, service, session, parked, parked.outbox, len(parked.outbox), ttl, step)
        return lost or {"error": MessageInvalid(str(exc)).to_json(), "fatal": False, "parked": True}
    except Exception as exc:  # noqa: BLE001 - an abort ends the session (it released its lock)
        if getattr(session, "_holds_lock", False):  # not an abort (a store failure, a bug): free its lock
            _end_quietly(session)
        return {"error": error_frame(exc), "fatal": True}
    sent = [m.to_bytes().decode("ascii") for m in produced]
    if session.done:
        result = _result_json(session.result())
        if parked.operation in TOKEN_ROTATING_OPERATIONS:
            with service.store.transaction():  # a recover moves the wallet to its device's key
                if parked.operation == "recover":
                    service.register_device(client_id, device)
                result = {**result, "token": service.replace_token(client_id, parked.operation)}
        return {"messages": sent, "result": result}
    return _park(db, service, session, parked, *_outbox(session, parked, sent), ttl, step) or \
        {"messages": sent, "parked": True}


def _outbox(session: Any, parked: ParkedSession, sent: list[str]) -> tuple[list[str], int]:
    """What a step that sent ``sent`` parks for a client that resumes (Parking, restarts, expiry),
    and how many of those messages came before the step: a session whose peer sends each
    message only once it has every message this party sent before (``alternates``: a sign)
    keeps this step's messages only; another (a composite whose children speak side by side,
    several messages a round) keeps every message sent so far (the client drops those it has)."""
    if getattr(session, "alternates", False):
        return sent, 0
    return parked.outbox + sent, len(parked.outbox)


def _park(db: str, service: ServiceStore, session: Any, parked: ParkedSession, outbox: list[str], before: int,
          ttl: float, step: Step | None) -> dict[str, Any] | None:
    """Park the stepped session again (renewing its lock's lease) with ``outbox``, whose first
    ``before`` messages came before this step (the rest is what its marker sends if its worker
    dies: ``ServiceStore.step_outcome``), and keep it warm; on failure the error answer
    (``OPERATION_LOST`` if its lock was reclaimed meanwhile: the state is dropped, or the
    store's error) and the session is forgotten: its lock, if still its own, is freed."""
    try:
        data = session.to_bytes()
        version = service.park(parked.session_id, parked.client_id, parked.operation, data, outbox,
                               session._holds_lock, ttl, step, _encoded_epoch(session), before)
    except EngineError as exc:
        try:
            service.abandon(parked.session_id)
        except EngineError as again:  # the store is down: the step's lease runs out instead
            BOUNDED_LOG.error("could not forget a session that failed to park", again)
        return {"error": exc.to_json(), "fatal": True}
    _keep_warm(db, parked.session_id, version, session, ttl)
    return None


def _encoded_epoch(session: Any) -> int | None:
    """The nonce epoch a custodian operation's ``to_bytes`` just tagged its state with (None for
    another session: the store's is read at the park)."""
    tag = session.park_tag if isinstance(session, CustodianOperation) else None
    return None if tag is None else tag[2]


def _end_quietly(session: Any) -> None:
    """End a session that failed with its lock held (its ``_end`` frees the lock)."""
    try:
        session._end()
    except Exception as exc:  # noqa: BLE001 - the lock's lease runs out instead
        BOUNDED_LOG.error("could not free the lock of a failed session", exc)


def release(custodian: Custodian, parked: Any) -> None:
    """An abandoned session frees the client's operation lock if it still holds it (and nothing else)."""
    if parked.holds_lock:
        custodian._release(parked.client_id, parked.session_id)


@_one_step
def abort_session(db: str, client_id: str, token: str, session_id: str) -> None:
    """The device gave up the operation (its own step failed, e.g. a wrong passphrase): the
    parked session goes now and frees the lock it holds, instead of waiting for its expiry.
    Only on the connection the session was opened or resumed on, under its token and key."""
    custodian, service = _service(db)
    try:
        service.check_step(client_id, token, session_id)
    except AuthFailed:
        return
    _take_warm(db, session_id)
    parked = service.take(session_id, client_id=client_id)
    if parked is not None:
        release(custodian, parked)


def warm(db: str) -> bool:
    _service(db)
    return True


